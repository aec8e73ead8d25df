//! A login's reads and writes on PostgreSQL: the snapshot before the
//! prompt, a code found by its lookup, the spend of a claim, and a
//! failure counted into the locks, each under the account's advisory lock.

use super::audit::{append, Chained, MOVED};
use super::pool::Conn;
use super::sends::queue_notices;
use super::{devices, from_db, method, to_db, Ctx, Tx};
use crate::audit::{event, AuditEvent};
use crate::store::sent::NOTIFIED;
use crate::store::{
    Claim, CodeRecord, Credential, Failure, FailureOutcome, Locked, NewDevice, Snapshot,
    StoreError, Success, SuccessOutcome,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use twofold_config::RateLimitConfig;
use twofold_proto::Method;

/// The lock that refuses a login of `$1` from `$2` at `$3` (a relation of
/// at most one row: `until`, `user_wide`), for the statements below.
pub(crate) const LOCK: &str = "SELECT until, source IS NULL AS user_wide FROM locks
     WHERE username = $1::TEXT AND (source IS NULL OR source = $2::TEXT)
       AND cleared_at IS NULL AND until > $3::BIGINT
     ORDER BY until DESC LIMIT 1";

/// The lock that refuses a login of `user` from `source` at `now`.
pub(crate) fn active_lock(
    c: &mut Tx<'_>,
    user: &str,
    source: &str,
    now: u64,
) -> Result<Option<Locked>, StoreError> {
    Ok(c.query_opt(LOCK, &[&user, &source, &to_db(now)])?
        .map(|r| Locked {
            until: from_db(r.get(0)),
            user_wide: r.get(1),
        }))
}

/// The lock in columns `i` and `i + 1` of `r` (NULL: none).
pub(crate) fn lock_at(r: &Row, i: usize) -> Option<Locked> {
    r.get::<_, Option<i64>>(i).map(|until| Locked {
        until: from_db(until),
        user_wide: r.get::<_, Option<bool>>(i + 1).unwrap_or(true),
    })
}

/// What [`lock_and_spend`] did.
enum Spent {
    /// A lock refuses the login: nothing was spent.
    Locked(Locked),
    /// Someone spent the claim first.
    Lost,
    /// This transaction spent it; `left`: for a code, the unused codes of
    /// its method left.
    Won { left: u32 },
}

/// A login's spend in one statement: the lock check, the conditional
/// `UPDATE` whose changed-row count decides (only when no lock refuses),
/// the source's failures forgotten and `audit`'s rows appended (only when
/// it won); the `(seq, id)` of the audit rows written.
fn lock_and_spend(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
    claim: &Claim,
    now: u64,
    audit: Option<&Chained>,
) -> Result<(Spent, Vec<(i64, i64)>), StoreError> {
    let (spend, left) = match claim {
        Claim::Counter { .. } => (
            "UPDATE credentials SET counter = $5::BIGINT, last_used = $3
             WHERE id = $4::BIGINT AND confirmed_at IS NOT NULL
               AND (counter IS NULL OR counter < $5::BIGINT)
               AND NOT EXISTS (SELECT 1 FROM l) RETURNING id",
            "0::BIGINT",
        ),
        Claim::Code { .. } => (
            "UPDATE codes SET used_at = $3 WHERE id = $4::BIGINT AND used_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM l) RETURNING id",
            // The statement's snapshot still shows the code unused.
            "(SELECT COUNT(*) FROM codes WHERE username = $1 AND method = $5::TEXT
               AND used_at IS NULL AND id <> $4)",
        ),
        Claim::Unmetered { .. } => (
            "UPDATE credentials SET counter = 0, last_used = $3
             WHERE id = $4::BIGINT AND confirmed_at IS NOT NULL AND COALESCE(counter, 0) = 0
               AND NOT EXISTS (SELECT 1 FROM l) RETURNING id",
            "0::BIGINT",
        ),
    };
    let (user, source, now) = (&user, &source, &to_db(now));
    let (id, fifth) = match claim {
        Claim::Counter { credential, value } => (credential, Some(Fifth::Value(to_db(*value)))),
        Claim::Code { id, method } => (id, Some(Fifth::Method(method.as_str()))),
        Claim::Unmetered { credential } => (credential, None),
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![user, source, now, id];
    match &fifth {
        Some(Fifth::Value(v)) => params.push(v),
        Some(Fifth::Method(m)) => params.push(m),
        None => {}
    }
    let (ctes, cols) = match audit {
        Some(_) => (
            format!(
                ", {}",
                Chained::ctes(params.len() + 1, "AND EXISTS (SELECT 1 FROM s)", MOVED)
            ),
            ", ARRAY(SELECT seq FROM a), ARRAY(SELECT id FROM a)",
        ),
        None => (String::new(), ""),
    };
    let sql = format!(
        "WITH l AS ({LOCK}),
              s AS ({spend}),
              d AS (DELETE FROM failures WHERE username = $1 AND source = $2
                    AND EXISTS (SELECT 1 FROM s)){ctes}
         SELECT (SELECT until FROM l), (SELECT user_wide FROM l), EXISTS (SELECT 1 FROM s),
                {left}{cols}"
    );
    let audit_params = audit.map(Chained::params).unwrap_or_default();
    params.extend(audit_params);
    let r = tx.query_one(&sql, &params)?;
    if let Some(l) = lock_at(&r, 0) {
        return Ok((Spent::Locked(l), Vec::new()));
    }
    if !r.get::<_, bool>(2) {
        return Ok((Spent::Lost, Vec::new()));
    }
    let ids = match audit {
        Some(_) => {
            let (seqs, ids): (Vec<i64>, Vec<i64>) = (r.get(4), r.get(5));
            seqs.into_iter().zip(ids).collect()
        }
        None => Vec::new(),
    };
    let left = u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX);
    Ok((Spent::Won { left }, ids))
}

