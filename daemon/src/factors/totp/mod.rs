//! TOTP (RFC 6238): a secret shared with an authenticator app, one
//! credential per user, enrolled with an `otpauth://` URI (QR code) and
//! confirmed by a code. A time step opens at most one door: the claim is
//! the credential's counter moving to that step.

pub mod otp;

use super::{
    Confirmation, Ctx, Enroll, EnrollOptions, Factor, Found, Pending, Report, VerifyError, Who,
};
use crate::crypto::keys::random_bytes;
use crate::failure::{fail, Failure};
use crate::store::{Claim, Credential, NewCredential, Snapshot, StoreError};
use otp::TotpParams;
use twofold_proto::{Algorithm, ErrorKind, FactorStatus, Method, Response, Secret, TotpEnrollment};
use zeroize::Zeroizing;

/// The TOTP factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totp;

/// The stored form of the parameters: `SHA1:6:30`.
pub fn params_text(p: &TotpParams) -> String {
    format!("{}:{}:{}", p.algorithm.as_str(), p.digits, p.period)
}

/// Parses [`params_text`]'s form; `None` for anything else.
pub fn parse_params(text: &str) -> Option<TotpParams> {
    let mut parts = text.split(':');
    let algorithm = Algorithm::parse(parts.next()?)?;
    let digits = parts.next()?.parse().ok()?;
    let period: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(TotpParams {
        algorithm,
        digits,
        period: period.max(1),
    })
}

/// The user's TOTP credential in `creds`, pending or confirmed.
fn credential(creds: &[Credential]) -> Option<&Credential> {
    creds.iter().find(|c| c.method == Method::TOTP)
}

fn params_of(c: &Credential) -> Result<TotpParams, StoreError> {
    parse_params(&c.params)
        .ok_or_else(|| StoreError::Corrupt(format!("totp {}: parameters {:?}", c.id, c.params)))
}

impl Totp {
    /// The time step `code` matches for `cred` (decrypts the secret).
    fn step(
        cx: &Ctx<'_>,
        cred: &Credential,
        params: &TotpParams,
        code: &str,
    ) -> Result<Option<u64>, VerifyError> {
        let secret = cx.keys.open(
            &Method::TOTP,
            &cred.user,
            cred.id,
            &cred.nonce,
            &cred.sealed,
        )?;
        Ok(otp::matching_step(
            params,
            &secret,
            cx.now(),
            cx.config.totp.skew,
            code,
        ))
    }
}

impl Factor for Totp {
    fn method(&self) -> Method {
        Method::TOTP
    }

    fn usable(&self, snap: &Snapshot) -> bool {
        credential(&snap.credentials).is_some_and(|c| c.confirmed_at.is_some())
    }

