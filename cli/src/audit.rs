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
    let mut follow = Follow::default();
    let mut printed = 0usize;
    loop {
        let mut cursor = follow.after();
        loop {
            let req = Request::AuditQuery {
                user: f.user.clone(),
                event: f.event.clone(),
                service: f.service.clone(),
                since: f.since,
                until: f.until,
                after_id: Some(cursor),
                limit: None,
            };
            let (records, more) = match daemon.call(&req)? {
                Response::AuditRecords { records, more } => (records, more),
                other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
            };
            for r in &records {
                cursor = cursor.max(r.id);
                if !follow.fresh(r.id) {
                    continue;
                }
                let line = if f.json {
                    record_json(r)
                } else {
                    record_text(r)
                };
                writeln!(io.out, "{line}").map_err(CliError::io("writing output"))?;
                printed += 1;
            }
            if !more {
                break;
            }
        }
        if !f.follow {
            break;
        }
        follow.polled();
        io.out.flush().map_err(CliError::io("writing output"))?;
        std::thread::sleep(FOLLOW_EVERY);
    }
    if printed == 0 && !f.json {
        writeln!(io.err, "twofold: no audit rows match").map_err(CliError::io("writing"))?;
    }
    Ok(())
}

/// Polls after which `--follow` takes a row as settled: 10 s.
const SETTLE_POLLS: usize = 20;

/// What `--follow` has shown. In a fleet, hosts' rows can commit out of id
/// order (ids come from one sequence, drawn before each commit), so a row
/// may appear below one already shown. Each poll asks again from the
/// highest id shown [`SETTLE_POLLS`] polls ago and skips the ids shown
/// since: a row committed up to that late is shown, once. (A transaction
/// of twofoldd's lasts at most a few seconds: its statement and
/// idle-in-transaction timeouts.)
#[derive(Debug, Default)]
struct Follow {
    /// Ids shown above `settled`.
    shown: std::collections::BTreeSet<u64>,
    /// The highest id shown at each of the last polls, oldest first.
    marks: std::collections::VecDeque<u64>,
    /// Every row up to this id has been shown or will never come.
    settled: u64,
}

impl Follow {
    /// Where the next poll starts.
    fn after(&self) -> u64 {
        self.settled
    }

    /// Whether row `id` is to be shown (and remembers that it was).
    fn fresh(&mut self, id: u64) -> bool {
        id > self.settled && self.shown.insert(id)
    }

    /// A poll is over: what was highest [`SETTLE_POLLS`] polls ago settles.
    fn polled(&mut self) {
        let top = self.shown.last().copied().unwrap_or(self.settled);
        self.marks.push_back(top);
        if self.marks.len() > SETTLE_POLLS {
            let mark = self.marks.pop_front().unwrap_or(0);
            self.settled = self.settled.max(mark);
            self.shown = self.shown.split_off(&(self.settled + 1));
        }
    }
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

    /// A fleet's rows committing out of id order: a late row below the
    /// highest shown is still shown once, nothing twice, and memory stays
    /// bounded once rows settle.
    #[test]
    fn follow_shows_a_late_lower_id_once_and_nothing_twice() {
        let mut f = Follow::default();
        let poll = |f: &mut Follow, committed: &[u64]| -> Vec<u64> {
            let after = f.after();
            let shown = committed
                .iter()
                .copied()
                .filter(|&id| id > after)
                .filter(|&id| f.fresh(id))
                .collect();
            f.polled();
            shown
        };
        // Host A's row 2 commits after host B's row 3.
        assert_eq!(poll(&mut f, &[1, 3]), [1, 3]);
        assert_eq!(poll(&mut f, &[1, 2, 3, 4]), [2, 4]);
        assert_eq!(poll(&mut f, &[1, 2, 3, 4]), Vec::<u64>::new());
        // Quiet polls settle what is old; a row later still below the
        // settled mark is given up on, as it can no longer come.
        for _ in 0..SETTLE_POLLS {
            assert!(poll(&mut f, &[1, 2, 3, 4]).is_empty());
        }
        assert_eq!(f.after(), 4);
        assert!(f.shown.is_empty(), "{:?}", f.shown);
        assert_eq!(poll(&mut f, &[1, 2, 3, 4, 5]), [5]);
    }

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
