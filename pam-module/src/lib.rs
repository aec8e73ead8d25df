//! `pam_twofold.so`: a thin terminal between libpam and `twofoldd`.
//!
//! The daemon drives every login; this module shows what it is sent (prompt,
//! information, error, "touch your key") and relays the answers. The
//! `extern "C"` entry points only convert arguments, call safe Rust and map
//! the result to a PAM code, each inside `catch_unwind`, and return
//! PAM_BUF_ERR whenever an allocation failed during the call (the global
//! allocator of [`reserve`] serves it from a reserve instead of letting
//! Rust abort the application).
//!
//! **Invariant:** the module starts no thread, installs no panic hook, prints
//! nothing to stdout, and links no async runtime, SQLite or network client:
//! its dependencies are `twofold-proto` and `libc`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod authinfo;
pub mod ffi;
pub mod link;
pub mod login;
pub mod options;
pub mod reserve;
pub mod single;
pub mod split;

pub use login::{authenticate, relay, LoginItems, Outcome, CLIENT_NAME, MAX_MESSAGES};
pub use options::{DeniedCode, FailMode, Inline, OptionError, Options, SinglePrompt};

use ffi::{Pam, PamHandle, PAM_AUTH_ERR, PAM_BUF_ERR, PAM_SERVICE_ERR, PAM_SILENT, PAM_SUCCESS};
use login::{Level, Log};
use reserve::Watch;
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
    let watch = Watch::start();
    // A panic must never unwind into sshd: it fails the login closed.
    let code = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from libpam's contract above.
        unsafe { authenticate_call(pamh, flags, argc, argv, watch) }
    }))
    .unwrap_or(PAM_AUTH_ERR);
    // SAFETY: pamh is libpam's handle for this call, or null.
    unsafe { unless_out_of_memory(pamh, watch, code) }
}

/// libpam's `setcred` entry point: twofold sets no credentials.
///
/// # Safety
/// Called by libpam with its live handle (or null); no other argument is
/// used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    let watch = Watch::start();
    let code = catch_unwind(|| PAM_SUCCESS).unwrap_or(PAM_SUCCESS);
    // SAFETY: pamh is libpam's handle for this call, or null.
    unsafe { unless_out_of_memory(pamh, watch, code) }
}

/// `code`, unless an allocation failed since `watch` started: then
/// PAM_BUF_ERR, whatever the call was about to return (never PAM_SUCCESS
/// after an allocation failure), logged without allocating.
///
/// # Safety
/// `pamh` must be null or the live handle of the current `pam_sm_*` call.
unsafe fn unless_out_of_memory(pamh: *mut PamHandle, watch: Watch, code: c_int) -> c_int {
    if !watch.failed() {
        return code;
    }
    if !pamh.is_null() {
        // SAFETY: pamh is live for this call (caller).
        unsafe { Pam::new(pamh) }.logger().log_out_of_memory();
    }
    PAM_BUF_ERR
}

/// # Safety
/// As for [`pam_sm_authenticate`].
unsafe fn authenticate_call(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
    watch: Watch,
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
    let run = match opts.single_prompt {
        // Never contacts the daemon, so failmode has nothing to apply to.
        Some(SinglePrompt::Ask) => ask(&pam, &opts),
        _ => login(&pam, &opts, flags & PAM_SILENT != 0, watch),
    };
    run.unwrap_or_else(|e| {
        log.log(Level::Error, e.msg);
        e.code
    })
}

/// A `single_prompt=ask` line.
fn ask(pam: &Pam, opts: &Options) -> Result<c_int, ffi::ItemError> {
    let user = pam.user()?;
    let (mut conv, mut authtok, mut stash) = (pam.conversation()?, pam.authtok()?, pam.stash());
    let log = pam.logger();
    Ok(single::ask(opts, &user, &mut conv, &mut authtok, &mut stash, &log).pam_code())
}

/// An ordinary or `single_prompt=verify` line: one login with the daemon,
/// unless an allocation has failed already (the call fails with
/// PAM_BUF_ERR then, and the daemon need not hear of it).
fn login(pam: &Pam, opts: &Options, silent: bool, watch: Watch) -> Result<c_int, ffi::ItemError> {
    let items = login_items(pam)?;
    let mut conv = pam.conversation()?;
    let log = pam.logger();
    let code = match opts.single_prompt {
        Some(SinglePrompt::Verify) => single::kept_code(opts, &items.user, &mut pam.stash(), &log),
        _ => None,
    };
    let typed = login::Typed {
        code,
        password: pam.password()?,
    };
    if watch.failed() {
        return Ok(PAM_BUF_ERR);
    }
    Ok(authenticate(opts, silent, &items, &mut conv, typed, &log).pam_code_for(opts, &items, &log))
}

fn login_items(pam: &Pam) -> Result<LoginItems, ffi::ItemError> {
    let ssh_auth_info = pam.ssh_auth_info().unwrap_or_else(|why| {
        // Without it nothing is remembered: the code is asked as usual.
        pam.logger().log(Level::Notice, why);
        None
    });
    Ok(LoginItems {
        user: pam.user()?,
        service: pam.service()?,
        rhost: pam.rhost()?,
        tty: pam.tty()?,
        ruser: pam.ruser()?,
        ssh_auth_info,
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
