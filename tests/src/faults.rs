//! Fault injection into a whole login: the C application `tests/faults/host.c`
//! loads pam_twofold.so through the real libpam, with `tests/faults/shim.c`
//! preloaded to fail one call of one kind (an item or data function of
//! libpam, the conversation, an allocation) and to see every syslog line and
//! every freed block; `tests/faults/password.c` is the password line of a
//! single-prompt stack ([`password_module`]). All three are compiled here
//! with `cc`; the protocol between them and this file is the environment
//! (`TF_*`) and `key=value` lines, described at the top of each C file.
//!
//! ```no_run
//! use twofold_tests::faults::{Fault, HostLogin};
//! # let confdir = std::path::Path::new("/tmp/x");
//! let run = HostLogin::new(confdir, "tf", "alice", "pts/1")
//!     .answer("123456")
//!     .fault(Fault::new("get_item", "err"), 2)
//!     .run();
//! assert!(run.survived());
//! ```

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

const SHIM_C: &str = include_str!("../faults/shim.c");
const HOST_C: &str = include_str!("../faults/host.c");
const PASSWORD_C: &str = include_str!("../faults/password.c");

/// The compiled shim, host and password module, built once per test
/// process next to the test binary.
#[derive(Debug)]
struct Lab {
    shim: PathBuf,
    host: PathBuf,
    password: PathBuf,
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .expect("test binary has a directory")
            .join("tf-faults");
        std::fs::create_dir_all(&dir).expect("create the fault lab directory");
        Lab {
            shim: cc(
                &dir,
                "shim.c",
                SHIM_C,
                &["-shared", "-fPIC"],
                "shim.so",
                &[],
            ),
            host: cc(&dir, "host.c", HOST_C, &[], "host", &["-l:libpam.so.0"]),
            password: cc(
                &dir,
                "password.c",
                PASSWORD_C,
                &["-shared", "-fPIC"],
                "password.so",
                &["-l:libpam.so.0"],
            ),
        }
    })
}

/// The absolute path of `tests/faults/password.c` built as a PAM module: the
/// password line between single-prompt mode's `ask` and `verify` lines, as
/// `pam_unix.so use_first_pass` would be. It takes PAM_AUTHTOK, never asks,
/// and accepts only the password given to [`HostLogin::password`].
pub fn password_module() -> &'static Path {
    &lab().password
}

/// Compiles one C file with warnings as errors into `dir/out`. Built under
/// a name of this process and renamed, so test processes running at once
/// never load a half-written file.
fn cc(dir: &Path, name: &str, source: &str, flags: &[&str], out: &str, libs: &[&str]) -> PathBuf {
    let pid = std::process::id();
    let src = dir.join(format!("{name}.{pid}.c"));
    let tmp = dir.join(format!("{out}.{pid}"));
    std::fs::write(&src, source).expect("write C source");
    let res = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .args(libs)
        .output()
        .expect("run cc (the C compiler Rust links with)");
    let _ = std::fs::remove_file(&src);
    assert!(
        res.status.success(),
        "cc {name} failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let path = dir.join(out);
    std::fs::rename(&tmp, &path).expect("rename the compiled file");
    path
}

/// One kind of fault: a site of shim.c (`get_user`, `get_item`, `set_item`,
/// `get_data`, `set_data`, `conv`, `malloc_module`, `malloc_other`) and how
/// the call there fails (`err`, `null`, or a conversation's way, see host.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The site.
    pub site: &'static str,
    /// How it fails.
    pub variant: &'static str,
}

impl Fault {
    /// The fault `site:variant`.
    pub const fn new(site: &'static str, variant: &'static str) -> Fault {
        Fault { site, variant }
    }

    /// `site:variant`, as `TF_FAULT` takes it.
    pub fn spec(self) -> String {
        format!("{}:{}", self.site, self.variant)
    }
}

