//! A security key's credential imported from another module's file
//! (pam-u2f's `u2f_keys`, read by `twofold admin import u2f-keys`):
//! checked here and turned into the credential row that logins then use
//! like one enrolled with `twofold enroll fido2` — with the RP ID the
//! other module asserted it for, so the key's signatures verify.

use super::parse::CoseKey;
use super::{params, refused, valid_name, Fido2, MAX_KEYS};
use crate::factors::{random_row_id, Ctx};
use crate::failure::Failure;
use crate::store::NewCredential;
use twofold_proto::{ErrorKind, Method};

/// What the CLI read of one credential.
#[derive(Debug, Clone, Copy)]
pub struct ImportedKey<'a> {
    /// A name for it; `None`: the first free `u2f-N`.
    pub name: Option<&'a str>,
    /// The RP ID it was made for.
    pub rp_id: &'a str,
    /// The credential id, hex.
    pub credential_id_hex: &'a str,
    /// `es256` or `eddsa`.
    pub algorithm: &'a str,
    /// ES256 `x ‖ y` or the Ed25519 key, hex.
    pub public_key_hex: &'a str,
}

fn bad(m: &str) -> Failure {
    refused(ErrorKind::BadRequest, m)
}

/// The public key, checked to be a key of its algorithm.
fn public_key(algorithm: &str, hex: &str) -> Result<CoseKey, Failure> {
    let raw = super::unhex(hex).ok_or_else(|| bad("the public key is not hexadecimal"))?;
    match algorithm {
        "es256" => {
            let (Some(x), Some(y)) = (raw.get(..32), raw.get(32..)) else {
                return Err(bad("an ES256 public key is 64 bytes (x, y)"));
            };
            let mut point = vec![4u8];
            point.extend_from_slice(&raw);
            if raw.len() != 64 || p256::PublicKey::from_sec1_bytes(&point).is_err() {
                return Err(bad("the ES256 public key is not a point of P-256"));
            }
            Ok(CoseKey::Es256 {
                x: x.try_into().map_err(|_| bad("x"))?,
                y: y.try_into().map_err(|_| bad("y"))?,
            })
        }
        "eddsa" => {
            let x: [u8; 32] = raw
                .try_into()
                .map_err(|_| bad("an Ed25519 public key is 32 bytes"))?;
            if ed25519_dalek::VerifyingKey::from_bytes(&x).is_err() {
                return Err(bad("the Ed25519 public key is not a curve point"));
            }
            Ok(CoseKey::Ed25519 { x })
        }
        _ => Err(bad("the algorithm is es256 or eddsa")),
    }
}

/// The credential row to store for `user` (pending until confirmed with
/// its audit row) and the name it gets; refused when the account holds
/// that key already or [`MAX_KEYS`] keys.
pub fn imported(
    cx: &Ctx<'_>,
    user: &str,
    key: &ImportedKey<'_>,
) -> Result<(NewCredential, String), Failure> {
    let rp_ok =
        (1..=255).contains(&key.rp_id.len()) && key.rp_id.bytes().all(|b| b.is_ascii_graphic());
    if !rp_ok {
        return Err(bad(
            "the RP ID is 1 to 255 printable characters without spaces",
        ));
    }
    let credential_id = super::unhex(key.credential_id_hex)
        .filter(|id| (1..=1023).contains(&id.len()))
        .ok_or_else(|| bad("the credential id is not 1 to 1023 bytes of hexadecimal"))?;
    let cose = public_key(key.algorithm, key.public_key_hex)?;
    let creds = cx.store.credentials(user)?;
    let mine = Fido2::mine(&creds, true);
    if mine.iter().any(|c| c.credential_id == credential_id) {
        return Err(refused(
            ErrorKind::Conflict,
            format!("{user} already has this security key; nothing imported"),
        ));
    }
    if mine.len() >= MAX_KEYS {
        return Err(refused(
            ErrorKind::Conflict,
            format!("{user} already has {MAX_KEYS} security keys"),
        ));
    }
    let taken = |n: &str| {
        creds
            .iter()
            .any(|c| c.method == Method::FIDO2 && c.confirmed_at.is_some() && c.label == n)
    };
    let name = match key.name {
        Some(n) => {
            valid_name(n)?;
            if taken(n) {
                return Err(refused(
                    ErrorKind::Conflict,
                    format!("{user} already has a security key named {n:?}"),
                ));
            }
            n.to_owned()
        }
        None => (1..)
            .map(|i| format!("u2f-{i}"))
            .find(|n| !taken(n))
            .unwrap_or_default(),
    };
    let new = NewCredential {
        id: random_row_id()?,
        method: Method::FIDO2,
        label: name.clone(),
        sealed: Vec::new(),
        nonce: Vec::new(),
        params: params(key.rp_id, &credential_id, &cose),
        single: false,
    };
    Ok((new, name))
}
