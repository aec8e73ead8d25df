//! Remembered devices on PostgreSQL (the SQLite store's `devices.rs`,
//! under the account's advisory lock): stored with their audit rows in one
//! transaction, forgotten (never deleted).

use super::audit::append;
use super::login::{active_lock, clear_source_failures};
use super::{from_db, to_db, Ctx, Tx};
use crate::audit::AuditEvent;
use crate::store::{Device, NewDevice, RememberedOutcome, StoreError};
use tokio_postgres::Row;
use twofold_proto::AuditRecord;

const COLUMNS: &str = "id, kind, what, service, created_at, last_used, expires_at";

fn device(r: &Row) -> Device {
    Device {
        id: r.get(0),
        kind: r.get(1),
        what: r.get(2),
        service: r.get(3),
        since: from_db(r.get(4)),
        last_used: r.get::<_, Option<i64>>(5).map(from_db),
        expires_at: from_db(r.get(6)),
    }
}

/// Remembers `devices` for `user` (replacing an active one of the same
/// kind and identity) and returns the rows of `remembered` to append.
pub(crate) fn remember(
    tx: &mut Tx<'_>,
    user: &str,
    devices: &[NewDevice],
    now: u64,
    remembered: &AuditEvent,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut events = Vec::new();
    for d in devices {
        tx.execute(
            "UPDATE devices SET forgotten_at = $4
             WHERE username = $1 AND kind = $2 AND what = $3 AND forgotten_at IS NULL",
            &[&user, &d.kind, &d.what, &to_db(now)],
        )?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO devices (username, kind, what, service, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &user,
                    &d.kind,
                    &d.what,
                    &d.service,
                    &to_db(now),
                    &to_db(d.expires_at),
                ],
            )?
            .get(0);
        events.push(
            remembered
                .clone()
                .with("device", &id.to_string())
                .with("kind", &d.kind)
                .with("what", &d.what)
                .with("expires", &d.expires_at.to_string()),
        );
    }
    Ok(events)
}

/// See [`crate::store::Store::remembered_login`].
#[allow(
    clippy::too_many_arguments,
    reason = "the trait method's arguments, plus the transaction and its chain"
)]
pub(crate) fn login(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    source: &str,
    kind: &str,
    whats: &[String],
    now: u64,
    success: &AuditEvent,
) -> Result<RememberedOutcome, StoreError> {
    if let Some(l) = active_lock(tx, user, source, now)? {
        return Ok(RememberedOutcome::Locked(l));
    }
    let mut found = None;
    for what in whats {
        found = tx
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM devices
                     WHERE username = $1 AND kind = $2 AND what = $3
                       AND forgotten_at IS NULL AND expires_at > $4
                     ORDER BY id DESC LIMIT 1"
                ),
                &[&user, &kind, what, &to_db(now)],
            )?
            .map(|r| device(&r));
        if found.is_some() {
            break;
        }
    }
    let Some(mut d) = found else {
        return Ok(RememberedOutcome::NotFound);
    };
    tx.execute(
        "UPDATE devices SET last_used = $2 WHERE id = $1",
        &[&d.id, &to_db(now)],
    )?;
    d.last_used = Some(now);
    clear_source_failures(tx, user, source)?;
    let ev = success
        .clone()
        .with("device", &d.id.to_string())
        .with("what", &d.what);
    let recs = append(tx, ctx, now, &[ev])?;
    Ok(RememberedOutcome::Done(d, recs))
}

/// The active devices of `user` at `now`, oldest first.
pub(crate) fn list(c: &mut Tx<'_>, user: &str, now: u64) -> Result<Vec<Device>, StoreError> {
    Ok(c.query(
        &format!(
            "SELECT {COLUMNS} FROM devices
                 WHERE username = $1 AND forgotten_at IS NULL AND expires_at > $2 ORDER BY id"
        ),
        &[&user, &to_db(now)],
    )?
    .iter()
    .map(device)
    .collect())
}

/// See [`crate::store::Store::forget_devices`]. Expired devices are
/// forgotten too (they are no longer listed, but an `--all` leaves none).
pub(crate) fn forget(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    id: Option<i64>,
    now: u64,
    forgotten: &AuditEvent,
) -> Result<(u32, Vec<AuditRecord>), StoreError> {
    let active = list(tx, user, now)?;
    let mut events = Vec::new();
    for d in active.iter().filter(|d| id.is_none_or(|i| i == d.id)) {
        tx.execute(
            "UPDATE devices SET forgotten_at = $2 WHERE id = $1",
            &[&d.id, &to_db(now)],
        )?;
        events.push(
            forgotten
                .clone()
                .with("device", &d.id.to_string())
                .with("kind", &d.kind)
                .with("what", &d.what),
        );
    }
    if id.is_none() {
        tx.execute(
            "UPDATE devices SET forgotten_at = $2 WHERE username = $1 AND forgotten_at IS NULL",
            &[&user, &to_db(now)],
        )?;
    }
    let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
    Ok((n, append(tx, ctx, now, &events)?))
}
