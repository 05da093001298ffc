//! A spawned `shout server`: its `listening on` lines read back, its `summary:` line parsed
//! after a stop.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::process::{Proc, Stderr};
use super::BIN;

/// How long a spawned server may take to print its `listening on` lines.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `shout server` child, killed and reaped on drop.
pub(crate) struct ServerProc {
    proc: Proc,
    /// Addresses parsed from the `listening on` lines, in the order printed.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The `listening on` lines verbatim.
    pub(crate) listen_lines: Vec<String>,
}

/// How a server run ended.
pub(crate) struct Stopped {
    pub(crate) status: ExitStatus,
    /// Time from just before sending the signal until the child was reaped.
    pub(crate) elapsed: Duration,
    pub(crate) stderr: Vec<String>,
    /// Lines on stdout after the `listening on` lines (the contract says: none).
    pub(crate) stdout_extra: Vec<String>,
}

impl Stopped {
    /// The `summary:` line's key=value fields; panics with the full stderr if absent.
    pub(crate) fn summary(&self) -> HashMap<String, u64> {
        let line = self.stderr.iter().find(|l| l.starts_with("summary: ")).unwrap_or_else(|| {
            panic!("no stderr line beginning `summary: `; stderr was:\n{}", self.stderr.join("\n"))
        });
        parse_kv(line)
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }
}

/// Parses the `key=value` fields of a line (non-numeric values are skipped).
pub(crate) fn parse_kv(line: &str) -> HashMap<String, u64> {
    parse_kv_as(line)
}

/// Parses the `key=value` fields of a line (values that do not parse as `T` are skipped).
pub(crate) fn parse_kv_as<T: std::str::FromStr>(line: &str) -> HashMap<String, T> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// No socket activation or readiness socket from the test's own environment
/// reaches a server a test starts.
pub(crate) fn hermetic(cmd: &mut Command) {
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] {
        cmd.env_remove(var);
    }
}

impl ServerProc {
    /// Spawns `shout server ARGS` and reads one `listening on` line per `--bind` in ARGS
    /// (one if there is none).
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(args, Stderr::Collect)
    }

    pub(crate) fn spawn_with(args: &[&str], stderr_mode: Stderr) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("server").args(args);
        hermetic(&mut cmd);
        Self::from_command(cmd, args.iter().filter(|a| **a == "--bind").count().max(1), stderr_mode)
    }

    /// Spawns `cmd` (a `shout server` command line) and reads `expected` `listening on` lines.
    pub(crate) fn from_command(cmd: Command, expected: usize, stderr_mode: Stderr) -> Self {
        let mut proc = Proc::spawn_with(cmd, stderr_mode);
        let (listen_lines, addrs) = proc.listening(expected, STARTUP_TIMEOUT);
        Self { proc, addrs, listen_lines }
    }

    /// The first (usually only) bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The address, which the test expects to be IPv4.
    pub(crate) fn addr_v4(&self) -> SocketAddrV4 {
        match self.addr() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => panic!("expected an IPv4 server, got {a}"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The underlying child, for reading its output line by line.
    pub(crate) fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        self.proc.signal(sig);
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.proc.guard().is_running()
    }

    /// Panics if the server has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.proc.guard().child_mut().try_wait().expect("try_wait") {
            panic!("server exited unexpectedly with {status}");
        }
    }

    /// Waits up to `timeout` for a stderr line satisfying `pred` (lines already seen count);
    /// returns it.
    pub(crate) fn wait_stderr(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        if let Some(l) = self.proc.stderr_seen().iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        self.proc.stderr_line(timeout, pred)
    }

    /// Stderr lines seen so far (by `wait_stderr`).
    pub(crate) fn stderr_seen(&self) -> &[String] {
        self.proc.stderr_seen()
    }

    /// Sends `sig` and waits (up to 5 s) for exit, then collects stderr and stdout leftovers.
    pub(crate) fn stop(mut self, sig: &str) -> Stopped {
        let start = Instant::now();
        self.proc.signal(sig);
        let status = self.proc.wait(Duration::from_secs(5));
        let elapsed = start.elapsed();
        let status = status.unwrap_or_else(|| {
            panic!("server did not exit within 5 s of SIG{sig} (the guard kills it)")
        });
        let stderr = self.proc.drain_stderr();
        let stdout_extra = self.proc.drain_stdout();
        Stopped { status, elapsed, stderr, stdout_extra }
    }

    /// SIGKILL and reap: the crash case; the port is free once this returns.
    pub(crate) fn kill(mut self) {
        self.proc.guard().kill();
    }
}

/// The `key=value` counters of a server's `summary:` line.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    line: String,
    fields: HashMap<String, u64>,
}

impl Summary {
    /// Parses the (last) `summary:` line out of a server's stderr.
    pub(crate) fn parse(stderr: &str) -> Summary {
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("summary: "))
            .unwrap_or_else(|| panic!("no `summary:` line on the server's stderr:\n{stderr}"));
        Summary { line: line.to_string(), fields: parse_kv(line) }
    }

    /// One counter; panics if the summary lacks it.
    pub(crate) fn get(&self, key: &str) -> u64 {
        *self.fields.get(key).unwrap_or_else(|| panic!("summary has no {key}: {}", self.line))
    }
}

/// Every reason the summary counts a datagram dropped unanswered (the server's
/// `Refusal`s): received = answered + reply_failed + the sum of these.
pub(crate) const DROP_REASONS: [&str; 10] = [
    "oversize",
    "port_zero",
    "denied_port",
    "bad_source",
    "self_loop",
    "rate_limited",
    "total_limited",
    "stamp_malformed",
    "stamp_auth_failed",
    "stamp_short",
];

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// `shout server --quiet --workers 1 ...` for the fault tests: a [`ServerProc`] whose stop
/// expects a clean exit and returns the [`Summary`].
pub(crate) struct Server(ServerProc);

impl Server {
    /// Starts `shout server --quiet --workers 1 ARGS` and reads its `listening on` line.
    pub(crate) fn start(args: &[&str]) -> Server {
        let mut all = vec!["--quiet", "--workers", "1"];
        all.extend_from_slice(args);
        Server(ServerProc::spawn(&all))
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// The address, which tests bind as IPv4.
    pub(crate) fn addr_v4(&self) -> SocketAddrV4 {
        self.0.addr_v4()
    }

    /// The server's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Sends it a signal.
    pub(crate) fn signal(&self, sig: &str) {
        self.0.signal(sig);
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.0.is_running()
    }

    /// SIGTERM; expects exit 0 within 5 s and returns the summary.
    pub(crate) fn stop(self) -> Summary {
        let stopped = self.0.stop("TERM");
        let err = stopped.stderr_text();
        assert!(
            stopped.status.success(),
            "server exited with {} on SIGTERM:\n{err}",
            stopped.status
        );
        Summary::parse(&err)
    }

    /// SIGKILL and reap: the crash case; the port is free once this returns.
    pub(crate) fn kill(self) {
        self.0.kill();
    }
}
