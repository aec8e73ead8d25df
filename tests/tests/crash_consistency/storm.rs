//! The storm's clients and what they record: logins and enrollments over
//! the protocol, each answer in the ledger with what it would spend and
//! how it ended as the client saw it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use twofold_proto::{Client, ErrorKind, Request, Response, Secret};
use twofold_tests::daemon::DaemonProcess;
use twofold_tests::otp::{base32_decode, oathtool, totp_sha1};

/// Accounts each client enrolls during the storm.
const FRESH_PER_CLIENT: usize = 1;
/// Enrollments in flight at most. twofoldd runs one argon2id at a time on
/// two cores, so a confirmation (one hash per backup code) waits behind
/// every other one and every backup-code login: with each client confirming
/// at once, none would finish between two kills.
const ENROLLING: usize = 2;
/// The TOTP step (the configured default).
pub(crate) const PERIOD: u64 = 30;
/// A client's budget for one connection; a killed daemon breaks it at once.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the clients share: the enrolled accounts, what they saw, counters.
pub(crate) struct Storm {
    socket: PathBuf,
    pub(crate) accounts: Mutex<Vec<Arc<Account>>>,
    pub(crate) ledger: Mutex<Vec<Attempt>>,
    /// Answers of a kind no attempt expects (named), for the failure message.
    pub(crate) odd: Mutex<Vec<String>>,
    /// Connections that found no daemon (between a kill and the restart).
    pub(crate) no_daemon: AtomicU64,
    /// Enrollments found confirmed after their confirmation's answer was cut.
    pub(crate) confirmed_unseen: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// Clients in an enrollment step now.
    enrolling: AtomicUsize,
    pub(crate) stop: AtomicBool,
}

impl Storm {
    pub(crate) fn new(socket: PathBuf) -> Storm {
        Storm {
            socket,
            accounts: Mutex::new(Vec::new()),
            ledger: Mutex::new(Vec::new()),
            odd: Mutex::new(Vec::new()),
            no_daemon: AtomicU64::new(0),
            confirmed_unseen: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            enrolling: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Takes one of the [`ENROLLING`] slots (given back by the caller).
    fn enroll_slot(&self) -> bool {
        self.enrolling
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < ENROLLING).then_some(n + 1)
            })
            .is_ok()
    }

    fn record(&self, kind: &'static str, spend: Spend, seen: Seen) {
        if seen == Seen::NotSent {
            self.no_daemon.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.ledger
            .lock()
            .unwrap()
            .push(Attempt { kind, spend, seen });
    }
}

/// Stops the clients when the storm ends, also by a panic (the scope would
/// otherwise wait for them forever).
pub(crate) struct StopOnDrop<'a>(pub(crate) &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An enrolled account as its owner knows it.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) user: String,
    pub(crate) key: Vec<u8>,
    /// Backup codes in display form (none when the confirmation's answer
    /// was cut: the owner never saw them).
    pub(crate) codes: Vec<String>,
    /// Enrolled during the storm.
    pub(crate) fresh: bool,
}

/// What an answer would spend if accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Spend {
    /// A TOTP code of this step (a login, or an enrollment's confirmation).
    Step { user: String, step: u64 },
    /// A backup code.
    Code { user: String, code: String },
    /// A code valid at no step near now.
    Wrong { user: String },
}

/// How an answer ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// `Success` (a login) or `BackupCodes` (an enrollment confirmed).
    Accepted,
    /// `Denied` (a login) or `Failed` (a confirmation).
    Refused,
    /// Sent, and the connection broke before the reply: the daemon may or
    /// may not have acted on it.
    Cut,
    /// The daemon was down, or went down before the answer was sent.
    NotSent,
    /// Anything else.
    Odd,
}

#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// `totp`, `wrong`, `backup` (logins), `enroll` (a confirmation in the
    /// storm) or `setup` (one before it).
    pub(crate) kind: &'static str,
    pub(crate) spend: Spend,
    pub(crate) seen: Seen,
}

