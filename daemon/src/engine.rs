//! The daemon's shared state — configuration, clock, keys, store, factor
//! registry, log — and the few things every connection does with it:
//! audit, policy, account lookups.
//!
//! The configuration in force lives in [`Shared`] and is replaced whole by
//! a reload (SIGHUP, `reload.rs`). Connections never read it there: each
//! login or request works through an [`Engine`], the shared state with the
//! snapshot of the configuration taken when it began, so a login runs to
//! its end under the configuration it started with.

use crate::accounts::{Account, Directory};
use crate::audit::syslog::Syslog;
use crate::audit::{self, event, AuditEvent};
use crate::budget::WriteBudget;
use crate::clock::Clock;
use crate::crypto::keys::Keys;
use crate::factors::{Ctx, Registry};
use crate::log::Logger;
use crate::store::{CommitStats, Durability, Store, StoreError};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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

/// Everything connections share. The configuration in force is read
/// through [`Shared::current_config`] (a reload replaces it) or, by
/// connections, through the snapshot an [`Engine`] holds.
pub(crate) struct Shared {
    /// The configuration in force: replaced whole, never changed in place.
    config: RwLock<Arc<Config>>,
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
    /// Where audit lines go (`[audit] syslog_socket`): replaced with the
    /// configuration when a reload changes it.
    syslog: RwLock<Arc<Syslog>>,
    next_prune: AtomicU64,
    /// The channels codes and notices are sent through.
    pub channels: crate::dispatch::Channels,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// The shared state as one login or request sees it: [`Shared`], plus the
/// configuration that was in force when the login or request began. A
/// reload replaces the daemon's configuration, never this snapshot.
pub(crate) struct Engine {
    /// The configuration this login or request runs under, start to end.
    pub config: Arc<Config>,
    shared: Arc<Shared>,
}

impl Deref for Engine {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Shared {
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
    ) -> Shared {
        let syslog = Syslog::new(config.audit.syslog_socket.clone());
        Shared {
            config: RwLock::new(Arc::new(config)),
            clock: clock.clone(),
            keys,
            store,
            factors,
            log,
            stats,
            directory,
            budget: WriteBudget::default(),
            syslog: RwLock::new(Arc::new(syslog)),
            next_prune: AtomicU64::new(0),
            channels: crate::dispatch::Channels::new(clock),
        }
    }

    /// The configuration in force now. A login or request reads the
    /// snapshot of its [`Engine`] (`engine.config`) instead, so that a
    /// reload never changes it halfway. (Not named `config`: through
    /// `Engine`'s `Deref`, `engine.config()` would then quietly read this
    /// one instead of the login's.)
    pub fn current_config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The view a login or request starting now works with: the shared
    /// state and the configuration in force now.
    pub fn engine(self: &Arc<Shared>) -> Engine {
        Engine {
            config: self.current_config(),
            shared: self.clone(),
        }
    }

    /// Puts `config` in force for every login and request that starts
    /// from now on (those in progress keep theirs); a changed
    /// `[audit] syslog_socket` takes effect with it.
    pub fn install(&self, config: Config) {
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        if current.audit.syslog_socket != config.audit.syslog_socket {
            let syslog = Syslog::new(config.audit.syslog_socket.clone());
            *self.syslog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(syslog);
        }
        *current = Arc::new(config);
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Appends events to the audit chain (durable) and sends their syslog
    /// lines.
    pub fn audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let now = self.now();
        let recs = self
            .store
            .append_audit(now, events.to_vec(), Durability::Durable)?;
        self.syslog_records(&recs);
        Ok(())
    }

    /// Sends the syslog lines of rows already in the table.
    pub fn syslog_records(&self, recs: &[AuditRecord]) {
        if recs.is_empty() {
            return;
        }
        let syslog = self
            .syslog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for r in recs {
            if let Err(Some(w)) =
                syslog.send(audit::severity(&r.event), r.at, &audit::syslog_text(r))
            {
                self.log.event("warning", &[("error", &w)]);
            }
        }
    }

    /// Retention: drops audit rows older than `[audit] retain` (keeping the
    /// chain verifiable from an anchor) and failures too old to count, as
    /// the configuration in force now says. Run by the daemon's retention
    /// thread (`server::start_retention`), never inside a request.
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
        let config = self.current_config();
        let cutoff = now.saturating_sub(config.audit.retain.0);
        let rl = &config.rate_limit;
        let oldest_counted = now.saturating_sub(rl.source_window.0.max(rl.user_window.0));
        let pruned = AuditEvent::new(event::AUDIT_PRUNED, "", "twofoldd")
            .with("retain", &config.audit.retain.to_string());
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
        Ok(self.factors.any_usable(&snap))
    }
}

impl Engine {
    /// The same view with the configuration in force now (for the next
    /// request of a connection that makes several).
    pub fn renewed(&self) -> Engine {
        self.shared.engine()
    }

    /// What a factor works with.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            config: &self.config,
            keys: &self.keys,
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            argon2_runs: &self.stats.argon2_verifications,
            channels: &self.channels,
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
}
