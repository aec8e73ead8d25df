//! Enrollment inside a login (`unenrolled = "enroll"`): until the user's
//! grace deadline the login shows how to set up the first factor the
//! registry offers (e.g. a QR code, a URI and a secret as information
//! lines), asks for a confirmation answer, then shows the recovery codes and
//! lets the login in. The person may skip (empty answer) until the
//! deadline; after it, the login is refused with a message that says how
//! to enroll.

use crate::audit::event;
use crate::audit::syslog::utc_minutes;
use crate::factors::enroll::confirm;
use crate::factors::EnrollOptions;
use crate::login::{Login, INVALID_CODE};
use twofold_proto::{ErrorKind, Method, Response, Secret};

/// The confirmation prompt shown during enrollment at login.
pub const CONFIRM_PROMPT: &str = "Code from the app to finish (empty to skip for now): ";

/// What a refused login past its deadline is told (`method`: the factor
/// to enroll).
pub fn deadline_passed_message(deadline: u64, method: &Method) -> String {
    format!(
        "Two-factor authentication is required for this account and the enrollment period ended on {}. \
         Enroll with `twofold enroll {method}` from a session that does not need it, or ask an administrator \
         to extend your deadline.",
        utc_minutes(deadline)
    )
}

/// Runs enrollment at login for an unenrolled user who must enroll.
pub(crate) fn run(l: &mut Login<'_, '_>) {
    let engine = l.engine;
    let Some((factor, enroll)) = engine.factors.enrolled_at_login() else {
        let ev = l.base.renamed(event::LOGIN_DENIED);
        return l.deny("no factor can be enrolled at login", None, ev);
    };
    let method = factor.method();
    let now = engine.now();
    let started = l.base.renamed(event::GRACE_STARTED);
    let grace = engine.config.policy.grace.0;
    let stored = engine.store.start_grace(&l.b.user, now, grace, started);
    let deadline = match stored {
        Ok((d, recs)) => {
            engine.syslog_records(&recs);
            d
        }
        Err(e) => return l.unavailable(&e),
    };
    if now >= deadline {
        let ev = l
            .base
            .renamed(event::LOGIN_DENIED)
            .with("deadline", &deadline.to_string());
        let shown = deadline_passed_message(deadline, &method);
        return l.deny("enrollment deadline passed", Some(&shown), ev);
    }
    let cx = engine.ctx();
    let pending = match enroll.start(&cx, &l.b.user, &EnrollOptions::default()) {
        Ok(p) => p,
        Err(f) if f.kind == ErrorKind::Internal => {
            return l.unavailable(&f.detail.unwrap_or(f.message));
        }
        Err(f) => return l.unavailable(&f.message),
    };
    let days = deadline.saturating_sub(now).div_ceil(86_400);
    let mut lines = vec![Secret::new(format!(
        "Two-factor authentication is required for this account. Set up an authenticator app now \
         ({days} day{} left to do so, until {}).",
        if days == 1 { "" } else { "s" },
        utc_minutes(deadline)
    ))];
    if let Some(qr) = &pending.qr {
        match crate::qr::render(qr.expose()) {
            Ok(q) => {
                lines.push(Secret::new("Scan this QR code with the app:".to_owned()));
                lines.push(Secret::new(q.trim_end().to_owned()));
            }
            Err(e) => return l.unavailable(&e),
        }
    }
    lines.extend(pending.lines);
    for text in lines {
        if !l.tell_secret(text.expose().to_owned()) {
            return;
        }
    }
    for _ in 0..engine.config.login.max_tries {
        let Some(answer) = l.ask(CONFIRM_PROMPT) else {
            return;
        };
        if answer.expose().trim().is_empty() {
            return l.skip("enrollment postponed");
        }
        let enrolled = l
            .base
            .renamed(event::ENROLL)
            .method(method.as_str())
            .with("via", "login");
        match confirm(&cx, &engine.factors, enroll, &l.b.user, &answer, enrolled) {
            Ok(done) => {
                drop(answer);
                engine.syslog_records(&done.records);
                let mut text = format!("Enrolled. {}", done.heading);
                for c in &done.codes {
                    text.push_str("\n  ");
                    text.push_str(c.expose());
                }
                if !l.tell_secret(text) {
                    return;
                }
                return l.succeed_enrolled(method);
            }
            Err(f) if f.kind == ErrorKind::InvalidCode => {
                l.log("invalid_code", &[("reason", "enrollment confirmation")]);
                if !l.tell(Response::Error {
                    text: INVALID_CODE.into(),
                }) {
                    return;
                }
            }
            Err(f) => return l.unavailable(&f.detail.unwrap_or(f.message)),
        }
    }
    if l.tell(Response::Info {
        text: "Enrollment not finished; you will be asked again at your next login.".into(),
    }) {
        l.skip("enrollment not confirmed");
    }
}
