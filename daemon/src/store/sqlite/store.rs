//! [`SqliteStore`]: the [`Store`] operations on one SQLite file. Login
//! writes and account changes run through the group commit; reads take
//! one read transaction (one snapshot) each.

use super::audit::append;
use super::commit::{CommitStats, GroupCommit};
use super::devices;
use super::limits::{active_lock, clear_source_failures, failure_rows};
use super::{
    code_count, confirm_credential, credentials, has_confirmed, insert_codes, spend_counter,
    use_code, Db,
};
use crate::audit::AuditEvent;
use crate::store::{
    AuditFilter, Change, Claim, CodeRecord, Credential, Device, Durability, Failure,
    FailureOutcome, Locked, NewCode, NewCredential, NewDevice, RememberedOutcome, Removal,
    Snapshot, Store, StoreError, Success, SuccessOutcome, Walk,
};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use twofold_proto::{AuditRecord, LockInfo, Method};

/// The embedded store: one connection, shared under a lock, and the group
/// commit that every write goes through.
#[derive(Debug)]
pub struct SqliteStore {
    db: Arc<Mutex<Db>>,
    commit: GroupCommit,
    /// The audit trail's queries, on a read-only connection of their own.
    reader: Mutex<Db>,
}

/// How long one audit query may run (a page of `twofold audit`, the
/// figures of `twofold stats`); verification walks the chain unbounded.
const QUERY_BUDGET: Duration = Duration::from_secs(2);

impl SqliteStore {
    /// Opens (creating 0600, directory 0700, if absent) and migrates the
    /// database; `stats` counts its group commits.
    pub fn open(path: &Path, stats: Arc<CommitStats>) -> Result<SqliteStore, StoreError> {
        let db = Arc::new(Mutex::new(Db::open(path)?));
        Ok(SqliteStore {
            commit: GroupCommit::new(db.clone(), stats),
            db,
            reader: Mutex::new(Db::open_reader(path)?),
        })
    }

    /// The connection. A panic elsewhere cannot leave a transaction open
    /// (it rolls back on drop), so a poisoned lock is safe to reuse.
    pub(super) fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Db> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write<T, F>(&self, durability: Durability, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        match durability {
            Durability::Durable => self.commit.run(work),
            Durability::Deferred => self.commit.run_deferred(work),
        }
    }
}

/// Spends `claim` inside a transaction; `false` when someone spent it first.
pub(super) fn spend(
    conn: &Connection,
    claim: &Claim,
    now: u64,
    login: bool,
) -> Result<bool, StoreError> {
    match claim {
        Claim::Counter { credential, value } => {
            spend_counter(conn, *credential, *value, login.then_some(now))
        }
        Claim::Code { id, .. } => use_code(conn, *id, now),
        Claim::Unmetered { credential } => {
            super::spend_unmetered(conn, *credential, login.then_some(now))
        }
    }
}

/// A login's success (see [`Store::record_success`]), remembering
/// `devices` with their `remembered` rows in the same transaction.
fn success(
    tx: &rusqlite::Transaction<'_>,
    s: Success,
    devices: &[NewDevice],
    remembered: Option<&AuditEvent>,
) -> Result<SuccessOutcome, StoreError> {
    let now = s.now;
    let mut events = s.events;
    if let Some(claim) = &s.claim {
        // A lock made while the person typed refuses the login
        // before the claim is spent.
        if let Some(l) = active_lock(tx, &s.user, &s.source, now)? {
            return Ok(SuccessOutcome::Locked(l));
        }
        if !spend(tx, claim, now, true)? {
            return Ok(SuccessOutcome::Lost);
        }
        if let (Claim::Code { method, .. }, Some(used)) = (claim, s.code_used) {
            let left = code_count(tx, &s.user, method)?;
            events.push(used.with("left", &left.to_string()));
        }
    }
    clear_source_failures(tx, &s.user, &s.source)?;
    if let Some(r) = remembered {
        events.extend(devices::remember(tx, &s.user, devices, now, r)?);
    }
    Ok(SuccessOutcome::Done(append(tx, now, &events)?))
}

impl Store for SqliteStore {
    fn snapshot(&self, user: &str, source: &str, now: u64) -> Result<Snapshot, StoreError> {
        self.db().read(|db| {
            Ok(Snapshot {
                lock: active_lock(&db.conn, user, source, now)?,
                credentials: db.credentials(user)?,
                codes: db.code_methods(user, now)?,
                copy: false,
            })
        })
    }

    fn find_code(
        &self,
        user: &str,
        source: &str,
        method: &Method,
        lookup: &[u8; 32],
        now: u64,
    ) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError> {
        self.db().read(|db| {
            Ok((
                active_lock(&db.conn, user, source, now)?,
                db.code_by_lookup(user, method, lookup)?,
            ))
        })
    }

    fn lock(&self, user: &str, source: &str, now: u64) -> Result<Option<Locked>, StoreError> {
        active_lock(&self.db().conn, user, source, now)
    }

