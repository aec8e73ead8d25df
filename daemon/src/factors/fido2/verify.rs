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
