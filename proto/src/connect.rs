//! Connecting to a Unix stream socket without letting a hung listener hold
//! the caller past its timeout.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Connects a Unix stream socket to `path`, waiting at most `timeout`, and
/// returns it in blocking mode with no read or write timeout set.
///
/// A plain `connect(2)` on a Unix stream socket blocks while the listener's
/// backlog is full, which a hung daemon causes. A non-blocking connect is no
/// cure: on Linux it fails with `EAGAIN` at once and leaves nothing in
/// progress (polling the socket then reports it writable though it is not
/// connected). So this connects in blocking mode with `SO_SNDTIMEO` set to
/// the time left, which bounds the kernel's wait for a free backlog slot.
/// Errors: `InvalidInput` for a path that is empty, too long for `sun_path`
/// or contains NUL; `TimedOut` when `timeout` passes first; otherwise the OS
/// error of `socket` or `connect` (e.g. `NotFound`, `ConnectionRefused`).
pub fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let stream = connect_unix_nonblocking(path, timeout)?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Like [`connect_unix`], but the socket comes back in non-blocking mode
/// (for callers that wait with poll(2) themselves, like the PAM module).
///
/// The usual case costs two system calls: a non-blocking connect that finds
/// a free backlog slot completes at once. Only when the backlog is full
/// (`EAGAIN`) does it fall back to the bounded blocking wait above.
pub fn connect_unix_nonblocking(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path is empty, too long or contains NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes; the fd is open.
    let rc = unsafe { libc::connect(stream.as_raw_fd(), std::ptr::addr_of!(addr).cast(), len) };
    if rc == 0 {
        return Ok(stream);
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
        return Err(err);
    }
    // The backlog is full: nothing is in progress (see above), so wait in
    // blocking connects bounded by SO_SNDTIMEO.
    stream.set_nonblocking(false)?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
        // The kernel rounds this up to a whole tick, never down to zero
        // (which would mean "wait forever"); std refuses a zero duration.
        stream.set_write_timeout(Some(left))?;
        // SAFETY: addr is a valid sockaddr_un of `len` bytes; the fd is open.
        let rc = unsafe { libc::connect(stream.as_raw_fd(), std::ptr::addr_of!(addr).cast(), len) };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // EAGAIN: the backlog stayed full for the whole SO_SNDTIMEO;
            // the loop ends it as a timeout once the deadline has passed.
            Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
    stream.set_write_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A listener whose backlog holds one pending connection and that never
    /// accepts, plus that one connection, so the next connect must wait.
    fn full_backlog(tag: &str) -> (std::path::PathBuf, UnixListener, UnixStream) {
        let dir = std::env::temp_dir().join(format!("tf-connect-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        // SAFETY: plain syscall on an open listening socket; Linux lets
        // listen(2) shrink the backlog of a socket already listening.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let first = connect_unix(&path, Duration::from_secs(1)).unwrap();
        (path, listener, first)
    }

    #[test]
    fn unusable_paths_are_invalid_input() {
        let long = "/tmp/".to_owned() + &"x".repeat(200);
        for p in ["", "/tmp/nul\0byte", long.as_str()] {
            let err = connect_unix(Path::new(p), Duration::from_secs(1)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{p:?}: {err}");
        }
    }

    /// Regression: with the backlog full, the non-blocking connect used to
    /// fail with EAGAIN, poll reported the socket writable at once, and an
    /// unconnected socket came back as success (so a hung daemon gave
    /// "handshake failed" at once instead of a timeout).
    #[test]
    fn a_full_backlog_times_out_instead_of_returning_an_unconnected_socket() {
        let (path, _listener, _first) = full_backlog("full");
        let start = Instant::now();
        let err = connect_unix(&path, Duration::from_millis(300)).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "took {took:?}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A slot that frees during the wait lets the connect through, connected.
    #[test]
    fn a_backlog_slot_freed_in_time_connects() {
        let (path, listener, _first) = full_backlog("frees");
        let acceptor = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let accepted = listener.accept().unwrap();
            // Keep the listener open until the waiting connect is through.
            (listener, accepted)
        });
        let stream = connect_unix(&path, Duration::from_secs(5)).unwrap();
        assert!(stream.peer_addr().is_ok(), "connected");
        assert_eq!(stream.write_timeout().unwrap(), None);
        assert!(!nonblocking(&stream));
        acceptor.join().unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    fn nonblocking(s: &UnixStream) -> bool {
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_NONBLOCK != 0
    }

    /// Each variant returns a connected socket in the mode it promises,
    /// whether the backlog had room at once or only after a wait.
    #[test]
    fn each_variant_returns_its_mode_connected() {
        let (path, listener, first) = full_backlog("modes");
        drop(first);
        let _ = listener.accept().unwrap();
        let quick = connect_unix_nonblocking(&path, Duration::from_secs(5)).unwrap();
        assert!(quick.peer_addr().is_ok() && nonblocking(&quick));
        let _ = listener.accept().unwrap();
        let blocking = connect_unix(&path, Duration::from_secs(5)).unwrap();
        assert!(blocking.peer_addr().is_ok() && !nonblocking(&blocking));
        let _ = listener.accept().unwrap();
        // The backlog is full again: the slow path must also end non-blocking.
        let _held = connect_unix(&path, Duration::from_secs(1)).unwrap();
        let acceptor = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let accepted = listener.accept().unwrap();
            (listener, accepted)
        });
        let waited = connect_unix_nonblocking(&path, Duration::from_secs(5)).unwrap();
        assert!(waited.peer_addr().is_ok() && nonblocking(&waited));
        assert_eq!(waited.write_timeout().unwrap(), None);
        acceptor.join().unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