/// The fifth parameter of [`lock_and_spend`]'s statement.
enum Fifth<'a> {
    Value(i64),
    Method(&'a str),
}

/// Forgets the failures of `user` from `source` (after a login there).
pub(crate) fn clear_source_failures(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM failures WHERE username = $1 AND source = $2",
        &[&user, &source],
    )?;
    Ok(())
}

/// A login's success (see [`Store::record_success`]), remembering
/// `devices` with their `remembered` rows in the same transaction.
pub(crate) fn success(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    s: &Success,
    devices: &[NewDevice],
    remembered: Option<&AuditEvent>,
) -> Result<SuccessOutcome, StoreError> {
    let now = s.now;
    let mut events = s.events.clone();
    if let Some(claim) = &s.claim {
        // A TOTP or security key login's audit rows are known before the
        // spend: they go in its statement, written only if it wins (from
        // the chain head the connection knows; else by `append` below).
        let fold = remembered.is_none() && !matches!(claim, Claim::Code { .. });
        let chained = match tx.head(ctx.lane) {
            Some(h) if fold && !events.is_empty() => Some(Chained::new(ctx, now, &events, h)),
            _ => None,
        };
        // A lock made while the person typed (on any host) refuses the
        // login before the claim is spent.
        let (won, ids) = lock_and_spend(tx, &s.user, &s.source, claim, now, chained.as_ref())?;
        let left = match won {
            Spent::Locked(l) => return Ok(SuccessOutcome::Locked(l)),
            Spent::Lost => return Ok(SuccessOutcome::Lost),
            Spent::Won { left } => left,
        };
        if let Some(c) = chained {
            if let Some(recs) = c.written(tx, &ids)? {
                queue_notices(tx, now, &recs)?;
                return Ok(SuccessOutcome::Done(recs));
            }
            // The stored head was another: `append` reads it.
            tx.set_head(None);
        }
        if let (Claim::Code { .. }, Some(used)) = (claim, &s.code_used) {
            events.push(used.clone().with("left", &left.to_string()));
        }
    } else {
        clear_source_failures(tx, &s.user, &s.source)?;
    }
    if let Some(r) = remembered {
        events.extend(devices::remember(tx, &s.user, devices, now, r)?);
    }
    Ok(SuccessOutcome::Done(append(tx, ctx, now, &events)?))
}

