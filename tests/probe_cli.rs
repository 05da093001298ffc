//! `shout probe` on the real binary over loopback: config errors (exit 2, file:line:column
//! and field), JSON lines and `/metrics` against a spawned STAMP reflector, reload by SIGHUP
//! and `POST /-/reload` (counters carried on, an invalid file refused), and the summary on
//! SIGINT.
//!
//! Every read has a timeout and every child is killed by PID and reaped on drop (`common`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{hermetic, Proc, Scratch, ServerProc, BIN, RECV_TIMEOUT, STARTUP_TIMEOUT};

/// How long a probe at 50 ms intervals may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// `shout probe ARGS`, stdout and stderr read line by line.
fn probe(args: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("probe").args(args).env("NO_COLOR", "1");
    hermetic(&mut cmd);
    Proc::spawn(cmd)
}

/// A STAMP reflector on a free loopback port.
fn reflector() -> ServerProc {
    ServerProc::spawn(&["--mode", "stamp", "--bind", "127.0.0.1:0", "--quiet"])
}

/// One HTTP/1.0 request; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, RECV_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n")
        .expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response to EOF");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end with a blank line");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, body.to_string())
}

fn scrape(metrics: SocketAddr) -> String {
    let (status, body) = http(metrics, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the series of `name` whose labels include `target="TARGET"`.
fn value(page: &str, name: &str, target: &str) -> Option<f64> {
    let label = format!("target=\"{target}\"");
    page.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The value of a series without labels (`name value`).
fn plain(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `pred` holds for a page (at most [`WAIT`]); returns that page.
fn scrape_until(metrics: SocketAddr, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = scrape(metrics);
        if pred(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}; last page:\n{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a probe with `--metrics 127.0.0.1:0` and returns it with the endpoint's address.
fn probe_with_metrics(args: &[&str]) -> (Proc, SocketAddr) {
    let mut all = vec!["--metrics", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut p = probe(&all);
    let (_, addrs) = p.listening(1, STARTUP_TIMEOUT);
    (p, addrs[0])
}

// ---------------------------------------------------------------------------------------------
// Config errors

#[test]
fn config_errors_exit_2_naming_file_line_column_and_field() {
    let dir = Scratch::new("probe-config-errors");
    let many: String = std::iter::once("targets:\n".to_string())
        .chain(
            (0..=100_000)
                .map(|i| format!("- address: 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255)),
        )
        .collect();
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown.yaml",
            "targets:\n  - address: 127.0.0.1\n    colour: red\n",
            ":3:5: targets[0]: unknown field `colour`",
        ),
        (
            "duplicate.yaml",
            "targets:\n  - address: 127.0.0.1\n  - address: 127.0.0.1\n",
            ":3:14: targets[1].address: duplicate target",
        ),
        ("zero.yaml", "targets: []\n", ": no targets"),
        (
            "interval.yaml",
            "defaults:\n  interval: 1ms\ntargets: [{address: 127.0.0.1}]\n",
            ":2:13: defaults.interval: 1ms is out of range: use 10ms to 1h",
        ),
        (
            "dscp.yaml",
            "targets:\n  - address: 127.0.0.1\n    dscp: af44\n",
            ":3:11: targets[0].dscp: \"af44\" is not a DSCP",
        ),
        ("many.yaml", &many, ":100002:3: targets[100000]: more than 100000 targets"),
        (
            "buckets.yaml",
            "targets: [{address: 127.0.0.1}]\nbuckets: [0.01, 0.001]\n",
            ":2:17: buckets[1]: bucket bounds must increase: 0.001 follows 0.01",
        ),
    ];
    for (name, text, expect) in cases {
        dir.write(name, text.as_bytes());
        let path = dir.path().join(name);
        let path = path.to_str().unwrap();
        let out = common::shout(&["probe", "--config", path], Duration::from_secs(30));
        assert_eq!(out.code(), Some(2), "{name}: {out}");
        let want = format!("{path}{expect}");
        assert!(out.stderr.contains(&want), "{name}: want {want:?} in\n{}", out.stderr);
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout: {out}");
    }
    let out = common::shout(&["probe", "--config", "/nonexistent/probe.yaml"], RECV_TIMEOUT * 5);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("/nonexistent/probe.yaml: cannot read it"), "{out}");
    let out = common::shout(&["probe", "--interval", "0s", "127.0.0.1"], RECV_TIMEOUT * 5);
    assert_eq!(out.code(), Some(2), "{out}");
    let out = common::shout(&["probe", "no-such-host.invalid"], Duration::from_secs(30));
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("no-such-host.invalid does not resolve"), "{out}");
}

#[test]
fn a_metrics_address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::shout(&["probe", "--metrics", &addr, "127.0.0.1"], RECV_TIMEOUT * 5);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("binding the metrics endpoint"), "{out}");
}

#[test]
fn json_with_quiet_is_a_usage_error_not_a_flag_ignored() {
    // --quiet would suppress the very lines --json asks for: refused before any probe.
    for args in
        [&["probe", "--json", "--quiet", "127.0.0.1"][..], &["probe", "-q", "--json", "127.0.0.1"]]
    {
        let out = common::shout(args, RECV_TIMEOUT * 5);
        assert_eq!(out.code(), Some(2), "{args:?}: {out}");
        assert!(out.stderr.contains("--json and --quiet together"), "{args:?}: {out}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout: {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Against a reflector

#[test]
fn json_lines_and_metrics_against_a_stamp_reflector_then_the_summary_on_sigint() {
    let server = reflector();
    let target = server.addr().to_string();
    let (mut p, metrics) =
        probe_with_metrics(&[&target, "--json", "--interval", "50ms", "--timeout", "1s"]);
    let mut last = None;
    for _ in 0..3 {
        let line = p
            .stdout_line(WAIT, |l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON line; stderr:\n{}", p.stderr_text()));
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["target"], target.as_str(), "{line}");
        assert_eq!(v["addr"], target.as_str(), "{line}");
        for field in [
            "sent",
            "answered",
            "lost",
            "in_flight",
            "duplicated",
            "late",
            "mismatched",
            "unreachable",
        ] {
            assert!(v[field].is_u64(), "{field} in {line}");
        }
        let sent = v["sent"].as_u64().unwrap();
        assert!(last.is_none_or(|l| sent >= l), "sent goes up: {line}");
        last = Some(sent);
    }
    let page = scrape_until(metrics, "answered probes", |page| {
        value(page, "shout_probe_answered_total", &target).is_some_and(|n| n >= 3.0)
    });
    assert!(value(&page, "shout_probe_sent_total", &target).is_some(), "{page}");
    assert_eq!(plain(&page, "shout_probe_config_last_reload_successful"), Some(1.0), "{page}");
    assert!(page.trim_end().ends_with("# EOF"), "{page}");
    p.signal("INT");
    let status = p.wait(WAIT).expect("exits after SIGINT");
    assert!(status.success(), "{status}; stderr:\n{}", p.stderr_text());
    let rest = p.drain_stdout();
    let summary: Vec<serde_json::Value> =
        rest.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let last = summary.last().unwrap_or_else(|| panic!("no summary line in {rest:?}"));
    assert_eq!(last["target"], target.as_str());
    assert!(last["answered"].as_u64().unwrap() >= 3, "{last}");
}

#[test]
fn sigint_prints_the_summary_table_and_exits_0() {
    let server = reflector();
    let target = server.addr().to_string();
    let (mut p, metrics) = probe_with_metrics(&[&target, "--interval", "50ms"]);
    scrape_until(metrics, "two answers", |page| {
        value(page, "shout_probe_answered_total", &target).is_some_and(|n| n >= 2.0)
    });
    p.signal("INT");
    let status = p.wait(WAIT).expect("exits after SIGINT");
    assert!(status.success(), "{status}; stderr:\n{}", p.stderr_text());
    let rest = p.drain_stdout();
    assert_eq!(
        rest.first().map(String::as_str),
        Some("summary: 1 target"),
        "not a terminal: no table before it; {rest:?}"
    );
    let row = rest.iter().find(|l| l.starts_with(&target)).unwrap_or_else(|| panic!("{rest:?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let answered: u64 = cells[2].parse().unwrap();
    assert!(answered >= 2, "{row}");
}

// ---------------------------------------------------------------------------------------------
// Reload

#[test]
fn reload_adds_targets_keeps_counters_and_refuses_an_invalid_file() {
    let (a, b) = (reflector(), reflector());
    let (ta, tb) = (a.addr().to_string(), b.addr().to_string());
    let dir = Scratch::new("probe-reload");
    let config = dir.path().join("probe.yaml");
    let write = |targets: &[&str]| {
        let text: String = std::iter::once("defaults: {interval: 50ms}\ntargets:\n".to_string())
            .chain(targets.iter().map(|t| format!("  - address: '{t}'\n")))
            .collect();
        // Written whole, then renamed: a reload never reads half a file.
        dir.write("next.yaml", text.as_bytes());
        std::fs::rename(dir.path().join("next.yaml"), &config).unwrap();
    };
    write(&[&ta]);
    let (mut p, metrics) = probe_with_metrics(&["--config", config.to_str().unwrap(), "--quiet"]);
    let page = scrape_until(metrics, "A probed", |page| {
        value(page, "shout_probe_sent_total", &ta).is_some_and(|n| n >= 3.0)
    });
    let before = value(&page, "shout_probe_sent_total", &ta).unwrap();
    assert_eq!(value(&page, "shout_probe_sent_total", &tb), None, "{page}");

    // SIGHUP with B added: B appears, A's counter carries on.
    write(&[&ta, &tb]);
    p.signal("HUP");
    let page = scrape_until(metrics, "B after SIGHUP", |page| {
        value(page, "shout_probe_sent_total", &tb).is_some_and(|n| n >= 1.0)
    });
    let after = value(&page, "shout_probe_sent_total", &ta).unwrap();
    assert!(after >= before, "A's counter went back from {before} to {after}:\n{page}");
    assert_eq!(plain(&page, "shout_probe_config_last_reload_successful"), Some(1.0), "{page}");
    p.stderr_line(WAIT, |l| l.contains("reloaded: 1 targets kept, 1 added, 0 removed"))
        .unwrap_or_else(|| panic!("no reload line; stderr:\n{}", p.stderr_text()));

    // An invalid file: refused, logged, the old targets probed on.
    dir.write("next.yaml", b"targets:\n  - address: 127.0.0.1\n    colour: red\n");
    std::fs::rename(dir.path().join("next.yaml"), &config).unwrap();
    p.signal("HUP");
    let page = scrape_until(metrics, "the reload failure", |page| {
        plain(page, "shout_probe_config_last_reload_successful") == Some(0.0)
    });
    let kept = value(&page, "shout_probe_sent_total", &ta).unwrap();
    assert!(kept >= after && value(&page, "shout_probe_sent_total", &tb).is_some(), "{page}");
    p.stderr_line(WAIT, |l| {
        l.contains("reload refused") && l.contains(":3:5: targets[0]: unknown field")
    })
    .unwrap_or_else(|| panic!("no refusal line; stderr:\n{}", p.stderr_text()));
    scrape_until(metrics, "A still counting", |page| {
        value(page, "shout_probe_sent_total", &ta).is_some_and(|n| n > kept)
    });

    // POST /-/reload: the bad file is refused with its error (500)...
    let (status, body) = http(metrics, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("unknown field `colour`"), "{body}");
    // ...a good one applied: A removed (its series gone), B kept.
    write(&[&tb]);
    let b_before = value(&scrape(metrics), "shout_probe_sent_total", &tb).unwrap();
    let (status, body) = http(metrics, "POST", "/-/reload");
    assert_eq!((status, body.trim()), (200, "reloaded: 1 targets kept, 0 added, 1 removed"));
    let page = scrape(metrics);
    assert_eq!(value(&page, "shout_probe_sent_total", &ta), None, "A's series are gone:\n{page}");
    assert!(value(&page, "shout_probe_sent_total", &tb).unwrap() >= b_before, "{page}");
    assert_eq!(plain(&page, "shout_probe_config_last_reload_successful"), Some(1.0), "{page}");
    let (status, _) = http(metrics, "GET", "/-/reload");
    assert_eq!(status, 405);
    p.stop();
}

#[test]
fn a_reload_refused_for_its_buckets_names_file_line_and_field() {
    let server = reflector();
    let target = server.addr().to_string();
    let dir = Scratch::new("probe-reload-buckets");
    let config = dir.path().join("probe.yaml");
    let path = config.to_str().unwrap();
    let write = |buckets: &str| {
        let text = format!(
            "defaults: {{interval: 50ms}}\ntargets: [{{address: '{target}'}}]\nbuckets: {buckets}\n"
        );
        dir.write("next.yaml", text.as_bytes());
        std::fs::rename(dir.path().join("next.yaml"), &config).unwrap();
    };
    write("[0.001, 0.01]");
    let (mut p, metrics) = probe_with_metrics(&["--config", path, "--quiet"]);
    // Other buckets, valid ones: the running agent cannot take them.
    write("[0.001, 0.1]");
    let want = format!("{path}:3:10: buckets: cannot change on reload");
    let (status, body) = http(metrics, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains(&want), "want {want:?} in {body:?}");
    p.signal("HUP");
    p.stderr_line(WAIT, |l| l.contains("reload refused") && l.contains(&want))
        .unwrap_or_else(|| panic!("no refusal line with {want:?}; stderr:\n{}", p.stderr_text()));
    // Invalid buckets: the bound to blame, by its own place.
    write("[0.001, 0]");
    let (status, body) = http(metrics, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    let want = format!("{path}:3:18: buckets[1]: 0 is no bucket bound");
    assert!(body.contains(&want), "want {want:?} in {body:?}");
    p.stop();
}

// ---------------------------------------------------------------------------------------------
// The wrong kind of server

/// An authenticated STAMP target at a reflector without a key, an `echo`
/// target at an uppercasing server and an `upper` one at an echo server:
/// every reply mismatched, never answered, and each target's reason logged
/// once (a warning naming it), not once per probe.
#[test]
fn a_server_of_another_kind_is_named_once_per_target_and_never_answers() {
    let stamp = reflector();
    let upper = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let echo = ServerProc::spawn(&["--mode", "echo", "--bind", "127.0.0.1:0", "--quiet"]);
    let (ts, tu, te) =
        (stamp.addr().to_string(), upper.addr().to_string(), echo.addr().to_string());
    let dir = Scratch::new("probe-other-kind");
    dir.write("stamp.key", b"00112233445566778899aabbccddeeff");
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("stamp.key");
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = format!(
        "defaults: {{interval: 20ms, timeout: 200ms}}\ntargets:\n  \
         - {{address: '{ts}', key_file: stamp.key}}\n  \
         - {{address: '{tu}', protocol: echo}}\n  \
         - {{address: '{te}', protocol: upper}}\n"
    );
    dir.write("probe.yaml", text.as_bytes());
    let path = dir.path().join("probe.yaml");
    let (mut p, metrics) = probe_with_metrics(&["--config", path.to_str().unwrap(), "--quiet"]);
    let page = scrape_until(metrics, "20 mismatched replies each", |page| {
        [&ts, &tu, &te]
            .iter()
            .all(|t| value(page, "shout_probe_mismatched_total", t).is_some_and(|n| n >= 20.0))
    });
    for t in [&ts, &tu, &te] {
        assert_eq!(value(&page, "shout_probe_answered_total", t), Some(0.0), "{t}:\n{page}");
    }
    let stderr = p.stop();
    let warnings = |target: &str, what: &str| {
        stderr
            .iter()
            .filter(|l| l.contains(&format!("target {target}:")) && l.contains(what))
            .count()
    };
    let text = stderr.join("\n");
    assert_eq!(warnings(&ts, "the reflector answers unauthenticated"), 1, "{text}");
    assert_eq!(warnings(&tu, "answers the probes uppercased"), 1, "{text}");
    assert_eq!(warnings(&te, "answers the probes unchanged"), 1, "{text}");
    assert!(stderr.iter().filter(|l| l.contains("WARN")).count() <= 3, "{text}");
}

// ---------------------------------------------------------------------------------------------
// Mesh and names

#[test]
fn a_mesh_skips_this_hosts_own_addresses() {
    // 127.0.0.1 is an interface address here; 127.0.0.2 answers on loopback but is not one.
    let own = reflector();
    let other = ServerProc::spawn(&["--mode", "stamp", "--bind", "127.0.0.2:0", "--quiet"]);
    let (mine, theirs) = (own.addr().to_string(), other.addr().to_string());
    let dir = Scratch::new("probe-mesh");
    let text = format!("defaults: {{interval: 50ms}}\nmesh:\n  members: ['{mine}', '{theirs}']\n");
    dir.write("mesh.yaml", text.as_bytes());
    let path = dir.path().join("mesh.yaml");
    let (mut p, metrics) = probe_with_metrics(&["--config", path.to_str().unwrap(), "--quiet"]);
    let page = scrape_until(metrics, "the other member answering", |page| {
        value(page, "shout_probe_answered_total", &theirs).is_some_and(|n| n >= 1.0)
    });
    assert_eq!(value(&page, "shout_probe_sent_total", &mine), None, "own address probed:\n{page}");
    assert_eq!(plain(&page, "shout_probe_targets"), Some(1.0), "{page}");
    p.stderr_line(WAIT, |l| l.contains(&format!("mesh member {mine} is this host")))
        .unwrap_or_else(|| panic!("no self-skip line; stderr:\n{}", p.stderr_text()));
    p.stop();
}

#[test]
fn a_name_that_does_not_resolve_is_reported_never_fatal() {
    let server = reflector();
    let good = server.addr().to_string();
    let dir = Scratch::new("probe-names");
    let text = format!(
        "defaults: {{interval: 50ms}}\nresolve_every: 1s\ntargets:\n  - address: '{good}'\n  - address: no-such-host.invalid\n"
    );
    dir.write("probe.yaml", text.as_bytes());
    let path = dir.path().join("probe.yaml");
    let (mut p, metrics) = probe_with_metrics(&["--config", path.to_str().unwrap(), "--quiet"]);
    let page = scrape_until(metrics, "a second failed look-up", |page| {
        value(page, "shout_probe_resolve_failures_total", "no-such-host.invalid")
            .is_some_and(|n| n >= 2.0)
    });
    assert!(value(&page, "shout_probe_answered_total", &good).is_some_and(|n| n >= 1.0), "{page}");
    assert!(p.stderr_text().contains("no-such-host.invalid does not resolve"));
    p.stop();
}

// ---------------------------------------------------------------------------------------------
// On a terminal

/// Runs `BINARY probe TARGETS... --interval 50ms` on a pty, SIGINT at `stop` s;
/// prints {"status": exit code or null, "output": all terminal output}.
/// argv: BINARY, options as JSON (`stop` s; `rows`: the pty's height, 0 to
/// leave it unset; `resize`: [at s, rows] or null; `lines`: a LINES value to
/// export or null; `color`: unset NO_COLOR), TARGETS...
const PTY_PROBE_PY: &str = r#"
import fcntl, json, os, pty, select, signal, struct, sys, termios, time
binary, opts, targets = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
def size(fd, rows):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 160, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    if opts.get("color"):
        os.environ.pop("NO_COLOR", None)
    if opts.get("lines") is not None:
        os.environ["LINES"] = str(opts["lines"])
    os.execv(binary, [binary, "probe", *targets, "--interval", "50ms"])
if opts.get("rows"):
    size(fd, opts["rows"])
buf = b""
def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        buf += chunk
    return True
start = time.monotonic()
resize = opts.get("resize")
while time.monotonic() < start + opts["stop"]:
    pump(0.05)
    if resize and time.monotonic() >= start + resize[0]:
        size(fd, resize[1])
        resize = None
os.kill(pid, signal.SIGINT)
status = None
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    pump(0.02)
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -os.WTERMSIG(st)
        while pump(0.1):
            pass
        break
if status is None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print(json.dumps({"status": status, "output": buf.decode("utf-8", "replace")}))
"#;

#[test]
fn on_a_terminal_the_table_is_redrawn_every_second_then_the_summary() {
    if !common::python3_or_skip("on_a_terminal_the_table_is_redrawn_every_second_then_the_summary")
    {
        return;
    }
    let server = reflector();
    let target = server.addr().to_string();
    let opts = r#"{"stop": 2.5, "color": true}"#;
    let run = common::run_python(PTY_PROBE_PY, &[BIN, opts, &target], Duration::from_secs(20));
    let out: serde_json::Value =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.describe()));
    let text = out["output"].as_str().unwrap();
    assert_eq!(out["status"], 0, "{text}");
    let draws = text.matches("\x1b[H\x1b[2J").count();
    assert!((2..=4).contains(&draws), "about one redraw a second in 2.5 s, got {draws}:\n{text}");
    let last = text.rsplit("\x1b[H\x1b[2J").next().unwrap();
    assert!(last.contains("TARGET") && last.contains(&target), "{text}");
    assert!(last.contains("\x1b[32mup\x1b[0m"), "coloured without NO_COLOR: {last:?}");
    assert!(last.contains("summary: 1 target"), "the summary after SIGINT: {last:?}");
}

#[test]
fn the_table_fits_the_terminals_own_height_and_follows_a_resize() {
    if !common::python3_or_skip("the_table_fits_the_terminals_own_height_and_follows_a_resize") {
        return;
    }
    let server = reflector();
    let port = server.addr().port();
    // Seven rows to show: one answering, six loopback addresses nobody serves.
    let targets: Vec<String> = (1..=7).map(|i| format!("127.0.0.{i}:{port}")).collect();
    // 8 rows tall with a stale LINES=100 (as after a resize), 30 rows at 1.5 s.
    let opts = r#"{"stop": 2.9, "rows": 8, "lines": 100, "resize": [1.5, 30]}"#;
    let mut args = vec![BIN, opts];
    args.extend(targets.iter().map(String::as_str));
    let run = common::run_python(PTY_PROBE_PY, &args, Duration::from_secs(20));
    let out: serde_json::Value =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.describe()));
    let text = out["output"].as_str().unwrap();
    assert_eq!(out["status"], 0, "{text}");
    let frames: Vec<&str> = text.split("\x1b[H\x1b[2J").skip(1).collect();
    assert!(frames.len() >= 3, "three redraws in 2.9 s: {text}");
    // 8 rows, whatever LINES says: a heading, 5 targets, the "more" line.
    let small = frames[1];
    assert!(small.contains("... and 2 more targets"), "8 rows tall, not LINES=100: {small}");
    // 30 rows after the resize: every target, no "more" line.
    let last = frames.last().unwrap();
    assert!(!last.contains("more targets"), "the resize shows at the next redraw: {last}");
    let table = last.split("summary:").next().unwrap();
    for t in &targets {
        assert!(table.contains(t.as_str()), "{t} in the resized table: {table}");
    }
}
