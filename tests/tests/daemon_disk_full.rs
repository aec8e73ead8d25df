//! Issue 10, item 6: what happens when the database's disk is full. A login
//! whose answer depends on a write fails closed (`Unavailable`, never
//! `Success` with its code unspent), the log says why, nothing committed
//! before is lost, and the daemon recovers by itself when space returns.
//! The test (root) re-runs itself in a private mount namespace with a small
//! tmpfs for the database, so the host's disks are never filled.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use twofold_proto::{Request, Response};
use twofold_tests::daemon::{assert_child_ok, last, open_tempdir, TestDaemon};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::{require_programs, require_root};

const DIR_ENV: &str = "TWOFOLD_TEST_DISK_FULL_DIR";

#[test]
fn regression_a_full_disk_fails_logins_closed_and_the_daemon_recovers_when_space_returns() {
    require_root();
    require_programs(&["unshare"]);
    let dir = open_tempdir();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m,mode=0700 tmpfs '{}' && exec '{}' --ignored --exact child_on_a_small_disk --nocapture --test-threads=1",
        mount.display(),
        exe.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env(DIR_ENV, &mount)
        .output()
        .unwrap();
    assert_child_ok(&out);
}

/// Writes zeros into `path` until the filesystem says it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 16 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
}

/// Runs only when re-executed by the test above, inside its namespace.
#[test]
#[ignore = "run by regression_a_full_disk_fails_logins_closed_and_the_daemon_recovers_when_space_returns in a mount namespace"]
fn child_on_a_small_disk() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        panic!("a child entry point: run by the test above, which sets {DIR_ENV}");
    };
    let dir = Path::new(&dir);
    let d = TestDaemon::start_with(|c| c.daemon.database = dir.join("twofold.db"));
    let (e, backup) = d.enroll_totp("alice");
    d.clock.advance(30);
    let code = oathtool_totp(&e, d.now(), 0);
    // The log file may have room left inside its pages; empty it so the
    // next write must grow it.
    d.sqlite3("PRAGMA wal_checkpoint(TRUNCATE);");
    let filler = dir.join("filler");
    fill(&filler);
    let seen = d.login("alice", &[&code]);
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    assert!(
        d.log_text().contains("result=unavailable") && d.log_text().contains("full"),
        "the log says why: {}",
        d.log_text()
    );
    // A backup code is not spent either.
    let seen = d.login("alice", &[backup[0].expose()]);
    assert_eq!(last(&seen), &Response::Unavailable, "{seen:?}");
    // Space returns: the same daemon, the same code, no restart.
    std::fs::remove_file(&filler).unwrap();
    let seen = d.login("alice", &[&code]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    let seen = d.login("alice", &[backup[0].expose()]);
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    // Nothing committed before was lost, and the chain still verifies.
    match d.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => assert_eq!(r.broken, None, "{r:?}"),
        other => panic!("{other:?}"),
    }
    match d.call(&Request::Status {
        user: Some("alice".into()),
    }) {
        Response::Status(s) => assert_eq!((s.factors.len(), s.backup_codes_left), (1, 9)),
        other => panic!("{other:?}"),
    }
    println!("child ok");
}
