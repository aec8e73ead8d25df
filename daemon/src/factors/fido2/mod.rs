//! FIDO2 security keys, touched at the machine that runs the login.
//!
//! The daemon talks to the key (`device.rs`: the real keys over HID in
//! `hid.rs`, the default; a software authenticator in `soft.rs` for
//! tests), makes the challenge, and verifies every assertion itself from
//! the raw bytes (`parse.rs`, `verify.rs`). The `.so` only shows the cue
//! ("Touch your security key", a `Wait`) and waits.
//!
//! Never offered when PAM_RHOST is set or to sshd: the key would be on the
//! client's machine (OpenSSH's own `sk-` keys cover that case). No key
//! plugged in, or none holding an enrolled credential (a silent check,
//! without touch): the code prompt follows at once.

pub mod device;
mod enroll;
pub mod hid;
pub mod import;
pub mod parse;
#[cfg(feature = "soft-fido2")]
pub mod soft;
pub mod verify;
mod wait;

use super::{Attend, Ctx, Enroll, Factor, Found, Place, Report, Stop, VerifyError, Who};
use crate::failure::Failure;
use crate::store::{Credential, Snapshot, StoreError};
use device::{Authenticator, Device, DeviceError, GetAssertion};
pub use enroll::PIN_NEEDED;
use parse::CoseKey;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_proto::{CredentialInfo, ErrorKind, FactorStatus, Method, Secret};
use wait::Touch;
pub use wait::{
    BUSY, CUE_PROMPT, NO_VERIFICATION, PIN_ASKED, PIN_AUTH_BLOCKED, PIN_BLOCKED, PIN_PROMPT,
};

/// What the person is shown before the daemon waits for the touch.
pub const CUE: &str = "Touch your security key";

/// Security keys one account may hold.
pub const MAX_KEYS: usize = 16;

/// A key's name: 1 to 64 printable characters, no quote or backslash.
fn valid_name(n: &str) -> Result<(), Failure> {
    let ok = (1..=64).contains(&n.chars().count())
        && n.chars().all(|c| !c.is_control() && c != '"' && c != '\\');
    if ok {
        Ok(())
    } else {
        Err(refused(
            ErrorKind::BadRequest,
            "a key's name is 1 to 64 printable characters, without quotes or backslashes",
        ))
    }
}

/// How long the silent check (which key holds a credential) may take.
const SILENT: Duration = Duration::from_secs(2);

/// A challenge is good for the wait plus this, once.
const CHALLENGE_SLACK: Duration = Duration::from_secs(5);

/// The FIDO2 factor.
#[derive(Debug)]
pub struct Fido2 {
    dev: Arc<dyn Authenticator>,
    /// The wait for a touch; `None`: `[fido2] touch_timeout`.
    deadline: Option<Duration>,
    /// Whether to require user verification; `None`: `[fido2] verify_services`.
    require_uv: Option<bool>,
    /// Outstanding challenges by conversation: each used once, briefly.
    challenges: Mutex<HashMap<u64, Outstanding>>,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    challenge: [u8; 32],
    issued: Instant,
    /// How long it is good for.
    ttl: Duration,
}

