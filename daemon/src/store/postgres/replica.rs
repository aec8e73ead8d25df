//! The daemon's copy of what a login reads before its prompt: every
//! enrolled account's credentials, unused code methods and locks, kept in
//! memory and brought up to date by the database's notifications, so a
//! fleet login's first store call costs no round trip.
//!
//! One thread holds a connection of its own that `LISTEN`s on
//! `twofold_accounts` (schema 6's triggers announce, at commit, the name
//! of every account whose credentials, codes or locks changed, and
//! `/reload` when one of those tables is emptied), loads every account
//! after `LISTEN` took effect, and reads an account again when it is
//! named. Every [`HEARTBEAT`] it notifies a channel of its own (an echo):
//! notifications reach a listener in commit order, so when the echo comes
//! back every change committed before it was sent has been applied. The
//! copy is served only while the last echo back was sent within
//! [`FRESH`] — a connection that breaks, a server that stops answering,
//! or notifications that stop arriving (a pooler in transaction mode
//! swallows them) make every login read the database, as without a copy;
//! an echo missing for [`FRESH`] ends the connection, and a new one
//! loads everything again (after 1 s, doubling to 30 s while it fails).
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
//! the database. Accounts with an HOTP token or a security key are
//! always read from the database: their checks read the stored counter
//! (HOTP searches from it; a key's counter going back is reported as a
//! cloned key), which a spend moves without a notification.

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
use tokio_postgres::types::ToSql;
use twofold_proto::Method;

/// How often the listener sends itself an echo.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// How old the last echo back may be (from when it was sent) for the
/// copy to be served; an echo missing this long ends the connection.
const FRESH: Duration = Duration::from_secs(8);

/// How long a broken connection waits before the next attempt, at first
/// and at most (doubling in between, plus up to half again at random, so
/// a fleet coming back after a restart does not reload all at once).
const RETRY: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What the triggers send when a table was emptied (`TRUNCATE`): no
/// account name starts with `/`.
const RELOAD: &str = "/reload";

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
    /// When the last echo that came back was sent: every change committed
    /// before then is in the copy.
    heard: Option<Instant>,
    /// Accounts with at least one credential.
    accounts: HashMap<String, Account>,
}

