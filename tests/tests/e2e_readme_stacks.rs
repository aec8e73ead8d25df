//! Every PAM stack the admin guide gives, read from README.md itself and
//! run by its real client, so that no stack README recommends can lock
//! anyone out or let anyone in unnoticed (issue 11).
//!
//! Each stack is expanded on this Debian 12 host's own files (`...` in a
//! block is "the rest of Debian's file unchanged", see
//! [`twofold_tests::readme::expand`]), with every `/etc/pam.d` file of the
//! host copied beside it so that `@include common-auth` and friends are
//! Debian's own, and its twofold lines pointed at a test daemon's socket.
//! Then, with the real client (sshd and ssh, sudo -S, su on a terminal,
//! pamtester for the greeters' and the single-prompt stacks):
//!
//! 1. an enrolled user: first factor + right code is let in; a wrong code is
//!    refused;
//! 2. a user with nothing enrolled: let in on the first factor alone with
//!    `unenrolled = "allow"` (the default; twofold says PAM_IGNORE, which
//!    must not be a stack's only auth result), refused with `"deny"`;
//! 3. the daemon down (a socket nobody listens on; `failmode=secure`, the
//!    default): everyone refused, promptly, without the client hanging; and
//!    once the daemon is back the enrolled user gets in again.
//!
//! What is asserted is what a person relies on (the exit status, whether
//! the command ran, the daemon's audit rows), not a client's wording.
//! Needs root (private mount namespaces).

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;
use twofold_config::Unenrolled;
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::readme::{self, Stack};
use twofold_tests::sshd::{Sshd, SSHD};
use twofold_tests::system::{expect, run_bounded, Run, System, TestUser};
use twofold_tests::{module_line, require_programs, require_root};

/// Each README stack and the test here that runs it. A README stack
/// missing here, or an entry whose stack README no longer gives, fails
/// [`every_readme_stack_is_run_by_a_test_here`].
const COVERED: &[(&str, &str)] = &[
    (
        "sshd: AuthenticationMethods publickey,keyboard-interactive",
        "readme_sshd_key_and_code",
    ),
    (
        "sshd: AuthenticationMethods keyboard-interactive",
        "readme_sshd_password_and_code",
    ),
    ("sudo", "readme_sudo"),
    ("su", "readme_su"),
    ("gdm-password, lightdm", "readme_desktop_greeters"),
    ("xsecurelock", "readme_xsecurelock"),
    ("i3lock, swaylock", "readme_i3lock_swaylock"),
    ("slock", "readme_slock"),
    ("single-prompt", "readme_single_prompt"),
];

/// This file, to check that every test [`COVERED`] names exists.
const SOURCE: &str = include_str!("e2e_readme_stacks.rs");

/// The module's `timeout=` on every twofold line (README's default).
const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a refused login may take with the daemon down: the module's
/// timeout, plus pam_unix's failure delay (Debian's common-auth has no
/// `nodelay`: 2 s, which libpam varies up to 1.5 times), plus the client.
const DOWN_BOUND: Duration = Duration::from_secs(5 + 3 + 2);
/// The daemon's question.
const PROMPT: &str = "Verification code:";
/// Printed by the command a login runs; the arithmetic shows that the
/// shell ran it rather than a terminal echoing it.
const SHELL: &str = "echo TF-IN-$((40+2)); id -un";
const MARK: &str = "TF-IN-42";
/// The PAM service that runs the single-prompt block (README gives it for
/// "applications that can ask only one question", no file name).
const SINGLE_SERVICE: &str = "readme-single-prompt";

