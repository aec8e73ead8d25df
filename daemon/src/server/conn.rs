//! One client connection: the handshake, then requests until it closes.

use crate::engine::Engine;
use crate::login;
use crate::server::peer::Peer;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Instant;
use twofold_proto::{
    write_message, DecodeError, ErrorKind, FrameDeadline, FrameError, FrameReader, Request,
    Response, PROTO_OLDEST, PROTO_VERSION,
};
use zeroize::Zeroize;

/// What the next frame turned out to be.
pub(crate) enum Incoming {
    /// A request this daemon understands.
    Request(Request),
    /// A well-formed request of an unknown type (its name, truncated).
    Unknown(String),
    /// The connection is over (closed, broken, timed out or sent garbage);
    /// already logged.
    End,
}

/// A connection with its peer, logging every way it can fail.
pub(crate) struct Conn<'a> {
    pub engine: &'a Engine,
    pub peer: &'a Peer,
    stream: &'a UnixStream,
    /// One buffered read per frame, usually (instead of length, then body).
    reader: FrameReader,
    /// Frames held back to go out with the next one (the `Welcome`, when
    /// the client sent its first request right behind `Hello`): one write,
    /// and one wake-up of the client, for both.
    held: Vec<u8>,
    /// The protocol version agreed in the handshake.
    pub proto: u32,
}

