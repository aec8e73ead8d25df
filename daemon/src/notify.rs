//! Readiness for systemd (`Type=notify`): one `READY=1` datagram to
//! `$NOTIFY_SOCKET` once the socket listens, so a PAM login never races a
//! starting daemon. The protocol is a single datagram on a Unix socket
//! (a path, or an abstract name written with a leading `@`); a few lines
//! of std instead of a crate.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells the service manager that twofoldd listens. Does nothing when no
/// service manager asked (`NOTIFY_SOCKET` unset, e.g. started by hand or
/// by a test); a failure is written to standard error and otherwise
/// ignored, since systemd then stops a daemon that never says it is ready.
pub fn ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, "READY=1") {
        let line = format!(
            "twofoldd: cannot tell systemd it is ready through NOTIFY_SOCKET={}: {e}\n",
            socket.to_string_lossy()
        );
        let _ = io::Write::write_all(&mut io::stderr(), line.as_bytes());
    }
}

/// Sends one notification `state` (e.g. `READY=1`) to the socket named as
/// `$NOTIFY_SOCKET` names it.
pub fn send(socket: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket);
    let addr = match bytes.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        Some((b'/', _)) => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@...)",
            ))
        }
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn ready_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("tf-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ready_reaches_an_abstract_socket() {
        let name = format!("tf-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn a_relative_or_empty_notify_socket_is_refused() {
        for bad in ["", "run/notify"] {
            let err = send(OsStr::new(bad), "READY=1").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
