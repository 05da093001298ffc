//! `shout server`: its arguments, the [`ServerConfig`] they make, and the run
//! around [`Server::run`]: signals, systemd, stats lines, the summary.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::stamp::{ReflectorArgs, STAMP_PORT};
use super::{duration_in, resolve, resolve_all, UsageError};
use shout::logging::{self, LogFormat};
use shout::metrics::{self, MetricsEndpoint};
use shout::MAX_DATAGRAM_V6;
use shout::{Mode, PolicyConfig, RateLimit, Server, ServerConfig};

/// `shout server`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to serve (IPv4, [IPv6], or host name with port; port 0 picks one). Repeat to serve several. [default: 127.0.0.1:8080; with --mode stamp, 127.0.0.1:862]
    #[arg(long, short, value_name = "ADDR")]
    bind: Vec<String>,
    /// upper: ASCII a-z uppercased, other bytes unchanged; echo: unchanged (RFC 862); stamp: a STAMP reflector (RFC 8762, RFC 8972; docs/STAMP.md).
    #[arg(long, default_value = "upper", value_parser = parse_mode)]
    mode: ServerMode,
    /// Drop (unanswered, counted) datagrams longer than this many bytes [default: 65527, the most a UDP datagram carries over IPv6; over IPv4 none is longer than 65507].
    #[arg(long, value_name = "BYTES", default_value_t = MAX_DATAGRAM_V6, hide_default_value = true, value_parser = parse_max_datagram)]
    max_datagram: usize,
    /// Do not show arriving datagrams (warnings and the summary still go to stderr).
    #[arg(long, short)]
    quiet: bool,
    /// Sockets and threads per address, spread by SO_REUSEPORT [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Spin on the socket instead of sleeping: lowest latency, but each worker keeps a core 100% busy.
    #[arg(long)]
    busy_poll: bool,
    /// Do not use UDP GRO/GSO even where the kernel has them.
    #[arg(long)]
    no_offload: bool,
    #[command(flatten)]
    defences: DefenceArgs,
    /// Print a stats line (counters and answers/s) this often, e.g. 10s. SIGUSR1 prints one at any time.
    #[arg(long, value_name = "DURATION", value_parser = parse_stats_interval)]
    stats_interval: Option<Duration>,
    /// Serve Prometheus metrics over HTTP at ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Format of the lines on stderr: text, or json (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    stamp: ReflectorArgs,
}

/// What the server answers with: a byte transform, or STAMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerMode {
    Bytes(Mode),
    Stamp,
}

fn parse_mode(text: &str) -> Result<ServerMode, String> {
    match text {
        "stamp" => Ok(ServerMode::Stamp),
        _ => text
            .parse()
            .map(ServerMode::Bytes)
            .map_err(|_| format!("unknown mode {text:?} (expected upper, echo or stamp)")),
    }
}

/// The address served when no `--bind` is given.
fn default_bind(mode: ServerMode) -> String {
    match mode {
        ServerMode::Stamp => format!("127.0.0.1:{STAMP_PORT}"),
        ServerMode::Bytes(_) => "127.0.0.1:8080".into(),
    }
}

/// Defences against reflection and loops (docs/SECURITY.md explains each default).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Defences")]
pub struct DefenceArgs {
    /// Replies per second per source prefix, or "off". Loopback sources are exempt unless --limit-loopback.
    #[arg(long, value_name = "PPS|off", default_value = "100", value_parser = parse_rate)]
    rate_limit: Rate,
    /// Replies a quiet source may get at once [default: the rate, at least 1].
    #[arg(long, value_name = "N", value_parser = parse_burst)]
    burst: Option<u32>,
    /// Rate-limit loopback sources too.
    #[arg(long)]
    limit_loopback: bool,
    /// Replies per second to all rate-limited sources together, or "off", against floods from many (forged) sources [default: off].
    #[arg(long, value_name = "PPS|off", default_value = "off", hide_default_value = true, value_parser = parse_rate)]
    rate_limit_total: Rate,
    /// Never rate-limit sources in this prefix (e.g. 192.0.2.0/24, 2001:db8::7). Repeatable.
    #[arg(long, value_name = "PREFIX")]
    rate_limit_exempt: Vec<shout::Prefix>,
    /// IPv4 sources sharing this prefix share a bucket.
    #[arg(long, value_name = "BITS", default_value_t = 32, value_parser = clap::value_parser!(u8).range(0..=32))]
    limit_prefix_v4: u8,
    /// IPv6 sources sharing this prefix share a bucket.
    #[arg(long, value_name = "BITS", default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128))]
    limit_prefix_v6: u8,
    /// Buckets in the rate-limit table (8 bytes each; memory stays fixed whatever the number of sources).
    #[arg(long, value_name = "N", default_value_t = 1 << 16, value_parser = parse_table_size)]
    limit_table: usize,
    /// Answer source ports below 1024 (refused by default, as OpenBSD's inetd does).
    #[arg(long)]
    allow_privileged_ports: bool,
    /// Answer this source port even if a rule refuses it (not 0: port 0 is always refused). Repeatable.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    allow_port: Vec<u16>,
    /// Also refuse this source port (1900, 3702, 5353 and 11211 are refused already). Repeatable.
    #[arg(long, value_name = "PORT")]
    deny_port: Vec<u16>,
    /// Answer broadcast, multicast and unspecified source addresses.
    #[arg(long)]
    allow_any_source: bool,
}

