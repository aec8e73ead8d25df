//! A login's wait for the key found: its PIN first when the service
//! requires user verification and the key verifies with a PIN, then the
//! cue — an information line, or on `[fido2] cue_prompt_services` a prompt
//! answered by Enter while the key waits — then the touch.
//!
//! **Invariant:** a PIN is asked, passed to the key and wiped; it is never
//! checked as a code, counted as a wrong one, logged or audited. A wrong
//! PIN costs one of the key's own tries, nothing of the account's.

use super::device::{DeviceError, Info};
use super::{Fido2, Miss, Stored, CUE};
use crate::audit::event;
use crate::factors::{Attend, Ctx, Found, Hangup, Stop, Talk, VerifyError};
use crate::store::Claim;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use twofold_proto::Secret;

/// The cue on `[fido2] cue_prompt_services`: the key waits while it is
/// shown, and the answer (Enter) ends the wait.
pub const CUE_PROMPT: &str = "Touch your security key, then press Enter: ";
/// Said before the first PIN prompt (so a code typed with the password,
/// meant for the first hidden question, is never tried as the PIN).
pub const PIN_ASKED: &str = "This security key needs its PIN (Enter alone: use a code instead).";
/// The PIN prompt (not echoed).
pub const PIN_PROMPT: &str = "Security key PIN: ";
/// A blocked PIN, explained; the code prompt follows.
pub const PIN_BLOCKED: &str = "This key's PIN is blocked; reset the key or use another method.";
/// Three wrong PINs in a row: the key takes none until it is replugged.
pub const PIN_AUTH_BLOCKED: &str =
    "Too many wrong PINs in a row: unplug the key and plug it in again, or use another method.";
/// Verification required of a key that has no PIN and no built-in UV.
pub const NO_VERIFICATION: &str =
    "This security key cannot verify you here (it has no PIN or fingerprint set); use another method.";
/// Another login is using the key; the code prompt follows at once.
pub const BUSY: &str = "Security key busy: another login is using it.";
/// What a PIN may be (CTAP2: 4 to 63 bytes of UTF-8).
const PIN_LENGTH: &str = "A security key PIN is 4 to 63 characters.";

/// PIN prompts in one login before the code prompt.
const PIN_ASKS: u32 = 3;
/// How long a key that was touched just before Enter is given to answer.
const GRACE: Duration = Duration::from_millis(300);

/// A login's wait for a touch of the key found.
pub(super) struct Touch<'f> {
    pub factor: &'f Fido2,
    /// The key and the RP ID of the credentials it holds; `None`: a key
    /// was busy with another login.
    pub found: Option<(super::Device, String)>,
    pub creds: Vec<Stored>,
    pub conv: u64,
    pub deadline: Duration,
    /// Whether the service requires user verification.
    pub uv: bool,
    /// Whether the cue is a prompt answered by Enter.
    pub prompt: bool,
}

impl std::fmt::Debug for Touch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Touch")
    }
}

/// How the key is to verify the user.
enum Verify {
    /// It is not asked to (presence only).
    No,
    /// Itself (a fingerprint, a PIN on the key).
    BuiltIn,
    /// With this PIN.
    Pin(Secret),
}

/// A [`Stop`] set by the login's thread.
struct Flag<'a>(&'a AtomicBool);

