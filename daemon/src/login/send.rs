//! Codes sent inside a login: the prompt names the words that have one
//! sent (`Verification code (or "<keyword>" to get one sent): `); typing one
//! asks that factor to send a code bound to this login, tells the person
//! what happened and asks again. Asking is never a failed try, but a login
//! may ask only a few times (each ask is audited).
//!
//! **Invariant:** like the rest of `login/`, this names no factor: a
//! factor that sends answers to a keyword ([`crate::factors::Factor::keyword`]).

use super::{Check, Login};
use crate::factors::Who;
use twofold_proto::{Method, Response};

/// Keyword answers one login may give before they count as answers like
/// any other (each factor also limits its sends per login, in storage):
/// a script cannot make one login write audit rows without end.
const MAX_ASKS: u32 = 12;

/// What one login asked to have sent.
#[derive(Debug, Default)]
pub(crate) struct Sends {
    /// This conversation's id, which its codes are bound to.
    pub id: String,
    /// Keyword answers so far.
    asks: u32,
    /// The factors asked to send.
    asked: Vec<Method>,
    /// What a send that failed told: a later ask in this login is told
    /// the same at once instead of waiting again (the module's time
    /// budget counts every wait on the daemon).
    failed: Option<String>,
}

impl Sends {
    /// A fresh id for a new login.
    pub fn new() -> Sends {
        let mut b = [0u8; 16];
        // Without randomness the id is empty, and codes (bound to a
        // login id) are never offered: fail closed.
        let id = match crate::crypto::keys::random_bytes(&mut b) {
            Ok(()) => b.iter().map(|x| format!("{x:02x}")).collect(),
            Err(_) => String::new(),
        };
        Sends {
            id,
            ..Sends::default()
        }
    }
}

impl Login<'_, '_> {
    /// The keywords of the factors this login may answer with.
    fn keywords(&self, check: &Check) -> Vec<(&'static str, Method)> {
        let Check::Factors(methods, _) = check else {
            return Vec::new();
        };
        if self.sends.id.is_empty() {
            return Vec::new();
        }
        self.engine
            .factors
            .all()
            .filter(|f| methods.contains(&f.method()))
            .filter_map(|f| f.keyword().map(|k| (k, f.method())))
            .collect()
    }

    /// The prompt, naming the keywords: `Verification code (or
    /// "<keyword>" to get one sent): `.
    pub(super) fn prompt_for(&self, check: &Check) -> String {
        let base = self.engine.config.login.prompt.clone();
        let words = self.keywords(check);
        if words.is_empty() {
            return base;
        }
        let quoted: Vec<String> = words.iter().map(|(k, _)| format!("\"{k}\"")).collect();
        let stem = base.trim_end();
        let (stem, colon) = match stem.strip_suffix(':') {
            Some(s) => (s, ":"),
            None => (stem, ""),
        };
        format!("{stem} (or {} to get one sent){colon} ", quoted.join(" / "))
    }

    /// When `typed` is a keyword: sends, tells the person and returns
    /// `Some(true)` to ask again (no try counted), `Some(false)` when the
    /// login is over; `None` for any other answer.
    pub(super) fn send_asked(&mut self, check: &Check, typed: &str) -> Option<bool> {
        let typed = typed.trim().to_ascii_lowercase();
        let (_, method) = self
            .keywords(check)
            .into_iter()
            .find(|(k, _)| *k == typed)?;
        if self.sends.asks >= MAX_ASKS {
            return None;
        }
        // A copy may not have heard of a lock made a moment ago on another
        // host (the database's snapshot refuses a locked login before its
        // prompt): nothing is sent to a locked account.
        if matches!(check, Check::Factors(_, snap) if snap.copy) {
            match self.lock_now() {
                Ok(None) => {}
                Ok(Some(l)) => {
                    self.refuse_locked(l);
                    return Some(false);
                }
                Err(()) => return Some(false),
            }
        }
        self.sends.asks += 1;
        if let Some(told) = self.sends.failed.clone() {
            self.log(
                "code_not_sent",
                &[("method", method.as_str()), ("reason", "failed before")],
            );
            return Some(self.tell(Response::Error { text: told }));
        }
        let factor = self.engine.factors.get(&method)?;
        let who = Who {
            user: &self.b.user,
            source: &self.source,
            login: &self.sends.id,
        };
        let sent = factor.send(&self.engine.ctx(), &who, &self.base);
        self.engine.syslog_records(&sent.records);
        if !self.sends.asked.contains(&method) {
            self.sends.asked.push(method.clone());
        }
        let result = if sent.sent {
            "code_sent"
        } else {
            "code_not_sent"
        };
        self.log(result, &[("method", method.as_str())]);
        let line = if sent.sent {
            Response::Info { text: sent.told }
        } else {
            Response::Error { text: sent.told }
        };
        Some(self.tell(line))
    }

    /// A refused answer: every code this login was sent counts a try.
    pub(super) fn sent_missed(&self) {
        let who = Who {
            user: &self.b.user,
            source: &self.source,
            login: &self.sends.id,
        };
        let cx = self.engine.ctx();
        for m in &self.sends.asked {
            if let Some(f) = self.engine.factors.get(m) {
                f.missed(&cx, &who);
            }
        }
    }
}
