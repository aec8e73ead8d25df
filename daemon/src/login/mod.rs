//! The login conversation driven for the PAM module.
//!
//! **Invariant:** the daemon decides everything (policy, prompt, retries,
//! lockout, enrollment at login, outcome); the module only shows what it is
//! sent and relays the answer.
//!
//! Order of decisions: the request is validated; the user name is resolved
//! to its account (names are not accounts: an alias — a second passwd name
//! of a uid, a case variant, `DOMAIN\user`, `user@domain` — logs in to the
//! account of its uid, and everything below is keyed by that account's
//! name — unless factors are stored under the name as typed, which then
//! logs in with those: root's usual login of an enrolled name asks NSS
//! nothing); the login is authorized; the policy may exempt the login
//! (`Ignore`); a lock
//! refuses it before any prompt; an unenrolled user is let through,
//! refused or offered enrollment as the policy says; a device remembered
//! after an earlier second factor (`remember.rs`: the SSH key sshd
//! verified, the login session) is let through; otherwise the person
//! is prompted. A lock made while the person types refuses the answer in
//! the transaction that would record it (no step spent, no failure added).
//! A user the passwd database does not know gets what an unenrolled user
//! in `deny` mode gets: the same prompt, the same message and a dummy
//! check of the same cost.

//!
//! **Invariant:** this module names no factor and no database: it asks the
//! factor registry what the user can answer with and checks answers through
//! it, and records outcomes through the store's domain operations.

pub mod enroll;
mod remember;
mod send;

use crate::accounts::Account;
use crate::audit::{event, AuditEvent};
use crate::engine::Engine;
use crate::factors::{Found, Place, Talk, VerifyError, Who};
use crate::server::conn::{Conn, Incoming};
use crate::store::{
    Claim, Durability, Failure, FailureOutcome, Locked, Snapshot, Success, SuccessOutcome,
};
use crate::validate;
use twofold_config::{Decision, Unenrolled};
use twofold_proto::{ErrorKind, Method, Request, Response, Secret};
use zeroize::Zeroize;

/// Answers longer than this are refused before any work is done.
pub const MAX_ANSWER: usize = 64;

/// Text shown after a wrong code.
pub const INVALID_CODE: &str = "Invalid verification code.";

/// Shown when the password is typed at a code prompt (once; it is not a
/// wrong code).
pub const PASSWORD_AGAIN: &str = "That was the password; type the verification code.";

/// Shown when the password is typed at a code prompt a second time: the
/// program answers every question with it (see `single_prompt`).
pub const PASSWORD_TWICE: &str =
    "The password was typed where the verification code was asked; the login was stopped.";

/// The PAM items of a `Begin`.
#[derive(Clone)]
pub(crate) struct Begin {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    pub ruser: Option<String>,
    /// The `publickey` lines of `SSH_AUTH_INFO_0` the module sent.
    pub ssh_auth_info: Option<String>,
}

/// One login in progress: its items, its audit template and its connection.
pub(crate) struct Login<'c, 'a> {
    pub conn: &'c mut Conn<'a>,
    pub engine: &'a Engine,
    /// The items, with `user` the account's name (see [`crate::accounts`]).
    pub b: &'c Begin,
    /// PAM_USER as the client sent it, when it is not the account's name.
    pub pam_user: Option<String>,
    /// Every audit row of this login starts from this.
    pub base: AuditEvent,
    /// PAM_RHOST, `""` for local logins: the rate-limit source.
    pub source: String,
    /// Prompts answered with the password the stack verified.
    password_answers: u32,
    /// What this login proved that a success remembers (see `remember.rs`).
    remember: Vec<crate::devices::Proof>,
    /// Codes this login asked to have sent (`send.rs`).
    sends: send::Sends,
    /// What a factor said of how it verified the answer (`uv=pin`), for
    /// the success row.
    notes: Vec<(&'static str, &'static str)>,
    /// The methods the policy allows this login (set once it is decided).
    allowed: Vec<Method>,
}

