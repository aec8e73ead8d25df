//! authenticatorClientPIN (CTAP 2.0, PIN protocol one), the key's side:
//! getRetries, getKeyAgreement and getPinToken (and 2.1's
//! getPinUvAuthTokenUsingPinWithPermissions, answered alike), with the
//! PIN, its tries and the wrong-in-a-row block kept by the software key.
//! Protocol one: shared secret = SHA-256(ECDH P-256 x), AES-256-CBC with
//! a zero IV, pinAuth = LEFT(HMAC-SHA-256(pinToken, message), 16).

use crate::ctap2::status;
use aes::cipher::{block_padding::NoPadding, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use ciborium::value::Value;
use hmac::{Hmac, KeyInit, Mac};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use twofold_daemon::factors::fido2::device::DeviceError;
use twofold_daemon::factors::fido2::soft::SoftKey;

/// Subcommands (the `subCommand` parameter, 0x02).
pub mod sub {
    /// getRetries.
    pub const GET_RETRIES: u8 = 0x01;
    /// getKeyAgreement.
    pub const GET_KEY_AGREEMENT: u8 = 0x02;
    /// getPinToken.
    pub const GET_PIN_TOKEN: u8 = 0x05;
    /// getPinUvAuthTokenUsingPinWithPermissions (CTAP 2.1).
    pub const GET_TOKEN_WITH_PERMISSIONS: u8 = 0x09;
}

/// CTAP2 status codes of the PIN.
pub mod pin_status {
    /// A parameter is wrong (a PIN protocol other than one).
    pub const INVALID_PARAMETER: u8 = 0x02;
    /// The PIN is wrong.
    pub const PIN_INVALID: u8 = 0x31;
    /// No tries left.
    pub const PIN_BLOCKED: u8 = 0x32;
    /// pinAuth does not verify.
    pub const PIN_AUTH_INVALID: u8 = 0x33;
    /// Three wrong in a row: none taken until a power cycle.
    pub const PIN_AUTH_BLOCKED: u8 = 0x34;
    /// No PIN set.
    pub const PIN_NOT_SET: u8 = 0x35;
    /// A PIN is set, and no pinAuth was given.
    pub const PIN_REQUIRED: u8 = 0x36;
    /// An unknown subcommand.
    pub const INVALID_SUBCOMMAND: u8 = 0x3e;
}

/// A P-256 point's x and y.
pub type Xy = ([u8; 32], [u8; 32]);

/// An authenticatorClientPIN request.
#[derive(Debug)]
pub struct ClientPin {
    /// pinProtocol (0x01).
    pub protocol: i128,
    /// subCommand (0x02).
    pub sub: u8,
    /// The platform's keyAgreement (0x03): x and y.
    pub key_agreement: Option<Xy>,
    /// pinHashEnc (0x06).
    pub pin_hash_enc: Option<Vec<u8>>,
}

impl ClientPin {
    /// The subcommand's name, for the event log.
    pub fn name(&self) -> String {
        match self.sub {
            sub::GET_RETRIES => "clientPin getRetries".into(),
            sub::GET_KEY_AGREEMENT => "clientPin getKeyAgreement".into(),
            sub::GET_PIN_TOKEN => "clientPin getPinToken".into(),
            sub::GET_TOKEN_WITH_PERMISSIONS => "clientPin getPinUvAuthTokenUsingPin".into(),
            s => format!("clientPin sub=0x{s:02x}"),
        }
    }
}

/// The key's PIN side: its key-agreement key (new at each power-up and
/// after each wrong PIN) and its pinToken (new at each power-up).
#[derive(Debug)]
pub struct PinSide {
    agreement: Mutex<p256::SecretKey>,
    token: Mutex<[u8; 32]>,
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    // SAFETY: `b` is a valid, writable buffer of its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 32 {
        // A test tool: no entropy is no key.
        eprintln!("twofold-vkey: getrandom failed");
        std::process::exit(1);
    }
    b
}

