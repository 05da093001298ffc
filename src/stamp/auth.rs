//! STAMP's integrity check: HMAC-SHA-256 truncated to 16 octets (RFC 8762
//! §4.4), over the first 96 octets of an authenticated base packet, and for the
//! HMAC TLV (RFC 8972 §4.8) over the Sequence Number followed by every TLV
//! before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::packet::HMAC_LEN;

/// An HMAC key, with the inner and outer pads computed once so that each
/// packet costs two SHA-256 runs over its own bytes and no allocation.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

/// A key that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An empty key authenticates nothing.
    #[error("the STAMP HMAC key is empty")]
    Empty,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from its bytes (any non-zero length: HMAC hashes long keys down).
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        // new_from_slice fails only for fixed-length MACs; HMAC takes any length.
        Hmac::<Sha256>::new_from_slice(bytes).map(Self).map_err(|_| KeyError::Empty)
    }

    /// HMAC-SHA-256 of the concatenated `parts`, truncated to 16 octets.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; HMAC_LEN] {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; HMAC_LEN];
        out.copy_from_slice(&full[..HMAC_LEN]);
        out
    }

    /// Whether `tag` is the truncated HMAC of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != HMAC_LEN {
            return false;
        }
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        mac.verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc_4231_case_2_truncated_to_128_bits() {
        let key = Key::new(b"Jefe").unwrap();
        let tag = key.tag(&[b"what do ya ", b"want for nothing?"]);
        assert_eq!(tag.to_vec(), hex("5bdcc146bf60754e6a042426089575c7"));
        assert!(key.verify(&[b"what do ya want for nothing?"], &tag));
        let mut bad = tag;
        bad[15] ^= 1;
        assert!(!key.verify(&[b"what do ya want for nothing?"], &bad));
        assert!(!key.verify(&[b"what do ya want for nothing?"], &tag[..15]));
    }

    #[test]
    fn rfc_4231_case_6_long_key() {
        // A 131-octet key is hashed first; the result must still match.
        let key = Key::new(&[0xaa; 131]).unwrap();
        let tag = key.tag(&[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(tag.to_vec(), hex("60e431591ee0b67f0d8a26aacbf5b77f"));
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(Key::new(b"").unwrap_err(), KeyError::Empty);
        assert_eq!(format!("{:?}", Key::new(b"secret").unwrap()), "Key(..)");
    }
}
