//! Options given on the PAM line, e.g.
//! `auth required pam_twofold.so socket=/run/twofold/twofold.sock timeout=5`.
//!
//! Every option is one row of `SPECS`: adding an option means adding a
//! field with its default to [`Options`] and one row here. An unknown,
//! repeated or malformed option is refused, never silently defaulted.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Longest accepted `timeout=`, in seconds; beyond it sshd's own login grace
/// time would end the login first.
pub const MAX_TIMEOUT_SECS: u64 = 300;

/// The module's settings, with compiled-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `socket=PATH`: the daemon's socket, an absolute path.
    pub socket: PathBuf,
    /// `timeout=N` or `timeout=Ns`: how long to wait for each daemon reply.
    pub timeout: Duration,
    /// `debug`: extra syslog lines (never a code or secret).
    pub debug: bool,
    /// `failmode=secure|safe`: what to return when the daemon cannot be
    /// reached or stays silent before the conversation starts.
    pub failmode: FailMode,
    /// `single_prompt=ask|verify`: this line's part in single-prompt mode
    /// (see [`crate::single`]); `None` for an ordinary line.
    pub single_prompt: Option<SinglePrompt>,
    /// `digits=N`: length of a TOTP code, used only to split a single-prompt
    /// answer; must match the daemon's `[totp].digits`.
    pub digits: usize,
    /// `daemon_uid=N`: a uid besides root that the daemon's socket may be
    /// held by (SO_PEERCRED of the connection), for a twofoldd running as a
    /// dedicated user. `None`: root only.
    pub daemon_uid: Option<u32>,
    /// `inline_messages=auto|yes|no`: carry information and error lines
    /// inside the next prompt (OpenSSH bug 2876).
    pub inline_messages: Inline,
    /// What a login the daemon refused returns (`denied_code=`).
    pub denied_code: DeniedCode,
}

/// What the module returns when the daemon is unreachable or silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Deny: `PAM_AUTHINFO_UNAVAIL` (the default).
    Secure,
    /// Allow: `PAM_SUCCESS`, logged on authpriv.
    Safe,
}

/// A line's part in single-prompt mode (`single_prompt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinglePrompt {
    /// `ask`: the first line. Asks the combined question, hands the
    /// password on as PAM_AUTHTOK, keeps the code for `verify`, and returns
    /// PAM_IGNORE without contacting the daemon.
    Ask,
    /// `verify`: the line after the password module. Runs the daemon's
    /// conversation, answering its first question with the kept code.
    Verify,
}

/// What an admin whose PAM line still says bare `single_prompt` is told.
pub const SINGLE_PROMPT_STACK: &str = "it let twofold check the code before the password \
(a wrong password could spend a code or lock the user out); write three lines instead: \
`auth requisite pam_twofold.so single_prompt=ask`, \
`auth requisite pam_unix.so use_first_pass`, \
`auth required pam_twofold.so single_prompt=verify`";

/// When information and error lines are carried inside the next prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    /// For services whose name starts with `sshd` (the default).
    Auto,
    /// Always.
    Yes,
    /// Never: every line is its own conversation message.
    No,
}

/// The PAM code of a login the daemon refused (wrong codes, a lock, no
/// allowed method): whether the application may simply ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedCode {
    /// `cred_insufficient` for services whose name starts with `sudo`,
    /// `auth_err` elsewhere (the default).
    Auto,
    /// PAM_AUTH_ERR: an ordinary failure; the application may ask again.
    AuthErr,
    /// PAM_MAXTRIES: "do not try again" (sshd ends the connection, login(1)
    /// exits). sudo 1.9 asks again after it.
    MaxTries,
    /// PAM_CRED_INSUFFICIENT, which sudo 1.9 treats as final: it stops
    /// instead of asking the password again for two more rounds, each of
    /// which would cost the configured tries again.
    CredInsufficient,
}

impl Options {
    /// The PAM code a refused login returns for `service`.
    pub fn denied_code_for(&self, service: &str) -> i32 {
        use crate::ffi::{PAM_AUTH_ERR, PAM_CRED_INSUFFICIENT, PAM_MAXTRIES};
        match self.denied_code {
            DeniedCode::Auto if service.starts_with("sudo") => PAM_CRED_INSUFFICIENT,
            DeniedCode::Auto | DeniedCode::AuthErr => PAM_AUTH_ERR,
            DeniedCode::MaxTries => PAM_MAXTRIES,
            DeniedCode::CredInsufficient => PAM_CRED_INSUFFICIENT,
        }
    }

