//! Reaching twofoldd: which socket, one connection per request.

use crate::error::CliError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use twofold_config::{Config, ConfigError};
use twofold_proto::{Client, Request, Response};

/// The name this CLI gives in `Hello`, for the daemon's log.
pub const CLIENT_NAME: &str = concat!("twofold-cli/", env!("CARGO_PKG_VERSION"));

/// Where and how patiently to reach the daemon.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The daemon's Unix socket.
    pub socket: PathBuf,
    /// Limit for connecting and for each answer.
    pub timeout: Duration,
}

impl Daemon {
    /// Sends one request on a fresh connection and returns the answer.
    ///
    /// A fresh connection per request means a person may take as long as
    /// they like to type a code between requests without the daemon's client
    /// timeout closing the conversation. `Failed`, `Unsupported` and
    /// `Unavailable` become errors, so callers only see answers to act on.
    pub fn call(&self, req: &Request) -> Result<Response, CliError> {
        let mut client = Client::connect(&self.socket, self.timeout, CLIENT_NAME)?;
        match client.call(req)? {
            Response::Failed { kind, message } => Err(CliError::Failed { kind, message }),
            Response::Unsupported { request } => Err(CliError::Unsupported(request)),
            Response::Unavailable => Err(CliError::Unavailable),
            other => Ok(other),
        }
    }
}

/// Picks the daemon socket: `--socket`, else `[daemon].socket` of `--config`,
/// else that of `default_config` when it is readable, else the built-in path.
///
/// A `--config` the person named must load; the default file may be absent or
/// unreadable (ordinary users often cannot read `/etc/twofold`), and when it
/// is invalid a warning goes to `warn` and the built-in path is used.
pub fn resolve_socket(
    socket: Option<&Path>,
    config: Option<&Path>,
    default_config: &Path,
    warn: &mut dyn Write,
) -> Result<PathBuf, CliError> {
    if let Some(s) = socket {
        return Ok(s.to_owned());
    }
    if let Some(c) = config {
        return Ok(Config::load(c)?.daemon.socket);
    }
    match Config::load(default_config) {
        Ok(c) => Ok(c.daemon.socket),
        Err(ConfigError::Read { .. }) => Ok(PathBuf::from(twofold_proto::DEFAULT_SOCKET)),
        Err(e) => {
            let _ = writeln!(
                warn,
                "twofold: warning: ignoring invalid configuration: {e}; using {}",
                twofold_proto::DEFAULT_SOCKET
            );
            Ok(PathBuf::from(twofold_proto::DEFAULT_SOCKET))
        }
    }
}

/// The name of the account this process runs as, when the system knows it
/// (and it is UTF-8).
pub fn own_user_name() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let account = twofold_config::groups::account_of(uid).ok()??;
    account.name.into_string().ok()
}

/// Whether a request about `user` is self-service, which needs a fresh code
/// to change a factor. Admins acting on another account do not.
pub fn is_self(user: Option<&str>) -> bool {
    match user {
        None => true,
        Some(u) => own_user_name().as_deref() == Some(u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file in its own temp dir, removed on drop.
    struct TempConfig(PathBuf);

    impl std::ops::Deref for TempConfig {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn temp(name: &str, text: &str) -> TempConfig {
        let dir = std::env::temp_dir().join(format!("tf-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("twofold.toml");
        std::fs::write(&path, text).unwrap();
        TempConfig(path)
    }

    #[test]
    fn explicit_socket_wins() {
        let cfg = temp("wins", "[daemon]\nsocket = \"/from/config\"\n");
        let got = resolve_socket(Some(Path::new("/flag")), Some(&cfg), &cfg, &mut Vec::new());
        assert_eq!(got.unwrap(), PathBuf::from("/flag"));
    }

    #[test]
    fn socket_from_named_and_default_config() {
        let cfg = temp("named", "[daemon]\nsocket = \"/from/config\"\n");
        let missing = Path::new("/nonexistent/twofold.toml");
        let got = resolve_socket(None, Some(&cfg), missing, &mut Vec::new()).unwrap();
        assert_eq!(got, PathBuf::from("/from/config"));
        let got = resolve_socket(None, None, &cfg, &mut Vec::new()).unwrap();
        assert_eq!(got, PathBuf::from("/from/config"));
    }

    #[test]
    fn missing_default_config_falls_back_quietly() {
        let mut warn = Vec::new();
        let got = resolve_socket(
            None,
            None,
            Path::new("/nonexistent/twofold.toml"),
            &mut warn,
        )
        .unwrap();
        assert_eq!(got, PathBuf::from(twofold_proto::DEFAULT_SOCKET));
        assert!(warn.is_empty());
    }

    #[test]
    fn invalid_default_config_warns_and_falls_back() {
        let cfg = temp("invalid", "[daemon]\nsockett = \"/x\"\n");
        let mut warn = Vec::new();
        let got = resolve_socket(None, None, &cfg, &mut warn).unwrap();
        assert_eq!(got, PathBuf::from(twofold_proto::DEFAULT_SOCKET));
        let warn = String::from_utf8(warn).unwrap();
        assert!(warn.contains("sockett"), "{warn}");
    }

    #[test]
    fn named_config_must_load() {
        let cfg = temp("mustload", "[daemon]\nsockett = \"/x\"\n");
        let err = resolve_socket(None, Some(&cfg), &cfg, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit().code(), 2);
        let missing = Path::new("/nonexistent/twofold.toml");
        let err = resolve_socket(None, Some(missing), missing, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit().code(), 2);
    }

    #[test]
    fn own_account_is_self() {
        assert!(is_self(None));
        if let Some(me) = own_user_name() {
            assert!(is_self(Some(&me)));
        }
        assert!(!is_self(Some("no-such-user-twofold-test")));
    }
}
