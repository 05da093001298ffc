//! The real client and server through a proxy that duplicates, reorders, delays,
//! corrupts, truncates and drops datagrams (`examples/chaos_proxy.rs`, run in-process):
//! each request gets exactly its own reply on stdout, once, in order, or a clear error on
//! stderr; never a wrong line or two lines for one request; the exit code says which; and
//! the server takes every datagram the proxy sent it and goes on answering.

use crate::common;

#[allow(dead_code)]
#[path = "../examples/chaos_proxy.rs"]
mod chaos_proxy;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use chaos_proxy::{Dir, Faults, Proxy, Tally};
use common::{request, run_shout, socket_for, upper, ServerProc};

const REQUESTS: usize = 200;

/// One way of mistreating datagrams, and the proxy counter that shows it happened.
struct Case {
    name: &'static str,
    faults: Faults,
    applied: fn(&Tally) -> u64,
}

/// One fault at a time, then all of them: probabilities low enough that ten retries
/// with backoff from 50 ms get nearly every request through in a few seconds.
fn cases() -> Vec<Case> {
    let none = Faults::default;
    let case = |name, faults, applied| Case { name, faults, applied };
    vec![
        case("dup", Faults { dup: 0.3, ..none() }, |t| t.duplicated),
        case("reorder", Faults { reorder: 0.3, ..none() }, |t| t.reordered),
        case("delay", Faults { delay_ms: 30, ..none() }, |t| t.delayed),
        case("corrupt", Faults { corrupt: 0.1, ..none() }, |t| t.corrupted),
        case("truncate", Faults { truncate: 0.1, ..none() }, |t| t.truncated),
        case("drop", Faults { drop: 0.1, ..none() }, |t| t.dropped),
        case(
            "mixed",
            Faults {
                dup: 0.1,
                reorder: 0.1,
                delay_ms: 10,
                corrupt: 0.05,
                truncate: 0.05,
                drop: 0.05,
                ..none()
            },
            |t| t.duplicated + t.reordered + t.corrupted + t.truncated + t.dropped,
        ),
    ]
}

/// What one client run through one proxy showed.
struct Outcome {
    mode: &'static str,
    answered: usize,
    /// What the proxy did, by [`Dir`].
    tally: [Tally; 2],
}

/// Pipes distinct lines through a proxy doing `case` to `server` and checks the client's
/// output; once this returns, the proxy sends nothing more.
fn run_case(case: Case, server: SocketAddr, seed: u64) -> Outcome {
    let Case { name: mode, faults, applied } = case;
    let proxy =
        Proxy::start("127.0.0.1:0".parse().expect("literal"), server, Faults { seed, ..faults })
            .expect("start proxy");
    // Distinct in uppercase too, so a late reply to one never passes for another's.
    let lines: Vec<String> =
        (0..REQUESTS).map(|i| format!("{mode} request {i:03} payload-{}", i * 7919)).collect();
    let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let started = Instant::now();
    let run = run_shout(
        &["client", &proxy.addr().to_string(), "--timeout", "50ms", "--retries", "10"],
        Some(input.as_bytes()),
        Duration::from_secs(60),
    );
    let why = || format!("mode {mode}: {}", run.describe());

    let stdout = run.stdout_str();
    let shown: Vec<&str> = stdout.lines().collect();
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    for e in &errors {
        assert!(
            e.starts_with("error: no reply from "),
            "only a timeout may fail a request; {}",
            why()
        );
    }
    // In order, each the uppercase of a request, no request twice: a subsequence.
    let mut next = 0;
    for line in &shown {
        let at = lines[next..]
            .iter()
            .position(|l| upper(l.as_bytes()) == line.as_bytes())
            .unwrap_or_else(|| panic!("{line:?} is not the reply to a later request; {}", why()));
        next += at + 1;
    }
    assert_eq!(
        shown.len() + errors.len(),
        REQUESTS,
        "one line or one error per request; {}",
        why()
    );
    assert_eq!(run.code(), Some(if errors.is_empty() { 0 } else { 1 }), "{}", why());

    let tally = proxy.finish();
    let [to_server, to_client] = &tally;
    assert!(applied(to_server) + applied(to_client) > 0, "mode {mode} never applied its fault");
    eprintln!(
        "{mode}: {} answered, {} failed in {:.1?}; to server: {to_server}; to client: {to_client}",
        shown.len(),
        errors.len(),
        started.elapsed()
    );
    Outcome { mode, answered: shown.len(), tally }
}

#[test]
fn every_request_gets_its_own_reply_or_an_error_whatever_the_network_does() {
    let started = Instant::now();
    // One worker: one socket, whose queue order lets the probe below prove that every
    // datagram the proxies sent was taken before the summary.
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet", "--workers", "1"]);
    let addr = server.addr();

    let outcomes: Vec<Outcome> = thread::scope(|s| {
        let handles: Vec<_> = cases()
            .into_iter()
            .zip(1..)
            .map(|(case, seed)| s.spawn(move || run_case(case, addr, seed)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a mode failed (its panic is above)")).collect()
    });

    // Still answering after all that.
    let probe = socket_for(addr);
    assert_eq!(request(&probe, addr, b"still there?"), b"STILL THERE?");

    let mut server = server;
    server.assert_running();
    let stopped = server.stop("TERM");
    assert!(stopped.status.success(), "server exit: {}\n{}", stopped.status, stopped.stderr_text());
    let summary = stopped.summary();
    let sent: u64 = outcomes.iter().map(|o| o.tally[Dir::ToServer as usize].sent).sum::<u64>() + 1;
    let answered: u64 = outcomes.iter().map(|o| o.answered as u64).sum();
    let got = |k: &str| summary.get(k).copied().unwrap_or_else(|| panic!("no {k} in the summary"));
    assert_eq!(got("received"), sent, "server received what the proxies sent: {summary:?}");
    assert!(got("received") > answered, "one datagram at least per answer: {summary:?}");
    assert_eq!(got("answered"), got("received"), "loopback sources are all answered: {summary:?}");
    for o in &outcomes {
        assert!(
            o.answered > REQUESTS * 9 / 10,
            "mode {}: only {} of {REQUESTS} answered",
            o.mode,
            o.answered
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
