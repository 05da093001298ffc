//! Interoperability with plain Python UDP programs of the original tutorial's kind.

use crate::common;

use common::*;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// sendto one message, recvfrom(1024), print the reply.
const PY_CLIENT: &str = r#"
import socket, sys
host, port, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(msg.encode(), (host, port))
data, addr = s.recvfrom(1024)
print(data.decode())
"#;

/// bind port 0, print the address, then recvfrom(65535) + sendto(msg.upper()) forever
/// (ends by itself after 30 s of silence in case it is orphaned).
const PY_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print("listening on %s:%d" % s.getsockname(), flush=True)
s.settimeout(30)
while True:
    try:
        msg, addr = s.recvfrom(65535)
    except socket.timeout:
        break
    s.sendto(msg.upper(), addr)
"#;

#[test]
fn python_client_gets_uppercase_reply_from_shout_server() {
    if !python3_or_skip("python_client_gets_uppercase_reply_from_shout_server") {
        return;
    }
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    let run = run_python(
        PY_CLIENT,
        &[addr.ip().to_string(), addr.port().to_string(), "hello from python".to_string()],
        Duration::from_secs(10),
    );
    assert!(run.status.success(), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO FROM PYTHON\n");
    let summary = server.stop("TERM").summary();
    assert_eq!(summary.get("answered"), Some(&1));
}

/// Starts the Python server and reads its address back.
fn python_server() -> (Proc, SocketAddr) {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PY_SERVER);
    let mut py = Proc::spawn(cmd);
    let (_, addrs) = py.listening(1, Duration::from_secs(10));
    (py, addrs[0])
}

#[test]
fn shout_client_prints_uppercase_reply_of_python_server() {
    if !python3_or_skip("shout_client_prints_uppercase_reply_of_python_server") {
        return;
    }
    let (_py, addr) = python_server();
    let run =
        run_shout(&["client", &addr.to_string(), "hello", "python"], None, Duration::from_secs(10));
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "HELLO\nPYTHON\n", "{}", run.describe());
}

#[test]
fn shout_client_stdin_lines_against_python_server() {
    if !python3_or_skip("shout_client_stdin_lines_against_python_server") {
        return;
    }
    let (_py, addr) = python_server();
    let run =
        run_shout(&["client", &addr.to_string()], Some(b"one\ntwo\n"), Duration::from_secs(10));
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "ONE\nTWO\n", "{}", run.describe());
}
