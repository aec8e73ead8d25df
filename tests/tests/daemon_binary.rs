//! The `twofoldd` binary: flags, configuration errors, signals.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twofold_proto::{Client, Request, Response};
use twofold_tests::daemon::{bin_path, config_in, open_tempdir};

/// The built `twofoldd` (`cargo build --workspace --bins` first; scripts/test does).
fn twofoldd() -> PathBuf {
    bin_path("twofoldd")
}

#[test]
fn missing_explicit_config_exits_2_naming_the_file() {
    let out = Command::new(twofoldd())
        .args(["--config", "/nonexistent/twofold.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/twofold.toml"), "{err}");
}

#[test]
fn invalid_config_exits_2_naming_line_and_key() {
    let dir = open_tempdir();
    let path = dir.path().join("twofold.toml");
    std::fs::write(&path, "[totp]\ndigits = 6\ndigitz = 7\n").unwrap();
    let out = Command::new(twofoldd())
        .arg(format!("--config={}", path.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3:") && err.contains("digitz"), "{err}");
}

#[test]
fn unknown_flag_exits_2() {
    let out = Command::new(twofoldd())
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn unsafe_master_key_exits_nonzero_with_a_clear_message() {
    use std::os::unix::fs::PermissionsExt;
    let dir = open_tempdir();
    let config = config_in(dir.path());
    let key = &config.daemon.master_key;
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(key, "cd".repeat(32)).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let path = dir.path().join("twofold.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let out = Command::new(twofoldd())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&key.display().to_string()) && err.contains("0640"),
        "{err}"
    );
}

/// Starts `twofoldd` on a fresh configuration in `dir`, stderr piped.
fn spawn_twofoldd(dir: &std::path::Path) -> (std::process::Child, twofold_config::Config) {
    let config = config_in(dir);
    let path = dir.join("twofold.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let child = Command::new(twofoldd())
        .arg("--config")
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, config)
}

/// Sends SIGTERM and waits (at most 10 s) for `child` to exit.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("twofoldd ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_shuts_down_cleanly_with_exit_0() {
    let dir = open_tempdir();
    let (mut child, config) = spawn_twofoldd(dir.path());
    let socket = &config.daemon.socket;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        if let Ok(c) = Client::connect(socket, Duration::from_secs(5), "bin-test") {
            break c;
        }
        assert!(Instant::now() < deadline, "twofoldd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = client.call(&Request::Status { user: None }).unwrap();
    assert!(matches!(r, Response::Status(_)), "{r:?}");
    drop(client);
    let status = terminate(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("listening on"), "{err}");
    assert!(
        err.contains("twofoldd: signal 15 received; shutting down"),
        "{err}"
    );
    assert!(
        err.contains("twofoldd: request type=status peer_uid="),
        "{err}"
    );
    assert!(!socket.exists(), "socket file should be removed on exit");
}

/// Issue 10: the signal thread printed with `eprintln!`, which panics on a
/// broken stderr; the thread died before triggering the shutdown, and every
/// later SIGTERM was ignored (the signals stay blocked in every thread).
#[test]
fn regression_sigterm_still_stops_the_daemon_when_its_stderr_is_broken() {
    use std::io::{BufRead, BufReader};
    let dir = open_tempdir();
    let (mut child, config) = spawn_twofoldd(dir.path());
    // Wait for it to listen, then close the reading end: every later write
    // to its stderr fails with EPIPE.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "twofoldd exited early"
        );
    }
    drop(err);
    // A request makes it log (to the broken stderr) before the signal.
    let mut client = Client::connect(&config.daemon.socket, Duration::from_secs(5), "bin-test")
        .expect("twofoldd is listening");
    let r = client.call(&Request::Status { user: None }).unwrap();
    assert!(matches!(r, Response::Status(_)), "{r:?}");
    drop(client);
    assert_eq!(terminate(&mut child).code(), Some(0));
}

/// While serving, twofoldd's stdout is /dev/null: a library that prints
/// there (ctap-hid-fido2 does) writes into neither the journal nor the
/// pipe of whoever started it.
#[test]
fn while_serving_stdout_points_at_dev_null() {
    let dir = open_tempdir();
    let config = config_in(dir.path());
    let path = dir.path().join("twofold.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut child = Command::new(twofoldd())
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Client::connect(&config.daemon.socket, Duration::from_secs(5), "bin-test").is_err() {
        assert!(Instant::now() < deadline, "twofoldd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let fd1 = std::fs::read_link(format!("/proc/{}/fd/1", child.id())).unwrap();
    assert_eq!(fd1, PathBuf::from("/dev/null"));
    assert_eq!(terminate(&mut child).code(), Some(0));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "", "nothing reached the pipe");
}
