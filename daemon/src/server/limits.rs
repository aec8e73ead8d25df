//! Limits on unprivileged peers' connections, and the cheap refusal of a
//! connection over them.
//!
//! Any local user can connect, and a connection holds a worker until it
//! ends. So one uid holds at most `max_connections_per_user` connections at
//! once, and all unprivileged peers together at most `max_connections`
//! minus root's reserve ([`DaemonConfig::root_reserve`]): root's logins
//! (sshd, sudo, su and login run PAM as root) always find a worker. Root
//! and the daemon's own uid are not limited.
//!
//! A connection over a limit is refused right after accept(2): one `Failed`
//! frame sent without waiting, no worker held, no audit row, and log lines
//! summed up per [`WINDOW`] so that a flood of connections cannot fill the
//! log.

use crate::log::Logger;
use crate::server::peer::PeerCred;
use nix::sys::socket::{self as sock, MsgFlags};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twofold_config::DaemonConfig;
use twofold_proto::{write_message, ErrorKind, Response};

/// Refusals after the first of a window are counted, and reported in one
/// line when it ends: at most one line per window, however many there are.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Uids named in one summary line; refusals of any others are counted together.
const NAMED_UIDS: usize = 8;
/// Refused connections kept open at once (see [`Lingering`]).
const LINGER_MAX: usize = 64;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its uid already holds `max_connections_per_user` connections.
    User,
    /// Unprivileged peers together hold all the connections they may.
    Unprivileged,
}

/// Connections held by unprivileged peers, per uid and in total.
#[derive(Debug)]
pub(crate) struct Admission {
    own_uid: u32,
    per_user: usize,
    unprivileged: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    /// Only uids holding a connection: at most `unprivileged` entries.
    by_uid: HashMap<u32, usize>,
}

/// A connection counted in; counted out when dropped.
#[derive(Debug)]
pub(crate) struct Admitted<'a> {
    admission: &'a Admission,
    /// `None` for a peer that is not counted (root, the daemon's own uid).
    uid: Option<u32>,
}

impl Admission {
    /// The limits of `config`; `own_uid` is the daemon's effective uid.
    pub fn new(config: &DaemonConfig, own_uid: u32) -> Admission {
        Admission {
            own_uid,
            per_user: config.max_connections_per_user as usize,
            unprivileged: config.unprivileged_connections() as usize,
            held: Mutex::default(),
        }
    }

    /// Counts in a connection of `uid`, or says which limit it is over.
    pub fn admit(&self, uid: u32) -> Result<Admitted<'_>, Refusal> {
        if uid == 0 || uid == self.own_uid {
            return Ok(Admitted {
                admission: self,
                uid: None,
            });
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.by_uid.get(&uid).copied().unwrap_or(0) >= self.per_user {
            return Err(Refusal::User);
        }
        if held.total >= self.unprivileged {
            return Err(Refusal::Unprivileged);
        }
        held.total += 1;
        *held.by_uid.entry(uid).or_insert(0) += 1;
        Ok(Admitted {
            admission: self,
            uid: Some(uid),
        })
    }

    /// What the refused client is told.
    pub fn message(&self, why: Refusal, uid: u32) -> String {
        match why {
            Refusal::User => format!(
                "too many connections: uid {uid} may hold {} at once; close one and try again",
                self.per_user
            ),
            Refusal::Unprivileged => format!(
                "twofoldd is busy: unprivileged users hold all {} connections they may; try again shortly",
                self.unprivileged
            ),
        }
    }

    fn release(&self, uid: u32) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_uid.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                held.by_uid.remove(&uid);
            }
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(uid) = self.uid {
            self.admission.release(uid);
        }
    }
}

/// Sends the refusal without waiting: a new connection's send buffer is
/// empty, so the one small frame fits, and a peer that does not read
/// cannot hold the worker.
pub(crate) fn send_refusal(stream: &UnixStream, message: String) {
    let mut frame = Vec::new();
    let refusal = Response::Failed {
        kind: ErrorKind::PermissionDenied,
        message,
    };
    if write_message(&mut frame, &refusal).is_ok() {
        let _ = sock::send(
            stream.as_raw_fd(),
            &frame,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }
}

/// Refused connections, kept open for one or two ticks of `serve` before
/// they are closed, and at most [`LINGER_MAX`] of them. A client writes its
/// `Hello` right after connecting; closed before it did, it would get
/// `EPIPE` instead of reading why it was refused.
#[derive(Debug, Default)]
pub(crate) struct Lingering {
    /// (since the last tick, since the tick before)
    streams: Mutex<(Vec<UnixStream>, Vec<UnixStream>)>,
}

impl Lingering {
    /// Keeps `stream` open until the tick after next; closes it now when
    /// too many are kept.
    pub fn keep(&self, stream: UnixStream) {
        let mut s = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if s.0.len() + s.1.len() < LINGER_MAX {
            s.0.push(stream);
        }
    }

    /// One tick: closes those kept since the tick before.
    pub fn tick(&self) {
        let old = {
            let mut s = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            let young = std::mem::take(&mut s.0);
            std::mem::replace(&mut s.1, young)
        };
        drop(old);
    }

    /// Closes them all (shutdown).
    pub fn close_all(&self) {
        let all = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|e| e.into_inner()));
        drop(all);
    }
}

/// The log of refusals: the first of a window is logged at once, the
/// others are counted and logged in one line when the window ends.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the window opened; `None`: no refusal since the last report.
    since: Option<Instant>,
    /// Refusals not yet logged, by uid (at most [`NAMED_UIDS`] entries).
    by_uid: BTreeMap<u32, u64>,
    /// Refusals not yet logged of uids beyond those.
    others: u64,
}

