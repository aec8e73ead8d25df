//! Break-glass codes: a one-time code an admin issues (`twofold admin
//! temp-code`) for a person who lost every factor, instead of switching
//! MFA off for them. Short-lived (1 hour by default, 7 days at most),
//! single use by default, shown once, stored as argon2id hashes behind a
//! keyed lookup like backup codes, audited when issued and when used.
//!
//! `--uses N` stores N rows of the same code, use `i` under the keyed
//! lookup of `code:i` (lookups are unique), each spent once: a check looks
//! them up in order until it finds an unused one.
//!
//! Their shape (`xxxx-xxxx-xxxx`, twelve characters of the backup-code
//! alphabet) differs from a backup code's (ten), so the registry tells
//! them apart before any hashing.

use super::backup::codes::{self, ALPHABET};
use super::{Ctx, Factor, Found, Report, Role, VerifyError, Who};
use crate::audit::event;
use crate::crypto::keys::{random_bytes, KeyError};
use crate::store::{Claim, Credential, NewCode, Snapshot, StoreError};
use std::sync::atomic::Ordering;
use twofold_proto::{Method, Secret};
use zeroize::Zeroizing;

/// Characters in a break-glass code, without separators.
pub const CODE_LEN: usize = 12;
/// How long a code works unless the admin says.
pub const VALID: u64 = 3600;
/// The longest a code may work.
pub const VALID_MAX: u64 = 7 * 86_400;
/// The most logins one code may open.
pub const USES_MAX: u32 = 10;

/// The break-glass factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TempCode;

/// A fresh code: shown once, and the rows to store (one per use).
#[derive(Debug)]
pub struct Made {
    /// `xxxx-xxxx-xxxx`.
    pub shown: Secret,
    /// One row per use, all of the same code.
    pub rows: Vec<NewCode>,
}

/// Makes a code for `user` that opens `uses` logins until `expires_at`.
pub fn make(cx: &Ctx<'_>, user: &str, uses: u32, expires_at: u64) -> Result<Made, KeyError> {
    let mut raw = Zeroizing::new([0u8; CODE_LEN]);
    random_bytes(&mut raw[..])?;
    let normalized: Zeroizing<String> = Zeroizing::new(
        raw.iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect(),
    );
    let shown = format!(
        "{}-{}-{}",
        &normalized[..4],
        &normalized[4..8],
        &normalized[8..]
    );
    let mut rows = Vec::with_capacity(uses as usize);
    for i in 0..uses {
        rows.push(NewCode {
            lookup: lookup(cx, user, &normalized, i),
            hash: codes::hash(&normalized)?,
            expires_at: Some(expires_at),
        });
    }
    Ok(Made {
        shown: Secret::new(shown),
        rows,
    })
}

/// The keyed lookup of use `i` of a normalized code.
fn lookup(cx: &Ctx<'_>, user: &str, normalized: &str, i: u32) -> [u8; 32] {
    let keyed = Zeroizing::new(format!("{normalized}:{i}"));
    cx.keys.code_lookup(&Method::TEMP_CODE, user, &keyed)
}

/// The canonical form of a typed code, or `None` when it cannot be one.
pub fn normalize(answer: &str) -> Option<Zeroizing<String>> {
    if answer.len() > codes::MAX_ANSWER {
        return None;
    }
    let s: Zeroizing<String> = Zeroizing::new(
        answer
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let ok = s.len() == CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
    ok.then_some(s)
}

impl Factor for TempCode {
    fn method(&self) -> Method {
        Method::TEMP_CODE
    }

    fn role(&self) -> Role {
        Role::Issued
    }

    /// An unused code that has not expired (the snapshot lists only those).
    fn usable(&self, snap: &Snapshot) -> bool {
        snap.codes.contains(&Method::TEMP_CODE)
    }

    fn check(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        _snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let Some(normalized) = normalize(typed) else {
            return Ok(None);
        };
        let now = cx.now();
        let mut found = None;
        for i in 0..USES_MAX {
            let key = lookup(cx, who.user, &normalized, i);
            let (lock, row) =
                cx.store
                    .find_code(who.user, who.source, &Method::TEMP_CODE, &key, now)?;
            if let Some(l) = lock {
                return Ok(Some(Found::Locked(l)));
            }
            let Some(row) = row else {
                break;
            };
            let unused = row.used_at.is_none();
            found = Some(row);
            if unused {
                break;
            }
        }
        let Some(row) = found else {
            return Ok(Some(Found::Rejected("wrong code")));
        };
        if row.used_at.is_some() {
            return Ok(Some(Found::Rejected("break-glass code already used")));
        }
        if row.expires_at.is_some_and(|t| now >= t) {
            return Ok(Some(Found::Rejected("break-glass code expired")));
        }
        cx.argon2_runs.fetch_add(1, Ordering::SeqCst);
        if !codes::verify(&normalized, &row.hash) {
            return Ok(Some(Found::Rejected("wrong code")));
        }
        Ok(Some(Found::Claim(Claim::Code {
            id: row.id,
            method: Method::TEMP_CODE,
        })))
    }

    fn spent_event(&self) -> Option<&'static str> {
        Some(event::TEMP_CODE_USED)
    }

    fn lost(&self) -> &'static str {
        "break-glass code already used"
    }

    /// A fresh break-glass code lets its holder replace the factor they
    /// lost (issue it with two uses: one for the login, one for that).
    fn authorizes(&self) -> bool {
        true
    }

    fn report(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        _creds: &[Credential],
    ) -> Result<Report, StoreError> {
        Ok(Report::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_differs_from_a_backup_code() {
        assert!(normalize("abcd-efgh-2345").is_some());
        assert!(normalize("ABCD EFGH 2345").is_some());
        assert!(normalize("abcde-23456").is_none(), "a backup code");
        assert!(codes::normalize("abcd-efgh-2345").is_none());
        assert!(normalize("abcd-efgh-234").is_none());
        assert!(
            normalize("abcd-efgh-2340").is_none(),
            "0 is not in the alphabet"
        );
    }
}
