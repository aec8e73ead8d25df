//! Crash consistency under load (issue 10): the built twofoldd is killed
//! with SIGKILL a hundred times while sixteen clients run logins (right
//! TOTP codes, wrong codes, backup codes) and enrollments against it, and
//! restarted each time on the same database and socket. Afterwards nothing
//! that a client was told happened is lost, and nothing was let in twice:
//! no backup code and no (user, time step) was accepted twice, every
//! enrollment answered with its backup codes is still confirmed, every
//! backup code that opened a login is spent, the audit rows of every answer
//! are there, and the audit chain verifies.
//!
//! A child twofoldd reads the real clock, so codes are computed for the
//! system time and steps advance on their own; the ledger records, for each
//! answer the daemon accepted, the time step of the code sent (or the backup
//! code), which is what a double spend is counted on.

mod storm;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storm::{
    client, enroll_outside_storm, login, unix_now, Account, Attempt, Rng, Seen, Spend, StopOnDrop,
    Storm, PERIOD,
};
use twofold_config::{Config, Seconds};
use twofold_proto::{Method, Request, Response, UserStatus};
use twofold_tests::daemon::{config_in, is_root, open_tempdir, DaemonProcess};
use twofold_tests::otp::totp_sha1;

/// Clients with a login or an enrollment in flight at any time.
const CLIENTS: usize = 16;
/// SIGKILLs (each followed by a restart).
const KILLS: u32 = 100;
/// How many answers of each kind the storm must have seen, so the test
/// cannot pass without doing real work.
const FLOORS: &[(&str, Seen, u64)] = &[
    ("totp", Seen::Accepted, 16),
    ("backup", Seen::Accepted, 16),
    ("wrong", Seen::Refused, 16),
    ("backup", Seen::Refused, 16),
    ("enroll", Seen::Accepted, CLIENTS as u64 / 2),
];
/// Answers that a kill must have cut, at least.
const MIN_CUT: u64 = 10;
/// The longest the storm goes on past its KILLS kills to reach the floors.
const MAX_STORM: Duration = Duration::from_secs(120);
/// Backup codes issued per enrollment (each one argon2id hash to make).
const BACKUP_CODES: u32 = 4;

