//! `shout client` driven as a child process against in-process fake servers on loopback.

use crate::common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Generous bound for a client run that should finish well before it.
const RUN_TIMEOUT: Duration = Duration::from_secs(10);

fn client(addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["client".to_string(), addr.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn data_of(seen: &[Seen]) -> Vec<Vec<u8>> {
    seen.iter().map(|s| s.data.clone()).collect()
}

#[test]
fn each_message_argument_is_one_datagram_and_one_line() {
    let server = FakeServer::upper("127.0.0.1:0");
    let run = run_shout(&client(server.addr, &["hello", "world"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO\nWORLD\n", "{}", run.describe());
    assert_eq!(data_of(&server.seen_until_marker()), vec![b"hello".to_vec(), b"world".to_vec()]);
}

#[test]
fn stdin_lines_are_stripped_and_empty_ones_skipped() {
    let server = FakeServer::upper("127.0.0.1:0");
    let input = b"  hello \n\n   \n\tworld\t\r\nlast";
    let run = run_shout(&client(server.addr, &[]), Some(input), RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO\nWORLD\nLAST\n", "{}", run.describe());
    assert!(!run.stdout_str().contains(">>:"), "no prompt when stdin is not a terminal");
    assert_eq!(
        data_of(&server.seen_until_marker()),
        vec![b"hello".to_vec(), b"world".to_vec(), b"last".to_vec()]
    );
}

#[test]
fn raw_lines_sends_lines_verbatim_including_empty_ones() {
    let server = FakeServer::upper("127.0.0.1:0");
    let input = b" a b \n\nc\n";
    let run = run_shout(&client(server.addr, &["--raw-lines"]), Some(input), RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), " A B \n\nC\n", "{}", run.describe());
    assert_eq!(
        data_of(&server.seen_until_marker()),
        vec![b" a b ".to_vec(), b"".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn ipv6_server_address() {
    if !ipv6_loopback_available() {
        eprintln!("SKIPPED: [::1] not available");
        return;
    }
    let server = FakeServer::upper("[::1]:0");
    let run = run_shout(&client(server.addr, &["six"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "SIX\n");
}

#[test]
fn non_ascii_utf8_reply_printed_as_text() {
    // The expected reply is the ASCII uppercase: é stays é.
    let server = FakeServer::upper("127.0.0.1:0");
    let run = run_shout(&client(server.addr, &["héllo"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HéLLO\n", "{}", run.describe());
}

fn replies_ff_abc() -> FakeServer {
    FakeServer::start("127.0.0.1:0", |s, from, _| {
        let _ = s.send_to(b"\xffabc", from);
    })
}

#[test]
fn invalid_utf8_reply_is_escaped() {
    let server = replies_ff_abc();
    let run = run_shout(&client(server.addr, &["--expect", "any", "x"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout, b"\\xffabc\n".to_vec(), "{}", run.describe());
}

#[test]
fn raw_writes_reply_bytes_unchanged() {
    let server = replies_ff_abc();
    let run =
        run_shout(&client(server.addr, &["--expect", "any", "--raw", "x"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout, b"\xffabc\n".to_vec(), "{}", run.describe());
}

#[test]
fn expect_echo_accepts_an_echo_server() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        let _ = s.send_to(data, from);
    });
    let run = run_shout(&client(server.addr, &["--expect", "echo", "hello"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "hello\n");
}

#[test]
fn expect_upper_discards_an_echo_reply() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        let _ = s.send_to(data, from);
    });
    let run = run_shout(
        &client(
            server.addr,
            &["--expect", "upper", "--timeout", "100ms", "--retries", "0", "hello"],
        ),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "{}", run.describe());
    assert!(run.stderr.contains("discarded"), "{}", run.describe());
}

#[test]
fn wrong_datagram_before_the_reply_is_discarded() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        let _ = s.send_to(b"bogus", from);
        let _ = s.send_to(&upper(data), from);
    });
    let run = run_shout(&client(server.addr, &["hello"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO\n", "{}", run.describe());
    assert!(run.stderr.contains("discarded"), "{}", run.describe());
}

#[test]
fn late_reply_to_an_earlier_request_is_discarded() {
    // First copy of "one": no reply. Its retransmission: "ONE". Then, while "two" is
    // outstanding, a late second "ONE" arrives before "TWO".
    let mut ones = 0;
    let server = FakeServer::start("127.0.0.1:0", move |s, from, data| match data {
        b"one" => {
            ones += 1;
            if ones >= 2 {
                let _ = s.send_to(b"ONE", from);
            }
        }
        b"two" => {
            let _ = s.send_to(b"ONE", from);
            let _ = s.send_to(b"TWO", from);
        }
        _ => {}
    });
    let run = run_shout(
        &client(server.addr, &["--timeout", "100ms", "--retries", "2", "one", "two"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "ONE\nTWO\n", "{}", run.describe());
    assert!(run.stderr.contains("discarded"), "{}", run.describe());
}

#[test]
fn replies_from_another_address_are_never_accepted() {
    // The real server stays silent; an impostor socket sends the right text to the
    // client's address. A connected client never sees it.
    let impostor = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = FakeServer::start("127.0.0.1:0", move |_, from, data| {
        let _ = impostor.send_to(&upper(data), from);
    });
    let run = run_shout(
        &client(server.addr, &["--timeout", "100ms", "--retries", "1", "hello"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.stdout_str(), "", "{}", run.describe());
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(run.stderr.contains("no reply"), "{}", run.describe());
}

#[test]
fn silent_server_gets_three_attempts_with_doubling_waits() {
    let server = FakeServer::silent();
    let run = run_shout(
        &client(server.addr, &["--timeout", "100ms", "--retries", "2", "anyone?"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "{}", run.describe());
    assert!(run.stderr.contains("no reply"), "{}", run.describe());
    assert!(
        run.elapsed >= Duration::from_millis(650) && run.elapsed < Duration::from_secs(3),
        "100+200+400 ms expected, took {:?}",
        run.elapsed
    );
    let seen = server.seen_until_marker();
    assert_eq!(data_of(&seen), vec![b"anyone?".to_vec(); 3], "1 + retries copies");
    let gap1 = seen[1].at - seen[0].at;
    let gap2 = seen[2].at - seen[1].at;
    assert!(
        gap1 >= Duration::from_millis(90) && gap2 >= Duration::from_millis(180),
        "waits must be ~100 then ~200 ms: {gap1:?}, {gap2:?}"
    );
}

#[test]
fn default_retries_is_two() {
    let server = FakeServer::silent();
    let run = run_shout(&client(server.addr, &["--timeout", "50ms", "count"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(server.seen_until_marker().len(), 3, "{}", run.describe());
    assert!(
        run.elapsed >= Duration::from_millis(340),
        "50+100+200 ms expected, took {:?}",
        run.elapsed
    );
}

#[test]
fn default_timeout_is_one_second() {
    let server = FakeServer::silent();
    let run = run_shout(&client(server.addr, &["--retries", "0", "wait"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.elapsed >= Duration::from_millis(950) && run.elapsed < Duration::from_millis(1900),
        "default timeout must be 1 s: {:?}",
        run.elapsed
    );
}

#[test]
fn zero_retries_sends_once() {
    let server = FakeServer::silent();
    let run = run_shout(
        &client(server.addr, &["--timeout", "100ms", "--retries", "0", "once"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(server.seen_until_marker().len(), 1);
    assert!(run.elapsed < Duration::from_secs(1), "{:?}", run.elapsed);
}

#[test]
fn timeout_accepts_fractional_seconds_and_bare_numbers() {
    let server = FakeServer::silent();
    let run = run_shout(
        &client(server.addr, &["--timeout", "0.3s", "--retries", "0", "x"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.elapsed >= Duration::from_millis(280) && run.elapsed < Duration::from_millis(1000),
        "0.3s: {:?}",
        run.elapsed
    );

    let run = run_shout(
        &client(server.addr, &["--timeout", "1", "--retries", "0", "y"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.elapsed >= Duration::from_millis(950) && run.elapsed < Duration::from_millis(1900),
        "bare 1 = one second: {:?}",
        run.elapsed
    );
}

#[test]
fn some_unanswered_exits_one_and_prints_the_answered() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        if data == b"a" {
            let _ = s.send_to(b"A", from);
        }
    });
    let run = run_shout(
        &client(server.addr, &["--timeout", "100ms", "--retries", "0", "a", "b"]),
        None,
        RUN_TIMEOUT,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "A\n", "{}", run.describe());
    assert!(run.stderr.contains("no reply"), "{}", run.describe());
}

#[test]
fn no_server_listening_fails_fast() {
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    // default 1 s timeout: the port-unreachable error must cut it short
    let run = run_shout(&client(closed, &["hello"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(run.stderr.contains("no server at"), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "{}", run.describe());
    assert!(
        run.elapsed < Duration::from_millis(500),
        "closed port must be reported fast, took {:?}",
        run.elapsed
    );
}

#[test]
fn message_over_ipv4_limit_is_refused() {
    let server = FakeServer::upper("127.0.0.1:0");
    let big = "a".repeat(MAX_V4_PAYLOAD + 1);
    let run = run_shout(&client(server.addr, &[big.as_str()]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(run.stderr.contains("65507"), "{}", run.describe());
    assert_eq!(run.stdout_str(), "");
    assert!(server.seen_until_marker().is_empty(), "nothing may be sent");
}

#[test]
fn message_at_ipv4_limit_is_sent_and_answered() {
    let server = FakeServer::upper("127.0.0.1:0");
    let big = "q".repeat(MAX_V4_PAYLOAD);
    let run = run_shout(&client(server.addr, &[big.as_str()]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", &run.stderr);
    assert_eq!(run.stdout.len(), MAX_V4_PAYLOAD + 1);
    assert!(run.stdout == format!("{}\n", "Q".repeat(MAX_V4_PAYLOAD)).into_bytes());
}

#[test]
fn message_over_1232_bytes_warns_about_fragmentation() {
    let server = FakeServer::upper("127.0.0.1:0");
    let big = "f".repeat(1233);
    let run = run_shout(&client(server.addr, &[big.as_str()]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stderr.contains("fragment"), "{}", run.stderr);
    assert_eq!(run.stdout_str(), format!("{}\n", "F".repeat(1233)));

    let ok = "f".repeat(1232);
    let run = run_shout(&client(server.addr, &[ok.as_str()]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(!run.stderr.contains("fragment"), "1232 B must not warn: {}", run.stderr);
}

/// With the don't-fragment bit the message cannot travel as fragments: no warning that it may.
#[test]
fn dont_fragment_does_not_warn_about_fragmentation() {
    let server = FakeServer::upper("127.0.0.1:0");
    let big = "f".repeat(1300);
    let run = run_shout(&client(server.addr, &["--dont-fragment", &big]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(!run.stderr.contains("fragment"), "--dont-fragment must not warn: {}", run.stderr);
    assert_eq!(run.stdout_str(), format!("{}\n", "F".repeat(1300)));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let server = FakeServer::upper("127.0.0.1:0");
    for bad in [
        &["--timeout", "soon", "x"][..],
        &["--retries", "many", "x"][..],
        &["--expect", "lower", "x"][..],
    ] {
        let run = run_shout(&client(server.addr, bad), None, RUN_TIMEOUT);
        assert_eq!(run.code(), Some(2), "{bad:?}: {}", run.describe());
    }
    assert!(server.seen_until_marker().is_empty());
}

/// Drives `shout client ADDR` on a pty: waits for the prompt, types `hello` + Enter, waits
/// for the reply line and the next prompt, then sends the final key (`\x04` or `\x03`). Prints JSON
/// {"status": exit code or null, "signal": n or null, "output": str, "error": str or null}.
const PTY_PY: &str = concat!(
    include_str!("common/pty_client.py"),
    r#"
final_key = sys.argv[3].encode().decode("unicode_escape").encode()
def found(token, after_prompt):
    if not after_prompt:
        return token in buf
    at = buf.find(token)
    return at >= 0 and b">>: " in buf[at:]
def read_until(token, timeout=5.0, after_prompt=False):
    deadline = time.monotonic() + timeout
    while not found(token, after_prompt):
        left = deadline - time.monotonic()
        if left <= 0 or not pump(left):
            return found(token, after_prompt)
    return True
def finish(status, sig, error):
    print(json.dumps({"status": status, "signal": sig, "error": error,
                      "output": buf.decode("utf-8", "replace")}))
    sys.exit(0)
def reap(timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFEXITED(st):
                return os.WEXITSTATUS(st), None
            return None, os.WTERMSIG(st)
        pump(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None, None
error = None
if not read_until(b">>: "):
    error = "no prompt"
else:
    os.write(fd, b"hello\r")
    if not read_until(b" ms)"):
        error = "no reply line"
    elif not read_until(b" ms)", after_prompt=True):
        error = "no prompt after the reply"
    else:
        # The next prompt is up, so the line editor is reading again: a key sent any
        # earlier would reach the terminal in cooked mode, where ^D is not a key.
        os.write(fd, final_key)
status, sig = reap()
if status is None and sig is None and error is None:
    error = "did not exit within 3 s of the final key"
finish(status, sig, error)
"#
);

fn pty_session(final_key: &str, want_status: i64) {
    if !python3_or_skip("pty session") {
        return;
    }
    let server = FakeServer::upper("127.0.0.1:0");
    let run =
        run_python(PTY_PY, &[BIN, &server.addr.to_string(), final_key], Duration::from_secs(15));
    assert!(run.status.success(), "pty driver failed: {}", run.describe());
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("pty driver prints JSON");
    // Compare what a person sees: colours and cursor moves removed.
    let output = strip_csi(v["output"].as_str().unwrap_or_default());
    assert!(v["error"].is_null(), "pty session: {}; terminal output:\n{output}", v["error"]);
    assert!(output.contains(">>: "), "no prompt in:\n{output}");
    let want = format!("HELLO  (from {} in ", server.addr);
    let at = output.find(&want).unwrap_or_else(|| panic!("no {want:?} in:\n{output}"));
    let rest = &output[at + want.len()..];
    let ms = rest
        .split_once(" ms)")
        .map(|(n, _)| n)
        .unwrap_or_else(|| panic!("no ` ms)` after the address in:\n{output}"));
    let ms: f64 =
        ms.parse().unwrap_or_else(|_| panic!("round trip {ms:?} not a number in:\n{output}"));
    assert!((0.0..5000.0).contains(&ms), "implausible round trip {ms} ms");
    assert_eq!(
        v["status"].as_i64(),
        Some(want_status),
        "exit after {final_key:?} must be status {want_status} (signal: {}); output:\n{output}",
        v["signal"]
    );
    assert_eq!(data_of(&server.seen_until_marker()), vec![b"hello".to_vec()]);
}

#[test]
fn terminal_session_prompts_shows_address_and_rtt_and_exits_on_ctrl_d() {
    pty_session("\\x04", 0);
}

/// Issue 15, item 6: Ctrl-C at the prompt exits 130, as Ctrl-C does in the other modes
/// (`interrupt_during_a_wait_exits_130_at_once`); Ctrl-D is the clean way out.
#[test]
fn terminal_session_exits_130_on_ctrl_c() {
    pty_session("\\x03", 130);
}

/// Drives `shout client ADDR` on a pty against a silent server: waits for the prompt, types
/// `hello` + Enter, and while the client waits for the reply (the terminal back in cooked
/// mode, so ^C is SIGINT) types Ctrl-C. Prints JSON {"status", "signal", "error", "after"}.
const PTY_WAIT_PY: &str = concat!(
    include_str!("common/pty_client.py"),
    r#"
def read_until(token, timeout=5.0):
    deadline = time.monotonic() + timeout
    while token not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not pump(left):
            return token in buf
    return True
error, status, sig, after = None, None, None, None
if not read_until(b">>: "):
    error = "no prompt"
else:
    os.write(fd, b"hello\r")
    # The line is sent once the prompt is gone from the editor; then the client waits.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pump(0.05)
    os.write(fd, b"\x03")
    sent = time.monotonic()
    deadline = sent + 3.0
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            after = time.monotonic() - sent
            if os.WIFEXITED(st):
                status = os.WEXITSTATUS(st)
            else:
                sig = os.WTERMSIG(st)
            break
        pump(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        error = "did not exit within 3 s of Ctrl-C"
print(json.dumps({"status": status, "signal": sig, "error": error, "after": after,
                  "output": buf.decode("utf-8", "replace")}))
"#
);

/// Issue 15, item 6: Ctrl-C while the prompt waits for a reply ends the wait at once and
/// exits 130, as at the prompt and in the other modes.
#[test]
fn terminal_session_ctrl_c_during_a_wait_exits_130_at_once() {
    if !python3_or_skip("pty wait") {
        return;
    }
    let server = FakeServer::silent();
    let addr = server.addr.to_string();
    let run = run_python(PTY_WAIT_PY, &[BIN, &addr], Duration::from_secs(15));
    assert!(run.status.success(), "pty driver failed: {}", run.describe());
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("pty driver prints JSON");
    let output = strip_csi(v["output"].as_str().unwrap_or_default());
    assert!(v["error"].is_null(), "{}; terminal output:\n{output}", v["error"]);
    assert_eq!(v["status"].as_i64(), Some(130), "signal {}; output:\n{output}", v["signal"]);
    let after = v["after"].as_f64().unwrap();
    assert!(after < 1.0, "exited {after} s after Ctrl-C; output:\n{output}");
    assert_eq!(data_of(&server.seen_until_marker()), vec![b"hello".to_vec()], "it was waiting");
}

/// Issue 15, item 6: the total time of a client is bounded: `--retries` has a range.
#[test]
fn retries_out_of_range_are_usage_errors() {
    let server = FakeServer::silent();
    for retries in ["1000000", "11"] {
        let run = run_shout(&client(server.addr, &["--retries", retries, "x"]), None, RUN_TIMEOUT);
        assert_eq!(run.code(), Some(2), "--retries {retries}: {}", run.describe());
        assert!(run.stderr.contains("--retries"), "{}", run.describe());
    }
    assert!(server.seen_until_marker().is_empty(), "nothing is sent");
}

/// Issue 15, item 6: SIGINT ends a one-shot client waiting on a silent server, and a pipe
/// client waiting for its next stdin line, at once with the documented code 130.
#[test]
fn interrupt_during_a_wait_exits_130_at_once() {
    use std::process::{Command, Stdio};
    let server = FakeServer::silent();
    let one_shot = client(server.addr, &["--timeout", "10s", "hello"]);
    let mut cmd = Command::new(BIN);
    cmd.args(&one_shot);
    let running = Running::spawn(cmd);
    // Once the datagram has arrived the client is waiting for its reply.
    let deadline = std::time::Instant::now() + RECV_TIMEOUT;
    while server.seen().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the client sent nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = std::time::Instant::now();
    signal(running.pid(), "INT");
    let run = running.output(RUN_TIMEOUT);
    assert_eq!(run.code(), Some(130), "{}", run.describe());
    assert!(sent.elapsed() < Duration::from_secs(1), "took {:?}", sent.elapsed());

    // A pipe whose writer stays open: once the first line is answered, the client waits in
    // a read of stdin.
    use std::io::{BufRead, Write};
    let upper = FakeServer::upper("127.0.0.1:0");
    let mut child = ChildGuard::new(
        Command::new(BIN)
            .args(client(upper.addr, &[]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.child_mut().stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    let mut stdout = std::io::BufReader::new(child.child_mut().stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "HELLO\n");
    let sent = std::time::Instant::now();
    child.signal("INT");
    let status = child.wait_timeout(RUN_TIMEOUT).expect("the pipe client exits on SIGINT");
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(sent.elapsed() < Duration::from_secs(1), "took {:?}", sent.elapsed());
}

/// Removes ANSI CSI sequences (`ESC [` parameters, final byte `@`..`~`) from terminal output.
fn strip_csi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A UDP port that was free a moment ago (for programs that cannot report the port they
/// took, such as socat).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Reads what is left of a spawned client's stdout and stderr while waiting for it to exit
/// (killed after `timeout`).
fn finish(mut child: ChildGuard, timeout: Duration) -> Run {
    use std::io::Read;
    let started = std::time::Instant::now();
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut v);
            }
            v
        })
    };
    let out = read(child.child_mut().stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = read(child.child_mut().stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = child.wait_timeout(timeout);
    drop(child); // kills it if still running, so the readers see EOF
    let stdout = out.join().unwrap();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    let status = status.unwrap_or_else(|| panic!("client did not exit in {timeout:?}: {stderr}"));
    Run { status, stdout, stderr, elapsed: started.elapsed() }
}

fn assert_named_echo_server_at_once(run: &Run) {
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "an echo is never shown as the answer: {}", run.describe());
    assert!(run.stderr.contains("looks like an echo server"), "{}", run.describe());
    assert!(run.stderr.contains("--expect echo"), "{}", run.describe());
    // The default waits (1 s, 2 s, 4 s) would take 7 s; the first echo is enough.
    assert!(run.elapsed < Duration::from_millis(900), "took {:?}", run.elapsed);
}

/// Issue 10, item 5: against `shout server --mode echo` the client says at once what the
/// server is, instead of three silent attempts over 7 s.
#[test]
fn echo_server_is_named_at_once() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--mode", "echo", "--quiet"]);
    let run = run_shout(&client(server.addr(), &["hello", "world"]), None, RUN_TIMEOUT);
    assert_named_echo_server_at_once(&run);
    assert_eq!(run.stderr.matches("error:").count(), 1, "stops at the first: {}", run.describe());
    // A message with no lowercase letter is its own uppercase: answered as always.
    let run = run_shout(&client(server.addr(), &["HELLO 42"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO 42\n");
    let run = run_shout(&client(server.addr(), &["--expect", "echo", "hello"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "hello\n");
}

/// Issue 15, item 5: the mirror image. `--expect echo` against `shout server` (uppercasing)
/// names the mismatch at once instead of three silent attempts over 7 s and `no reply`.
#[test]
fn uppercasing_server_is_named_at_once_when_an_echo_is_expected() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let args = ["--expect", "echo", "hello", "world"];
    let run = run_shout(&client(server.addr(), &args), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "an uppercased copy is not an echo: {}", run.describe());
    assert!(run.stderr.contains("looks like an uppercasing server"), "{}", run.describe());
    assert!(run.stderr.contains("--expect upper"), "{}", run.describe());
    assert_eq!(run.stderr.matches("error:").count(), 1, "stops at the first: {}", run.describe());
    assert!(run.elapsed < Duration::from_secs(1), "took {:?}", run.elapsed);
    // A message with no lowercase letter is its own uppercase: answered as an echo.
    let run = run_shout(&client(server.addr(), &["--expect", "echo", "HI 42"]), None, RUN_TIMEOUT);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HI 42\n");
}

/// The same against a plain echo server, `socat UDP-LISTEN:P,fork PIPE`, when installed.
#[test]
fn socat_echo_server_is_named_at_once() {
    let port = free_udp_port();
    let socat = match std::process::Command::new("socat")
        .arg(format!("UDP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg("PIPE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => ChildGuard::new(child),
        Err(_) => {
            eprintln!("SKIPPED: socat not installed");
            return;
        }
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // socat binds a moment after it starts: ask until it answers, boundedly.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let probe = &["--expect", "any", "--timeout", "50ms", "--retries", "0", "READY"];
    while run_shout(&client(addr, probe), None, RUN_TIMEOUT).code() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "socat never answered on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = run_shout(&client(addr, &["hello"]), None, RUN_TIMEOUT);
    assert_named_echo_server_at_once(&run);
    drop(socat);
}

/// `shout client ADDR` reading its lines from a pipe, with stdout and stderr piped too.
fn piped_client(addr: std::net::SocketAddr) -> ChildGuard {
    use std::process::{Command, Stdio};
    ChildGuard::new(
        Command::new(BIN)
            .args(client(addr, &[]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Issue 10, item 4b: a 200 MB line is reported as too large for one datagram, exit 2
/// (as a MESSAGE argument too large), without being held in memory whole; the lines
/// around it are still answered.
#[test]
fn a_200_mb_line_is_too_large_and_exits_2() {
    use std::io::Write;
    let server = FakeServer::upper("127.0.0.1:0");
    let mut child = piped_client(server.addr);
    let mut stdin = child.child_mut().stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'z'; 1 << 20];
        stdin.write_all(b"before\n")?;
        for _ in 0..200 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\nafter\n")
    });
    let run = finish(child, Duration::from_secs(60));
    writer.join().unwrap().expect("the client reads all of its input");
    let stderr = &run.stderr;
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert_eq!(run.stdout_str(), "BEFORE\nAFTER\n", "{}", run.describe());
    assert!(stderr.contains("line 2 is too large for one datagram"), "{stderr}");
    assert!(stderr.contains("65507"), "{stderr}");
    let sent = data_of(&server.seen_until_marker());
    assert_eq!(
        sent,
        vec![b"before".to_vec(), b"after".to_vec()],
        "nothing of the big line is sent"
    );
}

/// Issue 10, item 4b: stdout closed early (`| head -1`) ends the client quietly with
/// success, as ripgrep does.
#[test]
fn stdout_closed_early_ends_quietly_with_success() {
    use std::io::{BufRead, BufReader, Write};
    let server = FakeServer::upper("127.0.0.1:0");
    let mut child = piped_client(server.addr);
    let mut stdin = child.child_mut().stdin.take().unwrap();
    let stdout = child.child_mut().stdout.take().unwrap();
    // More lines than a pipe buffer holds replies for, so a write must meet the closed end.
    let writer = std::thread::spawn(move || {
        for i in 0..20_000 {
            if writeln!(stdin, "line {i} {}", "x".repeat(64)).is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert!(first.starts_with("LINE 0 "), "{first:?}");
    // The reader is gone, as `head -1` would be.
    let run = finish(child, Duration::from_secs(30));
    writer.join().unwrap();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "a closed stdout is not an error");
}

/// Issue 10, item 4b: binary garbage on stdin (NULs, invalid UTF-8, CRs, escapes) goes out
/// byte for byte, one datagram per line, and comes back uppercased, nothing lost.
#[test]
fn binary_garbage_on_stdin_is_sent_and_answered_byte_for_byte() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut input: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    input.push(b'\n');
    let server = FakeServer::upper("127.0.0.1:0");
    let run = run_shout(
        &client(server.addr, &["--raw-lines", "--raw"]),
        Some(&input),
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout == upper(&input), "the replies are the input uppercased, line by line");
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(server.seen_until_marker().len(), lines, "one datagram per line");
}

/// Issue 10, item 4b: durations that are absurd get a message naming the problem, exit 2.
#[test]
fn absurd_durations_are_usage_errors() {
    let server = FakeServer::upper("127.0.0.1:0");
    for (timeout, expected) in [
        ("1e99s", "out of range"),
        ("-1s", "negative"),
        ("0", "use 1ms to 1h"),
        ("2h", "use 1ms to 1h"),
    ] {
        let flag = format!("--timeout={timeout}");
        let run = run_shout(&client(server.addr, &[flag.as_str(), "x"]), None, RUN_TIMEOUT);
        assert_eq!(run.code(), Some(2), "{timeout}: {}", run.describe());
        assert!(run.stderr.contains(expected), "{timeout}: {}", run.describe());
    }
    assert!(server.seen_until_marker().is_empty(), "nothing is sent");
}

/// Issue 15, item 13: an IPv6 scope by interface name is accepted (loopback has no
/// fe80::1, so the network refuses it: exit 1, not a usage error); each way of writing an
/// address wrong names what is wrong, exit 2.
#[test]
fn addresses_name_what_is_missing_and_accept_scopes_by_interface_name() {
    let quick = ["--timeout", "50ms", "--retries", "0", "x"];
    let run = |addr: &str| {
        let mut args = vec!["client", addr];
        args.extend(quick);
        run_shout(&args, None, RUN_TIMEOUT)
    };
    let scoped = run("[fe80::1%lo]:9");
    assert_eq!(scoped.code(), Some(1), "{}", scoped.describe());
    assert!(!scoped.stderr.contains("invalid address"), "{}", scoped.describe());
    for (addr, want) in [
        ("127.0.0.1", "\"127.0.0.1\" has no port"),
        ("[::1]", "\"[::1]\" has no port"),
        ("[fe80::1]:9", "link-local IPv6 address without a scope"),
        ("[fe80::1%4000000000]:9", "no interface \"4000000000\""),
        ("[fe80::1%nosuchif0]:9", "no interface \"nosuchif0\""),
    ] {
        let run = run(addr);
        assert_eq!(run.code(), Some(2), "{addr}: {}", run.describe());
        assert!(run.stderr.contains(want), "{addr}: want {want:?}: {}", run.describe());
    }
}
