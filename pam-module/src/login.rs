//! The login relay: the daemon drives, the module shows what it is sent and
//! returns the person's answers. Written against small traits so that it is
//! tested without libpam or a socket.

use crate::options::Options;
use std::time::Duration;
use twofold_proto::{response_name, Client, ClientError, Request, Response, Secret};

/// Daemon messages accepted in one login; a daemon that sends more is
/// treated as broken, so a loop cannot hold sshd forever.
pub const MAX_MESSAGES: usize = 64;

/// The client name sent in `Hello`, for the daemon's log.
pub const CLIENT_NAME: &str = concat!("pam_twofold/", env!("CARGO_PKG_VERSION"));

/// How a login ended, before it becomes a PAM code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The daemon said `Success`.
    Success,
    /// The daemon said `Denied`.
    Denied,
    /// The daemon said `Ignore`: twofold has no say in this login.
    Ignore,
    /// The daemon could not be reached, did not answer in time, or said `Unavailable`.
    Unavailable,
    /// The application's conversation could not answer a prompt.
    ConvError,
    /// Anything broken or unexpected; fails closed. The text is for the log.
    Failed(String),
}

impl Outcome {
    /// The PAM return code for this outcome.
    pub fn pam_code(&self) -> i32 {
        use crate::ffi::{
            PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_SUCCESS,
        };
        match self {
            Outcome::Success => PAM_SUCCESS,
            Outcome::Denied | Outcome::Failed(_) => PAM_AUTH_ERR,
            Outcome::Ignore => PAM_IGNORE,
            Outcome::Unavailable => PAM_AUTHINFO_UNAVAIL,
            Outcome::ConvError => PAM_CONV_ERR,
        }
    }
}

/// The PAM items that describe a login, sent to the daemon in `Begin`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginItems {
    /// PAM_USER.
    pub user: String,
    /// PAM_SERVICE.
    pub service: String,
    /// PAM_RHOST, when the application set it.
    pub rhost: Option<String>,
    /// PAM_TTY, when the application set it.
    pub tty: Option<String>,
    /// PAM_RUSER, when the application set it.
    pub ruser: Option<String>,
}

/// The connection to the daemon for one login.
pub trait Daemon {
    /// Sends one request.
    fn send(&mut self, req: &Request) -> Result<(), ClientError>;
    /// Waits for the daemon's next response.
    fn recv(&mut self) -> Result<Response, ClientError>;
}

impl Daemon for Client {
    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        Client::send(self, req)
    }

    fn recv(&mut self) -> Result<Response, ClientError> {
        Client::recv(self)
    }
}

/// What kind of line [`Conversation::show`] displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// PAM_TEXT_INFO.
    Info,
    /// PAM_ERROR_MSG.
    Error,
}

/// The conversation could not produce what was asked; the text is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError(pub &'static str);

/// The application's side of the login: the PAM conversation.
pub trait Conversation {
    /// Asks the person one question; `echo` says whether typing may be shown.
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError>;
    /// Shows one line that needs no answer.
    fn show(&mut self, kind: Notice, text: &str) -> Result<(), ConvError>;
}

/// Syslog priority of a log line (facility is always authpriv).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// LOG_ERR: the login failed because something is broken.
    Error,
    /// LOG_NOTICE: worth an admin's attention.
    Notice,
    /// LOG_DEBUG: only with the `debug` option.
    Debug,
}

/// Where log lines go. Implementations must never be given a code or secret,
/// and the relay never passes one.
pub trait Log {
    /// Writes one line.
    fn log(&self, level: Level, msg: &str);
}

/// Connects to the daemon named by `opts` and relays one login.
pub fn authenticate(
    opts: &Options,
    silent: bool,
    items: &LoginItems,
    conv: &mut impl Conversation,
    log: &impl Log,
) -> Outcome {
    let mut client = match Client::connect(&opts.socket, opts.timeout, CLIENT_NAME) {
        Ok(c) => c,
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout(_))) => {
            log.log(Level::Error, &format!("daemon unavailable: {e}"));
            return Outcome::Unavailable;
        }
        Err(e) => return failed(log, format!("handshake with twofoldd failed: {e}")),
    };
    relay(opts, silent, items, &mut client, conv, log)
}

