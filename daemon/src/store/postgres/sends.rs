//! Codes sent by mail or SMS and the outbox of security notifications on
//! PostgreSQL (the SQLite store's `sends.rs`, made safe for many hosts):
//! - a code is stored with its limits counted in the same transaction,
//!   under the account's advisory lock (per user, per login) and the
//!   method's sends lock (per destination, in all), so two hosts cannot
//!   both pass a limit with one send left;
//! - a notice is queued by [`queue_notices`] inside the transaction that
//!   appends its event's audit row (commit or vanish together);
//! - [`Sends::notices_due`] *claims* what it returns: one `UPDATE` of the
//!   due rows it could lock (`FOR UPDATE SKIP LOCKED`) moves them
//!   [`CLAIM_LEASE`] seconds ahead, so a notice is handed to one host; the
//!   host marks it sent (or due again) when done. A host that dies holding
//!   a claim leaves its notices to whichever host looks after the lease.

use super::audit::append;
use super::login::spend;
use super::{from_db, to_db, Ctx, PgStore, Tx};
use crate::audit::{event, AuditEvent};
use crate::store::{Change, Claim, CodeSend, CodeSendOutcome, Notice, Sends, StoreError};
use twofold_proto::{AuditRecord, Method};

use crate::store::sent::{KEEP_NOTICES, KEEP_SENT, LOCKOUT_DEDUP, NOTIFIED};

/// How long a claimed notice stays with the host that claimed it before
/// another host may take it: longer than a batch of sends can take
/// (16 notices, each bounded by `[email] timeout` + 1 s) at the default
/// timeout, so only a host that died resends.
pub const CLAIM_LEASE: u64 = 900;

/// Queues a notice of each row of `recs` that a person is told of, to each
/// confirmed address of its user (and each deleted in this transaction,
/// which the `email_gone` trigger wrote down).
pub(crate) fn queue_notices(
    tx: &mut Tx<'_>,
    at: u64,
    recs: &[AuditRecord],
) -> Result<(), StoreError> {
    let told: Vec<&AuditRecord> = recs
        .iter()
        .filter(|r| !r.user.is_empty() && NOTIFIED.contains(&r.event.as_str()))
        .collect();
    for (i, rec) in told.iter().enumerate() {
        // One statement a row: its addresses (a lockout's only when no
        // lockout of the user was queued within `LOCKOUT_DEDUP`), and
        // after the last row, the deleted addresses forgotten.
        tx.execute(
            "WITH a AS (SELECT params AS address FROM credentials
                        WHERE username = $1 AND method = 'email' AND confirmed_at IS NOT NULL
                        UNION SELECT address FROM gone_addresses
                        WHERE username = $1 AND xact = pg_current_xact_id()),
                  q AS (INSERT INTO outbox (username, address, event, audit_id, created_at,
                                            next_at)
                        SELECT $1, address, $2, $3, $4, $4 FROM a
                        WHERE NOT ($5 AND EXISTS (SELECT 1 FROM outbox
                                                  WHERE username = $1 AND event = $2
                                                    AND created_at > $6))
                        ORDER BY address)
             DELETE FROM gone_addresses WHERE $7 AND xact = pg_current_xact_id()",
            &[
                &rec.user,
                &rec.event,
                &to_db(rec.id),
                &to_db(at),
                &(rec.event == event::LOCKOUT),
                &to_db(at.saturating_sub(LOCKOUT_DEDUP)),
                &(i + 1 == told.len()),
            ],
        )?;
    }
    Ok(())
}

fn count(tx: &mut Tx<'_>, sql: &str, p: super::Params<'_>) -> Result<u32, StoreError> {
    let n: i64 = tx.query_one(sql, p)?.get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Takes the sends lock of `method` until the transaction ends: the
/// per-destination and global limits count other accounts' sends too.
fn lock_sends(tx: &mut Tx<'_>, method: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('twofold/sends/' || $1, 0))",
        &[&method],
    )?;
    Ok(())
}

