//! HOTP (RFC 4226) and TOTP (RFC 6238), base32 and `otpauth://` URIs.
//!
//! The codes and base32 are `totp-rs`'s; this module chooses its parameters,
//! walks the skew window and writes the URI (the crate's `otpauth` feature
//! would bring a URL parser for one `format!`). It only computes and compares; replay protection (a step accepted
//! at most once) lives in storage, where it is atomic.

use totp_rs::{Builder, Secret, Totp};
use twofold_proto::Algorithm;
use zeroize::Zeroizing;

/// Parameters of one TOTP credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length, 6 to 8.
    pub digits: u32,
    /// Time step in seconds (at least 1).
    pub period: u64,
}

/// Secret length for new credentials: the algorithm's output size, as RFC 6238 does.
pub fn secret_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    }
}

/// A `totp-rs` generator for one credential that checks a single step (skew
/// 0): [`matching_step`] walks the window itself so that it never stops early.
///
/// `build_noncompliant` rather than `build`: `build` refuses keys shorter
/// than 128 bits, which this module has always accepted for a stored
/// credential (new ones are [`secret_len`] long), and the daemon checks the
/// digits itself (6 to 8 at enrollment, the shape in [`looks_like_code`]).
/// `None` for what totp-rs cannot compute: from 10 digits on it panics.
/// The key is copied into the generator, which wipes it when dropped
/// (feature `zeroize`).
fn generator(params: &TotpParams, key: &[u8]) -> Option<Totp> {
    let digits = u8::try_from(params.digits)
        .ok()
        .filter(|d| (1..=9).contains(d))?;
    let algorithm = match params.algorithm {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    Some(
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(digits)
            .with_skew(0)
            .with_step_duration(params.period.max(1))
            .with_secret(Secret::from(key))
            .build_noncompliant(),
    )
}

/// The time step that contains `now`.
pub fn step_at(now: u64, period: u64) -> u64 {
    now / period.max(1)
}

/// Whether `code` has the shape of a code for these parameters (so it is
/// worth decrypting the secret for).
pub fn looks_like_code(params: &TotpParams, code: &str) -> bool {
    code.len() == params.digits as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// The latest step within `skew` steps of `now` whose code equals `code`.
///
/// Every candidate step is computed and compared in constant time (totp-rs
/// compares tokens with `constant_time_eq`), so timing tells nothing about
/// which step (if any) matched.
pub fn matching_step(
    params: &TotpParams,
    key: &[u8],
    now: u64,
    skew: u32,
    code: &str,
) -> Option<u64> {
    if !looks_like_code(params, code) {
        return None;
    }
    let totp = generator(params, key)?;
    let period = totp.step();
    let center = step_at(now, period);
    let first = center.saturating_sub(u64::from(skew));
    let last = center.saturating_add(u64::from(skew));
    let mut found = None;
    for step in first..=last {
        // A step whose start overflows a u64 has no code to match.
        let Some(start) = step.checked_mul(period) else {
            continue;
        };
        if totp.check(code, start).is_some() {
            found = Some(step);
        }
    }
    found
}

/// The counter values in `from..from + count` whose code equals `code`
/// (HOTP, RFC 4226, with `params.period` 1: TOTP at time `c` with a
/// one-second step is HOTP of counter `c`). Every value is computed and
/// compared in constant time.
pub fn matching_counters(
    params: &TotpParams,
    key: &[u8],
    from: u64,
    count: u64,
    code: &str,
) -> Vec<u64> {
    let mut found = Vec::new();
    if !looks_like_code(params, code) {
        return found;
    }
    let Some(totp) = generator(params, key) else {
        return found;
    };
    for value in from..from.saturating_add(count) {
        let Some(time) = value.checked_mul(totp.step()) else {
            continue;
        };
        if totp.check(code, time).is_some() {
            found.push(value);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32_encode(data: &[u8]) -> Zeroizing<String> {
    // The copy in `Secret` is wiped when dropped (feature `zeroize`). The
    // encoder underestimates its buffer and grows it once, so a freed partial
    // copy stays on the heap, as it does when serde_json writes the reply.
    Zeroizing::new(Secret::from(data).to_base32())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/ISSUER:USER?...` URI that authenticator apps scan.
pub fn otpauth_uri(
    issuer: &str,
    user: &str,
    secret_b32: &str,
    params: &TotpParams,
) -> Zeroizing<String> {
    let issuer_enc = percent_encode(issuer);
    Zeroizing::new(format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret_b32}&issuer={issuer_enc}&algorithm={}&digits={}&period={}",
        percent_encode(user),
        params.algorithm.as_str(),
        params.digits,
        params.period
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// The code `params` give for `step`, as the person's app shows it.
    fn code_at(params: &TotpParams, key: &[u8], step: u64) -> String {
        generator(params, key)
            .unwrap()
            .generate(step * params.period)
            .to_string()
    }

    #[test]
    fn rfc4226_appendix_d() {
        // HOTP for counter c is TOTP with a one-second period at time c.
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 1,
        };
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in (0u64..).zip(expected) {
            assert_eq!(code_at(&params, SEED20, counter), want);
            assert_eq!(
                matching_step(&params, SEED20, counter, 0, want),
                Some(counter)
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_all_algorithms() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            for (alg, seed, want) in [
                (Algorithm::Sha1, SEED20, sha1),
                (Algorithm::Sha256, SEED32, sha256),
                (Algorithm::Sha512, SEED64, sha512),
            ] {
                let params = TotpParams {
                    algorithm: alg,
                    digits: 8,
                    period: 30,
                };
                let step = step_at(t, 30);
                assert_eq!(code_at(&params, seed, step), want, "{alg:?} at {t}");
                assert_eq!(matching_step(&params, seed, t, 0, want), Some(step));
            }
        }
    }

    #[test]
    fn skew_window_is_exact() {
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let now = 1_700_000_000;
        let center = step_at(now, 30);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let step = center.checked_add_signed(offset).unwrap();
            let code = code_at(&params, SEED20, step);
            let got = matching_step(&params, SEED20, now, 1, &code);
            assert_eq!(got.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(got, Some(step));
            }
        }
    }

    #[test]
    fn wrong_shapes_never_match() {
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let code = code_at(&params, SEED20, step_at(59, 30));
        assert!(matching_step(&params, SEED20, 59, 1, &format!("{code}0")).is_none());
        assert!(matching_step(&params, SEED20, 59, 1, &format!(" {}", &code[1..])).is_none());
        assert!(matching_step(&params, SEED20, 59, 1, &format!("+{}", &code[1..])).is_none());
        assert!(matching_step(&params, SEED20, 59, 1, "").is_none());
    }

    /// totp-rs's `build` refuses keys under 128 bits; stored credentials
    /// have never been refused for their length.
    #[test]
    fn short_keys_still_match() {
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let key = &SEED20[..10];
        let code = code_at(&params, key, step_at(59, 30));
        assert_eq!(matching_step(&params, key, 59, 0, &code), Some(1));
    }

    /// totp-rs panics from 10 digits on; such a credential matches nothing.
    #[test]
    fn ten_digits_never_match_and_never_panic() {
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 10,
            period: 30,
        };
        assert!(matching_step(&params, SEED20, 59, 1, "1234567890").is_none());
    }

    /// Steps whose start does not fit a u64 are skipped, not wrapped.
    #[test]
    fn window_at_the_end_of_time_does_not_overflow() {
        let params = TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let now = u64::MAX;
        let step = step_at(now, 30);
        let code = code_at(&params, SEED20, step);
        assert_eq!(matching_step(&params, SEED20, now, 1, &code), Some(step));
    }

    #[test]
    fn base32_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(&*base32_encode(input.as_bytes()), want);
        }
        assert_eq!(&*base32_encode(SEED20), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn uri_encodes_label_and_issuer() {
        let params = TotpParams {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60,
        };
        let uri = otpauth_uri("Acme Corp", "j.doe@x", "ABC", &params);
        assert_eq!(
            &*uri,
            "otpauth://totp/Acme%20Corp:j.doe%40x?secret=ABC&issuer=Acme%20Corp&algorithm=SHA256&digits=8&period=60"
        );
    }
}
