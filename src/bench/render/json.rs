//! `--json`: the report is `Serialize`d as it stands (serde derives the
//! object from the struct); this is the list of its top-level keys, which
//! docs/BENCH-JSON.md documents and tests check.

/// The top-level keys of the JSON report, in order (docs/BENCH-JSON.md).
pub const JSON_FIELDS: &[&str] = &[
    "schema",
    "target",
    "expect",
    "size",
    "flows",
    "window",
    "rate",
    "gso",
    "busy_poll",
    "warmup_s",
    "duration_s",
    "timeout_s",
    "sent",
    "answered",
    "lost",
    "late",
    "duplicated",
    "reordered",
    "mismatched",
    "dropped_here",
    "lost_elsewhere",
    "loss_pct",
    "answers_per_s",
    "mbit_per_s",
    "rtt_us",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::sample;

    #[test]
    fn json_has_every_field() {
        let json = serde_json::to_value(sample(10, 10, &[1_000])).unwrap();
        for key in JSON_FIELDS {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(
            json.as_object().unwrap().len(),
            JSON_FIELDS.len(),
            "a field not in JSON_FIELDS: {json}"
        );
        assert_eq!(json["target"], "127.0.0.1:8080");
        assert_eq!(json["rate"], serde_json::Value::Null);
        for key in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(json["rtt_us"][key].is_number(), "rtt_us.{key}: {json}");
        }
    }
}
