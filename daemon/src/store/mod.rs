//! All persistent state, behind one API (a PostgreSQL implementation will
//! later sit behind the same operations).
//!
//! **Invariant:** every write a login's answer depends on (an accepted time
//! step, a used backup code, a failure, their audit rows) is committed under
//! `synchronous=FULL` before the answer is sent — one transaction per login,
//! several logins' transactions grouped into one by [`GroupCommit`] — and
//! each is conditional in SQL so two concurrent logins cannot both win.

mod audit;
mod commit;
mod grace;
mod limits;
mod schema;

pub(crate) use audit::append;
pub use audit::AuditFilter;
pub use commit::{CommitStats, GroupCommit};
pub use limits::Locked;
pub(crate) use limits::{active_lock, clear_source_failures, failure_rows};
pub use schema::SCHEMA_VERSION;

use crate::totp::TotpParams;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;
use twofold_proto::Algorithm;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file or its directory could not be created.
    #[error("database {path}: {source}")]
    Create {
        /// The database file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file was written by a newer twofoldd.
    #[error("database schema version {found} is newer than this twofoldd supports ({supported})")]
    TooNew {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A group transaction did not commit (or its writer is gone); nothing
    /// in it counts.
    #[error("database: commit failed: {0}")]
    Commit(String),
    /// A row holds a value this build cannot interpret.
    #[error("database: corrupt row: {0}")]
    Corrupt(String),
}

/// A TOTP credential row (pending when `confirmed_at` is `None`).
#[derive(Debug, Clone)]
pub struct TotpRecord {
    /// Row identity, bound into the ciphertext's associated data.
    pub id: i64,
    /// The account.
    pub user: String,
    /// The encrypted secret.
    pub ciphertext: Vec<u8>,
    /// The nonce it was encrypted with.
    pub nonce: Vec<u8>,
    /// Algorithm, digits and period.
    pub params: TotpParams,
    /// When the enrollment started.
    pub created_at: u64,
    /// When it was confirmed; `None` while pending.
    pub confirmed_at: Option<u64>,
    /// When it last opened a login.
    pub last_used: Option<u64>,
}

/// A TOTP credential to insert as pending.
#[derive(Debug)]
pub struct NewTotp {
    /// Row identity, chosen by the caller (it is sealed into the ciphertext).
    pub id: i64,
    /// The encrypted secret.
    pub ciphertext: Vec<u8>,
    /// The nonce it was encrypted with.
    pub nonce: Vec<u8>,
    /// Algorithm, digits and period.
    pub params: TotpParams,
}

/// A backup code to insert.
#[derive(Debug)]
pub struct NewBackupCode {
    /// Keyed lookup of the normalized code.
    pub lookup: [u8; 32],
    /// argon2id PHC string of the normalized code.
    pub hash: String,
}

/// A backup code row found by its lookup.
#[derive(Debug, Clone)]
pub struct BackupRecord {
    /// Row identity.
    pub id: i64,
    /// argon2id PHC string.
    pub hash: String,
    /// When it was used; `None` while unused.
    pub used_at: Option<u64>,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The write-ahead log (`<database>-wal`), synced by
    /// the group commit (`sync_file`) after commits made without an fsync.
    wal: std::path::PathBuf,
}

fn to_db(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn from_db(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// SQLite's page cache per connection, in KiB (as `PRAGMA cache_size`
/// takes it: negative means KiB).
const CACHE_KIB: i64 = -512;

impl Store {
    /// Opens (creating 0600, directory 0700, if absent) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let create = |source| StoreError::Create {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(create)?;
            }
        }
        // Create the file ourselves first: SQLite would use the umask, and its
        // -wal and -shm files copy the main file's mode.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(create)?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal_mode is {mode}, WAL could not be enabled"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // SQLite's default page cache is 2 000 KiB, and with 100 000 users
        // logins at random fill all of it: a third of the daemon's growth
        // under load (target 5 in BENCHMARKS.md). A login touches a handful
        // of B-tree pages at random; the interior pages fit in far less and
        // the leaves miss anyway, served by the kernel's page cache.
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        // Query-planner stability: without it, SQLite (built with STAT4)
        // re-prepares a cached statement every time a new value is bound to
        // a parameter its plan looked at — every lock and failure-count
        // query of every login, ~15 % of the daemon's CPU on a wrong code.
        // Every query here is by an indexed key; one plan serves all values.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        schema::migrate(&mut conn)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Store {
            conn,
            wal: wal.into(),
        })
    }

    /// Runs `f`'s reads as one read transaction: one snapshot, and the
    /// database's locks taken and dropped once instead of per statement.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let snapshot = ReadTx::begin(&self.conn)?;
        let out = f(self)?;
        snapshot.end()?;
        Ok(out)
    }

    /// The user's TOTP credential, pending or confirmed.
    pub fn totp(&self, user: &str) -> Result<Option<TotpRecord>, StoreError> {
        // Cached statements: a login runs these every time (parsing showed
        // in its profile).
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, user, ciphertext, nonce, algorithm, digits, period, created_at,
                        confirmed_at, last_used
                 FROM totp WHERE user = ?1",
            )?
            .query_row([user], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })
            .optional()?;
        let Some((id, user, ciphertext, nonce, alg, digits, period, created, confirmed, used)) =
            row
        else {
            return Ok(None);
        };
        let algorithm = Algorithm::parse(&alg)
            .ok_or_else(|| StoreError::Corrupt(format!("totp {id}: algorithm {alg:?}")))?;
        Ok(Some(TotpRecord {
            id,
            user,
            ciphertext,
            nonce,
            params: TotpParams {
                algorithm,
                digits,
                period: from_db(period).max(1),
            },
            created_at: from_db(created),
            confirmed_at: confirmed.map(from_db),
            last_used: used.map(from_db),
        }))
    }

    /// Stores `new` as the user's pending credential, replacing an older
    /// pending one. Returns `false` (and changes nothing) when a confirmed
    /// credential exists.
    pub fn start_pending(
        &mut self,
        user: &str,
        new: &NewTotp,
        now: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let confirmed = has_confirmed_totp(&tx, user)?;
        if confirmed {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR IGNORE INTO users (name, created_at) VALUES (?1, ?2)",
            params![user, to_db(now)],
        )?;
        tx.execute("DELETE FROM totp WHERE user = ?1", [user])?;
        tx.execute(
            "INSERT INTO totp (id, user, ciphertext, nonce, algorithm, digits, period, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                new.id,
                user,
                new.ciphertext,
                new.nonce,
                new.params.algorithm.as_str(),
                new.params.digits,
                to_db(new.params.period),
                to_db(now)
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Deletes a pending credential (e.g. one whose enrollment lapsed).
    pub fn delete_pending(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM totp WHERE id = ?1 AND confirmed_at IS NULL",
            [id],
        )?;
        Ok(())
    }

    /// Confirms pending credential `id` with the accepted `step` and stores
    /// a fresh set of backup codes, in one transaction. Returns `false` when
    /// it is no longer pending.
    pub fn confirm_totp(
        &mut self,
        id: i64,
        step: u64,
        now: u64,
        codes: &[NewBackupCode],
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let user: Option<String> = tx
            .query_row(
                "UPDATE totp SET confirmed_at = ?2, last_step = ?3
                 WHERE id = ?1 AND confirmed_at IS NULL RETURNING user",
                params![id, to_db(now), to_db(step)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user) = user else {
            return Ok(false);
        };
        insert_codes(&tx, &user, codes, now)?;
        tx.commit()?;
        Ok(true)
    }

    /// Accepts time `step` for confirmed credential `id` unless that step or
    /// a later one was already accepted. `used_at` records a login.
    pub fn consume_step(
        &self,
        id: i64,
        step: u64,
        used_at: Option<u64>,
    ) -> Result<bool, StoreError> {
        consume_step(&self.conn, id, step, used_at)
    }

    /// The user's backup code with this lookup, used or not.
    pub fn backup_by_lookup(
        &self,
        user: &str,
        lookup: &[u8; 32],
    ) -> Result<Option<BackupRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, hash, used_at FROM backup_codes WHERE user = ?1 AND lookup = ?2",
            )?
            .query_row(params![user, &lookup[..]], |r| {
                Ok(BackupRecord {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    used_at: r.get::<_, Option<i64>>(2)?.map(from_db),
                })
            })
            .optional()?)
    }

    /// Marks backup code `id` used; `false` if it already was. (Logins do
    /// this through a group commit.)
    #[cfg(test)]
    pub fn use_backup(&self, id: i64, now: u64) -> Result<bool, StoreError> {
        use_backup(&self.conn, id, now)
    }

    /// How many unused backup codes the user has.
    pub fn unused_backup_codes(&self, user: &str) -> Result<u32, StoreError> {
        unused_backup_codes(&self.conn, user)
    }

    /// Whether the user has an unused backup code. Every login asks, so it
    /// stops at the first one instead of reading all of them (each a row
    /// lookup, at 100 000 users usually a page read).
    pub fn has_unused_backup_code(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM backup_codes WHERE user = ?1 AND used_at IS NULL)",
            )?
            .query_row([user], |r| r.get(0))?)
    }

    /// Replaces all of the user's backup codes; `false` (nothing changed) when
    /// the user has no confirmed TOTP credential.
    pub fn replace_backup_codes(
        &mut self,
        user: &str,
        codes: &[NewBackupCode],
        now: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let confirmed = has_confirmed_totp(&tx, user)?;
        if !confirmed {
            return Ok(false);
        }
        insert_codes(&tx, user, codes, now)?;
        tx.commit()?;
        Ok(true)
    }

    /// Removes the user's TOTP credential (pending or confirmed) and backup
    /// codes; `false` when there was nothing to remove.
    pub fn remove_factors(&mut self, user: &str) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let totp = tx.execute("DELETE FROM totp WHERE user = ?1", [user])?;
        let codes = tx.execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
        tx.commit()?;
        Ok(totp + codes > 0)
    }

    /// Whether the daemon has ever stored anything for the user.
    pub fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [user],
            |r| r.get(0),
        )?)
    }

    /// Every known account, sorted by name.
    pub fn users(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name FROM users ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }
}

