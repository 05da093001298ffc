//! What a run found, as plain data: [`Report`], made once from the flows'
//! merged tally, round trips and timeline. The renderers (`render`) read it;
//! nothing here knows how it is shown.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::config::{BenchConfig, Load};
use super::inflight::Tally;
use super::record::Timeline;
use super::stamp::{CosTally, Range, Signed, StampTally, TlvTally, SEND_TTL};
use crate::duration::human;
use crate::stamp::{AuthMode, TimestampFormat, TlvRequest};
use crate::Expect;

/// Version of the JSON layout (docs/BENCH-JSON.md); raised when a field
/// changes meaning or goes away, not when one is added.
pub const SCHEMA: u32 = 1;

/// The result of a bench run. `Display` is the human table; `Serialize` is the
/// JSON object documented in `docs/BENCH-JSON.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Layout version: [`SCHEMA`].
    pub schema: u32,
    /// The server measured.
    pub target: SocketAddr,
    /// Which replies counted: `upper`, `echo` or `any`.
    pub expect: &'static str,
    /// Probe size in bytes.
    pub size: usize,
    /// Flows (sockets).
    pub flows: usize,
    /// Closed loop: probes in flight per flow; `None` in open loop.
    pub window: Option<usize>,
    /// Open loop: probes per second over all flows; `None` in closed loop.
    pub rate: Option<f64>,
    /// Whether probes went out as GSO buffers and replies came in through GRO.
    pub gso: bool,
    /// Whether the bench's threads spun on their sockets instead of sleeping.
    pub busy_poll: bool,
    /// The DSCP the probes were marked with (`--dscp`); `None`: unmarked.
    pub dscp: Option<u8>,
    /// Warmup before counting began, in seconds.
    pub warmup_s: f64,
    /// Time over which probes were sent and counted, in seconds.
    pub duration_s: f64,
    /// After this many seconds a probe was given up on.
    pub timeout_s: f64,
    /// Probes sent.
    pub sent: u64,
    /// Probes with a correct reply, on time or late.
    pub answered: u64,
    /// Probes never answered: `sent - answered`.
    pub lost: u64,
    /// Replies that came after their probe's timeout.
    pub late: u64,
    /// Extra replies to probes already answered.
    pub duplicated: u64,
    /// First replies that came after a reply to a later probe of their flow.
    pub reordered: u64,
    /// Datagrams that were no correct reply to any probe.
    pub mismatched: u64,
    /// "Port unreachable" (ICMP) reports after the target had answered: it
    /// went away during the run. The kernel keeps one such report per socket
    /// until it is read, so this is at least 1 per outage and at most one per
    /// probe lost to it; those probes are in `lost`.
    pub unreachable: u64,
    /// Replies the kernel dropped on this host's sockets (receive queues full);
    /// `None` where the counter cannot be read. With GRO the kernel counts a
    /// dropped buffer of many replies once, so with `gso` this is a lower bound.
    pub dropped_here: Option<u64>,
    /// `lost - dropped_here`, at least 0: lost in the server or on the way.
    pub lost_elsewhere: Option<u64>,
    /// `lost` as a percentage of `sent`.
    pub loss_pct: f64,
    /// Answered probes per second.
    pub answers_per_s: f64,
    /// Payload of the answers, in megabits (10^6 bits) per second.
    pub mbit_per_s: f64,
    /// Round-trip times of answered probes; `None` if none was answered.
    pub rtt_us: Option<Rtt>,
    /// What the STAMP reflector told, with `--stamp`; absent from the JSON
    /// without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampReport>,
    /// The run over time, when [`BenchConfig::timeline`] asked for it. Not in
    /// the JSON.
    #[serde(skip)]
    pub timeline: Option<Timeline>,
}

