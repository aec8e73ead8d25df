//! Admin requests about locks, grace deadlines, the audit trail and
//! figures. Everything here that reveals other users needs an admin; the
//! audit query alone is open to users for their own rows.

use super::{fitting, too_many, Answer};
use crate::audit::syslog::utc_minutes;
use crate::audit::{event, AuditEvent, ChainCheck};
use crate::engine::Engine;
use crate::factors::enroll::{make_token, TOKEN};
use crate::factors::{fido2, hotp, temp};
use crate::failure::{fail, Failure};
use crate::server::peer::Peer;
use crate::store::{AuditFilter, Walk};
use crate::validate;
use std::collections::BTreeMap;
use twofold_proto::{
    AuditReport, BackupLow, ErrorKind, GraceInfo, LockInfo, Method, MethodCount, Request, Response,
    Secret, StatsReport, TimeRef,
};

/// Rows per audit page at most; a page also stops before it would not fit
/// in one frame.
const PAGE_ROWS: u32 = 500;
/// Locks per page at most (a page also stops before it would not fit).
const LOCKS_PAGE: u32 = 500;
/// Backup codes below which `twofold stats` lists a user.
const LOW_BACKUP: u32 = 3;
/// Users listed at most in each list of `twofold stats`.
const MAX_LISTED: usize = 300;

/// Answers the requests of this module.
pub(super) fn answer(engine: &Engine, peer: &Peer, req: Request) -> Answer {
    {
        let this = engine;
        match req {
            Request::AdminUnlock { user } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let ev = AuditEvent::new(event::UNLOCK, &user, &peer.actor());
                let (n, recs) = this.store.unlock(&user, this.now(), ev)?;
                this.syslog_records(&recs);
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
                let (locks, next) = locks_page(this, 0)?;
                if next.is_some() {
                    return Err(too_many("locks"));
                }
                Ok(Response::Locks { locks })
            }
            Request::AdminLocksPage { after } => {
                require_admin(peer)?;
                let (locks, next) = locks_page(this, after.unwrap_or(0))?;
                Ok(Response::LocksPage { locks, next })
            }
            Request::AdminGrace {
                user,
                extend,
                reset,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                grace(this, peer, &user, extend, reset)
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
                let now = this.now();
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
                let mut rows = this.store.audit_rows(&filter, want + 1)?;
                let mut more = rows.len() > want as usize;
                rows.truncate(want as usize);
                // Keep the answer inside one frame.
                let keep = fitting(&rows);
                more |= keep < rows.len();
                rows.truncate(keep);
                Ok(Response::AuditRecords {
                    records: rows,
                    more,
                })
            }
            Request::AdminEnrollToken { user, valid } => {
                require_admin(peer)?;
                valid_user(&user)?;
                enroll_token(this, peer, &user, valid)
            }
            Request::AuditVerify => {
                require_admin(peer)?;
                Ok(Response::AuditVerified(verify_audit(this)?))
            }
            Request::Stats => {
                require_admin(peer)?;
                stats_report(this).map(Response::StatsReport)
            }
            Request::AdminTempCode {
                user,
                valid,
                uses,
                revoke,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                temp_code(this, peer, &user, valid, uses, revoke)
            }
            Request::AdminEnrollHotp {
                user,
                secret_hex,
                algorithm,
                digits,
                counter,
                name,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let token = hotp::Token {
                    secret: hex_secret(&secret_hex)?,
                    algorithm: algorithm.unwrap_or(twofold_proto::Algorithm::Sha1),
                    digits: digits.unwrap_or(6),
                    counter: counter.unwrap_or(0),
                    label: token_name(name)?,
                };
                enroll_hotp(this, peer, &user, &token)
            }
            Request::AdminImport {
                user,
                method,
                secret_hex,
                digits,
                period,
                counter,
                scratch,
                source,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let imported = Imported {
                    method,
                    secret: hex_secret(&secret_hex)?,
                    digits,
                    period,
                    counter,
                    scratch,
                    source,
                };
                import(this, peer, &user, imported)
            }
            Request::AdminImportKey {
                user,
                name,
                rp_id,
                credential_id_hex,
                algorithm,
                public_key_hex,
                source,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let key = fido2::import::ImportedKey {
                    name: name.as_deref(),
                    rp_id: &rp_id,
                    credential_id_hex: &credential_id_hex,
                    algorithm: &algorithm,
                    public_key_hex: &public_key_hex,
                };
                import_key(this, peer, &user, &key, &source)
            }
            Request::AdminHotpResync {
                user,
                name,
                first,
                second,
            } => {
                require_admin(peer)?;
                valid_user(&user)?;
                let claim = hotp::resync(
                    &this.ctx(),
                    &user,
                    name.as_deref(),
                    first.expose().trim(),
                    second.expose().trim(),
                )?;
                let value = match &claim {
                    crate::store::Claim::Counter { value, .. } => *value,
                    crate::store::Claim::Code { .. } | crate::store::Claim::Unmetered { .. } => 0,
                };
                let ev = AuditEvent::new(event::ADMIN, &user, &peer.actor())
                    .method(Method::HOTP.as_str())
                    .with("action", "hotp_resync")
                    .with("counter", &value.to_string());
                match this.store.spend(claim, this.now(), vec![ev])? {
                    crate::store::Change::Done(recs) => this.syslog_records(&recs),
                    _ => {
                        return Err(fail(
                            ErrorKind::Conflict,
                            "those codes were used meanwhile; press twice more and try again",
                        ))
                    }
                }
                Ok(Response::Done {
                    message: format!(
                        "the HOTP token of {user} is in step again; its next code is number {}",
                        value + 1
                    ),
                })
            }
            other => Err(fail(
                ErrorKind::BadRequest,
                format!("{} is not valid here", other.kind()),
            )),
        }
    }
}

