//! Codes sent by mail to a confirmed address. A person types `email` at
//! the prompt; the daemon sends a 6-digit code bound to that login
//! (`send.rs`), and the code opens only that login, once, within
//! `[email] code_lifetime` and `code_tries`. The address counts once a
//! code sent to it is typed back (enrollment).

pub mod send;

use super::{
    random_row_id, Confirmation, Ctx, Enroll, EnrollOptions, Factor, Found, Pending, Report, Sent,
    VerifyError, Who,
};
use crate::audit::AuditEvent;
use crate::failure::{fail, Failure};
use crate::store::{Claim, Credential, NewCredential, Snapshot, StoreError};
use send::{mask, send_code, Outcome};
use twofold_proto::{ErrorKind, FactorStatus, Method, Response, Secret};

/// What a code is bound to at login.
fn login_bound(login: &str) -> String {
    format!("login:{login}")
}

/// What a code is bound to at enrollment: the pending credential.
fn enroll_bound(id: i64) -> String {
    format!("enroll:{id}")
}

/// The confirmed address of `creds`, if any.
fn confirmed(creds: &[Credential]) -> Option<&Credential> {
    creds
        .iter()
        .find(|c| c.method == Method::EMAIL && c.confirmed_at.is_some())
}

/// Shown when a code could not be sent.
pub const NOT_SENT: &str = "Could not send the code; use another method.";

/// Shown when a send limit refuses a code.
pub const TOO_MANY: &str = "No more codes can be sent now; use another method or try later.";

/// Whether `typed` has the shape of a sent code.
fn shaped(typed: &str) -> bool {
    typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit())
}

/// Email codes.
#[derive(Debug)]
pub struct Email;

impl Email {
    /// Looks `typed` up among the codes bound to `bound`.
    fn find(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        bound: &str,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let lookup = send::lookup(cx, &Method::EMAIL, who.user, bound, typed);
        let now = cx.now();
        let (lock, row) = cx
            .store
            .find_code(who.user, who.source, &Method::EMAIL, &lookup, now)?;
        if let Some(l) = lock {
            return Ok(Some(Found::Locked(l)));
        }
        let Some(row) = row else {
            return Ok(None);
        };
        if row.used_at.is_some() {
            return Ok(Some(Found::Rejected("code already used")));
        }
        if row.expires_at.is_none_or(|t| now >= t) {
            return Ok(Some(Found::Rejected("code expired")));
        }
        Ok(Some(Found::Claim(Claim::Code {
            id: row.id,
            method: Method::EMAIL,
        })))
    }
}

impl Factor for Email {
    fn method(&self) -> Method {
        Method::EMAIL
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        confirmed(&snap.credentials).is_some()
    }

    fn check(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        // Codes exist only for a login that asked: outside one (a
        // request's authorization) none can match.
        if who.login.is_empty() || !shaped(typed) || confirmed(&snap.credentials).is_none() {
            return Ok(None);
        }
        self.find(cx, who, &login_bound(who.login), typed)
    }

    fn report(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        creds: &[Credential],
    ) -> Result<Report, StoreError> {
        let mut r = Report::default();
        for c in creds.iter().filter(|c| c.method == Method::EMAIL) {
            match c.confirmed_at {
                Some(at) => r.factors.push(FactorStatus {
                    method: Method::EMAIL,
                    enrolled_at: at,
                    last_used: c.last_used,
                    destination: Some(mask(&c.params)),
                }),
                None => r.pending = true,
            }
        }
        Ok(r)
    }

    fn enrollment(&self) -> Option<&dyn Enroll> {
        Some(self)
    }

    fn keyword(&self) -> Option<&'static str> {
        Some("email")
    }

    fn send(&self, cx: &Ctx<'_>, who: &Who<'_>, audit: &AuditEvent) -> Sent {
        let creds = match cx.store.credentials(who.user) {
            Ok(c) => c,
            Err(e) => {
                return Sent {
                    told: NOT_SENT.into(),
                    sent: false,
                    records: fail_rows(cx, audit, &e.to_string()),
                }
            }
        };
        let Some(c) = confirmed(&creds) else {
            return Sent {
                told: NOT_SENT.into(),
                sent: false,
                records: Vec::new(),
            };
        };
        let minutes = cx.config.email.code_lifetime.0.div_ceil(60);
        match send_code(
            cx,
            &Method::EMAIL,
            who.user,
            &c.params,
            &login_bound(who.login),
            audit,
        ) {
            Ok(Outcome::Sent(records)) => Sent {
                told: format!(
                    "Code sent to {} (valid {minutes} minutes).",
                    mask(&c.params)
                ),
                sent: true,
                records,
            },
            Ok(Outcome::Limited(_, records)) => Sent {
                told: TOO_MANY.into(),
                sent: false,
                records,
            },
            Ok(Outcome::Failed(_, records)) => Sent {
                told: NOT_SENT.into(),
                sent: false,
                records,
            },
            Err(e) => Sent {
                told: NOT_SENT.into(),
                sent: false,
                records: fail_rows(cx, audit, &e.to_string()),
            },
        }
    }

    fn missed(&self, cx: &Ctx<'_>, who: &Who<'_>) {
        if let Some(s) = cx.store.sends() {
            // A failure to count is no reason to refuse the login more:
            // the code's lifetime still bounds it.
            let _ = s.sent_code_missed(
                who.user,
                &Method::EMAIL,
                &login_bound(who.login),
                cx.config.email.code_tries,
                cx.now(),
            );
        }
    }
}

