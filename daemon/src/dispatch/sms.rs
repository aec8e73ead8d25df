//! SMS providers behind [`Sender`]: a Twilio-compatible REST API, a JSON
//! webhook (both over `ureq`: blocking, rustls, one deadline for the whole
//! request, no redirects, no proxy from the environment), and a local
//! command (the number as an argument, the message on standard input,
//! an empty environment, killed at the deadline).
//!
//! Errors carry the provider's status and error code, never the message.

use super::smtp::{file_error, read_private, SetupError};
use super::{Message, SendError, Sender};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_config::{SmsConfig, SmsProvider};
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};
use zeroize::Zeroizing;

/// The sender `c` names (SMS must be enabled).
pub fn sender(c: &SmsConfig) -> Result<Box<dyn Sender>, SetupError> {
    let timeout = c.timeout.duration();
    match c.provider {
        SmsProvider::None => Err(SetupError::Refused("sms is off".into())),
        SmsProvider::Twilio => Ok(Box::new(Twilio::new(c)?)),
        SmsProvider::Webhook => Ok(Box::new(Webhook::new(c)?)),
        SmsProvider::Command => Ok(Box::new(Command {
            path: c.command.path.clone(),
            args: if c.command.args.is_empty() {
                vec!["{to}".into()]
            } else {
                c.command.args.clone()
            },
            timeout,
        })),
    }
}

/// The CAs a provider's certificate must chain to: `[sms] ca_file`, else
/// the system's store (the bundled web roots only when it has none).
fn roots(c: &SmsConfig) -> Result<RootCerts, SetupError> {
    if let Some(ca) = &c.ca_file {
        let pem = std::fs::read(ca).map_err(|e| file_error(ca, e.to_string()))?;
        let mut certs = Vec::new();
        for item in parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(file_error(ca, format!("not PEM certificates: {e}"))),
            }
        }
        if certs.is_empty() {
            return Err(file_error(ca, "holds no PEM certificate"));
        }
        return Ok(RootCerts::Specific(Arc::new(certs)));
    }
    let native = rustls_native_certs::load_native_certs();
    let certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|d| Certificate::from_der(d.as_ref()).to_owned())
        .collect();
    if certs.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

/// One agent per sender: the whole request bounded by `timeout`, HTTP
/// errors returned as responses, no redirect followed, no proxy.
fn agent(c: &SmsConfig) -> Result<ureq::Agent, SetupError> {
    let tls = TlsConfig::builder().root_certs(roots(c)?).build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(c.timeout.duration()))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent("twofoldd")
        .build()
        .new_agent())
}

/// What a provider's answer means for the send; `retry_after`: its
/// `Retry-After` header, if any.
fn judge(
    provider: &str,
    status: u16,
    body: &str,
    retry_after: Option<&str>,
) -> Result<(), SendError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    // A provider that says when to come back is not asked before then.
    if let (429 | 503, Some(secs)) = (status, retry_after.and_then(delta_seconds)) {
        return Err(SendError::Throttled(
            format!("{provider} asked for a pause (HTTP {status})"),
            secs,
        ));
    }
    if status == 429 {
        return Err(SendError::Provider(format!(
            "{provider} is rate limiting (HTTP 429)"
        )));
    }
    if (300..400).contains(&status) {
        return Err(SendError::Provider(format!(
            "{provider} answered a redirect (HTTP {status}), not followed"
        )));
    }
    // Twilio's error shape: {"code": 21211, "message": ..., "status": 400}.
    // Only the number is kept: the message may echo the destination.
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(serde_json::Value::as_u64));
    Err(SendError::Provider(match code {
        Some(code) => format!("{provider} refused the message (HTTP {status}, error {code})"),
        None => format!("{provider} refused the message (HTTP {status})"),
    }))
}

/// `Retry-After` as delay-seconds (RFC 9110); an HTTP-date is not used
/// (the breaker then counts the failure as any other).
fn delta_seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Reads at most 16 KiB of an answer, and its `Retry-After`.
fn answer(resp: ureq::http::Response<ureq::Body>) -> (u16, String, Option<String>) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = String::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(16 * 1024)
        .read_to_string(&mut body);
    (status, body, retry_after)
}

fn http_error(provider: &str, e: ureq::Error) -> SendError {
    match e {
        ureq::Error::Timeout(_) => SendError::Provider(format!("{provider}: no answer in time")),
        other => SendError::Provider(format!(
            "{provider}: {}",
            other.to_string().replace(['\n', '\r'], " ")
        )),
    }
}

/// A Twilio-compatible REST API.
pub struct Twilio {
    agent: ureq::Agent,
    url: String,
    sid: String,
    token: Zeroizing<String>,
    from: Option<String>,
    service: Option<String>,
    validity: u64,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Twilio")
    }
}

impl Twilio {
    fn new(c: &SmsConfig) -> Result<Twilio, SetupError> {
        let t = &c.twilio;
        let file = t
            .auth_token_file
            .as_ref()
            .ok_or_else(|| SetupError::Refused("sms.twilio.auth_token_file is required".into()))?;
        let text = read_private(file)?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(file_error(file, "is empty"));
        }
        Ok(Twilio {
            agent: agent(c)?,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                t.base_url.trim_end_matches('/'),
                t.account_sid
            ),
            sid: t.account_sid.clone(),
            token: Zeroizing::new(token),
            from: t.from.clone(),
            service: t.messaging_service_sid.clone(),
            validity: c.code_lifetime.0,
        })
    }
}