/// One page of the locks in force after lock `after`, and where the next
/// page starts when there is one.
fn locks_page(this: &Engine, after: u64) -> Result<(Vec<LockInfo>, Option<u64>), Failure> {
    let rows = this.store.locks(this.now(), after, LOCKS_PAGE + 1)?;
    let more = rows.len() > LOCKS_PAGE as usize;
    let (ids, mut locks): (Vec<u64>, Vec<LockInfo>) =
        rows.into_iter().take(LOCKS_PAGE as usize).unzip();
    let keep = fitting(&locks);
    locks.truncate(keep);
    let next = (more || keep < ids.len())
        .then(|| keep.checked_sub(1).map(|i| ids[i]))
        .flatten();
    Ok((locks, next))
}

/// How long an enrollment token stays valid unless the admin says.
const TOKEN_VALID: u64 = 86_400;
/// The longest an enrollment token may stay valid.
const TOKEN_VALID_MAX: u64 = 30 * 86_400;

/// Issues a one-time enrollment token for `user` (replacing an older one),
/// audited with its expiry; the token itself is shown once and stored
/// hashed.
fn enroll_token(
    this: &Engine,
    peer: &Peer,
    user: &str,
    valid: Option<u64>,
) -> Result<Response, Failure> {
    let valid = valid.unwrap_or(TOKEN_VALID);
    if !(60..=TOKEN_VALID_MAX).contains(&valid) {
        return Err(fail(
            ErrorKind::BadRequest,
            "a token may be valid for 1 minute to 30 days",
        ));
    }
    let now = this.now();
    let expires_at = now.saturating_add(valid);
    let (token, row) = make_token(&this.ctx(), user, expires_at)?;
    let ev = AuditEvent::new(event::ADMIN, user, &peer.actor())
        .with("action", "enroll_token")
        .with("expires", &expires_at.to_string());
    let recs = this
        .store
        .issue_codes(user, &TOKEN, vec![row], now, vec![ev])?;
    this.syslog_records(&recs);
    Ok(Response::EnrollToken { token, expires_at })
}

