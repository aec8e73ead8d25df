use crate::Secret;
use serde::{Deserialize, Serialize};

/// A message from a client (the PAM module or the CLI) to the daemon.
///
/// New fields are added with `#[serde(default)]`; unknown fields are ignored
/// so that an older daemon still understands a newer client's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message on every connection: the versions the client speaks.
    Hello {
        /// Oldest protocol version the client accepts.
        proto_min: u32,
        /// Newest protocol version the client accepts.
        proto_max: u32,
        /// Free-form client name and version, for the daemon's log.
        client: String,
    },
    /// Starts a login conversation (one connection = one login).
    Begin {
        /// PAM_USER: the account being logged into.
        user: String,
        /// PAM_SERVICE: sshd, sudo, su, login, gdm-password…
        service: String,
        /// PAM_RHOST: the remote host, when the application sets one.
        #[serde(default)]
        rhost: Option<String>,
        /// PAM_TTY.
        #[serde(default)]
        tty: Option<String>,
        /// PAM_RUSER: the requesting user (sudo, su).
        #[serde(default)]
        ruser: Option<String>,
    },
    /// The person's answer to the last [`Response::Prompt`].
    Answer {
        /// What was typed.
        text: Secret,
    },
    /// Acknowledges an [`Response::Info`], [`Response::Error`] or [`Response::Wait`].
    Ack,
    /// Starts (or restarts) a pending TOTP enrollment. Until it is confirmed
    /// by a valid code it does not count for logins.
    TotpEnrollStart {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// HMAC algorithm; `None` takes the configured default (SHA1).
        #[serde(default)]
        algorithm: Option<Algorithm>,
        /// Code length, 6 to 8; `None` takes the configured default (6).
        #[serde(default)]
        digits: Option<u32>,
    },
    /// Confirms the pending TOTP enrollment with a current code.
    TotpEnrollConfirm {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A code from the authenticator.
        code: Secret,
    },
    /// What is enrolled for an account.
    Status {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
    },
    /// Replaces every backup code with a fresh set.
    RegenerateBackupCodes {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A current TOTP code; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
    /// Removes the TOTP credential (and the backup codes tied to it).
    RemoveTotp {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A current TOTP code; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
    /// Admin: removes every factor of an account.
    AdminDisable {
        /// The account.
        user: String,
    },
    /// Admin: every account the daemon knows.
    AdminList,
}

impl Request {
    /// Name of the request type, as on the wire. Safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Begin { .. } => "begin",
            Request::Answer { .. } => "answer",
            Request::Ack => "ack",
            Request::TotpEnrollStart { .. } => "totp_enroll_start",
            Request::TotpEnrollConfirm { .. } => "totp_enroll_confirm",
            Request::Status { .. } => "status",
            Request::RegenerateBackupCodes { .. } => "regenerate_backup_codes",
            Request::RemoveTotp { .. } => "remove_totp",
            Request::AdminDisable { .. } => "admin_disable",
            Request::AdminList => "admin_list",
        }
    }

    /// Parses a frame body, telling an unknown request type (answered with
    /// [`Response::Unsupported`]) from a malformed body (connection closed).
    pub fn decode(body: &[u8]) -> Result<Request, DecodeError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let kind = match value.get("type") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(DecodeError::Malformed("missing \"type\" field".into())),
        };
        serde_json::from_value(value).map_err(|e| {
            if e.to_string().starts_with("unknown variant") {
                DecodeError::Unknown(kind.chars().take(64).collect())
            } else {
                DecodeError::Malformed(e.to_string())
            }
        })
    }
}

