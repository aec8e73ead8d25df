//! The daemon's state shared by all connections, and code verification.

use crate::audit::{self, event, AuditEvent};
use crate::backup;
use crate::clock::Clock;
use crate::keys::{random_bytes, Keys, SealError, NONCE_LEN};
use crate::log::Logger;
use crate::store::{CommitStats, GroupCommit, Locked, Store, StoreError, TotpRecord};
use crate::syslog::Syslog;
use crate::totp::{self, TotpParams};
use rusqlite::Transaction;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use twofold_config::{Config, Method as AllowedMethod};
use twofold_proto::{AuditRecord, Secret};

/// How often retention runs (checked on each audit write).
const PRUNE_EVERY: u64 = 3600;

/// Counters the daemon keeps while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    argon2_verifications: AtomicU64,
    commits: Arc<CommitStats>,
    nss_lookups: Arc<AtomicU64>,
}

impl Stats {
    /// How many passwd/group answers came from NSS (not the daemon's cache).
    pub fn nss_lookups(&self) -> u64 {
        self.nss_lookups.load(Ordering::SeqCst)
    }

    /// The group commit's counters: how many logins' writes were committed
    /// in how many transactions.
    pub fn commits(&self) -> &CommitStats {
        &self.commits
    }

    /// How many argon2 verifications of backup codes have run so far.
    pub fn argon2_verifications(&self) -> u64 {
        self.argon2_verifications.load(Ordering::SeqCst)
    }
}

/// Which factor accepted a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A TOTP code.
    Totp,
    /// A backup code.
    BackupCode,
}

impl Method {
    /// Name for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::BackupCode => "backup_code",
        }
    }
}

/// The outcome of checking one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code was valid and has now been used up.
    Accepted(Method),
    /// The code was not accepted; the reason is for the log only.
    Rejected(&'static str),
}

/// A code that matched and is not yet spent: the login spends it (under the
/// statement's guard) in the same transaction as the rest of its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// TOTP credential `id` matched at time `step`.
    Step {
        /// The credential row.
        id: i64,
        /// The matching time step.
        step: u64,
    },
    /// Backup code row `id` matched.
    Backup {
        /// The backup code row.
        id: i64,
    },
}

impl Claim {
    /// The method that matched.
    pub fn method(self) -> Method {
        match self {
            Claim::Step { .. } => Method::Totp,
            Claim::Backup { .. } => Method::BackupCode,
        }
    }

    /// Spends the code inside `tx`; `false` when another login spent it first.
    pub fn spend(self, tx: &Transaction<'_>, now: u64) -> Result<bool, StoreError> {
        match self {
            Claim::Step { id, step } => crate::store::consume_step(tx, id, step, Some(now)),
            Claim::Backup { id } => crate::store::use_backup(tx, id, now),
        }
    }

    /// Why a claim that lost its race is refused (for the log).
    pub fn lost(self) -> &'static str {
        match self {
            Claim::Step { .. } => "code already used",
            Claim::Backup { .. } => "backup code already used",
        }
    }
}

/// What checking a login answer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A valid code, not yet spent.
    Claim(Claim),
    /// Not accepted; the reason is for the log only.
    Rejected(&'static str),
}

/// Checking an answer could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Storage failed; nothing was decided.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The stored secret did not decrypt (wrong key, or a tampered or moved row).
    #[error(transparent)]
    Decrypt(#[from] SealError),
}

