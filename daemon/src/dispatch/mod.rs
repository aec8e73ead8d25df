//! Sending off the login's critical path: a bounded queue, a few worker
//! threads, a deadline on every send and a breaker for a channel that
//! keeps failing. A [`Sender`] is one channel's provider (SMTP today; SMS
//! providers plug in beside it); the login waits at most its short wait
//! for its own send's result, and never for anyone else's.
//!
//! **Invariant:** a message body may hold a code: it is wiped when the
//! job is dropped and never logged; errors carry the provider's words,
//! never the message.

pub mod outbox;
pub mod sms;
pub mod smtp;

use crate::clock::Clock;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use twofold_proto::Secret;

/// One message to deliver.
#[derive(Debug)]
pub struct Message {
    /// The destination (an address; later a phone number).
    pub to: String,
    /// Subject line (email).
    pub subject: String,
    /// The text; may hold a code.
    pub body: Secret,
    /// A stable identity (the outbox row), so a resend after a crash can
    /// be recognised by the receiver.
    pub id: Option<String>,
}

/// Why a send failed; the text is the provider's, never the message's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider refused or could not be reached.
    #[error("{0}")]
    Provider(String),
    /// The queue was full: refused at once.
    #[error("send queue full")]
    QueueFull,
    /// The breaker is open after repeated failures: refused at once.
    #[error("provider failing; not tried until {0}")]
    BreakerOpen(u64),
    /// No result within the deadline.
    #[error("no result within {0} s")]
    Deadline(u64),
    /// The channel is not configured.
    #[error("not configured")]
    Off,
    /// The provider refused for now and said when to come back
    /// (`Retry-After`, seconds): the breaker waits at least that long.
    #[error("{0}; retry after {1} s")]
    Throttled(String, u64),
}

impl SendError {
    /// The error with every mention of `destination` in the provider's
    /// text masked as everywhere else: a relay's refusal often quotes the
    /// address (`550 5.1.1 <bob@example.org>: Recipient address
    /// rejected`), and the text goes to the log and the audit trail.
    pub fn masking(self, destination: &str) -> SendError {
        match self {
            SendError::Provider(t) => SendError::Provider(mask_in(&t, destination)),
            SendError::Throttled(t, after) => SendError::Throttled(mask_in(&t, destination), after),
            other => other,
        }
    }
}

/// `text` with each mention of `destination` (ASCII case ignored; a phone
/// number also without its `+`) replaced by its masked form.
fn mask_in(text: &str, destination: &str) -> String {
    let masked = if destination.contains('@') {
        crate::factors::email::send::mask(destination)
    } else {
        crate::factors::email::send::mask_phone(destination)
    };
    let mut out = text.to_owned();
    let bare = destination.strip_prefix('+').unwrap_or(destination);
    for form in [destination, bare] {
        // Too short to stand for the destination alone.
        if form.len() < 4 {
            continue;
        }
        // ASCII lower-casing keeps every byte where it was, so the
        // matches' offsets hold in `out` too.
        let lower = out.to_ascii_lowercase();
        let mut done = String::with_capacity(out.len());
        let mut last = 0;
        for (i, found) in lower.match_indices(&form.to_ascii_lowercase()) {
            done.push_str(&out[last..i]);
            done.push_str(&masked);
            last = i + found.len();
        }
        done.push_str(&out[last..]);
        out = done;
    }
    out
}

/// A channel's provider: delivers one message, blocking, within its own
/// socket timeouts (the dispatcher bounds the whole send).
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Delivers `msg`.
    fn send(&self, msg: &Message) -> Result<(), SendError>;
}

/// What became of a send, for its waiting login.
#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<(), SendError>>,
}

/// A queued send and where its result goes.
#[derive(Debug)]
struct Job {
    msg: Message,
    deadline: Instant,
    slot: Arc<(Mutex<Slot>, Condvar)>,
}

/// A submitted send; [`Ticket::wait`] for its result.
#[derive(Debug)]
pub struct Ticket {
    slot: Arc<(Mutex<Slot>, Condvar)>,
}

impl Ticket {
    fn done(r: Result<(), SendError>) -> Ticket {
        Ticket {
            slot: Arc::new((Mutex::new(Slot { result: Some(r) }), Condvar::new())),
        }
    }

