//! Desktop greeters and screen lockers through the real libpam against the
//! real daemon: conversations that return nothing for information lines or
//! refuse them, prompts answered empty or with no answer at all, and a
//! screen unlock where the application runs PAM as the unprivileged user
//! itself (a child process as `nobody`, unlocking `nobody`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use twofold_tests::daemon::{assert_child_ok, TestDaemon};
use twofold_tests::otp::wrong_code;
use twofold_tests::pam::*;
use twofold_tests::require_root;

const PROMPT: &str = "Verification code: ";

fn login(d: &TestDaemon, user: &str, conv: Conversation) -> (PamCode, Transcript) {
    let pam = d.pam();
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(conv)
        .unwrap()
}

/// A greeter that returns PAM_SUCCESS and no reply array for information
/// and error lines, or refuses them outright: the login goes on, and the
/// second try after a wrong code succeeds.
#[test]
fn greeters_that_return_nothing_or_refuse_info_lines_still_log_in() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 2);
    let alice = d.enroll("alice");
    for (i, notices) in [Notices::NoReply, Notices::ConvErr].into_iter().enumerate() {
        d.clock.advance(30 * (i as u64 + 1) * 3);
        let code = d.code(&alice.secret, 0);
        let (rc, t) = login(
            &d,
            "alice",
            Conversation::new()
                .notices(notices)
                .answer(wrong_code(&code))
                .answer(&code),
        );
        assert_eq!(rc, PAM_SUCCESS, "{notices:?}: {t:?}");
        assert_eq!(t.prompts(), [PROMPT, PROMPT], "{notices:?}");
        // The error line was offered to the greeter between the prompts.
        assert_eq!(t.errors(), ["Invalid verification code."], "{notices:?}");
    }
}

/// An empty answer (the person pressed Enter in the unlock dialog) is a wrong
/// try, counted by the daemon, never a crash or a success.
#[test]
fn an_empty_answer_is_a_wrong_try() {
    let d = TestDaemon::start_with(|c| c.login.max_tries = 2);
    let alice = d.enroll("alice");
    let code = d.code(&alice.secret, 0);
    let (rc, t) = login(&d, "alice", Conversation::new().answer("").answer(&code));
    assert_eq!(rc, PAM_SUCCESS, "{t:?}");
    assert_eq!(t.errors(), ["Invalid verification code."]);

    d.clock.advance(90);
    let (rc, _) = login(&d, "alice", Conversation::new().answer("").answer(""));
    assert_eq!(rc, PAM_AUTH_ERR);
}

/// A greeter whose reply carries no answer at all (a null pointer, or no
/// reply array) ends the login with a conversation error; nothing is sent
/// in its place.
#[test]
fn a_prompt_with_no_answer_at_all_is_a_conversation_error() {
    let d = TestDaemon::start();
    d.enroll("alice");
    for reply in [Reply::NullAnswer, Reply::NoReply, Reply::ConvErr] {
        let (rc, t) = login(&d, "alice", Conversation::new().reply(reply.clone()));
        assert_eq!(rc, PAM_CONV_ERR, "{reply:?}: {t:?}");
    }
    assert!(!d.log_text().contains("result=success"), "{}", d.log_text());
}

/// Environment variable that turns [`screen_unlock_child`] into the child.
const CHILD_ENV: &str = "TWOFOLD_UNLOCK_CHILD";

/// The screen-locker side: started by [`screen_unlock_as_the_user_itself`]
/// (as `nobody`, with [`CHILD_ENV`] set), runs one login through libpam and
/// prints its result.
#[test]
#[ignore = "run by screen_unlock_as_the_user_itself as uid 65534"]
fn screen_unlock_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        panic!(
            "a child entry point: run by screen_unlock_as_the_user_itself, which sets {CHILD_ENV}"
        );
    };
    let mut parts = spec.splitn(3, '\n');
    let (confdir, user, answer) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let (rc, t) = PamLogin::new(std::path::Path::new(confdir), "tf", user)
        .unwrap()
        .authenticate(Conversation::new().answer(answer))
        .unwrap();
    println!(
        "UNLOCK uid={uid} result={} prompts={:?}",
        rc.name(),
        t.prompts()
    );
    println!("child ok");
}

/// Runs [`screen_unlock_child`] in a child process as `nobody`.
fn unlock_as_nobody(confdir: &std::path::Path, user: &str, answer: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "screen_unlock_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{user}\n{answer}", confdir.display()),
        )
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_child_ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screen locker runs PAM as the logged-in user, not as root: the daemon
/// allows a login for the peer's own name, and only that.
#[test]
fn screen_unlock_as_the_user_itself() {
    require_root();
    let d = TestDaemon::start();
    let nobody = d.enroll("nobody");
    d.enroll("alice");
    let pam = d.pam();
    // The locker (as nobody) must read its PAM configuration.
    std::fs::set_permissions(pam.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let code = d.code(&nobody.secret, 0);
    let shown = unlock_as_nobody(pam.dir(), "nobody", &code);
    assert!(
        shown.contains("UNLOCK uid=65534 result=PAM_SUCCESS prompts=[\"Verification code: \"]"),
        "{shown}\n{}",
        d.log_text()
    );
    assert!(d.log_text().contains("peer_uid=65534"), "{}", d.log_text());

    // The same locker may not unlock someone else's account.
    d.clock.advance(30);
    let shown = unlock_as_nobody(pam.dir(), "alice", &d.code(&nobody.secret, 0));
    assert!(
        shown.contains("UNLOCK uid=65534 result=PAM_AUTH_ERR"),
        "{shown}"
    );
    assert!(
        d.log_text().contains("result=permission_denied"),
        "{}",
        d.log_text()
    );
}
