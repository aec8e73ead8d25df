//! Serving the socket: a pool of connection workers, each blocking in
//! accept(2) and serving what it accepts (started as needed, at most
//! `max_connections`, reused: no thread is started per login, and no
//! thread hands a connection to another), limits on unprivileged peers'
//! connections (`limits.rs`), and a graceful shutdown that lets in-flight
//! conversations finish (bounded).

pub(crate) mod conn;
mod limits;
pub(crate) mod peer;

use crate::accounts::Directory;
use crate::audit::{event, AuditEvent};
use crate::clock::Clock;
use crate::crypto::keys::{KeyError, Keys};
use crate::engine::{Shared, Stats};
use crate::factors::Registry;
use crate::log::Logger;
use crate::reload::{ConfigSource, Reload};
use crate::store::{PgStore, SqliteStore, Store, StoreError};
use limits::{Admission, Lingering, RefusalLog};
use nix::sys::socket::{self as sock, Shutdown as How};
use peer::{own_euid, peer_cred, Peer};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use twofold_config::{Backend, Config};

/// How often `serve` looks at the shutdown flag (and how long a worker
/// backs off after a failed accept).
const TICK: Duration = Duration::from_millis(100);
/// How long shutdown waits for in-flight connections before closing them.
const GRACE: Duration = Duration::from_secs(5);

/// Why the daemon could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The master key is missing, malformed or unsafe.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file twofoldd would trust can be changed by someone else.
    #[error("{0}")]
    Unsafe(String),
    /// The listening socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
}

/// A shutdown request shared between whoever stops the daemon and the daemon.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A shutdown not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the daemon to stop accepting and finish.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// An opened daemon: database migrated and master key loaded, not yet serving.
#[derive(Debug)]
pub struct Daemon {
    shared: Arc<Shared>,
    /// Where reload requests come from and what they read, when set.
    reload: Option<(Reload, ConfigSource)>,
}

