//! HOTP (RFC 4226): hardware OATH tokens an admin enrolls from the token's
//! secret (`twofold admin enroll hotp`). Each press makes the code of the
//! next counter value; a login accepts a code within [`WINDOW`] values
//! after the last one accepted, and the claim moves the credential's
//! counter to it, so each value opens at most one door (the store's
//! conditional update decides between two logins racing with one code).
//! A token pressed far ahead is brought back with two consecutive codes
//! ([`resync`]), searched within [`RESYNC_WINDOW`].
//!
//! The codes are totp-rs's with a one-second step: TOTP at time `c` with
//! period 1 is HOTP of counter `c`.

use super::totp::otp::{self, TotpParams};
use super::{Ctx, Factor, Found, Report, VerifyError, Who};
use crate::failure::{fail, Failure};
use crate::store::{Claim, Credential, NewCredential, Snapshot, StoreError};
use twofold_proto::{Algorithm, ErrorKind, FactorStatus, Method};
use zeroize::Zeroizing;

/// Counter values after the last accepted one that a login tries (RFC
/// 4226 §7.4's look-ahead window).
pub const WINDOW: u64 = 10;
/// Counter values searched for two consecutive codes when resynchronizing.
pub const RESYNC_WINDOW: u64 = 1000;
/// Tokens one account may hold.
pub const MAX_TOKENS: usize = 8;

/// The HOTP factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hotp;

/// The stored form of the parameters: `SHA1:6`.
fn params_text(algorithm: Algorithm, digits: u32) -> String {
    format!("{}:{digits}", algorithm.as_str())
}

fn params_of(c: &Credential) -> Result<TotpParams, StoreError> {
    let bad = || StoreError::Corrupt(format!("hotp {}: parameters {:?}", c.id, c.params));
    let (a, d) = c.params.split_once(':').ok_or_else(bad)?;
    Ok(TotpParams {
        algorithm: Algorithm::parse(a).ok_or_else(bad)?,
        digits: d.parse().map_err(|_| bad())?,
        period: 1,
    })
}

/// The user's confirmed HOTP credentials in `creds`.
fn tokens(creds: &[Credential]) -> impl Iterator<Item = &Credential> {
    creds
        .iter()
        .filter(|c| c.method == Method::HOTP && c.confirmed_at.is_some())
}

/// The first counter value a login may accept for `cred`.
fn next_counter(cred: &Credential) -> u64 {
    cred.counter.map_or(0, |c| c.saturating_add(1))
}

/// The first value in `from..from + window` whose code is `code` (all of
/// them computed, each compared in constant time).
fn matching(
    cx: &Ctx<'_>,
    cred: &Credential,
    params: &TotpParams,
    from: u64,
    window: u64,
    code: &str,
) -> Result<Option<u64>, VerifyError> {
    let key = cx.keys.open(
        &Method::HOTP,
        &cred.user,
        cred.id,
        &cred.nonce,
        &cred.sealed,
    )?;
    Ok(otp::matching_counters(params, &key, from, window, code)
        .first()
        .copied())
}

impl Factor for Hotp {
    fn method(&self) -> Method {
        Method::HOTP
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        tokens(&snap.credentials).next().is_some()
    }

    /// Every token of the user is tried (a code matches at most one value
    /// of one token); the claim is the first match.
    fn check(
        &self,
        cx: &Ctx<'_>,
        _who: &Who<'_>,
        snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let mut shaped = false;
        for cred in tokens(&snap.credentials) {
            let params = params_of(cred)?;
            if !otp::looks_like_code(&params, typed) {
                continue;
            }
            shaped = true;
            if let Some(value) = matching(cx, cred, &params, next_counter(cred), WINDOW, typed)? {
                return Ok(Some(Found::Claim(Claim::Counter {
                    credential: cred.id,
                    value,
                })));
            }
        }
        Ok(shaped.then_some(Found::Rejected("wrong code")))
    }

