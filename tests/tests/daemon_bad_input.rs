//! Every bad input gets a clear error or a closed connection, and the daemon
//! keeps serving the next client.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use twofold_proto::{
    read_message, write_frame, write_message, ErrorKind, Request, Response, PROTO_VERSION,
};
use twofold_tests::daemon::{failed_kind, TestDaemon};

fn hello() -> Request {
    twofold_proto::hello("bad-input-test")
}

/// Reads until EOF; panics if the daemon keeps the connection open.
fn assert_closed(s: &mut UnixStream) {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("daemon should close the connection");
}

/// Reads the daemon's reply: `Failed` of `kind`, then the connection closes.
fn assert_refused_and_closed(s: &mut UnixStream, kind: ErrorKind) {
    let r: Response = read_message(s).unwrap();
    assert_eq!(failed_kind(&r), Some(kind), "{r:?}");
    assert_closed(s);
}

#[test]
fn frame_announcing_more_than_64_kib_is_refused() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_message(&mut s, &hello()).unwrap();
    let _: Response = read_message(&mut s).unwrap();
    s.write_all(&(64 * 1024 + 1u32).to_be_bytes()).unwrap();
    assert_refused_and_closed(&mut s, ErrorKind::BadRequest);
    assert!(
        d.log_text().contains("exceeds the 65536-byte limit"),
        "{}",
        d.log_text()
    );
    d.assert_serves_new_client();
}

#[test]
fn oversized_first_frame_is_refused() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert_refused_and_closed(&mut s, ErrorKind::BadRequest);
    d.assert_serves_new_client();
}

#[test]
fn truncated_frame_closes_only_that_connection() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_message(&mut s, &hello()).unwrap();
    let _: Response = read_message(&mut s).unwrap();
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(b"{\"type\":\"sta").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed(&mut s);
    assert!(
        d.log_text().contains("middle of a frame"),
        "{}",
        d.log_text()
    );
    d.assert_serves_new_client();
}

#[test]
fn malformed_json_is_refused() {
    let d = TestDaemon::start();
    let mut c = d.client();
    write_frame(c.stream_mut(), b"{not json").unwrap();
    assert_refused_and_closed(c.stream_mut(), ErrorKind::BadRequest);
    assert!(
        d.log_text().contains("malformed request"),
        "{}",
        d.log_text()
    );
    d.assert_serves_new_client();
}

#[test]
fn unknown_request_type_is_unsupported_and_connection_stays_usable() {
    let d = TestDaemon::start();
    let mut c = d.client();
    write_frame(c.stream_mut(), br#"{"type":"launch_missiles"}"#).unwrap();
    let r: Response = read_message(c.stream_mut()).unwrap();
    assert_eq!(
        r,
        Response::Unsupported {
            request: "launch_missiles".into()
        }
    );
    let r = c.call(&Request::Status { user: None }).unwrap();
    assert!(matches!(r, Response::Status(_)), "{r:?}");
    d.assert_serves_new_client();
}

#[test]
fn first_request_must_be_hello() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_message(&mut s, &Request::Status { user: None }).unwrap();
    assert_refused_and_closed(&mut s, ErrorKind::BadRequest);
    d.assert_serves_new_client();
}

#[test]
fn hello_without_a_common_version_is_a_version_mismatch() {
    let d = TestDaemon::start();
    let mut s = d.raw();
    write_message(
        &mut s,
        &Request::Hello {
            proto_min: PROTO_VERSION + 1,
            proto_max: PROTO_VERSION + 5,
            client: "future".into(),
        },
    )
    .unwrap();
    assert_refused_and_closed(&mut s, ErrorKind::VersionMismatch);
    d.assert_serves_new_client();
}

/// A client whose range is empty (minimum above maximum) speaks no version:
/// it must not be answered with one below its own minimum.
#[test]
fn hello_with_an_empty_version_range_is_a_version_mismatch() {
    let d = TestDaemon::start();
    for (proto_min, proto_max) in [(2, 1), (PROTO_VERSION, 0), (0, 0)] {
        let mut s = d.raw();
        write_message(
            &mut s,
            &Request::Hello {
                proto_min,
                proto_max,
                client: "confused".into(),
            },
        )
        .unwrap();
        assert_refused_and_closed(&mut s, ErrorKind::VersionMismatch);
    }
    d.assert_serves_new_client();
}

#[test]
fn answer_outside_a_conversation_is_refused() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let r = c
        .call(&Request::Answer {
            text: "123456".into(),
        })
        .unwrap();
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    d.assert_serves_new_client();
}

#[test]
fn silent_client_times_out_and_others_are_served() {
    let d = TestDaemon::start_with(|c| c.daemon.client_timeout = twofold_config::Seconds(1));
    let mut c = d.client();
    let start = Instant::now();
    let mut buf = [0u8; 1];
    c.stream_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = c.stream_mut().read(&mut buf).unwrap();
    assert_eq!(n, 0, "daemon should close an idle connection");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(d.log_text().contains("timed out"), "{}", d.log_text());
    d.assert_serves_new_client();
}

#[test]
fn begin_with_bad_service_or_items_is_a_bad_request() {
    let d = TestDaemon::start();
    let cases = [
        ("alice", "", None),
        ("alice", "su do", None),
        ("alice", "sudo", Some("host\r\n")),
        ("-alice", "sudo", None),
        ("al/ice", "sudo", None),
        ("", "sudo", None),
    ];
    for (user, service, rhost) in cases {
        let mut c = d.client();
        let r = c
            .call(&Request::Begin {
                user: user.into(),
                service: service.into(),
                rhost: rhost.map(Into::into),
                tty: None,
                ruser: None,
                ssh_auth_info: None,
            })
            .unwrap();
        assert_eq!(
            failed_kind(&r),
            Some(ErrorKind::BadRequest),
            "{user:?} {service:?} {rhost:?}: {r:?}"
        );
    }
    d.assert_serves_new_client();
}

#[test]
fn one_slot_daemon_waits_for_the_slot_then_serves() {
    let d = TestDaemon::start_with(|c| c.daemon.max_connections = 1);
    let first = d.client();
    // The second connection sits in the listen queue: no handshake while the slot is taken.
    let err =
        twofold_proto::Client::connect(d.socket(), Duration::from_millis(400), "t").unwrap_err();
    assert!(
        matches!(err, twofold_proto::ClientError::Timeout(_)),
        "{err:?}"
    );
    drop(first);
    d.assert_serves_new_client();
}
