//! The harness's own TOTP (RFC 6238), written apart from the daemon's so a
//! shared bug cannot make both sides agree. Checked against `oathtool` in
//! tests; used where `oathtool` may be absent (the demo, the benchmarks).

use hmac::{Hmac, KeyInit, Mac};
use twofold_proto::TotpEnrollment;

/// Decodes RFC 4648 base32 (no padding needed; case and spaces ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=' | b'-')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The code for `unix_time` with a SHA1 secret, `digits` long, 30 s steps.
pub fn totp_sha1(secret: &[u8], unix_time: u64, digits: u32) -> String {
    let step = unix_time / 30;
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

/// A well-formed six-digit code that is not `right`, for a wrong answer
/// that cannot match by chance.
pub fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// `oathtool`'s code for a base32 secret at `unix_time` (SHA1, 6 digits).
/// Panics when oathtool is missing: end-to-end tests need it.
pub fn oathtool(secret_b32: &str, unix_time: u64) -> String {
    run_oathtool(&["--totp".to_owned()], secret_b32, unix_time)
}

/// `oathtool`'s code for an enrollment as the daemon showed it (its
/// algorithm, digits and period) at `time` shifted by `offset` steps.
pub fn oathtool_totp(e: &TotpEnrollment, time: u64, offset: i64) -> String {
    let t = time as i64 + offset * i64::from(e.period);
    let options = [
        format!("--totp={}", e.algorithm.as_str().to_lowercase()),
        format!("--digits={}", e.digits),
        format!("--time-step-size={}s", e.period),
    ];
    run_oathtool(&options, e.secret.expose(), t as u64)
}

fn run_oathtool(options: &[String], secret_b32: &str, unix_time: u64) -> String {
    let out = std::process::Command::new("oathtool")
        .args(options)
        .args(["-b", "--now"])
        .arg(format!("@{unix_time}"))
        .arg(secret_b32)
        .output()
        .expect("oathtool is needed for these tests (scripts/deps installs it)");
    assert!(out.status.success(), "oathtool failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("oathtool prints ASCII")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp_sha1(secret, t, 8), code, "t={t}");
        }
    }

    #[test]
    fn agrees_with_oathtool() {
        let b32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let secret = base32_decode(b32).unwrap();
        for t in [0u64, 59, 1_700_000_000, 1_800_000_015] {
            assert_eq!(totp_sha1(&secret, t, 6), oathtool(b32, t), "t={t}");
        }
    }

    #[test]
    fn base32_rejects_garbage() {
        assert_eq!(base32_decode("MZXW6==="), Some(b"foo".to_vec()));
        assert_eq!(base32_decode("0189"), None);
    }
}
