//! The real libpam, driven through `pam_start_confdir` with a scripted
//! conversation that records every message a module sends.
//!
//! ```no_run
//! use twofold_tests::pam::{Conversation, PamLogin, PAM_SUCCESS};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let confdir = std::path::Path::new("/tmp/x");
//! let (code, transcript) = PamLogin::new(confdir, "tf-test", "alice")?
//!     .rhost("192.0.2.1")
//!     .authenticate(Conversation::new().answer("123456"))?;
//! assert_eq!(code, PAM_SUCCESS);
//! assert_eq!(transcript.prompts(), ["Verification code: "]);
//! # Ok(()) }
//! ```

pub use crate::conv::{
    answers, enrolling, Conversation, Message, Notices, Reply, Responder, Style, Transcript,
};
use crate::conv::{converse, ConvState};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A PAM return code; `Debug` and `Display` show its name, so failed
/// assertions read `PAM_AUTH_ERR` rather than `7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PamCode(pub i32);

macro_rules! codes {
    ($($name:ident = $v:expr, $doc:expr;)*) => {
        $(#[doc = $doc] pub const $name: PamCode = PamCode($v);)*
        impl PamCode {
            /// The constant's name, e.g. `PAM_AUTH_ERR`, or `PAM_<n>` if unknown.
            pub fn name(self) -> String {
                match self.0 {
                    $($v => stringify!($name).to_owned(),)*
                    n => format!("PAM_{n}"),
                }
            }
        }
    };
}

codes! {
    PAM_SUCCESS = 0, "Success.";
    PAM_OPEN_ERR = 1, "The module could not be loaded (dlopen failed).";
    PAM_SYMBOL_ERR = 2, "A symbol was not found in the module.";
    PAM_SERVICE_ERR = 3, "Error in the service module (e.g. bad options).";
    PAM_SYSTEM_ERR = 4, "System error.";
    PAM_BUF_ERR = 5, "Memory buffer error.";
    PAM_PERM_DENIED = 6, "Permission denied.";
    PAM_AUTH_ERR = 7, "Authentication failure.";
    PAM_CRED_INSUFFICIENT = 8, "Cannot access authentication data.";
    PAM_AUTHINFO_UNAVAIL = 9, "The authentication service is unreachable.";
    PAM_USER_UNKNOWN = 10, "The user is not known.";
    PAM_MAXTRIES = 11, "Too many retries.";
    PAM_NEW_AUTHTOK_REQD = 12, "A new authentication token is required.";
    PAM_ACCT_EXPIRED = 13, "The account has expired.";
    PAM_SESSION_ERR = 14, "Cannot make or remove a session entry.";
    PAM_CRED_UNAVAIL = 15, "Cannot retrieve credentials.";
    PAM_CRED_EXPIRED = 16, "Credentials expired.";
    PAM_CRED_ERR = 17, "Failure setting credentials.";
    PAM_NO_MODULE_DATA = 18, "No module-specific data.";
    PAM_CONV_ERR = 19, "Conversation error.";
    PAM_AUTHTOK_ERR = 20, "Authentication token manipulation error.";
    PAM_AUTHTOK_RECOVERY_ERR = 21, "Authentication information cannot be recovered.";
    PAM_AUTHTOK_LOCK_BUSY = 22, "Authentication token lock busy.";
    PAM_AUTHTOK_DISABLE_AGING = 23, "Authentication token aging disabled.";
    PAM_TRY_AGAIN = 24, "Preliminary check failed; try again.";
    PAM_IGNORE = 25, "The module has no say.";
    PAM_ABORT = 26, "Critical error; abort.";
    PAM_AUTHTOK_EXPIRED = 27, "Authentication token expired.";
    PAM_MODULE_UNKNOWN = 28, "Module unknown.";
    PAM_BAD_ITEM = 29, "Bad item passed to pam_*_item().";
    PAM_CONV_AGAIN = 30, "Conversation function is event driven; call again.";
    PAM_INCOMPLETE = 31, "Call this function again to complete.";
}

/// `pam_setcred` flag: establish credentials.
pub const PAM_ESTABLISH_CRED: c_int = 0x2;
/// `pam_authenticate` flag: modules should show no informational messages.
pub const PAM_SILENT: c_int = 0x8000;

impl PamCode {
    /// libpam's description of the code (`pam_strerror`).
    pub fn describe(self) -> String {
        // SAFETY: Linux-PAM's pam_strerror does not use the handle; it returns
        // a static string for every value.
        let p = unsafe { pam_strerror(std::ptr::null_mut(), self.0) };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: a static NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl fmt::Debug for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.describe())
    }
}

