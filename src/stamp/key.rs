//! The STAMP HMAC key file (RFC 8762 §4.4), read the same way by the
//! reflector (`shout server --stamp-key-file`), the sender (`shout bench
//! --stamp-key-file`) and the probe agent, so one file serves every end.
//!
//! The file's text is the key as hex when it is hex (surrounding white space
//! ignored), else its bytes as they are: the format stamp-suite's
//! `--hmac-key-file` reads too.
//!
//! The file is opened without blocking and only a regular file is read, so a
//! FIFO, a directory or a device given by mistake is refused at once instead
//! of hanging the program in `open()` or feeding it an endless stream.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The shortest key accepted: 16 octets, as RFC 8762 §4.4 keys are at least.
pub const MIN_KEY: usize = 16;

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
    #[error("it is readable by others (mode {mode:o}): chmod 600 it")]
    Readable {
        /// The permission bits.
        mode: u32,
    },
    /// The key is shorter than [`MIN_KEY`].
    #[error("the key is {len} bytes: use at least {MIN_KEY} (32 hex digits or more)")]
    TooShort {
        /// The key's length in bytes.
        len: usize,
    },
}

/// Reads the key in the file at `path`.
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
    let mut file = file;
    file.read_to_end(&mut bytes)?;
    parse_key(bytes)
}

/// The key in a key file's contents: hex text, else the bytes as they are.
pub fn parse_key(bytes: Vec<u8>) -> Result<Vec<u8>, KeyFileError> {
    let key = std::str::from_utf8(&bytes).ok().and_then(|text| hex(text.trim())).unwrap_or(bytes);
    if key.len() < MIN_KEY {
        return Err(KeyFileError::TooShort { len: key.len() });
    }
    Ok(key)
}

/// `text` as bytes, two hex digits each, or `None`.
fn hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
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
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable { mode });
    }
    Ok(())
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
    fn keys_are_hex_text_or_raw_bytes() {
        let want: Vec<u8> = (0..16).map(|i| i * 0x11).collect();
        assert_eq!(load(b"00112233445566778899aabbccddeeff\n").unwrap(), want);
        let raw = b"not hex, but long enough";
        assert_eq!(load(raw).unwrap(), raw);
    }

    #[test]
    fn short_or_readable_keys_are_refused_with_a_reason() {
        let err = load(b"00112233").unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
        let dir = Dir::new();
        let err = load_key(&dir.file(b"00112233445566778899aabbccddeeff", 0o644)).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
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
