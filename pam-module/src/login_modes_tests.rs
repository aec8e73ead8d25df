use super::*;

fn info(t: &str) -> Response {
    Response::Info { text: t.into() }
}

fn error(t: &str) -> Response {
    Response::Error { text: t.into() }
}

/// Runs `script` for `service` with `opts`, answering with `answers`.
fn relay_as(
    service: &str,
    opts: &Options,
    script: Vec<Response>,
    answers: &[&str],
    typed: Option<&str>,
) -> (Outcome, Scripted, Person, Lines) {
    let mut d = Scripted::new(script);
    let mut p = Person::default();
    for a in answers {
        p.answers.push_back(Ok(Secret::from(*a)));
    }
    let log = Lines::default();
    let out = relay(
        opts,
        false,
        &items_for(service),
        &mut d,
        &mut p,
        Typed {
            code: typed.map(Secret::from),
            password: None,
        },
        &log,
    );
    (out, d, p, log)
}

#[test]
fn for_sshd_info_and_error_lines_ride_inside_the_next_prompt() {
    let script = vec![
        info("Welcome"),
        error("Invalid verification code."),
        prompt("Verification code: "),
        Response::Success,
    ];
    let (out, d, p, _) = relay_as("sshd", &Options::default(), script, &["1"], None);
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        ["prompt(echo=false): Welcome\nInvalid verification code.\nVerification code: "]
    );
    // Each held line was still acknowledged at once, in order.
    assert_eq!(d.sent[1..3], [Request::Ack, Request::Ack]);
}

#[test]
fn held_lines_left_at_the_end_are_shown_as_one_message() {
    let script = vec![
        error("Too many tries."),
        info("Bye"),
        Response::Denied {
            reason: "x".into(),
            message: None,
        },
    ];
    let (out, _, p, _) = relay_as("sshd", &Options::default(), script, &[], None);
    assert_eq!(out, Outcome::Denied);
    assert_eq!(p.seen, ["Error: Too many tries.\nBye"]);
}

/// Once the conversation is closed (memory ran out), held lines are
/// neither joined to the question nor shown at the end: joined, they could
/// be as long as many frames, allocated from the module's reserve.
#[test]
fn a_closed_conversation_gets_no_held_lines_joined() {
    for end in [prompt("Verification code: "), Response::Success] {
        let mut d = Scripted::new(vec![info("Welcome"), error("Try again."), end.clone()]);
        let mut p = Person {
            closed: true,
            ..Person::default()
        };
        let out = relay(
            &Options::default(),
            false,
            &items_for("sshd"),
            &mut d,
            &mut p,
            Typed::default(),
            &Lines::default(),
        );
        match end {
            Response::Success => {
                assert_eq!(out, Outcome::Success);
                assert!(p.seen.is_empty(), "{:?}", p.seen);
            }
            _ => {
                assert_eq!(out, Outcome::ConvError);
                assert_eq!(p.seen, ["prompt(echo=false): Verification code: "]);
            }
        }
    }
}

/// For sshd the lines inside `Denied` join the held ones and are shown as
/// the login ends, as one message.
#[test]
fn for_sshd_lines_inside_denied_are_shown_with_the_held_ones_at_the_end() {
    let script = vec![
        info("Welcome"),
        prompt("Code: "),
        Response::Denied {
            reason: "x".into(),
            message: Some("Invalid verification code.\nLocked.".into()),
        },
    ];
    let (out, _, p, _) = relay_as("sshd", &Options::default(), script, &["1"], None);
    assert_eq!(out, Outcome::Denied);
    assert_eq!(
        p.seen,
        [
            "prompt(echo=false): Welcome\nCode: ",
            "Error: Invalid verification code.\nLocked."
        ]
    );
}

#[test]
fn a_wait_shows_held_lines_first() {
    let script = vec![
        info("a"),
        Response::Wait {
            text: "Touch".into(),
        },
        Response::Success,
    ];
    let (_, _, p, _) = relay_as("sshd", &Options::default(), script, &[], None);
    assert_eq!(p.seen, ["Info: a", "Info: Touch"]);
}

#[test]
fn inline_messages_follows_the_option_and_the_service() {
    let script = || vec![info("i"), prompt("Code: "), Response::Success];
    let (_, _, p, _) = relay_as("sudo", &Options::default(), script(), &["1"], None);
    assert_eq!(p.seen, ["Info: i", "prompt(echo=false): Code: "]);
    let no = Options::parse(["inline_messages=no"]).unwrap();
    let (_, _, p, _) = relay_as("sshd", &no, script(), &["1"], None);
    assert_eq!(p.seen, ["Info: i", "prompt(echo=false): Code: "]);
    let yes = Options::parse(["inline_messages=yes"]).unwrap();
    let (_, _, p, _) = relay_as("sudo", &yes, script(), &["1"], None);
    assert_eq!(p.seen, ["prompt(echo=false): i\nCode: "]);
}

#[test]
fn silence_is_unreachable_before_the_conversation_and_unavailable_after() {
    let timeout = || Err(ClientError::Timeout(Duration::from_secs(1)));
    let mut before = Scripted {
        replies: VecDeque::from([timeout()]),
        sent: Vec::new(),
        ..Scripted::default()
    };
    let mut p = Person::default();
    assert_eq!(
        run(&mut before, &mut p, &Options::default()).0,
        Outcome::Unreachable
    );
    let mut after = Scripted {
        replies: VecDeque::from([Ok(prompt("Code: ")), timeout()]),
        sent: Vec::new(),
        ..Scripted::default()
    };
    p.answers.push_back(Ok(Secret::from("1")));
    assert_eq!(
        run(&mut after, &mut p, &Options::default()).0,
        Outcome::Unavailable
    );
}