impl<'a> Conn<'a> {
    pub fn new(engine: &'a Engine, peer: &'a Peer, stream: &'a UnixStream) -> Conn<'a> {
        Conn {
            engine,
            peer,
            stream,
            reader: FrameReader::new(),
            held: Vec::new(),
            proto: PROTO_VERSION,
        }
    }

    /// Whether the client closed its end (or the connection broke), seen
    /// without reading anything it sent: a wait on a device stops then.
    pub fn hung_up(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = self.stream.as_raw_fd();
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n <= 0 {
            return false;
        }
        if p.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0 {
            return true;
        }
        let mut b = [0u8; 1];
        // SAFETY: a one-byte buffer we own; MSG_PEEK leaves the data queued.
        let got = unsafe {
            libc::recv(
                fd,
                b.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        got == 0
    }

    /// Logs a connection-level problem.
    pub fn log_error(&self, error: &str) {
        self.engine.log.event(
            "connection",
            &[
                ("peer_uid", &self.peer.cred.uid.to_string()),
                ("peer_pid", &self.peer.cred.pid.to_string()),
                ("error", error),
            ],
        );
    }

    /// Reads the next request. Garbage, oversized or truncated frames and
    /// timeouts end the connection (after a `Failed` where the peer can still
    /// read it); they never affect other connections.
    ///
    /// The request must be complete within `client_timeout` of now, and
    /// within `frame_timeout` of its first byte: a client dribbling a byte
    /// at a time holds this worker no longer than one that sends nothing.
    /// (Every read of the connection is made here.)
    pub fn recv(&mut self) -> Incoming {
        if !self.held.is_empty() && !self.reader.has_frame() {
            // About to wait for the client: what it waits for goes first.
            if !self.flush() {
                return Incoming::End;
            }
        }
        let limits = &self.engine.config.daemon;
        let deadline = FrameDeadline {
            by: Instant::now() + limits.client_timeout.duration(),
            once_begun: limits.frame_timeout.duration(),
        };
        let mut body = match self.reader.read_frame_by(&mut self.stream, deadline) {
            Ok(b) => b,
            Err(FrameError::Closed) => return Incoming::End,
            Err(e @ FrameError::TooLarge { .. }) => {
                self.log_error(&e.to_string());
                self.send_failed(ErrorKind::BadRequest, &e.to_string());
                return Incoming::End;
            }
            Err(e) => {
                self.log_error(&e.to_string());
                return Incoming::End;
            }
        };
        let decoded = Request::decode(&body);
        // The body may hold a code; wipe it before anything else happens.
        body.zeroize();
        match decoded {
            Ok(r) => Incoming::Request(r),
            Err(DecodeError::Unknown(kind)) => Incoming::Unknown(kind),
            Err(DecodeError::Malformed(_)) => {
                // serde's message can quote the input (a code); log only that it was malformed.
                self.log_error("malformed request");
                self.send_failed(ErrorKind::BadRequest, "malformed request");
                Incoming::End
            }
        }
    }

    /// Sends a response (after any held one); `false` (already logged)
    /// when the peer is gone.
    pub fn send(&mut self, resp: &Response) -> bool {
        self.hold(resp) && self.flush()
    }

    /// Queues a response to go out with the next [`Conn::send`] (or before
    /// the next read that would wait for the client).
    fn hold(&mut self, resp: &Response) -> bool {
        match write_message(&mut self.held, resp) {
            Ok(()) => true,
            Err(e) => {
                self.held.clear();
                self.log_error(&format!(
                    "cannot send {}: {e}",
                    twofold_proto::response_name(resp)
                ));
                false
            }
        }
    }

    /// Writes every held frame, in one `write` when the socket takes it.
    fn flush(&mut self) -> bool {
        let sent = self.stream.write_all(&self.held);
        // Held frames may carry a secret (an enrollment's codes).
        self.held.zeroize();
        self.held.clear();
        match sent {
            Ok(()) => true,
            Err(e) => {
                self.log_error(&format!("cannot send: {e}"));
                false
            }
        }
    }

    /// Sends `Failed`, ignoring a peer that is already gone.
    pub fn send_failed(&mut self, kind: ErrorKind, message: &str) -> bool {
        self.send(&Response::Failed {
            kind,
            message: message.to_owned(),
        })
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        // Nothing held is ever dropped unsent.
        if !self.held.is_empty() {
            self.flush();
        }
    }
}

/// Serves one connection to its end. `peer` was resolved when it
/// connected; each request is authorized with the peer's rights as they
/// are when it arrives.
pub(crate) fn serve(engine: &Engine, peer: &Peer, stream: &UnixStream) {
    let mut conn = Conn::new(engine, peer, stream);
    if !handshake(&mut conn) {
        return;
    }
    loop {
        match conn.recv() {
            Incoming::End => return,
            Incoming::Unknown(kind) => {
                conn.log_error(&format!("unsupported request type {kind}"));
                if !conn.send(&Response::Unsupported { request: kind }) {
                    return;
                }
            }
            Incoming::Request(Request::Begin {
                user,
                service,
                rhost,
                tty,
                ruser,
                ssh_auth_info,
            }) => {
                let begin = login::Begin {
                    user,
                    service,
                    rhost,
                    tty,
                    ruser,
                    ssh_auth_info,
                };
                login::run(&mut conn, &begin);
                // One connection is one login.
                return;
            }
            Incoming::Request(
                req @ (Request::Hello { .. }
                | Request::Answer { .. }
                | Request::PasswordAnswer
                | Request::Ack),
            ) => {
                let what = req.kind();
                conn.log_error(&format!("unexpected {what}"));
                conn.send_failed(
                    ErrorKind::BadRequest,
                    &format!("unexpected {what}: no conversation in progress"),
                );
                return;
            }
            Incoming::Request(req) => {
                // Each request runs under the configuration in force when
                // it arrives, and the peer's rights are looked up again,
                // so that someone removed from `admin_group` (in the group
                // database or by a reload) loses admin rights on a
                // connection they opened before. Cheap: the passwd entry
                // comes from the directory cache, and the group is read
                // only for a peer that is neither root nor the daemon's
                // own user.
                let engine = &engine.renewed();
                let now = Peer::resolve(
                    peer.cred,
                    engine.config.daemon.admin_group.as_deref(),
                    &engine.directory,
                );
                let resp = crate::requests::answer(engine, &now, req);
                if !conn.send(&resp) {
                    return;
                }
            }
        }
    }
}

fn handshake(conn: &mut Conn<'_>) -> bool {
    match conn.recv() {
        Incoming::End => false,
        Incoming::Request(Request::Hello {
            proto_min,
            proto_max,
            ..
        }) => {
            // The newest version both speak; none when the client's range
            // misses ours (or is empty: min above max).
            let chosen = proto_max.min(PROTO_VERSION);
            if chosen >= proto_min && chosen >= PROTO_OLDEST {
                conn.proto = chosen;
                let welcome = Response::Welcome { proto: conn.proto };
                if conn.reader.has_frame() {
                    // The first request came with the hello: answer both at once.
                    conn.hold(&welcome)
                } else {
                    conn.send(&welcome)
                }
            } else {
                conn.log_error(&format!(
                    "no common protocol version: client speaks {proto_min}..={proto_max}, daemon {PROTO_OLDEST}..={PROTO_VERSION}"
                ));
                conn.send_failed(
                    ErrorKind::VersionMismatch,
                    &format!(
                        "twofoldd speaks protocol versions {PROTO_OLDEST} to {PROTO_VERSION} only"
                    ),
                );
                false
            }
        }
        Incoming::Request(_) | Incoming::Unknown(_) => {
            conn.log_error("first request was not hello");
            conn.send_failed(ErrorKind::BadRequest, "the first request must be hello");
            false
        }
    }
}
