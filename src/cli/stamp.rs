//! What `shout server --mode stamp` and `shout bench --stamp` share on the
//! command line: the HMAC key file and the timestamp format; and the
//! reflector's own flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::duration_in;
use super::UsageError;
pub use crate::stamp::STAMP_PORT;
use crate::stamp::{AuthMode, ReflectorConfig, TimestampFormat};

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

/// Reads an HMAC key file ([`crate::stamp::key::read_key_file`]); a file that
/// cannot be read is a runtime error, a readable or short key the user's (exit 2).
pub fn read_key(path: &Path) -> Result<Vec<u8>> {
    use crate::stamp::key::{read_key_file, KeyFileError};
    match read_key_file(path) {
        Ok(key) => Ok(key),
        Err(err @ KeyFileError::Io { .. }) => Err(err.into()),
        Err(err) => Err(UsageError(err.to_string()).into()),
    }
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
    /// Authenticated mode (RFC 8762 §4.4): the HMAC key, as hex text or raw bytes, from this file (mode 600).
    #[arg(long, value_name = "PATH")]
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
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    stamp_sessions: u32,
    /// A session that sends nothing for this long is forgotten.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_idle)]
    stamp_session_idle: Duration,
}

fn parse_idle(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::from_secs(1), Duration::from_secs(24 * 3600), "1s to 24h")
}

impl ReflectorArgs {
    /// The reflector these flags describe; the key is read here.
    pub fn config(&self) -> Result<ReflectorConfig> {
        let (mode, auth_key) = auth(self.stamp_key_file.as_deref())?;
        Ok(ReflectorConfig {
            mode,
            auth_key,
            stateful: self.stamp_stateful,
            format: self.stamp_timestamp.into(),
            synchronized: self.stamp_clock_synchronized,
            session_capacity: self.stamp_sessions as usize,
            session_idle: self.stamp_session_idle,
            ..ReflectorConfig::default()
        })
    }

    /// Whether any flag was given: they mean nothing without `--mode stamp`.
    pub fn any(&self) -> bool {
        self.stamp_key_file.is_some()
            || self.stamp_stateful
            || self.stamp_timestamp != Format::Ntp
            || self.stamp_clock_synchronized
            || self.stamp_sessions != 4096
            || self.stamp_session_idle != Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(contents: &[u8], mode: u32) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("key");
        std::fs::write(&path, contents).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        (dir, path)
    }

    /// A scratch directory removed on drop.
    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let path =
                    std::env::temp_dir().join(format!("shout-key-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn keys_are_hex_text_or_raw_bytes() {
        let (_d, path) = key_file(b"00112233445566778899aabbccddeeff\n", 0o600);
        assert_eq!(read_key(&path).unwrap(), (0..16).map(|i| i * 0x11).collect::<Vec<u8>>());
        let raw = b"not hex, but long enough";
        let (_d, path) = key_file(raw, 0o600);
        assert_eq!(read_key(&path).unwrap(), raw);
    }

    #[test]
    fn short_or_readable_keys_are_refused_with_a_reason() {
        let (_d, path) = key_file(b"00112233", 0o600);
        let err = read_key(&path).unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
        let (_d, path) = key_file(b"00112233445566778899aabbccddeeff", 0o644);
        let err = read_key(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let err = read_key(Path::new("/nonexistent/key")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/key"), "{err:#}");
    }
}