/// `--stamp`: what the reflected test packets said (docs/BENCH-JSON.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StampReport {
    /// `unauthenticated` or `authenticated`.
    pub mode: &'static str,
    /// Our timestamps' format: `ntp` or `ptp`.
    pub timestamp: &'static str,
    /// The SSID sent (0: none).
    pub ssid: u16,
    /// The TLVs each test packet carried, by name.
    pub tlvs: Vec<&'static str>,
    /// Whether the reflector keeps its own sequence numbers (seen, or said
    /// with `--stamp-stateful`): only then is the loss split by direction.
    pub reflector_stateful: bool,
    /// Replies whose reflector sequence number differed from ours.
    pub reflector_own_seq: u64,
    /// Probes that never reached the reflector; `None` unless stateful.
    pub forward_lost: Option<u64>,
    /// Probes the reflector answered whose reply never came; `None` unless stateful.
    pub backward_lost: Option<u64>,
    /// Lost probes after each flow's last answer (or all, when not stateful):
    /// their direction cannot be told.
    pub unsplit_lost: u64,
    /// Replies that failed the HMAC check (also in `mismatched`).
    pub auth_failed: u64,
    /// Of `auth_failed`, replies that are unauthenticated reflected packets
    /// carrying the sequence number of a probe sent: the reflector answers
    /// unauthenticated (it has no key), not with another key.
    pub unauthenticated_replies: u64,
    /// TTL (hop limit) our probes reached the reflector with, as it reported.
    pub forward_ttl: Option<Ttl>,
    /// TTL the replies reached us with.
    pub backward_ttl: Option<Ttl>,
    /// One-way delay out: reflector receive time - our send time (T2 - T1).
    /// Meaningful only with synchronised clocks.
    pub forward_us: Option<Delay>,
    /// One-way delay back: our receive time - reflector send time (T4 - T3).
    /// Meaningful only with synchronised clocks.
    pub backward_us: Option<Delay>,
    /// Reflector turnaround: its send time - its receive time (T3 - T2).
    pub turnaround_us: Option<Delay>,
    /// Round trip minus the reflector's turnaround, per probe.
    pub rtt_net_us: Option<Delay>,
    /// Answered replies of another size than the test packets (a reflector
    /// that pads differently); `None` when every reply had their size.
    pub reply_sizes: Option<ReplySizes>,
    /// What the reflector did with the TLVs of [`tlvs`](StampReport::tlvs);
    /// `None` when none were sent.
    pub tlv_results: Option<TlvResults>,
    /// With a Class of Service TLV (`--stamp-cos`): the class asked for and
    /// the DSCP and ECN each way as received; `None` without one.
    pub cos: Option<CosReport>,
}

/// With `--stamp-cos` (or `--stamp-tlv cos`): the class asked for and what
/// each direction carried (RFC 8972 §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CosReport {
    /// The DSCP asked for on the replies (DSCP1).
    pub requested: u8,
    /// Replies whose Class of Service TLV the reflector processed.
    pub replies: u64,
    /// Of those, replies with RP set: the reflector's policy refused the class.
    pub refused: u64,
    /// DSCPs our packets reached the reflector with, as it reported (DSCP2).
    pub forward_dscp: Vec<u8>,
    /// ECN values our packets reached the reflector with, as it reported.
    pub forward_ecn: Vec<u8>,
    /// DSCPs the replies reached us with (`IP_RECVTOS`/`IPV6_RECVTCLASS`).
    pub backward_dscp: Vec<u8>,
    /// ECN values the replies reached us with.
    pub backward_ecn: Vec<u8>,
}

impl CosReport {
    fn new(sent: &[TlvRequest], c: &CosTally) -> Option<CosReport> {
        let requested = sent.iter().find_map(|t| match t {
            TlvRequest::ClassOfService { dscp } => Some(*dscp),
            _ => None,
        })?;
        let values = |bits: u64| (0..64u8).filter(|v| bits & 1 << v != 0).collect();
        Some(CosReport {
            requested,
            replies: c.replies,
            refused: c.refused,
            forward_dscp: values(c.forward_dscp),
            forward_ecn: values(u64::from(c.forward_ecn)),
            backward_dscp: values(c.backward_dscp),
            backward_ecn: values(u64::from(c.backward_ecn)),
        })
    }
}

/// Answered STAMP replies whose size differed from the test packets'. They
/// are answers all the same: measured like the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplySizes {
    /// How many answered replies had another size than [`Report::size`].
    pub differed: u64,
    /// The smallest of them, in bytes.
    pub min: usize,
    /// The largest of them, in bytes.
    pub max: usize,
    /// Their distinct sizes, ascending: the first 16 seen (`min` and `max`
    /// always among them when there are no more).
    pub seen: Vec<usize>,
}

