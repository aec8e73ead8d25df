//! One worker process: runs its share of a cell's logins one after another,
//! each a fresh `pam_start` / `pam_authenticate` / `pam_end`, as an sshd
//! child does. Several workers at once make the logins "in flight".
//!
//! Processes, not threads: sshd runs each login in its own process, and
//! `pam_oath` serializes writers of its users file with `fcntl` locks, which
//! only exclude other processes.

use crate::items::{Answer, Item};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twofold_tests::otp::totp_sha1;
use twofold_tests::pam::{Conversation, PamLogin};

/// What the parent tells a worker (its command line after `worker`).
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// PAM configuration directory for `pam_start_confdir`.
    pub confdir: PathBuf,
    /// PAM service (a file in `confdir`); several, comma-separated, are
    /// taken in turn by the items' positions in the cell (round-robin over
    /// every login of the cell, e.g. one service per daemon of a fleet).
    pub service: String,
    /// The cell's items, one a line.
    pub items: PathBuf,
    /// This worker takes items `first`, `first + stride`, ...
    pub first: usize,
    /// Number of workers in the cell.
    pub stride: usize,
    /// At most this many logins.
    pub count: usize,
    /// Stop starting logins after this long.
    pub limit: Duration,
}

impl WorkerArgs {
    /// The arguments as passed on the command line.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "worker".into(),
            self.confdir.display().to_string(),
            self.service.clone(),
            self.items.display().to_string(),
            self.first.to_string(),
            self.stride.to_string(),
            self.count.to_string(),
            self.limit.as_millis().to_string(),
        ]
    }

    /// Parses what [`WorkerArgs::to_args`] made (without `worker`).
    pub fn parse(args: &[String]) -> anyhow::Result<WorkerArgs> {
        let [confdir, service, items, first, stride, count, limit_ms] = args else {
            bail!("worker needs 7 arguments, got {}", args.len());
        };
        Ok(WorkerArgs {
            confdir: confdir.into(),
            service: service.clone(),
            items: items.into(),
            first: first.parse().context("first")?,
            stride: stride.parse::<usize>().context("stride")?.max(1),
            count: count.parse().context("count")?,
            limit: Duration::from_millis(limit_ms.parse().context("limit")?),
        })
    }
}

/// Monotonic nanoseconds, comparable across processes (CLOCK_MONOTONIC is
/// system-wide), so the parent can take the span from first start to last end.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) this process has used, in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1_000
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The text to type for `answer`, computed with the harness's own TOTP
/// (checked against oathtool at start-up), never with twofold's code.
pub fn answer_text(answer: &Answer, now: u64) -> Option<String> {
    match answer {
        Answer::None => None,
        Answer::Fixed(t) => Some(t.clone()),
        Answer::Totp(secret) => Some(totp_sha1(secret, now, 6)),
        Answer::Wrong(secret) => Some(wrong_code(secret, now)),
    }
}

/// A six-digit code that no product accepts now: none of the codes of the
/// previous, current or next step (every product here accepts ±1 step).
pub fn wrong_code(secret: &[u8], now: u64) -> String {
    let valid: Vec<u32> = [now.saturating_sub(30), now, now + 30]
        .iter()
        .map(|&t| totp_sha1(secret, t, 6).parse().unwrap_or(0))
        .collect();
    let mut c = (valid[1] + 500_000) % 1_000_000;
    while valid.contains(&c) {
        c = (c + 1) % 1_000_000;
    }
    format!("{c:06}")
}

/// The PAM service of the cell's `index`-th login: of several
/// (comma-separated), each in turn.
pub fn service_for(services: &str, index: usize) -> &str {
    let n = services.split(',').count();
    services.split(',').nth(index % n).unwrap_or(services)
}

/// Runs the worker: prints `ready`, waits for a line on stdin, runs, then
/// prints the summary `done N START_NS END_NS CPU_NS`, a `codes` line and a
/// `lat` line of per-login nanoseconds.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.items)
        .with_context(|| format!("reading {}", args.items.display()))?;
    let mine: Vec<(usize, Item)> = text
        .lines()
        .enumerate()
        .skip(args.first)
        .step_by(args.stride)
        .take(args.count)
        .map(|(i, line)| Ok((i, Item::parse(line)?)))
        .collect::<anyhow::Result<_>>()?;
    let logins: Vec<PamLogin> = mine
        .iter()
        .map(|(i, it)| {
            let service = service_for(&args.service, *i);
            Ok(PamLogin::new(&args.confdir, service, &it.user)?
                .rhost("192.0.2.10")
                .tty("ssh"))
        })
        .collect::<anyhow::Result<_>>()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    if go.trim() != "go" {
        // The parent gave up (its end of the pipe closed): run nothing.
        return Ok(());
    }
    let mut latencies = Vec::with_capacity(mine.len());
    let mut codes: BTreeMap<i32, usize> = BTreeMap::new();
    let started = Instant::now();
    let start_ns = monotonic_ns();
    let cpu0 = self_cpu_ns();
    for ((_, item), login) in mine.iter().zip(&logins) {
        if started.elapsed() >= args.limit {
            break;
        }
        let conv = match answer_text(&item.answer, unix_now()) {
            Some(a) => Conversation::new().answer(&a),
            None => Conversation::new(),
        };
        let t = Instant::now();
        let mut session = login.start(conv)?;
        let code = session.authenticate();
        drop(session);
        latencies.push(t.elapsed().as_nanos() as u64);
        *codes.entry(code.0).or_default() += 1;
    }
    let cpu = self_cpu_ns() - cpu0;
    let end_ns = monotonic_ns();
    writeln!(out, "done {} {start_ns} {end_ns} {cpu}", latencies.len())?;
    let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    writeln!(out, "codes {}", codes.join(" "))?;
    let lat: Vec<String> = latencies.iter().map(u64::to_string).collect();
    writeln!(out, "lat {}", lat.join(" "))?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_tests::otp::base32_decode;

    #[test]
    fn wrong_code_is_never_a_valid_one() {
        let secret = base32_decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        for now in (1_800_000_000u64..1_800_003_000).step_by(30) {
            let wrong = wrong_code(&secret, now);
            assert_eq!(wrong.len(), 6);
            for t in [now - 30, now, now + 30] {
                assert_ne!(wrong, totp_sha1(&secret, t, 6), "now={now}");
            }
        }
    }

    #[test]
    fn several_services_take_the_logins_in_turn() {
        let picked: Vec<&str> = (0..7).map(|i| service_for("a,b,c", i)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b", "c", "a"]);
        assert_eq!(service_for("twofold", 5), "twofold");
    }

    #[test]
    fn worker_args_round_trip() {
        let a = WorkerArgs {
            confdir: "/tmp/c".into(),
            service: "tf".into(),
            items: "/tmp/i".into(),
            first: 3,
            stride: 16,
            count: 62,
            limit: Duration::from_millis(6000),
        };
        let back = WorkerArgs::parse(&a.to_args()[1..]).unwrap();
        assert_eq!(back.to_args(), a.to_args());
        assert!(WorkerArgs::parse(&a.to_args()[2..]).is_err());
    }
}
