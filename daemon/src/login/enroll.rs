//! Enrollment inside a login (`unenrolled = "enroll"`): until the user's
//! grace deadline the login shows how to set up the first factor the
//! registry offers (e.g. a QR code, a URI and a secret as information
//! lines), asks for a confirmation answer, then shows the recovery codes and
//! lets the login in. The person may skip (empty answer) until the
//! deadline; after it, the login is refused with a message that says how
//! to enroll. A destination named with the CLI and waiting for its code
//! (an address, a number) comes first: the login takes the code sent to
//! it (`confirm_sent`), and never asks where to send one.

use crate::audit::event;
use crate::audit::syslog::utc_minutes;
use crate::factors::enroll::{check_token, confirm, store_confirmation};
use crate::factors::{
    ConfirmSent, Confirmation, Enroll, EnrollOptions, Factor, Found, PendingSent, VerifyError, Who,
};
use crate::login::{Login, INVALID_CODE, MAX_ANSWER};
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

/// Runs enrollment at login for an unenrolled user who must enroll;
/// `methods`: what the policy lets this login use.
pub(crate) fn run(l: &mut Login<'_, '_>, methods: &[Method]) {
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
    // A destination named with the CLI (by the person, or an admin for
    // them) and waiting for its code is confirmed here, when the policy
    // lets this service use it; the login never chooses where a code goes.
    match pending_sent(l, methods) {
        Ok(Some(found)) => return confirm_sent(l, found, token, deadline),
        Ok(None) => {}
        Err(e) => return l.unavailable(&e),
    }
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

/// A pending destination of a factor the policy allows here.
struct FoundSent<'e> {
    factor: &'e dyn Factor,
    enroll: &'e dyn Enroll,
    sent: &'e dyn ConfirmSent,
    pending: PendingSent,
}

/// The first pending destination (in the registry's order) of a factor
/// of `methods` that a login can confirm.
fn pending_sent<'e>(
    l: &Login<'_, 'e>,
    methods: &[Method],
) -> Result<Option<FoundSent<'e>>, crate::store::StoreError> {
    let engine = l.engine;
    let cx = engine.ctx();
    for factor in engine
        .factors
        .all()
        .filter(|f| methods.contains(&f.method()))
    {
        let Some(enroll) = factor.enrollment() else {
            continue;
        };
        let Some(sent) = enroll.sent() else {
            continue;
        };
        if let Some(pending) = sent.pending(&cx, &l.b.user)? {
            return Ok(Some(FoundSent {
                factor,
                enroll,
                sent,
                pending,
            }));
        }
    }
    Ok(None)
}

/// Keyword answers (a fresh code sent) one confirmation may give; the
/// store's per-enrollment send limit bounds them too.
const MAX_SENDS: u32 = 4;

/// Confirms a pending destination inside the login: the code sent to it
/// (by the CLI's start, or on the keyword here) is typed at the prompt.
/// A wrong code is a failed try like a login's (counted toward the
/// lockout, audited); a code sent for anything else (a login, another
/// enrollment) never matches.
fn confirm_sent(l: &mut Login<'_, '_>, f: FoundSent<'_>, token: Option<Claim>, deadline: u64) {
    let engine = l.engine;
    let cx = engine.ctx();
    let method = f.factor.method();
    let (masked, keyword, id) = (f.pending.masked.clone(), f.pending.keyword, f.pending.id);
    let now = engine.now();
    let days = deadline.saturating_sub(now).div_ceil(86_400);
    let intro = format!(
        "Two-factor authentication is required for this account. Confirm {masked} to receive \
         your codes there ({days} day{} left to set up a second factor, until {}).",
        if days == 1 { "" } else { "s" },
        utc_minutes(deadline)
    );
    if !l.tell(Response::Info { text: intro }) {
        return;
    }
    let prompt = format!(
        "Code sent to {masked} (or \"{keyword}\" to get one sent; empty to skip for now): "
    );
    let max = engine.config.login.max_tries;
    let (mut attempt, mut sends) = (0, 0);
    while attempt < max {
        let Some(answer) = l.ask(&prompt) else {
            return;
        };
        let typed = answer.expose().trim();
        if typed.is_empty() {
            return l.skip("enrollment postponed");
        }
        let who = Who {
            user: &l.b.user,
            source: &l.source,
            login: &l.sends.id,
        };
        if typed.eq_ignore_ascii_case(keyword) && sends < MAX_SENDS {
            sends += 1;
            let sent = f.sent.send_pending(&cx, &who, id, &l.base);
            engine.syslog_records(&sent.records);
            let result = if sent.sent {
                "code_sent"
            } else {
                "code_not_sent"
            };
            l.log(
                result,
                &[("method", method.as_str()), ("for", "enrollment")],
            );
            let line = if sent.sent {
                Response::Info { text: sent.told }
            } else {
                Response::Error { text: sent.told }
            };
            if !l.tell(line) {
                return;
            }
            continue;
        }
        attempt += 1;
        let found = if answer.len() > MAX_ANSWER {
            Ok(Found::Rejected("answer too long"))
        } else {
            f.sent.confirm_pending(&cx, &who, id, &answer)
        };
        drop(answer);
        let why = match found {
            Ok(Found::Claim(_)) => return finish_sent(l, &f, token, &masked),
            Ok(Found::Locked(lock)) => return l.refuse_locked(lock),
            Ok(Found::Rejected(why)) => why,
            Err(VerifyError::Storage(e)) => return l.unavailable(&e),
            Err(VerifyError::Decrypt(e)) => return l.unavailable(&e),
        };
        if !l.fail(attempt, attempt == max, why) {
            return;
        }
    }
}

/// Stores the confirmed destination with its audit row (and the token
/// that allowed it), tells the person and lets the login in.
fn finish_sent(l: &mut Login<'_, '_>, f: &FoundSent<'_>, token: Option<Claim>, masked: &str) {
    let engine = l.engine;
    let method = f.factor.method();
    let mut enrolled = l
        .base
        .renamed(event::ENROLL)
        .method(method.as_str())
        .with("via", "login");
    if token.is_some() {
        enrolled = enrolled.with("authorized_by", "enroll_token");
    }
    let c = Confirmation {
        id: f.pending.id,
        counter: None,
    };
    let done = store_confirmation(
        &engine.ctx(),
        &engine.factors,
        f.enroll,
        &l.b.user,
        c,
        token,
        enrolled,
    );
    match done {
        Ok(done) => {
            engine.syslog_records(&done.records);
            let mut text = format!("Enrolled: codes will be sent to {masked}.");
            if !done.codes.is_empty() {
                text.push(' ');
                text.push_str(done.heading);
                for c in &done.codes {
                    text.push_str("\n  ");
                    text.push_str(c.expose());
                }
            }
            if l.tell_secret(text) {
                l.succeed_enrolled(method);
            }
        }
        Err(f) if f.kind == ErrorKind::InvalidCode => {
            // The enrollment token was spent by another login meanwhile.
            let ev = l.base.renamed(event::LOGIN_DENIED);
            l.deny("enrollment token used meanwhile", None, ev);
        }
        Err(f) => l.unavailable(&f.detail.unwrap_or(f.message)),
    }
}
