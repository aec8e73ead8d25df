//! Issue 10: admin rights were resolved once per connection, so someone
//! removed from `admin_group` stayed an admin on a connection opened
//! before. The test (as root) re-runs this binary in a private mount
//! namespace (`unshare -m`) where a copy of `/etc/group` is bind-mounted
//! over the real one (the host's file is never touched); there it starts
//! a daemon with `admin_group = "tfadmins"`, a group whose one member is
//! `nobody`, and runs a copy of this binary as `nobody` that makes admin
//! requests on one connection while the test removes it from the group.

use std::process::Command;
use std::time::Duration;
use twofold_proto::{Client, ErrorKind, Request};
use twofold_tests::daemon::{assert_child_ok, failed_kind, open_tempdir, TestDaemon};
use twofold_tests::peers::{hear, AsNobody, NOBODY};
use twofold_tests::{require_programs, require_root};

const GROUP_ENV: &str = "TWOFOLD_TEST_REVOKE_GROUP_FILE";
const SOCKET_ENV: &str = "TWOFOLD_TEST_REVOKE_SOCKET";
const ADMINS: &str = "tfadmins:x:48152:nobody\n";

#[test]
fn regression_admin_removed_from_admin_group_loses_admin_on_an_open_connection() {
    // It changes uid and bind-mounts over /etc/group in a private namespace.
    require_root();
    require_programs(&["unshare"]);
    let dir = open_tempdir();
    let copy = dir.path().join("group");
    std::fs::copy("/etc/group", &copy).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/group && exec "$2" --ignored --exact in_namespace --nocapture --test-threads=1"#)
        .args(["sh", copy.to_str().unwrap()])
        .arg(std::env::current_exe().unwrap())
        .env(GROUP_ENV, &copy)
        .output()
        .unwrap();
    assert_child_ok(&out);
}

/// Runs only when re-executed by the test above, inside the namespace.
#[test]
#[ignore = "run by regression_admin_removed_from_admin_group_loses_admin_on_an_open_connection in a mount namespace"]
fn in_namespace() {
    let Ok(copy) = std::env::var(GROUP_ENV) else {
        panic!("a child entry point: run by the test above, which sets {GROUP_ENV}");
    };
    let original = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(std::fs::read_to_string("/etc/group").unwrap(), original);
    // Edited in place (same inode), so the bind mount shows each edit.
    std::fs::write(&copy, format!("{original}{ADMINS}")).unwrap();
    let d = TestDaemon::start_with(|c| c.daemon.admin_group = Some("tfadmins".into()));
    d.enroll_totp("alice");
    let mut nobody = AsNobody::start("admin_as_nobody", &[(SOCKET_ENV, d.socket().as_os_str())]);
    nobody.expect_line("admin ok");
    std::fs::write(&copy, &original).unwrap();
    nobody.say("removed");
    nobody.finish();
    println!("child ok");
}

/// Runs only when re-executed by `in_namespace`, as uid 65534.
#[test]
#[ignore = "run by in_namespace as uid 65534"]
fn admin_as_nobody() {
    let Ok(socket) = std::env::var(SOCKET_ENV) else {
        panic!("a child entry point: run by in_namespace, which sets {SOCKET_ENV}");
    };
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    let mut c = Client::connect(socket.as_ref(), Duration::from_secs(10), "revoke").unwrap();
    let admin_requests = || {
        [
            Request::AdminList,
            Request::Status {
                user: Some("alice".into()),
            },
        ]
    };
    for req in admin_requests() {
        let r = c.call(&req).unwrap();
        assert_eq!(
            failed_kind(&r),
            None,
            "a member of tfadmins: {req:?}: {r:?}"
        );
    }
    println!("admin ok");
    assert_eq!(hear(), "removed");
    // The same connection, after the group lost its member.
    for req in admin_requests() {
        let r = c.call(&req).unwrap();
        assert_eq!(
            failed_kind(&r),
            Some(ErrorKind::PermissionDenied),
            "no longer a member: {req:?}: {r:?}"
        );
    }
    println!("child ok");
}