/// One login in the host: `pam_authenticate` then `pam_setcred`.
#[derive(Debug, Clone)]
pub struct HostLogin {
    confdir: PathBuf,
    service: String,
    user: String,
    tty: String,
    rhost: Option<String>,
    answer: String,
    password: Option<String>,
    secrets: Vec<String>,
    fault: Option<(Fault, u64)>,
    item: Option<i32>,
}

impl HostLogin {
    /// A login of `user` to `service` (stack `confdir/service`) on `tty`.
    pub fn new(confdir: &Path, service: &str, user: &str, tty: &str) -> HostLogin {
        HostLogin {
            confdir: confdir.to_owned(),
            service: service.into(),
            user: user.into(),
            tty: tty.into(),
            rhost: None,
            answer: String::new(),
            password: None,
            secrets: Vec::new(),
            fault: None,
            item: None,
        }
    }

    /// The tty it sets as PAM_TTY.
    pub fn tty(&self) -> &str {
        &self.tty
    }

    /// Sets PAM_RHOST, as sshd does.
    pub fn rhost(mut self, rhost: &str) -> Self {
        self.rhost = Some(rhost.into());
        self
    }

    /// What the person types at every prompt.
    pub fn answer(mut self, answer: &str) -> Self {
        self.answer = answer.into();
        self
    }

    /// The password [`password_module`] accepts.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.into());
        self
    }

    /// A text no log line, no output and no freed block may hold.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Fails the `n`-th call (from 1) of `fault`'s kind.
    pub fn fault(mut self, fault: Fault, n: u64) -> Self {
        self.fault = Some((fault, n));
        self
    }

    /// Counts (and fails) only the `get_item`/`set_item` calls for `item`.
    pub fn item(mut self, item: i32) -> Self {
        self.item = Some(item);
        self
    }

    /// Runs the host, killing it after 30 s.
    pub fn run(&self) -> HostRun {
        let lab = lab();
        let logs = tempfile::Builder::new()
            .prefix("tf-faults-log")
            .tempdir()
            .expect("temp dir");
        let log = logs.path().join("syslog");
        let mut cmd = Command::new(&lab.host);
        cmd.arg(&self.confdir)
            .args([&self.service, &self.user, &self.tty])
            .args(&self.rhost)
            .env("LD_PRELOAD", &lab.shim)
            .env("TF_ANSWER", &self.answer)
            .env("TF_LOG", &log)
            .env("TF_SECRETS", self.secrets.join(","))
            .env("RUST_BACKTRACE", "0");
        if let Some((f, n)) = self.fault {
            cmd.env("TF_FAULT", f.spec())
                .env("TF_FAULT_AT", n.to_string());
        }
        if let Some(item) = self.item {
            cmd.env("TF_ITEM", item.to_string());
        }
        if let Some(password) = &self.password {
            cmd.env("TF_PASSWORD", password);
        }
        let (status, text) = run_killing_after(cmd, Duration::from_secs(30));
        let values = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        HostRun {
            n: self.fault.map_or(0, |(_, n)| n),
            status,
            logged: std::fs::read_to_string(&log).unwrap_or_default(),
            text,
            secrets: self.secrets.clone(),
            values,
        }
    }
}

