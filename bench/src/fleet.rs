//! The fleet cells (issue 15): twofoldd on one PostgreSQL database, one
//! daemon and three, beside one twofoldd on SQLite and beside PostgreSQL's
//! own floor on the same server (pgbench, one single-row UPDATE per
//! transaction), all in the same rounds at each level of logins in flight.
//!
//! The three fleet daemons run throughout (each its own socket, configuration
//! and audit host name, one master key file); the one-daemon cells use the
//! first only, the three-daemon cells hand the logins to them in turn. Each
//! also sits in its own cgroup whose CPU cap is on only for the capped
//! cells ([`crate::cgroup`]), one host's CPU each.
//!
//! Two more SQLite daemons run on copies of the first one's file (same
//! users, secrets and master key): the three-SQLite-daemon cells hand the
//! logins round in the same way as the three fleet daemons, so the fleet's
//! three-daemon store part is taken against a like-for-like login that
//! differs only in its store.

use crate::cell::{self, CellResult, CellSpec};
use crate::cgroup::{self, Cap, CpuGroup};
use crate::fleetreport::{Capping, FleetReport, FleetRow, What};
use crate::items::{Answer, Item};
use crate::pg::PgCluster;
use crate::twofold::{self, Daemon, TfUser};
use crate::Options;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Instant;
use twofold_config::{Backend, Config};

const PAM_SUCCESS: i32 = 0;
/// The fleet's database and the floor's, on the same server.
const FLEET_DB: &str = "twofold_fleet";
const FLOOR_DB: &str = "pgbench_floor";
/// The daemons of the fleet, by audit host name and PAM service.
const HOSTS: [&str; 3] = ["a", "b", "c"];
/// PAM services of the SQLite daemons: the first serves the one-daemon
/// cells, all three the three-daemon SQLite cells.
const SQLITE_SERVICES: [&str; 3] = ["fleet-sqlite", "fleet-sqlite-b", "fleet-sqlite-c"];

fn service(host: &str) -> String {
    format!("fleet-{host}")
}

struct Fleet<'a> {
    o: &'a Options,
    dir: PathBuf,
    confdir: PathBuf,
    pg: PgCluster,
    script: PathBuf,
    /// The SQLite daemon, then the two on copies of its file.
    sqlite: Vec<Daemon>,
    hosts: Vec<Daemon>,
    /// One cgroup per host, when they could be made.
    groups: Vec<CpuGroup>,
    capping: Capping,
    /// Users of the SQLite daemon and of the fleet; the next fresh one of each.
    su: (Vec<TfUser>, usize),
    pu: (Vec<TfUser>, usize),
}

