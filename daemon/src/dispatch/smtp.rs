//! Email through an SMTP relay with `lettre` (blocking transport, rustls
//! with the ring provider; no OpenSSL): implicit TLS, STARTTLS (required:
//! a relay that does not offer it gets neither AUTH nor DATA), or plain to
//! a loopback relay only. AUTH's password is read from a file that only
//! the daemon's user may read, and never sent over plain TLS-less links to
//! another host.

use super::{Message, SendError, Sender};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{SmtpTransport, Transport};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use twofold_config::{email::is_loopback, EmailConfig, SmtpTls};
use zeroize::Zeroizing;

/// Why the SMTP settings cannot be used (said in the daemon's log and the
/// audit row of each refused send).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CA or password file could not be read or is unsafe.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The settings are refused.
    #[error("{0}")]
    Refused(String),
}

/// The SMTP relay of `[email]`.
pub struct Smtp {
    transport: SmtpTransport,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Smtp")
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> SetupError {
    SetupError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads the AUTH password: the first line of a regular file owned by the
/// daemon's user (or root) that neither group nor others can read.
fn read_password(path: &Path) -> Result<Zeroizing<String>, SetupError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| file_error(path, e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(file_error(path, "is not a regular file"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(file_error(
            path,
            "must be owned by the daemon's user or root",
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(file_error(
            path,
            "must not be readable by group or others (chmod 600)",
        ));
    }
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(file_error(path, "is empty"));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// This machine's name for EHLO.
fn hello_name() -> ClientId {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if name.is_empty() {
        ClientId::Domain("localhost".into())
    } else {
        ClientId::Domain(name)
    }
}

impl Smtp {
    /// The relay `c` names (email must be enabled).
    pub fn new(c: &EmailConfig) -> Result<Smtp, SetupError> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| SetupError::Refused(format!("email.from: {e}")))?;
        let tls_params = || -> Result<TlsParameters, SetupError> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem = std::fs::read(ca).map_err(|e| file_error(ca, e.to_string()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| file_error(ca, format!("not a PEM certificate: {e}")))?;
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| SetupError::Refused(format!("TLS settings: {e}")))
        };
        let tls = match c.tls {
            SmtpTls::Tls => Tls::Wrapper(tls_params()?),
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Plain if is_loopback(&c.host) => Tls::None,
            SmtpTls::Plain => {
                return Err(SetupError::Refused(
                    "email.tls = \"plain\" is allowed only to a loopback relay".into(),
                ))
            }
        };
        let mut b = SmtpTransport::builder_dangerous(c.host.as_str())
            .port(c.port())
            .tls(tls)
            .hello_name(hello_name())
            .timeout(Some(c.timeout.duration()));
        if let (Some(user), Some(file)) = (&c.username, &c.password_file) {
            if c.tls == SmtpTls::Plain && !is_loopback(&c.host) {
                return Err(SetupError::Refused(
                    "SMTP AUTH over plain is refused to a host that is not loopback".into(),
                ));
            }
            let password = read_password(file)?;
            b = b.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Smtp {
            transport: b.build(),
            from,
        })
    }
}

impl Sender for Smtp {
    fn send(&self, msg: &Message) -> Result<(), SendError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|e| SendError::Provider(format!("address refused: {e}")))?;
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        if let Some(id) = &msg.id {
            b = b.message_id(Some(id.clone()));
        }
        let email = b
            .body(msg.body.expose().to_owned())
            .map_err(|e| SendError::Provider(format!("message: {e}")))?;
        // The formatted message holds the code: wiped once sent.
        let mut raw = Zeroizing::new(email.formatted());
        drop(email);
        let envelope = lettre::address::Envelope::new(
            Some(self.from.email.clone()),
            vec![msg
                .to
                .parse()
                .map_err(|e| SendError::Provider(format!("address refused: {e}")))?],
        )
        .map_err(|e| SendError::Provider(e.to_string()))?;
        let sent = self.transport.send_raw(&envelope, &raw);
        raw.iter_mut().for_each(|b| *b = 0);
        sent.map(|_| ())
            .map_err(|e| SendError::Provider(describe(&e)))
    }
}

/// The error's chain in one line (lettre's own text stops at its kind).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s.replace(['\n', '\r'], " ")
}
