//! Confirming an enrollment through the seam: the factor checks the fresh
//! answer; the confirmation, a fresh set of recovery codes and the audit
//! row are stored in one transaction.

use super::{Ctx, Enroll, Registry};
use crate::audit::AuditEvent;
use crate::failure::{fail, Failure};
use crate::store::Change;
use twofold_proto::{AuditRecord, ErrorKind, Secret};

/// What a confirmed enrollment hands back.
#[derive(Debug)]
pub struct Confirmed {
    /// What to say above the recovery codes.
    pub heading: &'static str,
    /// Recovery codes, shown once.
    pub codes: Vec<Secret>,
    /// The audit rows written (for syslog).
    pub records: Vec<AuditRecord>,
}

/// Confirms `user`'s pending enrollment in `enroll` with `answer`, issuing
/// the registry's recovery codes, and records `enrolled` with it.
pub fn confirm(
    cx: &Ctx<'_>,
    registry: &Registry,
    enroll: &dyn Enroll,
    user: &str,
    answer: &Secret,
    enrolled: AuditEvent,
) -> Result<Confirmed, Failure> {
    let c = enroll.confirm(cx, user, answer)?;
    let mut codes = Vec::new();
    let mut heading = "";
    let mut rows = None;
    if let Some(r) = registry.recovery() {
        if let Some(issued) = r.issue(cx, user)? {
            heading = issued.heading;
            codes = issued.shown;
            rows = Some((r.method(), issued.rows));
        }
    }
    match cx
        .store
        .confirm(c.id, c.counter, rows, cx.now(), vec![enrolled])?
    {
        Change::Done(records) => Ok(Confirmed {
            heading,
            codes,
            records,
        }),
        Change::Lost | Change::Nothing => Err(fail(
            ErrorKind::NotFound,
            "no pending enrollment; start one first",
        )),
    }
}