/// What the prompts are checked against.
enum Check {
    /// The user's factors, among these methods, as read before the prompt.
    Factors(Vec<Method>, Snapshot),
    /// Nothing can succeed (`deny` for an unenrolled or unknown user); the
    /// reason is for the audit trail only.
    Nothing(&'static str),
}

/// Whether two checks offer the same methods over the same credentials
/// and codes (what a re-read from the database may change).
fn same_view(a: &Check, b: &Check) -> bool {
    match (a, b) {
        (Check::Factors(ma, sa), Check::Factors(mb, sb)) => {
            fn sorted(codes: &[Method]) -> Vec<&str> {
                let mut v: Vec<&str> = codes.iter().map(Method::as_str).collect();
                v.sort_unstable();
                v
            }
            ma == mb
                && sorted(&sa.codes) == sorted(&sb.codes)
                && sa.credentials.len() == sb.credentials.len()
                && sa
                    .credentials
                    .iter()
                    .zip(&sb.credentials)
                    .all(|(x, y)| x.id == y.id && x.confirmed_at == y.confirmed_at)
        }
        _ => false,
    }
}

/// `"wrong code"` → `"wrong_code"`: reasons as single tokens in audit details.
pub(crate) fn token(reason: &str) -> String {
    reason.replace(' ', "_")
}

/// "Too many failed attempts; try again in N minutes".
pub fn locked_message(until: u64, now: u64) -> String {
    let minutes = until.saturating_sub(now).div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many failed attempts; try again in {minutes} {unit}.")
}

impl Login<'_, '_> {
    /// Writes the daemon's log line for this login.
    pub fn log(&self, result: &str, extra: &[(&str, &str)]) {
        let uid = self.conn.peer.cred.uid.to_string();
        let mut fields = vec![("user", self.b.user.as_str())];
        if let Some(typed) = &self.pam_user {
            fields.push(("pam_user", typed.as_str()));
        }
        fields.extend_from_slice(&[
            ("service", self.b.service.as_str()),
            ("rhost", self.b.rhost.as_deref().unwrap_or("")),
            ("tty", self.b.tty.as_deref().unwrap_or("")),
            ("result", result),
        ]);
        fields.extend_from_slice(extra);
        fields.push(("ruser", self.b.ruser.as_deref().unwrap_or("")));
        fields.push(("peer_uid", uid.as_str()));
        self.engine.log.event("login", &fields);
    }

    /// Audits `events`; on a storage failure the login ends `Unavailable`
    /// (no login without its record) and `false` is returned.
    pub fn audit(&mut self, events: &[AuditEvent]) -> bool {
        match self.engine.audit(events) {
            Ok(()) => true,
            Err(e) => {
                self.log("unavailable", &[("error", &format!("audit: {e}"))]);
                self.conn.send(&Response::Unavailable);
                false
            }
        }
    }

    /// Sends an `Info` line holding a secret (the enrollment's URI, secret
    /// or recovery codes) and wipes the text once sent.
    pub fn tell_secret(&mut self, text: String) -> bool {
        let mut resp = Response::Info { text };
        let shown = self.tell_ref(&resp);
        if let Response::Info { text } = &mut resp {
            text.zeroize();
        }
        shown
    }

    /// Sends a line (`Info` or `Error`) and waits for its `Ack`.
    pub fn tell(&mut self, resp: Response) -> bool {
        self.tell_ref(&resp)
    }

    fn tell_ref(&mut self, resp: &Response) -> bool {
        if !self.conn.send(resp) {
            return false;
        }
        match self.conn.recv() {
            Incoming::Request(Request::Ack) => true,
            Incoming::End => false,
            _ => {
                self.conn.log_error("expected ack");
                self.conn
                    .send_failed(ErrorKind::BadRequest, "expected an ack");
                false
            }
        }
    }

    /// Prompts and returns the answer; `None` when the login is over (logged).
    ///
    /// An answer that is the password the stack verified (the module says
    /// `PasswordAnswer` and never sends it) is no code and counts as no
    /// failure: the first time the person is told so and asked again; the
    /// second time the program evidently answers every question with the
    /// password (i3lock), so the login is refused — audited, never
    /// counted toward a lock — and the log tells the admin which service
    /// needs `single_prompt`.
    pub fn ask(&mut self, text: &str) -> Option<Secret> {
        loop {
            let prompt = Response::Prompt {
                text: text.to_owned(),
                echo: false,
            };
            if !self.conn.send(&prompt) {
                self.log("abandoned", &[]);
                return None;
            }
            let got = match self.conn.recv() {
                Incoming::Request(Request::Answer { text }) => return Some(text),
                Incoming::Request(Request::PasswordAnswer) if self.conn.proto >= 3 => {
                    if !self.password_answer() {
                        return None;
                    }
                    continue;
                }
                Incoming::End => {
                    self.log("abandoned", &[]);
                    return None;
                }
                Incoming::Request(other) => other.kind().to_owned(),
                Incoming::Unknown(kind) => kind,
            };
            self.log(
                "bad_request",
                &[("error", &format!("expected answer, got {got}"))],
            );
            self.conn
                .send_failed(ErrorKind::BadRequest, "expected an answer to the prompt");
            return None;
        }
    }