/// The replica's state, and its listener thread.
pub(crate) struct Replica {
    state: Arc<Mutex<State>>,
    stop: UnboundedSender<Heard>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Told when the listener thread ends.
    ended: Mutex<std::sync::mpsc::Receiver<()>>,
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
        let (end, ended) = std::sync::mpsc::channel();
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
            .spawn(move || {
                listener.run();
                let _ = end.send(());
            })?;
        Ok(Replica {
            state,
            stop,
            thread: Some(thread),
            ended: Mutex::new(ended),
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
        s.live && s.heard.is_some_and(|h| h.elapsed() <= FRESH)
    }

    /// `user`'s snapshot from `source` at `now` from the copy, or `None`
    /// when it must be read from the database: the copy is not fresh,
    /// does not hold the account, holds a lock on it, or the account has a
    /// credential whose check reads its counter (see the module's comment).
    pub fn snapshot(&self, user: &str, source: &str, now: u64) -> Option<Snapshot> {
        let s = self.state();
        if !self.usable(&s) {
            return None;
        }
        let a = s.accounts.get(user)?;
        if a.credentials
            .iter()
            .any(|c| c.method == Method::HOTP || c.method == Method::FIDO2)
        {
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
    /// Stops the listener; waits for it a second at most (a connection
    /// being opened, or a call the server does not answer, may hold it up
    /// to its deadline: it then ends by itself, and a daemon stopping does
    /// not wait for it).
    fn drop(&mut self) {
        let _ = self.stop.send(Heard::Stop);
        let ended = self.ended.get_mut().unwrap_or_else(|e| e.into_inner());
        if ended.recv_timeout(Duration::from_secs(1)).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
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
        let mut retry = RETRY;
        loop {
            let why = match self.session() {
                Ended::Stopped => return,
                Ended::Lost(why) => why,
            };
            let was_live = {
                let mut s = self.state();
                s.accounts = HashMap::new();
                s.heard = None;
                std::mem::replace(&mut s.live, false)
            };
            if was_live {
                retry = RETRY;
            }
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
            let until = Instant::now() + jittered(retry);
            retry = (retry * 2).min(RETRY_MAX);
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
    /// heard, and send an echo every [`HEARTBEAT`], until the connection
    /// ends, an echo does not come back within [`FRESH`], or the replica
    /// stops.
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
        // The echo's channel is this connection's alone (no other
        // listener hears it), its payload a number in sequence.
        let mut nonce = [0u8; 8];
        if crate::crypto::keys::random_bytes(&mut nonce).is_err() {
            return Ended::Lost("no random bytes for the echo's channel".into());
        }
        let echo_channel = format!("twofold_echo_{:016x}", u64::from_le_bytes(nonce));
        if let Err(e) = c.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {echo_channel}")) {
            return Ended::Lost(StoreError::from(e).to_string());
        }
        let loads = match Loads::prepare(&mut c) {
            Ok(l) => l,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let all = match load_all(&mut c, &loads, self.clock.now()) {
            Ok(all) => all,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let count = all.len();
        {
            let mut s = self.state();
            s.accounts = all;
            s.live = true;
        }
        let mut said_live = false;
        // The echo sent and not yet back: its number and when it was sent.
        let mut seq = 0u64;
        let mut pending: Option<(u64, Instant)> = None;
        let mut next_echo = Instant::now();
        loop {
            let now = Instant::now();
            if pending.is_none() && now >= next_echo {
                seq += 1;
                let sent = c.batch_execute(&format!("SELECT pg_notify('{echo_channel}', '{seq}')"));
                if let Err(e) = sent {
                    return Ended::Lost(StoreError::from(e).to_string());
                }
                pending = Some((seq, now));
                next_echo = now + HEARTBEAT;
            }
            if let Some((_, sent)) = pending {
                if sent.elapsed() > FRESH {
                    return Ended::Lost(format!(
                        "notifications do not arrive (no echo within {} s)",
                        FRESH.as_secs()
                    ));
                }
            }
            let wait = next_echo
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100))
                .min(HEARTBEAT);
            let Some(first) = c.next_heard(&mut self.notes, wait) else {
                continue;
            };
            // Everything heard so far, in order.
            let mut names = BTreeSet::new();
            let mut reload_all = false;
            let mut echoed = None;
            let mut next = Some(first);
            while let Some(h) = next {
                match h {
                    Heard::Stop => return Ended::Stopped,
                    Heard::Closed(t) if t == tag => {
                        return Ended::Lost("postgres: connection lost".into())
                    }
                    Heard::Notified {
                        tag: t,
                        channel,
                        payload,
                    } if t == tag => {
                        if channel == echo_channel {
                            echoed = payload.parse::<u64>().ok();
                        } else if payload == RELOAD {
                            reload_all = true;
                        } else {
                            names.insert(payload);
                        }
                    }
                    // An earlier connection's report.
                    _ => {}
                }
                next = self.notes.try_recv().ok();
            }
            if reload_all {
                match load_all(&mut c, &loads, self.clock.now()) {
                    Ok(all) => self.state().accounts = all,
                    Err(e) => return Ended::Lost(e.to_string()),
                }
            } else if !names.is_empty() {
                let names: Vec<String> = names.into_iter().collect();
                match load(&mut c, &loads, &names, self.clock.now()) {
                    Ok(mut fresh) => {
                        let mut s = self.state();
                        for n in names {
                            match fresh.remove(&n) {
                                Some(a) => s.accounts.insert(n, a),
                                None => s.accounts.remove(&n),
                            };
                        }
                    }
                    Err(e) => return Ended::Lost(e.to_string()),
                }
            }
            // Every change committed before the echo was sent came
            // before it, and is applied now.
            if let (Some(back), Some((want, sent))) = (echoed, pending) {
                if back == want {
                    self.state().heard = Some(sent);
                    pending = None;
                    if !said_live {
                        said_live = true;
                        self.log.event(
                            "store_replica",
                            &[("state", "live"), ("accounts", &count.to_string())],
                        );
                    }
                }
            }
        }
    }
}

/// `d` plus up to half of it again, at random.
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = match crate::crypto::keys::random_bytes(&mut b) {
        Ok(()) => u16::from_le_bytes(b),
        Err(_) => 0,
    };
    d + d.mul_f64(f64::from(r) / f64::from(u16::MAX) / 2.0)
}

/// Accounts read per query when loading everything: the rows in flight,
/// and the memory they take while being read, stay bounded.
const PAGE: i64 = 500;

/// The statements that read accounts by name, prepared once per
/// connection: a reload is then one round trip (the three sent together).
struct Loads {
    credentials: tokio_postgres::Statement,
    codes: tokio_postgres::Statement,
    locks: tokio_postgres::Statement,
}

impl Loads {
    fn prepare(c: &mut PgClient) -> Result<Loads, StoreError> {
        Ok(Loads {
            credentials: c.prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.username = ANY($1)
                 ORDER BY c.username, c.created_at, c.id"
            ))?,
            codes: c.prepare(
                "SELECT username, method, bool_or(expires_at IS NULL), max(expires_at)
                 FROM codes
                 WHERE username = ANY($1) AND used_at IS NULL
                   AND (expires_at IS NULL OR expires_at > $2)
                 GROUP BY username, method ORDER BY username, method",
            )?,
            locks: c.prepare(
                "SELECT username, source, max(until) FROM locks
                 WHERE username = ANY($1) AND cleared_at IS NULL AND until > $2
                 GROUP BY username, source",
            )?,
        })
    }
}

/// Every account with a credential, read at `now`, a page at a time (each
/// page its own snapshot: what changes after a page was read is notified).
fn load_all(
    c: &mut PgClient,
    loads: &Loads,
    now: u64,
) -> Result<HashMap<String, Account>, StoreError> {
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
        accounts.extend(load(c, loads, &names, now)?);
    }
}

/// The accounts of `names` that have a credential, read at `now` (a lock
/// or code that ended before it is left out).
fn load(
    c: &mut PgClient,
    loads: &Loads,
    names: &[String],
    now: u64,
) -> Result<HashMap<String, Account>, StoreError> {
    let now = to_db(now);
    let mut accounts: HashMap<String, Account> = HashMap::new();
    let by_name: &[&(dyn ToSql + Sync)] = &[&names];
    let by_name_at: &[&(dyn ToSql + Sync)] = &[&names, &now];
    let [creds, codes, locks] = c.query_three([
        (&loads.credentials, by_name),
        (&loads.codes, by_name_at),
        (&loads.locks, by_name_at),
    ])?;
    for r in &creds {
        let cred = credential_at(r, 0)?;
        accounts
            .entry(cred.user.clone())
            .or_default()
            .credentials
            .push(cred);
    }
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
    for r in &locks {
        if let Some(a) = accounts.get_mut(r.get::<_, &str>(0)) {
            a.locks.push((r.get(1), from_db(r.get(2))));
        }
    }
    Ok(accounts)
}
