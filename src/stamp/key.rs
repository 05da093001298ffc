//! The STAMP HMAC key file (RFC 8762 §4.4), read the same way by the
//! reflector (`shout server --stamp-key-file`), the sender (`shout bench
//! --stamp-key-file`) and the probe agent, so one file serves every end.
//!
//! The rule, [`KEY_FILE_RULE`], is written so that no file means two things: a
//! file made only of hex digits and white space is hex text and must be valid
//! hex (an even number of digits, white space only around them); anything
//! else is raw bytes. A hex-looking file that is not valid hex is an error,
//! never quietly a raw key that another implementation would read as hex.
//!
//! The file is opened without blocking and only a regular file is read, so a
//! FIFO, a directory or a device given by mistake is refused at once instead
//! of hanging the program in `open()` or feeding it an endless stream.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The shortest key accepted: 16 octets, as RFC 8762 §4.4 keys are at least.
pub const MIN_KEY: usize = 16;

/// The largest key file read, in bytes. HMAC-SHA-256 hashes any key longer
/// than its 64-byte block down to 32 bytes, so a longer key adds nothing; the
/// cap keeps a wrong path (a disk image, a log) from being read into memory.
pub const MAX_KEY_FILE: usize = 4096;

/// The rule as one literal, so that [`KEY_FILE_HELP`] can be built from it at compile time.
macro_rules! key_file_rule {
    () => {
        "The key file holds either hex text (only hex digits, an even number, at least 32, with white space allowed only before and after them) or, if it holds any byte that is neither a hex digit nor white space, the key as raw bytes (at least 16). It is a regular file of at most 4096 bytes, not all zeros, that group and others cannot read (chmod 600)."
    };
}

/// The key file rule, as `--help` and docs/STAMP.md state it.
pub const KEY_FILE_RULE: &str = key_file_rule!();

/// `--stamp-key-file`'s help text: authenticated mode, then [`KEY_FILE_RULE`].
pub const KEY_FILE_HELP: &str = concat!(
    "Authenticated mode (RFC 8762 §4.4) with the HMAC key in this file. ",
    key_file_rule!()
);

/// Why a key file gives no key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It cannot be opened or read (missing, no permission, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// It is not a regular file (a FIFO, a directory, a device, a socket).
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Group or others may read it, so it would sign for anyone who can.
    #[error("it is readable by {who} (mode {mode:o}): chmod 600 it")]
    Readable {
        /// "group", "others" or "group and others".
        who: &'static str,
        /// The permission bits.
        mode: u32,
    },
    /// It is larger than [`MAX_KEY_FILE`].
    #[error(
        "it is larger than {MAX_KEY_FILE} bytes, too large for a key file (is it the right file?)"
    )]
    TooLarge,
    /// It holds nothing but white space, or nothing at all.
    #[error("it is empty")]
    Empty,
    /// Hex text with white space between the digits.
    #[error("it looks like hex text (only hex digits and white space) but has white space between the digits: write the hex digits as one word")]
    SpacedHex,
    /// Hex text with an odd number of digits.
    #[error("it looks like hex text (only hex digits and white space) but has an odd number of digits ({0}): two hex digits make one byte")]
    OddHex(usize),
    /// The key is shorter than [`MIN_KEY`].
    #[error("the key is {len} bytes{}: use at least {MIN_KEY} (32 hex digits or more)", if *.hex { " (as hex text)" } else { " (as raw bytes)" })]
    TooShort {
        /// The key's length in bytes.
        len: usize,
        /// Whether it was read as hex text.
        hex: bool,
    },
    /// Every byte of the key is zero.
    #[error("the key is all zeros: use a random key (e.g. head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')")]
    AllZero,
}

/// Reads the key in the file at `path` by [`KEY_FILE_RULE`].
///
/// ```
/// let path = std::env::temp_dir().join(format!("shout-doc-key-{}", std::process::id()));
/// std::fs::write(&path, "00112233445566778899aabbccddeeff\n").unwrap();
/// #[cfg(unix)]
/// {
///     use std::os::unix::fs::PermissionsExt;
///     std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
/// }
/// let key = shout::stamp::load_key(&path).unwrap();
/// assert_eq!(key.len(), 16);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    // Looked at before opening, so that a device is not even opened (opening
    // some has effects); checked again on the opened file, which is the one read.
    regular(&std::fs::metadata(path)?)?;
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    regular(&meta)?;
    private(&meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_KEY_FILE {
        return Err(KeyFileError::TooLarge);
    }
    parse_key(bytes)
}

/// The key in a key file's contents, by [`KEY_FILE_RULE`].
pub fn parse_key(bytes: Vec<u8>) -> Result<Vec<u8>, KeyFileError> {
    let looks_hex = bytes.iter().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    let (key, hex) = if looks_hex {
        let digits = bytes.trim_ascii();
        if digits.is_empty() {
            return Err(KeyFileError::Empty);
        }
        if digits.iter().any(u8::is_ascii_whitespace) {
            return Err(KeyFileError::SpacedHex);
        }
        if !digits.len().is_multiple_of(2) {
            return Err(KeyFileError::OddHex(digits.len()));
        }
        (digits.chunks(2).map(|pair| nibble(pair[0]) << 4 | nibble(pair[1])).collect(), true)
    } else {
        (bytes, false)
    };
    if key.len() < MIN_KEY {
        return Err(KeyFileError::TooShort { len: key.len(), hex });
    }
    if key.iter().all(|&b| b == 0) {
        return Err(KeyFileError::AllZero);
    }
    Ok(key)
}

