//! Backup codes: ten single-use codes issued when a primary factor is
//! confirmed (and on request), shown once, stored as argon2id hashes with a
//! keyed lookup so an answer costs at most one argon2 verification.

pub mod codes;

use super::{Ctx, Factor, Found, Issued, Report, Role, VerifyError, Who};
use crate::audit::event;
use crate::failure::Failure;
use crate::store::{Claim, Credential, NewCode, Snapshot, StoreError};
use std::sync::atomic::Ordering;
use twofold_proto::Method;

/// The backup-code factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupCodes;

impl Factor for BackupCodes {
    fn method(&self) -> Method {
        Method::BACKUP_CODE
    }

    fn role(&self) -> Role {
        Role::Recovery
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        snap.codes.contains(&Method::BACKUP_CODE)
    }

    /// The keyed lookup is computed before reading (cheap), so one snapshot
    /// holds the lock and the one row to verify; no argon2 runs while the
    /// store is held, and none for a locked login or an unknown code.
    fn check(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        _snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let Some(normalized) = codes::normalize(typed) else {
            return Ok(None);
        };
        let lookup = cx
            .keys
            .code_lookup(&Method::BACKUP_CODE, who.user, &normalized);
        let (lock, row) = cx.store.find_code(
            who.user,
            who.source,
            &Method::BACKUP_CODE,
            &lookup,
            cx.now(),
        )?;
        if let Some(l) = lock {
            return Ok(Some(Found::Locked(l)));
        }
        let Some(row) = row else {
            return Ok(Some(Found::Rejected("wrong code")));
        };
        if row.used_at.is_some() {
            return Ok(Some(Found::Rejected("backup code already used")));
        }
        cx.argon2_runs.fetch_add(1, Ordering::SeqCst);
        if !codes::verify(&normalized, &row.hash) {
            return Ok(Some(Found::Rejected("wrong code")));
        }
        Ok(Some(Found::Claim(Claim::Code {
            id: row.id,
            method: Method::BACKUP_CODE,
        })))
    }

    fn spent_event(&self) -> Option<&'static str> {
        Some(event::BACKUP_CODE_USED)
    }

    fn lost(&self) -> &'static str {
        "backup code already used"
    }

    fn report(
        &self,
        cx: &Ctx<'_>,
        user: &str,
        _creds: &[Credential],
    ) -> Result<Report, StoreError> {
        Ok(Report {
            codes_left: Some(cx.store.code_count(user, &Method::BACKUP_CODE)?),
            ..Report::default()
        })
    }

    fn issue(&self, cx: &Ctx<'_>, user: &str) -> Result<Option<Issued>, Failure> {
        let n = cx.config.backup_codes.count as usize;
        let mut shown = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let c = codes::generate()?;
            rows.push(NewCode {
                lookup: cx
                    .keys
                    .code_lookup(&Method::BACKUP_CODE, user, &c.normalized),
                hash: codes::hash(&c.normalized)?,
                expires_at: None,
            });
            shown.push(c.display);
        }
        Ok(Some(Issued {
            heading: "Your backup codes (each works once; keep them somewhere safe):",
            shown,
            rows,
        }))
    }
}
