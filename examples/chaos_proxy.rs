//! A UDP proxy that mistreats datagrams on purpose, to see how a client and server
//! cope with a bad network: between one client and the server, in both directions, it
//! duplicates, reorders, delays, corrupts, truncates or drops datagrams with the given
//! probabilities. The same `--seed` makes the same decisions for the same sequence of
//! datagrams.
//!
//! ```sh
//! cargo run -- server --bind 127.0.0.1:9000 &
//! cargo run --example chaos_proxy -- --listen 127.0.0.1:0 --upstream 127.0.0.1:9000 --drop 0.2 --dup 0.2
//! # prints `listening on 127.0.0.1:PORT`; point the client there:
//! seq 100 | cargo run -- client 127.0.0.1:PORT --timeout 50ms --retries 10
//! ```
//!
//! Options: `--dup P`, `--reorder P` (hold a datagram and send it after the next one in
//! the same direction, or after 200 ms if none comes), `--delay-ms N` (each datagram
//! waits a random 0..=N ms, which reorders too), `--corrupt P` (flip one byte),
//! `--truncate P` (cut the datagram short, possibly to nothing), `--drop P`, `--seed S`,
//! `--max-seconds S` (default 60: it then exits, printing what it did on stderr).
//!
//! The tests (`tests/chaos.rs`) run this same file in-process.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a receiver blocks before looking at the stop flag and its held datagram.
const POLL: Duration = Duration::from_millis(10);
/// A datagram held for reordering goes out after this even if nothing follows it, so
/// reordering never turns into loss.
const HOLD_MAX: Duration = Duration::from_millis(200);

/// What to do to datagrams; probabilities are per datagram and per direction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    pub(crate) dup: f64,
    pub(crate) reorder: f64,
    pub(crate) delay_ms: u64,
    pub(crate) corrupt: f64,
    pub(crate) truncate: f64,
    pub(crate) drop: f64,
    pub(crate) seed: u64,
}

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    ToServer = 0,
    ToClient = 1,
}

/// What the proxy did in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) delayed: u64,
    pub(crate) corrupted: u64,
    pub(crate) truncated: u64,
    pub(crate) send_errors: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} sent={} dropped={} duplicated={} reordered={} delayed={} corrupted={} truncated={} send_errors={}",
            self.received,
            self.sent,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.delayed,
            self.corrupted,
            self.truncated,
            self.send_errors
        )
    }
}

/// xorshift64* (Vigna): tiny, fast, and plenty for choosing faults.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so seeds 0, 1, 2... give unrelated, non-zero states.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One datagram waiting to be sent.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Instant,
    seq: u64,
    dir: Dir,
    data: Vec<u8>,
}

/// Datagrams due to be sent, earliest first (ties in arrival order).
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

struct Shared {
    faults: Faults,
    stop: AtomicBool,
    queue: Mutex<Queue>,
    ready: Condvar,
    client: Mutex<Option<SocketAddr>>,
    tally: Mutex<[Tally; 2]>,
}

impl Shared {
    fn count(&self, dir: Dir, f: impl FnOnce(&mut Tally)) {
        f(&mut self.tally.lock().expect("tally lock")[dir as usize]);
    }

    fn schedule(&self, dir: Dir, at: Instant, data: Vec<u8>) {
        let mut q = self.queue.lock().expect("queue lock");
        q.seq += 1;
        let seq = q.seq;
        q.heap.push(Reverse(Pending { at, seq, dir, data }));
        self.ready.notify_one();
    }
}

