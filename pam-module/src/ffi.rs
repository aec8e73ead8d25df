//! The few libpam functions the module needs, declared by hand, and safe
//! wrappers over them: items, the conversation and syslog.

use crate::login::{ConvError, Conversation, Level, Log, Notice};
use crate::reserve::{self, Watch};
use crate::single::{Authtok, Stash, Typed, NO_VERIFY_LINE};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use twofold_proto::zeroize::Zeroize;
use twofold_proto::Secret;

/// Successful function return.
pub const PAM_SUCCESS: c_int = 0;
/// Error in service module (bad options).
pub const PAM_SERVICE_ERR: c_int = 3;
/// System error: libpam could not give the module what it asked for.
pub const PAM_SYSTEM_ERR: c_int = 4;
/// Memory buffer error: an allocation failed.
pub const PAM_BUF_ERR: c_int = 5;
/// Authentication failure.
pub const PAM_AUTH_ERR: c_int = 7;
/// The authentication service (the daemon) is unreachable.
pub const PAM_AUTHINFO_UNAVAIL: c_int = 9;
/// Insufficient credentials to access authentication data.
pub const PAM_CRED_INSUFFICIENT: c_int = 8;
/// Maximum number of retries exceeded: do not try again.
pub const PAM_MAXTRIES: c_int = 11;
/// The user is not known.
pub const PAM_USER_UNKNOWN: c_int = 10;
/// Conversation error.
pub const PAM_CONV_ERR: c_int = 19;
/// This module has no say.
pub const PAM_IGNORE: c_int = 25;

/// Flag: the module should show no informational messages.
pub const PAM_SILENT: c_int = 0x8000;

/// Flag to a PAM data cleanup: the data is being replaced, not freed at
/// `pam_end`.
const PAM_DATA_REPLACE: c_int = 0x2000_0000;
/// Flag to a PAM data cleanup (from `pam_end`): the application asks for
/// quiet, e.g. in a forked child.
const PAM_DATA_SILENT: c_int = 0x4000_0000;

/// The PAM data name under which the `ask` line keeps what it was typed.
const STASH: &CStr = c"pam_twofold:single_prompt";

const PAM_CONV: c_int = 5;
const PAM_AUTHTOK: c_int = 6;

/// A string item, with its log lines.
struct StrItem {
    id: c_int,
    failed: &'static str,
    not_utf8: &'static str,
}

const SERVICE: StrItem = StrItem {
    id: 1,
    failed: "pam_get_item(PAM_SERVICE) failed",
    not_utf8: "PAM_SERVICE is not valid UTF-8",
};
const TTY: StrItem = StrItem {
    id: 3,
    failed: "pam_get_item(PAM_TTY) failed",
    not_utf8: "PAM_TTY is not valid UTF-8",
};
const RHOST: StrItem = StrItem {
    id: 4,
    failed: "pam_get_item(PAM_RHOST) failed",
    not_utf8: "PAM_RHOST is not valid UTF-8",
};
const RUSER: StrItem = StrItem {
    id: 8,
    failed: "pam_get_item(PAM_RUSER) failed",
    not_utf8: "PAM_RUSER is not valid UTF-8",
};

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// libpam's opaque handle.
#[repr(C)]
#[derive(Debug)]
pub struct PamHandle {
    _opaque: [u8; 0],
}

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type CleanupFn = unsafe extern "C" fn(pamh: *mut PamHandle, data: *mut c_void, error_status: c_int);

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

// Linked by soname, so building needs only the runtime libpam0g that every
// Debian system has, not the libpam0g-dev symlink.
#[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
        -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_set_data(
        pamh: *mut PamHandle,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<CleanupFn>,
    ) -> c_int;
    fn pam_get_data(pamh: *const PamHandle, name: *const c_char, data: *mut *const c_void)
        -> c_int;
}

/// A borrowed libpam handle, valid for the duration of one `pam_sm_*` call.
#[derive(Debug, Clone, Copy)]
pub struct Pam {
    h: *mut PamHandle,
}

/// Why a PAM item could not be read; carries the PAM code to return.
///
/// A `pam_get_item` that fails (returns anything but PAM_SUCCESS) is
/// PAM_SYSTEM_ERR, for every item: only PAM_SUCCESS with NULL means "not
/// set". An item that cannot be read is not known to be unset, and taking
/// it for unset would, for PAM_RHOST, make a remote login look local. The
/// code is PAM_SYSTEM_ERR rather than PAM_AUTH_ERR because nobody failed
/// to authenticate: the daemon was not asked (so no failure is counted
/// against the user), and the application and the log say what happened.
/// Both fail any stack closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The PAM code the entry point returns.
    pub code: c_int,
    /// What went wrong, for the log.
    pub msg: &'static str,
}

