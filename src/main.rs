//! The `shout` command line: one short arm per subcommand.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

use shout::logging::{self, LogFormat};
use shout::metrics::{self, MetricsEndpoint};
use shout::session::{self, Output};
use shout::{Client, ClientConfig, Expect, Mode, PolicyConfig, RateLimit, Server, ServerConfig};

const EXIT_CODES: &str = "\
Exit codes:
  0  every request answered (client); clean stop on SIGINT/SIGTERM (server)
  1  some request unanswered, no server, or a socket error
  2  usage error, including a message too large for one datagram";

/// A UDP uppercase server, a client that never hangs, and a load tool.
#[derive(Parser, Debug)]
#[command(name = "shout", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer every datagram with the same bytes, ASCII letters uppercased.
    #[command(
        after_help = "Examples:\n  shout server\n  shout server --bind [::1]:9000 --bind 127.0.0.1:9000 --quiet\n  shout server --mode echo --max-datagram 1232"
    )]
    Server(ServerArgs),
    /// Send messages and print the replies: from arguments, a pipe, or a prompt.
    #[command(after_help = format!("Examples:\n  shout client 127.0.0.1:8080 hello world\n  printf 'a\\nb\\n' | shout client 127.0.0.1:8080\n  shout client            (interactive, on a terminal)\n\n{EXIT_CODES}"))]
    Client(ClientArgs),
    /// Measure a server: answers/s, loss and round-trip times, every reply checked.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  shout completions bash > ~/.local/share/bash-completion/completions/shout"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "Example:\n  shout man | man -l -")]
    Man,
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Address to serve (IPv4, [IPv6], or host name with port; port 0 picks one). Repeat to serve several.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    bind: Vec<String>,
    /// upper: ASCII a-z uppercased, other bytes unchanged; echo: unchanged (RFC 862).
    #[arg(long, default_value = "upper")]
    mode: Mode,
    /// Drop (unanswered, counted) datagrams longer than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = shout::server::MAX_DATAGRAM_V6)]
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
    #[arg(long, value_name = "DURATION", value_parser = shout::parse_duration)]
    stats_interval: Option<Duration>,
    /// Serve Prometheus metrics over HTTP at ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Format of the lines on stderr: text, or json (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// Defences against reflection and loops (docs/SECURITY.md explains each default).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Defences")]
struct DefenceArgs {
    /// Replies per second per source prefix, or "off". Loopback sources are exempt unless --limit-loopback.
    #[arg(long, value_name = "PPS|off", default_value = "100", value_parser = parse_rate)]
    rate_limit: Rate,
    /// Replies a quiet source may get at once [default: the rate, at least 1].
    #[arg(long, value_name = "N")]
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
    /// Answer this source port even if a rule refuses it. Repeatable.
    #[arg(long, value_name = "PORT")]
    allow_port: Vec<u16>,
    /// Also refuse this source port (1900, 3702, 5353 and 11211 are refused already). Repeatable.
    #[arg(long, value_name = "PORT")]
    deny_port: Vec<u16>,
    /// Answer broadcast, multicast and unspecified source addresses.
    #[arg(long)]
    allow_any_source: bool,
}

