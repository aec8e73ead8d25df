use super::commit::GroupCommit;
use super::limits::active_lock;
use super::*;
use crate::audit::AuditEvent;
use crate::store::{AuditFilter, Locked};
use std::sync::{Arc, Barrier};

struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new(tag: &str) -> TempDb {
        let dir = std::env::temp_dir().join(format!("tf-store-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDb(dir.join("db/twofold.db"))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap().parent().unwrap());
    }
}

fn new_totp(id: i64, sealed: Vec<u8>) -> NewCredential {
    NewCredential {
        id,
        method: Method::TOTP,
        label: String::new(),
        sealed,
        nonce: vec![0; 24],
        params: "SHA1:6:30".into(),
        single: true,
    }
}

fn confirmed(store: &mut Db, user: &str, id: i64) {
    assert!(store
        .start_pending(user, &new_totp(id, vec![1, 2, 3]), 100)
        .unwrap());
    let who = confirm_credential(&store.conn, id, Some(10), 100).unwrap();
    assert_eq!(who.as_deref(), Some(user));
}

/// Test-only shortcuts for what the daemon does through `SqliteStore`.
impl Db {
    fn replace_backup_codes(&mut self, user: &str, codes: &[NewCode], now: u64) -> bool {
        let tx = self.conn.transaction().unwrap();
        if !has_confirmed(&tx, user).unwrap() {
            return false;
        }
        insert_codes(&tx, user, &Method::BACKUP_CODE, codes, now).unwrap();
        tx.commit().unwrap();
        true
    }

    fn remove_factors(&mut self, user: &str) -> bool {
        let creds = self
            .conn
            .execute("DELETE FROM credentials WHERE user = ?1", [user])
            .unwrap();
        let codes = self
            .conn
            .execute("DELETE FROM codes WHERE user = ?1", [user])
            .unwrap();
        creds + codes > 0
    }

    fn has_unused_backup_code(&self, user: &str) -> bool {
        self.code_methods(user, 0)
            .unwrap()
            .contains(&Method::BACKUP_CODE)
    }

    fn unused_backup_codes(&self, user: &str) -> u32 {
        self.code_count(user, &Method::BACKUP_CODE).unwrap()
    }
}

#[test]
fn steps_are_accepted_once_and_only_forward() {
    let db = TempDb::new("steps");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 7);
    assert!(
        !s.spend_counter(7, 10, None).unwrap(),
        "the confirming step"
    );
    assert!(!s.spend_counter(7, 9, None).unwrap(), "an older step");
    assert!(s.spend_counter(7, 11, Some(200)).unwrap());
    assert!(!s.spend_counter(7, 11, Some(200)).unwrap(), "a replay");
    assert!(s.spend_counter(7, 13, None).unwrap());
    assert_eq!(s.credentials("alice").unwrap()[0].last_used, Some(200));
}

#[test]
fn pending_credentials_accept_no_step() {
    let db = TempDb::new("pending");
    let mut s = Db::open(&db.0).unwrap();
    let new = new_totp(5, vec![1]);
    assert!(s.start_pending("bob", &new, 1).unwrap());
    assert!(!s.spend_counter(5, 99, None).unwrap());
}

#[test]
fn two_connections_racing_for_one_step_exactly_one_wins() {
    let db = TempDb::new("race");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 9);
    for step in 11..31u64 {
        let barrier = Arc::new(Barrier::new(2));
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let barrier = barrier.clone();
                    let path = db.0.clone();
                    sc.spawn(move || {
                        let conn = Db::open(&path).unwrap();
                        barrier.wait();
                        usize::from(conn.spend_counter(9, step, Some(step)).unwrap())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "step {step}");
    }
}

