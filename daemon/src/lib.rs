//! twofoldd: sessions, factors, storage and authorization.
//!
//! The binary only parses flags and calls [`run`]; tests start a [`Daemon`]
//! in a thread on a temporary socket with a [`ManualClock`].
//!
//! **Invariants:** identity comes from `SO_PEERCRED` only; time is a
//! parameter ([`Clock`]); no code, secret or key reaches the log; no async
//! runtime.

mod accounts;
mod admin;
pub mod audit;
mod backup;
mod clock;
mod conn;
mod engine;
mod kdf;
mod keys;
mod log;
mod login;
mod login_enroll;
mod peer;
mod policy;
// The renderer the CLI draws with too: one drawing of QR codes for both.
use twofold_qr as qr;
mod selfservice;
mod server;
mod store;
mod syslog;
mod totp;
mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::Stats;
pub use kdf::{M_COST as ARGON2_M_COST, P_COST as ARGON2_P_COST, T_COST as ARGON2_T_COST};
pub use keys::KeyError;
pub use log::{LogSink, Logger, MemoryLog, StderrLog};
pub use login::{locked_message, INVALID_CODE};
pub use login_enroll::{deadline_passed_message, CONFIRM_PROMPT};
pub use server::{bind, run, Daemon, DaemonError, Shutdown};
pub use store::{CommitStats, StoreError, SCHEMA_VERSION};
