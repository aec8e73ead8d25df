//! Self-service and admin requests (the `twofold` CLI).
//!
//! Changing or removing a factor in self-service needs a fresh TOTP code in
//! the same request; an admin acting on another account needs none.

use crate::audit::{event, AuditEvent};
use crate::backup;
use crate::engine::{Engine, Verdict, VerifyError};
use crate::keys::{random_bytes, KeyError};
use crate::peer::Peer;
use crate::store::{NewBackupCode, NewTotp, StoreError, TotpRecord};
use crate::totp::{self, TotpParams};
use crate::validate;
use twofold_proto::{
    ErrorKind, FactorStatus, Request, Response, Secret, TotpEnrollment, UserStatus,
};
use zeroize::Zeroizing;

/// A refused request: what the client is told, plus a detail for the log only.
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: Option<String>,
}

pub(crate) fn fail(kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
        detail: None,
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure {
            kind: ErrorKind::Internal,
            message: "internal error (storage); nothing was changed".into(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Failure {
        Failure {
            kind: ErrorKind::Internal,
            message: "internal error; nothing was changed".into(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Failure {
        match e {
            VerifyError::Storage(s) => s.into(),
            VerifyError::Decrypt(d) => Failure {
                kind: ErrorKind::Internal,
                message: "the stored TOTP credential cannot be decrypted; ask an admin".into(),
                detail: Some(d.to_string()),
            },
        }
    }
}

/// Name of an error kind for the log.
pub(crate) fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::NotFound => "not_found",
        ErrorKind::InvalidCode => "invalid_code",
        ErrorKind::Conflict => "conflict",
        ErrorKind::VersionMismatch => "version_mismatch",
        ErrorKind::Internal => "internal",
    }
}

/// Whom a request acts on, and whether an admin acts on someone else.
struct Target {
    user: String,
    admin_other: bool,
}

impl Engine {
    /// Answers one self-service or admin request and logs it.
    pub fn self_service(&self, peer: &Peer, req: Request) -> Response {
        let kind = req.kind();
        let named = match &req {
            Request::TotpEnrollStart { user, .. }
            | Request::TotpEnrollConfirm { user, .. }
            | Request::Status { user }
            | Request::RegenerateBackupCodes { user, .. }
            | Request::RemoveTotp { user, .. } => user.clone().or_else(|| peer.name.clone()),
            Request::AdminDisable { user }
            | Request::AdminUnlock { user }
            | Request::AdminGrace { user, .. } => Some(user.clone()),
            _ => None,
        };
        let result = self.dispatch(peer, req);
        let uid = peer.cred.uid.to_string();
        let user = named.unwrap_or_default();
        match result {
            Ok(resp) => {
                self.log.event(
                    "request",
                    &[
                        ("type", kind),
                        ("peer_uid", &uid),
                        ("user", &user),
                        ("result", "ok"),
                    ],
                );
                resp
            }
            Err(f) => {
                let mut fields = vec![
                    ("type", kind),
                    ("peer_uid", uid.as_str()),
                    ("user", user.as_str()),
                    ("result", kind_name(f.kind)),
                ];
                if let Some(d) = f.detail.as_deref() {
                    fields.push(("error", d));
                }
                self.log.event("request", &fields);
                Response::Failed {
                    kind: f.kind,
                    message: f.message,
                }
            }
        }
    }

    fn dispatch(&self, peer: &Peer, req: Request) -> Result<Response, Failure> {
        match req {
            Request::TotpEnrollStart {
                user,
                algorithm,
                digits,
            } => {
                let t = self.target(peer, user)?;
                self.enroll_start(&t, algorithm, digits)
            }
            Request::TotpEnrollConfirm { user, code } => {
                let t = self.target(peer, user)?;
                self.enroll_confirm(peer, &t, &code)
            }
            Request::Status { user } => {
                let t = self.target(peer, user)?;
                Ok(Response::Status(self.status_of(&t.user)?))
            }
            Request::RegenerateBackupCodes { user, code } => {
                let t = self.target(peer, user)?;
                let resp = self.regenerate(&t, code.as_ref())?;
                self.audit_or_log(&[AuditEvent::new(
                    event::CODES_REGENERATED,
                    &t.user,
                    &peer.actor(),
                )
                .method("backup_code")]);
                Ok(resp)
            }
            Request::RemoveTotp { user, code } => {
                let t = self.target(peer, user)?;
                let resp = self.remove_totp(&t, code.as_ref())?;
                self.audit_or_log(&[AuditEvent::new(
                    event::FACTOR_REMOVED,
                    &t.user,
                    &peer.actor(),
                )
                .method("totp")]);
                Ok(resp)
            }
            Request::AdminDisable { user } => {
                require_admin(peer)?;
                validate::user(&user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))?;
                let exists = self.store().user_exists(&user)?;
                let removed = self.store().remove_factors(&user)?;
                if !exists {
                    return Err(fail(
                        ErrorKind::NotFound,
                        format!("no twofold account {user:?}"),
                    ));
                }
                let mut events =
                    vec![AuditEvent::new(event::ADMIN, &user, &peer.actor())
                        .with("action", "disable")];
                if removed {
                    events.push(
                        AuditEvent::new(event::FACTOR_REMOVED, &user, &peer.actor()).method("totp"),
                    );
                }
                self.audit_or_log(&events);
                Ok(Response::Done {
                    message: format!("all factors of {user} removed"),
                })
            }
            Request::AdminList => {
                require_admin(peer)?;
                let names = self.store().users()?;
                let users = names
                    .iter()
                    .map(|n| self.status_of(n))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Response::Users { users })
            }
            other => self.admin(peer, other),
        }
    }

    fn target(&self, peer: &Peer, user: Option<String>) -> Result<Target, Failure> {
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

    fn enroll_start(
        &self,
        t: &Target,
        algorithm: Option<twofold_proto::Algorithm>,
        digits: Option<u32>,
    ) -> Result<Response, Failure> {
        self.new_pending(&t.user, algorithm, digits)
            .map(Response::TotpPending)
    }

    /// Starts (or restarts) a pending TOTP enrollment of `user`.
    pub(crate) fn new_pending(
        &self,
        user: &str,
        algorithm: Option<twofold_proto::Algorithm>,
        digits: Option<u32>,
    ) -> Result<TotpEnrollment, Failure> {
        let cfg = &self.config.totp;
        let params = TotpParams {
            algorithm: algorithm.unwrap_or(cfg.algorithm),
            digits: digits.unwrap_or(cfg.digits),
            period: cfg.period.0,
        };
        if !(6..=8).contains(&params.digits) {
            return Err(fail(ErrorKind::BadRequest, "digits must be 6, 7 or 8"));
        }
        let mut secret = Zeroizing::new(vec![0u8; totp::secret_len(params.algorithm)]);
        random_bytes(&mut secret)?;
        let id = random_row_id()?;
        let (ciphertext, nonce) = self.keys.seal_totp(user, id, &secret)?;
        let new = NewTotp {
            id,
            ciphertext,
            nonce: nonce.to_vec(),
            params,
        };
        if !self.store().start_pending(user, &new, self.now())? {
            return Err(fail(
                ErrorKind::Conflict,
                format!("{user} already has a confirmed TOTP credential; remove it first"),
            ));
        }
        let b32 = totp::base32_encode(&secret);
        let uri = totp::otpauth_uri(&cfg.issuer, user, &b32, &params);
        Ok(TotpEnrollment {
            user: user.to_owned(),
            secret: Secret::new(b32.to_string()),
            uri: Secret::new(uri.to_string()),
            algorithm: params.algorithm,
            digits: params.digits,
            period: u32::try_from(params.period).unwrap_or(u32::MAX),
            issuer: cfg.issuer.clone(),
        })
    }

    fn enroll_confirm(&self, peer: &Peer, t: &Target, code: &Secret) -> Result<Response, Failure> {
        let codes = self.confirm_pending(&t.user, code)?;
        self.audit_or_log(&[AuditEvent::new(event::ENROLL, &t.user, &peer.actor())
            .method("totp")
            .with("via", "cli")]);
        Ok(Response::BackupCodes { codes })
    }

    /// Confirms the pending enrollment of `user` with `code`; returns the
    /// fresh backup codes.
    pub(crate) fn confirm_pending(
        &self,
        user: &str,
        code: &Secret,
    ) -> Result<Vec<Secret>, Failure> {
        let now = self.now();
        let cred = self.store().totp(user)?;
        let Some(cred) = cred else {
            return Err(fail(
                ErrorKind::NotFound,
                "no pending TOTP enrollment; start one first",
            ));
        };
        if cred.confirmed_at.is_some() {
            return Err(fail(
                ErrorKind::Conflict,
                "the TOTP credential is already confirmed",
            ));
        }
        if now
            > cred
                .created_at
                .saturating_add(self.config.totp.enroll_timeout.0)
        {
            self.store().delete_pending(cred.id)?;
            return Err(fail(
                ErrorKind::NotFound,
                "the pending TOTP enrollment expired; start again",
            ));
        }
        let secret = self
            .keys
            .open_totp(user, cred.id, &cred.nonce, &cred.ciphertext)
            .map_err(VerifyError::from)?;
        let step = totp::matching_step(
            &cred.params,
            &secret,
            now,
            self.config.totp.skew,
            code.expose().trim(),
        );
        let Some(step) = step else {
            return Err(fail(ErrorKind::InvalidCode, "invalid verification code"));
        };
        let (codes, rows) = self.make_backup_codes(user)?;
        if !self.store().confirm_totp(cred.id, step, now, &rows)? {
            return Err(fail(
                ErrorKind::NotFound,
                "no pending TOTP enrollment; start one first",
            ));
        }
        Ok(codes)
    }

    fn regenerate(&self, t: &Target, code: Option<&Secret>) -> Result<Response, Failure> {
        let cred = self.confirmed(&t.user)?;
        if !t.admin_other {
            self.authorize_with_code(&cred, code)?;
        }
        let (codes, rows) = self.make_backup_codes(&t.user)?;
        if !self
            .store()
            .replace_backup_codes(&t.user, &rows, self.now())?
        {
            return Err(fail(
                ErrorKind::NotFound,
                format!("{} has no confirmed TOTP credential", t.user),
            ));
        }
        Ok(Response::BackupCodes { codes })
    }

    fn remove_totp(&self, t: &Target, code: Option<&Secret>) -> Result<Response, Failure> {
        if !t.admin_other {
            let cred = self.confirmed(&t.user)?;
            // TOTP is the factor the backup codes hang on: removing it removes the last one.
            match self.required_somewhere(&t.user) {
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
            self.authorize_with_code(&cred, code)?;
        }
        if !self.store().remove_factors(&t.user)? {
            return Err(fail(
                ErrorKind::NotFound,
                format!("{} has no TOTP credential", t.user),
            ));
        }
        Ok(Response::Done {
            message: format!("TOTP and backup codes of {} removed", t.user),
        })
    }

    fn confirmed(&self, user: &str) -> Result<TotpRecord, Failure> {
        self.store()
            .totp(user)?
            .filter(|c| c.confirmed_at.is_some())
            .ok_or_else(|| {
                fail(
                    ErrorKind::NotFound,
                    format!("{user} has no confirmed TOTP credential"),
                )
            })
    }

    /// A fresh code authorizes the change and is used up like a login's.
    fn authorize_with_code(&self, cred: &TotpRecord, code: Option<&Secret>) -> Result<(), Failure> {
        let Some(code) = code else {
            return Err(fail(
                ErrorKind::BadRequest,
                "a current TOTP code is required",
            ));
        };
        if code.len() > backup::MAX_ANSWER {
            return Err(fail(ErrorKind::InvalidCode, "invalid verification code"));
        }
        match self.verify_totp(cred, code.expose().trim(), None)? {
            Verdict::Accepted(_) => Ok(()),
            Verdict::Rejected(_) => Err(fail(ErrorKind::InvalidCode, "invalid verification code")),
        }
    }

    fn make_backup_codes(&self, user: &str) -> Result<(Vec<Secret>, Vec<NewBackupCode>), Failure> {
        let n = self.config.backup_codes.count as usize;
        let mut shown = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let c = backup::generate()?;
            rows.push(NewBackupCode {
                lookup: self.keys.backup_lookup(user, &c.normalized),
                hash: backup::hash(&c.normalized)?,
            });
            shown.push(c.display);
        }
        Ok((shown, rows))
    }

    pub(crate) fn status_of(&self, user: &str) -> Result<UserStatus, StoreError> {
        let now = self.now();
        let store = self.store();
        let cred = store.totp(user)?;
        let left = store.unused_backup_codes(user)?;
        let mut factors = Vec::new();
        let mut pending = false;
        if let Some(c) = cred {
            match c.confirmed_at {
                Some(at) => factors.push(FactorStatus {
                    method: "totp".into(),
                    enrolled_at: at,
                    last_used: c.last_used,
                }),
                None => {
                    pending = now
                        <= c.created_at
                            .saturating_add(self.config.totp.enroll_timeout.0)
                }
            }
        }
        let grace_deadline = store.grace_deadline(user)?;
        let locked_until = store.user_lock(user, now)?;
        Ok(UserStatus {
            user: user.to_owned(),
            factors,
            backup_codes_left: left,
            pending_enrollment: pending,
            grace_deadline,
            locked_until,
        })
    }
}

pub(crate) fn require_admin(peer: &Peer) -> Result<(), Failure> {
    if peer.admin {
        Ok(())
    } else {
        Err(fail(
            ErrorKind::PermissionDenied,
            "admin requests need root or the admin group",
        ))
    }
}

/// A random positive row id: it is sealed into the ciphertext, so it must be
/// known before the row is written and never reused.
fn random_row_id() -> Result<i64, KeyError> {
    let mut b = [0u8; 8];
    random_bytes(&mut b)?;
    Ok((i64::from_be_bytes(b) & i64::MAX).max(1))
}
