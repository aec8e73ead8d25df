//! The machine and versions a run reports, what one durable write costs on
//! its disk, module sizes, and the check of the harness's TOTP against
//! `oathtool`.

use crate::worker::monotonic_ns;
use anyhow::{bail, Context};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use twofold_tests::otp::{base32_decode, oathtool, totp_sha1};

/// What a run ran on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// CPU model and count.
    pub cpu: String,
    /// Memory.
    pub memory: String,
    /// `uname -r`.
    pub kernel: String,
    /// Filesystem type of the work directory.
    pub filesystem: String,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_start: String,
    /// Package versions (Debian and bundled SQLite).
    pub versions: Vec<(String, String)>,
    /// `(module, bytes)`: sizes of the PAM modules as loaded.
    pub so_sizes: Vec<(String, u64)>,
    /// pam_twofold.so stripped of symbols, bytes (what a package ships).
    pub twofold_stripped: Option<u64>,
    /// Median of 4 KiB write + fdatasync on the work directory's disk, ns.
    pub fdatasync_ns: u64,
    /// Median of write new file + fsync + rename (how google-authenticator
    /// saves its state), ns.
    pub replace_file_ns: u64,
}

impl Machine {
    /// Looks at this machine; `dir` is the work directory.
    pub fn probe(dir: &Path, module: &Path) -> anyhow::Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let mut versions = vec![(
            "twofold".to_owned(),
            format!("{} ({})", env!("CARGO_PKG_VERSION"), git_rev()),
        )];
        for pkg in [
            "libpam0g",
            "libpam-modules",
            "libpam-google-authenticator",
            "libpam-oath",
            "liboath0",
            "oathtool",
        ] {
            versions.push((pkg.to_owned(), dpkg_version(pkg)));
        }
        versions.push(("SQLite (bundled)".into(), rusqlite::version().to_owned()));
        let mut so_sizes = vec![("pam_twofold.so".to_owned(), size(module))];
        for name in [
            "pam_google_authenticator.so",
            "pam_oath.so",
            "pam_permit.so",
        ] {
            let p = crate::anchors::system_module(name)?;
            so_sizes.push((name.to_owned(), size(&p)));
        }
        let stripped = dir.join("pam_twofold.stripped.so");
        let twofold_stripped = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(module)
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| size(&stripped));
        Ok(Machine {
            cpu: format!("{model}, {cores} cores"),
            memory: format!("{:.1} GiB", mem_kib as f64 / 1024.0 / 1024.0),
            kernel: command_line("uname", &["-r"]),
            filesystem: fs_of(dir),
            load_start: load_average(),
            versions,
            so_sizes,
            twofold_stripped,
            fdatasync_ns: fdatasync_cost(dir)?,
            replace_file_ns: replace_file_cost(dir)?,
        })
    }
}

fn fs_of(dir: &Path) -> String {
    // findmnt names ext4 as such; stat -f only knows the shared ext2/3/4 magic.
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .arg(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    run("findmnt", &["-n", "-o", "FSTYPE", "--target"])
        .or_else(|| run("stat", &["-f", "-c", "%T"]))
        .unwrap_or_default()
}

/// The 1-minute load average: anything above ~0 means other work shared
/// the CPUs with the run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn dpkg_version(pkg: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", pkg])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "not installed".into())
}

fn git_rev() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown commit".into())
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// What SQLite's WAL commit pays: overwrite 4 KiB of a file and fdatasync.
fn fdatasync_cost(dir: &Path) -> anyhow::Result<u64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    for _ in 0..200 {
        let t = monotonic_ns();
        f.write_all(&block)?;
        f.sync_data()?;
        samples.push(monotonic_ns() - t);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(median(samples))
}

/// What google-authenticator pays to save its state: a new file, fsync, rename.
fn replace_file_cost(dir: &Path) -> anyhow::Result<u64> {
    let path = dir.join("replace-probe");
    let tmp = dir.join("replace-probe~");
    let mut samples = Vec::new();
    for _ in 0..200 {
        let t = monotonic_ns();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o400)
            .open(&tmp)?;
        f.write_all(&[0x5au8; 200])?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        samples.push(monotonic_ns() - t);
    }
    std::fs::remove_file(&path)?;
    Ok(median(samples))
}

/// Fails unless the harness's TOTP agrees with `oathtool` (an independent
/// implementation) on a few secrets and instants, including now.
pub fn check_totp_against_oathtool() -> anyhow::Result<()> {
    let now = crate::unix_now();
    for b32 in [
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ] {
        let secret = base32_decode(b32).context("test secret")?;
        for t in [59, 1_111_111_109, now] {
            let ours = totp_sha1(&secret, t, 6);
            let theirs = std::panic::catch_unwind(|| oathtool(b32, t))
                .map_err(|_| anyhow::anyhow!("oathtool is missing (bench/run installs it)"))?;
            if ours != theirs {
                bail!("harness TOTP disagrees with oathtool at t={t}");
            }
        }
    }
    Ok(())
}
