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
    "dscp",
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
    "unreachable",
    "dropped_here",
    "lost_elsewhere",
    "loss_pct",
    "answers_per_s",
    "mbit_per_s",
    "rtt_us",
];

/// The keys of the `stamp` object that follows [`JSON_FIELDS`] with `--stamp`
/// (and only then), in order (docs/BENCH-JSON.md).
pub const STAMP_JSON_FIELDS: &[&str] = &[
    "mode",
    "timestamp",
    "ssid",
    "tlvs",
    "reflector_stateful",
    "reflector_own_seq",
    "forward_lost",
    "backward_lost",
    "unsplit_lost",
    "auth_failed",
    "unauthenticated_replies",
    "forward_ttl",
    "backward_ttl",
    "forward_us",
    "backward_us",
    "turnaround_us",
    "rtt_net_us",
    "reply_sizes",
    "tlv_results",
    "cos",
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
        assert!(json.get("stamp").is_none(), "no stamp object without --stamp");
    }

    #[test]
    fn stamp_object_has_every_field() {
        let json = serde_json::to_value(crate::bench::report::stamp_sample()).unwrap();
        assert_eq!(json.as_object().unwrap().len(), JSON_FIELDS.len() + 1, "{json}");
        let stamp = json["stamp"].as_object().unwrap();
        let keys: Vec<&str> = stamp.keys().map(String::as_str).collect();
        let mut want = STAMP_JSON_FIELDS.to_vec();
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{json}");
        assert_eq!(json["expect"], "stamp");
        for key in ["forward_ttl", "backward_ttl"] {
            for k in ["min", "max", "hops_min", "hops_max"] {
                assert!(stamp[key][k].is_number(), "{key}.{k}: {json}");
            }
        }
        for key in ["forward_us", "backward_us", "turnaround_us", "rtt_net_us"] {
            for k in ["min", "mean", "p50", "p99", "max"] {
                assert!(stamp[key][k].is_number(), "{key}.{k}: {json}");
            }
        }
        let t = &stamp["tlv_results"];
        assert_eq!((&t["replies"], &t["hmac_failed"]), (&10.into(), &0.into()), "{json}");
        let want = serde_json::json!([
            {"name": "timestamp-info", "type": 3, "returned": 10, "unrecognized": 0,
             "malformed": 0, "integrity_failed": 0},
            {"name": "raw", "type": 200, "returned": 9, "unrecognized": 9,
             "malformed": 0, "integrity_failed": 0},
        ]);
        assert_eq!(t["types"], want, "{json}");
    }
}