/// Debian 12's `/etc/pam.d/gdm-password` (gdm3 43.0-3) and
/// `/etc/pam.d/lightdm` (lightdm 1.26.0-8+deb12u1), for a host without
/// those packages (gdm3 drags in GNOME); the host's own file wins.
///
/// Also swaylock's (swaylock 1.7.2-1: it needs Wayland, so hosts of these
/// tests rarely have it), and xsecurelock's, which Debian does not ship
/// (its xsecurelock uses `common-auth`): README's block is a new file.
/// e2e_lockers runs i3lock, slock, xsecurelock and LightDM themselves.
const DEBIAN12: &[(&str, &str)] = &[
    ("gdm-password", include_str!("debian12-pam.d/gdm-password")),
    ("lightdm", include_str!("debian12-pam.d/lightdm")),
    ("swaylock", include_str!("debian12-pam.d/swaylock")),
    ("xsecurelock", ""),
];

/// Debian's `/etc/pam.d/NAME`: the host's, else the copy above.
fn debian_file(name: &str) -> String {
    let text = match std::fs::read_to_string(Path::new("/etc/pam.d").join(name)) {
        Ok(t) => t,
        Err(_) => {
            let copy = DEBIAN12.iter().find(|(n, _)| *n == name);
            let (_, text) =
                copy.unwrap_or_else(|| panic!("/etc/pam.d/{name} is missing on this host"));
            eprintln!("/etc/pam.d/{name} is not on this host: Debian 12's copy in debian12-pam.d/");
            text.to_string()
        }
    };
    assert!(
        !text.contains("pam_twofold"),
        "/etc/pam.d/{name} already loads twofold: not Debian's file"
    );
    text
}

/// The stack README gives for test `test` (by [`COVERED`]).
fn readme_stack(test: &str) -> Stack {
    let key = COVERED
        .iter()
        .find(|(_, t)| *t == test)
        .unwrap_or_else(|| panic!("{test} is not in COVERED"))
        .0;
    readme::stacks(&readme::readme())
        .unwrap()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("README no longer gives the stack {key:?}"))
}

/// `line` with its twofold module pointed at `socket` (the built module by
/// absolute path, README's options kept, `socket=` and `timeout=` added as
/// the other end-to-end tests do); any other line unchanged.
fn point(line: &str, socket: &Path) -> String {
    if !readme::is_twofold(line) {
        return line.to_owned();
    }
    let code = readme::pam_code(line).unwrap_or_default();
    let words: Vec<&str> = code.split(' ').collect();
    assert_eq!(words[0], "auth", "{line}");
    assert!(!words[1].starts_with('['), "{line}");
    let socket = format!("socket={}", socket.display());
    let timeout = format!("timeout={}", TIMEOUT.as_secs());
    let mut args = words[3..].to_vec();
    args.extend([socket.as_str(), timeout.as_str()]);
    module_line(words[1], &args)
}

/// The files `stack` installs, pointed at `socket`: (name, lines).
fn installed(stack: &Stack, socket: &Path) -> Vec<(String, Vec<String>)> {
    try_installed(stack, socket).unwrap_or_else(|e| panic!("{e}"))
}

fn try_installed(stack: &Stack, socket: &Path) -> Result<Vec<(String, Vec<String>)>, String> {
    if stack.files.is_empty() {
        let lines = stack.lines.iter().map(|l| point(l, socket)).collect();
        return Ok(vec![(SINGLE_SERVICE.to_owned(), lines)]);
    }
    let mut files = Vec::new();
    for name in &stack.files {
        let lines = readme::expand(&stack.lines, &debian_file(name)).map_err(|e| {
            format!(
                "README line {}: the {} stack on Debian's {name}: {e}",
                stack.line, stack.key
            )
        })?;
        files.push((
            name.clone(),
            lines.iter().map(|l| point(l, socket)).collect(),
        ));
    }
    Ok(files)
}

/// One stack on one [`System`]: an enrolled and an unenrolled user, a
/// daemon with each policy for the unenrolled, and a daemon down.
struct Bed {
    stack: Stack,
    sys: System,
    /// `unenrolled = "allow"` (the default); `user` is enrolled here.
    allow: TestDaemon,
    /// `unenrolled = "deny"`.
    deny: TestDaemon,
    /// A socket file nobody listens on: a crashed daemon's.
    dead: PathBuf,
    /// No socket file at all: a stopped daemon's.
    missing: PathBuf,
    _down_dir: tempfile::TempDir,
    user: TestUser,
    enrolled: Enrolled,
    /// Nothing enrolled.
    plain: TestUser,
}

