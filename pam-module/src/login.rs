//! The login relay: the daemon drives, the module shows what it is sent and
//! returns the person's answers. Written against small traits so that it is
//! tested without libpam or a socket.

use crate::link::Link;
use crate::options::{FailMode, Options};
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
    /// The daemon said `Unavailable`, or went silent after the conversation
    /// had started. `failmode` does not apply.
    Unavailable,
    /// The daemon could not be reached (down, socket missing) or stayed
    /// silent before sending anything after `Begin`. `failmode` applies.
    Unreachable,
    /// The application's conversation could not answer a prompt.
    ConvError,
    /// Anything broken or unexpected; fails closed. The text is for the log.
    Failed(String),
}

impl Outcome {
    /// The PAM return code for this outcome under `failmode=secure`.
    pub fn pam_code(&self) -> i32 {
        use crate::ffi::{
            PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_SUCCESS,
        };
        match self {
            Outcome::Success => PAM_SUCCESS,
            Outcome::Denied | Outcome::Failed(_) => PAM_AUTH_ERR,
            Outcome::Ignore => PAM_IGNORE,
            Outcome::Unavailable | Outcome::Unreachable => PAM_AUTHINFO_UNAVAIL,
            Outcome::ConvError => PAM_CONV_ERR,
        }
    }

    /// The PAM return code under `opts.failmode`: with `failmode=safe` an
    /// unreachable or silent daemon lets the login through, and says so on
    /// authpriv. Garbage, truncation and the daemon's own `Unavailable` stay
    /// failures whatever the mode.
    ///
    /// A login the daemon refused returns [`Options::denied_code_for`] the
    /// service: sudo stops after it instead of asking the password and
    /// then the code again (each round would cost the tries again).
    pub fn pam_code_for(&self, opts: &Options, items: &LoginItems, log: &impl Log) -> i32 {
        match (self, opts.failmode) {
            (Outcome::Denied, _) => opts.denied_code_for(&items.service),
            (Outcome::Unreachable, FailMode::Safe) => {
                log.log(
                    Level::Error,
                    &format!(
                        "failmode=safe: letting user {:?} into service {:?} without a second factor because twofoldd is unreachable",
                        items.user, items.service
                    ),
                );
                crate::ffi::PAM_SUCCESS
            }
            _ => self.pam_code(),
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
    /// The `publickey` lines of `SSH_AUTH_INFO_0`, when sshd set it.
    pub ssh_auth_info: Option<String>,
}

/// The connection to the daemon for one login.
pub trait Daemon {
    /// Sends one request.
    fn send(&mut self, req: &Request) -> Result<(), ClientError>;
    /// Waits for the daemon's next response.
    fn recv(&mut self) -> Result<Response, ClientError>;
    /// The protocol version the daemon chose, known once its first
    /// response has been received.
    fn proto(&self) -> u32 {
        twofold_proto::PROTO_VERSION
    }
    /// Adds `extra` to the time budget: the daemon announced (`Wait`) that
    /// it waits on the person (a security key's touch), which is not the
    /// daemon's slowness.
    fn grant(&mut self, _extra: std::time::Duration) {}
}

/// What a `Wait` adds to the module's time budget: more than the daemon's
/// longest wait for a security key's touch (30 s by default).
pub const WAIT_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// Whether it refuses every message from now on (the module ran out of
    /// memory, see [`crate::reserve`]). The relay then joins no held lines
    /// for it: together they may be as long as many frames.
    fn closed(&self) -> bool {
        false
    }
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

/// What the stack knows of the person's typing before this line runs.
#[derive(Debug, Default)]
pub struct Typed {
    /// The code typed with the password in single-prompt mode.
    pub code: Option<Secret>,
    /// PAM_AUTHTOK: the password an earlier module verified, if any.
    pub password: Option<Secret>,
}

/// Connects to the daemon named by `opts`, checks who holds its socket
/// ([`trusted_daemon`]) and relays one login; the whole login waits on the
/// daemon for at most `opts.timeout` (see [`Link`]).
pub fn authenticate(
    opts: &Options,
    silent: bool,
    items: &LoginItems,
    conv: &mut impl Conversation,
    typed: Typed,
    log: &impl Log,
) -> Outcome {
    let mut link = match Link::connect(&opts.socket, opts.timeout) {
        Ok(c) => c,
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout(_))) => {
            log.log(Level::Error, &format!("daemon unavailable: {e}"));
            return Outcome::Unreachable;
        }
        Err(e) => return failed(log, format!("handshake with twofoldd failed: {e}")),
    };
    // Before anything is sent: an impostor learns neither the login's
    // items nor an answer.
    let peer = link
        .peer_uid()
        .map_err(|e| format!("cannot read the credentials of twofoldd's socket: {e}"))
        .and_then(|uid| trusted_daemon(opts, uid));
    if let Err(why) = peer {
        return failed(log, why);
    }
    relay(opts, silent, items, &mut link, conv, typed, log)
}

