//! Enrollment inside a login (`unenrolled = "enroll"`): until the user's
//! grace deadline the login shows the QR code, the `otpauth://` URI and the
//! secret as information lines, asks for a confirmation code, then shows the
//! backup codes and lets the login in. The person may skip (empty answer)
//! until the deadline; after it, the login is refused with a message that
//! says how to enroll.

use crate::audit::event;
use crate::login::{Login, INVALID_CODE};
use crate::syslog::utc_minutes;
use twofold_proto::{ErrorKind, Response};

/// The confirmation prompt shown during enrollment at login.
pub const CONFIRM_PROMPT: &str = "Code from the app to finish (empty to skip for now): ";

/// What a refused login past its deadline is told.
pub fn deadline_passed_message(deadline: u64) -> String {
    format!(
        "Two-factor authentication is required for this account and the enrollment period ended on {}. \
         Enroll with `twofold enroll totp` from a session that does not need it, or ask an administrator \
         to extend your deadline.",
        utc_minutes(deadline)
    )
}

/// Groups of four, for typing a secret by hand.
fn group4(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Runs enrollment at login for an unenrolled user who must enroll.
pub(crate) fn run(l: &mut Login<'_, '_>) {
    let engine = l.engine;
    let now = engine.now();
    let started = l.base.renamed(event::GRACE_STARTED);
    let grace = engine.config.policy.grace.0;
    let stored = engine.store().start_grace(&l.b.user, now, grace, started);
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
        let shown = deadline_passed_message(deadline);
        return l.deny("enrollment deadline passed", Some(&shown), ev);
    }
    let pending = match engine.new_pending(&l.b.user, None, None) {
        Ok(p) => p,
        Err(f) if f.kind == ErrorKind::Internal => {
            return l.unavailable(&f.detail.unwrap_or(f.message));
        }
        Err(f) => return l.unavailable(&f.message),
    };
    let days = deadline.saturating_sub(now).div_ceil(86_400);
    let intro = format!(
        "Two-factor authentication is required for this account. Set up an authenticator app now \
         ({days} day{} left to do so, until {}).",
        if days == 1 { "" } else { "s" },
        utc_minutes(deadline)
    );
    let qr = match crate::qr::render(pending.uri.expose()) {
        Ok(q) => q.trim_end().to_owned(),
        Err(e) => return l.unavailable(&e),
    };
    let lines = [
        intro,
        "Scan this QR code with the app:".to_owned(),
        qr,
        format!("Or add this URI: {}", pending.uri.expose()),
        format!(
            "Or type this secret: {} ({}, {} digits, {} s)",
            group4(pending.secret.expose()),
            pending.algorithm.as_str(),
            pending.digits,
            pending.period
        ),
    ];
    drop(pending);
    for text in lines {
        if !l.tell_secret(text) {
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
        match engine.confirm_pending(&l.b.user, &answer) {
            Ok(codes) => {
                drop(answer);
                let enrolled = l
                    .base
                    .renamed(event::ENROLL)
                    .method("totp")
                    .with("via", "login");
                if !l.audit(&[enrolled]) {
                    return;
                }
                let mut text = String::from(
                    "Enrolled. Your backup codes (each works once; keep them somewhere safe):",
                );
                for c in &codes {
                    text.push_str("\n  ");
                    text.push_str(c.expose());
                }
                if !l.tell_secret(text) {
                    return;
                }
                return l.succeed_enrolled();
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
