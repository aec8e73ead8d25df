//! The SMS providers against real endpoints: a Twilio-format request and a
//! webhook request recorded by a local HTTP server (path, Basic auth, form
//! fields, headers, JSON-escaped body), Twilio's error shapes (400 with a
//! code, 429), a redirect not followed, and the command provider with a
//! script that records its argv and stdin (the code on stdin only) and one
//! that hangs (killed at the deadline, the waiting login told in time).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_config::{Seconds, SmsConfig, SmsProvider};
use twofold_daemon::dispatch::{sms, Dispatcher, Limits, Message, SendError};
use twofold_proto::Secret;
use twofold_tests::http::HttpRecorder;

const CODE: &str = "472913";
const TO: &str = "+14155550100";

fn private(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn message() -> Message {
    Message {
        to: TO.into(),
        subject: String::new(),
        body: Secret::new(format!(
            "{CODE} is your \"verification\" code\nvalid 10 minutes."
        )),
        id: None,
    }
}

fn twilio(dir: &Path, rec: &HttpRecorder) -> SmsConfig {
    let mut c = SmsConfig {
        provider: SmsProvider::Twilio,
        ..SmsConfig::default()
    };
    c.twilio.base_url = rec.base_url();
    c.twilio.account_sid = "AC0123456789".into();
    c.twilio.auth_token_file = Some(private(dir, "token", "s3cret-token\n"));
    c.twilio.from = Some("+15005550006".into());
    c
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn twilio_request_has_the_path_basic_auth_and_form_fields() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let s = sms::sender(&twilio(dir.path(), &rec)).expect("sender");
    s.send(&message()).expect("sent");
    let r = rec.requests().pop().expect("a request");
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/2010-04-01/Accounts/AC0123456789/Messages.json");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {}", b64("AC0123456789:s3cret-token")).as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("To").as_deref(), Some(TO));
    assert_eq!(r.field("From").as_deref(), Some("+15005550006"));
    assert_eq!(r.field("ValidityPeriod").as_deref(), Some("600"));
    assert_eq!(r.field("MessagingServiceSid"), None);
    assert!(r.field("Body").unwrap().starts_with(CODE));

    // A messaging service instead of From.
    let mut c = twilio(dir.path(), &rec);
    c.twilio.from = None;
    c.twilio.messaging_service_sid = Some("MG42".into());
    sms::sender(&c).unwrap().send(&message()).expect("sent");
    let r = rec.requests().pop().unwrap();
    assert_eq!(r.field("MessagingServiceSid").as_deref(), Some("MG42"));
    assert_eq!(r.field("From"), None);
}

#[test]
fn twilio_errors_400_with_a_code_429_and_redirects_are_refusals_without_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let s = sms::sender(&twilio(dir.path(), &rec)).unwrap();
    rec.reply_next(
        400,
        r#"{"code": 21211, "message": "The 'To' number +14155550100 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
    );
    let e = s.send(&message()).unwrap_err().to_string();
    assert!(e.contains("HTTP 400, error 21211"), "{e}");
    assert!(!e.contains(TO) && !e.contains(CODE), "{e}");
    rec.reply_next(
        429,
        r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
    );
    let e = s.send(&message()).unwrap_err().to_string();
    assert!(e.contains("429"), "{e}");
    rec.reply_next(302, "");
    let e = s.send(&message()).unwrap_err().to_string();
    assert!(e.contains("redirect"), "{e}");
    assert_eq!(rec.requests().len(), 3, "a redirect is not followed");
}

#[test]
fn an_unsafe_token_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let c = twilio(dir.path(), &rec);
    let token = c.twilio.auth_token_file.clone().unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = sms::sender(&c).unwrap_err().to_string();
    assert!(e.contains("must not be readable by group or others"), "{e}");
}

