//! Policy end to end: the real libpam loads pam_twofold.so, which talks to a
//! real twofoldd (SQLite, manual clock); group membership comes from the
//! system's group database (Debian's standard accounts: `mail` is in group
//! `mail`, `news` in `news`, `games` in `games`); codes come from `oathtool`.
//!
//! With a single `auth required pam_twofold.so` line, libpam turns the
//! module's PAM_IGNORE (twofold has no say) into PAM_PERM_DENIED, so each
//! outcome has its own code: success 0, ignore 6, refused 7.

use std::time::{Duration, Instant};
use twofold_daemon::{deadline_passed_message, INVALID_CODE};
use twofold_proto::{ErrorKind, Request, Response, Secret};
use twofold_tests::daemon::{TestDaemon, T0};
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;
use twofold_tests::PamConfig;

/// What libpam returns when pam_twofold is the only module and says "no say".
const IGNORED: PamCode = PAM_PERM_DENIED;

fn pam_for(d: &TestDaemon, services: &[&str]) -> PamConfig {
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", d.socket().display());
    for s in services {
        pam.twofold(s, &[&socket, "timeout=3"]).unwrap();
    }
    pam
}

fn login(
    pam: &PamConfig,
    service: &str,
    user: &str,
    rhost: &str,
    conv: Conversation,
) -> (PamCode, Transcript) {
    PamLogin::new(pam.dir(), service, user)
        .unwrap()
        .rhost(rhost)
        .tty("pts/1")
        .authenticate(conv)
        .unwrap()
}

#[test]
fn unenrolled_allow_is_the_default_and_asks_nothing() {
    let d = TestDaemon::start();
    let pam = pam_for(&d, &["tf"]);
    let (code, t) = login(&pam, "tf", "mail", "", Conversation::new());
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.messages.is_empty(), "{t:?}");
}

#[test]
fn unenrolled_deny_fails_exactly_like_a_wrong_code_even_for_unknown_users() {
    let d = TestDaemon::start_with(|c| {
        c.policy.unenrolled = twofold_config::Unenrolled::Deny;
        // Enough room that the three logins below lock nobody.
        c.rate_limit.source_failures = 50;
        c.rate_limit.user_failures = 50;
    });
    let enrolled = d.enroll("news");
    let pam = pam_for(&d, &["tf"]);
    let w = wrong_code(&d.code(&enrolled.secret, 0));
    let users = ["news", "mail", "no-such-user-twofold"];
    let mut seen = Vec::new();
    // Three rounds, interleaved; the fastest of each user's rounds is compared,
    // so a busy machine (the whole suite runs in parallel) adds no noise.
    let mut best = [Duration::MAX; 3];
    for round in 0..3 {
        for (i, user) in users.iter().enumerate() {
            let start = Instant::now();
            let (code, t) = login(&pam, "tf", user, "192.0.2.1", answers(&[w, w, w]));
            best[i] = best[i].min(start.elapsed());
            if round == 0 {
                seen.push((*user, code, t));
            }
        }
    }
    let (_, code0, t0) = &seen[0];
    assert_eq!(*code0, PAM_AUTH_ERR);
    assert_eq!(t0.prompts(), vec!["Verification code: "; 3]);
    assert_eq!(t0.errors(), vec![INVALID_CODE; 3]);
    for (user, code, t) in &seen[1..] {
        assert_eq!(code, code0, "{user}");
        assert_eq!(t, t0, "{user} sees exactly what a wrong code shows");
    }
    // Timing: each within an order of magnitude of the others.
    eprintln!("refusal times, best of 3 (enrolled, unenrolled, unknown): {best:?}");
    let (min, max) = (best.iter().min().unwrap(), best.iter().max().unwrap());
    assert!(*max < *min * 10, "timings differ too much: {best:?}");
    // The audit trail (admins only) still tells them apart.
    let rows =
        d.sqlite3("SELECT user, detail FROM audit WHERE event = 'login_failure' ORDER BY id");
    assert!(rows.contains("mail|reason=not_enrolled"), "{rows}");
    assert!(
        rows.contains("no-such-user-twofold|reason=unknown_user"),
        "{rows}"
    );
}

