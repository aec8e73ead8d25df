//! pam_oath's `users.oath` (liboath's usersfile): one credential a line,
//! `TYPE USER PASSWORD SECRET [COUNTER [LASTOTP [TIME]]]`, `#` comments.
//! `TYPE` is `HOTP`, `HOTP/E` (event: HOTP), `HOTP/T30` (TOTP with a
//! 30-second step), each optionally followed by `/DIGITS`; `SECRET` is
//! hexadecimal; `COUNTER` is the next HOTP counter value (kept). A
//! `PASSWORD` other than `-` (a PIN typed before the code) is not
//! imported: twofold asks the password through the password module.

use crate::{err, hex_decode, Otp, ParseError, Record, MAX_FILE};

/// Parses the whole file: every line or an error at the first bad one.
pub fn parse(text: &str) -> Result<Vec<Record>, ParseError> {
    if text.len() > MAX_FILE {
        return Err(err(0, format!("larger than {MAX_FILE} bytes")));
    }
    let mut out: Vec<Record> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields.len() > 7 {
            return Err(err(
                n,
                "expected TYPE USER PASSWORD SECRET [COUNTER [LASTOTP [TIME]]]",
            ));
        }
        let (kind, digits) = kind(fields[0]).ok_or_else(|| {
            err(
                n,
                format!(
                    "unknown type {:?} (HOTP, HOTP/E, HOTP/T30, optionally /6, /7 or /8)",
                    fields[0]
                ),
            )
        })?;
        let user = fields[1];
        if user.is_empty() || user.len() > 256 || user.contains(['/', ':']) {
            return Err(err(n, "not a user name"));
        }
        if out.iter().any(|r| r.user.as_deref() == Some(user)) {
            return Err(err(n, format!("{user:?} appears twice")));
        }
        let secret = hex_decode(fields[3])
            .ok_or_else(|| err(n, "the secret is not an even number of hexadecimal digits"))?;
        let counter = match fields.get(4) {
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| err(n, "the counter is not a number"))?,
            None => 0,
        };
        let mut notes = Vec::new();
        if fields[2] != "-" {
            notes.push(
                "its PIN (the PASSWORD field) is not imported: the password module asks the password"
                    .into(),
            );
        }
        let otp = match kind {
            Kind::Hotp => Otp::Hotp {
                secret,
                digits,
                counter,
            },
            Kind::Totp(period) => Otp::Totp {
                secret,
                digits,
                period,
                last_step: None,
            },
        };
        out.push(Record {
            user: Some(user.to_owned()),
            otp,
            scratch: Vec::new(),
            notes,
            line: n,
        });
    }
    Ok(out)
}

enum Kind {
    Hotp,
    Totp(u64),
}

/// `HOTP`, `HOTP/E`, `HOTP/T30`, each with an optional `/DIGITS`.
fn kind(field: &str) -> Option<(Kind, u32)> {
    let mut parts = field.split('/');
    if parts.next()? != "HOTP" {
        return None;
    }
    let mut kind = Kind::Hotp;
    let mut digits = 6;
    for (i, p) in parts.enumerate() {
        if let Some(secs) = p.strip_prefix('T').filter(|_| i == 0) {
            let secs: u64 = secs.parse().ok().filter(|s| (1..=300).contains(s))?;
            kind = Kind::Totp(secs);
        } else if p == "E" && i == 0 {
            kind = Kind::Hotp;
        } else {
            digits = p.parse().ok().filter(|d| (6..=8).contains(d))?;
        }
    }
    Some((kind, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_line() {
        let text = "# comment\nHOTP alice - 3132333435363738393031323334353637383930 12\nHOTP/T30/8 bob 1234 3132333435363738393031323334353637383930\nHOTP/E/7 carol - 31323334353637383930313233343536 0 755224 2024-01-01T00:00:00L\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 3);
        assert!(matches!(
            r[0].otp,
            Otp::Hotp {
                counter: 12,
                digits: 6,
                ..
            }
        ));
        assert!(matches!(
            r[1].otp,
            Otp::Totp {
                period: 30,
                digits: 8,
                ..
            }
        ));
        assert_eq!(r[1].notes.len(), 1, "the PIN is reported");
        assert!(matches!(r[2].otp, Otp::Hotp { digits: 7, .. }));
        assert_eq!(r[2].user.as_deref(), Some("carol"));
    }

    #[test]
    fn malformed_lines_are_named() {
        for (text, line) in [
            ("TOTP alice - 3132\n", 1),
            ("HOTP alice -\n", 1),
            ("\nHOTP alice - 31323\n", 2),
            ("HOTP alice - 3132 x\n", 1),
            ("HOTP/T0 alice - 3132\n", 1),
            ("HOTP/9 alice - 3132\n", 1),
            ("HOTP alice - 3132\nHOTP alice - 3132\n", 2),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
