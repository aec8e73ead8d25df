//! The scripted application side of a PAM conversation, and the transcript
//! of what a module sent through it.

use crate::pam::{PamMessage, PamResponse};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

const PAM_SUCCESS: c_int = 0;
const PAM_CONV_ERR: c_int = 19;

/// The style of one conversation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// PAM_PROMPT_ECHO_OFF: a question whose answer is not shown (a code).
    EchoOff,
    /// PAM_PROMPT_ECHO_ON: a question whose answer is shown.
    EchoOn,
    /// PAM_ERROR_MSG.
    ErrorMsg,
    /// PAM_TEXT_INFO.
    TextInfo,
    /// Any other style number.
    Other(i32),
}

impl Style {
    fn from_raw(v: c_int) -> Style {
        match v {
            1 => Style::EchoOff,
            2 => Style::EchoOn,
            3 => Style::ErrorMsg,
            4 => Style::TextInfo,
            n => Style::Other(n),
        }
    }

    /// Whether this style asks for an answer.
    pub fn is_prompt(self) -> bool {
        matches!(self, Style::EchoOff | Style::EchoOn)
    }
}

/// One message a module sent to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How it was to be shown.
    pub style: Style,
    /// Its text.
    pub text: String,
}

/// Every message a module sent, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The messages.
    pub messages: Vec<Message>,
}

impl Transcript {
    /// Texts of the messages of one style.
    pub fn texts(&self, style: Style) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m.style == style)
            .map(|m| m.text.as_str())
            .collect()
    }

    /// Texts of the prompts, either echo style.
    pub fn prompts(&self) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m.style.is_prompt())
            .map(|m| m.text.as_str())
            .collect()
    }

    /// Texts of the PAM_TEXT_INFO messages.
    pub fn infos(&self) -> Vec<&str> {
        self.texts(Style::TextInfo)
    }

    /// Texts of the PAM_ERROR_MSG messages.
    pub fn errors(&self) -> Vec<&str> {
        self.texts(Style::ErrorMsg)
    }

    /// Whether any message's text contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.messages.iter().any(|m| m.text.contains(needle))
    }
}

/// What the application does with the next prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answers with this text (`""` is the empty answer).
    Answer(String),
    /// Answers with raw bytes, e.g. ones that are not UTF-8.
    RawAnswer(Vec<u8>),
    /// Returns PAM_CONV_ERR (the person pressed Ctrl-D, the client went away).
    ConvErr,
    /// Returns PAM_SUCCESS but no reply array.
    NoReply,
    /// Returns a reply array whose answer pointer is null.
    NullAnswer,
}

/// How the application treats PAM_TEXT_INFO and PAM_ERROR_MSG messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notices {
    /// Shows them and returns a reply array with null answers (like most applications).
    Shown,
    /// Returns PAM_CONV_ERR for them (some desktop greeters).
    ConvErr,
    /// Returns PAM_SUCCESS but no reply array.
    NoReply,
}

/// Decides the reply to a prompt from everything shown so far (the prompt
/// itself is the transcript's last message).
pub type Responder = dyn FnMut(&Transcript) -> Reply + Send;

/// A scripted conversation (`Send`, so logins can run in threads): one queued [`Reply`] per prompt, in order; when
/// the queue is empty, the responder (if any) decides, else PAM_CONV_ERR.
#[derive(Clone)]
pub struct Conversation {
    replies: VecDeque<Reply>,
    notices: Notices,
    responder: Option<Arc<Mutex<Responder>>>,
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("replies", &self.replies)
            .field("notices", &self.notices)
            .field("responder", &self.responder.is_some())
            .finish()
    }
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation::new()
    }
}

/// A conversation that answers the first prompts with `list`, in order.
pub fn answers(list: &[&str]) -> Conversation {
    list.iter().fold(Conversation::new(), |c, a| c.answer(a))
}

/// The person enrolling inside a login: answers `first` in order, then
/// every later prompt (the confirmation) with `oathtool`'s code at `at`
/// for the secret the login showed ("Or type this secret: …").
pub fn enrolling(first: &[&str], at: u64) -> Conversation {
    answers(first).respond_with(move |t: &Transcript| {
        let line = t
            .infos()
            .into_iter()
            .find(|l| l.starts_with("Or type this secret: "))
            .expect("the secret is shown")
            .to_owned();
        let secret: String = line["Or type this secret: ".len()..]
            .split(" (")
            .next()
            .unwrap_or_default()
            .replace(' ', "");
        Reply::Answer(crate::otp::oathtool(&secret, at))
    })
}

impl Conversation {
    /// A conversation with no answers that shows notices normally.
    pub fn new() -> Conversation {
        Conversation {
            replies: VecDeque::new(),
            notices: Notices::Shown,
            responder: None,
        }
    }

