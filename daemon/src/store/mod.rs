//! Storage: every persistent fact behind one trait of domain operations.
//! `sqlite/` is the embedded implementation, `postgres/` the fleet's;
//! nothing outside them names SQL or a database type.
//!
//! **Invariant:** every write a login's answer depends on (a spent claim, a
//! failure, a lock, their audit rows) is committed before the answer is
//! sent, each guarded so two concurrent logins cannot both win; a change to
//! an account is never stored without its audit row (one transaction).
//! How soon a committed write is on disk is the [`Durability`] the caller
//! asks for.

pub mod postgres;
pub(crate) mod sent;
pub mod sqlite;

pub use postgres::{ImportReport, PgStore};
pub use sqlite::{export_sqlite, CommitStats, SqliteStore, SCHEMA_VERSION};

use crate::audit::{AuditEvent, ChainRow};
use twofold_config::RateLimitConfig;
use twofold_proto::{AuditRecord, LockInfo, Method};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file or its directory could not be created.
    #[error("database {path}: {source}")]
    Create {
        /// The database file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database refused or failed an operation.
    #[error("database: {0}")]
    Database(String),
    /// The file was written by a newer twofoldd.
    #[error("database schema version {found} is newer than this twofoldd supports ({supported})")]
    TooNew {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A transaction did not commit; nothing in it counts.
    #[error("database: commit failed: {0}")]
    Commit(String),
    /// A query was stopped at its time budget; the message says how to narrow it.
    #[error("{0}")]
    TooLong(String),
    /// The master key cannot open the database's key check (a fleet host
    /// with another key file): nothing it stored could be read.
    #[error("{0}")]
    KeyMismatch(String),
    /// A row holds a value this build cannot interpret.
    #[error("database: corrupt row: {0}")]
    Corrupt(String),
}

/// How soon a committed write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the call returns (what lets someone in: a spent
    /// code, an enrollment, every audit row but a wrong code's).
    Durable,
    /// Committed before the call returns (every other login and a
    /// restarted daemon see it), on disk within 100 ms: a wrong code's
    /// failure, lock and audit rows.
    Deferred,
}

/// A lock in force on a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// When it ends.
    pub until: u64,
    /// Whether it locks every source (else only this one).
    pub user_wide: bool,
}

/// A stored credential of one factor (pending while `confirmed_at` is `None`).
#[derive(Debug, Clone)]
pub struct Credential {
    /// Row identity, bound into the sealed secret's associated data.
    pub id: i64,
    /// The account.
    pub user: String,
    /// The factor it belongs to.
    pub method: Method,
    /// A name the person chose or the factor made (may be empty).
    pub label: String,
    /// The secret, sealed under the master key (empty when there is none).
    pub sealed: Vec<u8>,
    /// The nonce it was sealed with.
    pub nonce: Vec<u8>,
    /// The factor's own parameters, in its own text form.
    pub params: String,
    /// When the enrollment started.
    pub created_at: u64,
    /// When it was confirmed; `None` while pending.
    pub confirmed_at: Option<u64>,
    /// When it last opened a login.
    pub last_used: Option<u64>,
    /// The last counter value it accepted (a time step, an event count);
    /// `None` before the first.
    pub counter: Option<u64>,
}

/// A credential to store as pending.
#[derive(Debug)]
pub struct NewCredential {
    /// Row identity, chosen by the caller (it is sealed into the secret).
    pub id: i64,
    /// The factor.
    pub method: Method,
    /// See [`Credential::label`].
    pub label: String,
    /// See [`Credential::sealed`].
    pub sealed: Vec<u8>,
    /// See [`Credential::nonce`].
    pub nonce: Vec<u8>,
    /// See [`Credential::params`].
    pub params: String,
    /// The user may hold one credential of this method only: a pending one
    /// replaces an older pending one, and a confirmed one refuses the start.
    pub single: bool,
}

