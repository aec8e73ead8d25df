//! A software authenticator for tests (cargo feature `soft-fido2`, which
//! release builds do not enable): real CTAP2 authenticatorData, real
//! ES256 and Ed25519 signatures, a signature counter, a PIN with a retry
//! counter (8 tries, blocked at 0; 3 wrong in a row need a replug), one
//! operation at a time ("busy") — and knobs that make it misbehave the
//! ways a login must refuse ([`Fault`]).

use super::device::{
    Assertion, Attestation, Authenticator, Device, DeviceError, GetAssertion, Info, MakeCredential,
    Stop,
};
use super::parse::{CoseKey, AT, UP, UV};
use super::verify::sha256;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use twofold_proto::Secret;

/// PIN tries a key allows before it blocks its PIN.
pub const PIN_TRIES: u32 = 8;
/// Wrong PINs in a row after which a key takes none until replugged.
const PIN_IN_A_ROW: u32 = 3;

/// How the user is verified for one operation.
#[derive(Debug, Clone, Copy)]
pub enum Uv<'a> {
    /// Not (presence only; or the key's built-in UV when asked for).
    No,
    /// With this PIN, checked now (a wrong one costs a try).
    Pin(&'a Secret),
    /// Already: the caller checked a pinUvAuthParam made with the key's
    /// pinToken (the virtual HID key of guest/qemu).
    Token,
}

impl<'a> Uv<'a> {
    fn of(pin: Option<&'a Secret>) -> Uv<'a> {
        pin.map_or(Uv::No, Uv::Pin)
    }
}

/// The algorithm a software key makes credentials with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256.
    Es256,
    /// Ed25519.
    Ed25519,
}

/// How a software key misbehaves at its next assertions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// It behaves.
    #[default]
    None,
    /// Signs for another RP ID.
    WrongRpId,
    /// Flips these bits of the flags after signing.
    FlipFlags(u8),
    /// Changes a byte of the counter after signing.
    TamperAuthData,
    /// Signs with a key that is not the credential's.
    OtherKey,
    /// Does not advance its counter.
    CounterStuck,
    /// Never sets the UP flag.
    NoPresence,
    /// Never sets the UV flag.
    NoVerification,
    /// Returns its previous assertion again.
    Replay,
    /// Signs the client data of its previous request (another login's).
    ForeignChallenge,
    /// Answers with a credential id nobody enrolled.
    UnknownCredential,
    /// Is never touched: waits until the deadline or a cancel.
    NeverTouched,
}

#[derive(Debug)]
struct Cred {
    id: Vec<u8>,
    rp_id: String,
    secret: [u8; 32],
}

#[derive(Debug, Default)]
struct State {
    creds: Vec<Cred>,
    counter: u32,
    fault: Fault,
    last: Option<Assertion>,
    last_client_data: Option<[u8; 32]>,
    touches: u32,
    cancels: u32,
    stopped_by_client: u32,
    pin: Option<Secret>,
    pin_retries: u32,
    pin_wrong_in_a_row: u32,
    /// An operation waits for a touch.
    busy: bool,
}

/// One software security key.
#[derive(Debug)]
pub struct SoftKey {
    name: String,
    alg: Alg,
    uv: bool,
    state: Mutex<State>,
}

