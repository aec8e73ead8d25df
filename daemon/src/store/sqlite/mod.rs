//! The embedded store: SQLite (WAL) in one file, behind [`SqliteStore`].
//!
//! Replay protection and single use are single `UPDATE ... WHERE`
//! statements whose changed-row count decides, so two logins racing with
//! one code cannot both win. Login writes go through the group commit
//! (`commit.rs`); a deferred group is committed before the answer and
//! fsynced within 100 ms.

mod audit;
mod commit;
mod devices;
mod export;
mod grace;
mod limits;
mod schema;
mod sends;
mod store;

pub use commit::CommitStats;
pub use export::export_sqlite;
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

use super::{CodeRecord, Credential, NewCode, NewCredential, StoreError};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;
use twofold_proto::Method;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

/// One connection to the database file.
#[derive(Debug)]
pub(crate) struct Db {
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

impl Db {
    /// Opens (creating 0600, directory 0700, if absent) and migrates the database.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
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
        // Never through a symbolic link: whoever placed one would choose
        // where the daemon writes (O_NOFOLLOW here, SQLITE_OPEN_NOFOLLOW
        // for the database and its -wal and -shm files).
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(create)?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
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
        sends::on_open(&conn)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Db {
            conn,
            wal: wal.into(),
        })
    }

    /// A second connection, read-only, for the audit trail's queries: a
    /// long query then never holds the connection logins write through,
    /// and [`Db::with_budget`] bounds how long it may run.
    pub fn open_reader(path: &Path) -> Result<Db, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        Ok(Db {
            conn,
            wal: std::path::PathBuf::new(),
        })
    }

    /// Runs `f`, interrupting its statements once `budget` has passed (the
    /// error then says so).
    pub fn with_budget<T>(
        &mut self,
        budget: Duration,
        f: impl FnOnce(&Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = std::time::Instant::now() + budget;
        self.conn
            .progress_handler(10_000, Some(move || std::time::Instant::now() > deadline))?;
        let out = f(self);
        self.conn.progress_handler(0, None::<fn() -> bool>)?;
        out.map_err(|e| match e {
            StoreError::Database(m) if m.contains("interrupted") => StoreError::TooLong(format!(
                "the query ran longer than {:.1} s; narrow it (a user, an event, a time range)",
                budget.as_secs_f64()
            )),
            other => other,
        })
    }

    /// Runs `f`'s reads as one read transaction: one snapshot, and the
    /// database's locks taken and dropped once instead of per statement.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let snapshot = ReadTx::begin(&self.conn)?;
        let out = f(self)?;
        snapshot.end()?;
        Ok(out)
    }

    /// The connection itself.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Every credential of `user`, pending or confirmed.
    pub fn credentials(&self, user: &str) -> Result<Vec<Credential>, StoreError> {
        credentials(&self.conn, user)
    }

    /// The methods of which `user` holds an unused code. Every login asks,
    /// so the covering index answers it without reading the rows.
    pub fn code_methods(&self, user: &str, now: u64) -> Result<Vec<Method>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT method FROM codes WHERE user = ?1 AND used_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?2)",
        )?;
        let mut rows = stmt.query(params![user, to_db(now)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(method(r.get_ref(0)?.as_str()?)?);
        }
        Ok(out)
    }

    /// Stores `new` as a pending credential of `user` (see
    /// [`NewCredential::single`]); `false` (nothing changed) when refused.
    pub fn start_pending(
        &mut self,
        user: &str,
        new: &NewCredential,
        now: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        if new.single {
            let confirmed: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM credentials
                                WHERE user = ?1 AND method = ?2 AND confirmed_at IS NOT NULL)",
                params![user, new.method.as_str()],
                |r| r.get(0),
            )?;
            if confirmed {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM credentials WHERE user = ?1 AND method = ?2",
                params![user, new.method.as_str()],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO users (name, created_at) VALUES (?1, ?2)",
            params![user, to_db(now)],
        )?;
        tx.execute(
            "INSERT INTO credentials (id, user, method, label, sealed, nonce, params, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                new.id,
                user,
                new.method.as_str(),
                new.label,
                new.sealed,
                new.nonce,
                new.params,
                to_db(now)
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Deletes a pending credential (e.g. one whose enrollment lapsed).
    pub fn delete_pending(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM credentials WHERE id = ?1 AND confirmed_at IS NULL",
            [id],
        )?;
        Ok(())
    }

    /// Moves confirmed credential `id`'s counter to `value` (see
    /// [`spend_counter`]). (Logins do this through a group commit.)
    #[cfg(test)]
    pub fn spend_counter(
        &self,
        id: i64,
        value: u64,
        used_at: Option<u64>,
    ) -> Result<bool, StoreError> {
        spend_counter(&self.conn, id, value, used_at)
    }

    /// The `method` code of `user` with this lookup, used or not.
    pub fn code_by_lookup(
        &self,
        user: &str,
        method: &Method,
        lookup: &[u8; 32],
    ) -> Result<Option<CodeRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, hash, used_at, expires_at FROM codes
                 WHERE lookup = ?3 AND user = ?1 AND method = ?2
                 ORDER BY used_at IS NOT NULL, id LIMIT 1",
            )?
            .query_row(params![user, method.as_str(), &lookup[..]], |r| {
                Ok(CodeRecord {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    used_at: r.get::<_, Option<i64>>(2)?.map(from_db),
                    expires_at: r.get::<_, Option<i64>>(3)?.map(from_db),
                })
            })
            .optional()?)
    }

    /// Marks code `id` used; `false` if it already was. (Logins do this
    /// through a group commit.)
    #[cfg(test)]
    pub fn use_code(&self, id: i64, now: u64) -> Result<bool, StoreError> {
        use_code(&self.conn, id, now)
    }

    /// How many unused `method` codes the user has.
    pub fn code_count(&self, user: &str, method: &Method) -> Result<u32, StoreError> {
        code_count(&self.conn, user, method)
    }

    /// Whether the daemon has ever stored anything for the user.
    pub fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [user],
            |r| r.get(0),
        )?)
    }

    /// Up to `limit` known accounts after `after`, sorted by name.
    pub fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name FROM users WHERE ?1 IS NULL OR name > ?1 ORDER BY name LIMIT ?2",
        )?;
        let names = stmt
            .query_map(params![after, i64::from(limit)], |r| r.get(0))?
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

