use crate::{Method, Secret};
use serde::{Deserialize, Serialize};

/// A message from a client (the PAM module or the CLI) to the daemon.
///
/// New fields are added with `#[serde(default)]`; unknown fields are ignored
/// so that an older daemon still understands a newer client's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message on every connection: the versions the client speaks.
    Hello {
        /// Oldest protocol version the client accepts.
        proto_min: u32,
        /// Newest protocol version the client accepts.
        proto_max: u32,
        /// Free-form client name and version, for the daemon's log.
        client: String,
    },
    /// Starts a login conversation (one connection = one login).
    Begin {
        /// PAM_USER: the account being logged into.
        user: String,
        /// PAM_SERVICE: sshd, sudo, su, login, gdm-password…
        service: String,
        /// PAM_RHOST: the remote host, when the application sets one.
        #[serde(default)]
        rhost: Option<String>,
        /// PAM_TTY.
        #[serde(default)]
        tty: Option<String>,
        /// PAM_RUSER: the requesting user (sudo, su).
        #[serde(default)]
        ruser: Option<String>,
        /// The `publickey` lines of `SSH_AUTH_INFO_0` from the PAM
        /// environment (`publickey ssh-ed25519 AAAA…`, one a line): the
        /// keys sshd verified before PAM ran. The daemon honours them only
        /// from a root peer on a service `[remember]` names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssh_auth_info: Option<String>,
    },
    /// The person's answer to the last [`Response::Prompt`].
    Answer {
        /// What was typed.
        text: Secret,
    },
    /// Acknowledges an [`Response::Info`], [`Response::Error`] or [`Response::Wait`].
    Ack,
    /// Answers the last [`Response::Prompt`] by saying that the person
    /// typed the password the stack had already verified (the module
    /// compares the answer with PAM_AUTHTOK; the password itself is never
    /// sent). Programs that ask one question (i3lock) answer every prompt
    /// with it. Protocol version 3; a client sends it only to a daemon
    /// that chose 3 or later.
    PasswordAnswer,
    /// Starts (or restarts) a pending TOTP enrollment. Until it is confirmed
    /// by a valid code it does not count for logins.
    TotpEnrollStart {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// HMAC algorithm; `None` takes the configured default (SHA1).
        #[serde(default)]
        algorithm: Option<Algorithm>,
        /// Code length, 6 to 8; `None` takes the configured default (6).
        #[serde(default)]
        digits: Option<u32>,
    },
    /// Confirms the pending TOTP enrollment with a current code.
    TotpEnrollConfirm {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A code from the authenticator.
        code: Secret,
    },
    /// Starts (or restarts) a pending enrollment of any factor; the daemon
    /// answers what the factor shows (e.g. [`Response::TotpPending`]).
    EnrollStart {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
        /// HMAC algorithm (TOTP); `None` takes the configured default.
        #[serde(default)]
        algorithm: Option<Algorithm>,
        /// Code length (TOTP); `None` takes the configured default.
        #[serde(default)]
        digits: Option<u32>,
        /// Where codes are sent: an address (email) or an E.164 number (sms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// A current code of another factor, when the factor asks for one
        /// to be added beside it ([`Request::RemoveFactor`]'s rule).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<Secret>,
    },
    /// Confirms the pending enrollment of a factor with a fresh answer;
    /// answered with the new backup codes.
    EnrollConfirm {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
        /// The answer (e.g. a code from the authenticator).
        code: Secret,
    },
    /// Drops a pending (unconfirmed) enrollment of a factor; a confirmed
    /// one is untouched.
    EnrollCancel {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
    },
    /// What is enrolled for an account.
    Status {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
    },
    /// Replaces every backup code with a fresh set.
    RegenerateBackupCodes {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A current TOTP code; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
    /// Removes the TOTP credential (and the backup codes tied to it).
    RemoveTotp {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// A current TOTP code; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
    /// Removes one factor of an account. Removing the last factor a login
    /// can be answered with also removes the recovery codes that hang on it.
    RemoveFactor {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
        /// A current second factor; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
    /// Admin: removes every factor of an account.
    AdminDisable {
        /// The account.
        user: String,
    },
    /// Admin: every account the daemon knows.
    AdminList,
    /// Admin: clears every lock and failure count of an account.
    AdminUnlock {
        /// The account.
        user: String,
    },
    /// Admin: the locks in force now.
    AdminLocks,
    /// Admin: one page of every account the daemon knows, by name.
    AdminListPage {
        /// Only accounts after this name (the previous page's `next`).
        #[serde(default)]
        after: Option<String>,
    },
    /// Admin: one page of the locks in force now.
    AdminLocksPage {
        /// Only locks after this one (the previous page's `next`).
        #[serde(default)]
        after: Option<u64>,
    },
    /// Admin: changes an account's enrollment grace deadline (`enroll` mode).
    AdminGrace {
        /// The account.
        user: String,
        /// Moves the deadline this many seconds past the later of now and
        /// the current deadline (a missing deadline starts from now).
        #[serde(default)]
        extend: Option<u64>,
        /// Forgets the deadline: the next login starts a fresh grace period.
        #[serde(default)]
        reset: bool,
    },
    /// Admin: a one-time token that lets the account enroll inside a login
    /// (`enroll_at_login = "token"`); replaces an older one.
    AdminEnrollToken {
        /// The account.
        user: String,
        /// Seconds the token stays valid; `None` takes 24 h.
        #[serde(default)]
        valid: Option<u64>,
    },
    /// Audit rows matching every given filter, oldest first. Admins see
    /// every account; others only their own.
    AuditQuery {
        /// Only rows about this account.
        #[serde(default)]
        user: Option<String>,
        /// Only rows of this event (e.g. `login_failure`).
        #[serde(default)]
        event: Option<String>,
        /// Only rows of this PAM service.
        #[serde(default)]
        service: Option<String>,
        /// Only rows at or after this time.
        #[serde(default)]
        since: Option<TimeRef>,
        /// Only rows at or before this time.
        #[serde(default)]
        until: Option<TimeRef>,
        /// Only rows with a larger id (paging, `--follow`).
        #[serde(default)]
        after_id: Option<u64>,
        /// At most this many rows (the daemon also caps a page by size).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Admin: checks the audit chain.
    AuditVerify,
    /// Admin: enrollment, policy and login figures.
    Stats,
    /// Admin: issues a break-glass code for an account whose owner lost
    /// every factor (replacing an outstanding one), or with `revoke`
    /// withdraws the outstanding one.
    AdminTempCode {
        /// The account.
        user: String,
        /// Seconds it stays valid; `None` takes one hour.
        #[serde(default)]
        valid: Option<u64>,
        /// Logins it opens; `None` takes one.
        #[serde(default)]
        uses: Option<u32>,
        /// Withdraw the outstanding code instead of issuing one.
        #[serde(default)]
        revoke: bool,
    },
    /// Admin: enrolls a hardware OATH token (HOTP, RFC 4226) from its
    /// secret; it counts at once.
    AdminEnrollHotp {
        /// The account.
        user: String,
        /// The token's secret (raw bytes, hex-encoded).
        secret_hex: Secret,
        /// HMAC algorithm; `None`: SHA1.
        #[serde(default)]
        algorithm: Option<Algorithm>,
        /// Code length, 6 to 8; `None`: 6.
        #[serde(default)]
        digits: Option<u32>,
        /// The counter value of the token's next code; `None`: 0.
        #[serde(default)]
        counter: Option<u64>,
        /// A name for the token (its serial number); `None`: `hotp`.
        #[serde(default)]
        name: Option<String>,
    },
    /// Admin: enrolls a credential imported from another module's file
    /// (google-authenticator, pam_oath); it counts at once.
    AdminImport {
        /// The account.
        user: String,
        /// `totp` or `hotp`.
        method: Method,
        /// The secret (raw bytes, hex-encoded).
        secret_hex: Secret,
        /// Code length, 6 to 8.
        digits: u32,
        /// TOTP's time step in seconds.
        #[serde(default)]
        period: Option<u64>,
        /// TOTP: the last time step used; HOTP: the next counter value.
        #[serde(default)]
        counter: Option<u64>,
        /// Single-use codes to keep as backup codes.
        #[serde(default)]
        scratch: Vec<Secret>,
        /// Where it came from (`google-authenticator:/home/alice/…`), for the audit trail.
        source: String,
    },
    /// Admin: enrolls a security key's credential imported from another
    /// module's file (pam-u2f's `u2f_keys`); it counts at once. Nothing in
    /// it is secret: a key handle and a public key.
    AdminImportKey {
        /// The account.
        user: String,
        /// A name for the key; `None`: the first free `u2f-N`.
        #[serde(default)]
        name: Option<String>,
        /// The RP ID the credential was made for (`pam://host`).
        rp_id: String,
        /// The credential id (pam-u2f's key handle), hex.
        credential_id_hex: String,
        /// `es256` or `eddsa`.
        algorithm: String,
        /// The public key, hex: ES256 `x ‖ y` (64 bytes), Ed25519 (32 bytes).
        public_key_hex: String,
        /// Where it came from (`pam-u2f:/home/alice/.config/Yubico/u2f_keys`), for the audit trail.
        source: String,
    },
    /// Admin: brings a token's counter forward to two consecutive codes
    /// (a token pressed far beyond the login window).
    AdminHotpResync {
        /// The account.
        user: String,
        /// The token, when the account has several.
        #[serde(default)]
        name: Option<String>,
        /// The first code.
        first: Secret,
        /// The code of the press after it.
        second: Secret,
    },
    /// The devices remembered for an account (SSH keys, login sessions)
    /// that still let it in.
    Devices {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
    },
    /// Forgets remembered devices of an account: the next login from them
    /// asks for the second factor again.
    DevicesForget {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// The device (its id in [`Response::DeviceList`]); `None` with `all`.
        #[serde(default)]
        id: Option<i64>,
        /// Every device of the account.
        #[serde(default)]
        all: bool,
    },
    /// Starts a pending enrollment of a factor a person may hold several
    /// of (a FIDO2 security key: the daemon talks to the key, which is
    /// touched), under a name.
    EnrollStartNamed {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
        /// The credential's name; `None`: the daemon picks one (`key-N`).
        #[serde(default)]
        name: Option<String>,
        /// The security key's PIN, for a key that has one (wiped after
        /// use, never logged).
        #[serde(default)]
        pin: Option<Secret>,
    },
    /// Removes one named credential of a factor (one security key); the
    /// recovery codes go with the last credential of all.
    RemoveCredential {
        /// The account; `None` means the caller's own.
        #[serde(default)]
        user: Option<String>,
        /// Which factor.
        method: Method,
        /// The credential's name (as `twofold status` lists it).
        name: String,
        /// A current second factor; required in self-service.
        #[serde(default)]
        code: Option<Secret>,
    },
}

/// A point in time given to the daemon, which reads its own clock for
/// relative ones (so `--since 1h` means an hour before the daemon's now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeRef {
    /// This many seconds before now.
    Ago(u64),
    /// This Unix time.
    At(u64),
}

impl Request {
    /// Name of the request type, as on the wire. Safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Begin { .. } => "begin",
            Request::Answer { .. } => "answer",
            Request::Ack => "ack",
            Request::PasswordAnswer => "password_answer",
            Request::TotpEnrollStart { .. } => "totp_enroll_start",
            Request::TotpEnrollConfirm { .. } => "totp_enroll_confirm",
            Request::Status { .. } => "status",
            Request::RegenerateBackupCodes { .. } => "regenerate_backup_codes",
            Request::RemoveTotp { .. } => "remove_totp",
            Request::RemoveFactor { .. } => "remove_factor",
            Request::EnrollStart { .. } => "enroll_start",
            Request::EnrollConfirm { .. } => "enroll_confirm",
            Request::EnrollCancel { .. } => "enroll_cancel",
            Request::AdminDisable { .. } => "admin_disable",
            Request::AdminList => "admin_list",
            Request::AdminUnlock { .. } => "admin_unlock",
            Request::AdminLocks => "admin_locks",
            Request::AdminListPage { .. } => "admin_list_page",
            Request::AdminLocksPage { .. } => "admin_locks_page",
            Request::AdminGrace { .. } => "admin_grace",
            Request::AdminEnrollToken { .. } => "admin_enroll_token",
            Request::AuditQuery { .. } => "audit_query",
            Request::AuditVerify => "audit_verify",
            Request::Stats => "stats",
            Request::AdminTempCode { .. } => "admin_temp_code",
            Request::AdminEnrollHotp { .. } => "admin_enroll_hotp",
            Request::AdminHotpResync { .. } => "admin_hotp_resync",
            Request::EnrollStartNamed { .. } => "enroll_start_named",
            Request::RemoveCredential { .. } => "remove_credential",
            Request::AdminImport { .. } => "admin_import",
            Request::AdminImportKey { .. } => "admin_import_key",
            Request::Devices { .. } => "devices",
            Request::DevicesForget { .. } => "devices_forget",
        }
    }

    /// Parses a frame body, telling an unknown request type (answered with
    /// [`Response::Unsupported`]) from a malformed body (connection closed).
    pub fn decode(body: &[u8]) -> Result<Request, DecodeError> {
        // Well-formed requests (every login's) parse once, straight into
        // their type: no intermediate `Value` holding a copy of a code that
        // nothing would wipe. A body that fails is looked at again only to
        // tell which error it is: what this parse refuses is never accepted
        // (a second, lenient parse let a repeated field through, the last
        // one winning).
        serde_json::from_slice::<Request>(body).map_err(|e| Request::classify(body, e))
    }

    /// Why `body`, which `strict` refused, is not a request: an unknown
    /// type or malformed. Only the type is read; no other field is copied.
    fn classify(body: &[u8], strict: serde_json::Error) -> DecodeError {
        #[derive(Deserialize)]
        struct TypeOnly {
            #[serde(rename = "type")]
            kind: String,
        }
        match serde_json::from_slice::<TypeOnly>(body) {
            // Not "the error says unknown variant": that is also the error
            // of a known request with a bad value in an enum field
            // (`"algorithm":"SHA2"`), which is malformed, not unsupported.
            Ok(t) if !Request::is_known_type(&t.kind) => {
                DecodeError::Unknown(t.kind.chars().take(64).collect())
            }
            _ => DecodeError::Malformed(strict.to_string()),
        }
    }

    /// Whether `kind` is a request type of this build: a body holding only
    /// that type fails, if at all, for a missing field, never for an
    /// unknown variant (the only enum in it being the type).
    fn is_known_type(kind: &str) -> bool {
        let probe = serde_json::json!({ "type": kind });
        match serde_json::from_value::<Request>(probe) {
            Ok(_) => true,
            Err(e) => !e.to_string().starts_with("unknown variant"),
        }
    }
}

