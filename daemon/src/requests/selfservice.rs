//! Self-service: enrollment, status, recovery codes, removal; and the
//! admin requests that change an account's factors (disable, list).
//!
//! Changing or removing a factor in self-service needs a fresh answer of a
//! factor that authorizes changes, spent in the change's own transaction;
//! an admin acting on another account needs none. Every change is stored
//! with its audit row, in one transaction.

use super::{Answer, Unhandled};
use crate::audit::{event, AuditEvent};
use crate::engine::Engine;
use crate::factors::{enroll, EnrollOptions, Found, Role, VerifyError, Who};
use crate::failure::{fail, Failure};
use crate::login::MAX_ANSWER;
use crate::login::{locked_message, token};
use crate::server::peer::Peer;
use crate::store::{Change, Claim, Durability, FailureOutcome, Locked, Removal, StoreError};
use crate::validate;
use twofold_proto::{ErrorKind, Method, Request, Response, Secret, TempCodeInfo, UserStatus};

/// Whom a request acts on, and whether an admin acts on someone else.
struct Target {
    user: String,
    admin_other: bool,
}

/// Answers the requests of this part; hands the others back.
pub(super) fn answer(engine: &Engine, peer: &Peer, req: Request) -> Result<Answer, Unhandled> {
    let start = |user, method, algorithm, digits, address, code: Option<Secret>| {
        let t = target(peer, user)?;
        let options = EnrollOptions {
            algorithm,
            digits,
            address,
            ..EnrollOptions::default()
        };
        enroll_start(engine, peer, &t, &method, options, code.as_ref())
    };
    let confirm = |user, method: Method, code: &Secret| {
        let t = target(peer, user)?;
        enroll_confirm(engine, peer, &t, &method, code)
    };
    Ok(match req {
        Request::EnrollStart {
            user,
            method,
            algorithm,
            digits,
            address,
            code,
        } => start(user, method, algorithm, digits, address, code),
        Request::TotpEnrollStart {
            user,
            algorithm,
            digits,
        } => start(user, Method::TOTP, algorithm, digits, None, None),
        Request::EnrollConfirm { user, method, code } => confirm(user, method, &code),
        Request::TotpEnrollConfirm { user, code } => confirm(user, Method::TOTP, &code),
        Request::EnrollCancel { user, method } => {
            target(peer, user).and_then(|t| enroll_cancel(engine, &t, &method))
        }
        Request::Status { user } => {
            target(peer, user).and_then(|t| Ok(Response::Status(status_of(engine, &t.user)?)))
        }
        Request::RegenerateBackupCodes { user, code } => {
            target(peer, user).and_then(|t| regenerate(engine, peer, &t, code.as_ref()))
        }
        Request::RemoveTotp { user, code } => target(peer, user)
            .and_then(|t| remove(engine, peer, &t, &Method::TOTP, None, code.as_ref())),
        Request::RemoveFactor { user, method, code } => {
            target(peer, user).and_then(|t| remove(engine, peer, &t, &method, None, code.as_ref()))
        }
        Request::EnrollStartNamed {
            user,
            method,
            name,
            pin,
        } => target(peer, user).and_then(|t| {
            let options = EnrollOptions {
                name,
                pin,
                ..EnrollOptions::default()
            };
            enroll_start(engine, peer, &t, &method, options, None)
        }),
        Request::RemoveCredential {
            user,
            method,
            name,
            code,
        } => target(peer, user)
            .and_then(|t| remove(engine, peer, &t, &method, Some(&name), code.as_ref())),
        Request::AdminDisable { user } => disable(engine, peer, &user),
        Request::AdminList => list(engine, peer),
        Request::AdminListPage { after } => list_page(engine, peer, after.as_deref())
            .map(|(users, next)| Response::UsersPage { users, next }),
        other => return Err(Unhandled(Box::new(other))),
    })
}