#[test]
fn webhook_posts_json_escaped_fields_with_the_headers_file() {
    let dir = tempfile::tempdir().unwrap();
    let rec = HttpRecorder::start();
    let mut c = SmsConfig {
        provider: SmsProvider::Webhook,
        ..SmsConfig::default()
    };
    c.webhook.url = format!("{}/hook/send", rec.base_url());
    c.webhook.headers_file = Some(private(
        dir.path(),
        "headers",
        "# the gateway's key\nX-Api-Key: k-123\nAuthorization: Bearer abc\n",
    ));
    c.webhook.body = r#"{"number": "{to}", "text": "{message}", "kind": "otp"}"#.into();
    sms::sender(&c).unwrap().send(&message()).expect("sent");
    let r = rec.requests().pop().expect("a request");
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook/send"));
    assert_eq!(r.header("x-api-key"), Some("k-123"));
    assert_eq!(r.header("authorization"), Some("Bearer abc"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("valid JSON");
    assert_eq!(v["number"], TO);
    assert_eq!(v["text"], message().body.expose());
    assert_eq!(v["kind"], "otp");
    rec.reply_next(500, "{}");
    let e = sms::sender(&c).unwrap().send(&message()).unwrap_err();
    assert!(e.to_string().contains("HTTP 500"), "{e}");
}

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn command_gets_the_number_in_argv_and_the_code_on_stdin_only_in_an_empty_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = out.display();
    let p = script(
        dir.path(),
        "gammu",
        &format!(
            "printf '%s\\n' \"$@\" > {o}/argv\ncat > {o}/stdin\nenv > {o}/env\ntr '\\0' ' ' < /proc/$$/cmdline > {o}/cmdline"
        ),
    );
    let mut c = SmsConfig {
        provider: SmsProvider::Command,
        ..SmsConfig::default()
    };
    c.command.path = p;
    c.command.args = vec!["TEXT".into(), "{to}".into()];
    std::env::set_var("TWOFOLD_SMS_TEST_SECRET", "leak");
    sms::sender(&c).unwrap().send(&message()).expect("sent");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(read("argv"), format!("TEXT\n{TO}\n"));
    assert!(read("stdin").starts_with(CODE), "{}", read("stdin"));
    assert!(!read("argv").contains(CODE) && !read("cmdline").contains(CODE));
    assert!(
        !read("env").contains("TWOFOLD_SMS_TEST_SECRET"),
        "{}",
        read("env")
    );
    // A failing command is a refusal.
    c.command.path = script(dir.path(), "fails", "cat >/dev/null; exit 3");
    let e = sms::sender(&c).unwrap().send(&message()).unwrap_err();
    assert!(e.to_string().contains("failed"), "{e}");
}

#[test]
fn a_hanging_command_is_killed_at_its_deadline_and_the_login_is_told_within_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = script(
        dir.path(),
        "hang",
        &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()),
    );
    let mut c = SmsConfig {
        provider: SmsProvider::Command,
        ..SmsConfig::default()
    };
    c.command.path = p;
    c.timeout = Seconds(2);
    let sender: Arc<dyn twofold_daemon::dispatch::Sender> = Arc::from(sms::sender(&c).unwrap());
    let d = Dispatcher::new(
        sender,
        Limits {
            workers: 1,
            queue: 4,
            timeout: Duration::from_secs(2),
            breaker_failures: 3,
            breaker_open: 60,
            retry_after_max: 900,
        },
        Arc::new(twofold_daemon::SystemClock),
    );
    let wait = Duration::from_secs(1);
    let t0 = Instant::now();
    let ticket = d.submit(message());
    let r = ticket.wait(wait);
    assert_eq!(r, Err(SendError::Deadline(1)));
    assert!(
        t0.elapsed() < wait + Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    // The worker kills it at its own deadline.
    let r = ticket.wait(Duration::from_secs(5));
    assert!(
        matches!(&r, Err(SendError::Provider(m)) if m.contains("killed after 2 s")),
        "{r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    // SIGKILL is sent by now; on a loaded machine the process may take a
    // moment to be gone (or a zombie).
    let gone = || {
        !Path::new(&format!("/proc/{}", pid.trim())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|s| s.contains(") Z "))
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(), "the command still runs");
    d.stop();
}

/// An HTTPS recorder (`tests/http/tls_recorder.py`) serving a certificate
/// of `ca`; killed when dropped.
struct Https {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https(dir: &Path, ca: &twofold_tests::smtp::TestCa) -> Https {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("http/tls_recorder.py");
    let port_file = dir.join("https.port");
    let log = dir.join("https.log");
    let child = std::process::Command::new(twofold_tests::smtp::PYTHON)
        .arg(&script)
        .args([&port_file, &ca.cert, &ca.key, &log])
        .spawn()
        .expect("start the HTTPS recorder");
    let end = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p.trim().parse().expect("a port");
        }
        assert!(Instant::now() < end, "the HTTPS recorder did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Https { child, port, log }
}

#[test]
fn over_https_the_provider_must_chain_to_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let good = twofold_tests::smtp::make_ca(dir.path(), "good");
    let other = twofold_tests::smtp::make_ca(dir.path(), "other");
    let server = https(dir.path(), &good);
    let rec = HttpRecorder::start();
    let mut c = twilio(dir.path(), &rec);
    c.twilio.base_url = format!("https://127.0.0.1:{}", server.port);
    c.ca_file = Some(good.ca.clone());
    sms::sender(&c)
        .unwrap()
        .send(&message())
        .expect("sent over TLS");
    let log = std::fs::read_to_string(&server.log).unwrap();
    let row: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["path"],
        "/2010-04-01/Accounts/AC0123456789/Messages.json"
    );
    assert!(row["body"].as_str().unwrap().contains("ValidityPeriod=600"));
    // A certificate from another CA: refused before anything is sent; the
    // system's store does not know the test CA either.
    c.ca_file = Some(other.ca.clone());
    let e = sms::sender(&c).unwrap().send(&message()).unwrap_err();
    assert!(matches!(e, SendError::Provider(_)), "{e:?}");
    c.ca_file = None;
    assert!(sms::sender(&c).unwrap().send(&message()).is_err());
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(log.lines().count(), 1, "nothing more reached the server");
}
