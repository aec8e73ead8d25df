//! The run: enroll, then measure every (path, logins in flight) with all
//! products in the same rounds, so background load on a shared machine
//! falls on every product alike.
//!
//! Two daemons run side by side on copies of one database: the small one
//! keeps only the first `small_users` users, the large one gets the other
//! 99 900 too. The 100-vs-100 000 comparison alternates between them.

use crate::anchors::{
    self, GaUser, Paths, GOOGLE, OATH, OATH_SMALL, PERMIT, TWOFOLD, TWOFOLD_MODULE_ONLY,
    TWOFOLD_SMALL,
};
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
const PAM_AUTHINFO_UNAVAIL: i32 = 9;

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

/// One product's logins in a measurement.
struct Entry {
    service: &'static str,
    phase: String,
    items: Vec<Item>,
}

struct Run<'a> {
    o: &'a Options,
    dir: &'a Path,
    confdir: std::path::PathBuf,
    paths: Paths,
    daemon: Daemon,
    small: Option<Daemon>,
    tf: Vec<TfUser>,
    ga: Vec<GaUser>,
    label: String,
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
    if o.host {
        report = host(o, &dir, report)?;
    }
    if o.fleet {
        report.fleet = Some(crate::fleet::run(o, &dir)?);
    }
    report.load_end = machine::load_average();
    report.total = started.elapsed();
    let text = report.markdown();
    println!("{text}");
    if let Some(out) = &o.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// The single-host cells: twofold on SQLite beside the anchors, memory,
/// sizes and the argon2 count.
fn host(o: &Options, dir: &Path, mut report: Report) -> anyhow::Result<Report> {
    let config = twofold::config_in(dir);
    let paths = Paths {
        module: o.module.clone(),
        socket: config.daemon.socket.clone(),
        small_socket: twofold::config_in(&dir.join("small")).daemon.socket,
        ga_dir: dir.join("google-authenticator"),
        oath_file: dir.join("users.oath"),
        small_oath_file: dir.join("users-small.oath"),
    };
    let confdir = dir.join("pam.d");
    anchors::write_services(&confdir, &paths)?;
    let daemon = Daemon::start(&o.twofoldd, dir, config)?;
    report.rss_fresh = daemon.rss_kib().0;
    report.argon2_ns = twofold::argon2_cost_ns();
    let label = if o.users == 100_000 {
        "100k".to_owned()
    } else {
        o.users.to_string()
    };
    let mut run = Run {
        o,
        dir,
        confdir,
        paths,
        daemon,
        small: None,
        tf: Vec::new(),
        ga: Vec::new(),
        label,
        report,
    };
    run.enroll()?;
    run.measure_all()?;
    run.daemon.stop()?;
    if let Some(mut s) = run.small.take() {
        s.stop()?;
    }
    run.report.argon2_count = Some(argon2check::run(&dir.join("argon2-count"), &o.module)?);
    Ok(run.report)
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("bu{i:06}")).collect()
}

