//! The round trips a fleet login costs: a real daemon on a real
//! PostgreSQL, through a proxy on its Unix socket that counts the daemon's
//! turns — what it sends after the server last spoke is one round trip
//! when it runs statements (a simple query `Q`, or a `Sync` after a
//! `Bind`: a prepared statement run; requests sent together, such as a
//! transaction's `BEGIN` with its first statement, are one); a `Sync`
//! without a `Bind` is a statement prepared (once per connection), counted
//! apart. The replica's listening connection (`application_name`
//! `twofoldd-replica`) works on its own time and is not counted.

use std::sync::Mutex;
use twofold_proto::{Request, Response, TotpEnrollment};
use twofold_tests::daemon::{config_in, login_at, open_tempdir, succeeded, DaemonProcess};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::pgproxy::{in_front, take, Counts};
use twofold_tests::postgres::PgDatabase;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The login's round trips, warm (its statements prepared by a login of
/// the same kind before it, which must also have gone `ok`).
fn measured(
    counts: &Mutex<Counts>,
    ok: bool,
    mut login: impl FnMut(usize) -> Vec<Response>,
) -> Counts {
    for i in 0..2 {
        take(counts);
        let seen = login(i);
        assert_eq!(succeeded(&seen), ok, "login {i}: {seen:?}");
        let c = take(counts);
        if i == 1 {
            return c;
        }
    }
    unreachable!()
}

