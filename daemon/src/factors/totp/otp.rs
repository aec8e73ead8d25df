//! HOTP (RFC 4226) and TOTP (RFC 6238), base32 and `otpauth://` URIs.
//!
//! This module only computes and compares; replay protection (a step accepted
//! at most once) lives in storage, where it is atomic.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
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

fn mac(algorithm: Algorithm, key: &[u8], msg: &[u8]) -> Zeroizing<Vec<u8>> {
    macro_rules! run {
        ($d:ty) => {{
            let mut m = <Hmac<$d> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            m.update(msg);
            Zeroizing::new(m.finalize().into_bytes().to_vec())
        }};
    }
    match algorithm {
        Algorithm::Sha1 => run!(sha1::Sha1),
        Algorithm::Sha256 => run!(sha2::Sha256),
        Algorithm::Sha512 => run!(sha2::Sha512),
    }
}

/// The HOTP value for `counter`, already reduced to `digits` digits.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    let h = mac(algorithm, key, &counter.to_be_bytes());
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The code for `counter` as the person sees it, zero-padded.
pub fn hotp_code(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{:0width$}",
        hotp(algorithm, key, counter, digits),
        width = digits as usize
    ))
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
/// Every candidate step is computed and compared in constant time, so timing
/// tells nothing about which step (if any) matched.
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
    let center = step_at(now, params.period);
    let first = center.saturating_sub(u64::from(skew));
    let last = center.saturating_add(u64::from(skew));
    let mut found = None;
    for step in first..=last {
        let expected = hotp_code(params.algorithm, key, step, params.digits);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32_encode(data: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(data.len().div_ceil(5) * 8));
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &b in data {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[usize::from((buffer >> bits) & 31)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(B32[usize::from((buffer << (5 - bits)) & 31)]));
    }
    out
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

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, SEED20, counter as u64, 6), want);
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
                assert_eq!(&*hotp_code(alg, seed, step, 8), want, "{alg:?} at {t}");
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
            let code = hotp_code(Algorithm::Sha1, SEED20, step, 6);
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
        let code = hotp_code(Algorithm::Sha1, SEED20, step_at(59, 30), 6);
        assert!(matching_step(&params, SEED20, 59, 1, &format!("{}0", &*code)).is_none());
        assert!(matching_step(&params, SEED20, 59, 1, &format!(" {}", &code[1..])).is_none());
        assert!(matching_step(&params, SEED20, 59, 1, "").is_none());
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
