//! One cell of the table: a product, a path (success, wrong code, backup
//! code) and a number of logins in flight, run by that many worker processes
//! started together.

use crate::items::{self, Item};
use crate::worker::WorkerArgs;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct CellSpec<'a> {
    /// Short name for files and messages, e.g. `twofold-success-16`.
    pub name: String,
    /// PAM configuration directory.
    pub confdir: &'a Path,
    /// PAM service in `confdir`; several, comma-separated, take the logins
    /// in turn ([`crate::worker::service_for`]).
    pub service: &'a str,
    /// Logins in flight (worker processes).
    pub concurrency: usize,
    /// The logins, handed out round-robin; at most this many run.
    pub items: Vec<Item>,
    /// Workers stop starting logins after this long.
    pub limit: Duration,
    /// The PAM code every login must end with.
    pub expect: i32,
    /// Count logins that end otherwise instead of failing the run (for an
    /// anchor that refuses logins under contention, e.g. pam_oath's lock).
    pub tolerate: bool,
}

/// What a cell measured.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    /// Logins run.
    pub n: usize,
    /// Per-login latency (pam_start to pam_end), nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// From the first worker's start to the last one's end.
    pub wall_ns: u64,
    /// CPU of the worker processes during their login loops.
    pub harness_cpu_ns: u64,
    /// CPU of the daemon process over the cell (0 for in-process modules).
    pub daemon_cpu_ns: u64,
    /// Logins that ended with another code than expected (tolerated cells only).
    pub failed: usize,
}

impl CellResult {
    /// The `q` quantile of latency (nearest rank), nanoseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        quantile(&self.latencies, q)
    }

    /// Logins that ended as expected, per second of the cell's wall time.
    pub fn per_second(&self) -> f64 {
        if self.wall_ns == 0 {
            return 0.0;
        }
        (self.n - self.failed) as f64 * 1e9 / self.wall_ns as f64
    }

    /// Adds another run of the same cell (a later round).
    pub fn merge(&mut self, other: CellResult) {
        self.n += other.n;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self.wall_ns += other.wall_ns;
        self.harness_cpu_ns += other.harness_cpu_ns;
        self.daemon_cpu_ns += other.daemon_cpu_ns;
        self.failed += other.failed;
    }

    /// CPU (harness + daemon) per login, nanoseconds.
    pub fn cpu_per_login(&self) -> u64 {
        (self.harness_cpu_ns + self.daemon_cpu_ns) / self.n.max(1) as u64
    }
}

/// Nearest-rank quantile of sorted `v`; 0 when empty.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

struct Worker {
    child: Child,
    out: BufReader<ChildStdout>,
}

/// Runs a cell. `daemon_cpu` reads the daemon's CPU time (ns), if any.
/// Fails when a login ends with another code than `expect`.
pub fn run(
    spec: &CellSpec<'_>,
    workdir: &Path,
    daemon_cpu: &dyn Fn() -> u64,
) -> anyhow::Result<CellResult> {
    let exe = std::env::current_exe().context("current_exe")?;
    let items_file: PathBuf = workdir.join(format!("{}.items", spec.name));
    items::write(&items_file, &spec.items)?;
    let per_worker = spec.items.len().div_ceil(spec.concurrency.max(1));
    let mut workers = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency {
        let args = WorkerArgs {
            confdir: spec.confdir.to_path_buf(),
            service: spec.service.to_owned(),
            items: items_file.clone(),
            first: i,
            stride: spec.concurrency,
            count: per_worker,
            limit: spec.limit,
        };
        let mut child = Command::new(&exe)
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning a worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        workers.push(Worker {
            child,
            out: BufReader::new(stdout),
        });
    }
    for w in &mut workers {
        let mut line = String::new();
        w.out.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("{}: a worker did not start: {line:?}", spec.name);
        }
    }
    let cpu0 = daemon_cpu();
    for w in &mut workers {
        let stdin = w.child.stdin.as_mut().context("worker stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
    }
    let mut result = CellResult::default();
    let (mut first, mut last) = (u64::MAX, 0u64);
    let mut bad = Vec::new();
    for mut w in workers {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut w.out, &mut text)?;
        let status = w.child.wait()?;
        if !status.success() {
            bail!("{}: a worker failed ({status})", spec.name);
        }
        for line in text.lines() {
            let mut f = line.split(' ');
            match f.next() {
                Some("done") => {
                    let v: Vec<u64> = f.map(str::parse).collect::<Result<_, _>>()?;
                    let [n, s, e, cpu] = v[..] else {
                        bail!("{}: malformed worker summary {line:?}", spec.name);
                    };
                    result.n += n as usize;
                    if n > 0 {
                        first = first.min(s);
                        last = last.max(e);
                    }
                    result.harness_cpu_ns += cpu;
                }
                Some("codes") => {
                    for kv in f.filter(|s| !s.is_empty()) {
                        let (code, count) = kv.split_once(':').context("codes")?;
                        let code: i32 = code.parse()?;
                        if code != spec.expect {
                            result.failed += count.parse::<usize>()?;
                            bad.push(format!("{count}× PAM code {code}"));
                        }
                    }
                }
                Some("lat") => {
                    for v in f.filter(|s| !s.is_empty()) {
                        result.latencies.push(v.parse()?);
                    }
                }
                _ => bail!("{}: unexpected worker output {line:?}", spec.name),
            }
        }
    }
    result.daemon_cpu_ns = daemon_cpu().saturating_sub(cpu0);
    if !bad.is_empty() && !spec.tolerate {
        bail!(
            "{}: expected PAM code {} for every login, got {}",
            spec.name,
            spec.expect,
            bad.join(", ")
        );
    }
    if result.n == 0 {
        bail!("{}: no login ran", spec.name);
    }
    result.wall_ns = last.saturating_sub(first);
    result.latencies.sort_unstable();
    let _ = std::fs::remove_file(&items_file);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[7], 0.99), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn cpu_and_rate_are_per_login() {
        let r = CellResult {
            n: 4,
            latencies: vec![1, 2, 3, 4],
            wall_ns: 2_000_000_000,
            harness_cpu_ns: 400,
            daemon_cpu_ns: 400,
            failed: 0,
        };
        assert_eq!(r.cpu_per_login(), 200);
        assert!((r.per_second() - 2.0).abs() < 1e-9);
        let mut m = r.clone();
        m.merge(CellResult {
            n: 2,
            latencies: vec![0, 9],
            wall_ns: 1_000_000_000,
            harness_cpu_ns: 200,
            daemon_cpu_ns: 400,
            failed: 1,
        });
        assert_eq!(m.latencies, [0, 1, 2, 3, 4, 9]);
        assert_eq!((m.n, m.failed, m.cpu_per_login()), (6, 1, 1400 / 6));
        assert!((m.per_second() - 5.0 / 3.0).abs() < 1e-9);
    }
}
