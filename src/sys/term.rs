//! The terminal's size, for the live table of `shout probe`.
#![allow(unsafe_code)]

/// The rows of the terminal on stdout (`TIOCGWINSZ`), or `None` where stdout
/// is no terminal or the terminal does not say (0 rows).
pub fn stdout_rows() -> Option<u16> {
    // SAFETY: all-zero bytes are a valid `winsize` (plain integers).
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points
    // at a live, writable `winsize`; the fd is only read, never closed.
    let ret = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (ret == 0 && size.ws_row > 0).then_some(size.ws_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_none_or_positive() {
        // Under `cargo test` stdout is a pipe or a terminal: either way no
        // zero comes back, and the call never fails loudly.
        assert_ne!(stdout_rows(), Some(0));
    }
}
