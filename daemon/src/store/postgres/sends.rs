//! Email codes and the notification outbox on PostgreSQL: not yet. What
//! authorizes a change is spent for real (so a code never authorizes twice);
//! storing a code to send fails with a clear error (the login or enrollment
//! is told the code could not be sent, and it is audited); there is no
//! outbox, so no notice is queued in fleet mode yet.

use super::audit::append;
use super::login::spend;
use super::PgStore;
use crate::audit::AuditEvent;
use crate::store::{Change, Claim, CodeSend, CodeSendOutcome, Notice, Sends, StoreError};
use twofold_proto::Method;

impl Sends for PgStore {
    fn store_sent_code(&self, _c: CodeSend) -> Result<CodeSendOutcome, StoreError> {
        Err(StoreError::Database(
            "the postgres backend does not keep sent codes yet (email codes need the sqlite \
             backend for now)"
                .into(),
        ))
    }

    fn sent_code_missed(
        &self,
        _user: &str,
        _method: &Method,
        _bound: &str,
        _max_tries: u32,
        _now: u64,
    ) -> Result<(), StoreError> {
        // No sent code is ever stored here: there is none to count against.
        Ok(())
    }

    fn notices_due(&self, _now: u64, _limit: u32) -> Result<Vec<Notice>, StoreError> {
        Ok(Vec::new())
    }

    fn notice_done(&self, _id: i64, _now: u64, _error: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn notice_retry(&self, _id: i64, _next_at: u64, _error: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn spend_authorization(
        &self,
        claim: Claim,
        now: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Change, StoreError> {
        self.write(true, "", |tx, ctx| {
            if !spend(tx, &claim, now, false)? {
                return Ok(Change::Lost);
            }
            Ok(Change::Done(append(tx, ctx, now, &events)?))
        })
    }
}
