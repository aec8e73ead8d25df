//! Remembered devices (issue 16), with the real OpenSSH server and client:
//! sshd with `AuthenticationMethods publickey,keyboard-interactive` hands
//! PAM the key it verified (`SSH_AUTH_INFO_0`); after a second factor on a
//! service `[remember]` names, that key logs in without a code until it
//! expires or is forgotten. Never another key, never keyboard-interactive
//! alone, never when remembering is off (the default). Expiry and locks are
//! driven over the daemon's socket on its injected clock, which sshd
//! cannot advance. Needs root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use twofold_proto::{Request, Response, Secret};
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::sshd::{Sshd, SSHD};
use twofold_tests::system::{expect, HostFiles, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

const PROMPT: &str = "Verification code:";
const SHELL_OK: &str = "echo REMOTE-$((40+2)); id -un";

struct Setup {
    d: TestDaemon,
    sys: System,
    user: TestUser,
    enrolled: Enrolled,
    host: HostFiles,
}

fn setup(remember: bool) -> Setup {
    require_root();
    require_programs(&["unshare", SSHD, "ssh", "ssh-keygen", "expect", "oathtool"]);
    let host = HostFiles::snapshot();
    let d = TestDaemon::start_with(|c| {
        c.login.max_tries = 1;
        if remember {
            c.remember.ssh_services = vec!["sshd".into()];
        }
    });
    let sys = System::new().unwrap();
    let user = sys.add_user("tfuser", "correct horse 7").unwrap();
    let enrolled = d.enroll("tfuser");
    Setup {
        d,
        sys,
        user,
        enrolled,
        host,
    }
}

fn twofold_line(d: &TestDaemon) -> String {
    let socket = format!("socket={}", d.socket().display());
    module_line("required", &[&socket, "timeout=5"])
}

/// Key then code, as README gives it.
fn key_then_code_sshd(s: &Setup) -> Sshd {
    let stack = [
        twofold_line(&s.d),
        "auth required pam_permit.so".into(),
        "account required pam_unix.so".into(),
        "session required pam_permit.so".into(),
        "password required pam_deny.so".into(),
    ];
    s.sys.pam_service("sshd", &stack).unwrap();
    Sshd::start(&s.sys, &s.user, "publickey,keyboard-interactive").unwrap()
}

/// Keyboard-interactive alone: the password, then the code.
fn password_then_code_sshd(s: &Setup) -> Sshd {
    let stack = [
        "auth requisite pam_unix.so nodelay".into(),
        twofold_line(&s.d),
        "account required pam_unix.so".into(),
        "session required pam_permit.so".into(),
        "password required pam_deny.so".into(),
    ];
    s.sys.pam_service("sshd", &stack).unwrap();
    Sshd::start(&s.sys, &s.user, "keyboard-interactive").unwrap()
}

fn assert_logged_in(run: &Run, sshd: &Sshd, d: &TestDaemon) {
    assert!(
        run.ok() && run.text.contains("REMOTE-42"),
        "ssh failed ({:?}):\n{}\n--- sshd ---\n{}\n--- twofoldd ---\n{}",
        run.code(),
        run.text,
        sshd.log(),
        d.log_text()
    );
}

/// Logs in with the code asked for (a fresh step each time: each TOTP step
/// opens one login).
fn login_with_code(s: &Setup, sshd: &Sshd, argv: &[String]) -> Run {
    s.d.clock.advance(30);
    let code = s.d.code(&s.enrolled.secret, 0);
    let run = expect(argv, &[(PROMPT, &code)], 10).unwrap();
    assert_logged_in(&run, sshd, &s.d);
    assert!(
        run.text.contains(PROMPT),
        "no code was asked:\n{}",
        run.text
    );
    run
}

/// Logs in without being asked anything.
fn login_without_code(s: &Setup, sshd: &Sshd, argv: &[String]) -> Run {
    let run = expect(argv, &[], 10).unwrap();
    assert_logged_in(&run, sshd, &s.d);
    assert!(
        !run.text.contains(PROMPT),
        "a code was asked:\n{}",
        run.text
    );
    run
}

fn rows(d: &TestDaemon, sql_where: &str) -> String {
    d.sqlite3(&format!(
        "SELECT event, user, service, method, detail FROM audit WHERE {sql_where} ORDER BY id"
    ))
}

/// `ssh-keygen -lf`'s `SHA256:…` of a public key file.
fn fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

fn devices_json(d: &TestDaemon) -> serde_json::Value {
    let out = d.twofold(&["devices", "--user", "tfuser", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The client key the harness authorized, and a second one made here.
fn client_keys(s: &Setup) -> (PathBuf, PathBuf) {
    let dir = s.sys.path().join("ssh");
    let first = dir.join("client_ed25519");
    let second = dir.join("other_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "other", "-f"])
        .arg(&second)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let auth = dir.join("authorized").join("tfuser");
    let mut keys = std::fs::read_to_string(&auth).unwrap();
    keys.push_str(&std::fs::read_to_string(second.with_extension("pub")).unwrap());
    std::fs::write(&auth, keys).unwrap();
    (first, second)
}

/// `ssh` with `key` instead of the harness's client key.
fn argv_with_key(sshd: &Sshd, key: &Path) -> Vec<String> {
    let mut argv = sshd.ssh_argv("tfuser", SHELL_OK);
    let i = argv.iter().position(|a| a == "-i").unwrap();
    argv[i + 1] = key.display().to_string();
    argv
}

/// The whole story with the real sshd: asked the first time, not the
/// second (audited as `remembered`); `twofold devices` shows the key by
/// the fingerprint `ssh-keygen` prints; after `twofold devices forget` the
/// same key is asked again; a different key is asked.
#[test]
fn a_key_sshd_verified_is_remembered_until_forgotten_and_no_other_key_is() {
    let s = setup(true);
    let sshd = key_then_code_sshd(&s);
    let (key, other) = client_keys(&s);
    let argv = argv_with_key(&sshd, &key);

    login_with_code(&s, &sshd, &argv);
    login_without_code(&s, &sshd, &argv);
    login_without_code(&s, &sshd, &argv);

    let fp = fingerprint(&key.with_extension("pub"));
    let remembered = rows(&s.d, "event = 'device_remembered'");
    assert_eq!(remembered.lines().count(), 1, "{remembered}");
    assert!(
        remembered.starts_with("device_remembered|tfuser|sshd|totp|device=1 kind=ssh_key")
            && remembered.contains(&format!("what=\"ssh-ed25519 {fp}\"")),
        "{remembered}"
    );
    let by_key = rows(&s.d, "event = 'login_success' AND method = 'remembered'");
    assert_eq!(by_key.lines().count(), 2, "{by_key}");
    for row in by_key.lines() {
        let want = format!(
            "login_success|tfuser|sshd|remembered|kind=ssh_key device=1 what=\"ssh-ed25519 {fp}\""
        );
        assert_eq!(row, want);
    }

    let listed = devices_json(&s.d);
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{listed}");
    assert_eq!(devices[0]["what"], format!("ssh-ed25519 {fp}"), "{listed}");
    assert_eq!(devices[0]["kind"], "ssh_key");
    assert_eq!(devices[0]["service"], "sshd");
    assert_eq!(
        devices[0]["expires_at"].as_u64().unwrap(),
        devices[0]["since"].as_u64().unwrap() + 30 * 86_400,
        "30 days by default"
    );
    assert!(devices[0]["last_used"].as_u64().is_some(), "{listed}");
    let text = s.d.twofold(&["devices", "--user", "tfuser"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains(&fp) && text.contains("sshd"), "{text}");

    // A different key, verified by sshd just the same, is asked.
    login_with_code(&s, &sshd, &argv_with_key(&sshd, &other));

    // Forgotten: the first key is asked again.
    let id = devices[0]["id"].as_i64().unwrap().to_string();
    let out = s.d.twofold(&["devices", "forget", "--user", "tfuser", &id]);
    assert!(out.status.success(), "{out:?}");
    let forgotten = rows(&s.d, "event = 'device_forgotten'");
    assert!(forgotten.contains(&fp), "{forgotten}");
    login_with_code(&s, &sshd, &argv);
    login_without_code(&s, &sshd, &argv);

    // `--all` forgets both keys.
    let out =
        s.d.twofold(&["devices", "forget", "--all", "--user", "tfuser"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(devices_json(&s.d)["devices"], serde_json::json!([]));
    login_with_code(&s, &sshd, &argv);
    login_with_code(&s, &sshd, &argv_with_key(&sshd, &other));
    s.host.assert_unchanged();
}

/// A password-only login (keyboard-interactive alone: no key was
/// verified) is never remembered: the code is asked every time.
#[test]
fn keyboard_interactive_alone_is_never_remembered() {
    let s = setup(true);
    let sshd = password_then_code_sshd(&s);
    for _ in 0..2 {
        s.d.clock.advance(30);
        let code = s.d.code(&s.enrolled.secret, 0);
        let run = sshd
            .ssh(
                "tfuser",
                SHELL_OK,
                &[("Password:", &s.user.password), (PROMPT, &code)],
            )
            .unwrap();
        assert_logged_in(&run, &sshd, &s.d);
    }
    assert_eq!(rows(&s.d, "event = 'device_remembered'"), "");
    assert_eq!(rows(&s.d, "method = 'remembered'"), "");
    assert_eq!(devices_json(&s.d)["devices"], serde_json::json!([]));
    s.host.assert_unchanged();
}

/// Remembering is off by default: the same key is asked every time.
#[test]
fn with_remembering_off_nothing_is_remembered() {
    let s = setup(false);
    let sshd = key_then_code_sshd(&s);
    let argv = sshd.ssh_argv("tfuser", SHELL_OK);
    login_with_code(&s, &sshd, &argv);
    login_with_code(&s, &sshd, &argv);
    assert_eq!(rows(&s.d, "event = 'device_remembered'"), "");
    assert_eq!(devices_json(&s.d)["devices"], serde_json::json!([]));
    s.host.assert_unchanged();
}

// --- over the daemon's socket, on its injected clock ---

/// A key line as sshd writes it.
const KEY_LINE: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEHocKj972+txk2ixzyyOXmD9uQ1vysGZ6hoKiDlejyT";
/// Another key.
const OTHER_KEY_LINE: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGks+6Qtu5lAZecXprhg6AwH5SUlQFxghD2LRDOnBC6g";

/// Runs a login as sshd would (root, service `sshd`, from 192.0.2.7)
/// with `auth_info`; answers a prompt with `code` when given.
fn sshd_login(d: &TestDaemon, auth_info: Option<&str>, code: Option<&str>) -> Vec<Response> {
    let mut c = d.client();
    let mut seen = Vec::new();
    let mut resp = c
        .call(&Request::Begin {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: Some("ssh".into()),
            ruser: None,
            ssh_auth_info: auth_info.map(str::to_owned),
        })
        .unwrap();
    let mut code = code;
    loop {
        seen.push(resp.clone());
        let next = match &resp {
            Response::Prompt { .. } => match code.take() {
                Some(a) => Request::Answer {
                    text: Secret::from(a),
                },
                None => return seen,
            },
            Response::Error { .. } | Response::Info { .. } => Request::Ack,
            _ => return seen,
        };
        resp = c.call(&next).unwrap();
    }
}

fn prompted(seen: &[Response]) -> bool {
    matches!(seen.first(), Some(Response::Prompt { .. }))
}

/// A remembered key past its expiry is asked again; within it, not.
#[test]
fn a_remembered_key_past_its_expiry_is_asked_again() {
    // The daemon trusts key lines only from root (sshd).
    require_root();
    let d = TestDaemon::start_with(|c| {
        c.remember.ssh_services = vec!["sshd".into()];
        c.remember.ssh_key = twofold_config::Seconds(3600);
    });
    let e = d.enroll("alice");
    let code = d.code(&e.secret, 0);
    let first = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert!(prompted(&first), "{first:?}");
    assert_eq!(first.last(), Some(&Response::Success), "{first:?}");

    d.clock.advance(3599);
    assert_eq!(sshd_login(&d, Some(KEY_LINE), None), [Response::Success]);
    // The same key among others sshd verified still counts.
    let both = format!("{OTHER_KEY_LINE}\n{KEY_LINE}");
    assert_eq!(sshd_login(&d, Some(&both), None), [Response::Success]);

    d.clock.advance(1);
    let expired = sshd_login(&d, Some(KEY_LINE), None);
    assert!(prompted(&expired), "expired at since + 1h: {expired:?}");
    // Answering remembers it afresh.
    let code = d.code(&e.secret, 0);
    let again = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(again.last(), Some(&Response::Success), "{again:?}");
    assert_eq!(sshd_login(&d, Some(KEY_LINE), None), [Response::Success]);

    // Nothing sent (keyboard-interactive alone) or a malformed line: asked.
    assert!(prompted(&sshd_login(&d, None, None)));
    assert!(prompted(&sshd_login(
        &d,
        Some("publickey ssh-ed25519 AAAA"),
        None
    )));
    let remembered = d.sqlite3(
        "SELECT count(*) FROM audit WHERE event = 'login_success' AND method = 'remembered'",
    );
    assert_eq!(remembered.trim(), "3");
}

/// A lock in force refuses a remembered key, as it refuses a code.
#[test]
fn a_lock_in_force_refuses_a_remembered_key() {
    require_root();
    let d = TestDaemon::start_with(|c| {
        c.login.max_tries = 1;
        c.rate_limit.source_failures = 2;
        c.remember.ssh_services = vec!["sshd".into()];
    });
    let e = d.enroll("alice");
    let code = d.code(&e.secret, 0);
    let first = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(first.last(), Some(&Response::Success), "{first:?}");
    // Two wrong codes with another key lock the source.
    for _ in 0..2 {
        let no = sshd_login(&d, Some(OTHER_KEY_LINE), Some("000000"));
        assert!(matches!(no.last(), Some(Response::Denied { .. })), "{no:?}");
    }
    let locked = sshd_login(&d, Some(KEY_LINE), None);
    assert!(
        matches!(&locked[..], [Response::Denied { reason, .. }] if reason.contains("Too many")),
        "{locked:?}"
    );
    let refused = d.sqlite3("SELECT count(*) FROM audit WHERE event = 'login_locked'");
    assert_eq!(refused.trim(), "1");
}

/// Key lines on a service `[remember]` does not name are not honoured
/// (nothing is remembered there), and a forbidden group is never
/// remembered.
#[test]
fn only_named_services_and_allowed_groups_remember() {
    require_root();
    let d = TestDaemon::start_with(|c| {
        c.remember.ssh_services = vec!["sshd-other".into()];
    });
    let e = d.enroll("alice");
    for _ in 0..2 {
        d.clock.advance(30);
        let code = d.code(&e.secret, 0);
        let seen = sshd_login(&d, Some(KEY_LINE), Some(&code));
        assert!(prompted(&seen), "{seen:?}");
        assert_eq!(seen.last(), Some(&Response::Success));
    }
    assert_eq!(d.sqlite3("SELECT count(*) FROM devices").trim(), "0");

    let d = TestDaemon::start_with(|c| {
        c.remember.ssh_services = vec!["sshd".into()];
        // root's primary group: `alice` is unknown here, so use root.
        c.remember.forbid_groups = vec!["root".into()];
    });
    let e = d.enroll("root");
    for _ in 0..2 {
        d.clock.advance(30);
        let code = d.code(&e.secret, 0);
        let mut c = d.client();
        let resp = c
            .call(&Request::Begin {
                user: "root".into(),
                service: "sshd".into(),
                rhost: Some("192.0.2.7".into()),
                tty: None,
                ruser: None,
                ssh_auth_info: Some(KEY_LINE.into()),
            })
            .unwrap();
        assert!(matches!(resp, Response::Prompt { .. }), "{resp:?}");
        let done = c
            .call(&Request::Answer {
                text: Secret::from(code.as_str()),
            })
            .unwrap();
        assert_eq!(done, Response::Success);
    }
    assert_eq!(d.sqlite3("SELECT count(*) FROM devices").trim(), "0");
}

/// After `twofold admin disable` the account's devices are forgotten: a
/// later enrollment does not bring them back.
#[test]
fn disabling_an_account_forgets_its_devices() {
    require_root();
    let d = TestDaemon::start_with(|c| c.remember.ssh_services = vec!["sshd".into()]);
    let e = d.enroll("alice");
    let code = d.code(&e.secret, 0);
    let first = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(first.last(), Some(&Response::Success), "{first:?}");
    assert_eq!(sshd_login(&d, Some(KEY_LINE), None), [Response::Success]);
    let r = d.call(&Request::AdminDisable {
        user: "alice".into(),
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let forgotten = d.sqlite3(
        "SELECT count(*) FROM audit WHERE event = 'device_forgotten' AND detail LIKE 'reason=disable %'",
    );
    assert_eq!(forgotten.trim(), "1");
    d.clock.advance(60);
    d.enroll("alice");
    assert!(prompted(&sshd_login(&d, Some(KEY_LINE), None)));
}

const SOCKET_ENV: &str = "TWOFOLD_TEST_REMEMBER_SOCKET";

/// Key lines from anyone but root are not honoured: a local user could
/// send any public key (public keys are public) with service `sshd`.
/// Users list and forget their own devices, and nobody else's.
#[test]
fn key_lines_from_an_unprivileged_peer_are_not_honoured() {
    require_root();
    let d = TestDaemon::start_with(|c| c.remember.ssh_services = vec!["sshd".into()]);
    let e = d.enroll("nobody");
    d.enroll("alice");
    let code = d.code(&e.secret, 0);
    let mut c = d.client();
    let resp = c
        .call(&Request::Begin {
            user: "nobody".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            ruser: None,
            ssh_auth_info: Some(KEY_LINE.into()),
        })
        .unwrap();
    assert!(matches!(resp, Response::Prompt { .. }), "{resp:?}");
    let done = c
        .call(&Request::Answer {
            text: Secret::from(code.as_str()),
        })
        .unwrap();
    assert_eq!(done, Response::Success);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_as_nobody",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SOCKET_ENV, d.socket())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    twofold_tests::daemon::assert_child_ok(&out);
    assert!(
        d.log_text()
            .contains("ignoring SSH key lines sent by uid 65534: only root (sshd) is trusted"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        d.sqlite3("SELECT count(*) FROM audit WHERE method = 'remembered'")
            .trim(),
        "0"
    );
    // Its own forget (by the child) was audited with its uid.
    let forgot = d.sqlite3("SELECT actor FROM audit WHERE event = 'device_forgotten'");
    assert_eq!(forgot.trim(), "nobody(65534)");
}

/// Runs only when re-executed by the test above, as uid 65534.
#[test]
#[ignore = "run by key_lines_from_an_unprivileged_peer_are_not_honoured as uid 65534"]
fn child_as_nobody() {
    let socket = std::env::var_os(SOCKET_ENV).expect("run by the test above");
    let connect = || {
        twofold_proto::Client::connect(
            Path::new(&socket),
            std::time::Duration::from_secs(10),
            "remember-test",
        )
        .unwrap()
    };
    // Its own account's remembered key, sent by itself: asked.
    let resp = connect()
        .call(&Request::Begin {
            user: "nobody".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            ruser: None,
            ssh_auth_info: Some(KEY_LINE.into()),
        })
        .unwrap();
    assert!(matches!(resp, Response::Prompt { .. }), "{resp:?}");
    // Its own devices: listed and forgotten; alice's: neither.
    match connect().call(&Request::Devices { user: None }).unwrap() {
        Response::DeviceList { user, devices } => {
            assert_eq!(user, "nobody");
            assert_eq!(devices.len(), 1, "{devices:?}");
        }
        other => panic!("{other:?}"),
    }
    for req in [
        Request::Devices {
            user: Some("alice".into()),
        },
        Request::DevicesForget {
            user: Some("alice".into()),
            id: None,
            all: true,
        },
    ] {
        let r = connect().call(&req).unwrap();
        assert_eq!(
            twofold_tests::daemon::failed_kind(&r),
            Some(twofold_proto::ErrorKind::PermissionDenied),
            "{r:?}"
        );
    }
    let r = connect()
        .call(&Request::DevicesForget {
            user: None,
            id: None,
            all: true,
        })
        .unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    println!("child ok");
}

/// A break-glass code lets one person in once; it never makes a key
/// trusted for weeks.
#[test]
fn a_break_glass_code_remembers_nothing() {
    require_root();
    let d = TestDaemon::start_with(|c| c.remember.ssh_services = vec!["sshd".into()]);
    d.enroll("alice");
    let code = match d.call(&Request::AdminTempCode {
        user: "alice".into(),
        valid: None,
        uses: None,
        revoke: false,
    }) {
        Response::TempCode { code, .. } => code.expose().to_owned(),
        other => panic!("{other:?}"),
    };
    let seen = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(seen.last(), Some(&Response::Success), "{seen:?}");
    assert_eq!(d.sqlite3("SELECT count(*) FROM devices").trim(), "0");
    assert!(prompted(&sshd_login(&d, Some(KEY_LINE), None)));
}

const REFUSE_AUDIT: &str = "PRAGMA busy_timeout = 10000; CREATE TRIGGER audit_refuses \
     BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk says no'); END;";
const ALLOW_AUDIT: &str = "PRAGMA busy_timeout = 10000; DROP TRIGGER audit_refuses;";

/// No device is remembered, used or forgotten without its audit row: with
/// every audit insert failing, the login that would remember is
/// `Unavailable` and stores nothing; the login a device would let through
/// is `Unavailable` and leaves `last_used`; a forget is refused and the
/// device stays.
#[test]
fn no_device_is_remembered_used_or_forgotten_without_its_audit_row() {
    require_root();
    let d = TestDaemon::start_with(|c| c.remember.ssh_services = vec!["sshd".into()]);
    let e = d.enroll("alice");
    let devices = || d.sqlite3("SELECT id, what, last_used, forgotten_at FROM devices");

    d.sqlite3(REFUSE_AUDIT);
    let code = d.code(&e.secret, 0);
    let seen = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(seen.last(), Some(&Response::Unavailable), "{seen:?}");
    assert_eq!(devices(), "");
    d.sqlite3(ALLOW_AUDIT);
    let seen = sshd_login(&d, Some(KEY_LINE), Some(&code));
    assert_eq!(
        seen.last(),
        Some(&Response::Success),
        "the step was not spent: {seen:?}"
    );
    let stored = devices();
    assert_eq!(stored.lines().count(), 1, "{stored}");

    d.clock.advance(60);
    d.sqlite3(REFUSE_AUDIT);
    assert_eq!(
        sshd_login(&d, Some(KEY_LINE), None),
        [Response::Unavailable]
    );
    assert_eq!(devices(), stored, "last_used moved without its row");
    let r = d.call(&Request::DevicesForget {
        user: Some("alice".into()),
        id: None,
        all: true,
    });
    assert!(matches!(r, Response::Failed { .. }), "{r:?}");
    assert_eq!(devices(), stored, "forgotten without its row");
    d.sqlite3(ALLOW_AUDIT);
    assert_eq!(sshd_login(&d, Some(KEY_LINE), None), [Response::Success]);
}
