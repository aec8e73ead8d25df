//! The fleet store: the [`Store`](crate::store::Store) operations on a
//! PostgreSQL database shared by many hosts, behind [`PgStore`].
//!
//! The guarantees are the SQLite store's, made across hosts:
//! - a counter (time step, HOTP value) is accepted once and a code spent
//!   once by single conditional `UPDATE`s whose changed-row count decides:
//!   at READ COMMITTED, a second `UPDATE` of the row waits for the first
//!   transaction and re-checks its `WHERE` on the committed row, so a race
//!   across hosts has exactly one winner;
//! - every write that concerns an account takes that account's transaction
//!   advisory lock first (`pg_advisory_xact_lock`), so failures are counted
//!   and locks made atomically, and a login sees every lock committed
//!   before it — from any host (a TOTP success is one statement instead,
//!   whose one snapshot sees every lock committed before it began);
//! - a change is never stored without its audit rows (one transaction);
//! - an answer is given only after the commit: durable (the default
//!   `synchronous_commit`) for everything but a wrong code's rows, which
//!   use `SET LOCAL synchronous_commit = off` — committed and visible to
//!   every host at once, on disk within three `wal_writer_delay`s (600 ms
//!   by default), the counterpart of SQLite's deferred group.
//!
//! A login costs few round trips: its reads are one statement each (one
//! statement sees one snapshot). A TOTP success's write is one statement
//! outside any transaction (`login.rs`, `spend_step_sql`): it checks the
//! lock, spends the step and appends the audit rows in one snapshot, and
//! commits when it ends (no advisory lock: see there). Any other write (and a TOTP success whose
//! lane's chain head is not known or moved) is `BEGIN`, the setting and the
//! advisory lock in one simple query, one statement of data-modifying CTEs
//! for the lock check and the spend (or the failure and its counts), the
//! audit rows in that statement or one of their own (`audit.rs`), and
//! `COMMIT`.
//!
//! The audit trail keeps one hash chain per (host, lane): each connection
//! slot of a host ([`pool`]) appends to its own chain, so no two logins
//! anywhere wait on one chain head. Every row names its host; a chain
//! starts from a hash of its host and lane, so a row moved to another
//! host's chain breaks both.

mod admin;
mod audit;
mod changes;
mod client;
mod devices;
mod import;
mod login;
mod pool;
mod replica;
mod schema;
mod sends;
mod store;
mod tls;

pub use import::{ImportReport, IMPORTED_LANE};
pub use replica::ReplicaState;
pub use schema::PG_SCHEMA_VERSION;
pub use sends::CLAIM_LEASE;

use crate::clock::Clock;
use crate::crypto::keys::Keys;
use crate::log::Logger;
use crate::store::{Snapshot, StoreError};
use client::{PgClient, PgError};
use pool::{Conn, Lease, Pool};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use twofold_config::StoreConfig;
use twofold_proto::Method;
use zeroize::Zeroizing;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::QUERY_CANCELED {
                return StoreError::Database(format!(
                    "postgres: statement timed out ({})",
                    db.message()
                ));
            }
            return StoreError::Database(format!("postgres: {}", db.message()));
        }
        if e.is_closed() {
            return StoreError::Database("postgres: connection lost".into());
        }
        StoreError::Database(format!("postgres: {e}"))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        match e {
            PgError::Pg(e) => e.into(),
            other => StoreError::Database(format!("postgres: {other}")),
        }
    }
}

/// The fleet store: a pool of connections to one PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// This host's name in the audit trail.
    host: String,
    /// The daemon's copy of what logins read first (`replica.rs`).
    replica: Option<replica::Replica>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("host", &self.host).finish()
    }
}

/// The key-check value's pseudo-row: no account name contains NUL, so no
/// credential is ever sealed with this associated data.
const KEY_CHECK_USER: &str = "\0twofold-fleet-key-check";
const KEY_CHECK_PLAIN: &[u8] = b"twofold fleet master key check v1";

