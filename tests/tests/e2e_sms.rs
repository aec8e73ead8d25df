//! SMS codes end to end: a daemon whose `[sms]` points at a real local
//! HTTP endpoint (Twilio format, and the webhook) or a command script;
//! enrollment confirmed by a sent code through the real `twofold` CLI, a
//! login through the real libpam and the built module with `sms` typed at
//! the prompt (and beside email, both named), a service whose policy
//! leaves sms out, and no code sent in any log, audit row, argv or
//! transcript.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofold_config::{SmsProvider, SmtpTls};
use twofold_proto::{Method, Response};
use twofold_tests::daemon::TestDaemon;
use twofold_tests::http::HttpRecorder;
use twofold_tests::mailtest::{
    assert_no_code_leaked, confirm_destination, enroll_phone, holds, point_at, sms_code,
    start_destination, twilio_at, Steps, ALICE, PHONE, PHONE_MASKED as MASKED,
};
use twofold_tests::pam::*;
use twofold_tests::smtp::{Mode, SmtpServer};
use twofold_tests::PamConfig;

/// The code in the `n`th (1-based) Twilio request's Body.
fn nth_code(rec: &HttpRecorder, n: usize) -> String {
    sms_code(rec, n)
}

fn enroll_sms(d: &TestDaemon, rec: &HttpRecorder) -> String {
    enroll_phone(d, rec, "alice")
}