fn new_agreement_key() -> p256::SecretKey {
    loop {
        if let Ok(k) = p256::SecretKey::from_slice(&random32()) {
            return k;
        }
    }
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// AES-256-CBC, zero IV, no padding (`data` a multiple of 16 bytes).
fn encrypt(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let mut buf = data.to_vec();
    let n = buf.len();
    cbc::Encryptor::<aes::Aes256>::new(&(*key).into(), &[0u8; 16].into())
        .encrypt_padded::<NoPadding>(&mut buf, n)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn decrypt(key: &[u8; 32], data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return None;
    }
    let mut buf = data.to_vec();
    cbc::Decryptor::<aes::Aes256>::new(&(*key).into(), &[0u8; 16].into())
        .decrypt_padded::<NoPadding>(&mut buf)
        .ok()
        .map(<[u8]>::to_vec)
}

impl Default for PinSide {
    fn default() -> Self {
        PinSide {
            agreement: Mutex::new(new_agreement_key()),
            token: Mutex::new(random32()),
        }
    }
}

impl PinSide {
    fn agreement(&self) -> std::sync::MutexGuard<'_, p256::SecretKey> {
        self.agreement.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn token(&self) -> [u8; 32] {
        *self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// pinAuth over `cdh` made with the key's pinToken, as a platform
    /// holding it computes it (for tests).
    #[cfg(test)]
    pub fn pin_auth_for(&self, cdh: &[u8; 32]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.token()).unwrap();
        mac.update(cdh);
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// A power cycle: a new key-agreement key and a new pinToken.
    pub fn power_cycle(&self) {
        *self.agreement() = new_agreement_key();
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = random32();
    }

    /// The key-agreement public key as COSE (ECDH-ES+HKDF-256, P-256).
    fn public_cose(&self) -> Value {
        let point = self.agreement().public_key().to_sec1_point(false);
        let b = point.as_bytes();
        Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-25)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(b[1..33].to_vec())),
            (int(-3), Value::Bytes(b[33..65].to_vec())),
        ])
    }

    /// SHA-256 of the x coordinate of ECDH(our key, the platform's).
    fn shared(&self, x: &[u8; 32], y: &[u8; 32]) -> Option<[u8; 32]> {
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        let theirs = p256::PublicKey::from_sec1_bytes(&sec1).ok()?;
        let point = (theirs.to_projective() * *self.agreement().to_nonzero_scalar()).to_affine();
        Some(Sha256::digest(point.x()).into())
    }

    /// Answers an authenticatorClientPIN request; the event says how it went.
    pub fn answer(&self, key: &SoftKey, req: &ClientPin) -> (Vec<u8>, String) {
        if req.protocol != 1 {
            return (
                vec![pin_status::INVALID_PARAMETER],
                "pin protocol refused".into(),
            );
        }
        match req.sub {
            sub::GET_RETRIES => (
                ok(Value::Map(vec![(int(3), int(key.pin_retries().into()))])),
                format!("retries={}", key.pin_retries()),
            ),
            sub::GET_KEY_AGREEMENT => (
                ok(Value::Map(vec![(int(1), self.public_cose())])),
                "key agreement sent".into(),
            ),
            sub::GET_PIN_TOKEN | sub::GET_TOKEN_WITH_PERMISSIONS => self.token_for(key, req),
            _ => (vec![pin_status::INVALID_SUBCOMMAND], "refused".into()),
        }
    }

    fn token_for(&self, key: &SoftKey, req: &ClientPin) -> (Vec<u8>, String) {
        let (Some((x, y)), Some(enc)) = (&req.key_agreement, &req.pin_hash_enc) else {
            return (vec![status::MISSING_PARAMETER], "missing parameter".into());
        };
        if !key.pin_set() {
            return (vec![pin_status::PIN_NOT_SET], "no PIN set".into());
        }
        let Some(shared) = self.shared(x, y) else {
            return (vec![status::INVALID_CBOR], "bad key agreement".into());
        };
        let hash = decrypt(&shared, enc).unwrap_or_default();
        match key.check_pin_hash(&hash) {
            Ok(()) => (
                ok(Value::Map(vec![(
                    int(2),
                    Value::Bytes(encrypt(&shared, &self.token())),
                )])),
                "pin ok".into(),
            ),
            Err(e) => {
                // A wrong PIN: a new key agreement, as CTAP asks.
                *self.agreement() = new_agreement_key();
                let code = match e {
                    DeviceError::WrongPin { .. } => pin_status::PIN_INVALID,
                    DeviceError::PinBlocked => pin_status::PIN_BLOCKED,
                    DeviceError::PinAuthBlocked => pin_status::PIN_AUTH_BLOCKED,
                    _ => status::OTHER,
                };
                (
                    vec![code],
                    format!(
                        "pin refused status=0x{code:02x} retries={}",
                        key.pin_retries()
                    ),
                )
            }
        }
    }

    /// Whether `pin_auth` is LEFT(HMAC-SHA-256(pinToken, cdh), 16)
    /// (compared in constant time).
    pub fn verifies(&self, pin_auth: &[u8], client_data_hash: &[u8; 32]) -> bool {
        if pin_auth.len() != 16 {
            return false;
        }
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.token()) else {
            return false;
        };
        mac.update(client_data_hash);
        mac.verify_truncated_left(pin_auth).is_ok()
    }
}

