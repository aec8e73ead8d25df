//! The fleet store's replica (`daemon/src/store/postgres/replica.rs`): the
//! copy of every enrolled account a daemon serves logins' first snapshot
//! from, on a real PostgreSQL server. Host A keeps a replica; host B (a
//! store of its own on the same database, as another daemon) makes every
//! change, which A's copy must follow — and where A's copy has not heard
//! of a change yet, the write that spends a login's answer must refuse
//! what the change forbids.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_config::{Config, RateLimitConfig, StoreConfig};
use twofold_daemon::audit::{event, AuditEvent};
use twofold_daemon::store::{
    Change, Claim, Durability, Failure, NewCode, NewCredential, PgStore, Removal, Snapshot, Store,
    Success, SuccessOutcome,
};
use twofold_daemon::{Keys, Logger, ManualClock};
use twofold_proto::Method;
use twofold_tests::pgproxy::{in_front, Proxy};
use twofold_tests::postgres::PgDatabase;

const T: u64 = 1_000_000;

fn keys() -> Keys {
    Keys::derive(&[7u8; 32])
}

/// Host A with a replica (its clock at [`T`]), host B without one.
fn hosts(db: &PgDatabase) -> (PgStore, PgStore) {
    let (a, b, _) = hosts_via(db, None);
    (a, b)
}

/// [`hosts`], A's connections through a proxy in `proxy_dir` when given.
fn hosts_via(db: &PgDatabase, proxy_dir: Option<&Path>) -> (PgStore, PgStore, Option<Proxy>) {
    let mut config = Config::default();
    db.configure(&mut config);
    let open = |store: &StoreConfig, host: &str| {
        let mut store = store.clone();
        store.host_name = Some(host.to_owned());
        PgStore::open(&store, 4, &keys(), Logger::stderr()).unwrap()
    };
    let b = open(&config.store, "host-b");
    let mut store_a = config.store.clone();
    let proxy = proxy_dir.map(|dir| in_front(&mut store_a, dir));
    let mut a = open(&store_a, "host-a");
    a.start_replica(&store_a, Arc::new(ManualClock::new(T)), Logger::stderr())
        .unwrap();
    until("the replica is live", || a.replica().unwrap().live);
    (a, b, proxy)
}

/// Waits (15 s at most) for `cond`.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < end, "not within 15 s: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ev(e: &'static str, user: &str) -> AuditEvent {
    AuditEvent::new(e, user, "test")
}

fn credential(id: i64, method: Method, params: &str) -> NewCredential {
    NewCredential {
        id,
        method,
        label: String::new(),
        sealed: vec![1, 2, 3],
        nonce: vec![0; 24],
        params: params.into(),
        single: true,
    }
}

fn enroll(s: &PgStore, user: &str, id: i64, method: Method, params: &str) {
    assert!(s
        .start_pending(user, credential(id, method, params), T)
        .unwrap());
    let done = s
        .confirm(id, Some(10), None, None, T, vec![ev(event::ENROLL, user)])
        .unwrap();
    assert!(matches!(done, Change::Done(_)), "{done:?}");
}

fn code(b: u8, expires_at: Option<u64>) -> NewCode {
    NewCode {
        lookup: [b; 32],
        hash: format!("h{b}"),
        expires_at,
    }
}

fn fail(s: &PgStore, user: &str, source: &str) {
    s.record_failure(
        Failure {
            user: user.into(),
            source: source.into(),
            now: T,
            limits: RateLimitConfig::default(),
            failure: ev(event::LOGIN_FAILURE, user),
            denied: ev(event::LOGIN_DENIED, user),
            last: false,
        },
        Durability::Durable,
    )
    .unwrap();
}

fn spend(s: &PgStore, user: &str, credential: i64, value: u64) -> SuccessOutcome {
    s.record_success(Success {
        user: user.into(),
        source: "10.0.0.1".into(),
        now: T,
        claim: Some(Claim::Counter { credential, value }),
        events: vec![ev(event::LOGIN_SUCCESS, user)],
        code_used: None,
    })
    .unwrap()
}

/// A snapshot's credentials (row, when confirmed), code methods, and
/// whether it holds a lock: comparable.
type View = (Vec<(i64, Option<u64>)>, Vec<Method>, bool);

fn view(s: &Snapshot) -> View {
    (
        s.credentials
            .iter()
            .map(|c| (c.id, c.confirmed_at))
            .collect(),
        s.codes.clone(),
        s.lock.is_some(),
    )
}

/// Waits until A's replica serves `user` (from no source) what B reads
/// from the database.
fn serves_as_read(a: &PgStore, b: &PgStore, user: &str) {
    serves(a, user, "", Some(&b.snapshot(user, "", T + 1).unwrap()));
}

/// Waits until A's replica serves `user` from `source` what the database
/// gives (`Some`), or reads the database for it (`None`).
fn serves(a: &PgStore, user: &str, source: &str, want: Option<&Snapshot>) {
    until(
        &format!("the replica's view of {user} from {source:?}"),
        || a.replica_snapshot(user, source, T + 1).map(|s| view(&s)) == want.map(view),
    );
}

