//! The daemon's own check of an assertion, from the raw bytes, whatever
//! produced them: the signature over authenticatorData ‖ clientDataHash
//! with the stored key, the RP ID stored with the credential, presence,
//! verification when asked, and the signature counter.

use super::parse::{self, CoseKey};
use sha2::{Digest, Sha256};

/// Why an assertion was refused (for the log and the audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// authenticatorData did not parse.
    Malformed,
    /// Signed for another relying party.
    RpId,
    /// The user did not touch the key.
    NotPresent,
    /// The policy asks for a PIN/UV and the key did not verify the user.
    NotVerified,
    /// The signature does not verify with the stored key.
    Signature,
    /// The counter did not grow: a replay, or a cloned key.
    Counter,
}

impl Refused {
    /// The reason, as the log and the audit row say it.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed authenticator data",
            Refused::RpId => "wrong rp id",
            Refused::NotPresent => "user not present",
            Refused::NotVerified => "user not verified",
            Refused::Signature => "bad signature",
            Refused::Counter => "possible cloned key (signature counter did not grow)",
        }
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// What a stored credential says an assertion must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The RP ID stored with the credential.
    pub rp_id: &'a str,
    /// Its public key.
    pub key: &'a CoseKey,
    /// The last counter accepted (`None` before the first).
    pub counter: Option<u64>,
    /// Whether user verification is required.
    pub uv: bool,
    /// The clientDataHash this login's challenge makes.
    pub client_data_hash: &'a [u8; 32],
}

/// Checks an assertion; the new counter value on success.
pub fn assertion(e: &Expect<'_>, auth_data: &[u8], signature: &[u8]) -> Result<u64, Refused> {
    let ad = parse::auth_data(auth_data).map_err(|_| Refused::Malformed)?;
    // The signature first: nothing of unsigned bytes is believed.
    let mut signed = Vec::with_capacity(auth_data.len() + 32);
    signed.extend_from_slice(auth_data);
    signed.extend_from_slice(e.client_data_hash);
    if !signature_ok(e.key, &signed, signature) {
        return Err(Refused::Signature);
    }
    if ad.rp_id_hash != sha256(e.rp_id.as_bytes()) {
        return Err(Refused::RpId);
    }
    if !ad.user_present() {
        return Err(Refused::NotPresent);
    }
    if e.uv && !ad.user_verified() {
        return Err(Refused::NotVerified);
    }
    let stored = e.counter.unwrap_or(0);
    let got = u64::from(ad.sign_count);
    // A key without a counter says 0 every time; any other must grow.
    if !(got > stored || (got == 0 && stored == 0)) {
        return Err(Refused::Counter);
    }
    Ok(got)
}

/// Whether `sig` is `key`'s signature of `msg` (ES256: DER; EdDSA: 64 bytes).
pub fn signature_ok(key: &CoseKey, msg: &[u8], sig: &[u8]) -> bool {
    match key {
        CoseKey::Es256 { x, y } => {
            use p256::ecdsa::signature::Verifier;
            let mut sec1 = [0u8; 65];
            sec1[0] = 4;
            sec1[1..33].copy_from_slice(x);
            sec1[33..].copy_from_slice(y);
            let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else {
                return false;
            };
            let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
                return false;
            };
            vk.verify(msg, &sig).is_ok()
        }
        CoseKey::Ed25519 { x } => {
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(x) else {
                return false;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                return false;
            };
            vk.verify_strict(msg, &sig).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::fido2::parse::UP;

    const RP: &str = "pam://host";

    /// Makes a key from a secret and signs a message with it.
    type Sign = fn(&[u8; 32], &[u8]) -> (CoseKey, Vec<u8>);

    fn auth_data(flags: u8, count: u32) -> Vec<u8> {
        let mut ad = sha256(RP.as_bytes()).to_vec();
        ad.push(flags);
        ad.extend_from_slice(&count.to_be_bytes());
        ad
    }

    fn es256(secret: &[u8; 32], msg: &[u8]) -> (CoseKey, Vec<u8>) {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::from_slice(secret).unwrap();
        let point = sk.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        let key = CoseKey::Es256 {
            x: b[1..33].try_into().unwrap(),
            y: b[33..65].try_into().unwrap(),
        };
        let sig: p256::ecdsa::Signature = sk.sign(msg);
        (key, sig.to_der().as_bytes().to_vec())
    }

    fn ed25519(secret: &[u8; 32], msg: &[u8]) -> (CoseKey, Vec<u8>) {
        use ed25519_dalek::Signer;
        let sk = ed25519_dalek::SigningKey::from_bytes(secret);
        let key = CoseKey::Ed25519 {
            x: sk.verifying_key().to_bytes(),
        };
        (key, sk.sign(msg).to_bytes().to_vec())
    }

    fn check(sign: Sign, flags: u8, count: u32, stored: Option<u64>) -> Result<u64, Refused> {
        let cdh = sha256(b"client data");
        let ad = auth_data(flags, count);
        let mut msg = ad.clone();
        msg.extend_from_slice(&cdh);
        let (key, sig) = sign(&[7; 32], &msg);
        let e = Expect {
            rp_id: RP,
            key: &key,
            counter: stored,
            uv: false,
            client_data_hash: &cdh,
        };
        assertion(&e, &ad, &sig)
    }

    #[test]
    fn es256_and_ed25519_signatures_verify_and_counters_must_grow() {
        for sign in [es256 as Sign, ed25519] {
            assert_eq!(check(sign, UP, 5, Some(4)), Ok(5));
            assert_eq!(check(sign, UP, 5, Some(5)), Err(Refused::Counter));
            assert_eq!(check(sign, UP, 3, Some(5)), Err(Refused::Counter));
            // A key without a counter: 0 after 0 (or nothing) is accepted.
            assert_eq!(check(sign, UP, 0, Some(0)), Ok(0));
            assert_eq!(check(sign, UP, 0, None), Ok(0));
            assert_eq!(check(sign, 0, 6, Some(5)), Err(Refused::NotPresent));
        }
    }

    #[test]
    fn a_signature_over_other_bytes_is_refused_before_anything_else() {
        let cdh = sha256(b"client data");
        let ad = auth_data(UP, 9);
        let (key, sig) = ed25519(&[7; 32], b"something else");
        let e = Expect {
            rp_id: "pam://elsewhere",
            key: &key,
            counter: None,
            uv: true,
            client_data_hash: &cdh,
        };
        assert_eq!(assertion(&e, &ad, &sig), Err(Refused::Signature));
        assert_eq!(assertion(&e, &ad[..36], &sig), Err(Refused::Malformed));
    }
}
