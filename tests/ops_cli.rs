//! What operators rely on, tested on the real binary over loopback: stats lines on a timer and
//! on SIGUSR1, the `/metrics` endpoint, JSON logs, completions and the manual page, the
//! interactive client on a pseudo-terminal, and systemd socket activation without systemd.
//!
//! Every read has a timeout and every child process is killed by PID and reaped on drop
//! (the `common` harness).

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{parse_kv_as, run_shout, signal, socket_for, Proc, Scratch, BIN, RECV_TIMEOUT};

const START_TIMEOUT: Duration = common::STARTUP_TIMEOUT;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `shout server --bind 127.0.0.1:0 ARGS` and the address it printed.
fn server(args: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["server", "--bind", "127.0.0.1:0"]).args(args);
    common::hermetic(&mut cmd);
    let mut proc = Proc::spawn(cmd);
    let (_, addrs) = proc.listening(1, START_TIMEOUT);
    (proc, addrs[0])
}

/// Sends `payload` from a fresh socket and returns the reply from `to`.
fn request(to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    common::request(&socket_for(to), to, payload)
}

fn kv(line: &str) -> HashMap<String, f64> {
    parse_kv_as(line)
}

// ---------------------------------------------------------------------------------------------
// Stats lines

#[test]
fn stats_interval_prints_lines_whose_counts_follow_the_traffic() {
    let (mut srv, addr) = server(&["--quiet", "--workers", "1", "--stats-interval", "200ms"]);
    let start = Instant::now();
    let is_stats = |l: &str| l.starts_with("stats: ");
    let first = srv.stderr_line(Duration::from_secs(3), is_stats).expect("a first stats line");
    let second = srv.stderr_line(Duration::from_secs(3), is_stats).expect("a second stats line");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "two stats lines at a 200ms interval took {took:?}"
    );
    for line in [&first, &second] {
        let f = kv(line);
        for key in ["received", "answered", "rate_limited", "kernel_drops", "answers_per_sec"] {
            assert!(f.contains_key(key), "no {key}= in {line:?}");
        }
    }

    for (i, n) in [(1, 3u32), (2, 2)] {
        for _ in 0..n {
            assert_eq!(request(addr, b"count me"), b"COUNT ME");
        }
        let want = if i == 1 { 3.0 } else { 5.0 };
        let line = srv
            .stderr_line(Duration::from_secs(2), |l| {
                is_stats(l) && kv(l).get("answered") == Some(&want)
            })
            .unwrap_or_else(|| {
                panic!("no stats line with answered={want}; stderr:\n{}", srv.stderr_text())
            });
        assert_eq!(kv(&line)["received"], want, "{line}");
    }
    let stderr = srv.stop();
    let summary = stderr.iter().find(|l| l.starts_with("summary: ")).expect("a summary line");
    assert_eq!(kv(summary)["answered"], 5.0, "{summary}");
}

