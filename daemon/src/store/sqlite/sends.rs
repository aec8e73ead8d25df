//! Schema 5's statements: codes sent by mail (stored with their limits
//! counted in the same transaction) and the outbox of security
//! notifications, filled by [`queue_notices`] inside the transaction that
//! appends the event's audit row, so an event and its notice commit or
//! vanish together.

use super::audit::append;
use super::{from_db, to_db, SqliteStore};
use crate::audit::event;
use crate::audit::AuditEvent;
use crate::store::{
    Change, Claim, CodeSend, CodeSendOutcome, Durability, Notice, Sends, StoreError,
};
use rusqlite::{params, Connection, Transaction};
use twofold_proto::{AuditRecord, Method};

use crate::store::sent::{KEEP_NOTICES, KEEP_SENT, LOCKOUT_DEDUP, NOTIFIED};

/// Run on each connection: a confirmed address deleted in a transaction
/// (a removal, an admin's disable) is remembered in a temporary table of
/// that connection, so the notice of that very event still reaches it.
/// Rolled back with the transaction; emptied by [`queue_notices`].
pub(crate) fn on_open(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS gone_addresses (user TEXT NOT NULL, address TEXT NOT NULL);
         CREATE TEMP TRIGGER IF NOT EXISTS email_gone AFTER DELETE ON main.credentials
         WHEN OLD.method = 'email' AND OLD.confirmed_at IS NOT NULL
         BEGIN INSERT INTO gone_addresses (user, address) VALUES (OLD.user, OLD.params); END;",
    )?;
    Ok(())
}

/// Queues a notice of each row of `recs` that a person is told of, to each
/// confirmed address of its user (and each removed in this transaction).
pub(crate) fn queue_notices(
    tx: &Transaction<'_>,
    at: u64,
    recs: &[AuditRecord],
) -> Result<(), StoreError> {
    for rec in recs {
        if rec.user.is_empty() || !NOTIFIED.contains(&rec.event.as_str()) {
            continue;
        }
        if rec.event == event::LOCKOUT {
            let recent: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE user = ?1 AND event = ?2
                                    AND created_at > ?3)",
                )?
                .query_row(
                    params![rec.user, rec.event, to_db(at.saturating_sub(LOCKOUT_DEDUP))],
                    |r| r.get(0),
                )?;
            if recent {
                continue;
            }
        }
        let mut addresses: Vec<String> = tx
            .prepare_cached(
                "SELECT params FROM credentials
                 WHERE user = ?1 AND method = 'email' AND confirmed_at IS NOT NULL
                 UNION SELECT address FROM temp.gone_addresses WHERE user = ?1",
            )?
            .query_map([&rec.user], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        addresses.sort();
        addresses.dedup();
        let mut insert = tx.prepare_cached(
            "INSERT INTO outbox (user, address, event, audit_id, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?;
        for a in addresses {
            insert.execute(params![rec.user, a, rec.event, to_db(rec.id), to_db(at)])?;
        }
    }
    tx.prepare_cached("DELETE FROM temp.gone_addresses")?
        .execute([])?;
    Ok(())
}

