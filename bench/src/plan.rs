//! The run: a small phase (100 users enrolled) and a large one (100 000),
//! each product measured in the same run, on the same users and secrets.

use crate::anchors::{self, GaUser, Services, GOOGLE, OATH, PERMIT, TWOFOLD};
use crate::cell::{self, CellResult, CellSpec};
use crate::items::{Answer, Item};
use crate::profile::{self, Kind};
use crate::report::{Report, Row};
use crate::twofold::{self, Daemon, TfUser};
use crate::{argon2check, machine, Options};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Instant;

const PAM_SUCCESS: i32 = 0;
const PAM_AUTH_ERR: i32 = 7;

/// Which login path a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The current TOTP code.
    Success,
    /// A wrong six-digit code.
    Wrong,
    /// A backup (twofold) or scratch (google-authenticator) code.
    Backup,
}

impl Route {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Route::Success => "success",
            Route::Wrong => "wrong code",
            Route::Backup => "backup code",
        }
    }
}

struct Run<'a> {
    o: &'a Options,
    dir: &'a Path,
    services: Services,
    daemon: Daemon,
    tf: Vec<TfUser>,
    ga: Vec<GaUser>,
    report: Report,
}

/// Runs everything and prints (and writes) the report.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    machine::check_totp_against_oathtool()?;
    let tmp;
    let dir = match &o.workdir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            // On disk, not tmpfs: the durable writes are part of what is measured.
            tmp = tempfile::Builder::new()
                .prefix("twofold-bench-")
                .tempdir_in("/var/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let mut report = Report::new(o, machine::Machine::probe(&dir, &o.module)?);
    eprintln!("bench: work directory {}", dir.display());
    let config = twofold::config_in(&dir);
    let ga_dir = dir.join("google-authenticator");
    let oath_file = dir.join("users.oath");
    let services = Services::write(
        &dir.join("pam.d"),
        &o.module,
        &config.daemon.socket,
        &ga_dir,
        &oath_file,
    )?;
    let daemon = Daemon::start(&o.twofoldd, &dir, config)?;
    report.argon2_ns = twofold::argon2_cost_ns();
    let mut run = Run {
        o,
        dir: &dir,
        services,
        daemon,
        tf: Vec::new(),
        ga: Vec::new(),
        report,
    };
    run.small_phase()?;
    run.large_phase()?;
    run.daemon.stop()?;
    run.report.argon2_count = Some(argon2check::run(&dir.join("argon2-count"), &o.module)?);
    run.report.total = started.elapsed();
    let text = run.report.markdown();
    println!("{text}");
    if let Some(out) = &o.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("bu{i:06}")).collect()
}

