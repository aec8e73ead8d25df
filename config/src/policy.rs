//! `[policy]`: who must use MFA, where, and with which methods.
//!
//! # Precedence (the one place it is written down)
//!
//! For a login of USER to SERVICE from RHOST, the first of these that applies
//! decides whether twofold has a say:
//!
//! 1. USER is in a group of `required_groups`: MFA applies, always. No
//!    exemption and no trusted network can switch it off, and an unenrolled
//!    member is never simply let through (`allow` becomes `enroll`).
//! 2. USER is in a group of `exempt_groups`: exempt (the module returns
//!    `PAM_IGNORE`).
//! 3. RHOST is an IP address inside a `[[policy.trusted_network]]` that lists
//!    SERVICE: exempt. A host name never matches.
//! 4. Otherwise MFA applies.
//!
//! When MFA applies, each setting (`methods`, `unenrolled`) is taken from the
//! rules that match and set it: the `[[policy.service]]` naming SERVICE and
//! every `[[policy.group]]` naming a group of USER. No matching rule sets it:
//! the `[policy]` default. Several do: the strictest wins (methods are
//! intersected; `deny` beats `enroll` beats `allow`), so no rule can loosen
//! another. Group membership is the user's primary group plus supplementary
//! groups from the group database; a user the passwd database does not know
//! is in no group. A rule may name a service or group only once in the file,
//! and a group cannot be both required and exempt.

use crate::net::Cidr;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A second factor a login may accept: the one wire type, whose known
/// members ([`Method::KNOWN`]) are what `methods = [...]` may name.
pub use twofold_proto::Method;

/// What a login does for a user with nothing enrolled. Ordered from the
/// least to the most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unenrolled {
    /// Let the login through without MFA (`PAM_IGNORE`).
    Allow,
    /// Offer enrollment inside the login until a grace deadline, stored when
    /// the user is first seen; refuse after it.
    Enroll,
    /// Refuse: the login prompts and fails exactly as for a wrong code.
    Deny,
}

impl Unenrolled {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Unenrolled::Allow => "allow",
            Unenrolled::Enroll => "enroll",
            Unenrolled::Deny => "deny",
        }
    }
}

/// Who may enroll inside a login during the grace period (`enroll` mode).
/// Whatever the choice, a login that may not enroll may still be let in
/// without MFA until the deadline, as `enroll` mode does; only setting up a
/// factor is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollAtLogin {
    /// Whoever has the password: trust on first use (a stolen password
    /// during the grace period enrolls the thief's authenticator).
    Password,
    /// Only at logins without PAM_RHOST: the console, sudo, su, a screen
    /// locker — never over the network.
    Local,
    /// Only with a one-time token an admin issued for the account.
    Token,
}

impl EnrollAtLogin {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollAtLogin::Password => "password",
            EnrollAtLogin::Local => "local",
            EnrollAtLogin::Token => "token",
        }
    }
}

/// `[policy]`: defaults and the rules. See the module documentation for the
/// precedence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Methods a login accepts unless a rule says otherwise. Default
    /// `["totp", "hotp", "backup_code", "temp_code", "email", "sms", "fido2"]`
    /// (every method this build knows; email is inert until `[email] host`
    /// names a relay, sms until `[sms] provider` names one; FIDO2 is offered
    /// only at local logins, never with PAM_RHOST or to sshd).
    pub methods: Vec<Method>,
    /// What happens to an unenrolled user unless a rule says otherwise.
    /// Default `allow` (twofold is opt-in).
    pub unenrolled: Unenrolled,
    /// How long a required user may keep logging in without enrolling, from
    /// the first login twofold sees (`enroll` mode). Default `7d`.
    pub grace: crate::Seconds,
    /// Who may enroll inside a login (`enroll` mode). Default `password`:
    /// whoever has the password during the grace period (trust on first
    /// use); `local` only at logins without PAM_RHOST (console, sudo, su);
    /// `token` only with a one-time token from `twofold admin enroll-token`.
    pub enroll_at_login: EnrollAtLogin,
    /// Groups whose members must always use MFA. Default: none.
    pub required_groups: Vec<String>,
    /// Groups whose members skip MFA (unless also in a required group). Default: none.
    pub exempt_groups: Vec<String>,
    /// Per-service rules (`[[policy.service]]`).
    pub service: Vec<ServiceRule>,
    /// Per-group rules (`[[policy.group]]`).
    pub group: Vec<GroupRule>,
    /// Source networks that skip MFA for named services (`[[policy.trusted_network]]`).
    pub trusted_network: Vec<TrustedNetwork>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            methods: Method::KNOWN.to_vec(),
            unenrolled: Unenrolled::Allow,
            grace: crate::Seconds(7 * 86_400),
            enroll_at_login: EnrollAtLogin::Password,
            required_groups: Vec::new(),
            exempt_groups: Vec::new(),
            service: Vec::new(),
            group: Vec::new(),
            trusted_network: Vec::new(),
        }
    }
}

/// `[[policy.service]]`: settings for logins to the named PAM services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    /// PAM service names (`sshd`, `sudo`, `login`, `gdm-password`…).
    pub services: Vec<String>,
    /// Methods accepted for these services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<Method>>,
    /// Unenrolled users on these services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unenrolled: Option<Unenrolled>,
}

/// `[[policy.group]]`: settings for members of the named groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// Group names.
    pub groups: Vec<String>,
    /// Methods accepted for members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<Method>>,
    /// Unenrolled members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unenrolled: Option<Unenrolled>,
}

/// `[[policy.trusted_network]]`: logins to `services` from `networks` skip MFA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedNetwork {
    /// CIDR networks matched against PAM_RHOST (`10.0.0.0/8`, `2001:db8::/32`).
    pub networks: Vec<Cidr>,
    /// The PAM services this trust applies to.
    pub services: Vec<String>,
}

