//! The fleet cells' PostgreSQL: a throwaway server of the run's own
//! (`initdb` and `pg_ctl` as the `postgres` user, Unix socket only), `psql`
//! on it, the CPU of its processes, and its own floor: `pgbench` with one
//! single-row `UPDATE` per transaction.
//!
//! A small copy of `twofold_tests::postgres::PgServer`, not that: the data
//! directory must be on disk under /var/tmp like the rest of the run (the
//! tests' goes to $TMPDIR, often a tmpfs, where a commit's fsync is free),
//! and a benchmark reports errors instead of panicking.

use crate::cell::CellResult;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Rows in the floor's table; each transaction updates one at random.
pub const FLOOR_ROWS: u32 = 1000;

/// The floor's one transaction (a pgbench script): one single-row UPDATE.
fn floor_script() -> String {
    format!("\\set id random(1, {FLOOR_ROWS})\nUPDATE floor SET n = n + 1 WHERE id = :id;\n")
}

/// A running PostgreSQL server, stopped and removed when dropped.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `postgres --version`, for the report.
    pub version: String,
}

/// Debian's server binaries: the newest `/usr/lib/postgresql/*/bin` that
/// has `initdb` and `pgbench` (neither is on the PATH).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists() && p.join("pgbench").exists());
    found.sort();
    found
        .pop()
        .context("no PostgreSQL server under /usr/lib/postgresql (bench/run installs postgresql)")
}