/// Starts the server and the daemons, enrolls, measures every level.
pub fn run(o: &Options, dir: &Path) -> anyhow::Result<FleetReport> {
    let dir = dir.join("fleet");
    std::fs::create_dir_all(&dir)?;
    let pg = PgCluster::start()?;
    let script = pg.floor_setup(FLOOR_DB, &dir)?;
    pg.psql("postgres", &format!("CREATE DATABASE {FLEET_DB}"))?;
    let confdir = dir.join("pam.d");
    std::fs::create_dir_all(&confdir)?;
    let key = dir.join("keys/master.key");
    let sqlite_cfg = sqlite_config(&dir.join("sqlite"));
    let mut configs = vec![(SQLITE_SERVICES[0].to_owned(), sqlite_cfg.clone())];
    for svc in &SQLITE_SERVICES[1..] {
        let mut c = sqlite_config(&dir.join(svc));
        c.daemon.master_key = sqlite_cfg.daemon.master_key.clone();
        configs.push((svc.to_string(), c));
    }
    for h in HOSTS {
        configs.push((service(h), fleet_config(&dir, h, &key, pg.socket_dir())));
    }
    for (svc, c) in &configs {
        let line = format!(
            "auth required {} socket={} timeout=5\n",
            o.module.display(),
            c.daemon.socket.display()
        );
        std::fs::write(confdir.join(svc), line)?;
    }
    // Users: one per login (a code's step is accepted once per credential),
    // including each level's warm-up.
    let n_sqlite: usize = o
        .fleet_concurrency
        .iter()
        .map(|&c| 2 * o.logins + c + warm_up(What::Sqlite3, c))
        .sum();
    // The cgroups first, so the capped cells' users are enrolled too.
    let (mut groups, mut capping) = match make_groups(o) {
        Ok(g) => g,
        Err(e) => (Vec::new(), Capping::Off(format!("{e:#}"))),
    };
    let capped = matches!(capping, Capping::On { .. });
    let n_fleet: usize = o
        .fleet_concurrency
        .iter()
        .map(|&c| {
            let caps = if capped && c > 1 {
                2 * capped_logins(o)
            } else {
                0
            };
            2 * o.logins + c + warm_up(What::Pg3, c) + caps
        })
        .sum();
    let t = Instant::now();
    let mut configs = configs.into_iter().map(|(_, c)| c);
    let mut first = start(o, &dir, "sqlite", configs.next().context("configs")?)?;
    let su = enroll(&first, "fs", n_sqlite)?;
    first.stop()?;
    let n = twofold::bulk_confirm(&first.config.daemon.database, 10)?;
    if n != n_sqlite {
        bail!("SQLite bulk confirmation confirmed {n} users, expected {n_sqlite}");
    }
    // Copied while the first is stopped: the file is whole, no log pending.
    let mut copies = Vec::new();
    for _ in &SQLITE_SERVICES[1..] {
        let c = configs.next().context("configs")?;
        copy_database(&first.config.daemon.database, &c.daemon.database)?;
        copies.push(c);
    }
    first.restart()?;
    let mut sqlite = vec![first];
    for (svc, c) in SQLITE_SERVICES[1..].iter().zip(copies) {
        sqlite.push(start(o, &dir, svc, c)?);
    }
    // The first fleet daemon makes the key and the schema; the others join.
    let first = start(o, &dir, HOSTS[0], configs.next().context("configs")?)?;
    let pu = enroll(&first, "fp", n_fleet)?;
    let n = bulk_confirm_pg(&pg, 10)?;
    if n != n_fleet {
        bail!("PostgreSQL bulk confirmation confirmed {n} users, expected {n_fleet}");
    }
    let mut hosts = vec![first];
    for (h, c) in HOSTS[1..].iter().zip(configs) {
        hosts.push(start(o, &dir, h, c)?);
    }
    let enrolled = t.elapsed();
    eprintln!("bench: fleet: {n_sqlite} users on SQLite, {n_fleet} on PostgreSQL");
    if let Err(e) = groups
        .iter()
        .zip(&hosts)
        .try_for_each(|(g, h)| g.add(h.pid()))
    {
        groups.clear();
        capping = Capping::Off(format!("{e:#}"));
    }
    eprintln!("bench: fleet: CPU cap {}", capping.describe());
    let mut f = Fleet {
        o,
        dir,
        confdir,
        pg,
        script,
        sqlite,
        hosts,
        groups,
        capping: capping.clone(),
        su: (su, 1),
        pu: (pu, 1),
    };
    let mut report = FleetReport {
        pg_version: f.pg.version.clone(),
        users: (n_sqlite, n_fleet),
        enroll: enrolled,
        rounds: o
            .fleet_concurrency
            .iter()
            .map(|&c| (c, rounds(o, c)))
            .collect(),
        pgbench_seconds: o
            .fleet_concurrency
            .iter()
            .map(|&c| pgbench_seconds(o, c))
            .max()
            .unwrap_or(1),
        rows: Vec::new(),
        audit_hosts: Vec::new(),
        capping,
    };
    for &c in &o.fleet_concurrency {
        report.rows.extend(f.level(c)?);
    }
    report.audit_hosts = f.audit_hosts()?;
    for h in f.sqlite.iter_mut().chain(&mut f.hosts) {
        h.stop()?;
    }
    // Dropping `f` removes the (now empty) cgroups.
    Ok(report)
}

