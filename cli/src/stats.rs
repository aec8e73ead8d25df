//! `twofold stats [--json | --prometheus]`.

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::format::utc;
use crate::Io;
use serde_json::json;
use twofold_proto::{Request, Response, StatsReport};

/// Output format of `twofold stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsOutput {
    /// For people.
    Text,
    /// JSON.
    Json,
    /// Prometheus text exposition format.
    Prometheus,
}

/// Asks the daemon and prints the figures.
pub fn stats(daemon: &Daemon, out: StatsOutput, io: &mut Io<'_>) -> Result<(), CliError> {
    let r = match daemon.call(&Request::Stats)? {
        Response::StatsReport(r) => r,
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    let text = match out {
        StatsOutput::Text => stats_text(&r),
        StatsOutput::Json => format!("{}\n", stats_json(&r)),
        StatsOutput::Prometheus => prometheus(&r),
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))
}

/// The JSON shape (times as Unix seconds).
pub fn stats_json(r: &StatsReport) -> serde_json::Value {
    json!({
        "now": r.now,
        "enrolled": r.enrolled.iter().map(|m| (m.method.to_string(), json!(m.users))).collect::<serde_json::Map<_, _>>(),
        "required_unenrolled": r.required_unenrolled.iter().map(|g| json!({"user": g.user, "deadline": g.deadline})).collect::<Vec<_>>(),
        "last_24h": {
            "logins_ok": r.logins_ok_24h,
            "logins_failed": r.logins_failed_24h,
            "codes_rejected": r.codes_rejected_24h,
            "lockouts": r.lockouts_24h,
        },
        "low_backup_codes": r.low_backup_codes.iter().map(|b| json!({"user": b.user, "left": b.left})).collect::<Vec<_>>(),
    })
}

/// For people.
pub fn stats_text(r: &StatsReport) -> String {
    let enrolled: Vec<String> = r
        .enrolled
        .iter()
        .map(|m| format!("{} {}", m.method, m.users))
        .collect();
    let mut s = format!("Users enrolled:            {}\n", enrolled.join(", "));
    s.push_str(&format!(
        "Required, not enrolled:    {}\n",
        r.required_unenrolled.len()
    ));
    for g in &r.required_unenrolled {
        let when = match g.deadline {
            Some(d) if d <= r.now => format!("grace ended {} UTC", utc(d)),
            Some(d) => format!("grace until {} UTC", utc(d)),
            None => "not seen at a login yet".into(),
        };
        s.push_str(&format!("  {:<20} {when}\n", g.user));
    }
    s.push_str(&format!(
        "Last 24 hours:             {} logins ok, {} failed, {} wrong codes, {} lockouts\n",
        r.logins_ok_24h, r.logins_failed_24h, r.codes_rejected_24h, r.lockouts_24h
    ));
    s.push_str(&format!(
        "Fewer than 3 backup codes: {}\n",
        r.low_backup_codes.len()
    ));
    for b in &r.low_backup_codes {
        s.push_str(&format!("  {:<20} {} left\n", b.user, b.left));
    }
    s
}

/// Label values escaped as the exposition format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition format.
pub fn prometheus(r: &StatsReport) -> String {
    let mut s = String::new();
    let mut metric = |name: &str, help: &str, rows: Vec<(String, u64)>| {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, v) in rows {
            s.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    metric(
        "twofold_users_enrolled",
        "Users with a usable factor, per method.",
        r.enrolled
            .iter()
            .map(|m| {
                (
                    format!("{{method=\"{}\"}}", label(m.method.as_str())),
                    m.users,
                )
            })
            .collect(),
    );
    metric(
        "twofold_users_required_unenrolled",
        "Users required to use MFA who have no factor.",
        vec![(String::new(), r.required_unenrolled.len() as u64)],
    );
    metric(
        "twofold_grace_deadline_seconds",
        "Enrollment grace deadline of each required, unenrolled user (Unix time).",
        r.required_unenrolled
            .iter()
            .filter_map(|g| {
                g.deadline
                    .map(|d| (format!("{{user=\"{}\"}}", label(&g.user)), d))
            })
            .collect(),
    );
    metric(
        "twofold_logins_24h",
        "Logins in the last 24 hours, by result.",
        vec![
            ("{result=\"ok\"}".into(), r.logins_ok_24h),
            ("{result=\"failed\"}".into(), r.logins_failed_24h),
        ],
    );
    metric(
        "twofold_codes_rejected_24h",
        "Wrong codes in the last 24 hours.",
        vec![(String::new(), r.codes_rejected_24h)],
    );
    metric(
        "twofold_lockouts_24h",
        "Locks made in the last 24 hours.",
        vec![(String::new(), r.lockouts_24h)],
    );
    metric(
        "twofold_users_low_backup_codes",
        "Enrolled users with fewer than 3 unused backup codes.",
        vec![(String::new(), r.low_backup_codes.len() as u64)],
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_proto::{BackupLow, GraceInfo, MethodCount};

    fn report() -> StatsReport {
        StatsReport {
            now: 1_800_000_000,
            enrolled: vec![
                MethodCount {
                    method: twofold_proto::Method::TOTP,
                    users: 3,
                },
                MethodCount {
                    method: twofold_proto::Method::BACKUP_CODE,
                    users: 2,
                },
            ],
            required_unenrolled: vec![
                GraceInfo {
                    user: "mail".into(),
                    deadline: Some(1_800_604_800),
                },
                GraceInfo {
                    user: "news".into(),
                    deadline: None,
                },
            ],
            logins_ok_24h: 12,
            logins_failed_24h: 3,
            codes_rejected_24h: 7,
            lockouts_24h: 1,
            low_backup_codes: vec![BackupLow {
                user: "alice".into(),
                left: 2,
            }],
        }
    }

    #[test]
    fn text_json_and_prometheus_carry_the_same_figures() {
        let r = report();
        let t = stats_text(&r);
        assert!(
            t.contains("Users enrolled:            totp 3, backup_code 2"),
            "{t}"
        );
        assert!(
            t.contains("mail                 grace until 2027-01-22 08:00:00 UTC"),
            "{t}"
        );
        assert!(
            t.contains("news                 not seen at a login yet"),
            "{t}"
        );
        assert!(
            t.contains("12 logins ok, 3 failed, 7 wrong codes, 1 lockouts"),
            "{t}"
        );
        assert!(t.contains("alice                2 left"), "{t}");
        let j = stats_json(&r);
        assert_eq!(j["enrolled"]["totp"], 3);
        assert_eq!(j["last_24h"]["lockouts"], 1);
        assert_eq!(
            j["required_unenrolled"][1]["deadline"],
            serde_json::Value::Null
        );
        let p = prometheus(&r);
        assert!(
            p.contains("twofold_users_enrolled{method=\"totp\"} 3\n"),
            "{p}"
        );
        assert!(
            p.contains("twofold_logins_24h{result=\"failed\"} 3\n"),
            "{p}"
        );
        assert!(
            p.contains("twofold_grace_deadline_seconds{user=\"mail\"} 1800604800\n"),
            "{p}"
        );
        assert!(p.contains("# TYPE twofold_lockouts_24h gauge\n"), "{p}");
        // Every sample line is NAME[{labels}] VALUE.
        for line in p.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<u64>().is_ok(), "{line}");
        }
    }
}
