//! [`PgStore`]'s [`Store`] operations: each one transaction (a write takes
//! its account's advisory lock first) or one snapshot, whose statements
//! live by concern in `login.rs`, `changes.rs`, `admin.rs`, `devices.rs`
//! and `audit.rs`.

use super::audit::{self, append};
use super::{admin, changes, devices, from_db, login, to_db, PgStore};
use crate::audit::AuditEvent;
use crate::store::{
    AuditFilter, Change, Claim, CodeRecord, Credential, Device, Durability, Failure,
    FailureOutcome, Locked, NewCode, NewCredential, NewDevice, RememberedOutcome, Removal, Sends,
    Snapshot, Store, StoreError, Success, SuccessOutcome, Walk,
};
use twofold_proto::{AuditRecord, LockInfo, Method};

impl Store for PgStore {
    fn snapshot(&self, user: &str, source: &str, now: u64) -> Result<Snapshot, StoreError> {
        let rows = self.read_one(login::snapshot_sql(), &[&user, &source, &to_db(now)])?;
        login::snapshot(&rows)
    }

    fn login_snapshot(
        &self,
        user: &str,
        source: &str,
        now: u64,
        usable: &dyn Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, StoreError> {
        let copy = self
            .replica
            .as_ref()
            .and_then(|r| r.snapshot(user, source, now));
        match copy.filter(|s| usable(s)) {
            Some(s) => Ok(s),
            None => self.snapshot(user, source, now),
        }
    }

    fn find_code(
        &self,
        user: &str,
        source: &str,
        method: &Method,
        lookup: &[u8; 32],
        now: u64,
    ) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError> {
        let rows = self.read_one(
            login::find_code_sql(),
            &[&user, &source, &to_db(now), &method.as_str(), &&lookup[..]],
        )?;
        login::found_code(&rows)
    }

    fn lock(&self, user: &str, source: &str, now: u64) -> Result<Option<Locked>, StoreError> {
        let rows = self.read_one(login::LOCK, &[&user, &source, &to_db(now)])?;
        Ok(rows.first().and_then(|r| login::lock_at(r, 0)))
    }

    fn record_success(&self, s: Success) -> Result<SuccessOutcome, StoreError> {
        if let Some(done) = self.at_once(|conn, ctx| login::success_at_once(conn, ctx, &s))? {
            return Ok(done);
        }
        self.write(true, &s.user, |tx, ctx| {
            login::success(tx, ctx, &s, &[], None)
        })
    }

    fn record_failure(
        &self,
        f: Failure,
        durability: Durability,
    ) -> Result<FailureOutcome, StoreError> {
        self.write(durability == Durability::Durable, &f.user, |tx, ctx| {
            login::failure(tx, ctx, &f)
        })
    }

    fn append_audit(
        &self,
        now: u64,
        events: Vec<AuditEvent>,
        durability: Durability,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.write(durability == Durability::Durable, "", |tx, ctx| {
            append(tx, ctx, now, &events)
        })
    }

    fn sync_deferred(&self) -> std::io::Result<bool> {
        // PostgreSQL's WAL writer flushes `synchronous_commit = off`
        // commits by itself.
        Ok(false)
    }

    fn credentials(&self, user: &str) -> Result<Vec<Credential>, StoreError> {
        self.read(|tx| login::credentials(tx, user))
    }

    fn start_pending(&self, user: &str, new: NewCredential, now: u64) -> Result<bool, StoreError> {
        self.write(true, user, |tx, _| {
            changes::start_pending(tx, user, &new, now)
        })
    }

    fn delete_pending(&self, id: i64) -> Result<(), StoreError> {
        self.write(true, "", |tx, _| {
            tx.execute(
                "DELETE FROM credentials WHERE id = $1 AND confirmed_at IS NULL",
                &[&id],
            )?;
            Ok(())
        })
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
        self.write(true, "", |tx, ctx| {
            changes::confirm(tx, ctx, id, counter, &codes, &authorize, now, &events)
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
        self.write(true, user, |tx, ctx| {
            changes::issue_codes(tx, ctx, user, method, &codes, now, &events)
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
        self.write(true, user, |tx, ctx| {
            changes::replace_codes(tx, ctx, user, method, &codes, &authorize, now, &events)
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
        self.write(true, user, |tx, ctx| {
            changes::remove(tx, ctx, user, &what, &authorize, now, &always, &if_removed)
        })
    }

    fn code_count(&self, user: &str, method: &Method) -> Result<u32, StoreError> {
        self.read(|tx| login::code_count(tx, user, method))
    }

    fn codes_outstanding(
        &self,
        user: &str,
        method: &Method,
        now: u64,
    ) -> Result<(u32, Option<u64>), StoreError> {
        self.read(|tx| {
            let r = tx.query_one(
                "SELECT COUNT(*), MAX(expires_at) FROM codes WHERE username = $1 AND method = $2
                 AND used_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
                &[&user, &method.as_str(), &to_db(now)],
            )?;
            Ok((
                u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
                r.get::<_, Option<i64>>(1).map(from_db),
            ))
        })
    }

    fn spend(&self, claim: Claim, now: u64, events: Vec<AuditEvent>) -> Result<Change, StoreError> {
        self.write(true, "", |tx, ctx| {
            if !login::spend(tx, &claim, now, false)? {
                return Ok(Change::Lost);
            }
            Ok(Change::Done(append(tx, ctx, now, &events)?))
        })
    }

    fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)",
                    &[&user],
                )?
                .get(0))
        })
    }

    fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(|tx| admin::users(tx, after, limit))
    }

