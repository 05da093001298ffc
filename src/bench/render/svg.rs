//! `--plot`: the run as one SVG image, written by hand.
//!
//! Top: round-trip time by percentile, as HdrHistogram's plotter draws a
//! percentile distribution (x is `1/(1-p)` on a log scale, so each decade is
//! one more nine). Bottom: answers per second, one point per interval. Under
//! both, a caption with the run's parameters and totals.

use std::fmt::{self, Write};

use crate::bench::record::Timeline;
use crate::bench::report::Report;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 860.0;
/// Room for the y tick labels and axis title.
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const PANEL_HEIGHT: f64 = 270.0;
const TOP_A: f64 = 90.0;
const TOP_B: f64 = 460.0;
/// Fewer decades than this and the axis would stop short of 99.999%.
const MIN_DECADES: u32 = 5;
/// Interval points get a marker up to this many; beyond, only the line.
const MAX_MARKERS: usize = 400;

impl Report {
    /// The run as an SVG image: round-trip time by percentile, and answers per
    /// second over time. `None` without a [`timeline`](Report::timeline).
    pub fn svg(&self) -> Option<String> {
        self.timeline.as_ref().map(|t| svg(self, t))
    }
}

/// The image for `report`, whose timeline is `timeline`.
fn svg(report: &Report, timeline: &Timeline) -> String {
    let mut out = String::new();
    draw(&mut out, report, timeline).expect("writing to a String cannot fail");
    out
}

fn draw(out: &mut String, report: &Report, timeline: &Timeline) -> fmt::Result {
    let title = format!("shout bench {}", report.target);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(out, "<title>{}</title>", esc(&title))?;
    writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    writeln!(
        out,
        r#"<text x="{}" y="32" text-anchor="middle" font-size="18" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        esc(&title)
    )?;
    percentile_panel(out, timeline)?;
    rate_panel(out, timeline)?;
    for (i, line) in caption(report, timeline).iter().enumerate() {
        writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" fill="#333">{}</text>"##,
            HEIGHT - 68.0 + 18.0 * i as f64,
            esc(line)
        )?;
    }
    writeln!(out, "</svg>")
}

