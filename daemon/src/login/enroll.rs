//! Enrollment inside a login (`unenrolled = "enroll"`): until the user's
//! grace deadline the login shows how to set up the first factor the
//! registry offers (e.g. a QR code, a URI and a secret as information
//! lines), asks for a confirmation answer, then shows the recovery codes and
//! lets the login in. The person may skip (empty answer) until the
//! deadline; after it, the login is refused with a message that says how
//! to enroll.

use crate::audit::event;
use crate::audit::syslog::utc_minutes;
use crate::factors::enroll::{check_token, confirm};
use crate::factors::{EnrollOptions, Found, VerifyError, Who};
use crate::login::{Login, INVALID_CODE};
use crate::store::Claim;
use twofold_config::EnrollAtLogin;
use twofold_proto::{ErrorKind, Method, Response, Secret};

/// The prompt for an enrollment token (`enroll_at_login = "token"`).
pub const TOKEN_PROMPT: &str = "Enrollment token from your administrator (empty to skip for now): ";

/// Tells the person why no factor is set up here and lets the login in
/// (it is inside the grace period).
fn not_here(l: &mut Login<'_, '_>, deadline: u64, why: &str) {
    let text = format!(
        "Two-factor authentication is required for this account from {}; {why}. \
         Ask an administrator if you cannot.",
        utc_minutes(deadline)
    );
    if l.tell(Response::Info { text }) {
        l.skip("enrollment not allowed here");
    }
}

/// Asks for an enrollment token until one is valid (`Some`, its claim to
/// spend with the enrollment), the person skips, or the tries run out;
/// wrong tokens count and are audited like wrong codes. `None` when the
/// login is over.
fn ask_token(l: &mut Login<'_, '_>) -> Option<Claim> {
    let max = l.engine.config.login.max_tries;
    for attempt in 1..=max {
        let answer = l.ask(TOKEN_PROMPT)?;
        let typed = answer.expose().trim();
        if typed.is_empty() {
            l.skip("enrollment postponed");
            return None;
        }
        let who = Who {
            login: "",
            user: &l.b.user,
            source: &l.source,
        };
        let found = check_token(&l.engine.ctx(), &who, typed);
        drop(answer);
        let why = match found {
            Ok(Found::Claim(c)) => return Some(c),
            Ok(Found::Locked(lock)) => {
                l.refuse_locked(lock);
                return None;
            }
            Ok(Found::Rejected(why)) => why,
            Err(VerifyError::Storage(e)) => {
                l.unavailable(&e);
                return None;
            }
            Err(VerifyError::Decrypt(e)) => {
                l.unavailable(&e);
                return None;
            }
        };
        if !l.fail(attempt, attempt == max, why) {
            return None;
        }
    }
    None
}

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
    // Who may set up a factor here (the policy's `enroll_at_login`);
    // whoever may not is let in during the grace period as before, and
    // told how to enroll.
    let token = match engine.config.policy.enroll_at_login {
        EnrollAtLogin::Password => None,
        EnrollAtLogin::Local if l.b.rhost.is_none() => None,
        EnrollAtLogin::Local => {
            return not_here(
                l,
                deadline,
                "it can be set up only at a local login (console, sudo, su)",
            )
        }
        EnrollAtLogin::Token => match ask_token(l) {
            Some(claim) => Some(claim),
            None => return,
        },
    };
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
        let mut enrolled = l
            .base
            .renamed(event::ENROLL)
            .method(method.as_str())
            .with("via", "login");
        if token.is_some() {
            enrolled = enrolled.with("authorized_by", "enroll_token");
        }
        let done = confirm(
            &cx,
            &engine.factors,
            enroll,
            &l.b.user,
            &answer,
            token.clone(),
            enrolled,
        );
        match done {
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