impl Pam {
    /// Wraps the handle libpam passed to an entry point.
    ///
    /// # Safety
    /// `h` must be the live handle of the current `pam_sm_*` call, and the
    /// `Pam` must not outlive that call.
    pub unsafe fn new(h: *mut PamHandle) -> Pam {
        Pam { h }
    }

    /// PAM_USER, asking the application (pam_get_user) when it is not set yet.
    pub fn user(&self) -> Result<String, ItemError> {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: h is live (see `new`); p is a valid out-pointer; a null prompt
        // asks libpam for its default.
        let rc = unsafe { pam_get_user(self.h, &mut p, std::ptr::null()) };
        if rc != PAM_SUCCESS {
            return Err(ItemError {
                code: rc,
                msg: "pam_get_user failed",
            });
        }
        // SAFETY: on success p is null or a NUL-terminated string owned by libpam.
        match unsafe { owned_str(p) } {
            Ok(Some(u)) if !u.is_empty() => Ok(u),
            Ok(_) => Err(ItemError {
                code: PAM_USER_UNKNOWN,
                msg: "PAM_USER is empty",
            }),
            Err(()) => Err(ItemError {
                code: PAM_USER_UNKNOWN,
                msg: "PAM_USER is not valid UTF-8",
            }),
        }
    }

    /// PAM_SERVICE, which libpam always sets.
    pub fn service(&self) -> Result<String, ItemError> {
        let missing = ItemError {
            code: PAM_SERVICE_ERR,
            msg: "PAM_SERVICE is missing or not valid UTF-8",
        };
        match self.string_item(&SERVICE)? {
            Ok(Some(s)) if !s.is_empty() => Ok(s),
            _ => Err(missing),
        }
    }

    /// PAM_RHOST, PAM_TTY or PAM_RUSER: `None` when unset or empty. A value
    /// that is not UTF-8 fails the login (PAM_AUTH_ERR): it cannot be sent
    /// as it is, and dropping it would make it look unset.
    fn optional(&self, item: &StrItem) -> Result<Option<String>, ItemError> {
        match self.string_item(item)? {
            Ok(v) => Ok(v.filter(|s| !s.is_empty())),
            Err(()) => Err(ItemError {
                code: PAM_AUTH_ERR,
                msg: item.not_utf8,
            }),
        }
    }

    /// PAM_RHOST, when the application set it.
    pub fn rhost(&self) -> Result<Option<String>, ItemError> {
        self.optional(&RHOST)
    }

    /// PAM_TTY, when the application set it.
    pub fn tty(&self) -> Result<Option<String>, ItemError> {
        self.optional(&TTY)
    }

    /// PAM_RUSER, when the application set it.
    pub fn ruser(&self) -> Result<Option<String>, ItemError> {
        self.optional(&RUSER)
    }

    /// An item's pointer, null when it is not set; `failed` is the log
    /// line when pam_get_item fails (see [`ItemError`]).
    fn item(&self, item: c_int, failed: &'static str) -> Result<*const c_void, ItemError> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: h is live; p is a valid out-pointer.
        let rc = unsafe { pam_get_item(self.h, item, &mut p) };
        if rc != PAM_SUCCESS {
            return Err(ItemError {
                code: PAM_SYSTEM_ERR,
                msg: failed,
            });
        }
        Ok(p)
    }

    /// A string item: the outer error when it cannot be read, the inner
    /// one when it is not UTF-8.
    fn string_item(&self, item: &StrItem) -> Result<Result<Option<String>, ()>, ItemError> {
        let p = self.item(item.id, item.failed)?;
        // SAFETY: string items are null or NUL-terminated strings owned by libpam.
        Ok(unsafe { owned_str(p.cast()) })
    }

    /// The application's conversation. One that is not set fails at its
    /// first use (PAM_CONV_ERR), as it always has.
    pub fn conversation(&self) -> Result<PamConversation, ItemError> {
        let p = self.item(PAM_CONV, "pam_get_item(PAM_CONV) failed")?;
        Ok(PamConversation {
            conv: p.cast(),
            memory: Watch::start(),
        })
    }