impl Db {
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

/// A stored method name; one that is not a method name is a corrupt row.
fn method(name: &str) -> Result<Method, StoreError> {
    Method::new(name).ok_or_else(|| StoreError::Corrupt(format!("method {name:?}")))
}

/// Every credential of `user` on any connection or transaction.
pub(crate) fn credentials(conn: &Connection, user: &str) -> Result<Vec<Credential>, StoreError> {
    // Cached statement: a login runs it every time (parsing showed in its
    // profile).
    let mut stmt = conn.prepare_cached(
        "SELECT id, user, method, label, sealed, nonce, params, created_at, confirmed_at,
                last_used, counter
         FROM credentials WHERE user = ?1 ORDER BY created_at, id",
    )?;
    let mut rows = stmt.query([user])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Credential {
            id: r.get(0)?,
            user: r.get(1)?,
            method: method(r.get_ref(2)?.as_str()?)?,
            label: r.get(3)?,
            sealed: r.get(4)?,
            nonce: r.get(5)?,
            params: r.get(6)?,
            created_at: from_db(r.get(7)?),
            confirmed_at: r.get::<_, Option<i64>>(8)?.map(from_db),
            last_used: r.get::<_, Option<i64>>(9)?.map(from_db),
            counter: r.get::<_, Option<i64>>(10)?.map(from_db),
        });
    }
    Ok(out)
}

/// Moves confirmed credential `id`'s counter to `value` unless that value
/// or a later one was accepted already; `used_at` records a login.
/// Marks an unmetered credential used (see `Claim::Unmetered`); `false`
/// when its counter is not 0.
pub(crate) fn spend_unmetered(
    conn: &Connection,
    id: i64,
    used_at: Option<u64>,
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE credentials SET counter = 0, last_used = COALESCE(?2, last_used)
         WHERE id = ?1 AND confirmed_at IS NOT NULL AND COALESCE(counter, 0) = 0",
    )?;
    let changed = stmt.execute(params![id, used_at.map(to_db)])?;
    Ok(changed == 1)
}

pub(crate) fn spend_counter(
    conn: &Connection,
    id: i64,
    value: u64,
    used_at: Option<u64>,
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE credentials SET counter = ?2, last_used = COALESCE(?3, last_used)
         WHERE id = ?1 AND confirmed_at IS NOT NULL
           AND (counter IS NULL OR counter < ?2)",
    )?;
    let changed = stmt.execute(params![id, to_db(value), used_at.map(to_db)])?;
    Ok(changed == 1)
}

/// Marks code `id` used on any connection or transaction; `false` if it
/// already was.
pub(crate) fn use_code(conn: &Connection, id: i64, now: u64) -> Result<bool, StoreError> {
    let mut stmt =
        conn.prepare_cached("UPDATE codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL")?;
    Ok(stmt.execute(params![id, to_db(now)])? == 1)
}

/// Unused `method` codes of `user` on any connection or transaction.
pub(crate) fn code_count(
    conn: &Connection,
    user: &str,
    method: &Method,
) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM codes WHERE user = ?1 AND method = ?2 AND used_at IS NULL",
        )?
        .query_row(params![user, method.as_str()], |r| r.get(0))?)
}

/// Unused, unexpired `method` codes of `user` at `now`, and the latest
/// expiry among them.
pub(crate) fn outstanding(
    conn: &Connection,
    user: &str,
    method: &Method,
    now: u64,
) -> Result<(u32, Option<u64>), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), MAX(expires_at) FROM codes WHERE user = ?1 AND method = ?2
             AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
        )?
        .query_row(params![user, method.as_str(), to_db(now)], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(from_db)))
        })?)
}

/// Whether `user` has a confirmed credential, read inside `conn`'s
/// transaction so the change the caller makes next depends on what it saw.
pub(crate) fn has_confirmed(conn: &Connection, user: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM credentials WHERE user = ?1 AND confirmed_at IS NOT NULL)",
        [user],
        |r| r.get(0),
    )?)
}

/// Replaces the user's `method` codes with `codes`.
pub(crate) fn insert_codes(
    conn: &Connection,
    user: &str,
    method: &Method,
    codes: &[NewCode],
    now: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM codes WHERE user = ?1 AND method = ?2",
        params![user, method.as_str()],
    )?;
    let mut stmt = conn.prepare(
        "INSERT INTO codes (user, method, lookup, hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in codes {
        stmt.execute(params![
            user,
            method.as_str(),
            &c.lookup[..],
            c.hash,
            to_db(now),
            c.expires_at.map(to_db)
        ])?;
    }
    Ok(())
}

/// Confirms pending credential `id` with its first `counter`; `None` when
/// it is no longer pending, else its user.
pub(crate) fn confirm_credential(
    conn: &Connection,
    id: i64,
    counter: Option<u64>,
    now: u64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "UPDATE credentials SET confirmed_at = ?2, counter = ?3
             WHERE id = ?1 AND confirmed_at IS NULL RETURNING user",
            params![id, to_db(now), counter.map(to_db)],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests;
