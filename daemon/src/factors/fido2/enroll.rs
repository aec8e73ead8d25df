//! Enrolling a security key: the key plugged in registers a credential
//! (its PIN first, for a key that has one: `twofold enroll fido2 --pin`),
//! kept pending until a login-like assertion of it confirms it.

use super::device::{self, Device, DeviceError, MakeCredential};
use super::{
    client_data, default_rp_id, params, parse, random, refused, valid_name, verify, Fido2, Miss,
    Stored, MAX_KEYS,
};
use crate::factors::{random_row_id, Confirmation, Ctx, Enroll, EnrollOptions, Pending};
use crate::failure::Failure;
use crate::store::NewCredential;
use std::time::Instant;
use twofold_proto::{ErrorKind, Method, Response, Secret};

/// Enrolling a key that has a PIN without it.
pub const PIN_NEEDED: &str =
    "this security key has a PIN: enroll it with `twofold enroll fido2 --pin` (the PIN is asked, never given on the command line)";

impl Fido2 {
    /// The PIN to register with on `dev`: `given`, checked with the key
    /// first, when the key has a PIN set (a wrong one is told as such, with
    /// the key's tries left); `None` for a key without one.
    fn enroll_pin<'p>(
        &self,
        dev: &Device,
        given: Option<&'p Secret>,
    ) -> Result<Option<&'p Secret>, Failure> {
        let conflict = |m: String| refused(ErrorKind::Conflict, m);
        let info = self.dev.info(dev).map_err(|e| conflict(e.to_string()))?;
        if !info.pin_set {
            return Ok(None);
        }
        let Some(pin) = given.filter(|p| !p.is_empty()) else {
            return Err(refused(ErrorKind::BadRequest, PIN_NEEDED));
        };
        match self.dev.check_pin(dev, pin) {
            Ok(()) => Ok(Some(pin)),
            Err(DeviceError::WrongPin { left }) => Err(refused(
                ErrorKind::InvalidCode,
                format!("wrong PIN for the security key ({left} tries left)"),
            )),
            Err(DeviceError::PinBlocked) => Err(conflict(
                "this key's PIN is blocked; reset the key or use another one".into(),
            )),
            Err(DeviceError::PinAuthBlocked) => Err(conflict(
                "too many wrong PINs in a row: unplug the key, plug it in again and retry".into(),
            )),
            Err(e) => Err(conflict(e.to_string())),
        }
    }
}

impl Enroll for Fido2 {
    fn start(&self, cx: &Ctx<'_>, user: &str, options: &EnrollOptions) -> Result<Pending, Failure> {
        let creds = cx.store.credentials(user)?;
        let taken = |n: &str| {
            creds
                .iter()
                .any(|c| c.method == Method::FIDO2 && c.confirmed_at.is_some() && c.label == n)
        };
        let name = match &options.name {
            Some(n) => {
                valid_name(n)?;
                if taken(n) {
                    return Err(refused(
                        ErrorKind::Conflict,
                        format!("{user} already has a security key named {n:?}"),
                    ));
                }
                n.clone()
            }
            None => (1..)
                .map(|i| format!("key-{i}"))
                .find(|n| !taken(n))
                .unwrap_or_default(),
        };
        if Fido2::mine(&creds, true).len() >= MAX_KEYS {
            return Err(refused(
                ErrorKind::Conflict,
                format!("{user} already has {MAX_KEYS} security keys"),
            ));
        }
        let devices = self
            .dev
            .enumerate()
            .map_err(|e| refused(ErrorKind::NotFound, e.to_string()))?;
        let Some(dev) = devices.into_iter().next() else {
            return Err(refused(
                ErrorKind::NotFound,
                "no security key found: plug one in and try again",
            ));
        };
        let pin = self.enroll_pin(&dev, options.pin.as_ref())?;
        let exclude: Vec<Vec<u8>> = Fido2::mine(&creds, true)
            .into_iter()
            .map(|c| c.credential_id)
            .collect();
        let rp_id = default_rp_id();
        let challenge: [u8; 32] = random()?;
        let req = MakeCredential {
            rp_id: rp_id.clone(),
            client_data: client_data("pam.create", 0, &challenge, &rp_id),
            user_id: random::<16>()?.to_vec(),
            user_name: user.to_owned(),
            exclude,
        };
        let until = Instant::now() + self.deadline_in(cx);
        let att = self
            .dev
            .make_credential(&dev, &req, pin, until, &device::Never)
            .map_err(|e| refused(ErrorKind::Conflict, e.to_string()))?;
        let ad = parse::auth_data(&att.auth_data)
            .map_err(|e| refused(ErrorKind::BadRequest, e.to_string()))?;
        let bad = |m: &str| refused(ErrorKind::BadRequest, format!("security key: {m}"));
        if ad.rp_id_hash != verify::sha256(rp_id.as_bytes()) {
            return Err(bad("registered for another RP ID"));
        }
        if !ad.user_present() {
            return Err(bad("not touched"));
        }
        let Some(att) = ad.attested else {
            return Err(bad("no credential returned"));
        };
        // One key is enrolled at a time: an older pending one is dropped.
        for c in creds
            .iter()
            .filter(|c| c.method == Method::FIDO2 && c.confirmed_at.is_none())
        {
            cx.store.delete_pending(c.id)?;
        }
        let new = NewCredential {
            id: random_row_id()?,
            method: Method::FIDO2,
            label: name.clone(),
            sealed: Vec::new(),
            nonce: Vec::new(),
            params: params(&rp_id, &att.credential_id, &att.key),
            single: false,
        };
        cx.store.start_pending(user, new, cx.now())?;
        Ok(Pending {
            response: Response::Done {
                message: format!(
                    "security key {name:?} registered for {user} ({rp_id}); touch it again to confirm"
                ),
            },
            qr: None,
            lines: Vec::new(),
        })
    }

    fn confirm(&self, cx: &Ctx<'_>, user: &str, _answer: &Secret) -> Result<Confirmation, Failure> {
        let creds = cx.store.credentials(user)?;
        let Some(pending) = Fido2::mine(&creds, false).into_iter().last() else {
            return Err(refused(ErrorKind::NotFound, "no pending security key"));
        };
        let pending = Stored {
            counter: None,
            ..pending
        };
        let Ok((dev, rp_id)) = self.find(std::slice::from_ref(&pending)) else {
            return Err(refused(
                ErrorKind::NotFound,
                "the security key being enrolled is not plugged in (or busy)",
            ));
        };
        let deadline = self.deadline_in(cx);
        let conv = self.new_conversation(deadline)?;
        let one = std::slice::from_ref(&pending);
        match self.assert(
            &dev,
            &rp_id,
            one,
            conv,
            deadline,
            false,
            None,
            &device::Never,
        ) {
            Ok((id, n)) => Ok(Confirmation {
                id,
                counter: Some(n),
            }),
            Err(Miss::Device | Miss::Busy) => Err(refused(
                ErrorKind::InvalidCode,
                "the security key was not touched",
            )),
            Err(Miss::Refused(why)) => Err(refused(
                ErrorKind::InvalidCode,
                format!("security key refused: {why}"),
            )),
        }
    }
}
