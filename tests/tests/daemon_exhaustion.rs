//! Issue 10, item 2 ("worker exhaustion by any local user"): a local user
//! opened `max_connections` connections and left them idle, or dribbled a
//! byte every few seconds so that no per-read timeout ever fired, and held
//! every worker: each login was then refused (failmode=secure) or let in
//! without a second factor (failmode=safe).
//!
//! The attack runs here as it was reported, from a copy of this binary
//! running as `nobody`, while the test (root, as sshd and sudo are) runs
//! logins and times them. This file holds that one test, so no other test
//! of its binary competes with the timed logins.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_proto::{ErrorKind, Response};
use twofold_tests::daemon::{last, Enrolled, TestDaemon, T0};
use twofold_tests::peers::{hear, refusal_of, AsNobody, NOBODY};
use twofold_tests::require_root;

const SOCKET_ENV: &str = "TWOFOLD_TEST_EXHAUST_SOCKET";
/// A small daemon, so the attack is small too.
const MAX_CONNECTIONS: u32 = 8;
/// The attacker opens this many times `MAX_CONNECTIONS`.
const TIMES: usize = 3;
/// The default `max_connections_per_user`.
const PER_USER: usize = 4;
/// Logins timed before the attack, and during it.
const LOGINS: usize = 10;
/// The pause between timed logins, so that those during the attack spread
/// over several of its rounds (dribbled bytes, refused reconnects).
const PAUSE: Duration = Duration::from_millis(150);
/// How often a dribbling connection gets its next byte.
const DRIBBLE: Duration = Duration::from_millis(500);
/// A wait long enough for a refusal (sent right after accept) to arrive;
/// an admitted connection gets nothing before its `Hello`.
const REFUSAL_WAIT: Duration = Duration::from_millis(300);

/// One whole login of `alice` as root, on the next time step (a code is
/// accepted once); returns how long the daemon took.
fn timed_login(d: &TestDaemon, alice: &Enrolled, step: &mut u64) -> Duration {
    *step += 1;
    d.clock.set(T0 + 30 * *step);
    // oathtool runs before the clock starts: only the login is timed.
    let code = d.code(&alice.secret, 0);
    let start = Instant::now();
    let seen = d.login("alice", &[&code]);
    let took = start.elapsed();
    assert_eq!(last(&seen), &Response::Success, "{seen:?}");
    std::thread::sleep(PAUSE);
    took
}

