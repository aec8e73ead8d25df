//! `twofold audit` (list, follow) and `twofold audit verify`.

use crate::args::AuditFilterArgs;
use crate::daemon::Daemon;
use crate::error::CliError;
use crate::format::utc;
use crate::Io;
use serde_json::json;
use std::time::Duration;
use twofold_config::time::days_from_civil;
use twofold_proto::{AuditRecord, AuditReport, Request, Response, TimeRef};

/// How often `--follow` asks for new rows.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Parses `--since`/`--until`: a duration ago (`90s`, `15m`, `1h`, `7d`),
/// `@UNIXTIME`, or a UTC date `YYYY-MM-DD`, optionally with `THH:MM[:SS]`
/// (or a space instead of `T`, and a trailing `Z`).
pub fn parse_time(s: &str) -> Result<TimeRef, String> {
    let s = s.trim();
    if let Some(t) = s.strip_prefix('@') {
        return t
            .parse()
            .map(TimeRef::At)
            .map_err(|_| format!("{s:?}: expected @ followed by Unix seconds"));
    }
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') {
        return parse_date(s).map(TimeRef::At);
    }
    twofold_config::parse_duration(s)
        .map(TimeRef::Ago)
        .map_err(|e| format!("{e}; or give @UNIXTIME or a UTC date YYYY-MM-DD[THH:MM[:SS]]"))
}

fn parse_date(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?}: expected a UTC date YYYY-MM-DD[THH:MM[:SS]]");
    let s2 = s.trim_end_matches('Z');
    let (date, time) = match s2.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s2, None),
    };
    let num = |x: &str| x.parse::<u64>().map_err(|_| bad());
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let (mut hh, mut mm, mut ss) = (0, 0, 0);
    if let Some(t) = time {
        let p: Vec<&str> = t.split(':').collect();
        match p[..] {
            [h, m] => (hh, mm) = (num(h)?, num(m)?),
            [h, m, s] => (hh, mm, ss) = (num(h)?, num(m)?, num(s)?),
            _ => return Err(bad()),
        }
        if hh > 23 || mm > 59 || ss > 59 {
            return Err(bad());
        }
    }
    let days = days_from_civil(y, m, d);
    if utc(days * 86_400).get(..10) != Some(&format!("{y:04}-{m:02}-{d:02}")) {
        return Err(format!("{s:?}: no such date"));
    }
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// One row for people: time (UTC), event, then the fields that apply.
pub fn record_text(r: &AuditRecord) -> String {
    let mut s = format!("{:>6}  {}  {:<16}", r.id, utc(r.at), r.event);
    for (k, v) in [
        ("user", &r.user),
        ("service", &r.service),
        ("rhost", &r.rhost),
        ("tty", &r.tty),
        ("method", &r.method),
        ("actor", &r.actor),
    ] {
        if !v.is_empty() {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if !r.detail.is_empty() {
        s.push(' ');
        s.push_str(&r.detail);
    }
    s.trim_end().to_owned()
}

/// One row as a JSON line.
pub fn record_json(r: &AuditRecord) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// `twofold audit [filters] [--json] [--follow]`.
pub fn list(daemon: &Daemon, f: &AuditFilterArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut after = 0;
    let mut printed = 0usize;
    loop {
        let req = Request::AuditQuery {
            user: f.user.clone(),
            event: f.event.clone(),
            service: f.service.clone(),
            since: f.since,
            until: f.until,
            after_id: Some(after),
            limit: None,
        };
        let (records, more) = match daemon.call(&req)? {
            Response::AuditRecords { records, more } => (records, more),
            other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
        };
        for r in &records {
            let line = if f.json {
                record_json(r)
            } else {
                record_text(r)
            };
            writeln!(io.out, "{line}").map_err(CliError::io("writing output"))?;
            after = r.id;
            printed += 1;
        }
        if more {
            continue;
        }
        if !f.follow {
            break;
        }
        io.out.flush().map_err(CliError::io("writing output"))?;
        std::thread::sleep(FOLLOW_EVERY);
    }
    if printed == 0 && !f.json {
        writeln!(io.err, "twofold: no audit rows match").map_err(CliError::io("writing"))?;
    }
    Ok(())
}

/// `twofold audit verify`: exit 0 when intact, 8 naming the first bad row.
pub fn verify(daemon: &Daemon, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    let report: AuditReport = match daemon.call(&Request::AuditVerify)? {
        Response::AuditVerified(r) => r,
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    let text = if json {
        let v = json!({
            "intact": report.broken.is_none(),
            "rows": report.rows,
            "first_id": report.first_id,
            "last_id": report.last_id,
            "pruned_through": report.pruned_through,
            "broken_at": report.broken.as_ref().map(|b| b.id),
            "reason": report.broken.as_ref().map(|b| b.reason.clone()),
        });
        format!("{v}\n")
    } else if report.broken.is_none() {
        let range = match (report.first_id, report.last_id) {
            (Some(a), Some(b)) => format!(" (rows {a} to {b})"),
            _ => String::new(),
        };
        let pruned = if report.pruned_through > 0 {
            format!("; rows up to {} pruned by retention", report.pruned_through)
        } else {
            String::new()
        };
        format!(
            "audit chain intact: {} rows verified{range}{pruned}\n",
            report.rows
        )
    } else {
        String::new()
    };
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))?;
    match report.broken {
        None => Ok(()),
        Some(b) => Err(CliError::AuditBroken {
            id: b.id,
            reason: b.reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        assert_eq!(parse_time("1h"), Ok(TimeRef::Ago(3600)));
        assert_eq!(parse_time("7d"), Ok(TimeRef::Ago(604_800)));
        assert_eq!(parse_time("@1800000000"), Ok(TimeRef::At(1_800_000_000)));
        assert_eq!(parse_time("2027-01-15"), Ok(TimeRef::At(1_799_971_200)));
        assert_eq!(
            parse_time("2027-01-15T08:00:00Z"),
            Ok(TimeRef::At(1_800_000_000))
        );
        assert_eq!(
            parse_time("2027-01-15 08:00"),
            Ok(TimeRef::At(1_800_000_000))
        );
        assert_eq!(parse_time("2000-02-29"), Ok(TimeRef::At(951_782_400)));
        for bad in [
            "yesterday",
            "-1h",
            "@x",
            "2027-02-30",
            "2027-13-01",
            "2027-01-15T25:00",
            "2027-01",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rows_show_only_fields_that_apply() {
        let r = AuditRecord {
            id: 17,
            at: 1_800_000_000,
            event: "login_failure".into(),
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "192.0.2.1".into(),
            tty: String::new(),
            method: String::new(),
            actor: "root(0)".into(),
            detail: "reason=wrong_code try=1".into(),
        };
        assert_eq!(
            record_text(&r),
            "    17  2027-01-15 08:00:00  login_failure    user=alice service=sshd rhost=192.0.2.1 actor=root(0) reason=wrong_code try=1"
        );
        let v: serde_json::Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert_eq!(v["id"], 17);
        assert_eq!(v["event"], "login_failure");
    }
}