/// A TOTP login's spend in one statement, outside any transaction (it
/// commits when it ends, durably): the chain head checked (`g`: still the
/// one the rows were hashed after, else nothing is done), the lock check
/// (`l`), the conditional spend (`s`, whose changed-row count decides),
/// the source's failures forgotten (`d`), the head moved (`h`) and the
/// audit rows (`a`), both only if it won. The rows are written whenever
/// the spend is, so a process with this host's name and lane that moved
/// the head meanwhile makes the statement fail on the rows' unique
/// `(host, lane, seq)` (nothing is committed): a spend is never without
/// its rows. One statement, one snapshot: a lock committed before it
/// began refuses the login; one committed while it runs is a failure
/// that raced the right code, and the lock stands for what follows.
fn spend_step_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "WITH g AS (SELECT 1 FROM audit_head
                        WHERE host = $6 AND lane = $7 AND last_seq = $8 AND hash = $9),
                  l AS ({LOCK}),
                  s AS (UPDATE credentials SET counter = $5::BIGINT, last_used = $3
                        WHERE id = $4::BIGINT AND confirmed_at IS NOT NULL
                          AND (counter IS NULL OR counter < $5::BIGINT)
                          AND EXISTS (SELECT 1 FROM g) AND NOT EXISTS (SELECT 1 FROM l)
                        RETURNING id),
                  d AS (DELETE FROM failures WHERE username = $1 AND source = $2
                        AND EXISTS (SELECT 1 FROM s)),
                  {ctes}
             SELECT EXISTS (SELECT 1 FROM g), (SELECT until FROM l), (SELECT user_wide FROM l),
                    EXISTS (SELECT 1 FROM s), EXISTS (SELECT 1 FROM h),
                    ARRAY(SELECT seq FROM a), ARRAY(SELECT id FROM a)",
            ctes = Chained::ctes(
                6,
                "AND EXISTS (SELECT 1 FROM s)",
                "EXISTS (SELECT 1 FROM s)"
            )
        )
    })
}

/// A TOTP login's success (a counter's claim, with audit rows no notice is
/// queued for, on a lane whose chain head the connection knows) in one
/// round trip ([`spend_step_sql`]): committed when it returns. `None`:
/// not such a success, or the head moved (nothing done): the caller runs
/// [`success`] in a transaction instead.
pub(crate) fn success_at_once(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    s: &Success,
) -> Result<Option<SuccessOutcome>, StoreError> {
    let Some(Claim::Counter { credential, value }) = &s.claim else {
        return Ok(None);
    };
    if s.events.is_empty() || s.events.iter().any(|e| NOTIFIED.contains(&e.event)) {
        return Ok(None);
    }
    // The head is known again only once this call is known to have
    // left it as it says (an error leaves it unknown).
    let head = match conn.head.take() {
        Some(h) if h.lane == ctx.lane => h,
        other => {
            conn.head = other;
            return Ok(None);
        }
    };
    let chained = Chained::new(ctx, s.now, &s.events, &head);
    let (now, value) = (to_db(s.now), to_db(*value));
    let sql = spend_step_sql();
    let r = {
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&s.user, &s.source, &now, credential, &value];
        params.extend(chained.params());
        let stmt = super::pool::prepared(&mut conn.client, &mut conn.cache, sql)?;
        match conn.client.query_one(&stmt, &params) {
            Ok(r) => r,
            // Another process with this host's name and lane wrote the
            // rows' positions first: the statement failed whole.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    if !r.get::<_, bool>(0) {
        // The head moved: nothing was done.
        return Ok(None);
    }
    if let Some(l) = lock_at(&r, 1) {
        conn.head = Some(head);
        return Ok(Some(SuccessOutcome::Locked(l)));
    }
    if !r.get::<_, bool>(3) {
        conn.head = Some(head);
        return Ok(Some(SuccessOutcome::Lost));
    }
    if !r.get::<_, bool>(4) {
        return Err(StoreError::Corrupt(
            "a spend committed without moving its audit chain's head".into(),
        ));
    }
    let (seqs, ids): (Vec<i64>, Vec<i64>) = (r.get(5), r.get(6));
    let ids: Vec<(i64, i64)> = seqs.into_iter().zip(ids).collect();
    match chained.finish(&ids)? {
        Some((recs, new)) => {
            conn.head = Some(new);
            Ok(Some(SuccessOutcome::Done(recs)))
        }
        None => Err(StoreError::Corrupt("audit rows not written".into())),
    }
}

