//! What one connection, and one local user, may hold of the daemon: a
//! request must arrive whole within `frame_timeout` of its first byte (and
//! the wait for it is `client_timeout` in total, not per byte); a user
//! holds at most `max_connections_per_user` connections, unprivileged
//! users together at most `max_connections` minus root's reserve; root is
//! not limited. Over a limit, a connection is refused at once, with a
//! message, no audit row and no log line of its own.
//!
//! The tests that need another uid re-run this binary as `nobody`.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use twofold_config::Seconds;
use twofold_proto::{Client, ClientError, ErrorKind, Request, Response};
use twofold_tests::daemon::{failed_kind, TestDaemon};
use twofold_tests::peers::{hear, refusal_of, AsNobody, NOBODY};
use twofold_tests::require_root;

const SOCKET_ENV: &str = "TWOFOLD_TEST_LIMITS_SOCKET";
const MODE_ENV: &str = "TWOFOLD_TEST_LIMITS_MODE";

/// Sends a request one byte every 100 ms (a header announcing 1000 bytes,
/// then the body), so every read of the daemon gets a byte long before any
/// per-read timeout; returns how long after the first byte the daemon
/// closed the connection. Panics if it is still open after `give_up`.
fn dribble_until_cut(d: &TestDaemon, give_up: Duration) -> Duration {
    let mut s = d.raw();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut bytes = 1000u32.to_be_bytes().to_vec();
    bytes.resize(1004, b'x');
    let start = Instant::now();
    for b in bytes {
        if start.elapsed() > give_up {
            panic!("a dribbling connection is still served after {give_up:?}");
        }
        if s.write_all(&[b]).is_err() {
            return start.elapsed();
        }
        match s.read(&mut [0u8; 64]) {
            Ok(0) => return start.elapsed(),
            Ok(n) => panic!("the daemon answered {n} bytes to half a frame"),
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
            Err(_) => return start.elapsed(),
        }
    }
    panic!("the whole frame went through")
}

#[test]
fn regression_a_dribbling_connection_is_cut_at_the_frame_deadline() {
    // client_timeout stays 5 minutes: only the frame's own deadline can cut it.
    let d = TestDaemon::start_with(|c| c.daemon.frame_timeout = Seconds(1));
    let cut = dribble_until_cut(&d, Duration::from_secs(6));
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(3),
        "cut after {cut:?}, expected about 1s"
    );
    let log = d.log_text();
    assert!(
        log.contains("frame not complete 1s after its first byte"),
        "{log}"
    );
    d.assert_serves_new_client();
}

#[test]
fn the_wait_for_a_request_is_client_timeout_in_total_not_per_byte() {
    // A frame deadline longer than the wait: the wait, counted from its
    // start and not from the last byte, cuts the dribble.
    let d = TestDaemon::start_with(|c| {
        c.daemon.client_timeout = Seconds(1);
        c.daemon.frame_timeout = Seconds(60);
    });
    let cut = dribble_until_cut(&d, Duration::from_secs(6));
    assert!(cut < Duration::from_secs(3), "cut after {cut:?}");
    assert!(d.log_text().contains("timed out"), "{}", d.log_text());
    d.assert_serves_new_client();
}

/// Rows in the audit table.
fn audit_rows(d: &TestDaemon) -> u64 {
    d.sqlite3("SELECT count(*) FROM audit")
        .trim()
        .parse()
        .unwrap()
}

fn refused_lines(d: &TestDaemon) -> Vec<String> {
    d.log
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("twofoldd: refused"))
        .collect()
}

