//! Single-prompt mode: one question for the password and the code, for
//! applications that can ask only once, with the password module's verdict
//! first (issue 10). Three lines:
//!
//! ```text
//! auth requisite pam_twofold.so single_prompt=ask
//! auth requisite pam_unix.so use_first_pass
//! auth required  pam_twofold.so single_prompt=verify
//! ```
//!
//! The `ask` line ([`ask`]) asks [`SINGLE_PROMPT`], splits the answer
//! ([`crate::split`]), sets PAM_AUTHTOK to the password, keeps the code in
//! PAM data ([`Stash`]) and returns PAM_IGNORE. It never contacts the
//! daemon: a wrong password ends the stack at the `requisite` password line
//! before twofoldd hears of the login, so it spends no code, counts no
//! failure and cannot lock anyone out. The `verify` line ([`kept_code`])
//! takes the code back and runs the ordinary conversation, in which the
//! code answers the daemon's first question (see [`crate::login::relay`]).
//!
//! The code lives in PAM data between the two lines, that is in the
//! process that runs `pam_authenticate` (sshd's authentication child
//! included), and is wiped when the `verify` line takes it, when the next
//! `ask` replaces it, or at `pam_end`.

use crate::login::{ConvError, Conversation, Level, Log, Outcome};
use crate::options::Options;
use crate::split::{split, SINGLE_PROMPT};
use twofold_proto::Secret;

/// What the `ask` line keeps for the `verify` line.
#[derive(Debug)]
pub struct Typed {
    /// PAM_USER when it was asked: the code is never used for another user.
    pub user: String,
    /// The code typed after the password; `None` when the answer ended in
    /// none (the daemon's own prompt then asks for it).
    pub code: Option<Secret>,
}

/// PAM_AUTHTOK, through which the `ask` line hands the password on to the
/// password module (`pam_unix.so use_first_pass`).
pub trait Authtok {
    /// Whether an earlier module already set PAM_AUTHTOK.
    fn is_set(&self) -> bool;
    /// Sets PAM_AUTHTOK; the error is the reason, for the log.
    fn set(&mut self, password: &Secret) -> Result<(), &'static str>;
}

/// Where the `ask` line keeps [`Typed`] for the `verify` line: PAM data of
/// this handle.
pub trait Stash {
    /// Keeps `typed`, wiping whatever an earlier `pam_authenticate` on the
    /// same handle left; the error is the reason, for the log.
    fn put(&mut self, typed: Typed) -> Result<(), &'static str>;
    /// Takes what was kept, leaving nothing behind.
    fn take(&mut self) -> Option<Typed>;
}

/// The `ask` line: asks the combined question, hands the password on and
/// keeps the code. [`Outcome::Ignore`] when it did; nothing here contacts
/// the daemon.
///
/// When an earlier module already set PAM_AUTHTOK, the password was asked
/// already: nothing is asked, and the `verify` line asks for the code.
pub fn ask(
    opts: &Options,
    user: &str,
    conv: &mut impl Conversation,
    authtok: &mut impl Authtok,
    stash: &mut impl Stash,
    log: &impl Log,
) -> Outcome {
    let debug = |msg: &str| {
        if opts.debug {
            log.log(Level::Debug, msg);
        }
    };
    // A code left by an earlier pam_authenticate on this handle (say, a
    // wrong password at sshd's first try) must never answer for this one.
    drop(stash.take());
    let code = if authtok.is_set() {
        debug("single_prompt=ask: PAM_AUTHTOK is already set; asking nothing, single_prompt=verify asks for the code");
        None
    } else {
        let answer = match conv.prompt(SINGLE_PROMPT, false) {
            Ok(a) => a,
            Err(ConvError(why)) => {
                log.log(
                    Level::Notice,
                    &format!("conversation failed on a prompt: {why}"),
                );
                return Outcome::ConvError;
            }
        };
        let parts = split(answer.expose(), opts.digits);
        drop(answer);
        if let Err(why) = authtok.set(&parts.password) {
            return fail(
                log,
                format!("single_prompt=ask: cannot set PAM_AUTHTOK: {why}"),
            );
        }
        match parts.code {
            Some(_) => {
                debug("single_prompt=ask: password handed on, code kept for single_prompt=verify")
            }
            None => debug("single_prompt=ask: password handed on; the answer ends in no code"),
        }
        parts.code
    };
    // Kept even without a code: its presence at pam_end tells that no
    // `verify` line ran (see the PAM data's cleanup in `ffi`).
    let typed = Typed {
        user: user.to_owned(),
        code,
    };
    if let Err(why) = stash.put(typed) {
        return fail(
            log,
            format!("single_prompt=ask: cannot keep the code: {why}"),
        );
    }
    Outcome::Ignore
}

/// The `verify` line: the code the `ask` line kept for `user`, taken out
/// of the stash (so it answers at most once). A code kept for another user
/// (PAM_USER changed between the lines) is wiped, never sent.
pub fn kept_code(
    opts: &Options,
    user: &str,
    stash: &mut impl Stash,
    log: &impl Log,
) -> Option<Secret> {
    let Some(typed) = stash.take() else {
        if opts.debug {
            log.log(
                Level::Debug,
                "single_prompt=verify: no single_prompt=ask line ran before; the daemon's prompt asks for the code",
            );
        }
        return None;
    };
    if typed.user != user {
        log.log(
            Level::Notice,
            &format!(
                "single_prompt=verify: PAM_USER changed from {:?} to {:?} since single_prompt=ask; its code is not used",
                typed.user, user
            ),
        );
        return None;
    }
    typed.code
}

/// The log line for a PAM transaction that ended in PAM_SUCCESS while what
/// the `ask` line kept was never taken: no `verify` line ran after it.
pub const NO_VERIFY_LINE: &str = "single_prompt=ask: the PAM transaction ended in success but no single_prompt=verify line ran after the password module, so no second factor was checked: add `auth required pam_twofold.so single_prompt=verify` after the password line";

fn fail(log: &impl Log, msg: String) -> Outcome {
    log.log(Level::Error, &msg);
    Outcome::Failed(msg)
}

#[cfg(test)]
#[path = "single_tests.rs"]
mod tests;
