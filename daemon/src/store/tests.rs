use super::*;
use crate::audit::AuditEvent;
use std::sync::{Arc, Barrier};

struct Db(std::path::PathBuf);

impl Db {
    fn new(tag: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("tf-store-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Db(dir.join("db/twofold.db"))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap().parent().unwrap());
    }
}

const PARAMS: TotpParams = TotpParams {
    algorithm: Algorithm::Sha1,
    digits: 6,
    period: 30,
};

fn confirmed(store: &mut Store, user: &str, id: i64) {
    let new = NewTotp {
        id,
        ciphertext: vec![1, 2, 3],
        nonce: vec![0; 24],
        params: PARAMS,
    };
    assert!(store.start_pending(user, &new, 100).unwrap());
    assert!(store.confirm_totp(id, 10, 100, &[]).unwrap());
}

#[test]
fn steps_are_accepted_once_and_only_forward() {
    let db = Db::new("steps");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 7);
    assert!(!s.consume_step(7, 10, None).unwrap(), "the confirming step");
    assert!(!s.consume_step(7, 9, None).unwrap(), "an older step");
    assert!(s.consume_step(7, 11, Some(200)).unwrap());
    assert!(!s.consume_step(7, 11, Some(200)).unwrap(), "a replay");
    assert!(s.consume_step(7, 13, None).unwrap());
    assert_eq!(s.totp("alice").unwrap().unwrap().last_used, Some(200));
}

#[test]
fn pending_credentials_accept_no_step() {
    let db = Db::new("pending");
    let mut s = Store::open(&db.0).unwrap();
    let new = NewTotp {
        id: 5,
        ciphertext: vec![1],
        nonce: vec![0; 24],
        params: PARAMS,
    };
    assert!(s.start_pending("bob", &new, 1).unwrap());
    assert!(!s.consume_step(5, 99, None).unwrap());
}

#[test]
fn two_connections_racing_for_one_step_exactly_one_wins() {
    let db = Db::new("race");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 9);
    for step in 11..31u64 {
        let barrier = Arc::new(Barrier::new(2));
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let barrier = barrier.clone();
                    let path = db.0.clone();
                    sc.spawn(move || {
                        let conn = Store::open(&path).unwrap();
                        barrier.wait();
                        usize::from(conn.consume_step(9, step, Some(step)).unwrap())
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
    let db = Db::new("backup");
    let mut s = Store::open(&db.0).unwrap();
    let code = |b: u8| NewBackupCode {
        lookup: [b; 32],
        hash: format!("h{b}"),
    };
    assert!(
        !s.replace_backup_codes("alice", &[code(1)], 1).unwrap(),
        "no TOTP yet"
    );
    confirmed(&mut s, "alice", 3);
    assert!(s
        .replace_backup_codes("alice", &[code(1), code(2)], 1)
        .unwrap());
    assert_eq!(s.unused_backup_codes("alice").unwrap(), 2);
    assert!(s.has_unused_backup_code("alice").unwrap());
    let row = s.backup_by_lookup("alice", &[1; 32]).unwrap().unwrap();
    assert!(s.backup_by_lookup("bob", &[1; 32]).unwrap().is_none());
    assert!(s.use_backup(row.id, 5).unwrap());
    assert!(!s.use_backup(row.id, 6).unwrap());
    assert_eq!(
        s.backup_by_lookup("alice", &[1; 32])
            .unwrap()
            .unwrap()
            .used_at,
        Some(5)
    );
    assert!(s.replace_backup_codes("alice", &[code(3)], 7).unwrap());
    assert!(s.backup_by_lookup("alice", &[2; 32]).unwrap().is_none());
    assert_eq!(s.unused_backup_codes("alice").unwrap(), 1);
    let last = s.backup_by_lookup("alice", &[3; 32]).unwrap().unwrap();
    assert!(s.use_backup(last.id, 8).unwrap());
    assert!(
        !s.has_unused_backup_code("alice").unwrap(),
        "only a used code is left"
    );
    assert!(s.remove_factors("alice").unwrap());
    assert!(!s.remove_factors("alice").unwrap());
    assert_eq!(s.unused_backup_codes("alice").unwrap(), 0);
    assert!(!s.has_unused_backup_code("alice").unwrap());
    assert!(s.user_exists("alice").unwrap());
}

#[test]
fn start_pending_refuses_over_a_confirmed_credential() {
    let db = Db::new("conflict");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let new = NewTotp {
        id: 2,
        ciphertext: vec![9],
        nonce: vec![0; 24],
        params: PARAMS,
    };
    assert!(!s.start_pending("alice", &new, 5).unwrap());
    assert_eq!(s.totp("alice").unwrap().unwrap().id, 1);
}

fn limits() -> twofold_config::RateLimitConfig {
    twofold_config::RateLimitConfig::default()
}

fn failure(s: &mut Store, user: &str, source: &str, at: u64) -> Option<Locked> {
    let ev = AuditEvent::new(crate::audit::event::LOGIN_FAILURE, user, "t");
    s.record_failure(user, source, at, &limits(), ev).unwrap().0
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let db = Db::new("window");
    let mut s = Store::open(&db.0).unwrap();
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
    assert_eq!(s.active_lock("alice", "a", 1954).unwrap(), Some(l));
    assert_eq!(s.active_lock("alice", "b", 1954).unwrap(), None);
    assert_eq!(s.active_lock("bob", "a", 1954).unwrap(), None);
    assert_eq!(
        s.active_lock("alice", "a", 1953 + 900).unwrap(),
        None,
        "ended"
    );
}

#[test]
fn a_lock_spends_the_failures_that_made_it() {
    let db = Db::new("spent");
    let mut s = Store::open(&db.0).unwrap();
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
    let db = Db::new("userwide");
    let mut s = Store::open(&db.0).unwrap();
    let mut last = None;
    for i in 0..20u64 {
        let src = format!("s{}", i % 5);
        last = failure(&mut s, "alice", &src, 500 + i);
    }
    let l = last.unwrap();
    assert!(l.user_wide);
    assert_eq!(s.active_lock("alice", "never-seen", 520).unwrap(), Some(l));
    assert_eq!(s.user_lock("alice", 520).unwrap(), Some(l.until));
    let locks = s.locks(520, 10).unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].source, None);
    assert_eq!(locks[0].failures, 20);
}

