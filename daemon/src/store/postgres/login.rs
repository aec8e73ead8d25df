//! A login's reads and writes on PostgreSQL: the snapshot before the
//! prompt, a code found by its lookup, the spend of a claim, and a
//! failure counted into the locks, each under the account's advisory lock.

use super::audit::append;
use super::{devices, from_db, method, to_db, Ctx, Tx};
use crate::audit::{event, AuditEvent};
use crate::store::{
    Claim, CodeRecord, Credential, Failure, FailureOutcome, Locked, NewDevice, Snapshot,
    StoreError, Success, SuccessOutcome,
};
use twofold_config::RateLimitConfig;
use twofold_proto::Method;

/// The lock that refuses a login of `user` from `source` at `now`.
pub(crate) fn active_lock(
    c: &mut Tx<'_>,
    user: &str,
    source: &str,
    now: u64,
) -> Result<Option<Locked>, StoreError> {
    Ok(c.query_opt(
        "SELECT until, source IS NULL FROM locks
             WHERE username = $1 AND (source IS NULL OR source = $2)
               AND cleared_at IS NULL AND until > $3
             ORDER BY until DESC LIMIT 1",
        &[&user, &source, &to_db(now)],
    )?
    .map(|r| Locked {
        until: from_db(r.get(0)),
        user_wide: r.get(1),
    }))
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
        // A lock made while the person typed (on any host) refuses the
        // login before the claim is spent.
        if let Some(l) = active_lock(tx, &s.user, &s.source, now)? {
            return Ok(SuccessOutcome::Locked(l));
        }
        if !spend(tx, claim, now, true)? {
            return Ok(SuccessOutcome::Lost);
        }
        if let (Claim::Code { method, .. }, Some(used)) = (claim, &s.code_used) {
            let left = code_count(tx, &s.user, method)?;
            events.push(used.clone().with("left", &left.to_string()));
        }
    }
    clear_source_failures(tx, &s.user, &s.source)?;
    if let Some(r) = remembered {
        events.extend(devices::remember(tx, &s.user, devices, now, r)?);
    }
    Ok(SuccessOutcome::Done(append(tx, ctx, now, &events)?))
}

pub(crate) fn credentials(c: &mut Tx<'_>, user: &str) -> Result<Vec<Credential>, StoreError> {
    c.query(
        "SELECT id, username, method, label, sealed, nonce, params, created_at, confirmed_at,
                last_used, counter
         FROM credentials WHERE username = $1 ORDER BY created_at, id",
        &[&user],
    )?
    .iter()
    .map(|r| {
        Ok(Credential {
            id: r.get(0),
            user: r.get(1),
            method: method(r.get(2))?,
            label: r.get(3),
            sealed: r.get(4),
            nonce: r.get(5),
            params: r.get(6),
            created_at: from_db(r.get(7)),
            confirmed_at: r.get::<_, Option<i64>>(8).map(from_db),
            last_used: r.get::<_, Option<i64>>(9).map(from_db),
            counter: r.get::<_, Option<i64>>(10).map(from_db),
        })
    })
    .collect()
}

fn code_methods(c: &mut Tx<'_>, user: &str, now: u64) -> Result<Vec<Method>, StoreError> {
    c.query(
        "SELECT DISTINCT method FROM codes WHERE username = $1 AND used_at IS NULL
         AND (expires_at IS NULL OR expires_at > $2)",
        &[&user, &to_db(now)],
    )?
    .iter()
    .map(|r| method(r.get(0)))
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
/// advisory lock instead of SQLite's one writer).
fn failure_rows(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
    now: u64,
    limits: &RateLimitConfig,
    failure: AuditEvent,
) -> Result<(Option<Locked>, Vec<AuditEvent>), StoreError> {
    tx.execute(
        "INSERT INTO failures (username, source, at) VALUES ($1, $2, $3)",
        &[&user, &source, &to_db(now)],
    )?;
    let mut count = |source: Option<&str>, window: u64| -> Result<u32, StoreError> {
        let n: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM failures
                 WHERE username = $1 AND ($2::TEXT IS NULL OR source = $2) AND at > $3
                   AND at > COALESCE((SELECT MAX(created_at) FROM locks
                                      WHERE username = $1 AND source IS NOT DISTINCT FROM $2),
                                     -1)",
                &[&user, &source, &to_db(now.saturating_sub(window))],
            )?
            .get(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    let pair = count(Some(source), limits.source_window.0)?;
    let all = count(None, limits.user_window.0)?;
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
    Ok((locked, events))
}

/// The lock, credentials and code methods of `user` from `source`.
pub(crate) fn snapshot(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
    now: u64,
) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        lock: active_lock(tx, user, source, now)?,
        credentials: credentials(tx, user)?,
        codes: code_methods(tx, user, now)?,
    })
}

/// The lock in force and the `method` code of `user` with `lookup`.
pub(crate) fn find_code(
    tx: &mut Tx<'_>,
    user: &str,
    source: &str,
    method: &Method,
    lookup: &[u8; 32],
    now: u64,
) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError> {
    let lock = active_lock(tx, user, source, now)?;
    let code = tx
        .query_opt(
            "SELECT id, hash, used_at, expires_at FROM codes
             WHERE lookup = $3 AND username = $1 AND method = $2
             ORDER BY used_at IS NOT NULL, id LIMIT 1",
            &[&user, &method.as_str(), &&lookup[..]],
        )?
        .map(|r| CodeRecord {
            id: r.get(0),
            hash: r.get(1),
            used_at: r.get::<_, Option<i64>>(2).map(from_db),
            expires_at: r.get::<_, Option<i64>>(3).map(from_db),
        });
    Ok((lock, code))
}

/// A wrong answer (see [`Store::record_failure`](crate::store::Store::record_failure)).
pub(crate) fn failure(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    f: &Failure,
) -> Result<FailureOutcome, StoreError> {
    if let Some(l) = active_lock(tx, &f.user, &f.source, f.now)? {
        return Ok(FailureOutcome::Locked(l));
    }
    let (locked, mut events) =
        failure_rows(tx, &f.user, &f.source, f.now, &f.limits, f.failure.clone())?;
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