    fn record_success(&self, s: Success) -> Result<SuccessOutcome, StoreError> {
        self.write(Durability::Durable, move |tx| success(tx, s, &[], None))
    }

    fn record_failure(
        &self,
        f: Failure,
        durability: Durability,
    ) -> Result<FailureOutcome, StoreError> {
        self.write(durability, move |tx| {
            // A lock made while the person typed (by another login) refuses
            // this one instead; its answer counts for nothing.
            if let Some(l) = active_lock(tx, &f.user, &f.source, f.now)? {
                return Ok(FailureOutcome::Locked(l));
            }
            let (locked, mut events) =
                failure_rows(tx, &f.user, &f.source, f.now, &f.limits, f.failure)?;
            if let Some(l) = locked {
                let until = l.until.to_string();
                events.push(f.denied.with("until", &until).with("reason", "locked_out"));
            } else if f.last {
                events.push(f.denied.with("reason", "too_many_invalid_codes"));
            }
            Ok(FailureOutcome::Recorded(
                locked,
                append(tx, f.now, &events)?,
            ))
        })
    }

    fn append_audit(
        &self,
        now: u64,
        events: Vec<AuditEvent>,
        durability: Durability,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.write(durability, move |tx| append(tx, now, &events))
    }

    fn sync_deferred(&self) -> std::io::Result<bool> {
        self.commit.sync_deferred()
    }

    fn credentials(&self, user: &str) -> Result<Vec<Credential>, StoreError> {
        credentials(&self.db().conn, user)
    }

    fn start_pending(&self, user: &str, new: NewCredential, now: u64) -> Result<bool, StoreError> {
        self.db().start_pending(user, &new, now)
    }

    fn delete_pending(&self, id: i64) -> Result<(), StoreError> {
        self.db().delete_pending(id)
    }

