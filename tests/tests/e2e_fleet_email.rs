//! Fleet mode with email: two `twofoldd` processes on one PostgreSQL
//! database (a real server: `twofold_tests::postgres`) mailing through one
//! real SMTP server (aiosmtpd, `tests/smtp/recorder.py`). A code is bound
//! to the login that asked for it, so the fleet-wide guarantees are the
//! limits (a user's hourly sends count on every host) and the outbox (a
//! notice queued once is mailed once, whichever host drains it).

use std::path::Path;
use std::time::{Duration, Instant};
use twofold_config::SmtpTls;
use twofold_proto::{Client, Request, Response, Secret};
use twofold_tests::daemon::{config_in, open_tempdir, DaemonProcess};
use twofold_tests::mailtest::{enroll_address, point_at, ALICE};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::postgres::PgDatabase;
use twofold_tests::smtp::{Mode, SmtpServer};

/// Two daemons on one database and one relay, with the fleet's key file.
struct Fleet {
    hosts: Vec<DaemonProcess>,
    relay: SmtpServer,
    db: PgDatabase,
    _dirs: Vec<tempfile::TempDir>,
}

fn fleet() -> Fleet {
    let relay_dir = open_tempdir();
    let relay = SmtpServer::start(relay_dir.path(), Mode::Plain, None, None);
    let db = PgDatabase::new();
    let keys = open_tempdir();
    let mut dirs = Vec::new();
    let mut hosts = Vec::new();
    for name in ["host-a", "host-b"] {
        let dir = open_tempdir();
        let mut config = config_in(dir.path());
        db.configure(&mut config);
        config.store.host_name = Some(name.into());
        config.daemon.master_key = keys.path().join("master.key");
        point_at(&mut config, &relay, SmtpTls::Plain);
        hosts.push(DaemonProcess::start(dir.path(), &config));
        dirs.push(dir);
    }
    dirs.push(keys);
    dirs.push(relay_dir);
    Fleet {
        hosts,
        relay,
        db,
        _dirs: dirs,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrolls alice on `host`: TOTP (its backup codes returned), then
/// `ALICE` confirmed by the mailed code (her first send of the hour).
fn enroll_alice(host: &DaemonProcess, relay: &SmtpServer) -> Vec<String> {
    let pending = match host.call(&Request::TotpEnrollStart {
        user: Some("alice".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p,
        other => panic!("enroll start: {other:?}"),
    };
    let code = oathtool_totp(&pending, now(), 0);
    let backup = match host.call(&Request::TotpEnrollConfirm {
        user: Some("alice".into()),
        code: Secret::from(code.as_str()),
    }) {
        Response::BackupCodes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("enroll confirm: {other:?}"),
    };
    enroll_address(host, relay, "alice", ALICE, 1);
    backup
}

/// A login of alice held open on `socket`, answered step by step.
struct Steps {
    client: Client,
    seen: Vec<Response>,
}

impl Steps {
    fn begin(socket: &Path) -> Steps {
        let mut client = Client::connect(socket, Duration::from_secs(30), "e2e").expect("connect");
        let resp = client
            .call(&Request::Begin {
                user: "alice".into(),
                service: "sudo".into(),
                rhost: None,
                tty: Some("pts/0".into()),
                ruser: Some("root".into()),
                ssh_auth_info: None,
            })
            .expect("begin");
        let mut s = Steps {
            client,
            seen: Vec::new(),
        };
        s.run(resp);
        s
    }

    fn run(&mut self, mut resp: Response) {
        loop {
            self.seen.push(resp.clone());
            match resp {
                Response::Info { .. } | Response::Error { .. } => {
                    resp = self.client.call(&Request::Ack).expect("ack");
                }
                _ => return,
            }
        }
    }

    /// Answers the prompt; the texts this step brought.
    fn answer(&mut self, text: &str) -> Vec<String> {
        let from = self.seen.len();
        let resp = self
            .client
            .call(&Request::Answer {
                text: Secret::from(text),
            })
            .expect("answer");
        self.run(resp);
        self.seen[from..]
            .iter()
            .map(|r| match r {
                Response::Info { text } | Response::Error { text } => text.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

/// Asks for a code in a new login on `host`; what the login said.
fn ask(host: &DaemonProcess) -> (Steps, Vec<String>) {
    let mut l = Steps::begin(host.socket());
    let said = l.answer("email");
    (l, said)
}

#[test]
fn the_hourly_send_limit_of_a_user_counts_the_codes_every_host_sent() {
    let f = fleet();
    let (a, b) = (&f.hosts[0], &f.hosts[1]);
    enroll_alice(a, &f.relay);
    assert_eq!(f.relay.code_mails().len(), 1, "the enrollment's code");
    // Second send of the hour, on B: a mailed code opens that login.
    let (mut l, said) = ask(b);
    assert!(
        said.iter().any(|t| t.starts_with("Code sent to")),
        "{said:?}"
    );
    let code = f.relay.nth_code(2).expect("the login's code");
    let end = l.answer(&code);
    assert!(
        matches!(l.seen.last(), Some(Response::Success)),
        "a mailed code on B: {end:?}"
    );
    // Third, on A.
    let (_l, said) = ask(a);
    assert!(
        said.iter().any(|t| t.starts_with("Code sent to")),
        "{said:?}"
    );
    assert_eq!(f.relay.code_mails().len(), 3);
    // The fourth of the hour is refused on either host.
    for host in [b, a] {
        let (_l, said) = ask(host);
        assert!(
            said.iter()
                .any(|t| t.starts_with("No more codes can be sent now")),
            "{said:?}"
        );
    }
    assert_eq!(f.relay.code_mails().len(), 3, "no fourth code mailed");
    assert_eq!(
        f.db.psql(
            "SELECT string_agg(host, ',' ORDER BY host) FROM audit
             WHERE event = 'code_send_refused' AND detail LIKE '%limit=user%'"
        ),
        "host-a,host-b",
        "each refusal audited where it happened"
    );
}

#[test]
fn a_notice_queued_once_is_mailed_once_with_two_hosts_draining_the_outbox() {
    let f = fleet();
    let (a, b) = (&f.hosts[0], &f.hosts[1]);
    let backup = enroll_alice(a, &f.relay);
    // Four backup-code logins spread over both hosts: four notices, plus
    // the one of the email enrollment.
    for (i, code) in backup.iter().take(4).enumerate() {
        let host = if i % 2 == 0 { a } else { b };
        let seen = twofold_tests::daemon::login_at(host.socket(), "alice", &[code]);
        assert!(matches!(seen.last(), Some(Response::Success)), "{seen:?}");
    }
    let notices = || {
        f.relay
            .mails()
            .into_iter()
            .filter(|m| m.header("Subject").as_deref() == Some("Security notice"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while notices().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both drainers look every 500 ms: a notice handed to both would be
    // mailed twice within a few looks.
    std::thread::sleep(Duration::from_secs(2));
    let mails = notices();
    let mut ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").expect("a notice's Message-ID"))
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(n, ids.len(), "a notice mailed twice: {ids:?}");
    assert_eq!(n, 5, "every notice mailed: {ids:?}");
    assert!(mails.iter().all(|m| m.to == vec![ALICE.to_owned()]));
    assert_eq!(
        f.db.psql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND error = ''"),
        "5"
    );
    assert_eq!(
        f.db.psql("SELECT COUNT(*) FROM outbox WHERE attempts <> 1"),
        "0",
        "each sent on its first try, once"
    );
}
