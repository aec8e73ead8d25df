//! The module's connection to `twofoldd`, with one time budget for the
//! whole login rather than one timeout per reply.
//!
//! `timeout=` is how long the daemon may keep the login waiting in total:
//! connecting, the handshake, and every wait for a reply or a write are
//! charged to it. Time spent in the application's conversation (the person
//! typing a code) is not, since that is not the daemon's doing. So a daemon
//! that dribbles a message every few seconds, or a frame a byte at a time,
//! still ends the login within `timeout`.
//!
//! Once an allocation has failed (see [`crate::reserve`]), the link sends
//! and reads nothing more: the login will fail with PAM_BUF_ERR anyway, so
//! no answer is spent on it, and the reserve only has to carry the module
//! to the end of the step it was in.

use crate::login::{Daemon, CLIENT_NAME};
use crate::reserve::Watch;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use twofold_proto::zeroize::Zeroize;
use twofold_proto::{
    check_welcome, connect_unix_nonblocking, hello, write_message, ClientError, FrameError,
    FrameReader, Request, Response,
};

/// A connection to the daemon whose I/O draws on one time budget.
///
/// The handshake is pipelined: `Hello` goes out with the first request
/// and the `Welcome` is checked before the first reply, so a login costs
/// one round trip less (the daemon answers `Welcome` and its first reply
/// in one write).
#[derive(Debug)]
pub struct Link {
    stream: UnixStream,
    /// The `Hello` frame, until it goes out with the first request.
    hello: Option<Vec<u8>>,
    /// Whether the daemon's `Welcome` has been read and checked.
    welcomed: bool,
    /// The protocol version the daemon chose (from its `Welcome`).
    proto: u32,
    /// Bytes read past the end of the last frame, kept for the next one.
    reader: FrameReader,
    /// What is left of the budget.
    left: Duration,
    /// The whole budget, for error messages.
    timeout: Duration,
    /// Allocation failures since the link was made.
    memory: Watch,
}

impl Link {
    /// Connects to `path`, charging the time to a budget of `timeout`. The
    /// `Hello` goes out with the first [`Daemon::send`]; the `Welcome` is
    /// checked by the first [`Daemon::recv`], whose errors therefore include
    /// a refused handshake.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Link, ClientError> {
        let memory = Watch::start();
        let start = Instant::now();
        // Non-blocking: every read and write here polls first (`Bounded`).
        let stream = connect_unix_nonblocking(path, timeout)
            .map_err(|source| ClientError::from_connect(path, timeout, source))?;
        let mut hello_frame = Vec::new();
        write_message(&mut hello_frame, &hello(CLIENT_NAME)).map_err(ClientError::Frame)?;
        Ok(Link {
            stream,
            hello: Some(hello_frame),
            welcomed: false,
            proto: twofold_proto::PROTO_OLDEST,
            reader: FrameReader::new(),
            left: timeout.saturating_sub(start.elapsed()),
            timeout,
            memory,
        })
    }

    /// An error once an allocation has failed since the link was made.
    fn memory_ok(&self) -> Result<(), ClientError> {
        if self.memory.failed() {
            return Err(ClientError::Frame(FrameError::Io(
                io::ErrorKind::OutOfMemory.into(),
            )));
        }
        Ok(())
    }

    /// The effective uid of the process that holds the other end: for a
    /// connection to a listening socket, the uid it called listen(2) with
    /// (SO_PEERCRED, filled in by the kernel at connect, so no I/O).
    pub fn peer_uid(&self) -> io::Result<u32> {
        // SAFETY: ucred is plain old data; all-zero is a valid value.
        let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: the fd is open; cred and len are valid out-pointers of
        // the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                std::ptr::addr_of_mut!(cred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<libc::ucred>() {
            return Err(io::Error::other("SO_PEERCRED returned a short ucred"));
        }
        Ok(cred.uid)
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.left
    }

    /// Runs one I/O step against the budget and charges the time it took.
    fn charged<T>(
        &mut self,
        step: impl FnOnce(&mut Bounded<'_>, &mut FrameReader) -> Result<T, FrameError>,
    ) -> Result<T, ClientError> {
        let start = Instant::now();
        if self.left.is_zero() {
            return Err(ClientError::Timeout(self.timeout));
        }
        let mut io = Bounded {
            stream: &self.stream,
            deadline: start + self.left,
        };
        let res = step(&mut io, &mut self.reader);
        self.left = self.left.saturating_sub(start.elapsed());
        res.map_err(|e| match e {
            FrameError::Timeout => ClientError::Timeout(self.timeout),
            other => ClientError::Frame(other),
        })
    }
}