impl DefenceArgs {
    /// The defences as the server takes them.
    pub fn policy(&self) -> PolicyConfig {
        let mut deny_ports = shout::policy::REFLECTOR_PORTS.to_vec();
        deny_ports.extend(&self.deny_port);
        PolicyConfig {
            deny_privileged_ports: !self.allow_privileged_ports,
            deny_ports,
            allow_ports: self.allow_port.clone(),
            deny_bad_sources: !self.allow_any_source,
            rate_limit: self.rate_limit.0.map(|rate| RateLimit {
                rate,
                burst: self.burst.unwrap_or(rate.ceil().clamp(1.0, u32::MAX as f64) as u32),
                v4_prefix: self.limit_prefix_v4,
                v6_prefix: self.limit_prefix_v6,
                table_size: self.limit_table,
                include_loopback: self.limit_loopback,
                total: self.rate_limit_total.0,
                exempt: self.rate_limit_exempt.clone(),
            }),
        }
    }
}

fn parse_table_size(text: &str) -> Result<usize, String> {
    let max = shout::policy::MAX_TABLE;
    match text.parse::<usize>() {
        Ok(n) if (4..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a table size from 4 to {max}")),
    }
}

/// More workers than this is a typing error, not a machine: each is a socket
/// and a thread per address.
pub const MAX_WORKERS: usize = 1024;

fn parse_max_datagram(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_DATAGRAM_V6).contains(&n) => Ok(n),
        Ok(0) => Err("0 would drop every datagram but empty ones: use 1 to 65527".into()),
        _ => Err(format!("{text:?} is not a size from 1 to {MAX_DATAGRAM_V6} bytes")),
    }
}

fn parse_burst(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a burst: use 1 or more replies")),
    }
}

/// A stats interval: from 1 ms to a day (SIGUSR1 prints a line at any time).
fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::from_millis(1), Duration::from_secs(24 * 3600), "1ms to 24h")
}

/// A rate, or `off`.
#[derive(Clone, Copy, Debug)]
struct Rate(Option<f64>);

fn parse_rate(text: &str) -> Result<Rate, String> {
    match text {
        "off" | "none" => Ok(Rate(None)),
        _ => match text.parse::<f64>() {
            // Zero could mean "answer nothing" or "no limit"; neither is
            // guessed silently.
            Ok(0.0) => Err(format!(
                "a rate of {text:?} would answer nothing: give replies per second (up to 10000000), or \"off\" for no limit"
            )),
            Ok(rate) if rate > 0.0 && rate <= 1e7 => Ok(Rate(Some(rate))),
            _ => Err(format!("{text:?} is not a rate above 0 and up to 10000000, or \"off\"")),
        },
    }
}

