use super::*;
use crate::login::Notice;
use std::cell::RefCell;
use std::collections::VecDeque;

/// A conversation with queued answers that records what it was asked.
#[derive(Default)]
struct Person {
    answers: VecDeque<Result<Secret, ConvError>>,
    seen: Vec<String>,
}

impl Person {
    fn answering(a: &str) -> Person {
        Person {
            answers: VecDeque::from([Ok(Secret::from(a))]),
            seen: Vec::new(),
        }
    }
}

impl Conversation for Person {
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError> {
        self.seen.push(format!("prompt(echo={echo}): {text}"));
        self.answers
            .pop_front()
            .unwrap_or(Err(ConvError("no answer queued")))
    }

    fn show(&mut self, kind: Notice, text: &str) -> Result<(), ConvError> {
        self.seen.push(format!("{kind:?}: {text}"));
        Ok(())
    }
}

/// PAM_AUTHTOK as a plain field.
#[derive(Default)]
struct Token {
    preset: bool,
    set: Option<String>,
}

impl Authtok for Token {
    fn is_set(&self) -> bool {
        self.preset || self.set.is_some()
    }

    fn set(&mut self, password: &Secret) -> Result<(), &'static str> {
        self.set = Some(password.expose().to_owned());
        Ok(())
    }
}

/// PAM data as a plain field.
#[derive(Default)]
struct Kept(Option<Typed>);

impl Stash for Kept {
    fn put(&mut self, typed: Typed) -> Result<(), &'static str> {
        self.0 = Some(typed);
        Ok(())
    }

    fn take(&mut self) -> Option<Typed> {
        self.0.take()
    }
}

#[derive(Default)]
struct Lines(RefCell<Vec<(Level, String)>>);

impl Log for Lines {
    fn log(&self, level: Level, msg: &str) {
        self.0.borrow_mut().push((level, msg.to_owned()));
    }
}

impl Lines {
    fn all(&self) -> String {
        self.0
            .borrow()
            .iter()
            .map(|(l, m)| format!("{l:?} {m}\n"))
            .collect()
    }
}

fn ask_opts() -> Options {
    Options::parse(["single_prompt=ask", "debug"]).unwrap()
}

fn code_of(kept: &Kept) -> Option<&str> {
    kept.0
        .as_ref()
        .and_then(|t| t.code.as_ref())
        .map(|c| c.expose())
}

#[test]
fn ask_splits_the_answer_hands_the_password_on_and_keeps_the_code() {
    let (mut p, mut token, mut kept, log) = (
        Person::answering("hunter2123456"),
        Token::default(),
        Kept::default(),
        Lines::default(),
    );
    let out = ask(&ask_opts(), "alice", &mut p, &mut token, &mut kept, &log);
    assert_eq!(out, Outcome::Ignore);
    assert_eq!(
        p.seen,
        ["prompt(echo=false): Password & verification code: "]
    );
    assert_eq!(token.set.as_deref(), Some("hunter2"));
    assert_eq!(code_of(&kept), Some("123456"));
    assert_eq!(kept.0.as_ref().map(|t| t.user.as_str()), Some("alice"));
    // Debug is on, so every line there is was checked.
    assert!(!log.all().is_empty());
    assert!(!log.all().contains("hunter2"), "{}", log.all());
    assert!(!log.all().contains("123456"), "{}", log.all());
}

/// No code at the end: all of it is the password, and the marker is kept
/// (without a code) so `verify` asks and a missing `verify` line shows.
#[test]
fn ask_keeps_a_marker_without_a_code_when_the_answer_has_none() {
    let (mut p, mut token, mut kept) = (
        Person::answering("hunter2"),
        Token::default(),
        Kept::default(),
    );
    let out = ask(
        &ask_opts(),
        "alice",
        &mut p,
        &mut token,
        &mut kept,
        &Lines::default(),
    );
    assert_eq!(out, Outcome::Ignore);
    assert_eq!(token.set.as_deref(), Some("hunter2"));
    assert!(kept.0.is_some());
    assert_eq!(code_of(&kept), None);
}

/// A code left by an earlier `pam_authenticate` on the same handle (the
/// password was wrong) never outlives the next `ask`, even one that fails.
#[test]
fn ask_wipes_a_code_left_by_an_earlier_attempt() {
    let mut kept = Kept(Some(Typed {
        user: "alice".into(),
        code: Some(Secret::from("000000")),
    }));
    let mut p = Person::default();
    let out = ask(
        &ask_opts(),
        "alice",
        &mut p,
        &mut Token::default(),
        &mut kept,
        &Lines::default(),
    );
    assert_eq!(out, Outcome::ConvError);
    assert!(kept.0.is_none());
}

#[test]
fn ask_leaves_an_authtok_set_by_an_earlier_module_alone() {
    let mut token = Token {
        preset: true,
        set: None,
    };
    let (mut p, mut kept) = (Person::default(), Kept::default());
    let out = ask(
        &ask_opts(),
        "alice",
        &mut p,
        &mut token,
        &mut kept,
        &Lines::default(),
    );
    assert_eq!(out, Outcome::Ignore);
    assert!(p.seen.is_empty());
    assert_eq!(token.set, None);
    assert!(kept.0.is_some());
    assert_eq!(code_of(&kept), None);
}

#[test]
fn ask_fails_closed_when_the_password_cannot_be_handed_on() {
    struct Refusing;
    impl Authtok for Refusing {
        fn is_set(&self) -> bool {
            false
        }
        fn set(&mut self, _: &Secret) -> Result<(), &'static str> {
            Err("nope")
        }
    }
    let mut kept = Kept::default();
    let out = ask(
        &ask_opts(),
        "alice",
        &mut Person::answering("pw123456"),
        &mut Refusing,
        &mut kept,
        &Lines::default(),
    );
    assert!(matches!(out, Outcome::Failed(_)), "{out:?}");
    assert_eq!(out.pam_code(), crate::ffi::PAM_AUTH_ERR);
    assert!(kept.0.is_none());
}

#[test]
fn verify_takes_the_code_once_and_only_for_the_same_user() {
    let opts = Options::parse(["single_prompt=verify"]).unwrap();
    let typed = || {
        Kept(Some(Typed {
            user: "alice".into(),
            code: Some(Secret::from("123456")),
        }))
    };
    let log = Lines::default();
    let mut kept = typed();
    let code = kept_code(&opts, "alice", &mut kept, &log);
    assert_eq!(code.as_ref().map(|c| c.expose()), Some("123456"));
    assert!(kept.0.is_none());
    assert!(kept_code(&opts, "alice", &mut kept, &log).is_none());
    let mut kept = typed();
    assert!(kept_code(&opts, "bob", &mut kept, &log).is_none());
    assert!(kept.0.is_none());
    assert!(log.all().contains("PAM_USER changed"), "{}", log.all());
    assert!(!log.all().contains("123456"), "{}", log.all());
}