/// Why a request body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Well-formed, but a request type this daemon does not know (first 64 chars).
    #[error("unknown request type {0:?}")]
    Unknown(String),
    /// Not JSON, or fields of the wrong shape.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// A message from the daemon to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`]: the version both sides will speak.
    Welcome {
        /// The chosen protocol version.
        proto: u32,
    },
    /// Ask the person something; reply with [`Request::Answer`].
    Prompt {
        /// The prompt text, e.g. `Verification code: `.
        text: String,
        /// Whether the answer may be shown while typed.
        echo: bool,
    },
    /// Show a line of information; reply with [`Request::Ack`].
    Info {
        /// The text.
        text: String,
    },
    /// Show an error line; reply with [`Request::Ack`].
    Error {
        /// The text.
        text: String,
    },
    /// Show a line and wait (e.g. "Touch your security key"); reply with [`Request::Ack`].
    Wait {
        /// The text.
        text: String,
    },
    /// The login conversation succeeded.
    Success,
    /// The login conversation failed.
    Denied {
        /// Why, in words fit for the log (never a code).
        reason: String,
        /// A line to show the person, as an error, before the login ends
        /// (protocol version 2; never sent to a version-1 client, which is
        /// sent an `Error` first instead).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// twofold has no say in this login (e.g. user not enrolled, policy allows).
    Ignore,
    /// The daemon cannot decide now (storage down, shutting down).
    Unavailable,
    /// The request type is unknown to this daemon.
    Unsupported {
        /// The request type as received (truncated).
        request: String,
    },
    /// A self-service or admin request failed.
    Failed {
        /// Category, which the CLI maps to its exit code.
        kind: ErrorKind,
        /// A message for the person.
        message: String,
    },
    /// A pending TOTP enrollment to show the person.
    TotpPending(TotpEnrollment),
    /// Freshly made backup codes, shown once.
    BackupCodes {
        /// The codes, in display form (`xxxxx-xxxxx`).
        codes: Vec<Secret>,
    },
    /// One account's state.
    Status(UserStatus),
    /// Every account's state.
    Users {
        /// The accounts, sorted by name.
        users: Vec<UserStatus>,
    },
    /// A request that changes state succeeded.
    Done {
        /// What was done, for the person.
        message: String,
    },
    /// One page of accounts.
    UsersPage {
        /// The accounts, by name.
        users: Vec<UserStatus>,
        /// Ask again with `after` = this for the next page; `None`: no more.
        #[serde(default)]
        next: Option<String>,
    },
    /// One page of locks.
    LocksPage {
        /// The locks.
        locks: Vec<LockInfo>,
        /// Ask again with `after` = this for the next page; `None`: no more.
        #[serde(default)]
        next: Option<u64>,
    },
    /// A one-time enrollment token, shown once.
    EnrollToken {
        /// The token, as the person types it.
        token: Secret,
        /// When it stops working (Unix seconds).
        expires_at: u64,
    },
    /// Locks in force.
    Locks {
        /// The locks, by account then source.
        locks: Vec<LockInfo>,
    },
    /// One page of audit rows, oldest first.
    AuditRecords {
        /// The rows.
        records: Vec<AuditRecord>,
        /// Whether more rows match after the last one (ask again with `after_id`).
        more: bool,
    },
    /// The result of checking the audit chain.
    AuditVerified(AuditReport),
    /// Enrollment, policy and login figures.
    StatsReport(StatsReport),
    /// A break-glass code, shown once.
    TempCode {
        /// The code, as the person types it.
        code: Secret,
        /// When it stops working (Unix seconds).
        expires_at: u64,
        /// Logins it opens.
        uses: u32,
    },
    /// The remembered devices of an account.
    DeviceList {
        /// The account.
        user: String,
        /// Its devices, oldest first.
        devices: Vec<DeviceInfo>,
    },
}

