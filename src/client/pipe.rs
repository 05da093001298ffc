//! Pipe mode: each line of input is one datagram, each reply one line of output.

use std::io::{self, BufRead, Write};

use super::exchange::{finish, line, Exchange, Next, Output, Tally};
use crate::client::Client;

/// One datagram per input line; lines are stripped and empty ones skipped,
/// unless `raw_lines`, which sends each line (without its newline) as it is.
/// A line too long for a datagram is reported and skipped without being held
/// in memory whole.
pub fn pipe(
    client: &mut Client,
    mut input: impl BufRead,
    raw_lines: bool,
    output: Output,
    out: impl Write,
    diag: impl Write,
) -> io::Result<Tally> {
    // Room for the largest datagram plus surrounding whitespace worth stripping.
    let limit = client.max_message() + 64;
    let mut s = Exchange::new(client, output, out, diag);
    let mut buf = Vec::new();
    let mut number = 0u64;
    let result = (|| loop {
        number += 1;
        let Some(overflow) = read_line(&mut input, &mut buf, limit)? else { return Ok(()) };
        if overflow > 0 {
            s.tally.failed += 1;
            s.tally.too_large += 1;
            let (red, reset) = s.output.paint("\x1b[31m");
            writeln!(
                s.diag,
                "{red}error:{reset} line {number} is too large for one datagram: over {limit} bytes, and a UDP datagram to {} carries at most {} (not sent)",
                s.client.server(),
                s.client.max_message()
            )?;
            continue;
        }
        let message = if raw_lines { buf.strip_suffix(b"\n").unwrap_or(&buf) } else { strip(&buf) };
        if message.is_empty() && !raw_lines {
            continue;
        }
        if let Next::Stop = s.exchange(message, line)? {
            return Ok(());
        }
    })();
    finish(result, s.tally)
}

/// Reads one line (with its newline) into `buf`, keeping at most `limit`
/// bytes. Returns `None` at end of input, else how many bytes beyond `limit`
/// were skipped.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<Option<u64>> {
    buf.clear();
    let mut skipped = 0u64;
    let mut any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(skipped));
        }
        any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = limit.saturating_sub(buf.len()).min(take);
        buf.extend_from_slice(&chunk[..room]);
        skipped += (take - room) as u64;
        input.consume(take);
        if done {
            return Ok(Some(skipped));
        }
    }
}

/// Strips surrounding whitespace as Python's `str.strip()` does for text, and
/// ASCII whitespace for bytes that are not UTF-8.
fn strip(line: &[u8]) -> &[u8] {
    match std::str::from_utf8(line) {
        Ok(text) => text.trim().as_bytes(),
        Err(_) => line.trim_ascii(),
    }
}

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn strips_like_python() {
        assert_eq!(strip(b"  hello world \r\n"), b"hello world");
        assert_eq!(strip("\u{3000}é\u{3000}\n".as_bytes()), "é".as_bytes());
        assert_eq!(strip(b" \xff \n"), b"\xff");
        assert_eq!(strip(b"\n"), b"");
    }
}
