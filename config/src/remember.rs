//! `[remember]`: which logins may be let through without a prompt because
//! the device was proven and remembered after an earlier second factor.
//! Off by default: no service is named.
//!
//! Two kinds of proof, never an IP address:
//! - `ssh_key`: for the services in `ssh_services` (sshd with
//!   `AuthenticationMethods publickey,keyboard-interactive`), the public
//!   key sshd verified before PAM ran (`SSH_AUTH_INFO_0`), remembered for
//!   `ssh_key` after a successful second factor;
//! - `session`: for the local services in `session_services` (sudo, su,
//!   screen lockers), the login session the asking process runs in (its
//!   session id, terminal and the session leader's start time, read by the
//!   daemon from `/proc` for the peer's pid), remembered for `session`.
//!
//! A member of a group in `forbid_groups` is never remembered (and a
//! remembered device of theirs is not honoured), whatever else applies;
//! a login the policy exempts has nothing to remember.

use crate::check::{at, name_ok, Problem};
use crate::locate::Seg;
use crate::Seconds;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `[remember]`. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RememberConfig {
    /// PAM services on which the SSH key sshd verified is remembered
    /// (`["sshd"]`). Default: none (off).
    pub ssh_services: Vec<String>,
    /// How long a remembered SSH key lets its user in, 1m to 365d, from the
    /// second factor that remembered it. Default `30d`.
    pub ssh_key: Seconds,
    /// Local PAM services on which the login session is remembered
    /// (`["sudo", "su"]`). Default: none (off).
    pub session_services: Vec<String>,
    /// How long a remembered session lets its user in, 1s to 1h. Default `5m`.
    pub session: Seconds,
    /// Members of these groups are never remembered. Default: none.
    pub forbid_groups: Vec<String>,
}

impl Default for RememberConfig {
    fn default() -> Self {
        RememberConfig {
            ssh_services: Vec::new(),
            ssh_key: Seconds(30 * 86_400),
            session_services: Vec::new(),
            session: Seconds(5 * 60),
            forbid_groups: Vec::new(),
        }
    }
}

/// What may be remembered for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remember {
    /// Nothing: the reason, for `twofold config check`.
    Off(String),
    /// The SSH key sshd verified, for this long.
    SshKey(Seconds),
    /// The login session of the asking process, for this long.
    Session(Seconds),
}

impl RememberConfig {
    /// What may be remembered for a login of a member of `groups` to
    /// `service` (to which MFA applies).
    pub fn decide(&self, service: &str, groups: &[String]) -> Remember {
        let listed = |list: &[String]| list.iter().any(|s| s == service);
        let kind = if listed(&self.ssh_services) {
            Remember::SshKey(self.ssh_key)
        } else if listed(&self.session_services) {
            Remember::Session(self.session)
        } else {
            return Remember::Off(format!(
                "{service} is in neither remember.ssh_services nor remember.session_services"
            ));
        };
        if let Some(g) = groups.iter().find(|g| self.forbid_groups.contains(g)) {
            return Remember::Off(format!("group {g} is in remember.forbid_groups"));
        }
        kind
    }

    /// Whether any service may be remembered at all.
    pub fn enabled(&self) -> bool {
        !self.ssh_services.is_empty() || !self.session_services.is_empty()
    }
}

/// Checks `[remember]`: names, ranges, no service in both lists.
pub(crate) fn check(r: &RememberConfig) -> Option<Problem> {
    const R: Seg<'static> = Seg::Key("remember");
    if !(60..=365 * 86_400).contains(&r.ssh_key.0) {
        return at(&[R, Seg::Key("ssh_key")], "must be between 1m and 365d");
    }
    if !(1..=3600).contains(&r.session.0) {
        return at(&[R, Seg::Key("session")], "must be between 1s and 1h");
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (key, list) in [
        ("ssh_services", &r.ssh_services),
        ("session_services", &r.session_services),
    ] {
        for (i, s) in list.iter().enumerate() {
            let path = [R, Seg::Key(key), Seg::Index(i)];
            if let Err(e) = name_ok("service", s) {
                return at(&path, e);
            }
            if let Some(first) = seen.insert(s, key) {
                let msg = if first == key {
                    format!("service {s:?} is listed twice")
                } else {
                    format!("service {s:?} is in both remember.{first} and remember.{key}")
                };
                return at(&path, msg);
            }
        }
    }
    let mut groups: HashMap<&str, ()> = HashMap::new();
    for (i, g) in r.forbid_groups.iter().enumerate() {
        let path = [R, Seg::Key("forbid_groups"), Seg::Index(i)];
        if let Err(e) = name_ok("group", g) {
            return at(&path, e);
        }
        if groups.insert(g, ()).is_some() {
            return at(&path, format!("group {g:?} is listed twice"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn off_by_default() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(!c.remember.enabled());
        assert!(matches!(c.remember.decide("sshd", &[]), Remember::Off(_)));
    }

    #[test]
    fn services_durations_and_forbidden_groups() {
        let c = Config::parse(
            "[remember]\nssh_services = [\"sshd\"]\nssh_key = \"7d\"\n\
             session_services = [\"sudo\"]\nsession = \"2m\"\nforbid_groups = [\"wheel\"]\n",
            "t.toml",
        )
        .unwrap();
        let r = &c.remember;
        assert_eq!(r.decide("sshd", &[]), Remember::SshKey(Seconds(7 * 86_400)));
        assert_eq!(
            r.decide("sudo", &["staff".into()]),
            Remember::Session(Seconds(120))
        );
        let Remember::Off(why) = r.decide("sshd", &["users".into(), "wheel".into()]) else {
            panic!("a forbidden group is remembered");
        };
        assert_eq!(why, "group wheel is in remember.forbid_groups");
        assert!(matches!(r.decide("login", &[]), Remember::Off(_)));
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        for (text, shown) in [
            (
                "[remember]\nssh_key = \"30s\"\n",
                "t.toml:2: remember.ssh_key: must be between 1m and 365d",
            ),
            (
                "[remember]\n\nsession = \"2h\"\n",
                "t.toml:3: remember.session: must be between 1s and 1h",
            ),
            (
                "[remember]\nssh_services = [\"sshd\"]\nsession_services = [\"su\", \"sshd\"]\n",
                "t.toml:3: remember.session_services[1]: service \"sshd\" is in both remember.ssh_services and remember.session_services",
            ),
            (
                "[remember]\nforbid_groups = [\"a b\"]\n",
                "t.toml:2: remember.forbid_groups[0]: group name \"a b\" must be 1 to 64 printable characters without spaces",
            ),
        ] {
            assert_eq!(Config::parse(text, "t.toml").unwrap_err().to_string(), shown);
        }
        let err = Config::parse("[remember]\nip = true\n", "t.toml").unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
    }
}
