//! The CLI's requests: self-service (enrollment, status, codes, removal)
//! and admin (accounts, locks, grace, audit, figures). Each is authorized
//! from the peer's credentials, answered, and logged.

mod admin;
mod devices;
mod selfservice;

use crate::engine::Engine;
use crate::failure::{kind_name, Failure};
use crate::server::peer::Peer;
use twofold_proto::{Request, Response};

/// Answers one self-service or admin request and logs it.
pub(crate) fn answer(engine: &Engine, peer: &Peer, req: Request) -> Response {
    let kind = req.kind();
    let named = match &req {
        Request::TotpEnrollStart { user, .. }
        | Request::TotpEnrollConfirm { user, .. }
        | Request::Status { user }
        | Request::RegenerateBackupCodes { user, .. }
        | Request::RemoveTotp { user, .. }
        | Request::RemoveFactor { user, .. }
        | Request::EnrollStartNamed { user, .. }
        | Request::RemoveCredential { user, .. }
        | Request::EnrollCancel { user, .. }
        | Request::Devices { user }
        | Request::DevicesForget { user, .. } => user.clone().or_else(|| peer.name.clone()),
        Request::AdminDisable { user }
        | Request::AdminUnlock { user }
        | Request::AdminGrace { user, .. }
        | Request::AdminTempCode { user, .. }
        | Request::AdminEnrollHotp { user, .. }
        | Request::AdminHotpResync { user, .. }
        | Request::AdminImport { user, .. }
        | Request::AdminImportKey { user, .. } => Some(user.clone()),
        _ => None,
    };
    let result = match devices::answer(engine, peer, req) {
        Err(Unhandled(req)) => match selfservice::answer(engine, peer, *req) {
            Err(Unhandled(req)) => admin::answer(engine, peer, *req),
            Ok(r) => r,
        },
        Ok(r) => r,
    };
    let uid = peer.cred.uid.to_string();
    let user = named.unwrap_or_default();
    match result {
        Ok(resp) => {
            engine.log.event(
                "request",
                &[
                    ("type", kind),
                    ("peer_uid", &uid),
                    ("user", &user),
                    ("result", "ok"),
                ],
            );
            resp
        }
        Err(f) => {
            let mut fields = vec![
                ("type", kind),
                ("peer_uid", uid.as_str()),
                ("user", user.as_str()),
                ("result", kind_name(f.kind)),
            ];
            if let Some(d) = f.detail.as_deref() {
                fields.push(("error", d));
            }
            engine.log.event("request", &fields);
            Response::Failed {
                kind: f.kind,
                message: f.message,
            }
        }
    }
}

/// Replies stop before this many bytes of items, so a page (and its frame
/// header and envelope) always fits in one 64 KiB frame.
pub(crate) const PAGE_BYTES: usize = 48 * 1024;

/// How many of `items` (in order) fit in one reply's page.
pub(crate) fn fitting<T: serde::Serialize>(items: &[T]) -> usize {
    let mut size = 0;
    for (i, item) in items.iter().enumerate() {
        size += serde_json::to_vec(item)
            .map(|v| v.len() + 1)
            .unwrap_or(PAGE_BYTES);
        if size > PAGE_BYTES {
            return i;
        }
    }
    items.len()
}

/// The refusal of an old whole-list request whose answer would not fit in
/// one frame (nothing is ever cut off silently).
pub(crate) fn too_many(what: &str) -> Failure {
    crate::failure::fail(
        twofold_proto::ErrorKind::BadRequest,
        format!("the {what} do not fit in one reply; use a twofold that pages them (this version's CLI does)"),
    )
}

/// A request one part does not answer, handed to the next.
pub(crate) struct Unhandled(pub Box<Request>);

/// The answer of a part that handled a request.
pub(crate) type Answer = Result<Response, Failure>;
