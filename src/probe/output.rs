//! What `shout probe` shows people and archives: the live table (redrawn once
//! a second on a terminal), one JSON object per target per interval
//! (`--json`), and the final summary. Pure rendering from
//! [`TargetSnapshot`]s; the command line decides when.
//!
//! ```
//! use std::time::Duration;
//! use shout::probe::output::sparkline;
//!
//! let ms = |n| Some(Duration::from_millis(n));
//! assert_eq!(sparkline(&[ms(1), ms(2), None, ms(8)]), "▁▂×█");
//! ```

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::TargetSnapshot;
use crate::duration::human;

/// Moves the cursor home and clears the screen (ANSI), before each redraw.
pub const CLEAR: &str = "\x1b[H\x1b[2J";
/// The sparkline's levels, lowest round trip first.
pub const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A lost probe in the sparkline.
pub const LOST: char = '×';
/// The widest target column; longer names are cut with `…`.
const MAX_NAME: usize = 40;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// The share of decided probes that were lost (0 to 1), or `None` before any
/// probe was answered or given up.
pub fn loss_ratio(s: &TargetSnapshot) -> Option<f64> {
    let decided = s.answered + s.lost;
    (decided > 0).then(|| s.lost as f64 / decided as f64)
}

/// Recent round trips as one character each, scaled from the window's
/// fastest (`▁`) to its slowest (`█`); a lost probe is `×`.
pub fn sparkline(recent: &[Option<Duration>]) -> String {
    let rtts = recent.iter().flatten();
    let (Some(lo), Some(hi)) = (rtts.clone().min(), rtts.max()) else {
        return recent.iter().map(|_| LOST).collect();
    };
    let span = (*hi - *lo).as_secs_f64();
    recent
        .iter()
        .map(|rtt| match rtt {
            None => LOST,
            Some(_) if span == 0.0 => LEVELS[0],
            Some(d) => {
                let x = (*d - *lo).as_secs_f64() / span;
                LEVELS[((x * (LEVELS.len() - 1) as f64).round() as usize).min(LEVELS.len() - 1)]
            }
        })
        .collect()
}

/// The names to show: the target, and its labels where another row has the
/// same name (else the two rows could not be told apart).
fn names(snaps: &[TargetSnapshot]) -> Vec<String> {
    // Counted once: comparing every row with every other took 50 s for 100,000
    // targets, longer than a service manager waits for the summary at SIGTERM.
    let mut rows_named = std::collections::HashMap::<&str, usize>::new();
    for s in snaps {
        *rows_named.entry(s.name.as_str()).or_default() += 1;
    }
    snaps
        .iter()
        .map(|s| {
            let twin = rows_named[s.name.as_str()] > 1;
            let name = if twin && !s.labels.is_empty() {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {{{}}}", s.name, labels.join(","))
            } else {
                s.name.clone()
            };
            cut(&name, MAX_NAME)
        })
        .collect()
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

fn time(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| human(d).to_string())
}

