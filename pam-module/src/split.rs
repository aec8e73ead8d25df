//! Single-prompt mode (`single_prompt`): for applications that ask only
//! once, the person types the password and the code in one answer, e.g.
//! `hunter2` followed by `123456` as `hunter2123456`.
//!
//! **The split rule.** The code is the end of the answer:
//! 1. if the answer ends with a backup code as printed (`xxxxx-xxxxx`: five
//!    ASCII letters or digits, a hyphen, five more), those 11 characters;
//! 2. otherwise, if its last `digits` characters (option `digits=`, default
//!    6) are all ASCII digits, those characters;
//! 3. otherwise there is no code: the whole answer is the password and the
//!    daemon's own prompt asks for the code next.
//!
//! Everything before the code is the password, byte for byte: nothing is
//! trimmed, so a password may contain or end in spaces. A password that
//! itself ends in digits still works as long as the code is typed after it,
//! because only the last `digits` characters are taken.

use twofold_proto::Secret;

/// The prompt shown instead of the daemon's first code prompt.
pub const SINGLE_PROMPT: &str = "Password & verification code: ";

/// Length of a backup code in its printed form, `xxxxx-xxxxx`.
const BACKUP_FORM: usize = 11;

/// A single-prompt answer taken apart.
#[derive(Debug)]
pub struct Split {
    /// Everything before the code; handed on as PAM_AUTHTOK.
    pub password: Secret,
    /// The code for the daemon, or `None` when the answer did not end in one.
    pub code: Option<Secret>,
}

/// Splits `answer` by the rule above; `digits` is the TOTP code length.
pub fn split(answer: &str, digits: usize) -> Split {
    let at = code_start(answer.as_bytes(), digits);
    match at {
        Some(i) => Split {
            password: Secret::from(&answer[..i]),
            code: Some(Secret::from(&answer[i..])),
        },
        None => Split {
            password: Secret::from(answer),
            code: None,
        },
    }
}

/// Byte index where the code starts. Every byte of a code is ASCII, so the
/// index is always a character boundary.
fn code_start(b: &[u8], digits: usize) -> Option<usize> {
    if b.len() >= BACKUP_FORM {
        let tail = &b[b.len() - BACKUP_FORM..];
        let backup = tail.iter().enumerate().all(|(i, c)| {
            if i == 5 {
                *c == b'-'
            } else {
                c.is_ascii_alphanumeric()
            }
        });
        if backup {
            return Some(b.len() - BACKUP_FORM);
        }
    }
    if digits > 0 && b.len() >= digits && b[b.len() - digits..].iter().all(u8::is_ascii_digit) {
        return Some(b.len() - digits);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(answer: &str, digits: usize) -> (String, Option<String>) {
        let s = split(answer, digits);
        (
            s.password.expose().to_owned(),
            s.code.map(|c| c.expose().to_owned()),
        )
    }

    #[test]
    fn a_totp_code_is_the_last_digits() {
        assert_eq!(
            parts("hunter2123456", 6),
            ("hunter2".into(), Some("123456".into()))
        );
        assert_eq!(
            parts("pw12345678", 8),
            ("pw".into(), Some("12345678".into()))
        );
        // A password ending in digits keeps them: only six are taken.
        assert_eq!(
            parts("s3cret99000111", 6),
            ("s3cret99".into(), Some("000111".into()))
        );
    }

    #[test]
    fn a_backup_code_in_printed_form_is_taken_whole() {
        assert_eq!(
            parts("correct horse abcde-fg234", 6),
            ("correct horse ".into(), Some("abcde-fg234".into()))
        );
        assert_eq!(
            parts("pwABCDE-23456", 6),
            ("pw".into(), Some("ABCDE-23456".into()))
        );
    }

    #[test]
    fn nothing_is_trimmed() {
        assert_eq!(
            parts(" pass word  123456", 6),
            (" pass word  ".into(), Some("123456".into()))
        );
    }

    #[test]
    fn an_answer_without_a_code_is_all_password() {
        for a in [
            "",
            "hunter2",
            "12345",
            "pw12345x",
            "pwabcde_fghij",
            "pässwörd",
        ] {
            assert_eq!(parts(a, 6), (a.into(), None), "{a:?}");
        }
    }

    #[test]
    fn a_code_alone_leaves_an_empty_password() {
        assert_eq!(parts("123456", 6), (String::new(), Some("123456".into())));
        assert_eq!(
            parts("abcde-fghij", 6),
            (String::new(), Some("abcde-fghij".into()))
        );
    }

    #[test]
    fn multibyte_passwords_split_on_a_character_boundary() {
        assert_eq!(
            parts("mötley€123456", 6),
            ("mötley€".into(), Some("123456".into()))
        );
        assert_eq!(parts("€€€€€€", 6), ("€€€€€€".into(), None));
    }
}
