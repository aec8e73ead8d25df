use super::*;
use crate::Config;

fn policy(toml: &str) -> PolicyConfig {
    Config::parse(toml, "t.toml").unwrap().policy
}

fn decide(p: &PolicyConfig, groups: &[&str], service: &str, rhost: Option<&str>) -> Decision {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    p.decide(&Subject {
        user: "alice",
        groups: &groups,
        service,
        rhost,
    })
}

fn mfa(d: Decision) -> Effective {
    match d {
        Decision::Mfa(e) => e,
        other => panic!("expected MFA, got {other:?}"),
    }
}

#[test]
fn defaults_keep_todays_behaviour() {
    let p = PolicyConfig::default();
    let e = mfa(decide(&p, &["alice"], "sshd", None));
    // Every method this build knows; email and sms are inert until their
    // section names a relay or provider (nobody can enroll before that).
    assert_eq!(
        e.methods,
        vec![
            Method::TOTP,
            Method::HOTP,
            Method::BACKUP_CODE,
            Method::TEMP_CODE,
            Method::EMAIL,
            Method::SMS,
            Method::FIDO2
        ]
    );
    assert_eq!(e.unenrolled, Unenrolled::Allow);
    assert!(!e.is_required());
    assert_eq!(p.required_somewhere("alice", &["alice".into()]), None);
}

const FULL: &str = r#"
[policy]
unenrolled = "allow"
required_groups = ["wheel"]
exempt_groups = ["robots"]

[[policy.service]]
services = ["login"]
methods = ["backup_code"]

[[policy.service]]
services = ["sshd"]
unenrolled = "deny"

[[policy.group]]
groups = ["contractors"]
methods = ["totp"]
unenrolled = "allow"

[[policy.group]]
groups = ["staff"]
unenrolled = "enroll"

[[policy.trusted_network]]
networks = ["10.0.0.0/8", "2001:db8::/32"]
services = ["sshd"]
"#;

#[test]
fn required_group_beats_exemptions_and_trusted_networks() {
    let p = policy(FULL);
    let e = mfa(decide(&p, &["wheel", "robots"], "sshd", Some("10.1.1.1")));
    assert_eq!(e.required_by.as_deref(), Some("wheel"));
    assert_eq!(e.unenrolled, Unenrolled::Deny, "the sshd rule is stricter");
    let e = mfa(decide(&p, &["wheel"], "sudo", None));
    assert_eq!(e.unenrolled, Unenrolled::Enroll, "allow becomes enroll");
    assert!(e.unenrolled_from.contains("required_groups"), "{e:?}");
}

