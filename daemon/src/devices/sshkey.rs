//! SSH public keys from `SSH_AUTH_INFO_0` (OpenSSH ≥ 7.8 puts one line per
//! method that succeeded before PAM: `publickey ssh-ed25519 AAAA…`) and
//! their fingerprints in OpenSSH's form (`SHA256:` + unpadded base64 of
//! the SHA-256 of the key blob), as `ssh-keygen -lf` prints them.

use base64ct::{Base64, Base64Unpadded, Encoding};
use sha2::{Digest, Sha256};

/// Longest key-lines text accepted (several RSA keys fit easily).
pub const MAX_INFO: usize = 16 * 1024;
/// Most keys taken from one login.
pub const MAX_KEYS: usize = 8;

/// `type SHA256:…` of each `publickey` line of `info`; other lines
/// (keyboard-interactive, gssapi) are skipped. `Err` (why, for the log)
/// when a `publickey` line is malformed or there are too many: nothing
/// is taken then.
pub fn fingerprints(info: &str) -> Result<Vec<String>, String> {
    if info.len() > MAX_INFO {
        return Err(format!("SSH key lines longer than {MAX_INFO} bytes"));
    }
    let mut keys = Vec::new();
    for line in info.lines() {
        let mut f = line.split_ascii_whitespace();
        if f.next() != Some("publickey") {
            continue;
        }
        let (Some(kind), Some(blob)) = (f.next(), f.next()) else {
            return Err("a publickey line without a key type and key".into());
        };
        let fp = fingerprint(kind, blob)?;
        if !keys.contains(&fp) {
            keys.push(fp);
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} SSH keys"));
        }
    }
    Ok(keys)
}

/// `kind SHA256:…` of one key: its blob must be base64 and name `kind`
/// as its own type (the wire form's first string).
pub fn fingerprint(kind: &str, blob_b64: &str) -> Result<String, String> {
    if kind.is_empty() || kind.len() > 64 || !kind.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an SSH key type that is not a name".into());
    }
    let blob = Base64::decode_vec(blob_b64)
        .or_else(|_| Base64Unpadded::decode_vec(blob_b64))
        .map_err(|_| "an SSH key that is not base64".to_owned())?;
    let named = blob
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if named != Some(kind.as_bytes()) || blob.len() <= 4 + kind.len() {
        return Err(format!("an SSH key whose blob is not of type {kind}"));
    }
    let digest = Sha256::digest(&blob);
    Ok(format!(
        "{kind} SHA256:{}",
        Base64Unpadded::encode_string(&digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key and the fingerprint `ssh-keygen -lf` printed for it.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEHocKj972+txk2ixzyyOXmD9uQ1vysGZ6hoKiDlejyT";

    #[test]
    fn publickey_lines_give_openssh_fingerprints() {
        let info = format!("publickey ssh-ed25519 {KEY}\nkeyboard-interactive/pam\n");
        let fps = fingerprints(&info).unwrap();
        assert_eq!(fps.len(), 1);
        // `ssh-keygen -lf` of this key.
        assert_eq!(
            fps,
            ["ssh-ed25519 SHA256:AT1Jo4qwSKEWr/PYbuT6gAP0aNm9EPDOKRPv0MF8mPw"]
        );
        assert_eq!(
            fingerprints("keyboard-interactive/pam\n").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(fingerprints("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn malformed_key_lines_are_refused() {
        for bad in [
            "publickey ssh-ed25519".to_owned(),
            "publickey ssh-ed25519 !!!!".to_owned(),
            format!("publickey ssh-rsa {KEY}"),
            format!("publickey ssh-ed25519 {}", &KEY[..20]),
            format!("publickey ssh-ed25519 {}", &KEY[..19]),
            "publickey ".to_owned() + &"x".repeat(MAX_INFO),
        ] {
            assert!(fingerprints(&bad).is_err(), "{bad:.60}");
        }
    }
}
