//! Admin requests over the socket: each bad input refused with a clear
//! error and nothing changed; audit paging.

use twofold_proto::{ErrorKind, Request, Response, TimeRef};
use twofold_tests::daemon::{failed_kind, TestDaemon};

#[test]
fn bad_admin_inputs_are_refused_and_change_nothing() {
    let d = TestDaemon::start();
    // The whole audit trail, before and after: nothing may be added.
    let everything = Request::AuditQuery {
        user: None,
        event: None,
        service: None,
        since: None,
        until: None,
        after_id: None,
        limit: None,
    };
    let before = d.call(&everything);
    for bad in [
        Request::AdminUnlock { user: "".into() },
        Request::AdminUnlock {
            user: "al\nice".into(),
        },
        Request::AdminGrace {
            user: "alice".into(),
            extend: Some(60),
            reset: true,
        },
        Request::AdminGrace {
            user: "alice".into(),
            extend: None,
            reset: false,
        },
        Request::AdminGrace {
            user: "-x".into(),
            extend: Some(60),
            reset: false,
        },
    ] {
        assert_eq!(
            failed_kind(&d.call(&bad)),
            Some(ErrorKind::BadRequest),
            "{bad:?}"
        );
    }
    let after = d.call(&everything);
    assert_eq!(before, after, "nothing was audited or changed");
}

#[test]
fn grace_extension_counts_from_the_later_of_now_and_the_deadline() {
    let d = TestDaemon::start();
    let grace = |extend| {
        d.call(&Request::AdminGrace {
            user: "carol".into(),
            extend: Some(extend),
            reset: false,
        })
    };
    assert!(matches!(grace(86_400), Response::Done { .. }));
    let status = |d: &TestDaemon| match d.call(&Request::Status {
        user: Some("carol".into()),
    }) {
        Response::Status(s) => s.grace_deadline,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(&d), Some(d.now() + 86_400));
    grace(3600);
    assert_eq!(
        status(&d),
        Some(d.now() + 86_400 + 3600),
        "added to the deadline"
    );
    d.clock.advance(10 * 86_400);
    grace(60);
    assert_eq!(
        status(&d),
        Some(d.now() + 60),
        "a past deadline counts from now"
    );
    d.call(&Request::AdminGrace {
        user: "carol".into(),
        extend: None,
        reset: true,
    });
    assert_eq!(status(&d), None);
}

#[test]
fn audit_pages_follow_after_id_and_filters() {
    let d = TestDaemon::start();
    for u in ["a", "b", "c", "d", "e"] {
        d.call(&Request::AdminGrace {
            user: u.into(),
            extend: Some(60),
            reset: false,
        });
    }
    let page = |after, limit| match d.call(&Request::AuditQuery {
        user: None,
        event: Some("admin".into()),
        service: None,
        since: Some(TimeRef::Ago(60)),
        until: None,
        after_id: Some(after),
        limit: Some(limit),
    }) {
        Response::AuditRecords { records, more } => (records, more),
        other => panic!("{other:?}"),
    };
    let (first, more) = page(0, 2);
    assert!(more);
    let users: Vec<&str> = first.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["a", "b"]);
    let (rest, more) = page(first[1].id, 10);
    assert!(!more);
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[2].user, "e");
    let (none, more) = page(0, 0);
    assert_eq!((none.len(), more), (1, true), "a limit of 0 means 1");
}