/// Whether the process holding the daemon's socket (`uid`: its SO_PEERCRED,
/// the effective uid it listened with) may answer for twofoldd: root, or
/// the `daemon_uid=` the admin named. Never the caller's own uid by
/// default: a screen locker runs the module as the person at the screen,
/// who must not be able to answer for the daemon.
///
/// Anything else fails closed as a malformed daemon would (PAM_AUTH_ERR,
/// whatever `failmode`), not as an unreachable one: it is not that twofoldd
/// is down but that someone else answers in its place, and a stack that
/// maps `authinfo_unavail` to `ignore` must not let that someone through.
pub fn trusted_daemon(opts: &Options, uid: u32) -> Result<(), String> {
    if uid == 0 || opts.daemon_uid == Some(uid) {
        return Ok(());
    }
    let allowed = match opts.daemon_uid {
        Some(d) => format!("root or daemon_uid={d}"),
        None => "root (set daemon_uid= when twofoldd runs as its own user)".into(),
    };
    Err(format!(
        "refusing the daemon at {}: its socket is held by uid {uid}, not {allowed}",
        opts.socket.display()
    ))
}

/// Runs one login conversation on an established connection.
///
/// `typed.code` is the code the person typed with the password
/// (single-prompt mode): it answers the daemon's first message if that is
/// a hidden prompt, without asking. If the daemon shows anything first
/// (e.g. a QR code to enroll), the code was typed before the person saw
/// the question and is wiped unused; every later question is asked as
/// usual.
///
/// `typed.password` is PAM_AUTHTOK. An answer equal to it (compared in
/// constant time) is not sent: the daemon is told `PasswordAnswer`
/// instead, which it does not count as a wrong code. Programs that ask
/// one question (i3lock) answer every prompt with the password, and would
/// otherwise lock their user out.
///
/// `silent` is PAM_SILENT (sudo sets it): nothing is shown on its own.
/// Information and error lines are carried inside the next prompt's text
/// (`Invalid verification code.` above `Verification code: `); lines left
/// when the login ends are shown only if it failed, as the reason the
/// application reports; prompts and waits are shown, since the person
/// must act.
///
/// When [`Options::inline_for`] the service, information and error lines are
/// held back and shown at the start of the next prompt's text, one per line,
/// so that sshd's keyboard-interactive puts them on the ssh user's screen
/// with the question (OpenSSH bug 2876); lines left over when the login ends
/// are shown as one message then.
pub fn relay(
    opts: &Options,
    silent: bool,
    items: &LoginItems,
    daemon: &mut impl Daemon,
    conv: &mut impl Conversation,
    typed: Typed,
    log: &impl Log,
) -> Outcome {
    let mut r = Relay {
        opts,
        inline: silent || opts.inline_for(&items.service),
        held: Vec::new(),
        started: false,
        typed: typed.code,
        password: typed.password,
        log,
    };
    let out = r.run(items, daemon, conv);
    if silent && matches!(out, Outcome::Success | Outcome::Ignore) {
        // Nothing went wrong: under PAM_SILENT there is nothing to say.
        r.held.clear();
    }
    r.flush(conv);
    out
}

/// The state of one relayed login.
struct Relay<'a, L: Log> {
    opts: &'a Options,
    /// Carry lines inside the next prompt.
    inline: bool,
    /// Lines held back for the next prompt.
    held: Vec<(Notice, String)>,
    /// The daemon has sent something after `Begin`: from then on silence is
    /// `Unavailable`, to which `failmode` does not apply.
    started: bool,
    /// The code typed with the password, until the daemon's first message.
    typed: Option<Secret>,
    /// PAM_AUTHTOK, to recognise the password typed at a code prompt.
    password: Option<Secret>,
    log: &'a L,
}

