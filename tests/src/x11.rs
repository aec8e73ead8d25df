//! A real X display for desktop tests: `Xvfb` on a free display, screen
//! lockers run as a test user, keys typed with `xdotool`, screenshots taken
//! with `xwd` and kept as PNG files.
//!
//! [`Display::start`] asks Xvfb to pick a free display itself
//! (`-displayfd`): the number it writes is also the sign that it accepts
//! connections, so nothing guesses a display or sleeps for it. Xvfb runs
//! without `-auth`, so the locker's user can connect as well as root's
//! `xdotool` and `xwd`; `-nolisten tcp` keeps it off the network.
//!
//! Every wait is bounded. Xvfb and each [`Locker`] are killed when their
//! value is dropped, and also if the thread that started them ends first
//! (`PR_SET_PDEATHSIG`), so a test that panics or is killed leaves no X
//! server behind. They stay in the caller's process group, so a parent that
//! kills that group at a time limit kills them too.
//!
//! Screenshots go to [`artifacts_dir`]: `$TWOFOLD_TEST_ARTIFACTS`, else
//! `test-artifacts/` in the cargo target directory. They survive the test.

use crate::system::{run_bounded, TestUser};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the directory screenshots are kept in.
pub const ARTIFACTS_ENV: &str = "TWOFOLD_TEST_ARTIFACTS";

/// How long Xvfb may take to answer, and any single `xdotool`/`xwd` run.
const X_LIMIT: Duration = Duration::from_secs(10);

/// The directory kept artefacts of `group/name` go to (created, emptied of
/// an earlier run's files): `$TWOFOLD_TEST_ARTIFACTS/group/name`, else
/// `<target dir>/test-artifacts/group/name`, where the target dir is the
/// one holding this test binary (`target/debug/deps/…`).
pub fn artifacts_dir(group: &str, name: &str) -> io::Result<PathBuf> {
    let root = match std::env::var_os(ARTIFACTS_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe()?;
            // target/<profile>/deps/<binary>: three levels up is target/.
            let target = exe
                .ancestors()
                .nth(3)
                .ok_or_else(|| io::Error::other("test binary is not in a target dir"))?;
            target.join("test-artifacts")
        }
    };
    let dir = root.join(group).join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Polls `done` every 50 ms until it is true or `limit` has passed; says
