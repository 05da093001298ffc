//! Showing untrusted bytes on a terminal: one line, no control sequences, no panic.

use std::fmt::{self, Write};

/// Displays bytes as text: valid UTF-8 as it is, invalid bytes as `\xff`,
/// control and invisible format characters escaped (`\n`, `\x1b`, `\u{202e}`),
/// and a backslash as `\\`, so a datagram can neither break the
/// one-line-per-message layout, nor send escape sequences to the terminal, nor
/// pass one byte off as another.
///
/// ```
/// assert_eq!(shout::escape(b"caf\xc3\xa9 \xff\n").to_string(), "café \\xff\\n");
/// ```
pub fn escape(bytes: &[u8]) -> Escaped<'_> {
    Escaped(bytes)
}

/// See [`escape`].
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for ch in chunk.valid().chars() {
                match ch {
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    // Escaped too, so `\xff` in the output always means the byte.
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() && c.is_ascii() => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() || is_invisible_format(c) => {
                        write!(f, "\\u{{{:04x}}}", c as u32)?
                    }
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Format characters that change how a line reads without being seen: bidi
/// overrides and isolates ("Trojan Source"), zero-width characters, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::escape;
    use proptest::prelude::*;

    #[test]
    fn escapes_invalid_utf8_and_controls() {
        assert_eq!(escape(b"HELLO").to_string(), "HELLO");
        assert_eq!(escape(b"\xffABC").to_string(), "\\xffABC");
        assert_eq!(escape(b"a\x1b[31mb").to_string(), "a\\x1b[31mb");
        assert_eq!(escape("é\u{85}".as_bytes()).to_string(), "é\\u{0085}");
        assert_eq!(escape(b"").to_string(), "");
        assert_eq!(escape(b"x\\xff").to_string(), "x\\\\xff");
        assert_eq!(escape("a\u{202e}b".as_bytes()).to_string(), "a\\u{202e}b");
    }

    proptest! {
        #[test]
        fn output_is_one_line_without_controls(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let shown = escape(&data).to_string();
            prop_assert!(!shown.chars().any(char::is_control));
        }
    }
}
