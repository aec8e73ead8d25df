//! Moves a single host's SQLite state ([`Export`]) into the fleet's
//! database: one transaction, committed only with `apply` (a dry run
//! reports the same counts and rolls back), recorded per host so a second
//! run changes nothing.
//!
//! Credential ids are kept (they are sealed into the secrets). An account
//! the fleet already has factors for keeps the fleet's: that host's
//! credentials, codes and devices for it are left out and reported. The
//! host's audit chain becomes the chain (host, lane -1), rows, hashes,
//! anchor and head as they were, so `audit verify` checks it unchanged.

use super::{to_db, PgStore, Tx};
use crate::store::{Export, StoreError};
use std::collections::BTreeSet;

/// The lane of a chain moved in from a single host's SQLite file.
pub const IMPORTED_LANE: i32 = -1;

/// What a migration did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Whether this host's state was moved in before (nothing was done).
    pub already: bool,
    /// Whether it was committed (else a dry run).
    pub applied: bool,
    /// Accounts, credentials, codes, failures, locks, grace deadlines,
    /// devices and audit rows moved in.
    pub users: u64,
    /// See [`ImportReport::users`].
    pub credentials: u64,
    /// See [`ImportReport::users`].
    pub codes: u64,
    /// See [`ImportReport::users`].
    pub failures: u64,
    /// See [`ImportReport::users`].
    pub locks: u64,
    /// See [`ImportReport::users`].
    pub grace: u64,
    /// See [`ImportReport::users`].
    pub devices: u64,
    /// See [`ImportReport::users`].
    pub audit_rows: u64,
    /// Accounts whose factors the fleet already had: this host's were left out.
    pub kept_fleet: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.already {
            return write!(f, "already moved into the fleet database: nothing to do");
        }
        write!(
            f,
            "{}: {} accounts, {} credentials, {} codes, {} failures, {} locks, {} grace deadlines, \
             {} devices, {} audit rows",
            if self.applied {
                "moved into the fleet database"
            } else {
                "dry run (nothing written; --apply moves it)"
            },
            self.users,
            self.credentials,
            self.codes,
            self.failures,
            self.locks,
            self.grace,
            self.devices,
            self.audit_rows
        )?;
        if !self.kept_fleet.is_empty() {
            write!(
                f,
                "; already enrolled in the fleet, their factors kept: {}",
                self.kept_fleet.join(", ")
            )?;
        }
        Ok(())
    }
}

impl PgStore {
    /// Moves `export` (host `host`'s SQLite state) in at `now`; commits
    /// only when `apply`.
    pub fn import(
        &self,
        export: &Export,
        host: &str,
        now: u64,
        apply: bool,
    ) -> Result<ImportReport, StoreError> {
        self.with_lease(|conn, _| {
            let mut tx = Tx::begin(conn, "BEGIN")?;
            // One migration at a time, fleet-wide.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('twofold/import', 0))",
                &[],
            )?;
            let mut report = ImportReport {
                applied: apply,
                ..ImportReport::default()
            };
            if tx
                .query_opt("SELECT 1 FROM imports WHERE host = $1", &[&host])?
                .is_some()
            {
                report.already = true;
                report.applied = false;
                return Ok(report);
            }
            move_in(&mut tx, export, host, &mut report)?;
            tx.execute(
                "INSERT INTO imports (host, imported_at) VALUES ($1, $2)",
                &[&host, &to_db(now)],
            )?;
            if apply {
                tx.commit()?;
            }
            Ok(report)
        })
    }
}

