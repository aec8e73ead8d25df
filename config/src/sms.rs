//! `[sms]`: codes sent by text message, through one provider: a
//! Twilio-compatible REST API, a generic JSON webhook, or a local command
//! (a modem or gateway such as gammu).

use crate::locate::Seg;
use crate::Seconds;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which provider sends the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// SMS is off (the default).
    #[default]
    None,
    /// A Twilio-compatible REST API (`[sms.twilio]`).
    Twilio,
    /// A JSON webhook (`[sms.webhook]`).
    Webhook,
    /// A local command (`[sms.command]`).
    Command,
}

/// `[sms.twilio]`: `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`
/// with Basic auth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    /// The API's base URL. Default `https://api.twilio.com`.
    pub base_url: String,
    /// The account SID (the Basic auth user).
    pub account_sid: String,
    /// The file holding the auth token (one line), owned by the daemon's
    /// user or root and not readable by others.
    pub auth_token_file: Option<PathBuf>,
    /// The sending number (E.164); or `messaging_service_sid`.
    pub from: Option<String>,
    /// A messaging service SID instead of `from`.
    pub messaging_service_sid: Option<String>,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token_file: None,
            from: None,
            messaging_service_sid: None,
        }
    }
}

/// `[sms.webhook]`: a JSON `POST` to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to post (`https://`, or `http://` to a loopback host only).
    pub url: String,
    /// A file of extra headers, `Name: value` a line (e.g. an API key),
    /// owned by the daemon's user or root and not readable by others.
    pub headers_file: Option<PathBuf>,
    /// The JSON body; `{to}` and `{message}` are replaced by the number and
    /// the text, JSON-escaped (so they go inside quotes).
    pub body: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            headers_file: None,
            body: r#"{"to": "{to}", "message": "{message}"}"#.into(),
        }
    }
}

/// `[sms.command]`: a local program run with the number as an argument and
/// the message on standard input, in an empty environment, killed at
/// `[sms] timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CommandConfig {
    /// The program (an absolute path).
    pub path: PathBuf,
    /// Its arguments; `{to}` is replaced by the number. Default `["{to}"]`
    /// when empty. The code is never in an argument.
    pub args: Vec<String>,
}

/// `[sms]`: SMS codes (`sms` at the prompt). Off while `provider` is
/// `none`. Codes and limits work as email's do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// `none` (default), `twilio`, `webhook` or `command`.
    pub provider: SmsProvider,
    /// A PEM file of the CA certificates an `https://` provider's
    /// certificate must chain to, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// The message; `{code}`, `{minutes}`, `{user}`, `{host}` and
    /// `{service}` are replaced.
    pub template: String,
    /// How long a login waits for its send's result, 1s to 30s. Default `3s`.
    pub wait: Seconds,
    /// The whole deadline of one send, 1s to 5m. Default `10s`.
    pub timeout: Seconds,
    /// Threads sending, 1 to 16. Default 2.
    pub workers: u32,
    /// Sends waiting for a thread, 1 to 1024. Default 32.
    pub queue: u32,
    /// Consecutive failed sends that open the breaker, 1 to 100. Default 3.
    pub breaker_failures: u32,
    /// How long an open breaker refuses sends at once. Default `1m`.
    pub breaker_open: Seconds,
    /// The longest wait a provider's `Retry-After` (with HTTP 429 or 503)
    /// holds the breaker open, 1s to 1d. Default `15m`.
    pub retry_after_max: Seconds,
    /// How long a code is valid, 1m to 1h. Default `10m`.
    pub code_lifetime: Seconds,
    /// Wrong answers after which a code is void, 1 to 10. Default 5.
    pub code_tries: u32,
    /// Codes sent to one user per hour, 1 to 100. Default 3.
    pub sends_per_hour: u32,
    /// Codes one login may ask for, 1 to 10. Default 2.
    pub sends_per_login: u32,
    /// Codes sent to one number per hour, whoever asks, 1 to 1000. Default
    /// 5. A login's code counts only logins' codes to the number (the
    /// confirmed owner's); a code to confirm a number counts every code to
    /// it, so another account naming the number cannot use up its owner's
    /// login codes.
    pub sends_per_number_per_hour: u32,
    /// Codes sent in all per hour, 1 to 1000000. Default 500.
    pub sends_global_per_hour: u32,
    /// The Twilio-compatible provider.
    pub twilio: TwilioConfig,
    /// The webhook provider.
    pub webhook: WebhookConfig,
    /// The command provider.
    pub command: CommandConfig,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: SmsProvider::None,
            ca_file: None,
            template: "{code} is your verification code for {user} on {host} ({service}); valid {minutes} minutes.".into(),
            wait: Seconds(3),
            timeout: Seconds(10),
            workers: 2,
            queue: 32,
            breaker_failures: 3,
            breaker_open: Seconds(60),
            retry_after_max: Seconds(900),
            code_lifetime: Seconds(600),
            code_tries: 5,
            sends_per_hour: 3,
            sends_per_login: 2,
            sends_per_number_per_hour: 5,
            sends_global_per_hour: 500,
            twilio: TwilioConfig::default(),
            webhook: WebhookConfig::default(),
            command: CommandConfig::default(),
        }
    }
}