    /// Checked against the credential read before the prompt (no second
    /// read): the store's write that spends the step looks for a lock made
    /// meanwhile, and a credential removed or replaced meanwhile cannot be
    /// spent (the spend is by row id; a new credential has a new random id).
    fn check(
        &self,
        cx: &Ctx<'_>,
        _who: &Who<'_>,
        snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError> {
        let Some(cred) = credential(&snap.credentials).filter(|c| c.confirmed_at.is_some()) else {
            return Ok(None);
        };
        let params = params_of(cred)?;
        if !otp::looks_like_code(&params, typed) {
            return Ok(None);
        }
        Ok(Some(match Totp::step(cx, cred, &params, typed)? {
            Some(step) => Found::Claim(Claim::Counter {
                credential: cred.id,
                value: step,
            }),
            None => Found::Rejected("wrong code"),
        }))
    }

    fn decoy(&self, cx: &Ctx<'_>, typed: &str) {
        let mut secret = Zeroizing::new([0u8; 20]);
        let _ = random_bytes(&mut secret[..]);
        // Ids are positive and names cannot hold NUL: this matches no row.
        let user = "\0dummy";
        if let Ok((sealed, nonce)) = cx.keys.seal(&Method::TOTP, user, 0, &secret[..]) {
            if let Ok(key) = cx.keys.open(&Method::TOTP, user, 0, &nonce, &sealed) {
                let params = TotpParams {
                    algorithm: Algorithm::Sha1,
                    digits: 6,
                    period: 30,
                };
                let _ = otp::matching_step(&params, &key, cx.now(), cx.config.totp.skew, typed);
            }
        }
        // The same read a real login makes.
        let _ = cx.store.credentials(user);
    }

    fn authorizes(&self) -> bool {
        true
    }

    fn report(
        &self,
        cx: &Ctx<'_>,
        _user: &str,
        creds: &[Credential],
    ) -> Result<Report, StoreError> {
        let mut r = Report::default();
        if let Some(c) = credential(creds) {
            match c.confirmed_at {
                Some(at) => r.factors.push(FactorStatus {
                    method: Method::TOTP,
                    enrolled_at: at,
                    last_used: c.last_used,
                    destination: None,
                }),
                None => {
                    r.pending =
                        cx.now() <= c.created_at.saturating_add(cx.config.totp.enroll_timeout.0)
                }
            }
        }
        Ok(r)
    }

    fn enrollment(&self) -> Option<&dyn Enroll> {
        Some(self)
    }
}

/// Groups of four, for typing a secret by hand.
fn group4(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Enroll for Totp {
    /// The secret goes to whoever asks: beside a confirmed factor (an
    /// address, a token, a key), a process running as the user would
    /// otherwise add an authenticator of its own and pass every prompt.
    fn start_needs_authorization(&self) -> bool {
        true
    }

    fn start(&self, cx: &Ctx<'_>, user: &str, options: &EnrollOptions) -> Result<Pending, Failure> {
        let cfg = &cx.config.totp;
        let params = TotpParams {
            algorithm: options.algorithm.unwrap_or(cfg.algorithm),
            digits: options.digits.unwrap_or(cfg.digits),
            period: cfg.period.0,
        };
        if !(6..=8).contains(&params.digits) {
            return Err(fail(ErrorKind::BadRequest, "digits must be 6, 7 or 8"));
        }
        let mut secret = Zeroizing::new(vec![0u8; otp::secret_len(params.algorithm)]);
        random_bytes(&mut secret)?;
        let id = super::random_row_id()?;
        let (sealed, nonce) = cx.keys.seal(&Method::TOTP, user, id, &secret)?;
        let new = NewCredential {
            id,
            method: Method::TOTP,
            label: String::new(),
            sealed,
            nonce: nonce.to_vec(),
            params: params_text(&params),
            single: true,
        };
        if !cx.store.start_pending(user, new, cx.now())? {
            return Err(fail(
                ErrorKind::Conflict,
                format!("{user} already has a confirmed TOTP credential; remove it first"),
            ));
        }
        let b32 = otp::base32_encode(&secret);
        let uri = otp::otpauth_uri(&cfg.issuer, user, &b32, &params);
        let lines = vec![
            Secret::new(format!("Or add this URI: {}", uri.as_str())),
            Secret::new(format!(
                "Or type this secret: {} ({}, {} digits, {} s)",
                group4(&b32),
                params.algorithm.as_str(),
                params.digits,
                params.period
            )),
        ];
        Ok(Pending {
            response: Response::TotpPending(TotpEnrollment {
                user: user.to_owned(),
                secret: Secret::new(b32.to_string()),
                uri: Secret::new(uri.to_string()),
                algorithm: params.algorithm,
                digits: params.digits,
                period: u32::try_from(params.period).unwrap_or(u32::MAX),
                issuer: cfg.issuer.clone(),
            }),
            qr: Some(Secret::new(uri.to_string())),
            lines,
        })
    }

    fn confirm(&self, cx: &Ctx<'_>, user: &str, answer: &Secret) -> Result<Confirmation, Failure> {
        let now = cx.now();
        let creds = cx.store.credentials(user)?;
        let Some(cred) = credential(&creds) else {
            return Err(fail(
                ErrorKind::NotFound,
                "no pending TOTP enrollment; start one first",
            ));
        };
        if cred.confirmed_at.is_some() {
            return Err(fail(
                ErrorKind::Conflict,
                "the TOTP credential is already confirmed",
            ));
        }
        if now
            > cred
                .created_at
                .saturating_add(cx.config.totp.enroll_timeout.0)
        {
            cx.store.delete_pending(cred.id)?;
            return Err(fail(
                ErrorKind::NotFound,
                "the pending TOTP enrollment expired; start again",
            ));
        }
        let params = params_of(cred)?;
        let typed = answer.expose().trim();
        let step = match Totp::step(cx, cred, &params, typed) {
            Ok(s) => s,
            Err(VerifyError::Storage(e)) => return Err(e.into()),
            Err(VerifyError::Decrypt(e)) => return Err(e.into()),
        };
        let Some(step) = step else {
            return Err(fail(ErrorKind::InvalidCode, "invalid verification code"));
        };
        Ok(Confirmation {
            id: cred.id,
            counter: Some(step),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_through_their_stored_text() {
        let p = TotpParams {
            algorithm: Algorithm::Sha512,
            digits: 8,
            period: 60,
        };
        assert_eq!(params_text(&p), "SHA512:8:60");
        assert_eq!(parse_params("SHA512:8:60"), Some(p));
        for bad in ["", "SHA1:6", "SHA1:6:30:1", "MD5:6:30", "SHA1:x:30"] {
            assert_eq!(parse_params(bad), None, "{bad:?}");
        }
    }
}