    /// Whether lines are carried inside the next prompt for `service`.
    pub fn inline_for(&self, service: &str) -> bool {
        match self.inline_messages {
            Inline::Auto => service.starts_with("sshd"),
            Inline::Yes => true,
            Inline::No => false,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket: PathBuf::from(twofold_proto::DEFAULT_SOCKET),
            timeout: Duration::from_secs(5),
            debug: false,
            failmode: FailMode::Secure,
            single_prompt: None,
            digits: 6,
            daemon_uid: None,
            inline_messages: Inline::Auto,
            denied_code: DeniedCode::Auto,
        }
    }
}

/// Why the PAM line's options were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// An option this module does not know.
    Unknown(String),
    /// The same option given twice.
    Duplicate(&'static str),
    /// An option that needs `=value` was given without one.
    MissingValue(&'static str),
    /// A flag option was given a value.
    UnexpectedValue(&'static str),
    /// The value could not be used.
    Malformed {
        /// The option's name.
        name: &'static str,
        /// The value as given (shortened).
        value: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An option whose old form is refused because it was unsafe; the
    /// text says what to write instead.
    Retired {
        /// The option's name.
        name: &'static str,
        /// Why, and what to write instead.
        hint: &'static str,
    },
    /// An argument was not valid UTF-8.
    NotUtf8,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown(arg) => write!(f, "unknown option {arg:?}"),
            OptionError::Duplicate(name) => write!(f, "option {name} given twice"),
            OptionError::MissingValue(name) => {
                write!(f, "option {name} needs a value ({name}=...)")
            }
            OptionError::UnexpectedValue(name) => write!(f, "option {name} takes no value"),
            OptionError::Malformed {
                name,
                value,
                reason,
            } => write!(f, "bad value {value:?} for option {name}: {reason}"),
            OptionError::Retired { name, hint } => {
                write!(
                    f,
                    "option {name} without a value is no longer accepted: {hint}"
                )
            }
            OptionError::NotUtf8 => write!(f, "an option is not valid UTF-8"),
        }
    }
}

impl std::error::Error for OptionError {}

/// Whether an option is a bare flag or `name=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Value,
}

/// One known option: its name, shape and how it changes [`Options`].
struct Spec {
    name: &'static str,
    kind: Kind,
    /// For a value option that used to be a flag: why the bare flag is
    /// refused (never read as a default).
    retired_flag: Option<&'static str>,
    /// Applies the value (`""` for flags); the error is the reason it was refused.
    apply: fn(&mut Options, &str) -> Result<(), &'static str>,
}

/// Every option the module accepts.
const SPECS: &[Spec] = &[
    Spec {
        name: "socket",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            if !v.starts_with('/') {
                return Err("must be an absolute path");
            }
            // sun_path holds 108 bytes including the terminating NUL.
            if v.len() > 107 {
                return Err("longer than a Unix socket path may be");
            }
            o.socket = PathBuf::from(v);
            Ok(())
        },
    },
    Spec {
        name: "timeout",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            let digits = v.strip_suffix('s').unwrap_or(v);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("must be a whole number of seconds, e.g. 5 or 5s");
            }
            match digits.parse::<u64>() {
                Ok(n) if (1..=MAX_TIMEOUT_SECS).contains(&n) => {
                    o.timeout = Duration::from_secs(n);
                    Ok(())
                }
                _ => Err("must be between 1 and 300 seconds"),
            }
        },
    },
    Spec {
        name: "debug",
        kind: Kind::Flag,
        retired_flag: None,
        apply: |o, _| {
            o.debug = true;
            Ok(())
        },
    },
    Spec {
        name: "failmode",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            o.failmode = match v {
                "secure" => FailMode::Secure,
                "safe" => FailMode::Safe,
                _ => return Err("must be secure or safe"),
            };
            Ok(())
        },
    },
    Spec {
        name: "single_prompt",
        kind: Kind::Value,
        retired_flag: Some(SINGLE_PROMPT_STACK),
        apply: |o, v| {
            o.single_prompt = Some(match v {
                "ask" => SinglePrompt::Ask,
                "verify" => SinglePrompt::Verify,
                _ => return Err("must be ask or verify"),
            });
            Ok(())
        },
    },
    Spec {
        name: "digits",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            o.digits = match v {
                "6" => 6,
                "7" => 7,
                "8" => 8,
                _ => return Err("must be 6, 7 or 8"),
            };
            Ok(())
        },
    },
    Spec {
        name: "daemon_uid",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err("must be a numeric uid");
            }
            match v.parse::<u32>() {
                // (uid_t)-1 means "no change" to the kernel, never a user.
                Ok(n) if n != u32::MAX => {
                    o.daemon_uid = Some(n);
                    Ok(())
                }
                _ => Err("must be a uid below 4294967295"),
            }
        },
    },
    Spec {
        name: "inline_messages",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            o.inline_messages = match v {
                "auto" => Inline::Auto,
                "yes" => Inline::Yes,
                "no" => Inline::No,
                _ => return Err("must be auto, yes or no"),
            };
            Ok(())
        },
    },
    Spec {
        name: "denied_code",
        kind: Kind::Value,
        retired_flag: None,
        apply: |o, v| {
            o.denied_code = match v {
                "auto" => DeniedCode::Auto,
                "auth_err" => DeniedCode::AuthErr,
                "maxtries" => DeniedCode::MaxTries,
                "cred_insufficient" => DeniedCode::CredInsufficient,
                _ => return Err("must be auto, auth_err, maxtries or cred_insufficient"),
            };
            Ok(())
        },
    },
];