impl Stop for Flag<'_> {
    fn stop(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Touch<'_> {
    /// What the key is to verify the user with; `None`: not this key (the
    /// person was told why), so the code prompt follows.
    fn verification(&self, dev: &super::Device, talk: &mut dyn Talk) -> Option<Verify> {
        if !self.uv {
            return Some(Verify::No);
        }
        let info = match self.factor.dev.info(dev) {
            Ok(i) => i,
            Err(DeviceError::Busy) => {
                talk.info(BUSY);
                return None;
            }
            Err(_) => Info::default(),
        };
        if info.uv {
            return Some(Verify::BuiltIn);
        }
        if !info.pin_set {
            if talk.audit(
                event::SECURITY_KEY_REFUSED,
                &[("reason", "no_user_verification")],
            ) {
                talk.info(NO_VERIFICATION);
            }
            return None;
        }
        self.pin(dev, talk).map(Verify::Pin)
    }

    /// Asks the key's PIN until the key takes it (at most [`PIN_ASKS`]
    /// times); `None`: the code prompt follows (skipped, blocked, too many).
    fn pin(&self, dev: &super::Device, talk: &mut dyn Talk) -> Option<Secret> {
        let keys = &self.factor.dev;
        if keys.pin_retries(dev).ok() == Some(0) {
            self.blocked(talk);
            return None;
        }
        if !talk.info(PIN_ASKED) {
            return None;
        }
        for _ in 0..PIN_ASKS {
            let pin = talk.ask(PIN_PROMPT)?;
            if pin.is_empty() {
                return None;
            }
            if !(4..=63).contains(&pin.len()) {
                if !talk.info(PIN_LENGTH) {
                    return None;
                }
                continue;
            }
            let told = match keys.check_pin(dev, &pin) {
                Ok(()) => return Some(pin),
                Err(DeviceError::WrongPin { left }) => {
                    let tries = if left == 1 { "try" } else { "tries" };
                    format!("Wrong PIN ({left} {tries} left).")
                }
                Err(DeviceError::PinBlocked) => {
                    self.blocked(talk);
                    return None;
                }
                Err(DeviceError::PinAuthBlocked) => PIN_AUTH_BLOCKED.into(),
                Err(DeviceError::Busy) => BUSY.into(),
                Err(e) => format!("{e}."),
            };
            drop(pin);
            if !talk.info(&told) || told == PIN_AUTH_BLOCKED || told == BUSY {
                return None;
            }
        }
        None
    }

    fn blocked(&self, talk: &mut dyn Talk) {
        if talk.audit(event::SECURITY_KEY_REFUSED, &[("reason", "pin_blocked")]) {
            talk.info(PIN_BLOCKED);
        }
    }

    /// Waits for the touch while the cue prompt is shown; the answer ends
    /// the wait (a touch just before it still counts).
    fn while_prompted(
        &self,
        dev: &super::Device,
        rp_id: &str,
        uv: bool,
        pin: Option<&Secret>,
        talk: &mut dyn Talk,
    ) -> Result<(i64, u64), Miss> {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let op = s.spawn(|| {
                self.factor.assert(
                    dev,
                    rp_id,
                    &self.creds,
                    self.conv,
                    self.deadline,
                    uv,
                    pin,
                    &Flag(&stop),
                )
            });
            // Whatever is typed is no code: wiped, never checked.
            let answered = talk.ask(CUE_PROMPT).is_some();
            let until = Instant::now() + GRACE;
            while answered && !op.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
            op.join().unwrap_or(Err(Miss::Device))
        })
    }
}

impl Attend for Touch<'_> {
    fn wait(&self, _cx: &Ctx<'_>, talk: &mut dyn Talk) -> Result<Option<Found>, VerifyError> {
        let Some((dev, rp_id)) = &self.found else {
            talk.info(BUSY);
            return Ok(None);
        };
        let Some(how) = self.verification(dev, talk) else {
            return Ok(None);
        };
        let (uv, pin, said) = match &how {
            Verify::No => (false, None, "none"),
            Verify::BuiltIn => (true, None, "builtin"),
            Verify::Pin(p) => (true, Some(p), "pin"),
        };
        let got = if self.prompt {
            self.while_prompted(dev, rp_id, uv, pin, talk)
        } else {
            if !talk.cue(CUE) {
                return Ok(None);
            }
            let f = self.factor;
            let stop = Hangup(&*talk);
            f.assert(
                dev,
                rp_id,
                &self.creds,
                self.conv,
                self.deadline,
                uv,
                pin,
                &stop,
            )
        };
        // The PIN is wiped here, whatever came of it.
        drop(how);
        if got.is_ok() {
            // The assertion verified with UV required when `uv`: the success
            // row says how the key verified its user.
            talk.note("uv", said);
        }
        Ok(match got {
            Ok((row, 0)) => Some(Found::Claim(Claim::Unmetered { credential: row })),
            Ok((row, n)) => Some(Found::Claim(Claim::Counter {
                credential: row,
                value: n,
            })),
            Err(Miss::Busy) => {
                talk.info(BUSY);
                None
            }
            Err(Miss::Device) => None,
            Err(Miss::Refused(why)) => Some(Found::Rejected(why)),
        })
    }
}
