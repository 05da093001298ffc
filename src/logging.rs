//! What operators read on stderr: summary and interval lines, text or JSON.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::str::FromStr;

use crate::counters::{Counts, Refusal};

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

/// Writes a `hint:` line after the summary for each drop reason that counted
/// something and has a hint ([`Refusal::hint`]): what a flag would change.
pub fn log_hints(format: LogFormat, counts: &Counts) {
    for &reason in Refusal::ALL {
        let (n, Some(hint)) = (counts.drops(reason), reason.hint()) else { continue };
        if n == 0 {
            continue;
        }
        match format {
            LogFormat::Text => {
                let _ = writeln!(io::stderr().lock(), "hint: {reason}={n}: {hint}");
            }
            LogFormat::Json => tracing::info!(
                target: "shout",
                event = "hint",
                reason = reason.name(),
                count = n,
                "{hint}"
            ),
        }
    }
}