    /// Answers prompts not covered by queued replies with `f`, which sees
    /// the transcript so far: e.g. a code computed from a secret shown
    /// earlier in the login, or at the moment the prompt appears.
    pub fn respond_with(mut self, f: impl FnMut(&Transcript) -> Reply + Send + 'static) -> Self {
        self.responder = Some(Arc::new(Mutex::new(f)));
        self
    }

    /// Queues an answer for the next prompt.
    pub fn answer(self, text: &str) -> Self {
        self.reply(Reply::Answer(text.to_owned()))
    }

    /// Queues any reply for the next prompt.
    pub fn reply(mut self, r: Reply) -> Self {
        self.replies.push_back(r);
        self
    }

    /// Sets how notices (info and error messages) are treated.
    pub fn notices(mut self, n: Notices) -> Self {
        self.notices = n;
        self
    }
}

/// The live state behind a conversation callback: the script and the transcript.
#[derive(Debug)]
pub(crate) struct ConvState {
    inner: RefCell<(Conversation, Transcript)>,
}

impl ConvState {
    pub(crate) fn new(c: Conversation) -> ConvState {
        ConvState {
            inner: RefCell::new((c, Transcript::default())),
        }
    }

    pub(crate) fn transcript(&self) -> Transcript {
        self.inner.borrow().1.clone()
    }
}

/// The `pam_conv` callback libpam calls for the module.
///
/// # Safety
/// Called by libpam with `appdata` pointing to a live [`ConvState`] and
/// `msg` holding `num_msg` message pointers (Linux-PAM layout).
pub(crate) unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    // A panic must not unwind into libpam.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller's contract.
        unsafe { converse_inner(num_msg, msg, resp, appdata) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

unsafe fn converse_inner(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let n = match usize::try_from(num_msg) {
        Ok(n) if n > 0 && !msg.is_null() && !resp.is_null() && !appdata.is_null() => n,
        _ => return PAM_CONV_ERR,
    };
    // SAFETY: appdata is the ConvState of the open session (caller).
    let state = unsafe { &*appdata.cast::<ConvState>() };
    let mut guard = state.inner.borrow_mut();
    let (conv, transcript) = &mut *guard;
    // SAFETY: msg holds n pointers to valid messages (caller).
    let msgs = unsafe { std::slice::from_raw_parts(msg, n) };
    let mut answers: Vec<Option<CString>> = Vec::with_capacity(n);
    let mut failed = false;
    let mut all_notices_unanswered = true;
    for &m in msgs {
        // SAFETY: each pointer is a valid message with a NUL-terminated text.
        let (style, text) = unsafe {
            let m = &*m;
            let text = if m.msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(m.msg).to_string_lossy().into_owned()
            };
            (Style::from_raw(m.msg_style), text)
        };
        transcript.messages.push(Message { style, text });
        if style.is_prompt() {
            all_notices_unanswered = false;
            let next = conv.replies.pop_front().or_else(|| {
                conv.responder
                    .as_ref()
                    .map(|f| (f.lock().unwrap_or_else(|e| e.into_inner()))(transcript))
            });
            match next {
                Some(Reply::Answer(a)) => match CString::new(a) {
                    Ok(c) => answers.push(Some(c)),
                    Err(_) => failed = true,
                },
                Some(Reply::RawAnswer(a)) => match CString::new(a) {
                    Ok(c) => answers.push(Some(c)),
                    Err(_) => failed = true,
                },
                Some(Reply::NullAnswer) => answers.push(None),
                Some(Reply::NoReply) => return no_reply(resp),
                Some(Reply::ConvErr) | None => failed = true,
            }
        } else {
            match conv.notices {
                Notices::Shown => answers.push(None),
                Notices::ConvErr => failed = true,
                Notices::NoReply => answers.push(None),
            }
        }
    }
    if failed {
        return PAM_CONV_ERR;
    }
    if all_notices_unanswered && conv.notices == Notices::NoReply {
        return no_reply(resp);
    }
    // SAFETY: calloc'd as libpam expects; the module frees with free().
    let array =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if array.is_null() {
        return PAM_CONV_ERR;
    }
    for (i, a) in answers.into_iter().enumerate() {
        if let Some(a) = a {
            // SAFETY: i < n; strdup'd so the module can free() it.
            unsafe { (*array.add(i)).resp = libc::strdup(a.as_ptr()) };
        }
    }
    // SAFETY: resp is a valid out-pointer (checked above).
    unsafe { *resp = array };
    PAM_SUCCESS
}

/// Success without a reply array.
fn no_reply(resp: *mut *mut PamResponse) -> c_int {
    // SAFETY: resp is a valid out-pointer (checked by the caller).
    unsafe { *resp = std::ptr::null_mut() };
    PAM_SUCCESS
}