#[test]
fn regression_one_user_may_hold_only_max_connections_per_user() {
    // The peer over the limit runs as uid 65534.
    require_root();
    let mut d = TestDaemon::start_with(|c| c.daemon.max_connections_per_user = 3);
    let rows = audit_rows(&d);
    let mut nobody = AsNobody::start(
        "child_as_nobody",
        &[
            (SOCKET_ENV, d.socket().as_os_str()),
            (MODE_ENV, "per_user".as_ref()),
        ],
    );
    nobody.expect_line("holding 3, the 4th refused");
    // Root is not limited: more than three at once, each served.
    let mut roots: Vec<Client> = (0..6).map(|_| d.client()).collect();
    for c in &mut roots {
        let r = c.call(&Request::Status { user: None }).unwrap();
        assert!(matches!(r, Response::Status(_)), "{r:?}");
    }
    nobody.say("go");
    nobody.finish();
    drop(roots);
    d.stop();
    assert_eq!(audit_rows(&d), rows, "a refusal writes no audit row");
    // 51 refusals or more: the first logged at once, the others summed up
    // in one line (here at shutdown, before the 10 s window ends).
    let lines = refused_lines(&d);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("peer_uid=65534 ") && lines[0].contains("limit=max_connections_per_user"),
        "{lines:?}"
    );
    let counted: u64 = lines[1]
        .split_once("connections=")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(counted >= 50, "{lines:?}");
    assert!(
        lines[1].contains(&format!("by_uid=65534:{counted}")),
        "{lines:?}"
    );
}

#[test]
fn unprivileged_users_together_leave_roots_reserve() {
    // The unprivileged peer runs as uid 65534.
    require_root();
    // 8 connections: a quarter kept for root, 6 for everyone else; one
    // user may hold them all here.
    let d = TestDaemon::start_with(|c| {
        c.daemon.max_connections = 8;
        c.daemon.max_connections_per_user = 8;
    });
    assert_eq!(d.config().daemon.unprivileged_connections(), 6);
    let mut nobody = AsNobody::start(
        "child_as_nobody",
        &[
            (SOCKET_ENV, d.socket().as_os_str()),
            (MODE_ENV, "unprivileged".as_ref()),
        ],
    );
    nobody.expect_line("holding 6, the 7th refused");
    // Root's two reserved workers serve root's logins while the six are held.
    let mut roots: Vec<Client> = (0..2).map(|_| d.client()).collect();
    for c in &mut roots {
        let r = c.call(&Request::Status { user: None }).unwrap();
        assert!(matches!(r, Response::Status(_)), "{r:?}");
    }
    nobody.say("go");
    nobody.finish();
}

/// Runs only when re-executed by the tests above, as uid 65534.
#[test]
#[ignore = "run by the tests above as uid 65534"]
fn child_as_nobody() {
    let (Ok(socket), Ok(mode)) = (std::env::var(SOCKET_ENV), std::env::var(MODE_ENV)) else {
        panic!(
            "a child entry point: run by the tests above, which set {SOCKET_ENV} and {MODE_ENV}"
        );
    };
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    let connect = || Client::connect(socket.as_ref(), Duration::from_secs(10), "limits");
    let (held, expected) = match mode.as_str() {
        "per_user" => (3, "too many connections: uid 65534 may hold 3 at once"),
        _ => (
            6,
            "twofoldd is busy: unprivileged users hold all 6 connections",
        ),
    };
    let mut clients: Vec<Client> = (0..held).map(|_| connect().unwrap()).collect();
    for c in &mut clients {
        match c.call(&Request::Status { user: None }).unwrap() {
            Response::Status(s) => assert_eq!(s.user, "nobody"),
            other => panic!("{other:?}"),
        }
    }
    // One more is refused at once, before it says anything.
    let raw = UnixStream::connect(&socket).unwrap();
    let start = Instant::now();
    let r = refusal_of(&raw, Duration::from_secs(5)).expect("no refusal");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(failed_kind(&r), Some(ErrorKind::PermissionDenied), "{r:?}");
    assert!(
        matches!(&r, Response::Failed { message, .. } if message.starts_with(expected)),
        "{r:?}"
    );
    println!("holding {held}, the {}th refused", held + 1);
    if mode == "per_user" {
        // The ordinary client reports the daemon's message, every time.
        for _ in 0..50 {
            match connect() {
                Err(ClientError::Protocol(m)) => assert!(m.starts_with(expected), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(hear(), "go");
    // A connection that ends gives its place back.
    drop(clients.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect() {
            Ok(mut c) => {
                let r = c.call(&Request::Status { user: None }).unwrap();
                assert!(matches!(r, Response::Status(_)), "{r:?}");
                break;
            }
            Err(ClientError::Protocol(m)) if Instant::now() < deadline => {
                assert!(m.starts_with(expected), "{m}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    }
    println!("child ok");
}