impl Bed {
    fn new(test: &str, programs: &[&str]) -> Bed {
        require_root();
        require_programs(&["unshare", "oathtool", "sqlite3"]);
        require_programs(programs);
        let stack = readme_stack(test);
        let sys = System::new().unwrap();
        copy_host_pam_d(&sys);
        let daemon = |policy| {
            TestDaemon::start_with(move |c| {
                c.login.max_tries = 1;
                c.policy.unenrolled = policy;
            })
        };
        let (allow, deny) = (daemon(Unenrolled::Allow), daemon(Unenrolled::Deny));
        let down_dir = tempfile::tempdir().unwrap();
        let dead = down_dir.path().join("crashed.sock");
        drop(UnixListener::bind(&dead).unwrap());
        let missing = down_dir.path().join("stopped.sock");
        let user = sys.add_user("tfuser", "enrolled pw 1").unwrap();
        let plain = sys.add_user("tfplain", "plain pw 2").unwrap();
        sys.sudoers("tfuser ALL=(ALL:ALL) ALL\ntfplain ALL=(ALL:ALL) ALL")
            .unwrap();
        let enrolled = allow.enroll("tfuser");
        let bed = Bed {
            stack,
            sys,
            allow,
            deny,
            dead,
            missing,
            _down_dir: down_dir,
            user,
            enrolled,
            plain,
        };
        bed.point_at(bed.allow.socket());
        bed
    }

    /// (Re)writes the stack's files with twofold talking to `socket`; the
    /// next login reads them (libpam reads its files at `pam_start`).
    fn point_at(&self, socket: &Path) {
        for (name, lines) in installed(&self.stack, socket) {
            self.sys.pam_service(&name, &lines).unwrap();
        }
    }