/// With `--stamp-tlv`: what came back of the TLVs sent (RFC 8972 §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlvResults {
    /// Answered replies looked at (as `answered`, measured ones only).
    pub replies: u64,
    /// Replies whose HMAC TLV did not match our key: not answered, their TLVs
    /// not counted (also in `auth_failed`).
    pub hmac_failed: u64,
    /// One entry per TLV type sent, in the order of [`tlvs`](StampReport::tlvs).
    pub types: Vec<TlvResult>,
}

/// One TLV type sent, and what the replies did with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlvResult {
    /// Its name, as in [`StampReport::tlvs`].
    pub name: &'static str,
    /// Its type code.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Replies that carried a TLV of this type back.
    pub returned: u64,
    /// Of those, replies where the reflector left or set the U flag: it did
    /// not process the type.
    pub unrecognized: u64,
    /// Of those, replies with the M flag: the reflector found it malformed.
    pub malformed: u64,
    /// Of those, replies with the I flag: the TLVs failed the reflector's
    /// HMAC check.
    pub integrity_failed: u64,
}

impl TlvResults {
    fn new(sent: &[TlvRequest], answered: u64, t: &TlvTally) -> Option<TlvResults> {
        if sent.is_empty() {
            return None;
        }
        let mut types: Vec<TlvResult> = Vec::with_capacity(sent.len());
        for req in sent {
            let kind = tlv_kind(req);
            if types.iter().any(|r| r.kind == kind) {
                continue;
            }
            let c = t.by_kind[usize::from(kind)];
            types.push(TlvResult {
                name: tlv_name(req),
                kind,
                returned: c.carried,
                unrecognized: c.unrecognized,
                malformed: c.malformed,
                integrity_failed: c.integrity_failed,
            });
        }
        Some(TlvResults { replies: answered, hmac_failed: t.hmac_failed, types })
    }
}

/// Lowest and highest TTL seen, and the hop counts they mean when the packets
/// were sent with TTL 255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ttl {
    /// Lowest TTL.
    pub min: u8,
    /// Highest TTL.
    pub max: u8,
    /// `255 - max`.
    pub hops_min: u8,
    /// `255 - min`.
    pub hops_max: u8,
}

impl Ttl {
    fn from_range(r: Range) -> Option<Ttl> {
        r.0.map(|(min, max)| Ttl { min, max, hops_min: SEND_TTL - max, hops_max: SEND_TTL - min })
    }
}

/// A delay's distribution in microseconds; it may be negative (one-way
/// delays between clocks that disagree).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Delay {
    /// Lowest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Highest.
    pub max: f64,
}

impl Delay {
    fn from_signed(s: &Signed) -> Option<Delay> {
        s.summary().map(|[min, mean, p50, p99, max]| Delay { min, mean, p50, p99, max })
    }
}

fn tlv_name(t: &TlvRequest) -> &'static str {
    match t {
        TlvRequest::TimestampInfo => "timestamp-info",
        TlvRequest::ClassOfService { .. } => "cos",
        TlvRequest::DirectMeasurement => "direct",
        TlvRequest::AccessReport { .. } => "access-report",
        TlvRequest::FollowUpTelemetry => "follow-up",
        TlvRequest::Raw { .. } => "raw",
    }
}

fn tlv_kind(t: &TlvRequest) -> u8 {
    use crate::stamp::tlv::kind;
    match *t {
        TlvRequest::TimestampInfo => kind::TIMESTAMP_INFO,
        TlvRequest::ClassOfService { .. } => kind::CLASS_OF_SERVICE,
        TlvRequest::DirectMeasurement => kind::DIRECT_MEASUREMENT,
        TlvRequest::AccessReport { .. } => kind::ACCESS_REPORT,
        TlvRequest::FollowUpTelemetry => kind::FOLLOW_UP_TELEMETRY,
        TlvRequest::Raw { kind, .. } => kind,
    }
}

