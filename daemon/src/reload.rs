//! Reloading the configuration (twofoldd: SIGHUP) without stopping.
//!
//! A reload reads the configuration again from where twofoldd found it at
//! start ([`ConfigSource`]), checked by the same `Config::load` as
//! `twofold config check`. A file refused for any reason (unreadable, not
//! TOML, an unknown key, a bad value) changes nothing: the running
//! configuration stays, and the refusal is logged in `config check`'s own
//! words (file, line, key) and audited (`config_reload_refused`). An
//! accepted one is put in force for every login and request that starts
//! afterwards; one in progress keeps the snapshot it began with (see
//! `engine.rs`). The settings read once at start ([`FIXED_AT_START`]) keep
//! their running values; the log and the `config_reloaded` row name those
//! that changed, which need a restart.
//!
//! Reloads run on one thread of their own, so a slow file system delays
//! neither logins nor shutdown, and requests coalesce: a burst of signals
//! makes one or two reloads, never a thread each.

use crate::audit::{config_digest, event, AuditEvent};
use crate::engine::Shared;
use crate::server::Shutdown;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use twofold_config::{Config, ConfigError, DEFAULT_CONFIG};

/// How often the reload thread looks at the shutdown flag while idle.
const WAKE: Duration = Duration::from_millis(250);

/// Copies one setting from the running configuration into a new one.
pub type Keep = fn(&Config, &mut Config);

/// The settings twofoldd reads once, at start: the socket it is bound to,
/// the database it opened, the master key it loaded and the sizes of its
/// worker pool and connection limits, and the whole `[store]` (the backend
/// it connected to). A reload keeps each one's running value (the second
/// item copies it back) and names it as needing a restart.
pub const FIXED_AT_START: [(&str, Keep); 6] = [
    ("daemon.socket", |from, to| {
        to.daemon.socket.clone_from(&from.daemon.socket)
    }),
    ("daemon.database", |from, to| {
        to.daemon.database.clone_from(&from.daemon.database)
    }),
    ("daemon.master_key", |from, to| {
        to.daemon.master_key.clone_from(&from.daemon.master_key)
    }),
    ("daemon.max_connections", |from, to| {
        to.daemon.max_connections = from.daemon.max_connections
    }),
    ("daemon.max_connections_per_user", |from, to| {
        to.daemon.max_connections_per_user = from.daemon.max_connections_per_user
    }),
    ("store", |from, to| to.store.clone_from(&from.store)),
];

/// Where twofoldd's configuration comes from; read again at each reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file: named with `--config`, or found at the default path at
    /// start. A reload reads it again; if it is gone or unreadable, the
    /// reload is refused (a vanished file never turns into the built-in
    /// defaults).
    File(PathBuf),
    /// The built-in defaults, because no file was at this (default) path
    /// at start. A reload reads the file once one has appeared there (as a
    /// restart and `twofold config check` would), else keeps the defaults.
    Defaults(PathBuf),
}

impl ConfigSource {
    /// Where twofoldd looks at start: the file named, else the default
    /// file when there is one, else the built-in defaults.
    pub fn resolve(explicit: Option<PathBuf>) -> ConfigSource {
        match explicit {
            Some(path) => ConfigSource::File(path),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                ConfigSource::File(PathBuf::from(DEFAULT_CONFIG))
            }
            None => ConfigSource::Defaults(PathBuf::from(DEFAULT_CONFIG)),
        }
    }

    /// What logs and audit rows call it: the file, or `built-in defaults`.
    pub fn origin(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Defaults(_) => "built-in defaults".into(),
        }
    }

    /// Reads and checks it, as `twofold config check` does.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Defaults(_) => Ok(Config::default()),
        }
    }

    /// The source a reload reads: a file that has appeared at the default
    /// path since twofoldd started on the built-in defaults is read from
    /// now on.
    fn now(&self) -> ConfigSource {
        match self {
            ConfigSource::Defaults(path) if path.exists() => ConfigSource::File(path.clone()),
            other => other.clone(),
        }
    }
}