#[test]
fn enrollment_by_the_cli_then_a_login_through_libpam_with_a_texted_code() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| twilio_at(c, &p, &rec));
    d.enroll("alice");
    let mut codes = Vec::new();
    let mut outputs = Vec::new();
    // A number that is not E.164 is refused before anything is sent.
    let out = d.twofold(&[
        "enroll",
        "sms",
        "--user",
        "alice",
        "--phone",
        "4155550100",
        "--no-confirm",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("E.164"),
        "{out:?}"
    );
    assert!(rec.requests().is_empty());

    let out = d.twofold(&[
        "enroll",
        "sms",
        "--user",
        "alice",
        "--phone",
        PHONE,
        "--no-confirm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!("Code sent to {MASKED} (valid 10 minutes)")),
        "{said}"
    );
    let code = nth_code(&rec, 1);
    let r = &rec.requests()[0];
    assert_eq!(r.path, "/2010-04-01/Accounts/AC42/Messages.json");
    assert_eq!(r.field("ValidityPeriod").as_deref(), Some("600"));
    codes.push(code.clone());
    // Not counted until confirmed.
    let st = d.twofold(&["status", "--user", "alice"]);
    assert!(!String::from_utf8_lossy(&st.stdout).contains("sms"));
    let out = d.twofold(&["enroll", "sms", "--user", "alice", "--code", &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    outputs.push(said);
    outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    let st = d.twofold(&["status", "--user", "alice"]);
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(st.contains(&format!("sms {MASKED}")), "{st}");
    outputs.push(st);

    // A login through the real libpam: "sms", then the code from the request.
    let pam = PamConfig::new().expect("pam dir");
    pam.twofold(
        "tf",
        &[&format!("socket={}", d.socket().display()), "timeout=10"],
    )
    .expect("service");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (rec2, seen2) = (rec.clone(), seen.clone());
    let conv = Conversation::new()
        .answer("sms")
        .respond_with(move |_t: &Transcript| {
            let n = rec2.requests().len();
            let code = nth_code(&rec2, n);
            seen2.lock().unwrap().push(code.clone());
            Reply::Answer(code)
        });
    let (rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .expect("pam")
        .authenticate(conv)
        .expect("authenticate");
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(
        t.prompts()[0],
        "Verification code (or \"sms\" to get one sent): "
    );
    assert!(
        t.infos()
            .iter()
            .any(|i| i.starts_with(&format!("Code sent to {MASKED} (valid 10 minutes)."))),
        "{t:?}"
    );
    codes.extend(seen.lock().unwrap().iter().cloned());
    outputs.push(format!("{t:?}"));
    let audit =
        d.sqlite3("SELECT event, method FROM audit WHERE event IN ('code_sent', 'login_success');");
    assert!(
        audit.contains("code_sent|sms") && audit.contains("login_success|sms"),
        "{audit}"
    );
    // The code is used once: replay is refused.
    let replay = d.login("alice", &[seen.lock().unwrap()[0].as_str()]);
    assert!(
        !matches!(replay.last(), Some(Response::Success)),
        "{replay:?}"
    );
    assert_no_code_leaked(&d, &codes, &outputs);

    // Removal (as root, for her) stops the factor.
    let out = d.twofold(&["remove", "sms", "--user", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = d.twofold(&["status", "--user", "alice"]);
    assert!(!String::from_utf8_lossy(&st.stdout).contains(MASKED));
}

#[test]
fn provider_refusals_are_audited_and_the_user_told() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| twilio_at(c, &p, &rec));
    d.enroll("alice");
    let c0 = enroll_sms(&d, &rec);
    for (status, body) in [
        (
            400,
            r#"{"code": 21614, "message": "not a mobile number", "status": 400}"#,
        ),
        (
            429,
            r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        ),
    ] {
        rec.reply_next(status, body);
        let mut l = Steps::begin(&d, "alice");
        let got = l.answer("sms");
        assert!(
            got.iter().any(|r| matches!(r, Response::Info { text } | Response::Error { text } if text == "Could not send the code; use another method.")),
            "{got:?}"
        );
    }
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_failed';");
    assert!(
        rows.contains("error_21614") || rows.contains("21614"),
        "{rows}"
    );
    assert!(rows.contains("429"), "{rows}");
    assert_no_code_leaked(&d, &[c0], &[]);
}

#[test]
fn beside_email_the_prompt_names_both_and_policy_can_leave_sms_out() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let s = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        point_at(c, &s, SmtpTls::Plain);
        c.policy.service.push(twofold_config::policy::ServiceRule {
            services: vec!["sudo".into()],
            methods: Some(vec![Method::TOTP, Method::BACKUP_CODE, Method::EMAIL]),
            unenrolled: None,
        });
    });
    d.enroll("alice");
    let c0 = enroll_sms(&d, &rec);
    start_destination(&d, "alice", Method::EMAIL, ALICE);
    let c1 = s.nth_code(1).expect("mail code");
    confirm_destination(&d, "alice", Method::EMAIL, &c1);

    // Through libpam, service "tf": both named.
    let pam = PamConfig::new().expect("pam dir");
    pam.twofold(
        "tf",
        &[&format!("socket={}", d.socket().display()), "timeout=10"],
    )
    .expect("service");
    let conv = Conversation::new()
        .answer("000000")
        .answer("000000")
        .answer("000000");
    let (_rc, t) = PamLogin::new(pam.dir(), "tf", "alice")
        .expect("pam")
        .authenticate(conv)
        .expect("authenticate");
    assert_eq!(
        t.prompts()[0],
        "Verification code (or \"email\" / \"sms\" to get one sent): "
    );
    // sudo leaves sms out: only email is named, and "sms" sends nothing.
    let before = rec.requests().len();
    let mut l = Steps::begin(&d, "alice");
    assert_eq!(
        l.last(),
        &Response::Prompt {
            text: "Verification code (or \"email\" to get one sent): ".into(),
            echo: false
        }
    );
    l.answer("sms");
    assert_eq!(rec.requests().len(), before, "nothing texted for sudo");
    assert_no_code_leaked(&d, &[c0, c1], &[format!("{t:?}")]);
}

#[test]
fn the_webhook_and_the_command_deliver_login_codes_and_the_code_is_never_in_argv() {
    let dir = tempfile::tempdir().unwrap();
    // Webhook.
    let rec = HttpRecorder::start();
    let url = format!("{}/send", rec.base_url());
    let d = TestDaemon::start_with(|c| {
        c.sms.provider = SmsProvider::Webhook;
        c.sms.webhook.url = url.clone();
    });
    d.enroll("alice");
    start_destination(&d, "alice", Method::SMS, PHONE);
    let req = rec.wait_requests(1, Duration::from_secs(10)).pop().unwrap();
    let v: serde_json::Value = serde_json::from_str(&req.body).expect("JSON");
    assert_eq!(v["to"], PHONE);
    let text = v["message"].as_str().unwrap().to_owned();
    let c0 = text.split_whitespace().next().unwrap().to_owned();
    confirm_destination(&d, "alice", Method::SMS, &c0);
    assert_no_code_leaked(&d, &[c0], &[]);
    drop(d);

    // Command: a script that records argv (and its parent's view of it) and stdin.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = dir.path().join("gammu");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {o}/argv\ntr '\\0' ' ' < /proc/$$/cmdline >> {o}/argv\ncat >> {o}/stdin\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = TestDaemon::start_with(|c| {
        c.sms.provider = SmsProvider::Command;
        c.sms.command.path = script.clone();
        c.sms.command.args = vec!["TEXT".into(), "{to}".into()];
    });
    d.enroll("alice");
    start_destination(&d, "alice", Method::SMS, PHONE);
    let stdin = std::fs::read_to_string(out.join("stdin")).unwrap();
    let c1 = stdin.split_whitespace().next().unwrap().to_owned();
    confirm_destination(&d, "alice", Method::SMS, &c1);
    let mut l = Steps::begin(&d, "alice");
    l.answer("sms");
    let stdin = std::fs::read_to_string(out.join("stdin")).unwrap();
    let c2 = stdin
        .lines()
        .rfind(|l| !l.is_empty())
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(c1, c2);
    l.answer(&c2);
    assert!(matches!(l.last(), Response::Success), "{:?}", l.seen);
    let argv = std::fs::read_to_string(out.join("argv")).unwrap();
    assert!(argv.contains(PHONE), "{argv}");
    for c in [&c1, &c2] {
        assert!(!holds(&argv, c), "a code in argv: {argv}");
    }
    assert_no_code_leaked(&d, &[c1, c2], &[argv]);
}