/// Issues a break-glass code for `user` (replacing an outstanding one) or
/// withdraws it (`revoke`); audited with its expiry and uses, the code
/// itself shown once and stored hashed. Only for an account that has a
/// factor: the code stands in for one its owner lost, it never enrolls
/// anyone.
fn temp_code(
    this: &Engine,
    peer: &Peer,
    user: &str,
    valid: Option<u64>,
    uses: Option<u32>,
    revoke: bool,
) -> Result<Response, Failure> {
    let now = this.now();
    let ev = AuditEvent::new(event::ADMIN, user, &peer.actor());
    if revoke {
        let (left, _) = this
            .store
            .codes_outstanding(user, &Method::TEMP_CODE, now)?;
        let ev = ev
            .with("action", "temp_code_revoked")
            .with("outstanding", &left.to_string());
        let recs = this
            .store
            .issue_codes(user, &Method::TEMP_CODE, Vec::new(), now, vec![ev])?;
        this.syslog_records(&recs);
        let message = if left == 0 {
            format!("{user} had no outstanding break-glass code")
        } else {
            format!("the break-glass code of {user} is revoked")
        };
        return Ok(Response::Done { message });
    }
    let valid = valid.unwrap_or(temp::VALID);
    if !(60..=temp::VALID_MAX).contains(&valid) {
        return Err(fail(
            ErrorKind::BadRequest,
            "a break-glass code may be valid for 1 minute to 7 days",
        ));
    }
    let uses = uses.unwrap_or(1);
    if !(1..=temp::USES_MAX).contains(&uses) {
        return Err(fail(
            ErrorKind::BadRequest,
            format!("a break-glass code may open 1 to {} logins", temp::USES_MAX),
        ));
    }
    let enrolled = this
        .store
        .credentials(user)?
        .iter()
        .any(|c| c.confirmed_at.is_some());
    if !enrolled {
        return Err(fail(
            ErrorKind::NotFound,
            format!(
                "{user} has no factor to stand in for; with nothing enrolled the policy's `unenrolled` setting decides (see `twofold admin enroll-token` to let them enroll)"
            ),
        ));
    }
    let expires_at = now.saturating_add(valid);
    let made = temp::make(&this.ctx(), user, uses, expires_at)
        .map_err(|e| fail(ErrorKind::Internal, format!("cannot make a code: {e}")))?;
    let ev = ev
        .with("action", "temp_code")
        .with("uses", &uses.to_string())
        .with("expires", &expires_at.to_string());
    let recs = this
        .store
        .issue_codes(user, &Method::TEMP_CODE, made.rows, now, vec![ev])?;
    this.syslog_records(&recs);
    Ok(Response::TempCode {
        code: made.shown,
        expires_at,
        uses,
    })
}

/// The raw secret of a hex string (whitespace ignored), wiped when dropped.
fn hex_secret(text: &Secret) -> Result<zeroize::Zeroizing<Vec<u8>>, Failure> {
    let digits: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
        text.expose()
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    if digits.is_empty() {
        // Refused by the length checks of what it is for, with their words.
        return Ok(zeroize::Zeroizing::new(Vec::new()));
    }
    let digits = std::str::from_utf8(&digits)
        .map_err(|_| fail(ErrorKind::BadRequest, "the secret is not hexadecimal"))?;
    twofold_import::hex_decode(digits)
        .ok_or_else(|| fail(ErrorKind::BadRequest, "the secret is not hexadecimal"))
}

/// A credential imported from another module's file.
struct Imported {
    method: Method,
    secret: zeroize::Zeroizing<Vec<u8>>,
    digits: u32,
    period: Option<u64>,
    counter: Option<u64>,
    scratch: Vec<Secret>,
    source: String,
}

/// Enrolls an imported credential and its scratch codes (as backup codes)
/// with the audit row, in one transaction after the pending row; refused
/// when the account already has a confirmed credential of that kind.
fn import(this: &Engine, peer: &Peer, user: &str, i: Imported) -> Result<Response, Failure> {
    use crate::factors::{backup::codes, random_row_id, totp};
    if i.source.len() > 512 || i.source.chars().any(char::is_control) {
        return Err(fail(
            ErrorKind::BadRequest,
            "the source is not a printable path",
        ));
    }
    if i.scratch.len() > 32 {
        return Err(fail(ErrorKind::BadRequest, "more than 32 scratch codes"));
    }
    let cx = this.ctx();
    let now = this.now();
    let (id, counter) = if i.method == Method::TOTP {
        let period = i.period.unwrap_or(30);
        if !(6..=8).contains(&i.digits) || !(1..=300).contains(&period) {
            return Err(fail(
                ErrorKind::BadRequest,
                "TOTP codes must be 6 to 8 digits and steps 1 to 300 s",
            ));
        }
        if !(10..=64).contains(&i.secret.len()) {
            return Err(fail(
                ErrorKind::BadRequest,
                "the secret must be 10 to 64 bytes",
            ));
        }
        let params = totp::otp::TotpParams {
            algorithm: twofold_proto::Algorithm::Sha1,
            digits: i.digits,
            period,
        };
        let id = random_row_id()?;
        let (sealed, nonce) = cx.keys.seal(&Method::TOTP, user, id, &i.secret)?;
        let new = crate::store::NewCredential {
            id,
            method: Method::TOTP,
            label: String::new(),
            sealed,
            nonce: nonce.to_vec(),
            params: totp::params_text(&params),
            single: true,
        };
        if !this.store.start_pending(user, new, now)? {
            return Err(fail(
                ErrorKind::Conflict,
                format!("{user} already has a confirmed TOTP credential; nothing imported"),
            ));
        }
        (id, i.counter)
    } else if i.method == Method::HOTP {
        let token = hotp::Token {
            secret: i.secret,
            algorithm: twofold_proto::Algorithm::Sha1,
            digits: i.digits,
            counter: i.counter.unwrap_or(0),
            label: "imported".into(),
        };
        let id = hotp::store_pending(&cx, user, &token)?;
        (id, hotp::first_counter(token.counter))
    } else {
        return Err(fail(
            ErrorKind::BadRequest,
            format!("{} cannot be imported", i.method),
        ));
    };
    let mut rows = Vec::with_capacity(i.scratch.len());
    for code in &i.scratch {
        let Some(normalized) = codes::normalize(code.expose()) else {
            return Err(fail(
                ErrorKind::BadRequest,
                "a scratch code is not eight digits",
            ));
        };
        rows.push(crate::store::NewCode {
            lookup: cx.keys.code_lookup(&Method::BACKUP_CODE, user, &normalized),
            hash: codes::hash(&normalized)?,
            expires_at: None,
        });
    }
    let n = rows.len();
    let codes = (!rows.is_empty()).then_some((Method::BACKUP_CODE, rows));
    let ev = AuditEvent::new(event::ENROLL, user, &peer.actor())
        .method(i.method.as_str())
        .with("imported_from", &i.source)
        .with("scratch_codes", &n.to_string());
    match this
        .store
        .confirm(id, counter, codes, None, now, vec![ev])?
    {
        crate::store::Change::Done(recs) => this.syslog_records(&recs),
        _ => {
            return Err(fail(
                ErrorKind::Conflict,
                "the credential was removed while it was being imported",
            ))
        }
    }
    Ok(Response::Done {
        message: format!(
            "{user}: {} imported with {n} scratch codes as backup codes",
            i.method
        ),
    })
}

