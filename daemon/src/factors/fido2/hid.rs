//! The real security keys: CTAP2 over USB HID through `ctap-hid-fido2`.
//!
//! Facts about the crate this file answers for: it prints keep-alive
//! lines to stdout unless told not to (turned off; and twofoldd points its
//! stdout at /dev/null while serving, main.rs `silence_stdout`: stdout is
//! no place for them); it panics where hidapi cannot start (every call
//! here runs inside `catch_unwind`, and a panic is an error); it refuses
//! to pick among several keys (each is opened by its path); it asks for
//! built-in UV unless told "without PIN and UV"; and it has no deadline
//! of its own (the operation runs on a thread of its own, and at the
//! daemon's deadline, or when the PAM client goes away, the key is sent
//! CTAPHID_CANCEL and the thread is left to end by itself). Its errors
//! are text, `response_status err = 0x31 CTAP2_ERR_PIN_INVALID ...`,
//! told apart by the status names (the PIN's checked over HID against a
//! key speaking clientPIN in guest/qemu); with a PIN, it fetches a
//! pinToken (getKeyAgreement, getPinToken, protocol one) for each
//! operation. It prints a line on stdout for a field it does not know in
//! a getRetries answer (CTAP 2.1's powerCycleState).

use super::device::{
    Assertion, Attestation, Authenticator, Device, DeviceError, GetAssertion, Info, MakeCredential,
    Stop,
};
use ctap_hid_fido2::fidokey::get_assertion::get_assertion_params::GetAssertionArgs;
use ctap_hid_fido2::fidokey::make_credential::make_credential_params::MakeCredentialArgs;
use ctap_hid_fido2::public_key_credential_user_entity::PublicKeyCredentialUserEntity;
use ctap_hid_fido2::{FidoKeyHid, FidoKeyHidFactory, HidParam, LibCfg};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_proto::Secret;

/// How often a waiting operation looks at its deadline and its client.
const TICK: Duration = Duration::from_millis(50);
/// How long a cancelled operation is given to end before it is left.
const AFTER_CANCEL: Duration = Duration::from_millis(500);
/// How long an exchange without a touch (info, PIN) may take.
const QUICK: Duration = Duration::from_secs(3);

/// Keys with an operation in progress, by path: one at a time each.
static BUSY: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Security keys on USB HID.
#[derive(Debug, Default)]
pub struct Hid;

fn cfg() -> LibCfg {
    let mut c = LibCfg::init();
    c.enable_log = false;
    c.enable_keep_alive_msg = false;
    c.keep_alive_msg = String::new();
    c.keep_alive_msg_to_stderr = true;
    c
}

/// Runs `f`, a panic turned into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, DeviceError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e.to_string())),
        Err(_) => Err(DeviceError::Failed(format!(
            "{what}: the HID stack panicked"
        ))),
    }
}

/// The crate's errors are text (CTAP status names): "no credential" and
/// the PIN's are told apart.
fn classify(msg: &str) -> DeviceError {
    if msg.contains("NO_CREDENTIALS") || msg.contains("No valid credentials") {
        DeviceError::NoCredential
    } else if msg.contains("PIN_AUTH_BLOCKED") {
        DeviceError::PinAuthBlocked
    } else if msg.contains("PIN_BLOCKED") {
        DeviceError::PinBlocked
    } else if msg.contains("KEEPALIVE_CANCEL") || msg.contains("0x2D") {
        DeviceError::Cancelled
    } else {
        DeviceError::Failed(msg.chars().take(200).collect())
    }
}

/// Whether the crate's error is the key's CTAP2_ERR_PIN_INVALID (a wrong
/// PIN, which costs a try; not PIN_AUTH_INVALID).
fn wrong_pin(msg: &str) -> bool {
    msg.contains("CTAP2_ERR_PIN_INVALID")
}

/// Holds a key for one operation; released when dropped.
struct Claimed(String);

