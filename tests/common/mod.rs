//! Helpers shared by the integration tests of the `shout` binary: child-process guards, a
//! spawned `shout server` whose `listening on` lines are read back, a bounded `shout client`
//! runner, in-process fake UDP servers and small Python helpers.
//!
//! Everything talks over loopback with port 0; every receive has a timeout; every child is
//! killed and reaped on drop.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_shout");

/// Upper bound for any single receive in a test.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a spawned server may take to print its `listening on` lines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest UDP payload over IPv4.
pub(crate) const MAX_V4_PAYLOAD: usize = 65_507;

// ---------------------------------------------------------------------------------------------
// Child processes

/// Owns a child process; kills (by PID) and reaps it on drop unless it already exited.
pub(crate) struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub(crate) fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.as_ref().expect("child present until drop").id()
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) through the `kill` utility (no unsafe).
    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.id().to_string())
            .status()
            .expect("running kill(1)");
        assert!(status.success(), "kill -{sig} {} failed", self.id());
    }

    /// Polls for exit until `timeout`; `None` if still running.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Reads `r` line by line (bytes, lossily decoded) into a channel until EOF.
fn spawn_line_reader<R: Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Collects everything left on a line channel until its writer hits EOF (or `timeout`).
fn drain_lines(rx: &Receiver<String>, into: &mut Vec<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => into.push(line),
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `shout server`

/// What to do with the server's stderr.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stderr {
    /// Read it in a background thread so tests can inspect it.
    Collect,
    /// Keep the pipe open and never read it (a stalled log consumer).
    Unread,
}

/// A running `shout server` child.
pub(crate) struct ServerProc {
    guard: ChildGuard,
    /// Addresses parsed from the `listening on` lines, in the order printed.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The `listening on` lines verbatim.
    pub(crate) listen_lines: Vec<String>,
    stdout_rx: Receiver<String>,
    stderr_rx: Option<Receiver<String>>,
    stderr_seen: Vec<String>,
    _unread_stderr: Option<ChildStderr>,
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
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

impl ServerProc {
    /// Spawns `shout server ARGS` and reads one `listening on` line per `--bind` in ARGS
    /// (one if there is none).
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(args, Stderr::Collect)
    }

    pub(crate) fn spawn_with(args: &[&str], stderr_mode: Stderr) -> Self {
        let expected = args.iter().filter(|a| **a == "--bind").count().max(1);
        let child = Command::new(BIN)
            .arg("server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning shout server");
        let mut guard = ChildGuard::new(child);
        let stdout = guard.child_mut().stdout.take().expect("piped stdout");
        let stderr = guard.child_mut().stderr.take().expect("piped stderr");
        let (stderr_rx, unread) = match stderr_mode {
            Stderr::Collect => (Some(spawn_line_reader(stderr)), None),
            Stderr::Unread => (None, Some(stderr)),
        };
        let stdout_rx = spawn_line_reader(stdout);

        let mut listen_lines = Vec::new();
        let mut addrs = Vec::new();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while listen_lines.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match stdout_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let mut err_lines = Vec::new();
                    if let Some(rx) = &stderr_rx {
                        drain_lines(rx, &mut err_lines, Duration::from_millis(300));
                    }
                    panic!(
                        "server {args:?} printed {} of {expected} `listening on` lines ({e:?}); \
                         got {listen_lines:?}; stderr:\n{}",
                        listen_lines.len(),
                        err_lines.join("\n")
                    );
                }
            };
            let rest = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("stdout line is not `listening on ADDR`: {line:?}"));
            let addr: SocketAddr = rest
                .parse()
                .unwrap_or_else(|e| panic!("`listening on` address {rest:?} unparsable: {e}"));
            assert_ne!(addr.port(), 0, "printed port must be the real one: {line:?}");
            addrs.push(addr);
            listen_lines.push(line);
        }
        Self {
            guard,
            addrs,
            listen_lines,
            stdout_rx,
            stderr_rx,
            stderr_seen: Vec::new(),
            _unread_stderr: unread,
        }
    }

    /// The first (usually only) bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub(crate) fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        self.guard.signal(sig);
    }

    /// Panics if the server has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.guard.child_mut().try_wait().expect("try_wait") {
            panic!("server exited unexpectedly with {status}");
        }
    }

    /// Waits up to `timeout` for a stderr line satisfying `pred`; returns it.
    pub(crate) fn wait_stderr(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        if let Some(l) = self.stderr_seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let rx = self.stderr_rx.as_ref().expect("stderr is collected");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.stderr_seen.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Stderr lines seen so far (by `wait_stderr`).
    pub(crate) fn stderr_seen(&self) -> &[String] {
        &self.stderr_seen
    }

    /// Sends `sig` and waits (up to 5 s) for exit, then collects stderr and stdout leftovers.
    pub(crate) fn stop(mut self, sig: &str) -> Stopped {
        let start = Instant::now();
        self.guard.signal(sig);
        let status = self.guard.wait_timeout(Duration::from_secs(5));
        let elapsed = start.elapsed();
        let status = status.unwrap_or_else(|| {
            panic!("server did not exit within 5 s of SIG{sig} (the guard kills it)")
        });
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        if let Some(rx) = &self.stderr_rx {
            drain_lines(rx, &mut stderr, Duration::from_secs(2));
        }
        let mut stdout_extra = Vec::new();
        drain_lines(&self.stdout_rx, &mut stdout_extra, Duration::from_secs(2));
        Stopped { status, elapsed, stderr, stdout_extra }
    }
}

