//! `--csv`: the timeline's rows, one line per interval.

use std::io::{self, Write};

use crate::bench::record::Timeline;

/// The header of [`Timeline::write_csv`].
pub const CSV_HEADER: &str = "elapsed_s,sent,answered,lost,answers_per_s,p50_us,p99_us";

impl Timeline {
    /// Writes [`CSV_HEADER`] and one line per interval.
    pub fn write_csv(&self, mut out: impl Write) -> io::Result<()> {
        writeln!(out, "{CSV_HEADER}")?;
        // Tenths of a microsecond: the interval histograms are good to 1% anyway.
        let us = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
        for r in &self.rows {
            writeln!(
                out,
                "{:.3},{},{},{},{:.1},{},{}",
                r.elapsed_s,
                r.sent,
                r.answered,
                r.lost,
                r.answers_per_s,
                us(r.p50_us),
                us(r.p99_us)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::Interval;
    use std::time::Duration;

    #[test]
    fn a_line_per_row_empty_percentiles_left_blank() {
        let row = |elapsed_s, sent, answered, p50_us, p99_us| Interval {
            elapsed_s,
            sent,
            answered,
            lost: sent - answered,
            answers_per_s: answered as f64 * 10.0,
            p50_us,
            p99_us,
        };
        let t = Timeline {
            interval: Duration::from_millis(100),
            rows: vec![row(0.1, 101, 101, Some(1.0), Some(3.0)), row(0.2, 2, 0, None, None)],
            percentiles: vec![],
        };
        let mut csv = Vec::new();
        t.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "0.100,101,101,0,1010.0,1.0,3.0");
        assert_eq!(lines[2], "0.200,2,0,2,0.0,,");
        assert_eq!(lines.len(), 3);
    }
}
