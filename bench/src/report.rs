//! The Markdown report: machine, the table, memory and sizes, and each
//! target of issue 5 checked against the anchors measured in the same run
//! (and the fleet cells' section, [`crate::fleetreport`]).

use crate::anchors::{GOOGLE, OATH, PERMIT, TWOFOLD};
use crate::cell::CellResult;
use crate::machine::Machine;
use crate::plan::Route;
use crate::Options;
use std::fmt::Write;
use std::time::Duration;

/// One measured cell.
#[derive(Debug, Clone)]
pub struct Row {
    /// Enrolled users when measured (`100`, `100k`).
    pub phase: String,
    /// Product (its PAM service name).
    pub product: String,
    /// Path.
    pub route: Route,
    /// Logins in flight.
    pub concurrency: usize,
    /// What was measured.
    pub r: CellResult,
}

impl Row {
    /// A row.
    pub fn new(phase: &str, product: &str, route: Route, concurrency: usize, r: CellResult) -> Row {
        Row {
            phase: phase.to_owned(),
            product: product.to_owned(),
            route,
            concurrency,
            r,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// The command line's effect.
    pub options: String,
    /// Phase label of the small phase (its user count).
    pub small: String,
    /// The machine.
    pub machine: Machine,
    /// CPU of one argon2id verification (daemon parameters), ns.
    pub argon2_ns: u64,
    /// Small phase: enrolling (start + confirm through the daemon).
    pub small_enroll: Duration,
    /// google-authenticator secret files made by its CLI: count, time.
    pub ga_enroll: (usize, Duration),
    /// Large phase: users, time of the admin `TotpEnrollStart` requests, time of the bulk confirmation.
    pub large_enroll: (usize, Duration, Duration),
    /// Daemon VmRSS right after it started on an empty database, KiB.
    pub rss_fresh: u64,
    /// Daemon VmRSS after enrolling the small phase's users (argon2id hashing), KiB.
    pub rss_small_idle: u64,
    /// VmRSS of the second daemon, just started on the small phase's users, KiB.
    pub rss_small_restarted: u64,
    /// Daemon VmRSS after restart on the large database, KiB.
    pub rss_large_idle: u64,
    /// (VmRSS, VmHWM) after the success and wrong-code cells, KiB.
    pub rss_loaded: (u64, u64),
    /// (VmRSS, VmHWM) after the backup-code cells, KiB.
    pub rss_backup: (u64, u64),
    /// The cells.
    pub rows: Vec<Row>,
    /// Exact count of argon2 verifications for backup-code attempts.
    pub argon2_count: Option<crate::argon2check::Argon2Count>,
    /// The fleet cells, when run.
    pub fleet: Option<crate::fleetreport::FleetReport>,
    /// Profiled re-runs: name, profile file, what the cell measured.
    pub profiles: Vec<(String, std::path::PathBuf, CellResult)>,
    /// Load average at the end of the run.
    pub load_end: String,
    /// Wall time of the whole run.
    pub total: Duration,
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// What the run was asked to do, in a sentence.
fn options(o: &Options) -> String {
    let mut parts = Vec::new();
    if o.host {
        parts.push(format!(
            "{} users (large phase), {} (small phase), at most {} logins per cell ({} backup-code), \
             in flight {:?}",
            o.users, o.small_users, o.logins, o.backup_logins, o.concurrency
        ));
    }
    if o.fleet {
        parts.push(format!(
            "fleet cells: {} logins per row, in flight {:?}",
            o.logins, o.fleet_concurrency
        ));
    }
    format!(
        "{}; {} s per cell{}",
        parts.join("; "),
        o.seconds.as_secs(),
        if o.smoke { " (smoke run)" } else { "" }
    )
}

impl Report {
    /// An empty report for a run with `o` on `machine`.
    pub fn new(o: &Options, machine: Machine) -> Report {
        Report {
            options: options(o),
            machine,
            small: o.small_users.to_string(),
            ..Report::default()
        }
    }

    fn find(&self, phase: &str, product: &str, route: Route, c: usize) -> Option<&CellResult> {
        self.rows
            .iter()
            .find(|r| {
                r.phase == phase && r.product == product && r.route == route && r.concurrency == c
            })
            .map(|r| &r.r)
    }

    fn large(&self) -> &str {
        self.rows
            .iter()
            .map(|r| r.phase.as_str())
            .find(|p| *p != self.small)
            .unwrap_or("100k")
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "## Run\n\n{}; took {:.0} s.\n",
            self.options,
            self.total.as_secs_f64()
        );
        let _ = writeln!(s, "| machine | |\n| --- | --- |");
        let _ = writeln!(
            s,
            "| CPU | {} |\n| memory | {} |\n| kernel | {} |",
            m.cpu, m.memory, m.kernel
        );
        let _ = writeln!(s, "| work directory filesystem | {} |", m.filesystem);
        let _ = writeln!(
            s,
            "| load average (1 min) at start / end | {} / {} |",
            m.load_start, self.load_end
        );
        let _ = writeln!(
            s,
            "| 4 KiB write + fdatasync (median) | {} ms |",
            ms(m.fdatasync_ns)
        );
        let _ = writeln!(
            s,
            "| new file + fsync + rename (median) | {} ms |",
            ms(m.replace_file_ns)
        );
        if self.argon2_ns > 0 {
            let _ = writeln!(
                s,
                "| one argon2id verification (daemon parameters), CPU | {} ms |",
                ms(self.argon2_ns)
            );
        }
        for (k, v) in &m.versions {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        if !self.rows.is_empty() {
            self.host(&mut s);
        }
        if let Some(f) = &self.fleet {
            s.push('\n');
            f.markdown(&mut s);
        }
        self.targets(&mut s);
        if !self.profiles.is_empty() {
            let _ = writeln!(s, "## Profiles (re-runs under perf, after the table)\n");
            for (name, file, r) in &self.profiles {
                let _ = writeln!(
                    s,
                    "- {name}: {} logins, p50 {} ms under the profiler: `{}`",
                    r.n,
                    ms(r.quantile(0.5)),
                    file.display()
                );
            }
            s.push('\n');
        }
        s
    }

    /// Enrollment, the table of logins, memory and sizes.
    fn host(&self, s: &mut String) {
        let (n, start, confirm) = self.large_enroll;
        let _ = writeln!(
            s,
            "\nEnrollment: small phase through the daemon (start + confirm, 10 argon2id backup codes each) in {:.1} s; \
             {n} more users by admin `TotpEnrollStart` requests in {:.1} s ({:.0}/s), bulk-confirmed in {:.1} s; \
             {} google-authenticator secret files by its CLI in {:.1} s.\n",
            self.small_enroll.as_secs_f64(),
            start.as_secs_f64(),
            n as f64 / start.as_secs_f64().max(1e-9),
            confirm.as_secs_f64(),
            self.ga_enroll.0,
            self.ga_enroll.1.as_secs_f64(),
        );
        self.table(s);
        self.memory(s);
    }

    fn table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Logins\n\nLatency is pam_start → pam_authenticate → pam_end of one login; CPU is the harness \
             process's plus twofoldd's, per login; \"− floor\" subtracts pam_permit's p50 in the same cell; \
             logins/s counts the logins that ended as expected. pam_oath refuses a login when another \
             process holds its users-file lock (`OATH_FILE_LOCK_ERROR`): those are \"refused\". \
             twofold-module-only is pam_twofold.so with no daemon behind its socket \
             (`PAM_AUTHINFO_UNAVAIL`): what loading the module and failing to connect cost.\n"
        );
        let _ = writeln!(
            s,
            "| users | path | in flight | product | logins (refused) | p50 ms | p99 ms | p50 − floor ms | logins/s | CPU/login µs (harness + daemon) |"
        );
        let _ = writeln!(
            s,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for row in &self.rows {
            let r = &row.r;
            let floor = self
                .find(&row.phase, PERMIT, row.route, row.concurrency)
                .or_else(|| self.find(self.large(), PERMIT, row.route, row.concurrency))
                .map_or(0, |f| f.quantile(0.5));
            let above = r.quantile(0.5) as f64 - floor as f64;
            let n = r.n.max(1) as f64;
            let _ =
                writeln!(
                s,
                "| {} | {} | {} | {} | {}{} | {} | {} | {:.3} | {:.0} | {:.0} ({:.0} + {:.0}) |",
                row.phase,
                row.route.name(),
                row.concurrency,
                row.product,
                r.n,
                if r.failed > 0 { format!(" ({} refused)", r.failed) } else { String::new() },
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                above / 1e6,
                r.per_second(),
                r.cpu_per_login() as f64 / 1e3,
                r.harness_cpu_ns as f64 / n / 1e3,
                r.daemon_cpu_ns as f64 / n / 1e3,
            );
        }
        s.push('\n');
    }

    fn memory(&self, s: &mut String) {
        let _ = writeln!(s, "## Memory and size\n\n| what | value |\n| --- | --- |");
        let rows = [
            (
                "twofoldd RSS just started, empty database",
                mib(self.rss_fresh),
            ),
            (
                "twofoldd RSS after enrolling the small phase (10 argon2id hashes per user)",
                mib(self.rss_small_idle),
            ),
            (
                "twofoldd RSS just started on the small phase's users",
                mib(self.rss_small_restarted),
            ),
            (
                "twofoldd RSS just started on all users",
                mib(self.rss_large_idle),
            ),
            (
                "twofoldd RSS after success and wrong-code cells (now / peak)",
                format!("{} / {}", mib(self.rss_loaded.0), mib(self.rss_loaded.1)),
            ),
            (
                "twofoldd RSS after backup-code cells (now / peak)",
                format!("{} / {}", mib(self.rss_backup.0), mib(self.rss_backup.1)),
            ),
        ];
        for (what, value) in rows {
            let _ = writeln!(s, "| {what} | {value} |");
        }
        for (name, bytes) in &self.machine.so_sizes {
            let _ = writeln!(s, "| {name} | {:.1} KiB |", *bytes as f64 / 1024.0);
        }
        if let Some(b) = self.machine.twofold_stripped {
            let _ = writeln!(
                s,
                "| pam_twofold.so stripped | {:.1} KiB |",
                b as f64 / 1024.0
            );
        }
        s.push('\n');
    }

    fn targets(&self, s: &mut String) {
        let _ = writeln!(s, "## Targets (ratios within this run)\n\n| target | measured | met |\n| --- | --- | --- |");
        let big = self.large();
        let mut line = |what: &str, measured: String, met: Option<bool>| {
            let verdict = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            let _ = writeln!(s, "| {what} | {measured} | {verdict} |");
        };
        let p50 = |p, route, c| self.find(big, p, route, c).map(|r| r.quantile(0.5) as f64);
        if let (Some(tf), Some(ga), Some(floor)) = (
            p50(TWOFOLD, Route::Success, 1),
            p50(GOOGLE, Route::Success, 1),
            p50(PERMIT, Route::Success, 1),
        ) {
            let ratio = (tf - floor) / (ga - floor);
            line(
                "success p50 above the pam_permit floor ≤ 1/3 of google-authenticator's",
                format!(
                    "{:.3} ms vs {:.3} ms: {ratio:.2}",
                    (tf - floor) / 1e6,
                    (ga - floor) / 1e6
                ),
                Some(ratio <= 1.0 / 3.0),
            );
        }
        let cpu = |p, route, c| {
            self.find(big, p, route, c)
                .map(|r| r.cpu_per_login() as f64)
        };
        if let (Some(tf), Some(ga), Some(floor)) = (
            cpu(TWOFOLD, Route::Wrong, 1),
            cpu(GOOGLE, Route::Wrong, 1),
            cpu(PERMIT, Route::Wrong, 1),
        ) {
            line(
                "wrong code: CPU per attempt ≤ 1/10 of google-authenticator's",
                format!(
                    "{:.0} µs vs {:.0} µs: {:.2} (above the floor: {:.0} vs {:.0} µs: {:.2})",
                    tf / 1e3,
                    ga / 1e3,
                    tf / ga,
                    (tf - floor) / 1e3,
                    (ga - floor) / 1e3,
                    (tf - floor) / (ga - floor)
                ),
                Some(tf / ga <= 0.1),
            );
        }
        let rate = |p| {
            self.find(big, p, Route::Success, 16)
                .map(|r| r.per_second())
        };
        if let (Some(tf), Some(ga)) = (rate(TWOFOLD), rate(GOOGLE)) {
            line(
                "16 in flight: logins/s ≥ 5× google-authenticator's",
                format!("{tf:.0}/s vs {ga:.0}/s: {:.2}×", tf / ga),
                Some(tf >= 5.0 * ga),
            );
        }
        for product in [TWOFOLD, OATH] {
            let small = self
                .find(&self.small, product, Route::Success, 1)
                .map(|r| r.quantile(0.5) as f64);
            if let (Some(a), Some(b)) = (small, p50(product, Route::Success, 1)) {
                line(
                    &format!(
                        "{product}: p50 with {big} users within 1.2× of {} users",
                        self.small
                    ),
                    format!("{:.3} ms vs {:.3} ms: {:.2}×", b / 1e6, a / 1e6, b / a),
                    (product == TWOFOLD).then_some(b <= 1.2 * a),
                );
            }
        }
        // Memory, size and argon2: measured by the single-host part only.
        if !self.rows.is_empty() {
            let limit = 20 * 1024;
            line(
            &format!("twofoldd RSS under 20 MiB at {big} users (idle / peak after success and wrong-code load)"),
            format!("{} / {}", mib(self.rss_large_idle), mib(self.rss_loaded.1)),
            Some(self.rss_large_idle < limit && self.rss_loaded.1 < limit),
        );
            line(
                "twofoldd RSS under 20 MiB, peak after backup-code load",
                mib(self.rss_backup.1),
                Some(self.rss_backup.1 < limit),
            );
            if let Some((_, bytes)) = self.machine.so_sizes.first() {
                line(
                    "pam_twofold.so under 1 MiB",
                    format!("{:.1} KiB", *bytes as f64 / 1024.0),
                    Some(*bytes < 1024 * 1024),
                );
            }
            if let Some(n) = self.argon2_count {
                line(
                    "at most one argon2 verification per backup-code attempt (daemon's counter)",
                    format!(
                        "{} verifications for {} attempts: {} valid codes, {} wrong, {} reused",
                        n.verifications,
                        n.valid + n.wrong + n.reused,
                        n.valid,
                        n.wrong,
                        n.reused
                    ),
                    Some(n.verifications <= n.valid as u64),
                );
            }
            if let Some(r) = self.find(big, TWOFOLD, Route::Backup, 1) {
                let per = r.daemon_cpu_ns as f64 / r.n.max(1) as f64;
                let argon2 = self.argon2_ns.max(1) as f64;
                line(
                    "the same, from twofoldd's CPU per backup-code login",
                    format!(
                    "daemon CPU {:.2} ms per attempt = {:.2}× one argon2id verification ({:.2} ms)",
                    per / 1e6,
                    per / argon2,
                    argon2 / 1e6
                ),
                    Some(per / argon2 < 1.5),
                );
            }
        }
        if let Some(f) = &self.fleet {
            for (what, measured, met) in f.targets() {
                line(&what, measured, met);
            }
        }
        s.push('\n');
    }
}
