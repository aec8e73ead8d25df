//! `[fido2]`: security keys touched at the machine that runs the login
//! (never offered with PAM_RHOST set or to sshd; that is not configurable).

use crate::check::{at, name_ok, Problem};
use crate::locate::Seg;
use crate::Seconds;
use serde::{Deserialize, Serialize};

/// `[fido2]`. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fido2Config {
    /// How long twofoldd waits for a key's touch before it cancels and asks
    /// for a code instead, 5s to 50s (pam_twofold.so allows a wait 60 s).
    /// Default `30s`.
    pub touch_timeout: Seconds,
    /// PAM services whose logins need user verification from the key (its
    /// PIN or fingerprint, as the key asks for it), not only a touch.
    /// Default: none.
    pub verify_services: Vec<String>,
    /// PAM services (greeters, screen lockers that show information lines
    /// late or not at all) where the cue is a prompt, "Touch your security
    /// key, then press Enter": the key waits for its touch while the
    /// prompt is shown, and an answer without a touch goes to the code
    /// prompt at once. Default: none (the cue is an information line).
    pub cue_prompt_services: Vec<String>,
}

impl Default for Fido2Config {
    fn default() -> Self {
        Fido2Config {
            touch_timeout: Seconds(30),
            verify_services: Vec::new(),
            cue_prompt_services: Vec::new(),
        }
    }
}

impl Fido2Config {
    /// Whether logins of `service` need user verification.
    pub fn verify(&self, service: &str) -> bool {
        self.verify_services.iter().any(|s| s == service)
    }

    /// Whether logins of `service` show the cue as a prompt answered by Enter.
    pub fn cue_prompt(&self, service: &str) -> bool {
        self.cue_prompt_services.iter().any(|s| s == service)
    }
}

pub(crate) fn check(f: &Fido2Config) -> Option<Problem> {
    const F: Seg<'static> = Seg::Key("fido2");
    if !(5..=50).contains(&f.touch_timeout.0) {
        return at(
            &[F, Seg::Key("touch_timeout")],
            "must be between 5s and 50s",
        );
    }
    for (key, list) in [
        ("verify_services", &f.verify_services),
        ("cue_prompt_services", &f.cue_prompt_services),
    ] {
        for (i, s) in list.iter().enumerate() {
            if let Err(e) = name_ok("service", s) {
                return at(&[F, Seg::Key(key), Seg::Index(i)], e);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn defaults_and_limits() {
        let c = Config::default();
        assert_eq!(c.fido2.touch_timeout.0, 30);
        assert!(!c.fido2.verify("gdm-password"));
        let c = Config::parse(
            "[fido2]\ntouch_timeout = \"20s\"\nverify_services = [\"gdm-password\"]\n",
            "t.toml",
        )
        .unwrap();
        assert!(c.fido2.verify("gdm-password") && !c.fido2.verify("sudo"));
        let e = Config::parse("[fido2]\ntouch_timeout = \"2m\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("touch_timeout"), "{e}");
        let e = Config::parse("[fido2]\nverify_services = [\"a b\"]\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("verify_services"), "{e}");
    }

    #[test]
    fn cue_prompt_services_name_services_and_are_checked_like_verify_services() {
        assert!(!Config::default().fido2.cue_prompt("lightdm"));
        let c = Config::parse(
            "[fido2]\ncue_prompt_services = [\"lightdm\", \"xscreensaver\"]\n",
            "t.toml",
        )
        .unwrap();
        assert!(c.fido2.cue_prompt("lightdm") && c.fido2.cue_prompt("xscreensaver"));
        assert!(!c.fido2.cue_prompt("sudo") && !c.fido2.verify("lightdm"));
        let e = Config::parse(
            "[fido2]\ncue_prompt_services = [\"ok\", \"bad name\"]\n",
            "t.toml",
        )
        .unwrap_err();
        let e = e.to_string();
        assert!(e.contains("cue_prompt_services") && e.contains('1'), "{e}");
    }
}
