//! What admins read and change on PostgreSQL, fleet-wide: accounts, locks
//! and their clearing, grace deadlines, the figures of `twofold stats`.

use super::audit::append;
use super::{from_db, method, to_db, Ctx, Tx};
use crate::audit::AuditEvent;
use crate::store::StoreError;
use twofold_proto::{AuditRecord, LockInfo, Method};

/// Up to `limit` known accounts after `after`, by name.
pub(crate) fn users(
    tx: &mut Tx<'_>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    Ok(tx
        .query(
            "SELECT name FROM users WHERE $1::TEXT IS NULL OR name > $1
             ORDER BY name LIMIT $2",
            &[&after, &i64::from(limit)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// When the user-wide lock of `user` in force at `now` ends.
pub(crate) fn user_lock(tx: &mut Tx<'_>, user: &str, now: u64) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT MAX(until) FROM locks WHERE username = $1 AND source IS NULL
             AND cleared_at IS NULL AND until > $2",
            &[&user, &to_db(now)],
        )?
        .get::<_, Option<i64>>(0)
        .map(from_db))
}

/// Clears every lock and failure of `user`, appending `unlock`.
pub(crate) fn unlock(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    now: u64,
    unlock: &AuditEvent,
) -> Result<(u32, Vec<AuditRecord>), StoreError> {
    let n = tx.execute(
        "UPDATE locks SET cleared_at = $2
         WHERE username = $1 AND cleared_at IS NULL AND until > $2",
        &[&user, &to_db(now)],
    )?;
    let f = tx.execute("DELETE FROM failures WHERE username = $1", &[&user])?;
    let recs = append(
        tx,
        ctx,
        now,
        &[unlock
            .clone()
            .with("locks", &n.to_string())
            .with("failures", &f.to_string())],
    )?;
    Ok((u32::try_from(n).unwrap_or(u32::MAX), recs))
}

/// Up to `limit` locks in force at `now` after lock `after`.
pub(crate) fn locks(
    tx: &mut Tx<'_>,
    now: u64,
    after: u64,
    limit: u32,
) -> Result<Vec<(u64, LockInfo)>, StoreError> {
    Ok(tx
        .query(
            "SELECT id, username, source, created_at, until, failures FROM locks
             WHERE id > $2 AND cleared_at IS NULL AND until > $1
             ORDER BY id LIMIT $3",
            &[&to_db(now), &to_db(after), &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            (
                from_db(r.get(0)),
                LockInfo {
                    user: r.get(1),
                    source: r.get(2),
                    since: from_db(r.get(3)),
                    until: from_db(r.get(4)),
                    failures: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
                },
            )
        })
        .collect())
}

/// The stored grace deadline of `user`.
pub(crate) fn grace_deadline(tx: &mut Tx<'_>, user: &str) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .query_opt("SELECT deadline FROM grace WHERE username = $1", &[&user])?
        .map(|r| from_db(r.get(0))))
}

/// The deadline of `user`, stored (with `started`) when there is none.
pub(crate) fn start_grace(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    now: u64,
    grace: u64,
    started: &AuditEvent,
) -> Result<(u64, Vec<AuditRecord>), StoreError> {
    if let Some(d) = grace_deadline(tx, user)? {
        return Ok((d, Vec::new()));
    }
    let deadline = now.saturating_add(grace);
    tx.execute(
        "INSERT INTO grace (username, first_seen, deadline) VALUES ($1, $2, $3)",
        &[&user, &to_db(now), &to_db(deadline)],
    )?;
    let recs = append(
        tx,
        ctx,
        now,
        &[started.clone().with("deadline", &deadline.to_string())],
    )?;
    Ok((deadline, recs))
}

/// Sets (or forgets) the deadline of `user`, appending `what`.
pub(crate) fn set_grace(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    now: u64,
    deadline: Option<u64>,
    what: &AuditEvent,
) -> Result<Vec<AuditRecord>, StoreError> {
    match deadline {
        Some(d) => tx.execute(
            "INSERT INTO grace (username, first_seen, deadline) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE SET deadline = EXCLUDED.deadline",
            &[&user, &to_db(now), &to_db(d)],
        )?,
        None => tx.execute("DELETE FROM grace WHERE username = $1", &[&user])?,
    };
    append(tx, ctx, now, std::slice::from_ref(what))
}

/// Every stored deadline, by user.
pub(crate) fn graces(tx: &mut Tx<'_>) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(tx
        .query(
            "SELECT username, deadline FROM grace ORDER BY username",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), from_db(r.get(1))))
        .collect())
}

/// Users with a confirmed credential or an unused code, per method.
pub(crate) fn method_users(tx: &mut Tx<'_>) -> Result<Vec<(Method, u64)>, StoreError> {
    tx.query(
        "SELECT method, COUNT(DISTINCT username) FROM credentials
         WHERE confirmed_at IS NOT NULL GROUP BY method
         UNION ALL
         SELECT method, COUNT(DISTINCT username) FROM codes
         WHERE used_at IS NULL GROUP BY method",
        &[],
    )?
    .iter()
    .map(|r| Ok((method(r.get(0))?, from_db(r.get(1)))))
    .collect()
}

/// Users with a confirmed credential and fewer than `low` unused codes.
pub(crate) fn low_codes(
    tx: &mut Tx<'_>,
    method: &Method,
    low: u32,
) -> Result<Vec<(String, u32)>, StoreError> {
    Ok(tx
        .query(
            "SELECT username, n FROM (
                 SELECT u.username, (SELECT COUNT(*) FROM codes c
                                     WHERE c.username = u.username AND c.method = $2
                                       AND c.used_at IS NULL) AS n
                 FROM (SELECT DISTINCT username FROM credentials
                       WHERE confirmed_at IS NOT NULL) u) t
             WHERE n < $1 ORDER BY username",
            &[&i64::from(low), &method.as_str()],
        )?
        .iter()
        .map(|r| (r.get(0), u32::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
        .collect())
}