#[test]
fn backup_codes_are_single_use_and_replaced_whole() {
    let db = TempDb::new("backup");
    let mut s = Db::open(&db.0).unwrap();
    let code = |b: u8| NewCode {
        lookup: [b; 32],
        hash: format!("h{b}"),
        expires_at: None,
    };
    assert!(
        !s.replace_backup_codes("alice", &[code(1)], 1),
        "no TOTP yet"
    );
    confirmed(&mut s, "alice", 3);
    assert!(s.replace_backup_codes("alice", &[code(1), code(2)], 1));
    assert_eq!(s.unused_backup_codes("alice"), 2);
    assert!(s.has_unused_backup_code("alice"));
    let row = s
        .code_by_lookup("alice", &Method::BACKUP_CODE, &[1; 32])
        .unwrap()
        .unwrap();
    assert!(s
        .code_by_lookup("bob", &Method::BACKUP_CODE, &[1; 32])
        .unwrap()
        .is_none());
    assert!(s.use_code(row.id, 5).unwrap());
    assert!(!s.use_code(row.id, 6).unwrap());
    assert_eq!(
        s.code_by_lookup("alice", &Method::BACKUP_CODE, &[1; 32])
            .unwrap()
            .unwrap()
            .used_at,
        Some(5)
    );
    assert!(s.replace_backup_codes("alice", &[code(3)], 7));
    assert!(s
        .code_by_lookup("alice", &Method::BACKUP_CODE, &[2; 32])
        .unwrap()
        .is_none());
    assert_eq!(s.unused_backup_codes("alice"), 1);
    let last = s
        .code_by_lookup("alice", &Method::BACKUP_CODE, &[3; 32])
        .unwrap()
        .unwrap();
    assert!(s.use_code(last.id, 8).unwrap());
    assert!(
        !s.has_unused_backup_code("alice"),
        "only a used code is left"
    );
    assert!(s.remove_factors("alice"));
    assert!(!s.remove_factors("alice"));
    assert_eq!(s.unused_backup_codes("alice"), 0);
    assert!(!s.has_unused_backup_code("alice"));
    assert!(s.user_exists("alice").unwrap());
}

#[test]
fn start_pending_refuses_over_a_confirmed_credential() {
    let db = TempDb::new("conflict");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let new = new_totp(2, vec![9]);
    assert!(!s.start_pending("alice", &new, 5).unwrap());
    assert_eq!(s.credentials("alice").unwrap()[0].id, 1);
}

fn limits() -> twofold_config::RateLimitConfig {
    twofold_config::RateLimitConfig::default()
}

fn failure(s: &mut Db, user: &str, source: &str, at: u64) -> Option<Locked> {
    let ev = AuditEvent::new(crate::audit::event::LOGIN_FAILURE, user, "t");
    s.record_failure(user, source, at, &limits(), ev).unwrap().0
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let db = TempDb::new("window");
    let mut s = Db::open(&db.0).unwrap();
    for i in 0..4 {
        assert_eq!(failure(&mut s, "alice", "a", 1000 + i), None);
    }
    // Exactly fifteen minutes after the first, it no longer counts: 4 still.
    assert_eq!(failure(&mut s, "alice", "a", 1900), None);
    // Later the old ones have all gone: four more are needed.
    for t in 1950..1953 {
        assert_eq!(failure(&mut s, "alice", "a", t), None, "{t}");
    }
    let l = failure(&mut s, "alice", "a", 1953).unwrap();
    assert_eq!(l.until, 1953 + 900);
    assert!(!l.user_wide);
    assert_eq!(active_lock(&s.conn, "alice", "a", 1954).unwrap(), Some(l));
    assert_eq!(active_lock(&s.conn, "alice", "b", 1954).unwrap(), None);
    assert_eq!(active_lock(&s.conn, "bob", "a", 1954).unwrap(), None);
    assert_eq!(
        active_lock(&s.conn, "alice", "a", 1953 + 900).unwrap(),
        None,
        "ended"
    );
}

#[test]
fn a_lock_spends_the_failures_that_made_it() {
    let db = TempDb::new("spent");
    let mut s = Db::open(&db.0).unwrap();
    for i in 0..5 {
        failure(&mut s, "alice", "a", 100 + i);
    }
    // After the lock ends, one more failure does not lock again at once.
    assert_eq!(failure(&mut s, "alice", "a", 104 + 901), None);
    // An admin unlock clears locks and counts, and is audited.
    for i in 0..3 {
        assert_eq!(failure(&mut s, "alice", "a", 1100 + i), None);
    }
    let ev = AuditEvent::new(crate::audit::event::UNLOCK, "alice", "t");
    let (n, recs) = s.unlock("alice", 1104, ev).unwrap();
    assert_eq!(n, 0, "not locked");
    assert!(recs[0].detail.contains("failures=9"), "{:?}", recs[0]);
    // Counting starts over.
    for i in 0..4 {
        assert_eq!(failure(&mut s, "alice", "a", 1105 + i), None);
    }
}

