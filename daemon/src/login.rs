//! The login conversation driven for the PAM module.
//!
//! **Invariant:** the daemon decides everything (prompt, retries, outcome);
//! the module only shows what it is sent and relays the answer.

use crate::conn::{Conn, Incoming};
use crate::engine::{Verdict, VerifyError};
use crate::validate;
use twofold_proto::{ErrorKind, Request, Response};

/// Text shown after a wrong code.
pub const INVALID_CODE: &str = "Invalid verification code.";

/// The PAM items of a `Begin`.
pub(crate) struct Begin {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    pub ruser: Option<String>,
}

/// Runs one login conversation to its end.
pub(crate) fn run(conn: &mut Conn<'_>, b: &Begin) {
    let uid = conn.peer.cred.uid.to_string();
    let log = |result: &str, extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("user", b.user.as_str()),
            ("service", b.service.as_str()),
            ("rhost", b.rhost.as_deref().unwrap_or("")),
            ("tty", b.tty.as_deref().unwrap_or("")),
            ("result", result),
        ];
        fields.extend_from_slice(extra);
        fields.push(("ruser", b.ruser.as_deref().unwrap_or("")));
        fields.push(("peer_uid", uid.as_str()));
        conn.engine.log.event("login", &fields);
    };
    let valid = validate::user(&b.user)
        .and_then(|()| validate::service(&b.service))
        .and_then(|()| validate::item("rhost", b.rhost.as_deref()))
        .and_then(|()| validate::item("tty", b.tty.as_deref()))
        .and_then(|()| validate::item("ruser", b.ruser.as_deref()));
    if let Err(e) = valid {
        log("bad_request", &[("error", &e.to_string())]);
        conn.send_failed(ErrorKind::BadRequest, &e.to_string());
        return;
    }
    if !conn.peer.is_root() && !conn.peer.is_self(&b.user) {
        log("permission_denied", &[]);
        conn.send_failed(
            ErrorKind::PermissionDenied,
            "only root may run a login for another user",
        );
        return;
    }
    match conn.engine.has_login_factor(&b.user) {
        Ok(true) => {}
        Ok(false) => {
            log("ignore", &[("reason", "not enrolled")]);
            conn.send(&Response::Ignore);
            return;
        }
        Err(e) => {
            log("unavailable", &[("error", &e.to_string())]);
            conn.send(&Response::Unavailable);
            return;
        }
    }
    let max = conn.engine.config.login.max_tries;
    for attempt in 1..=max {
        let prompt = Response::Prompt {
            text: conn.engine.config.login.prompt.clone(),
            echo: false,
        };
        if !conn.send(&prompt) {
            log("abandoned", &[]);
            return;
        }
        let answer = match conn.recv() {
            Incoming::Request(Request::Answer { text }) => text,
            Incoming::End => {
                log("abandoned", &[]);
                return;
            }
            Incoming::Request(other) => {
                log(
                    "bad_request",
                    &[("error", &format!("expected answer, got {}", other.kind()))],
                );
                conn.send_failed(ErrorKind::BadRequest, "expected an answer to the prompt");
                return;
            }
            Incoming::Unknown(kind) => {
                log(
                    "bad_request",
                    &[("error", &format!("expected answer, got {kind}"))],
                );
                conn.send_failed(ErrorKind::BadRequest, "expected an answer to the prompt");
                return;
            }
        };
        let verdict = conn.engine.verify_login(&b.user, &answer);
        drop(answer);
        match verdict {
            Ok(Verdict::Accepted(method)) => {
                log("success", &[("method", method.as_str())]);
                conn.send(&Response::Success);
                return;
            }
            Ok(Verdict::Rejected(why)) => {
                let shown = attempt.to_string();
                log("invalid_code", &[("try", &shown), ("reason", why)]);
                if !conn.send(&Response::Error {
                    text: INVALID_CODE.into(),
                }) {
                    return;
                }
                match conn.recv() {
                    Incoming::Request(Request::Ack) => {}
                    Incoming::End => return,
                    _ => {
                        conn.log_error("expected ack");
                        conn.send_failed(ErrorKind::BadRequest, "expected an ack");
                        return;
                    }
                }
            }
            Err(VerifyError::Storage(e)) => {
                log("unavailable", &[("error", &e.to_string())]);
                conn.send(&Response::Unavailable);
                return;
            }
            Err(VerifyError::Decrypt(e)) => {
                log("denied", &[("error", &e.to_string())]);
                conn.send(&Response::Denied {
                    reason: "the stored credential cannot be decrypted".into(),
                });
                return;
            }
        }
    }
    log("denied", &[("reason", "too many invalid codes")]);
    conn.send(&Response::Denied {
        reason: format!("{max} invalid verification codes"),
    });
}