/// A PAM item the application can set or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// PAM_SERVICE.
    Service,
    /// PAM_USER.
    User,
    /// PAM_TTY.
    Tty,
    /// PAM_RHOST.
    Rhost,
    /// PAM_RUSER.
    Ruser,
}

impl Item {
    fn raw(self) -> c_int {
        match self {
            Item::Service => 1,
            Item::User => 2,
            Item::Tty => 3,
            Item::Rhost => 4,
            Item::Ruser => 8,
        }
    }
}

/// Why a PAM transaction could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PamError {
    /// A string given to libpam contains a NUL byte.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// `pam_start_confdir` failed (e.g. the service file is unreadable).
    #[error("pam_start_confdir failed: {0}")]
    Start(PamCode),
    /// `pam_set_item` failed.
    #[error("pam_set_item({item:?}) failed: {code}")]
    SetItem {
        /// The item.
        item: Item,
        /// libpam's code.
        code: PamCode,
    },
}

/// A login to run through libpam: service, user and the items an
/// application (sshd, sudo…) would set.
#[derive(Debug, Clone)]
pub struct PamLogin {
    confdir: CString,
    service: CString,
    user: Option<CString>,
    items: Vec<(Item, Vec<u8>)>,
    flags: c_int,
    /// `NAME=value` entries put into the PAM environment (`pam_putenv`).
    env: Vec<Vec<u8>>,
}

impl PamLogin {
    /// A login of `user` to `service`, whose stack is `confdir/service`.
    pub fn new(confdir: &Path, service: &str, user: &str) -> Result<PamLogin, PamError> {
        Ok(PamLogin {
            confdir: CString::new(confdir.as_os_str().as_bytes())
                .map_err(|_| PamError::Nul("confdir"))?,
            service: CString::new(service).map_err(|_| PamError::Nul("service"))?,
            user: Some(CString::new(user).map_err(|_| PamError::Nul("user"))?),
            items: Vec::new(),
            flags: 0,
            env: Vec::new(),
        })
    }

    /// Puts `NAME=value` (any bytes but NUL) into the PAM environment after
    /// `pam_start`, as sshd puts `SSH_AUTH_INFO_0` there.
    pub fn env(mut self, entry: &[u8]) -> Self {
        self.env.push(entry.to_vec());
        self
    }

    /// Starts without PAM_USER, so a module's `pam_get_user` must ask for it.
    pub fn without_user(mut self) -> Self {
        self.user = None;
        self
    }

    /// Sets PAM_RHOST after `pam_start`, as sshd does.
    pub fn rhost(self, v: &str) -> Self {
        self.item(Item::Rhost, v)
    }

    /// Sets PAM_TTY after `pam_start`.
    pub fn tty(self, v: &str) -> Self {
        self.item(Item::Tty, v)
    }

    /// Sets PAM_RUSER after `pam_start`, as sudo and su do.
    pub fn ruser(self, v: &str) -> Self {
        self.item(Item::Ruser, v)
    }

    /// Sets any item after `pam_start` (a NUL byte is refused by [`PamLogin::start`]).
    pub fn item(self, item: Item, v: &str) -> Self {
        self.item_bytes(item, v.as_bytes())
    }

    /// Sets an item to raw bytes, e.g. ones that are not UTF-8.
    pub fn item_bytes(mut self, item: Item, v: &[u8]) -> Self {
        self.items.push((item, v.to_vec()));
        self
    }

    /// Passes PAM_SILENT to `pam_authenticate`.
    pub fn silent(mut self) -> Self {
        self.flags |= PAM_SILENT;
        self
    }

