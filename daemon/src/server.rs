//! The accept loop: bounded concurrency, a pool of connection workers
//! (started as needed, at most `max_connections`, reused: no thread is
//! started per login), and a graceful shutdown that lets in-flight
//! conversations finish (bounded).

use crate::audit::{event, AuditEvent};
use crate::clock::Clock;
use crate::conn;
use crate::engine::{Engine, Stats};
use crate::keys::{KeyError, Keys};
use crate::log::Logger;
use crate::peer::{peer_cred, Peer};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use twofold_config::Config;

/// How often the accept loop looks at the shutdown flag.
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
    engine: Arc<Engine>,
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
        let keys = Keys::load_or_create(&config.daemon.master_key)?;
        let store = Store::open(&config.daemon.database)?;
        warn_if_shared(&log, "database", &config.daemon.database);
        let digest = crate::audit::config_digest(&config.to_toml());
        let engine = Engine::new(config, clock, keys, store, log);
        engine.audit(&[AuditEvent::new(event::CONFIG_LOADED, "", "twofoldd")
            .with("source", origin)
            .with("sha256", &digest)])?;
        Ok(Daemon {
            engine: Arc::new(engine),
        })
    }

    /// Counters of this daemon, readable while it serves.
    pub fn stats(&self) -> Arc<Stats> {
        self.engine.stats.clone()
    }

    /// Serves until `shutdown` is triggered; then stops accepting, lets
    /// in-flight connections finish for a bounded time, and returns.
    pub fn serve(self, listener: UnixListener, shutdown: Shutdown) -> Result<(), DaemonError> {
        let engine = self.engine;
        listener.set_nonblocking(true)?;
        let max = engine.config.daemon.max_connections.max(1) as usize;
        let slots = Arc::new(Slots::default());
        let live: Arc<Mutex<HashMap<u64, UnixStream>>> = Arc::default();
        let next_id = AtomicU64::new(0);
        let mut workers = Workers::new(engine.clone(), live.clone());
        engine
            .log
            .event("start", &[("max_connections", &max.to_string())]);
        'accepting: loop {
            while !slots.acquire(max, TICK) {
                if shutdown.is_triggered() {
                    break 'accepting;
                }
            }
            let stream = loop {
                if shutdown.is_triggered() {
                    slots.release();
                    break 'accepting;
                }
                if !readable(&listener, TICK)? {
                    continue;
                }
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. EMFILE: back off instead of spinning; keep serving.
                        engine.log.event("accept", &[("error", &e.to_string())]);
                        std::thread::sleep(TICK);
                    }
                }
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let guard = SlotGuard {
                slots: slots.clone(),
                live: live.clone(),
                id,
            };
            if let Err(e) = workers.dispatch(Work { stream, guard, id }) {
                // The work (with its guard) was dropped, so the slot is free again.
                engine
                    .log
                    .event("accept", &[("error", &format!("cannot start thread: {e}"))]);
            }
        }
        drop(workers);
        let open = slots.count();
        engine
            .log
            .event("shutdown", &[("open_connections", &open.to_string())]);
        if !slots.wait_idle(GRACE) {
            // Conversations still waiting for a person: close them so the
            // daemon exits within a bounded time.
            for s in live.lock().unwrap_or_else(|e| e.into_inner()).values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            slots.wait_idle(Duration::from_secs(1));
        }
        engine.log.event("stopped", &[]);
        Ok(())
    }
}

/// An existing database may have been created looser than we create it;
/// it holds no plaintext secret, so warn rather than refuse.
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

fn connection(
    engine: &Engine,
    stream: UnixStream,
    live: &Mutex<HashMap<u64, UnixStream>>,
    id: u64,
) {
    let cred = match peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => {
            engine
                .log
                .event("connection", &[("error", &format!("SO_PEERCRED: {e}"))]);
            return;
        }
    };
    let timeout = Some(engine.config.daemon.client_timeout.duration());
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(timeout))
        .and_then(|()| stream.set_write_timeout(timeout));
    if let Err(e) = setup {
        engine
            .log
            .event("connection", &[("error", &format!("socket setup: {e}"))]);
        return;
    }
    if let Ok(clone) = stream.try_clone() {
        live.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, clone);
    }
    let peer = Peer::resolve(
        cred,
        engine.config.daemon.admin_group.as_deref(),
        &engine.directory,
    );
    conn::serve(engine, &peer, stream);
}

/// One accepted connection for a worker, with the slot it holds.
struct Work {
    stream: UnixStream,
    guard: SlotGuard,
    id: u64,
}

/// The connection workers. A worker serves one connection at a time and
/// then waits for the next; the accept loop hands a connection to an idle
/// worker, or starts one when none is idle. A worker counts itself idle
/// before it frees its slot, so there are never more workers than slots.
struct Workers {
    engine: Arc<Engine>,
    live: Arc<Mutex<HashMap<u64, UnixStream>>>,
    queue: mpsc::Sender<Work>,
    next: Arc<Mutex<mpsc::Receiver<Work>>>,
    idle: Arc<AtomicUsize>,
    started: usize,
}

impl Workers {
    fn new(engine: Arc<Engine>, live: Arc<Mutex<HashMap<u64, UnixStream>>>) -> Workers {
        let (queue, next) = mpsc::channel();
        Workers {
            engine,
            live,
            queue,
            next: Arc::new(Mutex::new(next)),
            idle: Arc::default(),
            started: 0,
        }
    }

    /// Hands `work` to an idle worker, or to a new one.
    fn dispatch(&mut self, work: Work) -> io::Result<()> {
        let reserved = self
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if reserved.is_ok() {
            // An idle worker is waiting on the queue; it takes this at once.
            return self
                .queue
                .send(work)
                .map_err(|_| io::Error::other("connection workers are gone"));
        }
        let (engine, live) = (self.engine.clone(), self.live.clone());
        let (next, idle) = (self.next.clone(), self.idle.clone());
        self.started += 1;
        std::thread::Builder::new()
            .name(format!("twofoldd-worker-{}", self.started))
            .spawn(move || {
                let mut work = work;
                loop {
                    let Work { stream, guard, id } = work;
                    connection(&engine, stream, &live, id);
                    idle.fetch_add(1, Ordering::SeqCst);
                    drop(guard);
                    let got = next.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match got {
                        Ok(w) => work = w,
                        // The accept loop ended: no more work.
                        Err(_) => return,
                    }
                }
            })
            .map(drop)
    }
}

/// Counts connections in flight; the accept loop waits for a free slot.
#[derive(Debug, Default)]
struct Slots {
    used: Mutex<usize>,
    changed: Condvar,
}

impl Slots {
    fn acquire(&self, max: usize, wait: Duration) -> bool {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let (mut used, _) = self
            .changed
            .wait_timeout_while(used, wait, |u| *u >= max)
            .unwrap_or_else(|e| e.into_inner());
        if *used < max {
            *used += 1;
            true
        } else {
            false
        }
    }

    fn release(&self) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(1);
        self.changed.notify_all();
    }

    fn count(&self) -> usize {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
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

/// Frees a connection's slot when its worker is done with it, even by panic.
struct SlotGuard {
    slots: Arc<Slots>,
    live: Arc<Mutex<HashMap<u64, UnixStream>>>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.slots.release();
    }
}

fn readable(listener: &UnixListener, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
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