impl Daemon {
    /// Opens or creates the database (running migrations) and the master
    /// key; logs to standard error. No socket yet.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, DaemonError> {
        Daemon::open_with_log(config, clock, Logger::stderr())
    }

    /// Like [`Daemon::open`], logging to `log` (tests capture what is logged).
    pub fn open_with_log(
        config: Config,
        clock: Arc<dyn Clock>,
        log: Logger,
    ) -> Result<Daemon, DaemonError> {
        Daemon::open_with_origin(config, clock, log, "built-in defaults or caller")
    }

    /// Like [`Daemon::open_with_log`]; `origin` (the configuration file)
    /// is named in the `config_loaded` audit row, which records the SHA-256
    /// of the effective configuration. Runs audit retention once.
    pub fn open_with_origin(
        config: Config,
        clock: Arc<dyn Clock>,
        log: Logger,
        origin: &str,
    ) -> Result<Daemon, DaemonError> {
        Daemon::open_with_factors(config, clock, log, origin, Registry::builtin())
    }

    /// Like [`Daemon::open_with_origin`], offering the factors of
    /// `factors` (the built-in ones plus any a test registers).
    pub fn open_with_factors(
        config: Config,
        clock: Arc<dyn Clock>,
        log: Logger,
        origin: &str,
        factors: Registry,
    ) -> Result<Daemon, DaemonError> {
        let keys = Keys::load_or_create(&config.daemon.master_key)?;
        let directory = Directory::default();
        let stats = Arc::new(Stats {
            nss_lookups: directory.asked(),
            ..Stats::default()
        });
        let store: Box<dyn Store> = match config.store.backend {
            Backend::Sqlite => {
                refuse_if_writable_by_others(&config.daemon.database)?;
                let store = SqliteStore::open(&config.daemon.database, stats.commits.clone())?;
                warn_if_shared(&log, "database", &config.daemon.database);
                Box::new(store)
            }
            Backend::Postgres => {
                // One connection per worker at most: a login never waits
                // for another's connection.
                let lanes = match config.store.connections {
                    0 => config.daemon.max_connections,
                    n => n,
                };
                let mut store = PgStore::open(&config.store, lanes, &keys, log.clone())?;
                if config.store.replica {
                    store.start_replica(&config.store, clock.clone(), log.clone())?;
                }
                Box::new(store)
            }
        };
        let digest = crate::audit::config_digest(&config.to_toml());
        let shared = Shared::new(config, clock, keys, store, factors, log, stats, directory);
        // A relay setting that cannot work (an unreadable CA or password
        // file, a password file others can read) is said at start, not at
        // the first login that asks for a code (which is then told it
        // could not be sent, and audited).
        let email = &shared.current_config().email;
        if email.enabled() {
            if let Err(why) = shared.channels.email(email) {
                shared
                    .log
                    .event("email", &[("result", "unusable"), ("error", &why)]);
            }
        }
        let sms = &shared.current_config().sms;
        if sms.enabled() {
            if let Err(why) = shared.channels.sms(sms) {
                shared
                    .log
                    .event("sms", &[("result", "unusable"), ("error", &why)]);
            }
        }
        shared.audit(&[AuditEvent::new(event::CONFIG_LOADED, "", "twofoldd")
            .with("source", origin)
            .with("sha256", &digest)])?;
        Ok(Daemon {
            shared: Arc::new(shared),
            reload: None,
        })
    }

    /// Counters of this daemon, readable while it serves.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// While it serves, reloads the configuration from `source` each time
    /// `requests` asks (twofoldd: SIGHUP), on a thread of its own; see
    /// [`crate::reload`].
    pub fn reload_on(self, requests: Reload, source: ConfigSource) -> Daemon {
        Daemon {
            reload: Some((requests, source)),
            ..self
        }
    }

    /// Serves until `shutdown` is triggered; then stops accepting, lets
    /// in-flight connections finish for a bounded time, and returns.
    pub fn serve(self, listener: UnixListener, shutdown: Shutdown) -> Result<(), DaemonError> {
        let shared = self.shared;
        // Sizes fixed for as long as it runs: a reload does not change
        // them (`reload.rs` lists them).
        let config = shared.current_config();
        // Workers block in accept(2) themselves: the kernel wakes exactly
        // one per connection, and that worker serves it. (A separate accept
        // loop handing connections over cost a wake-up per login.)
        listener.set_nonblocking(false)?;
        let limits = &config.daemon;
        let max = limits.max_connections.max(1) as usize;
        if let Some((requests, source)) = self.reload {
            crate::reload::start(&shared, requests, source, shutdown.clone())?;
        }
        let outbox = crate::dispatch::outbox::start(&shared, shutdown.clone())?;
        let retention = start_retention(&shared, shutdown.clone())?;
        let pool = Arc::new(Pool {
            shared: shared.clone(),
            listener,
            shutdown: shutdown.clone(),
            max,
            admission: Admission::new(limits, own_euid()),
            lingering: Lingering::default(),
            refusals: RefusalLog::default(),
            workers: Alive::default(),
            live: Mutex::default(),
            next_id: AtomicU64::new(0),
            accepting: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        });
        shared.log.event(
            "start",
            &[
                ("max_connections", &max.to_string()),
                (
                    "max_connections_per_user",
                    &limits.max_connections_per_user.to_string(),
                ),
                (
                    "unprivileged_connections",
                    &limits.unprivileged_connections().to_string(),
                ),
            ],
        );
        if !Pool::grow(&pool) {
            return Err(DaemonError::Io(io::Error::other(
                "cannot start a connection worker",
            )));
        }
        while !shutdown.is_triggered() {
            std::thread::sleep(TICK);
            // Wrong codes' records reach the disk within a tick.
            shared.sync_deferred();
            pool.lingering.tick();
            pool.refusals.report(&shared.log, Instant::now(), false);
        }
        shared.channels.stop();
        pool.lingering.close_all();
        pool.refusals.report(&shared.log, Instant::now(), true);
        // Every worker blocked in accept(2) wakes with EINVAL and ends; new
        // connections are refused from now on.
        let _ = sock::shutdown(pool.listener.as_raw_fd(), How::Read);
        let open = pool.live.lock().unwrap_or_else(|e| e.into_inner()).len();
        shared
            .log
            .event("shutdown", &[("open_connections", &open.to_string())]);
        // Every worker ends once its connection is over (an idle one at
        // once): waiting for the workers, not for counted connections,
        // also covers a connection accepted just before the listener shut.
        if !pool.workers.wait_idle(GRACE) {
            // Conversations still waiting for a person: close them so the
            // daemon exits within a bounded time.
            for fd in pool.live.lock().unwrap_or_else(|e| e.into_inner()).values() {
                // Still open: an entry leaves `Live` before its stream closes.
                let _ = sock::shutdown(*fd, How::Both);
            }
            pool.workers.wait_idle(Duration::from_secs(1));
        }
        // The outbox's drainer holds the store: it ends within a poll
        // (its waits on a send are sliced), before the store is closed.
        let _ = outbox.join();
        let _ = retention.join();
        shared.sync_deferred();
        shared.log.event("stopped", &[]);
        Ok(())
    }
}

