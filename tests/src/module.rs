//! Where the built `pam_twofold.so` is, and PAM service files naming it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Environment variable that points the harness at another build of the
/// module (e.g. a packaged one) instead of the workspace's.
pub const MODULE_ENV: &str = "TWOFOLD_PAM_MODULE";

const FILE: &str = "libpam_twofold.so";

/// The absolute path of the `libpam_twofold.so` to test.
///
/// This crate depends on `pam_twofold`, so cargo builds its cdylib into
/// `target/<profile>/deps/` before any test of this crate runs, and rebuilds
/// it whenever the module's source changes. `target/<profile>/` holds a copy
/// only when the module was built as a root (`cargo build -p pam_twofold`),
/// and that copy can be older, so the newer of the two wins. If neither
/// exists (a test binary copied elsewhere), `cargo build -p pam_twofold` is
/// run once per process. [`MODULE_ENV`] overrides all of this.
pub fn module_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match find_module() {
        Ok(p) => p,
        Err(e) => panic!("cannot find {FILE}: {e}"),
    })
    .clone()
}

fn find_module() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(MODULE_ENV) {
        let p = PathBuf::from(p);
        return if p.is_absolute() && p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{MODULE_ENV}={} is not an absolute path to a file",
                p.display()
            ))
        };
    }
    let profile_dir = profile_dir()?;
    if let Some(p) = newest(&profile_dir) {
        return Ok(p);
    }
    build(&profile_dir)?;
    newest(&profile_dir)
        .ok_or_else(|| format!("cargo built nothing under {}", profile_dir.display()))
}

/// `target/<profile>`, found from this test binary's own path.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or("test binary has no directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

fn newest(profile_dir: &Path) -> Option<PathBuf> {
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    [profile_dir.join("deps").join(FILE), profile_dir.join(FILE)]
        .into_iter()
        .filter_map(|p| mtime(&p).map(|t| (t, p)))
        .max_by_key(|(t, _): &(SystemTime, PathBuf)| *t)
        .map(|(_, p)| p)
}

fn build(profile_dir: &Path) -> Result<(), String> {
    let target_dir = profile_dir.parent().ok_or("profile dir has no parent")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("profile dir has no name")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "pam_twofold", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build -p pam_twofold failed: {status}"))
    }
}

/// One `auth` line loading the built module by absolute path with `args`.
///
/// Run as anyone but root, the line also says `daemon_uid=` with this
/// process's euid (unless `args` name one): the module trusts a daemon's
/// socket only when root or that uid holds it, and the harness's daemons
/// (fake or real, in this process or its children) run as this user.
pub fn module_line(control: &str, args: &[&str]) -> String {
    let mut line = format!("auth {control} {}", module_path().display());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me != 0 && !args.iter().any(|a| a.starts_with("daemon_uid=")) {
        line.push_str(&format!(" daemon_uid={me}"));
    }
    line
}

/// Writes the PAM service file `confdir/service` from `lines`.
pub fn write_service(confdir: &Path, service: &str, lines: &[&str]) -> io::Result<PathBuf> {
    let path = confdir.join(service);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A temporary PAM configuration directory for `pam_start_confdir`.
#[derive(Debug)]
pub struct PamConfig {
    dir: tempfile::TempDir,
}

impl PamConfig {
    /// An empty configuration directory.
    pub fn new() -> io::Result<PamConfig> {
        Ok(PamConfig {
            dir: tempfile::Builder::new().prefix("tf-pam").tempdir()?,
        })
    }

    /// The directory to pass to `PamLogin::new`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a service from raw lines.
    pub fn service(&self, service: &str, lines: &[&str]) -> io::Result<PathBuf> {
        write_service(self.dir(), service, lines)
    }

    /// Writes a service whose only auth module is `pam_twofold.so args`
    /// (`required`).
    pub fn twofold(&self, service: &str, args: &[&str]) -> io::Result<PathBuf> {
        self.service(service, &[&module_line("required", args)])
    }
}