impl Run<'_> {
    /// The small phase's users through the daemon (start + confirm), a
    /// second daemon on a copy of that database, then the large phase's
    /// users on the first daemon (admin requests + bulk confirmation).
    fn enroll(&mut self) -> anyhow::Result<()> {
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
        self.report.rss_small_idle = self.daemon.rss_kib().0;
        self.daemon.stop()?;
        let small_config = twofold::clone_state(&self.daemon.config, &self.dir.join("small"))?;
        let small = Daemon::start(&self.o.twofoldd, &self.dir.join("small"), small_config)?;
        self.report.rss_small_restarted = small.rss_kib().0;
        self.small = Some(small);
        self.daemon.restart()?;
        self.write_oath(&self.paths.small_oath_file, o.small_users)?;

        let ga_users = o.small_users + o.logins * o.concurrency.len();
        let t = Instant::now();
        self.ga = anchors::ga_enroll(&self.paths.ga_dir, &names(0..ga_users), 2)?;
        self.report.ga_enroll = (ga_users, t.elapsed());

        let t = Instant::now();
        let more = twofold::enroll_start(&self.daemon, &names(o.small_users..o.users), 4)?;
        let started = t.elapsed();
        self.daemon.stop()?;
        let t = Instant::now();
        let n = twofold::bulk_confirm(&self.daemon.config.daemon.database, 10)?;
        if n != more.len() {
            bail!(
                "bulk confirmation confirmed {n} users, expected {}",
                more.len()
            );
        }
        let confirmed = t.elapsed();
        self.daemon.restart()?;
        self.tf.extend(more);
        self.report.large_enroll = (o.users - o.small_users, started, confirmed);
        self.write_oath(&self.paths.oath_file, o.users)?;
        self.report.rss_large_idle = self.daemon.rss_kib().0;
        eprintln!(
            "bench: {} + {} users enrolled",
            o.small_users,
            o.users - o.small_users
        );
        Ok(())
    }

    fn measure_all(&mut self) -> anyhow::Result<()> {
        let o = self.o;
        let big = self.label.clone();
        // The small users log in once each (on the small daemon and file);
        // every success on the large ones takes fresh users.
        let mut next = o.small_users;
        for &c in &o.concurrency {
            let mut entries = Vec::new();
            if c == 1 {
                for service in [TWOFOLD_SMALL, OATH_SMALL] {
                    let small = o.small_users.to_string();
                    entries.push(self.entry(service, &small, Route::Success, 0, o.small_users));
                }
            }
            for service in [PERMIT, OATH, GOOGLE, TWOFOLD] {
                entries.push(self.entry(service, &big, Route::Success, next, o.logins));
            }
            // Many short rounds where the 100-vs-100 000 comparison runs, so
            // both sides see the same moments of background load.
            let rounds = if c == 1 { 20 } else { 4 };
            self.measure(Route::Success, c, rounds, entries)?;
            next += o.logins;
        }
        // One wrong code per user per level, so no rate limit (5 failures)
        // could interfere.
        for &c in &o.concurrency {
            let mut entries: Vec<Entry> = [PERMIT, OATH, GOOGLE, TWOFOLD]
                .map(|s| self.entry(s, &big, Route::Wrong, o.small_users, o.logins))
                .into();
            if c == 1 {
                entries.push(self.entry(TWOFOLD_MODULE_ONLY, &big, Route::Wrong, 0, o.logins));
            }
            self.measure(Route::Wrong, c, 4, entries)?;
        }
        self.report.rss_loaded = self.daemon.rss_kib();
        let mut used = 0;
        for &c in &o.concurrency {
            let entries = [PERMIT, GOOGLE, TWOFOLD]
                .map(|s| self.entry(s, &big, Route::Backup, used, o.backup_logins));
            self.measure(Route::Backup, c, 4, entries.into())?;
            used += o.backup_logins;
        }
        self.report.rss_backup = self.daemon.rss_kib();
        if let Some(dir) = &o.profile {
            self.profiles(dir, next, used)?;
        }
        Ok(())
    }

    fn entry(
        &self,
        service: &'static str,
        phase: &str,
        route: Route,
        first: usize,
        count: usize,
    ) -> Entry {
        Entry {
            service,
            phase: phase.to_owned(),
            items: self.items(anchors::product_of(service), route, first, count),
        }
    }

    /// Runs the entries in rounds: each round runs a slice of every entry's
    /// logins, in an order that rotates, and the rounds' results are merged.
    fn measure(
        &mut self,
        route: Route,
        c: usize,
        rounds: usize,
        entries: Vec<Entry>,
    ) -> anyhow::Result<()> {
        let rounds = if self.o.smoke { 2 } else { rounds };
        let limit = self.o.seconds / rounds as u32;
        let mut results: Vec<CellResult> = vec![CellResult::default(); entries.len()];
        for round in 0..rounds {
            for k in 0..entries.len() {
                let i = (k + round) % entries.len();
                let e = &entries[i];
                let chunk = e.items.len().div_ceil(rounds);
                let items: Vec<Item> = e
                    .items
                    .iter()
                    .skip(round * chunk)
                    .take(chunk)
                    .cloned()
                    .collect();
                if items.is_empty() {
                    continue;
                }
                let r = self.cell(e.service, &e.phase, route, c, items, limit)?;
                results[i].merge(r);
            }
        }
        for (e, r) in entries.iter().zip(results) {
            eprintln!(
                "bench: {} {} {} in flight {c}: n={} refused={} p50={:.3} ms p99={:.3} ms {:.0}/s",
                e.phase,
                e.service,
                route.name(),
                r.n,
                r.failed,
                r.quantile(0.5) as f64 / 1e6,
                r.quantile(0.99) as f64 / 1e6,
                r.per_second()
            );
            let product = anchors::product_of(e.service);
            self.report
                .rows
                .push(Row::new(&e.phase, product, route, c, r));
        }
        Ok(())
    }

    /// Re-runs twofold cells under perf or strace, on fresh users and
    /// codes, after every measured cell.
    fn profiles(&mut self, dir: &Path, next: usize, used: usize) -> anyhow::Result<()> {
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
            let r = self.cell(TWOFOLD, "profile", route, c, items, o.seconds)?;
            let file = p.finish()?;
            self.report.profiles.push((name, file, r));
        }
        Ok(())
    }

    /// A pam_oath users file with the first `n` users and twofold's secrets.
    fn write_oath(&self, path: &Path, n: usize) -> anyhow::Result<()> {
        let users: Vec<(&str, &[u8])> = self.tf[..n]
            .iter()
            .map(|u| (u.user.as_str(), u.secret.as_slice()))
            .collect();
        anchors::write_oath_file(path, &users)
    }

    /// `count` logins of `product` on `route`, from user `first` on (backup
    /// codes: the `first`-th code on, spread over the users that have them).
    fn items(&self, product: &str, route: Route, first: usize, count: usize) -> Vec<Item> {
        let totp = |user: &str, secret: &[u8]| match route {
            Route::Wrong => Item::new(user, Answer::Wrong(secret.to_vec())),
            _ => Item::new(user, Answer::Totp(secret.to_vec())),
        };
        match (product, route) {
            (PERMIT | TWOFOLD_MODULE_ONLY, _) => (first..first + count)
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
        service: &str,
        phase: &str,
        route: Route,
        concurrency: usize,
        items: Vec<Item>,
        limit: std::time::Duration,
    ) -> anyhow::Result<CellResult> {
        let expect = match (service, route) {
            (TWOFOLD_MODULE_ONLY, _) => PAM_AUTHINFO_UNAVAIL,
            (PERMIT, _) | (_, Route::Success | Route::Backup) => PAM_SUCCESS,
            (_, Route::Wrong) => PAM_AUTH_ERR,
        };
        let name = format!(
            "{phase}-{service}-{}-{concurrency}",
            route.name().replace(' ', "-")
        );
        let spec = CellSpec {
            name: name.clone(),
            confdir: &self.confdir,
            service,
            concurrency,
            items,
            limit,
            expect,
            tolerate: anchors::product_of(service) == OATH,
        };
        let daemon = match service {
            TWOFOLD => Some(&self.daemon),
            TWOFOLD_SMALL => self.small.as_ref(),
            _ => None,
        };
        let daemon_cpu = || daemon.map_or(0, Daemon::cpu_ns);
        cell::run(&spec, self.dir, &daemon_cpu).with_context(|| {
            format!(
                "cell {name} (twofoldd log: {})",
                daemon.map(Daemon::log_tail).unwrap_or_default()
            )
        })
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
