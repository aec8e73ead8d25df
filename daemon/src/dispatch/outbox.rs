//! Drains the outbox of security notifications. A notice is written in
//! the transaction of its event (`store/sqlite/sends.rs`), so a crash
//! between the event and the mail loses nothing; it is marked sent right
//! after the relay took it, and each mail carries the row's Message-ID, so
//! the rare resend (a crash between the relay's answer and the mark) is
//! recognisable as the same message.

use crate::engine::Shared;
use crate::server::Shutdown;
use crate::store::Notice;
use std::sync::Arc;
use std::time::Duration;
use twofold_config::time::Utc;
use twofold_proto::Secret;

/// How often the outbox is looked at.
const POLL: Duration = Duration::from_millis(500);

/// Notices handled per look.
const BATCH: u32 = 16;

/// Tries before a notice is given up (logged).
const MAX_ATTEMPTS: u32 = 12;

/// Seconds before try `attempts + 1`: 5 s, 15 s, 1 min, 5 min, then hourly.
fn backoff(attempts: u32) -> u64 {
    match attempts {
        0 => 5,
        1 => 15,
        2 => 60,
        3 => 300,
        _ => 3600,
    }
}

/// Starts the drainer thread; it ends soon after `shutdown` is triggered
/// (join it before the store is dropped).
pub(crate) fn start(
    shared: &Arc<Shared>,
    shutdown: Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("twofoldd-outbox".into())
        .spawn(move || {
            while !shutdown.is_triggered() {
                let more = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drain(&shared, &shutdown)
                }))
                .unwrap_or(false);
                if !more {
                    std::thread::sleep(POLL);
                }
            }
        })
}

/// One look at the outbox; `true` when a full batch was handled.
fn drain(shared: &Arc<Shared>, shutdown: &Shutdown) -> bool {
    let config = shared.current_config();
    let e = &config.email;
    if !e.enabled() {
        return false;
    }
    let Some(sends) = shared.store.sends() else {
        return false;
    };
    let now = shared.clock.now();
    let due = match sends.notices_due(now, BATCH) {
        Ok(d) => d,
        Err(err) => {
            shared.log.event(
                "notice",
                &[("result", "unavailable"), ("error", &err.to_string())],
            );
            return false;
        }
    };
    let full = due.len() as u32 == BATCH;
    let mut due = due.into_iter();
    while let Some(n) = due.next() {
        if shutdown.is_triggered() {
            // Handed to this daemon and not tried: due again for any (a
            // fleet store would otherwise hold them until the claim lapses).
            for left in std::iter::once(n).chain(due) {
                let _ = sends.notice_release(left.id, now);
            }
            return false;
        }
        let masked = crate::factors::email::send::mask(&n.address);
        let event = n
            .record
            .as_ref()
            .map(|r| r.event.clone())
            .unwrap_or_default();
        let fields = |result: &str, error: &str| {
            let mut f = vec![
                ("to", masked.clone()),
                ("event", event.clone()),
                ("result", result.to_owned()),
            ];
            if !error.is_empty() {
                f.push(("error", error.to_owned()));
            }
            f
        };
        let log = |f: Vec<(&str, String)>| {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            shared.log.event("notice", &f);
        };
        let (Some(record), true) = (&n.record, e.notify) else {
            let why = if e.notify {
                "event pruned"
            } else {
                "notify off"
            };
            let _ = sends.notice_done(n.id, now, why);
            log(fields("dropped", why));
            continue;
        };
        let dispatcher = match shared.channels.email(e) {
            Ok(d) => d,
            Err(why) => {
                retry(shared, &n, now, &why);
                log(fields("failed", &why));
                continue;
            }
        };
        let ticket = dispatcher.submit(crate::dispatch::Message {
            to: n.address.clone(),
            subject: e.notify_subject.clone(),
            body: Secret::new(body(record)),
            id: Some(format!(
                "<twofold-notice-{}.{}@{}>",
                n.id,
                record.id,
                hostname()
            )),
        });
        // Waited for in slices, so a shutdown is not held up by a slow relay
        // (the notice stays due and is sent after the restart).
        let end = std::time::Instant::now() + e.timeout.duration() + Duration::from_secs(1);
        let result = loop {
            match ticket.wait(POLL) {
                Err(crate::dispatch::SendError::Deadline(_))
                    if std::time::Instant::now() < end && !shutdown.is_triggered() => {}
                Err(crate::dispatch::SendError::Deadline(_)) => {
                    break Err(crate::dispatch::SendError::Deadline(e.timeout.0 + 1))
                }
                other => break other,
            }
        };
        audit_breaker(shared, &dispatcher);
        match result {
            Ok(()) => {
                let _ = sends.notice_done(n.id, shared.clock.now(), "");
                log(fields("sent", ""));
            }
            Err(err) => {
                retry(shared, &n, now, &err.to_string());
                log(fields("failed", &err.to_string()));
            }
        }
    }
    full
}

