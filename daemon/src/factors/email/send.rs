//! Making, storing and sending one code: 6 random digits, stored only as
//! a keyed MAC of (method, user, what it is bound to, code), counted
//! against the send limits in the transaction that stores it, then handed
//! to the email channel; the caller waits at most `[email] wait`.

use crate::audit::AuditEvent;
use crate::dispatch::{BreakerChange, Message, SendError};
use crate::factors::Ctx;
use crate::store::{CodeSend, CodeSendOutcome, StoreError};
use twofold_proto::{AuditRecord, Method, Secret};
use zeroize::Zeroize;

/// Audit events of sends.
pub mod events {
    /// A code was stored and handed to the channel.
    pub const CODE_SENT: &str = "code_sent";
    /// A send limit refused a code (`limit=`).
    pub const CODE_SEND_REFUSED: &str = "code_send_refused";
    /// The channel did not take a code (`error=`): the person was told.
    pub const CODE_SEND_FAILED: &str = "code_send_failed";
    /// A channel's breaker opened (`until=`) or closed.
    pub const CHANNEL_BREAKER: &str = "channel_breaker";
}

/// How a send ended.
#[derive(Debug)]
pub enum Outcome {
    /// The relay took it.
    Sent(Vec<AuditRecord>),
    /// A limit refused it (its name).
    Limited(&'static str, Vec<AuditRecord>),
    /// It could not be sent (why, for the log).
    Failed(String, Vec<AuditRecord>),
}

/// 6 uniformly random digits.
pub fn generate() -> Result<Secret, crate::crypto::keys::KeyError> {
    loop {
        let mut b = [0u8; 4];
        crate::crypto::keys::random_bytes(&mut b)?;
        let n = u32::from_be_bytes(b);
        // Rejection keeps the digits uniform.
        if n < 4_294_000_000 {
            return Ok(Secret::new(format!("{:06}", n % 1_000_000)));
        }
    }
}

/// The keyed lookup of `code` bound to `bound`.
pub fn lookup(cx: &Ctx<'_>, method: &Method, user: &str, bound: &str, code: &str) -> [u8; 32] {
    let mut input = format!("{bound}\0{code}");
    let l = cx.keys.code_lookup(method, user, &input);
    input.zeroize();
    l
}

/// `a•••@e•••.org`: the first letter of the local part and of the domain,
/// and the domain's last label.
pub fn mask(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return "•••".into();
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = domain.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
    if tld.is_empty() {
        format!("{}•••@{}•••", first(local), first(domain))
    } else {
        format!("{}•••@{}•••.{tld}", first(local), first(domain))
    }
}

/// `+1•••••••0100`: the first digit and the last four.
pub fn mask_phone(number: &str) -> String {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.len() < 6 || !digits.is_ascii() {
        return "+•••".into();
    }
    format!("+{}•••••••{}", &digits[..1], &digits[digits.len() - 4..])
}

/// The destination of `method` masked for showing.
pub fn mask_for(method: &Method, destination: &str) -> String {
    if *method == Method::SMS {
        mask_phone(destination)
    } else {
        mask(destination)
    }
}

/// A sending channel's settings, whichever section holds them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether the channel is configured.
    pub enabled: bool,
    /// How long a login waits for its send.
    pub wait: twofold_config::Seconds,
    /// How long a code is valid, in seconds.
    pub code_lifetime: u64,
    /// Wrong answers after which a code is void.
    pub code_tries: u32,
    /// Codes per user per hour.
    pub sends_per_hour: u32,
    /// Codes per login (or enrollment).
    pub sends_per_login: u32,
    /// Codes per destination per hour.
    pub sends_per_destination_per_hour: u32,
    /// Codes in all per hour.
    pub sends_global_per_hour: u32,
    /// Subject line (email).
    pub subject: String,
    /// The message's template.
    pub template: String,
}

/// The settings of `method`'s channel (`[email]` or `[sms]`).
pub fn settings(config: &twofold_config::Config, method: &Method) -> Settings {
    if *method == Method::SMS {
        let s = &config.sms;
        Settings {
            enabled: s.enabled(),
            wait: s.wait,
            code_lifetime: s.code_lifetime.0,
            code_tries: s.code_tries,
            sends_per_hour: s.sends_per_hour,
            sends_per_login: s.sends_per_login,
            sends_per_destination_per_hour: s.sends_per_number_per_hour,
            sends_global_per_hour: s.sends_global_per_hour,
            subject: String::new(),
            template: s.template.clone(),
        }
    } else {
        let e = &config.email;
        Settings {
            enabled: e.enabled(),
            wait: e.wait,
            code_lifetime: e.code_lifetime.0,
            code_tries: e.code_tries,
            sends_per_hour: e.sends_per_hour,
            sends_per_login: e.sends_per_login,
            sends_per_destination_per_hour: e.sends_per_address_per_hour,
            sends_global_per_hour: e.sends_global_per_hour,
            subject: e.subject.clone(),
            template: e.template.clone(),
        }
    }
}

