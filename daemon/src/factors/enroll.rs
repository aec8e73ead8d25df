//! Confirming an enrollment through the seam: the factor checks the fresh
//! answer; the confirmation, a fresh set of recovery codes, the enrollment
//! token that allowed it (if any) and the audit row are stored in one
//! transaction. Enrollment tokens are made and checked here too: one-time
//! codes an admin issues so that only the account's owner can enroll
//! inside a login (`enroll_at_login = "token"`).

use super::backup::codes;
use super::{Confirmation, Ctx, Enroll, Found, Registry, VerifyError, Who};
use crate::audit::{event, AuditEvent};
use crate::failure::{fail, Failure};
use crate::store::{Change, Claim, NewCode};
use std::sync::atomic::Ordering;
use twofold_proto::{AuditRecord, ErrorKind, Method, Secret};

/// The codes table's name for enrollment tokens.
pub const TOKEN: Method = Method::named("enroll_token");

/// Makes a one-time enrollment token for `user`, valid until `expires_at`:
/// what to show once, and the row to store (argon2id, keyed lookup).
pub fn make_token(cx: &Ctx<'_>, user: &str, expires_at: u64) -> Result<(Secret, NewCode), Failure> {
    let c = codes::generate()?;
    let row = NewCode {
        lookup: cx.keys.code_lookup(&TOKEN, user, &c.normalized),
        hash: codes::hash(&c.normalized)?,
        expires_at: Some(expires_at),
    };
    Ok((c.display, row))
}

/// Checks a typed enrollment token of `who`: a claim to spend with the
/// enrollment, or why not (one argon2 verification at most, none when a
/// lock is in force or no token has that lookup).
pub fn check_token(cx: &Ctx<'_>, who: &Who<'_>, typed: &str) -> Result<Found, VerifyError> {
    let Some(normalized) = codes::normalize(typed) else {
        return Ok(Found::Rejected("not a token"));
    };
    let lookup = cx.keys.code_lookup(&TOKEN, who.user, &normalized);
    let now = cx.now();
    let (lock, row) = cx
        .store
        .find_code(who.user, who.source, &TOKEN, &lookup, now)?;
    if let Some(l) = lock {
        return Ok(Found::Locked(l));
    }
    let Some(row) = row else {
        return Ok(Found::Rejected("wrong token"));
    };
    if row.used_at.is_some() {
        return Ok(Found::Rejected("token already used"));
    }
    if row.expires_at.is_some_and(|t| now >= t) {
        return Ok(Found::Rejected("token expired"));
    }
    cx.argon2_runs.fetch_add(1, Ordering::SeqCst);
    if !codes::verify(&normalized, &row.hash) {
        return Ok(Found::Rejected("wrong token"));
    }
    Ok(Found::Claim(Claim::Code {
        id: row.id,
        method: TOKEN,
    }))
}

/// What a confirmed enrollment hands back.
#[derive(Debug)]
pub struct Confirmed {
    /// What to say above the recovery codes.
    pub heading: &'static str,
    /// Recovery codes, shown once.
    pub codes: Vec<Secret>,
    /// The audit rows written (for syslog).
    pub records: Vec<AuditRecord>,
    /// Whether it replaced a confirmed destination (a change).
    pub replaced: bool,
}

/// Confirms `user`'s pending enrollment in `enroll` with `answer`, issuing
/// the registry's recovery codes, and records `enrolled` with it.
pub fn confirm(
    cx: &Ctx<'_>,
    registry: &Registry,
    enroll: &dyn Enroll,
    user: &str,
    answer: &Secret,
    authorize: Option<Claim>,
    enrolled: AuditEvent,
) -> Result<Confirmed, Failure> {
    let c = enroll.confirm(cx, user, answer)?;
    store_confirmation(cx, registry, enroll, user, c, authorize, enrolled)
}

/// Stores confirmation `c` of `user`'s pending enrollment in `enroll` (its
/// answer already checked), issuing the registry's recovery codes, with
/// `enrolled` — or, when it replaces a confirmed credential (a destination
/// changed in one step), drops that one in the same transaction and
/// records the change instead (told by mail to the old address and the
/// new).
pub fn store_confirmation(
    cx: &Ctx<'_>,
    registry: &Registry,
    enroll: &dyn Enroll,
    user: &str,
    c: Confirmation,
    authorize: Option<Claim>,
    enrolled: AuditEvent,
) -> Result<Confirmed, Failure> {
    if let Some(r) = enroll.replaces(cx, user, c.id)? {
        let Some(sends) = cx.store.sends() else {
            return Err(fail(
                ErrorKind::Internal,
                "this store cannot change a destination",
            ));
        };
        let mut ev = enrolled.renamed(event::DESTINATION_CHANGED);
        for (k, v) in &r.details {
            ev = ev.with(k, v);
        }
        return match sends.confirm_replacing(c.id, r.old, authorize, cx.now(), vec![ev])? {
            Change::Done(records) => Ok(Confirmed {
                heading: "",
                codes: Vec::new(),
                records,
                replaced: true,
            }),
            Change::Lost => Err(fail(
                ErrorKind::InvalidCode,
                "the enrollment token was used meanwhile",
            )),
            Change::Nothing => Err(fail(
                ErrorKind::NotFound,
                "no pending enrollment; start one first",
            )),
        };
    }
    let mut codes = Vec::new();
    let mut heading = "";
    let mut rows = None;
    if let Some(r) = registry.recovery().filter(|_| enroll.issues_recovery()) {
        if let Some(issued) = r.issue(cx, user)? {
            heading = issued.heading;
            codes = issued.shown;
            rows = Some((r.method(), issued.rows));
        }
    }
    match cx
        .store
        .confirm(c.id, c.counter, rows, authorize, cx.now(), vec![enrolled])?
    {
        Change::Done(records) => Ok(Confirmed {
            heading,
            codes,
            records,
            replaced: false,
        }),
        Change::Lost => Err(fail(
            ErrorKind::InvalidCode,
            "the enrollment token was used meanwhile",
        )),
        Change::Nothing => Err(fail(
            ErrorKind::NotFound,
            "no pending enrollment; start one first",
        )),
    }
}
