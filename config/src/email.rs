//! `[email]`: codes sent by mail and security notifications, through one
//! SMTP relay.

use crate::locate::Seg;
use crate::Seconds;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain, then `STARTTLS`, which is required: a relay that does not
    /// offer it is refused before anything else is sent (port 587).
    Starttls,
    /// No TLS: allowed only to a loopback relay (a local MTA).
    Plain,
}

/// `[email]`: email codes (`email` at the prompt) and security
/// notifications. Off while `host` is empty.
///
/// Codes are 6 digits, valid `code_lifetime`, single use, refused after
/// `code_tries` wrong answers, and belong to the login that asked for
/// them. Each limit counts on the daemon's clock and survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The SMTP relay's host name (checked against its certificate). Default
    /// `""`: email is off.
    pub host: String,
    /// Its port; 0 takes 465 for `tls`, 587 for `starttls`, 25 for `plain`.
    /// Default 0.
    pub port: u16,
    /// `tls`, `starttls` (default) or `plain` (loopback relays only).
    pub tls: SmtpTls,
    /// A PEM file of the CA certificates the relay's certificate must chain
    /// to, instead of the system's. Default: the system's.
    pub ca_file: Option<PathBuf>,
    /// The SMTP AUTH user name. Default: no AUTH.
    pub username: Option<String>,
    /// The file holding the SMTP AUTH password (one line), owned by the
    /// daemon's user and not readable by others. Required with `username`;
    /// AUTH is refused over `plain` to a host that is not loopback.
    pub password_file: Option<PathBuf>,
    /// The `From:` address (required when `host` is set).
    pub from: String,
    /// The subject of a code mail. Default `Your verification code`.
    pub subject: String,
    /// The body of a code mail; `{code}`, `{minutes}`, `{user}`, `{host}`
    /// and `{service}` are replaced.
    pub template: String,
    /// The subject of a security notification. Default `Security notice`.
    pub notify_subject: String,
    /// Whether security notifications are mailed to a confirmed address
    /// (backup code used, factor added or removed, MFA disabled or reset,
    /// lockout, address changed). Default true.
    pub notify: bool,
    /// How long a login waits for its send's result before it says the code
    /// could not be sent, 1s to 30s. Default `3s`.
    pub wait: Seconds,
    /// The whole deadline of one send (connect, TLS, every SMTP reply),
    /// 1s to 5m. Default `10s`.
    pub timeout: Seconds,
    /// Threads sending mail, 1 to 16. Default 2.
    pub workers: u32,
    /// Sends waiting for a thread, 1 to 1024; a send that finds it full is
    /// refused at once. Default 32.
    pub queue: u32,
    /// Consecutive failed sends that open the breaker, 1 to 100. Default 3.
    pub breaker_failures: u32,
    /// How long an open breaker refuses sends at once. Default `1m`.
    pub breaker_open: Seconds,
    /// How long a code is valid, 1m to 1h. Default `10m`.
    pub code_lifetime: Seconds,
    /// Wrong answers after which a code is void, 1 to 10. Default 5.
    pub code_tries: u32,
    /// Codes sent to one user per hour, 1 to 100. Default 3.
    pub sends_per_hour: u32,
    /// Codes one login may ask for, 1 to 10. Default 2.
    pub sends_per_login: u32,
    /// Codes sent to one address per hour, whoever asks, 1 to 1000. Default
    /// 5. A login's code counts only logins' codes to the address (the
    /// confirmed owner's); a code to confirm an address counts every code
    /// to it, so another account naming the address cannot use up its
    /// owner's login codes.
    pub sends_per_address_per_hour: u32,
    /// Codes sent in all per hour, 1 to 1000000. Default 500.
    pub sends_global_per_hour: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            ca_file: None,
            username: None,
            password_file: None,
            from: String::new(),
            subject: "Your verification code".into(),
            template: "Your verification code for {user} on {host} ({service}) is {code}.\n\
                       It is valid for {minutes} minutes and works once.\n\
                       If you did not ask for it, someone may know your password: \
                       tell your administrator.\n"
                .into(),
            notify_subject: "Security notice".into(),
            notify: true,
            wait: Seconds(3),
            timeout: Seconds(10),
            workers: 2,
            queue: 32,
            breaker_failures: 3,
            breaker_open: Seconds(60),
            code_lifetime: Seconds(600),
            code_tries: 5,
            sends_per_hour: 3,
            sends_per_login: 2,
            sends_per_address_per_hour: 5,
            sends_global_per_hour: 500,
        }
    }
}

impl EmailConfig {
    /// Whether email is configured (a relay named).
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }

    /// The port in use: the configured one, else the usual one for `tls`.
    pub fn port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, SmtpTls::Tls) => 465,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Plain) => 25,
            (p, _) => p,
        }
    }
}

