//! Real screen lockers and a greeter on a real X server (issue 11):
//! `Xvfb`, the lockers Debian ships (xsecurelock 1.5, i3lock 2.14, slock
//! from suckless-tools 47) and LightDM 1.26 with lightdm-gtk-greeter, keys
//! typed with `xdotool`, and screenshots kept as PNG files under
//! `test-artifacts/lockers/<test>/` in the cargo target directory (or
//! `$TWOFOLD_TEST_ARTIFACTS`; each test prints the path). Needs root.
//!
//! Each test makes a [`System`] (a namespace-only test user, a copy of the
//! host's Debian 12 `/etc/pam.d`) and re-runs one child entry point of this
//! binary inside its private mount namespace. The child serves the daemon
//! in-process, so it resolves the locker's uid through the namespace's
//! passwd as twofoldd would; it writes the locker's PAM file as README's
//! admin guide gives it (the block read from README.md and expanded on
//! Debian's file, so the guide and these tests cannot drift), starts Xvfb, runs the locker as the test user (a
//! locker runs PAM as the person at the screen), types, and checks the
//! conversation through the daemon's audit rows (no OCR). The screenshots
//! show what the person saw.
//!
//! What each locker asks, found here with the real programs:
//! - xsecurelock asks every PAM question on screen in turn: the password,
//!   then `Verification code:`, and shows error lines. The ordinary
//!   two-question stack works. Debian builds it with PAM service
//!   `common-auth`, so it is started with `XSECURELOCK_PAM_SERVICE=xsecurelock`
//!   and its own file.
//! - i3lock and slock ask one question and hand the typed text to every
//!   PAM prompt: only the single-prompt stack works, and answering the code
//!   prompt with the password must not lock anyone out.
//! - LightDM's greeter asks every question in turn (user name, password,
//!   `Verification code`) and shows error lines; see [`lightdm`] for how
//!   its test mode runs here. GDM is not run: it needs systemd-logind and
//!   a running gnome-shell, which this test bed (no systemd) cannot give;
//!   swaylock needs a Wayland compositor. README says what was checked
//!   for those instead.

mod i3lock;
mod lightdm;
mod slock;
mod xsecurelock;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use twofold_tests::daemon::{Enrolled, TestDaemon};
use twofold_tests::system::{run_bounded, HostFiles, System, TestUser};
use twofold_tests::x11::{artifacts_dir, wait_until, Display, Locker};
use twofold_tests::{module_line, readme, require_programs, require_root};

/// Names the child entry point to run inside the namespace (set only there).
const CHILD_ENV: &str = "TWOFOLD_LOCKER_CHILD";
/// The test user, as `name\nuid\ngid\nhome\npassword`.
const USER_ENV: &str = "TWOFOLD_LOCKER_USER";

const USER: &str = "tfdesk";
/// No digits at the end: a single-prompt answer of the password alone
/// must not look like it ends in a code.
const PASSWORD: &str = "desk pass word";

/// Bounds one child (the whole locker session) from the parent's side.
const CHILD_LIMIT: Duration = Duration::from_secs(100);
/// Bounds one step of a conversation: a prompt to appear, an unlock.
const STEP: Duration = Duration::from_secs(20);

/// Copies the host's `/etc/pam.d` into the system's PAM directory: Debian's
/// own files (`common-auth`, `login`, and those the locker packages ship:
/// `i3lock`, `slock`, `lightdm`; scripts/deps installs them), untouched.
fn copy_host_pam_d(sys: &System) {
    for entry in std::fs::read_dir("/etc/pam.d").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("pam_twofold"),
                "{} already loads twofold: not Debian's file",
                path.display()
            );
            std::fs::copy(&path, sys.pam_d().join(path.file_name().unwrap())).unwrap();
        }
    }
    for shipped in ["i3lock", "slock", "lightdm", "common-auth", "login"] {
        assert!(
            sys.pam_d().join(shipped).is_file(),
            "/etc/pam.d/{shipped} is missing: run scripts/deps"
        );
    }
}

/// Makes the System (user, Debian's PAM files) and runs the child entry
/// point `child` of this binary in its namespace; returns what it printed.
fn run_in_namespace(child: &str) -> String {
    require_root();
    require_programs(&[
        "unshare", "Xvfb", "xdotool", "xwd", "xwdtopnm", "pnmtopng", "oathtool", "sqlite3",
        "openssl",
    ]);
    let host = HostFiles::snapshot();
    let sys = System::new().expect("temp system");
    let user = sys.add_user(USER, PASSWORD).expect("add user");
    // As on Debian: unix_chkpwd (setgid shadow) checks the password of a
    // locker that runs as the user; the copy must be readable by group shadow.
    let shadow = sys.etc().join("shadow");
    std::os::unix::fs::chown(&shadow, Some(0), Some(shadow_gid())).unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).unwrap();
    copy_host_pam_d(&sys);
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().expect("test binary path is UTF-8");
    let mut cmd = sys.command(&[
        exe,
        "--ignored",
        "--exact",
        child,
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD_ENV, child).env(
        USER_ENV,
        format!(
            "{}\n{}\n{}\n{}\n{}",
            user.name,
            user.uid,
            user.gid,
            user.home.display(),
            user.password
        ),
    );
    let run = run_bounded(&mut cmd, "", CHILD_LIMIT).expect("run unshare");
    println!("{}", run.text);
    assert!(
        run.ok() && run.text.contains("child ok") && run.text.contains("1 passed;"),
        "child {child} failed ({:?}) after {:?}:\n{}",
        run.code(),
        run.took,
        run.text
    );
    host.assert_unchanged();
    run.text
}

