//! The daemon's copy of what a login reads before its prompt: every
//! enrolled account's credentials, unused code methods and locks, kept in
//! memory and brought up to date by the database's notifications, so a
//! fleet login's first store call costs no round trip.
//!
//! One thread holds a connection of its own that `LISTEN`s on
//! `twofold_accounts` (schema 6's triggers announce, at commit, the name
//! of every account whose credentials, codes or locks changed), loads
//! every account after `LISTEN` took effect, and reads an account again
//! when it is named. Between notifications it asks the server for a sign
//! of life every [`HEARTBEAT`]; a connection that breaks or goes quiet
//! makes the copy unusable (every login reads the database, as without
//! a copy) until a new connection has loaded everything again.
//!
//! A copy is served only where it cannot let anyone in whom the database
//! would refuse ([`Replica::snapshot`]): an account it does not hold (a
//! name never enrolled, or enrolled a moment ago) is read from the
//! database, and so is an account under a lock it holds (a lock lifted a
//! moment ago must not refuse). Whatever a login decides from a copy is
//! decided again by the write that spends its answer: a step is spent by
//! the credential's row id (a credential removed or replaced meanwhile
//! cannot be), only above the stored counter, and only while no lock
//! stands (`login.rs`, `spend_step_sql`) — the checks that already cover
//! the seconds a person takes to type a code after a snapshot read from
//! the database. HOTP accounts are always read from the database: their
//! check searches from the stored counter, which a spend moves without a
//! notification.

use super::client::{Heard, PgClient};
use super::login::{credential_at, CREDENTIAL_COLUMNS};
use super::tls::Connector;
use super::{from_db, method, to_db};
use crate::clock::Clock;
use crate::log::Logger;
use crate::store::{Credential, Locked, Snapshot, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use twofold_proto::Method;

/// How often a quiet listening connection is asked for a sign of life.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long a broken connection waits before the next attempt.
const RETRY: Duration = Duration::from_secs(1);

/// The channel schema 6's triggers notify on.
const CHANNEL: &str = "twofold_accounts";

/// One account as a login's snapshot reads it.
#[derive(Debug, Default)]
struct Account {
    /// In the snapshot's order (`created_at`, `id`).
    credentials: Vec<Credential>,
    /// Each method with an unused code, and when the last of them expires
    /// (`None`: one never does).
    codes: Vec<(Method, Option<u64>)>,
    /// The latest end of the locks on each source (`None`: every source).
    locks: Vec<(Option<String>, u64)>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the copy is whole: loaded after `LISTEN` took effect, and
    /// every notification since applied.
    live: bool,
    /// When the listening connection last answered.
    heard: Option<Instant>,
    /// Accounts with at least one credential.
    accounts: HashMap<String, Account>,
}

/// The replica's state, and its listener thread.
pub(crate) struct Replica {
    state: Arc<Mutex<State>>,
    stop: UnboundedSender<Heard>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Past this since the last answer, the copy is not served.
    stale_after: Duration,
}

/// What the replica is: for `twofold doctor` and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// Whether logins are served from it.
    pub live: bool,
    /// The accounts it holds.
    pub accounts: usize,
}

/// How the listener connects.
pub(crate) struct Dial {
    pub config: tokio_postgres::Config,
    pub tls: Connector,
    /// A connection's opening, and each call on it, within these.
    pub within: Duration,
    pub deadline: Duration,
}