fn store_code(tx: &mut Tx<'_>, ctx: &Ctx<'_>, c: &CodeSend) -> Result<CodeSendOutcome, StoreError> {
    let m = c.method.as_str();
    lock_sends(tx, m)?;
    let hour = to_db(c.now.saturating_sub(3600));
    tx.execute(
        "DELETE FROM codes WHERE method = $1 AND destination IS NOT NULL AND created_at < $2",
        &[&m, &to_db(c.now.saturating_sub(KEEP_SENT))],
    )?;
    let limits = [
        (
            "user",
            count(
                tx,
                "SELECT COUNT(*) FROM codes WHERE username = $1 AND method = $2
                 AND destination IS NOT NULL AND created_at > $3",
                &[&c.user, &m, &hour],
            )?,
            c.per_user_hour,
        ),
        (
            "login",
            count(
                tx,
                "SELECT COUNT(*) FROM codes WHERE username = $1 AND method = $2 AND bound = $3",
                &[&c.user, &m, &c.bound],
            )?,
            c.per_bound,
        ),
        (
            "destination",
            count(
                tx,
                // A login's code counts logins' codes only (see
                // `CodeSend::per_destination_hour`).
                "SELECT COUNT(*) FROM codes WHERE destination = $1 AND created_at > $2
                 AND ($3::TEXT IS NULL OR left(bound, length($3::TEXT)) = $3::TEXT)",
                &[&c.destination, &hour, &c.login_only()],
            )?,
            c.per_destination_hour,
        ),
        (
            "global",
            count(
                tx,
                "SELECT COUNT(*) FROM codes WHERE method = $1
                 AND destination IS NOT NULL AND created_at > $2",
                &[&m, &hour],
            )?,
            c.global_hour,
        ),
    ];
    if let Some((name, _, _)) = limits.iter().find(|(_, n, max)| n >= max) {
        let recs = append(tx, ctx, c.now, &[c.refused.clone().with("limit", name)])?;
        return Ok(CodeSendOutcome::Limited(name, recs));
    }
    tx.execute(
        "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&c.user, &to_db(c.now)],
    )?;
    tx.execute(
        "INSERT INTO codes (username, method, lookup, hash, created_at, expires_at, bound,
                            destination)
         VALUES ($1, $2, $3, '', $4, $5, $6, $7)",
        &[
            &c.user,
            &m,
            &&c.lookup[..],
            &to_db(c.now),
            &to_db(c.expires_at),
            &c.bound,
            &c.destination,
        ],
    )?;
    Ok(CodeSendOutcome::Stored(append(
        tx,
        ctx,
        c.now,
        std::slice::from_ref(&c.sent),
    )?))
}

impl Sends for PgStore {
    fn store_sent_code(&self, c: CodeSend) -> Result<CodeSendOutcome, StoreError> {
        self.write(true, &c.user, |tx, ctx| store_code(tx, ctx, &c))
    }

    fn sent_code_missed(
        &self,
        user: &str,
        method: &Method,
        bound: &str,
        max_tries: u32,
        now: u64,
    ) -> Result<(), StoreError> {
        let max = i32::try_from(max_tries).unwrap_or(i32::MAX);
        self.write(false, user, |tx, _| {
            tx.execute(
                "UPDATE codes SET tries = tries + 1,
                    expires_at = CASE WHEN tries + 1 >= $4 THEN LEAST(expires_at, $5)
                                      ELSE expires_at END
                 WHERE username = $1 AND method = $2 AND bound = $3 AND used_at IS NULL",
                &[&user, &method.as_str(), &bound, &max, &to_db(now)],
            )?;
            Ok(())
        })
    }

