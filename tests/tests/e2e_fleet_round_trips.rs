//! The round trips a fleet login costs: a real daemon on a real
//! PostgreSQL, through a proxy on its Unix socket that counts the daemon's
//! turns — what it sends after the server last spoke is one round trip
//! when it runs statements (a simple query `Q`, or a `Sync` after a
//! `Bind`: a prepared statement run; requests sent together, such as a
//! transaction's `BEGIN` with its first statement, are one); a `Sync`
//! without a `Bind` is a statement prepared (once per connection), counted
//! apart.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use twofold_proto::{Request, Response, TotpEnrollment};
use twofold_tests::daemon::{config_in, login_at, open_tempdir, succeeded, DaemonProcess};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::postgres::PgDatabase;

/// What the daemon sent since the last [`Counts::take`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    /// Round trips that ran statements (simple queries and prepared runs).
    trips: u32,
    /// Statements prepared.
    prepares: u32,
}

/// A proxy in front of the server's socket `real`, listening on the
/// socket file of the same name in `dir`.
fn proxy(dir: &std::path::Path, real: std::path::PathBuf) -> Arc<Mutex<Counts>> {
    let name = real.file_name().unwrap().to_owned();
    let listener = UnixListener::bind(dir.join(name)).expect("bind the proxy");
    let counts = Arc::new(Mutex::new(Counts::default()));
    let shared = counts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = UnixStream::connect(&real).expect("the real server");
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            // Set whenever the server has said something since the
            // daemon's last send: the daemon's next send is a new turn.
            let spoke = Arc::new(AtomicBool::new(true));
            let heard = spoke.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 16384];
                loop {
                    let n = match from_server.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    heard.store(true, Ordering::SeqCst);
                    if to_client.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let counts = shared.clone();
            std::thread::spawn(move || forward(client, server, &counts, &spoke));
        }
    });
    counts
}

