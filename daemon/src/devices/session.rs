//! The login session of a local process, read from `/proc` for the pid
//! the kernel reported for the peer (`SO_PEERCRED`): its session id, its
//! controlling terminal and the session leader's start time (so a session
//! id the kernel reuses later is another session).

use std::io;

/// A login session, as the kernel knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The session id (the leader's pid).
    pub sid: i32,
    /// The controlling terminal's device number (0: none).
    pub tty_nr: u32,
    /// The leader's start time, in clock ticks after boot.
    pub leader_start: u64,
}

impl Session {
    /// The stable identity stored for it.
    pub fn key(&self) -> String {
        format!(
            "sid={} tty={} start={}",
            self.sid,
            tty_name(self.tty_nr),
            self.leader_start
        )
    }
}

/// The session of `pid`; `None` when it has none a person logged in to
/// (session 0, or no controlling terminal).
pub fn of_pid(pid: i32) -> io::Result<Option<Session>> {
    if pid <= 0 {
        return Ok(None);
    }
    let me = stat(pid)?;
    if me.session <= 0 || me.tty_nr == 0 {
        return Ok(None);
    }
    let leader = stat(me.session)?;
    Ok(Some(Session {
        sid: me.session,
        tty_nr: me.tty_nr,
        leader_start: leader.start,
    }))
}

/// The fields of `/proc/PID/stat` used here.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    session: i32,
    tty_nr: u32,
    start: u64,
}

fn stat(pid: i32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: unexpected format")))
}

/// Fields after the command name (which may hold spaces and parentheses,
/// so the text is cut at the last `)`): state is field 3, session 6,
/// tty_nr 7, starttime 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(Stat {
        session: f.get(6 - 3)?.parse().ok()?,
        tty_nr: f.get(7 - 3)?.parse::<i64>().ok()? as u32,
        start: f.get(22 - 3)?.parse().ok()?,
    })
}

/// `pts/3`, `tty2`, or the device number.
fn tty_name(nr: u32) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        _ => format!("{major}:{minor}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let text =
            "4242 (a (b) c) S 1 4242 4200 34819 4242 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                session: 4200,
                tty_nr: 34819,
                start: 987654
            })
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(tty_name(34819), "pts/3");
        assert_eq!(tty_name(1026), "tty2");
    }

    #[test]
    fn this_process_has_a_readable_stat() {
        let me = stat(std::process::id() as i32).unwrap();
        assert!(me.start > 0);
    }
}