/// A single-use code to store (hashed).
#[derive(Debug)]
pub struct NewCode {
    /// Keyed lookup of the normalized code.
    pub lookup: [u8; 32],
    /// argon2id PHC string of the normalized code.
    pub hash: String,
    /// When it stops working; `None`: never.
    pub expires_at: Option<u64>,
}

/// A single-use code found by its lookup.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    /// Row identity.
    pub id: i64,
    /// argon2id PHC string.
    pub hash: String,
    /// When it was used; `None` while unused.
    pub used_at: Option<u64>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<u64>,
}

/// What a login reads before it prompts, in one snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The lock in force on this user and source, if any.
    pub lock: Option<Locked>,
    /// The user's credentials, pending or confirmed.
    pub credentials: Vec<Credential>,
    /// The methods of which the user holds an unused code.
    pub codes: Vec<Method>,
    /// Whether this came from a copy that may miss the last moments'
    /// changes ([`Store::login_snapshot`]): a login reads the database
    /// again before it counts an answer wrong or finds nothing allowed.
    pub copy: bool,
}

/// A matching answer, not yet spent: the store spends it (under its guard)
/// in the transaction that records the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Credential `credential`'s counter (a time step, an event counter)
    /// moves to `value`, which must be above the stored one: a value opens
    /// at most one door.
    Counter {
        /// The credential row.
        credential: i64,
        /// The new counter.
        value: u64,
    },
    /// Code row `id` of `method` is used up.
    Code {
        /// The code row.
        id: i64,
        /// Its method.
        method: Method,
    },
    /// Credential `credential` opened a login without a counter (a
    /// security key that always signs 0): spendable only while its stored
    /// counter is 0 too (a key that once counted cannot go back to 0).
    Unmetered {
        /// The credential row.
        credential: i64,
    },
}

/// A login's success to record.
#[derive(Debug)]
pub struct Success {
    /// The account.
    pub user: String,
    /// The rate-limit source (PAM_RHOST, `""` for local logins).
    pub source: String,
    /// Now.
    pub now: u64,
    /// What to spend (`None`: spent already, e.g. by an enrollment).
    pub claim: Option<Claim>,
    /// The rows to append (the success).
    pub events: Vec<AuditEvent>,
    /// A row appended when the claim is a code, with `left=N` (the unused
    /// codes of its method left) added.
    pub code_used: Option<AuditEvent>,
}

/// How recording a success ended.
#[derive(Debug)]
pub enum SuccessOutcome {
    /// Spent and audited (these rows), the source's failures forgotten.
    Done(Vec<AuditRecord>),
    /// Another login spent the claim first; nothing was written.
    Lost,
    /// A lock made meanwhile refuses the login; nothing was written.
    Locked(Locked),
}

/// A wrong answer to record.
#[derive(Debug)]
pub struct Failure {
    /// The account.
    pub user: String,
    /// The rate-limit source.
    pub source: String,
    /// Now.
    pub now: u64,
    /// The thresholds.
    pub limits: RateLimitConfig,
    /// The failure row (`source_failures=N` is added).
    pub failure: AuditEvent,
    /// The login's denial, appended (with its reason) when this failure
    /// locks, or when it was the `last` try.
    pub denied: AuditEvent,
    /// Whether this was the login's last try.
    pub last: bool,
}

/// How recording a failure ended.
#[derive(Debug)]
pub enum FailureOutcome {
    /// Counted; the lock it made, if any, and the rows appended.
    Recorded(Option<Locked>, Vec<AuditRecord>),
    /// A lock made meanwhile refuses the login; nothing was written.
    Locked(Locked),
}

/// How a change to an account ended.
#[derive(Debug)]
pub enum Change {
    /// Made and audited (these rows).
    Done(Vec<AuditRecord>),
    /// The claim that authorized it was spent by someone else first;
    /// nothing was written.
    Lost,
    /// Its precondition did not hold (nothing pending, nothing enrolled,
    /// nothing to remove); nothing was written.
    Nothing,
}

