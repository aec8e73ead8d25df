//! The CTAP2 commands a login and an enrollment use (authenticatorGetInfo,
//! MakeCredential, GetAssertion, ClientPIN, Selection), decoded from CBOR
//! and answered by the daemon's software authenticator (`soft-fido2`);
//! a pinAuth is checked against the key's pinToken (`pin.rs`).

use crate::pin::{pin_status, ClientPin, PinSide, Xy};
use ciborium::value::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_daemon::factors::fido2::device::{
    Device, DeviceError, GetAssertion, MakeCredential, Never,
};
use twofold_daemon::factors::fido2::soft::{Alg, SoftAuthenticator, SoftKey, Uv};

/// CTAP2 status codes used here.
pub mod status {
    /// Success.
    pub const OK: u8 = 0x00;
    /// Unknown command.
    pub const INVALID_COMMAND: u8 = 0x01;
    /// Not CBOR, or not the expected types.
    pub const INVALID_CBOR: u8 = 0x12;
    /// A required parameter is absent.
    pub const MISSING_PARAMETER: u8 = 0x14;
    /// A credential of the exclude list is on this key.
    pub const CREDENTIAL_EXCLUDED: u8 = 0x19;
    /// None of the algorithms asked for.
    pub const UNSUPPORTED_ALGORITHM: u8 = 0x26;
    /// The request was cancelled (CTAPHID_CANCEL).
    pub const KEEPALIVE_CANCEL: u8 = 0x2d;
    /// No credential of the allow list for this RP ID.
    pub const NO_CREDENTIALS: u8 = 0x2e;
    /// Not allowed now (getNextAssertion without a pending list).
    pub const NOT_ALLOWED: u8 = 0x30;
    /// Anything else.
    pub const OTHER: u8 = 0x7f;
}

const GET_INFO: u8 = 0x04;
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_NEXT_ASSERTION: u8 = 0x08;
const SELECTION: u8 = 0x0b;
const CLIENT_PIN: u8 = 0x06;

/// COSE ES256, the only algorithm this key makes credentials with.
const ES256: i128 = -7;

/// The AAGUID the software key writes into attested credential data.
const AAGUID: [u8; 16] = [0x7f; 16];

/// A request's pinAuth and pinProtocol.
#[derive(Debug)]
pub struct PinAuth {
    /// pinAuth: LEFT(HMAC-SHA-256(pinToken, clientDataHash), 16).
    pub param: Vec<u8>,
    /// pinProtocol.
    pub protocol: i128,
}

/// A decoded request.
#[derive(Debug)]
pub enum Request {
    /// authenticatorGetInfo.
    GetInfo,
    /// authenticatorMakeCredential, with its clientDataHash.
    MakeCredential(MakeCredential, [u8; 32], Option<PinAuth>),
    /// authenticatorGetAssertion, with its clientDataHash.
    GetAssertion(GetAssertion, [u8; 32], Option<PinAuth>),
    /// authenticatorClientPIN.
    ClientPin(ClientPin),
    /// authenticatorSelection: a touch, nothing else.
    Selection,
    /// Known but refused here, with the status to answer.
    Refused(u8),
}

impl Request {
    /// Whether the answer waits for a touch.
    pub fn needs_touch(&self) -> bool {
        match self {
            Request::MakeCredential(..) | Request::Selection => true,
            Request::GetAssertion(r, ..) => r.up,
            Request::GetInfo | Request::Refused(_) | Request::ClientPin(_) => false,
        }
    }

    /// What the request is, for the event log.
    pub fn name(&self) -> String {
        match self {
            Request::GetInfo => "getInfo".into(),
            Request::MakeCredential(r, _, a) => {
                format!("makeCredential rp={}{}", r.rp_id, auth_name(a))
            }
            Request::GetAssertion(r, _, a) => {
                format!("getAssertion rp={} up={}{}", r.rp_id, r.up, auth_name(a))
            }
            Request::ClientPin(p) => p.name(),
            Request::Selection => "selection".into(),
            Request::Refused(s) => format!("refused status=0x{s:02x}"),
        }
    }
}

