//! `twofold-bench`: logins through the real libpam against twofold and the
//! anchors, in one run on one machine. `bench/run` builds and runs it;
//! BENCHMARKS.md shows a run and how to read it.
//!
//! ```text
//! twofold-bench [--smoke] [--users N] [--small-users N] [--logins N]
//!               [--backup-logins N] [--seconds S] [--concurrency 1,4,16,64]
//!               [--fleet-concurrency 1,16,64] [--fleet-cap PERCENT] [--only host|fleet]
//!               [--twofoldd PATH] [--module PATH] [--out FILE] [--workdir DIR]
//! twofold-bench worker ...   (internal: one process of logins in flight)
//! ```

mod anchors;
mod argon2check;
mod cell;
mod cgroup;
mod fleet;
mod fleetreport;
mod items;
mod machine;
mod pg;
mod plan;
mod profile;
mod report;
mod twofold;
mod worker;

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: twofold-bench [options]\n\
\n\
  --smoke              a small, fast run that checks the harness works (CI)\n\
  --users N            users enrolled in the large phase (default 100000)\n\
  --small-users N      users enrolled in the small phase (default 100)\n\
  --logins N           logins per cell at most, success and wrong code (default 1000)\n\
  --backup-logins N    backup-code logins per cell at most (default 200)\n\
  --seconds S          a cell stops starting logins after S seconds (default 5)\n\
  --concurrency LIST   logins in flight, comma-separated (default 1,4,16,64)\n\
  --fleet-concurrency LIST\n\
                       logins in flight of the fleet cells (default 1,16,64)\n\
  --fleet-cap PERCENT  CPU cap of each fleet daemon in the capped cells, percent of\n\
                       one core (default 5; a cgroup per daemon, one host's CPU)\n\
  --only host|fleet    run only the single-host cells (twofold on SQLite beside the\n\
                       anchors, memory, sizes, argon2 count) or only the fleet cells\n\
                       (twofoldd on PostgreSQL, 1 and 3 daemons, beside SQLite and\n\
                       pgbench on the same server); default both\n\
  --twofoldd PATH      the twofoldd to run (default: next to this binary)\n\
  --module PATH        the pam_twofold.so to load (default: next to this binary)\n\
  --workdir DIR        where databases, secrets and users files go (default: a\n\
                       fresh directory under /var/tmp, removed at the end)\n\
  --out FILE           also write the Markdown report to FILE\n\
  --profile DIR        afterwards, re-run twofold cells under perf (record, trace -s)\n\
                       on fresh users and write the profiles to DIR\n";

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Users in the large phase.
    pub users: usize,
    /// Users in the small phase.
    pub small_users: usize,
    /// Cap on logins per success or wrong-code cell.
    pub logins: usize,
    /// Cap on logins per backup-code cell.
    pub backup_logins: usize,
    /// Time cap per cell.
    pub seconds: Duration,
    /// Logins in flight.
    pub concurrency: Vec<usize>,
    /// Logins in flight of the fleet cells.
    pub fleet_concurrency: Vec<usize>,
    /// CPU cap per daemon in the capped fleet cells, percent of one core.
    pub fleet_cap: u64,
    /// Run the single-host cells.
    pub host: bool,
    /// Run the fleet cells.
    pub fleet: bool,
    /// twofoldd binary.
    pub twofoldd: PathBuf,
    /// pam_twofold.so.
    pub module: PathBuf,
    /// Work directory (created); `None` = a temp dir.
    pub workdir: Option<PathBuf>,
    /// Report file.
    pub out: Option<PathBuf>,
    /// Where perf profiles go; `None` = no profiling.
    pub profile: Option<PathBuf>,
    /// Whether this is the CI smoke run.
    pub smoke: bool,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let here = std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_path_buf();
        let mut o = Options {
            users: 100_000,
            small_users: 100,
            logins: 1000,
            backup_logins: 200,
            seconds: Duration::from_secs(5),
            concurrency: vec![1, 4, 16, 64],
            fleet_concurrency: vec![1, 16, 64],
            fleet_cap: 5,
            host: true,
            fleet: true,
            twofoldd: here.join("twofoldd"),
            module: here.join("libpam_twofold.so"),
            workdir: None,
            out: None,
            profile: None,
            smoke: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            let num = |v: String, name: &str| -> anyhow::Result<usize> {
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name} must be a positive integer, not {v:?}"),
                }
            };
            match a.as_str() {
                "--smoke" => {
                    o.smoke = true;
                    o.users = 400;
                    o.small_users = 20;
                    o.logins = 40;
                    o.backup_logins = 20;
                    o.seconds = Duration::from_secs(3);
                    o.concurrency = vec![1, 4];
                    o.fleet_concurrency = vec![1, 4];
                }
                "--users" => o.users = num(value(a)?, a)?,
                "--fleet-cap" => match num(value(a)?, a)? {
                    p @ 1..=100 => o.fleet_cap = p as u64,
                    p => bail!("--fleet-cap is a percent of one core, 1 to 100, not {p}"),
                },
                "--small-users" => o.small_users = num(value(a)?, a)?,
                "--logins" => o.logins = num(value(a)?, a)?,
                "--backup-logins" => o.backup_logins = num(value(a)?, a)?,
                "--seconds" => o.seconds = Duration::from_secs(num(value(a)?, a)? as u64),
                "--concurrency" | "--fleet-concurrency" => {
                    let list = value(a)?
                        .split(',')
                        .map(|s| num(s.trim().to_owned(), a))
                        .collect::<anyhow::Result<_>>()?;
                    if a == "--concurrency" {
                        o.concurrency = list;
                    } else {
                        o.fleet_concurrency = list;
                    }
                }
                "--only" => match value(a)?.as_str() {
                    "host" => (o.host, o.fleet) = (true, false),
                    "fleet" => (o.host, o.fleet) = (false, true),
                    other => bail!("--only takes host or fleet, not {other:?}"),
                },
                "--twofoldd" => o.twofoldd = value(a)?.into(),
                "--module" => o.module = value(a)?.into(),
                "--workdir" => o.workdir = Some(value(a)?.into()),
                "--out" => o.out = Some(value(a)?.into()),
                "--profile" => o.profile = Some(value(a)?.into()),
                other => bail!("unknown argument {other:?}"),
            }
        }
        let extra = if o.profile.is_some() { 3 } else { 0 };
        let needed = o.small_users + o.logins * (o.concurrency.len() + extra);
        if o.host && o.users < needed {
            bail!(
                "--users must be at least --small-users + --logins × levels of --concurrency ({needed}): \
                 each successful login uses a fresh user"
            );
        }
        for p in [&o.twofoldd, &o.module] {
            if !p.is_file() {
                bail!("{} is not built (bench/run builds it)", p.display());
            }
        }
        Ok(o)
    }
}

/// Seconds since the epoch, from the system clock (what every product reads).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => worker::WorkerArgs::parse(&args[1..]).and_then(|a| worker::run(&a)),
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Options::parse(&args).and_then(|o| plan::run(&o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
