//! `shout probe`: its arguments, the targets they name (a config file or
//! addresses), and the run around [`Agent::run`](shout::probe::Agent::run):
//! signals, reload (SIGHUP and `POST /-/reload`), names resolved again, the
//! live table or JSON lines, the summary at the end.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use super::{color_wanted, resolve, UsageError};
use shout::metrics::MetricsEndpoint;
use shout::probe::config::{self, Config, Settings};
use shout::probe::resolve::{own_addresses, system_lookup, Resolver};
use shout::probe::{output, Agent, AgentConfig, Protocol, TargetSpec};

/// Shown after `shout probe --help`.
pub const HELP: &str = "\
Examples:
  shout probe 192.0.2.1 192.0.2.2:862
  shout probe --config /etc/shout/probe.yaml --metrics 127.0.0.1:9862
  shout probe --protocol upper --interval 100ms 127.0.0.1:8080 --json

The config file, the metrics and a mesh recipe: docs/PROBE.md.

Exit codes:
  0  stopped by SIGINT or SIGTERM (after the summary)
  1  a socket or bind failure
  2  usage or config error at start";

/// `shout probe`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// Targets: HOST, HOST:PORT or [IPV6]:PORT [default port: 862 for stamp, 8080 for upper, 7 for echo].
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// Targets from this YAML file (docs/PROBE.md) instead; SIGHUP or POST /-/reload reads it again.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics at ADDR/metrics, and POST /-/reload (port 0 picks one; the first stdout line says which).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// One JSON object per target per interval on stdout, instead of the table; the summary at the end as JSON lines too.
    #[arg(long)]
    json: bool,
    /// Neither the table nor JSON lines (the summary at the end still comes); not with --json.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    quick: QuickArgs,
}

/// The settings of targets given as arguments (a config file has its own).
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Targets given as arguments")]
struct QuickArgs {
    /// stamp (RFC 8762 test packets), upper (shout server) or echo [default: stamp].
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    protocol: Option<Protocol>,
    /// Time between two probes of a target, 10ms to 1h [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = |t: &str| config::duration_in(t, config::INTERVAL_RANGE))]
    interval: Option<Duration>,
    /// How long a probe waits for its answer before it counts as lost, 1ms to 60s [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = |t: &str| config::duration_in(t, config::TIMEOUT_RANGE))]
    timeout: Option<Duration>,
    /// Bytes of UDP payload per probe [default: 44 for stamp, 112 authenticated, 64 for upper and echo].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(1..=65507))]
    size: Option<u16>,
    /// DSCP of the probes: a name (ef, af11 to af43, cs0 to cs7, be, va, le) or 0 to 63.
    #[arg(long, value_name = "CLASS", value_parser = config::parse_dscp)]
    dscp: Option<u8>,
    /// TTL (hop limit) of the probes, 1 to 255.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=255))]
    ttl: Option<u8>,
    /// Authenticated STAMP: the HMAC key, as hex text or raw bytes, from this file (mode 600).
    #[arg(long, value_name = "PATH")]
    stamp_key_file: Option<PathBuf>,
}

impl QuickArgs {
    fn any(&self) -> bool {
        self.protocol.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.size.is_some()
            || self.dscp.is_some()
            || self.ttl.is_some()
            || self.stamp_key_file.is_some()
    }

    fn settings(&self) -> Settings {
        Settings {
            protocol: self.protocol,
            interval: self.interval,
            timeout: self.timeout,
            size: self.size.map(usize::from),
            dscp: self.dscp,
            ttl: self.ttl,
            key_file: self.stamp_key_file.clone(),
            ..Settings::default()
        }
    }
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "stamp" => Ok(Protocol::Stamp),
        "upper" => Ok(Protocol::Upper),
        "echo" => Ok(Protocol::Echo),
        _ => Err(format!("unknown protocol {text:?} (expected stamp, upper or echo)")),
    }
}

/// Where the targets come from, read again on reload.
#[derive(Debug)]
enum Source {
    File(PathBuf),
    Args(Vec<String>, Settings),
}

impl Source {
    fn load(&self) -> Result<Config, config::ConfigError> {
        match self {
            Source::File(path) => config::load(path),
            Source::Args(addresses, settings) => config::from_addresses(addresses, settings),
        }
    }

    /// The file config errors name (`command line` for addresses as arguments).
    fn file(&self) -> &std::path::Path {
        match self {
            Source::File(path) => path,
            Source::Args(..) => std::path::Path::new("command line"),
        }
    }
}