/// Asks for a code in `l` and reads it from the newest Twilio request.
fn ask(l: &mut Steps, rec: &HttpRecorder) -> String {
    let before = rec.requests().len();
    let got = l.answer("sms");
    assert!(
        got.iter().any(|r| matches!(r, Response::Info { text } if text.starts_with(&format!("Code sent to {MASKED} (valid 10 minutes)")))),
        "{got:?}"
    );
    nth_code(rec, before + 1)
}

#[test]
fn on_the_injected_clock_codes_expire_are_bound_to_their_login_and_each_limit_counts() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        c.sms.sends_per_hour = 100;
        c.sms.sends_per_number_per_hour = 5;
    });
    d.enroll("alice");
    let mut codes = vec![enroll_sms(&d, &rec)];
    // Expiry at 10 minutes.
    let mut l = Steps::begin(&d, "alice");
    let c = ask(&mut l, &rec);
    codes.push(c.clone());
    d.clock.advance(600);
    l.answer(&c);
    assert!(matches!(l.last(), Response::Prompt { .. }), "{:?}", l.seen);
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'login_failure';");
    assert!(rows.contains("reason=code_expired"), "{rows}");
    // Bound to its login: refused in another, then works once in its own.
    let mut a = Steps::begin(&d, "alice");
    let c = ask(&mut a, &rec);
    codes.push(c.clone());
    let mut b = Steps::begin(&d, "alice");
    b.answer(&c);
    assert!(matches!(b.last(), Response::Prompt { .. }), "{:?}", b.seen);
    a.answer(&c);
    assert!(matches!(a.last(), Response::Success), "{:?}", a.seen);
    // Two per login.
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &rec));
    codes.push(ask(&mut l, &rec));
    let got = l.answer("sms");
    assert!(got.iter().any(|r| matches!(r, Response::Error { text } if text.starts_with("No more codes can be sent now"))), "{got:?}");
    // Five logins' codes per number per hour (the enrollment's code is
    // not one of them): the fifth is sent, the sixth refused.
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &rec));
    let got = l.answer("sms");
    assert!(
        got.iter()
            .any(|r| matches!(r, Response::Error { text } if text.starts_with("No more codes"))),
        "{got:?}"
    );
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_refused';");
    assert!(
        rows.contains("limit=login") && rows.contains("limit=destination"),
        "{rows}"
    );
    assert!(
        rows.contains("method=sms")
            || d.sqlite3("SELECT method FROM audit WHERE event = 'code_send_refused';")
                .contains("sms"),
        "{rows}"
    );
    // An hour later, a code again; asking was never a failed try.
    d.clock.advance(3601);
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &rec));
    assert_no_code_leaked(&d, &codes, &[]);
}

#[test]
fn a_failing_provider_opens_the_breaker_audited_and_later_asks_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        c.sms.breaker_failures = 2;
        c.sms.sends_per_hour = 100;
        c.sms.sends_per_number_per_hour = 100;
    });
    d.enroll("alice");
    let c0 = enroll_sms(&d, &rec);
    for _ in 0..2 {
        rec.reply_next(500, "{}");
        let mut l = Steps::begin(&d, "alice");
        l.answer("sms");
    }
    let rows = d.sqlite3("SELECT method, detail FROM audit WHERE event = 'channel_breaker';");
    assert!(
        rows.contains("sms|") && rows.contains("state=open"),
        "{rows}"
    );
    let before = rec.requests().len();
    let mut l = Steps::begin(&d, "alice");
    let got = l.answer("sms");
    assert!(got.iter().any(|r| matches!(r, Response::Error { text } | Response::Info { text } if text == "Could not send the code; use another method.")), "{got:?}");
    assert_eq!(rec.requests().len(), before, "refused without a request");
    assert_no_code_leaked(&d, &[c0], &[]);
}

