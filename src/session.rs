//! The client's three ways of talking: one-shot arguments, lines from a pipe,
//! and the interactive prompt. Replies go to `out`, one per line; diagnostics
//! to `diag`, so `out` holds replies only.

use std::io::{self, BufRead, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::client::{Client, Reply, RequestError, SAFE_DATAGRAM};
use crate::duration::human;
use crate::escape;

/// The interactive prompt, as in the original tutorial.
pub const PROMPT: &str = ">>: ";

/// How replies and diagnostics are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Write reply bytes unchanged instead of escaping what is not text.
    pub raw: bool,
    /// Colour the `error:`/`warning:` prefixes and dim reply details (callers
    /// decide: only on a terminal, never with `NO_COLOR`).
    pub color: bool,
}

impl Output {
    fn paint(&self, code: &'static str) -> (&'static str, &'static str) {
        if self.color {
            (code, "\x1b[0m")
        } else {
            ("", "")
        }
    }
}

/// What a session did, for the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests answered.
    pub answered: u64,
    /// Requests that got no answer (timed out, refused, too large).
    pub failed: u64,
}

impl Tally {
    /// Every request answered.
    pub fn all_answered(&self) -> bool {
        self.failed == 0
    }
}

/// Whether to go on after a failed request.
enum Next {
    Continue,
    Stop,
}

struct Session<'a, O: Write, D: Write> {
    client: &'a mut Client,
    output: Output,
    out: O,
    diag: D,
    tally: Tally,
}

impl<O: Write, D: Write> Session<'_, O, D> {
    /// Sends one message; prints the reply or the reason there is none.
    fn exchange(
        &mut self,
        message: &[u8],
        show: impl Fn(&Reply, &mut O, Output) -> io::Result<()>,
    ) -> io::Result<Next> {
        let (yellow, reset) = self.output.paint("\x1b[33m");
        if message.len() > SAFE_DATAGRAM && message.len() <= self.client.max_message() {
            writeln!(
                self.diag,
                "{yellow}warning:{reset} message is {} bytes, above {SAFE_DATAGRAM}: it may be fragmented on real networks (RFC 8085 §3.2)",
                message.len()
            )?;
        }
        match self.client.request(message) {
            Ok(reply) => {
                self.note_discarded(reply.discarded)?;
                self.tally.answered += 1;
                show(&reply, &mut self.out, self.output)?;
                self.out.flush()?;
                Ok(Next::Continue)
            }
            Err(RequestError::Interrupted) => Ok(Next::Stop),
            Err(err) => {
                self.tally.failed += 1;
                if let RequestError::NoReply { discarded, .. } = err {
                    self.note_discarded(discarded)?;
                }
                let (red, reset) = self.output.paint("\x1b[31m");
                writeln!(self.diag, "{red}error:{reset} {err}")?;
                match err {
                    RequestError::NoServer(_) | RequestError::Io(_) => Ok(Next::Stop),
                    _ => Ok(Next::Continue),
                }
            }
        }
    }

    fn note_discarded(&mut self, discarded: u64) -> io::Result<()> {
        let (yellow, reset) = self.output.paint("\x1b[33m");
        if discarded > 0 {
            writeln!(
                self.diag,
                "{yellow}warning:{reset} discarded {discarded} datagram(s) from the server that did not answer this request"
            )?;
        }
        Ok(())
    }
}

/// Writes a reply as one line: text, or raw bytes with `raw`.
fn line(reply: &Reply, out: &mut impl Write, output: Output) -> io::Result<()> {
    if output.raw {
        out.write_all(&reply.data)?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", escape(&reply.data))
    }
}

/// A broken pipe on stdout means the reader is done: that is success (ripgrep).
fn finish(result: io::Result<()>, tally: Tally) -> io::Result<Tally> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(tally),
        other => other.map(|()| tally),
    }
}

