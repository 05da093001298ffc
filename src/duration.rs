//! Durations on the command line (`200ms`, `1.5s`, `2`) and on screen.

use std::fmt;
use std::time::Duration;

/// Parses `1.5s`, `200ms`, `750us`, `10ns`, `2m`; a bare number is seconds.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(shout::parse_duration("200ms"), Ok(Duration::from_millis(200)));
/// assert_eq!(shout::parse_duration("1.5"), Ok(Duration::from_millis(1500)));
/// assert!(shout::parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative: a duration is 0 or more"));
    }
    // The number may have an exponent (`1e3ms`); no unit starts with `e`.
    let bytes = text.as_bytes();
    let mut split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    if matches!(bytes.get(split), Some(b'e' | b'E')) {
        let digits = split + 1 + usize::from(matches!(bytes.get(split + 1), Some(b'+' | b'-')));
        if bytes.get(digits).is_some_and(u8::is_ascii_digit) {
            split = text[digits..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(text.len(), |i| digits + i);
        }
    }
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!("unknown unit {other:?} in {text:?} (use ns, us, ms, s, m or h)"))
        }
    };
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration (try 200ms, 1.5s or 2)"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("{text:?} is out of range: too long a duration to count"))
}

/// Shows a round-trip time with three significant-ish digits: `0.123 ms`, `12.3 ms`, `1.20 s`.
pub fn human(d: Duration) -> impl fmt::Display {
    struct Human(Duration);
    impl fmt::Display for Human {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let ms = self.0.as_secs_f64() * 1e3;
            match ms {
                m if m < 10.0 => write!(f, "{m:.3} ms"),
                m if m < 1000.0 => write!(f, "{m:.1} ms"),
                m => write!(f, "{:.2} s", m / 1e3),
            }
        }
    }
    Human(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("750us"), Ok(Duration::from_micros(750)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("1e400").is_err());
        assert_eq!(parse_duration("1e3ms"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2.5E-1s"), Ok(Duration::from_millis(250)));
        let huge = parse_duration("1e99s").unwrap_err();
        assert!(huge.contains("out of range"), "{huge}");
        let negative = parse_duration("-1s").unwrap_err();
        assert!(negative.contains("negative"), "{negative}");
    }

    #[test]
    fn human_picks_a_readable_scale() {
        assert_eq!(human(Duration::from_micros(123)).to_string(), "0.123 ms");
        assert_eq!(human(Duration::from_micros(12_345)).to_string(), "12.3 ms");
        assert_eq!(human(Duration::from_millis(1200)).to_string(), "1.20 s");
    }
}