/// Everything connections share.
pub(crate) struct Engine {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    store: Arc<Mutex<Store>>,
    /// The group commit every login's answer-deciding writes go through.
    commit: GroupCommit,
    pub log: Logger,
    pub stats: Arc<Stats>,
    /// The passwd and group databases, cached while unchanged.
    pub directory: crate::accounts::Directory,
    syslog: Syslog,
    next_prune: AtomicU64,
    /// A sealed random secret under a name no user can have: an unenrolled
    /// user in `deny` mode is checked against it, so the work (and time) of a
    /// refusal does not tell whether the user exists.
    dummy: TotpRecord,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        keys: Keys,
        store: Store,
        log: Logger,
    ) -> Engine {
        let syslog = Syslog::new(config.audit.syslog_socket.clone());
        let dummy = dummy_credential(&keys);
        let store = Arc::new(Mutex::new(store));
        let directory = crate::accounts::Directory::default();
        let stats = Arc::new(Stats {
            nss_lookups: directory.asked(),
            ..Stats::default()
        });
        Engine {
            config,
            clock,
            keys,
            commit: GroupCommit::new(store.clone(), stats.commits.clone()),
            store,
            log,
            stats,
            directory,
            syslog,
            next_prune: AtomicU64::new(0),
            dummy,
        }
    }

    /// Appends events to the audit chain (one transaction, grouped with
    /// other logins' by the group commit) and sends their syslog lines; runs
    /// retention when it is due. The caller must not hold [`Engine::store`].
    pub fn audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let now = self.now();
        let events = events.to_vec();
        let recs = self.commit(move |tx| crate::store::append(tx, now, &events))?;
        self.syslog_records(&recs);
        self.prune_if_due(now);
        Ok(())
    }

    /// Like [`Engine::audit`] where the caller cannot act on a failure
    /// (the request already succeeded): the failure goes to the log.
    pub fn audit_or_log(&self, events: &[AuditEvent]) {
        if let Err(e) = self.audit(events) {
            self.log.event(
                "audit",
                &[
                    ("event", events.first().map(|e| e.event).unwrap_or("")),
                    ("error", &e.to_string()),
                ],
            );
        }
    }

    /// Sends the syslog lines of rows already in the table.
    pub fn syslog_records(&self, recs: &[AuditRecord]) {
        for r in recs {
            if let Err(Some(w)) =
                self.syslog
                    .send(audit::severity(&r.event), r.at, &audit::syslog_text(r))
            {
                self.log.event("warning", &[("error", &w)]);
            }
        }
    }

    /// Retention: drops audit rows older than `[audit] retain` (keeping the
    /// chain verifiable from an anchor) and failures too old to count.
    pub fn prune_if_due(&self, now: u64) {
        let due = self.next_prune.load(Ordering::SeqCst);
        if now < due
            || self
                .next_prune
                .compare_exchange(
                    due,
                    now.saturating_add(PRUNE_EVERY),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_err()
        {
            return;
        }
        let cutoff = now.saturating_sub(self.config.audit.retain.0);
        let rl = &self.config.rate_limit;
        let oldest_counted = now.saturating_sub(rl.source_window.0.max(rl.user_window.0));
        let pruned = AuditEvent::new(event::AUDIT_PRUNED, "", "twofoldd")
            .with("retain", &self.config.audit.retain.to_string());
        let result = {
            let mut store = self.store();
            store
                .prune_failures(oldest_counted)
                .and_then(|()| store.prune_audit(cutoff, now, pruned))
        };
        match result {
            Ok((_, recs)) => self.syslog_records(&recs),
            Err(e) => self.log.event("audit", &[("prune_error", &e.to_string())]),
        }
    }

    /// Does the work of checking a wrong TOTP code (decrypt, HMACs over the
    /// skew window) against a secret no one has; never accepts.
    pub fn dummy_verify(&self, answer: &Secret) {
        let d = &self.dummy;
        if let Ok(secret) = self.keys.open_totp(&d.user, d.id, &d.nonce, &d.ciphertext) {
            let _ = totp::matching_step(
                &d.params,
                &secret,
                self.now(),
                self.config.totp.skew,
                answer.expose().trim(),
            );
        }
        // The same read a real check makes.
        let _ = self.store().totp(&d.user);
    }

    /// Runs a login's writes in the next group transaction (see
    /// [`GroupCommit`]); returns once they are durable. The caller must not
    /// hold [`Engine::store`] (the group's leader needs it).
    pub fn commit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit.run(work)
    }

    /// Like [`Engine::commit`], but returns once the writes are committed,
    /// before they are fsynced (see [`GroupCommit::run_deferred`]): for a
    /// wrong code's failure and audit rows.
    pub fn commit_deferred<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit.run_deferred(work)
    }

    /// Puts deferred writes on disk (twofoldd calls this every 100 ms and
    /// when it stops); a failure is logged and retried next time.
    pub fn sync_deferred(&self) {
        if let Err(e) = self.commit.sync_deferred() {
            self.log
                .event("database", &[("error", &format!("syncing the log: {e}"))]);
        }
    }

    /// The store. A panic in another connection cannot leave a transaction
    /// open (it rolls back on drop), so a poisoned lock is safe to reuse.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Whether the user has anything a login can check: a confirmed TOTP
    /// credential or an unused backup code.
    pub fn has_login_factor(&self, user: &str) -> Result<bool, StoreError> {
        Ok(!self.login_factors(user)?.is_empty())
    }

    /// The methods the user can answer a login with now.
    pub fn login_factors(&self, user: &str) -> Result<Vec<AllowedMethod>, StoreError> {
        self.store().read(|s| factors_in(s, user))
    }

    /// The lock on `user` from `source`, the methods they can answer with
    /// and their TOTP credential, read in one snapshot: what a login needs
    /// before it prompts (the credential is what [`Engine::check_login`]
    /// checks a code against afterwards).
    pub fn login_state(&self, user: &str, source: &str) -> Result<LoginState, StoreError> {
        let now = self.now();
        self.store().read(|s| {
            let lock = s.active_lock(user, source, now)?;
            let totp = s.totp(user)?;
            let backup = s.has_unused_backup_code(user)?;
            Ok(LoginState {
                lock,
                factors: factors_of(totp.as_ref(), backup),
                totp,
            })
        })
    }

    /// Checks a login answer: a TOTP code or a backup code, among the
    /// `allowed` methods only, unless a lock on `user` from `source` is in
    /// force now (then the answer is not checked: `Err(lock)`). What the
    /// check needs is read in one snapshot with the lock; no argon2 or
    /// decryption runs while the store is held. Writes nothing: a matching
    /// code comes back as a [`Claim`] for the login to spend in its own
    /// transaction. At most one argon2 verification runs, and only for a
    /// code with a matching lookup.
    ///
    /// A code shaped like a TOTP code for `known` (the credential
    /// [`Engine::login_state`] read before the prompt) is checked against
    /// it without reading again. Its lock check is then the login's write:
    /// the transaction that records the failure or spends the step looks
    /// for a lock made meanwhile first, and refuses the login if there is
    /// one (nothing about the code is told). A credential removed or
    /// replaced meanwhile cannot be spent: the spend is by row id, and a new
    /// credential gets a new random id.
    pub fn check_login(
        &self,
        user: &str,
        source: &str,
        answer: &Secret,
        allowed: &[AllowedMethod],
        known: Option<&TotpRecord>,
    ) -> Result<Result<Found, Locked>, VerifyError> {
        if answer.len() > backup::MAX_ANSWER {
            return Ok(Ok(Found::Rejected("answer too long")));
        }
        let typed = answer.expose().trim();
        if let Some(cred) = known.filter(|c| {
            c.confirmed_at.is_some()
                && allowed.contains(&AllowedMethod::Totp)
                && totp::looks_like_code(&c.params, typed)
        }) {
            return Ok(Ok(match self.totp_step(cred, typed)? {
                Some(step) => Found::Claim(Claim::Step { id: cred.id, step }),
                None => Found::Rejected("wrong code"),
            }));
        }
        // The keyed lookup is computed before reading (cheap), so one
        // snapshot holds everything a backup code's check needs.
        let backup = allowed
            .contains(&AllowedMethod::BackupCode)
            .then(|| backup::normalize(typed))
            .flatten()
            .map(|n| {
                let lookup = self.keys.backup_lookup(user, &n);
                (n, lookup)
            });
        let now = self.now();
        let (lock, cred, row) = self.store().read(|s| {
            let lock = s.active_lock(user, source, now)?;
            let cred = s.totp(user)?;
            let row = match &backup {
                Some((_, lookup)) => s.backup_by_lookup(user, lookup)?,
                None => None,
            };
            Ok((lock, cred, row))
        })?;
        if let Some(l) = lock {
            return Ok(Err(l));
        }
        let cred =
            cred.filter(|t| t.confirmed_at.is_some() && allowed.contains(&AllowedMethod::Totp));
        if let Some(cred) = cred
            .as_ref()
            .filter(|c| totp::looks_like_code(&c.params, typed))
        {
            return Ok(Ok(match self.totp_step(cred, typed)? {
                Some(step) => Found::Claim(Claim::Step { id: cred.id, step }),
                None => Found::Rejected("wrong code"),
            }));
        }
        if !allowed.contains(&AllowedMethod::BackupCode) {
            return Ok(Ok(Found::Rejected("not an allowed code")));
        }
        let Some((normalized, _)) = backup else {
            return Ok(Ok(Found::Rejected("not a code")));
        };
        let Some(row) = row else {
            return Ok(Ok(Found::Rejected("wrong code")));
        };
        if row.used_at.is_some() {
            return Ok(Ok(Found::Rejected("backup code already used")));
        }
        self.stats
            .argon2_verifications
            .fetch_add(1, Ordering::SeqCst);
        if !backup::verify(&normalized, &row.hash) {
            return Ok(Ok(Found::Rejected("wrong code")));
        }
        Ok(Ok(Found::Claim(Claim::Backup { id: row.id })))
    }

    /// The time step `code` matches for `cred`, if any (decrypts the secret).
    fn totp_step(&self, cred: &TotpRecord, code: &str) -> Result<Option<u64>, VerifyError> {
        let secret = self
            .keys
            .open_totp(&cred.user, cred.id, &cred.nonce, &cred.ciphertext)?;
        Ok(totp::matching_step(
            &cred.params,
            &secret,
            self.now(),
            self.config.totp.skew,
            code,
        ))
    }

    /// Checks a TOTP code against a confirmed credential and, if it matches,
    /// consumes its time step (atomically: a step opens at most one door).
    pub fn verify_totp(
        &self,
        cred: &TotpRecord,
        code: &str,
        used_at: Option<u64>,
    ) -> Result<Verdict, VerifyError> {
        if !totp::looks_like_code(&cred.params, code) {
            return Ok(Verdict::Rejected("not a code"));
        }
        let Some(step) = self.totp_step(cred, code)? else {
            return Ok(Verdict::Rejected("wrong code"));
        };
        if self.store().consume_step(cred.id, step, used_at)? {
            Ok(Verdict::Accepted(Method::Totp))
        } else {
            Ok(Verdict::Rejected("code already used"))
        }
    }
}

