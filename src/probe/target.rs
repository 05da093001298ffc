//! One fully resolved target: what the agent probes, how, and under which labels.
//! A target whose spec is unchanged across a reload keeps all its state.

use std::net::SocketAddr;
use std::time::Duration;

/// What a probe is and what a correct answer looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// STAMP test packets (RFC 8762/8972): RTT, one-way delays, loss by direction.
    Stamp,
    /// A numbered payload answered uppercased (`shout server`).
    Upper,
    /// A numbered payload answered unchanged (`shout server --mode echo`, any echo service).
    Echo,
}

/// One target, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    /// The `target` label: the address as the user wrote it.
    pub name: String,
    /// The resolved address probes go to.
    pub addr: SocketAddr,
    /// The kind of probe.
    pub protocol: Protocol,
    /// Time between two probes.
    pub interval: Duration,
    /// How long a probe waits for its answer before it counts as lost.
    pub timeout: Duration,
    /// Bytes of UDP payload per probe.
    pub size: usize,
    /// DSCP (0..=63) the probes are marked with.
    pub dscp: Option<u8>,
    /// TTL or hop limit the probes leave with.
    pub ttl: Option<u8>,
    /// STAMP session identifier.
    pub ssid: u16,
    /// STAMP HMAC key: authenticated mode.
    pub key: Option<Vec<u8>>,
    /// Extra Prometheus labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

impl TargetSpec {
    /// Its labels as the metrics text writes them inside the braces: `target`,
    /// then the configured ones (`target="a",role="b"`), values escaped.
    pub(crate) fn label_text(&self) -> Box<str> {
        let mut out = String::from("target=\"");
        escape_label(&self.name, &mut out);
        out.push('"');
        for (k, v) in &self.labels {
            out.push(',');
            out.push_str(k);
            out.push_str("=\"");
            escape_label(v, &mut out);
            out.push('"');
        }
        out.into()
    }
}

/// Appends a label value as the text format needs it: `\`, `"` and newlines escaped.
pub(crate) fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
