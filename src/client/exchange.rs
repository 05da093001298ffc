//! What the client's three modes share: one request and its report. Replies
//! go to `out`, one per line; diagnostics to `diag`, so `out` holds replies only.

use std::io::{self, Write};

use crate::client::{Client, Reply, RequestError, SAFE_DATAGRAM};
use crate::escape;

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
    pub(super) fn paint(&self, code: &'static str) -> (&'static str, &'static str) {
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
    /// Of those, messages too large for one datagram, never sent: the
    /// input's fault, not the network's.
    pub too_large: u64,
}

impl Tally {
    /// Every request answered.
    pub fn all_answered(&self) -> bool {
        self.failed == 0
    }
}

/// Whether to go on after a failed request.
pub(super) enum Next {
    Continue,
    Stop,
}

/// One run of requests (one-shot, pipe or prompt): the client, where replies
/// and diagnostics go, and the tally.
pub(super) struct Exchange<'a, O: Write, D: Write> {
    pub(super) client: &'a mut Client,
    pub(super) output: Output,
    pub(super) out: O,
    pub(super) diag: D,
    pub(super) tally: Tally,
}

impl<'a, O: Write, D: Write> Exchange<'a, O, D> {
    pub(super) fn new(client: &'a mut Client, output: Output, out: O, diag: D) -> Self {
        Exchange { client, output, out, diag, tally: Tally::default() }
    }

    /// Sends one message; prints the reply or the reason there is none.
    pub(super) fn exchange(
        &mut self,
        message: &[u8],
        show: impl Fn(&Reply, &mut O, Output) -> io::Result<()>,
    ) -> io::Result<Next> {
        let (yellow, reset) = self.output.paint("\x1b[33m");
        // With the don't-fragment bit set the message cannot be fragmented: it
        // arrives whole or fails with `PathTooSmall`, which says so itself.
        if message.len() > SAFE_DATAGRAM
            && message.len() <= self.client.max_message()
            && !self.client.config.dont_fragment
        {
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
                if let RequestError::TooLarge { .. } = err {
                    self.tally.too_large += 1;
                }
                if let RequestError::NoReply { discarded, .. } = err {
                    self.note_discarded(discarded)?;
                }
                let (red, reset) = self.output.paint("\x1b[31m");
                writeln!(self.diag, "{red}error:{reset} {err}")?;
                match err {
                    // An echo server will echo the next message too (and an
                    // uppercasing one uppercase it).
                    RequestError::NoServer(_)
                    | RequestError::Io(_)
                    | RequestError::EchoServer { .. }
                    | RequestError::UpperServer { .. } => Ok(Next::Stop),
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
pub(super) fn line(reply: &Reply, out: &mut impl Write, output: Output) -> io::Result<()> {
    if output.raw {
        out.write_all(&reply.data)?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", escape(&reply.data))
    }
}

/// A broken pipe on stdout means the reader is done: that is success (ripgrep).
pub(super) fn finish(result: io::Result<()>, tally: Tally) -> io::Result<Tally> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(tally),
        other => other.map(|()| tally),
    }
}