impl ServerArgs {
    /// Whether the lines on stderr are JSON objects (`--log-format json`).
    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormat::Json
    }

    /// The server these arguments describe; names are resolved here (a name
    /// such as localhost is served on every address it has: ::1 and 127.0.0.1).
    pub fn config(&self) -> Result<ServerConfig> {
        let mut binds = Vec::new();
        for addr in self.binds() {
            binds.extend(resolve_all(&addr)?);
        }
        let stamp = match self.mode {
            ServerMode::Stamp => Some(self.stamp.config()?),
            ServerMode::Bytes(_) if self.stamp.any() => {
                return Err(UsageError("the --stamp-* flags need --mode stamp".into()).into())
            }
            ServerMode::Bytes(_) => None,
        };
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            return Err(UsageError("--workers must be at least 1".into()).into());
        }
        if workers > MAX_WORKERS {
            return Err(UsageError(format!(
                "--workers {workers} is too many: at most {MAX_WORKERS} sockets and threads per address"
            ))
            .into());
        }
        Ok(ServerConfig {
            binds,
            mode: match self.mode {
                ServerMode::Bytes(mode) => mode,
                ServerMode::Stamp => Mode::default(),
            },
            max_datagram: self.max_datagram,
            workers,
            busy_poll: self.busy_poll,
            show: !self.quiet,
            offload: !self.no_offload,
            policy: self.defences.policy(),
            log_format: self.log_format,
            stamp,
        })
    }

    /// The `--bind` addresses as given, or the mode's default.
    fn binds(&self) -> Vec<String> {
        if self.bind.is_empty() {
            vec![default_bind(self.mode)]
        } else {
            self.bind.clone()
        }
    }

    /// Serves until SIGINT or SIGTERM: prints `listening on ADDR` lines, stats
    /// lines (every `--stats-interval`, and on SIGUSR1), the summary at the end.
    pub fn run(self) -> Result<ExitCode> {
        serve(self)
    }
}

fn serve(args: ServerArgs) -> Result<ExitCode> {
    let config = args.config()?;
    let metrics = match &args.metrics {
        Some(addr) => Some(
            MetricsEndpoint::bind(resolve(addr)?)
                .with_context(|| format!("binding the metrics endpoint {addr}"))?,
        ),
        None => None,
    };
    // systemd socket activation: serve the sockets we were handed, if any.
    let described = check_activation_env()?;
    let mut activated = listenfd::ListenFd::from_env();
    let inherited = (0..activated.len())
        .filter_map(|i| activated.take_udp_socket(i).transpose())
        .collect::<io::Result<Vec<_>>>()
        .with_context(|| format!("taking sockets from systemd ({described})"))?;
    for (i, socket) in inherited.iter().enumerate() {
        // An unbound socket would be "served" and never receive a datagram.
        if socket.local_addr().map_or(true, |a| a.port() == 0) {
            anyhow::bail!(
                "taking sockets from systemd ({described}): fd {} is a UDP socket bound to no port",
                3 + i
            );
        }
    }
    let server = if inherited.is_empty() {
        let binds = args.binds().join(", ");
        match Server::bind(config) {
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                anyhow::bail!(
                    "binding {binds}: {err}: ports below 1024 need root or \
                     CAP_NET_BIND_SERVICE; serve another port with --bind ADDR:PORT"
                )
            }
            bound => bound.with_context(|| format!("binding {binds}"))?,
        }
    } else {
        tracing::info!(
            event = "activation",
            sockets = inherited.len(),
            "serving {} socket(s) from systemd; --bind and --workers do not apply",
            inherited.len()
        );
        Server::from_sockets(config, inherited).context("serving sockets from systemd")?
    };
    // Handlers first: a supervisor may signal as soon as it reads `listening on`.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let dump = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&dump))
        .context("installing signal handlers")?;
    let mut stdout = io::stdout().lock();
    for addr in server.local_addrs() {
        writeln!(stdout, "listening on {addr}")?;
    }
    stdout.flush()?;
    drop(stdout);
    if let Some(m) = &metrics {
        tracing::info!(event = "metrics", addr = %m.local_addr(), "metrics on http://{}/metrics", m.local_addr());
    }

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    let rate = AtomicU64::new(0f64.to_bits());
    let counts = std::thread::scope(|scope| {
        scope.spawn(|| report(&server, &stop, &dump, args.stats_interval, args.log_format, &rate));
        if let Some(m) = &metrics {
            scope.spawn(|| {
                m.serve(&stop, || {
                    metrics::prometheus(&server.worker_counts(), f64::from_bits(rate.load(Relaxed)))
                })
            });
        }
        let result = server.run(&stop);
        stop.store(true, Relaxed); // ends the helpers above if `run` failed
        result
    })
    .context("serving")?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    logging::log_counts(args.log_format, "summary", &counts, None);
    logging::log_hints(args.log_format, &counts);
    Ok(ExitCode::SUCCESS)
}

