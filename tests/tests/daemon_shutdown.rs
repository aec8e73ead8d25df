//! Graceful shutdown: in-flight conversations finish, waiting is bounded.

use std::io::Read;
use std::time::{Duration, Instant};
use twofold_proto::{Request, Response, Secret};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::otp::oathtool_totp;

#[test]
fn in_flight_login_finishes_after_shutdown_is_triggered() {
    let mut d = TestDaemon::start();
    let (e, _) = d.enroll_totp("alice");
    d.clock.advance(30);
    let mut c = d.client();
    let r = c
        .call(&Request::Begin {
            user: "alice".into(),
            service: "login".into(),
            rhost: None,
            tty: Some("tty1".into()),
            ruser: None,
            ssh_auth_info: None,
        })
        .unwrap();
    assert!(matches!(r, Response::Prompt { .. }), "{r:?}");
    d.begin_shutdown();
    std::thread::sleep(Duration::from_millis(300));
    let r = c
        .call(&Request::Answer {
            text: Secret::from(oathtool_totp(&e, d.now(), 0).as_str()),
        })
        .unwrap();
    assert_eq!(r, Response::Success);
    drop(c);
    let start = Instant::now();
    d.stop();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        d.log_text().contains("twofoldd: stopped"),
        "{}",
        d.log_text()
    );
}

#[test]
fn idle_connection_does_not_hold_shutdown_forever() {
    let mut d = TestDaemon::start();
    let mut idle = d.client();
    let start = Instant::now();
    d.stop();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    let mut buf = [0u8; 1];
    idle.stream_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        idle.stream_mut().read(&mut buf).unwrap(),
        0,
        "closed by the daemon"
    );
}
