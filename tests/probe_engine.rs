//! The probe agent's engine against real sockets on loopback: shout's own
//! servers (STAMP and upper), a closed port, and fake reflectors that answer
//! twice, from another address, drop one way, or flood.
//!
//! Self-contained (no `common` helpers): every wait has a deadline, every
//! socket is on 127.0.0.1 port 0.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use shout::probe::{Agent, AgentConfig, Protocol, TargetSnapshot, TargetSpec};
use shout::stamp::{Arrival, Reflector, ReflectorConfig};
use shout::{Mode, Server, ServerConfig};

fn spec(name: &str, addr: SocketAddr, protocol: Protocol) -> TargetSpec {
    TargetSpec {
        name: name.into(),
        addr,
        protocol,
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(300),
        size: if protocol == Protocol::Stamp { 44 } else { 64 },
        dscp: None,
        ttl: None,
        ssid: 0,
        key: None,
        labels: vec![("site".into(), "lab".into())],
    }
}

fn server(stamp: Option<ReflectorConfig>, mode: Mode) -> Server {
    let config = ServerConfig {
        binds: vec!["127.0.0.1:0".parse().unwrap()],
        mode,
        stamp,
        ..ServerConfig::default()
    };
    Server::bind(config).unwrap()
}

/// Sets its flag when dropped, also while a failed assertion unwinds, so
/// the threads of a `thread::scope` stop and the scope can end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the agent while `f` watches it; stops it after.
fn with_agent<T>(agent: &Agent, f: impl FnOnce(&Agent) -> T) -> T {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let runner = s.spawn(|| agent.run(&stop));
        let guard = StopOnDrop(&stop);
        let out = f(agent);
        drop(guard);
        runner.join().unwrap().unwrap();
        out
    })
}

fn find<'a>(snap: &'a [TargetSnapshot], name: &str) -> &'a TargetSnapshot {
    snap.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} in {snap:?}"))
}

