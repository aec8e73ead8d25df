//! Parsing and validation of `/etc/twofold/twofold.toml`.
//!
//! Every option has a compiled-in default, documented on its field. Unknown
//! keys are refused, and every error names the file, the line and the key, so
//! a typo never silently falls back to a default.

mod check;
mod duration;
pub mod email;
pub mod fido2;
pub mod groups;
mod locate;
mod net;
pub mod policy;
pub mod remember;
mod sending;
pub mod sms;
mod store;
mod tables;
pub mod time;

pub use duration::{format_duration, parse_duration, Seconds};
pub use email::{EmailConfig, SmtpTls};
pub use fido2::Fido2Config;
pub use locate::{line_of_path, Seg};
pub use net::Cidr;
pub use policy::{Decision, Effective, EnrollAtLogin, Method, PolicyConfig, Subject, Unenrolled};
pub use remember::{Remember, RememberConfig};
pub use sms::{SmsConfig, SmsProvider};
pub use store::{Backend, StoreConfig, StoreTls};
pub use tables::{AuditConfig, RateLimitConfig};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use twofold_proto::Algorithm;

/// Where the configuration lives unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/twofold/twofold.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the daemon listens and keeps its state.
    pub daemon: DaemonConfig,
    /// TOTP parameters for new enrollments and for verification.
    pub totp: TotpConfig,
    /// Backup codes.
    pub backup_codes: BackupCodesConfig,
    /// The login conversation.
    pub login: LoginConfig,
    /// Who must use MFA, where, with which methods (see [`policy`] for the precedence).
    pub policy: PolicyConfig,
    /// Failure counting and lockout.
    pub rate_limit: RateLimitConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Where the state is kept: SQLite (one host) or PostgreSQL (a fleet).
    pub store: StoreConfig,
    /// Devices remembered after a second factor (off unless services are named).
    pub remember: RememberConfig,
    /// Codes sent by mail and security notifications.
    pub email: EmailConfig,
    /// Codes sent by text message.
    pub sms: SmsConfig,
    /// FIDO2 security keys: the wait for a touch, where a PIN is needed.
    pub fido2: Fido2Config,
}

/// `[daemon]`: paths, access and limits of `twofoldd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Unix socket path. Default `/run/twofold/twofold.sock`.
    pub socket: PathBuf,
    /// SQLite database. Default `/var/lib/twofold/twofold.db`.
    pub database: PathBuf,
    /// 32-byte master key file, created 0600 if absent. Default `/etc/twofold/master.key`.
    pub master_key: PathBuf,
    /// Members of this group may make admin requests. Default: none (only root
    /// and the daemon's own user).
    pub admin_group: Option<String>,
    /// Connections served at once; more wait in the listen queue. Default 64.
    /// A quarter of them (at least one, see [`DaemonConfig::root_reserve`])
    /// is kept for root: unprivileged peers together hold at most the rest.
    pub max_connections: u32,
    /// Connections one unprivileged uid may hold at once, 1 to 4096; the
    /// next one is refused at once. Root and the daemon's own uid are not
    /// limited. Default 4.
    pub max_connections_per_user: u32,
    /// How long the daemon waits for the first byte of a client's next
    /// frame, in total (bytes dribbled one at a time do not extend it).
    /// Default `5m` (a person typing a code).
    pub client_timeout: Seconds,
    /// How long a frame may take once its first byte has arrived, 1s to 1m,
    /// however slowly it is sent; also the longest the daemon waits to
    /// write one. Default `10s` (a frame is one write: only a stalled or
    /// hostile client needs more).
    pub frame_timeout: Seconds,
}

impl DaemonConfig {
    /// Workers kept for root (sshd, sudo, su and login run PAM as root):
    /// a quarter of `max_connections`, rounded down, at least 1.
    pub fn root_reserve(&self) -> u32 {
        (self.max_connections / 4).max(1)
    }

    /// Connections all unprivileged peers together may hold at once:
    /// `max_connections` minus [`DaemonConfig::root_reserve`] (so none when
    /// `max_connections` is 1).
    pub fn unprivileged_connections(&self) -> u32 {
        self.max_connections.saturating_sub(self.root_reserve())
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from(twofold_proto::DEFAULT_SOCKET),
            database: PathBuf::from("/var/lib/twofold/twofold.db"),
            master_key: PathBuf::from("/etc/twofold/master.key"),
            admin_group: None,
            max_connections: 64,
            max_connections_per_user: 4,
            client_timeout: Seconds(300),
            frame_timeout: Seconds(10),
        }
    }
}

