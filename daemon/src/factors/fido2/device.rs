//! The operations twofoldd asks of a security key, behind one small trait
//! with two implementations: the real keys over USB HID (`hid.rs`,
//! `ctap-hid-fido2`) and, for tests, a software authenticator (`soft.rs`).
//! Whatever answers, the daemon verifies the bytes itself (`verify.rs`).

use std::time::Instant;
use twofold_proto::Secret;

/// One security key found by [`Authenticator::enumerate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// How to open it again (a hidraw path, or the software key's name).
    pub path: String,
    /// What it calls itself.
    pub product: String,
}

/// What a key says of itself (authenticatorGetInfo).
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// Protocol versions (`FIDO_2_0`, …).
    pub versions: Vec<String>,
    /// Whether a PIN is set (`clientPin`: true).
    pub pin_set: bool,
    /// Whether it verifies the user itself (`uv`: true; a fingerprint).
    pub uv: bool,
}

/// A registration request.
#[derive(Debug, Clone)]
pub struct MakeCredential {
    /// The relying party: `pam://<host>` by default.
    pub rp_id: String,
    /// The bytes whose SHA-256 is the clientDataHash.
    pub client_data: Vec<u8>,
    /// The user handle (random, not the account name).
    pub user_id: Vec<u8>,
    /// The account name, shown by keys with a display.
    pub user_name: String,
    /// Credentials the key must not register again (the user's own).
    pub exclude: Vec<Vec<u8>>,
}

/// What a key returned at registration.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// authenticatorData with attested credential data.
    pub auth_data: Vec<u8>,
}

/// A login request.
#[derive(Debug, Clone)]
pub struct GetAssertion {
    /// The RP ID stored with the credentials asked for.
    pub rp_id: String,
    /// The bytes whose SHA-256 is the clientDataHash.
    pub client_data: Vec<u8>,
    /// The credentials the key may answer with.
    pub allow: Vec<Vec<u8>>,
    /// Whether to ask for user verification.
    pub uv: bool,
    /// Whether to ask for presence (false only for the silent check).
    pub up: bool,
}

/// What a key returned at a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The credential that answered.
    pub credential_id: Vec<u8>,
    /// authenticatorData as signed.
    pub auth_data: Vec<u8>,
    /// The signature over authenticatorData ‖ clientDataHash.
    pub signature: Vec<u8>,
}

/// Why an operation gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The deadline passed (the operation was cancelled).
    #[error("security key: no touch before the deadline")]
    Timeout,
    /// Cancelled (the PAM client went away).
    #[error("security key: cancelled")]
    Cancelled,
    /// The key holds none of the credentials asked for.
    #[error("security key: no matching credential")]
    NoCredential,
    /// Another login is using the key.
    #[error("security key busy")]
    Busy,
    /// The PIN was wrong; the key allows `left` more tries.
    #[error("security key: wrong PIN ({left} tries left)")]
    WrongPin {
        /// Tries the key allows before it blocks its PIN.
        left: u32,
    },
    /// The key's PIN is blocked (no tries left): only a reset helps.
    #[error("security key: PIN blocked")]
    PinBlocked,
    /// Too many wrong PINs in a row: the key takes no PIN until it is
    /// plugged in again.
    #[error("security key: PIN blocked until the key is plugged in again")]
    PinAuthBlocked,
    /// Anything else the key or the HID stack reported (or a panic in it).
    #[error("security key: {0}")]
    Failed(String),
}

pub use crate::factors::Stop;

/// Never stops early.
#[derive(Debug)]
pub struct Never;

impl Stop for Never {
    fn stop(&self) -> bool {
        false
    }
}

/// The operations on security keys; every blocking one takes the
/// daemon's own deadline and a [`Stop`], and cancels the key's operation
/// when either fires.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The keys plugged in now (none is no error).
    fn enumerate(&self) -> Result<Vec<Device>, DeviceError>;

    /// What the key says of itself.
    fn info(&self, dev: &Device) -> Result<Info, DeviceError>;

    /// The PIN tries the key has left (authenticatorClientPIN getRetries).
    fn pin_retries(&self, dev: &Device) -> Result<u32, DeviceError>;

    /// Checks `pin` with the key (getPinToken; no touch): a wrong one
    /// costs one of the key's tries.
    fn check_pin(&self, dev: &Device, pin: &Secret) -> Result<(), DeviceError>;

    /// Registers a credential (waits for a touch); a key with a PIN set
    /// needs it (`pin`).
    fn make_credential(
        &self,
        dev: &Device,
        req: &MakeCredential,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Attestation, DeviceError>;

    /// Signs a login's challenge (waits for a touch when `req.up`); with
    /// `pin`, the key verifies the user with it (pinUvAuthParam).
    fn get_assertion(
        &self,
        dev: &Device,
        req: &GetAssertion,
        pin: Option<&Secret>,
        deadline: Instant,
        stop: &dyn Stop,
    ) -> Result<Assertion, DeviceError>;

    /// Cancels what `dev` is doing, if anything.
    fn cancel(&self, dev: &Device);
}
