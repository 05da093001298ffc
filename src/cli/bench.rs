//! `shout bench`: its arguments, the [`BenchConfig`] they make, and the
//! files and exit code around a run.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::stamp::{auth, Format};
use super::{resolve, UsageError};
use shout::bench::{BenchConfig, Load, StampConfig, STAMP_PORT};
use shout::stamp::{SenderConfig, TlvRequest};
use shout::Expect;

/// `shout bench --help`'s examples and exit codes.
pub const HELP: &str = "\
Examples:
  shout bench                                  (ping-pong: window 1, 10 s)
  shout bench 127.0.0.1:8080 --window 64 --flows 4 --duration 5s
  shout bench --rate 100000 --max-p99 1ms --max-loss 0.1 --json
  shout bench 192.0.2.7:8080 --rate 1000 --dscp ef
  shout bench --window 8 --duration 30s --plot run.svg --csv run.csv
  shout bench --stamp 192.0.2.7 --rate 100 --stamp-tlv timestamp-info,direct
  shout bench --stamp [::1]:862 --stamp-key-file stamp.key --stamp-timestamp ptp

Exit codes:
  0  the run finished, some probe was answered, and every --max-* limit held
  1  a limit was broken, no probe was answered (or none sent), no server, or a socket error
  2  usage error";

/// `shout bench`'s arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The server: HOST:PORT, [IPv6]:PORT.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Probe size in bytes, at least 28 (sequence number and send time) [default: 64; with --stamp the smallest test packet, which more pads with an Extra Padding TLV of at least 4].
    #[arg(long, short, value_name = "BYTES")]
    size: Option<usize>,
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
    #[arg(long, value_name = "KIND", default_value = "upper", conflicts_with = "stamp")]
    expect: Expect,
    /// Measure a STAMP reflector (RFC 8762) at ADDR (port 862 if none) with STAMP test packets, sent with TTL 255, instead of probes: adds one-way delays, loss by direction, TTLs and hop counts.
    #[arg(long, value_name = "ADDR", conflicts_with = "addr")]
    stamp: Option<String>,
    // The help is the library's rule, word for word, as in docs/STAMP.md.
    #[arg(long, value_name = "PATH", requires = "stamp", help = super::stamp::KEY_FILE_HELP)]
    stamp_key_file: Option<std::path::PathBuf>,
    /// STAMP timestamp format of the test packets [default: ntp].
    #[arg(long, value_name = "FORMAT", value_enum, requires = "stamp")]
    stamp_timestamp: Option<Format>,
    /// STAMP Session-Sender Identifier (RFC 8972), 0 for none [default: 0].
    #[arg(long, value_name = "N", requires = "stamp")]
    stamp_ssid: Option<u16>,
    /// RFC 8972 TLVs on every test packet, comma-separated: timestamp-info, cos[=DSCP], direct, access-report, follow-up.
    #[arg(long, value_name = "TLV,...", value_delimiter = ',', value_parser = parse_tlv, requires = "stamp")]
    stamp_tlv: Vec<TlvRequest>,
    /// Ask the reflector to send its replies with this DSCP (a Class of Service TLV, RFC 8972 §4.4; a name such as ef or af41, or 0 to 63); the report gives the DSCP and ECN each way as received.
    #[arg(long, value_name = "CLASS", value_parser = shout::dscp::parse_dscp, requires = "stamp")]
    stamp_cos: Option<u8>,
    /// The reflector is stateful: split the loss by direction even if no probe was lost on the way out.
    #[arg(long, requires = "stamp")]
    stamp_stateful: bool,
    /// Mark the probes with this DSCP: a name (ef, af11 to af43, cs0 to cs7, be, le, va) or a number 0 to 63; sent as IPv4 TOS / IPv6 Traffic Class DSCP << 2.
    #[arg(long, value_name = "CLASS", value_parser = shout::dscp::parse_dscp)]
    dscp: Option<u8>,
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