/// The login being decided.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// PAM_USER.
    pub user: &'a str,
    /// The user's groups (primary first); empty for an unknown user.
    pub groups: &'a [String],
    /// PAM_SERVICE.
    pub service: &'a str,
    /// PAM_RHOST, if set.
    pub rhost: Option<&'a str>,
}

/// What the policy says about one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// twofold has no say (`PAM_IGNORE`); `why` names the rule.
    Exempt {
        /// The rule that exempted the login.
        why: String,
    },
    /// MFA applies.
    Mfa(Effective),
}

/// The settings of a login to which MFA applies, with where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// Methods the login accepts (may be empty when rules exclude each other:
    /// then no login succeeds).
    pub methods: Vec<Method>,
    /// The rules that decided `methods`.
    pub methods_from: Vec<String>,
    /// What happens when the user has nothing enrolled.
    pub unenrolled: Unenrolled,
    /// The rule that decided `unenrolled`.
    pub unenrolled_from: String,
    /// The required group the user is in, if any.
    pub required_by: Option<String>,
}

impl Effective {
    /// Whether the user must have a factor here (`unenrolled` is not `allow`).
    pub fn is_required(&self) -> bool {
        self.unenrolled != Unenrolled::Allow
    }
}

/// How a rule is named in explanations.
fn describe(kind: &str, names: &[String]) -> String {
    format!("[[policy.{kind}]] {}", names.join(","))
}

impl PolicyConfig {
    /// Whether any setting depends on the user's groups (required or exempt
    /// groups, group rules); when none does, deciding needs no group lookup.
    pub fn uses_groups(&self) -> bool {
        !self.required_groups.is_empty() || !self.exempt_groups.is_empty() || !self.group.is_empty()
    }

    /// Decides one login; see the module documentation for the precedence.
    pub fn decide(&self, s: &Subject<'_>) -> Decision {
        let in_group = |list: &[String]| {
            s.groups
                .iter()
                .find(|g| list.contains(g))
                .map(String::as_str)
        };
        let required_by = in_group(&self.required_groups).map(str::to_owned);
        if required_by.is_none() {
            if let Some(g) = in_group(&self.exempt_groups) {
                return Decision::Exempt {
                    why: format!("group {g} is in policy.exempt_groups"),
                };
            }
            if let Some(why) = self.trusted(s) {
                return Decision::Exempt { why };
            }
        }
        let mut methods: Option<Vec<Method>> = None;
        let mut methods_from = Vec::new();
        let mut unenrolled: Option<(Unenrolled, String)> = None;
        let mut apply = |m: &Option<Vec<Method>>, u: Option<Unenrolled>, from: String| {
            if let Some(m) = m {
                methods = Some(match methods.take() {
                    None => m.clone(),
                    Some(prev) => prev.into_iter().filter(|x| m.contains(x)).collect(),
                });
                methods_from.push(from.clone());
            }
            if let Some(u) = u {
                if unenrolled.as_ref().is_none_or(|(prev, _)| u > *prev) {
                    unenrolled = Some((u, from));
                }
            }
        };
        for r in &self.service {
            if r.services.iter().any(|x| x == s.service) {
                apply(&r.methods, r.unenrolled, describe("service", &r.services));
            }
        }
        for r in &self.group {
            if r.groups.iter().any(|g| s.groups.contains(g)) {
                apply(&r.methods, r.unenrolled, describe("group", &r.groups));
            }
        }
        let (methods, methods_from) = match methods {
            Some(m) => (m, methods_from),
            None => (self.methods.clone(), vec!["policy.methods".to_owned()]),
        };
        let (mut unenrolled, mut unenrolled_from) =
            unenrolled.unwrap_or((self.unenrolled, "policy.unenrolled".to_owned()));
        if let Some(g) = &required_by {
            if unenrolled == Unenrolled::Allow {
                unenrolled = Unenrolled::Enroll;
                unenrolled_from = format!("group {g} is in policy.required_groups");
            }
        }
        let mut methods = methods;
        methods.sort();
        methods.dedup();
        Decision::Mfa(Effective {
            methods,
            methods_from,
            unenrolled,
            unenrolled_from,
            required_by,
        })
    }

    fn trusted(&self, s: &Subject<'_>) -> Option<String> {
        let ip: IpAddr = s.rhost?.trim().parse().ok()?;
        self.trusted_network.iter().find_map(|t| {
            if !t.services.iter().any(|x| x == s.service) {
                return None;
            }
            let net = t.networks.iter().find(|n| n.contains(ip))?;
            Some(format!(
                "rhost {ip} is in trusted network {net} for {}",
                s.service
            ))
        })
    }

    /// Whether a user with `groups` must keep a factor on some service:
    /// the reason when a login anywhere (any named service, or any other,
    /// from no trusted network) would not simply let them in unenrolled.
    pub fn required_somewhere(&self, user: &str, groups: &[String]) -> Option<String> {
        let other = "\u{0}any-other-service";
        let services = self
            .service
            .iter()
            .flat_map(|r| r.services.iter().map(String::as_str))
            .chain([other]);
        for service in services {
            let s = Subject {
                user,
                groups,
                service,
                rhost: None,
            };
            if let Decision::Mfa(e) = self.decide(&s) {
                if e.is_required() {
                    let on = if service == other {
                        "every service".to_owned()
                    } else {
                        service.to_owned()
                    };
                    return Some(format!(
                        "policy requires two-factor authentication for {user} on {on} ({})",
                        e.unenrolled_from
                    ));
                }
            }
        }
        None
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
