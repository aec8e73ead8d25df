//! The daemon caches the passwd and group databases between logins; an edit
//! of `/etc/group` must reach the very next login. The test (as root)
//! re-runs this binary in a private mount namespace (`unshare -m`) where a
//! copy of `/etc/group` is bind-mounted over the real one, so the host's
//! file is never touched, and edits that copy between logins.

use std::process::Command;
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{assert_child_ok, last, open_tempdir, TestDaemon};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::{require_programs, require_root};

const GROUP_ENV: &str = "TWOFOLD_TEST_GROUP_FILE";

#[test]
fn group_edit_reaches_the_next_login_despite_the_cache() {
    require_root();
    require_programs(&["unshare"]);
    let dir = open_tempdir();
    let copy = dir.path().join("group");
    std::fs::copy("/etc/group", &copy).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/group && exec "$2" --ignored --exact child_in_namespace --nocapture --test-threads=1"#)
        .args(["sh", copy.to_str().unwrap()])
        .arg(std::env::current_exe().unwrap())
        .env(GROUP_ENV, &copy)
        .output()
        .unwrap();
    assert_child_ok(&out);
}

/// Runs only when re-executed by the test above, inside the namespace.
#[test]
#[ignore = "run by group_edit_reaches_the_next_login_despite_the_cache in a mount namespace"]
fn child_in_namespace() {
    let Ok(copy) = std::env::var(GROUP_ENV) else {
        panic!("a child entry point: run by the test above, which sets {GROUP_ENV}");
    };
    let original = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(std::fs::read_to_string("/etc/group").unwrap(), original);
    let d = TestDaemon::start_with(|c| {
        c.policy.unenrolled = twofold_config::Unenrolled::Deny;
        c.policy.exempt_groups = vec!["tfcache".into()];
    });
    let begin = || {
        d.client()
            .call(&Request::Begin {
                user: "mail".into(),
                service: "sshd".into(),
                rhost: None,
                tty: None,
                ruser: None,
                ssh_auth_info: None,
            })
            .unwrap()
    };
    let prompted = |r: &Response| matches!(r, Response::Prompt { .. });
    // Twice each way: the second answer of each state comes from the cache.
    for _ in 0..2 {
        let r = begin();
        assert!(prompted(&r), "not yet exempt: {r:?}");
    }
    // Edited in place (same inode, as `>>` does), not replaced.
    std::fs::write(&copy, format!("{original}tfcache:x:48151:mail\n")).unwrap();
    for _ in 0..2 {
        assert_eq!(begin(), Response::Ignore, "exempt right after the edit");
    }
    std::fs::write(&copy, &original).unwrap();
    for _ in 0..2 {
        let r = begin();
        assert!(prompted(&r), "no longer exempt right after the edit: {r:?}");
    }
    println!("child ok");
}

#[test]
fn an_enrolled_users_login_asks_nss_only_when_the_policy_names_groups() {
    for (names_groups, tune) in [
        (false, None),
        (true, Some(vec!["tf-no-such-group".to_owned()])),
    ] {
        let d = TestDaemon::start_with(|c| {
            if let Some(g) = tune {
                c.policy.exempt_groups = g;
            }
        });
        let (e, _) = d.enroll_totp("alice");
        for first in [true, false] {
            d.clock.advance(30);
            let before = d.stats.nss_lookups();
            let seen = d.login("alice", &[&oathtool_totp(&e, d.now(), 0)]);
            assert_eq!(*last(&seen), Response::Success, "{seen:?}");
            let asked = d.stats.nss_lookups() - before;
            if names_groups {
                // The account with its groups (names are not accounts),
                // once; then the cache answers.
                let want = if first { 1 } else { 0 };
                assert_eq!(asked, want, "first: {first}");
            } else {
                // Nothing: root runs the login and factors are stored under
                // the name as typed, so it is the account (an alias has no
                // factors of its own and is resolved); the peer is cached.
                assert_eq!(asked, 0, "first: {first}");
            }
        }
    }
}
