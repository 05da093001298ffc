//! The human table: `Display` for [`Report`].

use std::fmt;
use std::time::Duration;

use crate::bench::report::Report;
use crate::duration::human;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.flows == 1 { "" } else { "s" };
        writeln!(f, "target      {} (expect {})", self.target, self.expect)?;
        let gso = match (self.gso, self.busy_poll) {
            (false, false) => "",
            (true, false) => ", GSO/GRO",
            (false, true) => ", busy-poll",
            (true, true) => ", GSO/GRO, busy-poll",
        };
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
        Ok(())
    }
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
    }
}
