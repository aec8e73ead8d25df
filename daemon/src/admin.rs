//! Admin requests about locks, grace deadlines, the audit trail and
//! figures. Everything here that reveals other users needs an admin; the
//! audit query alone is open to users for their own rows.

use crate::audit::{event, AuditEvent, ChainCheck};
use crate::engine::Engine;
use crate::peer::Peer;
use crate::selfservice::{fail, require_admin, Failure};
use crate::store::AuditFilter;
use crate::syslog::utc_minutes;
use crate::validate;
use std::collections::BTreeMap;
use twofold_proto::{
    AuditReport, BackupLow, ErrorKind, GraceInfo, MethodCount, Request, Response, StatsReport,
    TimeRef,
};

/// Rows per audit page at most; a page also stops before this many bytes.
const PAGE_ROWS: u32 = 500;
const PAGE_BYTES: usize = 48 * 1024;
/// Locks listed at most.
const MAX_LOCKS: u32 = 500;
/// Backup codes below which `twofold stats` lists a user.
const LOW_BACKUP: u32 = 3;
/// Users listed at most in each list of `twofold stats`.
const MAX_LISTED: usize = 300;

impl Engine {
    /// Answers the requests of this module.
    pub(crate) fn admin(&self, peer: &Peer, req: Request) -> Result<Response, Failure> {
        match req {
            Request::AdminUnlock { user } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let ev = AuditEvent::new(event::UNLOCK, &user, &peer.actor());
                let (n, recs) = self.store().unlock(&user, self.now(), ev)?;
                self.syslog_records(&recs);
                Ok(Response::Done {
                    message: match n {
                        0 => format!("{user} was not locked; failure counts cleared"),
                        1 => format!("1 lock of {user} cleared"),
                        n => format!("{n} locks of {user} cleared"),
                    },
                })
            }
            Request::AdminLocks => {
                require_admin(peer)?;
                let locks = self.store().locks(self.now(), MAX_LOCKS)?;
                Ok(Response::Locks { locks })
            }
            Request::AdminGrace {
                user,
                extend,
                reset,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                self.grace(peer, &user, extend, reset)
            }
            Request::AuditQuery {
                user,
                event,
                service,
                since,
                until,
                after_id,
                limit,
            } => {
                let user = match user {
                    Some(u) if peer.admin || peer.is_self(&u) => Some(u),
                    Some(_) => {
                        return Err(fail(
                            ErrorKind::PermissionDenied,
                            "only admins may read other users' audit rows",
                        ))
                    }
                    None if peer.admin => None,
                    None => Some(peer.name.clone().ok_or_else(|| {
                        fail(ErrorKind::PermissionDenied, "your uid has no account name")
                    })?),
                };
                let now = self.now();
                let at = |t: TimeRef| match t {
                    TimeRef::Ago(s) => now.saturating_sub(s),
                    TimeRef::At(t) => t,
                };
                let filter = AuditFilter {
                    user,
                    event,
                    service,
                    since: since.map(at),
                    until: until.map(at),
                    after_id: after_id.unwrap_or(0),
                };
                let want = limit.unwrap_or(PAGE_ROWS).clamp(1, PAGE_ROWS);
                let mut rows = self.store().audit_rows(&filter, want + 1)?;
                let mut more = rows.len() > want as usize;
                rows.truncate(want as usize);
                // Keep the answer inside one frame.
                let mut size = 0;
                let mut keep = rows.len();
                for (i, r) in rows.iter().enumerate() {
                    size += serde_json::to_vec(r).map(|v| v.len()).unwrap_or(PAGE_BYTES);
                    if size > PAGE_BYTES {
                        keep = i;
                        more = true;
                        break;
                    }
                }
                rows.truncate(keep);
                Ok(Response::AuditRecords {
                    records: rows,
                    more,
                })
            }
            Request::AuditVerify => {
                require_admin(peer)?;
                Ok(Response::AuditVerified(self.verify_audit()?))
            }
            Request::Stats => {
                require_admin(peer)?;
                self.stats_report().map(Response::StatsReport)
            }
            other => Err(fail(
                ErrorKind::BadRequest,
                format!("{} is not valid here", other.kind()),
            )),
        }
    }

    fn grace(
        &self,
        peer: &Peer,
        user: &str,
        extend: Option<u64>,
        reset: bool,
    ) -> Result<Response, Failure> {
        let now = self.now();
        let ev = AuditEvent::new(event::ADMIN, user, &peer.actor());
        let (deadline, ev, message) = match (extend, reset) {
            (Some(secs), false) => {
                let current = self.store().grace_deadline(user)?;
                let from = current.unwrap_or(now).max(now);
                let d = from.saturating_add(secs);
                let ev = ev
                    .with("action", "grace_extend")
                    .with("deadline", &d.to_string());
                (
                    Some(d),
                    ev,
                    format!("grace deadline of {user} is now {}", utc_minutes(d)),
                )
            }
            (None, true) => (
                None,
                ev.with("action", "grace_reset"),
                format!(
                    "grace deadline of {user} removed; the next login starts a new grace period"
                ),
            ),
            _ => {
                return Err(fail(
                    ErrorKind::BadRequest,
                    "give exactly one of extend or reset",
                ))
            }
        };
        let recs = self.store().set_grace(user, now, deadline, ev)?;
        self.syslog_records(&recs);
        Ok(Response::Done { message })
    }

    /// Walks the whole chain from the retention anchor to the head.
    pub(crate) fn verify_audit(&self) -> Result<AuditReport, Failure> {
        let store = self.store();
        let (anchor_id, anchor_hash) = store.audit_anchor()?;
        let head = store.audit_head()?;
        let mut check = ChainCheck::new(anchor_id, anchor_hash);
        store.audit_chain(|row| check.push(row))?;
        check.finish(head);
        Ok(AuditReport {
            rows: check.rows,
            first_id: check.first_id,
            last_id: check.last_id(),
            pruned_through: anchor_id,
            broken: check.broken.clone(),
        })
    }

    fn stats_report(&self) -> Result<StatsReport, Failure> {
        let now = self.now();
        let figures = self.store().account_figures(LOW_BACKUP)?;
        let counts: BTreeMap<String, u64> = self
            .store()
            .audit_counts(now.saturating_sub(86_400))?
            .into_iter()
            .collect();
        let count = |e: &str| counts.get(e).copied().unwrap_or(0);
        // Required users: those with a stored deadline, and members of the
        // required groups; minus those who have a factor.
        let mut required: BTreeMap<String, Option<u64>> = self
            .store()
            .graces()?
            .into_iter()
            .map(|(u, d)| (u, Some(d)))
            .collect();
        for g in &self.config.policy.required_groups {
            let members = twofold_config::groups::group_members(g).map_err(|e| Failure {
                kind: ErrorKind::Internal,
                message: "group lookup failed".into(),
                detail: Some(e.to_string()),
            })?;
            for m in members {
                required.entry(m).or_insert(None);
            }
        }
        let mut required_unenrolled = Vec::new();
        // Bounded so the answer fits one frame.
        for (user, deadline) in required.into_iter().take(MAX_LISTED) {
            if !self.has_login_factor(&user)? {
                required_unenrolled.push(GraceInfo { user, deadline });
            }
        }
        Ok(StatsReport {
            now,
            enrolled: vec![
                MethodCount {
                    method: "totp".into(),
                    users: figures.totp_users,
                },
                MethodCount {
                    method: "backup_code".into(),
                    users: figures.backup_users,
                },
            ],
            required_unenrolled,
            logins_ok_24h: count(event::LOGIN_SUCCESS),
            logins_failed_24h: count(event::LOGIN_DENIED) + count(event::LOGIN_LOCKED),
            codes_rejected_24h: count(event::LOGIN_FAILURE),
            lockouts_24h: count(event::LOCKOUT),
            low_backup_codes: figures
                .low_backup
                .into_iter()
                .take(MAX_LISTED)
                .map(|(user, left)| BackupLow { user, left })
                .collect(),
        })
    }
}

fn valid_user(user: &str) -> Result<(), Failure> {
    validate::user(user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))
}
