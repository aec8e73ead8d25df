//! Errors of the CLI and the stable exit code each one maps to.

use std::fmt;
use twofold_config::ConfigError;
use twofold_proto::{ClientError, ErrorKind, FrameError};

/// The process exit status of `twofold`. The numbers are a stable interface
/// for scripts and are listed in `twofold --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked.
    Ok,
    /// 1: an internal error, an unexpected reply, or anything not listed below.
    Internal,
    /// 2: bad command line, bad input, or an invalid configuration file.
    Usage,
    /// 3: the daemon could not be reached or did not answer in time.
    Unreachable,
    /// 4: the daemon refused the request for this caller.
    PermissionDenied,
    /// 5: a code given to authorize or confirm was wrong.
    InvalidCode,
    /// 6: the account or factor does not exist.
    NotFound,
    /// 7: the factor already exists.
    Conflict,
    /// 8: `twofold audit verify` found the chain broken.
    AuditBroken,
    /// 9: `twofold doctor` found warnings (and no errors).
    DoctorWarnings,
    /// 10: `twofold doctor` found errors.
    DoctorErrors,
}

impl Exit {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Internal => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::PermissionDenied => 4,
            Exit::InvalidCode => 5,
            Exit::NotFound => 6,
            Exit::Conflict => 7,
            Exit::AuditBroken => 8,
            Exit::DoctorWarnings => 9,
            Exit::DoctorErrors => 10,
        }
    }

    /// The exit status for a daemon's `Failed { kind }` answer.
    pub fn from_kind(kind: ErrorKind) -> Exit {
        match kind {
            ErrorKind::BadRequest => Exit::Usage,
            ErrorKind::PermissionDenied => Exit::PermissionDenied,
            ErrorKind::NotFound => Exit::NotFound,
            ErrorKind::InvalidCode => Exit::InvalidCode,
            ErrorKind::Conflict => Exit::Conflict,
            ErrorKind::VersionMismatch | ErrorKind::Internal => Exit::Internal,
        }
    }

    /// The exit status for a failure to talk to the daemon.
    pub fn from_client(err: &ClientError) -> Exit {
        match err {
            ClientError::Unreachable { .. } | ClientError::Timeout(_) => Exit::Unreachable,
            // The daemon went away or stalled mid-request: to a script that is
            // the same as not reaching it.
            ClientError::Frame(
                FrameError::Closed
                | FrameError::Truncated
                | FrameError::Timeout
                | FrameError::Io(_),
            ) => Exit::Unreachable,
            ClientError::Frame(FrameError::TooLarge { .. } | FrameError::Malformed(_))
            | ClientError::Protocol(_) => Exit::Internal,
        }
    }
}

/// The exit-code table shown at the end of `twofold --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal or other error (including an unexpected reply from twofoldd)
  2  usage error, invalid input or invalid configuration
  3  twofoldd unreachable or timed out
  4  permission denied
  5  invalid code
  6  account or factor not found
  7  conflict (already enrolled)
  8  audit chain broken (`twofold audit verify`)
  9  `twofold doctor` found warnings
 10  `twofold doctor` found errors";

/// Why a `twofold` command failed. Messages never contain a code or secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon answered `Failed`.
    #[error("{message}")]
    Failed {
        /// The daemon's category.
        kind: ErrorKind,
        /// The daemon's message for the person.
        message: String,
    },
    /// The daemon could not be reached or the exchange broke.
    #[error("{0}{hint}", hint = client_hint(.0))]
    Client(#[from] ClientError),
    /// The person's input or the command line was unusable.
    #[error("{0}")]
    Usage(String),
    /// A configuration file was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The daemon does not know the request (it is older than this CLI).
    #[error("twofoldd does not support {0:?}; is it older than this twofold?")]
    Unsupported(String),
    /// The daemon said it cannot decide now (e.g. its storage is down).
    #[error("twofoldd is unavailable right now; try again later")]
    Unavailable,
    /// The daemon answered with a message that does not fit the request.
    #[error("unexpected reply from twofoldd: {0}")]
    Unexpected(&'static str),
    /// `twofold doctor` found problems (already printed).
    #[error("{count} problem(s) found")]
    Doctor {
        /// How many warnings and errors.
        count: usize,
        /// Whether any is an error.
        errors: bool,
    },
    /// `twofold audit verify` found a row that does not verify.
    #[error("audit chain broken at row {id}: {reason}")]
    AuditBroken {
        /// The first row that does not verify.
        id: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing output or reading the terminal failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit status this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Failed { kind, .. } => Exit::from_kind(*kind),
            CliError::Client(e) => Exit::from_client(e),
            CliError::Usage(_) | CliError::Config(_) => Exit::Usage,
            CliError::Unsupported(_) | CliError::Unavailable | CliError::Unexpected(_) => {
                Exit::Internal
            }
            CliError::Io { .. } => Exit::Internal,
            CliError::AuditBroken { .. } => Exit::AuditBroken,
            CliError::Doctor { errors: true, .. } => Exit::DoctorErrors,
            CliError::Doctor { errors: false, .. } => Exit::DoctorWarnings,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> CliError {
        move |source| CliError::Io { context, source }
    }
}

/// What to check when the daemon cannot be reached.
fn client_hint(err: &ClientError) -> &'static str {
    match err {
        ClientError::Unreachable { .. } => "; is twofoldd running?",
        _ => "",
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_failed_kind_maps_to_its_documented_code() {
        let table = [
            (ErrorKind::BadRequest, 2),
            (ErrorKind::PermissionDenied, 4),
            (ErrorKind::NotFound, 6),
            (ErrorKind::InvalidCode, 5),
            (ErrorKind::Conflict, 7),
            (ErrorKind::VersionMismatch, 1),
            (ErrorKind::Internal, 1),
        ];
        for (kind, code) in table {
            let err = CliError::Failed {
                kind,
                message: "m".into(),
            };
            assert_eq!(err.exit().code(), code, "{kind:?}");
        }
    }

    #[test]
    fn client_errors_map_to_unreachable_or_internal() {
        let unreachable = ClientError::Unreachable {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(CliError::from(unreachable).exit().code(), 3);
        let timeout = ClientError::Timeout(Duration::from_secs(1));
        assert_eq!(CliError::from(timeout).exit().code(), 3);
        let closed = ClientError::Frame(FrameError::Closed);
        assert_eq!(CliError::from(closed).exit().code(), 3);
        let malformed = ClientError::Frame(FrameError::Malformed("x".into()));
        assert_eq!(CliError::from(malformed).exit().code(), 1);
        let protocol = ClientError::Protocol("x".into());
        assert_eq!(CliError::from(protocol).exit().code(), 1);
    }

    #[test]
    fn local_errors_map_to_usage_or_internal() {
        assert_eq!(CliError::Usage("x".into()).exit().code(), 2);
        assert_eq!(CliError::Unavailable.exit().code(), 1);
        assert_eq!(CliError::Unsupported("status".into()).exit().code(), 1);
        assert_eq!(CliError::Unexpected("users").exit().code(), 1);
        let cfg = twofold_config::Config::parse("[nope]\n", "t.toml").unwrap_err();
        assert_eq!(CliError::from(cfg).exit().code(), 2);
    }

    #[test]
    fn help_lists_every_exit_code() {
        for code in 0..=8 {
            assert!(
                EXIT_CODES_HELP.contains(&format!("\n  {code}  ")),
                "code {code} missing from help"
            );
        }
    }
}
