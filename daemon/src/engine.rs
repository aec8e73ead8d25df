//! The daemon's shared state — configuration, clock, keys, store, factor
//! registry, log — and the few things every connection does with it:
//! audit, policy, account lookups.

use crate::accounts::{Account, Directory};
use crate::audit::syslog::Syslog;
use crate::audit::{self, event, AuditEvent};
use crate::budget::WriteBudget;
use crate::clock::Clock;
use crate::crypto::keys::Keys;
use crate::factors::{Ctx, Registry};
use crate::log::Logger;
use crate::store::{CommitStats, Durability, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use twofold_config::{Config, Decision, Subject};
use twofold_proto::AuditRecord;

/// How often retention runs (checked on each audit write).
const PRUNE_EVERY: u64 = 3600;

/// Counters the daemon keeps while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) argon2_verifications: AtomicU64,
    pub(crate) commits: Arc<CommitStats>,
    pub(crate) nss_lookups: Arc<AtomicU64>,
}

impl Stats {
    /// How many passwd/group answers came from NSS (not the daemon's cache).
    pub fn nss_lookups(&self) -> u64 {
        self.nss_lookups.load(Ordering::SeqCst)
    }

    /// The group commit's counters: how many logins' writes were committed
    /// in how many transactions.
    pub fn commits(&self) -> &CommitStats {
        &self.commits
    }

    /// How many argon2 verifications of backup codes have run so far.
    pub fn argon2_verifications(&self) -> u64 {
        self.argon2_verifications.load(Ordering::SeqCst)
    }
}

/// Everything connections share.
pub(crate) struct Engine {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    pub store: Box<dyn Store>,
    pub factors: Registry,
    pub log: Logger,
    pub stats: Arc<Stats>,
    /// The passwd and group databases, cached while unchanged.
    pub directory: Directory,
    /// What each unprivileged uid may still make the daemon write.
    pub budget: WriteBudget,
    syslog: Syslog,
    next_prune: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    #[allow(
        clippy::too_many_arguments,
        reason = "each part is built by the caller, which opens and wires them"
    )]
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        keys: Keys,
        store: Box<dyn Store>,
        factors: Registry,
        log: Logger,
        stats: Arc<Stats>,
        directory: Directory,
    ) -> Engine {
        let syslog = Syslog::new(config.audit.syslog_socket.clone());
        Engine {
            config,
            clock,
            keys,
            store,
            factors,
            log,
            stats,
            directory,
            budget: WriteBudget::default(),
            syslog,
            next_prune: AtomicU64::new(0),
        }
    }

    /// What a factor works with.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            config: &self.config,
            keys: &self.keys,
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            argon2_runs: &self.stats.argon2_verifications,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Appends events to the audit chain (durable) and sends their syslog
    /// lines; runs retention when it is due.
    pub fn audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let now = self.now();
        let recs = self
            .store
            .append_audit(now, events.to_vec(), Durability::Durable)?;
        self.syslog_records(&recs);
        self.prune_if_due(now);
        Ok(())
    }

    /// Sends the syslog lines of rows already in the table.
    pub fn syslog_records(&self, recs: &[AuditRecord]) {
        for r in recs {
            if let Err(Some(w)) =
                self.syslog
                    .send(audit::severity(&r.event), r.at, &audit::syslog_text(r))
            {
                self.log.event("warning", &[("error", &w)]);
            }
        }
    }

    /// Retention: drops audit rows older than `[audit] retain` (keeping the
    /// chain verifiable from an anchor) and failures too old to count.
    pub fn prune_if_due(&self, now: u64) {
        let due = self.next_prune.load(Ordering::SeqCst);
        if now < due
            || self
                .next_prune
                .compare_exchange(
                    due,
                    now.saturating_add(PRUNE_EVERY),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_err()
        {
            return;
        }
        let cutoff = now.saturating_sub(self.config.audit.retain.0);
        let rl = &self.config.rate_limit;
        let oldest_counted = now.saturating_sub(rl.source_window.0.max(rl.user_window.0));
        let pruned = AuditEvent::new(event::AUDIT_PRUNED, "", "twofoldd")
            .with("retain", &self.config.audit.retain.to_string());
        match self.store.prune(oldest_counted, cutoff, now, pruned) {
            Ok(recs) => self.syslog_records(&recs),
            Err(e) => self.log.event("audit", &[("prune_error", &e.to_string())]),
        }
    }

    /// Puts deferred writes on disk (twofoldd calls this every 100 ms and
    /// when it stops); a failure is logged and retried next time.
    pub fn sync_deferred(&self) {
        if let Err(e) = self.store.sync_deferred() {
            self.log
                .event("database", &[("error", &format!("syncing the log: {e}"))]);
        }
    }

    /// Looks the user up (cached, see [`crate::accounts`]); their groups
    /// only when a policy setting depends on groups. An error means NSS
    /// could not answer (fail closed).
    pub fn account(&self, user: &str) -> std::io::Result<Account> {
        let want_groups = self.config.policy.uses_groups();
        self.directory.account(user, want_groups)
    }

    /// What the policy says about a login (the target user's groups come
    /// from the group database, never from the client).
    pub fn decide(
        &self,
        user: &str,
        groups: &[String],
        service: &str,
        rhost: Option<&str>,
    ) -> Decision {
        self.config.policy.decide(&Subject {
            user,
            groups,
            service,
            rhost,
        })
    }

    /// Why `user` must keep a factor somewhere, if they must.
    pub fn required_somewhere(&self, user: &str) -> std::io::Result<Option<String>> {
        let a = self.account(user)?;
        Ok(self.config.policy.required_somewhere(user, &a.groups))
    }

    /// Spends one of the peer's writes (unprivileged peers only); `Err`
    /// holds what to tell it when it has none left. The first refusal of
    /// a run is logged, the rest are not (a flood cannot fill the log).
    pub fn admit_write(&self, uid: u32, what: &str) -> Result<(), String> {
        if uid == 0 {
            return Ok(());
        }
        self.budget.take(uid, self.now()).map_err(|r| {
            if r.first {
                self.log.event(
                    "rate_limited",
                    &[("peer_uid", &uid.to_string()), ("request", what)],
                );
            }
            format!(
                "too many requests from this user; try again in {} s",
                r.retry_in
            )
        })
    }

    /// Whether the user has anything a login can check.
    pub fn has_login_factor(&self, user: &str) -> Result<bool, StoreError> {
        let snap = self.store.snapshot(user, "", self.now())?;
        Ok(self.factors.all().any(|f| f.usable(&snap)))
    }
}
