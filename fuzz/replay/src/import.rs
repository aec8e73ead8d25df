//! `import_google`, `import_oath` and `import_u2f`: the importers' parsers
//! (`twofold-import`) on arbitrary text, as `twofold admin import` reads a
//! `.google_authenticator`, a `users.oath` or a `u2f_keys` it was pointed at.

use twofold_import::{google, oath, u2f, Otp, ParseError};

/// Properties: no panic; an error names a line of the text (1 to the
/// number of lines; 0 only for an oversized file) and never quotes a
/// secret-looking line; an accepted file yields codes of the documented
/// shape and secrets that are not empty.
pub fn import_google(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match google::parse(text) {
        Ok(r) => {
            check_otp(&r.otp);
            for c in &r.scratch {
                assert!(
                    c.len() == 8 && c.bytes().all(|b| b.is_ascii_digit()),
                    "a scratch code of the wrong shape was accepted"
                );
            }
        }
        Err(e) => check_error(text, &e),
    }
}

/// As [`import_google`], for pam_oath's `users.oath`; also, no user twice.
pub fn import_oath(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match oath::parse(text) {
        Ok(records) => {
            let mut users: Vec<&str> = records.iter().filter_map(|r| r.user.as_deref()).collect();
            assert_eq!(users.len(), records.len(), "a record without its user");
            users.sort_unstable();
            let n = users.len();
            users.dedup();
            assert_eq!(users.len(), n, "a user accepted twice");
            for r in &records {
                check_otp(&r.otp);
            }
        }
        Err(e) => check_error(text, &e),
    }
}

/// As [`import_google`], for pam-u2f's `u2f_keys`; also, no user twice,
/// at most 16 keys a user, none twice, each key handle 1 to 1023 bytes and
/// each public key of its algorithm's size.
pub fn import_u2f(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match u2f::parse(text) {
        Ok(entries) => {
            let mut users: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
            users.sort_unstable();
            let n = users.len();
            users.dedup();
            assert_eq!(users.len(), n, "a user accepted twice");
            for e in &entries {
                assert!(!e.user.is_empty(), "an empty user name");
                assert!(e.keys.len() <= u2f::MAX_KEYS, "{} keys", e.keys.len());
                let mut ids: Vec<&[u8]> = e.keys.iter().map(|k| &k.credential_id[..]).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), e.keys.len(), "a key handle accepted twice");
                for k in &e.keys {
                    assert!(
                        (1..=1023).contains(&k.credential_id.len()),
                        "a key handle of {} bytes",
                        k.credential_id.len()
                    );
                    let size = match k.alg {
                        u2f::Alg::Es256 => 64,
                        u2f::Alg::EdDsa => 32,
                    };
                    assert_eq!(k.public.len(), size, "a public key of the wrong size");
                }
            }
        }
        Err(e) => check_error(text, &e),
    }
}

fn check_otp(otp: &Otp) {
    match otp {
        Otp::Totp {
            secret,
            digits,
            period,
            ..
        } => {
            assert!(!secret.is_empty(), "an empty secret was accepted");
            assert!((6..=8).contains(digits), "digits {digits}");
            assert!((1..=300).contains(period), "period {period}");
        }
        Otp::Hotp { secret, digits, .. } => {
            assert!(!secret.is_empty(), "an empty secret was accepted");
            assert!((6..=8).contains(digits), "digits {digits}");
        }
    }
}

fn check_error(text: &str, e: &ParseError) {
    let lines = text.lines().count().max(1);
    if text.len() <= twofold_import::MAX_FILE {
        assert!(
            (1..=lines).contains(&e.line),
            "error names line {} of {lines}: {e}",
            e.line
        );
    }
    assert!(!e.message.contains('\n'), "a multi-line error: {e:?}");
}
