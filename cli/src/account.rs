//! Account commands: status, admin list and disable, backup codes, removal.

use crate::daemon::{is_self, Daemon};
use crate::enroll::print_backup_codes;
use crate::error::CliError;
use crate::format::utc;
use crate::input::totp_code;
use crate::{read_code, Io};
use serde_json::{json, Value};
use twofold_proto::{Request, Response, Secret, UserStatus};

/// What `backup-codes regenerate` and `remove totp` ask for.
pub const AUTH_PROMPT: &str = "Enter a code from your authenticator app to authorize this: ";

/// What `remove fido2` asks for.
pub const AUTH_PROMPT_ANY: &str =
    "Enter a code from your authenticator app or token to authorize this: ";

/// `twofold status`.
pub fn status(
    daemon: &Daemon,
    user: Option<&str>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::Status {
        user: user.map(str::to_owned),
    };
    let st = match daemon.call(&req)? {
        Response::Status(st) => st,
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    let text = if json {
        pretty(&status_json(&st))
    } else {
        status_text(&st)
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// `twofold admin list`.
pub fn list(daemon: &Daemon, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    // Page by page: a daemon with many accounts cannot answer in one frame.
    let mut users = Vec::new();
    let mut after = None;
    loop {
        match daemon.call(&Request::AdminListPage { after })? {
            Response::UsersPage { users: page, next } => {
                users.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            // A daemon that answers the whole list at once.
            Response::Users { users: all } => {
                users = all;
                break;
            }
            // An older daemon without pages.
            Response::Unsupported { .. } => match daemon.call(&Request::AdminList)? {
                Response::Users { users: all } => {
                    users = all;
                    break;
                }
                other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
            },
            other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
        }
    }
    let text = if json {
        pretty(&Value::Array(users.iter().map(status_json).collect()))
    } else {
        list_text(&users)
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// `twofold admin disable --user NAME`.
pub fn disable(daemon: &Daemon, user: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    let req = Request::AdminDisable {
        user: user.to_owned(),
    };
    done(daemon.call(&req)?, io)
}

/// `twofold backup-codes regenerate`.
pub fn regenerate(
    daemon: &Daemon,
    user: Option<&str>,
    code: Option<&str>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::RegenerateBackupCodes {
        user: user.map(str::to_owned),
        code: authorization(user, code, io)?,
    };
    match daemon.call(&req)? {
        Response::BackupCodes { codes } => {
            print_backup_codes(&codes, json, io)?;
            if !json {
                writeln!(io.out, "The previous backup codes no longer work.")
                    .map_err(CliError::io("writing output"))?;
            }
            Ok(())
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// `twofold remove totp`.
pub fn remove_totp(
    daemon: &Daemon,
    user: Option<&str>,
    code: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::RemoveTotp {
        user: user.map(str::to_owned),
        code: authorization(user, code, io)?,
    };
    done(daemon.call(&req)?, io)
}

/// `twofold remove fido2 --name NAME`.
pub fn remove_fido2(
    daemon: &Daemon,
    user: Option<&str>,
    name: &str,
    code: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    // A current code of a factor that authorizes changes (an app's, a
    // token's); backup codes do not.
    let code = if code.is_none() && !is_self(user) {
        None
    } else {
        let raw = read_code(code, AUTH_PROMPT_ANY, io)?;
        Some(Secret::new(raw.expose().trim().to_owned()))
    };
    let req = Request::RemoveCredential {
        user: user.map(str::to_owned),
        method: twofold_proto::Method::FIDO2,
        name: name.to_owned(),
        code,
    };
    done(daemon.call(&req)?, io)
}

/// The TOTP code that authorizes a change: always in self-service, where the
/// daemon demands one; for an admin acting on another account only if given.
fn authorization(
    user: Option<&str>,
    code: Option<&str>,
    io: &mut Io<'_>,
) -> Result<Option<Secret>, CliError> {
    if code.is_none() && !is_self(user) {
        return Ok(None);
    }
    let raw = read_code(code, AUTH_PROMPT, io)?;
    totp_code(&raw).map(Some)
}

pub(crate) fn done(resp: Response, io: &mut Io<'_>) -> Result<(), CliError> {
    match resp {
        Response::Done { message } => {
            writeln!(io.out, "{message}").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// The JSON shape of one account, times as Unix seconds.
pub fn status_json(st: &UserStatus) -> Value {
    let mut v = json!({
        "user": st.user,
        "methods": st.factors.iter().map(|f| {
            let mut m = json!({
                "method": f.method,
                "enrolled_at": f.enrolled_at,
                "last_used": f.last_used,
            });
            // Only a factor that sends codes has a (masked) destination.
            if let Some(d) = &f.destination {
                m["destination"] = json!(d);
            }
            m
        }).collect::<Vec<_>>(),
        "backup_codes_left": st.backup_codes_left,
        "pending_enrollment": st.pending_enrollment,
        "grace_deadline": st.grace_deadline,
        "locked_until": st.locked_until,
    });
    // Only when there are any: the shape scripts know stays as it was.
    if !st.credentials.is_empty() {
        v["security_keys"] = st
            .credentials
            .iter()
            .map(|k| {
                json!({
                    "name": k.name,
                    "method": k.method,
                    "rp_id": k.detail,
                    "created_at": k.created_at,
                    "last_used": k.last_used,
                })
            })
            .collect();
    }
    v
}

/// One account for people, times in UTC.
pub fn status_text(st: &UserStatus) -> String {
    let mut s = format!("User:               {}\n", st.user);
    if st.factors.is_empty() {
        s.push_str("Methods:            none\n");
    }
    for (i, f) in st.factors.iter().enumerate() {
        let label = if i == 0 { "Methods:" } else { "" };
        let last = f
            .last_used
            .map(|t| format!("{} UTC", utc(t)))
            .unwrap_or_else(|| "never".into());
        let to = f
            .destination
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "{label:<20}{}{to} (enrolled {} UTC, last used {last})\n",
            f.method,
            utc(f.enrolled_at)
        ));
    }
    for (i, k) in st.credentials.iter().enumerate() {
        let label = if i == 0 { "Security keys:" } else { "" };
        let last = k
            .last_used
            .map(|t| format!("{} UTC", utc(t)))
            .unwrap_or_else(|| "never".into());
        s.push_str(&format!(
            "{label:<20}{:?} ({}, {}, created {} UTC, last used {last})\n",
            k.name,
            k.method,
            k.detail,
            utc(k.created_at)
        ));
    }
    if let Some(d) = st.grace_deadline {
        s.push_str(&format!("Enroll by:          {} UTC\n", utc(d)));
    }
    if let Some(u) = st.locked_until {
        s.push_str(&format!(
            "Locked until:       {} UTC (too many failed codes; `twofold admin unlock`)\n",
            utc(u)
        ));
    }
    if let Some(t) = &st.temp_code {
        let uses = if t.uses_left == 1 { "login" } else { "logins" };
        s.push_str(&format!(
            "Break-glass code:   outstanding, opens {} {uses} until {} UTC (`twofold admin temp-code --revoke`)\n",
            t.uses_left,
            utc(t.expires_at)
        ));
    }
    s.push_str(&format!(
        "Backup codes left:  {}\nPending enrollment: {}\n",
        st.backup_codes_left,
        if st.pending_enrollment {
            "yes (confirm with `twofold enroll confirm`)"
        } else {
            "no"
        }
    ));
    s
}

/// Every account as a table, times in UTC.
pub fn list_text(users: &[UserStatus]) -> String {
    if users.is_empty() {
        return "No accounts.\n".into();
    }
    let rows: Vec<[String; 6]> = users
        .iter()
        .map(|u| {
            let methods: Vec<&str> = u.factors.iter().map(|f| f.method.as_str()).collect();
            let enrolled = u.factors.iter().map(|f| f.enrolled_at).min();
            let last = u.factors.iter().filter_map(|f| f.last_used).max();
            [
                u.user.clone(),
                if methods.is_empty() {
                    "-".into()
                } else {
                    methods.join(",")
                },
                enrolled.map(utc).unwrap_or_else(|| "-".into()),
                last.map(utc).unwrap_or_else(|| "never".into()),
                u.backup_codes_left.to_string(),
                if u.pending_enrollment { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let head = [
        "USER",
        "METHODS",
        "ENROLLED (UTC)",
        "LAST USED (UTC)",
        "BACKUP",
        "PENDING",
    ];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&head);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_proto::FactorStatus;

    fn alice() -> UserStatus {
        UserStatus {
            user: "alice".into(),
            factors: vec![FactorStatus {
                method: twofold_proto::Method::TOTP,
                enrolled_at: 1_700_000_000,
                last_used: Some(1_709_251_200),
                destination: None,
            }],
            backup_codes_left: 7,
            pending_enrollment: false,
            grace_deadline: None,
            locked_until: None,
            temp_code: None,
            credentials: Vec::new(),
        }
    }

    #[test]
    fn status_text_shows_utc_times_and_counts() {
        let t = status_text(&alice());
        assert!(t.contains("User:               alice\n"), "{t}");
        assert!(
            t.contains(
                "totp (enrolled 2023-11-14 22:13:20 UTC, last used 2024-03-01 00:00:00 UTC)"
            ),
            "{t}"
        );
        assert!(t.contains("Backup codes left:  7\n"), "{t}");
        assert!(t.contains("Pending enrollment: no\n"), "{t}");
    }

    #[test]
    fn status_text_without_factors() {
        let st = UserStatus {
            user: "bob".into(),
            factors: vec![],
            backup_codes_left: 0,
            pending_enrollment: true,
            grace_deadline: None,
            locked_until: None,
            temp_code: None,
            credentials: Vec::new(),
        };
        let t = status_text(&st);
        assert!(t.contains("Methods:            none\n"), "{t}");
        assert!(!t.contains("Enroll by") && !t.contains("Locked"), "{t}");
        let t = status_text(&UserStatus {
            grace_deadline: Some(1_700_000_000),
            locked_until: Some(1_700_000_900),
            temp_code: None,
            ..st.clone()
        });
        assert!(
            t.contains("Enroll by:          2023-11-14 22:13:20 UTC\n"),
            "{t}"
        );
        assert!(
            t.contains("Locked until:       2023-11-14 22:28:20 UTC"),
            "{t}"
        );
        assert!(t.contains("Pending enrollment: yes"), "{t}");
    }

    #[test]
    fn status_json_uses_unix_seconds() {
        let v = status_json(&alice());
        assert_eq!(v["user"], "alice");
        assert_eq!(v["methods"][0]["method"], "totp");
        assert_eq!(v["methods"][0]["enrolled_at"], 1_700_000_000u64);
        assert_eq!(v["methods"][0]["last_used"], 1_709_251_200u64);
        assert_eq!(v["backup_codes_left"], 7);
        assert_eq!(v["pending_enrollment"], false);
    }

    #[test]
    fn list_text_aligns_columns() {
        let mut bob = alice();
        bob.user = "bob-the-longer-name".into();
        bob.factors[0].last_used = None;
        let t = list_text(&[alice(), bob]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("USER                 METHODS"), "{t}");
        assert!(
            lines[1].starts_with("alice                totp     2023-11-14 22:13:20"),
            "{t}"
        );
        assert!(lines[2].contains("never"), "{t}");
        assert_eq!(list_text(&[]), "No accounts.\n");
    }
}
