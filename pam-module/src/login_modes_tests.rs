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
    token: &mut Token,
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
        token,
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
    let (out, d, p, _) = relay_as(
        "sshd",
        &Options::default(),
        script,
        &["1"],
        &mut Token::default(),
    );
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
    let (out, _, p, _) = relay_as(
        "sshd",
        &Options::default(),
        script,
        &[],
        &mut Token::default(),
    );
    assert_eq!(out, Outcome::Denied);
    assert_eq!(p.seen, ["Error: Too many tries.\nBye"]);
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
    let (out, _, p, _) = relay_as(
        "sshd",
        &Options::default(),
        script,
        &["1"],
        &mut Token::default(),
    );
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
    let (_, _, p, _) = relay_as(
        "sshd",
        &Options::default(),
        script,
        &[],
        &mut Token::default(),
    );
    assert_eq!(p.seen, ["Info: a", "Info: Touch"]);
}

#[test]
fn inline_messages_follows_the_option_and_the_service() {
    let script = || vec![info("i"), prompt("Code: "), Response::Success];
    let (_, _, p, _) = relay_as(
        "sudo",
        &Options::default(),
        script(),
        &["1"],
        &mut Token::default(),
    );
    assert_eq!(p.seen, ["Info: i", "prompt(echo=false): Code: "]);
    let no = Options::parse(["inline_messages=no"]).unwrap();
    let (_, _, p, _) = relay_as("sshd", &no, script(), &["1"], &mut Token::default());
    assert_eq!(p.seen, ["Info: i", "prompt(echo=false): Code: "]);
    let yes = Options::parse(["inline_messages=yes"]).unwrap();
    let (_, _, p, _) = relay_as("sudo", &yes, script(), &["1"], &mut Token::default());
    assert_eq!(p.seen, ["prompt(echo=false): i\nCode: "]);
}

#[test]
fn silence_is_unreachable_before_the_conversation_and_unavailable_after() {
    let timeout = || Err(ClientError::Timeout(Duration::from_secs(1)));
    let mut before = Scripted {
        replies: VecDeque::from([timeout()]),
        sent: Vec::new(),
    };
    let mut p = Person::default();
    assert_eq!(
        run(&mut before, &mut p, &Options::default()).0,
        Outcome::Unreachable
    );
    let mut after = Scripted {
        replies: VecDeque::from([Ok(prompt("Code: ")), timeout()]),
        sent: Vec::new(),
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

#[test]
fn single_prompt_splits_the_answer_and_hands_the_password_on() {
    // With debug on, so the check below covers every log line there is.
    let opts = Options::parse(["single_prompt", "debug"]).unwrap();
    let mut token = Token::default();
    let script = vec![prompt("Verification code: "), Response::Success];
    let (out, d, p, log) = relay_as("login", &opts, script, &["hunter2123456"], &mut token);
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        ["prompt(echo=false): Password & verification code: "]
    );
    assert_eq!(token.set.as_deref(), Some("hunter2"));
    assert_eq!(
        d.sent[1],
        Request::Answer {
            text: Secret::from("123456")
        }
    );
    assert!(!log.all().is_empty());
    assert!(!log.all().contains("hunter2"), "{}", log.all());
    assert!(!log.all().contains("123456"), "{}", log.all());
}

#[test]
fn single_prompt_asks_for_the_code_when_the_answer_has_none() {
    let opts = Options::parse(["single_prompt"]).unwrap();
    let mut token = Token::default();
    let script = vec![prompt("Verification code: "), Response::Success];
    let (out, d, p, _) = relay_as("login", &opts, script, &["hunter2", "654321"], &mut token);
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        [
            "prompt(echo=false): Password & verification code: ",
            "prompt(echo=false): Verification code: "
        ]
    );
    assert_eq!(token.set.as_deref(), Some("hunter2"));
    assert_eq!(
        d.sent[1],
        Request::Answer {
            text: Secret::from("654321")
        }
    );
}

#[test]
fn single_prompt_asks_once_then_retries_ask_for_the_code_only() {
    let opts = Options::parse(["single_prompt"]).unwrap();
    let mut token = Token::default();
    let script = vec![
        prompt("Verification code: "),
        error("Invalid verification code."),
        prompt("Verification code: "),
        Response::Success,
    ];
    let (out, d, p, _) = relay_as("login", &opts, script, &["pw000000", "111111"], &mut token);
    assert_eq!(out, Outcome::Success);
    assert_eq!(
        p.seen,
        [
            "prompt(echo=false): Password & verification code: ",
            "Error: Invalid verification code.",
            "prompt(echo=false): Verification code: "
        ]
    );
    assert_eq!(token.set.as_deref(), Some("pw"));
    assert_eq!(d.answers(), ["000000", "111111"]);
}

#[test]
fn single_prompt_leaves_an_authtok_set_by_an_earlier_module_alone() {
    let opts = Options::parse(["single_prompt"]).unwrap();
    let mut token = Token {
        preset: true,
        set: None,
    };
    let script = vec![prompt("Verification code: "), Response::Success];
    let (_, _, p, _) = relay_as("login", &opts, script, &["123456"], &mut token);
    assert_eq!(p.seen, ["prompt(echo=false): Verification code: "]);
    assert_eq!(token.set, None);
}

#[test]
fn single_prompt_never_combines_an_echoed_question() {
    let opts = Options::parse(["single_prompt"]).unwrap();
    let mut token = Token::default();
    let script = vec![
        Response::Prompt {
            text: "Name: ".into(),
            echo: true,
        },
        Response::Success,
    ];
    let (_, _, p, _) = relay_as("login", &opts, script, &["bob"], &mut token);
    assert_eq!(p.seen, ["prompt(echo=true): Name: "]);
    assert_eq!(token.set, None);
}