/// Polls the snapshot until `done` holds for it (or 5 s pass), checking the
/// invariant sent = answered + lost + in flight at every look.
fn wait_for(
    agent: &Agent,
    what: &str,
    done: impl Fn(&[TargetSnapshot]) -> bool,
) -> Vec<TargetSnapshot> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = agent.snapshot();
        for t in &snap {
            assert_eq!(t.sent, t.answered + t.lost + t.in_flight, "invariant for {t:?}");
        }
        if done(&snap) {
            return snap;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {snap:#?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one series in the metrics text: `name{labels}` exactly as written.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every per-target invariant in the metrics text: sent = answered + lost + in flight.
fn check_invariant(text: &str) {
    let mut by_target: HashMap<String, [f64; 4]> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Some((name, labels)) = series.split_once('{') else { continue };
        let idx = match name {
            "shout_probe_sent_total" => 0,
            "shout_probe_answered_total" => 1,
            "shout_probe_lost_total" => 2,
            "shout_probe_in_flight" => 3,
            _ => continue,
        };
        let target = labels.split(',').find(|l| l.starts_with("target=")).unwrap().to_string();
        by_target.entry(target).or_default()[idx] += value.parse::<f64>().unwrap();
    }
    assert!(!by_target.is_empty(), "no per-target series in\n{text}");
    for (target, [sent, answered, lost, in_flight]) in by_target {
        assert_eq!(sent, answered + lost + in_flight, "{target}");
    }
}

#[test]
fn stamp_and_upper_targets_are_answered_with_kernel_timestamps() {
    let stamp = server(Some(ReflectorConfig::default()), Mode::Upper);
    let upper = server(None, Mode::Upper);
    let echo = server(None, Mode::Echo);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(agent.kernel_timestamps(), (true, true), "SO_TIMESTAMPING both ways");
    }
    let applied = agent
        .apply(vec![
            spec("stamp", stamp.local_addr(), Protocol::Stamp),
            spec("upper", upper.local_addr(), Protocol::Upper),
            spec("echo", echo.local_addr(), Protocol::Echo),
        ])
        .unwrap();
    assert_eq!(applied.added, 3);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for server in [&stamp, &upper, &echo] {
            s.spawn(|| server.run(&stop));
        }
        with_agent(&agent, |agent| {
            let snap =
                wait_for(agent, "10 answers each", |snap| snap.iter().all(|t| t.answered >= 10));
            for t in &snap {
                assert_eq!((t.mismatched, t.unreachable, t.duplicated), (0, 0, 0), "{t:?}");
                assert!(t.up, "{t:?}");
                let p50 = t.rtt_p50.unwrap();
                assert!(p50 < Duration::from_millis(20), "loopback round trip {p50:?}");
                assert!(t.last_rtt.is_some() && !t.recent_rtts.is_empty());
            }
            let text = agent.render_metrics();
            check_invariant(&text);
            assert!(
                metric(&text, r#"shout_probe_kernel_timestamps{direction="rx"}"#) == Some(1.0)
                    || !cfg!(target_os = "linux")
            );
            assert!(
                text.contains(
                    r#"shout_probe_rtt_seconds_bucket{le="0.0001",target="stamp",site="lab"}"#
                ),
                "{text}"
            );
            // STAMP only: one-way delays and turnaround, and the forward TTL
            // the reflector reported is not asked for here (no TTL from its socket).
            assert!(text.contains(r#"shout_probe_one_way_delay_seconds_count{target="stamp",site="lab",direction="forward"}"#));
            assert!(
                text.contains(r#"shout_probe_turnaround_seconds_count{target="stamp",site="lab"}"#)
            );
            assert!(!text.contains(r#"shout_probe_turnaround_seconds_count{target="upper""#));
            assert!(
                metric(&text, r#"shout_probe_ttl{target="upper",site="lab",direction="backward"}"#)
                    == Some(64.0)
            );
            assert!(metric(&text, "shout_probe_probes_sent_total").unwrap() >= 30.0);
            assert_eq!(metric(&text, "shout_probe_targets"), Some(3.0));
            assert!(metric(&text, "shout_probe_scheduling_lag_seconds_count").unwrap() >= 30.0);
            let p99 = agent.scheduling_lag(0.99).unwrap();
            assert!(p99 < Duration::from_millis(50), "scheduling lag p99 {p99:?}");
        });
    });
}

#[test]
fn a_closed_port_is_unreachable_and_its_probes_lost() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let target = TargetSpec {
        timeout: Duration::from_millis(100),
        ..spec("closed", closed, Protocol::Upper)
    };
    agent.apply(vec![target]).unwrap();
    with_agent(&agent, |agent| {
        let snap = wait_for(agent, "losses and unreachables", |snap| {
            snap[0].lost >= 3 && snap[0].unreachable >= 3
        });
        assert_eq!(snap[0].answered, 0);
        assert!(!snap[0].up);
        let again = agent.run(&AtomicBool::new(true)).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists, "one probing thread");
        assert!(snap[0].recent_rtts.iter().all(Option::is_none));
        let text = agent.render_metrics();
        check_invariant(&text);
        assert!(
            metric(
                &text,
                r#"shout_probe_lost_total{target="closed",site="lab",direction="unknown"}"#
            )
            .unwrap()
                >= 3.0
        );
        assert_eq!(metric(&text, r#"shout_probe_up{target="closed",site="lab"}"#), Some(0.0));
    });
}

/// A fake upper server: answers each probe twice, and once more from
/// another socket (another address); `flood` extra garbage datagrams after
/// the first probe.
fn fake_server(stop: &AtomicBool, sock: &UdpSocket, other: &UdpSocket, flood: usize) {
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut buf = [0u8; 2048];
    let mut flooded = false;
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        buf[..n].make_ascii_uppercase();
        let _ = sock.send_to(&buf[..n], from);
        let _ = sock.send_to(&buf[..n], from);
        let _ = other.send_to(&buf[..n], from);
        if !flooded {
            flooded = true;
            for i in 0..flood {
                let _ = sock.send_to(format!("garbage {i}").as_bytes(), from);
            }
        }
    }
}

#[test]
fn duplicates_strays_and_floods_are_counted_not_answered() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = Agent::new(AgentConfig::default()).unwrap();
    // The fake server answers nothing while it floods: a timeout that outlasts that.
    let target = TargetSpec {
        timeout: Duration::from_secs(5),
        ..spec("fake", sock.local_addr().unwrap(), Protocol::Upper)
    };
    agent.apply(vec![target]).unwrap();
    let stop = AtomicBool::new(false);
    let flood = 20_000;
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| fake_server(&stop, &sock, &other, flood));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "answers, duplicates, strays", |snap| {
                let t = &snap[0];
                t.answered >= 10 && t.duplicated >= 10 && t.mismatched >= 10 + flood as u64 / 2
            });
            let t = &snap[0];
            // Each probe: one answer, one duplicate, one stray (mismatched), never more answers.
            assert!(t.answered <= t.sent, "{t:?}");
            assert!(t.duplicated <= t.answered, "{t:?}");
            assert!(t.mismatched <= flood as u64 + t.sent, "{t:?}");
            assert_eq!(t.late, 0, "{t:?}");
            // The flood did not stop the probing.
            let before = t.sent;
            wait_for(agent, "probing going on", |snap| snap[0].sent >= before + 5);
        });
    });
}