/// Whether the daemon still holds `s` open (it has sent nothing on it).
fn is_open(mut s: &UnixStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("read timeout");
    match s.read(&mut [0u8; 1]) {
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        // Closed, or answered: either way no longer held waiting.
        Ok(0) | Ok(1..) => false,
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn field(line: &str, key: &str) -> usize {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn regression_hostile_connections_from_one_user_do_not_starve_root_logins() {
    // The attack runs as uid 65534.
    require_root();
    let d = TestDaemon::start_with(|c| c.daemon.max_connections = MAX_CONNECTIONS);
    assert_eq!(
        d.config().daemon.max_connections_per_user as usize,
        PER_USER
    );
    let alice = d.enroll("alice");
    let mut step = 0;
    timed_login(&d, &alice, &mut step);
    let before: Vec<Duration> = (0..LOGINS)
        .map(|_| timed_login(&d, &alice, &mut step))
        .collect();

    let mut attacker = AsNobody::start("attacker", &[(SOCKET_ENV, d.socket().as_os_str())]);
    // Printed once every connection is open and a round of dribbling is done.
    let ready = attacker.expect_line("attack ready");
    let during: Vec<Duration> = (0..LOGINS)
        .map(|_| timed_login(&d, &alice, &mut step))
        .collect();
    attacker.say("stop");
    let report = attacker.expect_line("attack report");
    attacker.finish();

    let (before_ms, during_ms) = (median(before.clone()), median(during.clone()));
    eprintln!(
        "login latency, median of {LOGINS}: before {before_ms:?}, during the attack {during_ms:?}"
    );
    eprintln!("before: {before:?}\nduring: {during:?}\nattack: {ready} / {report}");
    // Within twice the latency before the attack, plus 20 ms: on a small
    // (2-core) machine the attacker's process, its dribbling and its
    // reconnects, refused by the daemon, share the CPUs with the timed
    // logins, and a single scheduling delay is a few milliseconds; a login
    // starved of a worker would instead wait for a connection to end
    // (`client_timeout`, 5 minutes; the harness gives up after 10 s).
    assert!(
        during_ms <= before_ms * 2 + Duration::from_millis(20),
        "logins slowed by the attack: median {before_ms:?} before, {during_ms:?} during"
    );
    // The attacker got exactly its share; everything else was refused.
    let total = TIMES * MAX_CONNECTIONS as usize;
    assert_eq!(
        field(&ready, "held_idle") + field(&ready, "held_dribbling"),
        PER_USER,
        "{ready}"
    );
    assert!(field(&ready, "held_dribbling") > 0, "{ready}");
    assert_eq!(field(&ready, "refused"), total - PER_USER, "{ready}");
    assert!(field(&report, "rounds") >= 2, "{report}");
    assert!(field(&report, "refused_again") > 0, "{report}");
    assert_eq!(field(&report, "admitted_again"), 0, "{report}");
    assert_eq!(field(&report, "held_open"), PER_USER, "{report}");
    // A flood of refusals is one log line at once and then one per window,
    // not one per connection.
    let log = d.log_text();
    let refused_lines = log
        .lines()
        .filter(|l| l.starts_with("twofoldd: refused"))
        .count();
    assert!(
        (1..=3).contains(&refused_lines),
        "{refused_lines} refusal lines:\n{log}"
    );
    assert!(
        log.contains("twofoldd: refused peer_uid=65534 "),
        "the first refusal names the uid:\n{log}"
    );
}

/// The attacker, run as `nobody` by the test above: opens `TIMES` ×
/// `MAX_CONNECTIONS` connections, every other one idle and the others
/// dribbling a frame that never completes (a header announcing 60 000
/// bytes, then the body, one byte per `DRIBBLE`), holds every connection
/// the daemon admits and keeps reconnecting the refused ones, until told
/// to stop.
#[test]
#[ignore = "run by regression_hostile_connections_from_one_user_do_not_starve_root_logins as uid 65534"]
fn attacker() {
    let Ok(socket) = std::env::var(SOCKET_ENV) else {
        panic!("a child entry point: run by the test above, which sets {SOCKET_ENV}");
    };
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    let connect = || UnixStream::connect(&socket).expect("connect");
    let is_refusal = |r: &Response| {
        matches!(r, Response::Failed { kind: ErrorKind::PermissionDenied, message }
            if message.contains("too many connections") && message.contains("uid 65534"))
    };
    let total = TIMES * MAX_CONNECTIONS as usize;
    let (mut idle, mut dribbling, mut refused) = (Vec::new(), Vec::new(), 0);
    for i in 0..total {
        let s = connect();
        match refusal_of(&s, REFUSAL_WAIT) {
            Some(r) => {
                assert!(is_refusal(&r), "connection {i}: {r:?}");
                refused += 1;
            }
            None if i % 2 == 0 => idle.push(s),
            None => dribbling.push(s),
        }
    }
    let mut frame = 60_000u32.to_be_bytes().to_vec();
    frame.resize(4 + 60_000, b' ');
    let mut next = 0;
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    std::thread::spawn(move || {
        hear();
        stopper.store(true, Ordering::SeqCst);
    });
    let (mut refused_again, mut admitted_again, mut rounds) = (0, 0, 0);
    while !stop.load(Ordering::SeqCst) {
        for s in &mut dribbling {
            s.write_all(&frame[next..next + 1])
                .expect("a dribbling connection was cut early");
        }
        next += 1;
        // Every refused slot tries again.
        for _ in 0..refused {
            match refusal_of(&connect(), REFUSAL_WAIT) {
                Some(r) if is_refusal(&r) => refused_again += 1,
                Some(r) => panic!("{r:?}"),
                None => admitted_again += 1,
            }
        }
        rounds += 1;
        if rounds == 1 {
            println!(
                "attack ready held_idle={} held_dribbling={} refused={refused}",
                idle.len(),
                dribbling.len()
            );
        }
        std::thread::sleep(DRIBBLE);
    }
    // Nothing the daemon admitted was closed during the attack.
    let held_open = idle.iter().chain(&dribbling).filter(|s| is_open(s)).count();
    println!(
        "attack report rounds={rounds} refused_again={refused_again} admitted_again={admitted_again} held_open={held_open}"
    );
    println!("child ok");
}