    fn user_lock(&self, user: &str, now: u64) -> Result<Option<u64>, StoreError> {
        self.read(|tx| admin::user_lock(tx, user, now))
    }

    fn unlock(
        &self,
        user: &str,
        now: u64,
        unlock: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        self.write(true, user, |tx, ctx| {
            admin::unlock(tx, ctx, user, now, &unlock)
        })
    }

    fn locks(&self, now: u64, after: u64, limit: u32) -> Result<Vec<(u64, LockInfo)>, StoreError> {
        self.read(|tx| admin::locks(tx, now, after, limit))
    }

    fn grace_deadline(&self, user: &str) -> Result<Option<u64>, StoreError> {
        self.read(|tx| admin::grace_deadline(tx, user))
    }

    fn start_grace(
        &self,
        user: &str,
        now: u64,
        grace: u64,
        started: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError> {
        self.write(true, user, |tx, ctx| {
            admin::start_grace(tx, ctx, user, now, grace, &started)
        })
    }

    fn set_grace(
        &self,
        user: &str,
        now: u64,
        deadline: Option<u64>,
        what: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.write(true, user, |tx, ctx| {
            admin::set_grace(tx, ctx, user, now, deadline, &what)
        })
    }

    fn graces(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(admin::graces)
    }

    fn method_users(&self) -> Result<Vec<(Method, u64)>, StoreError> {
        self.read(admin::method_users)
    }

    fn low_codes(&self, method: &Method, low: u32) -> Result<Vec<(String, u32)>, StoreError> {
        self.read(|tx| admin::low_codes(tx, method, low))
    }

    fn audit_rows(&self, f: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            tx.batch_execute("SET LOCAL statement_timeout = 2000")?;
            audit::rows(tx, f, limit)
        })
        .map_err(too_long)
    }

    fn audit_walk(&self, f: &mut dyn FnMut(Walk<'_>) -> bool) -> Result<(), StoreError> {
        self.read(|tx| {
            // Verification walks every chain unbounded.
            tx.batch_execute("SET LOCAL statement_timeout = 0")?;
            tx.unbounded();
            audit::walk(tx, f)
        })
    }

    fn audit_counts(&self, since: u64) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|tx| {
            tx.batch_execute("SET LOCAL statement_timeout = 2000")?;
            audit::counts(tx, since)
        })
        .map_err(too_long)
    }

    fn prune(
        &self,
        failures_before: u64,
        audit_before: u64,
        now: u64,
        pruned: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.write(true, "", |tx, ctx| {
            tx.execute(
                "DELETE FROM failures WHERE at < $1",
                &[&to_db(failures_before)],
            )?;
            let (rows, chains) = audit::prune(tx, audit_before, now)?;
            if rows == 0 {
                return Ok(Vec::new());
            }
            let pruned = pruned
                .clone()
                .with("rows", &rows.to_string())
                .with("chains", &chains.to_string());
            append(tx, ctx, now, &[pruned])
        })
    }

    fn sends(&self) -> Option<&dyn Sends> {
        Some(self)
    }

    fn record_success_remembering(
        &self,
        s: Success,
        devices: Vec<NewDevice>,
        remembered: AuditEvent,
    ) -> Result<SuccessOutcome, StoreError> {
        self.write(true, &s.user, |tx, ctx| {
            login::success(tx, ctx, &s, &devices, Some(&remembered))
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
        self.write(true, user, |tx, ctx| {
            devices::login(tx, ctx, user, source, kind, whats, now, &success)
        })
    }

    fn devices(&self, user: &str, now: u64) -> Result<Vec<Device>, StoreError> {
        self.read(|tx| devices::list(tx, user, now))
    }

    fn forget_devices(
        &self,
        user: &str,
        id: Option<i64>,
        now: u64,
        forgotten: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        self.write(true, user, |tx, ctx| {
            devices::forget(tx, ctx, user, id, now, &forgotten)
        })
    }
}

/// An audit query stopped at its budget says how to narrow it.
fn too_long(e: StoreError) -> StoreError {
    match e {
        StoreError::Database(m) if m.contains("statement timed out") => StoreError::TooLong(
            "the query ran longer than 2.0 s; narrow it (a user, an event, a time range)".into(),
        ),
        other => other,
    }
}