/// whether it became true.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes `cmd`'s child die with SIGKILL when the thread that spawned it ends.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SIGTERM, up to two seconds to exit, then SIGKILL; always reaped.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let gone = wait_until(Duration::from_secs(2), || {
            !matches!(child.try_wait(), Ok(None))
        });
        if !gone {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// An Xvfb server on a display of its own choosing.
#[derive(Debug)]
pub struct Display {
    /// None for a display another program started ([`Display::attach`]).
    xvfb: Option<Child>,
    number: u32,
    xauthority: Option<PathBuf>,
    artifacts: PathBuf,
    shots: u32,
}

impl Display {
    /// Starts Xvfb (1024×768, 24 bit) and waits until it answers; its log
    /// and every screenshot go to `artifacts` (see [`artifacts_dir`]).
    pub fn start(artifacts: &Path) -> io::Result<Display> {
        let log = std::fs::File::create(artifacts.join("Xvfb.log"))?;
        let mut cmd = Command::new("Xvfb");
        cmd.args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
        die_with_parent(&mut cmd);
        let mut xvfb = cmd.spawn()?;
        let mut out = xvfb
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("Xvfb stdout"))?;
        // Xvfb writes the display number once it accepts connections.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while let Ok(1) = out.read(&mut byte) {
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        });
        let number = match rx.recv_timeout(X_LIMIT) {
            Ok(n) => n.trim().parse::<u32>().ok(),
            Err(_) => None,
        };
        let Some(number) = number else {
            stop(&mut xvfb);
            let log = std::fs::read_to_string(artifacts.join("Xvfb.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "Xvfb did not report a display within {X_LIMIT:?}: {log}"
            )));
        };
        let display = Display {
            xvfb: Some(xvfb),
            number,
            xauthority: None,
            artifacts: artifacts.to_owned(),
            shots: 0,
        };
        display.xdotool(&["getdisplaygeometry"])?;
        Ok(display)
    }

    /// A display another program runs (e.g. the X server a display manager
    /// starts), reached with the cookie in `xauthority`; not stopped on drop.
    pub fn attach(number: u32, xauthority: &Path, artifacts: &Path) -> Display {
        Display {
            xvfb: None,
            number,
            xauthority: Some(xauthority.to_owned()),
            artifacts: artifacts.to_owned(),
            shots: 0,
        }
    }

    /// Sets `DISPLAY` (and `XAUTHORITY` when needed) for an X client.
    fn client_env(&self, cmd: &mut Command) {
        cmd.env("DISPLAY", self.name());
        if let Some(x) = &self.xauthority {
            cmd.env("XAUTHORITY", x);
        }
    }

    /// `:N`, for `DISPLAY`.
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// Where this display's screenshots and logs are kept.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// Runs `xdotool ARGS…` on this display, bounded; fails when it does.
    pub fn xdotool(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("xdotool");
        cmd.args(args);
        self.client_env(&mut cmd);
        let run = run_bounded(&mut cmd, "", X_LIMIT)?;
        if !run.ok() {
            return Err(io::Error::other(format!(
                "xdotool {args:?} failed ({:?}): {}",
                run.code(),
                run.text
            )));
        }
        Ok(run.text)
    }

    /// Types `text` as key presses into whoever holds the keyboard.
    pub fn type_text(&self, text: &str) -> io::Result<()> {
        self.xdotool(&["type", "--delay", "30", "--", text])
            .map(drop)
    }

    /// Presses and releases `key` (an X keysym name such as `Return`).
    pub fn key(&self, key: &str) -> io::Result<()> {
        self.xdotool(&["key", "--", key]).map(drop)
    }

    /// Types `text` and presses Return.
    pub fn enter(&self, text: &str) -> io::Result<()> {
        self.type_text(text)?;
        self.key("Return")
    }

    /// Waits up to `limit` for a visible window whose name matches the
    /// regular expression `name`.
    pub fn wait_for_window(&self, name: &str, limit: Duration) -> io::Result<()> {
        let found = wait_until(limit, || {
            self.xdotool(&["search", "--onlyvisible", "--name", name])
                .is_ok_and(|ids| !ids.trim().is_empty())
        });
        if found {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "no visible window named /{name}/ on {} within {limit:?}",
                self.name()
            )))
        }
    }

    /// The number of visible top-level windows (named or not: slock's has
    /// no name), by `xwininfo`.
    pub fn top_level_windows(&self) -> io::Result<usize> {
        let mut cmd = Command::new("xwininfo");
        cmd.args(["-root", "-children", "-display", &self.name()]);
        self.client_env(&mut cmd);
        let run = run_bounded(&mut cmd, "", X_LIMIT)?;
        if !run.ok() {
            return Err(io::Error::other(format!("xwininfo: {}", run.text)));
        }
        // `     N children:` (or `1 child:`)
        Ok(run
            .text
            .lines()
            .find_map(|l| {
                let l = l.trim();
                (l.ends_with("children:") || l.ends_with("child:"))
                    .then(|| l.split_whitespace().next()?.parse().ok())
                    .flatten()
            })
            .unwrap_or(0))
    }

    /// Whether some pixel on screen has exactly the colour `rgb` (e.g. the
    /// red an error line is drawn in), by `xwd` and netpbm's `ppmhist`.
    pub fn shows_colour(&self, rgb: (u8, u8, u8)) -> io::Result<bool> {
        let mut cmd = Command::new("bash");
        cmd.args([
            "-c",
            "set -o pipefail; xwd -root -silent -display \"$1\" | xwdtopnm 2>/dev/null | ppmhist -noheader",
            "tf-colours",
        ])
        .arg(self.name());
        self.client_env(&mut cmd);
        let run = run_bounded(&mut cmd, "", X_LIMIT)?;
        if !run.ok() {
            return Err(io::Error::other(format!("ppmhist: {}", run.text)));
        }
        let want = [rgb.0, rgb.1, rgb.2].map(|c| c.to_string());
        Ok(run.text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && f[..3] == want
        }))
    }

    /// Saves the whole screen as `NN-label.png` in the artefacts directory
    /// and returns its path.
    pub fn screenshot(&mut self, label: &str) -> io::Result<PathBuf> {
        self.shots += 1;
        let file = self
            .artifacts
            .join(format!("{:02}-{label}.png", self.shots));
        let mut cmd = Command::new("bash");
        cmd.args([
            "-c",
            "set -o pipefail; xwd -root -silent -display \"$1\" | xwdtopnm 2>/dev/null | pnmtopng > \"$2\"",
            "tf-shot",
        ])
        .arg(self.name())
        .arg(&file);
        self.client_env(&mut cmd);
        let run = run_bounded(&mut cmd, "", X_LIMIT)?;
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if !run.ok() || size == 0 {
            return Err(io::Error::other(format!(
                "screenshot {} failed ({:?}): {}",
                file.display(),
                run.code(),
                run.text
            )));
        }
        Ok(file)
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(x) = &mut self.xvfb {
            stop(x);
        }
    }
}