/// Which factors a removal takes.
#[derive(Debug, Clone)]
pub enum Removal {
    /// Every credential and code of the user.
    All,
    /// The credentials of this method, and the codes of `codes_too` when
    /// no confirmed credential is left (recovery codes hang on one).
    Method {
        /// The factor removed.
        method: Method,
        /// Code methods removed with the last credential.
        codes_too: Vec<Method>,
    },
    /// One credential (a security key of several), and the codes of
    /// `codes_too` when no confirmed credential is left.
    Credential {
        /// The credential row.
        id: i64,
        /// Code methods removed with the last credential.
        codes_too: Vec<Method>,
    },
}

/// Filters of an audit query (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Account.
    pub user: Option<String>,
    /// Event name.
    pub event: Option<String>,
    /// PAM service.
    pub service: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<u64>,
    /// At or before (Unix seconds).
    pub until: Option<u64>,
    /// Ids above this one.
    pub after_id: u64,
}

/// Everything twofoldd keeps, as domain operations.
pub trait Store: Send + Sync + std::fmt::Debug {
    // --- logins ---

    /// The lock, credentials and code methods of `user` from `source`,
    /// read in one snapshot.
    fn snapshot(&self, user: &str, source: &str, now: u64) -> Result<Snapshot, StoreError>;

