//! Login conversations through a real socket with a ManualClock.

use std::io::Write;
use twofold_daemon::INVALID_CODE;
use twofold_proto::{read_message, write_message, ErrorKind, Request, Response, Secret};
use twofold_tests::daemon::{last, TestDaemon};
use twofold_tests::otp::{oathtool_totp, wrong_code};

#[test]
fn enroll_start_confirm_then_login_succeeds() {
    let d = TestDaemon::start();
    let (e, codes) = d.enroll_totp("alice");
    assert_eq!(e.user, "alice");
    assert_eq!(e.digits, 6);
    assert_eq!(e.period, 30);
    assert!(e
        .uri
        .expose()
        .starts_with("otpauth://totp/twofold:alice?secret="));
    assert_eq!(codes.len(), 10);
    d.clock.advance(30);
    let code = oathtool_totp(&e, d.now(), 0);
    let seen = d.login("alice", &[&code]);
    assert!(
        matches!(seen[0], Response::Prompt { echo: false, .. }),
        "{seen:?}"
    );
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    assert!(
        d.log_text()
            .contains("login user=alice service=sudo rhost=- tty=pts/0 result=success method=totp ruser=root peer_uid=0"),
        "{}",
        d.log_text()
    );
}

#[test]
fn three_wrong_codes_are_denied() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(60);
    let good = oathtool_totp(&e, d.now(), 0);
    let wrong = wrong_code(&good);
    let seen = d.login("alice", &[wrong, wrong, wrong, &good]);
    let prompts = seen
        .iter()
        .filter(|r| matches!(r, Response::Prompt { .. }))
        .count();
    let errors = seen
        .iter()
        .filter(|r| matches!(r, Response::Error { text } if text == INVALID_CODE))
        .count();
    assert_eq!(prompts, 3, "{seen:?}");
    // The first two come as `Error`s to acknowledge; the last rides inside
    // `Denied` (protocol 2: no round trip to end the login).
    assert_eq!(errors, 2, "{seen:?}");
    assert_eq!(
        last(&seen),
        &Response::Denied {
            reason: "too many invalid codes".into(),
            message: Some(INVALID_CODE.into()),
        },
        "{seen:?}"
    );
}

/// A protocol-1 client (a module from before `Denied` carried a line) is
/// still served, and still sees the last "Invalid verification code." as
/// an `Error` to acknowledge before a bare `Denied`.
#[test]
fn a_protocol_1_client_gets_the_last_error_before_denied() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(60);
    let good = oathtool_totp(&e, d.now(), 0);
    let wrong = wrong_code(&good);
    let mut s = d.raw();
    let hello = Request::Hello {
        proto_min: 1,
        proto_max: 1,
        client: "old-module".into(),
    };
    write_message(&mut s, &hello).unwrap();
    assert_eq!(
        read_message::<Response>(&mut s).unwrap(),
        Response::Welcome { proto: 1 }
    );
    write_message(&mut s, &begin("alice")).unwrap();
    for answer in [wrong, wrong, wrong] {
        assert!(matches!(
            read_message(&mut s).unwrap(),
            Response::Prompt { .. }
        ));
        write_message(
            &mut s,
            &Request::Answer {
                text: answer.into(),
            },
        )
        .unwrap();
        let error: Response = read_message(&mut s).unwrap();
        assert_eq!(
            error,
            Response::Error {
                text: INVALID_CODE.into()
            }
        );
        write_message(&mut s, &Request::Ack).unwrap();
    }
    assert_eq!(
        read_message::<Response>(&mut s).unwrap(),
        Response::Denied {
            reason: "too many invalid codes".into(),
            message: None,
        }
    );
}

/// A client may send its first request right behind `Hello`; the daemon
/// answers `Welcome` and the first prompt together, in order.
#[test]
fn begin_sent_behind_hello_gets_welcome_and_prompt() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    let mut both = Vec::new();
    write_message(&mut both, &twofold_proto::hello("pipelined")).unwrap();
    write_message(&mut both, &begin("alice")).unwrap();
    let mut s = d.raw();
    s.write_all(&both).unwrap();
    assert_eq!(
        read_message::<Response>(&mut s).unwrap(),
        Response::Welcome {
            proto: twofold_proto::PROTO_VERSION
        }
    );
    assert!(matches!(
        read_message::<Response>(&mut s).unwrap(),
        Response::Prompt { echo: false, .. }
    ));
}

fn begin(user: &str) -> Request {
    Request::Begin {
        user: user.into(),
        service: "sudo".into(),
        rhost: None,
        tty: None,
        ruser: None,
        ssh_auth_info: None,
    }
}

