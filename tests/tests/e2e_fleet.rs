//! Fleet mode: two and three `twofoldd` processes, each with its own
//! socket, configuration and host name, on one PostgreSQL database (a real
//! server: `twofold_tests::postgres`). One enrollment, one replay ledger,
//! one rate limit; PostgreSQL stopped mid-run fails logins closed, quickly,
//! and restarted lets them resume without restarting a daemon.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use twofold_config::{Config, Seconds};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{
    config_in, login_at, open_tempdir, succeeded, DaemonProcess, TestDaemon,
};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::postgres::PgDatabase;

/// Daemons on one database, with one master key file (the fleet's).
struct Fleet {
    hosts: Vec<DaemonProcess>,
    _dirs: Vec<tempfile::TempDir>,
    db: PgDatabase,
}

fn fleet(n: usize, db: PgDatabase, edit: impl Fn(&mut Config)) -> Fleet {
    let keys = open_tempdir();
    let mut dirs = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..n {
        let dir = open_tempdir();
        let mut config = config_in(dir.path());
        db.configure(&mut config);
        config.store.host_name = Some(format!("host-{}", (b'a' + i as u8) as char));
        config.daemon.master_key = keys.path().join("master.key");
        edit(&mut config);
        hosts.push(DaemonProcess::start(dir.path(), &config));
        dirs.push(dir);
    }
    dirs.push(keys);
    Fleet {
        hosts,
        _dirs: dirs,
        db,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn locked(seen: &[Response]) -> bool {
    seen.iter().any(|r| match r {
        Response::Error { text } => text.starts_with("Too many failed attempts"),
        Response::Denied { reason, .. } => reason.starts_with("Too many failed attempts"),
        _ => false,
    })
}

/// Runs `sql` in a psql session of its own on `db` (a transaction that
/// holds a lock and sleeps), given half a second to take its locks; wait
/// on the child for it to end.
fn hold(db: &PgDatabase, sql: &str) -> std::process::Child {
    let child = std::process::Command::new("psql")
        .arg("-h")
        .arg(&db.socket_dir)
        .args(["-U", "postgres", "-d", &db.name, "-X", "-q", "-c", sql])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Asserts that a login ended `Unavailable` after `secs` (whole seconds,
/// end excluded).
fn unavailable_within(seen: &[Response], took: Duration, secs: std::ops::Range<u64>) {
    assert!(
        matches!(seen.last(), Some(Response::Unavailable)),
        "{seen:?}"
    );
    assert!(
        took >= Duration::from_secs(secs.start) && took < Duration::from_secs(secs.end),
        "took {took:?}, not within {secs:?} s"
    );
}

fn login(host: &DaemonProcess, user: &str, answer: &str) -> Vec<Response> {
    login_at(host.socket(), user, &[answer])
}

#[test]
fn enrolled_on_a_logs_in_on_b_and_a_code_used_on_a_is_refused_on_b() {
    let f = fleet(2, PgDatabase::new(), |_| {});
    let (a, b) = (&f.hosts[0], &f.hosts[1]);
    let (pending, backup) = a.enroll_totp("alice");
    // The next step's code: the enrollment spent this one.
    let code = oathtool_totp(&pending, now(), 1);
    assert!(
        succeeded(&login(b, "alice", &code)),
        "enrolled on A, in on B"
    );
    let again = login(a, "alice", &code);
    assert!(
        !succeeded(&again),
        "the code B accepted, replayed on A: {again:?}"
    );
    assert!(succeeded(&login(a, "alice", &backup[0])));
    assert!(
        !succeeded(&login(b, "alice", &backup[0])),
        "a used backup code"
    );
    // Every host's rows are in one trail, each naming its host.
    let hosts =
        f.db.psql("SELECT string_agg(DISTINCT host, ',' ORDER BY host) FROM audit");
    assert_eq!(hosts, "host-a,host-b");
    // `twofold audit verify` on either host checks every host's chains.
    let rows: u64 = f.db.psql("SELECT COUNT(*) FROM audit").parse().unwrap();
    for h in &f.hosts {
        match h.call(&Request::AuditVerify) {
            Response::AuditVerified(r) => {
                assert_eq!(r.broken, None);
                assert_eq!(r.rows, rows, "every host's rows");
            }
            other => panic!("audit verify: {other:?}"),
        }
    }
    // An edit of a row of host A's is found from host B, naming its chain.
    f.db.psql(
        "ALTER TABLE audit DISABLE TRIGGER audit_guard;
         UPDATE audit SET detail = detail || ' x'
         WHERE id = (SELECT MIN(id) FROM audit WHERE host = 'host-a')",
    );
    match b.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => {
            let broken = r.broken.expect("the edit is found");
            assert!(broken.reason.starts_with("chain host-a#"), "{broken:?}");
        }
        other => panic!("audit verify: {other:?}"),
    }
}

#[test]
fn the_same_backup_code_sent_to_three_daemons_at_once_opens_once() {
    let f = fleet(3, PgDatabase::new(), |_| {});
    let (_, backup) = f.hosts[0].enroll_totp("bob");
    for code in &backup[..5] {
        let barrier = Barrier::new(3);
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = f
                .hosts
                .iter()
                .map(|h| {
                    let barrier = &barrier;
                    sc.spawn(move || {
                        barrier.wait();
                        usize::from(succeeded(&login(h, "bob", code)))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "code {code}");
    }
}

#[test]
fn five_wrong_codes_spread_over_three_daemons_lock_everywhere_and_unlock_on_c_clears_it() {
    let f = fleet(3, PgDatabase::new(), |_| {});
    let (_, backup) = f.hosts[0].enroll_totp("carol");
    for i in 0..5 {
        let seen = login(&f.hosts[i % 3], "carol", "000000");
        assert!(!succeeded(&seen));
    }
    for (i, h) in f.hosts.iter().enumerate() {
        let seen = login(h, "carol", &backup[0]);
        assert!(locked(&seen), "host {i} refuses the locked pair: {seen:?}");
    }
    match f.hosts[2].call(&Request::AdminUnlock {
        user: "carol".into(),
    }) {
        Response::Done { message } => assert!(!message.is_empty()),
        other => panic!("unlock on C: {other:?}"),
    }
    assert!(
        succeeded(&login(&f.hosts[0], "carol", &backup[0])),
        "unlocked on A"
    );
    assert!(
        succeeded(&login(&f.hosts[1], "carol", &backup[1])),
        "unlocked on B"
    );
}

#[test]
fn a_race_of_1000_logins_reusing_codes_across_three_daemons_accepts_no_code_twice() {
    // Limits high enough that the wrong (reused) answers do not lock the
    // race out before it ends.
    let f = fleet(3, PgDatabase::new(), |c| {
        c.rate_limit.source_failures = 1000;
        c.rate_limit.user_failures = 10000;
    });
    let (pending, backup) = f.hosts[0].enroll_totp("dave");
    let t = now();
    let mut codes: Vec<String> = backup.clone();
    for step in -1..=1 {
        codes.push(oathtool_totp(&pending, t, step));
    }
    let accepted: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let started = Instant::now();
    std::thread::scope(|sc| {
        for w in 0..24usize {
            let (f, codes, accepted) = (&f, &codes, &accepted);
            sc.spawn(move || {
                for i in 0..1000 / 24 + 1 {
                    let n = w * 1000 / 24 + i;
                    if n >= 1000 {
                        break;
                    }
                    let code = &codes[n % codes.len()];
                    let h = &f.hosts[n % 3];
                    let seen = login(h, "dave", code);
                    if succeeded(&seen) {
                        *accepted.lock().unwrap().entry(code.clone()).or_default() += 1;
                    }
                }
            });
        }
    });
    let accepted = accepted.lock().unwrap();
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted twice: {twice:?}");
    assert!(
        accepted.len() >= backup.len(),
        "every backup code opens once: {accepted:?}"
    );
    eprintln!(
        "1000 logins over 3 daemons in {:.1} s, {} accepted, 0 twice",
        started.elapsed().as_secs_f64(),
        accepted.len()
    );
}

#[test]
fn postgres_stopped_mid_run_fails_logins_closed_quickly_and_restarted_lets_them_resume() {
    let db = PgDatabase::own_server();
    let f = fleet(2, db, |c| {
        c.store.connect_timeout = Seconds(1);
        c.store.statement_timeout = Seconds(2);
    });
    let (_, backup) = f.hosts[0].enroll_totp("erin");
    assert!(succeeded(&login(&f.hosts[1], "erin", &backup[0])));
    let server = f.db.own.as_ref().unwrap();
    server.stop();
    for h in &f.hosts {
        let started = Instant::now();
        let seen = login(h, "erin", &backup[1]);
        let took = started.elapsed();
        // Fails closed, within the module's default budget (timeout=5 a
        // reply).
        unavailable_within(&seen, took, 0..5);
        eprintln!("PostgreSQL stopped: Unavailable after {took:?}");
    }
    server.restart();
    for (i, h) in f.hosts.iter().enumerate() {
        let started = Instant::now();
        let seen = login(h, "erin", &backup[2 + i]);
        assert!(succeeded(&seen), "host {i} resumed: {seen:?}");
        eprintln!(
            "PostgreSQL restarted: host {i} logs in again in {:?}",
            started.elapsed()
        );
    }
    let log = f.hosts[0].log();
    assert!(log.contains("store_"), "the outage is logged: {log}");
    assert!(log.contains("store_reconnected"), "{log}");
}

#[test]
fn a_slow_postgres_answers_unavailable_within_the_lock_timeout_and_then_serves_again() {
    let f = fleet(1, PgDatabase::new(), |c| {
        c.store.statement_timeout = Seconds(2);
    });
    let (_, backup) = f.hosts[0].enroll_totp("fay");
    // Another session holds the credentials table for 6 s: every login's
    // read waits on it.
    let mut holder = hold(
        &f.db,
        "BEGIN; LOCK TABLE credentials IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
    );
    let started = Instant::now();
    let seen = login(&f.hosts[0], "fay", &backup[0]);
    let took = started.elapsed();
    unavailable_within(&seen, took, 2..5);
    eprintln!("PostgreSQL slow (table locked): Unavailable after {took:?}");
    holder.wait().unwrap();
    assert!(
        succeeded(&login(&f.hosts[0], "fay", &backup[0])),
        "serves again"
    );
}

/// Regression (session 7): retention ran inside the request that found it
/// due (then one an hour), before its answer. Fleet prunes take one lock
/// every host shares, so the hour's first login waited on any other host's
/// prune, up to the lock timeout (5 s here), and the PAM module's budget
/// (2 s) ran out first: the login failed. Retention now runs on the
/// daemon's own thread. Here an hour passes on the daemon's clock while
/// another host's prune holds the lock, and the next login goes through
/// libpam and the real module as usual.
#[test]
fn the_hours_first_login_does_not_wait_for_another_hosts_prune() {
    use twofold_tests::pam::{answers, PamLogin, PAM_SUCCESS};
    let db = PgDatabase::new();
    let d = TestDaemon::start_with(|c| {
        db.configure(c);
        c.store.statement_timeout = Seconds(5);
    });
    let alice = d.enroll("alice");
    let pam = d.pam();
    let login = |steps: i64| {
        PamLogin::new(pam.dir(), "tf", "alice")
            .unwrap()
            .authenticate(answers(&[&d.code(&alice.secret, steps)]))
            .unwrap()
            .0
    };
    assert_eq!(login(0), PAM_SUCCESS);
    let mut holder = hold(
        &db,
        "BEGIN; SELECT pg_advisory_xact_lock(x'0074776f7072756e'::BIGINT); \
         SELECT pg_sleep(8); COMMIT;",
    );
    d.clock.advance(3601);
    let started = Instant::now();
    assert_eq!(login(1), PAM_SUCCESS, "the hour's first login");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    holder.wait().unwrap();
}

/// A server that stops answering altogether (every PostgreSQL process
/// stopped: what a hung disk under it looks like) cannot cancel anything
/// itself, and the blocking client used to wait for it without limit,
/// holding the daemon's worker. Each call now has a deadline on the
/// daemon's side (`statement_timeout` + 2 s, 4 s here): the login is
/// answered `Unavailable` within it; the next one within it too (on
/// another pooled connection) or within the connect timeout (2 s, on a new
/// one); and once the server runs again, logins resume without a restart.
#[test]
fn a_frozen_postgres_answers_unavailable_within_the_deadline_and_then_serves_again() {
    let f = fleet(1, PgDatabase::own_server(), |c| {
        c.store.statement_timeout = Seconds(2);
    });
    let (_, backup) = f.hosts[0].enroll_totp("hal");
    /// Lets the server run again however the test ends.
    struct Thaw<'a>(&'a twofold_tests::postgres::PgServer);
    impl Drop for Thaw<'_> {
        fn drop(&mut self) {
            self.0.thaw();
        }
    }
    let server = f.db.own.as_ref().unwrap();
    server.freeze();
    let thaw = Thaw(server);
    let started = Instant::now();
    let seen = login(&f.hosts[0], "hal", &backup[0]);
    let took = started.elapsed();
    let seen2 = login(&f.hosts[0], "hal", &backup[0]);
    let took2 = started.elapsed() - took;
    drop(thaw);
    unavailable_within(&seen, took, 4..6);
    // Another pooled connection waits out the deadline too; a new one
    // gives up at the connect timeout.
    unavailable_within(&seen2, took2, 0..5);
    eprintln!("PostgreSQL frozen: Unavailable after {took:?}, then {took2:?}");
    assert!(
        succeeded(&login(&f.hosts[0], "hal", &backup[0])),
        "serves again"
    );
}

/// `twofold doctor` says when the fleet's database is unreachable, as an
/// error (exit 10): with twofoldd running (it answers Unavailable), and
/// with twofoldd stopped too (the server itself is probed, so a daemon
/// that could not start for it is explained); and no more once it is back.
#[test]
fn twofold_doctor_says_when_the_fleet_database_is_unreachable() {
    let db = PgDatabase::own_server();
    let f = fleet(1, db, |_| {});
    let h = &f.hosts[0];
    let stopped = h.socket().with_file_name("no-daemon-here.sock");
    let doctor_at = |socket: &std::path::Path| {
        let out = std::process::Command::new(twofold_tests::daemon::bin_path("twofold"))
            .arg("--socket")
            .arg(socket)
            .arg("--config")
            .arg(&h.config_file)
            .args(["doctor", "--json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let store = json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["id"] == "store.unreachable")
            .cloned();
        (out.status.code(), store)
    };
    let doctor = || doctor_at(h.socket());
    let (_, found) = doctor();
    assert!(found.is_none(), "{found:?}");
    f.db.own.as_ref().unwrap().stop();
    let (code, found) = doctor();
    let found = found.expect("store.unreachable while PostgreSQL is down");
    assert_eq!(found["severity"], "error", "{found}");
    assert!(
        found["what"].as_str().unwrap().contains(".s.PGSQL.5432"),
        "names what it could not reach: {found}"
    );
    assert_eq!(code, Some(10), "an error: exit 10");
    // twofoldd not running (as after a start refused for the database):
    // the server is named all the same.
    let (code, found) = doctor_at(&stopped);
    assert!(found.is_some(), "store.unreachable without a daemon");
    assert_eq!(code, Some(10));
    f.db.own.as_ref().unwrap().restart();
    let (_, found) = doctor();
    assert!(found.is_none(), "reconnected: {found:?}");
}

/// Going from one host to many: a host's SQLite state (enrollment, a spent
/// backup code, its audit chain) moves into the fleet database with
/// `twofoldd --migrate-from-sqlite`, a dry run first, once only; the same
/// host, now in fleet mode, and a second host serve it.
#[test]
fn a_single_hosts_sqlite_state_moves_into_the_fleet_database_once() {
    let dir = open_tempdir();
    let single = config_in(dir.path());
    let d = DaemonProcess::start(dir.path(), &single);
    let (_, backup) = d.enroll_totp("gus");
    assert!(succeeded(&login(&d, "gus", &backup[0])));
    let _ = d.terminate();
    let db = PgDatabase::new();
    let mut fleet_config = single.clone();
    db.configure(&mut fleet_config);
    fleet_config.store.host_name = Some("old-single".into());
    let file = dir.path().join("fleet.toml");
    std::fs::write(&file, fleet_config.to_toml()).unwrap();
    let migrate = |apply: bool| {
        let mut c = std::process::Command::new(twofold_tests::daemon::bin_path("twofoldd"));
        c.arg("--config").arg(&file).arg("--migrate-from-sqlite");
        if apply {
            c.arg("--apply");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = migrate(false);
    assert!(
        dry.contains("dry run") && dry.contains("1 accounts"),
        "{dry}"
    );
    assert_eq!(
        db.psql("SELECT COUNT(*) FROM users"),
        "0",
        "a dry run writes nothing"
    );
    let done = migrate(true);
    assert!(done.contains("moved into the fleet database"), "{done}");
    assert!(migrate(true).contains("nothing to do"), "once only");
    // The same host in fleet mode, and a new one.
    let again = open_tempdir();
    let mut second = config_in(again.path());
    db.configure(&mut second);
    second.daemon.master_key = single.daemon.master_key.clone();
    second.store.host_name = Some("new-host".into());
    let a = DaemonProcess::start(dir.path(), &fleet_config);
    let b = DaemonProcess::start(again.path(), &second);
    assert!(
        !succeeded(&login(&b, "gus", &backup[0])),
        "spent before the move"
    );
    assert!(succeeded(&login(&b, "gus", &backup[1])));
    assert!(succeeded(&login(&a, "gus", &backup[2])));
    // The old chain verifies as it was, beside the fleet's.
    match b.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => assert_eq!(r.broken, None, "{r:?}"),
        other => panic!("audit verify: {other:?}"),
    }
    let imported: u64 = db
        .psql("SELECT COUNT(*) FROM audit WHERE host = 'old-single' AND lane = -1")
        .parse()
        .unwrap();
    assert!(imported >= 3, "the single host's rows: {imported}");
}

/// `twofold admin migrate --to postgres` (what the admin guide names)
/// runs the same move through the CLI: its dry run and report on stdout,
/// exit 0, once only; a configuration still on SQLite is refused with
/// twofoldd's reason and a non-zero exit.
#[test]
fn twofold_admin_migrate_to_postgres_moves_a_host_once_after_a_dry_run() {
    let dir = open_tempdir();
    let single = config_in(dir.path());
    let d = DaemonProcess::start(dir.path(), &single);
    let (_, backup) = d.enroll_totp("hal");
    let _ = d.terminate();
    let twofold = |file: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(twofold_tests::daemon::bin_path("twofold"))
            .arg("--config")
            .arg(file)
            .args(["admin", "migrate", "--to", "postgres"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let sqlite_file = dir.path().join("single.toml");
    std::fs::write(&sqlite_file, single.to_toml()).unwrap();
    let (code, _, err) = twofold(&sqlite_file, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("backend = \"postgres\""), "{err}");
    let db = PgDatabase::new();
    let mut fleet_config = single.clone();
    db.configure(&mut fleet_config);
    fleet_config.store.host_name = Some("cli-single".into());
    let file = dir.path().join("fleet.toml");
    std::fs::write(&file, fleet_config.to_toml()).unwrap();
    let (code, dry, err) = twofold(&file, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        dry.contains("dry run") && dry.contains("1 accounts"),
        "{dry}"
    );
    assert_eq!(db.psql("SELECT COUNT(*) FROM users"), "0", "a dry run");
    let (code, done, err) = twofold(&file, &["--apply"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(done.contains("moved into the fleet database"), "{done}");
    let (code, again, _) = twofold(&file, &["--apply"]);
    assert_eq!(code, Some(0));
    assert!(again.contains("nothing to do"), "once only: {again}");
    let a = DaemonProcess::start(dir.path(), &fleet_config);
    assert!(
        succeeded(&login(&a, "hal", &backup[0])),
        "moved, and served"
    );
}
