//! The baseline shout is measured against: the original tutorial's loop in
//! plain `std`, one datagram per system call, one thread.
//!
//! ```text
//! cargo run --release --example naive_std -- 127.0.0.1:0
//! cargo run --release --example naive_std -- 127.0.0.1:0 --spin
//! ```
//!
//! With `--spin` the socket is non-blocking and the loop polls it without
//! ever sleeping: the floor for a busy-polling server, with nothing between
//! receive and send but the uppercasing.

use std::io::Write;
use std::net::UdpSocket;
use std::process::ExitCode;

fn main() -> ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let spin = std::env::args().nth(2).is_some_and(|arg| arg == "--spin");
    match serve(&addr, spin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: &str, spin: bool) -> std::io::Result<()> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(spin)?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", socket.local_addr()?)?;
    out.flush()?;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            // Nothing yet (with --spin), or an ICMP error from an earlier
            // reply: about that peer, not this socket.
            Err(_) => continue,
        };
        for b in &mut buf[..len] {
            *b = b.to_ascii_uppercase();
        }
        let _ = socket.send_to(&buf[..len], peer);
    }
}