    /// PAM_AUTHTOK of this transaction, with whether an earlier module set
    /// it already.
    pub fn authtok(&self) -> Result<PamAuthtok, ItemError> {
        let p = self.item(PAM_AUTHTOK, "pam_get_item(PAM_AUTHTOK) failed")?;
        Ok(PamAuthtok {
            h: self.h,
            set_before: !p.is_null(),
        })
    }

    /// PAM_AUTHTOK's text, when an earlier module set it (the password
    /// the stack verified): the relay compares answers with it so that a
    /// program answering every question with the password is not counted
    /// as typing wrong codes. `None` when it is not set or not UTF-8; the
    /// copy is wiped when dropped.
    pub fn password(&self) -> Result<Option<Secret>, ItemError> {
        let p = self.item(PAM_AUTHTOK, "pam_get_item(PAM_AUTHTOK) failed")?;
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: PAM_AUTHTOK is a NUL-terminated string owned by libpam.
        let bytes = unsafe { CStr::from_ptr(p.cast()) }.to_bytes();
        // `to_vec` allocates exactly once: no outgrown block keeps a copy.
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Ok(Some(Secret::new(text))),
            Err(e) => {
                e.into_bytes().zeroize();
                Ok(None)
            }
        }
    }

    /// The `publickey` lines of `SSH_AUTH_INFO_0` in the PAM environment
    /// (see [`crate::authinfo`]); `Err` (for the log) when the value
    /// cannot be used, which the caller treats as unset.
    pub fn ssh_auth_info(&self) -> Result<Option<String>, &'static str> {
        // SAFETY: h is live; the name is a NUL-terminated string.
        let p = unsafe { pam_getenv(self.h, crate::authinfo::SSH_AUTH_INFO.as_ptr()) };
        if p.is_null() {
            return crate::authinfo::ssh_key_lines(None);
        }
        // SAFETY: a non-null result is a NUL-terminated string owned by
        // libpam, valid until the environment changes (not during this call).
        let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
        crate::authinfo::ssh_key_lines(Some(bytes))
    }

    /// The single-prompt stash: this handle's PAM data.
    pub fn stash(&self) -> PamStash {
        PamStash { h: self.h }
    }

    /// A logger writing to syslog (authpriv) through this handle.
    pub fn logger(&self) -> PamLog {
        PamLog { h: self.h }
    }
}

/// Copies a C string owned by libpam. `Err` when it is not UTF-8.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
unsafe fn owned_str(p: *const c_char) -> Result<Option<String>, ()> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(|s| Some(s.to_owned())).map_err(|_| ())
}

/// The application's PAM conversation (PAM_CONV), one message per call.
#[derive(Debug)]
pub struct PamConversation {
    conv: *const PamConv,
    /// Allocation failures since it was made: once one happened the call
    /// fails with PAM_BUF_ERR, so nothing more is shown or asked (and no
    /// copy of a text as long as a frame is made from the reserve).
    memory: Watch,
}

impl PamConversation {
    /// Sends one message; returns the application's reply array (may be null).
    fn converse(&self, style: c_int, text: &str) -> Result<*mut PamResponse, ConvError> {
        if self.memory.failed() {
            return Err(ConvError("out of memory"));
        }
        // SAFETY: conv is null or the PAM_CONV item, valid during this call.
        let Some(conv) = (unsafe { self.conv.as_ref() }) else {
            return Err(ConvError("the application set no conversation"));
        };
        let Some(func) = conv.conv else {
            return Err(ConvError("the conversation has no function"));
        };
        let text = CString::new(text).map_err(|_| ConvError("text contains a NUL byte"))?;
        let msg = PamMessage {
            msg_style: style,
            msg: text.as_ptr(),
        };
        let mut msgs: [*const PamMessage; 1] = [&msg];
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        // SAFETY: one valid message that outlives the call; resp is a valid
        // out-pointer; appdata_ptr is the application's own.
        let rc = unsafe { func(1, msgs.as_mut_ptr(), &mut resp, conv.appdata_ptr) };
        if rc != PAM_SUCCESS {
            // SAFETY: resp is null or an array of one malloc'd response.
            unsafe { free_reply(resp) };
            return Err(ConvError("the conversation returned an error"));
        }
        Ok(resp)
    }
}

impl Conversation for PamConversation {
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError> {
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        let resp = self.converse(style, text)?;
        // SAFETY: resp is null or an array of one malloc'd response.
        unsafe { take_reply(resp) }
    }

