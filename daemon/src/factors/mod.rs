//! The factors a login can be answered with, each a folder behind
//! [`Factor`], found through the [`Registry`]. The login core and the
//! requests ask the registry; neither names a factor.
//!
//! A factor reads what it needs from the login's [`Snapshot`], checks an
//! answer, and returns a [`Claim`] that the store spends atomically with
//! the login's outcome: a counter that must grow (a time step once) or a
//! code once.

pub mod backup;
pub mod email;
pub mod enroll;
pub mod fido2;
pub mod hotp;
pub mod temp;
pub mod totp;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::crypto::keys::{Keys, SealError};
use crate::failure::Failure;
use crate::store::{Claim, Credential, Locked, Snapshot, Store, StoreError};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use twofold_config::Config;
use twofold_proto::{FactorStatus, Method, Response, Secret};

/// What a factor works with.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The daemon's configuration.
    pub config: &'a Config,
    /// The keys derived from the master key.
    pub keys: &'a Keys,
    /// Storage.
    pub store: &'a dyn Store,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// Counts argon2 verifications (`Stats`).
    pub argon2_runs: &'a AtomicU64,
    /// Where codes are sent through.
    pub channels: &'a crate::dispatch::Channels,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ctx")
    }
}

impl Ctx<'_> {
    /// Now, by the daemon's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }
}

/// The login an answer is checked for.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The account.
    pub user: &'a str,
    /// The rate-limit source (PAM_RHOST, `""` when local).
    pub source: &'a str,
    /// The login conversation's id (`""` outside a login): codes sent
    /// for one login are refused in another.
    pub login: &'a str,
}

/// What checking an answer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A valid answer, not yet spent.
    Claim(Claim),
    /// Not accepted; the reason is for the log only.
    Rejected(&'static str),
    /// A lock in force was seen while reading what the check needs: the
    /// answer was not checked.
    Locked(Locked),
}

/// Checking an answer could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Storage failed; nothing was decided.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// A stored secret did not decrypt (wrong key, or a tampered or moved row).
    #[error(transparent)]
    Decrypt(#[from] SealError),
}

/// What a factor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A factor a person enrolls and logs in with.
    Primary,
    /// Single-use codes issued when a primary factor is confirmed, which
    /// hang on it (removing the last primary factor removes them).
    Recovery,
    /// Codes an admin issues for a person who lost every factor: never
    /// enrolled by the person, never removed with a factor, they expire.
    Issued,
}

/// What `twofold status` shows of one factor.
#[derive(Debug, Default)]
pub struct Report {
    /// Confirmed credentials.
    pub factors: Vec<FactorStatus>,
    /// Whether an enrollment awaits confirmation.
    pub pending: bool,
    /// Unused codes, for a factor of codes.
    pub codes_left: Option<u32>,
    /// Named credentials (security keys), for a factor a person holds
    /// several of.
    pub credentials: Vec<twofold_proto::CredentialInfo>,
}

/// A second factor.
pub trait Factor: Send + Sync + std::fmt::Debug {
    /// Its name on the wire, in the policy and in the audit trail.
    fn method(&self) -> Method;

    /// What it is for.
    fn role(&self) -> Role {
        Role::Primary
    }

    /// Whether `snap` holds something this factor can check a login with.
    fn usable(&self, snap: &Snapshot) -> bool;

    /// Checks a login's (or an authorization's) answer, already trimmed;
    /// `Ok(None)` when it does not have the shape of this factor's answers.
    /// Writes nothing: a match is a [`Claim`] for the caller to spend.
    fn check(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        snap: &Snapshot,
        typed: &str,
    ) -> Result<Option<Found>, VerifyError>;

    /// Does the work of checking `typed` as a wrong answer, against a
    /// secret nobody has; never accepts. A login that nothing can pass
    /// (`deny` for an unenrolled or unknown user) calls it, so the time of
    /// a refusal does not tell whether the user exists.
    fn decoy(&self, _cx: &Ctx<'_>, _typed: &str) {}

    /// The audit event appended when a code of this factor is spent (the
    /// store adds `left=N`).
    fn spent_event(&self) -> Option<&'static str> {
        None
    }

