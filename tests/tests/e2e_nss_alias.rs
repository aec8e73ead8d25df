//! Regression tests for an NSS alias bypassing MFA (issue 10, item 3).
//!
//! Factors, locks and grace were keyed by the literal PAM_USER, so another
//! name of an enrolled account — a second passwd name for its uid, a case
//! variant a case-insensitive directory accepts, `DOMAIN\user`,
//! `user@domain` — counted as unenrolled, and the default
//! `unenrolled = "allow"` let it in with PAM_IGNORE: no second factor.
//!
//! The aliases exist only in a temp copy of /etc/passwd, bind-mounted in a
//! private mount namespace ([`System`]); the host's files are never
//! touched. Each root test re-runs this binary inside that namespace, where
//! the child serves the daemon in-process (so it reads the same passwd) and
//! logs in through the real libpam with pam_twofold.so and through the
//! stock `pamtester`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use twofold_config::groups::canonical_account;
use twofold_config::Unenrolled;
use twofold_daemon::INVALID_CODE;
use twofold_proto::{Client, ErrorKind, Request, Response, Secret};
use twofold_tests::daemon::{assert_child_ok, failed_kind, last, TestDaemon};
use twofold_tests::otp::{oathtool_totp, wrong_code};
use twofold_tests::pam::*;
use twofold_tests::system::{HostFiles, System};
use twofold_tests::{module_line, require_programs, require_root, write_service, PamConfig};

/// Names the child test to run inside the namespace (set only there).
const CHILD_ENV: &str = "TWOFOLD_TEST_ALIAS_CHILD";
/// The directory mounted over /etc/pam.d inside the namespace.
const PAM_D_ENV: &str = "TWOFOLD_TEST_ALIAS_PAM_D";
/// For the child run as uid 65534: the daemon's socket and nobody's code.
const SOCKET_ENV: &str = "TWOFOLD_TEST_ALIAS_SOCKET";
const CODE_ENV: &str = "TWOFOLD_TEST_ALIAS_CODE";

/// The other names of alice's uid in the namespace's passwd; `alice` is
/// the uid's first entry, so it is the account's name.
const ALIASES: [&str; 4] = ["alice2", "ALICE", "EXAMPLE\\alice", "alice@example.com"];
/// nobody's uid, and a second name for it.
const NOBODY: u32 = 65534;
const NOBODY_ALIAS: &str = "nobody2";

/// What libpam returns when pam_twofold is the only module and says "no
/// say" (PAM_IGNORE): the bypass this file pins down.
const IGNORED: PamCode = PAM_PERM_DENIED;
const LOCKED_15: &str = "Too many failed attempts; try again in 15 minutes.";

