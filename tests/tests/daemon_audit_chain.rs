//! The audit chain's row hashing against a checked-in golden value.
//!
//! `twofold audit verify` recomputes every stored row's hash. If the hashing
//! changed (the domain tag, the order, width or length prefixes of fields,
//! the start of the chain), a fresh database would still verify, since the
//! daemon writes and checks with the same code, but every database written
//! before the change would be reported as tampered with. This test pins the
//! hashing to a value computed once.
//!
//! The rows come from a real daemon (ManualClock, temp dir), written through
//! real requests and logins. The first row of every trail is
//! `config_loaded`, whose detail holds the SHA-256 of the configuration,
//! temp paths included, so it differs on every run and so does every hash
//! chained after it. The golden value is therefore taken over the rows
//! after it, which are fully fixed (times, users, services, hosts,
//! terminals, methods, actor, details): chained with the daemon's public
//! `row_hash` from the zero hash that starts every trail, as if they were a
//! trail of their own. Tying that to the database: the stored rows must be
//! exactly those, the first stored row must start from the zero hash, the
//! stored head must be those rows chained from the stored first row, and
//! the daemon's verifier must accept the whole trail.
//!
//! When `ROWS` has to change because the daemon now writes other rows
//! (a new detail, another event), recompute `GOLDEN` with it. When only
//! `GOLDEN` fails, the hashing changed: existing databases no longer verify.

use rusqlite::{Connection, OptionalExtension};
use twofold_daemon::audit::row_hash;
use twofold_proto::{AuditRecord, AuditReport, Request, Response, Secret};
use twofold_tests::daemon::{last, TestDaemon, T0};
use twofold_tests::otp::{oathtool_totp, wrong_code};
use twofold_tests::require_root;

/// A `ruser` whose detail value needs escaping: an apostrophe, a space,
/// double quotes, `=`, a backslash and a non-ASCII letter.
const RUSER: &str = r#"o'brien "ob" = café\x"#;