/// The code message's body: the channel's template with its fields filled.
fn render(e: &Settings, user: &str, service: &str, code: &str) -> Secret {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let minutes = e.code_lifetime.div_ceil(60).to_string();
    Secret::new(
        e.template
            .replace("{user}", user)
            .replace("{host}", &host)
            .replace("{service}", service)
            .replace("{minutes}", &minutes)
            .replace("{code}", code),
    )
}

/// Makes a code bound to `bound`, stores it within the limits and sends
/// it to `address`; `base` is the audit template (service, rhost).
pub fn send_code(
    cx: &Ctx<'_>,
    method: &Method,
    user: &str,
    address: &str,
    bound: &str,
    base: &AuditEvent,
) -> Result<Outcome, StoreError> {
    let e = &settings(cx.config, method);
    let now = cx.now();
    let masked = mask_for(method, address);
    let failed = |why: String, mut recs: Vec<AuditRecord>| -> Result<Outcome, StoreError> {
        let ev = base
            .renamed(events::CODE_SEND_FAILED)
            .method(method.as_str())
            .with("to", &masked)
            .with("error", &why.replace(' ', "_"));
        recs.extend(
            cx.store
                .append_audit(now, vec![ev], crate::store::Durability::Durable)?,
        );
        Ok(Outcome::Failed(why, recs))
    };
    let Some(sends) = cx.store.sends() else {
        return failed("this store keeps no sent codes".into(), Vec::new());
    };
    let channel = if *method == Method::SMS {
        cx.channels.sms(&cx.config.sms)
    } else {
        cx.channels.email(&cx.config.email)
    };
    let dispatcher = match channel {
        Ok(d) => d,
        Err(why) => return failed(why, Vec::new()),
    };
    let code = generate().map_err(|e| StoreError::Database(e.to_string()))?;
    let c = CodeSend {
        user: user.to_owned(),
        method: method.clone(),
        bound: bound.to_owned(),
        // The limits' key: `BOB@example.org` is bob@example.org's mailbox.
        destination: address.to_ascii_lowercase(),
        lookup: lookup(cx, method, user, bound, code.expose()),
        now,
        expires_at: now + e.code_lifetime,
        per_user_hour: e.sends_per_hour,
        per_bound: e.sends_per_login,
        per_destination_hour: e.sends_per_destination_per_hour,
        global_hour: e.sends_global_per_hour,
        sent: base
            .renamed(events::CODE_SENT)
            .method(method.as_str())
            .with("to", &masked),
        refused: base
            .renamed(events::CODE_SEND_REFUSED)
            .method(method.as_str())
            .with("to", &masked),
    };
    let mut recs = match sends.store_sent_code(c)? {
        CodeSendOutcome::Stored(recs) => recs,
        CodeSendOutcome::Limited(name, recs) => return Ok(Outcome::Limited(name, recs)),
    };
    let service = if base.service.is_empty() {
        "twofold"
    } else {
        base.service.as_str()
    };
    let ticket = dispatcher.submit(Message {
        to: address.to_owned(),
        subject: e.subject.clone(),
        body: render(e, user, service, code.expose()),
        id: None,
    });
    drop(code);
    let result = ticket.wait(e.wait.duration());
    recs.extend(breaker_rows(cx, &dispatcher.take_changes(), base, method)?);
    match result {
        Ok(()) => Ok(Outcome::Sent(recs)),
        Err(SendError::Deadline(_)) => failed(format!("no answer within {} s", e.wait.0), recs),
        Err(err) => failed(err.to_string(), recs),
    }
}

/// Audits the breaker's changes.
pub fn breaker_rows(
    cx: &Ctx<'_>,
    changes: &[BreakerChange],
    base: &AuditEvent,
    method: &Method,
) -> Result<Vec<AuditRecord>, StoreError> {
    let rows: Vec<AuditEvent> = changes
        .iter()
        .filter_map(|c| {
            let ev =
                AuditEvent::new(events::CHANNEL_BREAKER, "", &base.actor).method(method.as_str());
            match c {
                BreakerChange::Opened(until) => {
                    Some(ev.with("state", "open").with("until", &until.to_string()))
                }
                BreakerChange::Throttled { until, asked } => Some(
                    ev.with("state", "open")
                        .with("until", &until.to_string())
                        .with("retry_after", &asked.to_string()),
                ),
                BreakerChange::Closed => Some(ev.with("state", "closed")),
                BreakerChange::None => None,
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    cx.store
        .append_audit(cx.now(), rows, crate::store::Durability::Durable)
}

#[cfg(test)]
mod tests {
    use super::{mask, mask_phone};

    #[test]
    fn masks_as_the_issue_shows() {
        assert_eq!(mask_phone("+14155550100"), "+1•••••••0100");
        assert_eq!(mask("a@example.org"), "a•••@e•••.org");
        assert_eq!(mask("alice@mail.example.co.uk"), "a•••@m•••.uk");
        assert_eq!(mask("root@localhost"), "r•••@l•••");
    }
}
