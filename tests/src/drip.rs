//! A daemon that is alive but never finishes: after the handshake and
//! `Begin` it sends an `Info` line every `interval`, reading each `Ack`,
//! until the client hangs up. Each reply comes well within a per-reply
//! timeout, so only a budget for the whole login ends it in time.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use twofold_proto::{read_frame, write_message, Response, PROTO_VERSION};

/// A running drip daemon; stops on drop.
#[derive(Debug)]
pub struct DripDaemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DripDaemon {
    /// Listens on a fresh temporary socket; sends a line every `interval`.
    pub fn start(interval: Duration) -> io::Result<DripDaemon> {
        let dir = tempfile::Builder::new().prefix("tf-drip").tempdir()?;
        let socket = dir.path().join("twofold.sock");
        let listener = UnixListener::bind(&socket)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (t_stop, t_sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = std::thread::spawn(move || {
            while !t_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = drip(s, interval, &t_stop, &t_sent);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(DripDaemon {
            dir,
            socket,
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// The socket path to give the module.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory holding the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How many `Info` lines it has sent so far, over every connection.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for DripDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drip(
    mut s: UnixStream,
    interval: Duration,
    stop: &AtomicBool,
    sent: &AtomicUsize,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    s.set_nonblocking(false).map_err(|x| e(&x))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|x| e(&x))?;
    read_frame(&mut s).map_err(|x| e(&x))?; // Hello
    write_message(
        &mut s,
        &Response::Welcome {
            proto: PROTO_VERSION,
        },
    )
    .map_err(|x| e(&x))?;
    read_frame(&mut s).map_err(|x| e(&x))?; // Begin
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        let info = Response::Info {
            text: "still thinking".into(),
        };
        write_message(&mut s, &info).map_err(|x| e(&x))?;
        sent.fetch_add(1, Ordering::Relaxed);
        read_frame(&mut s).map_err(|x| e(&x))?; // Ack
    }
    Ok(())
}
