//! `pam_twofold.so`: a thin terminal between libpam and `twofoldd`.
//!
//! The daemon drives every login; this module shows what it is sent (prompt,
//! information, error, "touch your key") and relays the answers. The
//! `extern "C"` entry points only convert arguments, call safe Rust and map
//! the result to a PAM code, each inside `catch_unwind`.
//!
//! **Invariant:** the module starts no thread, installs no panic hook, prints
//! nothing to stdout, and links no async runtime, SQLite or network client:
//! its dependencies are `twofold-proto` and `libc`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod ffi;
pub mod link;
pub mod login;
pub mod options;
pub mod single;
pub mod split;

pub use login::{authenticate, relay, LoginItems, Outcome, CLIENT_NAME, MAX_MESSAGES};
pub use options::{FailMode, Inline, OptionError, Options, SinglePrompt};

use ffi::{Pam, PamHandle, PAM_AUTH_ERR, PAM_SERVICE_ERR, PAM_SILENT, PAM_SUCCESS};
use login::{Level, Log};
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// libpam's `auth` entry point: runs one login conversation with the daemon
/// (or, on a `single_prompt=ask` line, asks the combined question only).
///
/// # Safety
/// Called by libpam with its live handle and `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // A panic must never unwind into sshd: it fails the login closed.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from libpam's contract above.
        unsafe { authenticate_call(pamh, flags, argc, argv) }
    }))
    .unwrap_or(PAM_AUTH_ERR)
}

/// libpam's `setcred` entry point: twofold sets no credentials.
///
/// # Safety
/// Called by libpam; no argument is used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    catch_unwind(|| PAM_SUCCESS).unwrap_or(PAM_SUCCESS)
}

/// # Safety
/// As for [`pam_sm_authenticate`].
unsafe fn authenticate_call(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    if pamh.is_null() {
        return PAM_SERVICE_ERR;
    }
    // SAFETY: pamh is libpam's live handle for this call.
    let pam = unsafe { Pam::new(pamh) };
    let log = pam.logger();
    // SAFETY: argv holds argc C strings (libpam's contract).
    let args = unsafe { arguments(argc, argv) };
    let opts = match args.and_then(|a| Options::parse(a.iter().copied())) {
        Ok(o) => o,
        Err(e) => {
            log.log(Level::Error, &format!("refusing to run: {e}"));
            return PAM_SERVICE_ERR;
        }
    };
    if opts.single_prompt == Some(SinglePrompt::Ask) {
        let user = match pam.user() {
            Ok(u) => u,
            Err(e) => {
                log.log(Level::Error, e.msg);
                return e.code;
            }
        };
        let (mut conv, mut authtok, mut stash) = (pam.conversation(), pam.authtok(), pam.stash());
        // Never contacts the daemon, so failmode has nothing to apply to.
        return single::ask(&opts, &user, &mut conv, &mut authtok, &mut stash, &log).pam_code();
    }
    let items = match login_items(&pam) {
        Ok(i) => i,
        Err(e) => {
            log.log(Level::Error, e.msg);
            return e.code;
        }
    };
    let typed = match opts.single_prompt {
        Some(SinglePrompt::Verify) => single::kept_code(&opts, &items.user, &mut pam.stash(), &log),
        _ => None,
    };
    let mut conv = pam.conversation();
    let silent = flags & PAM_SILENT != 0;
    authenticate(&opts, silent, &items, &mut conv, typed, &log).pam_code_for(&opts, &items, &log)
}

fn login_items(pam: &Pam) -> Result<LoginItems, ffi::ItemError> {
    Ok(LoginItems {
        user: pam.user()?,
        service: pam.service()?,
        rhost: pam.rhost()?,
        tty: pam.tty()?,
        ruser: pam.ruser()?,
    })
}

/// Borrows the PAM line's arguments as UTF-8.
///
/// # Safety
/// `argv` must be null or hold `argc` valid NUL-terminated strings that
/// outlive the returned slice.
unsafe fn arguments<'a>(
    argc: c_int,
    argv: *const *const c_char,
) -> Result<Vec<&'a str>, OptionError> {
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() || n == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: argv has argc entries (caller).
    let raw = unsafe { std::slice::from_raw_parts(argv, n) };
    raw.iter()
        .filter(|p| !p.is_null())
        // SAFETY: each entry is a NUL-terminated string (caller).
        .map(|&p| {
            unsafe { CStr::from_ptr(p) }
                .to_str()
                .map_err(|_| OptionError::NotUtf8)
        })
        .collect()
}