/// Audits the breaker's changes that the drain's sends caused.
fn audit_breaker(shared: &Arc<Shared>, d: &crate::dispatch::Dispatcher) {
    let changes = d.take_changes();
    if changes.is_empty() {
        return;
    }
    let base = crate::audit::AuditEvent::new("", "", "twofoldd");
    let engine = shared.engine();
    let cx = engine.ctx();
    if let Ok(recs) = crate::factors::email::send::breaker_rows(
        &cx,
        &changes,
        &base,
        &twofold_proto::Method::EMAIL,
    ) {
        shared.syslog_records(&recs);
    }
}

fn retry(shared: &Shared, n: &Notice, now: u64, why: &str) {
    let Some(sends) = shared.store.sends() else {
        return;
    };
    if n.attempts + 1 >= MAX_ATTEMPTS {
        let _ = sends.notice_done(n.id, now, &format!("given up: {why}"));
    } else {
        let _ = sends.notice_retry(n.id, now + backoff(n.attempts), why);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The value of `key` in an audit row's `key=value` detail.
fn detail<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The text of a notice of `r` (never a code: audit rows hold none).
pub fn body(r: &twofold_proto::AuditRecord) -> String {
    let host = hostname();
    let user = &r.user;
    let method = if r.method.is_empty() {
        "a factor"
    } else {
        r.method.as_str()
    };
    let whence = match (r.service.as_str(), r.rhost.as_str()) {
        ("", _) => String::new(),
        (s, "") => format!(" ({s})"),
        (s, h) => format!(" ({s} from {h})"),
    };
    let what = match r.event.as_str() {
        crate::audit::event::BACKUP_CODE_USED => {
            let left = detail(&r.detail, "left").unwrap_or("?");
            format!(
                "A backup code was used to log in as {user} on {host}{whence}. \
                 {left} backup codes are left."
            )
        }
        crate::audit::event::TEMP_CODE_USED => {
            let left = detail(&r.detail, "left").unwrap_or("?");
            format!(
                "A break-glass code an administrator issued was used to log in as {user} on {host}{whence}. \
                 It opens {left} more logins."
            )
        }
        crate::audit::event::ENROLL => {
            format!("A second factor ({method}) was added to {user} on {host}.")
        }
        crate::audit::event::FACTOR_REMOVED => {
            format!("A second factor ({method}) was removed from {user} on {host}.")
        }
        crate::audit::event::ADMIN => match detail(&r.detail, "action") {
            Some("disable") => {
                format!("An administrator disabled two-factor authentication of {user} on {host}.")
            }
            Some("temp_code") => {
                let until = detail(&r.detail, "expires")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(|t| {
                        let u = Utc::from_unix(t);
                        format!(
                            " until {:04}-{:02}-{:02} {:02}:{:02} UTC",
                            u.year, u.month, u.day, u.hour, u.minute
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "An administrator issued a break-glass code for {user} on {host}{until}: it logs in without your second factor."
                )
            }
            Some("temp_code_revoked") => {
                format!("An administrator withdrew the break-glass code of {user} on {host}.")
            }
            Some(a) => format!("An administrator changed {user} on {host} ({a})."),
            None => format!("An administrator changed {user} on {host}."),
        },
        crate::audit::event::DESTINATION_CHANGED => {
            let what = if r.method == "sms" {
                "phone number"
            } else {
                "email address"
            };
            // Masked destinations are quoted in the row (not plain ASCII).
            let from = detail(&r.detail, "from").unwrap_or("?").trim_matches('"');
            let to = detail(&r.detail, "to").unwrap_or("?").trim_matches('"');
            format!(
                "The {what} that codes for {user} on {host} are sent to was changed from {from} to {to}."
            )
        }
        crate::audit::event::LOCKOUT => {
            format!("Logins as {user} on {host}{whence} were locked after repeated wrong codes.")
        }
        other => format!("{other} for {user} on {host}."),
    };
    let t = Utc::from_unix(r.at);
    format!(
        "{what}\n\nWhen: {:04}-{:02}-{:02} {:02}:{:02} UTC\n\n\
         If this was not you, tell your administrator at once.\n",
        t.year, t.month, t.day, t.hour, t.minute
    )
}
