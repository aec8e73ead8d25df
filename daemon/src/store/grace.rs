//! Enrollment grace deadlines (`enroll` mode) and the figures of `twofold stats`.

use super::audit::append;
use super::{from_db, to_db, Store, StoreError};
use crate::audit::AuditEvent;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use twofold_proto::AuditRecord;

/// Counts over the accounts, for `twofold stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFigures {
    /// Users with a confirmed TOTP credential.
    pub totp_users: u64,
    /// Users with at least one unused backup code.
    pub backup_users: u64,
    /// Users with a confirmed TOTP credential and fewer than `low` backup codes: (user, left).
    pub low_backup: Vec<(String, u32)>,
}

impl Store {
    /// The stored grace deadline of `user`.
    pub fn grace_deadline(&self, user: &str) -> Result<Option<u64>, StoreError> {
        let d: Option<i64> = self
            .conn
            .query_row("SELECT deadline FROM grace WHERE user = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(d.map(from_db))
    }

    /// The deadline of `user`, storing `now + grace` (and auditing `started`)
    /// when none is stored yet. Returns the deadline and the audit rows written.
    pub fn start_grace(
        &mut self,
        user: &str,
        now: u64,
        grace: u64,
        started: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<i64> = tx
            .query_row("SELECT deadline FROM grace WHERE user = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(d) = existing {
            return Ok((from_db(d), Vec::new()));
        }
        let deadline = now.saturating_add(grace);
        tx.execute(
            "INSERT INTO grace (user, first_seen, deadline) VALUES (?1, ?2, ?3)",
            params![user, to_db(now), to_db(deadline)],
        )?;
        let recs = append(&tx, now, &[started.with("deadline", &deadline.to_string())])?;
        tx.commit()?;
        Ok((deadline, recs))
    }

    /// Sets (or with `None`, forgets) the deadline of `user` and audits `what`.
    pub fn set_grace(
        &mut self,
        user: &str,
        now: u64,
        deadline: Option<u64>,
        what: AuditEvent,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        match deadline {
            Some(d) => tx.execute(
                "INSERT INTO grace (user, first_seen, deadline) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user) DO UPDATE SET deadline = excluded.deadline",
                params![user, to_db(now), to_db(d)],
            )?,
            None => tx.execute("DELETE FROM grace WHERE user = ?1", [user])?,
        };
        let recs = append(&tx, now, &[what])?;
        tx.commit()?;
        Ok(recs)
    }

    /// Every stored deadline, by user.
    pub fn graces(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user, deadline FROM grace ORDER BY user")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, from_db(r.get(1)?))))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Enrollment counts; `low` is the backup-code threshold.
    pub fn account_figures(&self, low: u32) -> Result<AccountFigures, StoreError> {
        let totp_users = self.conn.query_row(
            "SELECT COUNT(*) FROM totp WHERE confirmed_at IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )?;
        let backup_users = self.conn.query_row(
            "SELECT COUNT(DISTINCT user) FROM backup_codes WHERE used_at IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT t.user, (SELECT COUNT(*) FROM backup_codes b
                             WHERE b.user = t.user AND b.used_at IS NULL) AS left
             FROM totp t WHERE t.confirmed_at IS NOT NULL AND left < ?1 ORDER BY t.user",
        )?;
        let low_backup = stmt
            .query_map([low], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccountFigures {
            totp_users: from_db(totp_users),
            backup_users: from_db(backup_users),
            low_backup,
        })
    }
}
