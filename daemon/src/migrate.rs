//! `twofoldd --migrate-from-sqlite [--apply]`: moves this host's SQLite
//! state (`[daemon] database`) into the fleet's PostgreSQL database
//! (`[store]`, which must say `backend = "postgres"`), with the same master
//! key. Run with twofoldd stopped; a dry run unless `apply`; a second run
//! does nothing.

use crate::crypto::keys::Keys;
use crate::log::Logger;
use crate::server::DaemonError;
use crate::store::postgres::system_host_name;
use crate::store::{export_sqlite, PgStore};
use twofold_config::{Backend, Config};

/// Moves the state at `now`; the report, in words.
pub fn migrate_from_sqlite(config: &Config, now: u64, apply: bool) -> Result<String, DaemonError> {
    if config.store.backend != Backend::Postgres {
        return Err(DaemonError::Unsafe(
            "set [store] backend = \"postgres\" (and how to reach it) first: that is where the \
             state goes"
                .into(),
        ));
    }
    let db = &config.daemon.database;
    if !db.exists() {
        return Err(DaemonError::Unsafe(format!(
            "{}: no SQLite database to move",
            db.display()
        )));
    }
    // The file's secrets are sealed under this key: never make a new one.
    if !config.daemon.master_key.exists() {
        return Err(DaemonError::Unsafe(format!(
            "{}: the master key the SQLite file was sealed under is missing",
            config.daemon.master_key.display()
        )));
    }
    let keys = Keys::load_or_create(&config.daemon.master_key)?;
    let export = export_sqlite(db)?;
    let store = PgStore::open(&config.store, 1, &keys, Logger::stderr())?;
    let host = config
        .store
        .host_name
        .clone()
        .unwrap_or_else(system_host_name);
    let report = store.import(&export, &host, now, apply)?;
    Ok(format!("{} (host {host}): {report}", db.display()))
}
