//! `twofold doctor`: reads the host's configuration the way sshd, libpam
//! and twofoldd will, and says what would stop MFA from working or let
//! someone past it — each finding with what is wrong, why it matters and
//! the exact fix. It changes nothing.
//!
//! `sshd.rs` reads `sshd -T`; `pam.rs` walks the PAM stacks (includes and
//! substacks flattened) of the services twofold is used with; `host.rs`
//! checks the daemon, the modes of its files and the clock.

mod host;
mod pam;
mod sshd;

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::Io;
use serde_json::json;
use std::path::Path;
use twofold_config::Config;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Works, but weaker or more fragile than it should be.
    Warning,
    /// MFA does not work, or can be bypassed, or someone can be locked out.
    Error,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// A stable name, e.g. `sshd.authenticationmethods_unset`.
    pub id: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What is wrong, naming the file (and line) or setting.
    pub what: String,
    /// Why it matters.
    pub why: String,
    /// The exact fix.
    pub fix: String,
}

/// Where the checks read from; tests point them elsewhere.
#[derive(Debug)]
pub struct Host<'a> {
    /// The PAM configuration directory.
    pub pam_d: &'a Path,
    /// The configuration of twofoldd (the file, or the built-in defaults).
    pub config: &'a Config,
}

/// Runs every check and prints the findings; [`CliError::Doctor`] (exit
/// 9 for warnings, 10 for errors) when any is more than information.
pub fn run(daemon: &Daemon, config: &Config, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    let host = Host {
        pam_d: Path::new("/etc/pam.d"),
        config,
    };
    let sshd = sshd::read();
    let mut findings = sshd::check(&sshd);
    findings.extend(pam::check(&host, &sshd));
    findings.extend(host::check(daemon, &host));
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    let text = if json {
        let list: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({"id": f.id, "severity": f.severity.name(), "what": f.what, "why": f.why, "fix": f.fix})
            })
            .collect();
        format!("{}\n", json!({ "findings": list }))
    } else {
        render(&findings)
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))?;
    let count = findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .count();
    if count == 0 {
        return Ok(());
    }
    Err(CliError::Doctor {
        count,
        errors: findings.iter().any(|f| f.severity == Severity::Error),
    })
}

fn render(findings: &[Finding]) -> String {
    let serious = findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .count();
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "{:<8}{}\n        why: {}\n        fix: {}\n",
            f.severity.name().to_uppercase(),
            f.what,
            f.why,
            f.fix
        ));
    }
    if serious == 0 {
        s.push_str("No problems found.\n");
    } else {
        s.push_str(&format!("{serious} problem(s) found.\n"));
    }
    s
}