#[test]
fn audit_rows_chain_and_survive_pruning() {
    let db = Db::new("audit");
    let mut s = Store::open(&db.0).unwrap();
    for t in [10u64, 20, 30, 40] {
        let ev = AuditEvent::new(crate::audit::event::ADMIN, "root", "t");
        s.append_audit(t, &[ev]).unwrap();
    }
    let check = |s: &Store| {
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
    let db = Db::new("group");
    let mut s = Store::open(&db.0).unwrap();
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
                sc.spawn(move || writer.run(move |tx| consume_step(tx, id, 11, Some(5))))
            })
            .collect();
        let shared: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| writer.run(|tx| consume_step(tx, 100, 11, Some(5)))))
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
    let s = Store::open(&db.0).unwrap();
    for id in (1..=16).chain([100]) {
        assert!(
            !s.consume_step(id, 11, None).unwrap(),
            "step of {id} replayed"
        );
    }
}

#[test]
fn a_failing_login_in_a_group_commit_is_rolled_back_alone() {
    let db = Db::new("group-fail");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    confirmed(&mut s, "bob", 2);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let writer = GroupCommit::new(store.clone(), stats.clone());
    let held = store.lock().unwrap();
    let (bad, good) = std::thread::scope(|sc| {
        let bad = sc.spawn(|| {
            writer.run(|tx| {
                assert!(consume_step(tx, 1, 11, None)?);
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })
        });
        let good = sc.spawn(|| writer.run(|tx| consume_step(tx, 2, 11, None)));
        while stats.submitted() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        (bad.join().unwrap(), good.join().unwrap())
    });
    assert!(matches!(bad, Err(StoreError::Sql(_))), "{bad:?}");
    assert!(good.unwrap());
    assert_eq!(stats.batches(), 1);
    let s = store.lock().unwrap();
    assert!(
        s.consume_step(1, 11, None).unwrap(),
        "alice's step was rolled back"
    );
    assert!(
        !s.consume_step(2, 11, None).unwrap(),
        "bob's step was committed"
    );
}