impl Run<'_> {
    fn small_phase(&mut self) -> anyhow::Result<()> {
        let o = self.o;
        let t = Instant::now();
        self.tf = twofold::enroll_start(&self.daemon, &names(0..o.small_users), 2)?;
        let daemon = &self.daemon;
        std::thread::scope(|s| -> anyhow::Result<()> {
            let half = self.tf.len().div_ceil(2);
            let hs: Vec<_> = self
                .tf
                .chunks_mut(half.max(1))
                .map(|part| {
                    s.spawn(move || {
                        part.iter_mut()
                            .try_for_each(|u| twofold::confirm(daemon, u))
                    })
                })
                .collect();
            for h in hs {
                h.join()
                    .map_err(|_| anyhow::anyhow!("confirm thread panicked"))??;
            }
            Ok(())
        })?;
        self.report.small_enroll = t.elapsed();
        let ga_users = o.small_users + o.logins * o.concurrency.len();
        let t = Instant::now();
        self.ga = anchors::ga_enroll(
            &self.dir.join("google-authenticator"),
            &names(0..ga_users),
            2,
        )?;
        self.report.ga_enroll = (ga_users, t.elapsed());
        self.write_oath(o.small_users)?;
        self.report.rss_small_idle = self.daemon.rss_kib().0;
        eprintln!("bench: {} users enrolled; small phase", o.small_users);
        for product in [PERMIT, OATH, GOOGLE, TWOFOLD] {
            let items = self.items(product, Route::Success, 0, o.small_users);
            let r = self.cell(product, Route::Success, 1, items, "small")?;
            self.report
                .rows
                .push(Row::new("100", product, Route::Success, 1, r));
        }
        Ok(())
    }

    fn large_phase(&mut self) -> anyhow::Result<()> {
        let o = self.o;
        let t = Instant::now();
        let more = twofold::enroll_start(&self.daemon, &names(o.small_users..o.users), 4)?;
        let started = t.elapsed();
        self.daemon.stop()?;
        let t2 = Instant::now();
        let n = twofold::bulk_confirm(&self.daemon.config.daemon.database, 10)?;
        if n != more.len() {
            bail!(
                "bulk confirmation confirmed {n} users, expected {}",
                more.len()
            );
        }
        let confirmed = t2.elapsed();
        self.daemon.restart()?;
        self.tf.extend(more);
        self.report.large_enroll = (o.users - o.small_users, started, confirmed);
        self.write_oath(o.users)?;
        self.report.rss_large_idle = self.daemon.rss_kib().0;
        let label = if o.users == 100_000 {
            "100k".to_owned()
        } else {
            o.users.to_string()
        };
        eprintln!("bench: {} users enrolled; large phase", o.users);
        // The small phase logged in users 0..small; every success here takes fresh ones.
        let mut next = o.small_users;
        for &c in &o.concurrency {
            for product in [PERMIT, OATH, GOOGLE, TWOFOLD] {
                let items = self.items(product, Route::Success, next, o.logins);
                let r = self.cell(product, Route::Success, c, items, &label)?;
                self.report
                    .rows
                    .push(Row::new(&label, product, Route::Success, c, r));
            }
            next += o.logins;
        }
        // One wrong code per user per cell, so no rate limit could interfere.
        for &c in &o.concurrency {
            for product in [PERMIT, OATH, GOOGLE, TWOFOLD] {
                let items = self.items(product, Route::Wrong, o.small_users, o.logins);
                let r = self.cell(product, Route::Wrong, c, items, &label)?;
                self.report
                    .rows
                    .push(Row::new(&label, product, Route::Wrong, c, r));
            }
        }
        self.report.rss_loaded = self.daemon.rss_kib();
        let mut used = 0;
        for &c in &o.concurrency {
            for product in [PERMIT, GOOGLE, TWOFOLD] {
                let items = self.items(product, Route::Backup, used, o.backup_logins);
                let r = self.cell(product, Route::Backup, c, items, &label)?;
                self.report
                    .rows
                    .push(Row::new(&label, product, Route::Backup, c, r));
            }
            used += o.backup_logins;
        }
        self.report.rss_backup = self.daemon.rss_kib();
        if let Some(dir) = &o.profile {
            self.profiles(dir, &label, next, used)?;
        }
        Ok(())
    }

    /// Re-runs twofold cells under perf, on fresh users and codes, after
    /// every measured cell.
    fn profiles(
        &mut self,
        dir: &Path,
        label: &str,
        next: usize,
        used: usize,
    ) -> anyhow::Result<()> {
        let o = self.o;
        let runs = [
            (Route::Success, 1, next, Kind::Syscalls),
            (Route::Success, 16, next + o.logins, Kind::Cpu),
            (Route::Wrong, 1, next + 2 * o.logins, Kind::Cpu),
            (Route::Backup, 1, used, Kind::Cpu),
        ];
        for (route, c, first, kind) in runs {
            let count = if route == Route::Backup {
                o.backup_logins
            } else {
                o.logins
            };
            let items = self.items(TWOFOLD, route, first, count);
            let name = format!("twofold-{}-{c}", route.name().replace(' ', "-"));
            let p = profile::start(kind, self.daemon.pid(), dir, &name)?;
            let r = self.cell(TWOFOLD, route, c, items, &format!("profile-{label}"))?;
            let file = p.finish()?;
            self.report.profiles.push((name, file, r));
        }
        Ok(())
    }

    /// pam_oath's users file with the first `n` users and twofold's secrets.
    fn write_oath(&self, n: usize) -> anyhow::Result<()> {
        let users: Vec<(&str, &[u8])> = self.tf[..n]
            .iter()
            .map(|u| (u.user.as_str(), u.secret.as_slice()))
            .collect();
        anchors::write_oath_file(&self.dir.join("users.oath"), &users)
    }

    /// `count` logins of `product` on `path`, from user `first` on (backup
    /// codes: the `first`-th code on, spread over the users that have them).
    fn items(&self, product: &str, path: Route, first: usize, count: usize) -> Vec<Item> {
        let totp = |user: &str, secret: &[u8]| match path {
            Route::Wrong => Item::new(user, Answer::Wrong(secret.to_vec())),
            _ => Item::new(user, Answer::Totp(secret.to_vec())),
        };
        match (product, path) {
            (PERMIT, _) => (first..first + count)
                .map(|i| Item::new(&format!("bu{i:06}"), Answer::None))
                .collect(),
            (GOOGLE, Route::Backup) => codes(&self.ga, first, count, |u| &u.scratch, |u| &u.user),
            (TWOFOLD, Route::Backup) => {
                let with_codes = &self.tf[..self.o.small_users];
                codes(with_codes, first, count, |u| &u.backup_codes, |u| &u.user)
            }
            (GOOGLE, _) => self.ga[first..(first + count).min(self.ga.len())]
                .iter()
                .map(|u| totp(&u.user, &u.secret))
                .collect(),
            _ => self.tf[first..(first + count).min(self.tf.len())]
                .iter()
                .map(|u| totp(&u.user, &u.secret))
                .collect(),
        }
    }

    fn cell(
        &self,
        product: &str,
        path: Route,
        concurrency: usize,
        items: Vec<Item>,
        phase: &str,
    ) -> anyhow::Result<CellResult> {
        let expect = match (product, path) {
            (PERMIT, _) | (_, Route::Success | Route::Backup) => PAM_SUCCESS,
            (_, Route::Wrong) => PAM_AUTH_ERR,
        };
        let name = format!(
            "{phase}-{product}-{}-{concurrency}",
            path.name().replace(' ', "-")
        );
        let spec = CellSpec {
            name: name.clone(),
            confdir: &self.services.confdir,
            service: product,
            concurrency,
            items,
            limit: self.o.seconds,
            expect,
            tolerate: product == OATH,
        };
        let daemon_cpu = || {
            if product == TWOFOLD {
                self.daemon.cpu_ns()
            } else {
                0
            }
        };
        let r = cell::run(&spec, self.dir, &daemon_cpu)
            .with_context(|| format!("cell {name} (twofoldd log: {})", self.daemon.log_tail()))?;
        eprintln!(
            "bench: {name}: n={} failed={} p50={:.3} ms p99={:.3} ms {:.0}/s",
            r.n,
            r.failed,
            r.quantile(0.5) as f64 / 1e6,
            r.quantile(0.99) as f64 / 1e6,
            r.per_second()
        );
        Ok(r)
    }
}

/// The `first`..`first + count` single-use codes of `users`, taken across
/// users first (code 0 of every user, then code 1, ...), so consecutive
/// logins are different users.
fn codes<U>(
    users: &[U],
    first: usize,
    count: usize,
    list: impl Fn(&U) -> &Vec<String>,
    name: impl Fn(&U) -> &String,
) -> Vec<Item> {
    let n = users.len().max(1);
    (first..first + count)
        .filter_map(|k| {
            let u = &users[k % n];
            list(u)
                .get(k / n)
                .map(|c| Item::new(name(u), Answer::Fixed(c.clone())))
        })
        .collect()
}