/// What reload and re-resolution change, behind one lock.
struct State {
    source: Source,
    resolver: Resolver,
    resolve_every: Duration,
    buckets: Vec<f64>,
    /// What the agent probes now.
    specs: Vec<TargetSpec>,
}

impl ProbeArgs {
    /// Probes until SIGINT or SIGTERM: `listening on ADDR` first with
    /// `--metrics`, then the table or JSON lines, the summary at the end.
    pub fn run(self) -> Result<ExitCode> {
        run(self)
    }

    /// What goes on stdout while probing; `--json` with `--quiet` is refused,
    /// since the one asks for the lines the other suppresses.
    fn show(&self, terminal: bool) -> Result<Show> {
        match (self.json, self.quiet) {
            (true, true) => Err(UsageError(
                "--json and --quiet together: --quiet writes no JSON lines while probing; give \
                 --json for a line per target per interval, or --quiet for nothing but the \
                 summary at the end"
                    .into(),
            )
            .into()),
            (false, true) => Ok(Show::Nothing),
            (true, false) => Ok(Show::Json),
            (false, false) if terminal => Ok(Show::Table { color: color_wanted() }),
            (false, false) => Ok(Show::Nothing),
        }
    }

    fn source(&self) -> Result<Source> {
        match (&self.config, self.targets.is_empty()) {
            (Some(_), false) => {
                Err(UsageError("give targets as arguments or --config FILE, not both".into())
                    .into())
            }
            (Some(_), true) if self.quick.any() => Err(UsageError(
                "--protocol, --interval and the other target flags are for targets given as \
                 arguments: a config file says them per target (docs/PROBE.md)"
                    .into(),
            )
            .into()),
            (Some(path), true) => Ok(Source::File(path.clone())),
            (None, true) => Err(UsageError(
                "no targets: give addresses (shout probe 192.0.2.1) or --config FILE".into(),
            )
            .into()),
            (None, false) => Ok(Source::Args(self.targets.clone(), self.quick.settings())),
        }
    }
}

fn own() -> Vec<std::net::IpAddr> {
    own_addresses().unwrap_or_else(|err| {
        tracing::warn!("cannot list this host's addresses ({err}): mesh members are all probed");
        Vec::new()
    })
}

