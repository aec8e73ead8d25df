//! The CTAP2 commands a login and an enrollment use (authenticatorGetInfo,
//! MakeCredential, GetAssertion, Selection), decoded from CBOR and answered
//! by the daemon's software authenticator (`soft-fido2`).

use ciborium::value::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_daemon::factors::fido2::device::{
    Authenticator, Device, DeviceError, GetAssertion, MakeCredential, Never,
};
use twofold_daemon::factors::fido2::soft::{Alg, SoftAuthenticator, SoftKey};

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

/// COSE ES256, the only algorithm this key makes credentials with.
const ES256: i128 = -7;

/// The AAGUID the software key writes into attested credential data.
const AAGUID: [u8; 16] = [0x7f; 16];

/// A decoded request.
#[derive(Debug)]
pub enum Request {
    /// authenticatorGetInfo.
    GetInfo,
    /// authenticatorMakeCredential.
    MakeCredential(MakeCredential),
    /// authenticatorGetAssertion, with its clientDataHash.
    GetAssertion(GetAssertion, [u8; 32]),
    /// authenticatorSelection: a touch, nothing else.
    Selection,
    /// Known but refused here, with the status to answer.
    Refused(u8),
}

impl Request {
    /// Whether the answer waits for a touch.
    pub fn needs_touch(&self) -> bool {
        match self {
            Request::MakeCredential(_) | Request::Selection => true,
            Request::GetAssertion(r, _) => r.up,
            Request::GetInfo | Request::Refused(_) => false,
        }
    }

    /// What the request is, for the event log.
    pub fn name(&self) -> String {
        match self {
            Request::GetInfo => "getInfo".into(),
            Request::MakeCredential(r) => format!("makeCredential rp={}", r.rp_id),
            Request::GetAssertion(r, _) => format!("getAssertion rp={} up={}", r.rp_id, r.up),
            Request::Selection => "selection".into(),
            Request::Refused(s) => format!("refused status=0x{s:02x}"),
        }
    }
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
            hash(get(&m, 1))?;
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
            Ok(Request::MakeCredential(MakeCredential {
                rp_id: text(field(rp, "id"))?,
                // The software key signs nothing at registration
                // (attestation "none"): the client data is not needed.
                client_data: Vec::new(),
                user_id: bytes(field(user, "id"))?,
                user_name: text(field(user, "name")).unwrap_or_default(),
                exclude: ids(get(&m, 5))?,
            }))
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
            ))
        }
        _ => Ok(Request::Refused(status::INVALID_COMMAND)),
    }
}

/// The key: one ES256 software key, touch only (no PIN, no built-in UV).
#[derive(Debug)]
pub struct Key {
    soft: Arc<SoftAuthenticator>,
    dev: Device,
}

impl Default for Key {
    fn default() -> Self {
        let soft = SoftAuthenticator::new();
        soft.plug(&SoftKey::new("vkey", Alg::Es256, false));
        Key {
            soft,
            dev: Device {
                path: "vkey".into(),
                product: "twofold virtual FIDO2 key".into(),
            },
        }
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
        _ => status::OTHER,
    }
}

impl Key {
    /// Answers `req` (its touch, if it needs one, already given): a status
    /// byte, then the CBOR response on success.
    pub fn answer(&self, req: Request) -> Vec<u8> {
        // The touch happened before: the software key itself waits for nothing.
        let far = Instant::now() + Duration::from_secs(60);
        match req {
            Request::GetInfo => encode(Value::Map(vec![
                (int(1), Value::Array(vec![text_v("FIDO_2_0")])),
                (int(3), Value::Bytes(AAGUID.to_vec())),
                (
                    int(4),
                    Value::Map(vec![
                        (text_v("rk"), Value::Bool(false)),
                        (text_v("up"), Value::Bool(true)),
                        (text_v("plat"), Value::Bool(false)),
                    ]),
                ),
                (int(5), int(1200)),
            ])),
            Request::Selection => vec![status::OK],
            Request::Refused(s) => vec![s],
            Request::MakeCredential(r) => {
                match self.soft.make_credential(&self.dev, &r, None, far, &Never) {
                    Ok(att) => encode(Value::Map(vec![
                        (int(1), text_v("none")),
                        (int(2), Value::Bytes(att.auth_data)),
                        (int(3), Value::Map(Vec::new())),
                    ])),
                    Err(e) => vec![failed(&e)],
                }
            }
            Request::GetAssertion(r, cdh) => {
                match self
                    .soft
                    .get_assertion_hashed(&self.dev, &r, cdh, None, far, &Never)
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
                        ]))
                    }
                    Err(e) => vec![failed(&e)],
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
        let m = decode(&key.answer(parse(&make("pam://guest")).unwrap()));
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!("{m:?}")
        };
        let ad = fparse::auth_data(ad).unwrap();
        let att = ad.attested.unwrap();
        let cdh = verify::sha256(b"client data");
        let req = parse(&assertion("pam://guest", &att.credential_id, cdh, true)).unwrap();
        assert!(req.needs_touch());
        let m = decode(&key.answer(req));
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
        let m = decode(&key.answer(parse(&make("pam://guest")).unwrap()));
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
        let m = decode(&key.answer(req));
        let Some(Value::Bytes(ad)) = get(&m, 2) else {
            panic!()
        };
        assert_eq!(ad.len(), 37);
        assert_eq!(ad[32], 0, "no presence claimed");
        let req = parse(&assertion("pam://guest", &[1, 2, 3], [0; 32], false)).unwrap();
        assert_eq!(key.answer(req), vec![status::NO_CREDENTIALS]);
    }

    #[test]
    fn get_info_and_unknown_commands() {
        let key = Key::default();
        let m = decode(&key.answer(parse(&[GET_INFO]).unwrap()));
        assert_eq!(get(&m, 1), Some(&Value::Array(vec![text_v("FIDO_2_0")])));
        assert_eq!(
            key.answer(parse(&[0x40]).unwrap()),
            vec![status::INVALID_COMMAND]
        );
        assert_eq!(
            parse(&[GET_ASSERTION, 0xff]).unwrap_err(),
            status::INVALID_CBOR
        );
    }
}
