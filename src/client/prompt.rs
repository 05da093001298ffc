//! Interactive mode: the `>>: ` prompt with line editing and history.

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
    let mut s = Exchange::new(client, output, io::stdout(), io::stderr());
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
