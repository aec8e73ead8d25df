use crate::{
    connect_unix, read_message, write_message, FrameError, Request, Response, PROTO_OLDEST,
    PROTO_VERSION,
};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is missing, refuses connections, or the path is unusable.
    #[error("cannot reach twofoldd at {path}: {source}")]
    Unreachable {
        /// The socket path.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The daemon did not answer within the timeout.
    #[error("twofoldd did not answer within {0:?}")]
    Timeout(Duration),
    /// A frame could not be read or written.
    #[error("{0}")]
    Frame(FrameError),
    /// The daemon answered something the protocol does not allow here.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The error for a failed [`connect_unix`](crate::connect_unix) to
    /// `path`: `Timeout(timeout)` when the time ran out, else `Unreachable`.
    pub fn from_connect(path: &Path, timeout: Duration, source: io::Error) -> ClientError {
        if source.kind() == io::ErrorKind::TimedOut {
            ClientError::Timeout(timeout)
        } else {
            ClientError::Unreachable {
                path: path.display().to_string(),
                source,
            }
        }
    }
}

/// The `Hello` that opens every connection: the protocol versions this
/// build speaks, and `client` (name/version) for the daemon's log.
pub fn hello(client: &str) -> Request {
    Request::Hello {
        proto_min: PROTO_OLDEST,
        proto_max: PROTO_VERSION,
        client: client.to_owned(),
    }
}

/// Checks the daemon's reply to [`hello`]: `Welcome` with a version this
/// build speaks passes (and is returned); anything else is the protocol
/// error to report.
pub fn check_welcome(reply: Response) -> Result<u32, ClientError> {
    match reply {
        Response::Welcome { proto } if (PROTO_OLDEST..=PROTO_VERSION).contains(&proto) => Ok(proto),
        Response::Welcome { proto } => Err(ClientError::Protocol(format!(
            "daemon chose unsupported protocol version {proto}"
        ))),
        Response::Failed { message, .. } => Err(ClientError::Protocol(message)),
        other => Err(ClientError::Protocol(format!(
            "unexpected reply to hello: {}",
            response_name(&other)
        ))),
    }
}

/// A blocking connection to `twofoldd`, used by the PAM module and the CLI.
///
/// Every read and write waits at most `timeout`; connecting and the
/// `Hello`/`Welcome` handshake together also fit in one `timeout`.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    timeout: Duration,
}

impl Client {
    /// Connects to `path` and performs the version handshake, all within `timeout`.
    pub fn connect(path: &Path, timeout: Duration, client: &str) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let stream = connect_unix(path, timeout)
            .map_err(|source| ClientError::from_connect(path, timeout, source))?;
        let mut c = Client { stream, timeout };
        c.send_until(&hello(client), deadline)?;
        check_welcome(c.recv_until(deadline)?)?;
        Ok(c)
    }

    /// Sends one request, waiting at most the timeout.
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.send_until(req, Instant::now() + self.timeout)
    }

    /// Receives one response, waiting at most the timeout.
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        self.recv_until(Instant::now() + self.timeout)
    }

    /// Sends a request and returns the daemon's reply.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.send(req)?;
        self.recv()
    }

    /// The underlying stream, for tests that write raw frames after the handshake.
    pub fn stream_mut(&mut self) -> &mut UnixStream {
        &mut self.stream
    }

    fn send_until(&mut self, req: &Request, deadline: Instant) -> Result<(), ClientError> {
        let left = self.left(deadline)?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| ClientError::Frame(e.into()))?;
        write_message(&mut self.stream, req).map_err(|e| self.map_frame(e))
    }

    fn recv_until(&mut self, deadline: Instant) -> Result<Response, ClientError> {
        let left = self.left(deadline)?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| ClientError::Frame(e.into()))?;
        read_message(&mut self.stream).map_err(|e| self.map_frame(e))
    }

    fn left(&self, deadline: Instant) -> Result<Duration, ClientError> {
        match deadline.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(ClientError::Timeout(self.timeout)),
        }
    }

    fn map_frame(&self, e: FrameError) -> ClientError {
        match e {
            FrameError::Timeout => ClientError::Timeout(self.timeout),
            other => ClientError::Frame(other),
        }
    }
}

/// Name of a response type, safe to log (never its content).
pub fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Welcome { .. } => "welcome",
        Response::Prompt { .. } => "prompt",
        Response::Info { .. } => "info",
        Response::Error { .. } => "error",
        Response::Wait { .. } => "wait",
        Response::Success => "success",
        Response::Denied { .. } => "denied",
        Response::Ignore => "ignore",
        Response::Unavailable => "unavailable",
        Response::Unsupported { .. } => "unsupported",
        Response::Failed { .. } => "failed",
        Response::TotpPending(_) => "totp_pending",
        Response::BackupCodes { .. } => "backup_codes",
        Response::Status(_) => "status",
        Response::Users { .. } => "users",
        Response::Done { .. } => "done",
        Response::Locks { .. } => "locks",
        Response::EnrollToken { .. } => "enroll_token",
        Response::UsersPage { .. } => "users_page",
        Response::LocksPage { .. } => "locks_page",
        Response::AuditRecords { .. } => "audit_records",
        Response::AuditVerified(_) => "audit_verified",
        Response::StatsReport(_) => "stats_report",
        Response::TempCode { .. } => "temp_code",
        Response::DeviceList { .. } => "device_list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn missing_socket_is_unreachable() {
        let dir = std::env::temp_dir().join(format!("tf-proto-{}", std::process::id()));
        let err = Client::connect(&dir.join("nope.sock"), Duration::from_secs(1), "t").unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    }

    #[test]
    fn silent_daemon_times_out() {
        let dir = std::env::temp_dir().join(format!("tf-proto-silent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = UnixListener::bind(&path).unwrap();
        let start = Instant::now();
        let err = Client::connect(&path, Duration::from_millis(300), "t").unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_welcome_with_a_version_this_build_speaks_passes_the_handshake() {
        for proto in [PROTO_OLDEST, PROTO_VERSION] {
            assert_eq!(check_welcome(Response::Welcome { proto }).unwrap(), proto);
        }
        assert!(check_welcome(Response::Welcome {
            proto: PROTO_OLDEST - 1
        })
        .is_err());
        let err = check_welcome(Response::Welcome {
            proto: PROTO_VERSION + 1,
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "unsupported protocol version {}",
                PROTO_VERSION + 1
            )),
            "{err}"
        );
        let err = check_welcome(Response::Success).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol error: unexpected reply to hello: success"
        );
    }
}