// ---------------------------------------------------------------------------------------------
// Plain UDP sockets

/// A loopback socket of the same family as `peer`, port 0, with a receive timeout.
pub(crate) fn socket_for(peer: SocketAddr) -> UdpSocket {
    let bind = if peer.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
    let s = UdpSocket::bind(bind).expect("bind loopback port 0");
    s.set_read_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    s
}

/// Sends `payload` to `to` and returns the first datagram that comes back from `to`.
pub(crate) fn request(sock: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    sock.send_to(payload, to).expect("send_to");
    recv_from_peer(sock, to)
        .unwrap_or_else(|| panic!("no reply from {to} to a {} B datagram", payload.len()))
}

/// Next datagram from `from` within the socket's read timeout (others are ignored).
pub(crate) fn recv_from_peer(sock: &UdpSocket, from: SocketAddr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) if src == from => return Some(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// ASCII-only uppercase, the server's transform.
pub(crate) fn upper(b: &[u8]) -> Vec<u8> {
    b.to_ascii_uppercase()
}

/// Whether `[::1]` can be bound here.
pub(crate) fn ipv6_loopback_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

// ---------------------------------------------------------------------------------------------
// In-process fake servers for client tests

/// One datagram seen by a fake server.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) from: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// A UDP server on a background thread whose reply policy is a closure.
pub(crate) struct FakeServer {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    rx: Receiver<Seen>,
    log: Arc<Mutex<Vec<Seen>>>,
}

/// Marker datagram a test sends itself to learn that everything before it was seen.
pub(crate) const MARKER: &[u8] = b"\x00test-marker\x00";

impl FakeServer {
    /// `on_datagram(socket, from, data)` runs for each datagram except [`MARKER`].
    pub(crate) fn start(
        bind: &str,
        mut on_datagram: impl FnMut(&UdpSocket, SocketAddr, &[u8]) + Send + 'static,
    ) -> Self {
        let sock = UdpSocket::bind(bind).expect("fake server bind");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let addr = sock.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let handle = {
            let stop = stop.clone();
            let log = log.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let (n, from) = match sock.recv_from(&mut buf) {
                        Ok(x) => x,
                        Err(_) => continue,
                    };
                    let seen = Seen { at: Instant::now(), from, data: buf[..n].to_vec() };
                    if seen.data != MARKER {
                        log.lock().expect("log lock").push(seen.clone());
                        on_datagram(&sock, from, &buf[..n]);
                    }
                    let _ = tx.send(seen);
                }
            })
        };
        Self { addr, stop, handle: Some(handle), rx, log }
    }

    /// Replies with the ASCII uppercase of each datagram.
    pub(crate) fn upper(bind: &str) -> Self {
        Self::start(bind, |s, from, data| {
            let _ = s.send_to(&upper(data), from);
        })
    }

    /// Never replies.
    pub(crate) fn silent() -> Self {
        Self::start("127.0.0.1:0", |_, _, _| {})
    }

    /// Datagrams seen so far (excluding markers).
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log lock").clone()
    }

    /// Sends a marker from a fresh socket and returns every datagram seen before it: once a
    /// client has exited, this is everything it sent (loopback keeps per-socket order and
    /// the client's datagrams were queued before the marker was sent).
    pub(crate) fn seen_until_marker(&self) -> Vec<Seen> {
        let s = socket_for(self.addr);
        s.send_to(MARKER, self.addr).expect("send marker");
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(seen) if seen.data == MARKER => return self.seen(),
                Ok(_) => continue,
                Err(e) => panic!("fake server never saw the marker: {e:?}"),
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a short-lived `shout` command

/// Outcome of a finished command.
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Run {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub(crate) fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A description for assertion messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "status={} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.elapsed,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }
}

/// Runs `shout ARGS` with `stdin` fed (or `/dev/null`), killing it after `timeout`.
pub(crate) fn run_shout<S: AsRef<OsStr>>(
    args: &[S],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_command(cmd, stdin, timeout)
}

/// Runs `cmd` with `stdin` fed (or `/dev/null`), killing it after `timeout`.
pub(crate) fn run_command(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut guard = ChildGuard::new(cmd.spawn().expect("spawn command"));
    let child = guard.child_mut();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
            // dropping `pipe` closes stdin: EOF for the child
        });
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = guard.wait_timeout(timeout);
    let elapsed = start.elapsed();
    let Some(status) = status else {
        drop(guard); // kill so the readers see EOF
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        panic!(
            "command did not exit within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    let stdout = out_t.join().expect("stdout reader");
    let stderr = err_t.join().expect("stderr reader");
    Run { status, stdout, stderr: String::from_utf8_lossy(&stderr).into_owned(), elapsed }
}

// ---------------------------------------------------------------------------------------------
// Python

/// Whether `python3` runs; prints a SKIPPED note otherwise.
pub(crate) fn python3_or_skip(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED {test}: python3 not found on PATH");
    }
    ok
}

/// Runs `python3 -c SCRIPT ARGS` with a timeout.
pub(crate) fn run_python<S: AsRef<OsStr>>(script: &str, args: &[S], timeout: Duration) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_command(cmd, None, timeout)
}