#[test]
fn a_failed_read_snapshot_leaves_no_transaction_open() {
    let db = Db::new("read");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let failed: Result<(), _> = s.read(|s| {
        assert!(s.totp("alice")?.is_some());
        Err(StoreError::Corrupt("stop here".into()))
    });
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    // Reads and writes go on as before: no transaction was left open.
    let (found, n) = s
        .read(|s| Ok((s.totp("alice")?, s.unused_backup_codes("alice")?)))
        .unwrap();
    assert!(found.is_some() && n == 0);
    assert!(s.consume_step(1, 11, None).unwrap());
    confirmed(&mut s, "bob", 2);
}

/// Target 5: the daemon's memory must not grow with SQLite's default
/// 2 000 KiB page cache; the bound is set on every connection it opens.
#[test]
fn page_cache_is_bounded_to_512_kib() {
    let db = Db::new("cache");
    let store = Store::open(&db.0).unwrap();
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
    let db = Db::new("qpsg");
    let store = Store::open(&db.0).unwrap();
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
    let db = Db::new("lone");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let group = GroupCommit::new(store.clone(), stats.clone());
    let here = std::thread::current().id();
    let (ran_in, won) = group
        .run(move |tx| Ok((std::thread::current().id(), consume_step(tx, 1, 11, None)?)))
        .unwrap();
    assert_eq!(ran_in, here);
    assert!(won);
    assert_eq!((stats.batches(), stats.jobs()), (1, 1));
    // Durable: a fresh connection sees the step spent.
    let fresh = Store::open(&db.0).unwrap();
    assert!(!fresh.consume_step(1, 11, None).unwrap());
}

/// A wrong code's writes are committed before its answer (a fresh
/// connection sees them) without waiting for an fsync; the next
/// `sync_deferred` puts them on disk once, and the connection is back to
/// `synchronous=FULL` for every other write.
#[test]
fn deferred_writes_are_committed_at_once_and_synced_later() {
    let db = Db::new("deferred");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let stats = Arc::new(CommitStats::default());
    let group = GroupCommit::new(store.clone(), stats.clone());
    assert!(!group.sync_deferred().unwrap(), "nothing pending yet");
    assert!(group
        .run_deferred(|tx| consume_step(tx, 1, 11, None))
        .unwrap());
    let fresh = Store::open(&db.0).unwrap();
    assert!(!fresh.consume_step(1, 11, None).unwrap(), "not committed");
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
        .run_deferred(|tx| consume_step(tx, 1, 12, None))
        .unwrap();
    group.run(|tx| consume_step(tx, 1, 13, None)).unwrap();
    assert!(!group.sync_deferred().unwrap());
    assert_eq!(stats.deferred_syncs(), 1);
}

/// A lone login's writes run without a savepoint; when they fail, the
/// whole transaction is rolled back (nothing half-written stays) and the
/// login gets its own error.
#[test]
fn a_failing_lone_login_is_rolled_back_whole() {
    let db = Db::new("lone-fail");
    let mut s = Store::open(&db.0).unwrap();
    confirmed(&mut s, "alice", 1);
    let store = Arc::new(std::sync::Mutex::new(s));
    let group = GroupCommit::new(store.clone(), Arc::new(CommitStats::default()));
    let bad = group.run(|tx| {
        assert!(consume_step(tx, 1, 11, None)?);
        tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(())
    });
    assert!(matches!(bad, Err(StoreError::Sql(_))), "{bad:?}");
    let panicked = group.run(|tx| -> Result<(), StoreError> {
        assert!(consume_step(tx, 1, 11, None)?);
        panic!("a bug in a login's writes");
    });
    assert!(
        matches!(panicked, Err(StoreError::Commit(_))),
        "{panicked:?}"
    );
    // Neither spent the step; the store is usable (no transaction left open).
    assert!(group.run(|tx| consume_step(tx, 1, 11, None)).unwrap());
    let fresh = Store::open(&db.0).unwrap();
    assert!(!fresh.consume_step(1, 11, None).unwrap());
}
