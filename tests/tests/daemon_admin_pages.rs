//! Issue 10, item 8: `admin list` and `admin locks` answered in one frame,
//! so many accounts made a reply over the 64 KiB frame (the connection
//! broke), and locks were cut at 500 without a word. Now both come in
//! pages the CLI follows; the old whole-list requests refuse rather than
//! cut.

use twofold_proto::{ErrorKind, Request, Response};
use twofold_tests::daemon::{failed_kind, TestDaemon};

const USERS: u32 = 3000;
const LOCKS: u32 = 1500;

#[test]
fn regression_admin_list_of_thousands_of_accounts_comes_whole_in_pages() {
    let d = TestDaemon::start();
    d.sqlite3(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {USERS})
         INSERT INTO users (name, created_at) SELECT printf('user%05d', i), 1 FROM n;"
    ));
    let r = d.call(&Request::AdminList);
    assert_eq!(failed_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    assert!(
        matches!(&r, Response::Failed { message, .. } if message.contains("do not fit")),
        "{r:?}"
    );
    d.assert_serves_new_client();
    let out = d.twofold(&["admin", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (1..=USERS).map(|i| format!("user{i:05}")).collect();
    assert_eq!(names, want);
    // Pages really are pages: the first stops well before the end.
    match d.call(&Request::AdminListPage { after: None }) {
        Response::UsersPage { users, next } => {
            assert!(users.len() < USERS as usize, "{}", users.len());
            assert_eq!(next.as_deref(), users.last().map(|u| u.user.as_str()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn regression_admin_locks_are_no_longer_cut_at_500() {
    let d = TestDaemon::start();
    let until = d.now() + 900;
    d.sqlite3(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LOCKS})
         INSERT INTO locks (user, source, created_at, until, failures)
         SELECT printf('user%05d', i), '192.0.2.' || (i % 250), {}, {until}, 5 FROM n;",
        d.now()
    ));
    assert_eq!(
        failed_kind(&d.call(&Request::AdminLocks)),
        Some(ErrorKind::BadRequest)
    );
    let out = d.twofold(&["admin", "locks", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let locks = v.as_array().unwrap();
    assert_eq!(locks.len(), LOCKS as usize);
    assert_eq!(locks[0]["user"], "user00001");
    assert_eq!(locks[LOCKS as usize - 1]["user"], format!("user{LOCKS:05}"));
}