fn target(peer: &Peer, user: Option<String>) -> Result<Target, Failure> {
    let user = match user {
        Some(u) => u,
        None => peer.name.clone().ok_or_else(|| {
            fail(
                ErrorKind::PermissionDenied,
                format!("uid {} has no account name", peer.cred.uid),
            )
        })?,
    };
    validate::user(&user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))?;
    if peer.is_self(&user) {
        Ok(Target {
            user,
            admin_other: false,
        })
    } else if peer.admin {
        Ok(Target {
            user,
            admin_other: true,
        })
    } else {
        Err(fail(
            ErrorKind::PermissionDenied,
            "you may only manage your own account",
        ))
    }
}

fn enrollable<'e>(
    engine: &'e Engine,
    method: &Method,
) -> Result<&'e dyn crate::factors::Enroll, Failure> {
    engine
        .factors
        .get(method)
        .and_then(|f| f.enrollment())
        .ok_or_else(|| {
            fail(
                ErrorKind::BadRequest,
                format!("{method} is not a factor that can be enrolled"),
            )
        })
}

fn enroll_start(
    engine: &Engine,
    peer: &Peer,
    t: &Target,
    method: &Method,
    options: EnrollOptions,
    code: Option<&Secret>,
) -> Result<Response, Failure> {
    let e = enrollable(engine, method)?;
    // A factor added beside a confirmed one needs a fresh answer of it in
    // self-service, spent (and audited) before anything is sent.
    let authorizing = e.start_needs_authorization()
        && !t.admin_other
        && engine
            .store
            .credentials(&t.user)?
            .iter()
            .any(|c| c.confirmed_at.is_some());
    if !authorizing {
        // A start writes (a pending row; a send, or its refusal, audited):
        // budgeted for an unprivileged peer like any other write (the
        // authorization below is budgeted itself).
        engine
            .admit_write(peer.cred.uid, "enroll_start")
            .map_err(|why| fail(ErrorKind::PermissionDenied, why))?;
    }
    if authorizing {
        let (claim, by) = authorize(engine, peer, t, "enroll_start", code)?;
        if let (Some(claim), Some(sends)) = (claim, engine.store.sends()) {
            let ev = AuditEvent::new(event::ENROLL_AUTHORIZED, &t.user, &peer.actor())
                .method(method.as_str());
            let change = sends.spend_authorization(claim, engine.now(), vec![ev])?;
            changed(engine, change, by.as_ref(), || {
                fail(ErrorKind::InvalidCode, "invalid verification code")
            })?;
        }
    }
    Ok(e.start(&engine.ctx(), &t.user, &options)?.response)
}

fn enroll_confirm(
    engine: &Engine,
    peer: &Peer,
    t: &Target,
    method: &Method,
    code: &Secret,
) -> Result<Response, Failure> {
    let e = enrollable(engine, method)?;
    if e.start_needs_authorization() && !t.admin_other {
        refuse_started_before_a_factor(engine, &t.user, method)?;
    }
    // A code that proves a destination, typed in self-service: budgeted,
    // and a wrong one counted and audited as a login's.
    let proves = !t.admin_other && (*method == Method::EMAIL || *method == Method::SMS);
    if proves {
        engine
            .admit_write(peer.cred.uid, "enroll_confirm")
            .map_err(|why| fail(ErrorKind::PermissionDenied, why))?;
    }
    let enrolled = AuditEvent::new(event::ENROLL, &t.user, &peer.actor())
        .method(method.as_str())
        .with("via", "cli");
    let done = match enroll::confirm(
        &engine.ctx(),
        &engine.factors,
        e,
        &t.user,
        code,
        None,
        enrolled,
    ) {
        Err(f) if proves && f.kind == ErrorKind::InvalidCode => {
            let mut base = AuditEvent::new("", &t.user, &peer.actor())
                .with("request", "enroll_confirm")
                .method(method.as_str());
            base.service = SERVICE.to_owned();
            let a = Authorizing {
                engine,
                user: &t.user,
                base,
            };
            return Err(a.wrong("wrong code"));
        }
        other => other?,
    };
    engine.syslog_records(&done.records);
    if done.replaced {
        return Ok(Response::Done {
            message: format!(
                "the {method} destination of {} is changed; codes no longer go to the old one \
                 (both were told by mail)",
                t.user
            ),
        });
    }
    Ok(Response::BackupCodes { codes: done.codes })
}

