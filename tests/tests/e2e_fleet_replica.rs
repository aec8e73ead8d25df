//! A fleet daemon's replica fallen behind, on purpose: host B reaches
//! PostgreSQL through a proxy that holds everything the server sends B's
//! listening connection, so B's copy misses the changes host A makes
//! while its own logins go on. Each login on B must end as one that read
//! the database would: the copy may save a round trip, never decide.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use twofold_config::{Seconds, SmtpTls};
use twofold_proto::{Request, Response, Secret};
use twofold_tests::daemon::{
    config_in, login_at, login_service_at, open_tempdir, succeeded, DaemonProcess,
};
use twofold_tests::mailtest::{enroll_address, point_at, ALICE};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::pgproxy::in_front;
use twofold_tests::postgres::PgDatabase;
use twofold_tests::smtp::{Mode, SmtpServer};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn prompted(seen: &[Response]) -> bool {
    seen.iter().any(|r| matches!(r, Response::Prompt { .. }))
}

fn locked(seen: &[Response]) -> bool {
    seen.iter().any(|r| match r {
        Response::Error { text } => text.starts_with("Too many failed attempts"),
        Response::Denied { reason, .. } => reason.starts_with("Too many failed attempts"),
        _ => false,
    })
}

#[test]
fn a_copy_that_fell_behind_never_skips_a_factor_counts_a_right_code_wrong_or_misses_a_lock() {
    let db = PgDatabase::new();
    let keys = open_tempdir();
    let (dir_a, dir_b, proxy_dir) = (open_tempdir(), open_tempdir(), open_tempdir());
    let mut config_a = config_in(dir_a.path());
    db.configure(&mut config_a);
    config_a.store.host_name = Some("host-a".into());
    config_a.daemon.master_key = keys.path().join("master.key");
    let mut config_b = config_in(dir_b.path());
    db.configure(&mut config_b);
    config_b.store.host_name = Some("host-b".into());
    config_b.daemon.master_key = keys.path().join("master.key");
    // B's copy is served for 6 to 8 s after its listener is held (its
    // last echo back was sent at most 2 s before): the test's logins on
    // the copy run well within (checked below).
    config_b.store.statement_timeout = Seconds(10);
    // A service that takes HOTP tokens only.
    config_b.policy.service = vec![twofold_config::policy::ServiceRule {
        services: vec!["tf-hotp".into()],
        methods: Some(vec![twofold_config::Method::HOTP]),
        unenrolled: None,
    }];
    let proxy = in_front(&mut config_b.store, proxy_dir.path());

    let a = DaemonProcess::start(dir_a.path(), &config_a);
    let (alice_old, _) = a.enroll_totp("alice");
    let (dave, _) = a.enroll_totp("dave");
    a.enroll_totp("erin");
    // Carol's enrollment is started, not confirmed.
    let carol = match a.call(&Request::TotpEnrollStart {
        user: Some("carol".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p,
        other => panic!("enroll start: {other:?}"),
    };
    let b = DaemonProcess::start(dir_b.path(), &config_b);
    let end = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("store_replica state=live accounts=4") {
        assert!(Instant::now() < end, "{}", b.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    // From here B's copy hears nothing.
    proxy.hold_replica.store(true, Ordering::SeqCst);
    let held = Instant::now();
    let t = now();

    // Carol confirms on A; B's copy shows her enrollment pending. With
    // `unenrolled = "allow"` (the default) a login decided from it would
    // find nothing to check and let her in without a code.
    match a.call(&Request::TotpEnrollConfirm {
        user: Some("carol".into()),
        code: Secret::from(oathtool_totp(&carol, t, 0).as_str()),
    }) {
        Response::BackupCodes { .. } => {}
        other => panic!("enroll confirm: {other:?}"),
    }
    let seen = login_at(b.socket(), "carol", &["000000"]);
    assert!(
        prompted(&seen) && !succeeded(&seen),
        "carol is asked for a code: {seen:?}"
    );
    let seen = login_at(b.socket(), "carol", &[&oathtool_totp(&carol, t, 1)]);
    assert!(succeeded(&seen), "carol's code opens: {seen:?}");

    // Erin is given an HOTP token on A; B's copy shows her TOTP only,
    // which the `tf-hotp` service does not take: a login there reads the
    // database before it refuses for want of an allowed method.
    match a.call(&Request::AdminEnrollHotp {
        user: "erin".into(),
        secret_hex: Secret::from("3132333435363738393031323334353637383930"),
        algorithm: None,
        digits: None,
        counter: None,
        name: None,
    }) {
        Response::Done { .. } => {}
        other => panic!("enroll hotp: {other:?}"),
    }
    // RFC 4226's first code for this secret.
    let seen = login_service_at(b.socket(), "tf-hotp", "erin", &["755224"]);
    assert!(succeeded(&seen), "erin's token on tf-hotp: {seen:?}");

    // Alice replaces her authenticator on A. B's copy still holds the old
    // secret, against which her new code is wrong: checked again on the
    // database's snapshot before it counts, it opens.
    match a.call(&Request::AdminDisable {
        user: "alice".into(),
    }) {
        Response::Done { .. } => {}
        other => panic!("disable: {other:?}"),
    }
    let (alice_new, _) = a.enroll_totp("alice");
    let t2 = now();
    assert_ne!(alice_old.secret, alice_new.secret);
    let seen = login_at(b.socket(), "alice", &[&oathtool_totp(&alice_new, t2, 1)]);
    assert!(succeeded(&seen), "alice's new code on B: {seen:?}");
    // Her old code is refused (the copy's credential is gone).
    let seen = login_at(b.socket(), "alice", &[&oathtool_totp(&alice_old, t2, 1)]);
    assert!(!succeeded(&seen), "alice's old code on B: {seen:?}");

    // Dave is locked out on A; B's copy has not heard: his right code on
    // B is refused by the lock.
    for _ in 0..5 {
        assert!(!succeeded(&login_at(a.socket(), "dave", &["000000"])));
    }
    assert!(locked(&login_at(a.socket(), "dave", &["000000"])));
    let seen = login_at(b.socket(), "dave", &[&oathtool_totp(&dave, t, 1)]);
    assert!(locked(&seen), "dave's right code on B: {seen:?}");

    // B's copy was served throughout: it was not given up, and it could
    // not have gone stale yet.
    let took = held.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the logins on the held copy took {took:?}: it may have gone stale and been read past"
    );
    assert!(
        !b.log().contains("state=lost"),
        "the copy was given up: {}",
        b.log()
    );
    proxy.hold_replica.store(false, Ordering::SeqCst);

    // Carol's wrong answer, checked on the copy and again on the
    // database, counted once.
    let failures =
        db.psql("SELECT count(*) FROM audit WHERE username = 'carol' AND event = 'login_failure'");
    assert_eq!(failures.trim(), "1");
}

/// A lock made on A that B's copy has not heard of: a login on B that asks
/// for a mailed code is refused, and nothing is mailed.
#[test]
fn a_copy_that_missed_a_lock_has_no_code_sent() {
    let relay_dir = open_tempdir();
    let relay = SmtpServer::start(relay_dir.path(), Mode::Plain, None, None);
    let db = PgDatabase::new();
    let keys = open_tempdir();
    let (dir_a, dir_b, proxy_dir) = (open_tempdir(), open_tempdir(), open_tempdir());
    let mut configs = Vec::new();
    for (dir, name) in [(&dir_a, "host-a"), (&dir_b, "host-b")] {
        let mut config = config_in(dir.path());
        db.configure(&mut config);
        config.store.host_name = Some(name.into());
        config.daemon.master_key = keys.path().join("master.key");
        point_at(&mut config, &relay, SmtpTls::Plain);
        configs.push(config);
    }
    let proxy = in_front(&mut configs[1].store, proxy_dir.path());
    let a = DaemonProcess::start(dir_a.path(), &configs[0]);
    // Alice: TOTP, and her address confirmed by the mailed code.
    let (_totp, _) = a.enroll_totp("alice");
    enroll_address(&a, &relay, "alice", ALICE, 1);
    let b = DaemonProcess::start(dir_b.path(), &configs[1]);
    let end = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("store_replica state=live accounts=1") {
        assert!(Instant::now() < end, "{}", b.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.hold_replica.store(true, Ordering::SeqCst);
    let held = Instant::now();
    for _ in 0..5 {
        assert!(!succeeded(&login_at(a.socket(), "alice", &["000000"])));
    }
    assert!(locked(&login_at(a.socket(), "alice", &["000000"])));
    let mails = relay.code_mails().len();
    let seen = login_at(b.socket(), "alice", &["email"]);
    assert!(locked(&seen), "asked for a mailed code on B: {seen:?}");
    assert_eq!(relay.code_mails().len(), mails, "nothing mailed");
    let took = held.elapsed();
    assert!(took < Duration::from_secs(5), "on the held copy: {took:?}");
    assert!(!b.log().contains("state=lost"), "{}", b.log());
    proxy.hold_replica.store(false, Ordering::SeqCst);
}