    /// Handles a prompt answered with the password; `true` when the
    /// question is to be asked again.
    fn password_answer(&mut self) -> bool {
        self.password_answers += 1;
        let hint = format!(
            "service {} answered a verification-code prompt with the password the stack verified; \
             a program that asks only one question needs the single_prompt stack (README: Single-prompt mode)",
            self.b.service
        );
        if self.password_answers == 1 {
            self.log("password_answer", &[("hint", &hint)]);
            return self.tell(Response::Error {
                text: PASSWORD_AGAIN.into(),
            });
        }
        self.log("password_answer", &[("hint", &hint)]);
        let ev = self.base.renamed(event::LOGIN_DENIED);
        self.deny("password at code prompt", Some(PASSWORD_TWICE), ev);
        false
    }

    /// Ends the login `Unavailable` after a storage failure.
    pub fn unavailable(&mut self, e: &dyn std::fmt::Display) {
        self.log("unavailable", &[("error", &e.to_string())]);
        self.conn.send(&Response::Unavailable);
    }

    /// Ends the login `Denied`, showing `shown` first when given.
    pub fn deny(&mut self, reason: &str, shown: Option<&str>, audit: AuditEvent) {
        self.log("denied", &[("reason", reason)]);
        if !self.audit(&[audit.with("reason", &token(reason))]) {
            return;
        }
        self.denied(reason, shown.as_slice());
    }

    /// Ends a login whose denial is already audited, showing the `shown`
    /// lines first: inside `Denied` (protocol 2: no round trip), or each
    /// as an `Error` to acknowledge (protocol 1).
    fn denied(&mut self, reason: &str, shown: &[&str]) {
        let mut message = None;
        if self.conn.proto >= 2 {
            message = (!shown.is_empty()).then(|| shown.join("\n"));
        } else {
            for text in shown {
                if !self.tell(Response::Error {
                    text: (*text).to_owned(),
                }) {
                    return;
                }
            }
        }
        self.conn.send(&Response::Denied {
            reason: reason.to_owned(),
            message,
        });
    }

    /// Refuses a locked login: audited, told when to retry, no verification.
    fn refuse_locked(&mut self, l: Locked) {
        let now = self.engine.now();
        let msg = locked_message(l.until, now);
        let scope = if l.user_wide { "user" } else { "source" };
        self.log("locked", &[("scope", scope)]);
        let ev = self
            .base
            .renamed(event::LOGIN_LOCKED)
            .with("scope", scope)
            .with("until", &l.until.to_string());
        if !self.audit(&[ev]) {
            return;
        }
        self.denied(&msg, &[&msg]);
    }

    /// The lock in force now, or `Err(())` when the login already ended.
    fn lock_now(&mut self) -> Result<Option<Locked>, ()> {
        let now = self.engine.now();
        let found = self.engine.store.lock(&self.b.user, &self.source, now);
        found.map_err(|e| self.unavailable(&e))
    }