impl DefenceArgs {
    fn policy(&self) -> PolicyConfig {
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

/// A client timeout: from 1 ms (less would retransmit faster than any network
/// answers) to an hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = shout::parse_duration(text)?;
    if (Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&d) {
        Ok(d)
    } else {
        Err(format!("{text:?} is out of range: use 1ms to 1h"))
    }
}

fn parse_table_size(text: &str) -> Result<usize, String> {
    let max = shout::policy::MAX_TABLE;
    match text.parse::<usize>() {
        Ok(n) if (4..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a table size from 4 to {max}")),
    }
}

/// A rate, or `off`.
#[derive(Clone, Copy, Debug)]
struct Rate(Option<f64>);

fn parse_rate(text: &str) -> Result<Rate, String> {
    match text {
        "off" | "none" => Ok(Rate(None)),
        _ => match text.parse::<f64>() {
            Ok(0.0) => Ok(Rate(None)),
            Ok(rate) if rate > 0.0 && rate <= 1e7 => Ok(Rate(Some(rate))),
            _ => Err(format!("{text:?} is not a rate from 0 (off) to 10000000, or \"off\"")),
        },
    }
}

const BENCH_HELP: &str = "\
Examples:
  shout bench                                  (ping-pong: window 1, 10 s)
  shout bench 127.0.0.1:8080 --window 64 --flows 4 --duration 5s
  shout bench --rate 100000 --max-p99 1ms --max-loss 0.1 --json
  shout bench --window 8 --duration 30s --plot run.svg --csv run.csv

Exit codes:
  0  the run finished and every --max-* limit held
  1  a limit was broken, no server, or a socket error
  2  usage error";

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// The server: HOST:PORT, [IPv6]:PORT.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Probe size in bytes, at least 28 (sequence number and send time).
    #[arg(long, short, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// Closed loop: probes in flight per flow, each refilled when answered or timed out [default: 1].
    #[arg(long, short, value_name = "N", conflicts_with = "rate")]
    window: Option<usize>,
    /// Open loop: probes per second over all flows, answered or not; RTT counts from the intended send time.
    #[arg(long, short, value_name = "PPS")]
    rate: Option<f64>,
    /// Flows: sockets with their own source ports, one thread each.
    #[arg(long, short, value_name = "N", default_value_t = 1)]
    flows: usize,
    /// How long to send and count (e.g. 10s, 500ms, 2m).
    #[arg(long, short, value_name = "DURATION", default_value = "10s", value_parser = shout::parse_duration)]
    duration: Duration,
    /// Send this long first without counting.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = shout::parse_duration)]
    warmup: Duration,
    /// Give up on a probe after this long (its reply, if any, counts as late).
    #[arg(long, short, value_name = "DURATION", default_value = "1s", value_parser = shout::parse_duration)]
    timeout: Duration,
    /// Which replies count: upper (shout, the original), echo, or any reply carrying the probe's header.
    #[arg(long, default_value = "upper")]
    expect: Expect,
    /// Send probes as UDP GSO buffers and receive with UDP GRO (Linux).
    #[arg(long)]
    gso: bool,
    /// Spin on the sockets instead of sleeping: the least delay added to the round trips, at the cost of a core per flow (two in open loop).
    #[arg(long)]
    busy_poll: bool,
    /// Draw the run as an SVG image: RTT by percentile, and answers/s over time.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Write one CSV line per interval (1 s; 100 ms for runs under 5 s): elapsed_s,sent,answered,lost,answers_per_s,p50_us,p99_us.
    #[arg(long, value_name = "FILE")]
    csv: Option<std::path::PathBuf>,
    /// Print one JSON object (docs/BENCH-JSON.md) instead of the table.
    #[arg(long)]
    json: bool,
    /// Exit 1 if more than this percentage of probes is lost.
    #[arg(long, value_name = "PCT")]
    max_loss: Option<f64>,
    /// Exit 1 if the 99th percentile round trip is longer than this.
    #[arg(long, value_name = "DURATION", value_parser = shout::parse_duration)]
    max_p99: Option<Duration>,
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// The server: HOST:PORT, [IPv6]:PORT [default: 127.0.0.1:8080].
    #[arg(value_name = "ADDR")]
    addr: Option<String>,
    /// Messages to send, one datagram each. Without any: lines from stdin, or a prompt on a terminal.
    #[arg(value_name = "MESSAGE")]
    messages: Vec<std::ffi::OsString>,
    /// Wait for a reply this long before sending again (e.g. 200ms, 1.5s; a bare number is seconds).
    #[arg(long, short, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Send again this many times, the wait doubling each time.
    #[arg(long, short, value_name = "N", default_value_t = 2)]
    retries: u32,
    /// Which replies count: upper (shout, the original), echo, or any datagram from the server.
    #[arg(long, default_value = "upper")]
    expect: Expect,
    /// Write reply bytes unchanged instead of escaping what is not text.
    #[arg(long)]
    raw: bool,
    /// Send stdin lines as they are (only the newline removed), empty ones too.
    #[arg(long)]
    raw_lines: bool,
    /// Set the don't-fragment bit: a message above the path MTU fails with a clear error.
    #[arg(long)]
    dont_fragment: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Server(args) if args.log_format == LogFormat::Json);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_writer(io::stderr).with_env_filter(filter);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_target(false).without_time().with_ansi(color_wanted()).init();
    }
    let result = match cli.command {
        Command::Server(args) => server(args),
        Command::Client(args) => client(args),
        Command::Bench(args) => bench(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shout", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut io::stdout())
            .map(|()| ExitCode::SUCCESS)
            .context("writing the manual page"),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn color_wanted() -> bool {
    io::stdout().is_terminal()
        && io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An error that is the user's input, not the network's: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Every address `addr` names, in the resolver's order, without repeats.
fn resolve_all(addr: &str) -> Result<Vec<SocketAddr>> {
    let resolved = addr.to_socket_addrs().map_err(|err| {
        UsageError(format!("invalid address {addr:?} ({err}); expected HOST:PORT or [IPv6]:PORT"))
    })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(UsageError(format!("{addr:?} resolves to no address")).into());
    }
    Ok(addrs)
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    resolve_all(addr).map(|addrs| addrs[0])
}

fn server(args: ServerArgs) -> Result<ExitCode> {
    // A name such as localhost is served on every address it has (::1 and 127.0.0.1).
    let mut binds = Vec::new();
    for addr in &args.bind {
        binds.extend(resolve_all(addr)?);
    }
    let workers =
        args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if workers == 0 {
        return Err(UsageError("--workers must be at least 1".into()).into());
    }
    let metrics = match &args.metrics {
        Some(addr) => Some(
            MetricsEndpoint::bind(resolve(addr)?)
                .with_context(|| format!("binding the metrics endpoint {addr}"))?,
        ),
        None => None,
    };
    let config = ServerConfig {
        binds,
        mode: args.mode,
        max_datagram: args.max_datagram,
        workers,
        busy_poll: args.busy_poll,
        show: !args.quiet,
        offload: !args.no_offload,
        policy: args.defences.policy(),
        log_format: args.log_format,
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
            bail!(
                "taking sockets from systemd ({described}): fd {} is a UDP socket bound to no port",
                3 + i
            );
        }
    }
    let server = if inherited.is_empty() {
        Server::bind(config).with_context(|| format!("binding {}", args.bind.join(", ")))?
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
    Ok(ExitCode::SUCCESS)
}

/// Refuses activation variables that are meant for us but make no sense
/// (sd_listen_fds(3) fails on them too) instead of silently binding `--bind`.
/// Returns them, described for error messages.
fn check_activation_env() -> Result<String> {
    let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let (Some(pid), Some(fds)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(String::new());
    };
    let described = format!("LISTEN_FDS={fds:?} LISTEN_PID={pid:?}");
    let Ok(pid) = pid.trim().parse::<u32>() else {
        bail!("socket activation: LISTEN_PID is not a process id ({described})");
    };
    if pid != std::process::id() {
        return Ok(described); // meant for another process: ignored, as systemd says
    }
    match fds.trim().parse::<u32>() {
        Ok(n) if n <= 65_536 => Ok(described),
        _ => bail!("socket activation: LISTEN_FDS is not a number of sockets ({described})"),
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

fn bench(args: BenchArgs) -> Result<ExitCode> {
    use shout::bench::{BenchConfig, Load};
    if args.max_loss.is_some_and(|pct| !(0.0..=100.0).contains(&pct)) {
        bail!(UsageError("--max-loss is a percentage: 0 to 100".into()));
    }
    let config = BenchConfig {
        target: resolve(&args.addr)?,
        size: args.size,
        load: args.rate.map_or(Load::Window(args.window.unwrap_or(1)), Load::Rate),
        flows: args.flows,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        expect: args.expect,
        gso: args.gso,
        progress: io::stderr().is_terminal(),
        timeline: args.plot.is_some() || args.csv.is_some(),
        busy_poll: args.busy_poll,
    };
    config.validate().map_err(UsageError)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.busy_poll && config.threads() > cores {
        let _ = writeln!(
            io::stderr(),
            "warning: --busy-poll spins {} threads on {cores} cores: they will take turns, and the waits show up as round-trip time",
            config.threads()
        );
    }
    // Created now, so a path that cannot be written fails before the run, not after it.
    let create = |path: &std::path::Path, what: &str| {
        std::fs::File::create(path).with_context(|| format!("creating {what} {}", path.display()))
    };
    let plot = args.plot.as_deref().map(|p| create(p, "--plot").map(|f| (p, f))).transpose()?;
    let csv = args.csv.as_deref().map(|p| create(p, "--csv").map(|f| (p, f))).transpose()?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))
        .context("installing the Ctrl-C handler")?;
    let report = match shout::bench::run_until(&config, &stop) {
        Ok(report) => report,
        Err(err) => {
            // Empty files would only look like a run that measured nothing.
            for (path, _) in plot.iter().chain(&csv) {
                let _ = std::fs::remove_file(path);
            }
            return Err(err.into());
        }
    };
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write!(out, "{report}")
    };
    match written.and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => return Err(err.into()),
        _ => {}
    }
    if let (Some((path, file)), Some(svg)) = (plot, report.svg()) {
        let mut out = io::BufWriter::new(file);
        out.write_all(svg.as_bytes())
            .and_then(|()| out.flush())
            .with_context(|| format!("writing --plot {}", path.display()))?;
    }
    if let (Some((path, file)), Some(timeline)) = (csv, report.timeline.as_ref()) {
        let mut out = io::BufWriter::new(file);
        timeline
            .write_csv(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("writing --csv {}", path.display()))?;
    }
    let broken = report.check(args.max_loss, args.max_p99);
    for why in &broken {
        let _ = writeln!(io::stderr(), "check failed: {why}");
    }
    Ok(if broken.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn client(args: ClientArgs) -> Result<ExitCode> {
    let addr = args.addr.as_deref().unwrap_or("127.0.0.1:8080");
    let servers = resolve_all(addr)?;
    let config = ClientConfig {
        timeout: args.timeout,
        retries: args.retries,
        expect: args.expect,
        dont_fragment: args.dont_fragment,
    };
    let mut client = Client::connect_any(&servers, config)
        .with_context(|| format!("opening a socket to {addr}"))?;
    let output = Output { raw: args.raw, color: false };
    let tally = if !args.messages.is_empty() {
        let messages: Vec<Vec<u8>> = args.messages.iter().map(|m| os_bytes(m)).collect();
        for message in &messages {
            client.check_size(message.len()).map_err(|err| UsageError(err.to_string()))?;
        }
        session::one_shot(&mut client, &messages, output, io::stdout().lock(), io::stderr())?
    } else if io::stdin().is_terminal() {
        let interrupt = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt))?;
        session::interactive(&mut client, interrupt, Output { color: color_wanted(), ..output })?
    } else {
        session::pipe(
            &mut client,
            io::stdin().lock(),
            args.raw_lines,
            output,
            io::stdout().lock(),
            io::stderr(),
        )?
    };
    Ok(if tally.all_answered() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(unix)]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}
