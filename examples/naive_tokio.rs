//! A second baseline: the same loop on tokio's `UdpSocket`, current-thread
//! runtime: what a typical async server pays on top of `std`.
//!
//! ```text
//! cargo run --release --example naive_tokio -- 127.0.0.1:0
//! ```

use std::io::Write;
use std::process::ExitCode;

use tokio::net::UdpSocket;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    match serve(&addr).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: &str) -> std::io::Result<()> {
    let socket = UdpSocket::bind(addr).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", socket.local_addr()?)?;
    out.flush()?;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // An ICMP error from an earlier reply: about that peer, not this socket.
            Err(_) => continue,
        };
        for b in &mut buf[..len] {
            *b = b.to_ascii_uppercase();
        }
        let _ = socket.send_to(&buf[..len], peer).await;
    }
}
