//! The human table: `Display` for [`Report`].

use std::fmt;
use std::time::Duration;

use crate::bench::report::{CosReport, Report, StampReport, TlvResults};
use crate::duration::human;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.flows == 1 { "" } else { "s" };
        writeln!(f, "target      {} (expect {})", self.target, self.expect)?;
        let mut gso = match (self.gso, self.busy_poll) {
            (false, false) => "",
            (true, false) => ", GSO/GRO",
            (false, true) => ", busy-poll",
            (true, true) => ", GSO/GRO, busy-poll",
        }
        .to_owned();
        if let Some(d) = self.dscp {
            gso += &match crate::dscp::dscp_name(d) {
                Some(name) => format!(", DSCP {d} ({name})"),
                None => format!(", DSCP {d}"),
            };
        }
        match (self.window, self.rate) {
            (Some(w), _) => writeln!(
                f,
                "load        closed loop, {} flow{plural} x window {w}, {} B probes{gso}",
                self.flows, self.size
            )?,
            (_, Some(r)) => writeln!(
                f,
                "load        open loop, {r} probes/s over {} flow{plural}, {} B probes{gso}",
                self.flows, self.size
            )?,
            (None, None) => {}
        }
        write!(f, "measured    {:.2} s", self.duration_s)?;
        if self.warmup_s > 0.0 {
            write!(f, " after {:.2} s warmup", self.warmup_s)?;
        }
        writeln!(f)?;
        writeln!(f, "sent        {}", self.sent)?;
        writeln!(
            f,
            "answered    {}  ({:.0}/s, {:.2} Mbit/s)",
            self.answered, self.answers_per_s, self.mbit_per_s
        )?;
        write!(f, "lost        {}  ({:.3}%", self.lost, self.loss_pct)?;
        if let (Some(here), Some(elsewhere)) = (self.dropped_here, self.lost_elsewhere) {
            write!(f, "; dropped here {here}, elsewhere {elsewhere}")?;
        }
        writeln!(f, ")")?;
        writeln!(f, "late        {}", self.late)?;
        writeln!(f, "duplicated  {}", self.duplicated)?;
        writeln!(f, "reordered   {}", self.reordered)?;
        writeln!(f, "mismatched  {}", self.mismatched)?;
        if self.unreachable > 0 {
            writeln!(
                f,
                "unreachable {}  (port unreachable: the target went away during the run)",
                self.unreachable
            )?;
        } else {
            writeln!(f, "unreachable 0")?;
        }
        match self.rtt_us {
            None => writeln!(f, "rtt         none answered")?,
            Some(rtt) => {
                let d = |us: f64| human(Duration::from_nanos((us * 1e3) as u64));
                for (name, us) in [
                    ("min", rtt.min),
                    ("p50", rtt.p50),
                    ("p90", rtt.p90),
                    ("p99", rtt.p99),
                    ("p99.9", rtt.p999),
                    ("max", rtt.max),
                ] {
                    writeln!(f, "rtt {name:<7} {}", d(us))?;
                }
            }
        }
        if let Some(s) = &self.stamp {
            write_stamp(f, s, self.size)?;
            if s.mode == "authenticated"
                && self.answered == 0
                && self.sent > 0
                && s.auth_failed == 0
            {
                writeln!(
                    f,
                    "no reply    a reflector that checks the key sends nothing back for a wrong one: check --stamp-key-file"
                )?;
            }
        }
        Ok(())
    }
}

