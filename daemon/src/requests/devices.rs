//! `twofold devices`: the remembered devices of an account, and
//! forgetting them. A user lists and forgets their own (forgetting only
//! takes trust away, so it needs no second factor); an admin anyone's.
//! Every forget is audited with the device it forgot.

use super::{Answer, Unhandled};
use crate::audit::{event, AuditEvent};
use crate::engine::Engine;
use crate::failure::{fail, Failure};
use crate::server::peer::Peer;
use crate::validate;
use twofold_proto::{DeviceInfo, ErrorKind, Request, Response};

/// Answers the requests of this part; hands the others back.
pub(super) fn answer(engine: &Engine, peer: &Peer, req: Request) -> Result<Answer, Unhandled> {
    Ok(match req {
        Request::Devices { user } => target(peer, user).and_then(|u| list(engine, &u)),
        Request::DevicesForget { user, id, all } => {
            target(peer, user).and_then(|u| forget(engine, peer, &u, id, all))
        }
        other => return Err(Unhandled(Box::new(other))),
    })
}

/// The account a request names (the caller's own when none): the
/// caller's, or anyone's for an admin.
fn target(peer: &Peer, user: Option<String>) -> Result<String, Failure> {
    let user = match user {
        Some(u) => u,
        None => peer.name.clone().ok_or_else(|| {
            fail(
                ErrorKind::PermissionDenied,
                format!("uid {} has no account name", peer.cred.uid),
            )
        })?,
    };
    validate::user(&user).map_err(|e| fail(ErrorKind::BadRequest, e.to_string()))?;
    if peer.is_self(&user) || peer.admin {
        Ok(user)
    } else {
        Err(fail(
            ErrorKind::PermissionDenied,
            "you may only manage your own account",
        ))
    }
}

fn list(engine: &Engine, user: &str) -> Answer {
    let devices = engine
        .store
        .devices(user, engine.now())?
        .into_iter()
        .map(|d| DeviceInfo {
            id: d.id,
            kind: d.kind,
            what: d.what,
            service: d.service,
            since: d.since,
            last_used: d.last_used,
            expires_at: d.expires_at,
        })
        .collect::<Vec<_>>();
    let fit = super::fitting(&devices);
    if fit < devices.len() {
        return Err(super::too_many("devices"));
    }
    Ok(Response::DeviceList {
        user: user.to_owned(),
        devices,
    })
}

fn forget(engine: &Engine, peer: &Peer, user: &str, id: Option<i64>, all: bool) -> Answer {
    if id.is_some() == all {
        return Err(fail(
            ErrorKind::BadRequest,
            "name one device by its id, or all of them",
        ));
    }
    engine
        .admit_write(peer.cred.uid, "devices_forget")
        .map_err(|why| fail(ErrorKind::PermissionDenied, why))?;
    let ev = AuditEvent::new(event::DEVICE_FORGOTTEN, user, &peer.actor());
    let (n, recs) = engine.store.forget_devices(user, id, engine.now(), ev)?;
    engine.syslog_records(&recs);
    match (n, id) {
        (0, Some(id)) => Err(fail(
            ErrorKind::NotFound,
            format!("{user} has no remembered device {id}"),
        )),
        (1, Some(id)) => Ok(Response::Done {
            message: format!(
                "device {id} of {user} forgotten; its next login asks for the second factor"
            ),
        }),
        (n, _) => Ok(Response::Done {
            message: format!("{n} remembered device(s) of {user} forgotten"),
        }),
    }
}
