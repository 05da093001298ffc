//! Tests of the config: a good file, every kind of error with its place, bounds, mesh,
//! inheritance.

use super::*;

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new("p.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigError {
    parse(text, Path::new("p.yaml")).unwrap_err()
}

/// The error's `file:line:column: field` prefix and its message.
fn err_at(text: &str) -> (String, String) {
    let err = parse_err(text);
    let (line, column) = err.at.unwrap_or_else(|| panic!("no place in {err}"));
    (
        format!("{}:{line}:{column}: {}", err.file.display(), err.field.unwrap_or_default()),
        err.message,
    )
}

const GOOD: &str = "\
defaults:
  protocol: stamp
  interval: 1s
  timeout: 2s
  dscp: ef
  ttl: 64
  ssid: 7
  labels: {site: ams, tier: 1}
targets:
  - address: 192.0.2.1:862
    labels: {role: core}
    interval: 500ms
  - address: '[2001:db8::1]'
    protocol: echo
    size: 100
    dscp: 10
  - address: probe.example.net:9000
    protocol: upper
    labels: {site: fra}
resolve_every: 30s
buckets: [0.001, 0.01, 0.1]
";

#[test]
fn a_good_file_gives_every_target_its_settings() {
    let config = parse_ok(GOOD);
    assert_eq!(config.resolve_every, Duration::from_secs(30));
    assert_eq!(config.buckets, [0.001, 0.01, 0.1]);
    let [a, b, c] = &config.targets[..] else { panic!("{:?}", config.targets) };
    assert_eq!((a.name.as_str(), a.host.as_str(), a.port), ("192.0.2.1:862", "192.0.2.1", 862));
    assert_eq!(
        (a.protocol, a.interval, a.timeout),
        (Protocol::Stamp, Duration::from_millis(500), Duration::from_secs(2))
    );
    assert_eq!((a.size, a.dscp, a.ttl, a.ssid), (44, Some(46), Some(64), 7));
    let labels = |t: &Target| t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    assert_eq!(labels(a), ["role=core", "site=ams", "tier=1"]);
    assert_eq!(
        (b.host.as_str(), b.port, b.protocol, b.size, b.dscp),
        ("2001:db8::1", 7, Protocol::Echo, 100, Some(10))
    );
    assert_eq!(b.interval, Duration::from_secs(1), "inherited from defaults");
    assert_eq!((c.host.as_str(), c.port, c.size), ("probe.example.net", 9000, 64));
    assert_eq!(labels(c), ["site=fra", "tier=1"], "a target's label overrides the default's");
    assert!(c.ip().is_none() && a.ip().is_some());
    let spec = a.spec("192.0.2.1:862".parse().unwrap());
    assert_eq!(
        (spec.name.as_str(), spec.interval, spec.labels.len()),
        ("192.0.2.1:862", a.interval, 3)
    );
}

#[test]
fn without_defaults_the_documented_ones_apply() {
    let config = parse_ok("targets: [{address: 192.0.2.1}]");
    let t = &config.targets[0];
    assert_eq!(
        (t.protocol, t.port, t.interval, t.timeout),
        (Protocol::Stamp, 862, Duration::from_secs(1), Duration::from_secs(2))
    );
    assert_eq!((t.size, t.dscp, t.ttl, t.ssid, t.key.is_none()), (44, None, None, 0, true));
    assert_eq!(
        (config.resolve_every, config.buckets.len()),
        (Duration::from_secs(60), DEFAULT_BUCKETS.len())
    );
}