    /// Checks one answer; `Err(())` when the login already ended.
    fn check(&mut self, check: &Check, answer: &Secret) -> Result<(Option<Method>, Found), ()> {
        if answer.len() > MAX_ANSWER {
            return Ok((None, Found::Rejected("answer too long")));
        }
        let typed = answer.expose().trim();
        let (methods, snap) = match check {
            Check::Factors(methods, snap) => (methods, snap),
            Check::Nothing(why) => {
                // A lock made meanwhile (by another login) stops this one
                // before the answer is looked at.
                return match self.lock_now()? {
                    Some(l) => Ok((None, Found::Locked(l))),
                    None => {
                        let cx = self.engine.ctx();
                        for f in self.engine.factors.all() {
                            f.decoy(&cx, typed);
                        }
                        Ok((None, Found::Rejected(why)))
                    }
                };
            }
        };
        let who = Who {
            user: &self.b.user,
            source: &self.source,
            login: &self.sends.id,
        };
        match self
            .engine
            .factors
            .check(&self.engine.ctx(), &who, snap, methods, typed)
        {
            Ok(Some((m, found))) => Ok((Some(m), found)),
            Ok(None) => Ok((None, Found::Rejected("not a code"))),
            Err(VerifyError::Storage(e)) => {
                self.unavailable(&e);
                Err(())
            }
            Err(VerifyError::Decrypt(e)) => {
                self.log("denied", &[("error", &e.to_string())]);
                let ev = self
                    .base
                    .renamed(event::LOGIN_DENIED)
                    .with("reason", "credential_cannot_be_decrypted");
                if self.audit(&[ev]) {
                    self.denied("the stored credential cannot be decrypted", &[]);
                }
                Err(())
            }
        }
    }

    /// Prompts up to `max_tries` times; each wrong answer is an audited
    /// failure that may lock the user out.
    fn prompts(&mut self, check: Check) {
        self.prompts_from(check, 1);
    }

    /// Runs the wait of the first allowed factor that has one (a device
    /// the daemon talks to: the cue as `Wait`, then the factor's own
    /// deadline), before any prompt. `Ok(tries)`: the tries it used (a
    /// refused answer is a wrong answer, counted); `Err(())`: the login is
    /// over.
    fn attend(&mut self, methods: &[Method], snap: &Snapshot) -> Result<u32, ()> {
        let engine = self.engine;
        let cx = engine.ctx();
        let who = Who {
            user: &self.b.user,
            source: &self.source,
            login: &self.sends.id,
        };
        let place = Place {
            service: &self.b.service,
            rhost: self.b.rhost.as_deref(),
        };
        let mut found = None;
        for f in engine
            .factors
            .all()
            .filter(|f| methods.contains(&f.method()))
        {
            match f.attend(&cx, &who, snap, &place) {
                Ok(Some(w)) => {
                    found = Some((f.method(), w));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    self.verify_error(e);
                    return Err(());
                }
            }
        }
        let Some((method, wait)) = found else {
            return Ok(0);
        };
        let mut talk = Talking {
            login: self,
            method: method.clone(),
            over: false,
        };
        let got = wait.wait(&cx, &mut talk);
        let over = talk.over;
        drop(wait);
        if over {
            return Err(());
        }
        if self.conn.hung_up() {
            self.log("abandoned", &[("method", method.as_str())]);
            return Err(());
        }
        let max = engine.config.login.max_tries;
        let why = match got {
            Ok(None) => {
                self.log("no_device_answer", &[("method", method.as_str())]);
                return Ok(0);
            }
            Ok(Some(Found::Locked(l))) => {
                self.refuse_locked(l);
                return Err(());
            }
            Ok(Some(Found::Claim(claim))) => match self.succeed(method, claim) {
                Some(lost) => lost,
                None => return Err(()),
            },
            Ok(Some(Found::Rejected(why))) => why,
            Err(e) => {
                self.verify_error(e);
                return Err(());
            }
        };
        if self.fail(1, max <= 1, why) {
            Ok(1)
        } else {
            Err(())
        }
    }

    /// Ends the login after a check could not be completed.
    fn verify_error(&mut self, e: VerifyError) {
        match e {
            VerifyError::Storage(e) => self.unavailable(&e),
            VerifyError::Decrypt(e) => {
                self.log("denied", &[("error", &e.to_string())]);
                let ev = self
                    .base
                    .renamed(event::LOGIN_DENIED)
                    .with("reason", "credential_cannot_be_decrypted");
                if self.audit(&[ev]) {
                    self.denied("the stored credential cannot be decrypted", &[]);
                }
            }
        }
    }