/// Runs one login conversation on an established connection.
///
/// `silent` is PAM_SILENT: information and error lines are not shown (but
/// still acknowledged); prompts and waits are, since the person must act.
pub fn relay(
    opts: &Options,
    silent: bool,
    items: &LoginItems,
    daemon: &mut impl Daemon,
    conv: &mut impl Conversation,
    log: &impl Log,
) -> Outcome {
    let debug = |msg: &str| {
        if opts.debug {
            log.log(Level::Debug, msg);
        }
    };
    debug(&format!(
        "begin login: user={:?} service={:?} rhost={:?} tty={:?} ruser={:?}",
        items.user, items.service, items.rhost, items.tty, items.ruser
    ));
    let begin = Request::Begin {
        user: items.user.clone(),
        service: items.service.clone(),
        rhost: items.rhost.clone(),
        tty: items.tty.clone(),
        ruser: items.ruser.clone(),
    };
    if let Err(e) = daemon.send(&begin) {
        return link_error(log, opts.timeout, e);
    }
    for _ in 0..MAX_MESSAGES {
        let resp = match daemon.recv() {
            Ok(r) => r,
            Err(e) => return link_error(log, opts.timeout, e),
        };
        debug(&format!("daemon sent {}", response_name(&resp)));
        if shown_text(&resp).is_some_and(|t| t.contains('\0')) {
            // A C string would cut the text short at the NUL.
            return failed(
                log,
                format!(
                    "daemon sent a {} containing a NUL byte",
                    response_name(&resp)
                ),
            );
        }
        let reply = match resp {
            Response::Prompt { text, echo } => match conv.prompt(&text, echo) {
                Ok(answer) => Request::Answer { text: answer },
                Err(ConvError(why)) => {
                    log.log(
                        Level::Notice,
                        &format!("conversation failed on a prompt: {why}"),
                    );
                    return Outcome::ConvError;
                }
            },
            Response::Info { text } if !silent => show(conv, Notice::Info, &text, &debug),
            Response::Wait { text } => show(conv, Notice::Info, &text, &debug),
            Response::Error { text } if !silent => show(conv, Notice::Error, &text, &debug),
            Response::Info { .. } | Response::Error { .. } => Request::Ack,
            Response::Success => return Outcome::Success,
            Response::Denied { reason } => {
                debug(&format!("denied: {reason}"));
                return Outcome::Denied;
            }
            Response::Ignore => return Outcome::Ignore,
            Response::Unavailable => {
                log.log(Level::Notice, "twofoldd says it is unavailable");
                return Outcome::Unavailable;
            }
            Response::Failed { kind, message } => {
                return failed(log, format!("daemon failed the login: {kind:?}: {message}"))
            }
            other => {
                return failed(
                    log,
                    format!("unexpected {} in a login", response_name(&other)),
                )
            }
        };
        let sent = daemon.send(&reply);
        // The answer's Secret is wiped here, before anything else happens.
        drop(reply);
        if let Err(e) = sent {
            return link_error(log, opts.timeout, e);
        }
    }
    failed(
        log,
        format!("daemon sent more than {MAX_MESSAGES} messages in one login"),
    )
}

/// Shows a line; a conversation that refuses or ignores it is tolerated
/// (desktop greeters do that), so the login goes on.
fn show(conv: &mut impl Conversation, kind: Notice, text: &str, debug: &impl Fn(&str)) -> Request {
    if let Err(ConvError(why)) = conv.show(kind, text) {
        debug(&format!(
            "conversation did not show a message ({why}); going on"
        ));
    }
    Request::Ack
}

/// The text a response asks the module to show, if any.
fn shown_text(r: &Response) -> Option<&str> {
    match r {
        Response::Prompt { text, .. }
        | Response::Info { text }
        | Response::Error { text }
        | Response::Wait { text } => Some(text),
        _ => None,
    }
}

/// Maps a broken link to the daemon: silence is "unavailable", anything
/// else (garbage, truncation, oversized frames) fails closed.
fn link_error(log: &impl Log, timeout: Duration, e: ClientError) -> Outcome {
    match e {
        ClientError::Timeout(_) => {
            log.log(
                Level::Error,
                &format!("twofoldd did not answer within {}s", timeout.as_secs()),
            );
            Outcome::Unavailable
        }
        ClientError::Unreachable { .. } => {
            log.log(Level::Error, &format!("daemon unavailable: {e}"));
            Outcome::Unavailable
        }
        other => failed(log, format!("talking to twofoldd failed: {other}")),
    }
}

fn failed(log: &impl Log, msg: String) -> Outcome {
    log.log(Level::Error, &msg);
    Outcome::Failed(msg)
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