/// What a login needs before it prompts (see [`Engine::login_state`]).
#[derive(Debug)]
pub struct LoginState {
    /// The lock in force on this user and source, if any.
    pub lock: Option<Locked>,
    /// The methods the user can answer with.
    pub factors: Vec<AllowedMethod>,
    /// The user's TOTP credential, pending or confirmed.
    pub totp: Option<TotpRecord>,
}

/// The methods `user` can answer a login with, read from `s`.
fn factors_in(s: &Store, user: &str) -> Result<Vec<AllowedMethod>, StoreError> {
    let totp = s.totp(user)?;
    Ok(factors_of(totp.as_ref(), s.has_unused_backup_code(user)?))
}

/// The methods a confirmed credential and an unused backup code allow.
fn factors_of(totp: Option<&TotpRecord>, backup: bool) -> Vec<AllowedMethod> {
    let mut m = Vec::new();
    if totp.is_some_and(|t| t.confirmed_at.is_some()) {
        m.push(AllowedMethod::Totp);
    }
    if backup {
        m.push(AllowedMethod::BackupCode);
    }
    m
}

/// Seals a random secret for [`Engine::dummy_verify`]; the row id and user
/// name can match no real row (ids are positive, names cannot hold NUL).
fn dummy_credential(keys: &Keys) -> TotpRecord {
    let mut secret = zeroize::Zeroizing::new([0u8; 20]);
    let _ = random_bytes(&mut secret[..]);
    let user = "\0dummy".to_owned();
    let (ciphertext, nonce) = keys
        .seal_totp(&user, 0, &secret[..])
        .unwrap_or_else(|_| (Vec::new(), [0u8; NONCE_LEN]));
    TotpRecord {
        id: 0,
        user,
        ciphertext,
        nonce: nonce.to_vec(),
        params: TotpParams {
            algorithm: twofold_proto::Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        created_at: 0,
        confirmed_at: Some(0),
        last_used: None,
    }
}