/// One client: logins as any enrolled account with a random kind of
/// answer, and now and then a step of enrolling one of its own accounts.
pub(crate) fn client(storm: &Storm, id: usize, mut rng: Rng) {
    let mut fresh: Vec<Enrolling> = (0..FRESH_PER_CLIENT)
        .map(|k| Enrolling {
            user: format!("fresh{id:02}-{k}"),
            kind: "enroll",
            pending: None,
        })
        .collect();
    while !storm.stop.load(Ordering::SeqCst) {
        if !fresh.is_empty() && rng.below(8) == 0 && storm.enroll_slot() {
            let done = fresh[0].step(storm);
            storm.enrolling.fetch_sub(1, Ordering::SeqCst);
            if let Some(account) = done {
                storm.accounts.lock().unwrap().push(Arc::new(account));
                fresh.remove(0);
            }
            continue;
        }
        let account = {
            let accounts = storm.accounts.lock().unwrap();
            accounts[rng.below(accounts.len() as u64) as usize].clone()
        };
        let user = account.user.clone();
        let now = unix_now() / PERIOD;
        let roll = rng.below(10);
        let (kind, spend, code) = if roll < 3 && !account.codes.is_empty() {
            // Any of its codes: unused ones, accepted ones (a replay), ones
            // whose answer a kill cut; possibly in flight on another client.
            let code = account.codes[rng.below(account.codes.len() as u64) as usize].clone();
            (
                "backup",
                Spend::Code {
                    user,
                    code: code.clone(),
                },
                code,
            )
        } else if roll < 5 {
            let code = wrong_code(&account.key, now, &mut rng);
            ("wrong", Spend::Wrong { user }, code)
        } else {
            // The previous, current or next step: all within the daemon's
            // skew, and sent in any order, so a step is often replayed or
            // already passed by a later one.
            let step = now + rng.below(3) - 1;
            let Some(code) = unambiguous_code(&account.key, step) else {
                continue;
            };
            ("totp", Spend::Step { user, step }, code)
        };
        let user = match &spend {
            Spend::Step { user, .. } | Spend::Code { user, .. } | Spend::Wrong { user } => user,
        };
        let seen = login(&storm.socket, user, &code);
        if seen == Seen::NotSent {
            std::thread::sleep(Duration::from_millis(5));
        }
        storm.record(kind, spend, seen);
    }
}

/// One account being enrolled by its client through requests.
struct Enrolling {
    user: String,
    /// The ledger's name of its confirmation: `setup` or `enroll`.
    kind: &'static str,
    /// The secret of the enrollment started and not yet confirmed.
    pending: Option<(Vec<u8>, String)>,
}

impl Enrolling {
    /// Starts or confirms; the enrolled account once confirmed.
    fn step(&mut self, storm: &Storm) -> Option<Account> {
        let Some((key, b32)) = &self.pending else {
            let start = Request::TotpEnrollStart {
                user: Some(self.user.clone()),
                algorithm: None,
                digits: None,
            };
            match request(&storm.socket, &start) {
                Ok(Response::TotpPending(p)) => {
                    let b32 = p.secret.expose().to_owned();
                    let key = base32_decode(&b32).expect("the daemon's secret is base32");
                    self.pending = Some((key, b32));
                }
                Ok(other) => storm.odd.lock().unwrap().push(format!("start: {other:?}")),
                Err(_) => {}
            }
            return None;
        };
        let step = unix_now() / PERIOD;
        let code = unambiguous_code(key, step)?;
        assert_eq!(
            code,
            oathtool(b32, step * PERIOD),
            "the harness's TOTP disagrees with oathtool"
        );
        let confirm = Request::TotpEnrollConfirm {
            user: Some(self.user.clone()),
            code: Secret::from(code.as_str()),
        };
        let spend = Spend::Step {
            user: self.user.clone(),
            step,
        };
        let account = |codes| Account {
            user: self.user.clone(),
            key: key.clone(),
            codes,
            fresh: true,
        };
        match request(&storm.socket, &confirm) {
            Ok(Response::BackupCodes { codes }) => {
                storm.record(self.kind, spend, Seen::Accepted);
                Some(account(
                    codes.iter().map(|c| c.expose().to_owned()).collect(),
                ))
            }
            // A confirmation whose answer a kill cut was stored.
            Ok(Response::Failed {
                kind: ErrorKind::Conflict,
                ..
            }) => {
                storm.confirmed_unseen.fetch_add(1, Ordering::Relaxed);
                Some(account(Vec::new()))
            }
            Ok(Response::Failed { .. }) => {
                storm.record(self.kind, spend, Seen::Refused);
                None
            }
            Ok(other) => {
                storm
                    .odd
                    .lock()
                    .unwrap()
                    .push(format!("confirm: {other:?}"));
                None
            }
            Err(seen) => {
                storm.record(self.kind, spend, seen);
                None
            }
        }
    }
}