    fn confirm(
        &self,
        id: i64,
        counter: Option<u64>,
        codes: Option<(Method, Vec<NewCode>)>,
        authorize: Option<Claim>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        self.write(Durability::Durable, move |tx| {
            let pending: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM credentials WHERE id = ?1 AND confirmed_at IS NULL)",
                [id],
                |r| r.get(0),
            )?;
            if !pending {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            let Some(user) = confirm_credential(tx, id, counter, now)? else {
                return Ok(Change::Nothing);
            };
            if let Some((method, codes)) = &codes {
                insert_codes(tx, &user, method, codes, now)?;
            }
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }

    fn issue_codes(
        &self,
        user: &str,
        method: &Method,
        codes: Vec<NewCode>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (user, method) = (user.to_owned(), method.clone());
        self.write(Durability::Durable, move |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO users (name, created_at) VALUES (?1, ?2)",
                rusqlite::params![user, super::to_db(now)],
            )?;
            insert_codes(tx, &user, &method, &codes, now)?;
            append(tx, now, &events)
        })
    }

    fn replace_codes(
        &self,
        user: &str,
        method: &Method,
        codes: Vec<NewCode>,
        authorize: Option<Claim>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        let (user, method) = (user.to_owned(), method.clone());
        self.write(Durability::Durable, move |tx| {
            if !has_confirmed(tx, &user)? {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            insert_codes(tx, &user, &method, &codes, now)?;
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }

    fn spend(&self, claim: Claim, now: u64, events: Vec<AuditEvent>) -> Result<Change, StoreError> {
        self.write(Durability::Durable, move |tx| {
            if !spend(tx, &claim, now, false)? {
                return Ok(Change::Lost);
            }
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }

    fn remove(
        &self,
        user: &str,
        what: Removal,
        authorize: Option<Claim>,
        now: u64,
        always: Vec<AuditEvent>,
        if_removed: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        let user = user.to_owned();
        self.write(Durability::Durable, move |tx| {
            let there: bool = match &what {
                Removal::All => tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE user = ?1)
                         OR EXISTS (SELECT 1 FROM codes WHERE user = ?1)",
                    [&user],
                    |r| r.get(0),
                )?,
                Removal::Method { method, .. } => tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE user = ?1 AND method = ?2)",
                    [user.as_str(), method.as_str()],
                    |r| r.get(0),
                )?,
                Removal::Credential { id, .. } => tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE user = ?1 AND id = ?2)",
                    rusqlite::params![user.as_str(), id],
                    |r| r.get(0),
                )?,
            };
            if !there && always.is_empty() {
                return Ok(Change::Nothing);
            }
            // Checked first, spent next: nothing to remove spends nothing.
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            let codes_too: &[Method] = match &what {
                Removal::All => {
                    tx.execute("DELETE FROM credentials WHERE user = ?1", [&user])?;
                    tx.execute("DELETE FROM codes WHERE user = ?1", [&user])?;
                    &[]
                }
                Removal::Method { method, codes_too } => {
                    tx.execute(
                        "DELETE FROM credentials WHERE user = ?1 AND method = ?2",
                        [user.as_str(), method.as_str()],
                    )?;
                    codes_too
                }
                Removal::Credential { id, codes_too } => {
                    tx.execute(
                        "DELETE FROM credentials WHERE user = ?1 AND id = ?2",
                        rusqlite::params![user.as_str(), id],
                    )?;
                    codes_too
                }
            };
            if !codes_too.is_empty() && !has_confirmed(tx, &user)? {
                for m in codes_too {
                    tx.execute(
                        "DELETE FROM codes WHERE user = ?1 AND method = ?2",
                        [user.as_str(), m.as_str()],
                    )?;
                }
            }
            let mut events = always;
            if there {
                events.extend(if_removed);
            }
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }

    fn code_count(&self, user: &str, method: &Method) -> Result<u32, StoreError> {
        self.db().code_count(user, method)
    }

    fn codes_outstanding(
        &self,
        user: &str,
        method: &Method,
        now: u64,
    ) -> Result<(u32, Option<u64>), StoreError> {
        super::outstanding(&self.db().conn, user, method, now)
    }

    fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        self.db().user_exists(user)
    }

    fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.db().users(after, limit)
    }

    fn user_lock(&self, user: &str, now: u64) -> Result<Option<u64>, StoreError> {
        self.db().user_lock(user, now)
    }

    fn unlock(
        &self,
        user: &str,
        now: u64,
        unlock: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        self.db().unlock(user, now, unlock)
    }

    fn locks(&self, now: u64, after: u64, limit: u32) -> Result<Vec<(u64, LockInfo)>, StoreError> {
        self.db().locks(now, after, limit)
    }

    fn grace_deadline(&self, user: &str) -> Result<Option<u64>, StoreError> {
        self.db().grace_deadline(user)
    }

    fn start_grace(
        &self,
        user: &str,
        now: u64,
        grace: u64,
        started: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError> {
        self.db().start_grace(user, now, grace, started)
    }

    fn set_grace(
        &self,
        user: &str,
        now: u64,
        deadline: Option<u64>,
        what: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.db().set_grace(user, now, deadline, what)
    }

    fn graces(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.db().graces()
    }

    fn method_users(&self) -> Result<Vec<(Method, u64)>, StoreError> {
        self.db().method_users()
    }

    fn low_codes(&self, method: &Method, low: u32) -> Result<Vec<(String, u32)>, StoreError> {
        self.db().low_codes(method, low)
    }

    fn audit_rows(&self, f: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.reader()
            .with_budget(QUERY_BUDGET, |r| r.audit_rows(f, limit))
    }

    fn audit_walk(&self, f: &mut dyn FnMut(Walk<'_>) -> bool) -> Result<(), StoreError> {
        self.reader().read(|db| {
            let (id, hash) = db.audit_anchor()?;
            if !f(Walk::Anchor(id, &hash)) {
                return Ok(());
            }
            db.audit_chain(|row| f(Walk::Row(row)))?;
            let head = db.audit_head()?;
            f(Walk::Head(head.as_ref().map(|(id, h)| (*id, h.as_slice()))));
            Ok(())
        })
    }

    fn audit_counts(&self, since: u64) -> Result<Vec<(String, u64)>, StoreError> {
        self.reader()
            .with_budget(QUERY_BUDGET, |r| r.audit_counts(since))
    }

    fn prune(
        &self,
        failures_before: u64,
        audit_before: u64,
        now: u64,
        pruned: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut db = self.db();
        db.prune_failures(failures_before)?;
        Ok(db.prune_audit(audit_before, now, pruned)?.1)
    }

    fn record_success_remembering(
        &self,
        s: Success,
        devices: Vec<NewDevice>,
        remembered: AuditEvent,
    ) -> Result<SuccessOutcome, StoreError> {
        self.write(Durability::Durable, move |tx| {
            success(tx, s, &devices, Some(&remembered))
        })
    }

    fn remembered_login(
        &self,
        user: &str,
        source: &str,
        kind: &str,
        whats: &[String],
        now: u64,
        success: AuditEvent,
    ) -> Result<RememberedOutcome, StoreError> {
        let (user, source, kind, whats) = (
            user.to_owned(),
            source.to_owned(),
            kind.to_owned(),
            whats.to_vec(),
        );
        self.write(Durability::Durable, move |tx| {
            devices::login(tx, &user, &source, &kind, &whats, now, success)
        })
    }

    fn devices(&self, user: &str, now: u64) -> Result<Vec<Device>, StoreError> {
        devices::list(&self.db().conn, user, now)
    }

    fn forget_devices(
        &self,
        user: &str,
        id: Option<i64>,
        now: u64,
        forgotten: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        let user = user.to_owned();
        self.write(Durability::Durable, move |tx| {
            devices::forget(tx, &user, id, now, forgotten)
        })
    }

    fn sends(&self) -> Option<&dyn crate::store::Sends> {
        Some(self)
    }
}