#[test]
fn enroll_within_grace_completes_inside_pam_to_a_working_login() {
    let d = TestDaemon::start_with(|c| c.policy.unenrolled = twofold_config::Unenrolled::Enroll);
    let pam = pam_for(&d, &["tf"]);
    let (code, t) = login(&pam, "tf", "mail", "", enrolling(&[], T0));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    let infos = t.infos();
    assert!(infos[0].contains("7 days left"), "{infos:?}");
    assert!(infos.iter().any(|l| l.contains('█')), "a QR code is drawn");
    assert!(
        infos
            .iter()
            .any(|l| l.starts_with("Or add this URI: otpauth://totp/")),
        "{infos:?}"
    );
    let backup = infos
        .iter()
        .find(|l| l.starts_with("Enrolled. Your backup codes"))
        .expect("backup codes shown");
    let codes: Vec<&str> = backup.lines().skip(1).map(str::trim).collect();
    assert_eq!(codes.len(), 10, "{backup}");
    assert_eq!(t.prompts(), vec![twofold_daemon::CONFIRM_PROMPT]);
    // From now on mail is enrolled: a login asks for a code, and a backup code works.
    let (code, t) = login(&pam, "tf", "mail", "", answers(&[codes[0]]));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts(), vec!["Verification code: "]);
    let (code, _) = login(&pam, "tf", "mail", "", answers(&["", "", ""]));
    assert_eq!(code, PAM_AUTH_ERR);
    let rows = d.sqlite3("SELECT event, method, detail FROM audit WHERE user = 'mail' ORDER BY id");
    assert!(rows.contains("grace_started||deadline="), "{rows}");
    assert!(rows.contains("enroll|totp|via=login"), "{rows}");
}

