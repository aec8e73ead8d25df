//! Embedded, versioned schema migrations (tracked in `PRAGMA user_version`).

use crate::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a
/// released entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users, one TOTP credential per user (pending or confirmed), backup codes.
    "CREATE TABLE users (
        name        TEXT PRIMARY KEY NOT NULL,
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE totp (
        id            INTEGER PRIMARY KEY NOT NULL,
        user          TEXT NOT NULL UNIQUE REFERENCES users(name) ON DELETE CASCADE,
        ciphertext    BLOB NOT NULL,
        nonce         BLOB NOT NULL,
        algorithm     TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
        digits        INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
        period        INTEGER NOT NULL CHECK (period > 0),
        created_at    INTEGER NOT NULL,
        confirmed_at  INTEGER,
        last_step     INTEGER,
        last_used     INTEGER
    ) STRICT;
    CREATE TABLE backup_codes (
        id          INTEGER PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        lookup      BLOB NOT NULL UNIQUE,
        hash        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        used_at     INTEGER
    ) STRICT;
    CREATE INDEX backup_codes_user ON backup_codes(user);",
    // 2: rate limits, enrollment grace deadlines, the audit chain.
    "CREATE TABLE failures (
        id      INTEGER PRIMARY KEY NOT NULL,
        user    TEXT NOT NULL,
        source  TEXT NOT NULL,
        at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX failures_user_at ON failures(user, at);
    CREATE TABLE locks (
        id          INTEGER PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL,
        source      TEXT,
        created_at  INTEGER NOT NULL,
        until       INTEGER NOT NULL,
        failures    INTEGER NOT NULL,
        cleared_at  INTEGER
    ) STRICT;
    CREATE INDEX locks_user ON locks(user, until);
    CREATE TABLE grace (
        user        TEXT PRIMARY KEY NOT NULL,
        first_seen  INTEGER NOT NULL,
        deadline    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY NOT NULL,
        at         INTEGER NOT NULL,
        event      TEXT NOT NULL,
        user       TEXT NOT NULL,
        service    TEXT NOT NULL,
        rhost      TEXT NOT NULL,
        tty        TEXT NOT NULL,
        method     TEXT NOT NULL,
        actor      TEXT NOT NULL,
        detail     TEXT NOT NULL,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL
    ) STRICT;
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_user ON audit(user, id);
    CREATE TABLE audit_head (
        one      INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
        last_id  INTEGER NOT NULL,
        hash     BLOB NOT NULL
    ) STRICT;
    CREATE TABLE audit_anchor (
        one        INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
        last_id    INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        pruned_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
    CREATE TRIGGER audit_prune_only BEFORE DELETE ON audit
    WHEN OLD.id > COALESCE((SELECT last_id FROM audit_anchor WHERE one = 1), 0)
    BEGIN SELECT RAISE(ABORT, 'audit rows are removed only by retention'); END;",
    // 3: one table of credentials and one of single-use codes for every
    // factor (a factor's own parameters as text), instead of a table per
    // factor. Ids are kept: they are sealed into the secrets.
    "CREATE TABLE credentials (
        id            INTEGER PRIMARY KEY NOT NULL,
        user          TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        method        TEXT NOT NULL,
        label         TEXT NOT NULL DEFAULT '',
        sealed        BLOB NOT NULL,
        nonce         BLOB NOT NULL,
        params        TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        confirmed_at  INTEGER,
        counter       INTEGER,
        last_used     INTEGER
    ) STRICT;
    CREATE INDEX credentials_user ON credentials(user, method);
    INSERT INTO credentials (id, user, method, label, sealed, nonce, params, created_at,
                             confirmed_at, counter, last_used)
        SELECT id, user, 'totp', '', ciphertext, nonce,
               algorithm || ':' || digits || ':' || period, created_at, confirmed_at,
               last_step, last_used
        FROM totp;
    DROP TABLE totp;
    CREATE TABLE codes (
        id          INTEGER PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        method      TEXT NOT NULL,
        lookup      BLOB NOT NULL UNIQUE,
        hash        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        used_at     INTEGER
    ) STRICT;
    CREATE INDEX codes_user ON codes(user, method, used_at);
    INSERT INTO codes (id, user, method, lookup, hash, created_at, used_at)
        SELECT id, user, 'backup_code', lookup, hash, created_at, used_at FROM backup_codes;
    DROP TABLE backup_codes;",
    // 4: codes that expire (enrollment tokens; later, codes sent by mail).
    "ALTER TABLE codes ADD COLUMN expires_at INTEGER;",
    // 5: codes sent by mail (bound to the login or enrollment that asked,
    // with their wrong tries and where they went, which the send limits
    // count), and the outbox of security notifications, written in the
    // transaction of the event it tells of.
    "ALTER TABLE codes ADD COLUMN bound TEXT;
    ALTER TABLE codes ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE codes ADD COLUMN destination TEXT;
    CREATE INDEX codes_sent ON codes(method, created_at) WHERE destination IS NOT NULL;
    CREATE INDEX codes_destination ON codes(destination, created_at)
        WHERE destination IS NOT NULL;
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL,
        address     TEXT NOT NULL,
        event       TEXT NOT NULL,
        audit_id    INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL,
        sent_at     INTEGER,
        error       TEXT NOT NULL DEFAULT ''
    ) STRICT;
    CREATE INDEX outbox_due ON outbox(next_at) WHERE sent_at IS NULL;
    CREATE INDEX outbox_user ON outbox(user, event, created_at);",
    // 6: remembered devices (SSH keys sshd verified, login sessions).
    "CREATE TABLE devices (
        id            INTEGER PRIMARY KEY NOT NULL,
        user          TEXT NOT NULL,
        kind          TEXT NOT NULL,
        what          TEXT NOT NULL,
        service       TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_used     INTEGER,
        expires_at    INTEGER NOT NULL,
        forgotten_at  INTEGER
    ) STRICT;
    CREATE INDEX devices_user ON devices(user, kind, what);",
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`SCHEMA_VERSION`]; a no-op when it is there.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock first, so two daemons starting at once
    // cannot both apply the same migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