    /// Prompts from try `first` to `max_tries`.
    fn prompts_from(&mut self, mut check: Check, first: u32) {
        let max = self.engine.config.login.max_tries;
        let mut attempt = first.saturating_sub(1);
        'prompts: while attempt < max {
            let prompt = self.prompt_for(&check);
            let Some(answer) = self.ask(&prompt) else {
                return;
            };
            let mut counted = false;
            let why = loop {
                // A factor's keyword has a code sent: no try is counted.
                match self.send_asked(&check, answer.expose()) {
                    Some(true) => {
                        attempt -= u32::from(counted);
                        continue 'prompts;
                    }
                    Some(false) => return,
                    None if !counted => {
                        counted = true;
                        attempt += 1;
                    }
                    None => {}
                }
                let Ok((method, found)) = self.check(&check, &answer) else {
                    return;
                };
                let why = match found {
                    Found::Locked(l) => return self.refuse_locked(l),
                    Found::Claim(claim) => match method.map(|m| self.succeed(m, claim)) {
                        Some(Some(lost)) => lost,
                        _ => return,
                    },
                    Found::Rejected(why) => why,
                };
                // Refused on a copy that may not have heard of the last
                // moments' changes (a factor enrolled or replaced on
                // another host): checked once more on the database's
                // snapshot before it counts.
                match self.reread(&check) {
                    Err(()) => return,
                    Ok(Some(fresh)) => {
                        let changed = !same_view(&check, &fresh);
                        check = fresh;
                        if changed {
                            continue;
                        }
                    }
                    Ok(None) => {}
                }
                break why;
            };
            drop(answer);
            self.sent_missed();
            if !self.fail(attempt, attempt == max, why) {
                return;
            }
        }
        // Only with max_tries = 0: no try was allowed.
        let ev = self.base.renamed(event::LOGIN_DENIED);
        self.deny("too many invalid codes", None, ev);
    }

    /// The check read again from the database when `check` came from a
    /// copy (`None` otherwise); `Err(())` when the login ended (the
    /// database is unavailable, or it holds a lock the copy had not heard
    /// of: refused as a login that read it first would have been).
    fn reread(&mut self, check: &Check) -> Result<Option<Check>, ()> {
        let Check::Factors(_, snap) = check else {
            return Ok(None);
        };
        if !snap.copy {
            return Ok(None);
        }
        let now = self.engine.now();
        let fresh = match self.engine.store.snapshot(&self.b.user, &self.source, now) {
            Ok(s) => s,
            Err(e) => {
                self.unavailable(&e);
                return Err(());
            }
        };
        if let Some(l) = fresh.lock {
            self.refuse_locked(l);
            return Err(());
        }
        let factors = self.engine.factors.usable(&fresh);
        let usable = self
            .allowed
            .iter()
            .filter(|m| factors.contains(m))
            .cloned()
            .collect();
        Ok(Some(Check::Factors(usable, fresh)))
    }

    /// Records a wrong answer — with the login's denial when this was the
    /// `last` try or it locked the user out, in the same transaction; `false`
    /// when the login is over.
    fn fail(&mut self, attempt: u32, last: bool, why: &str) -> bool {
        let now = self.engine.now();
        let failure = Failure {
            user: self.b.user.clone(),
            source: self.source.clone(),
            now,
            limits: self.engine.config.rate_limit.clone(),
            failure: self
                .base
                .renamed(event::LOGIN_FAILURE)
                .with("reason", &token(why))
                .with("try", &attempt.to_string()),
            denied: self.base.renamed(event::LOGIN_DENIED),
            last,
        };
        // Committed before the answer (every login and daemon sees it at
        // once; it survives a crash of twofoldd), on disk within 100 ms.
        let (locked, recs) = match self
            .engine
            .store
            .record_failure(failure, Durability::Deferred)
        {
            Ok(FailureOutcome::Recorded(locked, recs)) => (locked, recs),
            Ok(FailureOutcome::Locked(l)) => {
                self.refuse_locked(l);
                return false;
            }
            Err(e) => {
                self.unavailable(&e);
                return false;
            }
        };
        self.engine.syslog_records(&recs);
        self.log(
            "invalid_code",
            &[("try", &attempt.to_string()), ("reason", why)],
        );
        if let Some(l) = locked {
            let msg = locked_message(l.until, now);
            self.log("denied", &[("reason", "locked out")]);
            self.denied("locked out", &[INVALID_CODE, &msg]);
            return false;
        }
        if last {
            self.log("denied", &[("reason", "too many invalid codes")]);
            self.denied("too many invalid codes", &[INVALID_CODE]);
            return false;
        }
        self.tell(Response::Error {
            text: INVALID_CODE.into(),
        })
    }

