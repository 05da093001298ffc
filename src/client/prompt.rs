//! Interactive mode: the `>>: ` prompt. The line editor and its history are
//! the binary's ([`LineSource`]), so the library needs no terminal crate.

use std::io::{self, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::exchange::{Exchange, Next, Output, Tally};
use crate::client::Client;
use crate::duration::human;
use crate::escape;

/// The interactive prompt, as in the original tutorial.
pub const PROMPT: &str = ">>: ";

/// Help for the interactive prompt's own commands.
pub const INTERACTIVE_HELP: &str = "\
Type a line to send it as one datagram; the reply is shown with its sender and
round-trip time. Empty lines are skipped; surrounding whitespace is stripped.
  :help         this help
  :quit, :q     leave (so does Ctrl-D; Ctrl-C too, with exit code 130)
  ::text        send \":text\" (a line starting with a colon)
History is kept in the shout folder of your data directory.";

/// Where the prompt's lines come from: a line editor with history in the
/// `shout` binary, anything that yields lines in a test.
pub trait LineSource {
    /// Shows `prompt` and reads one line; `None` at the end (Ctrl-D, Ctrl-C).
    fn read_line(&mut self, prompt: &str) -> io::Result<Option<String>>;
    /// A line that was sent or obeyed, for the history.
    fn remember(&mut self, _line: &str) {}
}

/// The interactive loop over `lines`: prompt, strip, skip empty lines, show each reply with
/// its sender and round-trip time. Ctrl-D, Ctrl-C or `:quit` ends it.
/// `color` dims the reply details and reddens errors (callers decide: only on a
/// terminal, never with `NO_COLOR`).
pub fn interactive(
    client: &mut Client,
    interrupt: Arc<AtomicBool>,
    output: Output,
    lines: &mut impl LineSource,
) -> io::Result<Tally> {
    client.set_interrupt(Arc::clone(&interrupt));
    let (dim, reset) = output.paint("\x1b[2m");
    let (red, _) = output.paint("\x1b[31m");
    let mut s = Exchange::new(client, output, io::stdout(), io::stderr());
    loop {
        interrupt.store(false, std::sync::atomic::Ordering::Relaxed);
        let Some(text) = lines.read_line(PROMPT)? else { break };
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        lines.remember(line);
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
    Ok(s.tally)
}
