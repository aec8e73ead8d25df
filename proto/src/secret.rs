use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A string that holds a code, a secret or a key.
///
/// Its memory is wiped on drop, and `Debug`/`Display` never show it, so a
/// secret cannot reach a log line by accident. On the wire it is a plain JSON
/// string.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string; the caller's copy is moved, not duplicated.
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The secret text. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, safe to report.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `other` holds the same bytes, in time that depends only on
    /// the longer length: every byte pair is looked at, and the lengths are
    /// compared inside the same accumulator.
    pub fn same_as(&self, other: &[u8]) -> bool {
        let a = self.0.as_bytes();
        let n = a.len().max(other.len());
        let mut diff = (a.len() ^ other.len()) as u64;
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(0);
            let y = other.get(i).copied().unwrap_or(0);
            diff |= u64::from(x ^ y);
        }
        std::hint::black_box(diff) == 0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("123456");
        let shown = format!("{s:?}");
        assert!(!shown.contains("123456"), "{shown}");
    }

    #[test]
    fn same_as_compares_every_byte_and_the_length() {
        let s = Secret::from("hunter2");
        assert!(s.same_as(b"hunter2"));
        assert!(!s.same_as(b"hunter3"));
        assert!(!s.same_as(b"hunter"));
        assert!(!s.same_as(b"hunter2 "));
        assert!(!s.same_as(b""));
        assert!(Secret::from("").same_as(b""));
    }

    #[test]
    fn serializes_as_plain_string() {
        let s = Secret::from("abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"abc\"");
    }
}