fn ok(v: Value) -> Vec<u8> {
    let mut out = vec![status::OK];
    if ciborium::ser::into_writer(&v, &mut out).is_err() {
        return vec![status::OTHER];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_daemon::factors::fido2::soft::Alg;

    /// The platform's side of protocol one, as ctap-hid-fido2 computes it.
    fn platform(side: &PinSide) -> (([u8; 32], [u8; 32]), [u8; 32]) {
        let mine = new_agreement_key();
        let p = mine.public_key().to_sec1_point(false);
        let b = p.as_bytes();
        let (x, y): ([u8; 32], [u8; 32]) =
            (b[1..33].try_into().unwrap(), b[33..65].try_into().unwrap());
        let their = side.agreement().public_key();
        let point = (their.to_projective() * *mine.to_nonzero_scalar()).to_affine();
        ((x, y), Sha256::digest(point.x()).into())
    }

    fn token_req(side: &PinSide, pin: &str) -> (ClientPin, [u8; 32]) {
        let (ka, shared) = platform(side);
        let hash = Sha256::digest(pin.as_bytes());
        (
            ClientPin {
                protocol: 1,
                sub: sub::GET_PIN_TOKEN,
                key_agreement: Some(ka),
                pin_hash_enc: Some(encrypt(&shared, &hash[..16])),
            },
            shared,
        )
    }

    #[test]
    fn the_right_pin_gives_the_token_that_makes_a_verifying_pin_auth() {
        let side = PinSide::default();
        let key = SoftKey::with_pin("k", Alg::Es256, "482916");
        let (req, shared) = token_req(&side, "482916");
        let (resp, _) = side.answer(&key, &req);
        assert_eq!(resp[0], status::OK);
        let Value::Map(m) = ciborium::de::from_reader::<Value, _>(&resp[1..]).unwrap() else {
            panic!()
        };
        let Value::Bytes(enc) = &m[0].1 else { panic!() };
        let token = decrypt(&shared, enc).unwrap();
        let cdh = [7u8; 32];
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&token).unwrap();
        mac.update(&cdh);
        let tag = mac.finalize().into_bytes();
        assert!(side.verifies(&tag[..16], &cdh));
        assert!(!side.verifies(&tag[..16], &[8u8; 32]));
        assert!(!side.verifies(&tag[..15], &cdh));
    }

    #[test]
    fn wrong_pins_cost_tries_then_block_in_a_row() {
        let side = PinSide::default();
        let key = SoftKey::with_pin("k", Alg::Es256, "482916");
        let (req, _) = token_req(&side, "000000");
        assert_eq!(side.answer(&key, &req).0, vec![pin_status::PIN_INVALID]);
        assert_eq!(key.pin_retries(), 7);
        let (req, _) = token_req(&side, "000000");
        assert_eq!(side.answer(&key, &req).0, vec![pin_status::PIN_INVALID]);
        let (req, _) = token_req(&side, "000000");
        assert_eq!(
            side.answer(&key, &req).0,
            vec![pin_status::PIN_AUTH_BLOCKED]
        );
        let (req, _) = token_req(&side, "482916");
        assert_eq!(
            side.answer(&key, &req).0,
            vec![pin_status::PIN_AUTH_BLOCKED]
        );
        key.set_pin_retries(0);
        assert_eq!(side.answer(&key, &req).0, vec![pin_status::PIN_BLOCKED]);
    }
}
