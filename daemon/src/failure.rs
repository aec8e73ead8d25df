//! [`Failure`]: a refused request — what the client is told, plus a detail
//! for the log only.

use crate::crypto::keys::{KeyError, SealError};
use crate::store::StoreError;
use twofold_proto::ErrorKind;

/// A refused request: what the client is told, plus a detail for the log only.
#[derive(Debug)]
pub struct Failure {
    /// The kind the client sees (and its exit code).
    pub kind: ErrorKind,
    /// What the client is told.
    pub message: String,
    /// For the daemon's log only.
    pub detail: Option<String>,
}

/// A refusal of `kind` saying `message`.
pub fn fail(kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
        detail: None,
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        if let StoreError::TooLong(m) = e {
            return fail(ErrorKind::BadRequest, m);
        }
        Failure {
            kind: ErrorKind::Internal,
            message: "internal error (storage); nothing was changed".into(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Failure {
        Failure {
            kind: ErrorKind::Internal,
            message: "internal error; nothing was changed".into(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<SealError> for Failure {
    fn from(e: SealError) -> Failure {
        Failure {
            kind: ErrorKind::Internal,
            message: "a stored credential cannot be decrypted; ask an admin".into(),
            detail: Some(e.to_string()),
        }
    }
}

/// Name of an error kind for the log.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::NotFound => "not_found",
        ErrorKind::InvalidCode => "invalid_code",
        ErrorKind::Conflict => "conflict",
        ErrorKind::VersionMismatch => "version_mismatch",
        ErrorKind::Internal => "internal",
    }
}
