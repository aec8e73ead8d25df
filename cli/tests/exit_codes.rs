//! Exit codes of the built `twofold` binary: every daemon failure kind,
//! unreachable, silent and vanishing daemons.

mod support;

use std::time::{Duration, Instant};
use support::{twofold, FakeDaemon, TempDir};
use twofold_proto::{read_message, write_message, ErrorKind, Request, Response, PROTO_VERSION};

fn failed(kind: ErrorKind, message: &str) -> Response {
    Response::Failed {
        kind,
        message: message.into(),
    }
}

#[test]
fn daemon_failures_map_to_documented_exit_codes() {
    let table = [
        (ErrorKind::PermissionDenied, 4),
        (ErrorKind::InvalidCode, 5),
        (ErrorKind::NotFound, 6),
        (ErrorKind::Conflict, 7),
        (ErrorKind::BadRequest, 2),
        (ErrorKind::Internal, 1),
    ];
    for (kind, code) in table {
        let d = FakeDaemon::start("kinds", move |_| failed(kind, "the daemon says no"));
        let run = d.run(&["admin", "list"], "");
        assert_eq!(run.code, code, "{kind:?}: {run:?}");
        assert_eq!(run.stderr, "twofold: the daemon says no\n", "{kind:?}");
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn permission_denied_exits_4() {
    let d = FakeDaemon::start("denied", |_| {
        failed(ErrorKind::PermissionDenied, "only admins may list accounts")
    });
    let run = d.run(&["admin", "list", "--json"], "");
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.stderr, "twofold: only admins may list accounts\n");
}

#[test]
fn conflict_on_enroll_exits_7() {
    let d = FakeDaemon::start("conflict", |_| {
        failed(ErrorKind::Conflict, "TOTP is already enrolled")
    });
    let run = d.run(&["enroll", "totp"], "");
    assert_eq!(run.code, 7, "{run:?}");
    assert!(run.stderr.contains("already enrolled"), "{}", run.stderr);
}

#[test]
fn unsupported_and_unavailable_exit_1() {
    let d = FakeDaemon::start("unsupported", |r| Response::Unsupported {
        request: r.kind().into(),
    });
    let run = d.run(&["status"], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("does not support \"status\""),
        "{}",
        run.stderr
    );
    let d = FakeDaemon::start("unavailable", |_| Response::Unavailable);
    let run = d.run(&["status"], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("unavailable"), "{}", run.stderr);
}

#[test]
fn unexpected_reply_exits_1() {
    let d = FakeDaemon::start("unexpected", |_| Response::Success);
    let run = d.run(&["status"], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "twofold: unexpected reply from twofoldd: success\n"
    );
}

#[test]
fn unreachable_socket_exits_3_within_the_timeout() {
    let dir = TempDir::new("unreachable");
    let socket = dir.0.join("missing.sock");
    let start = Instant::now();
    let run = twofold(
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--timeout",
            "2",
            "status",
        ],
        "",
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        run.stderr.starts_with("twofold: cannot reach twofoldd at "),
        "{}",
        run.stderr
    );
}

#[test]
fn silent_daemon_exits_3_within_the_timeout() {
    let dir = TempDir::new("silent");
    let socket = dir.0.join("silent.sock");
    // Bound but never accepted from: connect succeeds, Hello is never answered.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let start = Instant::now();
    let run = twofold(
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--timeout",
            "1",
            "status",
        ],
        "",
    );
    let took = start.elapsed();
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(run.stderr.contains("did not answer"), "{}", run.stderr);
}

#[test]
fn daemon_closing_mid_request_exits_3() {
    let dir = TempDir::new("vanishing");
    let socket = dir.0.join("vanishing.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let _hello: Request = read_message(&mut conn).unwrap();
        write_message(
            &mut conn,
            &Response::Welcome {
                proto: PROTO_VERSION,
            },
        )
        .unwrap();
        let _req: Request = read_message(&mut conn).unwrap();
        // Dropping the connection without an answer, as a crashing daemon would.
    });
    let run = twofold(&["--socket", socket.to_str().unwrap(), "status"], "");
    server.join().unwrap();
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.starts_with("twofold: "), "{}", run.stderr);
}
