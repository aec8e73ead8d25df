//! pam-u2f's authfile (`~/.config/Yubico/u2f_keys`, or a central file
//! named by its `authfile=`): one user a line, `USER:CRED[:CRED...]`.
//!
//! A `CRED` is `KEYHANDLE,PUBLICKEY,COSETYPE,OPTIONS` as pamu2fcfg 1.1.0
//! and later write it — key handle and public key in base64, `COSETYPE`
//! `es256` or `eddsa` (`rs256` is reported, not imported), `OPTIONS` such
//! as `+presence`, `+verification`, `+pin` (possibly empty) — or, as
//! pamu2fcfg 1.0.8 and earlier wrote it, `KEYHANDLE,PUBLICKEY`: a
//! web-safe base64 key handle and the uncompressed P-256 point in
//! hexadecimal (ES256, touch). pam-u2f asserts new credentials for its
//! `origin` and old ones for its `appid` (both `pam://$HOSTNAME` unless
//! set): the importer records that RP ID with each credential. A key
//! handle `*` (a resident credential) is reported, not imported. Nothing
//! here is secret (public keys and key handles), but errors still name
//! only the line and what is wrong, like the other parsers'.

use crate::{err, hex_decode, ParseError, MAX_FILE};

/// Security keys one account may hold in twofold.
pub const MAX_KEYS: usize = 16;

/// A credential's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// Ed25519 (COSE -8).
    EdDsa,
}

impl Alg {
    /// Its name in pam-u2f's file and on twofold's wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "es256",
            Alg::EdDsa => "eddsa",
        }
    }
}

/// One credential of a user's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key handle (credential id).
    pub credential_id: Vec<u8>,
    /// Its algorithm.
    pub alg: Alg,
    /// The public key: ES256 `x ‖ y` (64 bytes), Ed25519 (32 bytes).
    pub public: Vec<u8>,
    /// Written by pamu2fcfg 1.0.8 or earlier: pam-u2f asserts it for its
    /// `appid`, not its `origin`.
    pub old_format: bool,
    /// pam-u2f's options for it (`+presence+pin`, …), as written.
    pub options: String,
}

/// One user's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The account.
    pub user: String,
    /// The credentials to import (resident and RS256 ones left out).
    pub keys: Vec<Key>,
    /// What was left out or changes meaning, one line each, for the dry run.
    pub notes: Vec<String>,
    /// The line.
    pub line: usize,
}

