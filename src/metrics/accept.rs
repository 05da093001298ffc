//! Which exposition a scrape asks for: its `Accept` header, read as RFC 9110
//! media ranges with `q` weights.
//!
//! Prometheus with `--enable-feature=native-histograms` sends
//! `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`
//! first and the text formats at lower weights; without it, only the text
//! formats. Anything else (no header, `*/*`, a typo) gets the text.

/// The media type of the Prometheus protobuf exposition, as answered.
pub(crate) const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Whether the request head's `Accept` header weighs the protobuf exposition
/// above zero and at least as high as any text format it takes.
pub(crate) fn prefers_protobuf(head: &[u8]) -> bool {
    let Ok(head) = std::str::from_utf8(head) else {
        return false;
    };
    let (mut protobuf, mut text) = (0.0f64, 0.0f64);
    let values = head.lines().skip(1).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("accept").then_some(value)
    });
    for range in values.flat_map(|v| v.split(',')) {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut q, mut proto, mut encoding) = (1.0, None, None);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    q = value.parse().ok().filter(|q: &f64| (0.0..=1.0).contains(q)).unwrap_or(0.0)
                }
                "proto" => proto = Some(value),
                "encoding" => encoding = Some(value),
                _ => {}
            }
        }
        match media.as_str() {
            "application/vnd.google.protobuf"
                if proto == Some("io.prometheus.client.MetricFamily")
                    && encoding == Some("delimited") =>
            {
                protobuf = protobuf.max(q);
            }
            "application/openmetrics-text" | "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    protobuf > 0.0 && protobuf >= text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(accept: &str) -> bool {
        prefers_protobuf(format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}\r\n\r\n").as_bytes())
    }

    #[test]
    fn prometheus_with_native_histograms_gets_protobuf_everyone_else_text() {
        // Prometheus 2.42 with --enable-feature=native-histograms, and without.
        assert!(asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
        assert!(!asks("Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
        // Prometheus 2.49 and later weigh every protocol, in the order of `scrape_protocols`.
        assert!(asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"));
        assert!(!asks("Accept: application/openmetrics-text;version=1.0.0;q=0.6,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,*/*;q=0.2"));
        assert!(asks("accept: Application/Vnd.Google.Protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=delimited"));
        assert!(asks("X-Other: 1\r\nAccept: text/plain;q=0.2\r\nAccept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.3"));
        assert!(!asks("Accept: */*"), "curl");
        assert!(!asks("X-Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"));
        assert!(!asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"));
        assert!(!asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.Other;encoding=delimited"));
        assert!(!asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"));
        assert!(!asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,text/plain"));
        assert!(!asks("Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=x"));
        assert!(!prefers_protobuf(b"GET /metrics HTTP/1.1\r\n\r\n"));
        assert!(!prefers_protobuf(b"GET /metrics HTTP/1.1\r\nAccept: \xff\r\n\r\n"));
    }
}
