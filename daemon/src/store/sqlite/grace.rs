//! Enrollment grace deadlines (`enroll` mode) and the figures of `twofold stats`.

use super::audit::append;
use super::{from_db, to_db, Db};
use crate::audit::AuditEvent;
use crate::store::StoreError;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use twofold_proto::{AuditRecord, Method};

impl Db {
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

    /// Users with a confirmed credential or an unused code, per method.
    pub fn method_users(&self) -> Result<Vec<(Method, u64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT method, COUNT(DISTINCT user) FROM credentials
             WHERE confirmed_at IS NOT NULL GROUP BY method
             UNION ALL
             SELECT method, COUNT(DISTINCT user) FROM codes
             WHERE used_at IS NULL GROUP BY method",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((super::method(r.get_ref(0)?.as_str()?)?, from_db(r.get(1)?)));
        }
        Ok(out)
    }

    /// Users with a confirmed credential and fewer than `low` unused
    /// `method` codes: (user, left), by user.
    pub fn low_codes(&self, method: &Method, low: u32) -> Result<Vec<(String, u32)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT u.user, (SELECT COUNT(*) FROM codes c
                             WHERE c.user = u.user AND c.method = ?2 AND c.used_at IS NULL) AS left
             FROM (SELECT DISTINCT user FROM credentials WHERE confirmed_at IS NOT NULL) u
             WHERE left < ?1 ORDER BY u.user",
        )?;
        let rows = stmt
            .query_map(params![low, method.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