fn pct(s: &TargetSnapshot) -> String {
    loss_ratio(s).map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Table rows when nothing says how tall the terminal is.
pub const DEFAULT_ROWS: usize = 40;
/// The fewest table rows, however small the terminal.
pub const MIN_ROWS: usize = 5;

/// How many targets the live table shows on a terminal `height` lines tall:
/// all but the heading, the "more" line and the cursor's line, at least
/// [`MIN_ROWS`]. The height is the terminal's own (`tty`, from the tty
/// itself), else the `LINES` environment variable's, else [`DEFAULT_ROWS`]
/// rows are shown.
///
/// ```
/// use shout::probe::output::table_rows;
/// assert_eq!(table_rows(Some(24), Some("100")), 21, "the tty wins over LINES");
/// assert_eq!(table_rows(None, Some("50")), 47);
/// assert_eq!(table_rows(None, None), 40);
/// ```
pub fn table_rows(tty: Option<u16>, lines: Option<&str>) -> usize {
    let height = tty
        .filter(|&h| h > 0)
        .map(usize::from)
        .or_else(|| lines.and_then(|l| l.trim().parse::<usize>().ok()).filter(|&h| h > 0));
    height.map_or(DEFAULT_ROWS, |h| h.saturating_sub(3).max(MIN_ROWS))
}

/// The rows of the terminal on stdout, asked of the terminal itself
/// (`TIOCGWINSZ`); `None` where stdout is no terminal or it does not say.
/// Cheap enough to ask before every redraw, so a resize shows at the next.
pub fn terminal_rows() -> Option<u16> {
    crate::sys::stdout_rows()
}

/// The live table: target, sent, loss, p50/p99/last round trip, the recent
/// round trips as a sparkline, up or down; at most `rows` targets (down ones
/// first, so a screen never hides them), then a line counting the rest.
/// `color` marks lost probes and down targets red and up ones green (give
/// `false` under `NO_COLOR`).
pub fn table(snaps: &[TargetSnapshot], color: bool, rows: usize) -> String {
    let mut shown: Vec<&TargetSnapshot> = snaps.iter().filter(|s| !s.up).collect();
    shown.extend(snaps.iter().filter(|s| s.up));
    let hidden = shown.len().saturating_sub(rows);
    shown.truncate(rows);
    let shown: Vec<TargetSnapshot> = shown.into_iter().cloned().collect();
    let snaps = &shown[..];
    let names = names(snaps);
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max("TARGET".len());
    let mut out = format!(
        "{} {:>9} {:>7} {:>10} {:>10} {:>10}  {:<32}  {}\n",
        pad("TARGET", width),
        "SENT",
        "LOSS",
        "P50",
        "P99",
        "LAST",
        "RECENT",
        "STATE"
    );
    for (s, name) in snaps.iter().zip(&names) {
        let mut spark = sparkline(&s.recent_rtts);
        if color && spark.contains(LOST) {
            spark = spark.replace(LOST, &format!("{RED}{LOST}{RESET}"));
        }
        let spark_pad = " ".repeat(32usize.saturating_sub(s.recent_rtts.len()));
        let state = match (s.up, color) {
            (true, true) => format!("{GREEN}up{RESET}"),
            (false, true) => format!("{RED}down{RESET}"),
            (true, false) => "up".into(),
            (false, false) => "down".into(),
        };
        let _ = writeln!(
            out,
            "{} {:>9} {:>7} {:>10} {:>10} {:>10}  {spark}{spark_pad}  {state}",
            pad(name, width),
            s.sent,
            pct(s),
            time(s.rtt_p50),
            time(s.rtt_p99),
            time(s.last_rtt),
        );
    }
    if hidden > 0 {
        let _ = writeln!(out, "... and {hidden} more targets (all of them: --json or /metrics)");
    }
    out
}

/// One target's JSON line (no newline): the counters so far and the round
/// trips, in seconds. The fields are documented in docs/PROBE.md.
pub fn json_line(s: &TargetSnapshot, now: SystemTime) -> String {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let time = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let labels: serde_json::Map<String, serde_json::Value> =
        s.labels.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    serde_json::json!({
        "time": time,
        "target": s.name,
        "labels": labels,
        "addr": s.addr.to_string(),
        "sent": s.sent,
        "answered": s.answered,
        "lost": s.lost,
        "in_flight": s.in_flight,
        "duplicated": s.duplicated,
        "reordered": s.reordered,
        "late": s.late,
        "mismatched": s.mismatched,
        "unreachable": s.unreachable,
        "loss_ratio": loss_ratio(s),
        "rtt_p50_seconds": secs(s.rtt_p50),
        "rtt_p99_seconds": secs(s.rtt_p99),
        "last_rtt_seconds": secs(s.last_rtt),
        "up": s.up,
    })
    .to_string()
}

/// The final per-target summary: every counter and the round trips.
pub fn summary(snaps: &[TargetSnapshot]) -> String {
    let names = names(snaps);
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max("TARGET".len());
    let mut out = format!(
        "summary: {} target{}\n{} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10} {:>6} {:>6} {:>6} {:>6} {:>7}\n",
        snaps.len(),
        if snaps.len() == 1 { "" } else { "s" },
        pad("TARGET", width),
        "SENT",
        "ANSWERED",
        "LOST",
        "LOSS",
        "P50",
        "P99",
        "DUP",
        "REORD",
        "LATE",
        "WRONG",
        "UNREACH"
    );
    for (s, name) in snaps.iter().zip(&names) {
        let _ = writeln!(
            out,
            "{} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10} {:>6} {:>6} {:>6} {:>6} {:>7}",
            pad(name, width),
            s.sent,
            s.answered,
            s.lost,
            pct(s),
            time(s.rtt_p50),
            time(s.rtt_p99),
            s.duplicated,
            s.reordered,
            s.late,
            s.mismatched,
            s.unreachable,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str) -> TargetSnapshot {
        let ms = |n: u64| Some(Duration::from_micros(n * 100));
        TargetSnapshot {
            name: name.into(),
            labels: vec![("site".into(), "ams".into())],
            addr: "192.0.2.1:862".parse().unwrap(),
            sent: 10,
            answered: 8,
            lost: 1,
            in_flight: 1,
            duplicated: 2,
            reordered: 0,
            late: 1,
            mismatched: 3,
            unreachable: 0,
            rtt_p50: ms(2),
            rtt_p99: ms(9),
            last_rtt: ms(3),
            recent_rtts: vec![ms(1), ms(9), None, ms(5), ms(3)],
            up: true,
        }
    }

    #[test]
    fn sparkline_scales_from_fastest_to_slowest_and_marks_losses() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(sparkline(&[ms(1), ms(9), None, ms(5), ms(3)]), "▁█×▅▃");
        assert_eq!(sparkline(&[ms(4), ms(4)]), "▁▁", "a flat line when all are equal");
        assert_eq!(sparkline(&[None, None]), "××");
        assert_eq!(sparkline(&[]), "");
        let levels: String =
            (0..8).map(|i| sparkline(&[ms(0), ms(i), ms(7)]).chars().nth(1).unwrap()).collect();
        assert_eq!(levels, "▁▂▃▄▅▆▇█");
    }

    #[test]
    fn the_table_has_a_row_per_target_with_its_figures() {
        let mut down = snap("db.example:862");
        down.up = false;
        down.answered = 0;
        down.lost = 0;
        down.rtt_p50 = None;
        let text = table(&[snap("192.0.2.1:862"), down], false, 10);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        for head in ["TARGET", "SENT", "LOSS", "P50", "P99", "LAST", "RECENT", "STATE"] {
            assert!(lines[0].contains(head), "{text}");
        }
        assert!(lines[2].starts_with("192.0.2.1:862 "), "down targets first: {text}");
        for cell in [" 10 ", "11.1%", "0.200 ms", "0.900 ms", "0.300 ms", "▁█×▅▃", " up"] {
            assert!(lines[2].contains(cell), "{cell:?} in {text}");
        }
        assert!(lines[1].contains(" -  ") && lines[1].ends_with("down"), "{text}");
        assert!(!text.contains('\x1b'), "no colour unless asked: {text:?}");
        // Columns line up: every row's STATE starts at the same character.
        let at = |l: &str| l.chars().count() - l.split_whitespace().last().unwrap().chars().count();
        assert_eq!(at(lines[1]), at(lines[2]), "{text}");
    }

    #[test]
    fn down_targets_come_first_and_rows_are_bounded() {
        let mut down = snap("down.example");
        down.up = false;
        let text = table(&[snap("a"), snap("b"), snap("c"), down], false, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("down.example") && lines[2].starts_with("a "), "{text}");
        assert_eq!(lines[3], "... and 2 more targets (all of them: --json or /metrics)");
    }

    #[test]
    fn colour_marks_losses_and_state() {
        let mut down = snap("a");
        down.up = false;
        let text = table(&[snap("b"), down], true, 10);
        assert!(text.contains(&format!("{RED}×{RESET}")), "{text:?}");
        assert!(
            text.contains(&format!("{GREEN}up{RESET}"))
                && text.contains(&format!("{RED}down{RESET}")),
            "{text:?}"
        );
    }

    #[test]
    fn rows_with_one_name_show_their_labels_and_long_names_are_cut() {
        let mut other = snap("x");
        other.labels = vec![("site".into(), "fra".into())];
        let text = table(&[snap("x"), other, snap(&"n".repeat(60))], false, 10);
        assert!(text.contains("x {site=ams}") && text.contains("x {site=fra}"), "{text}");
        assert!(text.contains(&format!("{}…", "n".repeat(MAX_NAME - 1))), "{text}");
    }

    #[test]
    fn table_rows_follow_the_tty_then_lines_then_the_default() {
        // The tty's height first: LINES is often stale after a resize.
        assert_eq!(table_rows(Some(24), None), 21);
        assert_eq!(table_rows(Some(24), Some("100")), 21);
        assert_eq!(table_rows(Some(60), Some("10")), 57);
        // A tiny terminal still shows MIN_ROWS targets.
        assert_eq!(table_rows(Some(1), None), MIN_ROWS);
        assert_eq!(table_rows(Some(8), None), MIN_ROWS);
        assert_eq!(table_rows(Some(9), None), 6);
        // No tty size (0 means unknown): LINES, then the default.
        assert_eq!(table_rows(Some(0), Some("30")), 27);
        assert_eq!(table_rows(None, Some(" 30 ")), 27);
        assert_eq!(table_rows(None, Some("2")), MIN_ROWS);
        for junk in ["", "abc", "-5", "0"] {
            assert_eq!(table_rows(None, Some(junk)), DEFAULT_ROWS, "LINES={junk:?}");
        }
        assert_eq!(table_rows(None, None), DEFAULT_ROWS);
    }

    #[test]
    fn json_lines_carry_every_counter_in_seconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let line = json_line(&snap("192.0.2.1:862"), at);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], 1_700_000_000.5);
        assert_eq!(v["target"], "192.0.2.1:862");
        assert_eq!(v["labels"]["site"], "ams");
        assert_eq!(v["addr"], "192.0.2.1:862");
        for (field, n) in [
            ("sent", 10),
            ("answered", 8),
            ("lost", 1),
            ("in_flight", 1),
            ("duplicated", 2),
            ("late", 1),
            ("mismatched", 3),
        ] {
            assert_eq!(v[field], n, "{field}");
        }
        assert!((v["loss_ratio"].as_f64().unwrap() - 1.0 / 9.0).abs() < 1e-9);
        assert_eq!(v["rtt_p50_seconds"], 0.0002);
        assert_eq!(v["up"], true);
        let mut fresh = snap("a");
        (fresh.answered, fresh.lost, fresh.last_rtt) = (0, 0, None);
        let v: serde_json::Value = serde_json::from_str(&json_line(&fresh, at)).unwrap();
        assert!(v["loss_ratio"].is_null() && v["last_rtt_seconds"].is_null());
    }

    #[test]
    fn the_summary_has_every_counter() {
        let text = summary(&[snap("192.0.2.1:862")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "summary: 1 target");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "192.0.2.1:862",
                "10",
                "8",
                "1",
                "11.1%",
                "0.200",
                "ms",
                "0.900",
                "ms",
                "2",
                "0",
                "1",
                "3",
                "0"
            ]
        );
    }
}