/// A lock on logins of an account, from one source or from every source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The account.
    pub user: String,
    /// The source (PAM_RHOST; `""` for local logins); `None` locks every source.
    pub source: Option<String>,
    /// When the lock was made (Unix seconds).
    pub since: u64,
    /// When it ends (Unix seconds).
    pub until: u64,
    /// Failures that made it.
    pub failures: u32,
}

/// One row of the audit trail. Empty strings are fields that do not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub id: u64,
    /// When (Unix seconds, daemon clock).
    pub at: u64,
    /// What happened, e.g. `login_success`, `lockout`, `enroll`.
    pub event: String,
    /// The account concerned.
    pub user: String,
    /// PAM service.
    pub service: String,
    /// PAM_RHOST.
    pub rhost: String,
    /// PAM_TTY.
    pub tty: String,
    /// Method (`totp`, `backup_code`).
    pub method: String,
    /// Who caused it: `uid=N` of the peer, or `twofoldd`.
    pub actor: String,
    /// Further `key=value` details (never a code or secret).
    pub detail: String,
}

/// The outcome of `twofold audit verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Rows checked.
    pub rows: u64,
    /// Id of the first row checked, if any.
    pub first_id: Option<u64>,
    /// Id of the last row checked, if any.
    pub last_id: Option<u64>,
    /// Rows up to this id were pruned by retention (0: none).
    pub pruned_through: u64,
    /// The first place the chain breaks; `None` when it is intact.
    pub broken: Option<ChainBreak>,
}