#[test]
fn the_user_wide_count_spans_sources() {
    let db = TempDb::new("userwide");
    let mut s = Db::open(&db.0).unwrap();
    let mut last = None;
    for i in 0..20u64 {
        let src = format!("s{}", i % 5);
        last = failure(&mut s, "alice", &src, 500 + i);
    }
    let l = last.unwrap();
    assert!(l.user_wide);
    assert_eq!(
        active_lock(&s.conn, "alice", "never-seen", 520).unwrap(),
        Some(l)
    );
    assert_eq!(s.user_lock("alice", 520).unwrap(), Some(l.until));
    let locks = s.locks(520, 0, 10).unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].1.source, None);
    assert_eq!(locks[0].1.failures, 20);
}

#[test]
fn audit_rows_chain_and_survive_pruning() {
    let db = TempDb::new("audit");
    let mut s = Db::open(&db.0).unwrap();
    for t in [10u64, 20, 30, 40] {
        let ev = AuditEvent::new(crate::audit::event::ADMIN, "root", "t");
        s.append_audit(t, &[ev]).unwrap();
    }
    let check = |s: &Db| {
        let (id, hash) = s.audit_anchor().unwrap();
        let mut c = crate::audit::ChainCheck::new(id, hash);
        s.audit_chain(|r| c.push(r)).unwrap();
        c.finish(s.audit_head().unwrap());
        c
    };
    let c = check(&s);
    assert_eq!((c.rows, c.broken.clone()), (4, None));
    let ev = AuditEvent::new(crate::audit::event::AUDIT_PRUNED, "", "t");
    let (n, recs) = s.prune_audit(25, 50, ev).unwrap();
    assert_eq!(n, 2);
    assert_eq!(recs[0].id, 5);
    let c = check(&s);
    assert_eq!((c.rows, c.first_id, c.broken.clone()), (3, Some(3), None));
    let f = AuditFilter {
        event: Some("audit_pruned".into()),
        ..AuditFilter::default()
    };
    assert_eq!(s.audit_rows(&f, 10).unwrap().len(), 1);
}

#[test]
fn many_concurrent_logins_share_one_group_commit_and_one_code_opens_one() {
    let db = TempDb::new("group");
    let mut s = Db::open(&db.0).unwrap();
    for id in 1..=16 {
        confirmed(&mut s, &format!("u{id}"), id);
    }
    confirmed(&mut s, "shared", 100);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let writer = GroupCommit::new(store.clone(), stats.clone());
    // Holding the store keeps the group's leader waiting, so every login below is
    // queued when it starts: they must all land in one transaction.
    let held = store.lock().unwrap();
    let (own, shared) = std::thread::scope(|sc| {
        let own: Vec<_> = (1..=16)
            .map(|id| {
                let writer = &writer;
                sc.spawn(move || writer.run(move |tx| spend_counter(tx, id, 11, Some(5))))
            })
            .collect();
        let shared: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| writer.run(|tx| spend_counter(tx, 100, 11, Some(5)))))
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stats.submitted() < 24 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        drop(held);
        let join = |hs: Vec<std::thread::ScopedJoinHandle<'_, Result<bool, StoreError>>>| {
            hs.into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect::<Vec<bool>>()
        };
        (join(own), join(shared))
    });
    assert!(own.iter().all(|&won| won), "{own:?}");
    assert_eq!(shared.iter().filter(|&&won| won).count(), 1, "{shared:?}");
    assert_eq!((stats.batches(), stats.jobs()), (1, 24));
    drop(writer);
    // Durable and still guarded: a fresh connection sees every step spent.
    let s = Db::open(&db.0).unwrap();
    for id in (1..=16).chain([100]) {
        assert!(
            !s.spend_counter(id, 11, None).unwrap(),
            "step of {id} replayed"
        );
    }
}

#[test]
fn a_failing_login_in_a_group_commit_is_rolled_back_alone() {
    let db = TempDb::new("group-fail");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    confirmed(&mut s, "bob", 2);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let writer = GroupCommit::new(store.clone(), stats.clone());
    let held = store.lock().unwrap();
    let (bad, good) = std::thread::scope(|sc| {
        let bad = sc.spawn(|| {
            writer.run(|tx| {
                assert!(spend_counter(tx, 1, 11, None)?);
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })
        });
        let good = sc.spawn(|| writer.run(|tx| spend_counter(tx, 2, 11, None)));
        while stats.submitted() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        (bad.join().unwrap(), good.join().unwrap())
    });
    assert!(matches!(bad, Err(StoreError::Database(_))), "{bad:?}");
    assert!(good.unwrap());
    assert_eq!(stats.batches(), 1);
    let s = store.lock().unwrap();
    assert!(
        s.spend_counter(1, 11, None).unwrap(),
        "alice's step was rolled back"
    );
    assert!(
        !s.spend_counter(2, 11, None).unwrap(),
        "bob's step was committed"
    );
}