#[test]
fn wrong_then_right_code_succeeds_within_max_tries() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(60);
    let good = oathtool_totp(&e, d.now(), 0);
    let seen = d.login("alice", &["12345", &good]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
}

#[test]
fn same_code_twice_second_is_refused() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(90);
    let code = oathtool_totp(&e, d.now(), 0);
    assert_eq!(last(&d.login("alice", &[&code])), &Response::Success);
    let again = d.login("alice", &[&code, &code, &code]);
    assert!(matches!(last(&again), Response::Denied { .. }), "{again:?}");
    assert!(
        d.log_text().contains("reason=\"code already used\""),
        "{}",
        d.log_text()
    );
}

#[test]
fn confirmation_code_cannot_open_a_login() {
    let d = TestDaemon::start();
    let e = d.enroll_start("alice");
    let code = oathtool_totp(&e, d.now(), 0);
    let mut c = d.client();
    let r = c
        .call(&Request::TotpEnrollConfirm {
            user: Some("alice".into()),
            code: Secret::from(code.as_str()),
        })
        .unwrap();
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    let seen = d.login("alice", &[&code]);
    assert!(matches!(seen[1], Response::Error { .. }), "{seen:?}");
}

#[test]
fn previous_and_next_step_accepted_two_steps_off_refused() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(30 * 10);
    let now = d.now();
    for off in [-2, 2] {
        let seen = d.login("alice", &[&oathtool_totp(&e, now, off)]);
        assert!(
            matches!(seen[1], Response::Error { .. }),
            "offset {off}: {seen:?}"
        );
    }
    for off in [-1, 0, 1] {
        let seen = d.login("alice", &[&oathtool_totp(&e, now, off)]);
        assert_eq!(last(&seen), &Response::Success, "offset {off}: {seen:?}");
    }
}

#[test]
fn unenrolled_user_is_ignored() {
    let d = TestDaemon::start();
    assert_eq!(d.login("nobody-here", &[]), vec![Response::Ignore]);
}

#[test]
fn pending_only_user_is_ignored() {
    let d = TestDaemon::start();
    let e = d.enroll_start("alice");
    let _ = e;
    assert_eq!(d.login("alice", &[]), vec![Response::Ignore]);
}