#[test]
fn reload_keeps_unchanged_targets_and_drops_removed_series() {
    let upper = server(None, Mode::Upper);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let keep = spec("keep", upper.local_addr(), Protocol::Upper);
    let gone = spec("gone", upper.local_addr(), Protocol::Upper);
    let added = TargetSpec { name: "added".into(), ..keep.clone() };
    agent.apply(vec![keep.clone(), gone]).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| upper.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "answers before the reload", |snap| {
                find(snap, "keep").answered >= 10
            });
            let before = find(&snap, "keep").answered;
            let applied = agent.apply(vec![keep.clone(), added.clone()]).unwrap();
            assert_eq!((applied.kept, applied.added, applied.removed), (1, 1, 1));
            let right_after = agent.snapshot();
            assert!(find(&right_after, "keep").answered >= before, "no reset at the reload");
            // Both conditions are waited for: the added target starts at a
            // random phase, so it may reach 5 answers before `keep` gets 5 more.
            let snap = wait_for(agent, "answers after", |snap| {
                find(snap, "added").answered >= 5 && find(snap, "keep").answered >= before + 5
            });
            assert!(snap.iter().all(|t| t.name != "gone"));
            let text = agent.render_metrics();
            check_invariant(&text);
            assert!(!text.contains(r#"target="gone""#), "removed target's series are gone");
            assert!(
                metric(&text, r#"shout_probe_answered_total{target="keep",site="lab"}"#).unwrap()
                    >= before as f64
            );
            agent.set_reload_status(false);
            assert_eq!(
                metric(&agent.render_metrics(), "shout_probe_config_last_reload_successful"),
                Some(0.0)
            );
            agent.set_reload_status(true);
            let text = agent.render_metrics();
            assert_eq!(metric(&text, "shout_probe_config_last_reload_successful"), Some(1.0));
            let at =
                metric(&text, "shout_probe_config_last_reload_success_timestamp_seconds").unwrap();
            let now =
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
            assert!((now - at).abs() < 60.0, "{at} vs {now}");
        });
    });
}

/// An in-process stateful STAMP reflector that drops every `forward`-th
/// request before reflecting it and every `backward`-th reply after.
fn lossy_reflector(
    stop: &AtomicBool,
    sock: &UdpSocket,
    forward: u64,
    backward: u64,
    seen: &AtomicU64,
) {
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let config = ReflectorConfig { stateful: true, ..ReflectorConfig::default() };
    let mut reflector = Reflector::new(config).unwrap();
    let mut buf = [0u8; 2048];
    let mut reflected = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        let nth = seen.fetch_add(1, Ordering::Relaxed) + 1;
        if nth.is_multiple_of(forward) {
            continue;
        }
        let rx = Arrival { src: from, received: SystemTime::now(), ttl: None, tos: None };
        let Ok(len) = reflector.reflect(&mut buf, n, &rx) else { continue };
        reflected += 1;
        if reflected.is_multiple_of(backward) {
            continue;
        }
        let _ = sock.send_to(&buf[..len], from);
    }
}