/// A read transaction; rolled back if dropped unfinished (an error or a
/// panic in the reads), so the connection is never left inside it.
struct ReadTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> ReadTx<'c> {
    fn begin(conn: &'c Connection) -> Result<ReadTx<'c>, StoreError> {
        run_cached(conn, "BEGIN DEFERRED")?;
        Ok(ReadTx { conn, open: true })
    }

    fn end(mut self) -> Result<(), StoreError> {
        self.open = false;
        run_cached(self.conn, "COMMIT")
    }
}

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = run_cached(self.conn, "ROLLBACK");
        }
    }
}

impl Store {
    /// Whether commits wait for an fsync of the log (`synchronous=FULL`,
    /// the default) or only reach the operating system (`NORMAL`: they
    /// survive a crash of twofoldd, not of the machine).
    pub(crate) fn set_durable(&self, durable: bool) -> Result<(), StoreError> {
        run_cached(
            &self.conn,
            if durable {
                "PRAGMA synchronous=FULL"
            } else {
                "PRAGMA synchronous=NORMAL"
            },
        )
    }
}

/// Makes everything committed so far durable by fsyncing the log file at
/// `wal` (what a `synchronous=FULL` commit does); a missing log has
/// nothing to sync.
pub(crate) fn sync_file(wal: &Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs one statement without results through the statement cache
/// (`execute_batch` parses its text every time; a login runs these often).
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// [`Store::consume_step`] on any connection or transaction (a group commit's).
pub(crate) fn consume_step(
    conn: &Connection,
    id: i64,
    step: u64,
    used_at: Option<u64>,
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE totp SET last_step = ?2, last_used = COALESCE(?3, last_used)
         WHERE id = ?1 AND confirmed_at IS NOT NULL
           AND (last_step IS NULL OR last_step < ?2)",
    )?;
    let changed = stmt.execute(params![id, to_db(step), used_at.map(to_db)])?;
    Ok(changed == 1)
}

/// [`Store::use_backup`] on any connection or transaction.
pub(crate) fn use_backup(conn: &Connection, id: i64, now: u64) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached("UPDATE backup_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL")?;
    Ok(stmt.execute(params![id, to_db(now)])? == 1)
}

/// [`Store::unused_backup_codes`] on any connection or transaction.
pub(crate) fn unused_backup_codes(conn: &Connection, user: &str) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM backup_codes WHERE user = ?1 AND used_at IS NULL")?
        .query_row([user], |r| r.get(0))?)
}

/// Whether `user` has a confirmed TOTP credential, read inside `tx` so the
/// change the caller makes next depends on what this transaction saw.
fn has_confirmed_totp(tx: &rusqlite::Transaction<'_>, user: &str) -> Result<bool, StoreError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM totp WHERE user = ?1 AND confirmed_at IS NOT NULL)",
        [user],
        |r| r.get(0),
    )?)
}

fn insert_codes(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    codes: &[NewBackupCode],
    now: u64,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
    let mut stmt = tx.prepare(
        "INSERT INTO backup_codes (user, lookup, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for c in codes {
        stmt.execute(params![user, &c.lookup[..], c.hash, to_db(now)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
