//! [`PgStore`]'s [`Store`] operations. Each write is one transaction that
//! takes its account's advisory lock first; each read one snapshot.

use super::audit::{self, append};
use super::{devices, from_db, method, to_db, Ctx, PgStore, Tx};
use crate::audit::{event, AuditEvent};
use crate::store::{
    AuditFilter, Change, Claim, CodeRecord, Credential, Device, Durability, Failure,
    FailureOutcome, Locked, NewCode, NewCredential, NewDevice, RememberedOutcome, Removal, Sends,
    Snapshot, Store, StoreError, Success, SuccessOutcome, Walk,
};
use twofold_config::RateLimitConfig;
use twofold_proto::{AuditRecord, LockInfo, Method};

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
fn success(
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

fn credentials(c: &mut Tx<'_>, user: &str) -> Result<Vec<Credential>, StoreError> {
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

fn code_count(c: &mut Tx<'_>, user: &str, m: &Method) -> Result<u32, StoreError> {
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM codes WHERE username = $1 AND method = $2 AND used_at IS NULL",
            &[&user, &m.as_str()],
        )?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn has_confirmed(tx: &mut Tx<'_>, user: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM credentials
                            WHERE username = $1 AND confirmed_at IS NOT NULL)",
            &[&user],
        )?
        .get(0))
}

fn add_user(tx: &mut Tx<'_>, user: &str, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&user, &to_db(now)],
    )?;
    Ok(())
}

fn insert_codes(
    tx: &mut Tx<'_>,
    user: &str,
    m: &Method,
    codes: &[NewCode],
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM codes WHERE username = $1 AND method = $2",
        &[&user, &m.as_str()],
    )?;
    let insert = "INSERT INTO codes (username, method, lookup, hash, created_at, expires_at)
                  VALUES ($1, $2, $3, $4, $5, $6)";
    for c in codes {
        tx.execute(
            insert,
            &[
                &user,
                &m.as_str(),
                &&c.lookup[..],
                &c.hash,
                &to_db(now),
                &c.expires_at.map(to_db),
            ],
        )?;
    }
    Ok(())
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

