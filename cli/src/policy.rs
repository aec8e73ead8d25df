//! `twofold config check --user NAME --service S [--rhost IP]`: the
//! effective policy of one login and the rule that decided each part,
//! computed by the same code the daemon runs.

use crate::error::CliError;
use twofold_config::groups::user_groups;
use twofold_config::{Config, Decision, Remember, Subject, Unenrolled};

/// Explains the policy for a login of `user` to `service` from `rhost`.
pub fn explain(
    config: &Config,
    user: &str,
    service: &str,
    rhost: Option<&str>,
) -> Result<String, CliError> {
    let found = user_groups(user)
        .map_err(|e| CliError::Usage(format!("cannot read the passwd/group databases: {e}")))?;
    let (groups, who) = match found {
        Some(g) => {
            let list = g.groups.join(", ");
            (g.groups, format!("{user} (groups: {list})"))
        }
        None => (
            Vec::new(),
            format!("{user} (unknown to the passwd database: in no group)"),
        ),
    };
    let from = match rhost {
        Some(r) if r.parse::<std::net::IpAddr>().is_err() => {
            format!(" from {r} (not an IP address: no trusted network can match it)")
        }
        Some(r) => format!(" from {r}"),
        None => String::new(),
    };
    let mut s = format!("Policy for a login to {service}{from}:\n  user:        {who}\n");
    match config.policy.decide(&Subject {
        user,
        groups: &groups,
        service,
        rhost,
    }) {
        Decision::Exempt { why } => {
            s.push_str(&format!("  MFA:         exempt ({why})\n"));
        }
        Decision::Mfa(e) => {
            match &e.required_by {
                Some(g) => s.push_str(&format!(
                    "  MFA:         required (group {g} is in policy.required_groups)\n"
                )),
                None => s.push_str("  MFA:         applies to enrolled users\n"),
            }
            let methods: Vec<&str> = e.methods.iter().map(|m| m.as_str()).collect();
            let methods = if methods.is_empty() {
                "none (the matching rules exclude each other: every login is refused)".into()
            } else {
                methods.join(", ")
            };
            s.push_str(&format!(
                "  methods:     {methods}   (decided by {})\n",
                e.methods_from.join(" and ")
            ));
            let action = match e.unenrolled {
                Unenrolled::Enroll => format!("enroll (grace {})", config.policy.grace),
                other => other.as_str().to_owned(),
            };
            s.push_str(&format!(
                "  unenrolled:  {action}   (decided by {})\n",
                e.unenrolled_from
            ));
            s.push_str(&remember_line(config, service, &groups));
        }
    }
    Ok(s)
}

/// The `remember:` line: what a second factor on this service remembers,
/// for how long, or why nothing.
fn remember_line(config: &Config, service: &str, groups: &[String]) -> String {
    match config.remember.decide(service, groups) {
        Remember::Off(why) => format!("  remember:    nothing   ({why})\n"),
        Remember::SshKey(ttl) => format!(
            "  remember:    the SSH key sshd verified, for {ttl}   (remember.ssh_services, remember.ssh_key)\n"
        ),
        Remember::Session(ttl) => format!(
            "  remember:    the login session, for {ttl}   (remember.session_services, remember.session)\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_each_kind_of_decision() {
        let c = Config::parse(
            "[policy]\nrequired_groups = [\"root\"]\nexempt_groups = [\"nogroup\"]\n\
             [[policy.service]]\nservices = [\"sshd\"]\nunenrolled = \"deny\"\n\
             [[policy.trusted_network]]\nnetworks = [\"10.0.0.0/8\"]\nservices = [\"sshd\"]\n",
            "t.toml",
        )
        .unwrap();
        let t = explain(&c, "root", "sshd", Some("10.1.1.1")).unwrap();
        assert!(t.contains("user:        root (groups: root"), "{t}");
        assert!(t.contains("MFA:         required (group root"), "{t}");
        assert!(
            t.contains("unenrolled:  deny   (decided by [[policy.service]] sshd)"),
            "{t}"
        );
        let t = explain(&c, "nobody", "sshd", None).unwrap();
        assert!(
            t.contains("exempt (group nogroup is in policy.exempt_groups)"),
            "{t}"
        );
        let t = explain(&c, "no-such-user-twofold", "sshd", Some("10.2.2.2")).unwrap();
        assert!(t.contains("unknown to the passwd database"), "{t}");
        assert!(t.contains("trusted network 10.0.0.0/8"), "{t}");
        let t = explain(&c, "no-such-user-twofold", "login", Some("host.example")).unwrap();
        assert!(
            t.contains("remember:    nothing   (login is in neither remember.ssh_services"),
            "{t}"
        );
        assert!(t.contains("not an IP address"), "{t}");
        assert!(
            t.contains("unenrolled:  allow   (decided by policy.unenrolled)"),
            "{t}"
        );
    }

    #[test]
    fn shows_what_a_service_remembers() {
        let c = Config::parse(
            "[remember]\nssh_services = [\"sshd\"]\nsession_services = [\"sudo\"]\n\
             forbid_groups = [\"root\"]\n",
            "t.toml",
        )
        .unwrap();
        let t = explain(&c, "no-such-user-twofold", "sshd", None).unwrap();
        assert!(
            t.contains("remember:    the SSH key sshd verified, for 30d"),
            "{t}"
        );
        let t = explain(&c, "no-such-user-twofold", "sudo", None).unwrap();
        assert!(t.contains("remember:    the login session, for 5m"), "{t}");
        let t = explain(&c, "root", "sshd", None).unwrap();
        assert!(
            t.contains("remember:    nothing   (group root is in remember.forbid_groups)"),
            "{t}"
        );
    }
}