#[test]
fn a_fleet_login_costs_one_round_trip_a_wrong_code_four_and_a_backup_code_five() {
    let db = PgDatabase::new();
    let dir = open_tempdir();
    let proxy_dir = open_tempdir();
    let mut config = config_in(dir.path());
    db.configure(&mut config);
    let counts = in_front(&mut config.store, proxy_dir.path()).counts;
    config.store.host_name = Some("host-a".into());
    let host = DaemonProcess::start(dir.path(), &config);
    let (pending, backup) = host.enroll_totp("alice");
    let (bob, _) = host.enroll_totp("bob");
    // A daemon started now loads both accounts into its replica (the one
    // that enrolled them heard of them too, a moment later: the log says
    // when a load is done, not when a notice is applied).
    host.terminate();
    let host = DaemonProcess::start(dir.path(), &config);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !host.log().contains("store_replica state=live accounts=2") {
        assert!(std::time::Instant::now() < end, "{}", host.log());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    // Two TOTP logins, at the next step and the one after the enrollment's.
    let base = now();
    let totp = measured(&counts, true, |i| {
        let user = ["alice", "bob"][i];
        let p = [&pending, &bob][i];
        login_at(host.socket(), user, &[&oathtool_totp(p, base, 1)])
    });
    // A code none of the window's steps gives.
    let wrong = |p: &TotpEnrollment| {
        let near: Vec<String> = (-1..=1).map(|o| oathtool_totp(p, base, o)).collect();
        (0..10u32)
            .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
            .find(|c| !near.contains(c))
            .unwrap()
    };
    let wrong_code = measured(&counts, false, |i| {
        let (user, p) = [("alice", &pending), ("bob", &bob)][i];
        login_at(host.socket(), user, &[&wrong(p)])
    });
    let backup_code = measured(&counts, true, |i| {
        login_at(host.socket(), "alice", &[&backup[i]])
    });
    eprintln!("round trips: totp {totp:?}, wrong code {wrong_code:?}, backup code {backup_code:?}");
    // The snapshot comes from the replica (0); the statement that checks
    // the locks, spends the step and appends its audit rows, committed
    // when it ends (1).
    assert_eq!(totp.trips, 1, "a TOTP login: {totp:?}");
    assert_eq!(totp.prepares, 0, "warm: {totp:?}");
    // A refused answer to the replica's copy is checked again on the
    // database's snapshot (1); BEGIN with the lock sent with the lock
    // check, the failure and its counts (1); the audit rows; COMMIT.
    assert!(wrong_code.trips <= 4, "a wrong code: {wrong_code:?}");
    // The code by its lookup (1); BEGIN with the lock sent with the lock
    // check and the spend; the audit rows (1, the count of codes left is
    // in them); the notice of the code used queued (1); COMMIT.
    assert!(backup_code.trips <= 5, "a backup code: {backup_code:?}");
}

/// `[store] replica = false`: no listening connection, and a login reads
/// the database before its prompt (two round trips for a TOTP login).
#[test]
fn without_the_replica_a_fleet_login_reads_the_database_before_its_prompt() {
    let db = PgDatabase::new();
    let dir = open_tempdir();
    let proxy_dir = open_tempdir();
    let mut config = config_in(dir.path());
    db.configure(&mut config);
    config.store.replica = false;
    let counts = in_front(&mut config.store, proxy_dir.path()).counts;
    let host = DaemonProcess::start(dir.path(), &config);
    let (alice, _) = host.enroll_totp("alice");
    let (bob, _) = host.enroll_totp("bob");
    let base = now();
    let totp = measured(&counts, true, |i| {
        let (user, p) = [("alice", &alice), ("bob", &bob)][i];
        login_at(host.socket(), user, &[&oathtool_totp(p, base, 1)])
    });
    assert_eq!(totp.trips, 2, "a TOTP login: {totp:?}");
    assert!(!host.log().contains("store_replica"), "{}", host.log());
    assert_eq!(
        db.psql(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'twofoldd-replica' AND datname = current_database()"
        )
        .trim(),
        "0"
    );
}

/// Each connection keeps the head of its lane's chain after a commit; two
/// daemons given one host name write the same chains, so each finds the
/// head it kept moved by the other: the statement that appends writes
/// nothing then, and the head is read again. The chain stays whole.
#[test]
fn two_daemons_with_one_host_name_keep_one_whole_chain() {
    let db = PgDatabase::new();
    let keys = open_tempdir();
    let dirs = [open_tempdir(), open_tempdir()];
    let hosts: Vec<DaemonProcess> = dirs
        .iter()
        .map(|dir| {
            let mut config = config_in(dir.path());
            db.configure(&mut config);
            config.store.host_name = Some("twin".into());
            config.daemon.master_key = keys.path().join("master.key");
            DaemonProcess::start(dir.path(), &config)
        })
        .collect();
    let (pending, backup) = hosts[0].enroll_totp("alice");
    let (bob, _) = hosts[1].enroll_totp("bob");
    let base = now();
    // TOTP logins (the rows in the spend's statement), wrong codes and a
    // backup code (the rows in a statement of their own), host by host.
    assert!(succeeded(&login_at(
        hosts[0].socket(),
        "alice",
        &[&oathtool_totp(&pending, base, 1)]
    )));
    assert!(succeeded(&login_at(
        hosts[1].socket(),
        "bob",
        &[&oathtool_totp(&bob, base, 1)]
    )));
    for i in 0..4 {
        let seen = login_at(hosts[i % 2].socket(), "alice", &["not-a-code"]);
        assert!(!succeeded(&seen), "{seen:?}");
    }
    assert!(succeeded(&login_at(
        hosts[1].socket(),
        "alice",
        &[&backup[0]]
    )));
    let rows: u64 = db.psql("SELECT COUNT(*) FROM audit").parse().unwrap();
    let chains =
        db.psql("SELECT string_agg(host || '#' || lane, ',' ORDER BY lane) FROM audit_head");
    assert!(chains.starts_with("twin#0"), "{chains}");
    let seqs = db.psql("SELECT COUNT(*) = MAX(seq) FROM audit WHERE host = 'twin' AND lane = 0");
    assert_eq!(seqs, "t", "lane 0's positions have no gap");
    for h in &hosts {
        match h.call(&Request::AuditVerify) {
            Response::AuditVerified(r) => {
                assert_eq!(r.broken, None);
                assert_eq!(r.rows, rows);
            }
            other => panic!("audit verify: {other:?}"),
        }
    }
}