/// Runs retention ([`Shared::prune_if_due`]) on a thread of its own,
/// looking every tick whether it is due (at start, then hourly): never
/// inside a request, whose answer would wait for it — a long prune, or one
/// waiting on another host's (fleet prunes take one lock).
fn start_retention(
    shared: &Arc<Shared>,
    shutdown: Shutdown,
) -> io::Result<std::thread::JoinHandle<()>> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("twofoldd-retention".into())
        .spawn(move || {
            while !shutdown.is_triggered() {
                let now = shared.clock.now();
                let _ = catch_unwind(AssertUnwindSafe(|| shared.prune_if_due(now)));
                std::thread::sleep(TICK);
            }
        })
}

/// An existing database (and its write-ahead log) that someone else may
/// write is refused: whoever writes it could add their own factor to any
/// account, erase locks or rewrite the audit trail. One owned by another
/// user is refused for the same reason.
fn refuse_if_writable_by_others(db: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    for path in [db, Path::new(&wal)] {
        // A symbolic link is refused when the store opens the file
        // (O_NOFOLLOW), with the open's own error.
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.mode() & 0o7777;
        let shown = path.display();
        if mode & 0o022 != 0 {
            return Err(DaemonError::Unsafe(format!(
                "database {shown} has mode {mode:04o}: group or others may write it \
                 (chmod 600 {shown})"
            )));
        }
        if meta.uid() != euid {
            return Err(DaemonError::Unsafe(format!(
                "database {shown} is owned by uid {}, not by the uid twofoldd runs as ({euid}) \
                 (chown it, or run twofoldd as its owner)",
                meta.uid()
            )));
        }
    }
    Ok(())
}

/// An existing database may have been created looser than we create it;
/// readable by others, it holds no plaintext secret, so warn rather than
/// refuse (writable by others is refused above).
fn warn_if_shared(log: &Logger, what: &str, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            log.event(
                "warning",
                &[
                    (what, &path.display().to_string()),
                    ("mode", &format!("{mode:04o}")),
                    ("advice", "chmod 600: group and others should not access it"),
                ],
            );
        }
    }
}

/// Open connections by id: their descriptors, for shutdown to close once
/// its grace runs out. An entry is removed before its stream is closed, so
/// a descriptor found here is always that connection's.
type Live = Mutex<HashMap<u64, RawFd>>;

/// Removes a connection from [`Live`]; declared after the stream, so it
/// runs first (even when unwinding), before the descriptor is closed.
struct Registered<'a> {
    live: &'a Live,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The connection workers and what they share. Each worker blocks in
/// accept(2), serves the connection it got (or refuses it at once, when
/// its peer is over a limit of `limits.rs`), and goes back; they start as
/// needed (when the last worker waiting in accept takes a connection) and
/// never number more than `max`, so at most `max` connections are served
/// at once and the rest wait in the listen queue. Unprivileged peers
/// together never hold more than `max` minus root's reserve.
struct Pool {
    shared: Arc<Shared>,
    listener: UnixListener,
    shutdown: Shutdown,
    max: usize,
    /// Connections of unprivileged peers, limited.
    admission: Admission,
    /// Refused connections, about to be closed.
    lingering: Lingering,
    refusals: RefusalLog,
    /// Workers alive (serving, or waiting in accept(2)).
    workers: Alive,
    live: Live,
    next_id: AtomicU64,
    /// Workers waiting in accept(2), or about to.
    accepting: AtomicUsize,
    /// Workers started.
    started: AtomicUsize,
}