impl SoftKey {
    /// A key called `name`, making `alg` credentials; `uv`: it can verify
    /// the user (a built-in PIN or fingerprint).
    pub fn new(name: &str, alg: Alg, uv: bool) -> Arc<SoftKey> {
        Arc::new(SoftKey {
            name: name.to_owned(),
            alg,
            uv,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key with a PIN set (and no built-in user verification).
    pub fn with_pin(name: &str, alg: Alg, pin: &str) -> Arc<SoftKey> {
        let k = SoftKey::new(name, alg, false);
        {
            let mut st = k.state();
            st.pin = Some(Secret::from(pin));
            st.pin_retries = PIN_TRIES;
        }
        k
    }

    /// Whether an operation is waiting for its touch.
    pub fn busy(&self) -> bool {
        self.state().busy
    }

    /// Sets the PIN tries left (0: blocked).
    pub fn set_pin_retries(&self, n: u32) {
        self.state().pin_retries = n;
    }

    /// The PIN tries left.
    pub fn pin_retries(&self) -> u32 {
        self.state().pin_retries
    }

    /// Whether a PIN is set.
    pub fn pin_set(&self) -> bool {
        self.state().pin.is_some()
    }

    /// Checks a PIN given as LEFT(SHA-256(PIN), 16), as CTAP's
    /// clientPIN carries it (pinHashEnc, decrypted): compared in constant
    /// time, and a wrong one costs a try as [`Authenticator::check_pin`]'s.
    pub fn check_pin_hash(&self, hash: &[u8]) -> Result<(), DeviceError> {
        use subtle::ConstantTimeEq;
        let mut st = idle(self)?;
        pin_check_by(&mut st, |set| {
            let h = sha256(set.expose().as_bytes());
            bool::from(h[..16].ct_eq(hash))
        })
    }

    /// Holds a credential made elsewhere (e.g. one imported from pam-u2f's
    /// file) with private key `secret`; returns its public key, `None`
    /// for a secret that is no key of its algorithm.
    pub fn hold(&self, rp_id: &str, id: &[u8], secret: [u8; 32]) -> Option<CoseKey> {
        let public = self.public(&secret)?;
        self.state().creds.push(Cred {
            id: id.to_vec(),
            rp_id: rp_id.to_owned(),
            secret,
        });
        Some(public)
    }

    /// Makes it misbehave from now on.
    pub fn set_fault(&self, f: Fault) {
        self.state().fault = f;
    }

    /// Touches it took (signatures made with presence).
    pub fn touches(&self) -> u32 {
        self.state().touches
    }

    /// Operations that ended at the deadline (cancelled by the daemon).
    pub fn cancels(&self) -> u32 {
        self.state().cancels
    }

    /// Operations stopped because the PAM client went away.
    pub fn stopped_by_client(&self) -> u32 {
        self.state().stopped_by_client
    }

    /// Sets its signature counter (a clone would be behind).
    pub fn set_counter(&self, n: u32) {
        self.state().counter = n;
    }

    fn sign(&self, secret: &[u8; 32], msg: &[u8]) -> Vec<u8> {
        match self.alg {
            Alg::Es256 => {
                use p256::ecdsa::signature::Signer;
                let Ok(sk) = p256::ecdsa::SigningKey::from_slice(secret) else {
                    return Vec::new();
                };
                let sig: p256::ecdsa::Signature = sk.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
            Alg::Ed25519 => {
                use ed25519_dalek::Signer;
                ed25519_dalek::SigningKey::from_bytes(secret)
                    .sign(msg)
                    .to_bytes()
                    .to_vec()
            }
        }
    }

    fn public(&self, secret: &[u8; 32]) -> Option<CoseKey> {
        match self.alg {
            Alg::Es256 => {
                let sk = p256::ecdsa::SigningKey::from_slice(secret).ok()?;
                let point = sk.verifying_key().to_sec1_point(false);
                let b = point.as_bytes();
                Some(CoseKey::Es256 {
                    x: b.get(1..33)?.try_into().ok()?,
                    y: b.get(33..65)?.try_into().ok()?,
                })
            }
            Alg::Ed25519 => Some(CoseKey::Ed25519 {
                x: ed25519_dalek::SigningKey::from_bytes(secret)
                    .verifying_key()
                    .to_bytes(),
            }),
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // A test key: a failing getrandom gives a fixed key, never a panic.
    let _ = crate::crypto::keys::random_bytes(&mut b);
    b
}

/// A set of software keys, some plugged in.
#[derive(Debug, Default)]
pub struct SoftAuthenticator {
    plugged: Mutex<Vec<Arc<SoftKey>>>,
}

impl SoftAuthenticator {
    /// No key plugged in.
    pub fn new() -> Arc<SoftAuthenticator> {
        Arc::new(SoftAuthenticator::default())
    }

    /// Plugs `key` in (a replug lets a PIN be tried again).
    pub fn plug(&self, key: &Arc<SoftKey>) {
        key.state().pin_wrong_in_a_row = 0;
        self.keys().push(Arc::clone(key));
    }

    /// Unplugs the key called `name`.
    pub fn unplug(&self, name: &str) {
        self.keys().retain(|k| k.name != name);
    }

    fn keys(&self) -> MutexGuard<'_, Vec<Arc<SoftKey>>> {
        self.plugged.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, dev: &Device) -> Result<Arc<SoftKey>, DeviceError> {
        self.keys()
            .iter()
            .find(|k| k.name == dev.path)
            .cloned()
            .ok_or_else(|| DeviceError::Failed("unplugged".into()))
    }
}

/// Waits like a key nobody touches, busy meanwhile.
fn untouched(key: &SoftKey, deadline: Instant, stop: &dyn Stop) -> DeviceError {
    key.state().busy = true;
    let why = loop {
        if Instant::now() >= deadline {
            key.state().cancels += 1;
            break DeviceError::Timeout;
        }
        if stop.stop() {
            key.state().stopped_by_client += 1;
            break DeviceError::Cancelled;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    key.state().busy = false;
    why
}

/// The key's state, unless another operation holds it.
fn idle(key: &SoftKey) -> Result<MutexGuard<'_, State>, DeviceError> {
    let st = key.state();
    if st.busy {
        return Err(DeviceError::Busy);
    }
    Ok(st)
}

/// Checks `pin` as a key does: each wrong one costs a try.
fn pin_check(st: &mut State, pin: &Secret) -> Result<(), DeviceError> {
    pin_check_by(st, |set| set.same_as(pin.expose().as_bytes()))
}

/// [`pin_check`] with `same` telling whether the PIN given is the one set.
fn pin_check_by(st: &mut State, same: impl FnOnce(&Secret) -> bool) -> Result<(), DeviceError> {
    let Some(set) = &st.pin else {
        return Err(DeviceError::Failed("CTAP2_ERR_PIN_NOT_SET".into()));
    };
    if st.pin_retries == 0 {
        return Err(DeviceError::PinBlocked);
    }
    if st.pin_wrong_in_a_row >= PIN_IN_A_ROW {
        return Err(DeviceError::PinAuthBlocked);
    }
    if same(set) {
        st.pin_retries = PIN_TRIES;
        st.pin_wrong_in_a_row = 0;
        return Ok(());
    }
    st.pin_retries -= 1;
    st.pin_wrong_in_a_row += 1;
    Err(if st.pin_retries == 0 {
        DeviceError::PinBlocked
    } else if st.pin_wrong_in_a_row >= PIN_IN_A_ROW {
        DeviceError::PinAuthBlocked
    } else {
        DeviceError::WrongPin {
            left: st.pin_retries,
        }
    })
}

impl Authenticator for SoftAuthenticator {
    fn enumerate(&self) -> Result<Vec<Device>, DeviceError> {
        Ok(self
            .keys()
            .iter()
            .map(|k| Device {
                path: k.name.clone(),
                product: format!("twofold software key {}", k.name),
            })
            .collect())
    }

    fn info(&self, dev: &Device) -> Result<Info, DeviceError> {
        let key = self.key(dev)?;
        let st = idle(&key)?;
        Ok(Info {
            versions: vec!["FIDO_2_0".into()],
            pin_set: st.pin.is_some(),
            uv: key.uv,
        })
    }

    fn pin_retries(&self, dev: &Device) -> Result<u32, DeviceError> {
        let key = self.key(dev)?;
        let st = idle(&key)?;
        Ok(st.pin_retries)
    }

    fn check_pin(&self, dev: &Device, pin: &Secret) -> Result<(), DeviceError> {
        let key = self.key(dev)?;
        let mut st = idle(&key)?;
        pin_check(&mut st, pin)
    }

    fn make_credential(
        &self,
        dev: &Device,
        req: &MakeCredential,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Attestation, DeviceError> {
        self.make_credential_uv(dev, req, Uv::of(pin), deadline, stop)
    }

    fn get_assertion(
        &self,
        dev: &Device,
        req: &GetAssertion,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Assertion, DeviceError> {
        self.get_assertion_hashed(
            dev,
            req,
            sha256(&req.client_data),
            Uv::of(pin),
            deadline,
            stop,
        )
    }

    fn cancel(&self, dev: &Device) {
        if let Ok(k) = self.key(dev) {
            k.state().cancels += 1;
        }
    }
}

impl SoftAuthenticator {
    /// [`Authenticator::make_credential`] with the user verified as `uv` says.
    pub fn make_credential_uv(
        &self,
        dev: &Device,
        req: &MakeCredential,
        uv: Uv<'_>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Attestation, DeviceError> {
        let key = self.key(dev)?;
        if idle(&key)?.fault == Fault::NeverTouched {
            return Err(untouched(&key, deadline, stop));
        }
        let mut st = idle(&key)?;
        // A key with a PIN registers nothing without it.
        let verified = match (uv, st.pin.is_some()) {
            (Uv::Pin(p), _) => {
                pin_check(&mut st, p)?;
                true
            }
            (Uv::Token, _) => true,
            (Uv::No, true) => return Err(DeviceError::Failed("CTAP2_ERR_PIN_REQUIRED".into())),
            (Uv::No, false) => false,
        };
        if st.creds.iter().any(|c| req.exclude.contains(&c.id)) {
            return Err(DeviceError::Failed("CTAP2_ERR_CREDENTIAL_EXCLUDED".into()));
        }
        let (secret, public) = loop {
            let s: [u8; 32] = random();
            if let Some(p) = key.public(&s) {
                break (s, p);
            }
        };
        let id = random::<16>().to_vec();
        st.counter += 1;
        st.touches += 1;
        let mut ad = sha256(req.rp_id.as_bytes()).to_vec();
        ad.push(if verified { UP | AT | UV } else { UP | AT });
        ad.extend_from_slice(&st.counter.to_be_bytes());
        ad.extend_from_slice(&[0x7f; 16]);
        ad.extend_from_slice(&(id.len() as u16).to_be_bytes());
        ad.extend_from_slice(&id);
        ad.extend_from_slice(&public.to_cbor());
        st.creds.push(Cred {
            id,
            rp_id: req.rp_id.clone(),
            secret,
        });
        Ok(Attestation { auth_data: ad })
    }

    /// [`Authenticator::get_assertion`] given the clientDataHash, which is
    /// all a key receives over CTAP (the virtual HID key of guest/qemu);
    /// `req.client_data` is not read.
    pub fn get_assertion_hashed(
        &self,
        dev: &Device,
        req: &GetAssertion,
        client_data_hash: [u8; 32],
        uv: Uv<'_>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Assertion, DeviceError> {
        let key = self.key(dev)?;
        let mut st = idle(&key)?;
        // pinUvAuthParam is checked first, as a key does.
        let verified = match uv {
            Uv::Pin(p) => {
                pin_check(&mut st, p)?;
                true
            }
            Uv::Token => true,
            Uv::No => req.uv && key.uv,
        };
        let Some(ci) = st
            .creds
            .iter()
            .position(|c| c.rp_id == req.rp_id && req.allow.contains(&c.id))
        else {
            return Err(DeviceError::NoCredential);
        };
        if !req.up {
            // The silent check: which key holds a credential; no signature needed.
            return Ok(Assertion {
                credential_id: st.creds[ci].id.clone(),
                auth_data: Vec::new(),
                signature: Vec::new(),
            });
        }
        let fault = st.fault.clone();
        if fault == Fault::NeverTouched {
            drop(st);
            return Err(untouched(&key, deadline, stop));
        }
        let previous = st.last_client_data.replace(client_data_hash);
        if fault == Fault::Replay {
            if let Some(last) = st.last.clone() {
                return Ok(last);
            }
        }
        if fault != Fault::CounterStuck {
            st.counter += 1;
        }
        st.touches += 1;
        let rp = if fault == Fault::WrongRpId {
            "pam://elsewhere"
        } else {
            req.rp_id.as_str()
        };
        let mut flags = 0;
        if fault != Fault::NoPresence {
            flags |= UP;
        }
        if verified && fault != Fault::NoVerification {
            flags |= UV;
        }
        let mut ad = sha256(rp.as_bytes()).to_vec();
        ad.push(flags);
        ad.extend_from_slice(&st.counter.to_be_bytes());
        let client_data_hash = match (&fault, previous) {
            (Fault::ForeignChallenge, Some(p)) => p,
            _ => client_data_hash,
        };
        let mut msg = ad.clone();
        msg.extend_from_slice(&client_data_hash);
        let secret = if fault == Fault::OtherKey {
            random()
        } else {
            st.creds[ci].secret
        };
        let signature = key.sign(&secret, &msg);
        match fault {
            Fault::FlipFlags(bits) => ad[32] ^= bits,
            Fault::TamperAuthData => ad[36] ^= 0x10,
            _ => {}
        }
        let credential_id = if fault == Fault::UnknownCredential {
            random::<16>().to_vec()
        } else {
            st.creds[ci].id.clone()
        };
        let a = Assertion {
            credential_id,
            auth_data: ad,
            signature,
        };
        st.last = Some(a.clone());
        Ok(a)
    }
}
