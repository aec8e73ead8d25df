//! The audit chain's statements: append (inside any transaction), query,
//! the rows for verification, and retention.

use super::{from_db, to_db, Db};
use crate::audit::{row_hash, AuditEvent, ChainRow, GENESIS};
use crate::store::{AuditFilter, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use twofold_proto::AuditRecord;

/// Appends `events` at time `at` to the chain, inside `tx`.
pub(crate) fn append(
    tx: &Transaction<'_>,
    at: u64,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    // Cached statements: every login appends (parsing showed in its profile).
    let head: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT last_id, hash FROM audit_head WHERE one = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit (id, at, event, user, service, rhost, tty, method, actor, detail,
                            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let (mut last, mut prev) = match head {
        Some((id, hash)) => (from_db(id), hash),
        None => (0, GENESIS.to_vec()),
    };
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let rec = ev.record(last + 1, at);
        let hash = row_hash(&prev, &rec);
        insert.execute(params![
            to_db(rec.id),
            to_db(rec.at),
            rec.event,
            rec.user,
            rec.service,
            rec.rhost,
            rec.tty,
            rec.method,
            rec.actor,
            rec.detail,
            prev,
            &hash[..]
        ])?;
        last = rec.id;
        prev = hash.to_vec();
        out.push(rec);
    }
    tx.prepare_cached(
        "INSERT INTO audit_head (one, last_id, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
    )?
    .execute(params![to_db(last), prev])?;
    super::sends::queue_notices(tx, at, &out)?;
    Ok(out)
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: from_db(r.get(0)?),
        at: from_db(r.get(1)?),
        event: r.get(2)?,
        user: r.get(3)?,
        service: r.get(4)?,
        rhost: r.get(5)?,
        tty: r.get(6)?,
        method: r.get(7)?,
        actor: r.get(8)?,
        detail: r.get(9)?,
    })
}

impl Db {
    /// Appends events in their own transaction (committed when this returns).
    /// (The daemon appends through its group writer.)
    #[cfg(test)]
    pub fn append_audit(
        &mut self,
        at: u64,
        events: &[AuditEvent],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = append(&tx, at, events)?;
        tx.commit()?;
        Ok(out)
    }

    /// Up to `limit` rows matching `f`, oldest first. The statement names
    /// only the filters given, so a query for one user walks that user's
    /// rows by the `(user, id)` index instead of the whole table.
    pub fn audit_rows(&self, f: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, event, user, service, rhost, tty, method, actor, detail FROM audit
             WHERE id > ?1",
        );
        let mut args = vec![Value::Integer(to_db(f.after_id))];
        let mut and = |clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(u) = &f.user {
            and("user =", Value::Text(u.clone()));
        }
        if let Some(e) = &f.event {
            and("event =", Value::Text(e.clone()));
        }
        if let Some(s) = &f.service {
            and("service =", Value::Text(s.clone()));
        }
        if let Some(t) = f.since {
            and("at >=", Value::Integer(to_db(t)));
        }
        if let Some(t) = f.until {
            and("at <=", Value::Integer(to_db(t)));
        }
        args.push(Value::Integer(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The retention anchor: last pruned id and its hash (0 and zeros when none).
    pub fn audit_anchor(&self) -> Result<(u64, Vec<u8>), StoreError> {
        let a: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT last_id, hash FROM audit_anchor WHERE one = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(a.map(|(id, h)| (from_db(id), h))
            .unwrap_or((0, GENESIS.to_vec())))
    }

    /// The head: last id written and its hash.
    pub fn audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let h: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT last_id, hash FROM audit_head WHERE one = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(h.map(|(id, hash)| (from_db(id), hash)))
    }

    /// Calls `f` with every row in id order, with its chain fields, until it returns `false`.
    pub fn audit_chain(&self, mut f: impl FnMut(&ChainRow) -> bool) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, at, event, user, service, rhost, tty, method, actor, detail,
                    prev_hash, hash FROM audit ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let row = ChainRow {
                record: record(r)?,
                prev_hash: r.get(10)?,
                hash: r.get(11)?,
            };
            if !f(&row) {
                break;
            }
        }
        Ok(())
    }

    /// Removes the oldest rows written before `cutoff` (only a prefix of the
    /// chain: nothing newer goes), moving the anchor to the last one removed
    /// and recording `pruned` in the same transaction. Returns how many went.
    pub fn prune_audit(
        &mut self,
        cutoff: u64,
        now: u64,
        pruned: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The first row young enough to keep bounds the prefix that goes.
        let keep_from: Option<i64> = tx.query_row(
            "SELECT MIN(id) FROM audit WHERE at >= ?1",
            [to_db(cutoff)],
            |r| r.get(0),
        )?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, hash FROM audit WHERE id < COALESCE(?1, 9223372036854775807)
                 ORDER BY id DESC LIMIT 1",
                [keep_from],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((last_id, hash)) = last else {
            return Ok((0, Vec::new()));
        };
        tx.execute(
            "INSERT INTO audit_anchor (one, last_id, hash, pruned_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash,
                                             pruned_at = excluded.pruned_at",
            params![last_id, hash, to_db(now)],
        )?;
        let n = tx.execute("DELETE FROM audit WHERE id <= ?1", [last_id])? as u64;
        let pruned = pruned
            .with("rows", &n.to_string())
            .with("through", &last_id.to_string());
        let recs = append(&tx, now, &[pruned])?;
        tx.commit()?;
        Ok((n, recs))
    }

    /// Rows of each event name since `since`.
    pub fn audit_counts(&self, since: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event, COUNT(*) FROM audit WHERE at >= ?1 GROUP BY event")?;
        let rows = stmt
            .query_map([to_db(since)], |r| {
                Ok((r.get::<_, String>(0)?, from_db(r.get(1)?)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
