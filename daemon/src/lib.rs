//! twofoldd: logins, factors, storage and authorization.
//!
//! The binary only parses flags and calls [`run`]; tests start a [`Daemon`]
//! in a thread on a temporary socket with a [`ManualClock`].
//!
//! Layout: `server/` (socket, workers, peers), `login/` (the conversation
//! core), `requests/` (the CLI's requests), `factors/` (one folder per
//! factor behind one trait), `store/` (one trait of domain operations;
//! `sqlite/` implements it), `audit/` (hash chain and syslog), `crypto/`
//! (master key, sealing, argon2), `reload.rs` (SIGHUP: the configuration
//! read again and put in force for new logins).
//!
//! **Invariants:** identity comes from `SO_PEERCRED` only; time is a
//! parameter ([`Clock`]); no code, secret or key reaches the log; no async
//! runtime; the login core names no factor and no database.

mod accounts;
pub mod audit;
mod budget;
mod clock;
mod crypto;
mod devices;
pub mod dispatch;
mod engine;
pub mod factors;
mod failure;
mod log;
mod login;
mod migrate;
pub mod notify;
pub mod reload;
mod requests;
mod server;
pub mod store;
mod validate;

// The QR renderer the CLI draws with too.
use twofold_qr as qr;

pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::kdf::{M_COST as ARGON2_M_COST, P_COST as ARGON2_P_COST, T_COST as ARGON2_T_COST};
pub use crypto::keys::{KeyError, Keys};
pub use engine::Stats;
pub use failure::Failure;
pub use log::{LogSink, Logger, MemoryLog, StderrLog};
pub use login::enroll::{deadline_passed_message, CONFIRM_PROMPT};
pub use login::{locked_message, INVALID_CODE};
pub use migrate::migrate_from_sqlite;
pub use reload::{ConfigSource, Reload};
pub use server::{bind, run, Daemon, DaemonError, Shutdown};
pub use store::{CommitStats, StoreError, SCHEMA_VERSION};
