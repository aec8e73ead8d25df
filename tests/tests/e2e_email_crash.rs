//! A notice survives `kill -9` of the real twofoldd: the event (a backup
//! code spent) and its notice commit in one transaction; the relay is down
//! when it happens, the daemon is killed, the relay comes back, the daemon
//! restarts — and exactly one notice arrives.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use twofold_config::SmtpTls;
use twofold_proto::{Client, Method, Request, Response, Secret};
use twofold_tests::daemon::{config_in, DaemonProcess};
use twofold_tests::mailtest::{holds, point_at};
use twofold_tests::otp::oathtool;
use twofold_tests::smtp::{free_port, Mode, SmtpServer};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A login of alice answered with `answer`; the responses.
fn login(socket: &std::path::Path, answer: &str) -> Vec<Response> {
    let mut c = Client::connect(socket, Duration::from_secs(10), "e2e").expect("connect");
    let mut seen = vec![c
        .call(&Request::Begin {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            ruser: None,
            ssh_auth_info: None,
        })
        .expect("begin")];
    let mut answered = false;
    loop {
        let next = match seen.last().expect("a response") {
            Response::Prompt { .. } if !answered => {
                answered = true;
                Request::Answer {
                    text: Secret::from(answer),
                }
            }
            Response::Info { .. } | Response::Error { .. } => Request::Ack,
            _ => return seen,
        };
        seen.push(c.call(&next).expect("answer"));
    }
}

#[test]
fn a_notice_written_before_a_kill_9_is_sent_once_after_the_restart() {
    let dir = twofold_tests::daemon::open_tempdir();
    let port = free_port();
    let relay = SmtpServer::start_on(dir.path(), port, Mode::Plain, None, None);
    let mut config = config_in(dir.path());
    point_at(&mut config, &relay, SmtpTls::Plain);
    let d = DaemonProcess::start(dir.path(), &config);

    // alice: TOTP (for backup codes), then her address.
    let secret = match d.call(&Request::TotpEnrollStart {
        user: Some("alice".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p.secret.expose().to_owned(),
        other => panic!("{other:?}"),
    };
    let backup = match d.call(&Request::TotpEnrollConfirm {
        user: Some("alice".into()),
        code: Secret::from(oathtool(&secret, now()).as_str()),
    }) {
        Response::BackupCodes { codes } => codes,
        other => panic!("{other:?}"),
    };
    let r = d.call(&Request::EnrollStart {
        user: Some("alice".into()),
        method: Method::EMAIL,
        algorithm: None,
        digits: None,
        address: Some("alice@example.org".into()),
        code: None,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let code = relay.nth_code(1).expect("code");
    let r = d.call(&Request::EnrollConfirm {
        user: Some("alice".into()),
        method: Method::EMAIL,
        code: Secret::from(code.as_str()),
    });
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    // The "added" notice goes out while the relay is up.
    let added = relay.wait_for(|m| m.body().contains("was added"), Duration::from_secs(10));
    assert!(added.is_some(), "the enrollment notice");
    let before = relay.mails().len();
    drop(relay);

    // The event, with the relay down: its notice waits in the outbox.
    let seen = login(&config.daemon.socket, backup[0].expose());
    assert!(matches!(seen.last(), Some(Response::Success)), "{seen:?}");
    std::thread::sleep(Duration::from_millis(800));
    let log_before = d.log();
    d.kill9();

    let relay = SmtpServer::start_on(dir.path(), port, Mode::Plain, None, None);
    let d = DaemonProcess::start(dir.path(), &config);
    let notice = relay.wait_for(
        |m| m.body().contains("A backup code was used"),
        Duration::from_secs(30),
    );
    let notice = notice.expect("the notice arrives after the restart");
    assert!(
        notice.body().contains("9 backup codes are left"),
        "{}",
        notice.body()
    );
    assert!(
        notice.body().contains("(sshd from 192.0.2.7)"),
        "{}",
        notice.body()
    );
    // Exactly one: wait past the retry backoff, then count.
    std::thread::sleep(Duration::from_secs(7));
    let all = relay.mails();
    let notices = all
        .iter()
        .filter(|m| m.body().contains("A backup code was used"))
        .count();
    assert_eq!(notices, 1, "one notice, sent once");
    // Both relays on this port record into one file.
    assert_eq!(all.len(), before + 1, "nothing else was (re)sent");
    // No code in the daemon's logs.
    let logs = format!("{log_before}\n{}", d.log());
    assert!(
        !holds(&logs, &code),
        "the enrollment code is in the daemon's log"
    );
    for b in &backup {
        assert!(
            !logs.contains(b.expose()),
            "a backup code is in the daemon's log"
        );
    }
    d.terminate();
}