/// Enrolls `user` before the storm (no kill can interrupt it).
pub(crate) fn enroll_outside_storm(d: &DaemonProcess, user: &str, storm: &Storm) -> Account {
    let mut e = Enrolling {
        user: user.to_owned(),
        kind: "setup",
        pending: None,
    };
    for _ in 0..10 {
        if let Some(mut account) = e.step(storm) {
            account.fresh = false;
            assert!(storm.odd.lock().unwrap().is_empty(), "{:?}", storm.odd);
            return account;
        }
    }
    panic!("could not enroll {user}: {}", d.log());
}

/// A whole login as root (service `sudo`, one try): the prompt, `code`,
/// and how it ended.
pub(crate) fn login(socket: &Path, user: &str, code: &str) -> Seen {
    let Ok(mut c) = Client::connect(socket, TIMEOUT, "crash-consistency") else {
        return Seen::NotSent;
    };
    let begin = Request::Begin {
        user: user.into(),
        service: "sudo".into(),
        rhost: None,
        tty: Some("pts/0".into()),
        ruser: Some("root".into()),
        ssh_auth_info: None,
    };
    match c.call(&begin) {
        Ok(Response::Prompt { .. }) => {}
        Ok(_) => return Seen::Odd,
        Err(_) => return Seen::NotSent,
    }
    match c.call(&Request::Answer {
        text: Secret::from(code),
    }) {
        Ok(Response::Success) => Seen::Accepted,
        Ok(Response::Denied { .. }) => Seen::Refused,
        Ok(_) => Seen::Odd,
        Err(_) => Seen::Cut,
    }
}

/// One request on a fresh connection; `Err` says whether it was sent.
fn request(socket: &Path, req: &Request) -> Result<Response, Seen> {
    let mut c = Client::connect(socket, TIMEOUT, "crash-consistency").map_err(|_| Seen::NotSent)?;
    c.call(req).map_err(|_| Seen::Cut)
}

/// The code of `step`, unless a step near it has the same code: the daemon
/// takes the last step of its window that matches, so the ledger would
/// name the wrong step.
fn unambiguous_code(key: &[u8], step: u64) -> Option<String> {
    let code = totp_sha1(key, step * PERIOD, 6);
    let clash = (step.saturating_sub(3)..=step + 3)
        .any(|s| s != step && totp_sha1(key, s * PERIOD, 6) == code);
    (!clash).then_some(code)
}

/// A six-digit code valid at no step the daemon could look at.
fn wrong_code(key: &[u8], now: u64, rng: &mut Rng) -> String {
    loop {
        let code = format!("{:06}", rng.below(1_000_000));
        if (now.saturating_sub(3)..=now + 3).all(|s| totp_sha1(key, s * PERIOD, 6) != code) {
            return code;
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// SplitMix64: enough randomness for timings and choices; the seed is
/// printed so a failing run's choices can be told apart.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