#[test]
fn a_failed_read_snapshot_leaves_no_transaction_open() {
    let db = TempDb::new("read");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let failed: Result<(), _> = s.read(|s| {
        assert!(!s.credentials("alice")?.is_empty());
        Err(StoreError::Corrupt("stop here".into()))
    });
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    // Reads and writes go on as before: no transaction was left open.
    let (found, n) = s
        .read(|s| {
            Ok((
                s.credentials("alice")?,
                s.code_count("alice", &Method::BACKUP_CODE)?,
            ))
        })
        .unwrap();
    assert!(found.len() == 1 && n == 0);
    assert!(s.spend_counter(1, 11, None).unwrap());
    confirmed(&mut s, "bob", 2);
}

/// Target 5: the daemon's memory must not grow with SQLite's default
/// 2 000 KiB page cache; the bound is set on every connection it opens.
#[test]
fn page_cache_is_bounded_to_512_kib() {
    let db = TempDb::new("cache");
    let store = Db::open(&db.0).unwrap();
    let kib: i64 = store
        .conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kib, -512);
}

/// Cached statements must not be re-prepared whenever a new value is bound
/// (SQLite built with STAT4 does that unless the query planner stability
/// guarantee is on): it cost ~15 % of the daemon's CPU on a wrong code.
#[test]
fn query_plans_are_stable_so_cached_statements_are_not_reprepared() {
    let db = TempDb::new("qpsg");
    let store = Db::open(&db.0).unwrap();
    let on = store
        .conn
        .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
        .unwrap();
    assert!(on);
}

/// With nobody else committing, a login's writes run in its own thread:
/// no hand-off (two wake-ups) to a writer thread and back.
#[test]
fn a_lone_login_commits_in_its_own_thread() {
    let db = TempDb::new("lone");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let group = GroupCommit::new(store.clone(), stats.clone());
    let here = std::thread::current().id();
    let (ran_in, won) = group
        .run(move |tx| Ok((std::thread::current().id(), spend_counter(tx, 1, 11, None)?)))
        .unwrap();
    assert_eq!(ran_in, here);
    assert!(won);
    assert_eq!((stats.batches(), stats.jobs()), (1, 1));
    // Durable: a fresh connection sees the step spent.
    let fresh = Db::open(&db.0).unwrap();
    assert!(!fresh.spend_counter(1, 11, None).unwrap());
}

/// A wrong code's writes are committed before its answer (a fresh
/// connection sees them) without waiting for an fsync; the next
/// `sync_deferred` puts them on disk once, and the connection is back to
/// `synchronous=FULL` for every other write.
#[test]
fn deferred_writes_are_committed_at_once_and_synced_later() {
    let db = TempDb::new("deferred");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let group = GroupCommit::new(store.clone(), stats.clone());
    assert!(!group.sync_deferred().unwrap(), "nothing pending yet");
    assert!(group
        .run_deferred(|tx| spend_counter(tx, 1, 11, None))
        .unwrap());
    let fresh = Db::open(&db.0).unwrap();
    assert!(!fresh.spend_counter(1, 11, None).unwrap(), "not committed");
    let sync: i64 = store
        .lock()
        .unwrap()
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL again after the deferred group");
    assert!(group.sync_deferred().unwrap());
    assert!(!group.sync_deferred().unwrap(), "synced once");
    assert_eq!(stats.deferred_syncs(), 1);
    // A durable group's fsync covers the deferred writes before it.
    group
        .run_deferred(|tx| spend_counter(tx, 1, 12, None))
        .unwrap();
    group.run(|tx| spend_counter(tx, 1, 13, None)).unwrap();
    assert!(!group.sync_deferred().unwrap());
    assert_eq!(stats.deferred_syncs(), 1);
}

