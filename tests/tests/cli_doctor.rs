//! `twofold doctor` (issue 14) against crafted sshd configurations and PAM
//! stacks, in a private mount namespace (the host's /etc is never
//! touched): each misconfiguration is reported by its finding, and a
//! correct setup reports nothing above information. Needs root.

use std::os::unix::fs::PermissionsExt;
use twofold_tests::daemon::{bin_path, TestDaemon};
use twofold_tests::module_line;
use twofold_tests::system::System;
use twofold_tests::{require_programs, require_root};

const GOOD_SSHD: &str = "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods publickey,keyboard-interactive\n";
const DEBIAN_SSHD: &str =
    "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n";
const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n";

struct Setup {
    d: TestDaemon,
    sys: System,
}

fn setup() -> Setup {
    require_root();
    require_programs(&["unshare", "sshd"]);
    let d = TestDaemon::start();
    let sys = System::new().unwrap();
    Setup { d, sys }
}

impl Setup {
    fn twofold_line(&self, control: &str, args: &[&str]) -> String {
        let socket = format!("socket={}", self.d.socket().display());
        let mut all = vec![socket.as_str()];
        all.extend_from_slice(args);
        module_line(control, &all)
    }

    fn pam(&self, service: &str, lines: &[String]) {
        self.sys.pam_service(service, lines).unwrap();
    }

    /// A correct setup: key then code over sshd, sudo after common-auth.
    fn good(&self) {
        self.pam("common-auth", &lines(COMMON_AUTH));
        self.pam(
            "sshd",
            &[
                self.twofold_line("required", &[]),
                "auth required pam_permit.so".into(),
            ],
        );
        self.pam(
            "sudo",
            &[
                "@include common-auth".into(),
                self.twofold_line("required", &[]),
            ],
        );
    }

    /// Finding ids of `twofold doctor --json` with `sshd_config` bound over
    /// the real one, and whether it exited with `code`.
    fn doctor(&self, sshd_config: &str) -> (Vec<(String, String)>, Option<i32>) {
        let cfg = self.sys.path().join("sshd_config");
        std::fs::write(&cfg, sshd_config).unwrap();
        let conf = self.sys.path().join("twofold.toml");
        std::fs::write(&conf, self.d.config().to_toml()).unwrap();
        let script = format!(
            "mount --bind {} /etc/ssh/sshd_config && exec {} --socket {} --config {} doctor --json",
            cfg.display(),
            bin_path("twofold").display(),
            self.d.socket().display(),
            conf.display()
        );
        let out = self.sys.command(&["sh", "-c", &script]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        let found = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_owned(),
                    f["severity"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (found, out.status.code())
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn serious(found: &[(String, String)]) -> Vec<&str> {
    found
        .iter()
        .filter(|(_, s)| s != "info")
        .map(|(id, _)| id.as_str())
        .collect()
}

#[test]
fn a_correct_setup_reports_no_problem() {
    let s = setup();
    s.good();
    let (found, code) = s.doctor(GOOD_SSHD);
    assert!(serious(&found).is_empty(), "{found:?}");
    assert_eq!(code, Some(0), "{found:?}");
}

#[test]
fn debian_sshd_defaults_are_reported() {
    let s = setup();
    s.good();
    let (found, code) = s.doctor(DEBIAN_SSHD);
    let ids = serious(&found);
    for want in [
        "sshd.kbdint_off",
        "sshd.authenticationmethods_unset",
        "sshd.passwordauthentication_on",
    ] {
        assert!(ids.contains(&want), "{want}: {found:?}");
    }
    assert_eq!(code, Some(10));
}

#[test]
fn each_misplaced_pam_line_is_reported() {
    let s = setup();
    s.good();
    // twofold first and sufficient in su; the key+code stack without
    // pam_permit; i3lock with two questions; single_prompt=ask alone.
    s.pam(
        "su",
        &[
            s.twofold_line("sufficient", &[]),
            "@include common-auth".into(),
        ],
    );
    s.pam("sshd", &[s.twofold_line("required", &[])]);
    s.pam("login", &lines(COMMON_AUTH));
    s.pam(
        "i3lock",
        &["auth include login".into(), s.twofold_line("required", &[])],
    );
    s.pam(
        "swaylock",
        &[
            s.twofold_line("requisite", &["single_prompt=ask"]),
            "auth requisite pam_unix.so use_first_pass".into(),
        ],
    );
    let (found, code) = s.doctor(GOOD_SSHD);
    let ids = serious(&found);
    for want in [
        "pam.twofold_sufficient",
        "pam.twofold_before_password",
        "pam.ignore_only",
        "pam.one_question_without_single_prompt",
        "pam.single_prompt_without_verify",
    ] {
        assert!(ids.contains(&want), "{want}: {found:?}");
    }
    assert_eq!(code, Some(10));
}

#[test]
fn a_stopped_daemon_and_a_readable_key_are_reported() {
    let mut s = setup();
    s.good();
    let key = s.d.config().daemon.master_key.clone();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.d.stop();
    let (found, _) = s.doctor(GOOD_SSHD);
    let ids = serious(&found);
    assert!(ids.contains(&"daemon.unreachable"), "{found:?}");
    assert!(ids.contains(&"files.key_mode"), "{found:?}");
}

/// pam_env reading users' `~/.pam_environment` in a stack twofold guards
/// is a warning (exit 9), once per line, session or auth; pam_env without
/// it is not.
#[test]
fn pam_env_user_readenv_beside_twofold_is_a_warning() {
    let s = setup();
    s.good();
    s.pam(
        "sudo",
        &[
            "auth optional pam_env.so readenv=1 user_readenv=1".into(),
            "@include common-auth".into(),
            s.twofold_line("required", &[]),
            "session required pam_env.so readenv=1 user_readenv=1".into(),
        ],
    );
    let (found, code) = s.doctor(GOOD_SSHD);
    let hits: Vec<_> = found
        .iter()
        .filter(|(id, _)| id == "pam.env_user_readenv")
        .collect();
    assert_eq!(hits.len(), 2, "{found:?}");
    assert!(hits.iter().all(|(_, sev)| sev == "warning"), "{found:?}");
    assert_eq!(serious(&found).len(), 2, "{found:?}");
    assert_eq!(code, Some(9), "{found:?}");

    s.pam(
        "sudo",
        &[
            "auth optional pam_env.so readenv=1".into(),
            "@include common-auth".into(),
            s.twofold_line("required", &[]),
            "session required pam_env.so readenv=1 envfile=/etc/default/locale".into(),
        ],
    );
    let (found, code) = s.doctor(GOOD_SSHD);
    assert!(serious(&found).is_empty(), "{found:?}");
    assert_eq!(code, Some(0), "{found:?}");
}
