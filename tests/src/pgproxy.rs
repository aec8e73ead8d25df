//! A proxy in front of a PostgreSQL server's Unix socket, for the fleet
//! tests that watch or hold up what a real daemon says to the real server.
//!
//! It counts the daemon's turns: what the daemon sends after the server
//! last spoke is one round trip when it runs statements (a simple query
//! `Q`, or a `Sync` after a `Bind`: a prepared statement run; requests sent
//! together, such as a transaction's `BEGIN` with its first statement, are
//! one); a `Sync` without a `Bind` is a statement prepared (once per
//! connection), counted apart. The replica's listening connection
//! (`application_name` `twofoldd-replica`) works on its own time: it is not
//! counted, and the test can hold what the server sends it (its
//! notifications, its answers) to make its copy fall behind.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the daemon sent since the last [`take`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Round trips that ran statements (simple queries and prepared runs).
    pub trips: u32,
    /// Statements prepared.
    pub prepares: u32,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// The daemon's turns, the replica's left out.
    pub counts: Arc<Mutex<Counts>>,
    /// While set, nothing the server sends reaches a replica's connection.
    pub hold_replica: Arc<AtomicBool>,
    /// While set, the server's notifications (`NotificationResponse`) to a
    /// replica's connection are dropped; its answers still pass (what a
    /// connection pooler in transaction mode does to `LISTEN`).
    pub drop_notifications: Arc<AtomicBool>,
}

/// The counts since the last call, and zero from now.
pub fn take(counts: &Mutex<Counts>) -> Counts {
    std::mem::take(&mut *counts.lock().unwrap())
}

/// A proxy in `dir` in front of the server `store` names (a socket
/// directory), and `store` pointed at it.
pub fn in_front(store: &mut twofold_config::StoreConfig, dir: &Path) -> Proxy {
    let real = Path::new(&store.host).join(format!(".s.PGSQL.{}", store.port));
    store.host = dir.display().to_string();
    proxy(dir, real)
}

/// A proxy in front of the server's socket `real`, listening on the
/// socket file of the same name in `dir` (point `[store] host` at `dir`).
pub fn proxy(dir: &Path, real: PathBuf) -> Proxy {
    let name = real.file_name().unwrap().to_owned();
    let listener = UnixListener::bind(dir.join(name)).expect("bind the proxy");
    let counts = Arc::new(Mutex::new(Counts::default()));
    let hold_replica = Arc::new(AtomicBool::new(false));
    let drop_notifications = Arc::new(AtomicBool::new(false));
    let (shared, hold, dropping) = (
        counts.clone(),
        hold_replica.clone(),
        drop_notifications.clone(),
    );
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = UnixStream::connect(&real).expect("the real server");
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            // Set whenever the server has said something since the
            // daemon's last send: the daemon's next send is a new turn.
            let spoke = Arc::new(AtomicBool::new(true));
            let heard = spoke.clone();
            // Whether this is the replica's connection (its startup
            // message says so, before the server says anything).
            let listening = Arc::new(AtomicBool::new(false));
            let is_replica = listening.clone();
            let (hold, dropping) = (hold.clone(), dropping.clone());
            std::thread::spawn(move || {
                let mut chunk = [0u8; 16384];
                // A replica's connection is passed on whole messages at a
                // time (every server message is typed: no TLS on a socket).
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let n = match from_server.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let replica = is_replica.load(Ordering::SeqCst);
                    while replica && hold.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    heard.store(true, Ordering::SeqCst);
                    let out: Vec<u8> = if replica {
                        pending.extend_from_slice(&chunk[..n]);
                        whole_messages(&mut pending, dropping.load(Ordering::SeqCst))
                    } else {
                        chunk[..n].to_vec()
                    };
                    if to_client.write_all(&out).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let counts = shared.clone();
            std::thread::spawn(move || forward(client, server, &counts, &spoke, &listening));
        }
    });
    Proxy {
        counts,
        hold_replica,
        drop_notifications,
    }
}

/// The whole server messages at the front of `buf`, taken out of it,
/// without the notifications (`A`) when `drop_notes`.
fn whole_messages(buf: &mut Vec<u8>, drop_notes: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() >= at + 5 {
        let len = u32::from_be_bytes(buf[at + 1..at + 5].try_into().unwrap()) as usize;
        if buf.len() < at + 1 + len {
            break;
        }
        if !(drop_notes && buf[at] == b'A') {
            out.extend_from_slice(&buf[at..at + 1 + len]);
        }
        at += 1 + len;
    }
    buf.drain(..at);
    out
}

/// Copies the daemon's messages to the server, counting them.
fn forward(
    mut client: UnixStream,
    mut server: UnixStream,
    counts: &Mutex<Counts>,
    spoke: &AtomicBool,
    listening: &AtomicBool,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16384];
    // The startup packets (an SSL request, the startup message) have no
    // type byte; every message after them has one.
    let mut untyped = true;
    let mut bound = false;
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read before the chunk goes on: the server cannot answer it yet.
        let new_turn = spoke.swap(false, Ordering::SeqCst);
        buf.extend_from_slice(&chunk[..n]);
        let mut runs = false;
        loop {
            let (head, body) = if untyped { (0, 4) } else { (1, 5) };
            if buf.len() < body {
                break;
            }
            let len = u32::from_be_bytes(buf[head..body].try_into().unwrap()) as usize;
            if buf.len() < head + len {
                break;
            }
            if untyped {
                let code = u32::from_be_bytes(buf[4..8].try_into().unwrap());
                // 80877103: SSLRequest, 80877104: GSSENCRequest.
                untyped = code == 80877103 || code == 80877104;
                let replica = b"twofoldd-replica";
                if buf[..len].windows(replica.len()).any(|w| w == replica) {
                    listening.store(true, Ordering::SeqCst);
                }
            } else {
                match buf[0] {
                    b'Q' => runs = true,
                    b'B' => bound = true,
                    b'S' if bound => {
                        runs = true;
                        bound = false;
                    }
                    b'S' if !listening.load(Ordering::SeqCst) => {
                        counts.lock().unwrap().prepares += 1;
                    }
                    _ => {}
                }
            }
            buf.drain(..head + len);
        }
        // Known to be the replica's before its startup reaches the server.
        if server.write_all(&chunk[..n]).is_err() {
            break;
        }
        if runs && new_turn && !listening.load(Ordering::SeqCst) {
            counts.lock().unwrap().trips += 1;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}
