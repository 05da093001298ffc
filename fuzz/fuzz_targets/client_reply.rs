//! What the client does with a datagram from the server: `Expect::matches` decides
//! whether it answers the request in hand, and `escape` shows it as one safe line.
//!
//! Oracles: each expect kind against its definition (uppercase = Python's
//! `bytes.upper()`, echo = equality, any = anything); the shown text has no control
//! characters and none of the invisible ones that reorder or hide text (bidi overrides,
//! zero-width), leaves plainly visible text as it is, and reads back to exactly the
//! bytes it was given, so no two datagrams look alike.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shout::{escape, Expect};

#[derive(Arbitrary, Debug)]
struct Input {
    request: Vec<u8>,
    reply: Reply,
}

/// Replies that are near misses of the right one, not just random bytes.
#[derive(Arbitrary, Debug)]
enum Reply {
    Upper,
    Echo,
    /// The right reply with one byte changed (a corrupt copy).
    Flipped {
        at: usize,
        xor: u8,
    },
    /// The right reply cut short or padded (a truncated or foreign datagram).
    Resized {
        len: usize,
        fill: u8,
    },
    /// A late reply to another request.
    Other(Vec<u8>),
}

impl Reply {
    fn bytes(&self, request: &[u8]) -> Vec<u8> {
        let upper = request.to_ascii_uppercase();
        match self {
            Reply::Upper => upper,
            Reply::Echo => request.to_vec(),
            Reply::Flipped { at, xor } => {
                let mut r = upper;
                if !r.is_empty() {
                    let i = at % r.len();
                    r[i] ^= xor;
                }
                r
            }
            Reply::Resized { len, fill } => {
                let mut r = upper;
                r.resize(len % (request.len() + 2), *fill);
                r
            }
            Reply::Other(bytes) => bytes.clone(),
        }
    }
}

/// Reads `escape`'s output back: `\\`, `\n`, `\r`, `\t`, `\xHH` (a control byte or an
/// invalid one), `\u{HHHH}` (another control or invisible character); anything else is
/// itself.
fn unescape(shown: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = shown;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let tail = &rest[at + 1..];
        let (bytes, used): (Vec<u8>, usize) = match tail.as_bytes().first() {
            Some(b'\\') => (vec![b'\\'], 1),
            Some(b'n') => (vec![b'\n'], 1),
            Some(b'r') => (vec![b'\r'], 1),
            Some(b't') => (vec![b'\t'], 1),
            Some(b'x') => {
                let hex = tail.get(1..3).expect("\\x is followed by two hex digits");
                (vec![u8::from_str_radix(hex, 16).expect("hex after \\x")], 3)
            }
            Some(b'u') => {
                assert_eq!(tail.as_bytes().get(1), Some(&b'{'), "\\u without a brace in {shown:?}");
                let close = tail.find('}').expect("\\u{ is closed");
                let code = u32::from_str_radix(&tail[2..close], 16).expect("hex in \\u{}");
                let ch = char::from_u32(code).expect("\\u{} names a char");
                (ch.to_string().into_bytes(), close + 1)
            }
            other => panic!("unknown escape \\{other:?} in {shown:?}"),
        };
        out.extend_from_slice(&bytes);
        rest = &tail[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// Characters that change how a line reads without being seen (category Cf, the ones
/// terminals honour): bidi embeddings, overrides and isolates, zero-width characters,
/// the BOM.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Text anyone sees as it is: letters, digits, ASCII punctuation and space.
fn plainly_visible(c: char) -> bool {
    c != '\\' && (c.is_alphanumeric() || c.is_ascii_graphic() || c == ' ')
}

fuzz_target!(|input: Input| {
    let request = &input.request;
    let reply = input.reply.bytes(request);

    let upper = request.to_ascii_uppercase();
    assert_eq!(
        Expect::Upper.matches(request, &reply),
        reply == upper,
        "upper: {request:?} / {reply:?}"
    );
    assert_eq!(
        Expect::Echo.matches(request, &reply),
        reply == *request,
        "echo: {request:?} / {reply:?}"
    );
    assert!(Expect::Any.matches(request, &reply));

    for bytes in [request.as_slice(), reply.as_slice()] {
        let shown = escape(bytes).to_string();
        assert!(!shown.chars().any(|c| c.is_control() || invisible(c)), "shown as is: {shown:?}");
        if let Ok(text) = std::str::from_utf8(bytes) {
            if text.chars().all(plainly_visible) {
                assert_eq!(shown, text, "visible text must be shown as it is");
            }
        }
        assert_eq!(unescape(&shown), bytes, "escape must read back: {shown:?}");
    }
});
