//! Remembered devices: stored with their audit rows in one transaction,
//! forgotten (never deleted) so the list and the audit trail agree.

use super::audit::append;
use super::limits::{active_lock, clear_source_failures};
use super::{from_db, to_db};
use crate::audit::AuditEvent;
use crate::store::{Device, NewDevice, RememberedOutcome, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use twofold_proto::AuditRecord;

const COLUMNS: &str = "id, kind, what, service, created_at, last_used, expires_at";

fn device(r: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        kind: r.get(1)?,
        what: r.get(2)?,
        service: r.get(3)?,
        since: from_db(r.get(4)?),
        last_used: r.get::<_, Option<i64>>(5)?.map(from_db),
        expires_at: from_db(r.get(6)?),
    })
}

/// Remembers `devices` for `user` (replacing an active one of the same
/// kind and identity) and returns the rows of `remembered` to append.
pub(crate) fn remember(
    tx: &Transaction<'_>,
    user: &str,
    devices: &[NewDevice],
    now: u64,
    remembered: &AuditEvent,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut events = Vec::new();
    for d in devices {
        tx.execute(
            "UPDATE devices SET forgotten_at = ?4
             WHERE user = ?1 AND kind = ?2 AND what = ?3 AND forgotten_at IS NULL",
            params![user, d.kind, d.what, to_db(now)],
        )?;
        tx.execute(
            "INSERT INTO devices (user, kind, what, service, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user,
                d.kind,
                d.what,
                d.service,
                to_db(now),
                to_db(d.expires_at)
            ],
        )?;
        let id = tx.last_insert_rowid();
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
pub(crate) fn login(
    tx: &Transaction<'_>,
    user: &str,
    source: &str,
    kind: &str,
    whats: &[String],
    now: u64,
    success: AuditEvent,
) -> Result<RememberedOutcome, StoreError> {
    if let Some(l) = active_lock(tx, user, source, now)? {
        return Ok(RememberedOutcome::Locked(l));
    }
    let mut found = None;
    for what in whats {
        found = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM devices
                     WHERE user = ?1 AND kind = ?2 AND what = ?3
                       AND forgotten_at IS NULL AND expires_at > ?4
                     ORDER BY id DESC LIMIT 1"
                ),
                params![user, kind, what, to_db(now)],
                device,
            )
            .optional()?;
        if found.is_some() {
            break;
        }
    }
    let Some(mut d) = found else {
        return Ok(RememberedOutcome::NotFound);
    };
    tx.execute(
        "UPDATE devices SET last_used = ?2 WHERE id = ?1",
        params![d.id, to_db(now)],
    )?;
    d.last_used = Some(now);
    clear_source_failures(tx, user, source)?;
    let ev = success
        .with("device", &d.id.to_string())
        .with("what", &d.what);
    let recs = append(tx, now, &[ev])?;
    Ok(RememberedOutcome::Done(d, recs))
}

/// The active devices of `user` at `now`, oldest first.
pub(crate) fn list(conn: &Connection, user: &str, now: u64) -> Result<Vec<Device>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices
         WHERE user = ?1 AND forgotten_at IS NULL AND expires_at > ?2 ORDER BY id"
    ))?;
    let rows = st.query_map(params![user, to_db(now)], device)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// See [`crate::store::Store::forget_devices`]. Expired devices are
/// forgotten too (they are no longer listed, but an `--all` leaves none).
pub(crate) fn forget(
    tx: &Transaction<'_>,
    user: &str,
    id: Option<i64>,
    now: u64,
    forgotten: AuditEvent,
) -> Result<(u32, Vec<AuditRecord>), StoreError> {
    let active = list(tx, user, now)?;
    let mut events = Vec::new();
    for d in active.iter().filter(|d| id.is_none_or(|i| i == d.id)) {
        tx.execute(
            "UPDATE devices SET forgotten_at = ?2 WHERE id = ?1",
            params![d.id, to_db(now)],
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
            "UPDATE devices SET forgotten_at = ?2 WHERE user = ?1 AND forgotten_at IS NULL",
            params![user, to_db(now)],
        )?;
    }
    let n = events.len() as u32;
    Ok((n, append(tx, now, &events)?))
}