impl Pool {
    /// Starts one more worker unless `max` have started; `false` when the
    /// thread could not be started (the count is given back).
    fn grow(pool: &Arc<Pool>) -> bool {
        let reserved = pool
            .started
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < pool.max).then_some(n + 1)
            });
        let Ok(n) = reserved else {
            return true;
        };
        pool.accepting.fetch_add(1, Ordering::SeqCst);
        // Counted before the thread starts, so shutdown cannot miss it.
        pool.workers.enter();
        let p = pool.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("twofoldd-worker-{}", n + 1))
            .spawn(move || p.work());
        if let Err(e) = spawned {
            pool.workers.leave();
            pool.accepting.fetch_sub(1, Ordering::SeqCst);
            pool.started.fetch_sub(1, Ordering::SeqCst);
            pool.shared
                .log
                .event("accept", &[("error", &format!("cannot start thread: {e}"))]);
            return false;
        }
        true
    }

    /// One worker: accept, serve, repeat, until shutdown.
    fn work(self: Arc<Pool>) {
        let _alive = AliveGuard { pool: &self };
        loop {
            let accepted = self.listener.accept();
            let before = self.accepting.fetch_sub(1, Ordering::SeqCst);
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(_) if self.shutdown.is_triggered() => return,
                Err(e) => {
                    if e.kind() != io::ErrorKind::Interrupted {
                        // E.g. EMFILE: back off instead of spinning; keep serving.
                        self.shared
                            .log
                            .event("accept", &[("error", &e.to_string())]);
                        std::thread::sleep(TICK);
                    }
                    self.accepting.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
            };
            if before == 1 {
                // Nobody is left waiting in accept(2): start someone first,
                // so the next connection does not wait for this one.
                Pool::grow(&self);
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let served = catch_unwind(AssertUnwindSafe(|| self.connection(stream, id)));
            if served.is_err() {
                // A bug in one conversation ends that connection only; the
                // worker, and the pool's size, stay.
                self.shared
                    .log
                    .event("connection", &[("error", "internal error (panic)")]);
            }
            self.accepting.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Serves one accepted connection, or refuses it at once when its peer
    /// is over a limit (see `limits.rs`).
    fn connection(&self, stream: UnixStream, id: u64) {
        // The configuration this connection runs under, whatever a reload
        // does meanwhile (requests after the first take a fresh one).
        let engine = &self.shared.engine();
        let cred = match peer_cred(&stream) {
            Ok(c) => c,
            Err(e) => {
                engine
                    .log
                    .event("connection", &[("error", &format!("SO_PEERCRED: {e}"))]);
                return;
            }
        };
        let _admitted = match self.admission.admit(cred.uid) {
            Ok(a) => a,
            Err(why) => {
                // No audit row, no worker held: a flood of these costs a few
                // system calls each and one log line per window.
                limits::send_refusal(&stream, self.admission.message(why, cred.uid));
                self.refusals.note(&engine.log, cred, why, Instant::now());
                self.lingering.keep(stream);
                return;
            }
        };
        // accept(2) on the blocking listener gives a blocking socket. Each
        // read is bounded by `Conn::recv` (the time left of the request's
        // deadline); a reply must go out within `frame_timeout`.
        let timeout = Some(engine.config.daemon.frame_timeout.duration());
        if let Err(e) = stream.set_write_timeout(timeout) {
            engine
                .log
                .event("connection", &[("error", &format!("socket setup: {e}"))]);
            return;
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, stream.as_raw_fd());
        let _registered = Registered {
            live: &self.live,
            id,
        };
        let peer = Peer::resolve(
            cred,
            engine.config.daemon.admin_group.as_deref(),
            &engine.directory,
        );
        conn::serve(engine, &peer, &stream);
    }
}

/// Counts workers alive, for shutdown to wait on.
#[derive(Debug, Default)]
struct Alive {
    used: Mutex<usize>,
    changed: Condvar,
    /// Shutdown is waiting on `changed` (only then is a notify, a system
    /// call, worth making).
    watched: AtomicBool,
}

impl Alive {
    fn enter(&self) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn leave(&self) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(1);
        if self.watched.load(Ordering::SeqCst) {
            self.changed.notify_all();
        }
    }

    fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        // Set under the lock, so no `leave` after this check can skip its notify.
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.watched.store(true, Ordering::SeqCst);
        while *used > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            used = self
                .changed
                .wait_timeout(used, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Counts a worker out when it ends, even by panic.
struct AliveGuard<'a> {
    pool: &'a Pool,
}

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.pool.workers.leave();
    }
}

/// Binds the daemon's socket: creates the parent directory if missing,
/// removes a stale socket file (refusing if a daemon still answers on it, or
/// if the path is not a socket), binds, and makes it connectable by everyone
/// (authorization is per request, from `SO_PEERCRED`).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another daemon is listening there", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: exists and is not a socket; not removing it",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Opens the daemon and serves on `listener` until `shutdown` is triggered.
pub fn run(
    listener: UnixListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
) -> Result<(), DaemonError> {
    Daemon::open(config, clock)?.serve(listener, shutdown)
}
