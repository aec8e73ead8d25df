//! `twofold devices`: the remembered devices of an account (what, where,
//! since, last used, until) and `twofold devices forget ID|--all`.

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::format::utc;
use crate::Io;
use serde_json::json;
use twofold_proto::{DeviceInfo, Request, Response};

/// `twofold devices [--user NAME] [--json]`.
pub fn list(
    daemon: &Daemon,
    user: Option<&str>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::Devices {
        user: user.map(str::to_owned),
    };
    let (user, devices) = match daemon.call(&req)? {
        Response::DeviceList { user, devices } => (user, devices),
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    let text = if json {
        let rows: Vec<_> = devices.iter().map(device_json).collect();
        let mut t = serde_json::to_string_pretty(&json!({ "user": user, "devices": rows }))
            .unwrap_or_default();
        t.push('\n');
        t
    } else {
        devices_text(&user, &devices)
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// `twofold devices forget ID|--all [--user NAME]`.
pub fn forget(
    daemon: &Daemon,
    user: Option<&str>,
    id: Option<i64>,
    all: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let req = Request::DevicesForget {
        user: user.map(str::to_owned),
        id,
        all,
    };
    match daemon.call(&req)? {
        Response::Done { message } => {
            writeln!(io.out, "{message}").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// One device as JSON (times as Unix seconds).
pub fn device_json(d: &DeviceInfo) -> serde_json::Value {
    json!({
        "id": d.id,
        "kind": d.kind,
        "what": d.what,
        "service": d.service,
        "since": d.since,
        "last_used": d.last_used,
        "expires_at": d.expires_at,
    })
}

/// What a person reads of a device: `ssh-ed25519 SHA256:…` for a key,
/// `session on pts/3` for a login session.
pub fn shown_what(d: &DeviceInfo) -> String {
    if d.kind == "session" {
        let tty = d
            .what
            .split(' ')
            .find_map(|f| f.strip_prefix("tty="))
            .unwrap_or("?");
        let sid = d
            .what
            .split(' ')
            .find_map(|f| f.strip_prefix("sid="))
            .unwrap_or("?");
        return format!("session {sid} on {tty}");
    }
    d.what.clone()
}

/// The table `twofold devices` prints.
pub fn devices_text(user: &str, devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return format!("No remembered devices for {user}.\n");
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "WHAT".to_owned(),
        "SERVICE".to_owned(),
        "SINCE".to_owned(),
        "LAST USED".to_owned(),
        "EXPIRES".to_owned(),
    ]];
    for d in devices {
        rows.push([
            d.id.to_string(),
            shown_what(d),
            d.service.clone(),
            utc(d.since),
            d.last_used.map(utc).unwrap_or_else(|| "never".into()),
            utc(d.expires_at),
        ]);
    }
    let mut width = [0usize; 6];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!("Remembered devices of {user}:\n");
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_a_session_are_shown_as_people_read_them() {
        let key = DeviceInfo {
            id: 3,
            kind: "ssh_key".into(),
            what: "ssh-ed25519 SHA256:abc".into(),
            service: "sshd".into(),
            since: 1_700_000_000,
            last_used: None,
            expires_at: 1_702_592_000,
        };
        let session = DeviceInfo {
            id: 4,
            kind: "session".into(),
            what: "sid=812 tty=pts/3 start=99".into(),
            service: "sudo".into(),
            last_used: Some(1_700_000_100),
            ..key.clone()
        };
        let t = devices_text("alice", &[key, session]);
        assert!(t.contains("3   ssh-ed25519 SHA256:abc  sshd"), "{t}");
        assert!(t.contains("session 812 on pts/3"), "{t}");
        assert!(t.contains("never"), "{t}");
        assert_eq!(devices_text("bob", &[]), "No remembered devices for bob.\n");
    }
}