    fn show(&mut self, kind: Notice, text: &str) -> Result<(), ConvError> {
        let style = match kind {
            Notice::Info => PAM_TEXT_INFO,
            Notice::Error => PAM_ERROR_MSG,
        };
        let resp = self.converse(style, text)?;
        // SAFETY: as above; whatever came back is not needed.
        unsafe { free_reply(resp) };
        Ok(())
    }

    fn closed(&self) -> bool {
        self.memory.failed()
    }
}

/// Copies the answer out of a reply array into a [`Secret`], then wipes and
/// frees the application's buffers.
///
/// # Safety
/// `resp` must be null or a malloc'd array of one response whose `resp` is
/// null or a malloc'd NUL-terminated string.
unsafe fn take_reply(resp: *mut PamResponse) -> Result<Secret, ConvError> {
    if resp.is_null() {
        return Err(ConvError("the conversation returned no reply"));
    }
    // SAFETY: guaranteed by the caller.
    let text = unsafe { (*resp).resp };
    if text.is_null() {
        // SAFETY: resp is the caller's malloc'd array.
        unsafe { libc::free(resp.cast()) };
        return Err(ConvError("the conversation returned no answer"));
    }
    // SAFETY: text is NUL-terminated (caller); the slice excludes the NUL.
    let bytes = unsafe { std::slice::from_raw_parts_mut(text.cast::<u8>(), libc::strlen(text)) };
    let answer = String::from_utf8(bytes.to_vec()).map_err(|e| {
        e.into_bytes().zeroize();
        ConvError("the answer is not valid UTF-8")
    });
    bytes.zeroize();
    // SAFETY: both came from the application's malloc.
    unsafe {
        libc::free(text.cast());
        libc::free(resp.cast());
    }
    answer.map(Secret::new)
}

/// Frees a reply that carries nothing we need (after an info or error line,
/// or after a failed conversation), wiping any text in it.
///
/// # Safety
/// As for [`take_reply`].
unsafe fn free_reply(resp: *mut PamResponse) {
    if resp.is_null() {
        return;
    }
    // SAFETY: guaranteed by the caller.
    let text = unsafe { (*resp).resp };
    if !text.is_null() {
        // SAFETY: NUL-terminated, malloc'd by the application.
        unsafe {
            std::slice::from_raw_parts_mut(text.cast::<u8>(), libc::strlen(text)).zeroize();
            libc::free(text.cast());
        }
    }
    // SAFETY: malloc'd by the application.
    unsafe { libc::free(resp.cast()) };
}

/// PAM_AUTHTOK through libpam, for single-prompt mode.
#[derive(Debug)]
pub struct PamAuthtok {
    h: *mut PamHandle,
    /// Whether it was set when [`Pam::authtok`] read it (by an earlier
    /// module: this one sets it only after asking).
    set_before: bool,
}

impl Authtok for PamAuthtok {
    fn is_set(&self) -> bool {
        self.set_before
    }

    fn set(&mut self, password: &Secret) -> Result<(), &'static str> {
        let password = password.expose().as_bytes();
        if password.contains(&0) {
            return Err("the password contains a NUL byte");
        }
        // Room for the NUL from the start: a Vec that grew would leave a
        // copy of the password behind in the block it moved out of.
        let mut bytes = Vec::with_capacity(password.len() + 1);
        bytes.extend_from_slice(password);
        bytes.push(0);
        // SAFETY: h is live; bytes is NUL-terminated and libpam copies it
        // (and wipes its copy at pam_end).
        let rc = unsafe { pam_set_item(self.h, PAM_AUTHTOK, bytes.as_ptr().cast()) };
        bytes.zeroize();
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err("pam_set_item refused it")
        }
    }
}

/// What the `ask` line keeps in PAM data, with whether a `verify` line has
/// taken it.
struct Stashed {
    typed: Typed,
    taken: bool,
}

/// [`Typed`] kept in PAM data between the `ask` and `verify` lines of one
/// `pam_authenticate`.
#[derive(Debug)]
pub struct PamStash {
    h: *mut PamHandle,
}

impl PamStash {
    /// Replaces the data under [`STASH`] (libpam calls the cleanup of what
    /// was there, which wipes it).
    fn replace(&mut self, data: *mut Stashed) -> c_int {
        let cleanup: Option<CleanupFn> = if data.is_null() {
            None
        } else {
            Some(wipe_stashed)
        };
        // SAFETY: h is live and this runs inside a pam_sm_* call (PAM data
        // may only be set by modules); data is null or a Box we hand over,
        // freed by wipe_stashed.
        unsafe { pam_set_data(self.h, STASH.as_ptr(), data.cast(), cleanup) }
    }
}

