//! The fleet cells in the report: their table beside SQLite and
//! PostgreSQL's floor, and issue 15's two targets checked within the run.

use crate::cell::CellResult;
use std::fmt::Write;
use std::time::Duration;

/// What a fleet row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// One twofoldd on SQLite (its own file), for comparison.
    Sqlite,
    /// One twofoldd on the fleet's PostgreSQL database.
    Pg1,
    /// Three twofoldd on it, logins handed to them in turn.
    Pg3,
    /// pgbench: one single-row UPDATE per transaction, same server.
    Floor,
}

impl What {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            What::Sqlite => "twofold, SQLite, 1 daemon",
            What::Pg1 => "twofold, PostgreSQL, 1 daemon",
            What::Pg3 => "twofold, PostgreSQL, 3 daemons",
            What::Floor => "pgbench, one-row UPDATE (floor)",
        }
    }

    /// Name in file and cell names.
    pub fn slug(self) -> &'static str {
        match self {
            What::Sqlite => "sqlite",
            What::Pg1 => "pg1",
            What::Pg3 => "pg3",
            What::Floor => "pgbench",
        }
    }
}

/// One measured fleet row (merged over the rounds).
#[derive(Debug, Clone)]
pub struct FleetRow {
    /// What ran.
    pub what: What,
    /// Logins (pgbench: clients) in flight.
    pub concurrency: usize,
    /// Latencies, count, span, CPU of the harness (pgbench's own for the floor)
    /// and of the daemons.
    pub r: CellResult,
    /// CPU of every PostgreSQL server process over the row's cells.
    pub pg_cpu_ns: u64,
}

/// What the fleet cells measured.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// `postgres --version`.
    pub pg_version: String,
    /// Users enrolled on SQLite and on the fleet's database.
    pub users: (usize, usize),
    /// Server setup and enrollment, wall time.
    pub enroll: Duration,
    /// Rounds per level.
    pub rounds: usize,
    /// pgbench's `--time` per round.
    pub pgbench_seconds: u64,
    /// The rows, level by level.
    pub rows: Vec<FleetRow>,
    /// Audit rows per host name in the fleet's database at the end.
    pub audit_hosts: Vec<(String, u64)>,
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

impl FleetReport {
    fn find(&self, what: What, c: usize) -> Option<&CellResult> {
        self.rows
            .iter()
            .find(|r| r.what == what && r.concurrency == c)
            .map(|r| &r.r)
    }

    fn levels(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.rows.iter().map(|r| r.concurrency).collect();
        v.dedup();
        v
    }