    /// Opens the transaction: `pam_start_confdir` and the items.
    pub fn start(&self, conv: Conversation) -> Result<PamSession, PamError> {
        let state = Box::new(ConvState::new(conv));
        let pam_conv = Box::new(PamConv {
            conv: Some(converse),
            appdata_ptr: std::ptr::addr_of!(*state).cast_mut().cast(),
        });
        let mut handle: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; pam_conv and the state
        // it points to live in the returned session until pam_end.
        let rc = unsafe {
            pam_start_confdir(
                self.service.as_ptr(),
                self.user.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
                &*pam_conv,
                self.confdir.as_ptr(),
                &mut handle,
            )
        };
        if rc != 0 || handle.is_null() {
            return Err(PamError::Start(PamCode(rc)));
        }
        let mut session = PamSession {
            handle,
            _pam_conv: pam_conv,
            state,
            last: PAM_SUCCESS,
            flags: self.flags,
        };
        for (item, value) in &self.items {
            session.set_item(*item, value)?;
        }
        for entry in &self.env {
            let entry =
                CString::new(entry.as_slice()).map_err(|_| PamError::Nul("an env entry"))?;
            // SAFETY: handle is open; libpam copies the entry.
            let rc = unsafe { pam_putenv(session.handle, entry.as_ptr()) };
            if rc != 0 {
                return Err(PamError::Start(PamCode(rc)));
            }
        }
        Ok(session)
    }

    /// Runs `pam_authenticate` once; returns its code and what the module showed.
    pub fn authenticate(&self, conv: Conversation) -> Result<(PamCode, Transcript), PamError> {
        let mut s = self.start(conv)?;
        let code = s.authenticate();
        Ok((code, s.transcript()))
    }
}

/// An open PAM transaction; `pam_end` runs on drop.
#[derive(Debug)]
pub struct PamSession {
    handle: *mut PamHandle,
    _pam_conv: Box<PamConv>,
    state: Box<ConvState>,
    last: PamCode,
    flags: c_int,
}

impl PamSession {
    /// Runs `pam_authenticate` (with PAM_SILENT if the login asked for it).
    pub fn authenticate(&mut self) -> PamCode {
        // SAFETY: handle is open until drop.
        let rc = unsafe { pam_authenticate(self.handle, self.flags & PAM_SILENT) };
        self.last = PamCode(rc);
        self.last
    }

    /// Runs `pam_setcred` with `flags` (e.g. [`PAM_ESTABLISH_CRED`]).
    pub fn setcred(&mut self, flags: c_int) -> PamCode {
        // SAFETY: handle is open until drop.
        let rc = unsafe { pam_setcred(self.handle, flags) };
        self.last = PamCode(rc);
        self.last
    }

    /// Sets a string item (any bytes but NUL).
    pub fn set_item(&mut self, item: Item, value: impl AsRef<[u8]>) -> Result<(), PamError> {
        let value = CString::new(value.as_ref()).map_err(|_| PamError::Nul("an item"))?;
        // SAFETY: libpam copies string items.
        let rc = unsafe { pam_set_item(self.handle, item.raw(), value.as_ptr().cast()) };
        if rc != 0 {
            return Err(PamError::SetItem {
                item,
                code: PamCode(rc),
            });
        }
        Ok(())
    }

    /// Reads a string item; `None` when unset.
    pub fn get_item(&self, item: Item) -> Option<String> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: handle is open; p is a valid out-pointer.
        let rc = unsafe { pam_get_item(self.handle, item.raw(), &mut p) };
        if rc != 0 || p.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated and owned by libpam.
        Some(
            unsafe { CStr::from_ptr(p.cast()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// Every message the module sent so far.
    pub fn transcript(&self) -> Transcript {
        self.state.transcript()
    }
}

impl Drop for PamSession {
    fn drop(&mut self) {
        // SAFETY: handle is open; it is not used again.
        unsafe { pam_end(self.handle, self.last.0) };
    }
}

/// libpam's opaque handle.
#[repr(C)]
#[derive(Debug)]
pub struct PamHandle {
    _opaque: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PamMessage {
    pub(crate) msg_style: c_int,
    pub(crate) msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PamResponse {
    pub(crate) resp: *mut c_char,
    pub(crate) resp_retcode: c_int,
}

pub(crate) type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

// Linked by soname, so building needs only the runtime libpam0g that every
// Debian system has, not the libpam0g-dev symlink.
#[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}