/// Requests for a reload, shared between whoever asks (twofoldd's signal
/// thread) and the daemon. Requests coalesce: those made while one is
/// pending add nothing, and one made while a reload runs makes exactly one
/// more, which reads the file as it is then.
#[derive(Debug, Clone, Default)]
pub struct Reload {
    pending: Arc<(Mutex<bool>, Condvar)>,
}

impl Reload {
    /// No reload requested yet.
    pub fn new() -> Reload {
        Reload::default()
    }

    /// Asks for a reload; returns at once.
    pub fn request(&self) {
        let (flag, wake) = &*self.pending;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_one();
    }

    /// Waits up to `wait` for a request; `true` (and the request taken)
    /// when there is one.
    fn take(&self, wait: Duration) -> bool {
        let (flag, wake) = &*self.pending;
        let mut pending = flag.lock().unwrap_or_else(|e| e.into_inner());
        if !*pending {
            pending = wake
                .wait_timeout(pending, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::take(&mut *pending)
    }
}

/// Starts the thread that reloads from `source` on each request, until
/// `shutdown`.
pub(crate) fn start(
    shared: &Arc<Shared>,
    requests: Reload,
    mut source: ConfigSource,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("twofoldd-reload".into())
        .spawn(move || {
            while !shutdown.is_triggered() {
                if !requests.take(WAKE) {
                    continue;
                }
                let done = catch_unwind(AssertUnwindSafe(|| reload(&shared, &mut source)));
                if done.is_err() {
                    // The running configuration stays; later requests
                    // are still served.
                    shared.log.event(
                        "config_reload",
                        &[("result", "failed"), ("error", "internal error (panic)")],
                    );
                }
            }
        })?;
    Ok(())
}

/// What a reload puts in force: the file's configuration with the
/// settings fixed at start kept at their running values.
#[derive(Debug)]
pub(crate) struct Reloaded {
    /// The configuration to put in force.
    pub config: Config,
    /// The options it changes, as dotted keys.
    pub changed: Vec<String>,
    /// Options of [`FIXED_AT_START`] the file changes: not applied.
    pub restart_needed: Vec<&'static str>,
}

impl Reloaded {
    /// Compares the file's configuration `new` with the `running` one.
    pub fn of(running: &Config, mut new: Config) -> Reloaded {
        let differs = running.changed_keys(&new);
        let mut restart_needed = Vec::new();
        for (key, keep) in FIXED_AT_START {
            // A key, or (`store`) every key of a table.
            let under = |k: &str| k.strip_prefix(key).is_some_and(|r| r.starts_with('.'));
            if differs.iter().any(|k| k == key || under(k)) {
                keep(running, &mut new);
                restart_needed.push(key);
            }
        }
        Reloaded {
            changed: running.changed_keys(&new),
            config: new,
            restart_needed,
        }
    }
}

/// One reload: read, compare, audit, put in force, log. The audit row is
/// written first: a configuration is never in force without its record.
pub(crate) fn reload(shared: &Shared, source: &mut ConfigSource) {
    *source = source.now();
    let origin = source.origin();
    let new = match source.load() {
        Ok(c) => c,
        Err(e) => return refuse(shared, &origin, &e.to_string()),
    };
    let r = Reloaded::of(&shared.current_config(), new);
    let changed = list(&r.changed);
    let restart = list(&r.restart_needed);
    let digest = config_digest(&r.config.to_toml());
    let mut row = AuditEvent::new(event::CONFIG_RELOADED, "", "twofoldd")
        .with("source", &origin)
        .with("sha256", &digest)
        .with("changed", &changed);
    if !r.restart_needed.is_empty() {
        row = row.with("restart_needed", &restart);
    }
    if let Err(e) = shared.audit(&[row]) {
        return shared.log.event(
            "config_reload",
            &[
                ("result", "failed"),
                ("source", &origin),
                ("error", &format!("audit: {e}")),
                ("kept", "the running configuration"),
            ],
        );
    }
    shared.install(r.config);
    if !r.restart_needed.is_empty() {
        shared.log.event(
            "config_reload",
            &[
                ("restart_needed", &restart),
                (
                    "kept",
                    "their running values: they apply only when twofoldd starts",
                ),
            ],
        );
    }
    // Last: the line that says the reload is over.
    shared.log.event(
        "config_reload",
        &[
            ("result", "applied"),
            ("source", &origin),
            ("changed", &changed),
        ],
    );
}

/// A refused file: the running configuration stays; logged in
/// `twofold config check`'s words and audited.
fn refuse(shared: &Shared, origin: &str, error: &str) {
    shared.log.event(
        "config_reload",
        &[
            ("result", "refused"),
            ("source", origin),
            ("error", error),
            ("kept", "the running configuration"),
        ],
    );
    let row = AuditEvent::new(event::CONFIG_RELOAD_REFUSED, "", "twofoldd")
        .with("source", origin)
        .with("error", error);
    if let Err(e) = shared.audit(&[row]) {
        shared
            .log
            .event("config_reload", &[("error", &format!("audit: {e}"))]);
    }
}

/// `a,b,c`, or `none`.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config::default();
        edit(&mut c);
        c
    }