/// Enrolls a security key's credential imported from pam-u2f's file: the
/// pending row, then confirmed with its audit row in one transaction.
fn import_key(
    this: &Engine,
    peer: &Peer,
    user: &str,
    key: &fido2::import::ImportedKey<'_>,
    source: &str,
) -> Result<Response, Failure> {
    if source.len() > 512 || source.chars().any(char::is_control) {
        return Err(fail(
            ErrorKind::BadRequest,
            "the source is not a printable path",
        ));
    }
    let (new, name) = fido2::import::imported(&this.ctx(), user, key)?;
    let id = new.id;
    let now = this.now();
    this.store.start_pending(user, new, now)?;
    let ev = AuditEvent::new(event::ENROLL, user, &peer.actor())
        .method(Method::FIDO2.as_str())
        .with("name", &name)
        .with("rp_id", key.rp_id)
        .with("imported_from", source);
    match this.store.confirm(id, Some(0), None, None, now, vec![ev])? {
        crate::store::Change::Done(recs) => this.syslog_records(&recs),
        _ => {
            return Err(fail(
                ErrorKind::Conflict,
                "the key was removed while it was being imported",
            ))
        }
    }
    Ok(Response::Done {
        message: format!(
            "{user}: security key {name:?} imported ({}, {})",
            key.algorithm, key.rp_id
        ),
    })
}

/// A token's name: 1 to 64 printable characters, `hotp` when none is given.
fn token_name(name: Option<String>) -> Result<String, Failure> {
    let name = name.unwrap_or_else(|| "hotp".into());
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(fail(
            ErrorKind::BadRequest,
            "a token name is 1 to 64 printable characters",
        ));
    }
    Ok(name)
}

/// Enrolls a hardware token for `user`: stored pending, then confirmed
/// with its counter and the audit row in one transaction.
fn enroll_hotp(
    this: &Engine,
    peer: &Peer,
    user: &str,
    token: &hotp::Token,
) -> Result<Response, Failure> {
    let cx = this.ctx();
    let id = hotp::store_pending(&cx, user, token)?;
    let ev = AuditEvent::new(event::ENROLL, user, &peer.actor())
        .method(Method::HOTP.as_str())
        .with("name", &token.label)
        .with("counter", &token.counter.to_string());
    let first = hotp::first_counter(token.counter);
    match this
        .store
        .confirm(id, first, None, None, this.now(), vec![ev])?
    {
        crate::store::Change::Done(recs) => this.syslog_records(&recs),
        _ => {
            return Err(fail(
                ErrorKind::Conflict,
                "the token was removed while it was being enrolled",
            ))
        }
    }
    Ok(Response::Done {
        message: format!(
            "HOTP token {:?} enrolled for {user}; its next code is number {}",
            token.label, token.counter
        ),
    })
}

