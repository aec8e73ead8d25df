//! Admin commands about locks and grace deadlines.

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::format::utc;
use crate::Io;
use serde_json::json;
use twofold_proto::{LockInfo, Request, Response};

fn done(resp: Response, io: &mut Io<'_>) -> Result<(), CliError> {
    match resp {
        Response::Done { message } => {
            writeln!(io.out, "{message}").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// `twofold admin unlock --user NAME`.
pub fn unlock(daemon: &Daemon, user: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    done(
        daemon.call(&Request::AdminUnlock {
            user: user.to_owned(),
        })?,
        io,
    )
}

/// `twofold admin grace --user NAME (--extend D | --reset)`.
pub fn grace(
    daemon: &Daemon,
    user: &str,
    extend: Option<u64>,
    reset: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    done(
        daemon.call(&Request::AdminGrace {
            user: user.to_owned(),
            extend,
            reset,
        })?,
        io,
    )
}

/// `twofold admin enroll-token`.
pub fn enroll_token(
    daemon: &Daemon,
    user: &str,
    valid: Option<u64>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::AdminEnrollToken {
        user: user.to_owned(),
        valid,
    };
    let (token, expires_at) = match daemon.call(&req)? {
        Response::EnrollToken { token, expires_at } => (token, expires_at),
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    let text = if json {
        format!(
            "{}\n",
            json!({ "user": user, "token": token.expose(), "expires_at": expires_at })
        )
    } else {
        format!(
            "Enrollment token for {user} (works once, until {} UTC; it is not shown again):\n  {}\n",
            crate::format::utc(expires_at),
            token.expose()
        )
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// `twofold admin temp-code`.
pub fn temp_code(
    daemon: &Daemon,
    user: &str,
    valid: Option<u64>,
    uses: Option<u32>,
    revoke: bool,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::AdminTempCode {
        user: user.to_owned(),
        valid,
        uses,
        revoke,
    };
    let text = match daemon.call(&req)? {
        Response::TempCode {
            code,
            expires_at,
            uses,
        } => {
            if json {
                format!(
                    "{}\n",
                    json!({ "user": user, "code": code.expose(), "expires_at": expires_at, "uses": uses })
                )
            } else {
                let logins = if uses == 1 {
                    "one login".to_owned()
                } else {
                    format!("{uses} logins")
                };
                format!(
                    "Break-glass code for {user} (opens {logins}, until {} UTC; it is not shown again):\n  {}\n",
                    crate::format::utc(expires_at),
                    code.expose()
                )
            }
        }
        Response::Done { message } if json => format!("{}\n", json!({ "message": message })),
        Response::Done { message } => format!("{message}\n"),
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// What `twofold admin enroll hotp` was given.
#[derive(Debug)]
pub struct HotpToken<'a> {
    /// The account.
    pub user: &'a str,
    /// The file holding the secret.
    pub secret_file: &'a std::path::Path,
    /// The file holds base32, not hex.
    pub base32: bool,
    /// HMAC algorithm.
    pub algorithm: Option<twofold_proto::Algorithm>,
    /// Code length.
    pub digits: Option<u32>,
    /// The counter of the next code.
    pub counter: Option<u64>,
    /// The token's name.
    pub name: Option<&'a str>,
}

/// `twofold admin enroll hotp`: the secret is read from a file (never an
/// argument, which other users could read in `ps`), sent as hex and wiped.
pub fn enroll_hotp(daemon: &Daemon, t: HotpToken<'_>, io: &mut Io<'_>) -> Result<(), CliError> {
    let path = t.secret_file;
    let raw = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        ))
    })?);
    let text: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(raw.chars().filter(|c| !c.is_whitespace()).collect());
    let hex = if t.base32 {
        let bytes = twofold_import::base32_decode(&text).ok_or_else(|| {
            CliError::Usage(format!(
                "{}: not base32 (RFC 4648: A-Z, 2-7, optional = padding)",
                path.display()
            ))
        })?;
        twofold_import::hex_encode(&bytes)
    } else {
        if text.is_empty()
            || !text.bytes().all(|b| b.is_ascii_hexdigit())
            || !text.len().is_multiple_of(2)
        {
            return Err(CliError::Usage(format!(
                "{}: not an even number of hexadecimal digits (use --base32 for a base32 secret)",
                path.display()
            )));
        }
        zeroize::Zeroizing::new(text.to_ascii_lowercase())
    };
    let req = Request::AdminEnrollHotp {
        user: t.user.to_owned(),
        secret_hex: twofold_proto::Secret::new(hex.to_string()),
        algorithm: t.algorithm,
        digits: t.digits,
        counter: t.counter,
        name: t.name.map(str::to_owned),
    };
    done(daemon.call(&req)?, io)
}

/// `twofold admin hotp-resync`.
pub fn hotp_resync(
    daemon: &Daemon,
    user: &str,
    name: Option<&str>,
    first: &str,
    second: &str,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::AdminHotpResync {
        user: user.to_owned(),
        name: name.map(str::to_owned),
        first: first.into(),
        second: second.into(),
    };
    done(daemon.call(&req)?, io)
}

/// `twofold admin locks`.
pub fn locks(daemon: &Daemon, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    // Page by page: many locks (an attack on many accounts) cannot be
    // answered in one frame.
    let mut locks = Vec::new();
    let mut after = None;
    loop {
        match daemon.call(&Request::AdminLocksPage { after })? {
            Response::LocksPage { locks: page, next } => {
                locks.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            Response::Locks { locks: all } => {
                locks = all;
                break;
            }
            Response::Unsupported { .. } => match daemon.call(&Request::AdminLocks)? {
                Response::Locks { locks: all } => {
                    locks = all;
                    break;
                }
                other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
            },
            other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
        }
    }
    // By account, then its user-wide lock before the per-source ones.
    locks.sort_by(|a, b| {
        (
            &a.user,
            a.source.is_some(),
            &a.source,
            std::cmp::Reverse(a.until),
        )
            .cmp(&(
                &b.user,
                b.source.is_some(),
                &b.source,
                std::cmp::Reverse(b.until),
            ))
    });
    let text = if json {
        let v: Vec<_> = locks
            .iter()
            .map(|l| {
                json!({
                    "user": l.user,
                    "source": l.source,
                    "since": l.since,
                    "until": l.until,
                    "failures": l.failures,
                })
            })
            .collect();
        format!("{}\n", serde_json::Value::Array(v))
    } else {
        locks_text(&locks)
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// The locks as a table, times in UTC.
pub fn locks_text(locks: &[LockInfo]) -> String {
    if locks.is_empty() {
        return "No locks.\n".into();
    }
    let source = |l: &LockInfo| match l.source.as_deref() {
        None => "(every source)".to_owned(),
        Some("") => "(local)".to_owned(),
        Some(s) => s.to_owned(),
    };
    let w_user = locks.iter().map(|l| l.user.len()).max().unwrap_or(0).max(4);
    let w_src = locks
        .iter()
        .map(|l| source(l).len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut s = format!(
        "{:<w_user$}  {:<w_src$}  {:<19}  FAILURES\n",
        "USER", "SOURCE", "UNTIL (UTC)"
    );
    for l in locks {
        s.push_str(&format!(
            "{:<w_user$}  {:<w_src$}  {}  {}\n",
            l.user,
            source(l),
            utc(l.until),
            l.failures
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_table_names_the_scope() {
        let t = locks_text(&[
            LockInfo {
                user: "alice".into(),
                source: None,
                since: 1,
                until: 1_800_000_900,
                failures: 20,
            },
            LockInfo {
                user: "alice".into(),
                source: Some("192.0.2.1".into()),
                since: 1,
                until: 1_800_000_900,
                failures: 5,
            },
        ]);
        assert!(t.starts_with("USER   SOURCE"), "{t}");
        assert!(
            t.contains("alice  (every source)  2027-01-15 08:15:00  20"),
            "{t}"
        );
        assert!(
            t.contains("alice  192.0.2.1       2027-01-15 08:15:00  5"),
            "{t}"
        );
        assert_eq!(locks_text(&[]), "No locks.\n");
    }
}