fn checked(what: &str, out: std::io::Result<Output>) -> anyhow::Result<String> {
    let out = out.with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl PgCluster {
    /// `initdb` and start a server in a new directory under /var/tmp,
    /// listening only on a Unix socket there, trust authentication,
    /// durable commits (PostgreSQL's defaults: `fsync`, `synchronous_commit`).
    pub fn start() -> anyhow::Result<PgCluster> {
        use std::os::unix::fs::PermissionsExt;
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("twofold-bench-pg-")
            .tempdir_in("/var/tmp")?;
        // The postgres user must reach its data directory and socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        checked(
            "chown",
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .arg(&data)
                .output(),
        )?;
        let version = checked(
            "postgres --version",
            Command::new(bin.join("postgres")).arg("--version").output(),
        )?;
        // --no-sync: only initdb's own files skip fsync; the server syncs.
        checked(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--no-sync"])
                .args(["-E", "UTF8", "-D"])
                .arg(&data)
                .output(),
        )?;
        let cluster = PgCluster { dir, bin, version };
        let log = cluster.dir.path().join("server.log");
        let started = checked(
            "pg_ctl start",
            as_postgres(&cluster.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(format!(
                    "-k {} -c listen_addresses='' -c max_connections=400",
                    cluster.dir.path().display()
                ))
                .args(["-w", "-t", "60", "start"])
                .output(),
        );
        if let Err(e) = started {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{e:#}\n{text}");
        }
        Ok(cluster)
    }

    /// The directory of the server's socket (`[store] host`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sql` (one or more statements, one transaction) on `db` as the
    /// superuser; the last statement's rows, unaligned.
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        checked(
            &format!("psql {sql:?}"),
            Command::new(self.bin.join("psql"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-U", "postgres", "-d", db, "-X", "-q", "-t", "-A"])
                .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
                .stdin(Stdio::null())
                .output(),
        )
    }

    /// CPU time of every server process, nanoseconds: the postmaster's own
    /// and its exited children's (which it has reaped), plus each live
    /// child's (backends, walwriter, checkpointer, autovacuum, ...).
    pub fn cpu_ns(&self) -> u64 {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Some(pm) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        else {
            return 0;
        };
        let mut ticks = 0u64;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(f) = proc_stat(pid) else { continue };
            if pid == pm {
                ticks += f.utime + f.stime + f.cutime + f.cstime;
            } else if f.ppid == pm {
                ticks += f.utime + f.stime;
            }
        }
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        ticks * 1_000_000_000 / hz
    }

    /// Creates `db` with the floor's table of [`FLOOR_ROWS`] rows and
    /// writes the pgbench script into `dir`; returns the script's path.
    pub fn floor_setup(&self, db: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        self.psql("postgres", &format!("CREATE DATABASE {db}"))?;
        self.psql(
            db,
            &format!(
                "CREATE TABLE floor (id integer PRIMARY KEY, n bigint NOT NULL);
                 INSERT INTO floor SELECT g, 0 FROM generate_series(1, {FLOOR_ROWS}) g"
            ),
        )?;
        // Alone: VACUUM cannot run in the transaction of a multi-statement -c.
        self.psql(db, "VACUUM ANALYZE floor")?;
        let script = dir.join("floor.pgbench");
        std::fs::write(&script, floor_script())?;
        Ok(script)
    }

    /// Runs pgbench on `db` with `script`: `clients` connections for
    /// `seconds`, prepared statements (as twofoldd's pool uses), one log
    /// line per transaction under `log_prefix`. The result: per-transaction
    /// latency (pgbench's own, from the transaction's start to its end at
    /// the client), its CPU (this process's reaped children, so nothing else
    /// may run and end meanwhile), and a span such that `per_second()` is
    /// pgbench's `tps` (without the initial connection time).
    pub fn pgbench(
        &self,
        db: &str,
        script: &Path,
        clients: usize,
        seconds: u64,
        log_prefix: &Path,
    ) -> anyhow::Result<CellResult> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu0 = children_cpu_ns();
        let out = checked(
            "pgbench",
            Command::new(self.bin.join("pgbench"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-U", "postgres", "-n", "-M", "prepared", "-f"])
                .arg(script)
                .arg(format!("--client={clients}"))
                .arg(format!("--jobs={}", clients.min(cores)))
                .arg(format!("--time={seconds}"))
                .arg("--log")
                .arg(format!("--log-prefix={}", log_prefix.display()))
                .arg(db)
                .stdin(Stdio::null())
                .output(),
        )?;
        let cpu = children_cpu_ns().saturating_sub(cpu0);
        let tps: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no tps in pgbench's output: {out}"))?;
        let mut r = CellResult::default();
        let (dir, stem) = (
            log_prefix.parent().context("log prefix")?,
            log_prefix
                .file_name()
                .and_then(|s| s.to_str())
                .context("log prefix")?,
        );
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(&format!("{stem}.")) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path())?;
            parse_log(&text, &mut r)?;
            std::fs::remove_file(entry.path())?;
        }
        if r.n == 0 || tps <= 0.0 {
            bail!("pgbench ran no transaction: {out}");
        }
        r.latencies.sort_unstable();
        r.harness_cpu_ns = cpu;
        r.wall_ns = ((r.n - r.failed) as f64 / tps * 1e9) as u64;
        Ok(r)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c.stdin(Stdio::null());
    c
}

/// Adds one pgbench per-transaction log to `r`. A line is `client_id
/// transaction_no time script_no time_epoch time_us [...]`, `time` the
/// transaction's latency in µs, or `failed` / `skipped`.
fn parse_log(text: &str, r: &mut CellResult) -> anyhow::Result<()> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let time = line
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("malformed pgbench log line {line:?}"))?;
        r.n += 1;
        match time.parse::<u64>() {
            Ok(us) => r.latencies.push(us * 1000),
            Err(_) => r.failed += 1,
        }
    }
    Ok(())
}

/// The fields of `/proc/PID/stat` this needs (clock ticks).
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn proc_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces) in parentheses:
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime ...
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: n(1)? as u32,
        utime: n(11)?,
        stime: n(12)?,
        cutime: n(13)?,
        cstime: n(14)?,
    })
}

/// CPU (user + system) of this process's children that have been waited
/// for, nanoseconds.
fn children_cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_logs_give_latencies_and_failures() {
        let mut r = CellResult::default();
        let log = "0 0 412 0 1700000000 123456\n0 1 388 0 1700000000 124000\n\
                   1 0 failed 0 1700000000 125000\n\n";
        parse_log(log, &mut r).unwrap();
        assert_eq!((r.n, r.failed), (3, 1));
        assert_eq!(r.latencies, [412_000, 388_000]);
        assert!(parse_log("0 0\n", &mut r).is_err());
    }

    #[test]
    fn proc_stat_reads_this_process() {
        let s = proc_stat(std::process::id()).expect("own stat");
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
    }
}