/// Refuses activation variables that are meant for us but make no sense
/// (systemd's sd_listen_fds(3) ignores them; serving `--bind` instead would
/// hide a broken unit). Returns them described, for error messages.
fn check_activation_env() -> Result<String> {
    let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let (Some(pid), Some(fds)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(String::new());
    };
    let described = format!("LISTEN_FDS={fds:?} LISTEN_PID={pid:?}");
    let Ok(pid) = pid.trim().parse::<u32>() else {
        anyhow::bail!("socket activation: LISTEN_PID is not a process id ({described})");
    };
    if pid != std::process::id() {
        return Ok(described); // meant for another process: ignored, as systemd says
    }
    match fds.trim().parse::<u32>() {
        Ok(n) if n <= 65_536 => Ok(described),
        _ => {
            anyhow::bail!("socket activation: LISTEN_FDS is not a number of sockets ({described})")
        }
    }
}

/// Keeps the answers/s gauge current; prints a stats line every `interval` and
/// whenever SIGUSR1 raised `dump`.
fn report(
    server: &Server,
    stop: &AtomicBool,
    dump: &AtomicBool,
    interval: Option<Duration>,
    format: LogFormat,
    rate: &AtomicU64,
) {
    let tick = Duration::from_millis(100);
    let mut last = (Instant::now(), server.counts().answered);
    let mut next_line = interval.map(|i| Instant::now() + i);
    while !stop.load(Relaxed) {
        std::thread::sleep(tick);
        let now = Instant::now();
        let elapsed = now.duration_since(last.0);
        if elapsed >= Duration::from_secs(1) {
            let answered = server.counts().answered;
            let per_sec = (answered - last.1) as f64 / elapsed.as_secs_f64();
            rate.store(per_sec.to_bits(), Relaxed);
            last = (now, answered);
        }
        let due = next_line.is_some_and(|at| now >= at);
        if due || dump.swap(false, Relaxed) {
            if let (true, Some(i)) = (due, interval) {
                next_line = Some(now + i);
            }
            let per_sec = f64::from_bits(rate.load(Relaxed));
            logging::log_counts(format, "stats", &server.counts(), Some(per_sec));
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<ServerArgs, clap::Error> {
        let command = ServerArgs::augment_args(clap::Command::new("server").no_binary_name(true));
        ServerArgs::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    #[test]
    fn defaults_make_the_documented_server() {
        let config = parse(&["--workers", "2"]).unwrap().config().unwrap();
        assert_eq!(config.binds, ["127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()]);
        assert_eq!((config.max_datagram, config.workers), (MAX_DATAGRAM_V6, 2));
        assert!(config.show && config.offload && !config.busy_poll);
        let limit = config.policy.rate_limit.expect("rate limit on by default");
        assert_eq!((limit.rate, limit.burst), (100.0, 100));
        assert_eq!((limit.v4_prefix, limit.v6_prefix, limit.include_loopback), (32, 64, false));
        assert!(config.policy.deny_privileged_ports && config.policy.deny_bad_sources);
        assert!(shout::policy::REFLECTOR_PORTS
            .iter()
            .all(|p| config.policy.deny_ports.contains(p)));
    }

    #[test]
    fn defences_follow_their_flags() {
        let args = ["--rate-limit", "2.5", "--deny-port", "7", "--allow-port", "53", "-q"];
        let config = parse(&args).unwrap().config().unwrap();
        assert_eq!(config.policy.rate_limit.map(|l| (l.rate, l.burst)), Some((2.5, 3)));
        assert!(config.policy.deny_ports.contains(&7));
        assert_eq!(config.policy.allow_ports, [53]);
        assert!(!config.show);
        let off = parse(&["--rate-limit", "off"]).unwrap().config().unwrap();
        assert!(off.policy.rate_limit.is_none());
    }

    #[test]
    fn absurd_values_are_refused_with_a_reason() {
        for (args, reason) in [
            (&["--max-datagram", "0"][..], "would drop every datagram"),
            (&["--rate-limit", "0"], "would answer nothing"),
            (&["--burst", "0"], "1 or more"),
            (&["--stats-interval", "25h"], "1ms to 24h"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(reason), "{args:?}: {err}");
        }
        let err = parse(&["--workers", "1025"]).unwrap().config().unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
    }
}