/// Removes the user's codes of `codes_too` when no confirmed credential is
/// left (recovery codes hang on one).
fn remove_codes_if_last(
    tx: &mut Tx<'_>,
    user: &str,
    codes_too: &[Method],
) -> Result<(), StoreError> {
    if !has_confirmed(tx, user)? {
        for m in codes_too {
            tx.execute(
                "DELETE FROM codes WHERE username = $1 AND method = $2",
                &[&user, &m.as_str()],
            )?;
        }
    }
    Ok(())
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

impl Store for PgStore {
    fn snapshot(&self, user: &str, source: &str, now: u64) -> Result<Snapshot, StoreError> {
        self.read(|tx| {
            Ok(Snapshot {
                lock: active_lock(tx, user, source, now)?,
                credentials: credentials(tx, user)?,
                codes: code_methods(tx, user, now)?,
            })
        })
    }

    fn find_code(
        &self,
        user: &str,
        source: &str,
        method: &Method,
        lookup: &[u8; 32],
        now: u64,
    ) -> Result<(Option<Locked>, Option<CodeRecord>), StoreError> {
        self.read(|tx| {
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
        })
    }

    fn lock(&self, user: &str, source: &str, now: u64) -> Result<Option<Locked>, StoreError> {
        self.read(|tx| active_lock(tx, user, source, now))
    }

    fn record_success(&self, s: Success) -> Result<SuccessOutcome, StoreError> {
        self.write(true, &s.user, |tx, ctx| success(tx, ctx, &s, &[], None))
    }

    fn record_failure(
        &self,
        f: Failure,
        durability: Durability,
    ) -> Result<FailureOutcome, StoreError> {
        self.write(durability == Durability::Durable, &f.user, |tx, ctx| {
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
        self.read(|tx| credentials(tx, user))
    }

    fn start_pending(&self, user: &str, new: NewCredential, now: u64) -> Result<bool, StoreError> {
        self.write(true, user, |tx, _| {
            if new.single {
                let confirmed: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1
                                        AND method = $2 AND confirmed_at IS NOT NULL)",
                        &[&user, &new.method.as_str()],
                    )?
                    .get(0);
                if confirmed {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM credentials WHERE username = $1 AND method = $2",
                    &[&user, &new.method.as_str()],
                )?;
            }
            add_user(tx, user, now)?;
            tx.execute(
                "INSERT INTO credentials (id, username, method, label, sealed, nonce, params,
                                          created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &new.id,
                    &user,
                    &new.method.as_str(),
                    &new.label,
                    &new.sealed,
                    &new.nonce,
                    &new.params,
                    &to_db(now),
                ],
            )?;
            Ok(true)
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
            // The row lock orders this confirmation after any other of the
            // same credential, from any host.
            let Some(user) = tx
                .query_opt(
                    "SELECT username FROM credentials WHERE id = $1 AND confirmed_at IS NULL
                     FOR UPDATE",
                    &[&id],
                )?
                .map(|r| r.get::<_, String>(0))
            else {
                return Ok(Change::Nothing);
            };
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            let changed = tx.execute(
                "UPDATE credentials SET confirmed_at = $2, counter = $3
                 WHERE id = $1 AND confirmed_at IS NULL",
                &[&id, &to_db(now), &counter.map(to_db)],
            )?;
            if changed != 1 {
                return Ok(Change::Nothing);
            }
            if let Some((method, codes)) = &codes {
                insert_codes(tx, &user, method, codes, now)?;
            }
            Ok(Change::Done(append(tx, ctx, now, &events)?))
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
            add_user(tx, user, now)?;
            insert_codes(tx, user, method, &codes, now)?;
            append(tx, ctx, now, &events)
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
            if !has_confirmed(tx, user)? {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            insert_codes(tx, user, method, &codes, now)?;
            Ok(Change::Done(append(tx, ctx, now, &events)?))
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
            let there: bool = match &what {
                Removal::All => tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1)
                         OR EXISTS (SELECT 1 FROM codes WHERE username = $1)",
                    &[&user],
                )?,
                Removal::Method { method, .. } => tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1 AND method = $2)",
                    &[&user, &method.as_str()],
                )?,
                Removal::Credential { id, .. } => tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1 AND id = $2)",
                    &[&user, id],
                )?,
            }
            .get(0);
            if !there && always.is_empty() {
                return Ok(Change::Nothing);
            }
            if let Some(c) = &authorize {
                if !spend(tx, c, now, false)? {
                    return Ok(Change::Lost);
                }
            }
            match &what {
                Removal::All => {
                    tx.execute("DELETE FROM credentials WHERE username = $1", &[&user])?;
                    tx.execute("DELETE FROM codes WHERE username = $1", &[&user])?;
                }
                Removal::Method { method, codes_too } => {
                    tx.execute(
                        "DELETE FROM credentials WHERE username = $1 AND method = $2",
                        &[&user, &method.as_str()],
                    )?;
                    remove_codes_if_last(tx, user, codes_too)?;
                }
                Removal::Credential { id, codes_too } => {
                    tx.execute(
                        "DELETE FROM credentials WHERE username = $1 AND id = $2",
                        &[&user, id],
                    )?;
                    remove_codes_if_last(tx, user, codes_too)?;
                }
            }
            let mut events = always.clone();
            if there {
                events.extend(if_removed.iter().cloned());
            }
            Ok(Change::Done(append(tx, ctx, now, &events)?))
        })
    }

    fn code_count(&self, user: &str, method: &Method) -> Result<u32, StoreError> {
        self.read(|tx| code_count(tx, user, method))
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
            if !spend(tx, &claim, now, false)? {
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
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT name FROM users WHERE $1::TEXT IS NULL OR name > $1
                     ORDER BY name LIMIT $2",
                    &[&after, &i64::from(limit)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn user_lock(&self, user: &str, now: u64) -> Result<Option<u64>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_one(
                    "SELECT MAX(until) FROM locks WHERE username = $1 AND source IS NULL
                     AND cleared_at IS NULL AND until > $2",
                    &[&user, &to_db(now)],
                )?
                .get::<_, Option<i64>>(0)
                .map(from_db))
        })
    }

    fn unlock(
        &self,
        user: &str,
        now: u64,
        unlock: AuditEvent,
    ) -> Result<(u32, Vec<AuditRecord>), StoreError> {
        self.write(true, user, |tx, ctx| {
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
        })
    }

    fn locks(&self, now: u64, after: u64, limit: u32) -> Result<Vec<(u64, LockInfo)>, StoreError> {
        self.read(|tx| {
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
        })
    }

    fn grace_deadline(&self, user: &str) -> Result<Option<u64>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_opt("SELECT deadline FROM grace WHERE username = $1", &[&user])?
                .map(|r| from_db(r.get(0))))
        })
    }

    fn start_grace(
        &self,
        user: &str,
        now: u64,
        grace: u64,
        started: AuditEvent,
    ) -> Result<(u64, Vec<AuditRecord>), StoreError> {
        self.write(true, user, |tx, ctx| {
            if let Some(r) =
                tx.query_opt("SELECT deadline FROM grace WHERE username = $1", &[&user])?
            {
                return Ok((from_db(r.get(0)), Vec::new()));
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
            match deadline {
                Some(d) => tx.execute(
                    "INSERT INTO grace (username, first_seen, deadline) VALUES ($1, $2, $3)
                     ON CONFLICT (username) DO UPDATE SET deadline = EXCLUDED.deadline",
                    &[&user, &to_db(now), &to_db(d)],
                )?,
                None => tx.execute("DELETE FROM grace WHERE username = $1", &[&user])?,
            };
            append(tx, ctx, now, std::slice::from_ref(&what))
        })
    }

    fn graces(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT username, deadline FROM grace ORDER BY username",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), from_db(r.get(1))))
                .collect())
        })
    }

    fn method_users(&self) -> Result<Vec<(Method, u64)>, StoreError> {
        self.read(|tx| {
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
        })
    }

    fn low_codes(&self, method: &Method, low: u32) -> Result<Vec<(String, u32)>, StoreError> {
        self.read(|tx| {
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
        })
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
            success(tx, ctx, &s, &devices, Some(&remembered))
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