/// `[totp]`: RFC 6238 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    /// Issuer shown by authenticator apps. Default `twofold`.
    pub issuer: String,
    /// HMAC for new enrollments: `SHA1` (default), `SHA256` or `SHA512`.
    pub algorithm: Algorithm,
    /// Code length for new enrollments, 6 to 8. Default 6.
    pub digits: u32,
    /// Time step for new enrollments. Default `30s`.
    pub period: Seconds,
    /// Steps accepted either side of now, 0 to 10. Default 1.
    pub skew: u32,
    /// A started enrollment not confirmed within this time lapses. Default `15m`.
    pub enroll_timeout: Seconds,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            issuer: "twofold".into(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: Seconds(30),
            skew: 1,
            enroll_timeout: Seconds(15 * 60),
        }
    }
}

/// `[backup_codes]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupCodesConfig {
    /// Codes made at enrollment and on regeneration, 1 to 100. Default 10.
    pub count: u32,
}

impl Default for BackupCodesConfig {
    fn default() -> Self {
        BackupCodesConfig { count: 10 }
    }
}

/// `[login]`: the conversation run for each login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Wrong codes allowed in one login before it is denied, 1 to 10. Default 3.
    pub max_tries: u32,
    /// The prompt. Default `Verification code: `.
    pub prompt: String,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            max_tries: 3,
            prompt: "Verification code: ".into(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or names an unknown key or a bad value.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line of the offending key or value (0 when unknown).
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value is well-formed but out of range.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the key (0 when the key is not in the file).
        line: usize,
        /// Dotted key, e.g. `totp.digits`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
            message: e.message().trim().to_owned(),
        })?;
        config.validate(text, origin)?;
        check::check(&config, text, origin)?;
        Ok(config)
    }

    /// Where syslog lines should go according to `text`, read leniently:
    /// used to report a configuration that was *refused* to the syslog its
    /// author chose. Falls back to the default socket.
    pub fn syslog_socket_of(text: &str) -> PathBuf {
        text.parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("audit")?
                    .get("syslog_socket")?
                    .as_str()
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| AuditConfig::default().syslog_socket)
    }

    /// The configuration as TOML, every option spelled out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The options whose values differ between `self` and `other`, as
    /// dotted keys (`policy.unenrolled`, `daemon.socket`), sorted; an
    /// option set in one and unset in the other counts. The daemon's
    /// reload reports with it what changed and what needs a restart.
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let (a, b) = (self.as_table(), other.as_table());
        let mut changed = Vec::new();
        for section in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
            let (x, y) = (a.get(section), b.get(section));
            match (x.and_then(|v| v.as_table()), y.and_then(|v| v.as_table())) {
                (Some(x), Some(y)) => {
                    for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                        if x.get(key) != y.get(key) {
                            changed.push(format!("{section}.{key}"));
                        }
                    }
                }
                _ if x != y => changed.push(section.clone()),
                _ => {}
            }
        }
        changed.sort();
        changed
    }

    /// The configuration as a TOML table (empty if it cannot be rendered,
    /// which the types rule out: every field is a TOML value).
    fn as_table(&self) -> toml::Table {
        toml::Table::try_from(self).unwrap_or_default()
    }

    fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let checks: [(&str, &str, bool, &str); 9] = [
            (
                "totp",
                "digits",
                (6..=8).contains(&self.totp.digits),
                "must be 6, 7 or 8",
            ),
            (
                "totp",
                "period",
                (15..=120).contains(&self.totp.period.0),
                "must be between 15s and 2m",
            ),
            ("totp", "skew", self.totp.skew <= 10, "must be 0 to 10"),
            (
                "backup_codes",
                "count",
                (1..=100).contains(&self.backup_codes.count),
                "must be 1 to 100",
            ),
            (
                "login",
                "max_tries",
                (1..=10).contains(&self.login.max_tries),
                "must be 1 to 10",
            ),
            (
                "daemon",
                "max_connections",
                (1..=4096).contains(&self.daemon.max_connections),
                "must be 1 to 4096",
            ),
            (
                "daemon",
                "max_connections_per_user",
                (1..=4096).contains(&self.daemon.max_connections_per_user),
                "must be 1 to 4096",
            ),
            (
                "daemon",
                "client_timeout",
                self.daemon.client_timeout.0 >= 1,
                "must be at least 1s",
            ),
            (
                "daemon",
                "frame_timeout",
                (1..=60).contains(&self.daemon.frame_timeout.0),
                "must be between 1s and 1m",
            ),
        ];
        for (table, key, ok, message) in checks {
            if !ok {
                return Err(ConfigError::Invalid {
                    path: origin.to_owned(),
                    line: key_line(text, table, key),
                    key: format!("{table}.{key}"),
                    message: message.to_owned(),
                });
            }
        }
        if let Some((key, message)) = self.store.problem() {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                line: key_line(text, "store", key),
                key: format!("store.{key}"),
                message: message.to_owned(),
            });
        }
        if self.totp.issuer.is_empty() || self.totp.issuer.contains(':') {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                line: key_line(text, "totp", "issuer"),
                key: "totp.issuer".into(),
                message: "must be non-empty and contain no ':'".into(),
            });
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    locate::line_at(text, offset)
}

