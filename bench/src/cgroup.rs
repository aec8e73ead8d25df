//! A CPU cap per fleet daemon, standing in for "each host has its own CPU":
//! one cgroup per daemon with a CFS bandwidth limit (cgroup v2 `cpu.max`,
//! or cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` where the cpu
//! controller is mounted as v1 — the same kernel mechanism), switched on
//! for the capped cells and off for the others. Removed when dropped, the
//! processes still in them moved back to the hierarchy's root first.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Prefix of the cgroups this harness makes (then its pid and a name).
const PREFIX: &str = "twofold-bench-";

/// Which interface the cpu controller has here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v2: `cpu.max` = "QUOTA PERIOD" or "max PERIOD".
    V2,
    /// cgroup v1: `cpu.cfs_quota_us` (-1 = none) and `cpu.cfs_period_us`.
    V1,
}

/// A cap: `quota_us` of CPU time per `period_us` of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// CPU microseconds allowed per period.
    pub quota_us: u64,
    /// The period, microseconds.
    pub period_us: u64,
}

impl Cap {
    /// A cap of `percent` of one core, with a period short enough that a
    /// throttled daemon waits a few milliseconds, not a tenth of a second
    /// (the kernel's smallest quota is 1 ms).
    pub fn percent(percent: u64) -> Cap {
        let percent = percent.clamp(1, 100);
        let period_us = (100_000u64.div_ceil(percent)).max(10_000);
        Cap {
            quota_us: period_us * percent / 100,
            period_us,
        }
    }

    /// The cap as a fraction of one core.
    pub fn cores(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// The mount point of the hierarchy that has the cpu controller, and its
/// version; or why there is none usable.
pub fn find() -> anyhow::Result<(PathBuf, Version)> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let mut v2 = None;
    let mut v1 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, dir, fstype, opts, ..] = f[..] else {
            continue;
        };
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(dir)),
            "cgroup" if v1.is_none() && opts.split(',').any(|o| o == "cpu") => {
                v1 = Some(PathBuf::from(dir))
            }
            _ => {}
        }
    }
    if let Some(dir) = &v2 {
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "cpu") {
            return Ok((dir.clone(), Version::V2));
        }
    }
    if let Some(dir) = v1 {
        return Ok((dir, Version::V1));
    }
    match v2 {
        Some(dir) => bail!(
            "cgroup v2 is mounted at {} but its cpu controller is not available there, \
             and no cgroup v1 hierarchy has it",
            dir.display()
        ),
        None => bail!("no cgroup hierarchy with the cpu controller is mounted"),
    }
}

/// One capped cgroup; removed when dropped.
#[derive(Debug)]
pub struct CpuGroup {
    root: PathBuf,
    dir: PathBuf,
    version: Version,
}

impl CpuGroup {
    /// Makes the cgroup `name` (this process's pid in its name) under the
    /// hierarchy's root, uncapped. On v2 the root's `subtree_control` gets
    /// `+cpu` first if it lacks it.
    pub fn create(root: &Path, version: Version, name: &str) -> anyhow::Result<CpuGroup> {
        if version == Version::V2 {
            let control = root.join("cgroup.subtree_control");
            let now = std::fs::read_to_string(&control).unwrap_or_default();
            if !now.split_whitespace().any(|c| c == "cpu") {
                std::fs::write(&control, "+cpu").with_context(|| {
                    format!("enabling the cpu controller in {}", control.display())
                })?;
            }
        }
        let dir = root.join(format!("{PREFIX}{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let g = CpuGroup {
            root: root.to_path_buf(),
            dir,
            version,
        };
        g.set(None)?;
        Ok(g)
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        let procs = self.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("moving {pid} into {}", self.dir.display()))?;
        let now = std::fs::read_to_string(&procs)?;
        if !now.lines().any(|l| l.trim() == pid.to_string()) {
            bail!("{pid} is not in {} after moving it", self.dir.display());
        }
        Ok(())
    }

    /// Sets the cap (`None`: no cap).
    pub fn set(&self, cap: Option<Cap>) -> anyhow::Result<()> {
        let write = |file: &str, value: String| {
            std::fs::write(self.dir.join(file), &value)
                .with_context(|| format!("writing {value:?} to {}", self.dir.join(file).display()))
        };
        match (self.version, cap) {
            (Version::V2, Some(c)) => write("cpu.max", format!("{} {}", c.quota_us, c.period_us)),
            (Version::V2, None) => write("cpu.max", "max".into()),
            (Version::V1, Some(c)) => {
                // The quota goes first off, so a shorter period never
                // meets a quota larger than it allows.
                write("cpu.cfs_quota_us", "-1".into())?;
                write("cpu.cfs_period_us", c.period_us.to_string())?;
                write("cpu.cfs_quota_us", c.quota_us.to_string())
            }
            (Version::V1, None) => write("cpu.cfs_quota_us", "-1".into()),
        }
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        remove(&self.root, &self.dir);
    }
}

/// Moves whatever is left in `dir` back to `root`, then removes `dir`.
fn remove(root: &Path, dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter(|l| !l.trim().is_empty()) {
        let _ = std::fs::write(root.join("cgroup.procs"), pid.trim());
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        eprintln!("bench: could not remove {}: {e}", dir.display());
    }
}

/// Removes the cgroups a killed earlier run of this harness left (their
/// pid is gone), so they do not pile up.
pub fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove(root, &e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_keep_the_fraction_with_a_short_period() {
        let c = Cap::percent(10);
        assert_eq!((c.quota_us, c.period_us), (1_000, 10_000));
        assert!((c.cores() - 0.1).abs() < 1e-9);
        let c = Cap::percent(5);
        assert_eq!((c.quota_us, c.period_us), (1_000, 20_000));
        let c = Cap::percent(3);
        assert_eq!((c.quota_us, c.period_us), (1_000, 33_334));
        let c = Cap::percent(50);
        assert_eq!((c.quota_us, c.period_us), (5_000, 10_000));
    }

    /// A busy child in a capped group gets about the cap, and the group
    /// is gone afterwards (needs root and a cpu controller, as the fleet's
    /// capped cells do; fails, with the reason, where there is none).
    #[test]
    fn a_capped_group_holds_a_busy_process_to_its_cap() {
        let (root, version) = find().expect("a cpu controller (the fleet's capped cells need one)");
        let g = CpuGroup::create(&root, version, "selftest").unwrap();
        let dir = g.dir.clone();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        g.add(pid).unwrap();
        g.set(Some(Cap::percent(10))).unwrap();
        let cpu0 = crate::twofold::process_cpu_ns(pid);
        let t = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let share =
            (crate::twofold::process_cpu_ns(pid) - cpu0) as f64 / t.elapsed().as_nanos() as f64;
        // The cap binds with the child still in the group; dropping it
        // moves the child out and removes the directory.
        drop(g);
        let _ = child.kill();
        let _ = child.wait();
        assert!(share < 0.15, "CPU share {share:.3} under a 10 % cap");
        assert!(share > 0.02, "CPU share {share:.3}: the child hardly ran");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