/// Parses the whole file: every user's line, or an error at the first bad
/// one (and then nothing is imported).
pub fn parse(text: &str) -> Result<Vec<Entry>, ParseError> {
    if text.len() > MAX_FILE {
        return Err(err(0, format!("larger than {MAX_FILE} bytes")));
    }
    if text.trim_start().starts_with("-----BEGIN") {
        return Err(err(
            1,
            "an OpenSSH key file (pam-u2f's sshformat) is not a u2f_keys file",
        ));
    }
    let mut out: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let user = fields.next().unwrap_or_default();
        if user.is_empty()
            || user.len() > 256
            || user.contains(['/', ','])
            || user.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(
                n,
                "expected USER:KEYHANDLE,PUBLICKEY[,COSETYPE,OPTIONS]:...",
            ));
        }
        if out.iter().any(|e| e.user == user) {
            return Err(err(
                n,
                format!("{user:?} appears twice (pam-u2f reads only the last of the lines)"),
            ));
        }
        let mut entry = Entry {
            user: user.to_owned(),
            keys: Vec::new(),
            notes: Vec::new(),
            line: n,
        };
        let mut count = 0;
        for (j, cred) in fields.enumerate() {
            count += 1;
            credential(n, j + 1, cred, &mut entry)?;
        }
        if count == 0 {
            return Err(err(n, format!("{user:?} has no credential")));
        }
        if entry.keys.len() > MAX_KEYS {
            return Err(err(
                n,
                format!("{user:?} has more than {MAX_KEYS} keys, twofold's most"),
            ));
        }
        let mut ids: Vec<&[u8]> = entry.keys.iter().map(|k| &k.credential_id[..]).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        if ids.len() != before {
            return Err(err(n, "the same key handle appears twice"));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Reads credential `j` (1-based) of line `n` into `entry`.
fn credential(n: usize, j: usize, cred: &str, entry: &mut Entry) -> Result<(), ParseError> {
    let parts: Vec<&str> = cred.split(',').collect();
    let bad = |what: &str| err(n, format!("credential {j}: {what}"));
    let (kh, pk, alg, options, old) = match parts[..] {
        [kh, pk] => (kh, pk, "es256", "+presence", true),
        [kh, pk, alg] => (kh, pk, alg, "", false),
        [kh, pk, alg, options] => (kh, pk, alg, options, false),
        _ => return Err(bad("expected KEYHANDLE,PUBLICKEY[,COSETYPE,OPTIONS]")),
    };
    if kh == "*" {
        entry.notes.push(format!(
            "credential {j}: a resident credential (key handle *) is not imported; enroll that key with `twofold enroll fido2`"
        ));
        return Ok(());
    }
    let alg = match alg.to_ascii_lowercase().as_str() {
        "es256" => Alg::Es256,
        "eddsa" => Alg::EdDsa,
        "rs256" => {
            entry.notes.push(format!(
                "credential {j}: RS256 keys are not imported (twofold verifies ES256 and EdDSA)"
            ));
            return Ok(());
        }
        _ => return Err(bad("the COSE type is not es256, eddsa or rs256")),
    };
    let credential_id = base64_decode(kh).ok_or_else(|| bad("the key handle is not base64"))?;
    if credential_id.is_empty() || credential_id.len() > 1023 {
        return Err(bad("the key handle is not 1 to 1023 bytes"));
    }
    let raw = if old {
        hex_decode(pk)
            .map(|b| b.to_vec())
            .ok_or_else(|| bad("the public key is not hexadecimal"))?
    } else {
        base64_decode(pk).ok_or_else(|| bad("the public key is not base64"))?
    };
    let public = match (alg, raw.len()) {
        (Alg::Es256, 65) if raw[0] == 4 => raw[1..].to_vec(),
        (Alg::Es256, 64) if !old => raw,
        (Alg::EdDsa, 32) => raw,
        (Alg::Es256, _) => return Err(bad("the public key is not an uncompressed P-256 point")),
        (Alg::EdDsa, _) => return Err(bad("the public key is not 32 bytes")),
    };
    let opts = options.to_ascii_lowercase();
    if opts.contains("+pin") || opts.contains("+verification") {
        entry.notes.push(format!(
            "credential {j}: pam-u2f asked for user verification ({options}); twofold asks for it on the services in [fido2] verify_services"
        ));
    }
    if !old && !opts.contains("+presence") {
        entry.notes.push(format!(
            "credential {j}: pam-u2f did not ask for a touch; twofold always does"
        ));
    }
    entry.keys.push(Key {
        credential_id,
        alg,
        public,
        old_format: old,
        options: options.to_owned(),
    });
    Ok(())
}

/// Base64, standard or web-safe alphabet, `=` padding optional (pamu2fcfg
/// wrote both); `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    let pad = text.len() - body.len();
    if pad > 2 || (pad > 0 && !text.len().is_multiple_of(4)) || body.len() % 4 == 1 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        acc = ((acc << 6) | value(c)?) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero (one encoding per byte string).
    if acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
    const Y: &str = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

    fn b64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= chunk.len() {
                    s.push(A[(v >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    #[test]
    fn base64_reads_both_alphabets_with_or_without_padding() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(b64(b"any bytes\x00\xff"), "YW55IGJ5dGVzAP8=");
        assert!(base64_decode("aGk==").is_none());
        assert!(base64_decode("aGl").is_none(), "non-zero leftover bits");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a!bc").is_none());
    }

    #[test]
    fn old_and_new_formats_and_several_keys_are_read() {
        let kh = [9u8; 48];
        let old_kh = b64(&kh)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        let new_pk = b64(&hex_decode(&format!("{X}{Y}")).unwrap());
        let ed = b64(&[5u8; 32]);
        let text = format!(
            "# pam-u2f\nalice:{old_kh},04{X}{Y}\n\nbob:{},{new_pk},es256,+presence+pin:{},{ed},eddsa,\n",
            b64(&[1u8; 64]),
            b64(&[2u8; 32]),
        );
        let e = parse(&text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].user.as_str(), e[0].line), ("alice", 2));
        let k = &e[0].keys[0];
        assert!(k.old_format && k.alg == Alg::Es256 && k.credential_id == kh);
        assert_eq!(k.public, hex_decode(&format!("{X}{Y}")).unwrap().to_vec());
        assert_eq!(e[1].keys.len(), 2);
        assert_eq!(e[1].keys[1].alg, Alg::EdDsa);
        assert!(!e[1].keys[0].old_format);
        assert_eq!(e[1].notes.len(), 2, "{:?}", e[1].notes);
        assert!(e[1].notes[0].contains("verify_services"));
        assert!(e[1].notes[1].contains("touch"));
    }

    #[test]
    fn resident_and_rs256_credentials_are_reported_not_imported() {
        let text = format!(
            "carol:*,{},es256,+presence:{},{},rs256,+presence\n",
            b64(&[1; 64]),
            b64(&[1; 16]),
            b64(&[3; 259])
        );
        let e = parse(&text).unwrap();
        assert!(e[0].keys.is_empty());
        assert_eq!(e[0].notes.len(), 2, "{:?}", e[0].notes);
    }

    #[test]
    fn malformed_lines_are_refused_by_their_number() {
        let good = format!(
            "alice:{},{},es256,+presence\n",
            b64(&[1; 16]),
            b64(&[2; 64])
        );
        let bad = |line: &str| {
            let e = parse(&format!("{good}{line}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{line}: {e}");
            e.message
        };
        assert!(bad("bob").contains("no credential"));
        assert!(bad("bob:").contains("COSETYPE"));
        assert!(bad("bob:!!!,AAAA,es256,").contains("key handle"));
        assert!(bad(&format!("bob:AAAA,{},es256,", b64(&[2; 63]))).contains("P-256"));
        assert!(bad(&format!("bob:AAAA,{},eddsa,", b64(&[2; 31]))).contains("32 bytes"));
        assert!(bad("bob:AAAA,04zz").contains("hexadecimal"));
        assert!(bad("bob:AAAA,AAAA,rsa,").contains("COSE type"));
        assert!(bad(good.trim_end()).contains("twice"));
        assert!(bad("bad user:AAAA,AAAA").contains("USER"));
        let e = parse("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n").unwrap_err();
        assert!(e.message.contains("sshformat"));
    }
}