fn auth_name(a: &Option<PinAuth>) -> &'static str {
    if a.is_some() {
        " pinAuth"
    } else {
        ""
    }
}

/// A request's pinAuth (`param` key) and pinProtocol (`param + 1`).
fn pin_auth(m: &[(Value, Value)], param: i128) -> Result<Option<PinAuth>, u8> {
    let Some(v) = get(m, param) else {
        return Ok(None);
    };
    let protocol = match get(m, param + 1) {
        Some(Value::Integer(i)) => i128::from(*i),
        Some(_) => return Err(status::INVALID_CBOR),
        None => return Err(status::MISSING_PARAMETER),
    };
    Ok(Some(PinAuth {
        param: bytes(Some(v))?,
        protocol,
    }))
}

/// A COSE P-256 key's x and y.
fn cose_xy(v: Option<&Value>) -> Result<Option<Xy>, u8> {
    let Some(v) = v else { return Ok(None) };
    let m = map(Some(v))?;
    let coord = |k| -> Result<[u8; 32], u8> {
        bytes(get(m, k))?
            .try_into()
            .map_err(|_| status::INVALID_CBOR)
    };
    Ok(Some((coord(-2)?, coord(-3)?)))
}

fn get(map: &[(Value, Value)], key: i128) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == key))
        .map(|(_, v)| v)
}

fn field<'v>(map: &'v [(Value, Value)], name: &str) -> Option<&'v Value> {
    map.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == name))
        .map(|(_, v)| v)
}

fn bytes(v: Option<&Value>) -> Result<Vec<u8>, u8> {
    match v {
        Some(Value::Bytes(b)) => Ok(b.clone()),
        Some(_) => Err(status::INVALID_CBOR),
        None => Err(status::MISSING_PARAMETER),
    }
}

fn text(v: Option<&Value>) -> Result<String, u8> {
    match v {
        Some(Value::Text(t)) => Ok(t.clone()),
        Some(_) => Err(status::INVALID_CBOR),
        None => Err(status::MISSING_PARAMETER),
    }
}

fn map(v: Option<&Value>) -> Result<&[(Value, Value)], u8> {
    match v {
        Some(Value::Map(m)) => Ok(m),
        Some(_) => Err(status::INVALID_CBOR),
        None => Err(status::MISSING_PARAMETER),
    }
}

/// The `id`s of a list of PublicKeyCredentialDescriptors (absent: none).
fn ids(v: Option<&Value>) -> Result<Vec<Vec<u8>>, u8> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| match d {
                Value::Map(m) => bytes(field(m, "id")),
                _ => Err(status::INVALID_CBOR),
            })
            .collect(),
        Some(_) => Err(status::INVALID_CBOR),
    }
}

/// An option of the `options` map (absent: `default`).
fn option(v: Option<&Value>, name: &str, default: bool) -> Result<bool, u8> {
    match v {
        None => Ok(default),
        Some(Value::Map(m)) => match field(m, name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(status::INVALID_CBOR),
        },
        Some(_) => Err(status::INVALID_CBOR),
    }
}

fn hash(v: Option<&Value>) -> Result<[u8; 32], u8> {
    bytes(v)?.try_into().map_err(|_| status::INVALID_CBOR)
}