    /// The result, waiting at most `wait`; [`SendError::Deadline`] when
    /// it has not come by then (the send may still complete).
    pub fn wait(&self, wait: Duration) -> Result<(), SendError> {
        let (lock, cv) = &*self.slot;
        let end = Instant::now() + wait;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = &s.result {
                return r.clone();
            }
            let now = Instant::now();
            if now >= end {
                return Err(SendError::Deadline(wait.as_secs()));
            }
            s = cv
                .wait_timeout(s, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The breaker: `failures` in a row open it until `open_until` (daemon
/// clock); the first send after that is a trial.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<u64>,
}

/// How a dispatcher is set up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Worker threads.
    pub workers: u32,
    /// Jobs waiting at most.
    pub queue: u32,
    /// The whole deadline of one send.
    pub timeout: Duration,
    /// Failures in a row that open the breaker.
    pub breaker_failures: u32,
    /// How long it stays open, in seconds.
    pub breaker_open: u64,
    /// The longest a provider's `Retry-After` holds it open, in seconds.
    pub retry_after_max: u64,
}

/// What the breaker did with a result (the caller audits it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    /// Nothing.
    None,
    /// It opened, until then.
    Opened(u64),
    /// The provider asked for a pause (`asked` seconds): open until then.
    Throttled {
        /// Until when (daemon clock).
        until: u64,
        /// The seconds the provider asked for.
        asked: u64,
    },
    /// A success closed it.
    Closed,
}

#[derive(Debug)]
struct State {
    jobs: VecDeque<Job>,
    breaker: Breaker,
    /// Breaker changes not yet reported (audited by the next caller).
    changes: Vec<BreakerChange>,
    workers: u32,
    stop: bool,
}

/// One channel's queue, workers and breaker.
pub struct Dispatcher {
    sender: Arc<dyn Sender>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    work: Condvar,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sender", &self.sender)
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher for `sender`; its threads start with the first send.
    pub fn new(sender: Arc<dyn Sender>, limits: Limits, clock: Arc<dyn Clock>) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            sender,
            limits,
            clock,
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                breaker: Breaker::default(),
                changes: Vec::new(),
                workers: 0,
                stop: false,
            }),
            work: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg`; refused at once when the breaker is open or the queue
    /// is full.
    pub fn submit(self: &Arc<Self>, msg: Message) -> Ticket {
        let now = self.clock.now();
        let mut s = self.state();
        if let Some(until) = s.breaker.open_until {
            if now < until {
                return Ticket::done(Err(SendError::BreakerOpen(until)));
            }
        }
        if s.jobs.len() >= self.limits.queue as usize {
            return Ticket::done(Err(SendError::QueueFull));
        }
        let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        s.jobs.push_back(Job {
            msg,
            deadline: Instant::now() + self.limits.timeout,
            slot: slot.clone(),
        });
        if s.workers < self.limits.workers {
            let me = self.clone();
            let started = std::thread::Builder::new()
                .name("twofold-send".into())
                .spawn(move || me.work());
            if started.is_ok() {
                s.workers += 1;
            }
        }
        drop(s);
        self.work.notify_one();
        Ticket { slot }
    }

    /// Breaker changes since the last call, for the caller to audit.
    pub fn take_changes(&self) -> Vec<BreakerChange> {
        std::mem::take(&mut self.state().changes)
    }

    /// Stops the workers once the queue is empty.
    pub fn stop(&self) {
        self.state().stop = true;
        self.work.notify_all();
    }

    fn work(self: Arc<Self>) {
        loop {
            let job = {
                let mut s = self.state();
                loop {
                    if let Some(j) = s.jobs.pop_front() {
                        break j;
                    }
                    if s.stop {
                        s.workers -= 1;
                        return;
                    }
                    s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = if Instant::now() >= job.deadline {
                Err(SendError::Deadline(self.limits.timeout.as_secs()))
            } else {
                // A provider's words may quote the destination.
                self.sender
                    .send(&job.msg)
                    .map_err(|e| e.masking(&job.msg.to))
            };
            let late = Instant::now() > job.deadline;
            self.record(&result, late);
            let (lock, cv) = &*job.slot;
            lock.lock().unwrap_or_else(|e| e.into_inner()).result = Some(result);
            cv.notify_all();
        }
    }

    /// Counts a result toward the breaker; a provider's `Retry-After`
    /// opens it at once for that long (at most `retry_after_max`), or
    /// longer when it is open longer already.
    fn record(&self, result: &Result<(), SendError>, late: bool) {
        let now = self.clock.now();
        let mut s = self.state();
        if let Err(SendError::Throttled(_, asked)) = result {
            let wait = (*asked).min(self.limits.retry_after_max);
            if wait > 0 {
                s.breaker.failures += 1;
                let until = now + wait;
                if s.breaker.open_until.is_none_or(|u| u < until) {
                    s.breaker.open_until = Some(until);
                    s.changes.push(BreakerChange::Throttled {
                        until,
                        asked: *asked,
                    });
                }
                return;
            }
        }
        if result.is_ok() && !late {
            let was_open = s.breaker.open_until.is_some();
            s.breaker = Breaker::default();
            if was_open {
                s.changes.push(BreakerChange::Closed);
            }
            return;
        }
        s.breaker.failures += 1;
        let open = s.breaker.open_until.is_some_and(|u| now < u);
        if s.breaker.failures >= self.limits.breaker_failures && !open {
            let until = now + self.limits.breaker_open;
            s.breaker.open_until = Some(until);
            s.changes.push(BreakerChange::Opened(until));
        }
    }
}

/// The dispatchers of the configured channels, rebuilt when a reload
/// changes a channel's settings (sends already queued finish on the old
/// one).
pub struct Channels {
    clock: Arc<dyn Clock>,
    email: Mutex<Option<(twofold_config::EmailConfig, Arc<Dispatcher>)>>,
    sms: Mutex<Option<(twofold_config::SmsConfig, Arc<Dispatcher>)>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channels")
    }
}

impl Channels {
    /// No channel set up yet (each is made at its first send).
    pub fn new(clock: Arc<dyn Clock>) -> Channels {
        Channels {
            clock,
            email: Mutex::new(None),
            sms: Mutex::new(None),
        }
    }

    /// The email dispatcher for settings `c`.
    pub fn email(&self, c: &twofold_config::EmailConfig) -> Result<Arc<Dispatcher>, String> {
        if !c.enabled() {
            return Err(SendError::Off.to_string());
        }
        let mut slot = self.email.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built, d)) = slot.as_ref() {
            if built == c {
                return Ok(d.clone());
            }
        }
        let sender = smtp::Smtp::new(c).map_err(|e| e.to_string())?;
        let d = Dispatcher::new(
            Arc::new(sender),
            Limits {
                workers: c.workers,
                queue: c.queue,
                timeout: c.timeout.duration(),
                breaker_failures: c.breaker_failures,
                breaker_open: c.breaker_open.0,
                // SMTP has no Retry-After.
                retry_after_max: 0,
            },
            self.clock.clone(),
        );
        if let Some((_, old)) = slot.replace((c.clone(), d.clone())) {
            old.stop();
        }
        Ok(d)
    }

    /// The SMS dispatcher for settings `c`.
    pub fn sms(&self, c: &twofold_config::SmsConfig) -> Result<Arc<Dispatcher>, String> {
        if !c.enabled() {
            return Err(SendError::Off.to_string());
        }
        let mut slot = self.sms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built, d)) = slot.as_ref() {
            if built == c {
                return Ok(d.clone());
            }
        }
        let sender = sms::sender(c).map_err(|e| e.to_string())?;
        let d = Dispatcher::new(
            Arc::from(sender),
            Limits {
                workers: c.workers,
                queue: c.queue,
                timeout: c.timeout.duration(),
                breaker_failures: c.breaker_failures,
                breaker_open: c.breaker_open.0,
                retry_after_max: c.retry_after_max.0,
            },
            self.clock.clone(),
        );
        if let Some((_, old)) = slot.replace((c.clone(), d.clone())) {
            old.stop();
        }
        Ok(d)
    }

    /// Stops every channel's workers once their queues are empty.
    pub fn stop(&self) {
        if let Some((_, d)) = self.email.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.stop();
        }
        if let Some((_, d)) = self.sms.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask_in;

    #[test]
    fn a_destination_quoted_by_a_provider_is_masked_in_any_case() {
        assert_eq!(
            mask_in(
                "550 5.1.1 <Bob@Example.org>: Recipient address rejected: bob@example.org",
                "bob@example.org"
            ),
            "550 5.1.1 <b•••@e•••.org>: Recipient address rejected: b•••@e•••.org"
        );
        assert_eq!(
            mask_in("number 14155550100 is not reachable", "+14155550100"),
            "number +1•••••••0100 is not reachable"
        );
        assert_eq!(
            mask_in("+14155550100 refused", "+14155550100"),
            "+1•••••••0100 refused"
        );
        assert_eq!(mask_in("rate limited", "bob@example.org"), "rate limited");
    }
}