fn write_stamp(f: &mut fmt::Formatter<'_>, s: &StampReport, sent_size: usize) -> fmt::Result {
    write!(f, "stamp       {}, {} timestamps, ssid {}", s.mode, s.timestamp, s.ssid)?;
    if !s.tlvs.is_empty() {
        write!(f, ", TLVs {}", s.tlvs.join(","))?;
    }
    writeln!(f)?;
    match (s.forward_lost, s.backward_lost) {
        (Some(fwd), Some(bwd)) => writeln!(
            f,
            "loss split  forward {fwd}, backward {bwd}, after the last reply {} (stateful reflector)",
            s.unsplit_lost
        )?,
        _ if s.unsplit_lost == 0 => writeln!(f, "loss split  none lost")?,
        _ => writeln!(
            f,
            "loss split  unknown: the reflector's numbers never differed from ours (stateless, or say --stamp-stateful)"
        )?,
    }
    let (failed, plain) = (s.auth_failed, s.unauthenticated_replies);
    if plain > 0 && plain == failed {
        writeln!(
            f,
            "auth failed {failed} replies: the reflector answers unauthenticated (it has no key: run without --stamp-key-file, or give it the key)"
        )?;
    } else if plain > 0 {
        writeln!(
            f,
            "auth failed {failed} replies (wrong key?); {plain} of them unauthenticated: a reflector without a key"
        )?;
    } else if failed > 0 {
        writeln!(f, "auth failed {failed} replies (wrong key?)")?;
    }
    for (name, ttl) in [("forward", s.forward_ttl), ("back", s.backward_ttl)] {
        match ttl {
            Some(t) if t.min == t.max => {
                writeln!(f, "ttl {name:<8}{} ({} hops if sent with 255)", t.min, t.hops_min)?
            }
            Some(t) => writeln!(
                f,
                "ttl {name:<8}{}-{} ({}-{} hops if sent with 255)",
                t.min, t.max, t.hops_min, t.hops_max
            )?,
            None => writeln!(f, "ttl {name:<8}unknown")?,
        }
    }
    let ms = |us: f64| format!("{:.3} ms", us / 1e3);
    for (name, delay, note) in [
        ("forward", s.forward_us, "  (one-way: needs synchronised clocks)"),
        ("backward", s.backward_us, "  (one-way: needs synchronised clocks)"),
        ("turnaround", s.turnaround_us, ""),
        ("rtt net", s.rtt_net_us, "  (rtt minus turnaround)"),
    ] {
        match delay {
            Some(d) => writeln!(
                f,
                "{name:<11} p50 {}  p99 {}  min {}  max {}{note}",
                ms(d.p50),
                ms(d.p99),
                ms(d.min),
                ms(d.max)
            )?,
            None => writeln!(f, "{name:<11} unknown")?,
        }
    }
    if let Some(c) = &s.cos {
        write_cos(f, c)?;
    }
    if let Some(r) = &s.reply_sizes {
        let seen: Vec<String> = r.seen.iter().map(usize::to_string).collect();
        let range =
            if r.min == r.max { format!("{} B", r.min) } else { format!("{}-{} B", r.min, r.max) };
        write!(f, "reply size  {} replies not {sent_size} B as sent: {range}", r.differed)?;
        if r.min != r.max {
            write!(f, " ({}{})", seen.join(", "), if r.seen.len() >= 16 { ", ..." } else { "" })?;
        }
        writeln!(f, "; measured all the same (the reflector pads its own way)")?;
    }
    if let Some(t) = &s.tlv_results {
        write_tlvs(f, t)?;
    }
    Ok(())
}

/// The Class of Service asked for, and the DSCP and ECN each way as received.
fn write_cos(f: &mut fmt::Formatter<'_>, c: &CosReport) -> fmt::Result {
    let list = |v: &[u8]| match v {
        [] => "unknown".to_string(),
        _ => v.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
    };
    writeln!(
        f,
        "cos forward dscp {}, ecn {} (as the reflector received them)",
        list(&c.forward_dscp),
        list(&c.forward_ecn)
    )?;
    writeln!(
        f,
        "cos back    dscp {}, ecn {} (asked for {}; refused on {} of {} replies)",
        list(&c.backward_dscp),
        list(&c.backward_ecn),
        c.requested,
        c.refused,
        c.replies
    )
}

/// One line per TLV type sent: how many replies brought it back, and flagged how.
fn write_tlvs(f: &mut fmt::Formatter<'_>, t: &TlvResults) -> fmt::Result {
    for r in &t.types {
        let name = if r.name == "raw" { format!("type {}", r.kind) } else { r.name.to_owned() };
        write!(f, "tlv {name:<7} back on {} of {} replies", r.returned, t.replies)?;
        let flags = [
            ("unrecognized (U)", r.unrecognized),
            ("malformed (M)", r.malformed),
            ("integrity failed (I)", r.integrity_failed),
        ];
        if flags.iter().all(|&(_, n)| n == 0) {
            writeln!(f, ", none flagged")?;
        } else {
            let mut sep = ": ";
            for (name, n) in flags.into_iter().filter(|&(_, n)| n > 0) {
                write!(f, "{sep}{n} {name}")?;
                sep = ", ";
            }
            writeln!(f)?;
        }
    }
    if t.hmac_failed > 0 {
        writeln!(f, "tlv hmac    failed on {} replies: their TLVs not counted", t.hmac_failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::bench::report::sample;

    #[test]
    fn table_splits_the_loss_and_lists_rtts() {
        let r = sample(1000, 990, &[50_000; 990]);
        let table = r.to_string();
        assert!(table.contains("lost        10  (1.000%; dropped here 1, elsewhere 9)"), "{table}");
        assert!(table.contains("rtt p99     0.050 ms"), "{table}");
        assert!(!table.contains("stamp"), "{table}");
    }

    #[test]
    fn stamp_lines_follow_the_rtts() {
        let table = crate::bench::report::stamp_sample().to_string();
        assert!(table.contains("target      127.0.0.1:8080 (expect stamp)"), "{table}");
        assert!(table.contains("stamp       unauthenticated, ntp timestamps, ssid 0"), "{table}");
        assert!(table.contains("loss split  forward 0, backward 0"), "{table}");
        assert!(table.contains("ttl forward 254 (1 hops if sent with 255)"), "{table}");
        assert!(table.contains("ttl back    64 (191 hops"), "{table}");
        assert!(table.contains("forward     p50 0.010 ms"), "{table}");
        assert!(table.contains("turnaround  p50 0.002 ms"), "{table}");
        assert!(
            table.contains("tlv timestamp-info back on 10 of 10 replies, none flagged\n"),
            "{table}"
        );
        assert!(
            table.contains("tlv type 200 back on 9 of 10 replies: 9 unrecognized (U)\n"),
            "{table}"
        );
        assert!(!table.contains("tlv hmac"), "{table}");
    }
}
