//! The daemon's state shared by all connections, and code verification.

use crate::backup;
use crate::clock::Clock;
use crate::keys::{Keys, SealError};
use crate::log::Logger;
use crate::store::{Store, StoreError, TotpRecord};
use crate::totp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use twofold_config::Config;
use twofold_proto::Secret;

/// Counters the daemon keeps while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    argon2_verifications: AtomicU64,
}

impl Stats {
    /// How many argon2 verifications of backup codes have run so far.
    pub fn argon2_verifications(&self) -> u64 {
        self.argon2_verifications.load(Ordering::SeqCst)
    }
}

/// Which factor accepted a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A TOTP code.
    Totp,
    /// A backup code.
    BackupCode,
}

impl Method {
    /// Name for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::BackupCode => "backup_code",
        }
    }
}

/// The outcome of checking one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code was valid and has now been used up.
    Accepted(Method),
    /// The code was not accepted; the reason is for the log only.
    Rejected(&'static str),
}

/// Checking an answer could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Storage failed; nothing was decided.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The stored secret did not decrypt (wrong key, or a tampered or moved row).
    #[error(transparent)]
    Decrypt(#[from] SealError),
}

/// Everything connections share.
pub(crate) struct Engine {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    store: Mutex<Store>,
    pub log: Logger,
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        keys: Keys,
        store: Store,
        log: Logger,
    ) -> Engine {
        Engine {
            config,
            clock,
            keys,
            store: Mutex::new(store),
            log,
            stats: Arc::new(Stats::default()),
        }
    }

    /// The store. A panic in another connection cannot leave a transaction
    /// open (it rolls back on drop), so a poisoned lock is safe to reuse.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Whether the user has anything a login can check: a confirmed TOTP
    /// credential or an unused backup code.
    pub fn has_login_factor(&self, user: &str) -> Result<bool, StoreError> {
        let store = self.store();
        let confirmed = store.totp(user)?.is_some_and(|t| t.confirmed_at.is_some());
        Ok(confirmed || store.unused_backup_codes(user)? > 0)
    }

    /// Checks a login answer: a TOTP code or a backup code. At most one
    /// argon2 verification runs, and only for a code with a matching lookup.
    pub fn verify_login(&self, user: &str, answer: &Secret) -> Result<Verdict, VerifyError> {
        if answer.len() > backup::MAX_ANSWER {
            return Ok(Verdict::Rejected("answer too long"));
        }
        let typed = answer.expose().trim();
        let cred = self
            .store()
            .totp(user)?
            .filter(|t| t.confirmed_at.is_some());
        if let Some(cred) = cred
            .as_ref()
            .filter(|c| totp::looks_like_code(&c.params, typed))
        {
            return self.verify_totp(cred, typed, Some(self.now()));
        }
        let Some(normalized) = backup::normalize(typed) else {
            return Ok(Verdict::Rejected("not a code"));
        };
        let lookup = self.keys.backup_lookup(user, &normalized);
        let Some(row) = self.store().backup_by_lookup(user, &lookup)? else {
            return Ok(Verdict::Rejected("wrong code"));
        };
        if row.used_at.is_some() {
            return Ok(Verdict::Rejected("backup code already used"));
        }
        self.stats
            .argon2_verifications
            .fetch_add(1, Ordering::SeqCst);
        if !backup::verify(&normalized, &row.hash) {
            return Ok(Verdict::Rejected("wrong code"));
        }
        if self.store().use_backup(row.id, self.now())? {
            Ok(Verdict::Accepted(Method::BackupCode))
        } else {
            Ok(Verdict::Rejected("backup code already used"))
        }
    }

    /// Checks a TOTP code against a confirmed credential and, if it matches,
    /// consumes its time step (atomically: a step opens at most one door).
    pub fn verify_totp(
        &self,
        cred: &TotpRecord,
        code: &str,
        used_at: Option<u64>,
    ) -> Result<Verdict, VerifyError> {
        if !totp::looks_like_code(&cred.params, code) {
            return Ok(Verdict::Rejected("not a code"));
        }
        let secret = self
            .keys
            .open_totp(&cred.user, cred.id, &cred.nonce, &cred.ciphertext)?;
        let step = totp::matching_step(
            &cred.params,
            &secret,
            self.now(),
            self.config.totp.skew,
            code,
        );
        let Some(step) = step else {
            return Ok(Verdict::Rejected("wrong code"));
        };
        if self.store().consume_step(cred.id, step, used_at)? {
            Ok(Verdict::Accepted(Method::Totp))
        } else {
            Ok(Verdict::Rejected("code already used"))
        }
    }
}