#[test]
fn exempt_group_and_trusted_network_skip_mfa() {
    let p = policy(FULL);
    match decide(&p, &["robots"], "sshd", None) {
        Decision::Exempt { why } => assert!(why.contains("robots"), "{why}"),
        other => panic!("{other:?}"),
    }
    match decide(&p, &["x"], "sshd", Some("10.2.3.4")) {
        Decision::Exempt { why } => assert!(why.contains("10.0.0.0/8"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Trusted for sshd only, and only for addresses inside.
    mfa(decide(&p, &["x"], "sudo", Some("10.2.3.4")));
    mfa(decide(&p, &["x"], "sshd", Some("192.0.2.1")));
    mfa(decide(&p, &["x"], "sshd", Some("host.example")));
    mfa(decide(&p, &["x"], "sshd", None));
}

#[test]
fn strictest_of_matching_rules_wins() {
    let p = policy(FULL);
    // contractors allow + sshd deny → deny; methods from the group rule.
    let e = mfa(decide(&p, &["contractors"], "sshd", None));
    assert_eq!(e.unenrolled, Unenrolled::Deny);
    assert_eq!(e.methods, vec![Method::TOTP]);
    // login allows backup codes only, contractors totp only: nothing left.
    let e = mfa(decide(&p, &["contractors"], "login", None));
    assert!(e.methods.is_empty(), "{e:?}");
    assert_eq!(e.methods_from.len(), 2);
    let e = mfa(decide(&p, &["staff"], "login", None));
    assert_eq!(e.methods, vec![Method::BACKUP_CODE]);
    assert_eq!(e.unenrolled, Unenrolled::Enroll);
}

#[test]
fn required_somewhere_sees_service_rules() {
    let p = policy(FULL);
    let why = p.required_somewhere("bob", &["x".into()]).unwrap();
    assert!(why.contains("sshd"), "{why}");
    assert!(p.required_somewhere("r", &["robots".into()]).is_none());
    let plain = policy("[policy]\nrequired_groups = [\"wheel\"]\n");
    assert!(plain.required_somewhere("a", &["users".into()]).is_none());
    assert!(plain
        .required_somewhere("a", &["wheel".into()])
        .unwrap()
        .contains("every service"));
}

#[test]
fn full_example_round_trips_through_to_toml() {
    let c = Config::parse(FULL, "t.toml").unwrap();
    let again = Config::parse(&c.to_toml(), "rendered").unwrap();
    assert_eq!(c, again);
}

fn refused(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn bad_policy_is_refused_naming_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[policy]\nmethods = [\"totp\", \"carrier_pigeon\"]\n",
            "t.toml:2:",
        ),
        (
            "[[policy.service]]\nservices = [\"sshd\"]\nunenrolled = \"deny\"\n\n[[policy.service]]\nservices = [\"login\", \"sshd\"]\nmethods = [\"totp\"]\n",
            "t.toml:6: policy.service[1].services[1]: service \"sshd\" is already named by policy.service[0]",
        ),
        (
            "[[policy.group]]\ngroups = [\"wheel\"]\nunenrolled = \"deny\"\n[[policy.group]]\ngroups = [\"wheel\"]\nunenrolled = \"enroll\"\n",
            "t.toml:5: policy.group[1].groups[0]: group \"wheel\" is already named",
        ),
        (
            "[policy]\nrequired_groups = [\"wheel\"]\nexempt_groups = [\"robots\",\n  \"wheel\"]\n",
            "t.toml:4: policy.exempt_groups[1]: group \"wheel\" is in both policy.required_groups and policy.exempt_groups",
        ),
        (
            "[[policy.trusted_network]]\nservices = [\"sshd\"]\nnetworks = [\"10.0.0.0/33\"]\n",
            "t.toml:3:",
        ),
        (
            "[[policy.trusted_network]]\nservices = [\"sshd\"]\nnetworks = [\"10.0.0.1/8\"]\n",
            "t.toml:3:",
        ),
        ("[policy]\ngrace = \"-1d\"\n", "t.toml:2:"),
        ("[policy]\ngrace = -3\n", "t.toml:2:"),
        ("[rate_limit]\nuser_lockout = \"-15m\"\n", "t.toml:2:"),
        ("[rate_limit]\nsource_failures = 0\n", "t.toml:2: rate_limit.source_failures: must be 1 to 1000"),
        ("[policy]\nunenrolled = \"maybe\"\n", "t.toml:2:"),
        ("[policy]\nmethods = []\n", "t.toml:2: policy.methods: must name at least one method"),
        (
            "[[policy.service]]\nservices = [\"sshd\"]\n",
            "t.toml:1: policy.service[0]: the rule sets neither methods nor unenrolled",
        ),
        (
            "[[policy.trusted_network]]\nnetworks = [\"10.0.0.0/8\"]\nservices = []\n",
            "t.toml:3: policy.trusted_network[0].services: must name at least one service",
        ),
        ("[audit]\nretain = \"10m\"\n", "t.toml:2: audit.retain: must be at least 1h"),
        ("[policy]\nexempt_groups = [\"a b\"]\n", "t.toml:2: policy.exempt_groups[0]:"),
    ];
    for (text, want) in cases {
        let got = refused(text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
    // The unknown method and negative durations say what is wrong.
    assert!(refused(cases[0].0).contains("sms"));
    assert!(refused("[policy]\ngrace = \"-1d\"\n").contains("negative"));
    assert!(refused("[policy]\ngrace = -3\n").contains("negative"));
    assert!(refused(cases[4].0).contains("prefix length"));
}