    /// The whole matrix for `service`. `login(user, code)` runs the real
    /// client: the user gives the first factor, if the stack asks for one,
    /// and `code` when asked for it (`None`: no code question is expected).
    /// `single`: the code goes with the password in one answer.
    /// `admitted`: the client's own sign that the login went through.
    fn run_matrix(
        &self,
        service: &str,
        single: bool,
        login: &dyn Fn(&TestUser, Option<&str>) -> Run,
        admitted: &dyn Fn(&Run) -> bool,
        log: &dyn Fn() -> String,
    ) {
        let show = |what: &str, run: &Run| {
            let file = std::fs::read_to_string(self.sys.pam_d().join(service)).unwrap_or_default();
            format!(
                "README {} stack, {service}: {what}: exit {:?} after {:?}\n{}\n\
                 --- client's server log ---\n{}\n--- twofoldd (allow) ---\n{}\n\
                 --- twofoldd (deny) ---\n{}\n--- /etc/pam.d/{service} ---\n{file}",
                self.stack.key,
                run.code(),
                run.took,
                run.text,
                log(),
                self.allow.log_text(),
                self.deny.log_text(),
            )
        };
        let let_in = |what: &str, run: &Run| {
            assert!(admitted(run), "{}", show(what, run));
            eprintln!("{service}: {what}: let in after {:?}", run.took);
        };
        let refused = |what: &str, run: &Run| {
            assert!(
                !run.ok() && !run.text.contains(MARK) && !admitted(run),
                "{}",
                show(what, run)
            );
            // 124/125: expect saw no question it waited for, or the client ended first.
            assert!(
                run.status.is_some() && !matches!(run.code(), Some(124..=126)),
                "{}",
                show(what, run)
            );
            eprintln!("{service}: {what}: refused after {:?}", run.took);
        };

        // 1. Enrolled: the right code lets the user in, a wrong one does not.
        // (A fresh step: an earlier matrix on this bed spent the last one.)
        self.point_at(self.allow.socket());
        self.allow.clock.advance(30);
        let mark = last_row(&self.allow);
        let code = self.allow.code(&self.enrolled.secret, 0);
        let run = login(&self.user, Some(&code));
        let_in("enrolled, right code", &run);
        assert_eq!(
            logins(&self.allow, mark, service),
            ["tfuser login_success"],
            "{}",
            show("enrolled, right code", &run)
        );

        self.allow.clock.advance(30);
        let mark = last_row(&self.allow);
        let wrong = wrong_code(&self.allow.code(&self.enrolled.secret, 0));
        let run = login(&self.user, Some(wrong));
        refused("enrolled, wrong code", &run);
        let rows = logins(&self.allow, mark, service);
        assert!(
            rows.contains(&"tfuser login_failure".to_owned())
                && !rows.iter().any(|r| r.ends_with("login_success")),
            "{rows:?}\n{}",
            show("enrolled, wrong code", &run)
        );

        // 2. Nothing enrolled: the first factor alone under "allow" ...
        let mark = last_row(&self.allow);
        let run = login(&self.plain, None);
        let_in("unenrolled, policy allow", &run);
        assert!(
            !run.text.contains(PROMPT),
            "{}",
            show("unenrolled, allow", &run)
        );
        assert_eq!(
            logins(&self.allow, mark, service),
            ["tfplain login_skipped"],
            "{}",
            show("unenrolled, allow", &run)
        );

        // ... refused under "deny", asked for a code like anyone else.
        self.point_at(self.deny.socket());
        let mark = last_row(&self.deny);
        let run = login(&self.plain, Some("123456"));
        refused("unenrolled, policy deny", &run);
        if !single {
            assert!(run.text.contains(PROMPT), "{}", show("deny", &run));
        }
        let rows = logins(&self.deny, mark, service);
        assert!(
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r.ends_with("login_failure") || r.ends_with("login_denied")),
            "{rows:?}\n{}",
            show("unenrolled, deny", &run)
        );

        // 3. The daemon down, crashed (its socket left behind) or stopped
        // (no socket): nobody gets in, and nobody waits long.
        for (down, socket) in [("crashed", &self.dead), ("stopped", &self.missing)] {
            self.point_at(socket);
            for (who, user) in [("enrolled", &self.user), ("unenrolled", &self.plain)] {
                let what = format!("{who}, daemon {down}");
                let run = login(user, None);
                refused(&what, &run);
                assert!(!run.text.contains(PROMPT), "{}", show(&what, &run));
                assert!(run.took < DOWN_BOUND, "{}", show(&what, &run));
            }
        }

        // The daemon back: nothing above locked the enrolled user out, and
        // the client still serves.
        self.point_at(self.allow.socket());
        self.allow.clock.advance(30);
        let code = self.allow.code(&self.enrolled.secret, 0);
        let run = login(&self.user, Some(&code));
        let_in("enrolled, daemon back", &run);
    }
}