#[test]
fn backup_code_works_once_with_one_argon2_verification_per_attempt() {
    let d = TestDaemon::start();
    let (_, codes) = d.enroll_totp("alice");
    assert_eq!(d.stats.argon2_verifications(), 0);

    // A well-formed code that was never issued: no row, no argon2 at all.
    let seen = d.login("alice", &["zzzzz-zzzzz"]);
    assert!(matches!(seen[1], Response::Error { .. }), "{seen:?}");
    assert_eq!(d.stats.argon2_verifications(), 0);

    // A real one, typed in upper case without the dash: exactly one argon2 run.
    let typed = codes[3].expose().replace('-', "").to_uppercase();
    assert_eq!(last(&d.login("alice", &[&typed])), &Response::Success);
    assert_eq!(d.stats.argon2_verifications(), 1);
    assert!(
        d.log_text().contains("method=backup_code"),
        "{}",
        d.log_text()
    );

    // Used up: refused, and no argon2 run to find that out.
    let seen = d.login("alice", &[codes[3].expose()]);
    assert!(matches!(seen[1], Response::Error { .. }), "{seen:?}");
    assert_eq!(d.stats.argon2_verifications(), 1);

    let mut c = d.client();
    match c
        .call(&Request::Status {
            user: Some("alice".into()),
        })
        .unwrap()
    {
        Response::Status(s) => assert_eq!(s.backup_codes_left, 9),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ten_thousand_character_code_is_refused_and_next_client_served() {
    let d = TestDaemon::start();
    let (_, _) = d.enroll_totp("alice");
    let long = "1".repeat(10_000);
    let seen = d.login("alice", &[&long]);
    assert!(matches!(seen[1], Response::Error { .. }), "{seen:?}");
    assert_eq!(d.stats.argon2_verifications(), 0);
    d.assert_serves_new_client();
}

#[test]
fn user_names_with_nul_or_newline_are_bad_requests() {
    let d = TestDaemon::start();
    for bad in ["al\0ice", "al\nice"] {
        let seen = d.login(bad, &[]);
        assert!(
            matches!(
                &seen[..],
                [Response::Failed {
                    kind: ErrorKind::BadRequest,
                    ..
                }]
            ),
            "{bad:?}: {seen:?}"
        );
        d.assert_serves_new_client();
    }
    // The log shows the attempt escaped on one line.
    assert!(
        d.log_text().contains(r#"user="al\nice""#),
        "{}",
        d.log_text()
    );
    assert!(d.log_text().lines().all(|l| l.starts_with("twofoldd: ")));
}

#[test]
fn concurrent_logins_with_one_code_exactly_one_wins() {
    // Two daemons on one database: the race is decided by SQL, not by a lock
    // inside one process.
    let a = TestDaemon::start();
    let (e, _) = a.enroll_totp("alice");
    let b = a.beside();
    a.clock.advance(30);
    let code = oathtool_totp(&e, a.now(), 0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let results: Vec<Response> = std::thread::scope(|s| {
        let hs: Vec<_> = [&a, &b]
            .into_iter()
            .map(|d| {
                let barrier = barrier.clone();
                let code = code.clone();
                s.spawn(move || {
                    let mut c = d.client();
                    let r = c
                        .call(&Request::Begin {
                            user: "alice".into(),
                            service: "sshd".into(),
                            rhost: None,
                            tty: None,
                            ruser: None,
                            ssh_auth_info: None,
                        })
                        .unwrap();
                    assert!(matches!(r, Response::Prompt { .. }), "{r:?}");
                    barrier.wait();
                    c.call(&Request::Answer {
                        text: Secret::from(code.as_str()),
                    })
                    .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| **r == Response::Success).count();
    let losses = results
        .iter()
        .filter(|r| matches!(r, Response::Error { .. }))
        .count();
    assert_eq!((wins, losses), (1, 1), "{results:?}");
    for d in [&a, &b] {
        let seen = d.login("alice", &[&code]);
        assert!(matches!(seen[1], Response::Error { .. }), "{seen:?}");
    }
}

/// A wrong code's record is answered before its fsync, and the serving
/// daemon puts it on disk within a tick (100 ms; 2 s allowed here).
#[test]
fn a_wrong_codes_record_is_synced_to_disk_soon_after_the_answer() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(60);
    let good = oathtool_totp(&e, d.now(), 0);
    let wrong = wrong_code(&good);
    let before = d.stats.commits().deferred_syncs();
    let seen = d.login("alice", &[wrong, wrong, wrong]);
    assert!(matches!(last(&seen), Response::Denied { .. }), "{seen:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while d.stats.commits().deferred_syncs() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the failures were not synced within 2 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Begins a login for `user` on a fresh client and returns it at the prompt.
fn prompted(d: &TestDaemon, user: &str) -> twofold_proto::Client {
    let mut c = d.client();
    let r = c.call(&begin(user)).unwrap();
    assert!(matches!(r, Response::Prompt { .. }), "{r:?}");
    c
}

/// A lock made by other logins while this person was typing refuses this
/// login at its answer, whatever the answer: a valid code is not spent
/// (it still opens the door once the lock is lifted) and a wrong one adds
/// no failure.
#[test]
fn a_lock_made_while_the_person_types_refuses_the_answer() {
    let d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(60);
    let good = oathtool_totp(&e, d.now(), 0);
    let wrong = wrong_code(&good);
    let mut right_one = prompted(&d, "alice");
    let mut wrong_one = prompted(&d, "alice");
    // Five failures from the same (empty) source: the source is locked.
    d.login("alice", &[wrong, wrong, wrong]);
    let seen = d.login("alice", &[wrong, wrong]);
    assert!(
        matches!(last(&seen), Response::Denied { message: Some(m), .. } if m.contains("Too many failed attempts")),
        "{seen:?}"
    );
    for (c, answer) in [(&mut right_one, good.as_str()), (&mut wrong_one, wrong)] {
        let r = c
            .call(&Request::Answer {
                text: Secret::from(answer),
            })
            .unwrap();
        match r {
            Response::Denied {
                message: Some(m), ..
            } => assert!(m.starts_with("Too many failed attempts"), "{m}"),
            other => panic!("{answer}: {other:?}"),
        }
    }
    // The wrong answer added no failure (five recorded, all before the lock).
    let failures = d
        .log_text()
        .lines()
        .filter(|l| l.contains("user=alice") && l.contains("result=invalid_code"))
        .count();
    assert_eq!(failures, 5, "{}", d.log_text());
    // An admin unlock lifts the lock; the valid code, never spent, now
    // opens the door.
    let mut admin = d.client();
    let r = admin
        .call(&Request::AdminUnlock {
            user: "alice".into(),
        })
        .unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(last(&d.login("alice", &[&good])), &Response::Success);
}