/// A credential's columns, from `c`, in the order [`credential_at`] reads.
pub(crate) const CREDENTIAL_COLUMNS: &str =
    "c.id, c.username, c.method, c.label, c.sealed, c.nonce, \
     c.params, c.created_at, c.confirmed_at, c.last_used, c.counter";

/// The credential in the columns of `r` from `i` on.
pub(crate) fn credential_at(r: &Row, i: usize) -> Result<Credential, StoreError> {
    Ok(Credential {
        id: r.get(i),
        user: r.get(i + 1),
        method: method(r.get(i + 2))?,
        label: r.get(i + 3),
        sealed: r.get(i + 4),
        nonce: r.get(i + 5),
        params: r.get(i + 6),
        created_at: from_db(r.get(i + 7)),
        confirmed_at: r.get::<_, Option<i64>>(i + 8).map(from_db),
        last_used: r.get::<_, Option<i64>>(i + 9).map(from_db),
        counter: r.get::<_, Option<i64>>(i + 10).map(from_db),
    })
}

pub(crate) fn credentials(c: &mut Tx<'_>, user: &str) -> Result<Vec<Credential>, StoreError> {
    c.query(
        &format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE username = $1
             ORDER BY created_at, id"
        ),
        &[&user],
    )?
    .iter()
    .map(|r| credential_at(r, 0))
    .collect()
}

pub(crate) fn code_count(c: &mut Tx<'_>, user: &str, m: &Method) -> Result<u32, StoreError> {
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM codes WHERE username = $1 AND method = $2 AND used_at IS NULL",
            &[&user, &m.as_str()],
        )?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Spends `claim`: one conditional `UPDATE` whose changed-row count says
/// whether this transaction won; `false` when someone spent it first.
pub(crate) fn spend(
    tx: &mut Tx<'_>,
    claim: &Claim,
    now: u64,
    login: bool,
) -> Result<bool, StoreError> {
    let changed = match claim {
        Claim::Counter { credential, value } => tx.execute(
            "UPDATE credentials SET counter = $2, last_used = COALESCE($3, last_used)
             WHERE id = $1 AND confirmed_at IS NOT NULL AND (counter IS NULL OR counter < $2)",
            &[credential, &to_db(*value), &login.then_some(to_db(now))],
        )?,
        Claim::Code { id, .. } => tx.execute(
            "UPDATE codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
            &[id, &to_db(now)],
        )?,
        Claim::Unmetered { credential } => tx.execute(
            "UPDATE credentials SET counter = 0, last_used = COALESCE($2, last_used)
             WHERE id = $1 AND confirmed_at IS NOT NULL AND COALESCE(counter, 0) = 0",
            &[credential, &login.then_some(to_db(now))],
        )?,
    };
    Ok(changed == 1)
}

/// Records one failure and makes the locks its counts call for (see the
/// SQLite store's `failure_rows`: the same counting, under the user's
/// advisory lock instead of SQLite's one writer). The lock check, the
/// failure's row and both counts are one statement; a lock in force
/// records nothing and is returned as `Err`.
#[allow(clippy::type_complexity)]
fn failure_rows(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
    now: u64,
    limits: &RateLimitConfig,
    failure: AuditEvent,
) -> Result<Result<(Option<Locked>, Vec<AuditEvent>), Locked>, StoreError> {
    // The statement's snapshot does not show its own insert: the counts
    // read the table and the inserted row (`i`) together.
    let sql = format!(
        "WITH l AS ({LOCK}),
              i AS (INSERT INTO failures (username, source, at)
                    SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM l)
                    RETURNING source, at),
              f AS (SELECT source, at FROM failures WHERE username = $1
                    UNION ALL SELECT source, at FROM i)
         SELECT (SELECT until FROM l), (SELECT user_wide FROM l),
                (SELECT COUNT(*) FROM f WHERE source = $2 AND at > $4::BIGINT
                   AND at > COALESCE((SELECT MAX(created_at) FROM locks
                                      WHERE username = $1 AND source = $2), -1)),
                (SELECT COUNT(*) FROM f WHERE at > $5::BIGINT
                   AND at > COALESCE((SELECT MAX(created_at) FROM locks
                                      WHERE username = $1 AND source IS NULL), -1))"
    );
    let r = tx.query_one(
        &sql,
        &[
            &user,
            &source,
            &to_db(now),
            &to_db(now.saturating_sub(limits.source_window.0)),
            &to_db(now.saturating_sub(limits.user_window.0)),
        ],
    )?;
    if let Some(l) = lock_at(&r, 0) {
        return Ok(Err(l));
    }
    let count = |i: usize| u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX);
    let (pair, all) = (count(2), count(3));
    let mut events = vec![failure.clone().with("source_failures", &pair.to_string())];
    let mut locked: Option<Locked> = None;
    let mut lock = |scope: Option<&str>, failures: u32, secs: u64| -> Result<(), StoreError> {
        let until = now.saturating_add(secs);
        tx.execute(
            "INSERT INTO locks (username, source, created_at, until, failures)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &user,
                &scope,
                &to_db(now),
                &to_db(until),
                &i32::try_from(failures).unwrap_or(i32::MAX),
            ],
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
    Ok(Ok((locked, events)))
}

