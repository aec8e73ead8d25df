//! Checks across keys: overlapping rules and empty lists in `[policy]`,
//! ranges in `[rate_limit]` and `[audit]`. Each failure names the line of
//! the offending value.

use crate::locate::{line_of_path, Seg};
use crate::{Config, ConfigError, Method};
use std::collections::HashMap;

/// A refused value: its path in the file and what is wrong.
pub(crate) struct Problem {
    path: Vec<Seg<'static>>,
    message: String,
}

fn key_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Runs every cross-key check; the first problem is reported.
pub(crate) fn check(config: &Config, text: &str, origin: &str) -> Result<(), ConfigError> {
    let problem = policy(config)
        .or_else(|| limits(config))
        .or_else(|| crate::remember::check(&config.remember))
        .or_else(|| {
            crate::email::problem(&config.email).map(|(path, message)| Problem { path, message })
        })
        .or_else(|| {
            crate::sms::problem(&config.sms).map(|(path, message)| Problem { path, message })
        })
        .or_else(|| crate::fido2::check(&config.fido2));
    match problem {
        None => Ok(()),
        Some(p) => Err(ConfigError::Invalid {
            path: origin.to_owned(),
            line: line_of_path(text, &p.path),
            key: key_name(&p.path),
            message: p.message,
        }),
    }
}

pub(crate) fn at(path: &[Seg<'static>], message: impl Into<String>) -> Option<Problem> {
    Some(Problem {
        path: path.to_vec(),
        message: message.into(),
    })
}

pub(crate) fn name_ok(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{kind} name {name:?} must be 1 to 64 printable characters without spaces"
        ));
    }
    Ok(())
}

/// The first method in `methods` (at `path`) that this build does not
/// implement, as a problem naming it and the known ones.
fn known_methods(path: &[Seg<'static>], methods: &[Method]) -> Option<Problem> {
    let (i, m) = methods.iter().enumerate().find(|(_, m)| !m.is_known())?;
    let mut at_index = path.to_vec();
    at_index.push(Seg::Index(i));
    at(
        &at_index,
        format!(
            "unknown method {:?} (known: {})",
            m.as_str(),
            Method::known_list()
        ),
    )
}

fn policy(config: &Config) -> Option<Problem> {
    let p = &config.policy;
    const POLICY: Seg<'static> = Seg::Key("policy");
    if p.methods.is_empty() {
        return at(
            &[POLICY, Seg::Key("methods")],
            format!("must name at least one method ({})", Method::known_list()),
        );
    }
    if let Some(problem) = known_methods(&[POLICY, Seg::Key("methods")], &p.methods) {
        return Some(problem);
    }
    // Group lists: names valid, no repeats, not both required and exempt.
    let mut listed: HashMap<&str, &str> = HashMap::new();
    for (key, list) in [
        ("required_groups", &p.required_groups),
        ("exempt_groups", &p.exempt_groups),
    ] {
        for (i, g) in list.iter().enumerate() {
            let path = [POLICY, Seg::Key(key), Seg::Index(i)];
            if let Err(e) = name_ok("group", g) {
                return at(&path, e);
            }
            if let Some(first) = listed.insert(g, key) {
                let msg = if first == key {
                    format!("group {g:?} is listed twice")
                } else {
                    format!("group {g:?} is in both policy.{first} and policy.{key}")
                };
                return at(&path, msg);
            }
        }
    }
    // Rules: each service or group named by one rule only.
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let rules = p
        .service
        .iter()
        .map(|r| ("service", "services", &r.services, &r.methods, r.unenrolled))
        .chain(
            p.group
                .iter()
                .map(|r| ("group", "groups", &r.groups, &r.methods, r.unenrolled)),
        );
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (kind, key, names, methods, unenrolled) in rules {
        let n = index.entry(kind).or_default();
        let i = *n;
        *n += 1;
        let base = [POLICY, Seg::Key(kind), Seg::Index(i)];
        if names.is_empty() {
            return at(
                &[base[0], base[1], base[2], Seg::Key(key)],
                format!("must name at least one {kind}"),
            );
        }
        for (j, name) in names.iter().enumerate() {
            let path = [base[0], base[1], base[2], Seg::Key(key), Seg::Index(j)];
            if let Err(e) = name_ok(kind, name) {
                return at(&path, e);
            }
            if let Some(first) = seen.insert((kind, name), i) {
                let msg = if first == i {
                    format!("{kind} {name:?} is named twice in this rule")
                } else {
                    format!(
                        "{kind} {name:?} is already named by policy.{kind}[{first}]: rules must not overlap"
                    )
                };
                return at(&path, msg);
            }
        }
        let methods_key = [base[0], base[1], base[2], Seg::Key("methods")];
        if methods.as_ref().is_some_and(Vec::is_empty) {
            return at(
                &methods_key,
                format!("must name at least one method ({})", Method::known_list()),
            );
        }
        if let Some(problem) = methods
            .as_ref()
            .and_then(|m| known_methods(&methods_key, m))
        {
            return Some(problem);
        }
        if methods.is_none() && unenrolled.is_none() {
            return at(&base, "the rule sets neither methods nor unenrolled");
        }
    }
    let mut trusted: HashMap<(String, &str), usize> = HashMap::new();
    for (i, t) in p.trusted_network.iter().enumerate() {
        let base = [POLICY, Seg::Key("trusted_network"), Seg::Index(i)];
        if t.networks.is_empty() {
            return at(
                &[base[0], base[1], base[2], Seg::Key("networks")],
                "must name at least one network",
            );
        }
        if t.services.is_empty() {
            return at(
                &[base[0], base[1], base[2], Seg::Key("services")],
                "must name at least one service: a trusted network skips MFA only for the services listed",
            );
        }
        for (j, s) in t.services.iter().enumerate() {
            if let Err(e) = name_ok("service", s) {
                return at(
                    &[
                        base[0],
                        base[1],
                        base[2],
                        Seg::Key("services"),
                        Seg::Index(j),
                    ],
                    e,
                );
            }
            for (k, n) in t.networks.iter().enumerate() {
                if let Some(first) = trusted.insert((n.to_string(), s), i) {
                    return at(
                        &[base[0], base[1], base[2], Seg::Key("networks"), Seg::Index(k)],
                        format!(
                            "network {n} is already trusted for {s} by policy.trusted_network[{first}]: rules must not overlap"
                        ),
                    );
                }
            }
        }
    }
    None
}

fn limits(config: &Config) -> Option<Problem> {
    let r = &config.rate_limit;
    let rl = Seg::Key("rate_limit");
    let checks = [
        (
            "source_failures",
            (1..=1000).contains(&r.source_failures),
            "must be 1 to 1000",
        ),
        (
            "user_failures",
            (1..=10_000).contains(&r.user_failures),
            "must be 1 to 10000",
        ),
        (
            "source_window",
            r.source_window.0 >= 1,
            "must be at least 1s",
        ),
        ("user_window", r.user_window.0 >= 1, "must be at least 1s"),
        (
            "source_lockout",
            r.source_lockout.0 >= 1,
            "must be at least 1s",
        ),
        ("user_lockout", r.user_lockout.0 >= 1, "must be at least 1s"),
    ];
    for (key, ok, msg) in checks {
        if !ok {
            return at(&[rl, Seg::Key(key)], msg);
        }
    }
    if config.audit.retain.0 < 3600 {
        return at(
            &[Seg::Key("audit"), Seg::Key("retain")],
            "must be at least 1h",
        );
    }
    None
}
