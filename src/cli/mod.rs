//! The command line, in the binary: each
//! subcommand's arguments (clap derive; the doc comments are the help text),
//! how they become a [`ServerConfig`](shout::ServerConfig),
//! [`ClientConfig`](shout::ClientConfig) or [`BenchConfig`](shout::bench::BenchConfig),
//! and the glue around a run (signals, stats lines, the summary, exit codes).
//! `main.rs` only parses and dispatches.
//!
//! - [`server`](mod@server): `shout server`.
//! - [`client`](mod@client): `shout client`.
//! - [`bench`](mod@bench): `shout bench`.
//! - [`man`](mod@man): `shout man`, a manual page per command.
//! - [`probe`](mod@probe): `shout probe`.
//! - [`stamp`](mod@stamp): the STAMP flags of both (key file, timestamp format).

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;

pub mod bench;
pub mod client;
pub mod man;
pub mod probe;
pub mod server;
pub mod stamp;

pub use bench::BenchArgs;
pub use client::ClientArgs;
pub use probe::ProbeArgs;
pub use server::ServerArgs;

/// The exit codes in `shout --help`; each subcommand's `--help` lists its own.
/// Each `Exit codes` block of a help is also its man page's EXIT STATUS
/// ([`man`](mod@man)); README's exit-code tables copy them (tests/docs_cli.rs
/// checks).
pub const EXIT_CODES: &str = "\
Exit codes (shout SUBCOMMAND --help lists each one's):
  0  success
  1  a failure of the network, the server or a check (no server, no reply, a broken --max-* limit, a socket error)
  2  usage error";

/// `shout server`'s exit codes.
pub const SERVER_EXIT_CODES: &str = "\
Exit codes:
  0  a clean stop on SIGINT/SIGTERM
  1  an address that cannot be served (in use, say), a key file that cannot be read, or a socket lost
  2  usage error (a flag value out of range names the flag and the range), including a key file refused for its permissions or size";

/// `shout client`'s exit codes.
pub const CLIENT_EXIT_CODES: &str = "\
Exit codes:
  0  every request answered
  1  some request unanswered, no server, or a socket error
  2  usage error, including a MESSAGE or input line too large for one datagram
  130  interrupted by Ctrl-C, at the prompt as in the other modes";

/// The exit code of a client interrupted by Ctrl-C (SIGINT), 128 + 2 as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit codes of the subcommands that only print (`completions`, `man`).
pub const PRINT_EXIT_CODES: &str = "\
Exit codes:
  0  written
  1  could not be written
  2  usage error";

/// Parses a duration flag that must lie within `min..=max`; the error names
/// the range as `range` says it (`"1ms to 24h"`).
pub(crate) fn duration_in(
    text: &str,
    min: std::time::Duration,
    max: std::time::Duration,
    range: &str,
) -> Result<std::time::Duration, String> {
    let d = shout::parse_duration(text)?;
    if (min..=max).contains(&d) {
        Ok(d)
    } else {
        Err(format!("{text:?} is out of range: use {range}"))
    }
}

/// An error that is the user's input, not the network's: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Sets up the diagnostics on stderr: JSON objects with `json`, else plain
/// lines, coloured only where [`color_wanted`]. `RUST_LOG` filters them.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_writer(io::stderr).with_env_filter(filter);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_target(false).without_time().with_ansi(color_wanted()).init();
    }
}

/// The exit code for a subcommand's result; an error is printed on stderr
/// first. A [`UsageError`] exits 2, any other error 1.
pub fn exit_code(result: Result<ExitCode>) -> ExitCode {
    use std::io::Write;
    match result {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn color_wanted() -> bool {
    io::stdout().is_terminal()
        && io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Every address `addr` names, in the resolver's order, without repeats
/// ([`shout::addr::parse_target`]); a text that names none is a usage error.
pub fn resolve_all(addr: &str) -> Result<Vec<SocketAddr>> {
    shout::addr::parse_target(addr, None).map_err(|err| UsageError(err.to_string()).into())
}

/// The first address `addr` names.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    resolve_all(addr).map(|addrs| addrs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_all_takes_host_and_port_and_refuses_a_missing_port() {
        let addrs = resolve_all("127.0.0.1:8080").unwrap();
        assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
        assert!(resolve_all("no port").is_err());
        let err = resolve_all("[fe80::1]:9").unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
    }
}
