//! What `shout server --mode stamp` and `shout bench --stamp` share on the
//! command line: the HMAC key file and the timestamp format; and the
//! reflector's own flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::duration_in;
use super::UsageError;
use shout::stamp::session::DEFAULT_SESSIONS;
pub use shout::stamp::STAMP_PORT;
use shout::stamp::{load_key, AuthMode, KeyFileError, ReflectorConfig, TimestampFormat};

/// The timestamp format on the wire (the Z bit of the Error Estimate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// NTP: seconds since 1900 and a binary fraction.
    #[default]
    Ntp,
    /// PTPv2 truncated: seconds since 1970 and nanoseconds.
    Ptp,
}

impl From<Format> for TimestampFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Ntp => TimestampFormat::Ntp,
            Format::Ptp => TimestampFormat::Ptp,
        }
    }
}

/// `--stamp-key-file`'s help, the server's and the bench's alike: the rule
/// docs/STAMP.md states too.
pub const KEY_FILE_HELP: &str = shout::stamp::key::KEY_FILE_HELP;

/// Reads an HMAC key file ([`shout::stamp::load_key`]). A file that cannot be
/// read is an error like any other I/O error (exit 1); one that can but gives
/// no key is the user's to fix: a usage error (exit 2). Both name the path.
pub fn read_key(path: &Path) -> Result<Vec<u8>> {
    load_key(path).map_err(|err| {
        let message = format!("the STAMP key file {}: {err}", path.display());
        match err {
            KeyFileError::Io(_) => anyhow::anyhow!(message),
            _ => UsageError(message).into(),
        }
    })
}

/// The mode a key file gives: authenticated with its key, else unauthenticated.
pub fn auth(key_file: Option<&Path>) -> Result<(AuthMode, Option<Vec<u8>>)> {
    let key = key_file.map(read_key).transpose()?;
    let mode = if key.is_some() { AuthMode::Authenticated } else { AuthMode::Unauthenticated };
    Ok((mode, key))
}

/// The reflector's flags (they apply with `--mode stamp`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "STAMP reflector (--mode stamp; docs/STAMP.md)")]
pub struct ReflectorArgs {
    // The help is the library's rule, word for word, as in docs/STAMP.md.
    #[arg(long, value_name = "PATH", help = KEY_FILE_HELP)]
    stamp_key_file: Option<PathBuf>,
    /// Stateful reflection (RFC 8972 §4): per-session reflector sequence numbers, so senders can tell forward from backward loss.
    #[arg(long)]
    stamp_stateful: bool,
    /// Timestamp format of the reflector's timestamps.
    #[arg(long, value_name = "FORMAT", default_value = "ntp")]
    stamp_timestamp: Format,
    /// Set the S bit: this host's clock is synchronised to an external source (say so only if it is).
    #[arg(long)]
    stamp_clock_synchronized: bool,
    /// Sessions a stateful reflector holds (per worker); further senders are answered statelessly.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SESSIONS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    stamp_sessions: u32,
    /// A session that sends nothing for this long is forgotten.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_idle)]
    stamp_session_idle: Duration,
    /// Answer short (14 to 43 octets, unpadded TWAMP-Light) test packets from senders in this prefix with a 44-octet reply, longer than the request (refused by default: amplification). Unauthenticated mode only. Repeatable.
    #[arg(long, value_name = "PREFIX")]
    stamp_short_from: Vec<shout::Prefix>,
    /// DSCPs a Class of Service TLV may ask for the reply (RFC 8972 §4.4), comma-separated names, numbers or ranges, e.g. ef,af41,0-7; the reply is sent with the class asked for, any other gets RP set and the socket's class [default: none].
    #[arg(long, value_name = "CLASS,...", value_delimiter = ',', value_parser = shout::dscp::parse_dscp_set)]
    stamp_allow_dscp: Vec<u64>,
}

fn parse_idle(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::from_secs(1), Duration::from_secs(24 * 3600), "1s to 24h")
}

impl ReflectorArgs {
    /// The reflector these flags describe; the key is read here.
    pub fn config(&self) -> Result<ReflectorConfig> {
        if !self.stamp_short_from.is_empty() && self.stamp_key_file.is_some() {
            return Err(UsageError(
                "--stamp-short-from answers unauthenticated TWAMP-Light packets; \
                 it cannot be used with --stamp-key-file"
                    .into(),
            )
            .into());
        }
        let (mode, auth_key) = auth(self.stamp_key_file.as_deref())?;
        Ok(ReflectorConfig {
            mode,
            auth_key,
            stateful: self.stamp_stateful,
            format: self.stamp_timestamp.into(),
            synchronized: self.stamp_clock_synchronized,
            session_capacity: self.stamp_sessions as usize,
            session_idle: self.stamp_session_idle,
            unpadded_from: self.stamp_short_from.clone(),
            allowed_dscp: self.stamp_allow_dscp.iter().fold(0, |all, set| all | set),
            ..ReflectorConfig::default()
        })
    }

    /// Whether any flag was given: they mean nothing without `--mode stamp`.
    pub fn any(&self) -> bool {
        self.stamp_key_file.is_some()
            || self.stamp_stateful
            || self.stamp_timestamp != Format::Ntp
            || self.stamp_clock_synchronized
            || self.stamp_sessions as usize != DEFAULT_SESSIONS
            || self.stamp_session_idle != Duration::from_secs(60)
            || !self.stamp_short_from.is_empty()
            || !self.stamp_allow_dscp.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_that_gives_no_key_is_a_usage_error_naming_it() {
        let err = read_key(Path::new("/nonexistent/key")).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_none(), "an I/O error: {err:#}");
        assert!(format!("{err:#}").contains("/nonexistent/key"), "{err:#}");
        let err = read_key(Path::new("/dev/null")).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains("/dev/null: it is a character device"), "{err:#}");
    }
}
