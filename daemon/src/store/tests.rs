use super::*;
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
    assert!(s.remove_factors("alice").unwrap());
    assert!(!s.remove_factors("alice").unwrap());
    assert_eq!(s.unused_backup_codes("alice").unwrap(), 0);
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