/// Where and why the audit chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The first row (id) that does not verify.
    pub id: u64,
    /// What is wrong with it: edited, deleted before it, reordered, truncated.
    pub reason: String,
}

/// Enrollment, policy and login figures (`twofold stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The daemon's now (Unix seconds).
    pub now: u64,
    /// Users with a usable factor, per method.
    pub enrolled: Vec<MethodCount>,
    /// Users required to use MFA but not enrolled (seen at a login, or in a
    /// required group), with their grace deadline when one is stored.
    pub required_unenrolled: Vec<GraceInfo>,
    /// Successful logins in the last 24 h.
    pub logins_ok_24h: u64,
    /// Refused logins in the last 24 h (denied or locked).
    pub logins_failed_24h: u64,
    /// Wrong codes in the last 24 h.
    pub codes_rejected_24h: u64,
    /// Locks made in the last 24 h.
    pub lockouts_24h: u64,
    /// Enrolled users with fewer than 3 unused backup codes.
    pub low_backup_codes: Vec<BackupLow>,
}

/// How many users have a method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodCount {
    /// Which method.
    pub method: Method,
    /// Users.
    pub users: u64,
}

/// A required user without a factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraceInfo {
    /// The account.
    pub user: String,
    /// Grace deadline (Unix seconds); `None` when not seen at a login yet.
    pub deadline: Option<u64>,
}

