//! `[store]`: where twofoldd keeps its state — the embedded SQLite file
//! (`[daemon] database`, one host) or a PostgreSQL database shared by a
//! fleet of hosts.

use crate::Seconds;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which implementation of the storage seam the daemon opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite file at `[daemon] database` (one host).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every host of a fleet.
    Postgres,
}

/// How a TCP connection to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreTls {
    /// TLS (certificate checked against `ca_file` or the system's CAs, and
    /// the host name) required to any host but loopback; to a loopback
    /// address, used when the server offers it. Nothing on a Unix socket.
    #[default]
    Auto,
    /// TLS required, also to a loopback address (refused with a Unix socket).
    Require,
    /// No TLS: allowed only to a loopback address.
    Off,
}

/// `[store]`: the backend and, for `postgres`, how to reach the database.
///
/// Every host of a fleet names the same database and holds the same
/// `[daemon] master_key` file: the secrets in the database are sealed under
/// it, and a host whose key cannot open the fleet's key-check value refuses
/// to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    pub backend: Backend,
    /// PostgreSQL server: a host name or address (TCP), or the absolute
    /// path of the directory holding its Unix socket. Default
    /// `/var/run/postgresql` (the local server's socket).
    pub host: String,
    /// PostgreSQL port (also names the socket file, `.s.PGSQL.PORT`). Default 5432.
    pub port: u16,
    /// Database name. Default `twofold`.
    pub dbname: String,
    /// Role to connect as. Default `twofold`.
    pub user: String,
    /// File holding the role's password (first line), readable by root
    /// only. Default: none (peer or trust authentication on a Unix socket).
    pub password_file: Option<PathBuf>,
    /// TLS over TCP: `auto` (default: required unless `host` is a loopback
    /// address), `require`, or `off` (loopback only).
    pub tls: StoreTls,
    /// A PEM file of the CA certificates the server's certificate must
    /// chain to, instead of the system's. Default: the system's.
    pub ca_file: Option<PathBuf>,
    /// How long opening a connection may take, 1s to 1m. Default `2s`.
    pub connect_timeout: Seconds,
    /// How long one statement may run on the server, 1s to 1m. Default `3s`.
    pub statement_timeout: Seconds,
    /// Connections this host keeps at most, 1 to 1024; 0 (default): one
    /// per daemon worker (`[daemon] max_connections`). Opened when needed.
    pub connections: u32,
    /// This host's name in the audit trail (its rows and its own hash
    /// chains). Default: the system's host name.
    pub host_name: Option<String>,
    /// Keep a copy of every enrolled account in memory, followed through
    /// the database's notifications on one more connection, so a login's
    /// read before its prompt needs no round trip (about 1.2 KB an
    /// account). Default `true`; `false` reads the database every time.
    pub replica: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Sqlite,
            host: "/var/run/postgresql".into(),
            port: 5432,
            dbname: "twofold".into(),
            user: "twofold".into(),
            password_file: None,
            tls: StoreTls::Auto,
            ca_file: None,
            connect_timeout: Seconds(2),
            statement_timeout: Seconds(3),
            connections: 0,
            host_name: None,
            replica: true,
        }
    }
}

impl StoreConfig {
    /// Whether a connection uses TLS: `Some(true)` required, `Some(false)`
    /// used when the server offers it, `None` never.
    pub fn tls_mode(&self) -> Option<bool> {
        if self.host.starts_with('/') {
            return None;
        }
        match self.tls {
            StoreTls::Off => None,
            StoreTls::Require => Some(true),
            StoreTls::Auto => Some(!crate::email::is_loopback(&self.host)),
        }
    }

    /// The problem with a value, as (key, message), if any.
    pub(crate) fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.backend != Backend::Postgres {
            return None;
        }
        if self.host.is_empty() {
            return Some(("host", "must name a server or a socket directory"));
        }
        if self.dbname.is_empty() || self.user.is_empty() {
            return Some(if self.dbname.is_empty() {
                ("dbname", "must not be empty")
            } else {
                ("user", "must not be empty")
            });
        }
        if !(1..=60).contains(&self.connect_timeout.0) {
            return Some(("connect_timeout", "must be between 1s and 1m"));
        }
        if !(1..=60).contains(&self.statement_timeout.0) {
            return Some(("statement_timeout", "must be between 1s and 1m"));
        }
        if self.connections > 1024 {
            return Some(("connections", "must be 0 (one per worker) to 1024"));
        }
        if let Some(p) = &self.password_file {
            if !p.is_absolute() {
                return Some(("password_file", "must be an absolute path"));
            }
        }
        if let Some(p) = &self.ca_file {
            if !p.is_absolute() {
                return Some(("ca_file", "must be an absolute path"));
            }
        }
        let socket = self.host.starts_with('/');
        match self.tls {
            StoreTls::Require if socket => {
                return Some((
                    "tls",
                    "\"require\" needs a TCP host: PostgreSQL has no TLS on a Unix socket",
                ))
            }
            StoreTls::Off if !socket && !crate::email::is_loopback(&self.host) => {
                return Some((
                    "tls",
                    "\"off\" is allowed only to a loopback address: the password and every sealed secret would cross the network in clear",
                ))
            }
            _ => {}
        }
        if let Some(h) = &self.host_name {
            if h.is_empty() || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_graphic()) {
                return Some((
                    "host_name",
                    "must be 1 to 64 printable characters without spaces",
                ));
            }
        }
        None
    }
}