/// The value of one hex digit (the caller checked that it is one).
fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => (digit | 0x20) - b'a' + 10,
    }
}

fn regular(meta: &std::fs::Metadata) -> Result<(), KeyFileError> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() { "a directory" } else { special(&kind) };
    Err(KeyFileError::NotRegular(what))
}

#[cfg(unix)]
fn special(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn special(_kind: &std::fs::FileType) -> &'static str {
    "not a file"
}

/// Opens for reading without waiting: a FIFO with no writer would otherwise
/// block `open()` forever (the type check after it refuses the FIFO).
#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Refuses a key that group or others may read, as ssh refuses such a private key.
#[cfg(unix)]
fn private(meta: &std::fs::Metadata) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "group",
        (false, true) => "others",
        (true, true) => "group and others",
    };
    Err(KeyFileError::Readable { who, mode })
}

#[cfg(not(unix))]
fn private(_meta: &std::fs::Metadata) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A scratch directory removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("shout-key-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn file(&self, contents: &[u8], mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join("key");
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load(contents: &[u8]) -> Result<Vec<u8>, KeyFileError> {
        let dir = Dir::new();
        load_key(&dir.file(contents, 0o600))
    }

    #[test]
    fn the_help_states_the_rule() {
        assert!(KEY_FILE_HELP.ends_with(KEY_FILE_RULE));
        assert!(KEY_FILE_RULE.contains(&MAX_KEY_FILE.to_string()));
    }

    #[test]
    fn keys_are_hex_text_or_raw_bytes() {
        let want: Vec<u8> = (0..16).map(|i| i * 0x11).collect();
        assert_eq!(load(b"00112233445566778899aabbccddeeff\n").unwrap(), want);
        assert_eq!(load(b"  00112233445566778899AABBCCDDEEFF\r\n\n").unwrap(), want);
        let raw = b"not hex, but long enough";
        assert_eq!(load(raw).unwrap(), raw);
        // One byte that is neither a hex digit nor white space makes it raw, whole.
        let raw = b"00112233445566778899aabbccddeeffx\n";
        assert_eq!(load(raw).unwrap(), raw);
    }

    #[test]
    fn hex_looking_files_must_be_valid_hex() {
        let err = load(b"00112233445566778899aabbccddeef\n").unwrap_err();
        assert!(matches!(err, KeyFileError::OddHex(31)), "{err}");
        assert!(err.to_string().contains("odd number of digits"), "{err}");
        for spaced in [
            &b"0011 2233 4455 6677 8899 aabb ccdd eeff\n"[..],
            b"00112233\n44556677\n8899aabbccddeeff",
        ] {
            let err = load(spaced).unwrap_err();
            assert!(matches!(err, KeyFileError::SpacedHex), "{err}");
            assert!(err.to_string().contains("white space between the digits"), "{err}");
        }
        assert!(matches!(load(b"").unwrap_err(), KeyFileError::Empty));
        assert!(matches!(load(b" \n\t").unwrap_err(), KeyFileError::Empty));
    }

    #[test]
    fn short_all_zero_and_oversized_keys_are_refused() {
        let err = load(b"00112233").unwrap_err();
        assert!(matches!(err, KeyFileError::TooShort { len: 4, hex: true }), "{err}");
        assert!(err.to_string().contains("at least 16"), "{err}");
        assert!(matches!(
            load(b"short\0").unwrap_err(),
            KeyFileError::TooShort { len: 6, hex: false }
        ));
        assert!(matches!(load(&[0; 32]).unwrap_err(), KeyFileError::AllZero));
        assert!(matches!(load(&[b'0'; 64]).unwrap_err(), KeyFileError::AllZero));
        assert_eq!(load(&[7; MAX_KEY_FILE]).unwrap().len(), MAX_KEY_FILE);
        let err = load(&[7; MAX_KEY_FILE + 1]).unwrap_err();
        assert!(matches!(err, KeyFileError::TooLarge), "{err}");
    }

    #[test]
    fn a_sparse_256_mib_file_is_refused_without_reading_it() {
        let dir = Dir::new();
        let path = dir.file(b"", 0o600);
        std::fs::File::options().write(true).open(&path).unwrap().set_len(256 << 20).unwrap();
        assert!(matches!(load_key(&path).unwrap_err(), KeyFileError::TooLarge));
    }

    #[test]
    fn readable_keys_name_who_may_read_them() {
        let dir = Dir::new();
        let key = b"00112233445566778899aabbccddeeff";
        for (mode, who) in [(0o640, "group"), (0o604, "others"), (0o644, "group and others")] {
            let err = load_key(&dir.file(key, mode)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("readable by {who} (mode {mode:o})")), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
        }
        assert!(load_key(&dir.file(key, 0o400)).is_ok());
    }

    #[test]
    fn only_regular_files_are_read_and_nothing_blocks() {
        let dir = Dir::new();
        let err = load_key(&dir.0).unwrap_err();
        assert!(matches!(err, KeyFileError::NotRegular("a directory")), "{err}");
        let err = load_key(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, KeyFileError::NotRegular("a character device")), "{err}");
        let fifo = dir.0.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // No writer: a blocking open() would never return.
            let err = load_key(&fifo).unwrap_err();
            assert!(matches!(err, KeyFileError::NotRegular("a FIFO")), "{err}");
        }
        let err = load_key(Path::new("/nonexistent/key")).unwrap_err();
        assert!(matches!(&err, KeyFileError::Io(e) if e.kind() == io::ErrorKind::NotFound));
    }
}
