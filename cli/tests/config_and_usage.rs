//! `twofold config check` and command-line usage errors, no daemon needed.

mod support;

use support::{twofold, Run, TempDir};

#[test]
fn config_check_valid_file_prints_ok() {
    let dir = TempDir::new("cfg-ok");
    let file = dir.0.join("twofold.toml");
    std::fs::write(&file, "[totp]\ndigits = 8\n").unwrap();
    let path = file.to_str().unwrap();
    let run = twofold(&["config", "check", "--file", path], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("OK: {path}\n"));
    // Issue 11: `--print` prints only the TOML on stdout (it can be saved
    // or piped as it is); the OK line goes to stderr.
    let run = twofold(&["config", "check", "--print", "--file", path], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert_shows(&run, &["[totp]", "digits = 8"]);
    assert!(!run.stdout.contains("OK:"), "{}", run.stdout);
    assert_eq!(run.stderr, format!("OK: {path}\n"));
    let printed = dir.0.join("printed.toml");
    std::fs::write(&printed, &run.stdout).unwrap();
    let again = twofold(
        &["config", "check", "--file", printed.to_str().unwrap()],
        "",
    );
    assert_eq!(again.code, 0, "the printed TOML is a valid file: {again:?}");
}

#[test]
fn config_check_without_a_file_reports_the_built_in_defaults() {
    // No --file, no --config, and (in this test) nothing at the default
    // path: twofoldd would run on its defaults, so that is what is shown.
    if std::path::Path::new(twofold_config::DEFAULT_CONFIG).exists() {
        panic!(
            "{} exists on this machine; this test needs it absent",
            twofold_config::DEFAULT_CONFIG
        );
    }
    let run = twofold(&["config", "check"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("built-in defaults"), "{}", run.stdout);
    let run = twofold(&["config", "check", "--print"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("[policy]"), "{}", run.stdout);
    assert!(run.stderr.contains("built-in defaults"), "{}", run.stderr);
}

#[test]
fn config_check_unknown_key_exits_2_naming_line_and_key() {
    let dir = TempDir::new("cfg-unknown");
    let file = dir.0.join("twofold.toml");
    std::fs::write(&file, "[totp]\ndigits = 6\ndigitz = 7\n").unwrap();
    let path = file.to_str().unwrap();
    let run = twofold(&["config", "check", "--file", path], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!("twofold: {path}:3:")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("digitz"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn config_check_out_of_range_value_exits_2() {
    let dir = TempDir::new("cfg-range");
    let file = dir.0.join("twofold.toml");
    std::fs::write(&file, "\n[totp]\ndigits = 9\n").unwrap();
    let path = file.to_str().unwrap();
    let run = twofold(&["config", "check", "--file", path], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        format!("twofold: {path}:3: totp.digits: must be 6, 7 or 8\n")
    );
}

#[test]
fn config_check_uses_global_config_flag_and_reports_missing_file() {
    let dir = TempDir::new("cfg-missing");
    let file = dir.0.join("absent.toml");
    let path = file.to_str().unwrap();
    let run = twofold(&["--config", path, "config", "check"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!("twofold: {path}: ")),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_subcommand_exits_2() {
    let run = twofold(&["frobnicate"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .starts_with("twofold: unrecognized subcommand 'frobnicate'"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_subcommand_shows_usage_and_exits_2() {
    for args in [&[][..], &["admin"][..]] {
        let run = twofold(args, "");
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains("Usage: twofold"), "{}", run.stderr);
    }
}

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        &["enroll", "totp", "--digits", "5"][..],
        &["enroll", "totp", "--algorithm", "MD5"][..],
        &["status", "--user", "bad user"][..],
        &["status", "--timeout", "0"][..],
        &["admin", "disable"][..],
    ] {
        let run = twofold(args, "");
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let run = twofold(&["--help"], "");
    assert_eq!(run.code, 0, "{run:?}");
    assert_shows(&run, &["Exit codes:", "5  invalid code", "7  conflict"]);
}

/// Asserts that standard output contains each of `lines`.
fn assert_shows(run: &Run, lines: &[&str]) {
    for line in lines {
        assert!(
            run.stdout.contains(line),
            "{line:?} not in:\n{}",
            run.stdout
        );
    }
}

#[test]
fn config_check_explains_the_effective_policy_of_one_login() {
    let dir = TempDir::new("cfg-policy");
    let file = dir.0.join("twofold.toml");
    std::fs::write(
        &file,
        "[policy]\nrequired_groups = [\"mail\"]\n\n[[policy.service]]\nservices = [\"sshd\"]\nunenrolled = \"deny\"\nmethods = [\"totp\"]\n\n[[policy.trusted_network]]\nnetworks = [\"192.0.2.0/24\"]\nservices = [\"sshd\"]\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    // `config check --file PATH --user USER --service SERVICE [--rhost RHOST]`.
    let explain = |user: &str, service: &str, rhost: &[&str]| {
        let mut args = vec![
            "config",
            "check",
            "--file",
            path,
            "--user",
            user,
            "--service",
            service,
        ];
        args.extend_from_slice(rhost);
        twofold(&args, "")
    };
    let run = explain("news", "sshd", &["--rhost", "192.0.2.5"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_shows(
        &run,
        &[
            "user:        news (groups: news)",
            "MFA:         exempt (rhost 192.0.2.5 is in trusted network 192.0.2.0/24 for sshd)",
        ],
    );
    let run = explain("mail", "sshd", &["--rhost", "192.0.2.5"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_shows(
        &run,
        &[
            "MFA:         required (group mail is in policy.required_groups)",
            "methods:     totp   (decided by [[policy.service]] sshd)",
            "unenrolled:  deny   (decided by [[policy.service]] sshd)",
        ],
    );
    assert!(
        run.stdout.ends_with(&format!("OK: {path}\n")),
        "{}",
        run.stdout
    );
    let run = explain("mail", "login", &[]);
    assert_shows(
        &run,
        &["unenrolled:  enroll (grace 7d)   (decided by group mail is in policy.required_groups)"],
    );
    // --user needs --service.
    let run = twofold(&["config", "check", "--file", path, "--user", "mail"], "");
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn bad_admin_and_audit_arguments_are_usage_errors() {
    for (args, needle) in [
        (&["admin", "grace", "--user", "alice"][..], "--extend"),
        (
            &[
                "admin", "grace", "--user", "alice", "--extend", "1d", "--reset",
            ][..],
            "cannot be used with",
        ),
        (
            &["admin", "grace", "--user", "alice", "--extend", "0s"][..],
            "more than 0",
        ),
        (
            &["admin", "grace", "--user", "alice", "--extend=-1d"][..],
            "negative",
        ),
        (&["admin", "unlock"][..], "--user"),
        (&["audit", "--since", "yesterday"][..], "yesterday"),
        (&["audit", "--until", "2027-02-30"][..], "no such date"),
        (
            &["stats", "--json", "--prometheus"][..],
            "cannot be used with",
        ),
        (&["audit", "verify", "--user", "alice"][..], "--user"),
    ] {
        let run = twofold(args, "");
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}
