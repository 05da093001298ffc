//! The command line's work, where the library's tests can reach it: each
//! subcommand's arguments (clap derive; the doc comments are the help text),
//! how they become a [`ServerConfig`](crate::ServerConfig),
//! [`ClientConfig`](crate::ClientConfig) or [`BenchConfig`](crate::bench::BenchConfig),
//! and the glue around a run (signals, stats lines, the summary, exit codes).
//! `main.rs` only parses and dispatches.
//!
//! - [`server`](mod@server): `shout server`.
//! - [`client`](mod@client): `shout client`.
//! - [`bench`](mod@bench): `shout bench`.
//! - [`probe`](mod@probe): `shout probe`.
//! - [`stamp`](mod@stamp): the STAMP flags of both (key file, timestamp format).

use std::io::{self, IsTerminal};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::Result;

pub mod bench;
pub mod client;
pub mod probe;
pub mod server;
pub mod stamp;

pub use bench::BenchArgs;
pub use client::ClientArgs;
pub use probe::ProbeArgs;
pub use server::ServerArgs;

/// The exit codes, shown in `shout --help` and `shout client --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  every request answered (client); clean stop on SIGINT/SIGTERM (server)
  1  some request unanswered, no server, or a socket error
  2  usage error, including a message too large for one datagram";

/// Parses a duration flag that must lie within `min..=max`; the error names
/// the range as `range` says it (`"1ms to 24h"`).
pub(crate) fn duration_in(
    text: &str,
    min: std::time::Duration,
    max: std::time::Duration,
    range: &str,
) -> Result<std::time::Duration, String> {
    let d = crate::parse_duration(text)?;
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

/// Every address `addr` names, in the resolver's order, without repeats.
///
/// ```
/// let addrs = shout::cli::resolve_all("127.0.0.1:8080").unwrap();
/// assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
/// assert!(shout::cli::resolve_all("no port").is_err());
/// ```
pub fn resolve_all(addr: &str) -> Result<Vec<SocketAddr>> {
    let resolved = addr.to_socket_addrs().map_err(|err| {
        UsageError(format!("invalid address {addr:?} ({err}); expected HOST:PORT or [IPv6]:PORT"))
    })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(UsageError(format!("{addr:?} resolves to no address")).into());
    }
    Ok(addrs)
}

/// The first address `addr` names.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    resolve_all(addr).map(|addrs| addrs[0])
}