/// One `--stamp-tlv` name.
fn parse_tlv(text: &str) -> std::result::Result<TlvRequest, String> {
    let (name, arg) = match text.trim().split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (text.trim(), None),
    };
    let no_arg = |t: TlvRequest| match arg {
        None => Ok(t),
        Some(_) => Err(format!("--stamp-tlv {name} takes no value")),
    };
    match name {
        "timestamp-info" => no_arg(TlvRequest::TimestampInfo),
        "direct" => no_arg(TlvRequest::DirectMeasurement),
        "access-report" => no_arg(TlvRequest::AccessReport { id: 1, return_code: 1 }),
        "follow-up" => no_arg(TlvRequest::FollowUpTelemetry),
        "cos" => {
            let dscp = match arg {
                None => 0,
                Some(a) => a
                    .parse::<u8>()
                    .ok()
                    .filter(|d| *d < 64)
                    .ok_or_else(|| format!("cos={a}: a DSCP is 0 to 63"))?,
            };
            Ok(TlvRequest::ClassOfService { dscp })
        }
        "padding" => Err("padding: give --size instead (the padding is what the size adds)".into()),
        other => Err(format!(
            "unknown TLV {other:?} (timestamp-info, cos[=DSCP], direct, access-report, follow-up)"
        )),
    }
}

/// `--stamp ADDR`: HOST:PORT, [IPv6]:PORT, or without a port STAMP's 862.
fn resolve_stamp(addr: &str) -> Result<std::net::SocketAddr> {
    let addrs = shout::addr::parse_target(addr, Some(STAMP_PORT))
        .map_err(|err| UsageError(err.to_string()))?;
    // parse_target returns at least one address or an error.
    Ok(addrs[0])
}

impl BenchArgs {
    fn stamp_config(&self) -> Result<StampConfig> {
        let (mode, auth_key) = auth(self.stamp_key_file.as_deref())?;
        let mut tlvs = self.stamp_tlv.clone();
        if let Some(dscp) = self.stamp_cos {
            if tlvs.iter().any(|t| matches!(t, TlvRequest::ClassOfService { .. })) {
                bail!(UsageError("--stamp-cos and --stamp-tlv cos: give the class once".into()));
            }
            tlvs.push(TlvRequest::ClassOfService { dscp });
        }
        let sender = SenderConfig {
            mode,
            auth_key,
            ssid: self.stamp_ssid.unwrap_or(0),
            format: self.stamp_timestamp.unwrap_or_default().into(),
            tlvs,
            size: self.size.unwrap_or(0),
            ..SenderConfig::default()
        };
        Ok(StampConfig { sender, stateful: self.stamp_stateful })
    }

    /// The `--stamp-*` flags given. clap's `requires = "stamp"` is waived
    /// when an argument that conflicts with `--stamp` (ADDR, `--expect`) is
    /// given, so they are checked here too.
    fn stamp_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--stamp-key-file", self.stamp_key_file.is_some()),
            ("--stamp-timestamp", self.stamp_timestamp.is_some()),
            ("--stamp-ssid", self.stamp_ssid.is_some()),
            ("--stamp-tlv", !self.stamp_tlv.is_empty()),
            ("--stamp-stateful", self.stamp_stateful),
        ];
        given.into_iter().filter_map(|(flag, on)| on.then_some(flag)).collect()
    }

    /// The run these arguments describe, checked.
    pub fn config(&self) -> Result<BenchConfig> {
        if self.stamp.is_none() {
            if let Some(flag) = self.stamp_flags().first() {
                bail!(UsageError(format!(
                    "{flag} needs --stamp ADDR (a STAMP reflector); ADDR alone is a shout server"
                )));
            }
        }
        if self.max_loss.is_some_and(|pct| !(0.0..=100.0).contains(&pct)) {
            bail!(UsageError("--max-loss is a percentage: 0 to 100".into()));
        }
        let stamp = self.stamp.as_ref().map(|_| self.stamp_config()).transpose()?;
        let size = match &stamp {
            Some(s) => s.packet_len().map_err(UsageError)?,
            None => self.size.unwrap_or(64),
        };
        let target = match &self.stamp {
            Some(addr) => resolve_stamp(addr)?,
            None => resolve(&self.addr)?,
        };
        let config = BenchConfig {
            target,
            size,
            load: self.rate.map_or(Load::Window(self.window.unwrap_or(1)), Load::Rate),
            flows: self.flows,
            duration: self.duration,
            warmup: self.warmup,
            timeout: self.timeout,
            expect: self.expect,
            gso: self.gso,
            progress: io::stderr().is_terminal(),
            timeline: self.plot.is_some() || self.csv.is_some(),
            busy_poll: self.busy_poll,
            dscp: self.dscp,
            stamp,
        };
        config.validate().map_err(UsageError)?;
        Ok(config)
    }

    /// Runs the load until `--duration` ends or Ctrl-C; prints the report
    /// (table or JSON), writes `--plot` and `--csv`; exit 1 if a `--max-*`
    /// limit broke or no probe was answered.
    pub fn run(self) -> Result<ExitCode> {
        measure(self)
    }
}