/// Makes a [`System`] whose passwd gives alice's uid the [`ALIASES`] and
/// uid 65534 the name [`NOBODY_ALIAS`], and runs the test `child` of this
/// binary inside its namespace. Fails (does not skip) when not root: it
/// mounts a temp /etc/passwd in a private mount namespace (`unshare -m`).
fn run_in_namespace(child: &str) {
    require_root();
    require_programs(&["unshare", "pamtester", "sqlite3", "oathtool", "openssl"]);
    let host = HostFiles::snapshot();
    let sys = System::new().expect("temp system");
    let alice = sys
        .add_user("alice", "alice password 1")
        .expect("add alice");
    let passwd = sys.etc().join("passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    for a in ALIASES {
        text.push_str(&format!(
            "{a}:x:{}:{}:alias of alice:{}:/bin/sh\n",
            alice.uid,
            alice.gid,
            alice.home.display()
        ));
    }
    text.push_str(&format!(
        "{NOBODY_ALIAS}:x:{NOBODY}:{NOBODY}:alias of nobody:/nonexistent:/usr/sbin/nologin\n"
    ));
    std::fs::write(&passwd, text).unwrap();
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().expect("test binary path is UTF-8");
    let out = sys
        .command(&[
            exe,
            "--ignored",
            "--exact",
            child,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, child)
        .env(PAM_D_ENV, sys.pam_d())
        .output()
        .expect("run unshare");
    assert_child_ok(&out);
    host.assert_unchanged();
}

/// In the child re-run for `name`: the pam.d directory. Panics when the
/// child entry point runs without its parent.
fn child(name: &str) -> PathBuf {
    let (Ok(which), Some(pam_d)) = (std::env::var(CHILD_ENV), std::env::var_os(PAM_D_ENV)) else {
        panic!("a child entry point: run by the test that sets {CHILD_ENV} and {PAM_D_ENV}");
    };
    assert_eq!(which, name, "re-run for another child");
    let pam_d = PathBuf::from(pam_d);
    // The namespace's passwd is in force: every alias is alice's account.
    for a in ALIASES {
        let account = canonical_account(a).unwrap().expect(a);
        assert_eq!(account.name, "alice", "{a}");
    }
    pam_d
}

fn login(pam: &PamConfig, user: &str, codes: &[&str]) -> (PamCode, Transcript) {
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(answers(codes))
        .unwrap()
}

/// `pamtester -v tf USER authenticate` (inside the namespace already, so
/// it reads the test's /etc/pam.d and passwd), typing `code`.
fn pamtester(user: &str, code: &str) -> (Output, String) {
    let mut child = Command::new("pamtester")
        .args(["-v", "tf", user, "authenticate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pamtester");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn nss_alias_of_an_enrolled_user_needs_the_users_code_not_pam_ignore() {
    run_in_namespace("child_alias_logins");
}

#[test]
fn nss_alias_logins_cost_one_cached_lookup() {
    run_in_namespace("child_alias_lookups");
}

#[test]
fn nss_alias_of_its_own_uid_is_a_non_root_peers_own_login_and_no_other() {
    run_in_namespace("child_alias_peer");
}

/// Runs only when re-executed by the test above, inside the namespace.
#[test]
#[ignore = "run by nss_alias_of_an_enrolled_user_needs_the_users_code_not_pam_ignore in a mount namespace"]
fn child_alias_logins() {
    let pam_d = child("child_alias_logins");
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    assert_eq!(
        d.config().policy.unenrolled,
        Unenrolled::Allow,
        "the default under which an alias was let through"
    );
    let alice = d.enroll("alice");
    let pam = d.pam();

    // Every alias is prompted and needs alice's code: refused without it,
    // let in with it — never PAM_IGNORE.
    for a in ALIASES {
        let right = d.code(&alice.secret, 0);
        let (code, t) = login(&pam, a, &[wrong_code(&right)]);
        assert_eq!(code, PAM_AUTH_ERR, "{a} without alice's code: {t:?}");
        assert_eq!(t.prompts(), vec!["Verification code: "], "{a}: {t:?}");
        let (code, t) = login(&pam, a, &[&right]);
        assert_eq!(code, PAM_SUCCESS, "{a} with alice's code: {t:?}");
        d.clock.advance(30);
    }
    // A name that is not an alias (no passwd entry) is still not alice.
    let (code, t) = login(&pam, "alice3", &[]);
    assert_eq!(code, IGNORED, "alice3 has no account: {t:?}");

    // Audited as alice, with the name typed beside it.
    let rows =
        d.sqlite3("SELECT user, detail FROM audit WHERE event = 'login_success' ORDER BY id");
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), ALIASES.len(), "{rows}");
    for line in &lines {
        assert!(line.starts_with("alice|pam_user="), "{rows}");
    }
    assert!(lines[0].starts_with("alice|pam_user=alice2"), "{rows}");
    assert!(
        lines[3].starts_with("alice|pam_user=alice@example.com"),
        "{rows}"
    );
    let failed = d.sqlite3("SELECT DISTINCT user FROM audit WHERE event = 'login_failure'");
    assert_eq!(failed.trim(), "alice", "failures count against alice");
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("user=alice pam_user=alice2 service=tf")
                && l.contains("result=success")),
        "{log}"
    );

    // The stock pamtester, as an application would run it.
    let socket = format!("socket={}", d.socket().display());
    write_service(
        &pam_d,
        "tf",
        &[&module_line("required", &[&socket, "timeout=2"])],
    )
    .unwrap();
    let right = d.code(&alice.secret, 0);
    let (out, text) = pamtester("alice2", wrong_code(&right));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Authentication failure"), "{text}");
    let (out, text) = pamtester("alice2", &right);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Verification code:"), "{text}");
    assert!(text.contains("successfully authenticated"), "{text}");
    d.clock.advance(30);

    // Factors enrolled under an alias (an admin naming it) are that name's:
    // it logs in with them, never answered from alice's state (nor let
    // through for being "unenrolled").
    let own = d.enroll("alice@example.com");
    let right = d.code(&alice.secret, 0);
    let (code, t) = login(&pam, "alice@example.com", &[&right]);
    assert_eq!(code, PAM_AUTH_ERR, "alice's code is not this name's: {t:?}");
    assert_eq!(t.prompts().len(), 1, "{t:?}");
    let (code, t) = login(&pam, "alice@example.com", &[&d.code(&own.secret, 0)]);
    assert_eq!(code, PAM_SUCCESS, "{t:?}");

    // One set of counters: four wrong codes under other names and a fifth
    // through alice2 lock alice out; her own right code is not looked at.
    let w = wrong_code(&right);
    for user in ["alice", "ALICE", "EXAMPLE\\alice", "alice"] {
        let (code, t) = login(&pam, user, &[w]);
        assert_eq!(t.errors(), vec![INVALID_CODE], "{user}: {t:?}");
        assert_eq!(code, PAM_AUTH_ERR);
    }
    let (code, t) = login(&pam, "alice2", &[w]);
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![INVALID_CODE, LOCKED_15], "{t:?}");
    for user in ["alice", "ALICE"] {
        let (code, t) = login(&pam, user, &[&right]);
        assert_eq!(code, PAM_AUTH_ERR, "{user} is locked too: {t:?}");
        assert!(t.prompts().is_empty(), "no prompt while locked: {t:?}");
        assert_eq!(t.errors(), vec![LOCKED_15], "{user}: {t:?}");
    }
    let lockouts = d.sqlite3("SELECT user, detail FROM audit WHERE event = 'lockout'");
    assert!(lockouts.starts_with("alice|pam_user=alice2"), "{lockouts}");
    println!("child ok");
}