#[test]
fn the_replica_follows_enrollments_codes_locks_and_removals_made_on_another_host() {
    let db = PgDatabase::new();
    let (a, b) = hosts(&db);
    // Nobody enrolled: a login reads the database (an account enrolled a
    // moment ago on another host must never look unenrolled).
    assert!(a.replica_snapshot("alice", "", T).is_none());
    enroll(&b, "alice", 7, Method::TOTP, "SHA1:6:30");
    let db_view = b.snapshot("alice", "10.0.0.1", T + 1).unwrap();
    assert_eq!(db_view.credentials.len(), 1);
    serves(&a, "alice", "10.0.0.1", Some(&db_view));
    assert_eq!(a.replica().unwrap().accounts, 1);

    // Backup codes, and an expiring code: listed while they work.
    b.replace_codes(
        "alice",
        &Method::BACKUP_CODE,
        vec![code(1, None), code(2, None)],
        None,
        T,
        vec![],
    )
    .unwrap();
    b.issue_codes(
        "alice",
        &Method::TEMP_CODE,
        vec![code(3, Some(T + 60))],
        T,
        vec![],
    )
    .unwrap();
    let db_view = b.snapshot("alice", "10.0.0.1", T + 1).unwrap();
    assert_eq!(db_view.codes.len(), 2, "{:?}", db_view.codes);
    serves(&a, "alice", "10.0.0.1", Some(&db_view));
    let later = a.replica_snapshot("alice", "10.0.0.1", T + 61).unwrap();
    assert_eq!(
        later.codes,
        b.snapshot("alice", "10.0.0.1", T + 61).unwrap().codes
    );

    // A lock on one source: a login from it reads the database (which
    // refuses it); one from elsewhere is still served.
    for _ in 0..RateLimitConfig::default().source_failures {
        fail(&b, "alice", "10.0.0.9");
    }
    assert!(b
        .snapshot("alice", "10.0.0.9", T + 1)
        .unwrap()
        .lock
        .is_some());
    serves(&a, "alice", "10.0.0.9", None);
    assert!(a.replica_snapshot("alice", "10.0.0.1", T + 1).is_some());
    // Lifted on B: served again, with no lock.
    b.unlock("alice", T, ev(event::UNLOCK, "alice")).unwrap();
    let db_view = b.snapshot("alice", "10.0.0.9", T + 1).unwrap();
    assert!(db_view.lock.is_none());
    serves(&a, "alice", "10.0.0.9", Some(&db_view));

    // An HOTP token's check searches from its stored counter, which spends
    // move without a notice: such an account is always read.
    enroll(&b, "hal", 8, Method::HOTP, "SHA1:6");
    until("the replica holds hal", || {
        a.replica().unwrap().accounts == 2
    });
    assert!(a.replica_snapshot("hal", "", T + 1).is_none());

    // Everything removed (an admin's disable): read from the database.
    let removed = b
        .remove("alice", Removal::All, None, T, vec![], vec![])
        .unwrap();
    assert!(matches!(removed, Change::Done(_)), "{removed:?}");
    until("the replica drops alice", || {
        a.replica().unwrap().accounts == 1
    });
    assert!(a.replica_snapshot("alice", "10.0.0.1", T + 1).is_none());
}

/// The exact attack on a copy that has not heard yet: a login decided
/// from A's copy, and spent after another host removed the credential,
/// replaced it, or locked the account. Each spend must refuse.
#[test]
fn a_login_decided_from_a_copy_that_missed_a_change_is_refused_by_its_spend() {
    let db = PgDatabase::new();
    let (a, b) = hosts(&db);
    enroll(&b, "alice", 7, Method::TOTP, "SHA1:6:30");
    enroll(&b, "bob", 9, Method::TOTP, "SHA1:6:30");
    enroll(&b, "carol", 11, Method::TOTP, "SHA1:6:30");
    until("the replica holds all three", || {
        a.replica().unwrap().accounts == 3
    });
    let copy = |u: &str| a.replica_snapshot(u, "10.0.0.1", T).unwrap();
    let (alice, bob, carol) = (copy("alice"), copy("bob"), copy("carol"));

    // Alice's factor is removed on B.
    b.remove("alice", Removal::All, None, T, vec![], vec![])
        .unwrap();
    assert!(matches!(
        spend(&a, "alice", alice.credentials[0].id, 50),
        SuccessOutcome::Lost
    ));
    // Bob enrolls again on B: his old secret's row is gone.
    b.remove("bob", Removal::All, None, T, vec![], vec![])
        .unwrap();
    enroll(&b, "bob", 10, Method::TOTP, "SHA1:6:30");
    assert!(matches!(
        spend(&a, "bob", bob.credentials[0].id, 50),
        SuccessOutcome::Lost
    ));
    // Carol is locked on B (user-wide).
    for i in 0..RateLimitConfig::default().user_failures {
        fail(&b, "carol", &format!("10.9.0.{i}"));
    }
    assert!(b.snapshot("carol", "10.0.0.1", T).unwrap().lock.is_some());
    assert!(matches!(
        spend(&a, "carol", carol.credentials[0].id, 50),
        SuccessOutcome::Locked(_)
    ));
    // What A serves once it has heard: nothing stale.
    until("the replica follows", || {
        a.replica_snapshot("alice", "10.0.0.1", T).is_none()
            && a.replica_snapshot("carol", "10.0.0.1", T).is_none()
            && a.replica_snapshot("bob", "10.0.0.1", T)
                .is_some_and(|s| s.credentials.iter().map(|c| c.id).eq([10]))
    });
}