fn count(tx: &Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> Result<u32, StoreError> {
    Ok(tx.prepare_cached(sql)?.query_row(p, |r| r.get(0))?)
}

impl Sends for SqliteStore {
    fn store_sent_code(&self, c: CodeSend) -> Result<CodeSendOutcome, StoreError> {
        self.write(Durability::Durable, move |tx| {
            let m = c.method.as_str();
            let hour = to_db(c.now.saturating_sub(3600));
            tx.prepare_cached(
                "DELETE FROM codes WHERE method = ?1 AND destination IS NOT NULL AND created_at < ?2",
            )?
            .execute(params![m, to_db(c.now.saturating_sub(KEEP_SENT))])?;
            let limits = [
                (
                    "user",
                    count(
                        tx,
                        "SELECT COUNT(*) FROM codes WHERE user = ?1 AND method = ?2
                         AND destination IS NOT NULL AND created_at > ?3",
                        params![c.user, m, hour],
                    )?,
                    c.per_user_hour,
                ),
                (
                    "login",
                    count(
                        tx,
                        "SELECT COUNT(*) FROM codes WHERE user = ?1 AND method = ?2 AND bound = ?3",
                        params![c.user, m, c.bound],
                    )?,
                    c.per_bound,
                ),
                (
                    "destination",
                    count(
                        tx,
                        // A login's code counts logins' codes only (see
                        // `CodeSend::per_destination_hour`).
                        "SELECT COUNT(*) FROM codes WHERE destination = ?1 AND created_at > ?2
                         AND (?3 IS NULL OR substr(bound, 1, length(?3)) = ?3)",
                        params![c.destination, hour, c.login_only()],
                    )?,
                    c.per_destination_hour,
                ),
                (
                    "global",
                    count(
                        tx,
                        "SELECT COUNT(*) FROM codes WHERE method = ?1
                         AND destination IS NOT NULL AND created_at > ?2",
                        params![m, hour],
                    )?,
                    c.global_hour,
                ),
            ];
            if let Some((name, _, _)) = limits.iter().find(|(_, n, max)| n >= max) {
                let recs = append(tx, c.now, &[c.refused.with("limit", name)])?;
                return Ok(CodeSendOutcome::Limited(name, recs));
            }
            tx.execute(
                "INSERT OR IGNORE INTO users (name, created_at) VALUES (?1, ?2)",
                params![c.user, to_db(c.now)],
            )?;
            tx.prepare_cached(
                "INSERT INTO codes (user, method, lookup, hash, created_at, expires_at, bound,
                                    destination)
                 VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                c.user,
                m,
                &c.lookup[..],
                to_db(c.now),
                to_db(c.expires_at),
                c.bound,
                c.destination
            ])?;
            Ok(CodeSendOutcome::Stored(append(tx, c.now, &[c.sent])?))
        })
    }

    fn sent_code_missed(
        &self,
        user: &str,
        method: &Method,
        bound: &str,
        max_tries: u32,
        now: u64,
    ) -> Result<(), StoreError> {
        let (user, m, bound) = (
            user.to_owned(),
            method.as_str().to_owned(),
            bound.to_owned(),
        );
        self.write(Durability::Deferred, move |tx| {
            tx.prepare_cached(
                "UPDATE codes SET tries = tries + 1,
                    expires_at = CASE WHEN tries + 1 >= ?4 THEN MIN(expires_at, ?5)
                                      ELSE expires_at END
                 WHERE user = ?1 AND method = ?2 AND bound = ?3 AND used_at IS NULL",
            )?
            .execute(params![user, m, bound, max_tries, to_db(now)])?;
            Ok(())
        })
    }

    fn notices_due(&self, now: u64, limit: u32) -> Result<Vec<Notice>, StoreError> {
        let db = self.db();
        let conn = db.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT o.id, o.address, o.attempts, a.id, a.at, a.event, a.user, a.service, a.rhost,
                    a.tty, a.method, a.actor, a.detail
             FROM outbox o LEFT JOIN audit a ON a.id = o.audit_id
             WHERE o.sent_at IS NULL AND o.next_at <= ?1 ORDER BY o.id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![to_db(now), i64::from(limit)], |r| {
                let record = match r.get::<_, Option<i64>>(3)? {
                    None => None,
                    Some(id) => Some(AuditRecord {
                        id: from_db(id),
                        at: from_db(r.get(4)?),
                        event: r.get(5)?,
                        user: r.get(6)?,
                        service: r.get(7)?,
                        rhost: r.get(8)?,
                        tty: r.get(9)?,
                        method: r.get(10)?,
                        actor: r.get(11)?,
                        detail: r.get(12)?,
                    }),
                };
                Ok(Notice {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    attempts: r.get(2)?,
                    record,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn notice_done(&self, id: i64, now: u64, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(Durability::Durable, move |tx| {
            tx.execute(
                "UPDATE outbox SET sent_at = ?2, error = ?3, attempts = attempts + 1 WHERE id = ?1",
                params![id, to_db(now), error],
            )?;
            tx.prepare_cached("DELETE FROM outbox WHERE sent_at < ?1")?
                .execute([to_db(now.saturating_sub(KEEP_NOTICES))])?;
            Ok(())
        })
    }

    fn notice_retry(&self, id: i64, next_at: u64, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(Durability::Durable, move |tx| {
            tx.execute(
                "UPDATE outbox SET next_at = ?2, error = ?3, attempts = attempts + 1 WHERE id = ?1",
                params![id, to_db(next_at), error],
            )?;
            Ok(())
        })
    }

    fn spend_authorization(
        &self,
        claim: Claim,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        self.write(Durability::Durable, move |tx| {
            if !super::store::spend(tx, &claim, now, false)? {
                return Ok(Change::Lost);
            }
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }

    fn confirm_replacing(
        &self,
        id: i64,
        old: i64,
        authorize: Option<Claim>,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        self.write(Durability::Durable, move |tx| {
            // The old credential must be a confirmed one of the same user
            // and method as the pending one.
            let same: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM credentials n JOIN credentials o
                                ON o.user = n.user AND o.method = n.method
                                WHERE n.id = ?1 AND n.confirmed_at IS NULL
                                AND o.id = ?2 AND o.confirmed_at IS NOT NULL)",
                params![id, old],
                |r| r.get(0),
            )?;
            if !same {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !super::store::spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            if super::confirm_credential(tx, id, None, now)?.is_none() {
                return Ok(Change::Nothing);
            }
            // Deleted before the row is appended: the trigger keeps the old
            // address for this transaction's notices.
            tx.execute("DELETE FROM credentials WHERE id = ?1", [old])?;
            Ok(Change::Done(append(tx, now, &events)?))
        })
    }
}
