//! Issue 11: `twofold enroll totp` run where standard input is a terminal
//! but `/dev/tty` cannot be opened (`su - user -c ...`, a session without a
//! controlling terminal) failed after showing the secret and left a pending
//! enrollment behind. It now reads the code from standard input with echo
//! off, and any error drops the pending enrollment.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{bin_path, TestDaemon};

fn pending(d: &TestDaemon) -> bool {
    match d.call(&Request::Status { user: None }) {
        Response::Status(s) => s.pending_enrollment,
        other => panic!("{other:?}"),
    }
}

fn enrolled(d: &TestDaemon) -> usize {
    match d.call(&Request::Status { user: None }) {
        Response::Status(s) => s.factors.len(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn regression_an_enrollment_that_gets_no_code_leaves_nothing_pending() {
    let d = TestDaemon::start();
    let out = d.twofold(&["enroll", "totp", "--no-qr"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dropped"), "{err}");
    assert!(!pending(&d), "a pending enrollment was left behind");
    assert_eq!(enrolled(&d), 0);
}

/// Opens a pseudo-terminal: (controller, terminal side).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut c, mut t) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut c,
            &mut t,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two fresh descriptors that we now own.
    unsafe { (OwnedFd::from_raw_fd(c), OwnedFd::from_raw_fd(t)) }
}

#[test]
fn regression_enroll_reads_the_code_from_a_terminal_that_is_not_the_controlling_one() {
    let d = TestDaemon::start();
    let (controller, terminal) = pty();
    let mut cmd = Command::new(bin_path("twofold"));
    cmd.arg("--socket")
        .arg(d.socket())
        .args(["enroll", "totp", "--no-qr"])
        .stdin(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; it gives the child a session of
    // its own with no controlling terminal, so /dev/tty cannot be opened.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Reads below block; if twofold never shows the key or the prompt (the
    // bug), it is killed after 20 s so the test fails instead of hanging.
    let pid = child.id() as libc::pid_t;
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(20)).is_err() {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    // The key is shown on stdout; read it, then answer the prompt that
    // appears on the terminal.
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !shown.contains("URI: ") {
        assert!(Instant::now() < deadline, "no key shown: {shown}");
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "twofold ended early: {shown}");
        shown.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let key: String = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("Key:"))
        .expect("the key line")
        .split_whitespace()
        .collect();
    let mut tty = std::fs::File::from(controller);
    let mut prompt = String::new();
    while !prompt.contains("Enter a code") {
        assert!(
            Instant::now() < deadline,
            "no prompt on the terminal: {prompt}"
        );
        let n = tty.read(&mut buf).expect("twofold ended before its prompt");
        prompt.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let code = d.code(&key, 0);
    tty.write_all(format!("{code}\n").as_bytes()).unwrap();
    // Echo was off: what the terminal shows next is not the code.
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    let status = child.wait().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "{status:?}\n{err}\n{rest}");
    assert!(
        rest.contains("backup codes") || rest.contains("Backup codes"),
        "{rest}"
    );
    assert_eq!(enrolled(&d), 1);
    assert!(!pending(&d));
    let mut echoed = String::new();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tty);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let _ = tty.read_to_string(&mut echoed);
    assert!(!echoed.contains(&code), "the code was echoed: {echoed:?}");
}
