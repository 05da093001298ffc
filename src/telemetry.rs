//! What operators see: summary and interval lines (text or JSON), and the
//! Prometheus `/metrics` endpoint.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::counters::Counts;

/// How the server writes its stderr lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `summary: received=1 ...`, `from ADDR (N B): text`, `WARN ...`.
    #[default]
    Text,
    /// One JSON object per line, through `tracing`'s JSON formatter, with the
    /// counters as fields.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (expected text or json)")),
        }
    }
}

/// Writes a `summary` or `stats` line with the counters and, for intervals,
/// the answer rate.
pub fn log_counts(
    format: LogFormat,
    event: &'static str,
    counts: &Counts,
    answers_per_sec: Option<f64>,
) {
    match format {
        LogFormat::Text => {
            let mut line = format!("{event}: {counts}");
            if let Some(rate) = answers_per_sec {
                let _ = write!(line, " answers_per_sec={rate:.1}");
            }
            // A closed stderr must not take the server down (eprintln! would panic).
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
        LogFormat::Json => counts.trace(event, answers_per_sec.unwrap_or(f64::NAN)),
    }
}

/// The `/metrics` endpoint: a small blocking HTTP server (no TLS stack).
pub struct MetricsEndpoint {
    http: tiny_http::Server,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint").field("addr", &self.addr).finish()
    }
}

impl MetricsEndpoint {
    /// Binds the HTTP listener now, so a bad address fails before serving starts.
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsEndpoint> {
        let http = tiny_http::Server::http(addr).map_err(io::Error::other)?;
        let addr = http.server_addr().to_ip().unwrap_or(addr);
        Ok(MetricsEndpoint { http, addr })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers scrapes with `render()` until `stop` is set.
    pub fn serve(&self, stop: &AtomicBool, render: impl Fn() -> String) {
        while !stop.load(Relaxed) {
            let Ok(Some(request)) = self.http.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let response = if request.url() == "/metrics" {
                let header = tiny_http::Header::from_bytes(
                    "Content-Type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .expect("a valid static header");
                tiny_http::Response::from_string(render()).with_header(header)
            } else {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            };
            let _ = request.respond(response);
        }
    }
}

/// Renders per-worker counters in the Prometheus/OpenMetrics text format.
pub fn prometheus(workers: &[(SocketAddr, Counts)], answers_per_sec: f64) -> String {
    let mut registry = Registry::with_prefix("shout");
    registry.register_collector(Box::new(Snapshot { workers: workers.to_vec(), answers_per_sec }));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Reads one counter.
type Field = fn(&Counts) -> u64;

#[derive(Debug)]
struct Snapshot {
    workers: Vec<(SocketAddr, Counts)>,
    answers_per_sec: f64,
}

impl Snapshot {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: impl Fn(&Counts) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(0u64);
        let mut metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        for (worker, (addr, counts)) in self.workers.iter().enumerate() {
            let labels = [("worker", worker.to_string()), ("addr", addr.to_string())];
            ConstCounter::new(value(counts)).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        self.counter(e, "received_datagrams", "Datagrams received", |c| c.received)?;
        self.counter(e, "answered_datagrams", "Replies sent", |c| c.answered)?;
        self.counter(e, "received_bytes", "Payload bytes received", |c| c.bytes_received)?;
        self.counter(e, "answered_bytes", "Payload bytes sent back", |c| c.bytes_answered)?;
        self.counter(e, "reply_failures", "Replies the kernel refused", |c| c.reply_failed)?;
        self.counter(e, "receive_errors", "Receive errors survived", |c| c.recv_errors)?;
        self.counter(
            e,
            "kernel_drops",
            "Datagrams dropped by the kernel: receive queue full",
            |c| c.kernel_drops,
        )?;
        // One family, a label per reason: `sum by (reason)` gives the policy's drops.
        let reasons: [(&str, Field); 8] = [
            ("oversize", |c| c.oversize),
            ("port_zero", |c| c.port_zero),
            ("denied_port", |c| c.denied_port),
            ("bad_source", |c| c.bad_source),
            ("self_loop", |c| c.self_loop),
            ("rate_limited", |c| c.rate_limited),
            ("stamp_malformed", |c| c.stamp_malformed),
            ("stamp_auth_failed", |c| c.stamp_auth_failed),
        ];
        let counter = ConstCounter::new(0u64);
        let mut metric = e.encode_descriptor(
            "dropped_datagrams",
            "Datagrams dropped unanswered, by reason",
            None,
            counter.metric_type(),
        )?;
        for (reason, value) in reasons {
            for (worker, (addr, counts)) in self.workers.iter().enumerate() {
                let labels = [
                    ("worker", worker.to_string()),
                    ("addr", addr.to_string()),
                    ("reason", reason.to_string()),
                ];
                ConstCounter::new(value(counts)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let gauge = ConstGauge::new(self.answers_per_sec);
        let metric = e.encode_descriptor(
            "answers_per_second",
            "Replies per second over the last second",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_counters_by_worker_and_reason() {
        let counts = Counts { received: 5, answered: 4, rate_limited: 1, ..Counts::default() };
        let text = prometheus(&[("127.0.0.1:8080".parse().unwrap(), counts)], 12.5);
        assert!(
            text.contains(r#"shout_received_datagrams_total{worker="0",addr="127.0.0.1:8080"} 5"#),
            "{text}"
        );
        assert!(text.contains(r#"shout_dropped_datagrams_total{worker="0",addr="127.0.0.1:8080",reason="rate_limited"} 1"#), "{text}");
        assert!(text.contains("shout_answers_per_second 12.5"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
