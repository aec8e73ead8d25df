//! Real system programs (sshd, sudo, su, pamtester) in private mount
//! namespaces, so the host's configuration is never touched.
//!
//! A [`System`] is a temp directory holding copies of `/etc/passwd`,
//! `/etc/shadow`, `/etc/group`, `/etc/gshadow` and a fresh `/etc/sudoers`,
//! plus a `pam.d` directory. [`System::command`] runs a program under
//! `unshare --mount --propagation private`, with those files bind-mounted over
//! the real ones and a tmpfs over `/run` (sshd's privilege-separation
//! directory, sudo's timestamps, and no nscd socket answering from the
//! host's files). Test users exist only inside. Needs root.
//!
//! [`HostFiles`] snapshots the real files so a test can assert that they
//! did not change.

use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The host files a [`System`] shadows; none is ever written.
pub const SHADOWED: [&str; 5] = ["passwd", "shadow", "group", "gshadow", "sudoers"];

/// A test user that exists only inside a [`System`]'s namespace.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// Numeric user id (unused on the host).
    pub uid: u32,
    /// Numeric id of the user's own group.
    pub gid: u32,
    /// Home directory (inside the system's temp directory).
    pub home: PathBuf,
    /// The password pam_unix accepts.
    pub password: String,
}

/// Copies of the host's account files and a PAM directory, mounted over the
/// real ones only inside private mount namespaces.
#[derive(Debug)]
pub struct System {
    dir: tempfile::TempDir,
}

impl System {
    /// A system with copies of the host's accounts, an empty `pam.d` and a
    /// `sudoers` that grants nothing.
    pub fn new() -> io::Result<System> {
        let dir = tempfile::Builder::new().prefix("tf-sys").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let sys = System { dir };
        std::fs::create_dir(sys.etc())?;
        std::fs::create_dir(sys.pam_d())?;
        std::fs::create_dir(sys.path().join("home"))?;
        for f in ["passwd", "shadow", "group", "gshadow"] {
            let src = Path::new("/etc").join(f);
            if src.exists() {
                std::fs::copy(&src, sys.etc().join(f))?;
            }
        }
        sys.sudoers("")?;
        Ok(sys)
    }

    /// The temp directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the copies of the account files live.
    pub fn etc(&self) -> PathBuf {
        self.path().join("etc")
    }

    /// The directory mounted over `/etc/pam.d`.
    pub fn pam_d(&self) -> PathBuf {
        self.path().join("pam.d")
    }

    /// Writes `/etc/pam.d/<name>` as seen inside the namespace.
    pub fn pam_service(&self, name: &str, lines: &[String]) -> io::Result<()> {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.pam_d().join(name), text)
    }

    /// Writes `/etc/sudoers` as seen inside the namespace (root-owned, 0440,
    /// as sudo insists), after defaults that keep tests quiet and bounded.
    pub fn sudoers(&self, rules: &str) -> io::Result<()> {
        let path = self.etc().join("sudoers");
        let text = format!(
            "Defaults !lecture, !mail_badpass, !fqdn, timestamp_timeout=0, passwd_tries=1\n\
             root ALL=(ALL:ALL) ALL\n{rules}\n"
        );
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440))
    }

    /// Adds `name` with `password` (SHA-512 crypt by `openssl passwd -6`),
    /// its own group, a home directory and `/bin/sh`, on an unused uid.
    pub fn add_user(&self, name: &str, password: &str) -> io::Result<TestUser> {
        let passwd = std::fs::read_to_string(self.etc().join("passwd"))?;
        let group = std::fs::read_to_string(self.etc().join("group"))?;
        let used = |text: &str, n: u32| {
            text.lines()
                .any(|l| l.split(':').nth(2) == Some(n.to_string().as_str()))
        };
        let uid = (47_000..48_000)
            .find(|n| !used(&passwd, *n) && !used(&group, *n))
            .ok_or_else(|| io::Error::other("no free uid in 47000..48000"))?;
        let home = self.path().join("home").join(name);
        std::fs::create_dir(&home)?;
        std::os::unix::fs::chown(&home, Some(uid), Some(uid))?;
        let hash = crypt(password)?;
        let append = |file: &str, line: String| -> io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(self.etc().join(file))?;
            writeln!(f, "{line}")
        };
        append(
            "passwd",
            format!(
                "{name}:x:{uid}:{uid}:twofold test:{}:/bin/sh",
                home.display()
            ),
        )?;
        append("shadow", format!("{name}:{hash}:19000:0:99999:7:::"))?;
        append("group", format!("{name}:x:{uid}:"))?;
        if self.etc().join("gshadow").exists() {
            append("gshadow", format!("{name}:!::"))?;
        }
        Ok(TestUser {
            name: name.into(),
            uid,
            gid: uid,
            home,
            password: password.into(),
        })
    }

    /// The shell prologue that mounts this system over the host's files
    /// (inside the private namespace only), then runs `"$@"`.
    fn prologue(&self) -> String {
        let mut s = String::from("set -e\n");
        s.push_str(&format!(
            "mount --bind '{}' /etc/pam.d\n",
            self.pam_d().display()
        ));
        for f in SHADOWED {
            let copy = self.etc().join(f);
            if copy.exists() {
                s.push_str(&format!("mount --bind '{}' /etc/{f}\n", copy.display()));
            }
        }
        s.push_str("mount -t tmpfs -o mode=0755 tf-run /run\nmkdir -m 0755 /run/sshd\n");
        s.push_str("exec \"$@\"\n");
        s
    }

    /// `program args…` inside a private mount namespace with this system
    /// mounted; the argument vector for `Command` or `expect`'s `spawn`.
    pub fn argv(&self, program: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(self.prologue());
        v.push("tf-ns".into());
        v.extend(program.iter().map(|s| s.to_string()));
        v
    }

    /// A `Command` running `program args…` inside the namespace.
    pub fn command(&self, program: &[&str]) -> Command {
        let argv = self.argv(program);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }
}