    /// The fleet section of the report.
    pub fn markdown(&self, s: &mut String) {
        let (n_sqlite, n_fleet) = self.users;
        let _ = writeln!(
            s,
            "## Fleet (PostgreSQL)\n\n\
             {} on a throwaway cluster of the run's own (on disk under /var/tmp, Unix socket, \
             default settings: `fsync` and `synchronous_commit` on). The fleet's database holds \
             {n_fleet} users, the SQLite daemon's file {n_sqlite} (enrolled by `TotpEnrollStart` \
             and bulk-confirmed like the single-host cells' filler users, each with 10 \
             backup-code rows), set up in {:.1} s. Three twofoldd run on \
             the fleet's database throughout, each with its own socket, configuration and audit \
             host name and one master key file; \"1 daemon\" sends every login to the first, \
             \"3 daemons\" hands them to the three in turn. Each login is a fresh user's current \
             code through libpam (`pam_start` → `pam_authenticate` → `pam_end`, one worker \
             process per login in flight). Each level starts with a few unmeasured logins \
             (a daemon opens its PostgreSQL connections on first use), then {} rounds, each \
             running a slice of every row in an order that rotates.\n\n\
             The floor is `pgbench -M prepared -n` on the same server (its own database) with \
             one transaction: `\\set id random(1, {rows})` and `UPDATE floor SET n = n + 1 WHERE \
             id = :id;` on a {rows}-row table, `--client` = the level, `--jobs` = min(level, \
             cores), `--time={}` per round. Its latency is pgbench's per-transaction log \
             (`--log`: from the transaction's start to its end, at the client); its rate is \
             pgbench's `tps` (without initial connection time), merged over rounds as \
             transactions ÷ Σ (a round's transactions ÷ its tps); its CPU is pgbench's own. \
             PostgreSQL CPU is every server process's (postmaster, backends, WAL writer, \
             checkpointer, autovacuum) over the row's cells.\n",
            self.pg_version,
            self.enroll.as_secs_f64(),
            self.rounds,
            self.pgbench_seconds,
            rows = crate::pg::FLOOR_ROWS,
        );
        let _ = writeln!(
            s,
            "| in flight | what | logins (transactions) | p50 ms | p99 ms | p50 ÷ floor's p50 | p50 − SQLite's ms | logins/s (tps) | CPU/login µs (harness + daemons) | PostgreSQL CPU/login µs |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for row in &self.rows {
            let r = &row.r;
            let n = r.n.max(1) as f64;
            let floor = self
                .find(What::Floor, row.concurrency)
                .map_or(0, |f| f.quantile(0.5));
            let ratio = if floor > 0 {
                format!("{:.2}×", r.quantile(0.5) as f64 / floor as f64)
            } else {
                String::new()
            };
            // What the fleet's store adds to a login over SQLite's.
            let above = match (row.what, self.find(What::Sqlite, row.concurrency)) {
                (What::Pg1 | What::Pg3, Some(sq)) => {
                    format!(
                        "{:.3}",
                        (r.quantile(0.5) as f64 - sq.quantile(0.5) as f64) / 1e6
                    )
                }
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {ratio} | {above} | {:.0} | {:.0} ({:.0} + {:.0}) | {:.0} |",
                row.concurrency,
                row.what.name(),
                r.n,
                if r.failed > 0 {
                    format!(" ({} failed)", r.failed)
                } else {
                    String::new()
                },
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                r.per_second(),
                r.cpu_per_login() as f64 / 1e3,
                r.harness_cpu_ns as f64 / n / 1e3,
                r.daemon_cpu_ns as f64 / n / 1e3,
                row.pg_cpu_ns as f64 / n / 1e3,
            );
        }
        let hosts: Vec<String> = self
            .audit_hosts
            .iter()
            .map(|(h, n)| format!("{h} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "\nAudit rows in the fleet's database at the end, by host: {} (enrollment on bench-a; \
             bench-b and bench-c only served the three-daemon cells).\n",
            hosts.join(", ")
        );
    }

    /// Issue 15's targets: `(target, measured, met)`.
    pub fn targets(&self) -> Vec<(String, String, Option<bool>)> {
        let mut out = Vec::new();
        let p50 = |w, c| self.find(w, c).map(|r| r.quantile(0.5) as f64);
        for c in self.levels() {
            if let (Some(one), Some(three), Some(floor)) =
                (p50(What::Pg1, c), p50(What::Pg3, c), p50(What::Floor, c))
            {
                let (a, b) = (one / floor, three / floor);
                out.push((
                    format!("fleet login p50 within 1.5× of pgbench's one-row UPDATE p50, {c} in flight"),
                    format!(
                        "1 daemon {:.3} ms ({a:.2}×), 3 daemons {:.3} ms ({b:.2}×) vs {:.3} ms",
                        one / 1e6,
                        three / 1e6,
                        floor / 1e6
                    ),
                    Some(a <= 1.5 && b <= 1.5),
                ));
            }
        }
        if let Some(&c) = self.levels().last() {
            let rate = |w| self.find(w, c).map(CellResult::per_second);
            if let (Some(one), Some(three)) = (rate(What::Pg1), rate(What::Pg3)) {
                out.push((
                    format!("fleet: 3 daemons ≥ 2× one daemon's logins/s, {c} in flight"),
                    format!("{three:.0}/s vs {one:.0}/s: {:.2}×", three / one.max(1e-9)),
                    Some(three >= 2.0 * one),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(what: What, c: usize, p50_us: u64, per_s: u64) -> FleetRow {
        FleetRow {
            what,
            concurrency: c,
            r: CellResult {
                n: per_s as usize,
                latencies: vec![p50_us * 1000; 3],
                wall_ns: 1_000_000_000,
                ..CellResult::default()
            },
            pg_cpu_ns: 0,
        }
    }

    #[test]
    fn targets_are_ratios_within_the_run() {
        let report = FleetReport {
            rows: vec![
                row(What::Sqlite, 1, 500, 2000),
                row(What::Pg1, 1, 900, 1000),
                row(What::Pg3, 1, 1200, 900),
                row(What::Floor, 1, 600, 3000),
                row(What::Pg1, 64, 9000, 1000),
                row(What::Pg3, 64, 9000, 2100),
                row(What::Floor, 64, 8000, 9000),
            ],
            ..FleetReport::default()
        };
        let t = report.targets();
        assert_eq!(t.len(), 3);
        // 1 200 µs ÷ 600 µs = 2.0× > 1.5×: missed, though 1 daemon's 1.5× is in.
        assert_eq!(t[0].2, Some(false), "{t:?}");
        assert_eq!(t[1].2, Some(true), "{t:?}");
        assert!(t[2].0.contains("64 in flight") && t[2].1.contains("2.10×"));
        assert_eq!(t[2].2, Some(true));
        let mut md = String::new();
        report.markdown(&mut md);
        assert!(
            md.contains(
                "| 1 | pgbench, one-row UPDATE (floor) | 3000 | 0.600 | 0.600 | 1.00× |  | 3000 |"
            ),
            "{md}"
        );
    }
}