#[test]
fn enrollment_can_be_skipped_within_grace_and_is_refused_after_it() {
    let d = TestDaemon::start_with(|c| {
        c.policy.unenrolled = twofold_config::Unenrolled::Enroll;
        c.policy.grace = twofold_config::Seconds(2 * 86_400);
    });
    let pam = pam_for(&d, &["tf"]);
    // Skipped (empty answer): let through without MFA.
    let (code, t) = login(&pam, "tf", "mail", "", answers(&[""]));
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.infos()[0].contains("2 days left"), "{t:?}");
    // The deadline was stored at that first login; one day later, 1 day left.
    d.clock.advance(86_400);
    let (_, t) = login(&pam, "tf", "mail", "", answers(&[""]));
    assert!(t.infos()[0].contains("1 day left"), "{t:?}");
    // After the deadline: refused, told how to enroll, nothing offered.
    d.clock.advance(86_400);
    let (code, t) = login(&pam, "tf", "mail", "", Conversation::new());
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    assert_eq!(
        t.errors(),
        vec![deadline_passed_message(
            T0 + 2 * 86_400,
            &twofold_config::Method::TOTP
        )]
    );
    assert!(t.errors()[0].contains("twofold enroll totp"));
    assert!(t.prompts().is_empty(), "{t:?}");
    // An admin extends the deadline: enrollment is offered again.
    let r = d.call(&Request::AdminGrace {
        user: "mail".into(),
        extend: Some(86_400),
        reset: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let now = d.now();
    let (code, t) = login(&pam, "tf", "mail", "", enrolling(&[], now));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert!(t.infos()[0].contains("1 day left"), "{t:?}");
    // Reset: the next unenrolled login starts a fresh grace period.
    let r = d.call(&Request::AdminGrace {
        user: "news".into(),
        extend: None,
        reset: true,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let r = d.call(&Request::AdminGrace {
        user: "news".into(),
        extend: None,
        reset: false,
    });
    assert!(
        matches!(
            r,
            Response::Failed {
                kind: ErrorKind::BadRequest,
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn an_unknown_user_in_enroll_mode_is_refused_like_a_wrong_code() {
    let d = TestDaemon::start_with(|c| c.policy.unenrolled = twofold_config::Unenrolled::Enroll);
    let pam = pam_for(&d, &["tf"]);
    let (code, t) = login(
        &pam,
        "tf",
        "no-such-user-twofold",
        "",
        answers(&["1", "2", "3"]),
    );
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.errors(), vec![INVALID_CODE; 3]);
}

#[test]
fn a_required_group_must_use_mfa_where_others_may_skip() {
    let d = TestDaemon::start_with(|c| {
        c.policy.required_groups = vec!["mail".into()];
        c.policy.exempt_groups = vec!["news".into()];
        c.policy.trusted_network = vec![twofold_config::policy::TrustedNetwork {
            networks: vec![twofold_config::Cidr::parse("192.0.2.0/24").unwrap()],
            services: vec!["tf".into()],
        }];
    });
    let pam = pam_for(&d, &["tf"]);
    // games: default allow.
    assert_eq!(
        login(&pam, "tf", "games", "", Conversation::new()).0,
        IGNORED
    );
    // mail is required: enrollment is offered even from the trusted network.
    let (code, t) = login(&pam, "tf", "mail", "192.0.2.9", answers(&[""]));
    assert_eq!(code, IGNORED, "skipped within grace: {t:?}");
    assert!(t.infos()[0].contains("required"), "{t:?}");
    // Enrolled, mail is asked for a code from the trusted network too.
    let mail = d.enroll("mail");
    let (code, t) = login(
        &pam,
        "tf",
        "mail",
        "192.0.2.9",
        answers(&[&d.code(&mail.secret, 0)]),
    );
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts().len(), 1);
}

#[test]
fn an_exempt_group_skips_mfa_even_when_enrolled() {
    let d = TestDaemon::start_with(|c| c.policy.exempt_groups = vec!["news".into()]);
    d.enroll("news");
    let pam = pam_for(&d, &["tf"]);
    let (code, t) = login(&pam, "tf", "news", "", Conversation::new());
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.messages.is_empty(), "{t:?}");
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'login_skipped'");
    assert!(rows.contains("exempt_groups"), "{rows}");
}

#[test]
fn a_trusted_network_skips_mfa_for_one_service_but_not_another() {
    let d = TestDaemon::start_with(|c| {
        c.policy.trusted_network = vec![twofold_config::policy::TrustedNetwork {
            networks: vec![twofold_config::Cidr::parse("198.51.100.0/24").unwrap()],
            services: vec!["tf-ssh".into()],
        }];
    });
    let alice = d.enroll("alice");
    let pam = pam_for(&d, &["tf-ssh", "tf-sudo"]);
    let (code, t) = login(&pam, "tf-ssh", "alice", "198.51.100.7", Conversation::new());
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.messages.is_empty());
    // Another service from the same address: a code is asked for.
    let c = d.code(&alice.secret, 0);
    let (code, t) = login(&pam, "tf-sudo", "alice", "198.51.100.7", answers(&[&c]));
    assert_eq!(code, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.prompts().len(), 1);
    // The same service from outside the network: a code is asked for.
    let w = wrong_code(&c);
    let (code, t) = login(&pam, "tf-ssh", "alice", "203.0.113.5", answers(&[w, w, w]));
    assert_eq!(code, PAM_AUTH_ERR, "{t:?}");
    assert_eq!(t.prompts().len(), 3);
}

#[test]
fn methods_per_service_restrict_what_a_login_accepts() {
    let d = TestDaemon::start_with(|c| {
        c.policy.service = vec![twofold_config::policy::ServiceRule {
            services: vec!["tf-console".into()],
            methods: Some(vec![twofold_config::Method::BACKUP_CODE]),
            unenrolled: None,
        }];
    });
    let alice = d.enroll("alice");
    let pam = pam_for(&d, &["tf-console", "tf"]);
    let c = d.code(&alice.secret, 0);
    let (code, _) = login(&pam, "tf-console", "alice", "", answers(&[&c, &c, &c]));
    assert_eq!(code, PAM_AUTH_ERR, "TOTP is not allowed at the console");
    let b = &alice.backup_codes[0];
    assert_eq!(
        login(&pam, "tf-console", "alice", "", answers(&[b])).0,
        PAM_SUCCESS
    );
    // TOTP still works elsewhere (the refused tries spent nothing).
    assert_eq!(
        login(&pam, "tf", "alice", "", answers(&[&c])).0,
        PAM_SUCCESS
    );
}

#[test]
fn a_required_user_cannot_remove_their_last_factor() {
    // The test runs as root: root acting on root is self-service.
    let d = TestDaemon::start_with(|c| c.policy.required_groups = vec!["root".into()]);
    let root = d.enroll("root");
    let r = d.call(&Request::RemoveTotp {
        user: None,
        code: Some(Secret::from(d.code(&root.secret, 0).as_str())),
    });
    match r {
        Response::Failed {
            kind: ErrorKind::PermissionDenied,
            message,
        } => assert!(message.contains("last factor"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Not required: self-service removal works.
    let d = TestDaemon::start();
    let root = d.enroll("root");
    let r = d.call(&Request::RemoveTotp {
        user: None,
        code: Some(Secret::from(d.code(&root.secret, 0).as_str())),
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
}

#[test]
fn bad_policy_is_refused_by_config_check_and_by_the_daemon_naming_the_line() {
    use std::process::Command;
    use twofold_tests::daemon::{bin_path, config_in, open_tempdir};
    let dir = open_tempdir();
    let socket = config_in(dir.path()).daemon.socket;
    let head = format!("[daemon]\nsocket = {socket:?}\n[audit]\nsyslog_socket = \"\"\n");
    let cases = [
        ("unknown method", "[policy]\nmethods = [\"totp\", \"carrier_pigeon\"]\n", 6, "carrier_pigeon"),
        (
            "overlapping rules",
            "[[policy.service]]\nservices = [\"sshd\"]\nunenrolled = \"deny\"\n[[policy.service]]\nservices = [\"sshd\"]\nmethods = [\"totp\"]\n",
            9,
            "rules must not overlap",
        ),
        (
            "required and exempt",
            "[policy]\nrequired_groups = [\"wheel\"]\nexempt_groups = [\"wheel\"]\n",
            7,
            "both policy.required_groups and policy.exempt_groups",
        ),
        (
            "invalid CIDR",
            "[[policy.trusted_network]]\nservices = [\"sshd\"]\nnetworks = [\"10.0.0.0/40\"]\n",
            7,
            "prefix length",
        ),
        ("negative duration", "[policy]\ngrace = \"-7d\"\n", 6, "negative"),
    ];
    for (what, body, line, needle) in cases {
        let file = dir.path().join("twofold.toml");
        std::fs::write(&file, format!("{head}{body}")).unwrap();
        let at = format!("{}:{line}:", file.display());
        let check = Command::new(bin_path("twofold"))
            .args(["config", "check", "--file"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&at) && err.contains(needle), "{what}: {err}");
        let start = Command::new(bin_path("twofoldd"))
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&start.stderr);
        assert_eq!(start.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&at) && err.contains(needle), "{what}: {err}");
        assert!(!socket.exists(), "{what}: the daemon must not listen");
    }
}

#[test]
fn supplementary_groups_come_from_the_group_database() {
    use std::process::Command;
    use twofold_tests::daemon::{config_in, open_tempdir, DaemonProcess};
    twofold_tests::require_root();
    twofold_tests::require_programs(&["unshare"]);
    // The real twofoldd, in a private mount namespace where /etc/group
    // lists mail as a supplementary member of a new group.
    let dir = open_tempdir();
    let group = dir.path().join("group");
    let mut text = std::fs::read_to_string("/etc/group").unwrap();
    text.push_str("tfstaff:x:4242:mail\n");
    std::fs::write(&group, text).unwrap();
    let mut config = config_in(dir.path());
    config.policy.required_groups = vec!["tfstaff".into()];
    let _p = DaemonProcess::start_with(dir.path(), &config, |twofoldd, file| {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /etc/group && exec \"$2\" --config \"$3\"",
            "sh",
        ])
        .arg(&group)
        .arg(twofoldd)
        .arg(file);
        c
    });
    let pam = PamConfig::new().unwrap();
    pam.twofold(
        "tf",
        &[&format!("socket={}", config.daemon.socket.display())],
    )
    .unwrap();
    // mail is required through its supplementary group: enrollment is offered.
    let (code, t) = login(&pam, "tf", "mail", "", answers(&[""]));
    assert_eq!(code, IGNORED, "{t:?}");
    assert!(t.infos()[0].contains("required"), "{t:?}");
    // news is not: let through without a word.
    let (code, t) = login(&pam, "tf", "news", "", Conversation::new());
    assert_eq!(code, IGNORED);
    assert!(t.messages.is_empty(), "{t:?}");
    // The host's group database was never touched.
    assert!(!std::fs::read_to_string("/etc/group")
        .unwrap()
        .contains("tfstaff"));
}