/// Round-trip time (linear) against `1/(1-p)` (log).
fn percentile_panel(out: &mut String, timeline: &Timeline) -> fmt::Result {
    // The last point, at 100%, is infinitely far right: the plotter leaves it out too.
    let points: Vec<(f64, f64)> = timeline
        .percentiles
        .iter()
        .filter(|p| p.quantile < 1.0)
        .map(|p| ((1.0 / (1.0 - p.quantile)).log10(), p.rtt_us))
        .collect();
    let decades = points.iter().map(|p| p.0.ceil() as u32).max().unwrap_or(0).max(MIN_DECADES);
    let (y_top, y_step) = axis(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let panel = Panel { top: TOP_A, x_max: f64::from(decades), y_top };
    panel.frame(out, "Round-trip time by percentile", "percentile", "RTT (µs)")?;
    for d in 0..=decades {
        panel.x_tick(out, f64::from(d), &nines(d))?;
    }
    panel.y_ticks(out, y_step, |v| number(v, y_step))?;
    if points.is_empty() {
        return panel.empty(out, "no probe was answered");
    }
    panel.line(out, "percentile-curve", "#1f77b4", &points, false)
}

/// Answers per second against the end of each interval.
fn rate_panel(out: &mut String, timeline: &Timeline) -> fmt::Result {
    let points: Vec<(f64, f64)> =
        timeline.rows.iter().map(|r| (r.elapsed_s, r.answers_per_s)).collect();
    let end = points.last().map_or(0.0, |p| p.0);
    let (x_max, x_step) = axis(end.max(timeline.interval.as_secs_f64()));
    let (y_top, y_step) = axis(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let panel = Panel { top: TOP_B, x_max, y_top };
    let title = format!(
        "Answers per second over time ({} intervals, by send time)",
        span(timeline.interval)
    );
    panel.frame(out, &title, "elapsed (s)", "answers/s")?;
    let mut x = 0.0;
    while x <= x_max + x_step / 2.0 {
        panel.x_tick(out, x, &number(x, x_step))?;
        x += x_step;
    }
    panel.y_ticks(out, y_step, |v| compact(v, y_step))?;
    if points.is_empty() {
        return panel.empty(out, "no interval was measured");
    }
    panel.line(out, "answers-rate", "#2ca02c", &points, points.len() <= MAX_MARKERS)
}

/// The run's parameters and totals, a line each.
fn caption(r: &Report, t: &Timeline) -> Vec<String> {
    let flows = if r.flows == 1 { "1 flow".to_string() } else { format!("{} flows", r.flows) };
    let mut load = match (r.window, r.rate) {
        (Some(w), _) => format!("closed loop, {flows} × window {w}"),
        (_, Some(rate)) => format!("open loop, {rate} probes/s over {flows}"),
        (None, None) => flows,
    };
    write!(load, ", {} B probes, expect {}, timeout {} s", r.size, r.expect, r.timeout_s).ok();
    if r.gso {
        load.push_str(", GSO/GRO");
    }
    if r.busy_poll {
        load.push_str(", busy-poll");
    }
    let mut totals = format!("measured {:.2} s", r.duration_s);
    if r.warmup_s > 0.0 {
        write!(totals, " after {} s warmup", r.warmup_s).ok();
    }
    write!(
        totals,
        ": sent {}, answered {} ({:.0}/s), lost {} ({:.3}%)",
        r.sent, r.answered, r.answers_per_s, r.lost, r.loss_pct
    )
    .ok();
    let rtt = match r.rtt_us {
        Some(rtt) => format!(
            "RTT min {:.1} µs, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            rtt.min, rtt.p50, rtt.p90, rtt.p99, rtt.p999, rtt.max
        ),
        None => "RTT: no probe was answered".into(),
    };
    let note = format!(
        "Each lower point counts the probes sent in its {} interval that were answered.",
        span(t.interval)
    );
    vec![load, totals, rtt, note]
}

/// A plot area: x from 0 to `x_max`, y from 0 to `y_top`, full width.
struct Panel {
    top: f64,
    x_max: f64,
    y_top: f64,
}

impl Panel {
    fn width(&self) -> f64 {
        WIDTH - LEFT - RIGHT
    }

    fn bottom(&self) -> f64 {
        self.top + PANEL_HEIGHT
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + v / self.x_max * self.width()
    }

    fn y(&self, v: f64) -> f64 {
        self.bottom() - v / self.y_top * PANEL_HEIGHT
    }

    fn frame(&self, out: &mut String, title: &str, x_label: &str, y_label: &str) -> fmt::Result {
        let (top, bottom, w) = (self.top, self.bottom(), self.width());
        writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            LEFT + w / 2.0,
            top - 14.0,
            esc(title)
        )?;
        writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL_HEIGHT}" fill="none" stroke="#000"/>"##
        )?;
        writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + w / 2.0,
            bottom + 38.0,
            esc(x_label)
        )?;
        let (x, y) = (LEFT - 62.0, top + PANEL_HEIGHT / 2.0);
        writeln!(
            out,
            r#"<text x="{x}" y="{y}" text-anchor="middle" transform="rotate(-90 {x} {y})">{}</text>"#,
            esc(y_label)
        )
    }

    fn x_tick(&self, out: &mut String, v: f64, label: &str) -> fmt::Result {
        let (x, top, bottom) = (self.x(v), self.top, self.bottom());
        writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/>"##
        )?;
        writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            esc(label)
        )
    }

    fn y_ticks(&self, out: &mut String, step: f64, label: impl Fn(f64) -> String) -> fmt::Result {
        let right = LEFT + self.width();
        let mut v = 0.0;
        while v <= self.y_top + step / 2.0 {
            let y = self.y(v);
            writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/>"##
            )?;
            writeln!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                esc(&label(v))
            )?;
            v += step;
        }
        Ok(())
    }

    fn empty(&self, out: &mut String, why: &str) -> fmt::Result {
        writeln!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">{}</text>"##,
            LEFT + self.width() / 2.0,
            self.top + PANEL_HEIGHT / 2.0,
            esc(why)
        )
    }

    fn line(
        &self,
        out: &mut String,
        id: &str,
        color: &str,
        points: &[(f64, f64)],
        markers: bool,
    ) -> fmt::Result {
        write!(
            out,
            r#"<polyline id="{id}" fill="none" stroke="{color}" stroke-width="1.5" points=""#
        )?;
        for (i, &(x, y)) in points.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(out, "{sep}{:.1},{:.1}", self.x(x), self.y(y))?;
        }
        writeln!(out, r#""/>"#)?;
        if markers {
            writeln!(out, r#"<g fill="{color}">"#)?;
            for &(x, y) in points {
                writeln!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"/>"#, self.x(x), self.y(y))?;
            }
            writeln!(out, "</g>")?;
        }
        Ok(())
    }
}