impl Daemon for Link {
    fn grant(&mut self, extra: Duration) {
        self.left = self.left.saturating_add(extra);
    }

    /// One frame, one `sendto` (see [`Bounded::write`]); the first one
    /// behind the `Hello`, in the same `sendto`.
    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.memory_ok()?;
        let Some(mut frames) = self.hello.take() else {
            return self.charged(|io, _| write_message(io, req));
        };
        let built = write_message(&mut frames, req).map_err(ClientError::Frame);
        let sent = built
            .and_then(|()| self.charged(|io, _| io.write_all(&frames).map_err(FrameError::from)));
        frames.zeroize();
        sent
    }

    /// A frame already buffered costs no system call; otherwise usually one
    /// `poll` and one `recvfrom` (the first time, for the `Welcome` and the
    /// reply together).
    fn recv(&mut self) -> Result<Response, ClientError> {
        self.memory_ok()?;
        if !self.welcomed {
            let welcome = self.charged(|io, reader| reader.read_message(io))?;
            self.proto = check_welcome(welcome)?;
            self.welcomed = true;
        }
        self.charged(|io, reader| reader.read_message(io))
    }

    fn proto(&self) -> u32 {
        self.proto
    }
}

/// The stream seen through a deadline: every `read` and `write` waits at
/// most until it, however many calls a frame takes.
///
/// The wait is a `poll(2)` on the time left rather than a socket timeout,
/// which would have to be set again (one `setsockopt`) before every call
/// since the time left keeps shrinking. The socket stays blocking and
/// without timeouts; each call passes `MSG_DONTWAIT`, so a wake-up that
/// finds nothing to do goes back to `poll` instead of blocking.
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

    /// Waits until the socket is ready for `events` or the deadline passes.
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        loop {
            let left = self.left()?;
            // Rounded up: a wait rounded down to 0 ms would spin until the
            // deadline instead of sleeping.
            let ms = left.as_nanos().div_ceil(1_000_000);
            let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
            let mut pfd = libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd; the fd is open.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n > 0 {
                // Readable, writable, hung up or in error: the call that
                // follows reports which.
                return Ok(());
            }
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            // n == 0 or EINTR: `left` ends the loop once the deadline passed.
        }
    }

    /// Runs `call` (a non-blocking send or recv) until it does something,
    /// polling for `events` whenever it would block.
    fn retry(&self, events: libc::c_short, mut call: impl FnMut() -> isize) -> io::Result<usize> {
        loop {
            self.left()?;
            let n = call();
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => self.wait(events)?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(err),
            }
        }
    }
}

impl Read for Bounded<'_> {
    /// Polls first: a read follows a request, so the reply is rarely there
    /// yet and trying first would usually cost an extra `recvfrom`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(libc::POLLIN)?;
        let fd = self.stream.as_raw_fd();
        self.retry(libc::POLLIN, || {
            // SAFETY: buf is valid for writes of buf.len() bytes; the fd is open.
            unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
        })
    }
}