/// A running proxy; stops (and joins its threads) on drop.
pub(crate) struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` for the client and forwards to `upstream`.
    pub(crate) fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        faults: Faults,
    ) -> io::Result<Proxy> {
        let front = UdpSocket::bind(listen)?;
        let any: SocketAddr =
            if upstream.is_ipv4() { ([0u8; 4], 0).into() } else { ([0u16; 8], 0).into() };
        let back = UdpSocket::bind(any)?;
        back.connect(upstream)?;
        front.set_read_timeout(Some(POLL))?;
        back.set_read_timeout(Some(POLL))?;
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            faults,
            stop: AtomicBool::new(false),
            queue: Mutex::default(),
            ready: Condvar::new(),
            client: Mutex::new(None),
            tally: Mutex::default(),
        });
        let mut threads = Vec::new();
        for dir in [Dir::ToServer, Dir::ToClient] {
            let (shared, socket) = (
                Arc::clone(&shared),
                if dir == Dir::ToServer { front.try_clone()? } else { back.try_clone()? },
            );
            threads.push(thread::spawn(move || receive(&shared, dir, &socket)));
        }
        let sender = Arc::clone(&shared);
        threads.push(thread::spawn(move || send(&sender, &front, &back)));
        Ok(Proxy { addr, shared, threads })
    }

    /// Where the client should send.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops, dropping whatever is still held or delayed, and says what was done in
    /// each direction (indexed by [`Dir`]): nothing is sent after this returns.
    pub(crate) fn finish(mut self) -> [Tally; 2] {
        self.halt();
        *self.shared.tally.lock().expect("tally lock")
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Reads one direction's datagrams and schedules what the faults make of them.
fn receive(shared: &Shared, dir: Dir, socket: &UdpSocket) {
    let faults = &shared.faults;
    let mut rng = Rng::new(faults.seed ^ (dir as u64).wrapping_mul(0xa076_1d64_78bd_642f));
    let mut held: Option<(Instant, Vec<u8>)> = None;
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Relaxed) {
        let got = match dir {
            Dir::ToServer => socket.recv_from(&mut buf).map(|(n, from)| {
                *shared.client.lock().expect("client lock") = Some(from);
                n
            }),
            // The socket is connected: only the server's datagrams arrive here.
            Dir::ToClient => socket.recv(&mut buf),
        };
        let now = Instant::now();
        let n = match got {
            Ok(n) => n,
            // A timeout, or ICMP port unreachable from a server not (yet) there.
            Err(_) => {
                if held.as_ref().is_some_and(|(since, _)| now - *since >= HOLD_MAX) {
                    let (_, data) = held.take().expect("checked above");
                    shared.schedule(dir, now, data);
                }
                continue;
            }
        };
        shared.count(dir, |t| t.received += 1);
        if rng.chance(faults.drop) {
            shared.count(dir, |t| t.dropped += 1);
            continue;
        }
        let mut data = buf[..n].to_vec();
        if !data.is_empty() && rng.chance(faults.corrupt) {
            let i = rng.below(data.len() as u64) as usize;
            data[i] ^= 1 + rng.below(255) as u8;
            shared.count(dir, |t| t.corrupted += 1);
        }
        if !data.is_empty() && rng.chance(faults.truncate) {
            data.truncate(rng.below(data.len() as u64) as usize);
            shared.count(dir, |t| t.truncated += 1);
        }
        let copies = if rng.chance(faults.dup) {
            shared.count(dir, |t| t.duplicated += 1);
            2
        } else {
            1
        };
        let mut at = now;
        if faults.delay_ms > 0 {
            at += Duration::from_millis(rng.below(faults.delay_ms + 1));
            shared.count(dir, |t| t.delayed += 1);
        }
        if held.is_none() && rng.chance(faults.reorder) {
            shared.count(dir, |t| t.reordered += 1);
            if copies == 2 {
                shared.schedule(dir, at, data.clone());
            }
            held = Some((now, data));
            continue;
        }
        for _ in 0..copies {
            shared.schedule(dir, at, data.clone());
        }
        if let Some((_, late)) = held.take() {
            shared.schedule(dir, at, late); // same time, later in the queue: after this one
        }
    }
}

/// Sends each scheduled datagram when it is due.
fn send(shared: &Shared, front: &UdpSocket, back: &UdpSocket) {
    let mut q = shared.queue.lock().expect("queue lock");
    while !shared.stop.load(Relaxed) {
        let now = Instant::now();
        let wait = match q.heap.peek() {
            Some(Reverse(p)) if p.at <= now => {
                let Reverse(p) = q.heap.pop().expect("peeked");
                drop(q);
                let result = match p.dir {
                    Dir::ToServer => back.send(&p.data),
                    Dir::ToClient => match *shared.client.lock().expect("client lock") {
                        Some(client) => front.send_to(&p.data, client),
                        None => Err(io::ErrorKind::NotConnected.into()),
                    },
                };
                shared.count(p.dir, |t| match result {
                    Ok(_) => t.sent += 1,
                    Err(_) => t.send_errors += 1,
                });
                q = shared.queue.lock().expect("queue lock");
                continue;
            }
            Some(Reverse(p)) => p.at - now,
            None => POLL,
        };
        q = shared.ready.wait_timeout(q, wait).expect("queue lock").0;
    }
}

const USAGE: &str = "usage: chaos_proxy --listen ADDR --upstream ADDR [--dup P] [--reorder P] [--delay-ms N] [--corrupt P] [--truncate P] [--drop P] [--seed S] [--max-seconds S]";

/// Parses the command line (see the module doc); an empty error asks for the usage.
fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(SocketAddr, SocketAddr, Faults, Duration), String> {
    let (mut listen, mut upstream, mut faults, mut max) =
        (None, None, Faults::default(), Duration::from_secs(60));
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let prob = |v: &str| match v.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
            _ => Err(format!("{flag} takes a probability from 0 to 1, not {v:?}")),
        };
        let addr = |v: &str| v.parse::<SocketAddr>().map_err(|e| format!("{flag} {v:?}: {e}"));
        let int = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--listen" => listen = Some(addr(&value)?),
            "--upstream" => upstream = Some(addr(&value)?),
            "--dup" => faults.dup = prob(&value)?,
            "--reorder" => faults.reorder = prob(&value)?,
            "--delay-ms" => faults.delay_ms = int(&value)?,
            "--corrupt" => faults.corrupt = prob(&value)?,
            "--truncate" => faults.truncate = prob(&value)?,
            "--drop" => faults.drop = prob(&value)?,
            "--seed" => faults.seed = int(&value)?,
            "--max-seconds" => {
                max = value
                    .parse()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| {
                        format!("--max-seconds takes a number of seconds, not {value:?}")
                    })?
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let upstream = upstream.ok_or("--upstream ADDR is required")?;
    Ok((listen, upstream, faults, max))
}

fn main() -> std::process::ExitCode {
    let (listen, upstream, faults, max) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(err) => {
            if err.is_empty() {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("error: {err}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let proxy = match Proxy::start(listen, upstream, faults) {
        Ok(proxy) => proxy,
        Err(err) => {
            eprintln!("error: proxy on {listen} to {upstream}: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "listening on {}", proxy.addr());
    let _ = stdout.flush();
    thread::sleep(max);
    let [to_server, to_client] = proxy.finish();
    eprintln!("to server: {to_server}");
    eprintln!("to client: {to_client}");
    std::process::ExitCode::SUCCESS
}
