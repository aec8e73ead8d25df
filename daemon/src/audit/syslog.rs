//! Syslog lines on facility authpriv, sent as datagrams to a local socket
//! (`[audit] syslog_socket`, `/dev/log` by default) in the classic BSD format
//! `<PRI>Mmm dd hh:mm:ss twofoldd[PID]: MESSAGE`.
//!
//! The timestamp comes from the daemon's clock (UTC), so tests with a manual
//! clock see the instant they chose. A missing or refusing socket never
//! fails an event and a full one delays it at most 250 ms: the table is the
//! record of truth, and the first failure is reported once on the daemon's log.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use twofold_config::time::Utc;

/// LOG_AUTHPRIV.
pub const FACILITY_AUTHPRIV: u8 = 10;

/// The longest one line may wait for room in the syslog socket's queue.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// A syslog destination.
#[derive(Debug)]
pub struct Syslog {
    path: Option<PathBuf>,
    socket: Mutex<Option<UnixDatagram>>,
    warned: AtomicBool,
    /// This process's id, read once (getpid is a system call per line).
    pid: u32,
}

impl Syslog {
    /// Sends to `path`; an empty path sends nothing.
    pub fn new(path: PathBuf) -> Syslog {
        Syslog {
            path: (!path.as_os_str().is_empty()).then_some(path),
            socket: Mutex::new(None),
            warned: AtomicBool::new(false),
            pid: std::process::id(),
        }
    }

    /// Sends one line; `Err` (reported once per daemon) when it could not be delivered.
    pub fn send(&self, severity: u8, now: u64, msg: &str) -> Result<(), Option<String>> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let line = format_line(FACILITY_AUTHPRIV, severity, now, self.pid, msg);
        let mut guard = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let sock = match guard.as_ref() {
            Some(s) => s,
            None => match UnixDatagram::unbound() {
                Ok(s) => {
                    // A stalled syslog daemon may hold a login up this long
                    // per line, never longer (glibc's syslog() would block).
                    let _ = s.set_write_timeout(Some(SEND_TIMEOUT));
                    guard.insert(s)
                }
                Err(e) => return Err(self.first_warning(format!("syslog socket: {e}"))),
            },
        };
        match sock.send_to(line.as_bytes(), path) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.first_warning(format!("syslog {}: {e}", path.display()))),
        }
    }

    fn first_warning(&self, text: String) -> Option<String> {
        (!self.warned.swap(true, Ordering::SeqCst)).then_some(text)
    }
}

/// `<PRI>Mmm dd hh:mm:ss twofoldd[PID]: MSG`, the day space-padded as RFC 3164 has it.
pub fn format_line(facility: u8, severity: u8, now: u64, pid: u32, msg: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = Utc::from_unix(now);
    format!(
        "<{}>{} {:>2} {:02}:{:02}:{:02} twofoldd[{pid}]: {msg}",
        u32::from(facility) * 8 + u32::from(severity),
        MONTHS[(t.month - 1) as usize % 12],
        t.day,
        t.hour,
        t.minute,
        t.second
    )
}

/// `YYYY-MM-DD HH:MM UTC`, for messages shown to people.
pub fn utc_minutes(unix: u64) -> String {
    let t = Utc::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsd_format_with_authpriv_priority() {
        // 2027-01-15T08:00:00Z
        let line = format_line(FACILITY_AUTHPRIV, 6, 1_800_000_000, 42, "hello");
        assert_eq!(line, "<86>Jan 15 08:00:00 twofoldd[42]: hello");
        let line = format_line(FACILITY_AUTHPRIV, 5, 1_799_971_200 - 86_400 * 10, 1, "x");
        assert_eq!(line, "<85>Jan  5 00:00:00 twofoldd[1]: x");
        assert_eq!(utc_minutes(1_800_000_000), "2027-01-15 08:00 UTC");
    }

    #[test]
    fn lines_arrive_on_a_datagram_socket_and_a_missing_one_warns_once() {
        let dir = std::env::temp_dir().join(format!("tf-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::new(path.clone());
        s.send(6, 1_800_000_000, "audit id=1").unwrap();
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<86>Jan 15 08:00:00 twofoldd["), "{got}");
        assert!(got.ends_with("]: audit id=1"), "{got}");
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(s.send(6, 0, "x"), Err(Some(_))));
        assert_eq!(s.send(6, 0, "x"), Err(None), "warned once only");
        assert_eq!(Syslog::new(PathBuf::new()).send(6, 0, "x"), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