impl Stash for PamStash {
    fn put(&mut self, typed: Typed) -> Result<(), &'static str> {
        let data = Box::into_raw(Box::new(Stashed {
            typed,
            taken: false,
        }));
        if self.replace(data) == PAM_SUCCESS {
            return Ok(());
        }
        // SAFETY: libpam did not take it: still ours, from Box::into_raw.
        drop(unsafe { Box::from_raw(data) });
        Err("pam_set_data refused it")
    }

    fn take(&mut self) -> Option<Typed> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: h is live; p is a valid out-pointer.
        let rc = unsafe { pam_get_data(self.h, STASH.as_ptr(), &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: only `put` stores data under this name: a live Box of
        // Stashed, owned by libpam until its cleanup runs, which cannot
        // happen during this call but for the `replace` below.
        let stashed = unsafe { &mut *(p as *mut Stashed) };
        stashed.taken = true;
        // The code moves out (its buffer is not copied); what stays is
        // wiped by the cleanup that `replace` runs.
        let typed = Typed {
            user: std::mem::take(&mut stashed.typed.user),
            code: stashed.typed.code.take(),
        };
        self.replace(std::ptr::null_mut());
        Some(typed)
    }
}

/// libpam's cleanup for [`Stashed`]: at `pam_end`, or when replaced. Frees
/// (and so wipes) it; at a `pam_end` with PAM_SUCCESS, untaken data means
/// no `verify` line ran after the `ask` line, which is logged loudly.
///
/// # Safety
/// Called by libpam with the pointer `PamStash::put` stored.
unsafe extern "C" fn wipe_stashed(pamh: *mut PamHandle, data: *mut c_void, status: c_int) {
    // A panic must not unwind into libpam.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if data.is_null() {
            return;
        }
        // SAFETY: data came from Box::into_raw in `put`; libpam calls this
        // once per stored pointer.
        let stashed = unsafe { Box::from_raw(data.cast::<Stashed>()) };
        let at_end = status & PAM_DATA_REPLACE == 0;
        let result = status & !(PAM_DATA_REPLACE | PAM_DATA_SILENT);
        if at_end && result == PAM_SUCCESS && !stashed.taken && !pamh.is_null() {
            // SAFETY: pam_end runs data cleanups before it frees the handle.
            let pam = unsafe { Pam::new(pamh) };
            // Outside a module call libpam's prefix names neither the
            // module nor the service, so the line names them itself.
            let service = pam.service().unwrap_or_default();
            pam.logger().log(
                Level::Error,
                &format!("pam_twofold({service}:auth): {NO_VERIFY_LINE}"),
            );
        }
        drop(stashed);
    }));
}

/// Writes log lines with `pam_syslog` on facility authpriv.
#[derive(Debug)]
pub struct PamLog {
    h: *mut PamHandle,
}

impl PamLog {
    fn write(&self, level: Level, msg: &CStr) {
        // SAFETY: h is live; the format takes exactly one string argument.
        unsafe {
            pam_syslog(
                self.h,
                libc::LOG_AUTHPRIV | priority(level),
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
    }

    /// Says, without allocating, that an allocation failed during this
    /// call, with the most of the reserve ever in use.
    pub fn log_out_of_memory(&self) {
        let most = reserve::most_used() as libc::c_ulong;
        let size = reserve::RESERVE_BYTES as libc::c_ulong;
        // SAFETY: h is live; the format takes exactly two unsigned longs.
        unsafe {
            pam_syslog(
                self.h,
                libc::LOG_AUTHPRIV | libc::LOG_ERR,
                c"out of memory: an allocation failed during this call and was served from the module's reserve (at most %lu of its %lu bytes used so far); failing the call with PAM_BUF_ERR".as_ptr(),
                most,
                size,
            )
        };
    }
}

fn priority(level: Level) -> c_int {
    match level {
        Level::Error => libc::LOG_ERR,
        Level::Notice => libc::LOG_NOTICE,
        Level::Debug => libc::LOG_DEBUG,
    }
}

impl Log for PamLog {
    fn log(&self, level: Level, msg: &str) {
        // A NUL would end the line early; nothing else needs escaping since
        // the message is passed as an argument to "%s", never as the format.
        let line = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
        self.write(level, &line);
    }
}