fn measure(args: BenchArgs) -> Result<ExitCode> {
    let config = args.config()?;
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
    // As ping and iperf3: a run that measured nothing has failed, whatever the limits.
    let silent = match (report.sent, report.answered) {
        (0, _) => Some("no probe was sent (is --duration shorter than one send?)".to_owned()),
        (sent, 0) => Some(format!("none of the {sent} probes was answered")),
        _ => None,
    };
    if let Some(why) = &silent {
        let _ = writeln!(io::stderr(), "error: {why}");
    }
    Ok(if broken.is_empty() && silent.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;
    use shout::stamp::AuthMode;

    fn parse(args: &[&str]) -> BenchArgs {
        let command = BenchArgs::augment_args(clap::Command::new("bench").no_binary_name(true));
        BenchArgs::from_arg_matches(&command.try_get_matches_from(args).unwrap()).unwrap()
    }

    #[test]
    fn flags_make_the_plan() {
        let config = parse(&["127.0.0.1:9", "-w", "8", "-f", "2", "-s", "100"]).config().unwrap();
        assert_eq!(config.target, "127.0.0.1:9".parse().unwrap());
        assert!(matches!(config.load, Load::Window(8)));
        assert_eq!((config.flows, config.size), (2, 100));
        let config = parse(&["--rate", "500"]).config().unwrap();
        assert!(matches!(config.load, Load::Rate(r) if r == 500.0));
    }

    #[test]
    fn stamp_flags_make_a_stamp_plan() {
        let config = parse(&["--stamp", "127.0.0.1"]).config().unwrap();
        assert_eq!(config.target, "127.0.0.1:862".parse().unwrap(), "STAMP's port");
        assert_eq!(config.size, 44, "the smallest unauthenticated packet");
        let stamp = config.stamp.unwrap();
        assert_eq!(stamp.sender.mode, AuthMode::Unauthenticated);
        assert!(!stamp.stateful);
        let args = [
            "--stamp",
            "[::1]:9000",
            "--stamp-tlv",
            "timestamp-info,cos=46",
            "--stamp-tlv",
            "direct",
            "--stamp-ssid",
            "7",
            "--stamp-timestamp",
            "ptp",
            "--stamp-stateful",
            "-s",
            "200",
        ];
        let config = parse(&args).config().unwrap();
        assert_eq!(config.target, "[::1]:9000".parse().unwrap());
        assert_eq!(config.size, 200);
        let stamp = config.stamp.unwrap();
        assert_eq!(
            stamp.sender.tlvs,
            [
                TlvRequest::TimestampInfo,
                TlvRequest::ClassOfService { dscp: 46 },
                TlvRequest::DirectMeasurement
            ]
        );
        assert_eq!(
            (stamp.sender.ssid, stamp.sender.format),
            (7, shout::stamp::TimestampFormat::Ptp)
        );
        assert!(stamp.stateful);
        assert_eq!(resolve_stamp("[::1]").unwrap(), "[::1]:862".parse().unwrap());
        assert_eq!(resolve_stamp("::1").unwrap(), "[::1]:862".parse().unwrap());
        assert_eq!(resolve_stamp("localhost").unwrap().port(), 862);
        assert!(parse_tlv("padding").unwrap_err().contains("--size"));
        assert!(parse_tlv("direct=1").is_err());
    }

    #[test]
    fn a_key_file_makes_the_run_authenticated_and_stays_out_of_debug() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("shout-bench-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = parse(&["--stamp", "127.0.0.1:9", "--stamp-key-file", key.to_str().unwrap()])
            .config()
            .unwrap();
        let stamp = config.stamp.unwrap();
        assert_eq!(stamp.sender.mode, AuthMode::Authenticated);
        assert_eq!(
            stamp.sender.auth_key.as_deref(),
            Some(&[b'k'; 16][..]),
            "hex, as the server reads it"
        );
        assert_eq!(config.size, 112, "the authenticated base packet");
        assert!(!format!("{stamp:?}").contains("107"), "no key in Debug: {stamp:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_plans_are_usage_errors() {
        for args in [&["--max-loss", "101"][..], &["--size", "1"], &["--flows", "0"]] {
            let err = parse(args).config().unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{args:?}: {err}");
        }
    }
}