    #[test]
    fn every_setting_fixed_at_start_keeps_its_running_value() {
        let running = Config::default();
        let new = with(|c| {
            c.daemon.socket = "/elsewhere.sock".into();
            c.daemon.database = "/elsewhere.db".into();
            c.daemon.master_key = "/elsewhere.key".into();
            c.daemon.max_connections = 8;
            c.daemon.max_connections_per_user = 2;
            c.store.backend = twofold_config::Backend::Postgres;
            c.store.dbname = "fleet".into();
        });
        let r = Reloaded::of(&running, new);
        assert_eq!(r.config, running);
        assert!(r.changed.is_empty(), "{:?}", r.changed);
        let fixed: Vec<&str> = FIXED_AT_START.iter().map(|(k, _)| *k).collect();
        assert_eq!(r.restart_needed, fixed);
    }

    #[test]
    fn the_rest_is_applied_beside_what_needs_a_restart() {
        use twofold_config::Unenrolled;
        let running = Config::default();
        let new = with(|c| {
            c.policy.unenrolled = Unenrolled::Deny;
            c.login.max_tries = 1;
            c.daemon.admin_group = Some("wheel".into());
            c.daemon.frame_timeout = twofold_config::Seconds(3);
            c.daemon.socket = "/elsewhere.sock".into();
        });
        let r = Reloaded::of(&running, new);
        assert_eq!(r.restart_needed, ["daemon.socket"]);
        assert_eq!(
            r.changed,
            [
                "daemon.admin_group",
                "daemon.frame_timeout",
                "login.max_tries",
                "policy.unenrolled"
            ]
        );
        assert_eq!(r.config.policy.unenrolled, Unenrolled::Deny);
        assert_eq!(r.config.daemon.socket, running.daemon.socket);
    }

    #[test]
    fn requests_coalesce() {
        let r = Reload::new();
        assert!(!r.take(Duration::ZERO));
        for _ in 0..20 {
            r.request();
        }
        assert!(r.take(Duration::ZERO));
        assert!(!r.take(Duration::ZERO));
    }

    #[test]
    fn a_file_that_appears_at_the_default_path_is_read_from_then_on() {
        let dir = std::env::temp_dir().join(format!("twofold-reload-{}", std::process::id()));
        let path = dir.join("twofold.toml");
        let source = ConfigSource::Defaults(path.clone());
        assert_eq!(source.now(), source);
        assert_eq!(source.origin(), "built-in defaults");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(source.now(), ConfigSource::File(path.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
        // A file that was read is never replaced by the defaults.
        let gone = ConfigSource::File(path.clone()).now();
        assert!(gone.load().is_err());
    }
}