/// Runs only when re-executed by the test above, inside the namespace.
#[test]
#[ignore = "run by nss_alias_logins_cost_one_cached_lookup in a mount namespace"]
fn child_alias_lookups() {
    child("child_alias_lookups");
    for names_groups in [false, true] {
        let d = TestDaemon::start_with(|c| {
            if names_groups {
                c.policy.exempt_groups = vec!["tf-no-such-group".to_owned()];
            }
        });
        let (e, _) = d.enroll_totp("alice");
        // NSS answers one login of `user` needed (the peer, root, is
        // cached since the enrollment).
        let asked = |user: &str| {
            d.clock.advance(30);
            let before = d.stats.nss_lookups();
            let seen = d.login(user, &[&oathtool_totp(&e, d.now(), 0)]);
            assert_eq!(*last(&seen), Response::Success, "{user}: {seen:?}");
            d.stats.nss_lookups() - before
        };
        let why = format!("policy names groups: {names_groups}");
        assert_eq!(asked("alice2"), 1, "a name not seen before: {why}");
        assert_eq!(asked("alice2"), 0, "then the cache answers: {why}");
        assert!(asked("alice") <= 1, "{why}");
        assert_eq!(asked("alice"), 0, "{why}");
        assert_eq!(asked("ALICE"), 1, "{why}");
        assert_eq!(asked("ALICE"), 0, "{why}");
        assert_eq!(asked("alice2"), 0, "{why}");
    }
    println!("child ok");
}

