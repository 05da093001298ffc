//! `shout client`: its arguments, the [`ClientConfig`] they make, and the
//! choice of mode: messages as arguments, lines from a pipe, or a prompt.

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{color_wanted, duration_in, resolve_all, UsageError, EXIT_INTERRUPTED};
use shout::client::{self, Client, ClientConfig, Expect, Output};

/// `shout client`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// The server: HOST:PORT, [IPv6]:PORT [default: 127.0.0.1:8080].
    #[arg(value_name = "ADDR")]
    addr: Option<String>,
    /// Messages to send, one datagram each. Without any: lines from stdin, or a prompt on a terminal.
    #[arg(value_name = "MESSAGE")]
    messages: Vec<std::ffi::OsString>,
    /// Wait for a reply this long before sending again (e.g. 200ms, 1.5s; a bare number is seconds).
    #[arg(long, short, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Send again this many times (0 to 10), the wait doubling each time (up to a minute).
    #[arg(long, short, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    retries: u32,
    /// Which replies count: upper (shout, the original), echo, or any datagram from the server.
    #[arg(long, value_name = "KIND", default_value = "upper")]
    expect: Expect,
    /// Write reply bytes unchanged instead of escaping what is not text.
    #[arg(long)]
    raw: bool,
    /// Send stdin lines as they are (only the newline removed), empty ones too.
    #[arg(long)]
    raw_lines: bool,
    /// Set the don't-fragment bit: a message above the path MTU fails with a clear error.
    #[arg(long)]
    dont_fragment: bool,
}

/// A client timeout: from 1 ms (less would retransmit faster than any network
/// answers) to an hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::from_millis(1), Duration::from_secs(3600), "1ms to 1h")
}

impl ClientArgs {
    /// The client these arguments describe.
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            timeout: self.timeout,
            retries: self.retries,
            expect: self.expect,
            dont_fragment: self.dont_fragment,
        }
    }

    /// Sends the messages (or stdin's lines, or what is typed at the prompt)
    /// and prints the replies; exit 1 if any went unanswered.
    pub fn run(self) -> Result<ExitCode> {
        talk(self)
    }
}

fn talk(args: ClientArgs) -> Result<ExitCode> {
    let addr = args.addr.as_deref().unwrap_or("127.0.0.1:8080");
    let servers = resolve_all(addr)?;
    let mut client = Client::connect_any(&servers, args.config())
        .with_context(|| format!("opening a socket to {addr}"))?;
    let output = Output { raw: args.raw, color: false };
    let prompt = args.messages.is_empty() && io::stdin().is_terminal();
    // Ctrl-C: the prompt has a history to save, so its waits watch a flag and it
    // leaves by the same road as Ctrl-D; the other modes flush every reply as it
    // comes, so they exit at once, whatever they wait for (a reply, a stdin line).
    let interrupt = Arc::new(AtomicBool::new(false));
    if prompt {
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt))?;
    } else {
        // Shut down when the flag is set: it always is.
        signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            EXIT_INTERRUPTED.into(),
            Arc::new(AtomicBool::new(true)),
        )?;
    }
    let tally = if !args.messages.is_empty() {
        let messages: Vec<Vec<u8>> = args.messages.iter().map(|m| os_bytes(m)).collect();
        for message in &messages {
            client.check_size(message.len()).map_err(|err| UsageError(err.to_string()))?;
        }
        client::one_shot(&mut client, &messages, output, io::stdout().lock(), io::stderr())?
    } else if prompt {
        let mut editor = Editor::open(Arc::clone(&interrupt))?;
        let output = Output { color: color_wanted(), ..output };
        let tally = client::interactive(&mut client, Arc::clone(&interrupt), output, &mut editor);
        editor.save();
        let tally = tally?;
        if interrupt.load(Ordering::Relaxed) {
            // As the other modes, which the signal ends with this code.
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        tally
    } else {
        client::pipe(
            &mut client,
            io::stdin().lock(),
            args.raw_lines,
            output,
            io::stdout().lock(),
            io::stderr(),
        )?
    };
    Ok(if tally.too_large > 0 {
        // As for a MESSAGE argument: the input cannot be sent at all.
        ExitCode::from(2)
    } else if tally.all_answered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(unix)]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// The prompt's line editor (rustyline), with its history in the shout folder
/// of the data directory: `$XDG_DATA_HOME/shout/history` or the platform's equivalent.
struct Editor {
    editor: rustyline::DefaultEditor,
    /// Raised by Ctrl-C at the prompt (the terminal is in raw mode there: no signal).
    interrupt: Arc<AtomicBool>,
    history: Option<std::path::PathBuf>,
}

impl Editor {
    fn open(interrupt: Arc<AtomicBool>) -> Result<Editor> {
        let mut editor = rustyline::DefaultEditor::new().context("opening the terminal")?;
        let history = dirs::data_dir().map(|d| d.join("shout").join("history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        Ok(Editor { editor, interrupt, history })
    }

    /// Keeps the history for the next session; failing to is not worth an error.
    fn save(&mut self) {
        if let Some(path) = &self.history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = self.editor.save_history(path);
        }
    }
}

impl client::LineSource for Editor {
    fn read_line(&mut self, prompt: &str) -> io::Result<Option<String>> {
        use rustyline::error::ReadlineError;
        match self.editor.readline(prompt) {
            Ok(text) => Ok(Some(text)),
            Err(ReadlineError::Eof) => Ok(None),
            Err(ReadlineError::Interrupted) => {
                self.interrupt.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(err) => Err(io::Error::other(err)),
        }
    }

    fn remember(&mut self, line: &str) {
        let _ = self.editor.add_history_entry(line);
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        let command = ClientArgs::augment_args(clap::Command::new("client").no_binary_name(true));
        ClientArgs::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    #[test]
    fn flags_make_the_client_config() {
        let config = parse(&[]).unwrap().config();
        assert_eq!((config.timeout, config.retries), (Duration::from_secs(1), 2));
        assert_eq!((config.expect, config.dont_fragment), (Expect::Upper, false));
        let args = ["-t", "250ms", "-r", "0", "--expect", "echo", "--dont-fragment", "h:1"];
        let config = parse(&args).unwrap().config();
        assert_eq!((config.timeout, config.retries), (Duration::from_millis(250), 0));
        assert_eq!((config.expect, config.dont_fragment), (Expect::Echo, true));
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(parse(&["-r", "10"]).unwrap().config().retries, 10);
        for retries in ["11", "1000000", "-1"] {
            assert!(parse(&[&format!("--retries={retries}")]).is_err(), "{retries}");
        }
    }

    #[test]
    fn timeouts_out_of_range_are_refused() {
        for timeout in ["0", "2h", "1e99s", "-1s"] {
            assert!(parse(&[&format!("--timeout={timeout}")]).is_err(), "{timeout}");
        }
    }
}