/// Audits a send that storage failed before it started.
fn fail_rows(cx: &Ctx<'_>, audit: &AuditEvent, why: &str) -> Vec<twofold_proto::AuditRecord> {
    let ev = audit
        .renamed(send::events::CODE_SEND_FAILED)
        .method(Method::EMAIL.as_str())
        .with("error", &why.replace(' ', "_"));
    cx.store
        .append_audit(cx.now(), vec![ev], crate::store::Durability::Durable)
        .unwrap_or_default()
}

impl Enroll for Email {
    fn start(&self, cx: &Ctx<'_>, user: &str, options: &EnrollOptions) -> Result<Pending, Failure> {
        if !cx.config.email.enabled() {
            return Err(fail(
                ErrorKind::Internal,
                "email codes are not set up on this host ([email] host)",
            ));
        }
        let Some(address) = options.address.as_deref() else {
            return Err(fail(
                ErrorKind::BadRequest,
                "an address is required (--address)",
            ));
        };
        if !twofold_config::email::valid_address(address) {
            return Err(fail(
                ErrorKind::BadRequest,
                "not an address such as a@example.org",
            ));
        }
        let id = random_row_id()?;
        let new = NewCredential {
            id,
            method: Method::EMAIL,
            label: String::new(),
            sealed: Vec::new(),
            nonce: Vec::new(),
            params: address.to_owned(),
            single: true,
        };
        if !cx.store.start_pending(user, new, cx.now())? {
            return Err(fail(
                ErrorKind::Conflict,
                "an address is confirmed already; remove it first (twofold remove email)",
            ));
        }
        let base = AuditEvent::new("", user, "twofoldd");
        let minutes = cx.config.email.code_lifetime.0.div_ceil(60);
        let outcome = send_code(cx, &Method::EMAIL, user, address, &enroll_bound(id), &base)?;
        match outcome {
            Outcome::Sent(_) => {
                let text = format!(
                    "Code sent to {} (valid {minutes} minutes); confirm with: twofold enroll email (it asks for the code)",
                    mask(address)
                );
                Ok(Pending {
                    response: Response::Done {
                        message: text.clone(),
                    },
                    qr: None,
                    lines: vec![Secret::new(text)],
                })
            }
            Outcome::Limited(..) => Err(fail(ErrorKind::Internal, TOO_MANY)),
            Outcome::Failed(why, _) => Err(fail(
                ErrorKind::Internal,
                format!("could not send the code to {}: {why}", mask(address)),
            )),
        }
    }

    fn confirm(&self, cx: &Ctx<'_>, user: &str, answer: &Secret) -> Result<Confirmation, Failure> {
        let creds = cx.store.credentials(user)?;
        let Some(pending) = creds
            .iter()
            .find(|c| c.method == Method::EMAIL && c.confirmed_at.is_none())
        else {
            return Err(fail(
                ErrorKind::NotFound,
                "no pending email enrollment; start one first",
            ));
        };
        let typed = answer.expose().trim();
        let who = Who {
            user,
            source: "",
            login: "",
        };
        let bound = enroll_bound(pending.id);
        let found = if shaped(typed) {
            self.find(cx, &who, &bound, typed)
                .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?
        } else {
            None
        };
        match found {
            Some(Found::Claim(_)) => Ok(Confirmation {
                id: pending.id,
                counter: None,
            }),
            Some(Found::Locked(l)) => Err(fail(
                ErrorKind::PermissionDenied,
                crate::login::locked_message(l.until, cx.now()),
            )),
            _ => {
                if let Some(s) = cx.store.sends() {
                    s.sent_code_missed(
                        user,
                        &Method::EMAIL,
                        &bound,
                        cx.config.email.code_tries,
                        cx.now(),
                    )?;
                }
                Err(fail(ErrorKind::InvalidCode, "invalid verification code"))
            }
        }
    }

    fn issues_recovery(&self) -> bool {
        false
    }

    fn start_needs_authorization(&self) -> bool {
        true
    }
}
