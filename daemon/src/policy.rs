//! Policy inputs the daemon resolves itself: the target user's groups from
//! the group database (never from the client), then the configured rules
//! (precedence documented in `twofold_config::policy`).

use crate::engine::Engine;
use twofold_config::groups::user_groups;
use twofold_config::{Decision, Subject};

/// The account a login or request is about, as the system knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// Whether the passwd database knows the user.
    pub known: bool,
    /// Primary and supplementary group names (empty when unknown).
    pub groups: Vec<String>,
}

/// Looks the user up; an error means NSS could not answer (fail closed).
pub(crate) fn account(user: &str) -> std::io::Result<Account> {
    Ok(match user_groups(user)? {
        Some(g) => Account {
            known: true,
            groups: g.groups,
        },
        None => Account {
            known: false,
            groups: Vec::new(),
        },
    })
}

impl Engine {
    /// What the policy says about a login.
    pub(crate) fn decide(
        &self,
        user: &str,
        account: &Account,
        service: &str,
        rhost: Option<&str>,
    ) -> Decision {
        self.config.policy.decide(&Subject {
            user,
            groups: &account.groups,
            service,
            rhost,
        })
    }

    /// Why `user` must keep a factor somewhere, if they must.
    pub(crate) fn required_somewhere(&self, user: &str) -> std::io::Result<Option<String>> {
        let a = account(user)?;
        Ok(self.config.policy.required_somewhere(user, &a.groups))
    }
}