/// The lock, credentials and code methods of `$1` from `$2` at `$3` in
/// one statement (one snapshot, no transaction around it): one row per
/// credential, or one row of NULL credential columns when there is none,
/// each with the lock and the methods of the codes left.
pub(crate) fn snapshot_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT l.until, l.user_wide,
                ARRAY(SELECT DISTINCT method FROM codes WHERE username = $1 AND used_at IS NULL
                      AND (expires_at IS NULL OR expires_at > $3) ORDER BY method),
                {CREDENTIAL_COLUMNS}
         FROM (SELECT 1) one
         LEFT JOIN LATERAL ({LOCK}) l ON true
         LEFT JOIN credentials c ON c.username = $1
         ORDER BY c.created_at, c.id"
        )
    })
}

/// The snapshot in the rows of [`snapshot_sql`].
pub(crate) fn snapshot(rows: &[Row]) -> Result<Snapshot, StoreError> {
    let first = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("the snapshot has no row".into()))?;
    let mut credentials = Vec::with_capacity(rows.len());
    for r in rows {
        if r.get::<_, Option<i64>>(3).is_some() {
            credentials.push(credential_at(r, 3)?);
        }
    }
    Ok(Snapshot {
        lock: lock_at(first, 0),
        credentials,
        codes: first
            .get::<_, Vec<String>>(2)
            .iter()
            .map(|m| method(m))
            .collect::<Result<_, _>>()?,
        copy: false,
    })
}

/// The lock in force and the `$4` code of `$1` from `$2` at `$3` with
/// lookup `$5`, in one statement: one row.
pub(crate) fn find_code_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT l.until, l.user_wide, c.id, c.hash, c.used_at, c.expires_at
         FROM (SELECT 1) one
         LEFT JOIN LATERAL ({LOCK}) l ON true
         LEFT JOIN LATERAL (SELECT id, hash, used_at, expires_at FROM codes
                            WHERE lookup = $5 AND username = $1 AND method = $4::TEXT
                            ORDER BY used_at IS NOT NULL, id LIMIT 1) c ON true"
        )
    })
}

/// The lock and code in the row of [`find_code_sql`].
pub(crate) fn found_code(rows: &[Row]) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError> {
    let r = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("the code lookup has no row".into()))?;
    let code = r.get::<_, Option<i64>>(2).map(|id| CodeRecord {
        id,
        hash: r.get(3),
        used_at: r.get::<_, Option<i64>>(4).map(from_db),
        expires_at: r.get::<_, Option<i64>>(5).map(from_db),
    });
    Ok((lock_at(r, 0), code))
}

/// A wrong answer (see [`Store::record_failure`](crate::store::Store::record_failure)).
pub(crate) fn failure(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    f: &Failure,
) -> Result<FailureOutcome, StoreError> {
    let (locked, mut events) =
        match failure_rows(tx, &f.user, &f.source, f.now, &f.limits, f.failure.clone())? {
            Ok(rows) => rows,
            Err(l) => return Ok(FailureOutcome::Locked(l)),
        };
    if let Some(l) = locked {
        let until = l.until.to_string();
        events.push(
            f.denied
                .clone()
                .with("until", &until)
                .with("reason", "locked_out"),
        );
    } else if f.last {
        events.push(f.denied.clone().with("reason", "too_many_invalid_codes"));
    }
    Ok(FailureOutcome::Recorded(
        locked,
        append(tx, ctx, f.now, &events)?,
    ))
}