/// A row as written out here: (id, at, event, user, service, rhost, tty,
/// method, actor, detail).
type Row = (
    u64,
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The rows after `config_loaded`.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    (2, T0 + 10, "enroll", "alice", "", "", "", "totp", "root(0)", "via=cli"),
    (3, T0 + 100, "login_failure", "alice", "sshd", "198.51.100.7", "pts/3", "", "root(0)",
     r#"ruser="o\'brien \"ob\" = café\\x" reason=wrong_code try=1 source_failures=1"#),
    (4, T0 + 100, "login_success", "alice", "sshd", "198.51.100.7", "pts/3", "totp", "root(0)",
     r#"ruser="o\'brien \"ob\" = café\\x""#),
    (5, T0 + 200, "login_success", "alice", "sudo", "", "pts/0", "backup_code", "root(0)",
     "ruser=root"),
    (6, T0 + 200, "backup_code_used", "alice", "sudo", "", "pts/0", "backup_code", "root(0)",
     "ruser=root left=9"),
    (7, T0 + 300, "admin", "jöhn doe", "", "", "", "", "root(0)",
     "action=grace_extend deadline=1800003900"),
    (8, T0 + 400, "unlock", "alice", "", "", "", "", "root(0)", "locks=0 failures=0"),
];

/// The last hash of `ROWS` chained from the zero hash: SHA-256 over
/// `twofold/audit/v1`, the previous hash, id and time as big-endian u64,
/// then each text field as its byte length (big-endian u64) and bytes.
/// Computed from that description by a separate script (Python's
/// `hashlib`), not by the code under test.
const GOLDEN: &str = "fd1e5a553b069bce28122f120cb01f28208d461951ab82d5eedfa698dff87651";

/// Writes the fixed history: an enrollment, a wrong then a right code from
/// a remote host, a backup code, a grace extension for a user whose name is
/// not ASCII, an unlock.
fn write_history(d: &TestDaemon) {
    d.clock.set(T0 + 10);
    let (totp, codes) = d.enroll_totp("alice");

    d.clock.set(T0 + 100);
    let good = oathtool_totp(&totp, d.now(), 0);
    let mut c = d.client();
    let begin = c
        .call(&Request::Begin {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("198.51.100.7".into()),
            tty: Some("pts/3".into()),
            ruser: Some(RUSER.into()),
            ssh_auth_info: None,
        })
        .unwrap();
    assert!(matches!(begin, Response::Prompt { .. }), "{begin:?}");
    for (answer, want_error) in [(wrong_code(&good), true), (good.as_str(), false)] {
        let r = c
            .call(&Request::Answer {
                text: Secret::from(answer),
            })
            .unwrap();
        assert_eq!(matches!(r, Response::Error { .. }), want_error, "{r:?}");
        if want_error {
            let prompt = c.call(&Request::Ack).unwrap();
            assert!(matches!(prompt, Response::Prompt { .. }), "{prompt:?}");
        } else {
            assert_eq!(r, Response::Success);
        }
    }

    d.clock.set(T0 + 200);
    assert_eq!(
        last(&d.login("alice", &[codes[0].expose()])),
        &Response::Success
    );

    d.clock.set(T0 + 300);
    let r = d.call(&Request::AdminGrace {
        user: "jöhn doe".into(),
        extend: Some(3600),
        reset: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");

    d.clock.set(T0 + 400);
    let r = d.call(&Request::AdminUnlock {
        user: "alice".into(),
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
}

/// A stored row: the record, its `prev_hash` and `hash`.
type Stored = (AuditRecord, Vec<u8>, Vec<u8>);

fn stored_rows(db: &Connection) -> Vec<Stored> {
    let mut stmt = db
        .prepare(
            "SELECT id, at, event, user, service, rhost, tty, method, actor, detail,
                    prev_hash, hash FROM audit ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            AuditRecord {
                id: unsigned(r.get(0)?),
                at: unsigned(r.get(1)?),
                event: r.get(2)?,
                user: r.get(3)?,
                service: r.get(4)?,
                rhost: r.get(5)?,
                tty: r.get(6)?,
                method: r.get(7)?,
                actor: r.get(8)?,
                detail: r.get(9)?,
            },
            r.get(10)?,
            r.get(11)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// SQLite stores integers signed; ids and times are never negative.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).expect("a negative id or time")
}

fn expected_rows() -> Vec<AuditRecord> {
    ROWS.iter()
        .map(
            |&(id, at, event, user, service, rhost, tty, method, actor, detail)| AuditRecord {
                id,
                at,
                event: event.into(),
                user: user.into(),
                service: service.into(),
                rhost: rhost.into(),
                tty: tty.into(),
                method: method.into(),
                actor: actor.into(),
                detail: detail.into(),
            },
        )
        .collect()
}

/// `rows` chained with the daemon's `row_hash` from `start`: the last hash.
fn chain(start: &[u8], rows: &[AuditRecord]) -> Vec<u8> {
    rows.iter()
        .fold(start.to_vec(), |prev, r| row_hash(&prev, r).to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn row_hashing_still_verifies_databases_written_before() {
    // The fixed rows name root(0) as the actor.
    require_root();
    let d = TestDaemon::start();
    write_history(&d);

    let db = Connection::open(d.database()).unwrap();
    let stored = stored_rows(&db);
    let expected = expected_rows();
    let (first, first_prev, first_hash) = &stored[0];
    assert_eq!(
        (first.id, first.event.as_str()),
        (1, "config_loaded"),
        "{first:?}"
    );
    assert_eq!(first_prev, &[0u8; 32], "a trail starts from the zero hash");
    let rest: Vec<AuditRecord> = stored[1..].iter().map(|(r, _, _)| r.clone()).collect();
    assert_eq!(rest, expected, "the daemon now writes other rows");

    assert_eq!(
        hex(&chain(&[0; 32], &expected)),
        GOLDEN,
        "row hashing changed: databases written before no longer verify"
    );

    let head: Option<(u64, Vec<u8>)> = db
        .query_row(
            "SELECT last_id, hash FROM audit_head WHERE one = 1",
            [],
            |r| Ok((unsigned(r.get(0)?), r.get(1)?)),
        )
        .optional()
        .unwrap();
    assert_eq!(
        head,
        Some((expected.last().unwrap().id, chain(first_hash, &expected))),
        "the stored head is the fixed rows chained from the stored first row"
    );

    let report = match d.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        report,
        AuditReport {
            rows: stored.len() as u64,
            first_id: Some(1),
            last_id: Some(stored.len() as u64),
            pruned_through: 0,
            broken: None,
        }
    );
}