/// Runs `cmd` in its own process group, killed after `limit`; returns its
/// status (`None`: killed) and its stdout then stderr.
fn run_killing_after(mut cmd: Command, limit: Duration) -> (Option<ExitStatus>, String) {
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the fault host");
    let pid = child.id() as i32;
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(limit).is_err() {
            // SAFETY: plain kill(2) on the process group we created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("wait for the fault host");
    let _ = done.send(());
    let killed = watchdog.join().unwrap_or(true);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ((!killed).then_some(out.status), text)
}

/// What one run of the host did.
#[derive(Debug)]
pub struct HostRun {
    /// The call that was to fail (0: none).
    pub n: u64,
    /// Its exit status; `None` when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// Its stdout, then its stderr.
    pub text: String,
    /// The syslog lines written during the run (libpam's `pam_syslog` for
    /// the module among them), one a line, each `priority<TAB>text`.
    pub logged: String,
    secrets: Vec<String>,
    values: BTreeMap<String, String>,
}

impl HostRun {
    /// A `key=value` the host printed.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A number the host printed (0 when absent).
    pub fn number(&self, key: &str) -> u64 {
        self.value(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// `pam_authenticate`'s code.
    pub fn authenticate(&self) -> Option<crate::pam::PamCode> {
        self.value("authenticate")
            .and_then(|v| v.parse().ok())
            .map(crate::pam::PamCode)
    }

    /// The host exited normally after `pam_end`: no crash, abort or hang.
    pub fn survived(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.text.lines().any(|l| l == "survived")
    }

    /// Whether the fault was injected (said by the shim at once, so a run
    /// that then crashed counts too).
    pub fn injected(&self) -> bool {
        self.text
            .lines()
            .any(|l| l.starts_with("tf-shim: injected"))
    }

    /// How the run ended: `pam_authenticate`'s code, or the crash.
    pub fn outcome(&self) -> String {
        if self.survived() {
            return self.authenticate().map_or("?".into(), |c| c.name());
        }
        match self.status {
            None => "hung (killed)".into(),
            Some(s) => match s.signal() {
                Some(libc::SIGABRT) => "SIGABRT".into(),
                Some(libc::SIGSEGV) => "SIGSEGV".into(),
                Some(sig) => format!("signal {sig}"),
                None => format!("exit {}", s.code().unwrap_or(-1)),
            },
        }
    }

    /// The first line of the host's output that is not a `key=value`: the
    /// reason of a crash, usually.
    pub fn first_words(&self) -> &str {
        self.text
            .lines()
            .find(|l| !l.contains('=') && !l.starts_with("tf-shim:") && !l.is_empty())
            .unwrap_or("")
    }

    /// Where a block that still held a secret was freed: which secret (1 =
    /// the first given), the block's size and the call stack, one entry a
    /// block (the first four).
    pub fn leaks(&self) -> Vec<&str> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("freed_secret_at="))
            .collect()
    }

    /// The secrets that a syslog line or the host's output shows.
    pub fn secrets_shown(&self) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| self.logged.contains(s.as_str()) || self.text.contains(s.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// `text` with every `libpam_twofold.so+0xOFFSET` the shim printed followed
/// by the function it lies in (the outermost one, inlining undone), so a
/// failure names the module's code without a debugger.
pub fn symbolize(text: &str) -> String {
    const TAG: &str = "libpam_twofold.so+";
    let offsets: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "\"',[]".contains(c))
        .filter_map(|w| w.strip_prefix(TAG))
        .collect();
    if offsets.is_empty() {
        return text.to_owned();
    }
    let Ok(out) = Command::new("addr2line")
        .args(["-a", "-f", "-i", "-C", "-e"])
        .arg(crate::module_path())
        .args(&offsets)
        .output()
    else {
        return text.to_owned();
    };
    // -a prints each address, then (function, file:line) pairs from the
    // innermost inlined function out: the last function is the real one.
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut current = None;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        if let Some(hex) = line.strip_prefix("0x") {
            current = u64::from_str_radix(hex, 16).ok();
            continue;
        }
        if let Some(a) = current {
            names.insert(a, line.to_owned());
        }
        lines.next();
    }
    let mut result = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(TAG) {
        let after = &rest[at + TAG.len()..];
        let len = after.strip_prefix("0x").map_or(0, |h| {
            2 + h.len() - h.trim_start_matches(|c: char| c.is_ascii_hexdigit()).len()
        });
        result.push_str(&rest[..at + TAG.len() + len]);
        let name = u64::from_str_radix(after[..len].trim_start_matches("0x"), 16)
            .ok()
            .and_then(|a| names.get(&a));
        if let Some(name) = name {
            result.push_str(&format!("<{name}>"));
        }
        rest = &after[len..];
    }
    result.push_str(rest);
    result
}
