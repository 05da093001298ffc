//! Child processes: a guard that always kills (by PID) and reaps, signals, line readers, a
//! long-running [`Proc`] whose output is read line by line, and [`Running`] for a command
//! that is waited for and whose output is collected whole.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::BIN;

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

    /// Sends a signal by name (`TERM`, `INT`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        signal(self.id(), sig);
    }

    /// Whether the child has not exited yet.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child_mut().try_wait(), Ok(None))
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
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL (if still running) and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` (`TERM`, `STOP`, ...) to `pid`, a process this test started, with the shell's
/// `kill` builtin (no unsafe, and no dependency on procps).
pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("sh")
        .args(["-c", r#"kill -s "$0" "$1""#, sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -s {sig} {pid} failed");
}

/// Reads `r` line by line (bytes, lossily decoded, line ends trimmed) into a channel until EOF.
pub(crate) fn spawn_line_reader<R: Read + Send + 'static>(r: R) -> Receiver<String> {
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
pub(crate) fn drain_lines(rx: &Receiver<String>, into: &mut Vec<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        into.push(line);
    }
}

/// Waits up to `timeout` for a line matching `pred`, keeping every line read in `seen`.
pub(crate) fn wait_line(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        seen.push(line.clone());
        if pred(&line) {
            return Some(line);
        }
    }
}

/// What to do with a child's stderr.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stderr {
    /// Read it in a background thread so tests can inspect it.
    Collect,
    /// Keep the pipe open and never read it (a stalled log consumer).
    Unread,
}

/// A long-running child (stdin from /dev/null) whose stdout and stderr are read line by line
/// in the background; killed (by PID) and reaped on drop, together with any extra PIDs it is
/// known to have started.
pub(crate) struct Proc {
    guard: ChildGuard,
    /// Processes the child started that a test learned of; killed on drop.
    pub(crate) extra_pids: Vec<u32>,
    stdout: Receiver<String>,
    stderr: Option<Receiver<String>>,
    stdout_seen: Vec<String>,
    stderr_seen: Vec<String>,
    _unread_stderr: Option<ChildStderr>,
}

impl Proc {
    /// Spawns `cmd` with both outputs read line by line.
    pub(crate) fn spawn(cmd: Command) -> Proc {
        Proc::spawn_with(cmd, Stderr::Collect)
    }

    pub(crate) fn spawn_with(mut cmd: Command, stderr_mode: Stderr) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut guard = ChildGuard::new(child);
        let stdout = spawn_line_reader(guard.child_mut().stdout.take().expect("piped stdout"));
        let stderr = guard.child_mut().stderr.take().expect("piped stderr");
        let (stderr, unread) = match stderr_mode {
            Stderr::Collect => (Some(spawn_line_reader(stderr)), None),
            Stderr::Unread => (None, Some(stderr)),
        };
        Proc {
            guard,
            extra_pids: Vec::new(),
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
            _unread_stderr: unread,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub(crate) fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Waits up to `timeout` for a stdout line matching `pred`.
    pub(crate) fn stdout_line(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        wait_line(&self.stdout, &mut self.stdout_seen, timeout, pred)
    }

    /// Waits up to `timeout` for a stderr line matching `pred`.
    pub(crate) fn stderr_line(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let rx = self.stderr.as_ref().expect("stderr is collected");
        wait_line(rx, &mut self.stderr_seen, timeout, pred)
    }

    /// Stdout lines read so far.
    pub(crate) fn stdout_seen(&self) -> &[String] {
        &self.stdout_seen
    }

    /// Stderr lines read so far.
    pub(crate) fn stderr_seen(&self) -> &[String] {
        &self.stderr_seen
    }

    /// Everything on stderr so far, for failure messages.
    pub(crate) fn stderr_text(&mut self) -> String {
        if let Some(rx) = &self.stderr {
            while let Ok(line) = rx.try_recv() {
                self.stderr_seen.push(line);
            }
        }
        self.stderr_seen.join("\n")
    }

    /// Reads `expected` `listening on ADDR` lines from stdout (within `timeout`, each with a
    /// real port) and returns them with their addresses; panics with the stderr otherwise.
    pub(crate) fn listening(
        &mut self,
        expected: usize,
        timeout: Duration,
    ) -> (Vec<String>, Vec<SocketAddr>) {
        let deadline = Instant::now() + timeout;
        let (mut lines, mut addrs) = (Vec::new(), Vec::new());
        while lines.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.stdout_line(left, |_| true) else {
                thread::sleep(Duration::from_millis(300)); // let the last stderr lines arrive
                panic!(
                    "child printed {} of {expected} `listening on` lines within {timeout:?}; \
                     got {lines:?}; stderr:\n{}",
                    lines.len(),
                    self.stderr_text()
                );
            };
            let rest = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("stdout line is not `listening on ADDR`: {line:?}"));
            let addr: SocketAddr = rest
                .parse()
                .unwrap_or_else(|e| panic!("`listening on` address {rest:?} unparsable: {e}"));
            assert_ne!(addr.port(), 0, "printed port must be the real one: {line:?}");
            addrs.push(addr);
            lines.push(line);
        }
        (lines, addrs)
    }

    pub(crate) fn signal(&self, sig: &str) {
        self.guard.signal(sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.guard.wait_timeout(timeout)
    }

    /// After exit: collects what is left of stderr (until EOF, at most 2 s) and returns all
    /// of it.
    pub(crate) fn drain_stderr(&mut self) -> Vec<String> {
        if let Some(rx) = &self.stderr {
            drain_lines(rx, &mut self.stderr_seen, Duration::from_secs(2));
        }
        self.stderr_seen.clone()
    }

    /// After exit: the stdout lines not read yet (until EOF, at most 2 s).
    pub(crate) fn drain_stdout(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        drain_lines(&self.stdout, &mut rest, Duration::from_secs(2));
        self.stdout_seen.extend(rest.iter().cloned());
        rest
    }

    /// Sends SIGTERM, waits for exit 0, and returns every stderr line (to EOF).
    pub(crate) fn stop(&mut self) -> Vec<String> {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(5)).expect("exit within 5 s of SIGTERM");
        let text = self.stderr_text();
        assert!(status.success(), "exit status {status} after SIGTERM; stderr:\n{text}");
        self.drain_stderr()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        for pid in &self.extra_pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        // `guard` then kills and reaps the child itself.
    }
}

// ---------------------------------------------------------------------------------------------
// Commands that are waited for

/// Outcome of a finished command, output as bytes.
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

    /// As a `std::process::Output`.
    pub(crate) fn into_output(self) -> Output {
        Output { status: self.status, stdout: self.stdout, stderr: self.stderr.into_bytes() }
    }
}

/// A finished command, output as text.
pub(crate) struct Finished {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Its stderr.
    pub(crate) stderr: String,
    /// From spawn to exit.
    pub(crate) elapsed: Duration,
}

impl Finished {
    /// The exit code (`None` if killed by a signal).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl From<Run> for Finished {
    fn from(run: Run) -> Finished {
        let stdout = run.stdout_str();
        Finished { status: run.status, stdout, stderr: run.stderr, elapsed: run.elapsed }
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Reads a pipe to the end on a thread.
fn collect<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// A spawned command whose output is collected whole; killed and reaped on drop.
pub(crate) struct Running {
    guard: ChildGuard,
    started: Instant,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
}

impl Running {
    /// Spawns `cmd` with stdin from /dev/null and both outputs collected.
    pub(crate) fn spawn(cmd: Command) -> Running {
        Running::spawn_with_stdin(cmd, None)
    }

    /// Spawns `cmd` with `stdin` fed (then closed) or from /dev/null.
    pub(crate) fn spawn_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Running {
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut guard = ChildGuard::new(child);
        let child = guard.child_mut();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let input = input.to_vec();
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
                // dropping `pipe` closes stdin: EOF for the child
            });
        }
        let out = collect(child.stdout.take().expect("piped stdout"));
        let err = collect(child.stderr.take().expect("piped stderr"));
        Running { guard, started, out, err }
    }

    /// The child's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// Waits up to `timeout`; panics (after killing it) if it is still running then.
    pub(crate) fn output(self, timeout: Duration) -> Run {
        let Running { mut guard, started, out, err } = self;
        let status = guard.wait_timeout(timeout);
        let elapsed = started.elapsed();
        drop(guard); // kills a child still running, so the readers see EOF
        let stdout = out.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        let Some(status) = status else {
            panic!(
                "command did not exit within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
                String::from_utf8_lossy(&stdout),
            );
        };
        Run { status, stdout, stderr, elapsed }
    }

    /// [`Running::output`] as text.
    pub(crate) fn finish(self, timeout: Duration) -> Finished {
        self.output(timeout).into()
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
pub(crate) fn run_command(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    Running::spawn_with_stdin(cmd, stdin).output(timeout)
}

/// Runs `shout ARGS` and waits for it (at most `timeout`).
pub(crate) fn shout(args: &[&str], timeout: Duration) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    Running::spawn(cmd).finish(timeout)
}