/// Standard base64 (for Basic auth).
fn base64(bytes: &[u8]) -> Zeroizing<String> {
    use base64ct::Encoding;
    Zeroizing::new(base64ct::Base64::encode_string(bytes))
}

impl Sender for Twilio {
    fn send(&self, msg: &Message) -> Result<(), SendError> {
        let pair = Zeroizing::new(format!("{}:{}", self.sid, self.token.as_str()));
        let auth = Zeroizing::new(format!("Basic {}", base64(pair.as_bytes()).as_str()));
        let validity = self.validity.to_string();
        let mut form: Vec<(&str, &str)> = vec![("To", msg.to.as_str())];
        match (&self.from, &self.service) {
            (_, Some(s)) => form.push(("MessagingServiceSid", s)),
            (Some(f), None) => form.push(("From", f)),
            (None, None) => return Err(SendError::Off),
        }
        form.push(("Body", msg.body.expose()));
        form.push(("ValidityPeriod", &validity));
        let resp = self
            .agent
            .post(&self.url)
            .header("Authorization", auth.as_str())
            .send_form(form)
            .map_err(|e| http_error("the SMS provider", e))?;
        let (status, body, retry) = answer(resp);
        judge("the SMS provider", status, &body, retry.as_deref())
    }
}

/// Escapes `s` for use inside a JSON string (without the quotes).
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_owned()
}

/// A JSON webhook.
pub struct Webhook {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, Zeroizing<String>)>,
    body: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook")
    }
}

impl Webhook {
    fn new(c: &SmsConfig) -> Result<Webhook, SetupError> {
        let w = &c.webhook;
        let mut headers = Vec::new();
        if let Some(file) = &w.headers_file {
            let text = read_private(file)?;
            for line in text.lines().map(|l| l.trim_end_matches('\r')) {
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, value)) = line.split_once(':') else {
                    return Err(file_error(file, "each line must be Name: value"));
                };
                let name = name.trim();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(file_error(
                        file,
                        "a header name must be letters, digits and -",
                    ));
                }
                headers.push((name.to_owned(), Zeroizing::new(value.trim().to_owned())));
            }
        }
        Ok(Webhook {
            agent: agent(c)?,
            url: w.url.clone(),
            headers,
            body: w.body.clone(),
        })
    }
}

impl Sender for Webhook {
    fn send(&self, msg: &Message) -> Result<(), SendError> {
        let body = Zeroizing::new(
            self.body
                .replace("{to}", &json_escape(&msg.to))
                .replace("{message}", &json_escape(msg.body.expose())),
        );
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let resp = req
            .send(body.as_bytes())
            .map_err(|e| http_error("the SMS webhook", e))?;
        let (status, text, retry) = answer(resp);
        judge("the SMS webhook", status, &text, retry.as_deref())
    }
}

/// Kills the command's process group (it leads it).
fn kill_group(child: &std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the group is the
        // child's own (process_group(0)), not yet reaped.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// A local command.
#[derive(Debug)]
pub struct Command {
    path: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl Sender for Command {
    fn send(&self, msg: &Message) -> Result<(), SendError> {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{to}", &msg.to))
            .collect();
        let mut child = Process::new(&self.path)
            .args(&args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            // Its own process group, so that what it starts dies with it.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| SendError::Provider(format!("{}: {e}", self.path.display())))?;
        let end = Instant::now() + self.timeout;
        if let Some(mut stdin) = child.stdin.take() {
            // A pipe holds far more than one message: this does not block.
            let _ = stdin.write_all(msg.body.expose().as_bytes());
            let _ = stdin.write_all(b"\n");
        }
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(SendError::Provider(format!(
                        "{} failed ({status})",
                        self.path.display()
                    )))
                }
                Ok(None) if Instant::now() >= end => {
                    kill_group(&child);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SendError::Provider(format!(
                        "{} killed after {} s",
                        self.path.display(),
                        self.timeout.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SendError::Provider(format!("{}: {e}", self.path.display())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json_fields() {
        assert_eq!(json_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(json_escape(""), "");
    }

    #[test]
    fn twilio_errors_keep_the_code_not_the_message() {
        let e = judge(
            "p",
            400,
            r#"{"code": 21211, "message": "The 'To' number +1 is not valid", "status": 400}"#,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("HTTP 400, error 21211"), "{e}");
        assert!(!e.contains("+1"), "{e}");
        assert!(judge("p", 429, "", None)
            .unwrap_err()
            .to_string()
            .contains("429"));
        assert!(judge("p", 302, "", None).is_err());
        assert!(judge("p", 201, "{}", None).is_ok());
    }

    #[test]
    fn retry_after_with_429_or_503_asks_for_a_pause() {
        assert!(matches!(
            judge("p", 429, "", Some("120")),
            Err(SendError::Throttled(_, 120))
        ));
        assert!(matches!(
            judge("p", 503, "", Some(" 7 ")),
            Err(SendError::Throttled(_, 7))
        ));
        // An HTTP-date, garbage, or another status: an ordinary failure.
        for (status, v) in [
            (429, "Wed, 21 Oct 2015 07:28:00 GMT"),
            (429, "-5"),
            (429, "99999999999"),
            (500, "120"),
        ] {
            assert!(
                matches!(judge("p", status, "", Some(v)), Err(SendError::Provider(_))),
                "{status} {v}"
            );
        }
    }
}