/// One cgroup per fleet host, uncapped for now, and the cap of the capped
/// cells; an error says why capped cells cannot run here.
fn make_groups(o: &Options) -> anyhow::Result<(Vec<CpuGroup>, Capping)> {
    let (root, version) = cgroup::find()?;
    cgroup::remove_stale(&root);
    let groups = HOSTS
        .iter()
        .map(|h| CpuGroup::create(&root, version, &format!("fleet-{h}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cap = Cap::percent(o.fleet_cap);
    // Setting it once checks the kernel takes it; off until a capped cell.
    for g in &groups {
        g.set(Some(cap))?;
        g.set(None)?;
    }
    let how = match version {
        cgroup::Version::V2 => format!("cgroup v2 `cpu.max` under {}", root.display()),
        cgroup::Version::V1 => format!(
            "cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` under {}, where this machine \
             mounts the cpu controller (the same CFS bandwidth limit as v2's `cpu.max`)",
            root.display()
        ),
    };
    Ok((groups, Capping::On { cap, how }))
}

/// Logins per capped cell: fewer in the smoke run (a debug daemon under a
/// cap is slow, and the smoke run only checks the cells work).
fn capped_logins(o: &Options) -> usize {
    if o.smoke {
        (o.logins / 4).max(1)
    } else {
        o.logins
    }
}

/// Logins of a level's warm-up: one per worker, and one per daemon.
fn warm_up(what: What, c: usize) -> usize {
    match what {
        What::Pg3 | What::Sqlite3 => c.max(HOSTS.len()),
        _ => c,
    }
}

/// Rounds of a level. One login in flight takes short slices (about 60
/// logins each), so that every row samples the same stretches of this
/// shared VM's time: with 4 rounds a row's slice took about a quarter
/// second, and runs of the same build put its p50 up to twice apart.
fn rounds(o: &Options, c: usize) -> usize {
    match (o.smoke, c) {
        (true, _) => 2,
        (false, 1) => 16,
        (false, _) => 4,
    }
}

/// pgbench's `--time` per round: a login cell's time cap, at least 1 s.
fn pgbench_seconds(o: &Options, c: usize) -> u64 {
    (o.seconds.as_secs() / rounds(o, c) as u64).max(1)
}

fn sqlite_config(dir: &Path) -> Config {
    twofold::config_in(dir)
}

/// Copies a stopped daemon's SQLite file (and its write-ahead log, if one
/// is left) to `to`, making its directory with the source's mode.
fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(src_dir), Some(dst_dir)) = (from.parent(), to.parent()) else {
        bail!("database paths without a directory: {from:?}, {to:?}");
    };
    std::fs::create_dir_all(dst_dir)?;
    let mode = std::fs::metadata(src_dir)?.permissions().mode();
    std::fs::set_permissions(dst_dir, std::fs::Permissions::from_mode(mode))?;
    for suffix in ["", "-wal"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        if src.exists() {
            let dst = PathBuf::from(format!("{}{suffix}", to.display()));
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

fn fleet_config(dir: &Path, host: &str, key: &Path, socket_dir: &Path) -> Config {
    let mut c = twofold::config_in(&dir.join(host));
    c.store.backend = Backend::Postgres;
    c.store.host = socket_dir.display().to_string();
    c.store.dbname = FLEET_DB.into();
    c.store.user = "postgres".into();
    c.store.host_name = Some(format!("bench-{host}"));
    c.daemon.master_key = key.to_path_buf();
    c
}

fn start(o: &Options, dir: &Path, name: &str, config: Config) -> anyhow::Result<Daemon> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    Daemon::start(&o.twofoldd, &d, config).with_context(|| format!("starting twofoldd {name}"))
}

/// `n` users (named `{prefix}NNNNNN`) plus one confirmed through the daemon
/// (index 0, never logged in: its backup codes' argon2id hash is what the
/// bulk confirmation copies). The others stay pending for it.
fn enroll(d: &Daemon, prefix: &str, n: usize) -> anyhow::Result<Vec<TfUser>> {
    let names: Vec<String> = (0..=n).map(|i| format!("{prefix}{i:06}")).collect();
    let mut users = twofold::enroll_start(d, &names, 4)?;
    twofold::confirm(d, &mut users[0])?;
    Ok(users)
}

/// What [`twofold::bulk_confirm`] does, on the fleet's database (one
/// transaction, daemons running: no daemon caches credentials, so this is
/// as another host's change): confirms every pending TOTP enrollment and
/// gives each such user `codes` backup-code rows. Returns how many.
fn bulk_confirm_pg(pg: &PgCluster, codes: u32) -> anyhow::Result<usize> {
    use twofold_daemon::store::postgres::PG_SCHEMA_VERSION;
    let version = pg.psql(FLEET_DB, "SELECT version FROM twofold_schema")?;
    if version != PG_SCHEMA_VERSION.to_string() {
        bail!("fleet schema {version}, this bench knows {PG_SCHEMA_VERSION}");
    }
    // 32 random bytes per lookup (two md5s of random input), a real PHC
    // string; `counter` as TotpEnrollConfirm leaves it two steps back.
    let n = pg.psql(
        FLEET_DB,
        &format!(
            "INSERT INTO codes (username, method, lookup, hash, created_at)
             SELECT c.username, 'backup_code',
                    decode(md5(random()::text || c.id || '.' || g), 'hex')
                      || decode(md5(random()::text || g || '.' || c.id), 'hex'),
                    (SELECT hash FROM codes WHERE method = 'backup_code' LIMIT 1),
                    c.created_at
             FROM credentials c, generate_series(1, {codes}) g
             WHERE c.confirmed_at IS NULL AND c.method = 'totp';
             WITH u AS (
                 UPDATE credentials SET confirmed_at = created_at, counter = created_at / 30 - 2
                 WHERE confirmed_at IS NULL AND method = 'totp' AND params LIKE '%:30'
                 RETURNING 1)
             SELECT count(*) FROM u"
        ),
    )?;
    n.parse()
        .with_context(|| format!("bulk confirmation: {n:?}"))
}

impl Fleet<'_> {
    /// Audit rows per host in the fleet's database; fails unless every
    /// daemon wrote some (the three-daemon cells reached each of them).
    fn audit_hosts(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let text = self.pg.psql(
            FLEET_DB,
            "SELECT host || ' ' || count(*) FROM audit GROUP BY host ORDER BY host",
        )?;
        let counts: Vec<(String, u64)> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(h, n)| Ok((h.to_owned(), n.parse()?)))
            .collect::<anyhow::Result<_>>()?;
        for h in HOSTS {
            let name = format!("bench-{h}");
            if !counts.iter().any(|(host, n)| *host == name && *n > 0) {
                bail!("no audit row from {name}: the three-daemon cells did not reach it ({counts:?})");
            }
        }
        Ok(counts)
    }

    /// One level of logins in flight: warm-up, then the rounds, each
    /// running a slice of every entry in an order that rotates.
    fn level(&mut self, c: usize) -> anyhow::Result<Vec<FleetRow>> {
        let o = self.o;
        let rounds = rounds(o, c);
        let mut whats = vec![
            What::Sqlite,
            What::Sqlite3,
            What::Pg1,
            What::Pg3,
            What::Floor,
        ];
        if matches!(self.capping, Capping::On { .. }) && c > 1 {
            whats.extend([What::Pg1Capped, What::Pg3Capped]);
        }
        // A few logins first, unmeasured: each daemon opens its PostgreSQL
        // connections (and prepares statements) on first use.
        for what in [What::Sqlite, What::Sqlite3, What::Pg1, What::Pg3] {
            let items = self.items(what, warm_up(what, c));
            self.cell(what, c, items, o.seconds)?;
        }
        let items: Vec<Vec<Item>> = whats
            .iter()
            .map(|&w| match w {
                What::Floor => Vec::new(),
                What::Pg1Capped | What::Pg3Capped => self.items(w, capped_logins(o)),
                _ => self.items(w, o.logins),
            })
            .collect();
        let mut rows: Vec<FleetRow> = whats
            .iter()
            .map(|&what| FleetRow {
                what,
                concurrency: c,
                r: CellResult::default(),
                pg_cpu_ns: 0,
            })
            .collect();
        let limit = o.seconds / rounds as u32;
        for round in 0..rounds {
            for k in 0..whats.len() {
                let i = (k + round) % whats.len();
                self.cap(whats[i].capped_daemons() > 0)?;
                let pg0 = self.pg.cpu_ns();
                let r = if whats[i] == What::Floor {
                    let prefix = self.dir.join(format!("pgbench-{c}-{round}"));
                    let secs = pgbench_seconds(o, c);
                    self.pg.pgbench(FLOOR_DB, &self.script, c, secs, &prefix)?
                } else {
                    let chunk = items[i].len().div_ceil(rounds);
                    let part: Vec<Item> = items[i]
                        .iter()
                        .skip(round * chunk)
                        .take(chunk)
                        .cloned()
                        .collect();
                    if part.is_empty() {
                        continue;
                    }
                    self.cell(whats[i], c, part, limit)?
                };
                rows[i].pg_cpu_ns += self.pg.cpu_ns().saturating_sub(pg0);
                rows[i].r.merge(r);
            }
        }
        self.cap(false)?;
        for row in &rows {
            let r = &row.r;
            eprintln!(
                "bench: fleet {} in flight {c}: n={} p50={:.3} ms p99={:.3} ms {:.0}/s",
                row.what.name(),
                r.n,
                r.quantile(0.5) as f64 / 1e6,
                r.quantile(0.99) as f64 / 1e6,
                r.per_second()
            );
        }
        Ok(rows)
    }

    /// Turns the hosts' CPU cap on or off.
    fn cap(&self, on: bool) -> anyhow::Result<()> {
        let Capping::On { cap, .. } = self.capping else {
            return Ok(());
        };
        self.groups
            .iter()
            .try_for_each(|g| g.set(on.then_some(cap)))
    }

    /// The next `count` fresh users of `what`'s store, each typing the
    /// current code.
    fn items(&mut self, what: What, count: usize) -> Vec<Item> {
        let (users, next) = match what {
            What::Sqlite | What::Sqlite3 => &mut self.su,
            _ => &mut self.pu,
        };
        let end = (*next + count).min(users.len());
        let items = users[*next..end]
            .iter()
            .map(|u| Item::new(&u.user, Answer::Totp(u.secret.clone())))
            .collect();
        *next = end;
        items
    }

    fn cell(
        &self,
        what: What,
        c: usize,
        items: Vec<Item>,
        limit: std::time::Duration,
    ) -> anyhow::Result<CellResult> {
        let (services, daemons): (Vec<String>, Vec<&Daemon>) = match what {
            What::Sqlite => (vec![SQLITE_SERVICES[0].to_owned()], vec![&self.sqlite[0]]),
            What::Sqlite3 => (
                SQLITE_SERVICES.iter().map(|s| s.to_string()).collect(),
                self.sqlite.iter().collect(),
            ),
            What::Pg1 | What::Pg1Capped => (vec![service(HOSTS[0])], vec![&self.hosts[0]]),
            _ => (
                HOSTS.iter().map(|h| service(h)).collect(),
                self.hosts.iter().collect(),
            ),
        };
        let service = services.join(",");
        let name = format!("fleet-{}-{c}", what.slug());
        let spec = CellSpec {
            name: name.clone(),
            confdir: &self.confdir,
            service: &service,
            concurrency: c,
            items,
            limit,
            expect: PAM_SUCCESS,
            tolerate: false,
        };
        let daemon_cpu = || daemons.iter().map(|d| d.cpu_ns()).sum();
        cell::run(&spec, &self.dir, &daemon_cpu).with_context(|| {
            let logs: Vec<String> = daemons.iter().map(|d| d.log_tail()).collect();
            format!("cell {name} (twofoldd logs: {})", logs.join("\n"))
        })
    }
}