/// Copies every file of the host's `/etc/pam.d` (Debian's `common-*` that
/// the stacks include, `other`, …) into the system's PAM directory.
fn copy_host_pam_d(sys: &System) {
    for entry in std::fs::read_dir("/etc/pam.d").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("pam_twofold"),
                "{} already loads twofold",
                path.display()
            );
            std::fs::copy(&path, sys.pam_d().join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// The highest audit row id so far.
fn last_row(d: &TestDaemon) -> u64 {
    d.sqlite3("SELECT COALESCE(MAX(id), 0) FROM audit")
        .trim()
        .parse()
        .unwrap()
}

/// The login rows after row `mark` for `service`, as "user event".
fn logins(d: &TestDaemon, mark: u64, service: &str) -> Vec<String> {
    d.sqlite3(&format!(
        "SELECT user || ' ' || event FROM audit WHERE id > {mark} \
         AND service = '{service}' AND event LIKE 'login%' ORDER BY id"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

fn ran(run: &Run) -> bool {
    run.ok() && run.text.contains(MARK)
}

fn ssh_test(test: &str, password_first: bool) {
    let bed = Bed::new(test, &[SSHD, "ssh", "ssh-keygen", "expect"]);
    let sshd =
        Sshd::start_configured(&bed.sys, &[&bed.user, &bed.plain], &bed.stack.sshd_config).unwrap();
    let login = |u: &TestUser, code: Option<&str>| {
        let mut dialog = Vec::new();
        if password_first {
            dialog.push(("Password:", u.password.as_str()));
        }
        dialog.extend(code.map(|c| (PROMPT, c)));
        sshd.ssh(&u.name, SHELL, &dialog).unwrap()
    };
    bed.run_matrix("sshd", false, &login, &ran, &|| sshd.log());
}

/// `AuthenticationMethods publickey,keyboard-interactive`: the key, then
/// the code; the stack asks no password (issue 11: without `pam_permit`
/// after twofold, every unenrolled user was refused).
#[test]
fn readme_sshd_key_and_code() {
    ssh_test("readme_sshd_key_and_code", false);
}

/// `AuthenticationMethods keyboard-interactive`: password, then code.
#[test]
fn readme_sshd_password_and_code() {
    ssh_test("readme_sshd_password_and_code", true);
}

/// `sudo -S` from a script: the password, then the code, one line each.
#[test]
fn readme_sudo() {
    let bed = Bed::new("readme_sudo", &["setpriv", "sudo"]);
    let login = |u: &TestUser, code: Option<&str>| {
        let (uid, gid) = (u.uid.to_string(), u.gid.to_string());
        let mut cmd = bed.sys.command(&[
            "setpriv",
            "--reuid",
            &uid,
            "--regid",
            &gid,
            "--init-groups",
            "sudo",
            "-S",
            "-k",
            "sh",
            "-c",
            SHELL,
        ]);
        let mut input = format!("{}\n", u.password);
        if let Some(c) = code {
            input.push_str(&format!("{c}\n"));
        }
        run_bounded(&mut cmd, &input, Duration::from_secs(20)).unwrap()
    };
    let as_root = |run: &Run| ran(run) && run.text.contains(&format!("{MARK}\nroot\n"));
    bed.run_matrix("sudo", false, &login, &as_root, &String::new);
}

/// util-linux `su` on a terminal, run by `nobody`.
#[test]
fn readme_su() {
    let bed = Bed::new("readme_su", &["setpriv", "su", "expect"]);
    let login = |u: &TestUser, code: Option<&str>| {
        let argv = bed.sys.argv(&[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "su",
            &u.name,
            "-c",
            SHELL,
        ]);
        let mut dialog = vec![("Password:", u.password.as_str())];
        dialog.extend(code.map(|c| (PROMPT, c)));
        expect(&argv, &dialog, 10).unwrap()
    };
    bed.run_matrix("su", false, &login, &ran, &String::new);
}

/// `pamtester SERVICE USER authenticate acct_mgmt`, one stdin line per
/// question.
fn pamtester(sys: &System, service: &str, user: &str, lines: &[&str]) -> Run {
    let mut input = lines.join("\n");
    input.push('\n');
    let mut cmd = sys.command(&[
        "pamtester",
        "-v",
        service,
        user,
        "authenticate",
        "acct_mgmt",
    ]);
    run_bounded(&mut cmd, &input, Duration::from_secs(20)).unwrap()
}

fn pamtester_ok(run: &Run) -> bool {
    run.ok() && run.text.contains("successfully authenticated")
}

/// The greeters' stack, on Debian's gdm-password and on lightdm: the
/// password, then the code as a second question.
#[test]
fn readme_desktop_greeters() {
    let bed = Bed::new("readme_desktop_greeters", &["pamtester"]);
    assert_eq!(bed.stack.files, ["gdm-password", "lightdm"]);
    for service in &bed.stack.files {
        let login = |u: &TestUser, code: Option<&str>| {
            let mut lines = vec![u.password.as_str()];
            lines.extend(code);
            pamtester(&bed.sys, service, &u.name, &lines)
        };
        bed.run_matrix(service, false, &login, &pamtester_ok, &String::new);
    }
}

/// xsecurelock's file: the password, then the code as a second question
/// (pamtester standing in for its `authproto_pam` helper).
#[test]
fn readme_xsecurelock() {
    let bed = Bed::new("readme_xsecurelock", &["pamtester"]);
    assert_eq!(bed.stack.files, ["xsecurelock"]);
    let login = |u: &TestUser, code: Option<&str>| {
        let mut lines = vec![u.password.as_str()];
        lines.extend(code);
        pamtester(&bed.sys, "xsecurelock", &u.name, &lines)
    };
    bed.run_matrix("xsecurelock", false, &login, &pamtester_ok, &String::new);
}

/// The one-question lockers' files, on Debian's i3lock and swaylock: one
/// answer, the password with the code at its end, as the locker sends it.
#[test]
fn readme_i3lock_swaylock() {
    one_question_locker("readme_i3lock_swaylock", &["i3lock", "swaylock"]);
}

/// The same for Debian's slock (with its `@include common-account`).
#[test]
fn readme_slock() {
    one_question_locker("readme_slock", &["slock"]);
}

fn one_question_locker(test: &str, files: &[&str]) {
    let bed = Bed::new(test, &["pamtester"]);
    assert_eq!(bed.stack.files, files);
    for service in &bed.stack.files {
        let login = |u: &TestUser, code: Option<&str>| {
            let answer = format!("{}{}", u.password, code.unwrap_or(""));
            pamtester(&bed.sys, service, &u.name, &[&answer])
        };
        bed.run_matrix(service, true, &login, &pamtester_ok, &String::new);
    }
}

/// The three single-prompt lines: one answer, the password with the code
/// at its end.
#[test]
fn readme_single_prompt() {
    let bed = Bed::new("readme_single_prompt", &["pamtester"]);
    let login = |u: &TestUser, code: Option<&str>| {
        let answer = format!("{}{}", u.password, code.unwrap_or(""));
        pamtester(&bed.sys, SINGLE_SERVICE, &u.name, &[&answer])
    };
    bed.run_matrix(SINGLE_SERVICE, true, &login, &pamtester_ok, &String::new);
}

/// README and this file cannot drift: every stack README gives is run by
/// a test here, every test here runs a stack README still gives, and each
/// stack expands on this host's Debian files without dropping a line.
#[test]
fn every_readme_stack_is_run_by_a_test_here() {
    let stacks = readme::stacks(&readme::readme()).unwrap();
    let mut errors = Vec::new();
    for (i, s) in stacks.iter().enumerate() {
        assert!(
            stacks[..i].iter().all(|t| t.key != s.key),
            "README lines {} and {}: two stacks named {:?}; tell them apart in readme.rs",
            stacks.iter().find(|t| t.key == s.key).map_or(0, |t| t.line),
            s.line,
            s.key
        );
        assert!(
            COVERED.iter().any(|(k, _)| *k == s.key),
            "README line {}: the stack {:?} is run by no test in e2e_readme_stacks.rs",
            s.line,
            s.key
        );
        assert!(
            s.lines.iter().any(|l| readme::is_twofold(l)),
            "README line {}: the stack {:?} has no twofold line",
            s.line,
            s.key
        );
        if let Err(e) = try_installed(s, Path::new("/run/twofold/twofold.sock")) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for (key, test) in COVERED {
        assert!(
            stacks.iter().any(|s| s.key == *key),
            "README no longer gives the stack {key:?} that {test} runs"
        );
        assert!(
            SOURCE.contains(&format!("fn {test}() {{")),
            "{test}, which COVERED names, is not a test here"
        );
    }
}
