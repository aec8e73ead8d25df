//! Embedded, versioned schema migrations of the PostgreSQL store, tracked
//! in `twofold_schema`. Independent of the SQLite store's numbering: this
//! schema starts where that one is (credentials and codes of every factor).

use super::client::PgClient;
use crate::store::StoreError;

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a
/// released entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the whole store as SQLite's schema 4 has it, plus the audit
    // trail's chains per (host, lane) and the fleet's key check.
    "CREATE TABLE users (
        name        TEXT PRIMARY KEY,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE credentials (
        id            BIGINT PRIMARY KEY,
        username      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        method        TEXT NOT NULL,
        label         TEXT NOT NULL DEFAULT '',
        sealed        BYTEA NOT NULL,
        nonce         BYTEA NOT NULL,
        params        TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        confirmed_at  BIGINT,
        counter       BIGINT,
        last_used     BIGINT
    );
    CREATE INDEX credentials_user ON credentials(username, method);
    CREATE TABLE codes (
        id          BIGSERIAL PRIMARY KEY,
        username    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        method      TEXT NOT NULL,
        lookup      BYTEA NOT NULL UNIQUE,
        hash        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        used_at     BIGINT,
        expires_at  BIGINT
    );
    CREATE INDEX codes_user ON codes(username, method, used_at);
    CREATE TABLE failures (
        id        BIGSERIAL PRIMARY KEY,
        username  TEXT NOT NULL,
        source    TEXT NOT NULL,
        at        BIGINT NOT NULL
    );
    CREATE INDEX failures_user_at ON failures(username, at);
    CREATE TABLE locks (
        id          BIGSERIAL PRIMARY KEY,
        username    TEXT NOT NULL,
        source      TEXT,
        created_at  BIGINT NOT NULL,
        until       BIGINT NOT NULL,
        failures    INTEGER NOT NULL,
        cleared_at  BIGINT
    );
    CREATE INDEX locks_user ON locks(username, until);
    CREATE TABLE grace (
        username    TEXT PRIMARY KEY,
        first_seen  BIGINT NOT NULL,
        deadline    BIGINT NOT NULL
    );
    CREATE TABLE audit (
        id         BIGSERIAL PRIMARY KEY,
        host       TEXT NOT NULL,
        lane       INTEGER NOT NULL,
        seq        BIGINT NOT NULL,
        at         BIGINT NOT NULL,
        event      TEXT NOT NULL,
        username   TEXT NOT NULL,
        service    TEXT NOT NULL,
        rhost      TEXT NOT NULL,
        tty        TEXT NOT NULL,
        method     TEXT NOT NULL,
        actor      TEXT NOT NULL,
        detail     TEXT NOT NULL,
        prev_hash  BYTEA NOT NULL,
        hash       BYTEA NOT NULL,
        UNIQUE (host, lane, seq)
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_user ON audit(username, id);
    CREATE TABLE audit_head (
        host      TEXT NOT NULL,
        lane      INTEGER NOT NULL,
        last_seq  BIGINT NOT NULL,
        hash      BYTEA NOT NULL,
        PRIMARY KEY (host, lane)
    );
    CREATE TABLE audit_anchor (
        host       TEXT NOT NULL,
        lane       INTEGER NOT NULL,
        last_seq   BIGINT NOT NULL,
        hash       BYTEA NOT NULL,
        pruned_at  BIGINT NOT NULL,
        PRIMARY KEY (host, lane)
    );
    CREATE FUNCTION audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            RAISE EXCEPTION 'audit rows are append-only';
        END IF;
        IF OLD.seq > COALESCE((SELECT last_seq FROM audit_anchor a
                               WHERE a.host = OLD.host AND a.lane = OLD.lane), 0) THEN
            RAISE EXCEPTION 'audit rows are removed only by retention';
        END IF;
        RETURN OLD;
    END $$;
    CREATE TRIGGER audit_guard BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_guard();
    CREATE TABLE fleet (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        key_check   BYTEA NOT NULL,
        nonce       BYTEA NOT NULL,
        created_at  BIGINT NOT NULL
    );",
    // 2: remembered devices (SSH keys sshd verified, login sessions).
    "CREATE TABLE devices (
        id            BIGSERIAL PRIMARY KEY,
        username      TEXT NOT NULL,
        kind          TEXT NOT NULL,
        what          TEXT NOT NULL,
        service       TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        last_used     BIGINT,
        expires_at    BIGINT NOT NULL,
        forgotten_at  BIGINT
    );
    CREATE INDEX devices_user ON devices(username, kind, what);",
    // 3: single hosts whose SQLite state was moved in (once each).
    "CREATE TABLE imports (
        host         TEXT PRIMARY KEY,
        imported_at  BIGINT NOT NULL
    );",
    // 4: codes sent by mail or SMS (bound to the login or enrollment that
    // asked, with their wrong tries and where they went, which the send
    // limits count), the outbox of security notifications (written in the
    // transaction of the event it tells of, claimed by one host at a time),
    // and the confirmed addresses a transaction deleted, so the notice of
    // that very removal still reaches the old address.
    "ALTER TABLE codes ADD COLUMN bound TEXT;
    ALTER TABLE codes ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE codes ADD COLUMN destination TEXT;
    CREATE INDEX codes_sent ON codes(method, created_at) WHERE destination IS NOT NULL;
    CREATE INDEX codes_destination ON codes(destination, created_at)
        WHERE destination IS NOT NULL;
    CREATE INDEX codes_bound ON codes(username, method, bound) WHERE bound IS NOT NULL;
    CREATE TABLE outbox (
        id          BIGSERIAL PRIMARY KEY,
        username    TEXT NOT NULL,
        address     TEXT NOT NULL,
        event       TEXT NOT NULL,
        audit_id    BIGINT NOT NULL,
        created_at  BIGINT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     BIGINT NOT NULL,
        sent_at     BIGINT,
        error       TEXT NOT NULL DEFAULT '',
        claimed_by  TEXT
    );
    CREATE INDEX outbox_due ON outbox(next_at) WHERE sent_at IS NULL;
    CREATE INDEX outbox_user ON outbox(username, event, created_at);
    CREATE TABLE gone_addresses (
        xact      xid8 NOT NULL,
        username  TEXT NOT NULL,
        address   TEXT NOT NULL
    );
    CREATE INDEX gone_addresses_xact ON gone_addresses(xact);
    CREATE FUNCTION email_gone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.method = 'email' AND OLD.confirmed_at IS NOT NULL THEN
            INSERT INTO gone_addresses (xact, username, address)
            VALUES (pg_current_xact_id(), OLD.username, OLD.params);
        END IF;
        RETURN OLD;
    END $$;
    CREATE TRIGGER email_gone AFTER DELETE ON credentials
        FOR EACH ROW EXECUTE FUNCTION email_gone();",
    // 5: a TOTP login's spend in one round trip, called outside any
    // transaction (`login.rs`): the account's advisory lock (the key every
    // version takes), then, each statement with a fresh snapshot (a
    // VOLATILE function's), the chain head checked under its row lock, the
    // lock check, the conditional spend, the source's failures forgotten,
    // and the audit rows; all committed when the call ends. `stale`: the
    // head moved, nothing was done.
    "CREATE FUNCTION twofold_spend_counter(
        p_user TEXT, p_source TEXT, p_now BIGINT, p_credential BIGINT, p_value BIGINT,
        p_host TEXT, p_lane INTEGER, p_old_seq BIGINT, p_old_hash BYTEA,
        p_new_seq BIGINT, p_new_hash BYTEA, p_at BIGINT, p_seqs BIGINT[],
        p_events TEXT[], p_users TEXT[], p_services TEXT[], p_rhosts TEXT[], p_ttys TEXT[],
        p_methods TEXT[], p_actors TEXT[], p_details TEXT[], p_prevs BYTEA[],
        p_hashes BYTEA[])
    RETURNS TABLE (r_outcome TEXT, r_until BIGINT, r_user_wide BOOLEAN, r_seqs BIGINT[],
                   r_ids BIGINT[])
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        v_until BIGINT;
        v_user_wide BOOLEAN;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('twofold/user/' || p_user, 0));
        PERFORM 1 FROM audit_head h
            WHERE h.host = p_host AND h.lane = p_lane AND h.last_seq = p_old_seq
              AND h.hash = p_old_hash
            FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'stale'::TEXT, NULL::BIGINT, NULL::BOOLEAN, NULL::BIGINT[],
                                NULL::BIGINT[];
            RETURN;
        END IF;
        SELECT l.until, l.source IS NULL INTO v_until, v_user_wide FROM locks l
            WHERE l.username = p_user AND (l.source IS NULL OR l.source = p_source)
              AND l.cleared_at IS NULL AND l.until > p_now
            ORDER BY l.until DESC LIMIT 1;
        IF FOUND THEN
            RETURN QUERY SELECT 'locked'::TEXT, v_until, v_user_wide, NULL::BIGINT[],
                                NULL::BIGINT[];
            RETURN;
        END IF;
        UPDATE credentials c SET counter = p_value, last_used = p_now
            WHERE c.id = p_credential AND c.confirmed_at IS NOT NULL
              AND (c.counter IS NULL OR c.counter < p_value);
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'lost'::TEXT, NULL::BIGINT, NULL::BOOLEAN, NULL::BIGINT[],
                                NULL::BIGINT[];
            RETURN;
        END IF;
        DELETE FROM failures f WHERE f.username = p_user AND f.source = p_source;
        UPDATE audit_head h SET last_seq = p_new_seq, hash = p_new_hash
            WHERE h.host = p_host AND h.lane = p_lane;
        RETURN QUERY
            WITH a AS (
                INSERT INTO audit (host, lane, seq, at, event, username, service, rhost, tty,
                                   method, actor, detail, prev_hash, hash)
                SELECT p_host, p_lane, r.seq, p_at, r.event, r.username, r.service, r.rhost,
                       r.tty, r.method, r.actor, r.detail, r.prev_hash, r.hash
                FROM unnest(p_seqs, p_events, p_users, p_services, p_rhosts, p_ttys,
                            p_methods, p_actors, p_details, p_prevs, p_hashes)
                     AS r(seq, event, username, service, rhost, tty, method, actor, detail,
                          prev_hash, hash)
                ORDER BY r.seq
                RETURNING audit.seq, audit.id)
            SELECT 'won'::TEXT, NULL::BIGINT, NULL::BOOLEAN, ARRAY(SELECT a.seq FROM a),
                   ARRAY(SELECT a.id FROM a);
    END $$;",
    // 6: every change to what a login's snapshot reads (an account's
    // credentials, its unused codes, its locks) is announced on channel
    // `twofold_accounts` with the account's name, when it commits, and
    // `/reload` when one of those tables is emptied: each daemon's replica
    // (`replica.rs`) reads that account (or everything) again. An update
    // that changes none of what the snapshot reads announces nothing — a
    // spend's own columns (`counter`, `last_used`) above all.
    "CREATE FUNCTION twofold_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('twofold_accounts', OLD.username);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('twofold_accounts', NEW.username);
        END IF;
        RETURN NULL;
    END $$;
    CREATE FUNCTION twofold_accounts_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('twofold_accounts', '/reload');
        RETURN NULL;
    END $$;
    CREATE TRIGGER credentials_added_or_removed AFTER INSERT OR DELETE ON credentials
        FOR EACH ROW EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER credentials_changed AFTER UPDATE ON credentials FOR EACH ROW
        WHEN ((OLD.username, OLD.method, OLD.label, OLD.sealed, OLD.nonce, OLD.params,
               OLD.created_at, OLD.confirmed_at)
              IS DISTINCT FROM
              (NEW.username, NEW.method, NEW.label, NEW.sealed, NEW.nonce, NEW.params,
               NEW.created_at, NEW.confirmed_at))
        EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER codes_added_or_removed AFTER INSERT OR DELETE ON codes
        FOR EACH ROW EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER codes_changed AFTER UPDATE ON codes FOR EACH ROW
        WHEN ((OLD.username, OLD.method, OLD.used_at, OLD.expires_at)
              IS DISTINCT FROM (NEW.username, NEW.method, NEW.used_at, NEW.expires_at))
        EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER locks_added_or_removed AFTER INSERT OR DELETE ON locks
        FOR EACH ROW EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER locks_changed AFTER UPDATE ON locks FOR EACH ROW
        WHEN ((OLD.username, OLD.source, OLD.until, OLD.cleared_at)
              IS DISTINCT FROM (NEW.username, NEW.source, NEW.until, NEW.cleared_at))
        EXECUTE FUNCTION twofold_account_changed();
    CREATE TRIGGER credentials_emptied AFTER TRUNCATE ON credentials
        FOR EACH STATEMENT EXECUTE FUNCTION twofold_accounts_emptied();
    CREATE TRIGGER codes_emptied AFTER TRUNCATE ON codes
        FOR EACH STATEMENT EXECUTE FUNCTION twofold_accounts_emptied();
    CREATE TRIGGER locks_emptied AFTER TRUNCATE ON locks
        FOR EACH STATEMENT EXECUTE FUNCTION twofold_accounts_emptied();",
];

