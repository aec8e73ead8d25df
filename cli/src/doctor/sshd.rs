//! sshd's effective settings (`sshd -T`) and what they mean for twofold.

use super::{Finding, Severity};
use std::collections::BTreeMap;
use std::process::Command;

/// `sshd -T`'s settings (lowercase keys), or why they could not be read.
#[derive(Debug, Default)]
pub struct Sshd {
    /// Key → value; empty when sshd is not installed.
    pub settings: BTreeMap<String, String>,
    /// Why `sshd -T` gave nothing, when it did not.
    pub unreadable: Option<String>,
}

impl Sshd {
    fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// Whether sshd will run the PAM conversation of keyboard-interactive
    /// (where twofold asks) for the logins it accepts.
    pub fn runs_kbdint(&self) -> bool {
        self.get("usepam") == Some("yes") && self.get("kbdinteractiveauthentication") == Some("yes")
    }

    /// Whether sshd is there to check at all.
    pub fn present(&self) -> bool {
        !self.settings.is_empty()
    }
}

/// Runs `sshd -T`.
pub fn read() -> Sshd {
    let out = match Command::new("sshd").arg("-T").output() {
        Ok(o) => o,
        Err(e) => {
            return Sshd {
                unreadable: Some(format!("sshd -T: {e}")),
                ..Sshd::default()
            }
        }
    };
    if !out.status.success() {
        return Sshd {
            unreadable: Some(format!(
                "sshd -T failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            ..Sshd::default()
        };
    }
    Sshd {
        settings: parse(&String::from_utf8_lossy(&out.stdout)),
        unreadable: None,
    }
}

/// `key value` lines.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// The findings about sshd's own settings.
pub fn check(s: &Sshd) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(why) = &s.unreadable {
        out.push(Finding {
            id: "sshd.unreadable",
            severity: Severity::Info,
            what: format!("sshd's settings could not be read ({why})"),
            why: "without them the SSH checks are skipped".into(),
            fix: "if sshd is installed, run `sshd -T` as root and fix what it reports".into(),
        });
        return out;
    }
    let methods = s.get("authenticationmethods").unwrap_or("any");
    if s.get("usepam") != Some("yes") {
        out.push(Finding {
            id: "sshd.usepam_off",
            severity: Severity::Error,
            what: "sshd: UsePAM is not yes".into(),
            why: "sshd never runs the PAM stack, so twofold is never asked: SSH logins have no second factor".into(),
            fix: "set `UsePAM yes` in /etc/ssh/sshd_config, then `systemctl reload ssh`".into(),
        });
    }
    if s.get("kbdinteractiveauthentication") != Some("yes") {
        out.push(Finding {
            id: "sshd.kbdint_off",
            severity: Severity::Error,
            what: "sshd: KbdInteractiveAuthentication is not yes (Debian 12's default is no)".into(),
            why: "twofold asks for the code through keyboard-interactive; without it the question cannot be shown".into(),
            fix: "set `KbdInteractiveAuthentication yes` in /etc/ssh/sshd_config".into(),
        });
    }
    if methods == "any" {
        out.push(Finding {
            id: "sshd.authenticationmethods_unset",
            severity: Severity::Error,
            what: "sshd: AuthenticationMethods is not set".into(),
            why: "a login with a key (or GSSAPI, or host-based) is accepted without ever running PAM's auth stack: no second factor for it".into(),
            fix: "set `AuthenticationMethods publickey,keyboard-interactive` (key then code) or `keyboard-interactive` (password then code)".into(),
        });
    } else if !methods.contains("keyboard-interactive") {
        out.push(Finding {
            id: "sshd.authenticationmethods_no_kbdint",
            severity: Severity::Error,
            what: format!("sshd: AuthenticationMethods {methods} never asks keyboard-interactive"),
            why: "twofold's question is never asked over SSH".into(),
            fix: "add keyboard-interactive to each list, e.g. `AuthenticationMethods publickey,keyboard-interactive`".into(),
        });
    }
    if s.get("passwordauthentication") == Some("yes") {
        out.push(Finding {
            id: "sshd.passwordauthentication_on",
            severity: Severity::Warning,
            what: "sshd: PasswordAuthentication is yes".into(),
            why: "sshd's password method hands PAM one password and cannot show a second question; with AuthenticationMethods unset it is a way around keyboard-interactive".into(),
            fix: "set `PasswordAuthentication no` (keyboard-interactive asks the password itself)".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        check(&Sshd {
            settings: parse(text),
            unreadable: None,
        })
        .iter()
        .map(|f| f.id)
        .collect()
    }

    #[test]
    fn debian_defaults_are_flagged_and_a_good_setup_is_not() {
        assert_eq!(
            ids("usepam yes\nkbdinteractiveauthentication no\npasswordauthentication yes\nauthenticationmethods any\n"),
            [
                "sshd.kbdint_off",
                "sshd.authenticationmethods_unset",
                "sshd.passwordauthentication_on"
            ]
        );
        assert!(ids("usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\nauthenticationmethods publickey,keyboard-interactive\n").is_empty());
        assert_eq!(
            ids("usepam no\nkbdinteractiveauthentication yes\npasswordauthentication no\nauthenticationmethods publickey\n"),
            ["sshd.usepam_off", "sshd.authenticationmethods_no_kbdint"]
        );
    }
}