    /// Why a claim of this factor that another login spent first is
    /// refused (for the log).
    fn lost(&self) -> &'static str {
        "code already used"
    }

    /// Whether a fresh answer of this factor authorizes self-service
    /// changes (replacing or removing factors).
    fn authorizes(&self) -> bool {
        false
    }

    /// What `twofold status` shows of it, from the user's credentials.
    fn report(&self, cx: &Ctx<'_>, user: &str, creds: &[Credential]) -> Result<Report, StoreError>;

    /// Enrollment, for a factor a person enrolls.
    fn enrollment(&self) -> Option<&dyn Enroll> {
        None
    }

    /// Issues a fresh set of codes: what is shown once and what is stored
    /// (recovery factors).
    fn issue(&self, _cx: &Ctx<'_>, _user: &str) -> Result<Option<Issued>, Failure> {
        Ok(None)
    }

    /// The word typed at the prompt to have a code of this factor sent
    /// (`email`), for a factor that sends its codes.
    fn keyword(&self) -> Option<&'static str> {
        None
    }

    /// Sends a fresh code bound to login `who.login`, waiting at most the
    /// configured short wait for the result; `audit` is the login's
    /// template for the rows it writes. Never counts as a failed try.
    fn send(&self, _cx: &Ctx<'_>, _who: &Who<'_>, _audit: &AuditEvent) -> Sent {
        Sent {
            told: "This method cannot send codes.".into(),
            sent: false,
            records: Vec::new(),
        }
    }

    /// An answer of login `who` was refused after it asked this factor
    /// for codes: each of them counts a wrong try.
    fn missed(&self, _cx: &Ctx<'_>, _who: &Who<'_>) {}

    /// For a factor the daemon answers itself by talking to a device (a
    /// security key): the wait to run before the code prompt, when the
    /// device is there and holds one of `snap`'s credentials. `None`: the
    /// code prompt follows at once.
    fn attend<'s>(
        &'s self,
        _cx: &Ctx<'_>,
        _who: &Who<'_>,
        _snap: &Snapshot,
        _place: &Place<'_>,
    ) -> Result<Option<Box<dyn Attend + 's>>, VerifyError> {
        Ok(None)
    }
}

/// What became of a send a person asked for.
#[derive(Debug)]
pub struct Sent {
    /// The line to show (`Code sent to a•••@e•••.org (valid 10 minutes).`).
    pub told: String,
    /// Whether the provider took the message.
    pub sent: bool,
    /// The audit rows written (for syslog).
    pub records: Vec<twofold_proto::AuditRecord>,
}

/// Where a login runs, for [`Factor::attend`].
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The PAM service.
    pub service: &'a str,
    /// PAM_RHOST, when set.
    pub rhost: Option<&'a str>,
}

/// Tells a wait on a device when to give up early.
pub trait Stop: Sync {
    /// Whether to stop now (the PAM client went away).
    fn stop(&self) -> bool;
}

/// The login's conversation, lent to a wait on a device: what it may show
/// and ask before and during the wait. Every call returning `false` or
/// `None` means the login is over (the client went away, or storage
/// failed): the wait returns at once.
pub trait Talk: Sync {
    /// Shows the cue before a wait (`Wait`: the module adds the wait to
    /// its time budget).
    fn cue(&mut self, text: &str) -> bool;
    /// Shows an information line.
    fn info(&mut self, text: &str) -> bool;
    /// Asks a question whose answer is not echoed (a PIN; an Enter). The
    /// answer is no code: it is never checked or counted as one.
    fn ask(&mut self, text: &str) -> Option<Secret>;
    /// Appends audit row `event` of this login, for this factor, with
    /// `detail` (`key=value` pairs; never a secret).
    fn audit(&mut self, event: &'static str, detail: &[(&str, &str)]) -> bool;
    /// Adds `key=value` to this login's success row, should the answer
    /// this wait returns be the one that lets the login in (how it was
    /// verified; never a secret). A later note of the same key replaces it.
    fn note(&mut self, key: &'static str, value: &'static str);
    /// Whether the PAM client went away.
    fn gone(&self) -> bool;
}

/// A [`Stop`] that fires when the PAM client of a [`Talk`] goes away.
pub struct Hangup<'t>(pub &'t dyn Talk);

impl std::fmt::Debug for Hangup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hangup")
    }
}

impl Stop for Hangup<'_> {
    fn stop(&self) -> bool {
        self.0.gone()
    }
}