impl Options {
    /// Parses the PAM line's arguments, starting from the defaults.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Options, OptionError> {
        let mut opts = Options::default();
        let mut seen = [false; SPECS.len()];
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(i) = SPECS.iter().position(|s| s.name == name) else {
                return Err(OptionError::Unknown(shorten(arg)));
            };
            let spec = &SPECS[i];
            if seen[i] {
                return Err(OptionError::Duplicate(spec.name));
            }
            seen[i] = true;
            let value = match (spec.kind, value) {
                (Kind::Flag, None) => "",
                (Kind::Flag, Some(_)) => return Err(OptionError::UnexpectedValue(spec.name)),
                (Kind::Value, None) => {
                    return Err(match spec.retired_flag {
                        Some(hint) => OptionError::Retired {
                            name: spec.name,
                            hint,
                        },
                        None => OptionError::MissingValue(spec.name),
                    })
                }
                (Kind::Value, Some(v)) => v,
            };
            (spec.apply)(&mut opts, value).map_err(|reason| OptionError::Malformed {
                name: spec.name,
                value: shorten(value),
                reason,
            })?;
        }
        Ok(opts)
    }
}

/// Keeps a refused argument short enough for one log line.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, OptionError> {
        Options::parse(args.iter().copied())
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.socket, PathBuf::from("/run/twofold/twofold.sock"));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert!(!o.debug);
        assert_eq!(o.failmode, FailMode::Secure);
        assert_eq!(o.single_prompt, None);
        assert_eq!(o.digits, 6);
        assert_eq!(o.daemon_uid, None);
        assert_eq!(o.inline_messages, Inline::Auto);
    }

    #[test]
    fn every_option_is_applied() {
        let o = parse(&[
            "socket=/tmp/x.sock",
            "timeout=7",
            "debug",
            "failmode=safe",
            "single_prompt=verify",
            "digits=8",
            "daemon_uid=998",
            "inline_messages=no",
        ])
        .unwrap();
        assert_eq!(o.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(o.timeout, Duration::from_secs(7));
        assert!(o.debug);
        assert_eq!(o.failmode, FailMode::Safe);
        assert_eq!(o.single_prompt, Some(SinglePrompt::Verify));
        assert_eq!(o.digits, 8);
        assert_eq!(o.daemon_uid, Some(998));
        assert_eq!(o.inline_messages, Inline::No);
        assert_eq!(
            parse(&["failmode=secure"]).unwrap().failmode,
            FailMode::Secure
        );
        assert_eq!(
            parse(&["single_prompt=ask"]).unwrap().single_prompt,
            Some(SinglePrompt::Ask)
        );
        assert_eq!(parse(&["daemon_uid=0"]).unwrap().daemon_uid, Some(0));
    }

    #[test]
    fn bad_enumerated_values_are_refused() {
        for (bad, name) in [
            ("failmode=", "failmode"),
            ("failmode=Safe", "failmode"),
            ("failmode=open", "failmode"),
            ("failmode=safe ", "failmode"),
            ("digits=5", "digits"),
            ("digits=9", "digits"),
            ("digits=06", "digits"),
            ("inline_messages=1", "inline_messages"),
            ("inline_messages=", "inline_messages"),
            ("single_prompt=", "single_prompt"),
            ("single_prompt=yes", "single_prompt"),
            ("single_prompt=Ask", "single_prompt"),
            ("daemon_uid=", "daemon_uid"),
            ("daemon_uid=-1", "daemon_uid"),
            ("daemon_uid=+5", "daemon_uid"),
            ("daemon_uid=root", "daemon_uid"),
            ("daemon_uid=4294967295", "daemon_uid"),
            ("daemon_uid=99999999999", "daemon_uid"),
        ] {
            match parse(&[bad]) {
                Err(OptionError::Malformed { name: n, .. }) => assert_eq!(n, name, "{bad}"),
                other => panic!("{bad}: expected Malformed, got {other:?}"),
            }
        }
        assert_eq!(
            parse(&["failmode"]),
            Err(OptionError::MissingValue("failmode"))
        );
    }

    /// Issue 10: the bare flag made twofold check the code before the
    /// password. It is refused with what to write instead, never read as
    /// either part of the new stack (`ask` alone would drop the second
    /// factor; `verify` alone would stop asking the combined question).
    #[test]
    fn regression_bare_single_prompt_is_refused_with_the_new_stack() {
        let err = parse(&["single_prompt"]).unwrap_err();
        assert_eq!(
            err,
            OptionError::Retired {
                name: "single_prompt",
                hint: SINGLE_PROMPT_STACK
            }
        );
        let msg = err.to_string();
        for needed in [
            "single_prompt without a value is no longer accepted",
            "auth requisite pam_twofold.so single_prompt=ask",
            "auth requisite pam_unix.so use_first_pass",
            "auth required pam_twofold.so single_prompt=verify",
        ] {
            assert!(msg.contains(needed), "{msg}");
        }
        assert!(!msg.contains("  "), "{msg}");
        assert_eq!(
            parse(&["single_prompt=ask", "single_prompt=verify"]),
            Err(OptionError::Duplicate("single_prompt"))
        );
    }

    #[test]
    fn inline_messages_auto_means_services_named_sshd() {
        let o = Options::default();
        assert!(o.inline_for("sshd"));
        assert!(o.inline_for("sshd-twofold"));
        assert!(!o.inline_for("sudo"));
        assert!(!o.inline_for("gdm-password"));
        let yes = parse(&["inline_messages=yes"]).unwrap();
        assert!(yes.inline_for("sudo"));
        let no = parse(&["inline_messages=no"]).unwrap();
        assert!(!no.inline_for("sshd"));
    }

    #[test]
    fn timeout_accepts_a_seconds_suffix() {
        assert_eq!(
            parse(&["timeout=5s"]).unwrap().timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            parse(&["timeout=300"]).unwrap().timeout,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn bad_timeouts_are_refused() {
        for bad in [
            "timeout=abc",
            "timeout=",
            "timeout=0",
            "timeout=301",
            "timeout=-1",
            "timeout=1.5",
            "timeout=5m",
            "timeout=s",
            "timeout= 5",
            "timeout=99999999999999999999999",
        ] {
            match parse(&[bad]) {
                Err(OptionError::Malformed { name, .. }) => assert_eq!(name, "timeout", "{bad}"),
                other => panic!("{bad}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_options_are_refused_not_ignored() {
        assert_eq!(
            parse(&["frobnicate=1"]),
            Err(OptionError::Unknown("frobnicate=1".into()))
        );
        // A misspelling of a real option is just as unknown.
        assert_eq!(
            parse(&["sockett=/x"]),
            Err(OptionError::Unknown("sockett=/x".into()))
        );
        assert_eq!(parse(&[""]), Err(OptionError::Unknown(String::new())));
    }

    #[test]
    fn option_shape_is_checked() {
        assert_eq!(
            parse(&["debug=1"]),
            Err(OptionError::UnexpectedValue("debug"))
        );
        assert_eq!(parse(&["socket"]), Err(OptionError::MissingValue("socket")));
        assert_eq!(
            parse(&["timeout=1", "timeout=2"]),
            Err(OptionError::Duplicate("timeout"))
        );
    }

    #[test]
    fn socket_must_be_an_absolute_usable_path() {
        for bad in ["socket=", "socket=run/twofold.sock"] {
            assert!(
                matches!(
                    parse(&[bad]),
                    Err(OptionError::Malformed { name: "socket", .. })
                ),
                "{bad}"
            );
        }
        let long = format!("socket=/{}", "a".repeat(107));
        assert!(matches!(
            parse(&[&long]),
            Err(OptionError::Malformed { name: "socket", .. })
        ));
    }

    #[test]
    fn errors_read_well_and_stay_short() {
        let long = format!("x{}", "y".repeat(500));
        let msg = parse(&[&long]).unwrap_err().to_string();
        assert!(msg.len() < 100, "{msg}");
        let msg = parse(&["timeout=abc"]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "bad value \"abc\" for option timeout: must be a whole number of seconds, e.g. 5 or 5s"
        );
    }
}
