//! Codes sent to a confirmed destination: by mail (`email`) or by text
//! message (`sms`). A person types the keyword at the prompt; the daemon
//! sends a 6-digit code bound to that login (`send.rs`), and the code opens
//! only that login, once, within the channel's `code_lifetime` and
//! `code_tries`. The address or number counts once a code sent to it is
//! typed back (enrollment).

pub mod send;

use super::{
    random_row_id, ConfirmSent, Confirmation, Ctx, Enroll, EnrollOptions, Factor, Found, Pending,
    PendingSent, Replacement, Report, Sent, VerifyError, Who,
};
use crate::audit::AuditEvent;
use crate::failure::{fail, Failure};
use crate::store::{Claim, Credential, NewCredential, Snapshot, StoreError};
use send::{send_code, Outcome};
use twofold_proto::{ErrorKind, FactorStatus, Method, Response, Secret};

/// What a code is bound to at login.
fn login_bound(login: &str) -> String {
    format!("{}{login}", crate::store::LOGIN_BOUND)
}

/// What a code is bound to at enrollment: the pending credential.
fn enroll_bound(id: i64) -> String {
    format!("enroll:{id}")
}

/// The confirmed destination of `method` in `creds`, if any.
fn confirmed<'c>(creds: &'c [Credential], method: &Method) -> Option<&'c Credential> {
    creds
        .iter()
        .find(|c| c.method == *method && c.confirmed_at.is_some())
}

/// Shown when a code could not be sent.
pub const NOT_SENT: &str = "Could not send the code; use another method.";

/// Shown when a send limit refuses a code.
pub const TOO_MANY: &str = "No more codes can be sent now; use another method or try later.";

/// Whether `typed` has the shape of a sent code.
fn shaped(typed: &str) -> bool {
    typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit())
}

/// Codes sent to a confirmed destination: email (`SentCodes::email()`) or
/// SMS (`SentCodes::sms()`), the same machinery with another channel.
#[derive(Debug, Clone)]
pub struct SentCodes {
    method: Method,
    keyword: &'static str,
}

impl SentCodes {
    /// Codes sent by mail.
    pub fn email() -> SentCodes {
        SentCodes {
            method: Method::EMAIL,
            keyword: "email",
        }
    }

    /// Codes sent by text message.
    pub fn sms() -> SentCodes {
        SentCodes {
            method: Method::SMS,
            keyword: "sms",
        }
    }

    fn settings(&self, cx: &Ctx<'_>) -> send::Settings {
        send::settings(cx.config, &self.method)
    }

    fn mask(&self, destination: &str) -> String {
        send::mask_for(&self.method, destination)
    }

    /// Looks `typed` up among the codes bound to `bound`.
    fn find(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        bound: &str,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let lookup = send::lookup(cx, &self.method, who.user, bound, typed);
        let now = cx.now();
        let (lock, row) = cx
            .store
            .find_code(who.user, who.source, &self.method, &lookup, now)?;
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
            method: self.method.clone(),
        })))
    }
}