/// A wait the daemon does itself (a security key's touch).
pub trait Attend: std::fmt::Debug {
    /// Shows its cue (and asks what the device needs first, e.g. a PIN)
    /// through `talk`, waits for the device within the factor's own
    /// deadline, and checks what it returned. `None`: nothing came (no
    /// touch, cancelled, the device busy or refused before any touch), so
    /// the code prompt follows and nothing is counted.
    fn wait(&self, cx: &Ctx<'_>, talk: &mut dyn Talk) -> Result<Option<Found>, VerifyError>;
}

/// Codes just made: shown once, stored hashed.
#[derive(Debug)]
pub struct Issued {
    /// What to say above them when they are shown.
    pub heading: &'static str,
    /// The codes as the person types them.
    pub shown: Vec<Secret>,
    /// The rows to store.
    pub rows: Vec<crate::store::NewCode>,
}

/// Options of an enrollment request; each factor reads those it has.
#[derive(Debug, Clone, Default)]
pub struct EnrollOptions {
    /// HMAC algorithm (TOTP).
    pub algorithm: Option<twofold_proto::Algorithm>,
    /// Code length (TOTP).
    pub digits: Option<u32>,
    /// Where codes are sent: an address (email) or an E.164 number (sms).
    pub address: Option<String>,
    /// The credential's name (security keys).
    pub name: Option<String>,
    /// The security key's PIN, when it has one.
    pub pin: Option<Secret>,
}

/// A pending enrollment: what the person is shown to set it up.
#[derive(Debug)]
pub struct Pending {
    /// The answer to the CLI's request.
    pub response: Response,
    /// Text to draw as a QR code inside a login, if any.
    pub qr: Option<Secret>,
    /// Information lines for a login (they may hold a secret).
    pub lines: Vec<Secret>,
}

/// A pending credential that a fresh answer confirmed.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation {
    /// The credential row.
    pub id: i64,
    /// Its first counter (the time step of the confirming code).
    pub counter: Option<u64>,
}