impl Claimed {
    fn take(path: &str) -> Result<Claimed, DeviceError> {
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        if !busy
            .get_or_insert_with(HashSet::new)
            .insert(path.to_owned())
        {
            return Err(DeviceError::Busy);
        }
        Ok(Claimed(path.to_owned()))
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = busy.as_mut() {
            set.remove(&self.0);
        }
    }
}

fn open(dev: &Device) -> Result<FidoKeyHid, DeviceError> {
    guarded("open", || {
        FidoKeyHidFactory::create_by_params(&[HidParam::Path(dev.path.clone())], &cfg())
    })
}

/// Runs `op` on `key` on a thread of its own until it ends, the deadline
/// passes or `stop` says so; then the key is told to cancel.
fn bounded<T: Send + 'static>(
    dev: &Device,
    key: FidoKeyHid,
    deadline: Instant,
    stop: &dyn Stop,
    op: impl FnOnce(&FidoKeyHid) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, DeviceError> {
    let claimed = Claimed::take(&dev.path)?;
    let key = Arc::new(key);
    let (tx, rx) = mpsc::channel();
    let k = Arc::clone(&key);
    let spawned = std::thread::Builder::new()
        .name("fido2-hid".into())
        .spawn(move || {
            let r = guarded("operation", || op(&k));
            // The key stays claimed until the operation really ended.
            drop(claimed);
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        return Err(DeviceError::Failed("cannot start a thread".into()));
    }
    let why = loop {
        match rx.recv_timeout(TICK) {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(DeviceError::Failed(
                    "operation ended without a result".into(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            break DeviceError::Timeout;
        }
        if stop.stop() {
            break DeviceError::Cancelled;
        }
    };
    // CTAPHID_CANCEL from a thread of its own: the crate holds the device
    // while a read blocks, and a key that sends nothing would hold this
    // login too.
    let _ = std::thread::Builder::new()
        .name("fido2-cancel".into())
        .spawn(move || {
            let _ = guarded("cancel", || key.cancel_selection());
        });
    // Whatever it returns now is not used: the login moved on.
    let _ = rx.recv_timeout(AFTER_CANCEL);
    Err(why)
}

impl Authenticator for Hid {
    fn enumerate(&self) -> Result<Vec<Device>, DeviceError> {
        let found = guarded("enumerate", || Ok(ctap_hid_fido2::get_fidokey_devices()))?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d.param {
                HidParam::Path(path) => Some(Device {
                    path,
                    product: d.product_string,
                }),
                HidParam::VidPid { .. } => None,
            })
            .collect())
    }

    fn info(&self, dev: &Device) -> Result<Info, DeviceError> {
        let key = open(dev)?;
        let until = Instant::now() + QUICK;
        bounded(dev, key, until, &super::device::Never, |k| {
            let info = k.get_info()?;
            let on = |name: &str| info.options.iter().any(|(k, v)| k == name && *v);
            Ok(Info {
                versions: info.versions.clone(),
                pin_set: on("clientPin"),
                uv: on("uv"),
            })
        })
    }

    fn pin_retries(&self, dev: &Device) -> Result<u32, DeviceError> {
        let key = open(dev)?;
        let until = Instant::now() + QUICK;
        bounded(dev, key, until, &super::device::Never, |k| {
            Ok(u32::try_from(k.get_pin_retries()?).unwrap_or(0))
        })
    }

    fn check_pin(&self, dev: &Device, pin: &Secret) -> Result<(), DeviceError> {
        let key = open(dev)?;
        let until = Instant::now() + QUICK;
        // The thread's own copy, wiped when it ends.
        let pin = pin.clone();
        let checked = bounded(dev, key, until, &super::device::Never, move |k| {
            Ok(match k.get_pin_token(pin.expose()) {
                Ok(_) => Ok(()),
                Err(e) if wrong_pin(&e.to_string()) => {
                    let left = k.get_pin_retries().unwrap_or(0);
                    Err(DeviceError::WrongPin {
                        left: u32::try_from(left).unwrap_or(0),
                    })
                }
                Err(e) => Err(classify(&e.to_string())),
            })
        })?;
        checked
    }

    fn make_credential(
        &self,
        dev: &Device,
        req: &MakeCredential,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Attestation, DeviceError> {
        let key = open(dev)?;
        let req = req.clone();
        let pin = pin.cloned();
        bounded(dev, key, deadline, stop, move |k| {
            let user = PublicKeyCredentialUserEntity::new(
                Some(&req.user_id),
                Some(&req.user_name),
                Some(&req.user_name),
            );
            let args = MakeCredentialArgs {
                rpid: req.rp_id.clone(),
                challenge: req.client_data.clone(),
                pin: pin.as_ref().map(Secret::expose),
                key_types: vec![],
                uv: None,
                exclude_list: req.exclude.clone(),
                user_entity: Some(user),
                rk: None,
                extensions: None,
            };
            let a = k.make_credential_with_args(&args)?;
            Ok(Attestation {
                auth_data: a.auth_data,
            })
        })
    }

    fn get_assertion(
        &self,
        dev: &Device,
        req: &GetAssertion,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Assertion, DeviceError> {
        let key = open(dev)?;
        let req = req.clone();
        let pin = pin.cloned();
        bounded(dev, key, deadline, stop, move |k| {
            let args = GetAssertionArgs {
                rpid: req.rp_id.clone(),
                challenge: req.client_data.clone(),
                // The PIN verifies the user (pinUvAuthParam) ...
                pin: pin.as_ref().map(Secret::expose),
                credential_ids: req.allow.clone(),
                up: req.up,
                // ... else built-in UV, asked only when needed: touch-only
                // keys refuse a UV request.
                uv: (req.uv && pin.is_none()).then_some(true),
                extensions: None,
            };
            let mut got = k.get_assertion_with_args(&args)?;
            let a = got
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no assertion returned"))?;
            Ok(Assertion {
                credential_id: a.credential_id,
                auth_data: a.auth_data,
                signature: a.signature,
            })
        })
    }

    fn cancel(&self, dev: &Device) {
        if let Ok(key) = open(dev) {
            let _ = guarded("cancel", || key.cancel_selection());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the crate words it (ctaphid.rs, ctapdef.rs).
    fn crate_error(status: &str) -> String {
        format!("response_status err = {status}")
    }

    #[test]
    fn the_crates_pin_errors_are_told_apart() {
        assert_eq!(
            classify(&crate_error("0x32 CTAP2_ERR_PIN_BLOCKED PIN Blocked.")),
            DeviceError::PinBlocked
        );
        assert_eq!(
            classify(&crate_error(
                "0x34 CTAP2_ERR_PIN_AUTH_BLOCKED PIN authentication, pinAuth, blocked.Requires power recycle to reset."
            )),
            DeviceError::PinAuthBlocked
        );
        assert_eq!(
            classify(&crate_error(
                "0x2E CTAP2_ERR_NO_CREDENTIALS    No valid credentials provided."
            )),
            DeviceError::NoCredential
        );
        assert_eq!(
            classify(&crate_error(
                "0x2D CTAP2_ERR_KEEPALIVE_CANCEL  Pending keep alive was cancelled."
            )),
            DeviceError::Cancelled
        );
        // A pinAuth the key refuses is no blocked PIN and no wrong PIN.
        let invalid = crate_error(
            "0x33 CTAP2_ERR_PIN_AUTH_INVALID PIN authentication, pinAuth, verification failed.",
        );
        assert!(matches!(classify(&invalid), DeviceError::Failed(_)));
        assert!(!wrong_pin(&invalid));
        assert!(wrong_pin(&crate_error(
            "0x31 CTAP2_ERR_PIN_INVALID   PIN Invalid."
        )));
    }
}
