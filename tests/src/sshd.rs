//! A real OpenSSH server on 127.0.0.1 inside a [`System`]'s private mount
//! namespace (its own port, configuration and host key; `UsePAM yes`), and
//! the real `ssh` client to log in to it through `expect`.

use crate::system::{expect, kill_group, Run, System, TestUser};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sshd binary; it must be started by absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed (with its whole process group) on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    key: PathBuf,
}

impl Sshd {
    /// Starts sshd in `sys` with `methods` as `AuthenticationMethods` (e.g.
    /// `publickey,keyboard-interactive`), authorizing a fresh client key for
    /// `user`. The PAM service is `sshd` (`sys.pam_d()/sshd`).
    pub fn start(sys: &System, user: &TestUser, methods: &str) -> io::Result<Sshd> {
        let auth = [
            "UsePAM yes".to_owned(),
            "KbdInteractiveAuthentication yes".to_owned(),
            "PasswordAuthentication no".to_owned(),
            format!("AuthenticationMethods {methods}"),
        ];
        Sshd::start_configured(sys, &[user], &auth)
    }

    /// Starts sshd in `sys` with `auth` as its authentication settings
    /// (lines of `sshd_config`, e.g. taken from the admin guide; they come
    /// before the harness's own lines, so they win), authorizing the client
    /// key for each of `users`.
    pub fn start_configured(
        sys: &System,
        users: &[&TestUser],
        auth: &[String],
    ) -> io::Result<Sshd> {
        let dir = sys.path().join("ssh");
        std::fs::create_dir_all(dir.join("authorized"))?;
        let host_key = dir.join("host_ed25519");
        let key = dir.join("client_ed25519");
        for k in [&host_key, &key] {
            if !k.exists() {
                keygen(k)?;
            }
        }
        for user in users {
            std::fs::copy(
                key.with_extension("pub"),
                dir.join("authorized").join(&user.name),
            )?;
        }
        let mut last_err = String::new();
        // A port found free may be taken before sshd binds it; try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.join("sshd_config");
            std::fs::write(&config, config_text(port, &host_key, &dir, auth))?;
            let log = dir.join(format!("sshd-{port}.log"));
            let child = sys
                .command(&[SSHD, "-D", "-e", "-f", &config.display().to_string()])
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()?;
            let mut s = Sshd {
                child,
                port,
                log,
                key: key.clone(),
            };
            match s.wait_listening() {
                Ok(()) => return Ok(s),
                Err(e) => last_err = format!("{e}: {}", s.log()),
            }
        }
        Err(io::Error::other(format!("sshd did not start: {last_err}")))
    }

    fn wait_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("sshd exited with {status}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other("sshd did not listen within 10 s"))
    }

    /// What sshd logged so far (`-e`: its log goes to stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `ssh` command line that logs `user` in and runs `remote`:
    /// the client key, no config file, no known-hosts file, one password
    /// prompt at most, keyboard-interactive allowed. The client's LogLevel
    /// stays at its default (INFO): it prints keyboard-interactive
    /// instructions, where sshd puts messages that no prompt follows.
    pub fn ssh_argv(&self, user: &str, remote: &str) -> Vec<String> {
        let port = self.port.to_string();
        let key = self.key.display().to_string();
        [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            &port,
            "-i",
            &key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            "ConnectTimeout=10",
            "-l",
            user,
            "127.0.0.1",
            remote,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Logs in with the real `ssh` client under `expect`, answering each
    /// prompt of `dialog` in turn; the text is the client's screen.
    pub fn ssh(&self, user: &str, remote: &str, dialog: &[(&str, &str)]) -> io::Result<Run> {
        expect(&self.ssh_argv(user, remote), dialog, 10)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        kill_group(&self.child);
        let _ = self.child.wait();
    }
}

/// The server configuration: `auth` first (sshd keeps the first value of
/// each keyword), then 127.0.0.1 only, PAM, keyboard-interactive, authorized
/// keys outside /tmp's strict-mode checks.
fn config_text(port: u16, host_key: &Path, dir: &Path, auth: &[String]) -> String {
    let mut text = String::new();
    for line in auth {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {}\n\
         PidFile none\n\
         UsePAM yes\n\
         KbdInteractiveAuthentication yes\n\
         PasswordAuthentication no\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile {}/authorized/%u\n\
         StrictModes no\n\
         PermitRootLogin no\n\
         UseDNS no\n\
         LoginGraceTime 30\n\
         MaxAuthTries 6\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         Banner none\n\
         LogLevel VERBOSE\n",
        host_key.display(),
        dir.display()
    ));
    text
}

fn keygen(path: &Path) -> io::Result<()> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "twofold-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ssh-keygen failed: {st}")))
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