/// How a factor is enrolled: started, then confirmed by a fresh answer.
pub trait Enroll: Send + Sync {
    /// Starts (or restarts) a pending enrollment of `user`.
    fn start(&self, cx: &Ctx<'_>, user: &str, options: &EnrollOptions) -> Result<Pending, Failure>;

    /// Checks `answer` against the user's pending credential. Stores
    /// nothing (the caller confirms with the audit row and codes).
    fn confirm(&self, cx: &Ctx<'_>, user: &str, answer: &Secret) -> Result<Confirmation, Failure>;

    /// Whether confirming it issues a fresh set of recovery codes (a
    /// factor added beside others leaves the printed ones valid).
    fn issues_recovery(&self) -> bool {
        true
    }

    /// Whether starting it for a user who has a confirmed factor needs a
    /// current code of one (a process running as the user must not add a
    /// destination of its own choosing and receive the codes there).
    fn start_needs_authorization(&self) -> bool {
        false
    }

    /// The confirmed credential that confirming pending credential `id`
    /// replaces (a destination changed in one step), with the change's
    /// audit details; `None` (the default): confirming adds a credential.
    fn replaces(
        &self,
        _cx: &Ctx<'_>,
        _user: &str,
        _id: i64,
    ) -> Result<Option<Replacement>, StoreError> {
        Ok(None)
    }

    /// For an enrollment confirmed by a code sent to a destination named
    /// outside the login (`twofold enroll email --address`): what a login
    /// in the grace period can confirm. `None` (the default) otherwise.
    fn sent(&self) -> Option<&dyn ConfirmSent> {
        None
    }
}

/// A confirmed credential that a confirmation replaces.
#[derive(Debug, Clone)]
pub struct Replacement {
    /// Its row.
    pub old: i64,
    /// Audit details of the change (masked destinations only).
    pub details: Vec<(&'static str, String)>,
}

/// A pending destination a login can confirm.
#[derive(Debug, Clone)]
pub struct PendingSent {
    /// The pending credential.
    pub id: i64,
    /// The destination, masked for showing.
    pub masked: String,
    /// The word that has a fresh code sent to it.
    pub keyword: &'static str,
}

/// An enrollment confirmed inside a login by the code sent to the
/// destination the person (or an admin) named with the CLI: the login
/// never chooses where a code goes.
pub trait ConfirmSent {
    /// `user`'s pending destination of this factor, if any.
    fn pending(&self, cx: &Ctx<'_>, user: &str) -> Result<Option<PendingSent>, StoreError>;

    /// Sends a fresh code for pending credential `id` (its keyword typed
    /// at the login's prompt); never counts as a failed try.
    fn send_pending(&self, cx: &Ctx<'_>, who: &Who<'_>, id: i64, audit: &AuditEvent) -> Sent;

    /// Checks `answer` against the codes sent for pending credential
    /// `id`, under the lock of `who`'s source: a claim when one matches
    /// (the caller confirms `id`); a refusal counts a try of those codes.
    fn confirm_pending(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        id: i64,
        answer: &Secret,
    ) -> Result<Found, VerifyError>;
}

/// The factors this daemon offers, in the order a login tries them.
#[derive(Debug, Clone)]
pub struct Registry {
    factors: Vec<Arc<dyn Factor>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::builtin()
    }
}

impl Registry {
    /// The factors built in: TOTP, HOTP, backup codes, break-glass codes,
    /// then email and SMS codes, then FIDO2 security keys (over USB HID).
    pub fn builtin() -> Registry {
        Registry {
            factors: vec![
                Arc::new(totp::Totp),
                Arc::new(hotp::Hotp),
                Arc::new(backup::BackupCodes),
                Arc::new(temp::TempCode),
                Arc::new(email::SentCodes::email()),
                Arc::new(email::SentCodes::sms()),
                Arc::new(fido2::Fido2::hid()),
            ],
        }
    }

    /// Adds a factor (after the others); one with the same method replaces it.
    pub fn register(&mut self, factor: Arc<dyn Factor>) {
        let m = factor.method();
        self.factors.retain(|f| f.method() != m);
        self.factors.push(factor);
    }

    /// Every factor, in order.
    pub fn all(&self) -> impl Iterator<Item = &dyn Factor> {
        self.factors.iter().map(|f| f.as_ref())
    }

    /// The factor of `method`.
    pub fn get(&self, method: &Method) -> Option<&dyn Factor> {
        self.all().find(|f| f.method() == *method)
    }

    /// The factor whose codes are issued when a primary one is confirmed.
    pub fn recovery(&self) -> Option<&dyn Factor> {
        self.all().find(|f| f.role() == Role::Recovery)
    }

    /// The methods of recovery factors.
    pub fn recovery_methods(&self) -> Vec<Method> {
        self.all()
            .filter(|f| f.role() == Role::Recovery)
            .map(|f| f.method())
            .collect()
    }

    /// The first factor a person can enroll inside a login (grace period).
    pub fn enrolled_at_login(&self) -> Option<(&dyn Factor, &dyn Enroll)> {
        self.all().find_map(|f| f.enrollment().map(|e| (f, e)))
    }

    /// Whether any factor can check a login of the account `snap` shows.
    pub fn any_usable(&self, snap: &Snapshot) -> bool {
        self.all().any(|f| f.usable(snap))
    }

    /// The methods `snap` lets the user answer a login with.
    pub fn usable(&self, snap: &Snapshot) -> Vec<Method> {
        self.all()
            .filter(|f| f.usable(snap))
            .map(|f| f.method())
            .collect()
    }

    /// Checks `typed` against each factor of `allowed` in order — those
    /// that send codes first (their codes exist only once asked for, and
    /// have the shape of others', so their refusal, e.g. an expired code,
    /// is the one that stands). A match or a lock decides at once; a
    /// factor that recognises the shape but not the answer hands it on (a
    /// six-digit code may be a TOTP or an HOTP code), and its refusal
    /// stands when no later factor matches. `None` when none recognises
    /// the shape.
    pub fn check(
        &self,
        cx: &Ctx<'_>,
        who: &Who<'_>,
        snap: &Snapshot,
        allowed: &[Method],
        typed: &str,
    ) -> Result<Option<(Method, Found)>, VerifyError> {
        let mut refused = None;
        let senders = self.all().filter(|f| f.keyword().is_some());
        let others = self.all().filter(|f| f.keyword().is_none());
        for f in senders
            .chain(others)
            .filter(|f| allowed.contains(&f.method()))
        {
            match f.check(cx, who, snap, typed)? {
                Some(Found::Rejected(why)) => {
                    refused.get_or_insert((f.method(), Found::Rejected(why)));
                }
                Some(found) => return Ok(Some((f.method(), found))),
                None => {}
            }
        }
        Ok(refused)
    }
}

/// A random positive row id: it is sealed into a secret, so it must be
/// known before the row is written and never reused.
pub fn random_row_id() -> Result<i64, crate::crypto::keys::KeyError> {
    let mut b = [0u8; 8];
    crate::crypto::keys::random_bytes(&mut b)?;
    Ok((i64::from_be_bytes(b) & i64::MAX).max(1))
}