    /// The snapshot a login decides its prompt from: [`Store::snapshot`],
    /// or a copy kept in memory that may miss changes of the last moments
    /// (the fleet store's replica). A copy is given only where every
    /// decision it leads to is made again by the write that spends the
    /// answer (the spend is by credential row, above the stored counter,
    /// while no lock stands) and `usable` says it shows a factor the login
    /// can check: an account the copy does not hold, holds locked, or
    /// shows with nothing to check (it may have enrolled a moment ago: the
    /// login would skip or refuse without a spend) is read.
    fn login_snapshot(
        &self,
        user: &str,
        source: &str,
        now: u64,
        usable: &dyn Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, StoreError> {
        let _ = usable;
        self.snapshot(user, source, now)
    }

    /// The lock in force and the `method` code of `user` with `lookup`
    /// (used or not), read in one snapshot.
    fn find_code(
        &self,
        user: &str,
        source: &str,
        method: &Method,
        lookup: &[u8; 32],
        now: u64,
    ) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError>;

    /// The lock that refuses a login of `user` from `source` now, if any.
    fn lock(&self, user: &str, source: &str, now: u64) -> Result<Option<Locked>, StoreError>;

    /// In one durable transaction: refuses if a lock is in force, spends
    /// the claim, forgets the source's failures, appends the rows.
    fn record_success(&self, s: Success) -> Result<SuccessOutcome, StoreError>;

    /// In one transaction of the given durability: refuses if a lock is in
    /// force, counts the failure, makes the locks the counts call for, and
    /// appends the failure, lockout and denial rows.
    fn record_failure(
        &self,
        f: Failure,
        durability: Durability,
    ) -> Result<FailureOutcome, StoreError>;

    /// Appends rows to the audit chain.
    fn append_audit(
        &self,
        now: u64,
        events: Vec<AuditEvent>,
        durability: Durability,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Puts deferred writes on disk; `true` when there were any.
    fn sync_deferred(&self) -> std::io::Result<bool>;

    // --- enrollment ---

    /// Every credential of `user`, pending or confirmed.
    fn credentials(&self, user: &str) -> Result<Vec<Credential>, StoreError>;

    /// Stores a pending credential; `false` (nothing changed) when `new`
    /// is single and a confirmed one of its method exists.
    fn start_pending(&self, user: &str, new: NewCredential, now: u64) -> Result<bool, StoreError>;

    /// Deletes pending credential `id` (an enrollment that lapsed).
    fn delete_pending(&self, id: i64) -> Result<(), StoreError>;

    /// Spends `authorize` (when given: e.g. an enrollment token), confirms
    /// pending credential `id` with its first `counter`, replaces the
    /// user's codes of a method with `codes` when given, and appends
    /// `events`, in one durable transaction. `Nothing` when it is no
    /// longer pending.
    fn confirm(
        &self,
        id: i64,
        counter: Option<u64>,
        codes: Option<(Method, Vec<NewCode>)>,
        authorize: Option<Claim>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError>;

    /// Replaces `user`'s `method` codes with `codes` whatever the user has
    /// enrolled (an admin's enrollment token for an unenrolled user), and
    /// appends `events`, in one durable transaction.
    fn issue_codes(
        &self,
        user: &str,
        method: &Method,
        codes: Vec<NewCode>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Spends `authorize` (when given), replaces the user's `method` codes
    /// and appends `events`, in one durable transaction. `Nothing` when the
    /// user has no confirmed credential.
    fn replace_codes(
        &self,
        user: &str,
        method: &Method,
        codes: Vec<NewCode>,
        authorize: Option<Claim>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError>;

    /// Spends `authorize` (when given), removes what `what` says, and
    /// appends `always` plus, when something was removed, `if_removed`, in
    /// one durable transaction. `Nothing` (nothing written) when nothing
    /// was there to remove and `always` is empty.
    fn remove(
        &self,
        user: &str,
        what: Removal,
        authorize: Option<Claim>,
        now: u64,
        always: Vec<AuditEvent>,
        if_removed: Vec<AuditEvent>,
    ) -> Result<Change, StoreError>;

    /// How many unused `method` codes `user` holds.
    fn code_count(&self, user: &str, method: &Method) -> Result<u32, StoreError>;

    /// How many unused `method` codes of `user` still work at `now`, and
    /// the latest expiry among them.
    fn codes_outstanding(
        &self,
        user: &str,
        method: &Method,
        now: u64,
    ) -> Result<(u32, Option<u64>), StoreError>;

    /// Spends `claim` outside a login (an admin resynchronizing a token's
    /// counter) and appends `events`, in one durable transaction; `Lost`
    /// (nothing written) when it was spent already.
    fn spend(&self, claim: Claim, now: u64, events: Vec<AuditEvent>) -> Result<Change, StoreError>;

    /// Whether the daemon has ever stored anything for `user`.
    fn user_exists(&self, user: &str) -> Result<bool, StoreError>;

    /// Up to `limit` known accounts after `after`, sorted by name.
    fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError>;

    // --- rate limits and grace ---

    /// When the user-wide lock of `user` in force now ends, if there is one.
    fn user_lock(&self, user: &str, now: u64) -> Result<Option<u64>, StoreError>;

    /// Clears every lock and failure of `user` and appends `unlock` (with
    /// the counts); returns how many locks were in force.
    fn unlock(
        &self,
        user: &str,
        now: u64,
        unlock: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError>;

    /// Up to `limit` locks in force now after lock `after`, each with its
    /// id, in the order they were made.
    fn locks(&self, now: u64, after: u64, limit: u32) -> Result<Vec<(u64, LockInfo)>, StoreError>;

    /// The stored grace deadline of `user`.
    fn grace_deadline(&self, user: &str) -> Result<Option<u64>, StoreError>;

    /// The deadline of `user`, storing `now + grace` (and appending
    /// `started` with it) when none is stored yet.
    fn start_grace(
        &self,
        user: &str,
        now: u64,
        grace: u64,
        started: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError>;

    /// Sets (or with `None`, forgets) the deadline of `user` and appends `what`.
    fn set_grace(
        &self,
        user: &str,
        now: u64,
        deadline: Option<u64>,
        what: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Every stored deadline, by user.
    fn graces(&self) -> Result<Vec<(String, u64)>, StoreError>;

    // --- figures ---

    /// Users with a confirmed credential or an unused code, per method.
    fn method_users(&self) -> Result<Vec<(Method, u64)>, StoreError>;

    /// Users with a confirmed credential and fewer than `low` unused
    /// `method` codes: (user, left), by user.
    fn low_codes(&self, method: &Method, low: u32) -> Result<Vec<(String, u32)>, StoreError>;

    // --- the audit trail ---

    /// Up to `limit` rows matching `f`, oldest first.
    fn audit_rows(&self, f: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// Walks the chain in one snapshot: the retention anchor, each row in
    /// id order until `f` returns `false`, then the stored head.
    fn audit_walk(&self, f: &mut dyn FnMut(Walk<'_>) -> bool) -> Result<(), StoreError>;

    /// Rows per event since `since`.
    fn audit_counts(&self, since: u64) -> Result<Vec<(String, u64)>, StoreError>;

    /// Retention: forgets failures older than `failures_before` and audit
    /// rows older than `audit_before` (the chain continues from an anchor;
    /// `pruned` is appended when rows went).
    fn prune(
        &self,
        failures_before: u64,
        audit_before: u64,
        now: u64,
        pruned: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    // --- remembered devices ---

    /// [`Store::record_success`], and in the same durable transaction
    /// remembers `devices` for `s.user` (an active one of the same kind
    /// and identity is replaced) and appends `remembered` (one row per
    /// device; `device=ID` is added).
    fn record_success_remembering(
        &self,
        s: Success,
        devices: Vec<NewDevice>,
        remembered: AuditEvent,
    ) -> Result<SuccessOutcome, StoreError> {
        if devices.is_empty() {
            return self.record_success(s);
        }
        let _ = remembered;
        Err(StoreError::Database(
            "this store cannot remember devices".into(),
        ))
    }

    /// A login let through by a remembered device: in one durable
    /// transaction, refuses if a lock is in force, finds an active device
    /// of `user` of `kind` among `whats` (not forgotten, not expired at
    /// `now`), marks it used, forgets the source's failures and appends
    /// `success` (with `device=ID` and `what=…` added).
    fn remembered_login(
        &self,
        user: &str,
        source: &str,
        kind: &str,
        whats: &[String],
        now: u64,
        success: AuditEvent,
    ) -> Result<RememberedOutcome, StoreError> {
        let _ = (user, source, kind, whats, now, success);
        Ok(RememberedOutcome::NotFound)
    }

    /// The active devices of `user` at `now`, oldest first.
    fn devices(&self, user: &str, now: u64) -> Result<Vec<Device>, StoreError> {
        let _ = (user, now);
        Ok(Vec::new())
    }

    /// Forgets device `id` of `user` (`None`: every one) and appends
    /// `forgotten` per device (with `device=ID` and `what=…` added), in
    /// one durable transaction; how many were forgotten.
    fn forget_devices(
        &self,
        user: &str,
        id: Option<i64>,
        now: u64,
        forgotten: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        let _ = (user, id, now, forgotten);
        Ok((0, Vec::new()))
    }

    // --- sent codes and notifications ---

    /// Email codes and the notification outbox; `None` when this store
    /// keeps none.
    fn sends(&self) -> Option<&dyn Sends> {
        None
    }
}

/// A device to remember with a login's success.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// `ssh_key` or `session` (see `crate::devices`).
    pub kind: String,
    /// Its identity (a key's type and fingerprint, a session's numbers).
    pub what: String,
    /// The service of the login that remembered it.
    pub service: String,
    /// When it stops letting logins through.
    pub expires_at: u64,
}

/// A remembered device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Row identity.
    pub id: i64,
    /// See [`NewDevice::kind`].
    pub kind: String,
    /// See [`NewDevice::what`].
    pub what: String,
    /// See [`NewDevice::service`].
    pub service: String,
    /// When it was remembered.
    pub since: u64,
    /// When it last let a login through.
    pub last_used: Option<u64>,
    /// When it stops.
    pub expires_at: u64,
}

/// How a login by a remembered device ended.
#[derive(Debug)]
pub enum RememberedOutcome {
    /// Let through: the device and the rows appended.
    Done(Device, Vec<AuditRecord>),
    /// No active device matches; nothing was written.
    NotFound,
    /// A lock is in force; nothing was written.
    Locked(Locked),
}

/// A single host's whole state, read from its SQLite file to move it
/// into the fleet's database (`twofoldd --migrate-from-sqlite`).
#[derive(Debug, Default)]
pub struct Export {
    /// Accounts and when each was first stored.
    pub users: Vec<(String, u64)>,
    /// Every credential, pending or confirmed (ids kept: they are sealed
    /// into the secrets).
    pub credentials: Vec<Credential>,
    /// Every single-use code, used or not.
    pub codes: Vec<ExportCode>,
    /// Failures still stored: (user, source, at).
    pub failures: Vec<(String, String, u64)>,
    /// Every lock, cleared or not.
    pub locks: Vec<ExportLock>,
    /// Grace deadlines: (user, first seen, deadline).
    pub grace: Vec<(String, u64, u64)>,
    /// Remembered devices: (user, device, when forgotten).
    pub devices: Vec<(String, Device, Option<u64>)>,
    /// The audit chain's rows, in order, with their hashes.
    pub audit: Vec<ChainRow>,
    /// The chain's retention anchor (last id pruned, its hash).
    pub anchor: (u64, Vec<u8>),
    /// The chain's head (last id, its hash).
    pub head: Option<(u64, Vec<u8>)>,
}

/// A single-use code as stored.
#[derive(Debug, Clone)]
pub struct ExportCode {
    /// The account.
    pub user: String,
    /// Its method's name.
    pub method: String,
    /// Keyed lookup.
    pub lookup: Vec<u8>,
    /// argon2id PHC string.
    pub hash: String,
    /// When it was made.
    pub created_at: u64,
    /// When it was used.
    pub used_at: Option<u64>,
    /// When it stops working.
    pub expires_at: Option<u64>,
}

/// A lock as stored.
#[derive(Debug, Clone)]
pub struct ExportLock {
    /// The account.
    pub user: String,
    /// The source it locks; `None`: every source.
    pub source: Option<String>,
    /// When it was made.
    pub created_at: u64,
    /// When it ends.
    pub until: u64,
    /// The failures that made it.
    pub failures: u32,
    /// When an admin cleared it.
    pub cleared_at: Option<u64>,
}

/// One step of an audit walk.
#[derive(Debug)]
pub enum Walk<'a> {
    /// Before each chain's anchor, where the store keeps several chains
    /// (the fleet store: one per host and connection): its name.
    Chain(&'a str),
    /// First: the last id retention removed (0: none) and the hash the
    /// next row must chain from.
    Anchor(u64, &'a [u8]),
    /// A row with its chain fields.
    Row(&'a ChainRow),
    /// Last: the stored head (last id and hash), `None` for an empty chain.
    Head(Option<(u64, &'a [u8])>),
}

/// A code to send, with the limits its send must stay within.
#[derive(Debug)]
pub struct CodeSend {
    /// The account.
    pub user: String,
    /// The factor that sends it.
    pub method: Method,
    /// What it belongs to (a login, an enrollment); counted per bound.
    pub bound: String,
    /// Where it goes.
    pub destination: String,
    /// Keyed MAC of the code with its bound (never the code).
    pub lookup: [u8; 32],
    /// Now.
    pub now: u64,
    /// When it stops working.
    pub expires_at: u64,
    /// Sends to this user of this method within the last hour.
    pub per_user_hour: u32,
    /// Sends for this bound.
    pub per_bound: u32,
    /// Sends to this destination within the last hour. A login's code
    /// (bound [`LOGIN_BOUND`]…, to the account's confirmed destination)
    /// counts only logins' codes to it; any other code counts every code
    /// to it. So codes sent to confirm an address, which any account may
    /// name, never use up the login sends of the address's owner, and the
    /// mailbox still gets at most the limit of each kind.
    pub per_destination_hour: u32,
    /// Sends of this method in all within the last hour.
    pub global_hour: u32,
    /// Appended when the code is stored.
    pub sent: AuditEvent,
    /// Appended (with `limit=`) when a limit refuses the send.
    pub refused: AuditEvent,
}

impl CodeSend {
    /// [`LOGIN_BOUND`] when this is a login's code, whose per-destination
    /// count takes logins' codes only (the stores' statements take it as
    /// a parameter: NULL counts every code).
    pub(crate) fn login_only(&self) -> Option<&'static str> {
        self.bound.starts_with(LOGIN_BOUND).then_some(LOGIN_BOUND)
    }
}

/// What a login's sent code is bound to begins with this (the rest is the
/// login's id); the per-destination limit tells a login's codes by it.
pub const LOGIN_BOUND: &str = "login:";

/// How storing a code to send ended.
#[derive(Debug)]
pub enum CodeSendOutcome {
    /// Stored and audited: send it.
    Stored(Vec<AuditRecord>),
    /// A limit refused it (its name: `user`, `login`, `destination`,
    /// `global`); audited, nothing stored.
    Limited(&'static str, Vec<AuditRecord>),
}

/// A security notification waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Outbox row.
    pub id: i64,
    /// Where it goes.
    pub address: String,
    /// Retries so far.
    pub attempts: u32,
    /// The audit row it tells of (`None` if retention removed it).
    pub record: Option<AuditRecord>,
}

/// Email codes and the notification outbox (schema 5). Its own trait, so
/// the lead's additions to [`Store`] and these never touch one another;
/// every `Store` is one ([`Store::sends`]).
pub trait Sends: Send + Sync {
    /// In one durable transaction: refuses (audited) when a limit of `c`
    /// is reached, else stores the code row and appends `c.sent`.
    fn store_sent_code(&self, c: CodeSend) -> Result<CodeSendOutcome, StoreError>;

    /// A wrong answer where `user`'s unused `method` codes bound to
    /// `bound` could have been typed: each counts a try, and those that
    /// reach `max_tries` stop working.
    fn sent_code_missed(
        &self,
        user: &str,
        method: &Method,
        bound: &str,
        max_tries: u32,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Up to `limit` notifications due at `now`, oldest first.
    fn notices_due(&self, now: u64, limit: u32) -> Result<Vec<Notice>, StoreError>;

    /// Notification `id` was sent (or dropped, with why).
    fn notice_done(&self, id: i64, now: u64, error: &str) -> Result<(), StoreError>;

    /// Notification `id` failed; tried again at `next_at`.
    fn notice_retry(&self, id: i64, next_at: u64, error: &str) -> Result<(), StoreError>;

    /// Notification `id`, handed out by [`Sends::notices_due`], was not
    /// tried (the daemon is stopping): due again at `now`, for any daemon.
    /// A store that does not claim what it hands out has nothing to do.
    fn notice_release(&self, id: i64, now: u64) -> Result<(), StoreError> {
        let _ = (id, now);
        Ok(())
    }

    /// Spends `claim` (a fresh answer that authorizes a change not yet
    /// stored, e.g. starting an enrollment) and appends `events`, in one
    /// durable transaction; `Lost` when it was spent first.
    fn spend_authorization(
        &self,
        claim: Claim,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError>;

    /// A destination changed in one step: spends `authorize` (when
    /// given), confirms pending credential `id`, deletes confirmed
    /// credential `old` of the same user and method, and appends `events`
    /// (their notices reach the old address too), in one durable
    /// transaction. `Nothing` when `id` is no longer pending or `old` is
    /// gone. The default refuses: a store that keeps no sent codes has no
    /// destination to change.
    fn confirm_replacing(
        &self,
        _id: i64,
        _old: i64,
        _authorize: Option<Claim>,
        _now: u64,
        _events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        Err(StoreError::Database(
            "this store cannot change a destination in one step yet".into(),
        ))
    }
}
