//! `[rate_limit]` and `[audit]`.

use crate::Seconds;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[rate_limit]`: failed codes counted in the database (they survive a
/// restart). Every wrong code counts: one login with three wrong codes is
/// three failures.
///
/// A *source* is PAM_RHOST (empty for local logins such as sudo and su). When
/// one (user, source) pair reaches `source_failures` within `source_window`,
/// that pair is locked for `source_lockout`; other sources still work. When
/// the user reaches `user_failures` within `user_window` from all sources
/// together, the user is locked everywhere for `user_lockout`. A locked login
/// is told "Too many failed attempts; try again in N minutes" and runs no
/// verification. A lock resets the count it was made from; a successful login
/// resets its pair's count; `twofold admin unlock --user NAME` clears every
/// lock and count of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Failures from one source that lock that (user, source) pair, 1 to 1000. Default 5.
    pub source_failures: u32,
    /// The window they are counted in. Default `15m`.
    pub source_window: Seconds,
    /// How long the pair stays locked. Default `15m`.
    pub source_lockout: Seconds,
    /// Failures from all sources that lock the user everywhere, 1 to 10000. Default 20.
    pub user_failures: u32,
    /// The window they are counted in. Default `15m`.
    pub user_window: Seconds,
    /// How long the user stays locked. Default `15m`.
    pub user_lockout: Seconds,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            source_failures: 5,
            source_window: Seconds(900),
            source_lockout: Seconds(900),
            user_failures: 20,
            user_window: Seconds(900),
            user_lockout: Seconds(900),
        }
    }
}

/// `[audit]`: the tamper-evident trail of security events.
///
/// Every event is one row of an append-only table (each row carries the
/// SHA-256 of the previous one; `twofold audit verify` checks the chain) and
/// one syslog line (facility authpriv) with the same fields. Never a code or
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Rows older than this are pruned (at start and then hourly); the chain
    /// of what remains still verifies from a stored anchor. At least `1h`.
    /// Default `365d`.
    pub retain: Seconds,
    /// The local syslog datagram socket. `""` turns syslog lines off (the
    /// table is always written). Default `/dev/log`.
    pub syslog_socket: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retain: Seconds(365 * 86_400),
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}
