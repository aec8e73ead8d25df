//! `response_decode`: a [`Response`] from arbitrary JSON bytes, as
//! pam_twofold.so ([`FrameReader::read_message`]) and the CLI
//! ([`read_message`]) read one.

use std::io::Cursor;
use twofold_proto::{
    check_welcome, read_message, response_name, write_frame, FrameError, FrameReader, Response,
    Secret, MAX_FRAME, PROTO_OLDEST, PROTO_VERSION,
};

/// Properties: no panic; the module's and the CLI's readers, given the
/// bytes as a frame, agree with the plain parse (the same response, or
/// `Malformed`); what decodes re-encodes, and that encoding decodes to the
/// same response and re-encodes to the same bytes, with its `type` being
/// [`response_name`]; `Debug` never depends on a secret's value; the
/// handshake check accepts only a `Welcome` with a version this build
/// speaks.
pub fn response_decode(data: &[u8]) {
    let plain = serde_json::from_slice::<Response>(data).ok();
    if data.len() <= MAX_FRAME {
        let mut frame = Vec::new();
        write_frame(&mut frame, data).expect("a body within MAX_FRAME is framed");
        let module = FrameReader::new().read_message::<Response>(&mut Cursor::new(&frame));
        let cli = read_message::<Response>(&mut Cursor::new(&frame));
        for (who, got) in [("FrameReader::read_message", module), ("read_message", cli)] {
            match (got, &plain) {
                (Ok(r), Some(p)) => assert_eq!(&r, p, "{who} differs from the plain parse"),
                (Err(FrameError::Malformed(_)), None) => {}
                (got, _) => panic!("{who} gave {got:?}, the plain parse {plain:?}"),
            }
        }
    }
    let Some(resp) = plain else {
        return;
    };
    let bytes = serde_json::to_vec(&resp).expect("a decoded response encodes");
    let again: Response = serde_json::from_slice(&bytes).expect("an encoded response decodes");
    assert_eq!(again, resp, "decode(encode(r)) != r");
    assert_eq!(
        serde_json::to_vec(&again).expect("encodes"),
        bytes,
        "encoding is not stable"
    );
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(
        value.get("type").and_then(|t| t.as_str()),
        Some(response_name(&resp)),
        "the wire type differs from response_name()"
    );
    assert_eq!(
        format!("{:?}", blank_secrets(resp.clone())),
        format!("{resp:?}"),
        "Debug of {} shows a secret",
        response_name(&resp)
    );
    let welcome = match &resp {
        Response::Welcome { proto } => Some(*proto),
        _ => None,
    };
    match check_welcome(resp) {
        Ok(v) => {
            assert_eq!(Some(v), welcome, "check_welcome accepted a non-Welcome");
            assert!((PROTO_OLDEST..=PROTO_VERSION).contains(&v), "version {v}");
        }
        Err(_) => assert!(
            !welcome.is_some_and(|v| (PROTO_OLDEST..=PROTO_VERSION).contains(&v)),
            "check_welcome refused a good Welcome"
        ),
    }
}

/// The response with every [`Secret`] emptied.
fn blank_secrets(mut resp: Response) -> Response {
    match &mut resp {
        Response::TotpPending(p) => {
            p.secret = Secret::default();
            p.uri = Secret::default();
        }
        Response::BackupCodes { codes } => codes.iter_mut().for_each(|c| *c = Secret::default()),
        _ => {}
    }
    resp
}