/// Whether `host` names this machine's loopback interface.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The first refused value of `[email]`: its key and what is wrong.
pub(crate) fn problem(e: &EmailConfig) -> Option<(Vec<Seg<'static>>, String)> {
    let shared = crate::sending::Sending {
        wait: e.wait,
        timeout: e.timeout,
        workers: e.workers,
        queue: e.queue,
        breaker_failures: e.breaker_failures,
        breaker_open: e.breaker_open,
        code_lifetime: e.code_lifetime,
        code_tries: e.code_tries,
        sends_per_hour: e.sends_per_hour,
        sends_per_login: e.sends_per_login,
        per_destination: ("sends_per_address_per_hour", e.sends_per_address_per_hour),
        sends_global_per_hour: e.sends_global_per_hour,
        template: &e.template,
    };
    let at = |key: &'static str, msg: &str| {
        Some((vec![Seg::Key("email"), Seg::Key(key)], msg.to_owned()))
    };
    if let Some((key, msg)) = crate::sending::problem(&shared) {
        return at(key, msg);
    }
    if !e.enabled() {
        return None;
    }
    if e.host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return at("host", "must be a host name or address");
    }
    if !valid_address(&e.from) {
        return at(
            "from",
            "must be an address such as twofold@example.org (required with host)",
        );
    }
    if e.tls == SmtpTls::Plain && !is_loopback(&e.host) {
        return at(
            "tls",
            "plain is allowed only to a loopback relay (127.0.0.1, ::1, localhost); use tls or starttls",
        );
    }
    match (&e.username, &e.password_file) {
        (Some(_), None) => return at("password_file", "is required with username"),
        (None, Some(_)) => return at("username", "is required with password_file"),
        _ => {}
    }
    for (key, text) in [
        ("subject", &e.subject),
        ("notify_subject", &e.notify_subject),
    ] {
        if text.chars().any(|c| c.is_control()) {
            return at(key, "must be one line");
        }
    }
    None
}

/// A plausible mail address: `local@domain`, printable, no spaces, at
/// most 254 bytes, a dot in the domain (or a loopback host name).
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && a.bytes().all(|b| b.is_ascii_graphic())
        && !a.contains(['<', '>', '(', ')', ',', ';', '"', '\\', '[', ']'])
        && !local.contains('@')
        && (domain.contains('.') || domain == "localhost")
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use crate::{Config, SmtpTls};

    fn err(text: &str) -> String {
        Config::parse(text, "/etc/twofold/twofold.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn off_by_default_and_the_usual_ports() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(!c.email.enabled());
        assert_eq!(c.email.port(), 587);
        assert_eq!(c.email.wait.0, 3);
        assert_eq!(c.email.code_lifetime.0, 600);
        assert_eq!(c.email.code_tries, 5);
        assert_eq!(c.email.sends_per_hour, 3);
        assert_eq!(c.email.sends_per_login, 2);
        let c = Config::parse(
            "[email]\nhost = \"smtp.example.org\"\ntls = \"tls\"\nfrom = \"a@example.org\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!((c.email.tls, c.email.port()), (SmtpTls::Tls, 465));
    }

    #[test]
    fn plain_to_another_host_is_refused_with_file_line_and_key() {
        let e = err(
            "[email]\nhost = \"smtp.example.org\"\nfrom = \"a@example.org\"\ntls = \"plain\"\n",
        );
        assert!(
            e.starts_with(
                "/etc/twofold/twofold.toml:4: email.tls: plain is allowed only to a loopback relay"
            ),
            "{e}"
        );
        let ok = "[email]\nhost = \"127.0.0.1\"\nfrom = \"a@example.org\"\ntls = \"plain\"\n";
        assert!(Config::parse(ok, "t.toml").is_ok());
    }

    #[test]
    fn each_refusal_names_its_key() {
        for (text, key) in [
            ("[email]\nhost = \"h.example.org\"\n", "email.from"),
            ("[email]\nwait = \"45s\"\n", "email.wait"),
            ("[email]\ncode_tries = 0\n", "email.code_tries"),
            ("[email]\nsends_per_login = 11\n", "email.sends_per_login"),
            (
                "[email]\nsends_per_address_per_hour = 1001\n",
                "email.sends_per_address_per_hour",
            ),
            ("[email]\ntemplate = \"no code here\"\n", "email.template"),
            (
                "[email]\nhost = \"h.example.org\"\nfrom = \"a@example.org\"\nusername = \"u\"\n",
                "email.password_file",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(&format!(": {key}: ")), "{text:?}: {e}");
        }
        let e = err("[email]\nhots = \"x\"\n");
        assert!(e.starts_with("/etc/twofold/twofold.toml:2:"), "{e}");
        assert!(e.contains("hots"), "{e}");
    }
}