/// Line of `key` inside `[table]`, however the file writes it (a table
/// header, a dotted key, an inline table), from the spanned parse.
fn key_line(text: &str, table: &str, key: &str) -> usize {
    line_of_path(text, &[Seg::Key(table), Seg::Key(key)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.totp.digits, 6);
        assert_eq!(c.login.max_tries, 3);
    }

    #[test]
    fn durations_and_values_parse() {
        let c = Config::parse(
            "[totp]\nperiod = \"60s\"\nenroll_timeout = \"1h\"\nalgorithm = \"SHA256\"\n[daemon]\nclient_timeout = \"15m\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.totp.period, Seconds(60));
        assert_eq!(c.totp.enroll_timeout, Seconds(3600));
        assert_eq!(c.totp.algorithm, Algorithm::Sha256);
        assert_eq!(c.daemon.client_timeout, Seconds(900));
    }

    #[test]
    fn unknown_key_is_refused_with_file_line_and_key() {
        let err = Config::parse("[totp]\ndigits = 6\ndigitz = 7\n", "/etc/t.toml").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("/etc/t.toml:3:"), "{shown}");
        assert!(shown.contains("digitz"), "{shown}");
    }

    #[test]
    fn unknown_table_is_refused() {
        let err = Config::parse("[totpp]\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("totpp"), "{err}");
    }

    #[test]
    fn out_of_range_value_names_key_and_line() {
        let err = Config::parse("\n[totp]\ndigits = 9\n", "t.toml").unwrap_err();
        assert_eq!(err.to_string(), "t.toml:3: totp.digits: must be 6, 7 or 8");
    }

    /// Found by fuzzing (config_parse): a value out of range written as a
    /// dotted key or in an inline table was reported at line 0, since its
    /// line was looked for by matching `[table]` headers and `key =`
    /// lines of text.
    #[test]
    fn an_out_of_range_dotted_or_inline_key_names_its_line() {
        let found = "totp = { digits = 8, period = 60, algorithm = \"SHA512\", issuer = \"Example Corp\" }\ndaemon.max_connections = 8192\ndaemon.client_timeout = 30\naudit.retain = \"2h\"\naudit.syslog_socket = \"\"\n\"rate_limit\".source_failures = 1\n\n[login]\nmax_tries = 10\nprompt = \"\"\"\nCode: \"co\"\"\"\n";
        let err = Config::parse(found, "t.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.toml:2: daemon.max_connections: must be 1 to 4096"
        );
        for (text, shown) in [
            (
                "\n\ntotp = { digits = 9 }\n",
                "t.toml:3: totp.digits: must be 6, 7 or 8",
            ),
            (
                "[totp]\n\"digits\" = 9\n",
                "t.toml:2: totp.digits: must be 6, 7 or 8",
            ),
            (
                "[totp] # the codes\nissuer = \"a:b\"\n",
                "t.toml:2: totp.issuer: must be non-empty and contain no ':'",
            ),
        ] {
            assert_eq!(
                Config::parse(text, "t.toml").unwrap_err().to_string(),
                shown
            );
        }
    }

    #[test]
    fn bad_duration_is_refused() {
        for bad in ["\"-5m\"", "\"5 fortnights\"", "\"\"", "-3"] {
            let text = format!("[totp]\nenroll_timeout = {bad}\n");
            let err = Config::parse(&text, "t.toml").unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with("t.toml:2:"), "{bad}: {shown}");
        }
    }

    #[test]
    fn bad_algorithm_is_refused() {
        let err = Config::parse("[totp]\nalgorithm = \"MD5\"\n", "t.toml").unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
    }

    #[test]
    fn connection_limits_are_validated() {
        let c = Config::parse(
            "[daemon]\nmax_connections_per_user = 2\nframe_timeout = \"3s\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.daemon.max_connections_per_user, 2);
        assert_eq!(c.daemon.frame_timeout, Seconds(3));
        for (bad, key) in [
            (
                "max_connections_per_user = 0",
                "daemon.max_connections_per_user",
            ),
            ("frame_timeout = \"0s\"", "daemon.frame_timeout"),
            ("frame_timeout = \"2m\"", "daemon.frame_timeout"),
        ] {
            let err = Config::parse(&format!("[daemon]\n{bad}\n"), "t.toml").unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("t.toml:2: {key}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn root_keeps_a_quarter_of_the_connections() {
        let with = |max| DaemonConfig {
            max_connections: max,
            ..DaemonConfig::default()
        };
        for (max, reserve, others) in [(64, 16, 48), (8, 2, 6), (7, 1, 6), (2, 1, 1), (1, 1, 0)] {
            assert_eq!(with(max).root_reserve(), reserve, "{max}");
            assert_eq!(with(max).unprivileged_connections(), others, "{max}");
        }
    }

    #[test]
    fn changed_keys_name_each_option_that_differs() {
        let old = Config::default();
        assert!(old.changed_keys(&old.clone()).is_empty());
        let new = Config::parse(
            "[policy]\nunenrolled = \"deny\"\n[daemon]\nsocket = \"/tmp/x.sock\"\nadmin_group = \"wheel\"\n[login]\nmax_tries = 3\n",
            "t.toml",
        )
        .unwrap();
        // `admin_group` is unset by default (absent from the table) and
        // `max_tries = 3` is the default: only real differences count.
        assert_eq!(
            old.changed_keys(&new),
            ["daemon.admin_group", "daemon.socket", "policy.unenrolled"]
        );
        assert_eq!(new.changed_keys(&old), old.changed_keys(&new));
    }

    #[test]
    fn the_store_section_selects_postgres_and_checks_its_values() {
        let c = Config::parse(
            "[store]\nbackend = \"postgres\"\nhost = \"/run/pg\"\ndbname = \"fleet\"\npassword_file = \"/etc/twofold/pg.pass\"\nstatement_timeout = \"5s\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.store.backend, Backend::Postgres);
        assert_eq!(c.store.dbname, "fleet");
        assert_eq!(c.store.statement_timeout, Seconds(5));
        assert_eq!(Config::parse(&c.to_toml(), "again").unwrap(), c);
        // TLS: none on a socket; required over TCP but to loopback.
        assert_eq!(c.store.tls_mode(), None);
        let tcp = |host: &str, tls: &str| {
            Config::parse(
                &format!("[store]\nbackend = \"postgres\"\nhost = \"{host}\"\ntls = \"{tls}\"\n"),
                "t.toml",
            )
            .unwrap()
            .store
            .tls_mode()
        };
        assert_eq!(tcp("db.example.net", "auto"), Some(true));
        assert_eq!(tcp("127.0.0.1", "auto"), Some(false));
        assert_eq!(tcp("localhost", "require"), Some(true));
        assert_eq!(tcp("::1", "off"), None);
        for (bad, shown) in [
            ("backend = \"mysql\"", "t.toml:2:"),
            (
                "backend = \"postgres\"\nconnect_timeout = \"0s\"",
                "t.toml:3: store.connect_timeout:",
            ),
            (
                "backend = \"postgres\"\npassword_file = \"pg.pass\"",
                "t.toml:3: store.password_file:",
            ),
            (
                "backend = \"postgres\"\ndbname = \"\"",
                "t.toml:3: store.dbname:",
            ),
            ("hostname = \"x\"", "t.toml:2:"),
            (
                "backend = \"postgres\"\nhost = \"db.example.net\"\ntls = \"off\"",
                "t.toml:4: store.tls: \"off\" is allowed only to a loopback address",
            ),
            (
                "backend = \"postgres\"\ntls = \"require\"",
                "t.toml:3: store.tls: \"require\" needs a TCP host",
            ),
            (
                "backend = \"postgres\"\nca_file = \"ca.pem\"",
                "t.toml:3: store.ca_file:",
            ),
        ] {
            let err = Config::parse(&format!("[store]\n{bad}\n"), "t.toml").unwrap_err();
            assert!(err.to_string().starts_with(shown), "{bad}: {err}");
        }
    }

    #[test]
    fn rendering_round_trips() {
        let c = Config::default();
        let again = Config::parse(&c.to_toml(), "rendered").unwrap();
        assert_eq!(c, again);
    }
}