#[test]
fn a_hanging_command_does_not_hold_the_login_past_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin");
    let pidfile = dir.path().join("pid");
    let script = dir.path().join("modem");
    // The first run (the enrollment) answers; later runs hang.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {o} ]; then echo $$ > {p}; exec sleep 300; fi\ncat > {o}\n",
            o = out.display(),
            p = pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = TestDaemon::start_with(|c| {
        c.sms.provider = SmsProvider::Command;
        c.sms.command.path = script.clone();
        c.sms.wait = twofold_config::Seconds(1);
        c.sms.timeout = twofold_config::Seconds(3);
    });
    d.enroll("alice");
    start_destination(&d, "alice", Method::SMS, PHONE);
    let c0 = std::fs::read_to_string(&out)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    confirm_destination(&d, "alice", Method::SMS, &c0);
    let mut l = Steps::begin(&d, "alice");
    let t0 = std::time::Instant::now();
    let got = l.answer("sms");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "told after {took:?}");
    assert!(got.iter().any(|r| matches!(r, Response::Error { text } | Response::Info { text } if text == "Could not send the code; use another method.")), "{got:?}");
    // The worker kills it at its deadline; the failure is audited.
    std::thread::sleep(Duration::from_secs(3));
    let rows = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_failed';");
    assert!(rows.contains("no_answer_within_1_s"), "{rows}");
    let pid = std::fs::read_to_string(&pidfile).expect("the hung command ran");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    assert!(
        stat.as_ref().map_or(true, |s| s.contains(") Z ")),
        "the command still runs: {stat:?}"
    );
    assert_no_code_leaked(&d, &[c0], &[]);
}

/// Issue 12: a provider that answers 429 or 503 with `Retry-After` is not
/// asked again before then — the breaker opens at once for that long
/// (audited with `retry_after=`), bounded by `[sms] retry_after_max` —
/// all on the injected clock.
#[test]
fn a_429_or_503_with_retry_after_holds_the_breaker_that_long() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let p = dir.path().to_owned();
    let d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &rec);
        c.sms.sends_per_hour = 100;
        c.sms.sends_per_number_per_hour = 100;
        c.sms.retry_after_max = twofold_config::Seconds(600);
    });
    d.enroll("alice");
    let mut codes = vec![enroll_sms(&d, &rec)];
    let not_sent = |got: &[Response]| {
        got.iter().any(|r| matches!(r, Response::Error { text } if text == "Could not send the code; use another method."))
    };
    let breaker =
        || d.sqlite3("SELECT detail FROM audit WHERE event = 'channel_breaker' ORDER BY id;");

    // 429 with Retry-After: 120 opens the breaker for 120 s at once (one
    // failure; three would open it otherwise).
    rec.reply_next_with(
        429,
        r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        &[("Retry-After", "120")],
    );
    let t0 = d.now();
    let mut l = Steps::begin(&d, "alice");
    assert!(not_sent(&l.answer("sms")), "{:?}", l.seen);
    let rows = breaker();
    assert!(
        rows.contains(&format!("state=open until={} retry_after=120", t0 + 120)),
        "{rows}"
    );
    let failed = d.sqlite3("SELECT detail FROM audit WHERE event = 'code_send_failed';");
    assert!(
        failed.contains("HTTP_429") && failed.contains("retry_after_120_s"),
        "{failed}"
    );
    // Until then every ask is refused at once, without a request.
    let n = rec.requests().len();
    d.clock.advance(119);
    let mut l = Steps::begin(&d, "alice");
    assert!(not_sent(&l.answer("sms")), "{:?}", l.seen);
    assert_eq!(rec.requests().len(), n, "the provider was asked too early");
    // At 120 s the provider is tried again, and the breaker closes.
    d.clock.advance(1);
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &rec));
    assert_eq!(rec.requests().len(), n + 1);
    assert!(breaker().contains("state=closed"), "{}", breaker());

    // 503 asking for a day is held to retry_after_max (10 minutes here).
    rec.reply_next_with(503, "", &[("Retry-After", "86400")]);
    let t1 = d.now();
    let mut l = Steps::begin(&d, "alice");
    assert!(not_sent(&l.answer("sms")), "{:?}", l.seen);
    assert!(
        breaker().contains(&format!("state=open until={} retry_after=86400", t1 + 600)),
        "{}",
        breaker()
    );
    d.clock.advance(599);
    let n = rec.requests().len();
    let mut l = Steps::begin(&d, "alice");
    assert!(not_sent(&l.answer("sms")), "{:?}", l.seen);
    assert_eq!(rec.requests().len(), n);
    d.clock.advance(1);
    let mut l = Steps::begin(&d, "alice");
    codes.push(ask(&mut l, &rec));
    assert_no_code_leaked(&d, &codes, &[]);
}