#[test]
fn sigusr1_prints_a_stats_line_at_once_and_the_server_goes_on() {
    let (mut srv, addr) = server(&["--quiet", "--workers", "1"]);
    for _ in 0..2 {
        assert_eq!(request(addr, b"x"), b"X");
    }
    assert!(
        srv.stderr_line(Duration::from_millis(300), |l| l.starts_with("stats: ")).is_none(),
        "no stats line without --stats-interval before SIGUSR1"
    );
    let sent = Instant::now();
    srv.signal("USR1");
    let line = srv
        .stderr_line(Duration::from_secs(2), |l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("no stats line after SIGUSR1; stderr:\n{}", srv.stderr_text()));
    let took = sent.elapsed();
    assert!(took < Duration::from_millis(800), "stats line {took:?} after SIGUSR1");
    assert_eq!(kv(&line)["answered"], 2.0, "{line}");
    // SIGUSR1's default action would have ended the process.
    assert_eq!(request(addr, b"still here"), b"STILL HERE");
    // Counters are published just after the reply is sent: a second signal may be needed.
    let mut answered = 0.0;
    for _ in 0..3 {
        srv.signal("USR1");
        let line = srv
            .stderr_line(Duration::from_secs(2), |l| l.starts_with("stats: "))
            .expect("a stats line for each SIGUSR1");
        answered = kv(&line)["answered"];
        if answered == 3.0 {
            break;
        }
    }
    assert_eq!(answered, 3.0, "stats after the third request");
    srv.stop();
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// A raw HTTP/1.0 GET; returns (status code, headers, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, RECV_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response to EOF");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end with a blank line");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

#[test]
fn metrics_endpoint_serves_openmetrics_counters() {
    let (mut srv, addr) = server(&["--quiet", "--workers", "1", "--metrics", "127.0.0.1:0"]);
    let line = srv
        .stderr_line(START_TIMEOUT, |l| l.contains("metrics on http://"))
        .unwrap_or_else(|| panic!("no `metrics on` line; stderr:\n{}", srv.stderr_text()));
    let rest = &line[line.find("http://").expect("a URL") + "http://".len()..];
    let metrics: SocketAddr = rest
        .split_once("/metrics")
        .and_then(|(a, _)| a.parse().ok())
        .unwrap_or_else(|| panic!("no http://ADDR/metrics in {line:?}"));

    for m in [&b"one"[..], b"two", b"three"] {
        assert_eq!(request(addr, m), m.to_ascii_uppercase());
    }
    // A worker publishes its counters after the batch's send returns, so the client can hold
    // its reply a moment before the counter moves: scrape until the third request shows.
    let labels = format!(r#"{{worker="0",addr="{addr}"}}"#);
    let received = format!("shout_received_datagrams_total{labels} 3");
    let deadline = Instant::now() + RECV_TIMEOUT;
    let (status, head, body) = loop {
        let (status, head, body) = http_get(metrics, "/metrics");
        if body.lines().any(|l| l == received) || Instant::now() >= deadline {
            break (status, head, body);
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    for want in [
        received,
        format!("shout_answered_datagrams_total{labels} 3"),
        format!("shout_received_bytes_total{labels} 11"),
        format!(
            r#"shout_dropped_datagrams_total{{worker="0",addr="{addr}",reason="rate_limited"}} 0"#
        ),
        "# TYPE shout_answers_per_second gauge".to_string(),
    ] {
        assert!(body.lines().any(|l| l == want), "no line {want:?} in:\n{body}");
    }
    assert_eq!(body.trim_end().lines().last(), Some("# EOF"), "{body}");

    let (status, _, _) = http_get(metrics, "/other");
    assert_eq!(status, 404);
    srv.stop();
}

// ---------------------------------------------------------------------------------------------
// JSON logs

#[test]
fn json_log_format_writes_only_json_objects_on_stderr() {
    let (mut srv, addr) = server(&[
        "--workers",
        "1",
        "--log-format",
        "json",
        "--stats-interval",
        "200ms",
        "--metrics",
        "127.0.0.1:0",
    ]);
    for i in 0..4 {
        let msg = format!("json {i} \u{1b}[31m\u{ff}");
        assert_eq!(request(addr, msg.as_bytes()), msg.to_ascii_uppercase().as_bytes());
    }
    srv.stderr_line(Duration::from_secs(3), |l| l.contains(r#""answered":4"#))
        .unwrap_or_else(|| panic!("no stats object with answered 4:\n{}", srv.stderr_text()));
    let stderr = srv.stop();
    let objects: Vec<serde_json::Value> = stderr
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "not an object: {l}");
            assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
            v
        })
        .collect();
    let summary = objects
        .iter()
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary object in:\n{}", stderr.join("\n")));
    assert_eq!(summary["message"], "summary");
    assert_eq!(summary["received"], 4, "{summary}");
    assert_eq!(summary["answered"], 4, "{summary}");
    assert_eq!(summary["rate_limited"], 0, "{summary}");
    let stats = objects.iter().find(|v| v["event"] == "stats").expect("a stats object");
    assert!(stats["answers_per_sec"].is_number(), "{stats}");
    assert!(objects.iter().any(|v| v["event"] == "metrics"), "a metrics object");
    // Datagrams shown on stderr are JSON too, with the escape character escaped.
    let shown: Vec<_> = objects.iter().filter(|v| v["event"] == "datagram").collect();
    assert!(!shown.is_empty(), "no datagram objects in:\n{}", stderr.join("\n"));
    for v in shown {
        let msg = v["msg"].as_str().expect("msg is a string");
        assert!(msg.starts_with("json "), "{v}");
        assert!(!msg.contains('\u{1b}'), "raw ESC in a shown datagram: {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// Completions and manual page

fn output_of(args: &[&str]) -> String {
    let out = run_shout(args, None, Duration::from_secs(10));
    assert!(out.status.success(), "shout {args:?}: {}", out.stderr);
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_and_manual_page() {
    let bash = output_of(&["completions", "bash"]);
    assert!(bash.contains("_shout"), "{bash}");
    assert!(bash.contains("--stats-interval"), "server flags are completed");
    let zsh = output_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef shout"), "{}", &zsh[..zsh.len().min(200)]);
    let fish = output_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c shout"), "{}", &fish[..fish.len().min(200)]);

    let man = output_of(&["man"]);
    assert!(man.starts_with(".TH") || man.starts_with(".ie"), "{}", &man[..man.len().min(200)]);
    assert!(man.contains(".TH shout"), "a title header naming shout");
    let bad = run_shout(&["completions", "cmd.exe"], None, Duration::from_secs(10));
    assert_eq!(bad.code(), Some(2), "unknown shell is a usage error");
}

// ---------------------------------------------------------------------------------------------
// The interactive client on a pseudo-terminal

/// Drives `shout client ADDR` on a pty: `:help`, a message, `:quit`. Prints one JSON object:
/// {"status": exit code or null, "output": all terminal output, "error": str or null}.
const PTY_PY: &str = concat!(
    include_str!("common/pty_client.py"),
    r#"
def read_until(token, start, timeout=5.0):
    # True once `token` and then a fresh prompt appear after offset `start`.
    deadline = time.monotonic() + timeout
    while True:
        at = buf.find(token, start)
        if at >= 0 and buf.find(b">>: ", at + len(token)) >= 0:
            return True
        left = deadline - time.monotonic()
        if left <= 0 or not pump(left):
            return False
def reap(timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WEXITSTATUS(st) if os.WIFEXITED(st) else -os.WTERMSIG(st)
        pump(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
error = None
if not read_until(b"", 0):
    error = "no prompt"
else:
    mark = len(buf)
    os.write(fd, b":help\r")
    if not read_until(b"History is kept", mark):
        error = "no help text"
    else:
        mark = len(buf)
        os.write(fd, b"hello pty\r")
        if not read_until(b"HELLO PTY", mark):
            error = "no reply"
        else:
            os.write(fd, b":quit\r")
status = reap()
if status is None and error is None:
    error = "did not exit within 3 s of :quit"
print(json.dumps({"status": status, "error": error, "output": buf.decode("utf-8", "replace")}))
"#
);

/// Runs the pty driver against a real server with HOME and XDG_DATA_HOME in a fresh folder;
/// returns the terminal output and the history file's contents.
fn pty_session(no_color: Option<&str>) -> (String, String, SocketAddr) {
    let (mut srv, addr) = server(&["--quiet", "--workers", "1"]);
    let home = Scratch::new(if no_color.is_some() { "pty-nocolor" } else { "pty-color" });
    let data = home.path().join("data");
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PTY_PY)
        .arg(BIN)
        .arg(addr.to_string())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", &data)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let mut driver = Proc::spawn(cmd);
    let line = driver.stdout_line(Duration::from_secs(20), |l| l.starts_with('{'));
    let status = driver.wait(Duration::from_secs(5));
    let line =
        line.unwrap_or_else(|| panic!("pty driver printed nothing:\n{}", driver.stderr_text()));
    assert!(status.is_some_and(|s| s.success()), "pty driver: {}", driver.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&line).expect("pty driver prints JSON");
    let output = v["output"].as_str().unwrap_or_default().to_string();
    assert!(v["error"].is_null(), "pty session: {}; terminal output:\n{output:?}", v["error"]);
    assert_eq!(v["status"].as_i64(), Some(0), ":quit exits 0; output:\n{output:?}");
    let history = std::fs::read_to_string(data.join("shout").join("history"))
        .unwrap_or_else(|e| panic!("no history file under XDG_DATA_HOME/shout ({e})"));
    srv.stop();
    (output, history, addr)
}

#[test]
fn interactive_session_on_a_terminal_help_reply_quit_history_and_colour() {
    if !common::python3_or_skip("interactive pty session") {
        return;
    }
    let (output, history, addr) = pty_session(None);
    assert!(output.contains(">>: "), "prompt: {output:?}");
    assert!(output.contains(":quit"), "help lists :quit: {output:?}");
    assert!(output.contains("HELLO PTY"), "reply: {output:?}");
    assert!(output.contains(&format!("(from {addr} in ")), "reply details: {output:?}");
    // On a terminal, without NO_COLOR, the details are dimmed.
    assert!(output.contains("\x1b[2m  (from ") || output.contains("\x1b[2m(from "), "{output:?}");
    assert!(history.lines().any(|l| l == "hello pty"), "history file: {history:?}");
}

#[test]
fn interactive_session_with_no_color_has_no_escape_sequences_in_replies() {
    if !common::python3_or_skip("interactive pty session") {
        return;
    }
    let (output, history, addr) = pty_session(Some("1"));
    let reply = &output[output.find("HELLO PTY").expect("a reply")..];
    let reply = &reply[..reply.find('\n').unwrap_or(reply.len())];
    assert!(reply.contains(&format!("(from {addr} in ")), "reply details: {output:?}");
    assert!(!reply.contains("\x1b[2m"), "NO_COLOR: no dim in {reply:?}");
    // The line editor itself may move the cursor; the colours are what NO_COLOR forbids.
    for sgr in ["\x1b[2m", "\x1b[31m", "\x1b[0m"] {
        assert!(!output.contains(sgr), "NO_COLOR: {sgr:?} in output {output:?}");
    }
    assert!(history.lines().any(|l| l == "hello pty"), "history file: {history:?}");
}

// ---------------------------------------------------------------------------------------------
// systemd socket activation, without systemd

/// Binds COUNT UDP sockets on one loopback port (SO_REUSEPORT when several), forks; the child
/// moves them to fds 3.., sets LISTEN_FDS, LISTEN_PID (its own pid, or its parent's to test
/// the mismatch) and NOTIFY_SOCKET, and execs `shout server --quiet ARGS...`. The parent prints
/// {"child": pid, "port": port}, then {"notify": first message or null}, then {"exit": code}
/// once the child exits (the test signals it).
const ACTIVATE_PY: &str = r#"
import fcntl, json, os, socket, sys
binary, tmp, count, pid_mode, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
notify_path = os.path.join(tmp, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
socks, port = [], 0
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if count > 1:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    port = s.getsockname()[1]
    socks.append(s)
pid = os.fork()
if pid == 0:
    try:
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in socks]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i, inheritable=True)
            os.close(fd)
        listen_pid = os.getpid() if pid_mode == "self" else os.getppid()
        env = dict(os.environ, LISTEN_FDS=str(count), LISTEN_PID=str(listen_pid),
                   NOTIFY_SOCKET=notify_path)
        os.execve(binary, [binary, "server", "--quiet"] + extra, env)
    finally:
        os._exit(127)
for s in socks:
    s.close()
print(json.dumps({"child": pid, "port": port}), flush=True)
notify.settimeout(10)
try:
    msg = notify.recv(4096).decode()
except socket.timeout:
    msg = None
print(json.dumps({"notify": msg}), flush=True)
_, status = os.waitpid(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)
"#;

struct Activated {
    driver: Proc,
    child: u32,
    port: u16,
    listening: Vec<SocketAddr>,
    notify: Option<String>,
    _dir: Scratch,
}

fn activate(name: &str, count: usize, pid_mode: &str, extra: &[&str]) -> Activated {
    let dir = Scratch::new(name);
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(ACTIVATE_PY)
        .arg(BIN)
        .arg(dir.path())
        .arg(count.to_string())
        .arg(pid_mode)
        .args(extra)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("NOTIFY_SOCKET");
    let mut driver = Proc::spawn(cmd);
    // shout's `listening on` lines and the helper's JSON lines share one pipe: any order.
    let (mut child, mut port) = (None, 0);
    let mut listening = Vec::new();
    let mut notify = None;
    let deadline = Instant::now() + START_TIMEOUT;
    while child.is_none() || listening.len() < count || notify.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = driver.stdout_line(left, |_| true) else {
            let stderr = driver.stderr_text();
            panic!(
                "waiting for the child, {count} `listening on` lines and the notify line, \
                 got {:?}; stderr:\n{stderr}",
                driver.stdout_seen()
            );
        };
        if let Some(addr) = line.strip_prefix("listening on ") {
            listening.push(addr.parse().expect("an address"));
        } else if line.starts_with(r#"{"child""#) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            let pid = v["child"].as_u64().expect("child pid") as u32;
            driver.extra_pids.push(pid);
            child = Some(pid);
            port = v["port"].as_u64().expect("port") as u16;
        } else if line.starts_with(r#"{"notify""#) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            notify = Some(v["notify"].as_str().map(str::to_string));
        }
    }
    let child = child.expect("the loop ends with a child");
    Activated { driver, child, port, listening, notify: notify.flatten(), _dir: dir }
}

impl Activated {
    /// SIGTERM to shout; its exit code (as seen by the helper) and its stderr.
    fn stop(&mut self) -> (i64, String) {
        signal(self.child, "TERM");
        let line = self
            .driver
            .stdout_line(Duration::from_secs(5), |l| l.starts_with(r#"{"exit""#))
            .unwrap_or_else(|| panic!("shout did not exit: {}", self.driver.stderr_text()));
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        self.driver.wait(Duration::from_secs(5)).expect("helper exits");
        (v["exit"].as_i64().expect("exit code"), self.driver.stderr_text())
    }
}

#[test]
fn socket_activation_serves_the_inherited_socket_and_notifies_ready() {
    if !common::python3_or_skip("socket activation") {
        return;
    }
    let mut a = activate("activation", 1, "self", &[]);
    let want: SocketAddr = ([127, 0, 0, 1], a.port).into();
    assert_eq!(a.listening, vec![want], "serves the pre-bound socket, not --bind's default");
    let notify = a.notify.clone().expect("a message on NOTIFY_SOCKET within 10 s");
    assert!(notify.lines().any(|l| l == "READY=1"), "notify message {notify:?}");
    assert_eq!(request(want, b"activated"), b"ACTIVATED");
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "stderr:\n{stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("summary: ")).expect("a summary");
    assert_eq!(kv(summary)["answered"], 1.0, "{summary}");
}

#[test]
fn socket_activation_runs_one_worker_per_inherited_socket() {
    if !common::python3_or_skip("socket activation") {
        return;
    }
    // Three sockets on one port, as systemd opens for three identical ListenDatagram= lines
    // with ReusePort=yes.
    let mut a = activate("activation3", 3, "self", &["--workers", "8"]);
    let want: SocketAddr = ([127, 0, 0, 1], a.port).into();
    assert_eq!(a.listening, vec![want; 3], "one `listening on` line per inherited socket");
    assert!(a.notify.as_deref().is_some_and(|m| m.contains("READY=1")), "{:?}", a.notify);
    // Many source ports, so the kernel's reuseport hash reaches every socket.
    for i in 0..30 {
        let msg = format!("flow {i}");
        assert_eq!(request(want, msg.as_bytes()), msg.to_uppercase().as_bytes());
    }
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "stderr:\n{stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("summary: ")).expect("a summary");
    assert_eq!(kv(summary)["answered"], 30.0, "{summary}");
}

#[test]
fn socket_activation_ignores_sockets_meant_for_another_process() {
    if !common::python3_or_skip("socket activation") {
        return;
    }
    // LISTEN_PID names the helper, not shout: the fds are not shout's (sd_listen_fds(3)).
    let mut a = activate("activation-pid", 1, "parent", &["--bind", "127.0.0.1:0"]);
    assert_eq!(a.listening.len(), 1);
    let bound = a.listening[0];
    assert_ne!(bound.port(), a.port, "must bind --bind, not take the inherited socket");
    assert_eq!(request(bound, b"own socket"), b"OWN SOCKET");
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "stderr:\n{stderr}");
}
