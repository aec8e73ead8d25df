//! `request_decode`: [`Request::decode`], as twofoldd reads every frame
//! body, on arbitrary bytes.

use twofold_proto::{DecodeError, Request, Secret};

/// Every request type this build knows, as on the wire ([`Request::kind`]).
/// A type missing here only weakens one check below, never fails it.
const KNOWN: &[&str] = &[
    "hello",
    "begin",
    "answer",
    "ack",
    "totp_enroll_start",
    "totp_enroll_confirm",
    "enroll_start",
    "enroll_confirm",
    "status",
    "regenerate_backup_codes",
    "remove_totp",
    "remove_factor",
    "admin_disable",
    "admin_list",
    "admin_unlock",
    "admin_locks",
    "admin_grace",
    "audit_query",
    "audit_verify",
    "stats",
];

/// Properties: no panic; a body `decode` accepts is one the plain parse
/// accepts too, as the same request (the second look at a refused body only
/// tells which error it is); what decodes re-encodes, and that encoding
/// decodes to the same request and re-encodes to the same bytes, with its
/// `type` being [`Request::kind`]; `Debug` never depends on a secret's
/// value; `Unknown` names at most 64 characters and never a type this
/// build knows (a known type with a bad field is `Malformed`, or the
/// client would be told the daemon does not support it).
pub fn request_decode(data: &[u8]) {
    match Request::decode(data) {
        Ok(req) => {
            let strict = serde_json::from_slice::<Request>(data);
            assert!(
                strict.as_ref().is_ok_and(|s| *s == req),
                "decode accepted {} that the plain parse gives as {strict:?}",
                req.kind()
            );
            round_trip(&req);
            assert_eq!(
                format!("{:?}", blank_secrets(req.clone())),
                format!("{req:?}"),
                "Debug of {} shows a secret",
                req.kind()
            );
        }
        Err(DecodeError::Unknown(kind)) => {
            assert!(kind.chars().count() <= 64, "Unknown({kind:?}) is too long");
            assert!(
                !KNOWN.contains(&kind.as_str()),
                "a malformed {kind} is reported as an unknown request type"
            );
        }
        Err(DecodeError::Malformed(_)) => {}
    }
}

fn round_trip(req: &Request) {
    let bytes = serde_json::to_vec(req).expect("a decoded request encodes");
    let again = Request::decode(&bytes).expect("an encoded request decodes");
    assert_eq!(&again, req, "decode(encode(r)) != r");
    let bytes_again = serde_json::to_vec(&again).expect("encodes");
    assert_eq!(bytes, bytes_again, "encoding is not stable");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(
        value.get("type").and_then(|t| t.as_str()),
        Some(req.kind()),
        "the wire type differs from kind()"
    );
}

/// The request with every [`Secret`] emptied.
fn blank_secrets(mut req: Request) -> Request {
    match &mut req {
        Request::Answer { text: s }
        | Request::TotpEnrollConfirm { code: s, .. }
        | Request::EnrollConfirm { code: s, .. } => *s = Secret::default(),
        Request::RegenerateBackupCodes { code, .. }
        | Request::RemoveTotp { code, .. }
        | Request::RemoveFactor { code, .. } => {
            if let Some(s) = code {
                *s = Secret::default();
            }
        }
        _ => {}
    }
    req
}
