//! The audit trail: security events as a hash chain in the database, each
//! also sent as one syslog line (authpriv) with the same fields.
//!
//! Row N stores `prev_hash` = the hash of row N-1 (or of the retention
//! anchor, or 32 zero bytes for the first row ever) and `hash` =
//! SHA-256(prev_hash ‖ id ‖ at ‖ each text field length-prefixed). Ids are
//! consecutive, and `audit_head` keeps the last id and hash, so an edited,
//! deleted, reordered or truncated row breaks verification at a named row.
//! Someone able to rewrite the database *and* recompute every hash is caught
//! only by the syslog copy, which is why both exist.
//!
//! **Invariant:** no code, secret or key is ever put in an event.

pub mod syslog;

use sha2::{Digest, Sha256};
use twofold_proto::{AuditRecord, ChainBreak};

/// Event names, one place. `twofold audit --event` takes these.
pub mod event {
    /// A factor was enrolled (confirmed), by the CLI or inside a login.
    pub const ENROLL: &str = "enroll";
    /// A factor was removed (self-service or admin).
    pub const FACTOR_REMOVED: &str = "factor_removed";
    /// A login succeeded with a second factor.
    pub const LOGIN_SUCCESS: &str = "login_success";
    /// One wrong code in a login.
    pub const LOGIN_FAILURE: &str = "login_failure";
    /// A login ended refused (too many wrong codes, policy, grace over).
    pub const LOGIN_DENIED: &str = "login_denied";
    /// A login was refused because the account or source is locked.
    pub const LOGIN_LOCKED: &str = "login_locked";
    /// twofold had no say in a login (exempt, trusted network, unenrolled and allowed).
    pub const LOGIN_SKIPPED: &str = "login_skipped";
    /// Failures locked a (user, source) pair or a user.
    pub const LOCKOUT: &str = "lockout";
    /// An admin cleared a user's locks and failure counts.
    pub const UNLOCK: &str = "unlock";
    /// A backup code was used up.
    pub const BACKUP_CODE_USED: &str = "backup_code_used";
    /// A break-glass code opened a login.
    pub const TEMP_CODE_USED: &str = "temp_code_used";
    /// Backup codes were regenerated.
    pub const CODES_REGENERATED: &str = "codes_regenerated";
    /// A required user was first seen unenrolled: the grace deadline was set.
    pub const GRACE_STARTED: &str = "grace_started";
    /// Any other admin action (disable, grace extended or reset).
    pub const ADMIN: &str = "admin";
    /// The daemon started with a configuration.
    pub const CONFIG_LOADED: &str = "config_loaded";
    /// A configuration was refused.
    pub const CONFIG_REJECTED: &str = "config_rejected";
    /// A reload put the configuration file in force again (`changed`
    /// names the options it changed, `restart_needed` those it could not).
    pub const CONFIG_RELOADED: &str = "config_reloaded";
    /// A reload refused the file; the running configuration stays.
    pub const CONFIG_RELOAD_REFUSED: &str = "config_reload_refused";
    /// Retention removed old rows (the chain continues from an anchor).
    pub const AUDIT_PRUNED: &str = "audit_pruned";
    /// A second factor remembered a device (an SSH key, a login session).
    pub const DEVICE_REMEMBERED: &str = "device_remembered";
    /// A remembered device was forgotten (by its user or an admin).
    pub const DEVICE_FORGOTTEN: &str = "device_forgotten";
    /// A fresh code authorized adding a factor beside a confirmed one.
    pub const ENROLL_AUTHORIZED: &str = "enroll_authorized";
    /// A security key was not used in a login before any touch: it cannot
    /// verify the user where the service requires it, or its PIN is
    /// blocked (`reason=`); the code prompt followed.
    pub const SECURITY_KEY_REFUSED: &str = "security_key_refused";
    /// The address or number codes are sent to was changed in one step
    /// (`from=` and `to=`, masked): told to the old address and the new.
    pub const DESTINATION_CHANGED: &str = "destination_changed";
}

/// One event to record. Empty fields do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// One of [`event`].
    pub event: &'static str,
    /// The account concerned.
    pub user: String,
    /// PAM service.
    pub service: String,
    /// PAM_RHOST.
    pub rhost: String,
    /// PAM_TTY.
    pub tty: String,
    /// Method.
    pub method: String,
    /// `uid=N` of the peer, or `twofoldd`.
    pub actor: String,
    /// `key=value` pairs, space separated.
    pub detail: String,
}