/// Hashes a password the way /etc/shadow stores it.
fn crypt(password: &str) -> io::Result<String> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        writeln!(i, "{password}")?;
    }
    let out = child.wait_with_output()?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$6$") {
        return Err(io::Error::other("openssl passwd -6 failed"));
    }
    Ok(hash)
}

/// The content of the host files a [`System`] shadows, and of `/etc/pam.d`.
#[derive(Debug, PartialEq, Eq)]
pub struct HostFiles(Vec<(PathBuf, Option<Vec<u8>>)>);

impl HostFiles {
    /// Reads them now.
    pub fn snapshot() -> HostFiles {
        let mut paths: Vec<PathBuf> = SHADOWED.iter().map(|f| Path::new("/etc").join(f)).collect();
        if let Ok(rd) = std::fs::read_dir("/etc/pam.d") {
            let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            paths.extend(names);
        }
        HostFiles(
            paths
                .into_iter()
                .map(|p| {
                    let c = std::fs::read(&p).ok();
                    (p, c)
                })
                .collect(),
        )
    }

    /// Panics naming the first file that differs from `self`.
    pub fn assert_unchanged(&self) {
        let now = HostFiles::snapshot();
        for (before, after) in self.0.iter().zip(now.0.iter()) {
            assert_eq!(
                before,
                after,
                "host file {} changed during the test",
                before.0.display()
            );
        }
        assert_eq!(self.0.len(), now.0.len(), "files appeared in /etc/pam.d");
    }
}

/// What a bounded run produced.
#[derive(Debug)]
pub struct Run {
    /// The exit status (`None` when it was killed at the time limit).
    pub status: Option<ExitStatus>,
    /// Standard output and standard error, in that order.
    pub text: String,
    /// How long it ran.
    pub took: Duration,
}

impl Run {
    /// Whether it exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Its exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Runs `cmd` with `input` on stdin, killing its whole process group if it
/// is still running after `limit`.
pub fn run_bounded(cmd: &mut Command, input: &str, limit: Duration) -> io::Result<Run> {
    let start = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("stdin"))?;
        // The program may exit before reading everything; that is its business.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = wait_bounded(child, limit)?;
    Ok(Run {
        status: out.as_ref().map(|o| o.status),
        text: out
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|| format!("killed after {limit:?}")),
        took: start.elapsed(),
    })
}

/// Waits for `child` up to `limit`; on time-out kills its process group and
/// returns `None`.
fn wait_bounded(mut child: Child, limit: Duration) -> io::Result<Option<Output>> {
    let deadline = Instant::now() + limit;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // Drain both pipes in threads so a chatty child cannot block on a full pipe.
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = drain(stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err_t = drain(stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(Output {
                status,
                stdout: out_t.join().unwrap_or_default(),
                stderr: err_t.join().unwrap_or_default(),
            }));
        }
        if Instant::now() >= deadline {
            kill_group(&child);
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILLs the process group `child` leads (spawned with `process_group(0)`).
pub fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain kill(2) on a process group we created.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Runs a real terminal program through `expect`: waits for each pattern in
/// turn (exact text) and types the paired answer with Enter; then waits for
/// the end. The returned text is what the terminal showed; exit code 124
/// means a pattern never came (the text says which), 125 that the program
/// ended first. Every wait is bounded by `step` seconds.
pub fn expect(argv: &[String], dialog: &[(&str, &str)], step: u32) -> io::Result<Run> {
    let mut script = format!("set timeout {step}\nlog_user 1\nspawn -noecho {{*}}$argv\n");
    for (pattern, answer) in dialog {
        let p = tcl_quote(pattern);
        script.push_str(&format!(
            "expect {{\n  -exact {p} {{ send -- {} }}\n  timeout {{ puts \"\\nEXPECT: timed out waiting for {}\"; exit 124 }}\n  eof {{ puts \"\\nEXPECT: ended while waiting for {}\"; exit 125 }}\n}}\n",
            tcl_quote(&format!("{answer}\r")),
            tcl_brace_safe(pattern),
            tcl_brace_safe(pattern),
        ));
    }
    script.push_str(
        "expect {\n  eof {}\n  timeout { puts \"\\nEXPECT: timed out waiting for the end\"; exit 124 }\n}\n\
         set r [wait]\nif {[lindex $r 2] != 0} { exit 126 }\nexit [lindex $r 3]\n",
    );
    let dir = tempfile::Builder::new().prefix("tf-expect").tempdir()?;
    let file = dir.path().join("dialog.exp");
    std::fs::write(&file, script)?;
    let mut cmd = Command::new("expect");
    cmd.arg(&file).args(argv);
    let limit = Duration::from_secs(u64::from(step) * (dialog.len() as u64 + 1) + 5);
    run_bounded(&mut cmd, "", limit)
}

/// A Tcl word that is exactly `s`: a double-quoted string with every
/// special character escaped.
fn tcl_quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' | '"' | '$' | '[' | ']' | '{' | '}' => {
                q.push('\\');
                q.push(c);
            }
            '\r' => q.push_str("\\r"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `s` made safe to sit inside the quoted message strings of the script.
fn tcl_brace_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " :.,()@-_&".contains(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcl_quoting_keeps_text_exact() {
        assert_eq!(tcl_quote("a$b[c]\"d\\"), "\"a\\$b\\[c\\]\\\"d\\\\\"");
        assert_eq!(tcl_quote("x\r"), "\"x\\r\"");
        assert_eq!(tcl_brace_safe("Code: {$x}"), "Code: x");
    }
}
