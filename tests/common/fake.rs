//! In-process fake UDP servers, for client and bench tests.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::net::{socket_for, upper};
use super::RECV_TIMEOUT;

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

/// Sets the flag when dropped: stops a server thread even when a test panics.
pub(crate) struct StopOnDrop<'a>(pub(crate) &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` with the address of a fake server in this process that answers each
/// datagram with `reply(datagram)`: unlike [`FakeServer`] it keeps no log, so a load
/// generator can run against it.
pub(crate) fn with_fake_server(
    reply: impl Fn(&[u8]) -> Vec<u8> + Sync,
    f: impl FnOnce(SocketAddr),
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&reply(&buf[..n]), peer);
                }
            }
        });
        let _stop = StopOnDrop(&stop); // even if `f` panics, so the scope can end
        f(addr);
    });
}
