//! One-shot mode: each command-line message is one datagram, each reply one line.

use std::io::{self, Write};

use super::exchange::{finish, line, Exchange, Next, Output, Tally};
use crate::client::Client;

/// Sends each message as one datagram and prints each reply on its own line.
pub fn one_shot<M: AsRef<[u8]>>(
    client: &mut Client,
    messages: &[M],
    output: Output,
    out: impl Write,
    diag: impl Write,
) -> io::Result<Tally> {
    let mut s = Exchange::new(client, output, out, diag);
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