#[test]
fn kill_9_a_hundred_times_under_load_loses_nothing_and_spends_nothing_twice() {
    assert!(
        is_root(),
        "logins for other accounts need uid 0: run as root (scripts/test does)"
    );
    let started = Instant::now();
    let seed = unix_now() ^ (u64::from(std::process::id()) << 32);
    println!("seed {seed:#x}");
    let dir = open_tempdir();
    let config = storm_config(dir.path());
    let daemon = DaemonProcess::start(dir.path(), &config);

    // Accounts enrolled before the storm, one per client; each confirmation
    // checks the harness's TOTP against oathtool (and needs oathtool).
    let storm = Storm::new(config.daemon.socket.clone());
    for i in 0..CLIENTS {
        let user = format!("veteran{i:02}");
        let account = enroll_outside_storm(&daemon, &user, &storm);
        storm.accounts.lock().unwrap().push(Arc::new(account));
    }

    // The storm: the clients loop until told to stop; this thread kills
    // and restarts the daemon.
    let mut rng = Rng(seed);
    let storm_started = Instant::now();
    let daemon = std::thread::scope(|s| {
        let mut daemon = daemon;
        let _stop = StopOnDrop(&storm.stop);
        for i in 0..CLIENTS {
            let storm = &storm;
            let seed = rng.next();
            s.spawn(move || client(storm, i, Rng(seed)));
        }
        // At least KILLS kills; then more, until every kind of answer was
        // seen often enough (on a loaded machine the clients get less done
        // between kills), at most until MAX_STORM has passed.
        for kill in 1.. {
            if kill > KILLS {
                let ledger = storm.ledger.lock().unwrap().clone();
                let accounts = storm.accounts.lock().unwrap().len();
                let figures = Figures::of(&ledger, &storm, accounts);
                let short = FLOORS
                    .iter()
                    .any(|(kind, seen, floor)| figures.get(kind, *seen) < *floor)
                    || figures.cut_logins() < MIN_CUT;
                if !short || storm_started.elapsed() > MAX_STORM {
                    break;
                }
            }
            // Mostly 20–150 ms apart; every fifth after up to 0.8 s, so
            // that what takes longer (an enrollment's confirmation hashes
            // its backup codes, queued behind backup-code logins for the
            // argon2 permit) is also seen to finish, and cut.
            let pause = match kill % 5 {
                0 => 400 + rng.below(401),
                _ => 20 + rng.below(131),
            };
            std::thread::sleep(Duration::from_millis(pause));
            daemon.kill9();
            daemon = DaemonProcess::start(dir.path(), &config);
            storm.restarts.fetch_add(1, Ordering::SeqCst);
        }
        daemon
    });
    let storm_time = storm_started.elapsed();

    let ledger = storm.ledger.lock().unwrap().clone();
    let accounts: Vec<Arc<Account>> = storm.accounts.lock().unwrap().clone();
    let figures = Figures::of(&ledger, &storm, accounts.len());
    println!("{figures}storm {storm_time:.1?}");

    // Nothing let in twice: per backup code and per (user, time step), at
    // most one answer was accepted.
    let mut outcomes: BTreeMap<&Spend, Vec<Seen>> = BTreeMap::new();
    for a in &ledger {
        outcomes.entry(&a.spend).or_default().push(a.seen);
    }
    let seen_as = |spend: &Spend, seen| {
        outcomes
            .get(spend)
            .map_or(0, |all| all.iter().filter(|s| **s == seen).count())
    };
    let accepted: Vec<&Spend> = outcomes
        .keys()
        .copied()
        .filter(|s| seen_as(s, Seen::Accepted) > 0)
        .collect();
    let twice: Vec<_> = accepted
        .iter()
        .filter(|s| seen_as(s, Seen::Accepted) > 1)
        .collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    let wrong: Vec<_> = accepted
        .iter()
        .filter(|s| matches!(s, Spend::Wrong { .. }))
        .collect();
    assert!(wrong.is_empty(), "wrong codes accepted: {wrong:?}");
    let odd: Vec<_> = ledger.iter().filter(|a| a.seen == Seen::Odd).collect();
    assert!(odd.is_empty(), "unexpected answers: {odd:?}");
    assert!(
        storm.odd.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        storm.odd.lock().unwrap()
    );

    // Every answer's audit rows are there (committed before the answer, so
    // a SIGKILL cannot take them back), and none for answers never given.
    let count = |event| audit_count(&daemon, event);
    let logins_ok = figures.accepted_logins();
    let logins_cut = figures.cut_logins();
    let success_rows = count("login_success");
    assert!(
        (logins_ok..=logins_ok + logins_cut).contains(&success_rows),
        "{success_rows} login_success rows for {logins_ok} successes and {logins_cut} cut answers"
    );
    let (codes_ok, codes_cut) = (
        figures.get("backup", Seen::Accepted),
        figures.get("backup", Seen::Cut),
    );
    let used_rows = count("backup_code_used");
    assert!(
        (codes_ok..=codes_ok + codes_cut).contains(&used_rows),
        "{used_rows} backup_code_used rows for {codes_ok} accepted and {codes_cut} cut"
    );
    let refused = figures.refused_logins();
    let failure_rows = count("login_failure");
    assert!(
        (refused..=refused + logins_cut).contains(&failure_rows),
        "{failure_rows} login_failure rows for {refused} refused logins and {logins_cut} cut answers"
    );
    let confirmed = figures.get("setup", Seen::Accepted) + figures.get("enroll", Seen::Accepted);
    let enroll_rows = count("enroll");
    assert!(
        enroll_rows >= confirmed,
        "{enroll_rows} enroll rows for {confirmed} confirmed enrollments"
    );
    match daemon.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => {
            assert_eq!(r.broken, None, "audit chain broken after the storm: {r:?}");
            assert!(r.rows >= success_rows + failure_rows, "{r:?}");
        }
        other => panic!("audit verify: {other:?}"),
    }

    // No lost enrollment, no backup code given back: each account is
    // confirmed and holds no more codes than those never accepted, and no
    // fewer than those neither accepted nor cut in flight.
    for account in &accounts {
        let status = status(&daemon, &account.user);
        assert!(
            status.factors.iter().any(|f| f.method == Method::TOTP),
            "{}'s confirmed enrollment was lost: {status:?}",
            account.user
        );
        if account.codes.is_empty() {
            // Confirmed while its answer was cut: its codes were never seen.
            continue;
        }
        let (mut spent, mut maybe) = (0, 0);
        for code in &account.codes {
            let spend = Spend::Code {
                user: account.user.clone(),
                code: code.clone(),
            };
            if seen_as(&spend, Seen::Accepted) > 0 {
                spent += 1;
            } else if seen_as(&spend, Seen::Cut) > 0 {
                maybe += 1;
            }
        }
        let issued = account.codes.len() as u32;
        assert!(
            status.backup_codes_left <= issued - spent
                && status.backup_codes_left + spent + maybe >= issued,
            "{}: {} codes left of {issued}, {spent} accepted, {maybe} cut",
            account.user,
            status.backup_codes_left
        );
    }

    // Spent stays spent: each accepted backup code and TOTP step is refused
    // now (a step is skipped when a step near now has the same code).
    let keys: BTreeMap<&str, &Account> = accounts.iter().map(|a| (a.user.as_str(), &**a)).collect();
    for spend in &accepted {
        let (user, code) = match spend {
            Spend::Code { user, code } => (user, code.clone()),
            Spend::Step { user, step } => {
                let now = unix_now() / PERIOD;
                let key = &keys[user.as_str()].key;
                let code = totp_sha1(key, step * PERIOD, 6);
                let clash = (now.saturating_sub(2)..=now + 2)
                    .any(|s| s != *step && totp_sha1(key, s * PERIOD, 6) == code);
                if clash {
                    continue;
                }
                (user, code)
            }
            Spend::Wrong { .. } => unreachable!("checked above"),
        };
        assert_eq!(
            login(&config.daemon.socket, user, &code),
            Seen::Refused,
            "{spend:?} was accepted before the storm ended and again after it"
        );
    }

    // The codes an enrollment showed are the ones stored: one never tried
    // opens a login.
    for account in accounts.iter().filter(|a| a.fresh) {
        let untried = account.codes.iter().find(|c| {
            !outcomes.contains_key(&Spend::Code {
                user: account.user.clone(),
                code: (*c).clone(),
            })
        });
        if let Some(code) = untried {
            assert_eq!(
                login(&config.daemon.socket, &account.user, code),
                Seen::Accepted,
                "{}: a backup code shown at enrollment does not work",
                account.user
            );
        }
    }

    // The storm did real work: the kills landed on answers in flight, and
    // every kind of answer was accepted or refused many times.
    assert!(storm.restarts.load(Ordering::SeqCst) >= u64::from(KILLS));
    for &(kind, seen, floor) in FLOORS {
        let n = figures.get(kind, seen);
        assert!(
            n >= floor,
            "only {n} {kind} answers {seen:?} (floor {floor})\n{figures}"
        );
    }
    assert!(
        logins_cut >= MIN_CUT,
        "only {logins_cut} answers cut by a kill\n{figures}"
    );
    println!("total {:.1?}", started.elapsed());
}