impl AuditEvent {
    /// An event about `user` caused by `actor`.
    pub fn new(event: &'static str, user: &str, actor: &str) -> AuditEvent {
        AuditEvent {
            event,
            user: user.to_owned(),
            actor: actor.to_owned(),
            ..AuditEvent::default()
        }
    }

    /// The same event under another name.
    pub fn renamed(&self, event: &'static str) -> AuditEvent {
        AuditEvent {
            event,
            ..self.clone()
        }
    }

    /// Sets the method.
    pub fn method(mut self, m: &str) -> AuditEvent {
        self.method = m.to_owned();
        self
    }

    /// Adds `key=value` to the detail (value escaped as in log lines).
    pub fn with(mut self, key: &str, value: &str) -> AuditEvent {
        if !self.detail.is_empty() {
            self.detail.push(' ');
        }
        self.detail.push_str(key);
        self.detail.push('=');
        self.detail.push_str(&crate::log::escape(value));
        self
    }

    /// The row this event becomes at position `id`, time `at`.
    pub fn record(&self, id: u64, at: u64) -> AuditRecord {
        AuditRecord {
            id,
            at,
            event: self.event.to_owned(),
            user: self.user.clone(),
            service: self.service.clone(),
            rhost: self.rhost.clone(),
            tty: self.tty.clone(),
            method: self.method.clone(),
            actor: self.actor.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// The hash of the (absent) row before the first one.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash a row must carry, given its predecessor's.
pub fn row_hash(prev: &[u8], r: &AuditRecord) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"twofold/audit/v1");
    h.update(prev);
    h.update(r.id.to_be_bytes());
    h.update(r.at.to_be_bytes());
    for field in [
        &r.event, &r.user, &r.service, &r.rhost, &r.tty, &r.method, &r.actor, &r.detail,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// A stored row with its chain fields.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The row.
    pub record: AuditRecord,
    /// The stored hash of the previous row.
    pub prev_hash: Vec<u8>,
    /// The stored hash of this row.
    pub hash: Vec<u8>,
}

/// Checks rows one at a time, in id order, from the anchor.
#[derive(Debug)]
pub struct ChainCheck {
    expect_id: u64,
    expect_prev: Vec<u8>,
    /// Rows seen.
    pub rows: u64,
    /// First id seen.
    pub first_id: Option<u64>,
    /// The first break found.
    pub broken: Option<ChainBreak>,
}

impl ChainCheck {
    /// Starts after the anchor (`last_id` 0 and [`GENESIS`] when nothing was pruned).
    pub fn new(anchor_id: u64, anchor_hash: Vec<u8>) -> ChainCheck {
        ChainCheck {
            expect_id: anchor_id + 1,
            expect_prev: anchor_hash,
            rows: 0,
            first_id: None,
            broken: None,
        }
    }

    fn fail(&mut self, id: u64, reason: String) {
        if self.broken.is_none() {
            self.broken = Some(ChainBreak { id, reason });
        }
    }

    /// Feeds the next row; returns `false` once the chain is broken.
    pub fn push(&mut self, row: &ChainRow) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let id = row.record.id;
        self.rows += 1;
        self.first_id.get_or_insert(id);
        if id != self.expect_id {
            let missing = self.expect_id;
            self.fail(
                missing,
                if id > missing {
                    format!("row {missing} is missing (deleted); the next row is {id}")
                } else {
                    format!("row {id} appears out of order after row {}", missing - 1)
                },
            );
            return false;
        }
        if row.prev_hash != self.expect_prev {
            self.fail(
                id,
                format!(
                    "row {id} does not follow row {}: rows were reordered, replaced or removed before it",
                    id - 1
                ),
            );
            return false;
        }
        if row_hash(&row.prev_hash, &row.record)[..] != row.hash[..] {
            self.fail(
                id,
                format!("row {id} does not match its hash: it was edited"),
            );
            return false;
        }
        self.expect_id = id + 1;
        self.expect_prev = row.hash.clone();
        true
    }

    /// Compares the end of the chain with the stored head (last id and hash).
    pub fn finish(&mut self, head: Option<(u64, Vec<u8>)>) {
        if self.broken.is_some() {
            return;
        }
        let last = self.expect_id - 1;
        match head {
            Some((head_id, _)) if head_id > last => self.fail(
                last + 1,
                format!(
                    "rows {} to {head_id} are missing: the trail was truncated",
                    last + 1
                ),
            ),
            Some((head_id, hash)) if head_id == last && hash != self.expect_prev => self.fail(
                last,
                format!("row {last} is not the row the daemon last wrote: it was replaced"),
            ),
            Some((head_id, _)) if head_id < last => self.fail(
                head_id + 1,
                format!("rows after {head_id} were added outside the daemon"),
            ),
            None if self.rows > 0 => self.fail(
                self.first_id.unwrap_or(0),
                "the chain head record is missing".into(),
            ),
            _ => {}
        }
    }

    /// The last id that verified.
    pub fn last_id(&self) -> Option<u64> {
        (self.rows > 0).then(|| self.expect_id - 1)
    }
}

/// Hex SHA-256 of a configuration's text, for `config_loaded` rows.
pub fn config_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reports a refused configuration on syslog (best effort): the table's
/// location is in the refused file, so syslog is the only record. The
/// socket is the one the file names, when it can be read, else `/dev/log`.
pub fn syslog_config_rejected(origin: &str, text: Option<&str>, error: &str, now: u64) {
    let socket = text
        .map(twofold_config::Config::syslog_socket_of)
        .unwrap_or_else(|| twofold_config::AuditConfig::default().syslog_socket);
    let rec = AuditEvent::new(event::CONFIG_REJECTED, "", "twofoldd")
        .with("source", origin)
        .with("error", error)
        .record(0, now);
    let _ = syslog::Syslog::new(socket).send(severity(&rec.event), now, &syslog_text(&rec));
}

/// Syslog severity of an event: refusals are notices, the rest information.
pub fn severity(event: &str) -> u8 {
    match event {
        event::LOGIN_FAILURE
        | event::LOGIN_DENIED
        | event::LOGIN_LOCKED
        | event::LOCKOUT
        | event::CONFIG_REJECTED
        | event::CONFIG_RELOAD_REFUSED => 5,
        _ => 6,
    }
}

/// The syslog message of a row: the same fields as the table, `key=value`.
pub fn syslog_text(r: &AuditRecord) -> String {
    use crate::log::escape;
    format!(
        "audit id={} event={} user={} service={} rhost={} tty={} method={} actor={} detail={}",
        r.id,
        escape(&r.event),
        escape(&r.user),
        escape(&r.service),
        escape(&r.rhost),
        escape(&r.tty),
        escape(&r.method),
        escape(&r.actor),
        escape(&r.detail)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<ChainRow> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|id| {
                let record = AuditEvent::new(event::LOGIN_SUCCESS, "alice", "uid=0")
                    .with("try", &id.to_string())
                    .record(id, 100 + id);
                let hash = row_hash(&prev, &record).to_vec();
                let row = ChainRow {
                    record,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[ChainRow], head: Option<(u64, Vec<u8>)>) -> Option<ChainBreak> {
        let mut c = ChainCheck::new(0, GENESIS.to_vec());
        for r in rows {
            if !c.push(r) {
                break;
            }
        }
        c.finish(head);
        c.broken
    }

    fn head(rows: &[ChainRow]) -> Option<(u64, Vec<u8>)> {
        rows.last().map(|r| (r.record.id, r.hash.clone()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(5);
        assert_eq!(verify(&rows, head(&rows)), None);
        assert_eq!(verify(&[], None), None);
    }

    #[test]
    fn each_kind_of_tampering_names_the_row() {
        let rows = chain(6);
        let h = head(&rows);
        let mut edited = rows.clone();
        edited[2].record.user = "mallory".into();
        assert_eq!(verify(&edited, h.clone()).unwrap().id, 3);
        let mut deleted = rows.clone();
        deleted.remove(3);
        let b = verify(&deleted, h.clone()).unwrap();
        assert_eq!(b.id, 4, "{b:?}");
        assert!(b.reason.contains("missing"), "{b:?}");
        let mut swapped = rows.clone();
        let (a, b2) = (swapped[1].record.id, swapped[2].record.id);
        swapped.swap(1, 2);
        swapped[1].record.id = a;
        swapped[2].record.id = b2;
        assert_eq!(verify(&swapped, h.clone()).unwrap().id, 2);
        let truncated = &rows[..4];
        let b = verify(truncated, h).unwrap();
        assert_eq!(b.id, 5, "{b:?}");
        assert!(b.reason.contains("truncated"), "{b:?}");
    }

    #[test]
    fn syslog_text_has_every_field_escaped() {
        let r = AuditEvent::new(event::LOGIN_FAILURE, "al ice", "uid=0")
            .with("reason", "wrong code")
            .record(7, 9);
        assert_eq!(
            syslog_text(&r),
            r#"audit id=7 event=login_failure user="al ice" service=- rhost=- tty=- method=- actor="uid=0" detail="reason=\"wrong code\"""#
        );
    }
}
