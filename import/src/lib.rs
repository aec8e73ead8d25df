//! Parsers of the files other PAM modules keep, for `twofold admin
//! import`: google-authenticator's `~/.google_authenticator`
//! ([`google`]), pam_oath's `users.oath` ([`oath`]) and pam-u2f's
//! `u2f_keys` ([`u2f`]: security keys' public credentials). They read text and
//! return what to enroll; they open no file and contact nothing, so they
//! are fuzzed as they are (`fuzz/`).
//!
//! Secrets and codes are held in [`Zeroizing`] buffers and never appear
//! in an error: an error names the line and what is wrong with it.

pub mod google;
pub mod oath;
pub mod u2f;

use std::fmt;
use zeroize::Zeroizing;

/// The largest file either parser reads.
pub const MAX_FILE: usize = 1 << 20;

/// An OTP credential read from another module's file.
#[derive(Debug)]
pub enum Otp {
    /// RFC 6238.
    Totp {
        /// The shared secret.
        secret: Zeroizing<Vec<u8>>,
        /// Code length.
        digits: u32,
        /// Time step in seconds.
        period: u64,
        /// The last time step the file says was used, if any (it must not
        /// be accepted again).
        last_step: Option<u64>,
    },
    /// RFC 4226.
    Hotp {
        /// The shared secret.
        secret: Zeroizing<Vec<u8>>,
        /// Code length.
        digits: u32,
        /// The counter value of the next code.
        counter: u64,
    },
}

/// What one user's entry holds.
#[derive(Debug)]
pub struct Record {
    /// The account, when the file names it (users.oath does; a
    /// `.google_authenticator` belongs to its owner).
    pub user: Option<String>,
    /// The credential.
    pub otp: Otp,
    /// Single-use codes (google-authenticator's scratch codes).
    pub scratch: Vec<Zeroizing<String>>,
    /// Settings of the source and what becomes of them in twofold, one
    /// line each, for the dry run.
    pub notes: Vec<String>,
    /// The line the entry starts on.
    pub line: usize,
}

/// A file that cannot be imported: where and why (never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

pub(crate) fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// RFC 4648 base32, upper or lower case, `=` padding optional; `None` for
/// anything else.
pub fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8 + 1));
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        acc = ((acc << 5) | v) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Hexadecimal, an even number of digits; `None` for anything else.
pub fn hex_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let b = text.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(b.len() / 2));
    for pair in b.chunks(2) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
    }
    Some(out)
}

/// Lowercase hexadecimal of `bytes`, wiped when dropped.
pub fn hex_encode(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_and_hex_round_trip_the_rfc_key() {
        let key = b"12345678901234567890";
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                .unwrap()
                .as_slice(),
            key
        );
        assert_eq!(
            base32_decode("gezdgnbvgy3tqojqgezdgnbvgy3tqojq====")
                .unwrap()
                .as_slice(),
            key
        );
        let hex = hex_encode(key);
        assert_eq!(hex.as_str(), "3132333435363738393031323334353637383930");
        assert_eq!(hex_decode(&hex).unwrap().as_slice(), key);
        assert!(base32_decode("GEZ1").is_none());
        assert!(hex_decode("313").is_none());
        assert!(hex_decode("3g").is_none());
    }
}
