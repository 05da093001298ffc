//! DSCP names: the Differentiated Services codepoints operators write
//! (`ef`, `af41`, `cs6`), as `--dscp` flags take them, and back.
//!
//! The names are those of RFC 2474 (class selectors `cs0`–`cs7`), RFC 2597
//! (assured forwarding `af11`–`af43`: class *x*, drop precedence *y* is
//! `8x + 2y`), RFC 3246 (expedited forwarding `ef`, 46), RFC 5865 (`va`,
//! voice admit, 44) and RFC 8622 (`le`, lower effort, 1); `be`, `default`
//! and `df` are 0. A number 0 to 63 is taken as it is. The DSCP is the upper six bits
//! of the IPv4 TOS octet and of the IPv6 Traffic Class: `dscp << 2`, ECN left 0.
//!
//! ```
//! use shout::dscp::{dscp_name, parse_dscp};
//!
//! assert_eq!(parse_dscp("ef"), Ok(46));
//! assert_eq!(parse_dscp("AF41"), Ok(34));
//! assert_eq!(parse_dscp("10"), Ok(10));
//! assert!(parse_dscp("64").is_err());
//! assert_eq!(dscp_name(34), Some("af41"));
//! assert_eq!(dscp_name(3), None);
//! ```

/// Every name and its codepoint; the first name of a codepoint is the one
/// [`dscp_name`] gives.
const NAMES: &[(&str, u8)] = &[
    ("be", 0),
    ("default", 0),
    ("df", 0),
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
    ("cs7", 56),
];

/// The highest DSCP: six bits.
pub const MAX_DSCP: u8 = 63;

/// A DSCP from its name (any case) or its number, 0 to 63. The error says
/// what is accepted.
pub fn parse_dscp(text: &str) -> Result<u8, String> {
    let t = text.trim();
    if let Some(&(_, dscp)) = NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
        return Ok(dscp);
    }
    match t.parse::<u8>() {
        Ok(n) if n <= MAX_DSCP => Ok(n),
        _ => Err(format!(
            "{text:?} is no DSCP: use a number 0 to 63 or a name (ef, af11 to af43, cs0 to cs7, be, le, va)"
        )),
    }
}

/// The usual name of a codepoint (`be` for 0), if it has one.
pub fn dscp_name(dscp: u8) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, d)| d == dscp).map(|&(name, _)| name)
}

/// A set of DSCPs as a bit mask (bit `n` for DSCP `n`): one class, or a
/// range `LOW-HIGH` of numbers or names (`0-7`, `cs1-af13`).
pub fn parse_dscp_set(text: &str) -> Result<u64, String> {
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
    fn names_and_numbers_round_trip() {
        for &(name, dscp) in NAMES {
            assert_eq!(parse_dscp(name), Ok(dscp), "{name}");
            assert_eq!(parse_dscp(&name.to_uppercase()), Ok(dscp), "{name}");
            assert_eq!(parse_dscp(dscp_name(dscp).unwrap()), Ok(dscp));
        }
        // AF: 8 * class + 2 * drop precedence.
        for class in 1..=4u8 {
            for drop in 1..=3u8 {
                assert_eq!(parse_dscp(&format!("af{class}{drop}")), Ok(8 * class + 2 * drop));
            }
        }
        for cs in 0..=7u8 {
            assert_eq!(parse_dscp(&format!("cs{cs}")), Ok(8 * cs));
        }
        for n in 0..=MAX_DSCP {
            assert_eq!(parse_dscp(&n.to_string()), Ok(n));
        }
        assert_eq!((dscp_name(0), dscp_name(46), dscp_name(63)), (Some("be"), Some("ef"), None));
    }

    #[test]
    fn anything_else_is_refused_with_the_rule() {
        for bad in ["64", "255", "-1", "", "af14", "af51", "cs8", "ef1", "0x2e", "4.5"] {
            let err = parse_dscp(bad).unwrap_err();
            assert!(err.contains("0 to 63") && err.contains("af11"), "{bad}: {err}");
        }
    }

    #[test]
    fn sets_are_classes_and_ranges() {
        assert_eq!(parse_dscp_set("ef"), Ok(1 << 46));
        assert_eq!(parse_dscp_set("0-7"), Ok(0xff));
        assert_eq!(parse_dscp_set("cs1-af11"), Ok((1 << 8) | (1 << 9) | (1 << 10)));
        assert_eq!(parse_dscp_set("df"), Ok(1));
        assert!(parse_dscp_set("7-0").unwrap_err().contains("backwards"));
        assert!(parse_dscp_set("ef-64").unwrap_err().contains("0 to 63"));
    }
}