/// An enrolled user running out of backup codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupLow {
    /// The account.
    pub user: String,
    /// Unused backup codes.
    pub left: u32,
}

/// Category of a [`Response::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was invalid (bad user name, bad parameter, wrong state).
    BadRequest,
    /// The caller may not do this (identity from SO_PEERCRED).
    PermissionDenied,
    /// The account or factor does not exist.
    NotFound,
    /// A code given to authorize or confirm was wrong.
    InvalidCode,
    /// The factor already exists.
    Conflict,
    /// No common protocol version.
    VersionMismatch,
    /// The daemon failed internally (storage); nothing was changed.
    Internal,
}

/// HMAC algorithm of a TOTP credential (RFC 6238).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    /// HMAC-SHA1: what every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512` (any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A pending TOTP enrollment, sent once to the person enrolling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrollment {
    /// The account.
    pub user: String,
    /// The shared secret, base32 without padding.
    pub secret: Secret,
    /// The `otpauth://totp/...` URI for QR codes.
    pub uri: Secret,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
    /// Time step in seconds.
    pub period: u32,
    /// Issuer shown by authenticator apps.
    pub issuer: String,
}

/// One enrolled factor of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorStatus {
    /// Which factor (`totp`, …).
    pub method: Method,
    /// When it was confirmed (Unix seconds).
    pub enrolled_at: u64,
    /// When it last opened a login (Unix seconds).
    #[serde(default)]
    pub last_used: Option<u64>,
    /// Where its codes go, masked (`a•••@e•••.org`), for a factor that sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// What is enrolled for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// The account name.
    pub user: String,
    /// Confirmed factors.
    pub factors: Vec<FactorStatus>,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// Whether a TOTP enrollment awaits confirmation.
    #[serde(default)]
    pub pending_enrollment: bool,
    /// Grace deadline for enrolling (`enroll` mode), when one is stored.
    #[serde(default)]
    pub grace_deadline: Option<u64>,
    /// Until when logins are locked from every source, if they are.
    #[serde(default)]
    pub locked_until: Option<u64>,
    /// An outstanding break-glass code (issued by an admin), if any.
    #[serde(default)]
    pub temp_code: Option<TempCodeInfo>,
    /// The named credentials of factors a person may hold several of
    /// (security keys), one each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialInfo>,
}

