//! The database and master key on disk: modes, migrations, tampering.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use twofold_daemon::{Daemon, DaemonError, KeyError, ManualClock, StoreError, SCHEMA_VERSION};
use twofold_proto::Response;
use twofold_tests::daemon::{config_in, failed_kind, last, open_tempdir, TestDaemon, T0};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::require_root;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn database_key_and_their_directories_are_private() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    let db = &d.config().daemon.database;
    assert_eq!(mode(db), 0o600);
    let wal = db.with_extension("db-wal");
    assert!(wal.exists(), "WAL mode should leave a -wal file while open");
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&db.with_extension("db-shm")), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&d.config().daemon.master_key), 0o600);
    assert_eq!(mode(d.config().daemon.master_key.parent().unwrap()), 0o700);
    assert_eq!(mode(d.socket()), 0o666);
    let conn = rusqlite::Connection::open(db).unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn group_readable_master_key_refuses_to_start() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    let key = &config.daemon.master_key;
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(
            err,
            DaemonError::Key(KeyError::Permissions { mode: 0o644, .. })
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.contains(&key.display().to_string()) && shown.contains("0644"),
        "{shown}"
    );
    // Refusing to start created no database.
    assert!(!config.daemon.database.exists());
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Daemon::open(config, Arc::new(ManualClock::new(T0))).unwrap();
}

#[test]
fn reopening_keeps_data_and_migrations_are_idempotent() {
    let mut d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.stop();
    let config = d.config().clone();
    let clock = d.clock.clone();
    for _ in 0..2 {
        let db = rusqlite::Connection::open(&config.daemon.database).unwrap();
        let v: u32 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        Daemon::open(config.clone(), clock.clone()).unwrap();
    }
    d.restart();
    d.clock.advance(30);
    assert_eq!(
        last(&d.login("alice", &[&oathtool_totp(&e, d.now(), 0)])),
        &Response::Success
    );
}

#[test]
fn database_from_a_newer_daemon_is_refused() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap();
    let db = rusqlite::Connection::open(&config.daemon.database).unwrap();
    db.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(db);
    let err = Daemon::open(config, Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(err, DaemonError::Store(StoreError::TooNew { .. })),
        "{err:?}"
    );
}

#[test]
fn ciphertext_moved_to_another_users_row_fails_closed() {
    let d = TestDaemon::start();
    let (alice, _) = d.enroll_totp("alice");
    d.enroll_totp("bob");
    let db = rusqlite::Connection::open(&d.config().daemon.database).unwrap();
    let changed = db
        .execute(
            "UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE user = 'alice'),
                                    nonce = (SELECT nonce FROM credentials WHERE user = 'alice')
             WHERE user = 'bob'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    d.clock.advance(30);
    let seen = d.login("bob", &[&oathtool_totp(&alice, d.now(), 0)]);
    assert!(matches!(last(&seen), Response::Denied { .. }), "{seen:?}");
    assert!(
        d.log_text().contains("user=bob") && d.log_text().contains("cannot be decrypted"),
        "{}",
        d.log_text()
    );
    // alice is unaffected.
    assert_eq!(
        last(&d.login("alice", &[&oathtool_totp(&alice, d.now(), 0)])),
        &Response::Success
    );
}

#[test]
fn swapping_row_identity_also_fails() {
    let d = TestDaemon::start();
    let (alice, _) = d.enroll_totp("alice");
    let db = rusqlite::Connection::open(&d.config().daemon.database).unwrap();
    db.execute(
        "UPDATE credentials SET id = id + 1 WHERE user = 'alice'",
        [],
    )
    .unwrap();
    drop(db);
    d.clock.advance(30);
    let seen = d.login("alice", &[&oathtool_totp(&alice, d.now(), 0)]);
    assert!(matches!(last(&seen), Response::Denied { .. }), "{seen:?}");
}

#[test]
fn loose_database_mode_is_warned_about() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap();
    std::fs::set_permissions(
        &config.daemon.database,
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let log = Arc::new(twofold_daemon::MemoryLog::new());
    Daemon::open_with_log(
        config.clone(),
        Arc::new(ManualClock::new(T0)),
        twofold_daemon::Logger::new(log.clone()),
    )
    .unwrap();
    let text = log.lines().join("\n");
    assert!(
        text.contains("twofoldd: warning database=") && text.contains("mode=0644"),
        "{text}"
    );
}

#[test]
fn storage_failure_is_unavailable_for_logins_and_internal_for_requests() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    let db = rusqlite::Connection::open(&d.config().daemon.database).unwrap();
    db.execute_batch("DROP TABLE failures").unwrap();
    // The login starts; the wrong code cannot be counted, so no answer is given.
    let seen = d.login("alice", &["abcde-fghij"]);
    assert!(matches!(seen[0], Response::Prompt { .. }), "{seen:?}");
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    // Without the lock table no login can start.
    db.execute_batch("DROP TABLE locks").unwrap();
    drop(db);
    assert_eq!(d.login("bob", &[]), vec![Response::Unavailable]);
    assert!(
        d.log_text().contains("result=unavailable"),
        "{}",
        d.log_text()
    );
    let r = d
        .client()
        .call(&twofold_proto::Request::Status {
            user: Some("alice".into()),
        })
        .unwrap();
    assert_eq!(
        failed_kind(&r),
        Some(twofold_proto::ErrorKind::Internal),
        "{r:?}"
    );
}

/// Issue 10: the master key's owner was not checked, so a key file that
/// another user owns (and could replace, or read through a later chmod)
/// was used. Needs root to hand the file to another uid.
#[test]
fn regression_a_master_key_owned_by_another_user_refuses_to_start() {
    require_root();
    let dir = open_tempdir();
    let config = config_in(dir.path());
    let key = &config.daemon.master_key;
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(key, Some(65534), Some(65534)).unwrap();
    let err = Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(
            err,
            DaemonError::Key(KeyError::Owner {
                owner: 65534,
                euid: 0,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    assert!(!config.daemon.database.exists());
    std::os::unix::fs::chown(key, Some(0), Some(0)).unwrap();
    Daemon::open(config, Arc::new(ManualClock::new(T0))).unwrap();
}

/// Issue 10: files were created through symbolic links, so whoever could
/// place one at the database's path chose where the daemon writes.
#[test]
fn regression_a_symlink_at_the_database_path_refuses_to_start_and_writes_nothing() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    let db = &config.daemon.database;
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let elsewhere = dir.path().join("elsewhere.db");
    std::os::unix::fs::symlink(&elsewhere, db).unwrap();
    let err = Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(matches!(err, DaemonError::Store(_)), "{err:?}");
    assert!(
        err.to_string().contains(&db.display().to_string()),
        "names the path: {err}"
    );
    assert!(!elsewhere.exists(), "nothing was created through the link");
}

/// Issue 10: a database others could write only drew a warning; whoever
/// writes it can add their own factor to any account or erase locks.
#[test]
fn regression_a_database_others_may_write_refuses_to_start() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap();
    for mode in [0o666, 0o620, 0o602] {
        std::fs::set_permissions(
            &config.daemon.database,
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
        let err = Daemon::open(config.clone(), Arc::new(ManualClock::new(T0))).unwrap_err();
        assert!(matches!(err, DaemonError::Unsafe(_)), "{mode:o}: {err:?}");
        assert!(
            err.to_string().contains(&format!("mode {mode:04o}")),
            "{err}"
        );
    }
    std::fs::set_permissions(
        &config.daemon.database,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    Daemon::open(config, Arc::new(ManualClock::new(T0))).unwrap();
}