/// Decodes one CTAPHID_CBOR payload: a command byte, then a CBOR map.
pub fn parse(payload: &[u8]) -> Result<Request, u8> {
    let (&command, body) = payload.split_first().ok_or(status::INVALID_COMMAND)?;
    let params = || -> Result<Vec<(Value, Value)>, u8> {
        match ciborium::de::from_reader::<Value, _>(body) {
            Ok(Value::Map(m)) => Ok(m),
            _ => Err(status::INVALID_CBOR),
        }
    };
    match command {
        GET_INFO => Ok(Request::GetInfo),
        SELECTION => Ok(Request::Selection),
        GET_NEXT_ASSERTION => Ok(Request::Refused(status::NOT_ALLOWED)),
        MAKE_CREDENTIAL => {
            let m = params()?;
            let rp = map(get(&m, 2))?;
            let user = map(get(&m, 3))?;
            let algs = match get(&m, 4) {
                Some(Value::Array(a)) => a,
                Some(_) => return Err(status::INVALID_CBOR),
                None => return Err(status::MISSING_PARAMETER),
            };
            let es256 = algs.iter().any(|p| {
                matches!(p, Value::Map(pm)
                    if matches!(field(pm, "alg"), Some(Value::Integer(i)) if i128::from(*i) == ES256))
            });
            if !es256 {
                return Ok(Request::Refused(status::UNSUPPORTED_ALGORITHM));
            }
            Ok(Request::MakeCredential(
                MakeCredential {
                    rp_id: text(field(rp, "id"))?,
                    // The software key signs nothing at registration
                    // (attestation "none"): the client data is not needed.
                    client_data: Vec::new(),
                    user_id: bytes(field(user, "id"))?,
                    user_name: text(field(user, "name")).unwrap_or_default(),
                    exclude: ids(get(&m, 5))?,
                },
                hash(get(&m, 1))?,
                pin_auth(&m, 8)?,
            ))
        }
        GET_ASSERTION => {
            let m = params()?;
            let options = get(&m, 5);
            Ok(Request::GetAssertion(
                GetAssertion {
                    rp_id: text(get(&m, 1))?,
                    client_data: Vec::new(),
                    allow: ids(get(&m, 3))?,
                    uv: option(options, "uv", false)?,
                    up: option(options, "up", true)?,
                },
                hash(get(&m, 2))?,
                pin_auth(&m, 6)?,
            ))
        }
        CLIENT_PIN => {
            let m = params()?;
            let protocol = match get(&m, 1) {
                Some(Value::Integer(i)) => i128::from(*i),
                _ => return Err(status::MISSING_PARAMETER),
            };
            let sub = match get(&m, 2) {
                Some(Value::Integer(i)) => u8::try_from(i128::from(*i)).unwrap_or(0xff),
                _ => return Err(status::MISSING_PARAMETER),
            };
            Ok(Request::ClientPin(ClientPin {
                protocol,
                sub,
                key_agreement: cose_xy(get(&m, 3))?,
                pin_hash_enc: match get(&m, 6) {
                    None => None,
                    v => Some(bytes(v)?),
                },
            }))
        }
        _ => Ok(Request::Refused(status::INVALID_COMMAND)),
    }
}

/// The key: one ES256 software key, touch only (no built-in UV), with a
/// PIN or not.
#[derive(Debug)]
pub struct Key {
    soft: Arc<SoftAuthenticator>,
    key: Arc<SoftKey>,
    dev: Device,
    pin: PinSide,
}

impl Default for Key {
    fn default() -> Self {
        Key::new(None)
    }
}