impl<L: Log> Relay<'_, L> {
    fn debug(&self, msg: &str) {
        if self.opts.debug {
            self.log.log(Level::Debug, msg);
        }
    }

    fn run(
        &mut self,
        items: &LoginItems,
        daemon: &mut impl Daemon,
        conv: &mut impl Conversation,
    ) -> Outcome {
        self.debug(&format!(
            "begin login: user={:?} service={:?} rhost={:?} tty={:?} ruser={:?}",
            items.user, items.service, items.rhost, items.tty, items.ruser
        ));
        let begin = Request::Begin {
            user: items.user.clone(),
            service: items.service.clone(),
            rhost: items.rhost.clone(),
            tty: items.tty.clone(),
            ruser: items.ruser.clone(),
            ssh_auth_info: items.ssh_auth_info.clone(),
        };
        if let Err(e) = daemon.send(&begin) {
            return self.link_error(e);
        }
        for _ in 0..MAX_MESSAGES {
            let resp = match daemon.recv() {
                Ok(r) => r,
                Err(e) => return self.link_error(e),
            };
            self.started = true;
            let typed = self.typed_answer(&resp);
            self.debug(&format!("daemon sent {}", response_name(&resp)));
            if shown_text(&resp).is_some_and(|t| t.contains('\0')) {
                // A C string would cut the text short at the NUL.
                return failed(
                    self.log,
                    format!(
                        "daemon sent a {} containing a NUL byte",
                        response_name(&resp)
                    ),
                );
            }
            let reply = match resp {
                Response::Prompt { text, echo } => match self.ask(&text, echo, typed, conv) {
                    Ok(answer) => self.answer(answer, daemon.proto()),
                    Err(out) => return out,
                },
                Response::Info { text } if self.inline => self.hold(Notice::Info, text),
                Response::Error { text } if self.inline => self.hold(Notice::Error, text),
                Response::Info { text } => show(conv, Notice::Info, &text, &|m| self.debug(m)),
                Response::Error { text } => show(conv, Notice::Error, &text, &|m| self.debug(m)),
                Response::Wait { text } => {
                    // The person must see this now, before the daemon waits.
                    self.flush(conv);
                    daemon.grant(WAIT_ALLOWANCE);
                    show(conv, Notice::Info, &text, &|m| self.debug(m))
                }
                Response::Success => return Outcome::Success,
                Response::Denied { reason, message } => {
                    self.debug(&format!("denied: {reason}"));
                    if let Some(text) = message {
                        self.last_lines(conv, &text);
                    }
                    return Outcome::Denied;
                }
                Response::Ignore => return Outcome::Ignore,
                Response::Unavailable => {
                    self.log
                        .log(Level::Notice, "twofoldd says it is unavailable");
                    return Outcome::Unavailable;
                }
                Response::Failed { kind, message } => {
                    return failed(
                        self.log,
                        format!("daemon failed the login: {kind:?}: {message}"),
                    )
                }
                other => {
                    return failed(
                        self.log,
                        format!("unexpected {} in a login", response_name(&other)),
                    )
                }
            };
            let sent = daemon.send(&reply);
            // The answer's Secret is wiped here, before anything else happens.
            drop(reply);
            if let Err(e) = sent {
                return self.link_error(e);
            }
        }
        failed(
            self.log,
            format!("daemon sent more than {MAX_MESSAGES} messages in one login"),
        )
    }

    /// The code typed with the password, if `resp` may take it: it is the
    /// daemon's first message (the code is taken out at the first, used or
    /// wiped) and a hidden question.
    fn typed_answer(&mut self, resp: &Response) -> Option<Secret> {
        let code = self.typed.take()?;
        if matches!(resp, Response::Prompt { echo: false, .. }) {
            return Some(code);
        }
        self.debug("single_prompt=verify: the daemon's first message is not a hidden question; the code typed with the password is not used");
        None
    }

    /// The reply to a prompt: the answer, or `PasswordAnswer` when it is
    /// the password the stack verified and the daemon speaks protocol 3
    /// (an older daemon is sent the answer, as before).
    fn answer(&self, answer: Secret, proto: u32) -> Request {
        let is_password = self
            .password
            .as_ref()
            .is_some_and(|p| !p.is_empty() && p.same_as(answer.expose().as_bytes()));
        if is_password && proto >= 3 {
            self.debug("the answer is the password the stack verified; telling the daemon so instead of sending it");
            return Request::PasswordAnswer;
        }
        Request::Answer { text: answer }
    }

    /// Shows the lines that come with `Denied`, each as an error line, as
    /// the daemon's `Error`s would be shown, or held (and flushed as the
    /// login ends) when lines go inline.
    fn last_lines(&mut self, conv: &mut impl Conversation, text: &str) {
        for line in text.lines() {
            if self.inline {
                self.hold(Notice::Error, line.to_owned());
            } else {
                show(conv, Notice::Error, line, &|m| self.debug(m));
            }
        }
    }

    /// Holds a line back for the next prompt.
    fn hold(&mut self, kind: Notice, text: String) -> Request {
        self.held.push((kind, text));
        Request::Ack
    }

    /// Shows the lines held back, as one message, and forgets them.
    fn flush(&mut self, conv: &mut impl Conversation) {
        if self.held.is_empty() {
            return;
        }
        if conv.closed() {
            self.held.clear();
            return;
        }
        let kind = if self.held.iter().any(|(k, _)| *k == Notice::Error) {
            Notice::Error
        } else {
            Notice::Info
        };
        let text = self.take_held(0);
        show(conv, kind, text.trim_end_matches('\n'), &|m| self.debug(m));
    }

    /// The lines held back, each ending in a newline, with room for `more`
    /// bytes after them: sized once, since a daemon's line may be as long
    /// as a frame and a string that grows copies itself each time.
    fn take_held(&mut self, more: usize) -> String {
        let len = self
            .held
            .iter()
            .map(|(_, line)| line.len() + 1)
            .sum::<usize>();
        let mut text = String::with_capacity(len.saturating_add(more));
        for (_, line) in self.held.drain(..) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Asks the daemon's question, with any held lines in front of it, or
    /// answers it with `typed`, the code typed with the password (only ever
    /// given for the daemon's first message, a hidden prompt).
    fn ask(
        &mut self,
        text: &str,
        echo: bool,
        typed: Option<Secret>,
        conv: &mut impl Conversation,
    ) -> Result<Secret, Outcome> {
        if let Some(code) = typed {
            self.debug("single_prompt=verify: answering with the code typed with the password");
            return Ok(code);
        }
        if conv.closed() {
            // It refuses the question; the held lines are not joined to it.
            return self.prompt(conv, text, echo);
        }
        let mut question = self.take_held(text.len());
        question.push_str(text);
        self.prompt(conv, &question, echo)
    }

    fn prompt(
        &self,
        conv: &mut impl Conversation,
        text: &str,
        echo: bool,
    ) -> Result<Secret, Outcome> {
        conv.prompt(text, echo).map_err(|ConvError(why)| {
            self.log.log(
                Level::Notice,
                &format!("conversation failed on a prompt: {why}"),
            );
            Outcome::ConvError
        })
    }

    /// Maps a broken link to the daemon: silence or absence is
    /// `Unreachable` before the daemon said anything after `Begin` and
    /// `Unavailable` after; anything else (garbage, truncation, oversized
    /// frames) fails closed.
    fn link_error(&self, e: ClientError) -> Outcome {
        let timeout = self.opts.timeout;
        let quiet = match e {
            ClientError::Timeout(_) => {
                self.log.log(
                    Level::Error,
                    &format!("twofoldd did not answer within {}s", timeout.as_secs()),
                );
                true
            }
            ClientError::Unreachable { .. } => {
                self.log
                    .log(Level::Error, &format!("daemon unavailable: {e}"));
                true
            }
            other => return failed(self.log, format!("talking to twofoldd failed: {other}")),
        };
        match (quiet, self.started) {
            (true, false) => Outcome::Unreachable,
            _ => Outcome::Unavailable,
        }
    }
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
        Response::Denied { message, .. } => message.as_deref(),
        _ => None,
    }
}

fn failed(log: &impl Log, msg: String) -> Outcome {
    log.log(Level::Error, &msg);
    Outcome::Failed(msg)
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