#[test]
fn every_error_names_file_line_column_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "targets:\n  - address: 192.0.2.1\n    colour: red\n",
            "p.yaml:3:5: targets[0]",
            "unknown field `colour`",
        ),
        (
            "defaults:\n  intervall: 1s\ntargets: [{address: 192.0.2.1}]\n",
            "p.yaml:2:3: defaults",
            "unknown field `intervall`",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    interval: 1ms\n",
            "p.yaml:3:15: targets[0].interval",
            "10ms to 1h",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    interval: 2h\n",
            "p.yaml:3:15: targets[0].interval",
            "out of range",
        ),
        (
            "defaults:\n  timeout: -1s\ntargets: [{address: 192.0.2.1}]\n",
            "p.yaml:2:12: defaults.timeout",
            "negative",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    dscp: af44\n",
            "p.yaml:3:11: targets[0].dscp",
            "not a DSCP",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    dscp: 64\n",
            "p.yaml:3:11: targets[0].dscp",
            "0 to 63",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    ttl: 0\n",
            "p.yaml:3:10: targets[0].ttl",
            "1 to 255",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    size: 70000\n",
            "p.yaml:3:11: targets[0].size",
            "65507",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    protocol: icmp\n",
            "p.yaml:3:15: targets[0].protocol",
            "stamp, upper or echo",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    labels: {target: x}\n",
            "p.yaml:3:14: targets[0].labels",
            "sets itself",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    labels: {9lives: x}\n",
            "p.yaml:3:14: targets[0].labels",
            "not a Prometheus label name",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n  - address: 192.0.2.1\n",
            "p.yaml:3:14: targets[1].address",
            "duplicate target",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n  - address: 192.0.2.1:862\n",
            "p.yaml:3:14: targets[1].address",
            "probed already by targets[0].address",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    size: 43\n",
            "p.yaml:3:11: targets[0].size",
            "at least 44",
        ),
        (
            "defaults:\n  size: 20\n  protocol: echo\ntargets:\n  - address: 192.0.2.1\n",
            "p.yaml:2:9: defaults.size",
            "at least 28",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    size: 46\n",
            "p.yaml:3:11: targets[0].size",
            "use 44 or 48",
        ),
        ("targets:\n  - address: 'host:0'\n", "p.yaml:2:14: targets[0].address", "port"),
        ("targets:\n  - address: 'a b'\n", "p.yaml:2:14: targets[0].address", "not a host name"),
        (
            "targets:\n  - address: 192.0.2.1\n    protocol: echo\n    key_file: k\n",
            "p.yaml:4:15: targets[0].key_file",
            "protocol stamp",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    key_file: /nonexistent/k\n",
            "p.yaml:3:15: targets[0].key_file",
            "/nonexistent/k",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nbuckets: [1, 0.5]\n",
            "p.yaml:2:14: buckets[1]",
            "bucket bounds must increase: 0.5 follows 1",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nbuckets:\n  - 0.1\n  - -2\n",
            "p.yaml:4:5: buckets[1]",
            "-2 is no bucket bound",
        ),
        ("targets: [{address: 192.0.2.1}]\nbuckets: []\n", "p.yaml:2:10: buckets", "give 1 to 64"),
        (
            "targets: [{address: 192.0.2.1}]\nbuckets: [1.0e-9, 1.2e-9]\n",
            "p.yaml:2:19: buckets[1]",
            "must increase to the nanosecond",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nbuckets: [1.0e-10]\n",
            "p.yaml:2:11: buckets[0]",
            "from 1e-9 (1 ns) to 3600",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nresolve_every: 0s\n",
            "p.yaml:2:16: resolve_every",
            "1s to 24h",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nmesh: {members: []}\n",
            "p.yaml:2:17: mesh.members",
            "needs members",
        ),
        (
            "targets: [{address: 192.0.2.1}]\nmesh: {members: [192.0.2.1]}\n",
            "p.yaml:2:18: mesh.members[0]",
            "duplicate",
        ),
        (
            "targets:\n  - address: 192.0.2.1\n    ssid: 70000\n",
            "p.yaml:3:11: targets[0].ssid",
            "u16",
        ),
    ];
    for (text, at, message) in cases {
        let (got_at, got) = err_at(text);
        assert_eq!(&got_at, at, "{text}: {got}");
        assert!(got.contains(message), "{text}: {got:?} lacks {message:?}");
    }
}

#[test]
fn the_whole_error_reads_as_file_line_column_field_message() {
    let err = parse_err("targets:\n  - address: 192.0.2.1\n    colour: red\n").to_string();
    assert!(
        err.starts_with("p.yaml:3:5: targets[0]: unknown field `colour`, expected one of"),
        "{err}"
    );
    assert!(!err.contains(" at line "), "the place is said once: {err}");
    // A null or a list where a scalar belongs says what a scalar may be.
    let err = parse_err("targets:\n  - {address: 192.0.2.1, labels: {x: ~}}\n").to_string();
    assert!(err.ends_with("expected a string, number or boolean"), "{err}");
}

#[test]
fn zero_targets_are_refused() {
    for text in ["{}", "targets: []", "defaults: {interval: 1s}", ""] {
        let err = parse_err(text);
        assert!(err.message.contains("no targets"), "{text:?}: {err}");
    }
    let err = from_addresses(&[], &Settings::default()).unwrap_err();
    assert!(err.to_string().contains("no targets"), "{err}");
}

#[test]
fn more_than_the_bound_of_targets_is_refused_at_the_entry_that_passes_it() {
    let mut text = String::from("targets:\n");
    for i in 0..=MAX_TARGETS {
        text += &format!("- address: 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255);
    }
    let err = parse_err(&text);
    assert_eq!(err.at.map(|a| a.0), Some(MAX_TARGETS + 2), "{err}");
    assert!(err.message.contains("more than 100000 targets"), "{err}");
    // Exactly the bound is fine.
    let cut = text.rfind("- address").unwrap();
    assert_eq!(parse_ok(&text[..cut]).targets.len(), MAX_TARGETS);
}

#[test]
fn mesh_members_inherit_mesh_settings_then_defaults() {
    let text = "\
defaults: {interval: 2s, labels: {site: ams}}
mesh:
  members: [10.0.0.1, '10.0.0.2:9862', h3.example.net]
  labels: {mesh: dc1}
  ttl: 9
targets:
  - address: 192.0.2.1
";
    let config = parse_ok(text);
    let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["192.0.2.1", "10.0.0.1", "10.0.0.2:9862", "h3.example.net"]);
    let m = &config.targets[2];
    assert!(m.mesh && !config.targets[0].mesh);
    assert_eq!((m.port, m.ttl, m.interval), (9862, Some(9), Duration::from_secs(2)));
    assert_eq!(m.labels, [("mesh".into(), "dc1".into()), ("site".into(), "ams".into())]);
    assert_eq!(config.targets[0].ttl, None, "mesh settings stay in the mesh");
}