fn to_db(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn from_db(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// A stored method name; one that is not a method name is a corrupt row.
fn method(name: &str) -> Result<Method, StoreError> {
    Method::new(name).ok_or_else(|| StoreError::Corrupt(format!("method {name:?}")))
}

/// This machine's host name (the audit trail's default for `host_name`).
pub fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads the password file: a regular file, not a link, owned by root or
/// by the daemon's user, that no group or other user may read.
fn read_password(path: &Path) -> Result<Zeroizing<String>, StoreError> {
    let bad = |what: String| StoreError::Database(format!("{}: {what}", path.display()));
    let meta = std::fs::symlink_metadata(path).map_err(|e| bad(e.to_string()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(bad("the password file must be a regular file".into()));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(bad("the password file must be owned by root".into()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "the password file is mode {:o}: make it 0600 (readable by root only)",
            meta.mode() & 0o777
        )));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

/// The connection parameters of `cfg`, and how to make them (TLS or not).
fn client_config(
    cfg: &StoreConfig,
) -> Result<(tokio_postgres::Config, tls::Connector), StoreError> {
    let mut c = tokio_postgres::Config::new();
    if cfg.host.starts_with('/') {
        c.host_path(&cfg.host);
    } else {
        c.host(&cfg.host);
        c.keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(Duration::from_secs(cfg.statement_timeout.0 + 2));
    }
    c.port(cfg.port)
        .dbname(&cfg.dbname)
        .user(&cfg.user)
        .application_name("twofoldd")
        .connect_timeout(Duration::from_secs(cfg.connect_timeout.0))
        // Server-side bounds: a statement, or a wait for a row lock, that
        // runs longer is cancelled and the login answered `Unavailable`.
        // READ COMMITTED whatever the database's default: every count and
        // lock check after the account's advisory lock must see what other
        // hosts committed while it waited (under REPEATABLE READ the
        // snapshot is taken before that wait, and racing failures each
        // counted only themselves).
        .options(format!(
            "-c default_transaction_isolation=read\\ committed \
             -c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={idle}",
            ms = cfg.statement_timeout.0 * 1000,
            idle = cfg.statement_timeout.0 * 4000,
        ));
    if let Some(p) = &cfg.password_file {
        let pw = read_password(p)?;
        c.password(pw.as_bytes());
    }
    let connector = tls::Connector::new(cfg, &mut c)?;
    Ok((c, connector))
}

impl PgStore {
    /// Connects, migrates, and checks that `keys` open the fleet's
    /// key-check value (storing it when this is the fleet's first host).
    /// `lanes` is the most connections kept (one per daemon worker).
    pub fn open(
        cfg: &StoreConfig,
        lanes: u32,
        keys: &Keys,
        log: Logger,
    ) -> Result<PgStore, StoreError> {
        let host = cfg.host_name.clone().unwrap_or_else(system_host_name);
        let chain_host = host.clone();
        let (config, connector) = client_config(cfg)?;
        let pool = Pool::new(
            config,
            connector,
            lanes,
            Duration::from_secs(cfg.connect_timeout.0),
            // The server cancels a statement at `statement_timeout`; a
            // server that does not even do that is given two more seconds.
            Duration::from_secs(cfg.statement_timeout.0 + 2),
            log,
            Box::new(move |c: &mut PgClient, lane| audit::open_chain(c, &chain_host, lane)),
        );
        let store = PgStore {
            pool,
            host,
            replica: None,
        };
        {
            let mut lease = store.pool_get_unchained()?;
            schema::migrate(lease.client())?;
        }
        store.check_key(keys)?;
        Ok(store)
    }

    /// Starts the replica logins read their first snapshot from
    /// (`replica.rs`): one more connection, which listens for changes.
    /// The daemon's store has one; a command's does not need one.
    pub fn start_replica(
        &mut self,
        cfg: &StoreConfig,
        clock: Arc<dyn Clock>,
        log: Logger,
    ) -> Result<(), StoreError> {
        let (mut config, tls) = client_config(cfg)?;
        // Told apart in `pg_stat_activity`.
        config.application_name("twofoldd-replica");
        let dial = replica::Dial {
            config,
            tls,
            within: Duration::from_secs(cfg.connect_timeout.0),
            deadline: Duration::from_secs(cfg.statement_timeout.0 + 2),
        };
        let r = replica::Replica::start(dial, clock, log)
            .map_err(|e| StoreError::Database(format!("cannot start the replica: {e}")))?;
        self.replica = Some(r);
        Ok(())
    }

    /// The replica's state, if this store has one.
    pub fn replica(&self) -> Option<ReplicaState> {
        self.replica.as_ref().map(|r| r.status())
    }

    /// The snapshot a login of `user` from `source` at `now` takes from
    /// the replica; `None` when it reads the database instead.
    pub fn replica_snapshot(&self, user: &str, source: &str, now: u64) -> Option<Snapshot> {
        self.replica.as_ref()?.snapshot(user, source, now)
    }

    /// A connection for the migration: the chain heads are made on
    /// connect, so the schema must exist first.
    fn pool_get_unchained(&self) -> Result<Unchained, StoreError> {
        Ok(Unchained(self.pool_config_connect().map_err(
            |e| match e {
                StoreError::Database(m) => StoreError::Database(format!("cannot connect: {m}")),
                other => other,
            },
        )?))
    }

    fn pool_config_connect(&self) -> Result<PgClient, StoreError> {
        self.pool.connect_raw()
    }

    fn check_key(&self, keys: &Keys) -> Result<(), StoreError> {
        let (sealed, nonce) = keys
            .seal(&Method::TOTP, KEY_CHECK_USER, 0, KEY_CHECK_PLAIN)
            .map_err(|e| StoreError::Database(format!("key check: {e}")))?;
        let stored = self.write(true, "", |tx, _| {
            tx.execute(
                "INSERT INTO fleet (one, key_check, nonce, created_at)
                 VALUES (1, $1, $2, EXTRACT(EPOCH FROM now())::BIGINT)
                 ON CONFLICT (one) DO NOTHING",
                &[&sealed, &&nonce[..]],
            )?;
            let r = tx.query_one("SELECT key_check, nonce FROM fleet WHERE one = 1", &[])?;
            Ok((r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
        })?;
        match keys.open(&Method::TOTP, KEY_CHECK_USER, 0, &stored.1, &stored.0) {
            Ok(plain) if plain.as_slice() == KEY_CHECK_PLAIN => Ok(()),
            _ => Err(StoreError::KeyMismatch(
                "the master key does not open the fleet database's key check: this host's \
                 master key file differs from the one the fleet's data was sealed under \
                 (copy the fleet's key to every host)"
                    .into(),
            )),
        }
    }

    /// Runs `work` in one read-write transaction on a lane, after taking
    /// the advisory lock of `user` (when not empty), and commits it before
    /// returning; `durable: false` commits with `synchronous_commit = off`.
    /// `BEGIN`, the setting and the lock are one round trip (one simple
    /// query). A connection found broken at its first use is replaced once.
    fn write<T>(
        &self,
        durable: bool,
        user: &str,
        mut work: impl FnMut(&mut Tx<'_>, &Ctx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut begin = String::from("BEGIN");
        if !durable {
            begin.push_str("; SET LOCAL synchronous_commit = off");
        }
        if !user.is_empty() {
            begin.push_str("; ");
            begin.push_str(&lock_user_sql(user));
        }
        self.with_lease(|conn, lane| {
            let mut tx = Tx::begin(conn, &begin)?;
            let ctx = Ctx {
                host: &self.host,
                lane,
            };
            let out = work(&mut tx, &ctx)?;
            tx.commit()
                .map_err(|e| StoreError::Commit(StoreError::from(e).to_string()))?;
            Ok(out)
        })
    }

    /// Runs `work` on a lane outside any transaction: each statement it
    /// runs commits when it ends (durably: the default `synchronous_commit`).
    fn at_once<T>(
        &self,
        mut work: impl FnMut(&mut Conn, &Ctx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_lease(|conn, lane| {
            let ctx = Ctx {
                host: &self.host,
                lane,
            };
            work(conn, &ctx)
        })
    }

    /// Runs `work` in one read-only REPEATABLE READ transaction: one snapshot.
    fn read<T>(
        &self,
        mut work: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_lease(|conn, _| {
            let mut tx = Tx::begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            let out = work(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs one statement on its own (its own snapshot, no transaction
    /// around it): one round trip. Its rows.
    fn read_one(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        self.with_lease(|conn, _| {
            let s = pool::prepared(&mut conn.client, &mut conn.cache, sql)?;
            Ok(conn.client.query(&s, params)?)
        })
    }

    fn with_lease<T>(
        &self,
        mut f: impl FnMut(&mut Conn, i32) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for attempt in 0..2 {
            let mut lease: Lease<'_> = self.pool.get()?;
            let fresh = lease.fresh;
            let lane = lease.lane;
            let out = lease.conn().and_then(|c| f(c, lane));
            lease.after(&out);
            match out {
                // A connection that broke while it sat in the pool (the
                // server restarted) fails its first statement: nothing was
                // done on it, so the work is tried once on a new one.
                Err(_) if attempt == 0 && !fresh && lease.broken() => continue,
                other => return other,
            }
        }
        Err(StoreError::Database("postgres: connection lost".into()))
    }

    /// Whether the last attempt to reach PostgreSQL failed.
    pub fn is_down(&self) -> bool {
        self.pool.is_down()
    }
}

/// Where a write appends its audit rows.
pub(crate) struct Ctx<'a> {
    host: &'a str,
    lane: i32,
}

/// A connection outside the pool (the migration).
struct Unchained(PgClient);

impl Unchained {
    fn client(&mut self) -> &mut PgClient {
        &mut self.0
    }
}

/// A transaction whose statements are prepared once per connection. It
/// holds its lane's audit chain head (`head`), taken from the connection
/// when it begins and given back only by a commit: after a rollback or any
/// error the next transaction reads the head from the database again.
pub(crate) struct Tx<'a> {
    client: &'a mut PgClient,
    cache: &'a mut std::collections::HashMap<String, tokio_postgres::Statement>,
    saved: &'a mut Option<pool::Head>,
    head: Option<pool::Head>,
    /// The `BEGIN` query, until it goes out with the first statement.
    pending: Option<String>,
    /// Whether `BEGIN` was sent (a transaction may be open on the server).
    open: bool,
}

impl<'a> Tx<'a> {
    /// Starts a transaction on `conn` with `begin` (a simple query that
    /// starts with `BEGIN`), sent with the transaction's first statement in
    /// one round trip. When a statement in `begin` fails (the account's
    /// lock timed out), that first statement fails with its error, and the
    /// open, aborted transaction is rolled back when the `Tx` is dropped.
    fn begin(conn: &'a mut Conn, begin: &str) -> Result<Tx<'a>, PgError> {
        let Conn {
            client,
            cache,
            head,
        } = conn;
        let taken = head.take();
        Ok(Tx {
            client,
            cache,
            saved: head,
            head: taken,
            pending: Some(begin.to_owned()),
            open: false,
        })
    }

    /// The `BEGIN` query if it has not gone out yet (it goes with the
    /// statement about to be sent).
    fn take_begin(&mut self) -> Option<String> {
        let b = self.pending.take();
        self.open |= b.is_some();
        b
    }

    /// Lets this transaction's calls wait for the server without the
    /// client's deadline (with `statement_timeout` lifted too: a walk of
    /// every chain).
    pub(crate) fn unbounded(&mut self) {
        self.client.set_unbounded(true);
    }

    /// Commits; the chain head this transaction leaves is kept for the next.
    fn commit(mut self) -> Result<(), PgError> {
        // Nothing was sent: there is no transaction to commit.
        if self.pending.is_none() {
            self.client.batch_execute("COMMIT")?;
        }
        self.open = false;
        *self.saved = self.head.take();
        Ok(())
    }

    /// The chain head of `lane` as this transaction knows it, if it does.
    pub(crate) fn head(&self, lane: i32) -> Option<&pool::Head> {
        self.head.as_ref().filter(|h| h.lane == lane)
    }

    /// Notes the chain head this transaction leaves (`None`: unknown).
    pub(crate) fn set_head(&mut self, head: Option<pool::Head>) {
        self.head = head;
    }
}

impl Drop for Tx<'_> {
    /// A transaction not committed is rolled back (and its head forgotten).
    fn drop(&mut self) {
        self.client.set_unbounded(false);
        if self.open && self.pending.is_none() && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Tx<'_> {
    fn stmt(&mut self, sql: &str) -> Result<tokio_postgres::Statement, PgError> {
        pool::prepared(self.client, self.cache, sql)
    }

    /// Runs `sql`; the rows it changed.
    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        let s = self.stmt(sql)?;
        let begin = self.take_begin();
        self.client.execute_after(begin.as_deref(), &s, params)
    }

    /// Runs `sql`; its rows.
    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        let s = self.stmt(sql)?;
        let begin = self.take_begin();
        self.client.query_after(begin.as_deref(), &s, params)
    }

    /// Runs `sql`; its one row.
    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, PgError> {
        let mut rows = self.query(sql, params)?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(PgError::RowCount(Some(n))),
        }
    }

    /// Runs `sql`; its row, if any.
    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, PgError> {
        let mut rows = self.query(sql, params)?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(rows.remove(0))),
            _ => Err(PgError::RowCount(None)),
        }
    }

    /// Runs statements without parameters (not prepared), after `BEGIN`
    /// in the same simple query when it has not gone out yet.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), PgError> {
        match self.take_begin() {
            Some(begin) => self.client.batch_execute(&format!("{begin}; {sql}")),
            None => self.client.batch_execute(sql),
        }
    }
}

/// The statement that takes `user`'s advisory lock until the transaction
/// ends: every write about one account, from any host, runs one at a time.
/// It goes in the `BEGIN` query, which has no parameters, so the name is
/// spelled in hex (no quoting to get wrong); the key is the one
/// `hashtextextended('twofold/user/' || $1, 0)` gives.
fn lock_user_sql(user: &str) -> String {
    let hex: String = user.bytes().map(|b| format!("{b:02x}")).collect();
    format!(
        "SELECT pg_advisory_xact_lock(hashtextextended( \
         'twofold/user/' || convert_from(decode('{hex}', 'hex'), 'UTF8'), 0))"
    )
}

#[cfg(test)]
mod tests {
    use super::read_password;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_password_file_is_read_only_when_no_one_else_can_read_it() {
        let dir = std::env::temp_dir().join(format!("tf-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pg.pass");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&file).unwrap().as_str(), "s3cret");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_password(&file).unwrap_err().to_string();
        assert!(err.contains("mode 640") && err.contains("0600"), "{err}");
        let link = dir.join("link.pass");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = read_password(&link).unwrap_err().to_string();
        assert!(err.contains("regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