/// The daemon's configuration for the storm: one try per login, so each
/// connection carries exactly one answer; failures counted over one second
/// only, against the highest limits, so no account is ever locked (a
/// locked login would be refused with no failure row, and the right codes
/// refused too), however fast the machine.
fn storm_config(dir: &Path) -> Config {
    let mut config = config_in(dir);
    config.login.max_tries = 1;
    config.backup_codes.count = BACKUP_CODES;
    config.rate_limit.source_failures = 1000;
    config.rate_limit.source_window = Seconds(1);
    config.rate_limit.user_failures = 10_000;
    config.rate_limit.user_window = Seconds(1);
    config
}

/// What the daemon says of `user`'s account.
fn status(d: &DaemonProcess, user: &str) -> UserStatus {
    match d.call(&Request::Status {
        user: Some(user.into()),
    }) {
        Response::Status(s) => s,
        other => panic!("status of {user}: {other:?}"),
    }
}

/// Audit rows of `event`, paged through.
fn audit_count(d: &DaemonProcess, event: &str) -> u64 {
    let (mut n, mut after_id) = (0, None);
    loop {
        let page = d.call(&Request::AuditQuery {
            user: None,
            event: Some(event.into()),
            service: None,
            since: None,
            until: None,
            after_id,
            limit: None,
        });
        match page {
            Response::AuditRecords { records, more } => {
                n += records.len() as u64;
                after_id = records.last().map(|r| r.id);
                if !more {
                    return n;
                }
            }
            other => panic!("audit query {event}: {other:?}"),
        }
    }
}

/// Answers by kind and outcome, for the floors and the report.
struct Figures {
    by: BTreeMap<(&'static str, &'static str), u64>,
    restarts: u64,
    no_daemon: u64,
    confirmed_unseen: u64,
    accounts: usize,
}

impl Figures {
    fn of(ledger: &[Attempt], storm: &Storm, accounts: usize) -> Figures {
        let mut by = BTreeMap::new();
        for a in ledger {
            *by.entry((a.kind, seen_name(a.seen))).or_default() += 1;
        }
        Figures {
            by,
            restarts: storm.restarts.load(Ordering::SeqCst),
            no_daemon: storm.no_daemon.load(Ordering::SeqCst),
            confirmed_unseen: storm.confirmed_unseen.load(Ordering::SeqCst),
            accounts,
        }
    }

    fn get(&self, kind: &str, seen: Seen) -> u64 {
        self.by
            .iter()
            .filter(|((k, s), _)| *k == kind && *s == seen_name(seen))
            .map(|(_, n)| n)
            .sum()
    }

    fn logins(&self, seen: Seen) -> u64 {
        ["totp", "wrong", "backup"]
            .iter()
            .map(|k| self.get(k, seen))
            .sum()
    }

    fn accepted_logins(&self) -> u64 {
        self.logins(Seen::Accepted)
    }

    fn refused_logins(&self) -> u64 {
        self.logins(Seen::Refused)
    }

    fn cut_logins(&self) -> u64 {
        self.logins(Seen::Cut)
    }
}

fn seen_name(s: Seen) -> &'static str {
    match s {
        Seen::Accepted => "accepted",
        Seen::Refused => "refused",
        Seen::Cut => "cut",
        Seen::NotSent => "not sent",
        Seen::Odd => "odd",
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restarts {}, accounts {}, connections that found no daemon {}, \
             enrollments confirmed unseen {}",
            self.restarts, self.accounts, self.no_daemon, self.confirmed_unseen
        )?;
        for ((kind, seen), n) in &self.by {
            writeln!(f, "  {kind:6} {seen:8} {n}")?;
        }
        Ok(())
    }
}