/// An axis from 0 that holds `max`: its top and its tick step (1, 2, 2.5 or 5
/// times a power of ten, about five ticks).
fn axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil().max(1.0) * step, step)
}

/// The label of decade `d` of `1/(1-p)`: 0%, 90%, 99%, 99.9%...
fn nines(d: u32) -> String {
    match d {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)),
    }
}

/// `v` with as many decimals as `step` needs.
fn number(v: f64, step: f64) -> String {
    let decimals = (0..6).find(|&d| {
        let scaled = step * 10f64.powi(d);
        (scaled - scaled.round()).abs() < 1e-6
    });
    format!("{v:.*}", decimals.unwrap_or(6) as usize)
}

/// Like [`number`], in thousands (k) or millions (M) when the step allows.
fn compact(v: f64, step: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if step >= 1e6 {
        format!("{}M", number(v / 1e6, step / 1e6))
    } else if step >= 1e3 {
        format!("{}k", number(v / 1e3, step / 1e3))
    } else {
        number(v, step)
    }
}

/// An interval's length, `100 ms`, `1 s`.
fn span(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Text made safe for XML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(axis(95_782.0), (100_000.0, 20_000.0));
        assert_eq!(axis(0.9), (1.0, 0.2));
        assert_eq!(axis(12.0), (12.5, 2.5));
        assert_eq!(axis(0.0), (1.0, 0.2));
        assert_eq!(axis(f64::NAN), (1.0, 0.2));
        assert_eq!(number(2.5, 2.5), "2.5");
        assert_eq!(number(0.4, 0.2), "0.4");
        assert_eq!(number(300.0, 50.0), "300");
        assert_eq!(compact(40_000.0, 20_000.0), "40k");
        assert_eq!(compact(1_500_000.0, 500_000.0), "1500k");
        assert_eq!(compact(2e6, 1e6), "2M");
        assert_eq!(compact(0.0, 1e6), "0");
    }

    #[test]
    fn an_empty_run_still_draws() {
        use crate::bench::config::BenchConfig;
        use crate::bench::inflight::Tally;
        use std::time::Duration;
        let hist = hdrhistogram::Histogram::new(3).unwrap();
        let config = BenchConfig::default();
        let report = Report::new(&config, Tally::default(), &hist, None, Duration::ZERO);
        let timeline =
            Timeline { interval: Duration::from_millis(100), rows: vec![], percentiles: vec![] };
        let svg = svg(&report, &timeline);
        assert!(svg.contains("no probe was answered") && svg.contains("no interval was measured"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn percentile_labels() {
        let labels: Vec<String> = (0..=5).map(nines).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(esc(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
