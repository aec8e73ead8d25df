//! Reads a whole SQLite file into an [`Export`], in one read snapshot, for
//! `twofoldd --migrate-from-sqlite` (the file is only read).

use super::{credentials, from_db, Db};
use crate::store::{Device, Export, ExportCode, ExportLock, StoreError};
use std::path::Path;

/// Reads every row of the database at `path` (read-only).
pub fn export_sqlite(path: &Path) -> Result<Export, StoreError> {
    let db = Db::open_reader(path)?;
    db.read(|db| {
        let c = &db.conn;
        let mut out = Export::default();
        let mut st = c.prepare("SELECT name, created_at FROM users ORDER BY name")?;
        out.users = st
            .query_map([], |r| Ok((r.get(0)?, from_db(r.get(1)?))))?
            .collect::<Result<_, _>>()?;
        for (user, _) in &out.users {
            out.credentials.extend(credentials(c, user)?);
        }
        let mut st = c.prepare(
            "SELECT user, method, lookup, hash, created_at, used_at, expires_at FROM codes
             ORDER BY id",
        )?;
        out.codes = st
            .query_map([], |r| {
                Ok(ExportCode {
                    user: r.get(0)?,
                    method: r.get(1)?,
                    lookup: r.get(2)?,
                    hash: r.get(3)?,
                    created_at: from_db(r.get(4)?),
                    used_at: r.get::<_, Option<i64>>(5)?.map(from_db),
                    expires_at: r.get::<_, Option<i64>>(6)?.map(from_db),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare("SELECT user, source, at FROM failures ORDER BY id")?;
        out.failures = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, from_db(r.get(2)?))))?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare(
            "SELECT user, source, created_at, until, failures, cleared_at FROM locks ORDER BY id",
        )?;
        out.locks = st
            .query_map([], |r| {
                Ok(ExportLock {
                    user: r.get(0)?,
                    source: r.get(1)?,
                    created_at: from_db(r.get(2)?),
                    until: from_db(r.get(3)?),
                    failures: r.get(4)?,
                    cleared_at: r.get::<_, Option<i64>>(5)?.map(from_db),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare("SELECT user, first_seen, deadline FROM grace ORDER BY user")?;
        out.grace = st
            .query_map([], |r| {
                Ok((r.get(0)?, from_db(r.get(1)?), from_db(r.get(2)?)))
            })?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare(
            "SELECT user, id, kind, what, service, created_at, last_used, expires_at,
                    forgotten_at FROM devices ORDER BY id",
        )?;
        out.devices = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    Device {
                        id: r.get(1)?,
                        kind: r.get(2)?,
                        what: r.get(3)?,
                        service: r.get(4)?,
                        since: from_db(r.get(5)?),
                        last_used: r.get::<_, Option<i64>>(6)?.map(from_db),
                        expires_at: from_db(r.get(7)?),
                    },
                    r.get::<_, Option<i64>>(8)?.map(from_db),
                ))
            })?
            .collect::<Result<_, _>>()?;
        out.anchor = db.audit_anchor()?;
        db.audit_chain(|row| {
            out.audit.push(row.clone());
            true
        })?;
        out.head = db.audit_head()?;
        Ok(out)
    })
}