fn run(args: ProbeArgs) -> Result<ExitCode> {
    let mode = args.show(io::stdout().is_terminal())?;
    let source = args.source()?;
    let mut config = source.load().map_err(|err| UsageError(err.to_string()))?;
    let mut resolver = Resolver::new(std::mem::take(&mut config.targets), own());
    let round = resolver.resolve(&system_lookup);
    if let (Source::Args(..), Some((name, why))) = (&source, round.failed.first()) {
        return Err(UsageError(format!("{name} does not resolve: {why}")).into());
    }
    for name in &round.skipped {
        tracing::info!(target = %name, "mesh member {name} is this host: not probed");
    }
    // The config checks buckets as the agent does; should the agent still
    // refuse them, the error names their place in the file like the others.
    let agent =
        Agent::new(AgentConfig { buckets: config.buckets.clone() }).map_err(|err| {
            match err.kind() {
                io::ErrorKind::InvalidInput => {
                    let why = err.to_string();
                    let why = why.strip_prefix("buckets: ").unwrap_or(&why);
                    let err = config.buckets_error(source.file(), why);
                    anyhow::Error::new(UsageError(err.to_string()))
                }
                _ => anyhow::Error::new(err).context("starting the agent"),
            }
        })?;
    agent.apply(round.specs.clone()).map_err(|err| UsageError(err.to_string()))?;
    agent.set_reload_status(true);
    for (name, why) in &round.failed {
        agent.note_resolve_failure(name);
        tracing::warn!(target = %name, "{name} does not resolve ({why}): probed once it does");
    }
    let metrics = match &args.metrics {
        Some(addr) => Some(
            MetricsEndpoint::bind(resolve(addr)?)
                .with_context(|| format!("binding the metrics endpoint {addr}"))?,
        ),
        None => None,
    };
    // Handlers first: a supervisor may signal as soon as it reads `listening on`.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("installing signal handlers")?;
    if let Some(m) = &metrics {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {}", m.local_addr())?;
        stdout.flush()?;
        tracing::info!(event = "metrics", addr = %m.local_addr(), "metrics on http://{}/metrics", m.local_addr());
    }
    let (rx, tx) = agent.kernel_timestamps();
    let said = |on| if on { "the kernel" } else { "the agent's clock (no kernel timestamps here)" };
    let n = round.specs.len();
    tracing::info!(
        targets = n,
        "probing {n} target{}; receive times from {}, send times from {}",
        if n == 1 { "" } else { "s" },
        said(rx),
        said(tx)
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    let state = Mutex::new(State {
        source,
        resolver,
        resolve_every: config.resolve_every,
        buckets: config.buckets,
        specs: round.specs,
    });
    let reload_hook = || reload(&state, &agent);
    let result = std::thread::scope(|scope| {
        let prober = scope.spawn(|| {
            let result = agent.run(&stop);
            stop.store(true, Relaxed); // ends the others if `run` failed
            result
        });
        if let Some(m) = &metrics {
            let (agent, stop) = (&agent, &stop);
            scope.spawn(move || {
                let protobuf = || agent.metrics_page_protobuf();
                m.serve_negotiated(
                    stop,
                    || agent.metrics_page(),
                    Some(&protobuf),
                    Some(&reload_hook),
                );
            });
        }
        let shown = control(&agent, &state, &stop, &hup, mode);
        stop.store(true, Relaxed);
        let ran =
            prober.join().unwrap_or_else(|_| Err(io::Error::other("the probing thread panicked")));
        ran.context("probing").and(shown)
    });
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    result?;
    let snaps = agent.snapshot();
    let text = if args.json {
        let now = SystemTime::now();
        snaps.iter().map(|s| output::json_line(s, now) + "\n").collect::<String>()
    } else {
        output::summary(&snaps)
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => return Err(err.into()),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What goes on stdout while probing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Show {
    Nothing,
    Json,
    Table { color: bool },
}

/// Reads the targets again and applies them; an invalid config is logged and
/// refused, and the old one stays. Returns what happened, for `POST /-/reload`.
fn reload(state: &Mutex<State>, agent: &Agent) -> Result<String, String> {
    let mut state = lock(state);
    let refuse = |why: String| {
        tracing::error!(event = "reload", "reload refused, the old config stays: {why}");
        agent.set_reload_status(false);
        Err(why)
    };
    let config = match state.source.load() {
        Ok(config) => config,
        Err(err) => return refuse(err.to_string()),
    };
    if config.buckets != state.buckets {
        let why = match config.buckets_at {
            Some(_) => "cannot change on reload: restart the agent for new buckets",
            None => "cannot change on reload (the file no longer gives them, so they would be the default): restart the agent for new buckets",
        };
        return refuse(config.buckets_error(state.source.file(), why).to_string());
    }
    let mut resolver = state.resolver.retarget(config.targets, own());
    let round = resolver.resolve(&system_lookup);
    for (name, why) in &round.failed {
        agent.note_resolve_failure(name);
        tracing::warn!(target = %name, "{name} does not resolve ({why})");
    }
    match agent.apply(round.specs.clone()) {
        Err(err) => refuse(err.to_string()),
        Ok(applied) => {
            agent.set_reload_status(true);
            state.resolver = resolver;
            state.resolve_every = config.resolve_every;
            state.specs = round.specs;
            let message = format!(
                "reloaded: {} targets kept, {} added, {} removed",
                applied.kept, applied.added, applied.removed
            );
            tracing::info!(event = "reload", "{message}");
            Ok(message)
        }
    }
}

/// Resolves names again; a name that fails keeps its last address.
fn re_resolve(state: &Mutex<State>, agent: &Agent) {
    let mut state = lock(state);
    let round = state.resolver.resolve(&system_lookup);
    for (name, why) in &round.failed {
        agent.note_resolve_failure(name);
        tracing::warn!(target = %name, "{name} does not resolve ({why}): its last address, if any, is kept");
    }
    if round.specs != state.specs {
        match agent.apply(round.specs.clone()) {
            Ok(_) => state.specs = round.specs,
            Err(err) => tracing::warn!("new addresses not applied: {err}"),
        }
    }
}

/// The main thread's loop until `stop`: reloads on SIGHUP, resolves names
/// again, shows the table or writes JSON lines. A closed stdout stops the
/// agent (as a pipe into `head` should); other write errors end it.
fn control(
    agent: &Agent,
    state: &Mutex<State>,
    stop: &AtomicBool,
    hup: &AtomicBool,
    show: Show,
) -> Result<()> {
    let tick = Duration::from_millis(50);
    let start = Instant::now();
    let mut next_resolve = start + lock(state).resolve_every;
    let mut next_draw = start;
    // When each target's next JSON line is due, by name and labels.
    let mut due: std::collections::HashMap<(String, Vec<(String, String)>), Instant> =
        std::collections::HashMap::new();
    let mut stdout = io::stdout();
    while !stop.load(Relaxed) {
        std::thread::sleep(tick);
        let now = Instant::now();
        if hup.swap(false, Relaxed) {
            let _ = reload(state, agent);
        }
        if now >= next_resolve {
            if lock(state).resolver.has_names() {
                re_resolve(state, agent);
            }
            next_resolve = now + lock(state).resolve_every;
        }
        let written = match show {
            Show::Nothing => Ok(()),
            Show::Table { color } if now >= next_draw => {
                next_draw = now + Duration::from_secs(1);
                // Asked before every redraw, so a resized terminal gets a fitting table.
                let lines = std::env::var("LINES").ok();
                let rows = output::table_rows(output::terminal_rows(), lines.as_deref());
                let text =
                    format!("{}{}", output::CLEAR, output::table(&agent.snapshot(), color, rows));
                stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
            }
            Show::Table { .. } => Ok(()),
            // JSON lines are checked every 100 ms: a target's line comes once per
            // interval, at most ten a second.
            Show::Json if now >= next_draw => {
                next_draw = now + Duration::from_millis(100);
                let intervals: std::collections::HashMap<_, _> = lock(state)
                    .specs
                    .iter()
                    .map(|s| ((s.name.clone(), s.labels.clone()), s.interval))
                    .collect();
                let wall = SystemTime::now();
                let mut text = String::new();
                for snap in agent.snapshot() {
                    let key = (snap.name.clone(), snap.labels.clone());
                    let Some(interval) = intervals.get(&key) else { continue };
                    let at = due.entry(key).or_insert(now + *interval);
                    if now >= *at {
                        *at = now + *interval;
                        text += &output::json_line(&snap, wall);
                        text.push('\n');
                    }
                }
                due.retain(|k, _| intervals.contains_key(k));
                stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
            }
            Show::Json => Ok(()),
        };
        match written {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                stop.store(true, Relaxed);
                return Ok(());
            }
            Err(err) => return Err(anyhow::Error::new(err).context("writing to stdout")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<ProbeArgs, clap::Error> {
        let command = ProbeArgs::augment_args(clap::Command::new("probe").no_binary_name(true));
        ProbeArgs::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    #[test]
    fn quick_flags_become_settings() {
        let args = parse(&[
            "--protocol",
            "echo",
            "--interval",
            "250ms",
            "--dscp",
            "af41",
            "--ttl",
            "3",
            "h:7",
        ])
        .unwrap();
        let Source::Args(addresses, settings) = args.source().unwrap() else { panic!() };
        assert_eq!(addresses, ["h:7"]);
        assert_eq!(settings.protocol, Some(Protocol::Echo));
        assert_eq!(
            (settings.interval, settings.dscp, settings.ttl),
            (Some(Duration::from_millis(250)), Some(34), Some(3))
        );
    }

    #[test]
    fn absurd_flags_and_mixed_sources_are_refused_with_a_reason() {
        for (args, reason) in [
            (&["--interval", "1ms", "h"][..], "10ms to 1h"),
            (&["--timeout", "2m", "h"], "1ms to 1m"),
            (&["--dscp", "af44", "h"], "not a DSCP"),
            (&["--ttl", "0", "h"], "0"),
            (&["--protocol", "icmp", "h"], "stamp, upper or echo"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(reason), "{args:?}: {err}");
        }
        let err = parse(&["--config", "f", "h"]).unwrap().source().unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let err = parse(&["--config", "f", "--interval", "1s"]).unwrap().source().unwrap_err();
        assert!(err.to_string().contains("per target"), "{err}");
        let err = parse(&[]).unwrap().source().unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
    }

    #[test]
    fn json_with_quiet_is_refused_and_each_alone_says_what_stdout_gets() {
        let err = parse(&["--json", "--quiet", "h"]).unwrap().show(false).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
        assert!(err.to_string().contains("--json and --quiet together"), "{err}");
        let show = |args: &[&str], terminal| parse(args).unwrap().show(terminal).unwrap();
        assert_eq!(show(&["--json", "h"], true), Show::Json);
        assert_eq!(show(&["-q", "h"], true), Show::Nothing);
        assert_eq!(show(&["h"], false), Show::Nothing);
        assert!(matches!(show(&["h"], true), Show::Table { .. }));
    }
}