fn move_in(
    tx: &mut Tx<'_>,
    e: &Export,
    host: &str,
    r: &mut ImportReport,
) -> Result<(), StoreError> {
    // Accounts the fleet already has a factor for keep the fleet's.
    let mut kept = BTreeSet::new();
    for (user, _) in &e.users {
        let has: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1)
                     OR EXISTS (SELECT 1 FROM codes WHERE username = $1)",
                &[user],
            )?
            .get(0);
        if has {
            kept.insert(user.clone());
        }
    }
    for (user, created) in &e.users {
        r.users += tx.execute(
            "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[user, &to_db(*created)],
        )?;
    }
    for c in e.credentials.iter().filter(|c| !kept.contains(&c.user)) {
        r.credentials += tx.execute(
            "INSERT INTO credentials (id, username, method, label, sealed, nonce, params,
                                      created_at, confirmed_at, counter, last_used)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &c.id,
                &c.user,
                &c.method.as_str(),
                &c.label,
                &c.sealed,
                &c.nonce,
                &c.params,
                &to_db(c.created_at),
                &c.confirmed_at.map(to_db),
                &c.counter.map(to_db),
                &c.last_used.map(to_db),
            ],
        )?;
    }
    // Codes sent by mail or SMS (an empty hash: their keyed lookup is the
    // check) belong to a login on this host that is over: not moved.
    for c in e
        .codes
        .iter()
        .filter(|c| !kept.contains(&c.user) && !c.hash.is_empty())
    {
        r.codes += tx.execute(
            "INSERT INTO codes (username, method, lookup, hash, created_at, used_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &c.user,
                &c.method,
                &c.lookup,
                &c.hash,
                &to_db(c.created_at),
                &c.used_at.map(to_db),
                &c.expires_at.map(to_db),
            ],
        )?;
    }
    for (user, source, at) in &e.failures {
        r.failures += tx.execute(
            "INSERT INTO failures (username, source, at) VALUES ($1, $2, $3)",
            &[user, source, &to_db(*at)],
        )?;
    }
    for l in &e.locks {
        r.locks += tx.execute(
            "INSERT INTO locks (username, source, created_at, until, failures, cleared_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &l.user,
                &l.source,
                &to_db(l.created_at),
                &to_db(l.until),
                &i32::try_from(l.failures).unwrap_or(i32::MAX),
                &l.cleared_at.map(to_db),
            ],
        )?;
    }
    for (user, first, deadline) in &e.grace {
        r.grace += tx.execute(
            "INSERT INTO grace (username, first_seen, deadline) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO NOTHING",
            &[user, &to_db(*first), &to_db(*deadline)],
        )?;
    }
    for (user, d, forgotten) in e.devices.iter().filter(|(u, _, _)| !kept.contains(u)) {
        r.devices += tx.execute(
            "INSERT INTO devices (username, kind, what, service, created_at, last_used,
                                  expires_at, forgotten_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                user,
                &d.kind,
                &d.what,
                &d.service,
                &to_db(d.since),
                &d.last_used.map(to_db),
                &to_db(d.expires_at),
                &forgotten.map(to_db),
            ],
        )?;
    }
    // The chain as it was: its rows, anchor and head under (host, -1).
    for row in &e.audit {
        let a = &row.record;
        r.audit_rows += tx.execute(
            "INSERT INTO audit (host, lane, seq, at, event, username, service, rhost, tty,
                                method, actor, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &host,
                &IMPORTED_LANE,
                &to_db(a.id),
                &to_db(a.at),
                &a.event,
                &a.user,
                &a.service,
                &a.rhost,
                &a.tty,
                &a.method,
                &a.actor,
                &a.detail,
                &row.prev_hash,
                &row.hash,
            ],
        )?;
    }
    tx.execute(
        "INSERT INTO audit_anchor (host, lane, last_seq, hash, pruned_at) VALUES ($1, $2, $3, $4, 0)",
        &[&host, &IMPORTED_LANE, &to_db(e.anchor.0), &e.anchor.1],
    )?;
    let (last, hash) = e.head.clone().unwrap_or((e.anchor.0, e.anchor.1.clone()));
    tx.execute(
        "INSERT INTO audit_head (host, lane, last_seq, hash) VALUES ($1, $2, $3, $4)",
        &[&host, &IMPORTED_LANE, &to_db(last), &hash],
    )?;
    r.kept_fleet = kept.into_iter().collect();
    Ok(())
}
