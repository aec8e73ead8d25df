//! pam_twofold.so through the real libpam (pam_start_confdir) against a
//! scripted fake daemon.

use std::time::{Duration, Instant};
use twofold_proto::{Request, Response};
use twofold_tests::fake_daemon::{FakeDaemon, Script};
use twofold_tests::pam::*;
use twofold_tests::{module_line, module_path, PamConfig};

const SERVICE: &str = "tf-test";

/// A PAM config whose `tf-test` service runs the module against `daemon`.
fn config_for(daemon: &FakeDaemon, extra: &[&str]) -> PamConfig {
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let mut args = vec![socket.as_str(), "timeout=2"];
    args.extend_from_slice(extra);
    pam.twofold(SERVICE, &args).unwrap();
    pam
}

fn login(pam: &PamConfig, conv: Conversation) -> (PamCode, Transcript) {
    PamLogin::new(pam.dir(), SERVICE, "alice")
        .unwrap()
        .authenticate(conv)
        .unwrap()
}

/// Runs one login of alice against a fresh fake daemon playing `script`.
fn run(script: Script, conv: Conversation) -> (PamCode, Transcript, FakeDaemon) {
    let daemon = FakeDaemon::start(script).unwrap();
    let pam = config_for(&daemon, &[]);
    let (code, t) = login(&pam, conv);
    (code, t, daemon)
}

#[test]
fn final_answers_map_to_pam_codes() {
    let cases = [
        (Script::login().success(), PAM_SUCCESS),
        (Script::login().denied("wrong code"), PAM_AUTH_ERR),
        (Script::login().unavailable(), PAM_AUTHINFO_UNAVAIL),
    ];
    for (script, want) in cases {
        let (code, t, _) = run(script, Conversation::new());
        assert_eq!(code, want);
        assert!(t.messages.is_empty(), "{t:?}");
    }
}

#[test]
fn ignore_is_returned_as_pam_ignore() {
    let daemon = FakeDaemon::start(Script::login().ignore()).unwrap();
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    // libpam never hands PAM_IGNORE to the application; the `ignore=2`
    // jump is taken only when the module returned exactly PAM_IGNORE.
    pam.service(
        SERVICE,
        &[
            &module_line("[ignore=2 default=die]", &[&socket]),
            "auth requisite pam_deny.so",
            "auth requisite pam_deny.so",
            "auth required pam_permit.so",
        ],
    )
    .unwrap();
    assert_eq!(login(&pam, Conversation::new()).0, PAM_SUCCESS);

    // Alone in a stack, an ignoring module lets nobody in.
    let pam = config_for(&daemon, &[]);
    let (code, _) = login(&pam, Conversation::new());
    assert_ne!(code, PAM_SUCCESS);
    assert_ne!(code, PAM_IGNORE);
}

#[test]
fn begin_carries_the_items_the_application_set() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let pam = config_for(&daemon, &[]);
    let code = PamLogin::new(pam.dir(), SERVICE, "alice")
        .unwrap()
        .rhost("192.0.2.44")
        .tty("pts/3")
        .ruser("bob")
        .authenticate(Conversation::new())
        .unwrap()
        .0;
    assert_eq!(code, PAM_SUCCESS);
    let s = daemon.session();
    assert_eq!(
        s.begin,
        Some(Request::Begin {
            user: "alice".into(),
            service: SERVICE.into(),
            rhost: Some("192.0.2.44".into()),
            tty: Some("pts/3".into()),
            ruser: Some("bob".into()),
            ssh_auth_info: None,
        })
    );
    let client = s.client().unwrap();
    assert!(client.starts_with("pam_twofold/"), "{client}");
}