impl SmsConfig {
    /// Whether SMS is configured (a provider chosen).
    pub fn enabled(&self) -> bool {
        self.provider != SmsProvider::None
    }
}

/// An E.164 number: `+` then 8 to 15 digits, the first not 0.
pub fn valid_phone(p: &str) -> bool {
    let Some(digits) = p.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `url` is `https://…`, or `http://` to a loopback host.
fn url_ok(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.contains(char::is_whitespace);
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    };
    crate::email::is_loopback(host)
}

/// The first refused value of `[sms]`: its key and what is wrong.
pub(crate) fn problem(s: &SmsConfig) -> Option<(Vec<Seg<'static>>, String)> {
    let shared = crate::sending::Sending {
        wait: s.wait,
        timeout: s.timeout,
        workers: s.workers,
        queue: s.queue,
        breaker_failures: s.breaker_failures,
        breaker_open: s.breaker_open,
        code_lifetime: s.code_lifetime,
        code_tries: s.code_tries,
        sends_per_hour: s.sends_per_hour,
        sends_per_login: s.sends_per_login,
        per_destination: ("sends_per_number_per_hour", s.sends_per_number_per_hour),
        sends_global_per_hour: s.sends_global_per_hour,
        template: &s.template,
    };
    let at =
        |key: &'static str, msg: &str| Some((vec![Seg::Key("sms"), Seg::Key(key)], msg.to_owned()));
    let sub = |table: &'static str, key: &'static str, msg: &str| {
        Some((
            vec![Seg::Key("sms"), Seg::Key(table), Seg::Key(key)],
            msg.to_owned(),
        ))
    };
    if let Some((key, msg)) = crate::sending::problem(&shared) {
        return at(key, msg);
    }
    if !(1..=86_400).contains(&s.retry_after_max.0) {
        return at("retry_after_max", "must be 1s to 1d");
    }
    match s.provider {
        SmsProvider::None => None,
        SmsProvider::Twilio => {
            let t = &s.twilio;
            if !url_ok(t.base_url.trim_end_matches('/')) {
                return sub(
                    "twilio",
                    "base_url",
                    "must be https://…, or http:// to a loopback host",
                );
            }
            if t.account_sid.is_empty() || !t.account_sid.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return sub(
                    "twilio",
                    "account_sid",
                    "must be the account SID (letters and digits; required)",
                );
            }
            if t.auth_token_file.is_none() {
                return sub(
                    "twilio",
                    "auth_token_file",
                    "is required with provider = \"twilio\"",
                );
            }
            match (&t.from, &t.messaging_service_sid) {
                (None, None) => sub(
                    "twilio",
                    "from",
                    "from or messaging_service_sid is required",
                ),
                (Some(_), Some(_)) => sub(
                    "twilio",
                    "messaging_service_sid",
                    "give from or messaging_service_sid, not both",
                ),
                (Some(f), None) if !valid_phone(f) => sub(
                    "twilio",
                    "from",
                    "must be an E.164 number such as +14155550100",
                ),
                (None, Some(m))
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    sub(
                        "twilio",
                        "messaging_service_sid",
                        "must be letters and digits",
                    )
                }
                _ => None,
            }
        }
        SmsProvider::Webhook => {
            let w = &s.webhook;
            if !url_ok(&w.url) {
                return sub(
                    "webhook",
                    "url",
                    "must be https://…, or http:// to a loopback host (required)",
                );
            }
            if !w.body.contains("\"{message}\"") || !w.body.trim_start().starts_with('{') {
                return sub(
                    "webhook",
                    "body",
                    "must be JSON holding \"{message}\" inside quotes",
                );
            }
            None
        }
        SmsProvider::Command => {
            let c = &s.command;
            if !c.path.is_absolute() {
                return sub("command", "path", "must be an absolute path (required)");
            }
            if c.args
                .iter()
                .any(|a| a.contains("{code}") || a.contains("{message}"))
            {
                return sub(
                    "command",
                    "args",
                    "must not hold the code or message (it goes on standard input)",
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn err(text: &str) -> String {
        Config::parse(text, "/etc/twofold/twofold.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn numbers_are_e164() {
        for ok in ["+14155550100", "+4930123456", "+12345678"] {
            assert!(valid_phone(ok), "{ok}");
        }
        for bad in [
            "14155550100",
            "+1234567",
            "+1234567890123456",
            "+0123456789",
            "+1 415 555",
            "+1415555010a",
            "",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }

    #[test]
    fn off_by_default_and_each_provider_parses() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(!c.sms.enabled());
        let c = Config::parse(
            "[sms]\nprovider = \"twilio\"\n[sms.twilio]\naccount_sid = \"AC1\"\nauth_token_file = \"/etc/twofold/twilio\"\nfrom = \"+14155550100\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.sms.provider, SmsProvider::Twilio);
        Config::parse("[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"https://sms.example.org/send\"\n", "t.toml").unwrap();
        Config::parse("[sms]\nprovider = \"command\"\n[sms.command]\npath = \"/usr/bin/gammu-smsd-inject\"\nargs = [\"TEXT\", \"{to}\"]\n", "t.toml").unwrap();
    }

    #[test]
    fn each_refusal_names_its_file_line_and_key() {
        let e = err("[sms]\nprovider = \"twilio\"\n[sms.twilio]\naccount_sid = \"AC1\"\nfrom = \"+14155550100\"\n");
        assert!(e.contains(": sms.twilio.auth_token_file: "), "{e}");
        let e = err(
            "[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"http://sms.example.org/send\"\n",
        );
        assert!(
            e.starts_with("/etc/twofold/twofold.toml:4: sms.webhook.url: "),
            "{e}"
        );
        let e = err("[sms]\nprovider = \"command\"\n[sms.command]\npath = \"/bin/x\"\nargs = [\"{code}\"]\n");
        assert!(e.contains(": sms.command.args: "), "{e}");
        let e = err("[sms]\nprovider = \"command\"\n[sms.command]\npath = \"gammu\"\n");
        assert!(e.contains(": sms.command.path: "), "{e}");
        for (text, key) in [
            (
                "[sms]\nsends_per_number_per_hour = 0\n",
                "sms.sends_per_number_per_hour",
            ),
            ("[sms]\nretry_after_max = \"2d\"\n", "sms.retry_after_max"),
            ("[sms]\ntemplate = \"no code here\"\n", "sms.template"),
            ("[sms]\nbreaker_open = 0\n", "sms.breaker_open"),
        ] {
            let e = err(text);
            assert!(e.contains(&format!(": {key}: ")), "{text:?}: {e}");
        }
        let e = err("[sms]\nwait = \"45s\"\n");
        assert!(
            e.starts_with("/etc/twofold/twofold.toml:2: sms.wait: "),
            "{e}"
        );
        let e = err("[sms]\nprovider = \"carrier-pigeon\"\n");
        assert!(e.starts_with("/etc/twofold/twofold.toml:2:"), "{e}");
    }
}
