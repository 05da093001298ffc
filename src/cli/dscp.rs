//! DSCP classes on the command line: a name (`ef`, `af41`, `cs3`, `le`, `df`)
//! or a number from 0 to 63, and for a set of them, ranges (`0-7`).

/// The per-hop behaviours with names (RFC 2474 class selectors, RFC 2597
/// assured forwarding, RFC 3246 expedited forwarding, RFC 5865 voice admit,
/// RFC 8622 lower effort).
const NAMES: [(&str, u8); 25] = [
    ("df", 0),
    ("default", 0),
    ("be", 0),
    ("cs0", 0),
    ("le", 1),
    ("cs1", 8),
    ("af11", 10),
    ("af12", 12),
    ("af13", 14),
    ("cs2", 16),
    ("af21", 18),
    ("af22", 20),
    ("af23", 22),
    ("cs3", 24),
    ("af31", 26),
    ("af32", 28),
    ("af33", 30),
    ("cs4", 32),
    ("af41", 34),
    ("af42", 36),
    ("af43", 38),
    ("cs5", 40),
    ("va", 44),
    ("ef", 46),
    ("cs6", 48),
];

/// One DSCP: a name or a number from 0 to 63 (`cs7` too).
pub(crate) fn parse_dscp(text: &str) -> Result<u8, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "cs7" {
        return Ok(56);
    }
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == t) {
        return Ok(n);
    }
    t.parse::<u8>().ok().filter(|&n| n < 64).ok_or_else(|| {
        format!("{text:?} is not a DSCP: a number from 0 to 63, or a name such as ef, af41, cs3, le, df")
    })
}

/// A set of DSCPs as a bit mask (bit `n` for DSCP `n`): one class, or a
/// range `LOW-HIGH` of numbers or names.
pub(crate) fn parse_dscp_set(text: &str) -> Result<u64, String> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (parse_dscp(low)?, parse_dscp(high)?),
        None => {
            let one = parse_dscp(text)?;
            (one, one)
        }
    };
    if low > high {
        return Err(format!("{text:?}: the range runs backwards"));
    }
    Ok((low..=high).fold(0, |mask, d| mask | 1u64 << d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_ranges() {
        assert_eq!(parse_dscp("ef"), Ok(46));
        assert_eq!(parse_dscp("AF41"), Ok(34));
        assert_eq!(parse_dscp("cs7"), Ok(56));
        assert_eq!(parse_dscp("63"), Ok(63));
        assert!(parse_dscp("64").unwrap_err().contains("0 to 63"));
        assert!(parse_dscp("af44").is_err());
        assert_eq!(parse_dscp_set("ef"), Ok(1 << 46));
        assert_eq!(parse_dscp_set("0-7"), Ok(0xff));
        assert_eq!(parse_dscp_set("cs1-af11"), Ok((1 << 8) | (1 << 9) | (1 << 10)));
        assert!(parse_dscp_set("7-0").unwrap_err().contains("backwards"));
    }
}