/// Copies the daemon's messages to the server, counting them.
fn forward(
    mut client: UnixStream,
    mut server: UnixStream,
    counts: &Mutex<Counts>,
    spoke: &AtomicBool,
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
        if server.write_all(&chunk[..n]).is_err() {
            break;
        }
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
            } else {
                match buf[0] {
                    b'Q' => runs = true,
                    b'B' => bound = true,
                    b'S' if bound => {
                        runs = true;
                        bound = false;
                    }
                    b'S' => counts.lock().unwrap().prepares += 1,
                    _ => {}
                }
            }
            buf.drain(..head + len);
        }
        if runs && new_turn {
            counts.lock().unwrap().trips += 1;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn take(counts: &Mutex<Counts>) -> Counts {
    std::mem::take(&mut *counts.lock().unwrap())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The login's round trips, warm (its statements prepared by a login of
/// the same kind before it, which must also have gone `ok`).
fn measured(
    counts: &Mutex<Counts>,
    ok: bool,
    mut login: impl FnMut(usize) -> Vec<Response>,
) -> Counts {
    for i in 0..2 {
        take(counts);
        let seen = login(i);
        assert_eq!(succeeded(&seen), ok, "login {i}: {seen:?}");
        let c = take(counts);
        if i == 1 {
            return c;
        }
    }
    unreachable!()
}

#[test]
fn a_fleet_login_costs_two_round_trips_a_wrong_code_four_and_a_backup_code_six() {
    let db = PgDatabase::new();
    let dir = open_tempdir();
    let proxy_dir = open_tempdir();
    let mut config = config_in(dir.path());
    db.configure(&mut config);
    let real =
        std::path::Path::new(&config.store.host).join(format!(".s.PGSQL.{}", config.store.port));
    let counts = proxy(proxy_dir.path(), real);
    config.store.host = proxy_dir.path().display().to_string();
    config.store.host_name = Some("host-a".into());
    let host = DaemonProcess::start(dir.path(), &config);
    let (pending, backup) = host.enroll_totp("alice");
    let (bob, _) = host.enroll_totp("bob");

    // Two TOTP logins, at the next step and the one after the enrollment's.
    let base = now();
    let totp = measured(&counts, true, |i| {
        let user = ["alice", "bob"][i];
        let p = [&pending, &bob][i];
        login_at(host.socket(), user, &[&oathtool_totp(p, base, 1)])
    });
    // A code none of the window's steps gives.
    let wrong = |p: &TotpEnrollment| {
        let near: Vec<String> = (-1..=1).map(|o| oathtool_totp(p, base, o)).collect();
        (0..10u32)
            .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
            .find(|c| !near.contains(c))
            .unwrap()
    };
    let wrong_code = measured(&counts, false, |i| {
        let (user, p) = [("alice", &pending), ("bob", &bob)][i];
        login_at(host.socket(), user, &[&wrong(p)])
    });
    let backup_code = measured(&counts, true, |i| {
        login_at(host.socket(), "alice", &[&backup[i]])
    });
    eprintln!("round trips: totp {totp:?}, wrong code {wrong_code:?}, backup code {backup_code:?}");
    // The snapshot (1); the call that takes the account's lock, checks
    // the locks, spends the step and appends its audit rows, committed
    // when it ends (1).
    assert!(totp.trips <= 2, "a TOTP login: {totp:?}");
    assert_eq!(totp.prepares, 0, "warm: {totp:?}");
    // The snapshot; BEGIN with the lock sent with the lock check, the
    // failure and its counts (1); the audit rows; COMMIT.
    assert!(wrong_code.trips <= 4, "a wrong code: {wrong_code:?}");
    // The snapshot; the code by its lookup (1); BEGIN with the lock sent
    // with the lock check and the spend; the audit rows (1, the count of
    // codes left is in them); the notice of the code used queued (1);
    // COMMIT.
    assert!(backup_code.trips <= 6, "a backup code: {backup_code:?}");
}

/// Each connection keeps the head of its lane's chain after a commit; two
/// daemons given one host name write the same chains, so each finds the
/// head it kept moved by the other: the statement that appends writes
/// nothing then, and the head is read again. The chain stays whole.
#[test]
fn two_daemons_with_one_host_name_keep_one_whole_chain() {
    let db = PgDatabase::new();
    let keys = open_tempdir();
    let dirs = [open_tempdir(), open_tempdir()];
    let hosts: Vec<DaemonProcess> = dirs
        .iter()
        .map(|dir| {
            let mut config = config_in(dir.path());
            db.configure(&mut config);
            config.store.host_name = Some("twin".into());
            config.daemon.master_key = keys.path().join("master.key");
            DaemonProcess::start(dir.path(), &config)
        })
        .collect();
    let (pending, backup) = hosts[0].enroll_totp("alice");
    let (bob, _) = hosts[1].enroll_totp("bob");
    let base = now();
    // TOTP logins (the rows in the spend's statement), wrong codes and a
    // backup code (the rows in a statement of their own), host by host.
    assert!(succeeded(&login_at(
        hosts[0].socket(),
        "alice",
        &[&oathtool_totp(&pending, base, 1)]
    )));
    assert!(succeeded(&login_at(
        hosts[1].socket(),
        "bob",
        &[&oathtool_totp(&bob, base, 1)]
    )));
    for i in 0..4 {
        let seen = login_at(hosts[i % 2].socket(), "alice", &["not-a-code"]);
        assert!(!succeeded(&seen), "{seen:?}");
    }
    assert!(succeeded(&login_at(
        hosts[1].socket(),
        "alice",
        &[&backup[0]]
    )));
    let rows: u64 = db.psql("SELECT COUNT(*) FROM audit").parse().unwrap();
    let chains =
        db.psql("SELECT string_agg(host || '#' || lane, ',' ORDER BY lane) FROM audit_head");
    assert!(chains.starts_with("twin#0"), "{chains}");
    let seqs = db.psql("SELECT COUNT(*) = MAX(seq) FROM audit WHERE host = 'twin' AND lane = 0");
    assert_eq!(seqs, "t", "lane 0's positions have no gap");
    for h in &hosts {
        match h.call(&Request::AuditVerify) {
            Response::AuditVerified(r) => {
                assert_eq!(r.broken, None);
                assert_eq!(r.rows, rows);
            }
            other => panic!("audit verify: {other:?}"),
        }
    }
}