/// A stored credential's parameters, read.
#[derive(Debug, Clone)]
struct Stored {
    row: i64,
    rp_id: String,
    credential_id: Vec<u8>,
    key: CoseKey,
    counter: Option<u64>,
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `v1 <rp id> <credential id hex> <COSE key hex>`.
fn params(rp_id: &str, credential_id: &[u8], key: &CoseKey) -> String {
    format!("v1 {rp_id} {} {}", hex(credential_id), hex(&key.to_cbor()))
}

fn stored(c: &Credential) -> Option<Stored> {
    let mut it = c.params.split(' ');
    if it.next()? != "v1" {
        return None;
    }
    let rp_id = it.next()?.to_owned();
    let credential_id = unhex(it.next()?)?;
    let key = parse::cose_key(&unhex(it.next()?)?).ok()?;
    Some(Stored {
        row: c.id,
        rp_id,
        credential_id,
        key,
        counter: c.counter,
    })
}

/// The RP ID of a new credential: `pam://<hostname>`.
pub fn default_rp_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host = if rc == 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    format!(
        "pam://{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// What the key signs the hash of: the challenge, bound to its
/// conversation and relying party.
fn client_data(kind: &str, conversation: u64, challenge: &[u8; 32], rp_id: &str) -> Vec<u8> {
    format!(
        "{{\"type\":\"{kind}\",\"challenge\":\"{}\",\"conversation\":\"{conversation:016x}\",\"origin\":\"{rp_id}\"}}",
        hex(challenge)
    )
    .into_bytes()
}

fn refused(kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
        detail: None,
    }
}

fn random<const N: usize>() -> Result<[u8; N], Failure> {
    let mut b = [0u8; N];
    crate::crypto::keys::random_bytes(&mut b)?;
    Ok(b)
}

impl Fido2 {
    /// The factor over `dev`, waiting for a touch and asking for user
    /// verification as `[fido2]` says.
    pub fn new(dev: Arc<dyn Authenticator>) -> Fido2 {
        Fido2 {
            dev,
            deadline: None,
            require_uv: None,
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// The real keys, over USB HID.
    pub fn hid() -> Fido2 {
        Fido2::new(Arc::new(hid::Hid))
    }

    /// Waits at most `d` for a touch, whatever `[fido2]` says.
    pub fn deadline(mut self, d: Duration) -> Fido2 {
        self.deadline = Some(d);
        self
    }

    /// Requires user verification (PIN or built-in UV) in every assertion,
    /// or never, whatever `[fido2]` says.
    pub fn require_uv(mut self, yes: bool) -> Fido2 {
        self.require_uv = Some(yes);
        self
    }

    fn deadline_in(&self, cx: &Ctx<'_>) -> Duration {
        self.deadline
            .unwrap_or_else(|| cx.config.fido2.touch_timeout.duration())
    }

    fn mine(creds: &[Credential], confirmed: bool) -> Vec<Stored> {
        creds
            .iter()
            .filter(|c| c.method == Method::FIDO2 && c.confirmed_at.is_some() == confirmed)
            .filter_map(stored)
            .collect()
    }

    /// A fresh challenge for conversation `conv`, good for a wait of
    /// `deadline` (and a few seconds more).
    fn issue(&self, conv: u64, challenge: [u8; 32], deadline: Duration) {
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, o| o.issued.elapsed() <= o.ttl);
        map.insert(
            conv,
            Outstanding {
                challenge,
                issued: Instant::now(),
                ttl: deadline + CHALLENGE_SLACK,
            },
        );
    }

    /// Takes conversation `conv`'s challenge: once, and only while fresh.
    fn take(&self, conv: u64) -> Option<[u8; 32]> {
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        let o = map.remove(&conv)?;
        (o.issued.elapsed() <= o.ttl).then_some(o.challenge)
    }

    /// The plugged-in key holding one of `creds` (a silent check, no
    /// touch), with the RP ID they share; [`Miss::Busy`] when none was
    /// found but a key was busy with another login.
    fn find(&self, creds: &[Stored]) -> Result<(Device, String), Miss> {
        let devices = self.dev.enumerate().map_err(|_| Miss::Device)?;
        let mut rps: Vec<&str> = creds.iter().map(|c| c.rp_id.as_str()).collect();
        rps.sort_unstable();
        rps.dedup();
        let mut busy = false;
        for d in devices {
            for rp in &rps {
                let req = GetAssertion {
                    rp_id: (*rp).to_owned(),
                    client_data: b"twofold silent check".to_vec(),
                    allow: creds
                        .iter()
                        .filter(|c| c.rp_id == *rp)
                        .map(|c| c.credential_id.clone())
                        .collect(),
                    uv: false,
                    up: false,
                };
                let until = Instant::now() + SILENT;
                match self
                    .dev
                    .get_assertion(&d, &req, None, until, &device::Never)
                {
                    Ok(_) => return Ok((d, (*rp).to_owned())),
                    Err(DeviceError::Busy) => busy = true,
                    Err(_) => {}
                }
            }
        }
        Err(if busy { Miss::Busy } else { Miss::Device })
    }

    /// Asks `dev` for an assertion of one of `creds` over conversation
    /// `conv`'s challenge (with `pin`, verified by the key) and verifies it:
    /// the credential row and its new counter.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call per use, each argument named there"
    )]
    fn assert(
        &self,
        dev: &Device,
        rp_id: &str,
        creds: &[Stored],
        conv: u64,
        deadline: Duration,
        uv: bool,
        pin: Option<&Secret>,
        stop: &dyn Stop,
    ) -> Result<(i64, u64), Miss> {
        let Some(challenge) = self.challenges_peek(conv) else {
            return Err(Miss::Refused("challenge expired"));
        };
        let data = client_data("pam.get", conv, &challenge, rp_id);
        let req = GetAssertion {
            rp_id: rp_id.to_owned(),
            client_data: data.clone(),
            allow: creds
                .iter()
                .filter(|c| c.rp_id == rp_id)
                .map(|c| c.credential_id.clone())
                .collect(),
            uv,
            up: true,
        };
        let until = Instant::now() + deadline;
        let got = self.dev.get_assertion(dev, &req, pin, until, stop);
        // Used or not, the challenge is spent now.
        let fresh = self.take(conv);
        let a = got.map_err(|e| match e {
            DeviceError::Busy => Miss::Busy,
            _ => Miss::Device,
        })?;
        if fresh != Some(challenge) {
            return Err(Miss::Refused("challenge expired or used"));
        }
        let Some(cred) = creds.iter().find(|c| c.credential_id == a.credential_id) else {
            return Err(Miss::Refused("unknown credential"));
        };
        let cdh = verify::sha256(&data);
        let e = verify::Expect {
            rp_id: &cred.rp_id,
            key: &cred.key,
            counter: cred.counter,
            uv,
            client_data_hash: &cdh,
        };
        verify::assertion(&e, &a.auth_data, &a.signature)
            .map(|n| (cred.row, n))
            .map_err(|r| Miss::Refused(r.reason()))
    }

