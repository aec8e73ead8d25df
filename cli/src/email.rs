//! `twofold enroll email` and `twofold remove email`: an address that
//! counts once the code the daemon mailed to it is typed back. Beside a
//! confirmed address, `--address` changes it in one step (a current code
//! first; the old address works until the new one is confirmed).

use crate::account::done;
use crate::daemon::{is_self, Daemon};
use crate::error::CliError;
use crate::input::totp_code;
use crate::{read_code, Io};
use twofold_proto::{ErrorKind, Method, Request, Response, Secret};

/// Asked for the code the daemon mailed.
pub const MAIL_PROMPT: &str = "Enter the code from the mail: ";

/// Asked for the code the daemon texted.
pub const SMS_PROMPT: &str = "Enter the code from the text message: ";

/// `twofold enroll email [--address A] [--code C] [--no-confirm]`: sends a
/// code to the address (when given), then confirms with the code.
pub fn enroll(
    daemon: &Daemon,
    user: Option<&str>,
    address: Option<&str>,
    code: Option<&str>,
    confirm: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    enroll_sent(daemon, &Method::EMAIL, user, address, code, confirm, io)
}

/// `twofold enroll sms [--phone N] [--code C] [--no-confirm]`: sends a
/// code to the number (when given), then confirms with the code.
pub fn enroll_sms(
    daemon: &Daemon,
    user: Option<&str>,
    phone: Option<&str>,
    code: Option<&str>,
    confirm: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    enroll_sent(daemon, &Method::SMS, user, phone, code, confirm, io)
}

/// Enrolls a destination of a sending factor (`email` or `sms`).
fn enroll_sent(
    daemon: &Daemon,
    method: &Method,
    user: Option<&str>,
    address: Option<&str>,
    code: Option<&str>,
    confirm: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let sms = *method == Method::SMS;
    let w = CliError::io("writing output");
    if let Some(address) = address {
        let start = |code: Option<Secret>| {
            daemon.call(&Request::EnrollStart {
                user: user.map(str::to_owned),
                method: method.clone(),
                algorithm: None,
                digits: None,
                address: Some(address.to_owned()),
                code,
            })
        };
        // Beside a confirmed factor, the daemon asks for a current code of
        // it first (self-service only).
        let resp = match start(None) {
            Err(CliError::Failed {
                kind: ErrorKind::BadRequest,
                message,
            }) if message.contains("verification code is required") => {
                let raw = read_code(None, crate::account::AUTH_PROMPT, io)?;
                start(Some(totp_code(&raw)?))?
            }
            other => other?,
        };
        match resp {
            Response::Done { message } => writeln!(io.out, "{message}").map_err(w)?,
            other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
        }
        if !confirm {
            return Ok(());
        }
    }
    let raw = read_code(code, if sms { SMS_PROMPT } else { MAIL_PROMPT }, io)?;
    let resp = daemon.call(&Request::EnrollConfirm {
        user: user.map(str::to_owned),
        method: method.clone(),
        code: totp_code(&raw)?,
    })?;
    match resp {
        Response::BackupCodes { codes } => {
            let who = user
                .map(str::to_owned)
                .or_else(crate::daemon::own_user_name);
            writeln!(
                io.out,
                "{} codes are now enrolled for {}.",
                if sms { "SMS" } else { "Email" },
                who.as_deref().unwrap_or("your account")
            )
            .map_err(CliError::io("writing output"))?;
            if !codes.is_empty() {
                crate::enroll::print_backup_codes(&codes, false, io)?;
            }
            Ok(())
        }
        // A confirmed destination was replaced (a change in one step).
        Response::Done { message } => {
            writeln!(io.out, "{message}").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// `twofold remove email` and `twofold remove sms`: need a current code in self-service.
pub fn remove(
    daemon: &Daemon,
    method: Method,
    user: Option<&str>,
    code: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let code = if code.is_none() && !is_self(user) {
        None
    } else {
        let raw = read_code(code, crate::account::AUTH_PROMPT, io)?;
        Some(totp_code(&raw)?)
    };
    let req = Request::RemoveFactor {
        user: user.map(str::to_owned),
        method,
        code,
    };
    done(daemon.call(&req)?, io)
}