/// A lone login's writes run without a savepoint; when they fail, the
/// whole transaction is rolled back (nothing half-written stays) and the
/// login gets its own error.
#[test]
fn a_failing_lone_login_is_rolled_back_whole() {
    let db = TempDb::new("lone-fail");
    let mut s = Db::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let group = GroupCommit::new(store.clone(), Arc::new(CommitStats::default()));
    let bad = group.run(|tx| {
        assert!(spend_counter(tx, 1, 11, None)?);
        tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(())
    });
    assert!(matches!(bad, Err(StoreError::Database(_))), "{bad:?}");
    let panicked = group.run(|tx| -> Result<(), StoreError> {
        assert!(spend_counter(tx, 1, 11, None)?);
        panic!("a bug in a login's writes");
    });
    assert!(
        matches!(panicked, Err(StoreError::Commit(_))),
        "{panicked:?}"
    );
    // Neither spent the step; the store is usable (no transaction left open).
    assert!(group.run(|tx| spend_counter(tx, 1, 11, None)).unwrap());
    let fresh = Db::open(&db.0).unwrap();
    assert!(!fresh.spend_counter(1, 11, None).unwrap());
}

/// An audit query stops at its time budget with advice instead of
/// running on (it holds the reader connection meanwhile).
#[test]
fn a_query_past_its_budget_is_interrupted_with_advice() {
    let db = TempDb::new("budget");
    drop(Db::open(&db.0).unwrap());
    let mut r = Db::open_reader(&db.0).unwrap();
    let slow = r.with_budget(std::time::Duration::from_millis(50), |r| {
        Ok(r.conn.query_row(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)
             SELECT COUNT(*) FROM n",
            [],
            |row| row.get::<_, i64>(0),
        )?)
    });
    match slow {
        Err(StoreError::TooLong(m)) => assert!(m.contains("narrow it"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The handler is gone afterwards: the next query runs to its end.
    let n: i64 = r
        .with_budget(std::time::Duration::from_secs(10), |r| {
            Ok(r.conn
                .query_row("SELECT COUNT(*) FROM audit", [], |row| row.get(0))?)
        })
        .unwrap();
    assert_eq!(n, 0);
    // It cannot write.
    assert!(r.conn.execute("DELETE FROM failures", []).is_err());
}

fn email(id: i64, address: &str, single: bool) -> NewCredential {
    NewCredential {
        id,
        method: Method::EMAIL,
        label: String::new(),
        sealed: Vec::new(),
        nonce: Vec::new(),
        params: address.into(),
        single,
    }
}

#[test]
fn confirm_replacing_swaps_one_users_address_and_queues_both_notices() {
    use crate::store::{Change, Sends, Store};
    let t = TempDb::new("replace");
    let s = SqliteStore::open(&t.0, Arc::new(CommitStats::default())).unwrap();
    let ev = || {
        vec![AuditEvent::new(
            crate::audit::event::DESTINATION_CHANGED,
            "alice",
            "t",
        )]
    };
    assert!(s
        .start_pending("alice", email(1, "old@a.org", true), 100)
        .unwrap());
    let c = s.confirm(1, None, None, None, 100, Vec::new()).unwrap();
    assert!(matches!(c, Change::Done(_)));
    assert!(s
        .start_pending("alice", email(2, "new@b.org", false), 110)
        .unwrap());
    assert!(s
        .start_pending("bob", email(3, "bob@c.org", true), 110)
        .unwrap());
    // Another user's pending credential, or a pending "old" one: nothing.
    assert!(matches!(
        s.confirm_replacing(3, 1, None, 120, ev()).unwrap(),
        Change::Nothing
    ));
    assert!(matches!(
        s.confirm_replacing(1, 2, None, 120, ev()).unwrap(),
        Change::Nothing
    ));
    assert!(matches!(
        s.confirm_replacing(2, 1, None, 120, ev()).unwrap(),
        Change::Done(_)
    ));
    let creds = s.credentials("alice").unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].params, "new@b.org");
    assert!(creds[0].confirmed_at.is_some());
    let due = s.notices_due(130, 10).unwrap();
    let mut to: Vec<&str> = due.iter().map(|n| n.address.as_str()).collect();
    to.sort();
    assert_eq!(to, ["new@b.org", "old@a.org"]);
    // Done once: a second time finds nothing pending.
    assert!(matches!(
        s.confirm_replacing(2, 1, None, 140, ev()).unwrap(),
        Change::Nothing
    ));
}
