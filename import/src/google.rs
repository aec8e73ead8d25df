//! google-authenticator-libpam's `~/.google_authenticator`: the base32
//! secret on the first line, then option lines starting with `" `
//! (`TOTP_AUTH`, `HOTP_COUNTER n`, `WINDOW_SIZE n`, `RATE_LIMIT n m
//! [times…]`, `DISALLOW_REUSE [steps…]`, `STEP_SIZE n`), then the scratch
//! codes, eight digits each, one a line.
//!
//! What twofold does with each setting is said in the record's notes:
//! reuse is always refused in twofold, the window and rate limit are
//! twofold's own (global) settings, scratch codes become backup codes.

use crate::{base32_decode, err, Otp, ParseError, Record, MAX_FILE};
use zeroize::Zeroizing;

/// Parses one file.
pub fn parse(text: &str) -> Result<Record, ParseError> {
    if text.len() > MAX_FILE {
        return Err(err(0, format!("larger than {MAX_FILE} bytes")));
    }
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let Some((_, first)) = lines.next() else {
        return Err(err(
            1,
            "empty file: the first line must be the base32 secret",
        ));
    };
    let first = first.trim();
    let secret = base32_decode(first)
        .filter(|_| first.len() >= 16)
        .ok_or_else(|| {
            err(
                1,
                "the first line is not a base32 secret of 16 characters or more",
            )
        })?;
    let mut totp = false;
    let mut counter = None;
    let mut period = 30u64;
    let mut last_step = None;
    let mut notes = Vec::new();
    let mut scratch = Vec::new();
    for (n, line) in lines {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(opt) = line.strip_prefix("\" ") {
            let mut words = opt.split_whitespace();
            let key = words.next().unwrap_or("");
            let args: Vec<&str> = words.collect();
            let number = |i: usize| -> Result<u64, ParseError> {
                args.get(i)
                    .and_then(|a| a.parse::<u64>().ok())
                    .ok_or_else(|| err(n, format!("{key} needs a number")))
            };
            match key {
                "TOTP_AUTH" => totp = true,
                "HOTP_COUNTER" => counter = Some(number(0)?),
                "STEP_SIZE" => {
                    period = number(0)?;
                    if !(1..=300).contains(&period) {
                        return Err(err(n, "STEP_SIZE must be 1 to 300 seconds"));
                    }
                }
                "WINDOW_SIZE" => {
                    let w = number(0)?;
                    notes.push(format!(
                        "WINDOW_SIZE {w}: twofold's window is its own `[totp] skew` (or HOTP's look-ahead of 10), the same for everyone"
                    ));
                }
                "RATE_LIMIT" => {
                    let (k, secs) = (number(0)?, number(1)?);
                    notes.push(format!(
                        "RATE_LIMIT {k} per {secs} s: twofold's `[rate_limit]` applies instead (failures lock a source, then the user)"
                    ));
                }
                "DISALLOW_REUSE" => {
                    for (i, _) in args.iter().enumerate() {
                        let step = number(i)?;
                        last_step = Some(last_step.map_or(step, |l: u64| l.max(step)));
                    }
                    notes.push(
                        "DISALLOW_REUSE: always on in twofold (a code is never accepted twice)"
                            .into(),
                    );
                }
                _ => return Err(err(n, format!("unknown option {key:?}"))),
            }
            continue;
        }
        let code = line.trim();
        if code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) {
            scratch.push(Zeroizing::new(code.to_owned()));
            continue;
        }
        return Err(err(
            n,
            "neither an option line (\" KEY …) nor an eight-digit scratch code",
        ));
    }
    let otp =
        match (totp, counter) {
            (true, None) => {
                if last_step.is_some() {
                    // DISALLOW_REUSE lists time steps of `period` seconds.
                    notes.push("the time steps it lists as used stay refused".into());
                }
                Otp::Totp {
                    secret,
                    digits: 6,
                    period,
                    last_step,
                }
            }
            (false, Some(counter)) => Otp::Hotp {
                secret,
                digits: 6,
                counter,
            },
            (true, Some(_)) => return Err(err(1, "both TOTP_AUTH and HOTP_COUNTER are set")),
            (false, None) => return Err(err(
                1,
                "neither TOTP_AUTH nor HOTP_COUNTER is set: the file does not say which kind it is",
            )),
        };
    if !scratch.is_empty() {
        notes.push(format!(
            "{} scratch codes become backup codes (each works once, stored hashed)",
            scratch.len()
        ));
    }
    Ok(Record {
        user: None,
        otp,
        scratch,
        notes,
        line: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP_FILE: &str = "HI7OVBCG7ADLYUPHDBYVLJFJTU\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE 56666666 56666667\n\" TOTP_AUTH\n57446670\n33883448\n";

    #[test]
    fn a_totp_file_with_its_options_and_scratch_codes() {
        let r = parse(TOTP_FILE).unwrap();
        match r.otp {
            Otp::Totp {
                digits,
                period,
                last_step,
                ref secret,
            } => {
                assert_eq!((digits, period, last_step), (6, 30, Some(56666667)));
                assert_eq!(secret.len(), 16);
            }
            ref other => panic!("{other:?}"),
        }
        let codes: Vec<&str> = r.scratch.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, ["57446670", "33883448"]);
        assert_eq!(r.notes.len(), 5, "{:?}", r.notes);
    }

    #[test]
    fn an_hotp_file() {
        let r =
            parse("372DO3YLJ3TGDVLOZFC4JGQ55Y\n\" WINDOW_SIZE 5\n\" HOTP_COUNTER 7\n59093105\n")
                .unwrap();
        assert!(matches!(r.otp, Otp::Hotp { counter: 7, .. }), "{r:?}");
    }

    #[test]
    fn malformed_files_name_the_line_and_never_the_secret() {
        for (text, line) in [
            ("", 1),
            ("not base32!\n\" TOTP_AUTH\n", 1),
            ("HI7OVBCG7ADLYUPHDBYVLJFJTU\n", 1),
            (
                "HI7OVBCG7ADLYUPHDBYVLJFJTU\n\" TOTP_AUTH\n\" FROBNICATE\n",
                3,
            ),
            ("HI7OVBCG7ADLYUPHDBYVLJFJTU\n\" TOTP_AUTH\n1234567\n", 3),
            ("HI7OVBCG7ADLYUPHDBYVLJFJTU\n\" HOTP_COUNTER x\n", 2),
            (
                "HI7OVBCG7ADLYUPHDBYVLJFJTU\n\" TOTP_AUTH\n\" HOTP_COUNTER 1\n",
                1,
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(!e.message.contains("HI7OVBCG"), "{e}");
        }
    }
}