    /// Spends a matching answer of `method` and, in the same transaction,
    /// forgets the source's failures and audits the success; answers
    /// `Success` only once that is durable. Returns why the answer was
    /// refused when another login spent it first, `None` when the login is
    /// over.
    fn succeed(&mut self, method: Method, claim: Claim) -> Option<&'static str> {
        self.success(Some(claim), method)
    }

    /// A login whose answer was spent already (by confirming its
    /// enrollment of `method`): forgets the source's failures and audits
    /// the success, in one transaction, then answers `Success`.
    pub fn succeed_enrolled(&mut self, method: Method) {
        let _ = self.success(None, method);
    }

    fn success(&mut self, claim: Option<Claim>, method: Method) -> Option<&'static str> {
        let now = self.engine.now();
        let factor = self.engine.factors.get(&method);
        let code_used = factor
            .and_then(|f| f.spent_event())
            .map(|e| self.base.renamed(e).method(method.as_str()));
        let lost = factor.map(|f| f.lost()).unwrap_or("code already used");
        let mut row = self
            .base
            .renamed(event::LOGIN_SUCCESS)
            .method(method.as_str());
        for (k, v) in &self.notes {
            row = row.with(k, v);
        }
        let success = Success {
            user: self.b.user.clone(),
            source: self.source.clone(),
            now,
            claim,
            events: vec![row],
            code_used,
        };
        // A break-glass code lets one person in once; it never makes a
        // device trusted for weeks.
        let issued = factor.is_some_and(|f| f.role() == crate::factors::Role::Issued);
        let remember = if issued {
            Vec::new()
        } else {
            self.to_remember(now)
        };
        let recorded = if remember.is_empty() {
            self.engine.store.record_success(success)
        } else {
            let remembered = self
                .base
                .renamed(event::DEVICE_REMEMBERED)
                .method(method.as_str());
            self.engine
                .store
                .record_success_remembering(success, remember, remembered)
        };
        let recs = match recorded {
            Ok(SuccessOutcome::Done(recs)) => recs,
            Ok(SuccessOutcome::Lost) => return Some(lost),
            Ok(SuccessOutcome::Locked(l)) => {
                self.refuse_locked(l);
                return None;
            }
            Err(e) => {
                self.unavailable(&e);
                return None;
            }
        };
        self.engine.syslog_records(&recs);
        self.log("success", &[("method", method.as_str())]);
        self.conn.send(&Response::Success);
        None
    }

    /// Lets the login through without MFA (`Ignore`), audited.
    pub fn skip(&mut self, reason: &str) {
        self.log("ignore", &[("reason", reason)]);
        let ev = self
            .base
            .renamed(event::LOGIN_SKIPPED)
            .with("reason", &token(reason));
        if self.audit(&[ev]) {
            self.conn.send(&Response::Ignore);
        }
    }
}

impl<'c, 'a> Login<'c, 'a> {
    /// A login of `b.user`, who was sent as `pam_user` when that differs.
    fn new(conn: &'c mut Conn<'a>, b: &'c Begin, pam_user: Option<String>) -> Login<'c, 'a> {
        let mut base = AuditEvent::new("", &b.user, &conn.peer.actor());
        base.service = b.service.clone();
        base.rhost = b.rhost.clone().unwrap_or_default();
        base.tty = b.tty.clone().unwrap_or_default();
        if let Some(typed) = &pam_user {
            base = base.with("pam_user", typed);
        }
        if let Some(r) = b.ruser.as_deref() {
            base = base.with("ruser", r);
        }
        Login {
            engine: conn.engine,
            conn,
            b,
            pam_user,
            base,
            source: b.rhost.clone().unwrap_or_default(),
            password_answers: 0,
            remember: Vec::new(),
            sends: send::Sends::new(),
            notes: Vec::new(),
            allowed: Vec::new(),
        }
    }
}