impl RefusalLog {
    /// Records that a connection of `cred` was refused.
    pub fn note(&self, log: &Logger, cred: PeerCred, why: Refusal, now: Instant) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.since.is_some() {
            let named = w.by_uid.len() < NAMED_UIDS || w.by_uid.contains_key(&cred.uid);
            if named {
                *w.by_uid.entry(cred.uid).or_insert(0) += 1;
            } else {
                w.others += 1;
            }
            return;
        }
        w.since = Some(now);
        drop(w);
        let reason = match why {
            Refusal::User => "max_connections_per_user",
            // max_connections minus root's reserve
            Refusal::Unprivileged => "unprivileged_connections",
        };
        log.event(
            "refused",
            &[
                ("peer_uid", &cred.uid.to_string()),
                ("peer_pid", &cred.pid.to_string()),
                ("limit", reason),
                (
                    "note",
                    &format!(
                        "further refusals are counted and logged every {}s",
                        WINDOW.as_secs()
                    ),
                ),
            ],
        );
    }

    /// Logs the refusals counted in a window that has run its time (any
    /// window with `force`, at shutdown). A window with nothing counted
    /// closes, so the next refusal is logged at once again.
    pub fn report(&self, log: &Logger, now: Instant, force: bool) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let Some(since) = w.since else {
            return;
        };
        if !force && now.saturating_duration_since(since) < WINDOW {
            return;
        }
        let total = w.by_uid.values().sum::<u64>() + w.others;
        if total == 0 {
            w.since = None;
            return;
        }
        let mut uids: Vec<String> = w.by_uid.iter().map(|(u, n)| format!("{u}:{n}")).collect();
        if w.others > 0 {
            uids.push(format!("others:{}", w.others));
        }
        let seconds = now.saturating_duration_since(since).as_secs().max(1);
        // Still refusing: the next window starts now, so a flood that goes
        // on is one line per window.
        *w = Window {
            since: Some(now),
            ..Window::default()
        };
        drop(w);
        log.event(
            "refused",
            &[
                ("connections", &total.to_string()),
                ("seconds", &seconds.to_string()),
                ("by_uid", &uids.join(",")),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MemoryLog;
    use std::sync::Arc;

    fn config(max: u32, per_user: u32) -> DaemonConfig {
        DaemonConfig {
            max_connections: max,
            max_connections_per_user: per_user,
            ..DaemonConfig::default()
        }
    }

    #[test]
    fn one_uid_holds_at_most_its_share_and_gets_it_back() {
        let a = Admission::new(&config(64, 2), 999);
        let first = a.admit(1000).unwrap();
        let _second = a.admit(1000).unwrap();
        assert_eq!(a.admit(1000).unwrap_err(), Refusal::User);
        let _other = a.admit(1001).unwrap();
        drop(first);
        let _again = a.admit(1000).unwrap();
        assert_eq!(a.admit(1000).unwrap_err(), Refusal::User);
    }

    #[test]
    fn unprivileged_peers_leave_roots_reserve_and_root_is_not_counted() {
        // 8 connections: 2 kept for root, 6 for everyone else.
        let a = Admission::new(&config(8, 8), 999);
        let held: Vec<_> = (0..6).map(|i| a.admit(1000 + i).unwrap()).collect();
        assert_eq!(a.admit(2000).unwrap_err(), Refusal::Unprivileged);
        let roots: Vec<_> = (0..20).map(|_| a.admit(0).unwrap()).collect();
        let _own = a.admit(999).unwrap();
        drop(roots);
        assert_eq!(a.admit(2000).unwrap_err(), Refusal::Unprivileged);
        drop(held);
        let _now = a.admit(2000).unwrap();
        assert_eq!(
            a.held.lock().unwrap().by_uid.len(),
            1,
            "released uids are forgotten"
        );
    }

    #[test]
    fn a_flood_of_refusals_is_one_line_at_once_then_one_per_window() {
        let mem = Arc::new(MemoryLog::new());
        let log = Logger::new(mem.clone());
        let refusals = RefusalLog::default();
        let t0 = Instant::now();
        let cred = |uid| PeerCred {
            pid: 7,
            uid,
            gid: uid,
        };
        for i in 0..1000 {
            refusals.note(&log, cred(65534 + i % 20), Refusal::User, t0);
        }
        refusals.report(&log, t0 + WINDOW / 2, false);
        assert_eq!(mem.lines().len(), 1, "{:?}", mem.lines());
        assert!(
            mem.lines()[0].contains("peer_uid=65534"),
            "{:?}",
            mem.lines()
        );
        refusals.report(&log, t0 + WINDOW, false);
        let lines = mem.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("connections=999"), "{lines:?}");
        assert!(
            lines[1].contains("65535:50,") && lines[1].contains("others:"),
            "{lines:?}"
        );
        // A window with nothing in it closes: the next refusal is logged at once.
        refusals.report(&log, t0 + 2 * WINDOW, false);
        assert_eq!(mem.lines().len(), 2);
        refusals.note(&log, cred(1000), Refusal::Unprivileged, t0 + 3 * WINDOW);
        assert_eq!(mem.lines().len(), 3);
        refusals.note(&log, cred(1000), Refusal::Unprivileged, t0 + 3 * WINDOW);
        refusals.report(&log, t0 + 3 * WINDOW, true);
        assert!(
            mem.lines()[3].contains("connections=1 "),
            "{:?}",
            mem.lines()
        );
    }
}