#[test]
fn key_files_are_read_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("shout-probe-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("stamp.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = "defaults: {key_file: stamp.key}\ntargets: [{address: 192.0.2.1}, {address: 192.0.2.2, size: 120}]\n";
    let config = parse(text, &dir.join("probe.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.targets[0].key.as_deref().map(<[u8]>::len), Some(16));
    assert_eq!((config.targets[0].size, config.targets[1].size), (112, 120), "authenticated sizes");
    let err = parse(
        "defaults: {key_file: stamp.key}\ntargets: [{address: 192.0.2.1, size: 44}]\n",
        &dir.join("probe.yaml"),
    )
    .unwrap_err();
    assert!(err.message.contains("at least 112"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn command_line_addresses_take_the_quick_flags() {
    let settings = Settings {
        protocol: Some(Protocol::Upper),
        interval: Some(Duration::from_millis(100)),
        ..Settings::default()
    };
    let config = from_addresses(&["127.0.0.1".into(), "[::1]:9000".into()], &settings).unwrap();
    assert_eq!(config.targets[0].port, 8080);
    assert_eq!((config.targets[1].host.as_str(), config.targets[1].port), ("::1", 9000));
    assert!(config
        .targets
        .iter()
        .all(|t| t.interval == Duration::from_millis(100) && t.size == 64));
    let err = from_addresses(&["a:1".into(), "a:1".into()], &Settings::default()).unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    let err = from_addresses(&["a:x".into()], &Settings::default()).unwrap_err();
    assert!(err.to_string().starts_with("command line: address: "), "{err}");
    // Errors about the quick flags name the flag, not the config file's key.
    let settings = Settings { size: Some(45), ..Settings::default() };
    let err = from_addresses(&["127.0.0.1".into()], &settings).unwrap_err();
    assert!(err.to_string().starts_with("command line: --size: "), "{err}");
    let settings = Settings {
        protocol: Some(Protocol::Upper),
        key_file: Some("stamp.key".into()),
        ..Settings::default()
    };
    let err = from_addresses(&["127.0.0.1".into()], &settings).unwrap_err();
    assert!(err.to_string().starts_with("command line: --stamp-key-file: "), "{err}");
}

#[test]
fn dscp_names_and_numbers() {
    let named = [
        ("be", 0),
        ("default", 0),
        ("le", 1),
        ("cs0", 0),
        ("cs7", 56),
        ("af11", 10),
        ("af23", 22),
        ("af43", 38),
        ("va", 44),
        ("ef", 46),
    ];
    for (name, value) in named {
        assert_eq!(parse_dscp(name), Ok(value), "{name}");
    }
    for bad in ["cs8", "af50", "af10", "x", "-1", ""] {
        assert!(parse_dscp(bad).is_err(), "{bad}");
    }
    let config = parse_ok(
        "defaults: {dscp: 46}\ntargets: [{address: 192.0.2.1}, {address: 192.0.2.2, dscp: AF41}]\n",
    );
    assert_eq!((config.targets[0].dscp, config.targets[1].dscp), (Some(46), Some(34)));
}

#[test]
fn durations_take_units_or_seconds() {
    let config =
        parse_ok("defaults: {interval: 0.25, timeout: 1500ms}\ntargets: [{address: 192.0.2.1}]\n");
    assert_eq!(config.targets[0].interval, Duration::from_millis(250));
    assert_eq!(config.targets[0].timeout, Duration::from_millis(1500));
}

#[test]
fn buckets_keep_their_place_for_errors_found_later() {
    // A reload that would change the buckets is refused by the agent, not the
    // parser: its error still names the file, the line and column, and the field.
    let config = parse_ok("targets: [{address: 192.0.2.1}]\n\nbuckets: [0.5, 1]\n");
    assert_eq!(config.buckets_at, Some((3, 10)));
    let err = config.buckets_error(Path::new("p.yaml"), "cannot change on reload");
    assert_eq!(err.to_string(), "p.yaml:3:10: buckets: cannot change on reload");
    let config = parse_ok("targets: [{address: 192.0.2.1}]\n");
    assert_eq!(config.buckets_at, None, "the default is written nowhere");
    let err = config.buckets_error(Path::new("p.yaml"), "cannot change");
    assert_eq!(err.to_string(), "p.yaml: buckets: cannot change");
}