    fn challenges_peek(&self, conv: u64) -> Option<[u8; 32]> {
        let map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&conv).map(|o| o.challenge)
    }

    fn new_conversation(&self, deadline: Duration) -> Result<u64, Failure> {
        let conv = u64::from_be_bytes(random()?);
        self.issue(conv, random()?, deadline);
        Ok(conv)
    }
}

/// Why an assertion gave nothing to spend.
#[derive(Debug)]
enum Miss {
    /// The key gave nothing: no touch, cancelled, no credential, an error.
    Device,
    /// Another login is using the key.
    Busy,
    /// The key answered and the answer is refused (for the audit trail).
    Refused(&'static str),
}

impl Factor for Fido2 {
    fn method(&self) -> Method {
        Method::FIDO2
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        !Fido2::mine(&snap.credentials, true).is_empty()
    }

    fn check(
        &self,
        _cx: &Ctx<'_>,
        _who: &Who<'_>,
        _snap: &Snapshot,
        _typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        // A key is touched, never typed.
        Ok(None)
    }

    fn report(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        creds: &[Credential],
    ) -> Result<Report, StoreError> {
        let mut r = Report::default();
        for c in creds.iter().filter(|c| c.method == Method::FIDO2) {
            match c.confirmed_at {
                Some(at) => {
                    r.factors.push(FactorStatus {
                        method: Method::FIDO2,
                        enrolled_at: at,
                        last_used: c.last_used,
                        destination: None,
                    });
                    r.credentials.push(CredentialInfo {
                        method: Method::FIDO2,
                        name: c.label.clone(),
                        detail: stored(c).map(|s| s.rp_id).unwrap_or_default(),
                        created_at: at,
                        last_used: c.last_used,
                    });
                }
                None => r.pending = true,
            }
        }
        Ok(r)
    }

    fn enrollment(&self) -> Option<&dyn Enroll> {
        Some(self)
    }

    fn attend<'s>(
        &'s self,
        cx: &Ctx<'_>,
        _who: &Who<'_>,
        snap: &Snapshot,
        place: &Place<'_>,
    ) -> Result<Option<Box<dyn Attend + 's>>, VerifyError> {
        // The key is where the login runs: never over the network.
        if place.rhost.is_some_and(|r| !r.is_empty()) || place.service.starts_with("sshd") {
            return Ok(None);
        }
        let creds = Fido2::mine(&snap.credentials, true);
        if creds.is_empty() {
            return Ok(None);
        }
        let found = match self.find(&creds) {
            Ok(found) => Some(found),
            Err(Miss::Busy) => None,
            Err(_) => return Ok(None),
        };
        let deadline = self.deadline_in(cx);
        let uv = self
            .require_uv
            .unwrap_or_else(|| cx.config.fido2.verify(place.service));
        let Ok(conv) = self.new_conversation(deadline) else {
            return Ok(None);
        };
        Ok(Some(Box::new(Touch {
            factor: self,
            found,
            creds,
            conv,
            deadline,
            uv,
            prompt: cx.config.fido2.cue_prompt(place.service),
        })))
    }
}