/// sshd puts the keys it verified into the PAM environment as
/// `SSH_AUTH_INFO_0`; the module sends only the `publickey` lines. A value
/// that is not UTF-8 is not sent, and the login goes on (asked as usual).
#[test]
fn the_publickey_lines_of_ssh_auth_info_are_sent_and_an_unreadable_value_is_not() {
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEHocKj972+txk2ixzyyOXmD9uQ1vysGZ6hoKiDlejyT";
    let cases: [(Vec<u8>, Option<String>); 3] = [
        (
            format!("SSH_AUTH_INFO_0=publickey ssh-ed25519 {KEY}\nkeyboard-interactive/pam\n")
                .into_bytes(),
            Some(format!("publickey ssh-ed25519 {KEY}")),
        ),
        (b"SSH_AUTH_INFO_0=keyboard-interactive/pam\n".to_vec(), None),
        (
            b"SSH_AUTH_INFO_0=publickey ssh-ed25519 \xff\xfe".to_vec(),
            None,
        ),
    ];
    for (entry, sent) in cases {
        let daemon = FakeDaemon::start(Script::login().success()).unwrap();
        let pam = config_for(&daemon, &[]);
        let code = PamLogin::new(pam.dir(), SERVICE, "alice")
            .unwrap()
            .env(&entry)
            .authenticate(Conversation::new())
            .unwrap()
            .0;
        assert_eq!(code, PAM_SUCCESS);
        match daemon.session().begin {
            Some(Request::Begin { ssh_auth_info, .. }) => assert_eq!(ssh_auth_info, sent),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn unset_items_are_sent_as_none() {
    let (code, _, daemon) = run(Script::login().success(), Conversation::new());
    assert_eq!(code, PAM_SUCCESS);
    match daemon.session().begin {
        Some(Request::Begin {
            rhost,
            tty,
            ruser,
            ssh_auth_info,
            ..
        }) => assert_eq!((rhost, tty, ruser, ssh_auth_info), (None, None, None, None)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_user_is_asked_for_when_the_application_did_not_set_it() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let pam = config_for(&daemon, &[]);
    let (code, t) = PamLogin::new(pam.dir(), SERVICE, "unused")
        .unwrap()
        .without_user()
        .authenticate(Conversation::new().answer("carol"))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(t.messages[0].style, Style::EchoOn);
    match daemon.session().begin {
        Some(Request::Begin { user, .. }) => assert_eq!(user, "carol"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn prompt_is_echo_off_and_the_answer_reaches_the_daemon() {
    let (code, t, daemon) = run(
        Script::login()
            .prompt("Verification code: ", false)
            .success(),
        Conversation::new().answer("123456"),
    );
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(
        t.messages,
        [Message {
            style: Style::EchoOff,
            text: "Verification code: ".into()
        }]
    );
    assert_eq!(daemon.session().answers(), ["123456"]);
}

#[test]
fn echo_on_prompts_and_empty_answers_are_relayed() {
    let (code, t, daemon) = run(
        Script::login()
            .prompt("Method: ", true)
            .prompt("Code: ", false)
            .denied("empty"),
        Conversation::new().answer("totp").answer(""),
    );
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.messages[0].style, Style::EchoOn);
    assert_eq!(daemon.session().answers(), ["totp", ""]);
}

#[test]
fn info_wait_and_error_texts_reach_the_conversation() {
    let (code, t, daemon) = run(
        Script::login()
            .info("Welcome to twofold")
            .wait("Touch your security key")
            .error("Wrong code, 2 tries left")
            .success(),
        Conversation::new(),
    );
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(t.infos(), ["Welcome to twofold", "Touch your security key"]);
    assert_eq!(t.errors(), ["Wrong code, 2 tries left"]);
    assert_eq!(daemon.session().acks(), 3);
}

#[test]
fn a_conversation_that_fails_info_messages_still_logs_in() {
    for notices in [Notices::ConvErr, Notices::NoReply] {
        let (code, t, daemon) = run(
            Script::login()
                .info("hello")
                .error("careful")
                .prompt("Code: ", false)
                .success(),
            Conversation::new().notices(notices).answer("654321"),
        );
        assert_eq!(code, PAM_SUCCESS, "{notices:?}");
        assert_eq!(t.infos(), ["hello"]);
        let s = daemon.session();
        assert_eq!(s.acks(), 2, "{notices:?}");
        assert_eq!(s.answers(), ["654321"]);
    }
}

#[test]
fn conversation_error_on_a_prompt_is_conv_err() {
    for reply in [Reply::ConvErr, Reply::NoReply, Reply::NullAnswer] {
        let (code, _, daemon) = run(
            Script::login().prompt("Code: ", false).success(),
            Conversation::new().reply(reply.clone()),
        );
        assert_eq!(code, PAM_CONV_ERR, "{reply:?}");
        // The daemon never got an answer: the module hung up instead.
        let s = daemon.session();
        assert!(s.answers().is_empty(), "{reply:?}: {s:?}");
        assert!(s.error.is_some(), "{reply:?}");
    }
}

#[test]
fn silent_flag_carries_info_inside_the_next_prompt() {
    let daemon = FakeDaemon::start(
        Script::login()
            .info("hello")
            .prompt("Code: ", false)
            .success(),
    )
    .unwrap();
    let pam = config_for(&daemon, &[]);
    let (code, t) = PamLogin::new(pam.dir(), SERVICE, "alice")
        .unwrap()
        .silent()
        .authenticate(Conversation::new().answer("1"))
        .unwrap();
    assert_eq!(code, PAM_SUCCESS);
    // PAM_SILENT: nothing shown on its own; the line rides in the prompt.
    assert_eq!(t.prompts(), ["hello\nCode: "]);
    assert!(t.infos().is_empty(), "{t:?}");
    assert_eq!(daemon.session().acks(), 1);
}

#[test]
fn missing_socket_is_unavailable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", dir.path().join("absent.sock").display());
    pam.twofold(SERVICE, &[&socket, "timeout=1"]).unwrap();
    let start = Instant::now();
    let (code, _) = login(&pam, Conversation::new());
    assert_eq!(code, PAM_AUTHINFO_UNAVAIL);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

/// Runs one login with timeout=1 and checks it ends unavailable in under 2 s.
fn assert_unavailable_within_timeout(daemon: &FakeDaemon) {
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    pam.twofold(SERVICE, &[&socket, "timeout=1"]).unwrap();
    let start = Instant::now();
    let (code, _) = login(&pam, Conversation::new());
    let took = start.elapsed();
    assert_eq!(code, PAM_AUTHINFO_UNAVAIL);
    assert!(
        took >= Duration::from_millis(900),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn daemon_hung_after_accept_is_unavailable_within_timeout() {
    let daemon = FakeDaemon::start(Script::on_accept().hang()).unwrap();
    assert_unavailable_within_timeout(&daemon);
}

#[test]
fn daemon_hung_after_begin_is_unavailable_within_timeout() {
    let daemon = FakeDaemon::start(Script::login().hang()).unwrap();
    assert_unavailable_within_timeout(&daemon);
    assert!(daemon.session().begin.is_some());
}

#[test]
fn daemon_that_never_accepts_is_unavailable_within_timeout() {
    let daemon = FakeDaemon::not_accepting().unwrap();
    assert_unavailable_within_timeout(&daemon);
}

#[test]
fn garbage_truncated_and_oversized_replies_fail_closed() {
    let scripts = [
        ("garbage after begin", Script::login().garbage()),
        ("truncated after begin", Script::login().truncated_frame()),
        ("1 MiB after begin", Script::login().oversized_frame()),
        ("garbage instead of welcome", Script::on_accept().garbage()),
        (
            "1 MiB instead of welcome",
            Script::on_accept().oversized_frame(),
        ),
        (
            "HTTP instead of a frame",
            Script::login().raw(b"HTTP/1.1 200 OK\r\n\r\n"),
        ),
        ("closed after begin", Script::login()),
        (
            "garbage after an answer",
            Script::login().prompt("Code: ", false).truncated_frame(),
        ),
    ];
    for (name, script) in scripts {
        let (code, _, _) = run(script, Conversation::new().answer("1"));
        assert_eq!(code, PAM_AUTH_ERR, "{name}");
    }
    // The process is fine: a normal login still works afterwards.
    let (code, _, _) = run(Script::login().success(), Conversation::new());
    assert_eq!(code, PAM_SUCCESS);
}

#[test]
fn unexpected_responses_fail_closed() {
    for resp in [
        Response::Welcome { proto: 1 },
        Response::Done {
            message: "done".into(),
        },
        Response::Unsupported {
            request: "begin".into(),
        },
    ] {
        let (code, _, _) = run(
            Script::login().send(resp.clone()).success(),
            Conversation::new(),
        );
        assert_eq!(code, PAM_AUTH_ERR, "{resp:?}");
    }
}

#[test]
fn more_than_64_messages_fail_closed() {
    let mut ok = Script::login();
    for i in 0..63 {
        ok = ok.info(&format!("line {i}"));
    }
    let (code, t, _) = run(ok.success(), Conversation::new());
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(t.infos().len(), 63);

    let mut flood = Script::login();
    for i in 0..64 {
        flood = flood.info(&format!("line {i}"));
    }
    let (code, t, _) = run(flood.success(), Conversation::new());
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(t.infos().len(), 64);
}

#[test]
fn unknown_and_malformed_options_are_service_errors() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let cases: [(&[u8], &str); 7] = [
        (b"frobnicate=1", "unknown option \"frobnicate=1\""),
        (b"timeout=abc", "bad value \"abc\" for option timeout"),
        (b"timeout=0", "bad value \"0\" for option timeout"),
        (b"debug=yes", "option debug takes no value"),
        (b"socket=relative.sock", "must be an absolute path"),
        (b"timeout=1 timeout=2", "option timeout given twice"),
        (b"timeout=\xff", "not valid UTF-8"),
    ];
    for (i, (bad, why)) in cases.into_iter().enumerate() {
        let pam = PamConfig::new().unwrap();
        let service = format!("tf-opt-{i}");
        let base: &[&str] = if bad.starts_with(b"socket=") {
            &[]
        } else {
            &[&socket]
        };
        let mut line = module_line("required", base).into_bytes();
        line.push(b' ');
        line.extend_from_slice(bad);
        line.push(b'\n');
        std::fs::write(pam.dir().join(&service), line).unwrap();
        let (code, t) = PamLogin::new(pam.dir(), &service, "alice")
            .unwrap()
            .authenticate(Conversation::new())
            .unwrap();
        let shown = String::from_utf8_lossy(bad);
        assert_eq!(code, PAM_SERVICE_ERR, "{shown}");
        assert!(t.messages.is_empty(), "{shown}: {t:?}");
        let lines = logged(&service);
        assert!(
            lines
                .iter()
                .any(|(_, l)| l.contains("refusing to run") && l.contains(why)),
            "{shown}: {lines:?}"
        );
    }
    // The daemon was never contacted.
    assert!(daemon.next_session(Duration::from_millis(200)).is_none());
}

#[test]
fn valid_options_are_accepted() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    pam.twofold(SERVICE, &["debug", "timeout=3s", &socket])
        .unwrap();
    assert_eq!(login(&pam, Conversation::new()).0, PAM_SUCCESS);
}

#[test]
fn setcred_succeeds() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let pam = config_for(&daemon, &[]);
    let mut s = PamLogin::new(pam.dir(), SERVICE, "alice")
        .unwrap()
        .start(Conversation::new())
        .unwrap();
    assert_eq!(s.authenticate(), PAM_SUCCESS);
    assert_eq!(s.setcred(PAM_ESTABLISH_CRED), PAM_SUCCESS);
    assert_eq!(s.get_item(Item::User).as_deref(), Some("alice"));
}

#[test]
fn only_pam_sm_symbols_are_exported() {
    let path = module_path();
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["pam_sm_authenticate", "pam_sm_setcred"]);
}

#[test]
fn the_module_dlopens_and_has_its_entry_points() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(module_path().as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path; the handle is closed below.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen failed");
    for (name, present) in [
        (c"pam_sm_authenticate", true),
        (c"pam_sm_setcred", true),
        (c"pam_sm_open_session", false),
        (c"rust_eh_personality", false),
    ] {
        // SAFETY: h is a live handle; name is NUL-terminated.
        let sym = unsafe { libc::dlsym(h, name.as_ptr()) };
        assert_eq!(!sym.is_null(), present, "{name:?}");
    }
    // SAFETY: h came from dlopen.
    assert_eq!(unsafe { libc::dlclose(h) }, 0);
}

#[test]
fn pam_code_names_read_well() {
    assert_eq!(
        format!("{PAM_AUTHINFO_UNAVAIL:?}"),
        "PAM_AUTHINFO_UNAVAIL(9)"
    );
    assert_eq!(
        PAM_AUTH_ERR.to_string(),
        "PAM_AUTH_ERR (Authentication failure)"
    );
    assert_eq!(PamCode(99).name(), "PAM_99");
}

#[test]
fn items_that_are_not_utf8_fail_closed_without_asking_the_daemon() {
    let daemon = FakeDaemon::start(Script::login().success()).unwrap();
    let pam = config_for(&daemon, &[]);
    let cases = [
        (Item::Rhost, PAM_AUTH_ERR),
        (Item::Tty, PAM_AUTH_ERR),
        (Item::Ruser, PAM_AUTH_ERR),
        (Item::User, PAM_USER_UNKNOWN),
    ];
    for (item, want) in cases {
        let (code, _) = PamLogin::new(pam.dir(), SERVICE, "alice")
            .unwrap()
            .item_bytes(item, b"10.0.0.1\xff")
            .authenticate(Conversation::new())
            .unwrap();
        assert_eq!(code, want, "{item:?}");
    }
    assert!(daemon.next_session(Duration::from_millis(200)).is_none());
}

#[test]
fn an_answer_that_is_not_utf8_is_a_conversation_error() {
    let (code, _, daemon) = run(
        Script::login().prompt("Code: ", false).success(),
        Conversation::new().reply(Reply::RawAnswer(b"12\xff456".to_vec())),
    );
    assert_eq!(code, PAM_CONV_ERR);
    assert!(daemon.session().answers().is_empty());
}

#[test]
fn daemon_text_with_a_nul_byte_fails_closed() {
    let (code, t, _) = run(
        Script::login().info("Touch\0 your key").success(),
        Conversation::new(),
    );
    assert_eq!(code, PAM_AUTH_ERR);
    assert!(t.messages.is_empty(), "{t:?}");
}

#[test]
fn a_responder_answers_from_what_was_shown_earlier() {
    let (code, t, daemon) = run(
        Script::login()
            .info("Your new secret: JBSWY3DP")
            .prompt("Confirmation code: ", false)
            .success(),
        Conversation::new().respond_with(|t| {
            let secret = t.infos()[0].rsplit(' ').next().unwrap_or_default();
            Reply::Answer(format!("code-for-{secret}"))
        }),
    );
    assert_eq!(code, PAM_SUCCESS);
    assert_eq!(t.prompts(), ["Confirmation code: "]);
    assert_eq!(daemon.session().answers(), ["code-for-JBSWY3DP"]);
}

#[test]
fn an_answer_over_the_frame_limit_fails_closed() {
    let (code, _, daemon) = run(
        Script::login().prompt("Code: ", false).success(),
        Conversation::new().answer(&"7".repeat(70 * 1024)),
    );
    assert_eq!(code, PAM_AUTH_ERR);
    assert!(daemon.session().answers().is_empty());
}

twofold_tests::capture_pam_syslog!();

#[test]
fn failures_are_logged_on_authpriv_and_debug_never_logs_the_code() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).garbage()).unwrap();
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", daemon.socket().display());
    let service = "tf-syslog";
    pam.twofold(service, &[&socket, "debug"]).unwrap();
    let (code, _) = PamLogin::new(pam.dir(), service, "alice")
        .unwrap()
        .authenticate(Conversation::new().answer("918273"))
        .unwrap();
    assert_eq!(code, PAM_AUTH_ERR);
    assert_eq!(daemon.session().answers(), ["918273"]);
    let lines = logged(service);
    assert!(
        lines.iter().all(|(pri, _)| pri & !7 == libc::LOG_AUTHPRIV),
        "{lines:?}"
    );
    let err = lines
        .iter()
        .find(|(pri, _)| pri & 7 == libc::LOG_ERR)
        .unwrap_or_else(|| panic!("no error line: {lines:?}"));
    assert!(err.1.contains("malformed"), "{err:?}");
    assert!(
        lines
            .iter()
            .any(|(pri, l)| pri & 7 == libc::LOG_DEBUG && l.contains("daemon sent prompt")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|(_, l)| !l.contains("918273")),
        "{lines:?}"
    );
}

#[test]
fn bad_options_are_logged_and_percent_signs_are_not_formats() {
    let pam = PamConfig::new().unwrap();
    let service = "tf-syslog-opts";
    pam.twofold(service, &["frobnicate=%s%n%x"]).unwrap();
    let (code, _) = PamLogin::new(pam.dir(), service, "alice")
        .unwrap()
        .authenticate(Conversation::new())
        .unwrap();
    assert_eq!(code, PAM_SERVICE_ERR);
    let lines = logged(service);
    assert!(
        lines
            .iter()
            .any(|(pri, l)| *pri == libc::LOG_AUTHPRIV | libc::LOG_ERR
                && l.ends_with("refusing to run: unknown option \"frobnicate=%s%n%x\"")),
        "{lines:?}"
    );
}

#[test]
fn logins_run_concurrently_in_threads() {
    let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
    let pam = config_for(&daemon, &[]);
    let login = PamLogin::new(pam.dir(), SERVICE, "alice").unwrap();
    let conv = Conversation::new().answer("1");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (login, conv) = (login.clone(), conv.clone());
            std::thread::spawn(move || login.authenticate(conv).unwrap().0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), PAM_SUCCESS);
    }
    for _ in 0..4 {
        assert_eq!(daemon.session().answers(), ["1"]);
    }
}