/// Validates `typed`, resolves its user name to the account (see
/// [`crate::accounts::Account`]) and authorizes the peer to log it in;
/// `None` when the login already ended (answered and logged).
fn resolve(conn: &mut Conn<'_>, typed: &Begin) -> Option<(Account, Option<Snapshot>)> {
    let engine = conn.engine;
    let mut l = Login::new(conn, typed, None);
    let valid = validate::user(&typed.user)
        .and_then(|()| validate::service(&typed.service))
        .and_then(|()| validate::item("rhost", typed.rhost.as_deref()))
        .and_then(|()| validate::item("tty", typed.tty.as_deref()))
        .and_then(|()| validate::item("ruser", typed.ruser.as_deref()));
    if let Err(e) = valid {
        l.log("bad_request", &[("error", &e.to_string())]);
        l.conn.send_failed(ErrorKind::BadRequest, &e.to_string());
        return None;
    }
    let peer = l.conn.peer;
    let want_groups =
        engine.config.policy.uses_groups() || !engine.config.remember.forbid_groups.is_empty();
    // The usual login — root runs it (sshd, sudo, su), no policy names
    // groups, and factors are stored under the name as typed — takes that
    // name as its account without asking NSS: an alias has no factors of
    // its own, so it cannot pass for an enrolled name, and is resolved
    // below like every other name. The snapshot read here is the login's.
    let mut typed_snapshot = None;
    if peer.is_root() && !want_groups {
        let source = typed.rhost.clone().unwrap_or_default();
        match engine
            .store
            .login_snapshot(&typed.user, &source, engine.now(), &|s| {
                engine.factors.any_usable(s)
            }) {
            Ok(snap) if engine.factors.any_usable(&snap) => {
                let account = Account {
                    name: typed.user.clone(),
                    uid: None,
                    groups: Vec::new(),
                };
                return Some((account, Some(snap)));
            }
            Ok(snap) => typed_snapshot = Some(snap),
            Err(e) => {
                l.unavailable(&e);
                return None;
            }
        }
    }
    // Otherwise the account comes first: its name keys factors, locks and
    // grace, and only its uid tells whether the peer may run it. A name an
    // unprivileged peer chooses is asked for without being kept, so it
    // cannot crowd root's logins out of the cache.
    let found = if peer.is_root() || peer.is_self(&typed.user) {
        engine.directory.account(&typed.user, want_groups)
    } else {
        engine.directory.account_unkept(&typed.user, want_groups)
    };
    let account = match found {
        Ok(a) => a,
        Err(e) => {
            l.unavailable(&format!("passwd/group lookup: {e}"));
            return None;
        }
    };
    if !peer.is_root() && !account.uid.is_some_and(|uid| peer.is_self(uid)) {
        l.log("permission_denied", &[]);
        l.conn.send_failed(
            ErrorKind::PermissionDenied,
            "only root may run a login for another user",
        );
        return None;
    }
    // Every login writes audit rows: an unprivileged peer's are budgeted.
    if let Err(why) = engine.admit_write(peer.cred.uid, "login") {
        l.conn.send_failed(ErrorKind::PermissionDenied, &why);
        return None;
    }
    Some((account, typed_snapshot))
}

