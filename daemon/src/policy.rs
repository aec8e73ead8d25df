//! Policy inputs the daemon resolves itself: the target user's groups from
//! the group database (never from the client), then the configured rules
//! (precedence documented in `twofold_config::policy`).

use crate::accounts::Account;
use crate::engine::Engine;
use twofold_config::{Decision, Subject};

impl Engine {
    /// Looks the user up (cached, see [`crate::accounts`]); their groups
    /// only when a policy setting depends on groups. An error means NSS
    /// could not answer (fail closed).
    pub(crate) fn account(&self, user: &str) -> std::io::Result<Account> {
        let want_groups = self.config.policy.uses_groups();
        self.directory.account(user, want_groups)
    }

    /// What the policy says about a login.
    pub(crate) fn decide(
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
    pub(crate) fn required_somewhere(&self, user: &str) -> std::io::Result<Option<String>> {
        let a = self.account(user)?;
        Ok(self.config.policy.required_somewhere(user, &a.groups))
    }
}