#[test]
fn failmode_safe_lets_only_an_unreachable_daemon_through_and_logs_it() {
    let safe = Options::parse(["failmode=safe"]).unwrap();
    let secure = Options::default();
    let cases = [
        (Outcome::Unreachable, &safe, 0),
        (Outcome::Unreachable, &secure, 9),
        (Outcome::Unavailable, &safe, 9),
        (Outcome::Failed("garbage".into()), &safe, 7),
        (Outcome::Denied, &safe, 7),
        (Outcome::Success, &safe, 0),
    ];
    for (out, opts, code) in cases {
        let log = Lines::default();
        assert_eq!(out.pam_code_for(opts, &items(), &log), code, "{out:?}");
        let logged = log.all().contains("failmode=safe: letting user \"alice\"");
        assert_eq!(
            logged,
            out == Outcome::Unreachable && opts == &safe,
            "{out:?}"
        );
    }
}

/// Single-prompt mode's `verify` line: the code typed with the password
/// answers the daemon's first question without asking, and is never shown
/// or logged.
#[test]
fn a_typed_code_answers_the_first_hidden_question_without_asking() {
    let opts = Options::parse(["single_prompt=verify", "debug"]).unwrap();
    let script = vec![prompt("Verification code: "), Response::Success];
    let (out, d, p, log) = relay_as("login", &opts, script, &[], Some("123456"));
    assert_eq!(out, Outcome::Success);
    assert!(p.seen.is_empty(), "{:?}", p.seen);
    assert_eq!(d.answers(), ["123456"]);
    assert!(log.all().contains("answering with the code typed"));
    assert!(!log.all().contains("123456"), "{}", log.all());
}

/// After a wrong code the daemon asks again, and the person is asked: the
/// typed code answers once.
#[test]
fn a_typed_code_answers_once_then_retries_ask_for_the_code() {
    let opts = Options::parse(["single_prompt=verify"]).unwrap();
    let script = vec![
        prompt("Verification code: "),
        error("Invalid verification code."),
        prompt("Verification code: "),
        Response::Success,
    ];
    let (out, d, p, _) = relay_as("login", &opts, script, &["111111"], Some("000000"));
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        [
            "Error: Invalid verification code.",
            "prompt(echo=false): Verification code: "
        ]
    );
    assert_eq!(d.answers(), ["000000", "111111"]);
}

/// When the daemon shows something before its first question (enrollment
/// at login shows a QR code, then asks to confirm), the code was typed
/// before the person saw what is asked: it is wiped, and the question asked.
#[test]
fn a_typed_code_is_not_used_when_the_daemon_shows_something_first() {
    let opts = Options::parse(["single_prompt=verify", "debug"]).unwrap();
    let script = vec![
        info("Scan this QR code"),
        prompt("Code from the app: "),
        Response::Success,
    ];
    let (out, d, p, log) = relay_as("login", &opts, script, &["654321"], Some("123456"));
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        [
            "Info: Scan this QR code",
            "prompt(echo=false): Code from the app: "
        ]
    );
    assert_eq!(d.answers(), ["654321"]);
    assert!(log.all().contains("not used"), "{}", log.all());
}

#[test]
fn a_typed_code_never_answers_an_echoed_question() {
    let opts = Options::parse(["single_prompt=verify"]).unwrap();
    let script = vec![
        Response::Prompt {
            text: "Name: ".into(),
            echo: true,
        },
        Response::Success,
    ];
    let (_, d, p, _) = relay_as("login", &opts, script, &["bob"], Some("123456"));
    assert_eq!(p.seen, ["prompt(echo=true): Name: "]);
    assert_eq!(d.answers(), ["bob"]);
}

/// An unenrolled user: the daemon says `Ignore` and the code goes nowhere.
#[test]
fn a_typed_code_is_not_sent_when_the_daemon_ignores_the_login() {
    let opts = Options::parse(["single_prompt=verify"]).unwrap();
    let (out, d, p, _) = relay_as("login", &opts, vec![Response::Ignore], &[], Some("123456"));
    assert_eq!(out, Outcome::Ignore);
    assert!(p.seen.is_empty());
    assert!(d.answers().is_empty());
}

/// Issue 10 (8): only root, or the uid named by `daemon_uid=`, may hold
/// the daemon's socket; never anyone else, the caller included.
#[test]
fn regression_only_root_or_daemon_uid_may_hold_the_daemon_socket() {
    let default = Options::default();
    assert_eq!(trusted_daemon(&default, 0), Ok(()));
    let err = trusted_daemon(&default, 65534).unwrap_err();
    assert!(err.contains("held by uid 65534"), "{err}");
    assert!(err.contains("daemon_uid="), "{err}");
    let dedicated = Options::parse(["daemon_uid=998"]).unwrap();
    assert_eq!(trusted_daemon(&dedicated, 998), Ok(()));
    assert_eq!(trusted_daemon(&dedicated, 0), Ok(()));
    for other in [1, 997, 999, 1000, 65534] {
        assert!(trusted_daemon(&dedicated, other).is_err(), "{other}");
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me != 0 {
        assert!(trusted_daemon(&default, me).is_err());
    }
}
