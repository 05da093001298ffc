//! The HMAC key file of authenticated STAMP, read the one way the reflector,
//! the bench and the probe all read it.

use std::io;
use std::path::{Path, PathBuf};

/// The shortest key accepted: 16 octets, as RFC 8762 §4.4 keys are at least.
pub const MIN_KEY: usize = 16;

/// Why a key file gives no key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read (missing, no permission, ...).
    #[error("reading the STAMP key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Others may read the file: the key would sign for anyone.
    #[error("the STAMP key file {} is readable by others (mode {mode:o}): chmod 600 it", path.display())]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is shorter than [`MIN_KEY`].
    #[error("the STAMP key in {} is {len} bytes: use at least {MIN_KEY} (32 hex digits or more)", path.display())]
    Short {
        /// The file.
        path: PathBuf,
        /// The key's length in bytes.
        len: usize,
    },
}

/// Reads an HMAC key: the file's text as hex when it is hex (surrounding white
/// space ignored), else its bytes as they are; the format stamp-suite's
/// `--hmac-key-file` reads too, so one file serves both. A key others may read
/// is refused, as ssh refuses such a private key: it would sign for anyone.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io_err = |source| KeyFileError::Io { path: path.to_owned(), source };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Readable { path: path.to_owned(), mode: mode & 0o777 });
        }
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    let key = std::str::from_utf8(&bytes).ok().and_then(|text| hex(text.trim())).unwrap_or(bytes);
    if key.len() < MIN_KEY {
        return Err(KeyFileError::Short { path: path.to_owned(), len: key.len() });
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