/// Runs one login conversation to its end.
pub(crate) fn run(conn: &mut Conn<'_>, typed: &Begin) {
    let engine = conn.engine;
    let Some((resolved, typed_snapshot)) = resolve(conn, typed) else {
        return;
    };
    // A name with factors of its own logs in with them (an admin enrolled
    // the alias, or it was enrolled before names were resolved): it is
    // its own account, as on the fast path, and never passes for the
    // account's state (which may be unenrolled). A name without factors
    // is its uid's account.
    let (account, pre) = if resolved.name == typed.user {
        (resolved, typed_snapshot)
    } else {
        let own = match &typed_snapshot {
            Some(s) => Ok(engine.factors.any_usable(s)),
            None => engine.has_login_factor(&typed.user),
        };
        match own {
            Ok(true) => {
                let account = Account {
                    name: typed.user.clone(),
                    ..resolved
                };
                (account, typed_snapshot)
            }
            Ok(false) => (resolved, None),
            Err(e) => return Login::new(conn, typed, None).unavailable(&e),
        }
    };
    let pam_user = (account.name != typed.user).then(|| typed.user.clone());
    let b = &Begin {
        user: account.name.clone(),
        ..typed.clone()
    };
    let mut l = Login::new(conn, b, pam_user);
    let effective = match engine.decide(&b.user, &account.groups, &b.service, b.rhost.as_deref()) {
        Decision::Exempt { why } => return l.skip(&why),
        Decision::Mfa(e) => e,
    };
    let mut snap = match pre {
        Some(s) => s,
        None => match engine
            .store
            .login_snapshot(&b.user, &l.source, engine.now(), &|s| {
                engine.factors.any_usable(s)
            }) {
            Ok(s) => s,
            Err(e) => return l.unavailable(&e),
        },
    };
    if snap.copy {
        // A copy that allows nothing here may not have heard of a factor
        // enrolled a moment ago: the database decides a denial. And a
        // remembered device lets a login through without any spend to
        // check the copy's word that the account is enrolled.
        let factors = engine.factors.usable(&snap);
        let remembering = !matches!(
            engine.config.remember.decide(&b.service, &account.groups),
            twofold_config::Remember::Off(_)
        );
        if remembering || !effective.methods.iter().any(|m| factors.contains(m)) {
            snap = match engine.store.snapshot(&b.user, &l.source, engine.now()) {
                Ok(s) => s,
                Err(e) => return l.unavailable(&e),
            };
        }
    }
    if let Some(lock) = snap.lock {
        return l.refuse_locked(lock);
    }
    let factors = engine.factors.usable(&snap);
    if factors.is_empty() {
        let mut action = effective.unenrolled;
        if !account.known() && action == Unenrolled::Enroll {
            // Nobody can enroll an account that does not exist.
            action = Unenrolled::Deny;
        }
        return match action {
            Unenrolled::Allow => l.skip("not enrolled"),
            Unenrolled::Deny if account.known() => l.prompts(Check::Nothing("not enrolled")),
            Unenrolled::Deny => l.prompts(Check::Nothing("unknown user")),
            Unenrolled::Enroll => enroll::run(&mut l, &effective.methods),
        };
    }
    let usable: Vec<Method> = effective
        .methods
        .iter()
        .filter(|m| factors.contains(m))
        .cloned()
        .collect();
    if usable.is_empty() {
        let allowed: Vec<&str> = effective.methods.iter().map(|m| m.as_str()).collect();
        let shown = format!(
            "No verification method allowed for {} is set up for this account.",
            b.service
        );
        let ev = l
            .base
            .renamed(event::LOGIN_DENIED)
            .with("allowed", &allowed.join(","));
        return l.deny("no allowed method enrolled", Some(&shown), ev);
    }
    l.allowed = effective.methods.clone();
    if l.remembered(&account.groups) {
        return;
    }
    let Ok(used) = l.attend(&usable, &snap) else {
        return;
    };
    l.prompts_from(Check::Factors(usable, snap), used + 1);
}

/// The login's conversation lent to a factor's wait on a device.
struct Talking<'l, 'c, 'a> {
    login: &'l mut Login<'c, 'a>,
    method: Method,
    /// The login ended meanwhile (logged, and answered when it could be).
    over: bool,
}

impl Talking<'_, '_, '_> {
    fn ended(&mut self, ok: bool) -> bool {
        if !ok && !self.over {
            self.over = true;
        }
        ok
    }
}

impl Talk for Talking<'_, '_, '_> {
    fn cue(&mut self, text: &str) -> bool {
        let ok = self.login.tell(Response::Wait { text: text.into() });
        if !ok {
            self.login
                .log("abandoned", &[("method", self.method.as_str())]);
        }
        self.ended(ok)
    }

    fn info(&mut self, text: &str) -> bool {
        let ok = self.login.tell(Response::Info { text: text.into() });
        if !ok {
            self.login
                .log("abandoned", &[("method", self.method.as_str())]);
        }
        self.ended(ok)
    }

    fn ask(&mut self, text: &str) -> Option<Secret> {
        let got = self.login.ask(text);
        self.ended(got.is_some());
        got
    }

    fn audit(&mut self, event: &'static str, detail: &[(&str, &str)]) -> bool {
        let mut ev = self.login.base.renamed(event).method(self.method.as_str());
        for (k, v) in detail {
            ev = ev.with(k, v);
        }
        let ok = self.login.audit(&[ev]);
        self.ended(ok)
    }

    fn note(&mut self, key: &'static str, value: &'static str) {
        self.login.notes.retain(|(k, _)| *k != key);
        self.login.notes.push((key, value));
    }

    fn gone(&self) -> bool {
        self.login.conn.hung_up()
    }
}