fn encode(v: Value) -> Vec<u8> {
    let mut out = vec![status::OK];
    if ciborium::ser::into_writer(&v, &mut out).is_err() {
        return vec![status::OTHER];
    }
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn text_v(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn failed(e: &DeviceError) -> u8 {
    match e {
        DeviceError::NoCredential => status::NO_CREDENTIALS,
        DeviceError::Failed(m) if m.contains("EXCLUDED") => status::CREDENTIAL_EXCLUDED,
        DeviceError::Failed(m) if m.contains("PIN_REQUIRED") => pin_status::PIN_REQUIRED,
        _ => status::OTHER,
    }
}

impl Key {
    /// A key with `pin` set (or none).
    pub fn new(pin: Option<&str>) -> Key {
        let soft = SoftAuthenticator::new();
        let key = match pin {
            Some(p) => SoftKey::with_pin("vkey", Alg::Es256, p),
            None => SoftKey::new("vkey", Alg::Es256, false),
        };
        soft.plug(&key);
        Key {
            soft,
            key,
            dev: Device {
                path: "vkey".into(),
                product: "twofold virtual FIDO2 key".into(),
            },
            pin: PinSide::default(),
        }
    }

    /// A replug: the wrong-in-a-row count cleared (the PIN taken again),
    /// a new key agreement and pinToken; credentials and tries kept.
    pub fn replug(&self) {
        self.soft.unplug("vkey");
        self.soft.plug(&self.key);
        self.pin.power_cycle();
    }

    /// Sets the PIN tries left (the control file `retries`).
    pub fn set_pin_retries(&self, n: u32) {
        self.key.set_pin_retries(n);
    }

    /// How the user is verified by `auth` over `cdh`; `Err`: the status
    /// refusing the request before any touch (as a key checks pinAuth
    /// first).
    fn verified(&self, auth: Option<&PinAuth>, cdh: &[u8; 32]) -> Result<Uv<'static>, u8> {
        match auth {
            None => Ok(Uv::No),
            Some(a) if a.protocol != 1 => Err(pin_status::INVALID_PARAMETER),
            Some(_) if !self.key.pin_set() => Err(pin_status::PIN_NOT_SET),
            Some(a) if self.pin.verifies(&a.param, cdh) => Ok(Uv::Token),
            Some(_) => Err(pin_status::PIN_AUTH_INVALID),
        }
    }

    /// The status refusing `req` before its touch, if any: a pinAuth that
    /// does not verify, or a PIN required and not given.
    pub fn refuse_early(&self, req: &Request) -> Option<u8> {
        match req {
            Request::MakeCredential(_, cdh, a) => match self.verified(a.as_ref(), cdh) {
                Err(s) => Some(s),
                Ok(Uv::No) if self.key.pin_set() => Some(pin_status::PIN_REQUIRED),
                Ok(_) => None,
            },
            Request::GetAssertion(_, cdh, a) => self.verified(a.as_ref(), cdh).err(),
            _ => None,
        }
    }

    /// Answers `req` (its touch, if it needs one, already given): a status
    /// byte, then the CBOR response on success; and what happened, for
    /// the event log.
    pub fn answer(&self, req: Request) -> (Vec<u8>, String) {
        if let Some(s) = self.refuse_early(&req) {
            return (vec![s], format!("refused status=0x{s:02x}"));
        }
        // The touch happened before: the software key itself waits for nothing.
        let far = Instant::now() + Duration::from_secs(60);
        match req {
            Request::GetInfo => {
                let mut options = vec![
                    (text_v("rk"), Value::Bool(false)),
                    (text_v("up"), Value::Bool(true)),
                    (text_v("plat"), Value::Bool(false)),
                ];
                if self.key.pin_set() {
                    options.push((text_v("clientPin"), Value::Bool(true)));
                }
                (
                    encode(Value::Map(vec![
                        (int(1), Value::Array(vec![text_v("FIDO_2_0")])),
                        (int(3), Value::Bytes(AAGUID.to_vec())),
                        (int(4), Value::Map(options)),
                        (int(5), int(1200)),
                        (int(6), Value::Array(vec![int(1)])),
                    ])),
                    format!("info clientPin={}", self.key.pin_set()),
                )
            }
            Request::Selection => (vec![status::OK], "selected".into()),
            Request::Refused(s) => (vec![s], format!("refused status=0x{s:02x}")),
            Request::ClientPin(p) => self.pin.answer(&self.key, &p),
            Request::MakeCredential(r, cdh, a) => {
                let uv = match self.verified(a.as_ref(), &cdh) {
                    Ok(uv) => uv,
                    Err(s) => return (vec![s], format!("refused status=0x{s:02x}")),
                };
                match self.soft.make_credential_uv(&self.dev, &r, uv, far, &Never) {
                    Ok(att) => {
                        let flags = att.auth_data.get(32).copied().unwrap_or(0);
                        (
                            encode(Value::Map(vec![
                                (int(1), text_v("none")),
                                (int(2), Value::Bytes(att.auth_data)),
                                (int(3), Value::Map(Vec::new())),
                            ])),
                            format!("registered flags=0x{flags:02x}"),
                        )
                    }
                    Err(e) => (vec![failed(&e)], format!("refused: {e}")),
                }
            }
            Request::GetAssertion(r, cdh, a) => {
                let uv = match self.verified(a.as_ref(), &cdh) {
                    Ok(uv) => uv,
                    Err(s) => return (vec![s], format!("refused status=0x{s:02x}")),
                };
                match self
                    .soft
                    .get_assertion_hashed(&self.dev, &r, cdh, uv, far, &Never)
                {
                    Ok(a) => {
                        // The software key's silent check (no presence) signs
                        // nothing; on the wire it is authenticatorData with
                        // UP clear and an empty signature.
                        let auth_data = if a.auth_data.is_empty() {
                            let mut ad =
                                twofold_daemon::factors::fido2::verify::sha256(r.rp_id.as_bytes())
                                    .to_vec();
                            ad.extend_from_slice(&[0; 5]);
                            ad
                        } else {
                            a.auth_data
                        };
                        let flags = auth_data.get(32).copied().unwrap_or(0);
                        (
                            encode(Value::Map(vec![
                                (
                                    int(1),
                                    Value::Map(vec![
                                        (text_v("id"), Value::Bytes(a.credential_id)),
                                        (text_v("type"), text_v("public-key")),
                                    ]),
                                ),
                                (int(2), Value::Bytes(auth_data)),
                                (int(3), Value::Bytes(a.signature)),
                            ])),
                            format!("asserted flags=0x{flags:02x}"),
                        )
                    }
                    Err(e) => (vec![failed(&e)], format!("refused: {e}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_daemon::factors::fido2::{parse as fparse, verify};

    fn cbor(cmd: u8, v: Value) -> Vec<u8> {
        let mut out = vec![cmd];
        ciborium::ser::into_writer(&v, &mut out).unwrap();
        out
    }

    fn decode(resp: &[u8]) -> Vec<(Value, Value)> {
        assert_eq!(resp[0], status::OK, "{resp:?}");
        match ciborium::de::from_reader::<Value, _>(&resp[1..]).unwrap() {
            Value::Map(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn make(rp: &str) -> Vec<u8> {
        cbor(
            MAKE_CREDENTIAL,
            Value::Map(vec![
                (int(1), Value::Bytes(vec![1; 32])),
                (int(2), Value::Map(vec![(text_v("id"), text_v(rp))])),
                (
                    int(3),
                    Value::Map(vec![
                        (text_v("id"), Value::Bytes(vec![9; 16])),
                        (text_v("name"), text_v("alice")),
                    ]),
                ),
                (
                    int(4),
                    Value::Array(vec![Value::Map(vec![
                        (text_v("alg"), int(-7)),
                        (text_v("type"), text_v("public-key")),
                    ])]),
                ),
            ]),
        )
    }

    fn assertion(rp: &str, id: &[u8], cdh: [u8; 32], up: bool) -> Vec<u8> {
        cbor(
            GET_ASSERTION,
            Value::Map(vec![
                (int(1), text_v(rp)),
                (int(2), Value::Bytes(cdh.to_vec())),
                (
                    int(3),
                    Value::Array(vec![Value::Map(vec![
                        (text_v("id"), Value::Bytes(id.to_vec())),
                        (text_v("type"), text_v("public-key")),
                    ])]),
                ),
                (int(5), Value::Map(vec![(text_v("up"), Value::Bool(up))])),
            ]),
        )
    }

    #[test]
    fn a_registered_credential_signs_the_client_data_hash_it_is_given() {
        let key = Key::default();
        let m = decode(&key.answer(parse(&make("pam://guest")).unwrap()).0);
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!("{m:?}")
        };
        let ad = fparse::auth_data(ad).unwrap();
        let att = ad.attested.unwrap();
        let cdh = verify::sha256(b"client data");
        let req = parse(&assertion("pam://guest", &att.credential_id, cdh, true)).unwrap();
        assert!(req.needs_touch());
        let m = decode(&key.answer(req).0);
        let (Some(Value::Bytes(ad)), Some(Value::Bytes(sig))) = (get(&m, 2), get(&m, 3)) else {
            panic!("{m:?}")
        };
        let e = verify::Expect {
            rp_id: "pam://guest",
            key: &att.key,
            counter: Some(1),
            uv: false,
            client_data_hash: &cdh,
        };
        assert_eq!(verify::assertion(&e, ad, sig).ok(), Some(2));
        // Over another hash the same signature fails.
        let other = verify::sha256(b"other");
        let e = verify::Expect {
            client_data_hash: &other,
            ..e
        };
        assert!(verify::assertion(&e, ad, sig).is_err());
    }

    #[test]
    fn the_silent_check_needs_no_touch_and_an_unknown_credential_is_no_credentials() {
        let key = Key::default();
        let m = decode(&key.answer(parse(&make("pam://guest")).unwrap()).0);
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        let id = fparse::auth_data(ad)
            .unwrap()
            .attested
            .unwrap()
            .credential_id;
        let req = parse(&assertion("pam://guest", &id, [0; 32], false)).unwrap();
        assert!(!req.needs_touch());
        let m = decode(&key.answer(req).0);
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        assert_eq!(ad.len(), 37);
        assert_eq!(ad[32], 0, "no presence claimed");
        let req = parse(&assertion("pam://guest", &[1, 2, 3], [0; 32], false)).unwrap();
        assert_eq!(key.answer(req).0, vec![status::NO_CREDENTIALS]);
    }

    fn with_pin_auth(mut req: Vec<u8>, key: u8, auth: &[u8]) -> Vec<u8> {
        let mut m = match ciborium::de::from_reader::<Value, _>(&req[1..]).unwrap() {
            Value::Map(m) => m,
            other => panic!("{other:?}"),
        };
        m.push((int(key.into()), Value::Bytes(auth.to_vec())));
        m.push((int(i64::from(key) + 1), int(1)));
        req.truncate(1);
        ciborium::ser::into_writer(&Value::Map(m), &mut req).unwrap();
        req
    }

    #[test]
    fn a_key_with_a_pin_wants_a_pin_auth_made_with_its_token_and_then_says_uv() {
        let key = Key::new(Some("482916"));
        let m = decode(&key.answer(parse(&[GET_INFO]).unwrap()).0);
        let Some(Value::Map(options)) = get(&m, 4) else {
            panic!("{m:?}")
        };
        assert_eq!(field(options, "clientPin"), Some(&Value::Bool(true)));
        // No pinAuth: refused before any touch.
        let req = parse(&make("pam://guest")).unwrap();
        assert_eq!(key.refuse_early(&req), Some(pin_status::PIN_REQUIRED));
        let cdh = [1u8; 32];
        let req = parse(&with_pin_auth(
            make("pam://guest"),
            8,
            &key.pin.pin_auth_for(&cdh),
        ))
        .unwrap();
        assert_eq!(key.refuse_early(&req), None);
        let m = decode(&key.answer(req).0);
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        assert_eq!(ad[32], 0x45, "UP, UV, AT");
        let id = fparse::auth_data(ad)
            .unwrap()
            .attested
            .unwrap()
            .credential_id;
        let cdh = verify::sha256(b"login");
        let good = key.pin.pin_auth_for(&cdh);
        let req = parse(&with_pin_auth(
            assertion("pam://guest", &id, cdh, true),
            6,
            &good,
        ))
        .unwrap();
        let m = decode(&key.answer(req).0);
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        assert_eq!(ad[32], 0x05, "UP, UV");
        // Another hash's pinAuth, or none: no UV.
        let req = parse(&with_pin_auth(
            assertion("pam://guest", &id, verify::sha256(b"other"), true),
            6,
            &good,
        ))
        .unwrap();
        assert_eq!(key.refuse_early(&req), Some(pin_status::PIN_AUTH_INVALID));
        let m = decode(
            &key.answer(parse(&assertion("pam://guest", &id, cdh, true)).unwrap())
                .0,
        );
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        assert_eq!(ad[32], 0x01, "UP only");
    }

    #[test]
    fn get_info_and_unknown_commands() {
        let key = Key::default();
        let m = decode(&key.answer(parse(&[GET_INFO]).unwrap()).0);
        assert_eq!(get(&m, 1), Some(&Value::Array(vec![text_v("FIDO_2_0")])));
        assert_eq!(
            key.answer(parse(&[0x40]).unwrap()).0,
            vec![status::INVALID_COMMAND]
        );
        assert_eq!(
            parse(&[GET_ASSERTION, 0xff]).unwrap_err(),
            status::INVALID_CBOR
        );
    }
}
