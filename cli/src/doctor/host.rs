//! The daemon, its files and the clock.

use super::{Finding, Host, Severity};
use crate::daemon::Daemon;
use crate::error::CliError;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use twofold_config::{Backend, StoreConfig};
use twofold_proto::{Client, ErrorKind, Request, Response};

/// The findings about twofoldd and the machine it runs on.
pub fn check(daemon: &Daemon, host: &Host<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let reachable = Client::connect(&daemon.socket, daemon.timeout, crate::CLIENT_NAME).is_ok();
    if !reachable {
        out.push(Finding {
            id: "daemon.unreachable",
            severity: Severity::Error,
            what: format!("twofoldd does not answer at {}", daemon.socket.display()),
            why: "every login through a twofold line fails (failmode=secure) or goes without a second factor (failmode=safe)".into(),
            fix: "start it (`systemctl start twofoldd`) and read why it stopped (`journalctl -u twofoldd`)".into(),
        });
    }
    let d = &host.config.daemon;
    secret_file(&mut out, &d.master_key, "the master key", true);
    let store = &host.config.store;
    if store.backend == Backend::Postgres {
        if let Some(p) = &store.password_file {
            secret_file(&mut out, p, "the PostgreSQL password file", true);
        }
        // The server itself first: a daemon that could not start because
        // of it is explained too.
        if let Err(why) = server_listens(store, daemon.timeout) {
            out.push(unreachable(store, &why));
        } else if reachable {
            out.extend(fleet_store(daemon, store));
        }
    } else {
        secret_file(&mut out, &d.database, "the database", false);
    }
    if let Some(dir) = d.socket.parent() {
        if let Ok(m) = std::fs::metadata(dir) {
            let mode = m.permissions().mode();
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                out.push(Finding {
                    id: "files.socket_dir_writable",
                    severity: Severity::Error,
                    what: format!("{} (the socket's directory) is writable by everyone", dir.display()),
                    why: "anyone can replace the socket; the module refuses a socket not held by root or daemon_uid=, so every login fails".into(),
                    fix: format!("chmod 0755 {}", dir.display()),
                });
            }
        }
    }
    out.extend(clock());
    if reachable {
        out.extend(admin_enrolled(daemon));
    }
    out
}

/// A file holding secrets: owned by root, not readable by others (the key
/// not even by its group).
fn secret_file(out: &mut Vec<Finding>, path: &Path, what: &str, key: bool) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        out.push(Finding {
            id: "files.missing",
            severity: Severity::Info,
            what: format!("{what} ({}) does not exist", path.display()),
            why: "the package's postinst makes the master key, and twofoldd makes the database on its first start; if it is running with this configuration, it reads another path".into(),
            fix: "check `[daemon]` in the configuration (`twofold config check --print`)".into(),
        });
        return;
    };
    let mode = m.permissions().mode() & 0o7777;
    let loose = if key { mode & 0o077 } else { mode & 0o007 };
    if loose != 0 {
        out.push(Finding {
            id: if key {
                "files.key_mode"
            } else {
                "files.database_mode"
            },
            severity: Severity::Error,
            what: format!("{what} ({}) has mode {mode:04o}", path.display()),
            why: if key {
                "whoever reads the master key can decrypt every TOTP secret in the database".into()
            } else {
                "the database holds sealed secrets, code hashes and the audit trail".into()
            },
            fix: format!(
                "chmod {} {}",
                if key { "0600" } else { "0640" },
                path.display()
            ),
        });
    }
    if m.uid() != 0 {
        out.push(Finding {
            id: "files.owner",
            severity: Severity::Warning,
            what: format!(
                "{what} ({}) is owned by uid {}, not root",
                path.display(),
                m.uid()
            ),
            why: "that user can read or replace it".into(),
            fix: format!("chown root {}", path.display()),
        });
    }
}

/// Whether the clock is kept synchronized (TOTP codes depend on it).
fn clock() -> Vec<Finding> {
    let sync = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes")
        .or_else(|| {
            Command::new("chronyc")
                .arg("tracking")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("Leap status     : Normal"))
        });
    match sync {
        Some(true) => Vec::new(),
        Some(false) => vec![Finding {
            id: "clock.unsynchronized",
            severity: Severity::Warning,
            what: "the clock is not synchronized".into(),
            why: "TOTP codes are computed from the time: a clock a minute off refuses every right code".into(),
            fix: "enable time synchronization (`timedatectl set-ntp true`, or chrony)".into(),
        }],
        None => vec![Finding {
            id: "clock.unknown",
            severity: Severity::Info,
            what: "whether the clock is synchronized could not be told (no timedatectl or chronyc answered)".into(),
            why: "TOTP codes are computed from the time".into(),
            fix: "make sure NTP (systemd-timesyncd or chrony) keeps the clock".into(),
        }],
    }
}

/// Fleet mode: whether the PostgreSQL server accepts a connection at all
/// (its socket file, or its TCP port), within `timeout`; why not.
fn server_listens(store: &StoreConfig, timeout: Duration) -> Result<(), String> {
    if store.host.starts_with('/') {
        let socket = Path::new(&store.host).join(format!(".s.PGSQL.{}", store.port));
        return twofold_proto::connect_unix(&socket, timeout)
            .map(drop)
            .map_err(|e| format!("{}: {e}", socket.display()));
    }
    let addrs = (store.host.as_str(), store.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", store.host))?;
    let mut last = format!("{}: no address", store.host);
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// The finding of a database twofoldd cannot use.
fn unreachable(store: &StoreConfig, why: &str) -> Finding {
    Finding {
        id: "store.unreachable",
        severity: Severity::Error,
        what: format!(
            "the fleet's PostgreSQL database ({} on {}, port {}) cannot be used: {why}",
            store.dbname, store.host, store.port
        ),
        why: "every login is answered Unavailable (denied) until the database is back; a running twofoldd reconnects by itself, and one that was starting refused to start".into(),
        fix: format!(
            "check the server (`pg_isready -h {} -p {}`) and `[store]`; `journalctl -u twofoldd` shows `store_unreachable` or `store_connection_lost`",
            store.host, store.port
        ),
    }
}

/// Fleet mode: whether twofoldd itself uses its PostgreSQL database
/// (root's own status reads it): the server may listen and still refuse
/// twofoldd (authentication, TLS, a full server).
fn fleet_store(daemon: &Daemon, store: &StoreConfig) -> Vec<Finding> {
    match daemon.call(&Request::Status { user: None }) {
        Err(CliError::Failed {
            kind: ErrorKind::Internal,
            message,
        }) if message.contains("storage") => {
            vec![unreachable(store, &format!("twofoldd says: {message}"))]
        }
        _ => Vec::new(),
    }
}

/// The admin who runs doctor through sudo should have a factor before
/// twofold guards sudo.
fn admin_enrolled(daemon: &Daemon) -> Vec<Finding> {
    let Some(me) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()) else {
        return Vec::new();
    };
    match daemon.call(&Request::Status {
        user: Some(me.clone()),
    }) {
        Ok(Response::Status(s)) if s.factors.is_empty() => vec![Finding {
            id: "admin.not_enrolled",
            severity: Severity::Warning,
            what: format!("you ({me}) have no second factor enrolled"),
            why: "once twofold guards sudo with `unenrolled = \"deny\"` (or a required group), you are locked out of root".into(),
            fix: format!("run `twofold enroll totp` as {me} and keep the backup codes"),
        }],
        _ => Vec::new(),
    }
}