impl StampReport {
    pub(super) fn new(config: &BenchConfig, st: &StampTally, answered: u64) -> StampReport {
        let (sender, declared) = config
            .stamp
            .as_ref()
            .map_or((Default::default(), false), |s| (s.sender.clone(), s.stateful));
        let stateful = declared || st.own_seq > 0;
        StampReport {
            mode: match sender.mode {
                AuthMode::Unauthenticated => "unauthenticated",
                AuthMode::Authenticated => "authenticated",
            },
            timestamp: match sender.format {
                TimestampFormat::Ntp => "ntp",
                TimestampFormat::Ptp => "ptp",
            },
            ssid: sender.ssid,
            tlvs: sender.tlvs.iter().map(tlv_name).collect(),
            reflector_stateful: stateful,
            reflector_own_seq: st.own_seq,
            forward_lost: stateful.then_some(st.forward_lost),
            backward_lost: stateful.then_some(st.backward_lost),
            unsplit_lost: if stateful {
                st.unsplit_lost
            } else {
                st.forward_lost + st.backward_lost + st.unsplit_lost
            },
            auth_failed: st.auth_failed,
            unauthenticated_replies: st.unauthenticated,
            forward_ttl: Ttl::from_range(st.forward_ttl),
            backward_ttl: Ttl::from_range(st.backward_ttl),
            forward_us: Delay::from_signed(&st.forward),
            backward_us: Delay::from_signed(&st.backward),
            turnaround_us: Delay::from_signed(&st.turnaround),
            rtt_net_us: Delay::from_signed(&st.net_rtt),
            reply_sizes: (st.other_sizes.replies > 0).then(|| ReplySizes {
                differed: st.other_sizes.replies,
                min: st.other_sizes.min,
                max: st.other_sizes.max,
                seen: st.other_sizes.sizes().to_vec(),
            }),
            tlv_results: TlvResults::new(&sender.tlvs, answered, &st.tlvs),
            cos: CosReport::new(&sender.tlvs, &st.cos),
        }
    }
}

/// Round-trip times in microseconds, from an HdrHistogram with three
/// significant digits. Open loop measures from each probe's intended send time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rtt {
    /// Shortest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Longest.
    pub max: f64,
}

impl Rtt {
    fn from_histogram(h: &Histogram<u64>) -> Option<Rtt> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Rtt {
            min: us(h.min()),
            mean: h.mean().round() / 1e3,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

fn expect_name(expect: Expect) -> &'static str {
    match expect {
        Expect::Upper => "upper",
        Expect::Echo => "echo",
        Expect::Any => "any",
    }
}

impl Report {
    pub(super) fn new(
        config: &BenchConfig,
        tally: Tally,
        rtt: &Histogram<u64>,
        dropped_here: Option<u64>,
        duration: Duration,
    ) -> Report {
        let lost = tally.sent.saturating_sub(tally.answered);
        let secs = duration.as_secs_f64();
        let per_s = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        let (window, rate) = match config.load {
            Load::Window(w) => (Some(w), None),
            Load::Rate(r) => (None, Some(r)),
        };
        Report {
            schema: SCHEMA,
            target: config.target,
            expect: if config.stamp.is_some() { "stamp" } else { expect_name(config.expect) },
            size: config.size,
            flows: config.flows,
            window,
            rate,
            gso: config.gso,
            busy_poll: config.busy_poll,
            dscp: config.dscp,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: secs,
            timeout_s: config.timeout.as_secs_f64(),
            sent: tally.sent,
            answered: tally.answered,
            lost,
            late: tally.late,
            duplicated: tally.duplicated,
            reordered: tally.reordered,
            mismatched: tally.mismatched,
            unreachable: tally.unreachable,
            dropped_here,
            lost_elsewhere: dropped_here.map(|d| lost.saturating_sub(d)),
            loss_pct: if tally.sent > 0 { lost as f64 * 100.0 / tally.sent as f64 } else { 0.0 },
            answers_per_s: per_s(tally.answered as f64),
            mbit_per_s: per_s(tally.answered as f64 * config.size as f64 * 8.0) / 1e6,
            rtt_us: Rtt::from_histogram(rtt),
            stamp: None,
            timeline: None,
        }
    }