/// The schema version this build creates and understands.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Any fixed number: the advisory lock that keeps two daemons starting at
/// once from applying the same migration twice.
const MIGRATION_LOCK: i64 = 0x0074_776f_666f_6c64;

/// Brings the database up to [`PG_SCHEMA_VERSION`]; a no-op when it is
/// there. DDL is transactional in PostgreSQL: a failed step leaves nothing.
pub(crate) fn migrate(client: &mut PgClient) -> Result<(), StoreError> {
    client.batch_execute("BEGIN")?;
    let done = migrate_in(client);
    // An error leaves nothing: the transaction is rolled back (or, with
    // the connection broken, never committed).
    let ended = match &done {
        Ok(()) => client.batch_execute("COMMIT"),
        Err(_) if !client.is_closed() => client.batch_execute("ROLLBACK"),
        Err(_) => Ok(()),
    };
    done?;
    Ok(ended?)
}

/// The migration's steps, inside [`migrate`]'s transaction.
fn migrate_in(tx: &mut PgClient) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS twofold_schema (
            one      INTEGER PRIMARY KEY CHECK (one = 1),
            version  INTEGER NOT NULL
        )",
    )?;
    let found: i32 = tx
        .query_opt("SELECT version FROM twofold_schema WHERE one = 1", &[])?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let found = u32::try_from(found).unwrap_or(0);
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        let v = i as i32 + 1;
        tx.execute(
            "INSERT INTO twofold_schema (one, version) VALUES (1, $1)
             ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
            &[&v],
        )?;
    }
    Ok(())
}