impl Write for Bounded<'_> {
    /// Sends with `MSG_NOSIGNAL`: a daemon that closed its end must give
    /// EPIPE, not a SIGPIPE that kills su, sudo or a screen locker (which,
    /// unlike sshd, do not all ignore it). Tries first and polls only when
    /// the socket buffer is full, so a frame is normally one `sendto`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.stream.as_raw_fd();
        self.retry(libc::POLLOUT, || {
            // SAFETY: buf is valid for reads of buf.len() bytes; the fd is open.
            unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use twofold_proto::{read_frame, PROTO_VERSION};

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

    /// The listener here is this process, so the peer is our own euid.
    #[test]
    fn peer_uid_is_the_listeners_euid() {
        let path = socket_dir("peer").join("s.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = UnixListener::bind(&path).unwrap();
        let link = Link::connect(&path, Duration::from_secs(2)).unwrap();
        // SAFETY: geteuid cannot fail.
        assert_eq!(link.peer_uid().unwrap(), unsafe { libc::geteuid() });
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
            let body = br#"{"type":"welcome","proto":2}"#;
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
        let mut link = Link::connect(&path, Duration::from_secs(1)).unwrap();
        link.send(&begin()).unwrap();
        let err = link.recv().unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        server.join().unwrap();
    }

    /// The bytes of one frame carrying `resp`.
    fn frame_of(resp: &Response) -> Vec<u8> {
        let mut buf = Vec::new();
        write_message(&mut buf, resp).unwrap();
        buf
    }

    fn welcome() -> Vec<u8> {
        frame_of(&Response::Welcome {
            proto: PROTO_VERSION,
        })
    }

    fn prompt() -> Response {
        Response::Prompt {
            text: "Verification code: ".into(),
            echo: false,
        }
    }

    fn begin() -> Request {
        Request::Begin {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: None,
            tty: None,
            ruser: None,
            ssh_auth_info: None,
        }
    }

    /// A link whose first request (a `Begin`, with the `Hello`) is sent.
    fn begun(path: &Path, timeout: Duration) -> Link {
        let mut link = Link::connect(path, timeout).unwrap();
        link.send(&begin()).unwrap();
        link
    }

    /// A one-connection daemon on a fresh socket: `serve` gets the accepted
    /// stream after the module's `Hello` and first request have been read.
    fn daemon(
        tag: &str,
        serve: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> (std::path::PathBuf, std::thread::JoinHandle<()>) {
        let path = socket_dir(tag).join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            read_frame(&mut s).unwrap();
            read_frame(&mut s).unwrap();
            serve(&mut s);
        });
        (path, server)
    }

    /// Welcome and the first prompt in one write (so usually one read):
    /// the prompt must not be lost when the reader takes both at once,
    /// even though the daemon has hung up by the time it is asked for.
    #[test]
    fn two_frames_in_one_write_are_both_received() {
        let (path, server) = daemon("two", |s| {
            let mut both = welcome();
            both.extend(frame_of(&prompt()));
            s.write_all(&both).unwrap();
        });
        let mut link = begun(&path, Duration::from_secs(5));
        server.join().unwrap();
        assert_eq!(link.recv().unwrap(), prompt());
        assert!(matches!(
            link.recv(),
            Err(ClientError::Frame(FrameError::Closed))
        ));
    }

    /// Frames cut at every awkward place: inside the length, inside the
    /// body, and a write that ends one frame and starts the next.
    #[test]
    fn frames_split_across_writes_are_reassembled() {
        let (path, server) = daemon("split", |s| {
            let mut bytes = welcome();
            bytes.extend(frame_of(&prompt()));
            bytes.extend(frame_of(&Response::Success));
            let first_end = welcome().len();
            for cut in [&bytes[..2], &bytes[2..7], &bytes[7..first_end + 3]] {
                s.write_all(cut).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            s.write_all(&bytes[first_end + 3..]).unwrap();
        });
        let mut link = begun(&path, Duration::from_secs(5));
        assert_eq!(link.recv().unwrap(), prompt());
        assert_eq!(link.recv().unwrap(), Response::Success);
        server.join().unwrap();
    }

    /// The budget is kept by poll(2), not socket timeouts: none is ever
    /// set (each would cost a setsockopt per read and write), and a daemon
    /// that never answers still ends the call at the budget.
    #[test]
    fn a_silent_daemon_ends_at_the_budget_without_socket_timeouts() {
        let (path, server) = daemon("silent", |s| {
            s.write_all(&welcome()).unwrap();
            // Say nothing more until the module hangs up.
            let _ = read_frame(&mut *s);
        });
        let mut link = begun(&path, Duration::from_millis(400));
        assert_eq!(link.stream.read_timeout().unwrap(), None);
        assert_eq!(link.stream.write_timeout().unwrap(), None);
        let start = Instant::now();
        let err = link.recv().unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(900),
            "{took:?}"
        );
        assert_eq!(link.left(), Duration::ZERO);
        assert!(matches!(link.recv(), Err(ClientError::Timeout(_))));
        drop(link);
        server.join().unwrap();
    }

    /// A frame larger than the reader's buffer arrives whole.
    #[test]
    fn a_frame_larger_than_the_read_buffer_arrives_whole() {
        let long = Response::Info {
            text: "x".repeat(20_000),
        };
        let sent = long.clone();
        let (path, server) = daemon("long", move |s| {
            let mut both = welcome();
            both.extend(frame_of(&sent));
            both.extend(frame_of(&Response::Success));
            s.write_all(&both).unwrap();
        });
        let mut link = begun(&path, Duration::from_secs(5));
        assert_eq!(link.recv().unwrap(), long);
        assert_eq!(link.recv().unwrap(), Response::Success);
        server.join().unwrap();
    }

    #[test]
    fn an_oversized_frame_is_refused() {
        let (path, server) = daemon("big", |s| {
            s.write_all(&welcome()).unwrap();
            s.write_all(&(twofold_proto::MAX_FRAME as u32 + 1).to_be_bytes())
                .unwrap();
        });
        let mut link = begun(&path, Duration::from_secs(5));
        assert!(matches!(
            link.recv(),
            Err(ClientError::Frame(FrameError::TooLarge { .. }))
        ));
        server.join().unwrap();
    }

    /// The handshake costs no round trip of its own: the daemon here reads
    /// the `Hello` and the `Begin` before it sends anything, which would
    /// deadlock (until the budget) a module that waited for `Welcome`.
    #[test]
    fn the_first_request_goes_out_with_the_hello_before_any_welcome() {
        let (path, server) = daemon("pipelined", |s| {
            let mut both = welcome();
            both.extend(frame_of(&prompt()));
            s.write_all(&both).unwrap();
        });
        let start = Instant::now();
        let mut link = begun(&path, Duration::from_secs(5));
        assert_eq!(link.recv().unwrap(), prompt());
        assert!(start.elapsed() < Duration::from_secs(2));
        server.join().unwrap();
    }

    /// A daemon that refuses the handshake (or picks a version this module
    /// does not speak) fails the first `recv`: nothing it sends after is
    /// taken as the login's reply.
    #[test]
    fn a_refused_handshake_fails_the_first_recv() {
        for (tag, first) in [
            (
                "refused",
                Response::Failed {
                    kind: twofold_proto::ErrorKind::VersionMismatch,
                    message: "twofoldd speaks protocol versions 7 to 9 only".into(),
                },
            ),
            ("future", Response::Welcome { proto: 99 }),
        ] {
            let (path, server) = daemon(tag, move |s| {
                let mut both = frame_of(&first);
                both.extend(frame_of(&Response::Success));
                s.write_all(&both).unwrap();
            });
            let mut link = begun(&path, Duration::from_secs(5));
            let err = link.recv().unwrap_err();
            assert!(matches!(err, ClientError::Protocol(_)), "{tag}: {err:?}");
            server.join().unwrap();
        }
    }
}