    /// The limits this run broke, one sentence each: `max_loss_pct` on
    /// [`loss_pct`](Report::loss_pct), `max_p99` on the 99th percentile RTT.
    /// Empty when both hold (or are `None`).
    pub fn check(&self, max_loss_pct: Option<f64>, max_p99: Option<Duration>) -> Vec<String> {
        let mut broken = Vec::new();
        if let Some(limit) = max_loss_pct {
            if self.loss_pct > limit {
                broken.push(format!(
                    "loss {:.3}% ({} of {} probes) is above --max-loss {limit}%",
                    self.loss_pct, self.lost, self.sent
                ));
            }
        }
        if let Some(limit) = max_p99 {
            match self.rtt_us {
                Some(rtt) if rtt.p99 * 1e3 <= limit.as_nanos() as f64 => {}
                Some(rtt) => broken.push(format!(
                    "p99 RTT {} is above --max-p99 {}",
                    human(Duration::from_nanos((rtt.p99 * 1e3) as u64)),
                    human(limit)
                )),
                None => broken.push(format!(
                    "no probe was answered, so p99 RTT is unknown (--max-p99 {})",
                    human(limit)
                )),
            }
        }
        broken
    }
}

/// For tests: a report of the default configuration over 2 s, one reply dropped here.
#[cfg(test)]
pub(crate) fn sample(sent: u64, answered: u64, rtts_ns: &[u64]) -> Report {
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    for &r in rtts_ns {
        h.record(r).unwrap();
    }
    let tally = Tally { sent, answered, ..Tally::default() };
    let config = BenchConfig::default();
    Report::new(&config, tally, &h, Some(1), Duration::from_secs(2))
}

/// For tests: [`sample`] as a STAMP run through a stateful reflector.
#[cfg(test)]
pub(crate) fn stamp_sample() -> Report {
    use super::stamp::StampEcho;
    use crate::stamp::TlvFlags;
    let mut config = BenchConfig::default();
    let mut stamp = super::config::StampConfig::default();
    stamp.sender.tlvs = vec![TlvRequest::TimestampInfo, TlvRequest::Raw { kind: 200, len: 4 }];
    config.stamp = Some(stamp);
    let mut st = StampTally::default();
    for seq in 0..10u64 {
        let t = 1_000_000_000 + seq as i64 * 1_000;
        let e = StampEcho {
            reflector_seq: seq as u32 + u32::from(seq > 4),
            t1_ns: Some(t),
            t2_ns: Some(t + 10_000),
            t3_ns: Some(t + 12_000),
            forward_ttl: 254,
            tlvs: {
                // Timestamp Information processed; type 200 unknown (U), and
                // missing from the last reply.
                let mut m = super::stamp::TlvMarks::default();
                m.note(3, TlvFlags(0));
                if seq < 9 {
                    m.note(200, TlvFlags(TlvFlags::U));
                }
                m
            },
            cos: None,
        };
        st.on_answer(seq, 25_000, &e, (Some(64), None), t + 20_000);
    }
    st.split(0, 10);
    let mut r = sample(10, 10, &[25_000; 10]);
    r.expect = "stamp";
    r.stamp = Some(StampReport::new(&config, &st, 10));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_loss_and_split() {
        let r = sample(1000, 990, &[50_000; 990]);
        assert_eq!(r.lost, 10);
        assert_eq!((r.dropped_here, r.lost_elsewhere), (Some(1), Some(9)));
        assert!((r.loss_pct - 1.0).abs() < 1e-9);
        assert!((r.answers_per_s - 495.0).abs() < 1e-9);
        assert!((r.mbit_per_s - 495.0 * 64.0 * 8.0 / 1e6).abs() < 1e-9);
        let rtt = r.rtt_us.unwrap();
        assert!((rtt.p50 - 50.0).abs() < 0.1, "{rtt:?}");
    }

    #[test]
    fn checks_name_what_broke() {
        let r = sample(100, 90, &[2_000_000; 90]);
        assert!(r.check(None, None).is_empty());
        assert!(r.check(Some(10.0), Some(Duration::from_millis(3))).is_empty());
        let broken = r.check(Some(5.0), Some(Duration::from_millis(1)));
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].contains("loss 10.000%"), "{broken:?}");
        assert!(broken[1].contains("p99 RTT 2.00"), "{broken:?}");
        let none = sample(10, 0, &[]);
        assert_eq!(none.rtt_us, None);
        assert!(none.check(None, Some(Duration::from_secs(1)))[0].contains("unknown"));
    }
}
