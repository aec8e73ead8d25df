//! Failure counts and locks (see `[rate_limit]` in the configuration).
//!
//! A failure is recorded, counted, possibly turned into a lock, and audited
//! in one IMMEDIATE transaction committed before the login hears about it,
//! so a crash of twofoldd cannot forget a failure that was reported, and two
//! daemons on one database count each other's failures (a login's failure is
//! fsynced within 100 ms: see `commit.rs`).

use super::audit::append;
use super::{from_db, to_db, Db};
use crate::audit::{event, AuditEvent};
use crate::store::{Locked, StoreError};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use twofold_config::RateLimitConfig;
use twofold_proto::{AuditRecord, LockInfo};

impl Db {
    /// When the user-wide lock of `user` in force now ends, if there is one.
    pub fn user_lock(&self, user: &str, now: u64) -> Result<Option<u64>, StoreError> {
        let until: Option<i64> = self.conn.query_row(
            "SELECT MAX(until) FROM locks
             WHERE user = ?1 AND source IS NULL AND cleared_at IS NULL AND until > ?2",
            params![user, to_db(now)],
            |r| r.get(0),
        )?;
        Ok(until.map(from_db))
    }

    /// Records one failure of `user` from `source`, makes the locks its
    /// counts call for, and appends `failure` (plus a `lockout` row per lock
    /// made) to the audit chain, in one transaction. (Logins do this through
    /// a group commit, with their denial.)
    #[cfg(test)]
    pub fn record_failure(
        &mut self,
        user: &str,
        source: &str,
        now: u64,
        limits: &RateLimitConfig,
        failure: AuditEvent,
    ) -> Result<(Option<Locked>, Vec<AuditRecord>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (locked, events) = failure_rows(&tx, user, source, now, limits, failure)?;
        let recs = append(&tx, now, &events)?;
        tx.commit()?;
        Ok((locked, recs))
    }

    /// Clears every lock and failure of `user` and audits `unlock`; returns
    /// how many locks were in force.
    pub fn unlock(
        &mut self,
        user: &str,
        now: u64,
        unlock: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE locks SET cleared_at = ?2 WHERE user = ?1 AND cleared_at IS NULL AND until > ?2",
            params![user, to_db(now)],
        )?;
        let f = tx.execute("DELETE FROM failures WHERE user = ?1", [user])?;
        let recs = append(
            &tx,
            now,
            &[unlock
                .with("locks", &n.to_string())
                .with("failures", &f.to_string())],
        )?;
        tx.commit()?;
        Ok((u32::try_from(n).unwrap_or(u32::MAX), recs))
    }

    /// Up to `limit` locks in force now after lock `after`, with their ids,
    /// in the order they were made.
    pub fn locks(
        &self,
        now: u64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, LockInfo)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, user, source, created_at, until, failures FROM locks
             WHERE id > ?2 AND cleared_at IS NULL AND until > ?1
             ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![to_db(now), to_db(after), i64::from(limit)], |r| {
                Ok((
                    from_db(r.get(0)?),
                    LockInfo {
                        user: r.get(1)?,
                        source: r.get(2)?,
                        since: from_db(r.get(3)?),
                        until: from_db(r.get(4)?),
                        failures: r.get(5)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Drops failures older than `before` (they can no longer count).
    pub fn prune_failures(&self, before: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM failures WHERE at < ?1", [to_db(before)])?;
        Ok(())
    }
}

/// Inside `tx`: records one failure of `user` from `source` and makes the
/// locks its counts call for; returns the lock now in force (the one ending
/// last) and the audit events to append (`failure`, then a `lockout` per lock).
pub(crate) fn failure_rows(
    tx: &Transaction<'_>,
    user: &str,
    source: &str,
    now: u64,
    limits: &RateLimitConfig,
    failure: AuditEvent,
) -> Result<(Option<Locked>, Vec<AuditEvent>), StoreError> {
    // Cached statements: every wrong code runs these (parsing showed in
    // its profile).
    tx.prepare_cached("INSERT INTO failures (user, source, at) VALUES (?1, ?2, ?3)")?
        .execute(params![user, source, to_db(now)])?;
    // Failures count from the end of the window or from the last lock
    // they caused, whichever is later: a lock spends the failures that made it.
    let count = |source: Option<&str>, window: u64| -> rusqlite::Result<u32> {
        tx.prepare_cached(
            "SELECT COUNT(*) FROM failures
             WHERE user = ?1 AND (?2 IS NULL OR source = ?2) AND at > ?3
               AND at > COALESCE((SELECT MAX(created_at) FROM locks
                                  WHERE user = ?1 AND source IS ?2), -1)",
        )?
        .query_row(
            params![user, source, to_db(now.saturating_sub(window))],
            |r| r.get(0),
        )
    };
    let pair = count(Some(source), limits.source_window.0)?;
    let all = count(None, limits.user_window.0)?;
    let mut events = vec![failure.clone().with("source_failures", &pair.to_string())];
    let mut locked: Option<Locked> = None;
    let mut lock = |scope: Option<&str>, failures: u32, secs: u64| -> rusqlite::Result<()> {
        let until = now.saturating_add(secs);
        tx.execute(
            "INSERT INTO locks (user, source, created_at, until, failures) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user, scope, to_db(now), to_db(until), failures],
        )?;
        events.push(
            failure
                .renamed(event::LOCKOUT)
                .with("scope", if scope.is_some() { "source" } else { "user" })
                .with("failures", &failures.to_string())
                .with("until", &until.to_string()),
        );
        let l = Locked {
            until,
            user_wide: scope.is_none(),
        };
        if locked.is_none_or(|p| p.until < until) {
            locked = Some(l);
        }
        Ok(())
    };
    if pair >= limits.source_failures {
        lock(Some(source), pair, limits.source_lockout.0)?;
    }
    if all >= limits.user_failures {
        lock(None, all, limits.user_lockout.0)?;
    }
    Ok((locked, events))
}

/// Forgets the failures of `user` from `source` (after a successful login
/// there), inside a login's transaction.
pub(crate) fn clear_source_failures(
    conn: &Connection,
    user: &str,
    source: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM failures WHERE user = ?1 AND source = ?2")?
        .execute(params![user, source])?;
    Ok(())
}

/// [`Store::active_lock`] on any connection or transaction (a group
/// commit's, which checks for a lock made while the person was typing).
pub(crate) fn active_lock(
    conn: &Connection,
    user: &str,
    source: &str,
    now: u64,
) -> Result<Option<Locked>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT until, source IS NULL FROM locks
             WHERE user = ?1 AND (source IS NULL OR source = ?2)
               AND cleared_at IS NULL AND until > ?3
             ORDER BY until DESC LIMIT 1",
    )?;
    let mut rows = stmt.query(params![user, source, to_db(now)])?;
    Ok(match rows.next()? {
        Some(r) => Some(Locked {
            until: from_db(r.get(0)?),
            user_wide: r.get(1)?,
        }),
        None => None,
    })
}