    fn notices_due(&self, now: u64, limit: u32) -> Result<Vec<Notice>, StoreError> {
        let host = self.host.clone();
        self.write(true, "", |tx, _| {
            // A row another host is claiming is skipped, not waited for;
            // one it claimed and committed meanwhile fails the re-check of
            // `next_at` on the committed row: each notice goes to one host.
            let rows = tx.query(
                "WITH claimed AS (
                     UPDATE outbox SET next_at = $1 + $3, claimed_by = $4
                     WHERE id IN (SELECT id FROM outbox
                                  WHERE sent_at IS NULL AND next_at <= $1
                                  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING id, address, attempts, audit_id)
                 SELECT c.id, c.address, c.attempts, a.id, a.at, a.event, a.username,
                        a.service, a.rhost, a.tty, a.method, a.actor, a.detail
                 FROM claimed c LEFT JOIN audit a ON a.id = c.audit_id ORDER BY c.id",
                &[&to_db(now), &i64::from(limit), &to_db(CLAIM_LEASE), &host],
            )?;
            Ok(rows
                .iter()
                .map(|r| Notice {
                    id: r.get(0),
                    address: r.get(1),
                    attempts: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
                    record: r.get::<_, Option<i64>>(3).map(|id| AuditRecord {
                        id: from_db(id),
                        at: from_db(r.get(4)),
                        event: r.get(5),
                        user: r.get(6),
                        service: r.get(7),
                        rhost: r.get(8),
                        tty: r.get(9),
                        method: r.get(10),
                        actor: r.get(11),
                        detail: r.get(12),
                    }),
                })
                .collect())
        })
    }

    fn notice_done(&self, id: i64, now: u64, error: &str) -> Result<(), StoreError> {
        self.write(true, "", |tx, _| {
            tx.execute(
                "UPDATE outbox SET sent_at = $2, error = $3, attempts = attempts + 1
                 WHERE id = $1",
                &[&id, &to_db(now), &error],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE sent_at < $1",
                &[&to_db(now.saturating_sub(KEEP_NOTICES))],
            )?;
            // Addresses noted by transactions that queued no notice (none
            // does today) and have ended.
            tx.execute(
                "DELETE FROM gone_addresses
                 WHERE xact < pg_snapshot_xmin(pg_current_snapshot())",
                &[],
            )?;
            Ok(())
        })
    }

    fn notice_retry(&self, id: i64, next_at: u64, error: &str) -> Result<(), StoreError> {
        self.write(true, "", |tx, _| {
            tx.execute(
                "UPDATE outbox SET next_at = $2, error = $3, attempts = attempts + 1,
                                   claimed_by = NULL
                 WHERE id = $1",
                &[&id, &to_db(next_at), &error],
            )?;
            Ok(())
        })
    }

    fn notice_release(&self, id: i64, now: u64) -> Result<(), StoreError> {
        self.write(true, "", |tx, _| {
            tx.execute(
                "UPDATE outbox SET next_at = LEAST(next_at, $2), claimed_by = NULL
                 WHERE id = $1 AND sent_at IS NULL",
                &[&id, &to_db(now)],
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
        self.write(true, "", |tx, ctx| {
            if !spend(tx, &claim, now, false)? {
                return Ok(Change::Lost);
            }
            Ok(Change::Done(append(tx, ctx, now, &events)?))
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
        self.write(true, "", |tx, ctx| {
            // Both rows locked, in id order: another host's change of the
            // same destination waits for this one, and then finds the
            // pending row confirmed or the old one gone.
            let rows = tx.query(
                "SELECT id, username, method, confirmed_at IS NOT NULL FROM credentials
                 WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&vec![id, old]],
            )?;
            let row = |want: i64| rows.iter().find(|r| r.get::<_, i64>(0) == want);
            let (Some(new), Some(prev)) = (row(id), row(old)) else {
                return Ok(Change::Nothing);
            };
            let same = id != old
                && new.get::<_, String>(1) == prev.get::<_, String>(1)
                && new.get::<_, String>(2) == prev.get::<_, String>(2)
                && !new.get::<_, bool>(3)
                && prev.get::<_, bool>(3);
            if !same {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            tx.execute(
                "UPDATE credentials SET confirmed_at = $2, counter = NULL WHERE id = $1",
                &[&id, &to_db(now)],
            )?;
            // Deleted before the row is appended: the trigger keeps the old
            // address for this transaction's notices.
            tx.execute("DELETE FROM credentials WHERE id = $1", &[&old])?;
            Ok(Change::Done(append(tx, ctx, now, &events)?))
        })
    }
}
