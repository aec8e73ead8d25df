//! Backup codes: generation, normalization and argon2id hashing.

use crate::crypto::kdf;
use crate::crypto::keys::{random_bytes, KeyError};
use zeroize::Zeroizing;

/// 32 characters without look-alikes (no 0, 1, l, o), so `byte % 32` is uniform.
pub const ALPHABET: &[u8; 32] = b"23456789abcdefghijkmnpqrstuvwxyz";
/// Characters in a code, without the separator.
pub const CODE_LEN: usize = 10;
/// Answers longer than this are refused before any work is done.
pub const MAX_ANSWER: usize = 64;

/// A freshly made code: its display form and its normalized form.
#[derive(Debug)]
pub struct NewCode {
    /// `xxxxx-xxxxx`, shown to the person once.
    pub display: twofold_proto::Secret,
    /// The ten characters without separator, as stored (hashed).
    pub normalized: Zeroizing<String>,
}

/// Makes one random code.
pub fn generate() -> Result<NewCode, KeyError> {
    let mut raw = Zeroizing::new([0u8; CODE_LEN]);
    random_bytes(&mut raw[..])?;
    let normalized: Zeroizing<String> = Zeroizing::new(
        raw.iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect(),
    );
    let display = format!("{}-{}", &normalized[..5], &normalized[5..]);
    Ok(NewCode {
        display: twofold_proto::Secret::new(display),
        normalized,
    })
}

/// The canonical form of a typed code (lowercase, no `-` or spaces), or
/// `None` when it cannot be a backup code; needs no hashing to decide.
/// Eight digits are a scratch code imported from google-authenticator.
pub fn normalize(answer: &str) -> Option<Zeroizing<String>> {
    if answer.len() > MAX_ANSWER {
        return None;
    }
    let s: Zeroizing<String> = Zeroizing::new(
        answer
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let ok = s.len() == CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
    let scratch = s.len() == SCRATCH_LEN && s.bytes().all(|b| b.is_ascii_digit());
    (ok || scratch).then_some(s)
}

/// Digits in a google-authenticator scratch code.
pub const SCRATCH_LEN: usize = 8;

/// The argon2id PHC string of a normalized code (see [`kdf`]).
pub fn hash(normalized: &str) -> Result<String, KeyError> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    kdf::hash(normalized.as_bytes(), &salt).map_err(|e| KeyError::Random(e.to_string()))
}

/// Whether `normalized` matches the PHC string `phc` (one argon2 run,
/// waiting for a permit; see [`kdf`]).
pub fn verify(normalized: &str, phc: &str) -> bool {
    kdf::verify(normalized.as_bytes(), phc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_display_shape() {
        let c = generate().unwrap();
        let shown = c.display.expose();
        assert_eq!(shown.len(), 11);
        assert_eq!(&shown[5..6], "-");
        assert_eq!(
            normalize(shown).as_deref().map(|s| s.as_str()),
            Some(c.normalized.as_str())
        );
    }

    #[test]
    fn typing_variants_normalize_and_junk_does_not() {
        let want = "abcde23456";
        for typed in ["abcde-23456", "ABCDE 23456", " abcde23456 ", "AbCdE-2345-6"] {
            assert_eq!(
                normalize(typed).as_deref().map(|s| s.as_str()),
                Some(want),
                "{typed:?}"
            );
        }
        for bad in [
            "abcde-2345",
            "abcde-234567",
            "abcd0-23456",
            "abcdl-23456",
            "abcdé-23456",
        ] {
            assert!(normalize(bad).is_none(), "{bad:?}");
        }
        assert!(normalize(&"a".repeat(10_000)).is_none());
    }

    #[test]
    fn hash_verifies_only_the_same_code() {
        let phc = hash("abcde23456").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("abcde23456", &phc));
        assert!(!verify("abcde23457", &phc));
        assert!(!verify("abcde23456", "not a phc string"));
    }
}