impl Factor for SentCodes {
    fn method(&self) -> Method {
        self.method.clone()
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        confirmed(&snap.credentials, &self.method).is_some()
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
        if who.login.is_empty()
            || !shaped(typed)
            || confirmed(&snap.credentials, &self.method).is_none()
        {
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
        for c in creds.iter().filter(|c| c.method == self.method) {
            match c.confirmed_at {
                Some(at) => r.factors.push(FactorStatus {
                    method: self.method.clone(),
                    enrolled_at: at,
                    last_used: c.last_used,
                    destination: Some(self.mask(&c.params)),
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
        Some(self.keyword)
    }

    fn send(&self, cx: &Ctx<'_>, who: &Who<'_>, audit: &AuditEvent) -> Sent {
        let creds = match cx.store.credentials(who.user) {
            Ok(c) => c,
            Err(e) => {
                return Sent {
                    told: NOT_SENT.into(),
                    sent: false,
                    records: fail_rows(cx, &self.method, audit, &e.to_string()),
                }
            }
        };
        let Some(c) = confirmed(&creds, &self.method) else {
            return Sent {
                told: NOT_SENT.into(),
                sent: false,
                records: Vec::new(),
            };
        };
        let minutes = self.settings(cx).code_lifetime.div_ceil(60);
        match send_code(
            cx,
            &self.method,
            who.user,
            &c.params,
            &login_bound(who.login),
            audit,
        ) {
            Ok(Outcome::Sent(records)) => Sent {
                told: format!(
                    "Code sent to {} (valid {minutes} minutes).",
                    self.mask(&c.params)
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
                records: fail_rows(cx, &self.method, audit, &e.to_string()),
            },
        }
    }

    fn missed(&self, cx: &Ctx<'_>, who: &Who<'_>) {
        if let Some(s) = cx.store.sends() {
            // A failure to count is no reason to refuse the login more:
            // the code's lifetime still bounds it.
            let _ = s.sent_code_missed(
                who.user,
                &self.method,
                &login_bound(who.login),
                self.settings(cx).code_tries,
                cx.now(),
            );
        }
    }
}

/// Audits a send that storage failed before it started.
fn fail_rows(
    cx: &Ctx<'_>,
    method: &Method,
    audit: &AuditEvent,
    why: &str,
) -> Vec<twofold_proto::AuditRecord> {
    let ev = audit
        .renamed(send::events::CODE_SEND_FAILED)
        .method(method.as_str())
        .with("error", &why.replace(' ', "_"));
    cx.store
        .append_audit(cx.now(), vec![ev], crate::store::Durability::Durable)
        .unwrap_or_default()
}

impl Enroll for SentCodes {
    fn start(&self, cx: &Ctx<'_>, user: &str, options: &EnrollOptions) -> Result<Pending, Failure> {
        let sms = self.method == Method::SMS;
        if !self.settings(cx).enabled {
            return Err(fail(
                ErrorKind::Internal,
                if sms {
                    "SMS codes are not set up on this host ([sms] provider)"
                } else {
                    "email codes are not set up on this host ([email] host)"
                },
            ));
        }
        let Some(address) = options.address.as_deref() else {
            return Err(fail(
                ErrorKind::BadRequest,
                if sms {
                    "a number is required (--phone)"
                } else {
                    "an address is required (--address)"
                },
            ));
        };
        if sms && !twofold_config::sms::valid_phone(address) {
            return Err(fail(
                ErrorKind::BadRequest,
                "not an E.164 number such as +14155550100 (+ then 8 to 15 digits)",
            ));
        }
        if !sms && !twofold_config::email::valid_address(address) {
            return Err(fail(
                ErrorKind::BadRequest,
                "not an address such as a@example.org",
            ));
        }
        // Beside a confirmed destination this is a change in one step:
        // the new one waits beside it (the old keeps working) until its
        // code is typed back; the caller has checked a current code.
        let creds = cx.store.credentials(user)?;
        let current = confirmed(&creds, &self.method);
        if current.is_some_and(|c| c.params == address) {
            return Err(fail(
                ErrorKind::Conflict,
                format!("{} is confirmed already", self.mask(address)),
            ));
        }
        if current.is_some() {
            for c in creds
                .iter()
                .filter(|c| c.method == self.method && c.confirmed_at.is_none())
            {
                cx.store.delete_pending(c.id)?;
            }
        }
        let id = random_row_id()?;
        let new = NewCredential {
            id,
            method: self.method.clone(),
            label: String::new(),
            sealed: Vec::new(),
            nonce: Vec::new(),
            params: address.to_owned(),
            single: current.is_none(),
        };
        if !cx.store.start_pending(user, new, cx.now())? {
            // A destination was confirmed meanwhile: start again.
            return Err(fail(
                ErrorKind::Conflict,
                format!(
                    "a {} destination was confirmed meanwhile; run the command again",
                    self.keyword
                ),
            ));
        }
        let base = AuditEvent::new("", user, "twofoldd");
        let minutes = self.settings(cx).code_lifetime.div_ceil(60);
        let outcome = send_code(cx, &self.method, user, address, &enroll_bound(id), &base)?;
        match outcome {
            Outcome::Sent(_) => {
                let mut text = format!(
                    "Code sent to {} (valid {minutes} minutes); confirm with: twofold enroll {} (it asks for the code)",
                    self.mask(address),
                    self.keyword
                );
                if let Some(c) = current {
                    text.push_str(&format!(
                        "; codes go to {} until then",
                        self.mask(&c.params)
                    ));
                }
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
                format!("could not send the code to {}: {why}", self.mask(address)),
            )),
        }
    }

    fn confirm(&self, cx: &Ctx<'_>, user: &str, answer: &Secret) -> Result<Confirmation, Failure> {
        let who = Who {
            user,
            source: "",
            login: "",
        };
        let Some(pending) = self.pending_row(cx, user)? else {
            return Err(fail(
                ErrorKind::NotFound,
                format!("no pending {} enrollment; start one first", self.keyword),
            ));
        };
        let found = self
            .confirm_found(cx, &who, pending, answer)
            .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
        match found {
            Found::Claim(_) => Ok(Confirmation {
                id: pending,
                counter: None,
            }),
            Found::Locked(l) => Err(fail(
                ErrorKind::PermissionDenied,
                crate::login::locked_message(l.until, cx.now()),
            )),
            Found::Rejected(_) => Err(fail(ErrorKind::InvalidCode, "invalid verification code")),
        }
    }

    fn issues_recovery(&self) -> bool {
        false
    }

    fn start_needs_authorization(&self) -> bool {
        true
    }

    fn replaces(
        &self,
        cx: &Ctx<'_>,
        user: &str,
        id: i64,
    ) -> Result<Option<Replacement>, StoreError> {
        let creds = cx.store.credentials(user)?;
        let Some(new) = creds.iter().find(|c| c.id == id) else {
            return Ok(None);
        };
        Ok(confirmed(&creds, &self.method).map(|old| Replacement {
            old: old.id,
            details: vec![
                ("from", self.mask(&old.params)),
                ("to", self.mask(&new.params)),
            ],
        }))
    }

    fn sent(&self) -> Option<&dyn ConfirmSent> {
        Some(self)
    }
}

impl SentCodes {
    /// The row of `user`'s pending destination of this channel (the
    /// newest, should two starts have raced).
    fn pending_row(&self, cx: &Ctx<'_>, user: &str) -> Result<Option<i64>, StoreError> {
        Ok(cx
            .store
            .credentials(user)?
            .iter()
            .filter(|c| c.method == self.method && c.confirmed_at.is_none())
            .max_by_key(|c| c.created_at)
            .map(|c| c.id))
    }

    /// Checks `answer` against the codes sent for pending credential `id`;
    /// a refusal counts a try of each of them (a code of any other
    /// purpose — a login's, another enrollment's — never matches).
    fn confirm_found(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        id: i64,
        answer: &Secret,
    ) -> Result<Found, VerifyError> {
        let typed = answer.expose().trim();
        let bound = enroll_bound(id);
        let found = if shaped(typed) {
            self.find(cx, who, &bound, typed)?
        } else {
            None
        };
        match found {
            Some(f @ (Found::Claim(_) | Found::Locked(_))) => Ok(f),
            other => {
                if let Some(s) = cx.store.sends() {
                    s.sent_code_missed(
                        who.user,
                        &self.method,
                        &bound,
                        self.settings(cx).code_tries,
                        cx.now(),
                    )?;
                }
                Ok(match other {
                    Some(Found::Rejected(why)) => Found::Rejected(why),
                    _ => Found::Rejected("wrong code"),
                })
            }
        }
    }
}

impl ConfirmSent for SentCodes {
    fn pending(&self, cx: &Ctx<'_>, user: &str) -> Result<Option<PendingSent>, StoreError> {
        // A channel switched off since cannot send the fresh code a login
        // may need: the login offers what it can set up instead.
        if !self.settings(cx).enabled {
            return Ok(None);
        }
        let creds = cx.store.credentials(user)?;
        // A change (beside a confirmed destination) is never confirmed in
        // a login: the person has a factor, so no grace login runs.
        if confirmed(&creds, &self.method).is_some() {
            return Ok(None);
        }
        Ok(creds
            .iter()
            .filter(|c| c.method == self.method && c.confirmed_at.is_none())
            .max_by_key(|c| c.created_at)
            .map(|c| PendingSent {
                id: c.id,
                masked: self.mask(&c.params),
                keyword: self.keyword,
            }))
    }

    fn send_pending(&self, cx: &Ctx<'_>, who: &Who<'_>, id: i64, audit: &AuditEvent) -> Sent {
        let not_sent = |records| Sent {
            told: NOT_SENT.into(),
            sent: false,
            records,
        };
        let creds = match cx.store.credentials(who.user) {
            Ok(c) => c,
            Err(e) => return not_sent(fail_rows(cx, &self.method, audit, &e.to_string())),
        };
        let Some(c) = creds
            .iter()
            .find(|c| c.id == id && c.confirmed_at.is_none())
        else {
            return not_sent(Vec::new());
        };
        let minutes = self.settings(cx).code_lifetime.div_ceil(60);
        match send_code(
            cx,
            &self.method,
            who.user,
            &c.params,
            &enroll_bound(id),
            audit,
        ) {
            Ok(Outcome::Sent(records)) => Sent {
                told: format!(
                    "Code sent to {} (valid {minutes} minutes).",
                    self.mask(&c.params)
                ),
                sent: true,
                records,
            },
            Ok(Outcome::Limited(_, records)) => Sent {
                told: TOO_MANY.into(),
                sent: false,
                records,
            },
            Ok(Outcome::Failed(_, records)) => not_sent(records),
            Err(e) => not_sent(fail_rows(cx, &self.method, audit, &e.to_string())),
        }
    }

    fn confirm_pending(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        id: i64,
        answer: &Secret,
    ) -> Result<Found, VerifyError> {
        self.confirm_found(cx, who, id, answer)
    }
}