/// Refuses to confirm `user`'s pending `method` started while the account
/// had no factor (so no code authorized it) once a factor has been
/// confirmed since: a process running as the user could otherwise start a
/// destination or an authenticator of its own early and confirm it after
/// the person enrolled, with no proof.
fn refuse_started_before_a_factor(
    engine: &Engine,
    user: &str,
    method: &Method,
) -> Result<(), Failure> {
    let creds = engine.store.credentials(user)?;
    let newest = creds.iter().filter_map(|c| c.confirmed_at).max();
    let started = creds
        .iter()
        .filter(|c| c.confirmed_at.is_none() && c.method == *method)
        .map(|c| c.created_at)
        .max();
    match (newest, started) {
        (Some(factor), Some(start)) if start < factor => Err(fail(
            ErrorKind::Conflict,
            format!(
                "this {method} enrollment was started before a factor was added to the \
                 account; start it again (a current code of that factor is asked)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Drops `t`'s pending enrollment of `method` (one that was never
/// confirmed, so it never counted: no audit row).
fn enroll_cancel(engine: &Engine, t: &Target, method: &Method) -> Result<Response, Failure> {
    enrollable(engine, method)?;
    let pending: Vec<i64> = engine
        .store
        .credentials(&t.user)?
        .into_iter()
        .filter(|c| c.method == *method && c.confirmed_at.is_none())
        .map(|c| c.id)
        .collect();
    if pending.is_empty() {
        return Err(fail(
            ErrorKind::NotFound,
            format!("{} has no pending {method} enrollment", t.user),
        ));
    }
    for id in pending {
        engine.store.delete_pending(id)?;
    }
    Ok(Response::Done {
        message: format!("the pending {method} enrollment of {} was dropped", t.user),
    })
}

/// The service name of code checks made by requests, in audit rows.
const SERVICE: &str = "twofold";
/// Where a request's code check counts against the rate limits: local,
/// like sudo's and su's, so guessing through requests and through local
/// logins shares one count and one lock.
const SOURCE: &str = "";

/// A request whose fresh answer is being checked.
struct Authorizing<'a> {
    engine: &'a Engine,
    user: &'a str,
    /// Every audit row of the check starts from this.
    base: AuditEvent,
}

impl Authorizing<'_> {
    /// A refusal because a lock is in force (audited, like a login's).
    fn locked(&self, l: Locked) -> Failure {
        let now = self.engine.now();
        let scope = if l.user_wide { "user" } else { "source" };
        let ev = self
            .base
            .renamed(event::LOGIN_LOCKED)
            .with("scope", scope)
            .with("until", &l.until.to_string());
        if let Err(e) = self.engine.audit(&[ev]) {
            return e.into();
        }
        fail(ErrorKind::PermissionDenied, locked_message(l.until, now))
    }

    /// A wrong answer: counted, maybe locked, audited — as a login's.
    fn wrong(&self, why: &str) -> Failure {
        let now = self.engine.now();
        let f = crate::store::Failure {
            user: self.user.to_owned(),
            source: SOURCE.to_owned(),
            now,
            limits: self.engine.config.rate_limit.clone(),
            failure: self
                .base
                .renamed(event::LOGIN_FAILURE)
                .with("reason", &token(why)),
            denied: self.base.renamed(event::LOGIN_DENIED),
            last: true,
        };
        match self.engine.store.record_failure(f, Durability::Deferred) {
            Ok(FailureOutcome::Recorded(locked, recs)) => {
                self.engine.syslog_records(&recs);
                let message = match locked {
                    Some(l) => format!(
                        "invalid verification code; {}",
                        locked_message(l.until, now)
                    ),
                    None => "invalid verification code".to_owned(),
                };
                fail(ErrorKind::InvalidCode, message)
            }
            Ok(FailureOutcome::Locked(l)) => self.locked(l),
            Err(e) => e.into(),
        }
    }
}

/// A fresh answer authorizes a change: checked by the factors that may
/// authorize changes, under the same lock, failure count and audit as a
/// login's answer, and spent (as the returned claim) in the change's
/// transaction. `None` for an admin acting on someone else.
fn authorize<'a>(
    engine: &'a Engine,
    peer: &Peer,
    t: &'a Target,
    request: &str,
    code: Option<&Secret>,
) -> Result<(Option<Claim>, Option<Authorizing<'a>>), Failure> {
    if t.admin_other {
        return Ok((None, None));
    }
    let Some(code) = code else {
        return Err(fail(
            ErrorKind::BadRequest,
            "a current verification code is required",
        ));
    };
    // A check writes audit rows (and a wrong code, a failure): budgeted.
    engine
        .admit_write(peer.cred.uid, request)
        .map_err(|why| fail(ErrorKind::PermissionDenied, why))?;
    let mut base = AuditEvent::new("", &t.user, &peer.actor()).with("request", request);
    base.service = SERVICE.to_owned();
    let a = Authorizing {
        engine,
        user: &t.user,
        base,
    };
    let snap = engine.store.snapshot(&t.user, SOURCE, engine.now())?;
    if let Some(l) = snap.lock {
        return Err(a.locked(l));
    }
    if code.len() > MAX_ANSWER {
        return Err(a.wrong("answer too long"));
    }
    let allowed: Vec<Method> = engine
        .factors
        .all()
        .filter(|f| f.authorizes() && f.usable(&snap))
        .map(|f| f.method())
        .collect();
    let who = Who {
        login: "",
        user: &t.user,
        source: SOURCE,
    };
    let found = engine
        .factors
        .check(&engine.ctx(), &who, &snap, &allowed, code.expose().trim());
    match found {
        Ok(Some((_, Found::Claim(c)))) => Ok((Some(c), Some(a))),
        Ok(Some((_, Found::Locked(l)))) => Err(a.locked(l)),
        Ok(Some((_, Found::Rejected(why)))) => Err(a.wrong(why)),
        Ok(None) => Err(a.wrong("not a code")),
        Err(VerifyError::Storage(e)) => Err(e.into()),
        Err(VerifyError::Decrypt(e)) => Err(e.into()),
    }
}

/// The outcome of a change, as the client hears it; a claim that another
/// request or login spent first is a wrong answer of `by`.
fn changed(
    engine: &Engine,
    change: Change,
    by: Option<&Authorizing<'_>>,
    nothing: impl FnOnce() -> Failure,
) -> Result<(), Failure> {
    match change {
        Change::Done(recs) => {
            engine.syslog_records(&recs);
            Ok(())
        }
        Change::Lost => Err(match by {
            Some(a) => a.wrong("code already used"),
            None => fail(ErrorKind::InvalidCode, "invalid verification code"),
        }),
        Change::Nothing => Err(nothing()),
    }
}

fn no_factor(user: &str) -> Failure {
    fail(
        ErrorKind::NotFound,
        format!("{user} has no confirmed factor"),
    )
}

fn regenerate(
    engine: &Engine,
    peer: &Peer,
    t: &Target,
    code: Option<&Secret>,
) -> Result<Response, Failure> {
    let Some(recovery) = engine.factors.recovery() else {
        return Err(fail(
            ErrorKind::NotFound,
            "this daemon issues no backup codes",
        ));
    };
    if !has_confirmed(engine, &t.user)? {
        return Err(no_factor(&t.user));
    }
    let (claim, by) = authorize(engine, peer, t, "regenerate_backup_codes", code)?;
    let cx = engine.ctx();
    let Some(issued) = recovery.issue(&cx, &t.user)? else {
        return Err(fail(
            ErrorKind::NotFound,
            "this daemon issues no backup codes",
        ));
    };
    let method = recovery.method();
    let ev =
        AuditEvent::new(event::CODES_REGENERATED, &t.user, &peer.actor()).method(method.as_str());
    let change =
        engine
            .store
            .replace_codes(&t.user, &method, issued.rows, claim, engine.now(), vec![ev])?;
    changed(engine, change, by.as_ref(), || no_factor(&t.user))?;
    Ok(Response::BackupCodes {
        codes: issued.shown,
    })
}

fn has_confirmed(engine: &Engine, user: &str) -> Result<bool, StoreError> {
    Ok(engine
        .store
        .credentials(user)?
        .iter()
        .any(|c| c.confirmed_at.is_some()))
}

/// Removes `t`'s credentials of `method`: all of them, or the one called
/// `name`.
fn remove(
    engine: &Engine,
    peer: &Peer,
    t: &Target,
    method: &Method,
    name: Option<&str>,
    code: Option<&Secret>,
) -> Result<Response, Failure> {
    let Some(factor) = engine.factors.get(method) else {
        return Err(fail(
            ErrorKind::BadRequest,
            format!("unknown method {method}"),
        ));
    };
    if factor.role() == Role::Recovery {
        return Err(fail(
            ErrorKind::BadRequest,
            format!(
                "{method}s are not removed but regenerated (`twofold backup-codes regenerate`)"
            ),
        ));
    }
    let creds = engine.store.credentials(&t.user)?;
    let mine =
        |c: &&crate::store::Credential| c.method == *method && name.is_none_or(|n| c.label == n);
    let missing = || match name {
        Some(n) => fail(
            ErrorKind::NotFound,
            format!("{} has no {method} credential named {n:?}", t.user),
        ),
        None => fail(
            ErrorKind::NotFound,
            format!("{} has no {method} credential", t.user),
        ),
    };
    let one = match name {
        Some(_) => match creds.iter().find(mine) {
            Some(c) => Some(c.id),
            None => return Err(missing()),
        },
        None => None,
    };
    let mut claim = None;
    let mut by = None;
    let last = !creds.iter().any(|c| !mine(&c) && c.confirmed_at.is_some());
    if !t.admin_other {
        if !creds.iter().filter(mine).any(|c| c.confirmed_at.is_some()) {
            return Err(missing());
        }
        // The recovery codes hang on the primary factors: removing the
        // last one removes them too, which policy may forbid.
        if last {
            match engine.required_somewhere(&t.user) {
                Ok(None) => {}
                Ok(Some(why)) => {
                    return Err(fail(
                        ErrorKind::PermissionDenied,
                        format!(
                            "{why}; you cannot remove your last factor yourself (an admin can)"
                        ),
                    ))
                }
                Err(e) => {
                    return Err(Failure {
                        kind: ErrorKind::Internal,
                        message:
                            "cannot check the policy (group lookup failed); nothing was changed"
                                .into(),
                        detail: Some(e.to_string()),
                    })
                }
            }
        }
        (claim, by) = authorize(engine, peer, t, "remove_factor", code)?;
    }
    let codes_too = engine.factors.recovery_methods();
    let what = match one {
        Some(id) => Removal::Credential { id, codes_too },
        None => Removal::Method {
            method: method.clone(),
            codes_too,
        },
    };
    let mut ev =
        AuditEvent::new(event::FACTOR_REMOVED, &t.user, &peer.actor()).method(method.as_str());
    if let Some(n) = name {
        ev = ev.with("name", n);
    }
    let change = engine
        .store
        .remove(&t.user, what, claim, engine.now(), Vec::new(), vec![ev])?;
    changed(engine, change, by.as_ref(), missing)?;
    let also = match engine.factors.recovery() {
        Some(r) if last => format!(" and the {}s", r.method().as_str().replace('_', " ")),
        _ => String::new(),
    };
    let what = match name {
        Some(n) => format!("{method} {n:?}"),
        None => method.to_string(),
    };
    Ok(Response::Done {
        message: format!("{what}{also} of {} removed", t.user),
    })
}

fn disable(engine: &Engine, peer: &Peer, user: &str) -> Result<Response, Failure> {
    super::admin::require_admin(peer)?;
    validate::user(user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))?;
    if !engine.store.user_exists(user)? {
        return Err(fail(
            ErrorKind::NotFound,
            format!("no twofold account {user:?}"),
        ));
    }
    let always = vec![AuditEvent::new(event::ADMIN, user, &peer.actor()).with("action", "disable")];
    // One row per factor the account held, as `twofold audit` shows removals.
    let mut methods: Vec<Method> = engine
        .store
        .credentials(user)?
        .into_iter()
        .map(|c| c.method)
        .collect();
    methods.dedup();
    let removed = methods
        .iter()
        .map(|m| AuditEvent::new(event::FACTOR_REMOVED, user, &peer.actor()).method(m.as_str()))
        .collect();
    let change = engine
        .store
        .remove(user, Removal::All, None, engine.now(), always, removed)?;
    changed(engine, change, None, || {
        fail(ErrorKind::NotFound, format!("no twofold account {user:?}"))
    })?;
    // Remembered devices stand on a second factor the account no longer
    // has: a later enrollment must not bring them back.
    let forgotten =
        AuditEvent::new(event::DEVICE_FORGOTTEN, user, &peer.actor()).with("reason", "disable");
    let (_, recs) = engine
        .store
        .forget_devices(user, None, engine.now(), forgotten)?;
    engine.syslog_records(&recs);
    Ok(Response::Done {
        message: format!("all factors of {user} removed"),
    })
}

/// Accounts per page at most (a page also stops before it would not fit).
const USERS_PAGE: u32 = 200;

/// One page of accounts after `after`, and where the next starts if any.
fn list_page(
    engine: &Engine,
    peer: &Peer,
    after: Option<&str>,
) -> Result<(Vec<UserStatus>, Option<String>), Failure> {
    super::admin::require_admin(peer)?;
    let names = engine.store.users(after, USERS_PAGE + 1)?;
    let more = names.len() > USERS_PAGE as usize;
    let mut users = names
        .iter()
        .take(USERS_PAGE as usize)
        .map(|n| status_of(engine, n))
        .collect::<Result<Vec<_>, _>>()?;
    let keep = super::fitting(&users);
    let cut = keep < users.len();
    users.truncate(keep);
    let next = (more || cut)
        .then(|| users.last().map(|u| u.user.clone()))
        .flatten();
    Ok((users, next))
}

fn list(engine: &Engine, peer: &Peer) -> Result<Response, Failure> {
    let (users, next) = list_page(engine, peer, None)?;
    if next.is_some() {
        return Err(super::too_many("accounts"));
    }
    Ok(Response::Users { users })
}

/// What `twofold status` shows of `user`: each factor's report.
pub(crate) fn status_of(engine: &Engine, user: &str) -> Result<UserStatus, StoreError> {
    let now = engine.now();
    let cx = engine.ctx();
    let creds = engine.store.credentials(user)?;
    let mut status = UserStatus {
        user: user.to_owned(),
        factors: Vec::new(),
        backup_codes_left: 0,
        pending_enrollment: false,
        grace_deadline: engine.store.grace_deadline(user)?,
        locked_until: engine.store.user_lock(user, now)?,
        temp_code: match engine
            .store
            .codes_outstanding(user, &Method::TEMP_CODE, now)?
        {
            (0, _) | (_, None) => None,
            (uses_left, Some(expires_at)) => Some(TempCodeInfo {
                uses_left,
                expires_at,
            }),
        },
        credentials: Vec::new(),
    };
    for f in engine.factors.all() {
        let r = f.report(&cx, user, &creds)?;
        status.factors.extend(r.factors);
        status.pending_enrollment |= r.pending;
        status.credentials.extend(r.credentials);
        if f.role() == Role::Recovery {
            status.backup_codes_left += r.codes_left.unwrap_or(0);
        }
    }
    Ok(status)
}