/// Runs only when re-executed by the test above, inside the namespace.
#[test]
#[ignore = "run by nss_alias_of_its_own_uid_is_a_non_root_peers_own_login_and_no_other in a mount namespace"]
fn child_alias_peer() {
    child("child_alias_peer");
    let d = TestDaemon::start_with(|c| c.login.max_tries = 1);
    let nobody = d.enroll("nobody");
    d.enroll("alice");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_as_nobody",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SOCKET_ENV, d.socket())
        .env(CODE_ENV, d.code(&nobody.secret, 0))
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_child_ok(&out);
    let log = d.log_text();
    assert!(
        log.lines().any(
            |l| l.contains("user=nobody pam_user=nobody2 service=i3lock")
                && l.contains("result=success")
                && l.contains("peer_uid=65534")
        ),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("user=alice2 ") && l.contains("result=permission_denied")),
        "{log}"
    );
    let rows = d.sqlite3("SELECT user, detail FROM audit WHERE event = 'login_success'");
    assert!(rows.starts_with("nobody|pam_user=nobody2"), "{rows}");
    println!("child ok");
}

/// Runs only when re-executed by `child_alias_peer`, as uid 65534 inside
/// the namespace.
#[test]
#[ignore = "run by child_alias_peer as uid 65534"]
fn child_as_nobody() {
    let (Ok(socket), Ok(code)) = (std::env::var(SOCKET_ENV), std::env::var(CODE_ENV)) else {
        panic!("a child entry point: run by child_alias_peer, which sets {SOCKET_ENV}");
    };
    let begin = |user: &str| {
        let mut c = Client::connect(Path::new(&socket), Duration::from_secs(10), "alias-test")
            .expect("connect");
        let r = c
            .call(&Request::Begin {
                user: user.into(),
                service: "i3lock".into(),
                rhost: None,
                tty: None,
                ruser: None,
                ssh_auth_info: None,
            })
            .expect("begin");
        (c, r)
    };
    // Another uid's names, alice's own among them, and a name with no
    // account: not this peer's to log in.
    for other in ["alice", "alice2", "ALICE", "root", "tf-no-such-user"] {
        let (_, r) = begin(other);
        assert_eq!(
            failed_kind(&r),
            Some(ErrorKind::PermissionDenied),
            "{other}: {r:?}"
        );
    }
    // A second name of its own uid is its own account: prompted for
    // nobody's code, and let in with it.
    let (mut c, r) = begin(NOBODY_ALIAS);
    assert!(matches!(r, Response::Prompt { .. }), "{r:?}");
    let r = c
        .call(&Request::Answer {
            text: Secret::from(code.as_str()),
        })
        .expect("answer");
    assert_eq!(r, Response::Success);
    let (_, r) = begin("nobody");
    assert!(matches!(r, Response::Prompt { .. }), "{r:?}");
    println!("child ok");
}

#[test]
fn an_unknown_name_keeps_the_unknown_user_path() {
    // The logins come from this process: only a root peer may run them for
    // a name that is not its own.
    require_root();
    for mode in [Unenrolled::Deny, Unenrolled::Allow] {
        let d = TestDaemon::start_with(|c| c.policy.unenrolled = mode);
        d.enroll("alice");
        let pam = d.pam();
        let user = "tf-no-such-user";
        assert_eq!(canonical_account(user).unwrap(), None);
        let (code, t) = login(&pam, user, &["123456", "123456", "123456"]);
        match mode {
            Unenrolled::Deny => {
                assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
                assert_eq!(t.prompts().len(), 3, "prompted like anyone: {t:?}");
                let log = d.log_text();
                assert!(log.contains("reason=\"unknown user\""), "{log}");
            }
            _ => {
                assert_eq!(code, IGNORED, "{t:?}");
                assert!(t.prompts().is_empty(), "{t:?}");
            }
        }
        let log = d.log_text();
        assert!(log.contains(&format!("user={user} service=tf")), "{log}");
        assert!(
            !log.contains("pam_user="),
            "the name is kept as typed: {log}"
        );
    }
}