/// The listening connection is cut (an admin's `pg_terminate_backend`, a
/// server restart): the copy stops being served, notices sent meanwhile
/// are lost, and the copy comes back whole from a new load.
#[test]
fn a_replica_that_lost_its_connection_is_not_served_until_it_loaded_everything_again() {
    let db = PgDatabase::new();
    let (a, b) = hosts(&db);
    enroll(&b, "alice", 7, Method::TOTP, "SHA1:6:30");
    serves_as_read(&a, &b, "alice");
    let killed = db.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'twofoldd-replica' AND datname = current_database()",
    );
    assert_eq!(killed.trim(), "1", "one listening connection");
    // Removed while nobody listens on A.
    b.remove("alice", Removal::All, None, T, vec![], vec![])
        .unwrap();
    until("the replica is no longer live", || {
        !a.replica().unwrap().live
    });
    assert!(a.replica_snapshot("alice", "", T + 1).is_none());
    until("the replica is live again", || a.replica().unwrap().live);
    assert_eq!(a.replica().unwrap().accounts, 0);
    assert!(a.replica_snapshot("alice", "", T + 1).is_none());
    // And it follows changes again.
    enroll(&b, "alice", 12, Method::TOTP, "SHA1:6:30");
    serves_as_read(&a, &b, "alice");
}

/// The exact attack on a copy that has not heard yet, where no spend
/// would catch it: an account enrolled a moment ago on B that A's copy
/// still shows pending (A's listener is held behind a proxy, so its copy
/// hears nothing). A login decided from that copy would find nothing to
/// check and skip the second factor (`unenrolled = "allow"`) or refuse
/// without counting; the copy is not given, the database is read.
#[test]
fn an_account_the_copy_shows_with_nothing_to_check_is_read_from_the_database() {
    let db = PgDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, proxy) = hosts_via(&db, Some(dir.path()));
    let proxy = proxy.unwrap();
    let usable = |s: &Snapshot| s.credentials.iter().any(|c| c.confirmed_at.is_some());
    for i in 0..3 {
        let user = format!("user{i}");
        let id = 100 + i64::from(i);
        assert!(b
            .start_pending(&user, credential(id, Method::TOTP, "SHA1:6:30"), T)
            .unwrap());
        until("the copy shows the pending credential", || {
            a.replica_snapshot(&user, "", T)
                .is_some_and(|s| s.credentials.len() == 1 && !usable(&s))
        });
        proxy.hold_replica.store(true, Ordering::SeqCst);
        let done = b
            .confirm(id, Some(10), None, None, T, vec![ev(event::ENROLL, &user)])
            .unwrap();
        assert!(matches!(done, Change::Done(_)), "{done:?}");
        let copy = a
            .replica_snapshot(&user, "", T)
            .expect("the copy is served");
        assert!(!usable(&copy), "the copy has not heard: {copy:?}");
        let seen = a.login_snapshot(&user, "", T, &usable).unwrap();
        assert!(usable(&seen), "{user}: confirmed on B, shown unusable on A");
        assert!(!seen.copy);
        proxy.hold_replica.store(false, Ordering::SeqCst);
    }
}

/// Notifications that stop arriving while the connection answers (a
/// pooler in transaction mode swallows them): the listener's echo does
/// not come back, so the copy stops being served within 8 s, and a new
/// connection loads everything again once they arrive.
#[test]
fn a_copy_whose_notifications_stop_arriving_is_not_served_for_long() {
    let db = PgDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, proxy) = hosts_via(&db, Some(dir.path()));
    let proxy = proxy.unwrap();
    enroll(&b, "alice", 7, Method::TOTP, "SHA1:6:30");
    serves_as_read(&a, &b, "alice");
    proxy.drop_notifications.store(true, Ordering::SeqCst);
    let dropped = Instant::now();
    b.remove("alice", Removal::All, None, T, vec![], vec![])
        .unwrap();
    until("the copy is no longer served", || {
        a.replica_snapshot("alice", "", T + 1).is_none()
    });
    let took = dropped.elapsed();
    assert!(took <= Duration::from_secs(11), "served for {took:?}");
    assert!(!a.replica().unwrap().live);
    proxy.drop_notifications.store(false, Ordering::SeqCst);
    until("the replica is live again", || a.replica().unwrap().live);
    assert_eq!(a.replica().unwrap().accounts, 0);
}