/// A screen locker (or any X client) running as a test user on a
/// [`Display`], its standard output and error captured to a file.
#[derive(Debug)]
pub struct Locker {
    child: Child,
    output: PathBuf,
    status: Option<ExitStatus>,
}

impl Locker {
    /// Runs `argv` as `user` (uid, gid, no supplementary groups; `HOME`,
    /// `USER`, `LOGNAME` and `DISPLAY` set, plus `env`) with a clean
    /// environment. Its output goes to `<artefacts>/<argv[0]'s name>.log`.
    pub fn spawn(
        display: &Display,
        user: &TestUser,
        argv: &[&str],
        env: &[(&str, &str)],
    ) -> io::Result<Locker> {
        let mut cmd = Locker::command(display.artifacts(), argv)?;
        cmd.0
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name)
            .env("DISPLAY", display.name())
            .envs(env.iter().copied())
            .current_dir(&user.home)
            .uid(user.uid)
            .gid(user.gid);
        Locker::start(cmd)
    }

    /// Runs `argv` as root (e.g. a display manager, which starts its own X
    /// server) with a clean environment plus `env`; output as for
    /// [`Locker::spawn`].
    pub fn spawn_root(artifacts: &Path, argv: &[&str], env: &[(&str, &str)]) -> io::Result<Locker> {
        let mut cmd = Locker::command(artifacts, argv)?;
        cmd.0.env("HOME", "/root").envs(env.iter().copied());
        Locker::start(cmd)
    }

    fn command(artifacts: &Path, argv: &[&str]) -> io::Result<(Command, PathBuf)> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::other("empty argv"))?;
        let base = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "locker".into());
        let output = artifacts.join(format!("{base}.log"));
        let log = std::fs::File::create(&output)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        Ok((cmd, output))
    }

    fn start((mut cmd, output): (Command, PathBuf)) -> io::Result<Locker> {
        let child = cmd.spawn()?;
        Ok(Locker {
            child,
            output,
            status: None,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_until(limit, || self.exited().is_some());
        self.status
    }

    /// SIGTERM to every process below this one and to itself (so an X
    /// server a display manager started removes its socket), then up to
    /// two seconds for it to exit; [`Drop`] kills what is left.
    pub fn terminate_tree(&mut self) {
        for (pid, _) in self.tree() {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: plain kill(2) on a process found below our child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        stop(&mut self.child);
        self.status = self.child.try_wait().ok().flatten();
    }

    /// Every process below this one: (pid, comm).
    fn tree(&self) -> Vec<(u32, String)> {
        let mut parents = std::collections::HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // stat is `pid (comm) state ppid …`; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if let Some(ppid) = ppid {
                parents.insert(pid, (ppid, name.to_owned()));
            }
        }
        parents
            .iter()
            .filter(|(&pid, _)| {
                let mut p = pid;
                // Bounded walk up the tree: a long chain ends the search.
                for _ in 0..64 {
                    match parents.get(&p) {
                        Some(&(pp, _)) if pp == self.pid() => return true,
                        Some(&(pp, _)) if pp > 1 => p = pp,
                        _ => return false,
                    }
                }
                false
            })
            .map(|(&pid, (_, name))| (pid, name.clone()))
            .collect()
    }

    /// Whether a process named `comm` (as in `/proc/PID/comm`) runs below
    /// this one (e.g. xsecurelock's `auth_x11`, started on a key press).
    pub fn runs_below(&self, comm: &str) -> bool {
        self.tree().iter().any(|(_, name)| name == comm)
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits up to `limit` until its output holds `pattern` at least
    /// `count` times; says whether it did.
    pub fn wait_output(&self, pattern: &str, count: usize, limit: Duration) -> bool {
        wait_until(limit, || self.output().matches(pattern).count() >= count)
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        if self.status.is_none() {
            stop(&mut self.child);
        }
    }
}
