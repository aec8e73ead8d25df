//! Remembered devices inside a login: a device the policy lets be
//! remembered is let through without a prompt when a second factor
//! remembered it before, and remembered when this login's second factor
//! succeeds (`success` in `mod.rs`).

use super::Login;
use crate::audit::event;
use crate::devices::{self, Proof};
use crate::store::{NewDevice, RememberedOutcome};
use twofold_proto::Response;

/// The audit method of a login a remembered device let through.
pub const REMEMBERED: &str = "remembered";

impl Login<'_, '_> {
    /// Reads what this login proves that the policy lets be remembered
    /// (kept for a success to remember) and, when a device among it is
    /// remembered, lets the login through: `true` when the login ended.
    pub(super) fn remembered(&mut self, groups: &[String]) -> bool {
        let remember = self.engine.config.remember.decide(&self.b.service, groups);
        let found = devices::proofs(&remember, self.conn.peer, self.b.ssh_auth_info.as_deref());
        let proofs = match found {
            Ok(p) => p,
            Err(why) => {
                // Nothing is remembered and nothing lets it through: the
                // person is asked as usual.
                self.engine
                    .log
                    .event("remember", &[("user", &self.b.user), ("ignored", &why)]);
                return false;
            }
        };
        let Some(kind) = proofs.first().map(|p| p.kind) else {
            return false;
        };
        let whats: Vec<String> = proofs.iter().map(|p| p.what.clone()).collect();
        self.remember = proofs;
        let now = self.engine.now();
        let success = self
            .base
            .renamed(event::LOGIN_SUCCESS)
            .method(REMEMBERED)
            .with("kind", kind);
        let outcome = self.engine.store.remembered_login(
            &self.b.user,
            &self.source,
            kind,
            &whats,
            now,
            success,
        );
        match outcome {
            Ok(RememberedOutcome::NotFound) => false,
            Ok(RememberedOutcome::Locked(l)) => {
                self.refuse_locked(l);
                true
            }
            Ok(RememberedOutcome::Done(d, recs)) => {
                self.engine.syslog_records(&recs);
                let id = d.id.to_string();
                self.log(
                    "success",
                    &[("method", REMEMBERED), ("device", &id), ("what", &d.what)],
                );
                self.conn.send(&Response::Success);
                true
            }
            Err(e) => {
                self.unavailable(&e);
                true
            }
        }
    }

    /// The devices a success now remembers.
    pub(super) fn to_remember(&self, now: u64) -> Vec<NewDevice> {
        self.remember
            .iter()
            .map(|p: &Proof| NewDevice {
                kind: p.kind.to_owned(),
                what: p.what.clone(),
                service: self.b.service.clone(),
                expires_at: now.saturating_add(p.ttl),
            })
            .collect()
    }
}