impl Replica {
    /// Starts the listener thread; the copy is served once it has loaded.
    pub fn start(dial: Dial, clock: Arc<dyn Clock>, log: Logger) -> std::io::Result<Replica> {
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, notes) = unbounded_channel();
        let stale_after = HEARTBEAT * 2 + dial.deadline;
        let listener = Listener {
            state: state.clone(),
            notes,
            sender: stop.clone(),
            dial,
            clock,
            log,
            tag: 0,
        };
        let thread = std::thread::Builder::new()
            .name("twofoldd-replica".into())
            .spawn(move || listener.run())?;
        Ok(Replica {
            state,
            stop,
            thread: Some(thread),
            stale_after,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the replica is now.
    pub fn status(&self) -> ReplicaState {
        let s = self.state();
        ReplicaState {
            live: self.usable(&s),
            accounts: s.accounts.len(),
        }
    }

    fn usable(&self, s: &State) -> bool {
        s.live && s.heard.is_some_and(|h| h.elapsed() <= self.stale_after)
    }

    /// `user`'s snapshot from `source` at `now` from the copy, or `None`
    /// when it must be read from the database: the copy is not live, does
    /// not hold the account, holds a lock on it, or the account has an
    /// HOTP token (see the module's comment).
    pub fn snapshot(&self, user: &str, source: &str, now: u64) -> Option<Snapshot> {
        let s = self.state();
        if !self.usable(&s) {
            return None;
        }
        let a = s.accounts.get(user)?;
        if a.credentials.iter().any(|c| c.method == Method::HOTP) {
            return None;
        }
        let locked = a
            .locks
            .iter()
            .any(|(on, until)| *until > now && on.as_deref().is_none_or(|on| on == source));
        if locked {
            return None;
        }
        Some(Snapshot {
            lock: None::<Locked>,
            credentials: a.credentials.clone(),
            codes: a
                .codes
                .iter()
                .filter(|(_, expires)| expires.is_none_or(|e| e > now))
                .map(|(m, _)| m.clone())
                .collect(),
            copy: true,
        })
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.stop.send(Heard::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The listener thread's side.
struct Listener {
    state: Arc<Mutex<State>>,
    notes: UnboundedReceiver<Heard>,
    /// Given to each connection, which reports on it.
    sender: UnboundedSender<Heard>,
    dial: Dial,
    clock: Arc<dyn Clock>,
    log: Logger,
    /// The current connection's tag.
    tag: u64,
}

/// Why a listening session ended.
enum Ended {
    Stopped,
    Lost(String),
}

impl Listener {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(mut self) {
        let Ok(idle) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        else {
            self.log.event(
                "store_replica",
                &[("state", "off"), ("error", "no runtime for the listener")],
            );
            return;
        };
        let mut said_lost = false;
        loop {
            let why = match self.session() {
                Ended::Stopped => return,
                Ended::Lost(why) => why,
            };
            let was_live = {
                let mut s = self.state();
                s.accounts = HashMap::new();
                std::mem::replace(&mut s.live, false)
            };
            if was_live || !said_lost {
                said_lost = true;
                self.log.event(
                    "store_replica",
                    &[
                        ("state", "lost"),
                        ("error", &why),
                        ("logins", "read from the database until it is back"),
                    ],
                );
            }
            // Reports of the connection that ended are old news.
            let until = Instant::now() + RETRY;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match idle.block_on(async { tokio::time::timeout(left, self.notes.recv()).await }) {
                    Ok(Some(Heard::Stop)) | Ok(None) => return,
                    Ok(Some(_)) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// One connection: `LISTEN`, load everything, then apply what is
    /// heard until the connection ends or the replica stops.
    fn session(&mut self) -> Ended {
        self.tag += 1;
        let tag = self.tag;
        let mut c = match self.dial.tls.connect_listening(
            &self.dial.config,
            self.dial.within,
            self.dial.deadline,
            (tag, self.sender.clone()),
        ) {
            Ok(c) => c,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        if let Err(e) = c.batch_execute(&format!("LISTEN {CHANNEL}")) {
            return Ended::Lost(StoreError::from(e).to_string());
        }
        let all = match load_all(&mut c, self.clock.now()) {
            Ok(all) => all,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let count = all.len();
        {
            let mut s = self.state();
            s.accounts = all;
            s.live = true;
            s.heard = Some(Instant::now());
        }
        self.log.event(
            "store_replica",
            &[("state", "live"), ("accounts", &count.to_string())],
        );
        loop {
            let first = match c.next_heard(&mut self.notes, HEARTBEAT) {
                Some(Heard::Stop) => return Ended::Stopped,
                Some(Heard::Closed(t)) if t == tag => {
                    return Ended::Lost("postgres: connection lost".into())
                }
                Some(Heard::Changed(t, name)) if t == tag => name,
                // An earlier connection's report.
                Some(_) => continue,
                None => {
                    // Quiet: a sign of life, which also lets a lost
                    // connection show itself.
                    if let Err(e) = c.batch_execute("SELECT 1") {
                        return Ended::Lost(StoreError::from(e).to_string());
                    }
                    self.state().heard = Some(Instant::now());
                    continue;
                }
            };
            let mut names = BTreeSet::from([first]);
            while let Ok(h) = self.notes.try_recv() {
                match h {
                    Heard::Stop => return Ended::Stopped,
                    Heard::Closed(t) if t == tag => {
                        return Ended::Lost("postgres: connection lost".into())
                    }
                    Heard::Changed(t, name) if t == tag => {
                        names.insert(name);
                    }
                    _ => {}
                }
            }
            let names: Vec<String> = names.into_iter().collect();
            match load(&mut c, &names, self.clock.now()) {
                Ok(fresh) => {
                    let mut s = self.state();
                    let mut fresh = fresh;
                    for n in names {
                        match fresh.remove(&n) {
                            Some(a) => s.accounts.insert(n, a),
                            None => s.accounts.remove(&n),
                        };
                    }
                    s.heard = Some(Instant::now());
                }
                Err(e) => return Ended::Lost(e.to_string()),
            }
        }
    }
}

/// Accounts read per query when loading everything: the rows in flight,
/// and the memory they take while being read, stay bounded.
const PAGE: i64 = 500;

/// Every account with a credential, read at `now`, a page at a time (each
/// page its own snapshot: what changes after a page was read is notified).
fn load_all(c: &mut PgClient, now: u64) -> Result<HashMap<String, Account>, StoreError> {
    let mut accounts = HashMap::new();
    let mut after = String::new();
    loop {
        let names: Vec<String> = c
            .query(
                "SELECT DISTINCT username FROM credentials WHERE username > $1
                 ORDER BY username LIMIT $2",
                &[&after, &PAGE],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let Some(last) = names.last() else {
            return Ok(accounts);
        };
        after = last.clone();
        accounts.extend(load(c, &names, now)?);
    }
}

/// The accounts of `names` that have a credential, read at `now` (a lock
/// or code that ended before it is left out).
fn load(
    c: &mut PgClient,
    names: &[String],
    now: u64,
) -> Result<HashMap<String, Account>, StoreError> {
    let now = to_db(now);
    let mut accounts: HashMap<String, Account> = HashMap::new();
    let creds = c.query(
        &*format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.username = ANY($1)
             ORDER BY c.username, c.created_at, c.id"
        ),
        &[&names],
    )?;
    for r in &creds {
        let cred = credential_at(r, 0)?;
        accounts
            .entry(cred.user.clone())
            .or_default()
            .credentials
            .push(cred);
    }
    let codes = c.query(
        "SELECT username, method, bool_or(expires_at IS NULL), max(expires_at) FROM codes
         WHERE username = ANY($1) AND used_at IS NULL
           AND (expires_at IS NULL OR expires_at > $2)
         GROUP BY username, method",
        &[&names, &now],
    )?;
    for r in &codes {
        if let Some(a) = accounts.get_mut(r.get::<_, &str>(0)) {
            let never: bool = r.get(2);
            let last: Option<i64> = r.get(3);
            a.codes.push((
                method(r.get(1))?,
                if never { None } else { last.map(from_db) },
            ));
        }
    }
    let locks = c.query(
        "SELECT username, source, max(until) FROM locks
         WHERE username = ANY($1) AND cleared_at IS NULL AND until > $2
         GROUP BY username, source",
        &[&names, &now],
    )?;
    for r in &locks {
        if let Some(a) = accounts.get_mut(r.get::<_, &str>(0)) {
            a.locks.push((r.get(1), from_db(r.get(2))));
        }
    }
    Ok(accounts)
}