/// Sends each message as one datagram and prints each reply on its own line.
pub fn one_shot<M: AsRef<[u8]>>(
    client: &mut Client,
    messages: &[M],
    output: Output,
    out: impl Write,
    diag: impl Write,
) -> io::Result<Tally> {
    let mut s = Session { client, output, out, diag, tally: Tally::default() };
    let result = (|| {
        for message in messages {
            if let Next::Stop = s.exchange(message.as_ref(), line)? {
                break;
            }
        }
        Ok(())
    })();
    finish(result, s.tally)
}

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
    let mut s = Session { client, output, out, diag, tally: Tally::default() };
    let mut buf = Vec::new();
    let mut number = 0u64;
    let result = (|| loop {
        number += 1;
        let Some(overflow) = read_line(&mut input, &mut buf, limit)? else { return Ok(()) };
        if overflow > 0 {
            s.tally.failed += 1;
            let (red, reset) = s.output.paint("\x1b[31m");
            writeln!(
                s.diag,
                "{red}error:{reset} line {number} is over {} bytes; a UDP datagram carries at most {} (not sent)",
                limit,
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

/// Help for the interactive prompt's own commands.
pub const INTERACTIVE_HELP: &str = "\
Type a line to send it as one datagram; the reply is shown with its sender and
round-trip time. Empty lines are skipped; surrounding whitespace is stripped.
  :help         this help
  :quit, :q     leave (so do Ctrl-D and Ctrl-C)
  ::text        send \":text\" (a line starting with a colon)
History is kept in the shout folder of your data directory.";

/// Where the interactive history lives: `$XDG_DATA_HOME/shout/history` or the
/// platform's equivalent.
pub fn history_path() -> Option<std::path::PathBuf> {
    dirs::data_dir().map(|d| d.join("shout").join("history"))
}

/// The interactive loop: prompt, strip, skip empty lines, show each reply with
/// its sender and round-trip time. Ctrl-D, Ctrl-C or `:quit` ends it.
/// `color` dims the reply details and reddens errors (callers decide: only on a
/// terminal, never with `NO_COLOR`).
pub fn interactive(
    client: &mut Client,
    interrupt: Arc<AtomicBool>,
    output: Output,
) -> io::Result<Tally> {
    use rustyline::error::ReadlineError;

    client.set_interrupt(Arc::clone(&interrupt));
    let mut editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let (dim, reset) = output.paint("\x1b[2m");
    let (red, _) = output.paint("\x1b[31m");
    let mut s =
        Session { client, output, out: io::stdout(), diag: io::stderr(), tally: Tally::default() };
    loop {
        interrupt.store(false, std::sync::atomic::Ordering::Relaxed);
        let text = match editor.readline(PROMPT) {
            Ok(text) => text,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => break,
            Err(err) => return Err(io::Error::other(err)),
        };
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let message = match line.strip_prefix(':') {
            Some(rest) if rest.starts_with(':') => rest,
            Some("help" | "h" | "?") => {
                let _ = writeln!(s.out, "{INTERACTIVE_HELP}");
                continue;
            }
            Some("quit" | "q" | "exit") => break,
            Some(other) => {
                let _ = writeln!(
                    s.diag,
                    "{red}unknown command :{other}{reset} (:help lists them; ::text sends :text)"
                );
                continue;
            }
            None => line,
        };
        let shown = s.exchange(message.as_bytes(), |reply, out, output| {
            if output.raw {
                out.write_all(&reply.data)?;
            } else {
                write!(out, "{}", escape(&reply.data))?;
            }
            writeln!(out, "  {dim}(from {} in {}){reset}", reply.from, human(reply.rtt))
        });
        match shown {
            Ok(Next::Continue) => {}
            // Ctrl-C while waiting for a reply leaves, as it does at the prompt.
            Ok(Next::Stop) if interrupt.load(std::sync::atomic::Ordering::Relaxed) => break,
            Ok(Next::Stop) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => break,
            Err(err) => return Err(err),
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
    Ok(s.tally)
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
