//! The wire protocol between `pam_twofold.so`, the `twofold` CLI and `twofoldd`.
//!
//! A stream Unix socket carries frames: a `u32` big-endian length followed by
//! that many bytes of JSON. Frames over [`MAX_FRAME`] are refused before any
//! buffer is allocated. Every connection starts with [`Request::Hello`] and
//! [`Response::Welcome`].
//!
//! **Invariant:** only this crate derives `Serialize`/`Deserialize` for wire
//! types; secret-bearing fields are [`Secret`], zeroized on drop and redacted
//! in `Debug`.

mod client;
mod connect;
mod frame;
mod messages;
mod method;
mod secret;

pub use client::{check_welcome, hello, response_name, Client, ClientError};
pub use connect::{connect_unix, connect_unix_nonblocking};
pub use frame::{
    read_frame, read_message, write_frame, write_message, FrameDeadline, FrameError, FrameReader,
    TimedRead,
};
pub use messages::{
    Algorithm, AuditRecord, AuditReport, BackupLow, ChainBreak, CredentialInfo, DecodeError,
    DeviceInfo, ErrorKind, FactorStatus, GraceInfo, LockInfo, MethodCount, Request, Response,
    StatsReport, TempCodeInfo, TimeRef, TotpEnrollment, UserStatus,
};
pub use method::Method;
pub use secret::Secret;
/// Re-exported so that `pam_twofold.so`, whose only dependencies are this
/// crate and `libc`, wipes answers with the same crate `Secret` uses.
pub use zeroize;

/// The protocol version this build speaks.
///
/// Version 2: `Denied` may carry the line to show the person (the last
/// "Invalid verification code.", the lockout notice), so a refused login
/// ends without an `Error`/`Ack` round trip; and a client may send its
/// first request right behind `Hello` without waiting for `Welcome`.
///
/// Version 3: a prompt may be answered with `PasswordAnswer` (the person
/// typed the password the stack already verified), which the daemon does
/// not count as a wrong code.
pub const PROTO_VERSION: u32 = 3;

/// The oldest version twofoldd still serves: a version-1 client is sent
/// the closing line as an `Error` to acknowledge, then a bare `Denied`.
pub const PROTO_OLDEST: u32 = 1;

/// The largest frame body, in bytes, either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;

/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/twofold/twofold.sock";