/// One named credential (a security key) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Which factor.
    pub method: Method,
    /// Its name.
    pub name: String,
    /// What it is bound to (a security key's RP ID, e.g. `pam://host`).
    #[serde(default)]
    pub detail: String,
    /// When it was confirmed (Unix seconds).
    pub created_at: u64,
    /// When it last opened a login (Unix seconds).
    #[serde(default)]
    pub last_used: Option<u64>,
}

/// An outstanding break-glass code: what `twofold status` shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TempCodeInfo {
    /// Logins it still opens.
    pub uses_left: u32,
    /// When it stops working (Unix seconds).
    pub expires_at: u64,
}

/// A remembered device: what `twofold devices` shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Its id, for `twofold devices forget ID`.
    pub id: i64,
    /// `ssh_key` or `session`.
    pub kind: String,
    /// What was proven: `ssh-ed25519 SHA256:…` for a key, `session 1234
    /// on pts/3` for a login session.
    pub what: String,
    /// The service where the second factor remembered it.
    pub service: String,
    /// When it was remembered (Unix seconds).
    pub since: u64,
    /// When it last let a login through without a prompt.
    #[serde(default)]
    pub last_used: Option<u64>,
    /// When it stops letting logins through (Unix seconds).
    pub expires_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_request_type_is_told_apart_from_garbage() {
        assert_eq!(
            Request::decode(br#"{"type":"launch_missiles"}"#),
            Err(DecodeError::Unknown("launch_missiles".into()))
        );
        assert!(matches!(
            Request::decode(b"{\"type\":"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"user":"x"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"type":"begin","user":5}"#),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// Found by fuzzing (request_decode): a known request with an unknown
    /// value in one of its enum fields was reported as an unknown request
    /// type, so twofoldd answered `Unsupported { request: "enroll_start" }`
    /// and kept the connection, and the CLI told of a daemon too old for
    /// enrollment, instead of refusing a malformed request.
    #[test]
    fn a_bad_enum_value_in_a_known_request_is_malformed_not_unsupported() {
        let found =
            br#"{"type":"enroll_start","user":null,"method":"totp","algorithm":"SHA2","digits":6}"#;
        assert!(matches!(
            Request::decode(found),
            Err(DecodeError::Malformed(_))
        ));
        for body in [
            &br#"{"type":"totp_enroll_start","algorithm":"MD5"}"#[..],
            br#"{"type":"audit_query","since":{"weeks":1}}"#,
        ] {
            assert!(
                matches!(Request::decode(body), Err(DecodeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            Request::decode(br#"{"type":"enroll_later","algorithm":"SHA2"}"#),
            Err(DecodeError::Unknown("enroll_later".into()))
        );
    }

    /// Found by fuzzing (request_decode): a body with a repeated field,
    /// which the parse refuses, was parsed again into a `Value` (the last
    /// copy winning) and accepted, so what twofoldd served was not what
    /// its parse read, and a repeated answer's code sat unwiped in the
    /// freed `Value`.
    #[test]
    fn a_request_with_a_repeated_field_is_malformed() {
        let found = b"{\n  \"type\": \"audit_query\",\n  \"user\": \"alice\",\n  \"event\": \"lo\",\n  \"user\": \"alice\",\n  \"event\": \"lockout\",\n  \"service\": \"sshd\",\n  \"since\": {\n    \"ago\": 7200\n  },\n  \"ujtilter_id\": 9,\n  \"limit\": 100\n}";
        for body in [
            &found[..],
            br#"{"type":"begin","user":"alice","service":"sudo","user":"root"}"#,
            br#"{"type":"answer","text":"123456","text":"654321"}"#,
            br#"{"type":"ack","type":"stats"}"#,
        ] {
            assert!(
                matches!(Request::decode(body), Err(DecodeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn new_optional_fields_default() {
        let r =
            Request::decode(br#"{"type":"begin","user":"a","service":"sshd","extra":1}"#).unwrap();
        assert_eq!(
            r,
            Request::Begin {
                user: "a".into(),
                service: "sshd".into(),
                rhost: None,
                tty: None,
                ruser: None,
                ssh_auth_info: None,
            }
        );
    }

    #[test]
    fn new_requests_round_trip_and_old_status_still_parses() {
        for r in [
            Request::AdminUnlock { user: "a".into() },
            Request::AdminLocks,
            Request::AdminGrace {
                user: "a".into(),
                extend: Some(86_400),
                reset: false,
            },
            Request::AuditQuery {
                user: None,
                event: Some("lockout".into()),
                service: None,
                since: Some(TimeRef::Ago(3600)),
                until: Some(TimeRef::At(5)),
                after_id: Some(9),
                limit: None,
            },
            Request::AuditVerify,
            Request::Stats,
        ] {
            let json = serde_json::to_vec(&r).unwrap();
            assert_eq!(Request::decode(&json).unwrap(), r, "{}", r.kind());
        }
        let q = Request::decode(br#"{"type":"audit_query","since":{"ago":60}}"#).unwrap();
        assert!(matches!(
            q,
            Request::AuditQuery {
                since: Some(TimeRef::Ago(60)),
                user: None,
                ..
            }
        ));
        // A status from a daemon before grace and locks existed.
        let old: UserStatus = serde_json::from_str(
            r#"{"user":"a","factors":[],"backup_codes_left":0,"pending_enrollment":false}"#,
        )
        .unwrap();
        assert_eq!(old.grace_deadline, None);
        assert_eq!(old.locked_until, None);
    }

    #[test]
    fn answer_debug_is_redacted() {
        let r = Request::Answer {
            text: Secret::from("987654"),
        };
        assert!(!format!("{r:?}").contains("987654"));
    }
}