    fn lost(&self) -> &'static str {
        "code already used"
    }

    fn authorizes(&self) -> bool {
        true
    }

    fn report(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        creds: &[Credential],
    ) -> Result<Report, StoreError> {
        Ok(Report {
            factors: tokens(creds)
                .map(|c| FactorStatus {
                    method: Method::HOTP,
                    enrolled_at: c.confirmed_at.unwrap_or(c.created_at),
                    last_used: c.last_used,
                    destination: None,
                })
                .collect(),
            ..Report::default()
        })
    }
}

/// A token to enroll, as the admin gave it.
#[derive(Debug)]
pub struct Token {
    /// The shared secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length, 6 to 8.
    pub digits: u32,
    /// The counter value of the token's next code.
    pub counter: u64,
    /// A name for the token (e.g. its serial number).
    pub label: String,
}

/// Stores `token` for `user` as a pending credential; the caller confirms
/// it (with its counter, see [`first_counter`]) and the audit row in one
/// transaction. Returns the row id.
pub fn store_pending(cx: &Ctx<'_>, user: &str, token: &Token) -> Result<i64, Failure> {
    if !(6..=8).contains(&token.digits) {
        return Err(fail(ErrorKind::BadRequest, "digits must be 6, 7 or 8"));
    }
    if !(16..=64).contains(&token.secret.len()) {
        return Err(fail(
            ErrorKind::BadRequest,
            "the secret must be 16 to 64 bytes (RFC 4226 asks for at least 16)",
        ));
    }
    let creds = cx.store.credentials(user)?;
    if tokens(&creds).count() >= MAX_TOKENS {
        return Err(fail(
            ErrorKind::Conflict,
            format!("{user} already has {MAX_TOKENS} HOTP tokens"),
        ));
    }
    if tokens(&creds).any(|c| c.label == token.label) {
        return Err(fail(
            ErrorKind::Conflict,
            format!("{user} already has an HOTP token named {:?}", token.label),
        ));
    }
    let id = super::random_row_id()?;
    let (sealed, nonce) = cx.keys.seal(&Method::HOTP, user, id, &token.secret)?;
    let new = NewCredential {
        id,
        method: Method::HOTP,
        label: token.label.clone(),
        sealed,
        nonce: nonce.to_vec(),
        params: params_text(token.algorithm, token.digits),
        single: false,
    };
    cx.store.start_pending(user, new, cx.now())?;
    Ok(id)
}

/// The stored counter of a token whose next code is `next`: the last
/// value taken as spent (`None` when nothing is).
pub fn first_counter(next: u64) -> Option<u64> {
    next.checked_sub(1)
}

/// Finds the token of `user` (the one named `label`, or the only one) and
/// the counter value of `second` when `first` and `second` are the codes
/// of two consecutive values within [`RESYNC_WINDOW`] after its counter:
/// the claim that moves the counter past them.
pub fn resync(
    cx: &Ctx<'_>,
    user: &str,
    label: Option<&str>,
    first: &str,
    second: &str,
) -> Result<Claim, Failure> {
    let creds = cx.store.credentials(user)?;
    let mine: Vec<&Credential> = tokens(&creds)
        .filter(|c| label.is_none_or(|l| c.label == l))
        .collect();
    let cred = match mine.as_slice() {
        [] => {
            return Err(fail(
                ErrorKind::NotFound,
                format!("{user} has no such HOTP token"),
            ))
        }
        [one] => *one,
        _ => {
            return Err(fail(
                ErrorKind::BadRequest,
                format!("{user} has several HOTP tokens; name one with --name"),
            ))
        }
    };
    let params = params_of(cred)?;
    let key = cx
        .keys
        .open(&Method::HOTP, user, cred.id, &cred.nonce, &cred.sealed)?;
    let from = next_counter(cred);
    let firsts = otp::matching_counters(&params, &key, from, RESYNC_WINDOW, first);
    let seconds = otp::matching_counters(&params, &key, from, RESYNC_WINDOW + 1, second);
    if let Some(value) = firsts.iter().map(|v| v + 1).find(|v| seconds.contains(v)) {
        return Ok(Claim::Counter {
            credential: cred.id,
            value,
        });
    }
    Err(fail(
        ErrorKind::InvalidCode,
        format!(
            "the two codes are not consecutive codes of this token within {RESYNC_WINDOW} presses"
        ),
    ))
}