#[test]
fn a_stateful_reflector_splits_the_loss_by_direction() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let target = TargetSpec {
        timeout: Duration::from_millis(60),
        ..spec("lossy", sock.local_addr().unwrap(), Protocol::Stamp)
    };
    agent.apply(vec![target]).unwrap();
    let stop = AtomicBool::new(false);
    let seen = AtomicU64::new(0);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| lossy_reflector(&stop, &sock, 5, 7, &seen));
        with_agent(&agent, |agent| {
            wait_for(agent, "both kinds of loss", |snap| snap[0].lost >= 12);
            let text = agent.render_metrics();
            check_invariant(&text);
            let lost = |d: &str| {
                metric(
                    &text,
                    &format!(
                        r#"shout_probe_lost_total{{target="lossy",site="lab",direction="{d}"}}"#
                    ),
                )
                .unwrap()
            };
            let (f, b, u) = (lost("forward"), lost("backward"), lost("unknown"));
            // 1 in 5 never reached it; 1 in 7 of the rest did not come back:
            // forward about 7/12 of the loss, backward about 5/12.
            assert!(f >= 4.0 && b >= 3.0, "forward {f}, backward {b}, unknown {u}");
            assert!(u <= 2.0, "only the newest losses can be unsplit: {u}");
            assert!(f > b, "forward {f} > backward {b}");
        });
    });
}

#[test]
fn targets_from_a_stray_address_are_mismatched() {
    // The target's address never answers; another socket answers for it,
    // with correct-looking STAMP replies: mismatched, never answered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let impostor = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = Agent::new(AgentConfig::default()).unwrap();
    agent.apply(vec![spec("silent", silent.local_addr().unwrap(), Protocol::Stamp)]).unwrap();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            silent.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
            let mut reflector = Reflector::new(ReflectorConfig::default()).unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = silent.recv_from(&mut buf) else { continue };
                let rx = Arrival { src: from, received: SystemTime::now(), ttl: None, tos: None };
                if let Ok(len) = reflector.reflect(&mut buf, n, &rx) {
                    let _ = impostor.send_to(&buf[..len], from);
                }
            }
        });
        with_agent(&agent, |agent| {
            let snap =
                wait_for(agent, "mismatches", |snap| snap[0].mismatched >= 5 && snap[0].lost >= 1);
            assert_eq!(snap[0].answered, 0, "{:?}", snap[0]);
        });
    });
}

#[test]
fn many_targets_at_one_address_are_told_apart() {
    // 40 STAMP sessions (one per SSID) and 40 upper targets, all at one address each.
    let stamp = server(Some(ReflectorConfig::default()), Mode::Upper);
    let upper = server(None, Mode::Upper);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let mut targets = Vec::new();
    for i in 0..40u16 {
        let name = format!("stamp-{i}");
        targets.push(TargetSpec { ssid: i, ..spec(&name, stamp.local_addr(), Protocol::Stamp) });
        targets.push(spec(&format!("upper-{i}"), upper.local_addr(), Protocol::Upper));
    }
    agent.apply(targets).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| stamp.run(&stop));
        s.spawn(|| upper.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "every target answered", |snap| {
                snap.iter().all(|t| t.answered >= 5)
            });
            for t in &snap {
                assert_eq!((t.mismatched, t.duplicated, t.late), (0, 0, 0), "{t:?}");
            }
            check_invariant(&agent.render_metrics());
        });
    });
}

/// Four STAMP targets at one address in one session (the same SSID): each reply
/// goes to the target whose probe it answers. Before, a target whose numbers ran
/// above another's took that one's replies as its own late ones.
#[test]
fn stamp_targets_sharing_an_address_and_session_keep_their_own_replies() {
    let stamp = server(Some(ReflectorConfig::default()), Mode::Upper);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let targets =
        (0..4).map(|i| spec(&format!("same-{i}"), stamp.local_addr(), Protocol::Stamp)).collect();
    agent.apply(targets).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| stamp.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "every target answered 20 times", |snap| {
                snap.iter().all(|t| t.answered >= 20)
            });
            for t in &snap {
                assert_eq!((t.mismatched, t.duplicated, t.late), (0, 0, 0), "{t:?}");
            }
            check_invariant(&agent.render_metrics());
        });
    });
}