/// Why a request body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Well-formed, but a request type this daemon does not know (first 64 chars).
    #[error("unknown request type {0:?}")]
    Unknown(String),
    /// Not JSON, or fields of the wrong shape.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// A message from the daemon to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`]: the version both sides will speak.
    Welcome {
        /// The chosen protocol version.
        proto: u32,
    },
    /// Ask the person something; reply with [`Request::Answer`].
    Prompt {
        /// The prompt text, e.g. `Verification code: `.
        text: String,
        /// Whether the answer may be shown while typed.
        echo: bool,
    },
    /// Show a line of information; reply with [`Request::Ack`].
    Info {
        /// The text.
        text: String,
    },
    /// Show an error line; reply with [`Request::Ack`].
    Error {
        /// The text.
        text: String,
    },
    /// Show a line and wait (e.g. "Touch your security key"); reply with [`Request::Ack`].
    Wait {
        /// The text.
        text: String,
    },
    /// The login conversation succeeded.
    Success,
    /// The login conversation failed.
    Denied {
        /// Why, in words fit for the log (never a code).
        reason: String,
    },
    /// twofold has no say in this login (e.g. user not enrolled, policy allows).
    Ignore,
    /// The daemon cannot decide now (storage down, shutting down).
    Unavailable,
    /// The request type is unknown to this daemon.
    Unsupported {
        /// The request type as received (truncated).
        request: String,
    },
    /// A self-service or admin request failed.
    Failed {
        /// Category, which the CLI maps to its exit code.
        kind: ErrorKind,
        /// A message for the person.
        message: String,
    },
    /// A pending TOTP enrollment to show the person.
    TotpPending(TotpEnrollment),
    /// Freshly made backup codes, shown once.
    BackupCodes {
        /// The codes, in display form (`xxxxx-xxxxx`).
        codes: Vec<Secret>,
    },
    /// One account's state.
    Status(UserStatus),
    /// Every account's state.
    Users {
        /// The accounts, sorted by name.
        users: Vec<UserStatus>,
    },
    /// A request that changes state succeeded.
    Done {
        /// What was done, for the person.
        message: String,
    },
}

/// Category of a [`Response::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was invalid (bad user name, bad parameter, wrong state).
    BadRequest,
    /// The caller may not do this (identity from SO_PEERCRED).
    PermissionDenied,
    /// The account or factor does not exist.
    NotFound,
    /// A code given to authorize or confirm was wrong.
    InvalidCode,
    /// The factor already exists.
    Conflict,
    /// No common protocol version.
    VersionMismatch,
    /// The daemon failed internally (storage); nothing was changed.
    Internal,
}

/// HMAC algorithm of a TOTP credential (RFC 6238).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    /// HMAC-SHA1: what every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512` (any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A pending TOTP enrollment, sent once to the person enrolling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrollment {
    /// The account.
    pub user: String,
    /// The shared secret, base32 without padding.
    pub secret: Secret,
    /// The `otpauth://totp/...` URI for QR codes.
    pub uri: Secret,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
    /// Time step in seconds.
    pub period: u32,
    /// Issuer shown by authenticator apps.
    pub issuer: String,
}

/// One enrolled factor of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorStatus {
    /// `totp`.
    pub method: String,
    /// When it was confirmed (Unix seconds).
    pub enrolled_at: u64,
    /// When it last opened a login (Unix seconds).
    #[serde(default)]
    pub last_used: Option<u64>,
}

/// What is enrolled for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// The account name.
    pub user: String,
    /// Confirmed factors.
    pub factors: Vec<FactorStatus>,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// Whether a TOTP enrollment awaits confirmation.
    #[serde(default)]
    pub pending_enrollment: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_request_type_is_told_apart_from_garbage() {
        assert_eq!(
            Request::decode(br#"{"type":"launch_missiles"}"#),
            Err(DecodeError::Unknown("launch_missiles".into()))
        );
        assert!(matches!(
            Request::decode(b"{\"type\":"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"user":"x"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"type":"begin","user":5}"#),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn new_optional_fields_default() {
        let r =
            Request::decode(br#"{"type":"begin","user":"a","service":"sshd","extra":1}"#).unwrap();
        assert_eq!(
            r,
            Request::Begin {
                user: "a".into(),
                service: "sshd".into(),
                rhost: None,
                tty: None,
                ruser: None
            }
        );
    }

    #[test]
    fn answer_debug_is_redacted() {
        let r = Request::Answer {
            text: Secret::from("987654"),
        };
        assert!(!format!("{r:?}").contains("987654"));
    }
}
