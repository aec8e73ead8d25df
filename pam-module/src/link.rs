//! The module's connection to `twofoldd`, with one time budget for the
//! whole login rather than one timeout per reply.
//!
//! `timeout=` is how long the daemon may keep the login waiting in total:
//! connecting, the handshake, and every wait for a reply or a write are
//! charged to it. Time spent in the application's conversation (the person
//! typing a code) is not, since that is not the daemon's doing. So a daemon
//! that dribbles a message every few seconds, or a frame a byte at a time,
//! still ends the login within `timeout`.

use crate::login::{Daemon, CLIENT_NAME};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use twofold_proto::{
    check_welcome, connect_unix, hello, read_message, write_message, ClientError, FrameError,
    Request, Response,
};

/// A connection to the daemon whose I/O draws on one time budget.
#[derive(Debug)]
pub struct Link {
    stream: UnixStream,
    /// What is left of the budget.
    left: Duration,
    /// The whole budget, for error messages.
    timeout: Duration,
}

impl Link {
    /// Connects to `path` and does the `Hello`/`Welcome` handshake, charging
    /// both to a budget of `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Link, ClientError> {
        let start = Instant::now();
        let stream = connect_unix(path, timeout)
            .map_err(|source| ClientError::from_connect(path, timeout, source))?;
        let mut link = Link {
            stream,
            left: timeout.saturating_sub(start.elapsed()),
            timeout,
        };
        link.send(&hello(CLIENT_NAME))?;
        check_welcome(link.recv()?)?;
        Ok(link)
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.left
    }

    /// Runs one I/O step against the budget and charges the time it took.
    fn charged<T>(
        &mut self,
        step: impl FnOnce(&mut Bounded<'_>) -> Result<T, FrameError>,
    ) -> Result<T, ClientError> {
        let start = Instant::now();
        if self.left.is_zero() {
            return Err(ClientError::Timeout(self.timeout));
        }
        let mut io = Bounded {
            stream: &self.stream,
            deadline: start + self.left,
        };
        let res = step(&mut io);
        self.left = self.left.saturating_sub(start.elapsed());
        res.map_err(|e| match e {
            FrameError::Timeout => ClientError::Timeout(self.timeout),
            other => ClientError::Frame(other),
        })
    }
}

impl Daemon for Link {
    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.charged(|io| write_message(io, req))
    }

    fn recv(&mut self) -> Result<Response, ClientError> {
        self.charged(|io| read_message(io))
    }
}

/// The stream seen through a deadline: every `read` and `write` waits at
/// most until it, however many calls a frame takes.
struct Bounded<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl Bounded<'_> {
    fn left(&self) -> io::Result<Duration> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(io::Error::new(io::ErrorKind::TimedOut, "time budget spent")),
        }
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

impl Write for Bounded<'_> {
    /// Writes with `MSG_NOSIGNAL`: a daemon that closed its end must give
    /// EPIPE, not a SIGPIPE that kills su, sudo or a screen locker (which,
    /// unlike sshd, do not all ignore it).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        loop {
            // SAFETY: buf is valid for reads of buf.len() bytes; the fd is open.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn socket_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tf-link-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_socket_is_unreachable_at_once() {
        let start = Instant::now();
        let err =
            Link::connect(&socket_dir("missing").join("nope"), Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    /// A daemon that sends a frame one byte every 100 ms: each read returns
    /// in time, but the budget still runs out.
    #[test]
    fn a_dribbled_frame_cannot_outlast_the_budget() {
        let path = socket_dir("drip").join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut hello = [0u8; 256];
            let _ = s.read(&mut hello);
            let body = br#"{"type":"welcome","proto":1}"#;
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(body);
            for b in frame {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let err = Link::connect(&path, Duration::from_secs(1)).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        server.join().unwrap();
    }
}