fn grace(
    this: &Engine,
    peer: &Peer,
    user: &str,
    extend: Option<u64>,
    reset: bool,
) -> Result<Response, Failure> {
    let now = this.now();
    let ev = AuditEvent::new(event::ADMIN, user, &peer.actor());
    let (deadline, ev, message) = match (extend, reset) {
        (Some(secs), false) => {
            let current = this.store.grace_deadline(user)?;
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
            format!("grace deadline of {user} removed; the next login starts a new grace period"),
        ),
        _ => {
            return Err(fail(
                ErrorKind::BadRequest,
                "give exactly one of extend or reset",
            ))
        }
    };
    let recs = this.store.set_grace(user, now, deadline, ev)?;
    this.syslog_records(&recs);
    Ok(Response::Done { message })
}

/// Walks the whole chain from the retention anchor to the head — or, on
/// a store with several chains (the fleet's: one per host and connection),
/// each of them; the report sums them, positions and breaks are within
/// their chain, and a break names its chain.
pub(crate) fn verify_audit(this: &Engine) -> Result<AuditReport, Failure> {
    let mut check = ChainCheck::new(0, Vec::new());
    let mut report = AuditReport {
        rows: 0,
        first_id: None,
        last_id: None,
        pruned_through: 0,
        broken: None,
    };
    let mut chain = String::new();
    this.store.audit_walk(&mut |step| match step {
        Walk::Chain(name) => {
            chain = name.to_owned();
            true
        }
        Walk::Anchor(id, hash) => {
            report.pruned_through = report.pruned_through.max(id);
            check = ChainCheck::new(id, hash.to_vec());
            true
        }
        Walk::Row(row) => check.push(row),
        Walk::Head(head) => {
            check.finish(head.map(|(id, h)| (id, h.to_vec())));
            report.rows += check.rows;
            report.first_id = match (report.first_id, check.first_id) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            report.last_id = report.last_id.max(check.last_id());
            if report.broken.is_none() {
                report.broken = check.broken.clone().map(|mut b| {
                    if !chain.is_empty() {
                        b.reason = format!("chain {chain}: {}", b.reason);
                    }
                    b
                });
            }
            true
        }
    })?;
    Ok(report)
}

fn stats_report(this: &Engine) -> Result<StatsReport, Failure> {
    let now = this.now();
    let counts: BTreeMap<String, u64> = this
        .store
        .audit_counts(now.saturating_sub(86_400))?
        .into_iter()
        .collect();
    let count = |e: &str| counts.get(e).copied().unwrap_or(0);
    // Required users: those with a stored deadline, and members of the
    // required groups; minus those who have a factor.
    let mut required: BTreeMap<String, Option<u64>> = this
        .store
        .graces()?
        .into_iter()
        .map(|(u, d)| (u, Some(d)))
        .collect();
    for g in &this.config.policy.required_groups {
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
        if !this.has_login_factor(&user)? {
            required_unenrolled.push(GraceInfo { user, deadline });
        }
    }
    Ok(StatsReport {
        now,
        enrolled: enrolled(this)?,
        required_unenrolled,
        logins_ok_24h: count(event::LOGIN_SUCCESS),
        logins_failed_24h: count(event::LOGIN_DENIED) + count(event::LOGIN_LOCKED),
        codes_rejected_24h: count(event::LOGIN_FAILURE),
        lockouts_24h: count(event::LOCKOUT),
        low_backup_codes: match this.factors.recovery() {
            Some(r) => this.store.low_codes(&r.method(), LOW_BACKUP)?,
            None => Vec::new(),
        }
        .into_iter()
        .take(MAX_LISTED)
        .map(|(user, left)| BackupLow { user, left })
        .collect(),
    })
}

/// Users per method, for every factor this daemon offers (none left out
/// for having no users; rows of other kinds, such as enrollment tokens,
/// are not factors and are not counted).
fn enrolled(this: &Engine) -> Result<Vec<MethodCount>, Failure> {
    let counts = this.store.method_users()?;
    Ok(this
        .factors
        .all()
        .map(|f| {
            let method = f.method();
            let users = counts
                .iter()
                .filter(|(m, _)| *m == method)
                .map(|(_, n)| *n)
                .sum();
            MethodCount { method, users }
        })
        .collect())
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

fn valid_user(user: &str) -> Result<(), Failure> {
    validate::user(user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))
}