fn shadow_gid() -> u32 {
    let group = std::fs::read_to_string("/etc/group").unwrap();
    group
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"shadow")).then(|| f[2].parse().unwrap())
        })
        .expect("group shadow")
}

/// In a child: checks it runs for `name` in its parent's namespace and
/// returns the test user. Panics when run without its parent.
fn child(name: &str) -> TestUser {
    let (Ok(which), Ok(user)) = (std::env::var(CHILD_ENV), std::env::var(USER_ENV)) else {
        panic!("a child entry point: run by the test that sets {CHILD_ENV} and {USER_ENV}");
    };
    assert_eq!(which, name, "re-run for another child");
    let f: Vec<&str> = user.splitn(5, '\n').collect();
    TestUser {
        name: f[0].into(),
        uid: f[1].parse().unwrap(),
        gid: f[2].parse().unwrap(),
        home: PathBuf::from(f[3]),
        password: f[4].into(),
    }
}

/// A child's daemon, the user enrolled, and a directory for its PNGs.
struct Bed {
    d: TestDaemon,
    user: TestUser,
    enrolled: Enrolled,
    artifacts: PathBuf,
}

fn bed(name: &str) -> Bed {
    let user = child(name);
    let d = TestDaemon::start();
    // The locker runs as the user: it must reach the module and the socket.
    assert!(
        std::fs::metadata(twofold_tests::module_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o004
            != 0
    );
    let enrolled = d.enroll(&user.name);
    // `xsecurelock::child_xsecurelock_unlock` keeps its PNGs in `xsecurelock_unlock/`.
    let short = name.rsplit("::child_").next().unwrap_or(name);
    let artifacts = artifacts_dir("lockers", short).unwrap();
    println!("screenshots of {name}: {}", artifacts.display());
    Bed {
        d,
        user,
        enrolled,
        artifacts,
    }
}

impl Bed {
    /// `socket=… timeout=5` and `extra` on a pam_twofold line.
    fn twofold(&self, control: &str, extra: &[&str]) -> String {
        let socket = format!("socket={}", self.d.socket().display());
        let mut args = vec![socket.as_str(), "timeout=5"];
        args.extend_from_slice(extra);
        module_line(control, &args)
    }

    /// Writes `/etc/pam.d/<service>` (the namespace's).
    fn pam(&self, service: &str, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(Path::new("/etc/pam.d").join(service), text).unwrap();
    }

    /// Writes `/etc/pam.d/<service>` as README's admin guide gives it: the
    /// block naming that file, expanded on Debian's file as shipped (`...`
    /// and commented-out lines, see [`readme::expand`]; xsecurelock ships
    /// none), its twofold lines pointed at this test's daemon.
    fn readme_pam(&self, service: &str) {
        let stacks = readme::stacks(&readme::readme()).unwrap();
        let stack = stacks
            .iter()
            .find(|s| s.files.iter().any(|f| f == service))
            .unwrap_or_else(|| panic!("README gives no /etc/pam.d/{service}"));
        let path = Path::new("/etc/pam.d").join(service);
        let debian = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if service == "xsecurelock" => String::new(),
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let lines = readme::expand(&stack.lines, &debian)
            .unwrap_or_else(|e| panic!("README line {}: {e}", stack.line));
        let lines: Vec<String> = lines
            .iter()
            .map(|l| {
                if !readme::is_twofold(l) {
                    return l.clone();
                }
                // `auth CONTROL pam_twofold.so ARGS…`, README's own options kept.
                let code = readme::pam_code(l).unwrap_or_default();
                let words: Vec<&str> = code.split(' ').collect();
                self.twofold(words[1], &words[3..])
            })
            .collect();
        println!(
            "/etc/pam.d/{service} (README line {}):\n{}",
            stack.line,
            lines.join("\n")
        );
        self.pam(service, &lines);
    }

    /// The audit rows of the user's logins: `event|service|detail`.
    fn audited(&self) -> Vec<String> {
        self.d
            .sqlite3(&format!(
                "SELECT event || '|' || service || '|' || detail FROM audit \
                 WHERE user = '{}' AND (event LIKE 'login%' OR event = 'lockout') ORDER BY id",
                self.user.name
            ))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The audited events alone.
    fn events(&self) -> Vec<String> {
        self.audited()
            .iter()
            .map(|r| r.split('|').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until `count` rows of `event` are audited.
    fn wait_event(&self, event: &str, count: usize) {
        let ok = wait_until(STEP, || {
            self.events().iter().filter(|e| *e == event).count() >= count
        });
        assert!(
            ok,
            "no {count}× {event} within {STEP:?}: {:?}\n{}",
            self.audited(),
            self.d.log_text()
        );
    }

    fn code(&self) -> String {
        self.d.code(&self.enrolled.secret, 0)
    }
}
