//! Authorization of non-root peers: the test (as root) re-runs this binary
//! as `nobody` against a daemon it started, so identity really comes from
//! SO_PEERCRED.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use twofold_proto::{Client, ErrorKind, Request, Response};
use twofold_tests::daemon::{assert_child_ok, failed_kind, TestDaemon};
use twofold_tests::require_root;

const SOCKET_ENV: &str = "TWOFOLD_TEST_PEER_SOCKET";
const MODE_ENV: &str = "TWOFOLD_TEST_PEER_MODE";

fn run_child_as_nobody(d: &TestDaemon, mode: &str) {
    require_root();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_as_nobody",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SOCKET_ENV, d.socket())
        .env(MODE_ENV, mode)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_child_ok(&out);
}

#[test]
fn plain_user_may_only_act_on_itself() {
    let d = TestDaemon::start();
    d.enroll_totp("alice");
    run_child_as_nobody(&d, "plain");
    assert!(d.log_text().contains("peer_uid=65534"), "{}", d.log_text());
}

#[test]
fn admin_group_member_may_administer_but_not_log_in_others() {
    let d = TestDaemon::start_with(|c| c.daemon.admin_group = Some("nogroup".into()));
    d.enroll_totp("alice");
    run_child_as_nobody(&d, "admin");
}

/// Runs only when re-executed by the tests above, as uid 65534.
#[test]
#[ignore = "run by the tests above as uid 65534"]
fn child_as_nobody() {
    let (Ok(socket), Ok(mode)) = (std::env::var(SOCKET_ENV), std::env::var(MODE_ENV)) else {
        panic!(
            "a child entry point: run by the tests above, which set {SOCKET_ENV} and {MODE_ENV}"
        );
    };
    let connect =
        || Client::connect(socket.as_ref(), Duration::from_secs(10), "peer-test").unwrap();
    let begin = |user: &str| {
        connect()
            .call(&Request::Begin {
                user: user.into(),
                service: "i3lock".into(),
                rhost: None,
                tty: None,
                ruser: None,
                ssh_auth_info: None,
            })
            .unwrap()
    };
    // Login conversations: only for its own name, admin or not.
    assert_eq!(
        failed_kind(&begin("alice")),
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(begin("nobody"), Response::Ignore);
    let mut c = connect();
    match c.call(&Request::Status { user: None }).unwrap() {
        Response::Status(s) => assert_eq!(s.user, "nobody"),
        other => panic!("{other:?}"),
    }
    let r = c
        .call(&Request::TotpEnrollStart {
            user: None,
            algorithm: None,
            digits: None,
        })
        .unwrap();
    assert!(
        matches!(r, Response::TotpPending(ref e) if e.user == "nobody"),
        "{r:?}"
    );
    let others = [
        Request::Status {
            user: Some("alice".into()),
        },
        Request::AdminList,
        Request::RemoveTotp {
            user: Some("alice".into()),
            code: None,
        },
        Request::AdminDisable {
            user: "alice".into(),
        },
    ];
    for req in others {
        let r = c.call(&req).unwrap();
        match mode.as_str() {
            "plain" => assert_eq!(
                failed_kind(&r),
                Some(ErrorKind::PermissionDenied),
                "{req:?}: {r:?}"
            ),
            _ => assert_eq!(failed_kind(&r), None, "{req:?}: {r:?}"),
        }
    }
    println!("child ok");
}
