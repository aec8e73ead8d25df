//! What every store keeps of sent codes and security notices, and for how
//! long: one list, so the SQLite and PostgreSQL stores cannot drift.

use crate::audit::event;

/// The events a person with a confirmed address is told of by mail.
pub(crate) const NOTIFIED: &[&str] = &[
    event::BACKUP_CODE_USED,
    event::TEMP_CODE_USED,
    event::ENROLL,
    event::FACTOR_REMOVED,
    event::ADMIN,
    event::LOCKOUT,
    event::DESTINATION_CHANGED,
];

/// Lockout notices of one user are sent at most once per this many seconds.
pub(crate) const LOCKOUT_DEDUP: u64 = 3600;

/// Sent-code rows are kept this long (the hourly limits count them).
pub(crate) const KEEP_SENT: u64 = 86_400;

/// Sent (or dropped) notices are kept this long, for inspection.
pub(crate) const KEEP_NOTICES: u64 = 30 * 86_400;
