//! A fixed set of connection slots ("lanes"), each opened when first
//! needed and reopened after it broke. A lane is used by one call at a time,
//! and each lane appends to its own audit chain, so a host's logins never
//! wait on each other for the chain.
//!
//! Every wait is bounded: a free lane within the connect timeout, a new
//! connection within the connect timeout, a statement within the statement
//! timeout (on the server) and, should the server answer nothing at all,
//! two seconds later on this side (`client.rs`). When PostgreSQL is down, a login's store call
//! fails within those bounds (the daemon answers `Unavailable`), and the
//! next call after it is back reconnects: nothing needs a restart.

use super::client::PgClient;
use super::tls::Connector;
use crate::log::Logger;
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::Statement;

/// An open connection and the statements prepared on it (each prepared
/// once per connection: a statement is then one round trip, not two).
pub(crate) struct Conn {
    pub client: PgClient,
    pub cache: HashMap<String, Statement>,
    /// The head of this lane's audit chain as the last commit on this
    /// connection left it (`None`: read it from the database).
    pub head: Option<Head>,
}

/// `sql` prepared on `client`: from `cache` when it was before, else
/// prepared now (one round trip) and kept.
pub(crate) fn prepared(
    client: &mut PgClient,
    cache: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, super::client::PgError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    cache.insert(sql.to_owned(), s.clone());
    Ok(s)
}

/// An audit chain head: the lane's last position and hash.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub lane: i32,
    pub seq: u64,
    pub hash: Vec<u8>,
}

/// Runs on each new connection of a lane before it is used.
pub(crate) type OnConnect = Box<dyn Fn(&mut PgClient, i32) -> Result<(), StoreError> + Send + Sync>;

/// The connection slots of one host.
pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// In the clear or through rustls (`tls.rs`).
    tls: Connector,
    free: Mutex<Vec<(i32, Option<Conn>)>>,
    freed: Condvar,
    /// How long a call waits for a free lane, and a new connection may
    /// take to open (TLS and authentication included).
    wait: Duration,
    /// How long one call on a connection may wait for the server (beyond
    /// the server's own `statement_timeout`: a server that stops
    /// answering altogether).
    deadline: Duration,
    /// Whether the last attempt to reach the server failed (logged once
    /// per outage; cleared, and logged, on the next connection).
    down: AtomicBool,
    log: Logger,
    /// Runs on each new connection before it is used (the lane's chain head).
    on_connect: OnConnect,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// A lane in use; back in the pool when dropped (without its connection
/// if that broke).
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    /// The lane: which audit chain this connection appends to.
    pub lane: i32,
    /// Whether the connection was opened for this call (else it sat in
    /// the pool, and may have broken there unnoticed).
    pub fresh: bool,
    client: Option<Conn>,
    /// Whether a call on it went past its deadline (the server may have
    /// done it or not: it is never tried again elsewhere).
    timed_out: bool,
}

impl Pool {
    pub fn new(
        config: tokio_postgres::Config,
        tls: Connector,
        lanes: u32,
        wait: Duration,
        deadline: Duration,
        log: Logger,
        on_connect: OnConnect,
    ) -> Pool {
        // Popped from the end: lane 0 is used first, so a quiet host keeps
        // few connections and few chains.
        let free = (0..lanes.max(1) as i32).rev().map(|l| (l, None)).collect();
        Pool {
            config,
            tls,
            free: Mutex::new(free),
            freed: Condvar::new(),
            wait,
            deadline,
            down: AtomicBool::new(false),
            log,
            on_connect,
        }
    }

    fn free(&self) -> MutexGuard<'_, Vec<(i32, Option<Conn>)>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lane with an open connection, within the pool's bounds.
    pub fn get(&self) -> Result<Lease<'_>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut free = self.free();
        // Prefer a lane whose connection is open.
        let (lane, client) = loop {
            if let Some(i) = free.iter().rposition(|(_, c)| c.is_some()) {
                break free.swap_remove(i);
            }
            if let Some(slot) = free.pop() {
                break slot;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Database(format!(
                    "postgres: no connection free within {} ms",
                    self.wait.as_millis()
                )));
            }
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(free);
        let mut lease = Lease {
            pool: self,
            lane,
            fresh: false,
            client: client.filter(|c| !c.client.is_closed()),
            timed_out: false,
        };
        if lease.client.is_none() {
            lease.client = Some(self.connect(lane)?);
            lease.fresh = true;
        }
        Ok(lease)
    }

    /// A connection outside the lanes (the migration at start).
    pub fn connect_raw(&self) -> Result<PgClient, StoreError> {
        self.tls.connect(&self.config, self.wait, self.deadline)
    }

    fn connect(&self, lane: i32) -> Result<Conn, StoreError> {
        let opened = self
            .tls
            .connect(&self.config, self.wait, self.deadline)
            .and_then(|mut c| (self.on_connect)(&mut c, lane).map(|()| c));
        match opened {
            Ok(client) => {
                if self.down.swap(false, Ordering::SeqCst) {
                    self.log
                        .event("store_reconnected", &[("backend", "postgres")]);
                }
                Ok(Conn {
                    client,
                    cache: HashMap::new(),
                    head: None,
                })
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::SeqCst) {
                    self.log.event(
                        "store_unreachable",
                        &[("backend", "postgres"), ("error", &e.to_string())],
                    );
                }
                Err(e)
            }
        }
    }

    /// Whether the last attempt to reach the server failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

impl Lease<'_> {
    /// The open connection.
    pub fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Database("postgres: connection lost".into()))
    }

    /// Whether the connection broke (and was dropped) without a call on
    /// it going past its deadline.
    pub fn broken(&self) -> bool {
        self.client.is_none() && !self.timed_out
    }

    /// Notes the outcome of a call: a broken connection is dropped (and
    /// logged once per outage), so the next call reconnects.
    pub fn after<T>(&mut self, r: &Result<T, StoreError>) {
        if r.is_err() && self.client.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.timed_out |= self.client.as_ref().is_some_and(|c| c.client.timed_out());
            self.client = None;
            if !self.pool.down.swap(true, Ordering::SeqCst) {
                let e = r.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
                self.pool.log.event(
                    "store_connection_lost",
                    &[("backend", "postgres"), ("error", &e)],
                );
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let client = self.client.take().filter(|c| !c.client.is_closed());
        self.pool.free().push((self.lane, client));
        self.pool.freed.notify_one();
    }
}
