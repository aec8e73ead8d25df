//! `config_parse`: [`Config::parse`], as `twofoldd` and `twofold config
//! check` read `twofold.toml`, on arbitrary text.

use twofold_config::{Config, ConfigError, Decision, Subject, Unenrolled};

/// The name the text is parsed under, which every error must carry.
const ORIGIN: &str = "/etc/twofold/fuzz.toml";

/// Properties: no panic; every error names the file and a line of it (1 to
/// the number of lines), and `Invalid` a key; an accepted file renders
/// ([`Config::to_toml`]) to text that parses to the same configuration; the
/// lenient reader of a refused file's syslog socket agrees with the strict
/// one on an accepted file; and, for logins of a member of each required
/// group, the policy applies MFA (nothing exempts them).
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let syslog = Config::syslog_socket_of(text);
    let config = match Config::parse(text, ORIGIN) {
        Ok(c) => c,
        Err(e) => return check_error(text, &e),
    };
    assert_eq!(
        syslog, config.audit.syslog_socket,
        "syslog_socket_of disagrees with the parse"
    );
    let rendered = config.to_toml();
    match Config::parse(&rendered, "rendered") {
        Ok(again) => assert_eq!(again, config, "render and parse changed the configuration"),
        Err(e) => panic!("the rendering of an accepted file is refused: {e}\n{rendered}"),
    }
    policy(&config);
}

fn check_error(text: &str, e: &ConfigError) {
    let lines = text.matches('\n').count() + 1;
    let (path, line) = match e {
        ConfigError::Read { .. } => panic!("parse gave a read error: {e}"),
        ConfigError::Parse { path, line, .. } => (path, *line),
        ConfigError::Invalid {
            path, line, key, ..
        } => {
            assert!(!key.is_empty(), "an Invalid error names no key: {e}");
            (path, *line)
        }
    };
    assert_eq!(path, ORIGIN, "the error names another file: {e}");
    assert!(
        (1..=lines).contains(&line),
        "the error names line {line} of a {lines}-line file: {e}"
    );
    assert!(
        e.to_string().starts_with(&format!("{ORIGIN}:{line}: ")),
        "the message does not start with file:line: {e}"
    );
}

/// Decides logins of members of the required groups, to each service the
/// rules name and to one they do not, from no host and from each trusted
/// network: every one is MFA, and never `allow`.
fn policy(config: &Config) {
    let p = &config.policy;
    let mut services: Vec<&str> = p
        .service
        .iter()
        .flat_map(|r| r.services.iter().map(String::as_str))
        .chain(
            p.trusted_network
                .iter()
                .flat_map(|t| t.services.iter().map(String::as_str)),
        )
        .take(8)
        .collect();
    services.push("fuzz-other-service");
    let hosts: Vec<String> = p
        .trusted_network
        .iter()
        .flat_map(|t| &t.networks)
        .take(4)
        .map(|n| {
            n.to_string()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let rhosts = std::iter::once(None).chain(hosts.iter().map(|h| Some(h.as_str())));
    let rhosts: Vec<Option<&str>> = rhosts.collect();
    for group in p.required_groups.iter().take(4) {
        let groups = [
            group.clone(),
            p.exempt_groups.first().cloned().unwrap_or_default(),
        ];
        for &service in &services {
            for &rhost in &rhosts {
                let s = Subject {
                    user: "fuzz",
                    groups: &groups,
                    service,
                    rhost,
                };
                match p.decide(&s) {
                    Decision::Mfa(e) => {
                        assert_ne!(e.unenrolled, Unenrolled::Allow, "{s:?}: allow");
                        assert_eq!(e.required_by.as_ref(), Some(group), "{s:?}");
                    }
                    Decision::Exempt { why } => panic!("{s:?}: a required member exempt: {why}"),
                }
            }
        }
        assert!(
            p.required_somewhere("fuzz", &groups).is_some(),
            "a required group member is required nowhere"
        );
    }
}
