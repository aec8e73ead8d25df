//! `bind`: directory creation, stale sockets, and paths it must not touch.

use std::os::unix::fs::PermissionsExt;
use twofold_tests::daemon::open_tempdir;

#[test]
fn creates_parent_and_sets_mode_0666() {
    let dir = open_tempdir();
    let path = dir.path().join("a/b/twofold.sock");
    let _l = twofold_daemon::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
}

#[test]
fn stale_socket_is_replaced_but_a_live_one_is_not() {
    let dir = open_tempdir();
    let path = dir.path().join("s.sock");
    let live = twofold_daemon::bind(&path).unwrap();
    let err = twofold_daemon::bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    drop(live);
    // The file is still there, but nobody listens: it is stale.
    assert!(path.exists());
    let _again = twofold_daemon::bind(&path).unwrap();
}

#[test]
fn regular_file_at_the_socket_path_is_left_alone() {
    let dir = open_tempdir();
    let path = dir.path().join("s.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = twofold_daemon::bind(&path).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}