/// A STAMP target that is an echo server (it returns the test packet itself):
/// every reply mismatched, never answered, late or duplicated, and down.
#[test]
fn a_stamp_target_that_only_echoes_is_mismatched_never_answered() {
    let echo = server(None, Mode::Echo);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    agent.apply(vec![spec("echo", echo.local_addr(), Protocol::Stamp)]).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| echo.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "replies", |snap| find(snap, "echo").mismatched >= 10);
            let t = find(&snap, "echo");
            assert_eq!((t.answered, t.late, t.duplicated), (0, 0, 0), "{t:?}");
            check_invariant(&agent.render_metrics());
        });
    });
}

/// `upper` and `echo` are not interchangeable: an `echo` target at an
/// uppercasing server and an `upper` target at an echo server get replies
/// that are their probes, but changed (or not) the other way: every one
/// mismatched, no round trip, and the probes lost.
#[test]
fn upper_and_echo_targets_at_the_other_kind_of_server_are_mismatched_never_answered() {
    let upper = server(None, Mode::Upper);
    let echo = server(None, Mode::Echo);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let short = |t: TargetSpec| TargetSpec { timeout: Duration::from_millis(100), ..t };
    agent
        .apply(vec![
            short(spec("echo-at-upper", upper.local_addr(), Protocol::Echo)),
            short(spec("upper-at-echo", echo.local_addr(), Protocol::Upper)),
            // The smallest probe (no filler) tells them apart too.
            short(TargetSpec { size: 28, ..spec("small", echo.local_addr(), Protocol::Upper) }),
        ])
        .unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for server in [&upper, &echo] {
            s.spawn(|| server.run(&stop));
        }
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "replies and losses", |snap| {
                snap.iter().all(|t| t.mismatched >= 10 && t.lost >= 3)
            });
            for t in &snap {
                assert_eq!((t.answered, t.late, t.duplicated), (0, 0, 0), "{t:?}");
                assert_eq!((t.rtt_p50, t.last_rtt), (None, None), "no round trip: {t:?}");
                assert!(!t.up, "{t:?}");
            }
            check_invariant(&agent.render_metrics());
        });
    });
}

#[test]
fn authenticated_stamp_is_answered_with_the_key_and_mismatched_without() {
    use shout::stamp::AuthMode;
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let config = ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key.clone()),
        ..ReflectorConfig::default()
    };
    let reflector = server(Some(config), Mode::Upper);
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let good = TargetSpec {
        key: Some(key),
        size: 112,
        ..spec("good", reflector.local_addr(), Protocol::Stamp)
    };
    let bad = TargetSpec {
        name: "bad".into(),
        key: Some(b"another key, just as long: 32 b!".to_vec()),
        ..good.clone()
    };
    agent.apply(vec![good, bad]).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| reflector.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "answers", |snap| find(snap, "good").answered >= 5);
            assert_eq!(find(&snap, "good").mismatched, 0);
            let bad = find(&snap, "bad");
            assert_eq!(bad.answered, 0, "a reflector with another key never answers: {bad:?}");
        });
    });
}

#[test]
fn ipv6_targets_are_probed_from_their_own_socket() {
    let config = ServerConfig {
        binds: vec!["[::1]:0".parse().unwrap()],
        stamp: Some(ReflectorConfig::default()),
        ..ServerConfig::default()
    };
    let Ok(reflector) = Server::bind(config) else {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    };
    let closed = UdpSocket::bind("[::1]:0").unwrap().local_addr().unwrap();
    let stop = AtomicBool::new(false);
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let closed = TargetSpec {
        timeout: Duration::from_millis(100),
        ..spec("closed6", closed, Protocol::Upper)
    };
    agent.apply(vec![spec("stamp6", reflector.local_addr(), Protocol::Stamp), closed]).unwrap();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| reflector.run(&stop));
        with_agent(&agent, |agent| {
            let snap = wait_for(agent, "IPv6 answers and unreachables", |snap| {
                find(snap, "stamp6").answered >= 5 && find(snap, "closed6").unreachable >= 2
            });
            assert_eq!(find(&snap, "stamp6").mismatched, 0);
            let text = agent.render_metrics();
            assert!(metric(
                &text,
                r#"shout_probe_ttl{target="stamp6",site="lab",direction="backward"}"#
            )
            .is_some());
        });
    });
}
