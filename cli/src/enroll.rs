//! `twofold enroll totp` and `twofold enroll confirm`.

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::input::totp_code;
use crate::{format, qr, read_code, Io};
use std::fmt::Write as _;
use std::io::Write;
use twofold_proto::{ErrorKind, Request, Response, Secret, TotpEnrollment};
use zeroize::Zeroize;

/// What `enroll totp` asks for after showing the QR code.
pub const CODE_PROMPT: &str = "Enter a code from your authenticator app: ";

/// Wrong codes allowed while confirming an enrollment interactively.
pub const CONFIRM_TRIES: u32 = 3;

/// Options of `twofold enroll totp`.
#[derive(Debug, Clone)]
pub struct TotpOptions {
    /// Whose account; `None` for the caller's own.
    pub user: Option<String>,
    /// HMAC algorithm; `None` for the daemon's default.
    pub algorithm: Option<twofold_proto::Algorithm>,
    /// Code length; `None` for the daemon's default.
    pub digits: Option<u32>,
    /// Draw the QR code.
    pub qr: bool,
    /// Draw it for a light-background terminal.
    pub qr_invert: bool,
    /// Ask for a code and confirm right away.
    pub confirm: bool,
    /// Print JSON on stdout.
    pub json: bool,
}

/// `twofold enroll fido2`: the daemon registers the key plugged in here
/// (first touch) and confirms it with a login-like assertion (second
/// touch); each request waits for a touch, so it gets more time.
pub fn fido2(
    daemon: &Daemon,
    user: Option<&str>,
    name: Option<&str>,
    pin: bool,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let pin = if pin {
        let p = io.codes.read_code(PIN_PROMPT)?.ok_or_else(|| {
            CliError::Usage("no PIN given: the input ended before it was entered".into())
        })?;
        Some(p)
    } else {
        None
    };
    let patient = Daemon {
        timeout: daemon
            .timeout
            .max(std::time::Duration::from_secs(FIDO2_WAIT_SECS)),
        ..daemon.clone()
    };
    writeln!(io.err, "Touch your security key to register it.")
        .map_err(CliError::io("writing output"))?;
    let req = Request::EnrollStartNamed {
        user: user.map(str::to_owned),
        method: twofold_proto::Method::FIDO2,
        name: name.map(str::to_owned),
        pin,
    };
    match patient.call(&req)? {
        Response::Done { message } => {
            writeln!(io.err, "{message}").map_err(CliError::io("writing output"))?
        }
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
    writeln!(io.err, "Touch your security key again to confirm.")
        .map_err(CliError::io("writing output"))?;
    let req = Request::EnrollConfirm {
        user: user.map(str::to_owned),
        method: twofold_proto::Method::FIDO2,
        code: Secret::from(""),
    };
    match patient.call(&req)? {
        Response::BackupCodes { codes } if !codes.is_empty() => {
            writeln!(io.err, "Security key enrolled.").map_err(CliError::io("writing output"))?;
            print_backup_codes(&codes, json, io)
        }
        Response::BackupCodes { .. } | Response::Done { .. } => {
            writeln!(io.out, "Security key enrolled.").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// What `enroll fido2 --pin` asks.
pub const PIN_PROMPT: &str = "Security key PIN: ";

/// How long `enroll fido2` waits for each answer: longer than the
/// daemon's wait for a touch (30 s).
pub const FIDO2_WAIT_SECS: u64 = 40;

/// Starts a TOTP enrollment, shows it, and (unless told not to) confirms it.
pub fn totp(daemon: &Daemon, opts: &TotpOptions, io: &mut Io<'_>) -> Result<(), CliError> {
    let req = Request::TotpEnrollStart {
        user: opts.user.clone(),
        algorithm: opts.algorithm,
        digits: opts.digits,
    };
    // Beside a confirmed factor, the daemon asks for a current code of one
    // first (self-service only): asked here, then the start again with it.
    let resp = match daemon.call(&req) {
        Err(CliError::Failed {
            kind: ErrorKind::BadRequest,
            message,
        }) if message.contains("verification code is required") => {
            let raw = read_code(None, crate::account::AUTH_PROMPT_ANY, io)?;
            daemon.call(&Request::EnrollStart {
                user: opts.user.clone(),
                method: twofold_proto::Method::TOTP,
                algorithm: opts.algorithm,
                digits: opts.digits,
                address: None,
                code: Some(totp_code(&raw)?),
            })?
        }
        other => other?,
    };
    let pending = match resp {
        Response::TotpPending(p) => p,
        other => return Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    };
    if !opts.confirm {
        if opts.json {
            // The wire type's own field names: user, secret, uri, algorithm,
            // digits, period, issuer.
            serde_json::to_writer_pretty(&mut *io.out, &pending).map_err(|e| CliError::Io {
                context: "writing JSON",
                source: e.into(),
            })?;
            writeln!(io.out).map_err(CliError::io("writing output"))?;
        } else {
            show(&pending, opts.qr, opts.qr_invert, io.out)?;
        }
        // With --json the hint must not spoil stdout for scripts.
        let hint: &mut dyn Write = if opts.json { io.err } else { io.out };
        writeln!(
            hint,
            "The enrollment is not active yet. Confirm it with: twofold enroll confirm{}",
            user_flag(opts.user.as_deref())
        )
        .map_err(CliError::io("writing output"))?;
        return Ok(());
    }
    // With --json, stdout carries only the JSON result; the enrollment is for
    // the person's eyes, so it goes to stderr.
    if opts.json {
        show(&pending, opts.qr, opts.qr_invert, io.err)?;
    } else {
        show(&pending, opts.qr, opts.qr_invert, io.out)?;
        io.out.flush().map_err(CliError::io("writing output"))?;
    }
    let confirmed = confirm_interactively(daemon, opts, &pending, io);
    if confirmed.is_err() {
        // Nothing is left half done: the pending enrollment is dropped (it
        // never counted), and the error says so.
        let cancel = Request::EnrollCancel {
            user: opts.user.clone(),
            method: twofold_proto::Method::TOTP,
        };
        if daemon.call(&cancel).is_ok() {
            let _ = writeln!(
                io.err,
                "twofold: the enrollment was not finished and has been dropped; nothing changed"
            );
        }
    }
    confirmed
}

/// Asks for codes until one confirms `pending` or the tries run out.
fn confirm_interactively(
    daemon: &Daemon,
    opts: &TotpOptions,
    pending: &TotpEnrollment,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let mut last = None;
    for attempt in 1..=CONFIRM_TRIES {
        let failure = match try_confirm(daemon, opts.user.as_deref(), io)? {
            Ok(resp) => return print_confirmed(&pending.user, resp, opts.json, io),
            Err(failure) => failure,
        };
        if attempt < CONFIRM_TRIES {
            let left = CONFIRM_TRIES - attempt;
            writeln!(
                io.err,
                "twofold: {failure}; try again ({left} {} left)",
                if left == 1 { "try" } else { "tries" }
            )
            .map_err(CliError::io("writing output"))?;
        }
        last = Some(failure);
    }
    Err(CliError::Failed {
        kind: ErrorKind::InvalidCode,
        message: format!(
            "{}; gave up after {CONFIRM_TRIES} tries: run `twofold enroll totp{}` to start again",
            last.unwrap_or_default(),
            user_flag(opts.user.as_deref())
        ),
    })
}

/// One confirmation attempt. The outer error ends the command; the inner one
/// is a wrong or malformed code the person may retry.
fn try_confirm(
    daemon: &Daemon,
    user: Option<&str>,
    io: &mut Io<'_>,
) -> Result<Result<Response, String>, CliError> {
    let Some(raw) = io.codes.read_code(CODE_PROMPT)? else {
        return Err(CliError::Usage(format!(
            "no code entered: run `twofold enroll totp{}` again when the app is at hand",
            user_flag(user)
        )));
    };
    let code = match totp_code(&raw) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let req = Request::TotpEnrollConfirm {
        user: user.map(str::to_owned),
        code,
    };
    match daemon.call(&req) {
        Ok(resp) => Ok(Ok(resp)),
        Err(CliError::Failed {
            kind: ErrorKind::InvalidCode,
            message,
        }) => Ok(Err(message)),
        Err(e) => Err(e),
    }
}

/// `twofold enroll confirm`: confirms the pending enrollment with one code.
pub fn confirm(
    daemon: &Daemon,
    user: Option<&str>,
    code: Option<&str>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let raw = read_code(code, CODE_PROMPT, io)?;
    let req = Request::TotpEnrollConfirm {
        user: user.map(str::to_owned),
        code: totp_code(&raw)?,
    };
    let resp = daemon.call(&req)?;
    let who = user
        .map(str::to_owned)
        .or_else(crate::daemon::own_user_name);
    print_confirmed(who.as_deref().unwrap_or("your account"), resp, json, io)
}

fn print_confirmed(
    user: &str,
    resp: Response,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    match resp {
        Response::BackupCodes { codes } => {
            if !json {
                writeln!(io.out, "TOTP is now enrolled for {user}.\n")
                    .map_err(CliError::io("writing output"))?;
            }
            print_backup_codes(&codes, json, io)
        }
        // A daemon that keeps existing backup codes on re-enrollment has none to show.
        Response::Done { .. } if json => {
            writeln!(io.out, "[]").map_err(CliError::io("writing output"))
        }
        Response::Done { message } => {
            writeln!(io.out, "{message}").map_err(CliError::io("writing output"))
        }
        other => Err(CliError::Unexpected(twofold_proto::response_name(&other))),
    }
}

/// Prints fresh backup codes: a JSON array, or a list with the once-only warning.
pub fn print_backup_codes(codes: &[Secret], json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    let w = CliError::io("writing output");
    if json {
        serde_json::to_writer_pretty(&mut *io.out, codes).map_err(|e| CliError::Io {
            context: "writing JSON",
            source: e.into(),
        })?;
        return writeln!(io.out).map_err(w);
    }
    let mut text =
        String::from("Backup codes (each works once, in place of a code from the app):\n");
    for c in codes {
        text.push_str("  ");
        text.push_str(c.expose());
        text.push('\n');
    }
    text.push_str("These codes are shown only once: store them somewhere safe now.\n");
    let res = io.out.write_all(text.as_bytes()).map_err(w);
    text.zeroize();
    res
}

/// Shows a pending enrollment: QR code, manual-entry secret and URI.
/// Whether COLORFGBG (set by rxvt, Konsole and others as `fg;bg`) names a
/// light background: colour 7 or 15 (white), or 9 to 14 (bright ones).
pub fn light_background(colorfgbg: Option<String>) -> bool {
    colorfgbg
        .as_deref()
        .and_then(|v| v.rsplit(';').next())
        .and_then(|bg| bg.parse::<u8>().ok())
        .is_some_and(|bg| bg == 7 || (9..=15).contains(&bg))
}

/// Shows the enrollment: the key and the URI first, then the QR code right
/// above the prompt that follows, so that on an 80×24 terminal the code is
/// whole on screen while the person scans it (a usual URI's code is 23
/// lines of 45 columns).
fn show(
    p: &TotpEnrollment,
    with_qr: bool,
    invert: bool,
    w: &mut dyn Write,
) -> Result<(), CliError> {
    let mut text = String::new();
    text.push_str(if with_qr {
        "Add this key to your authenticator app, or scan the QR code below:\n"
    } else {
        "Add this key to your authenticator app:\n"
    });
    let mut grouped = format::group4(p.secret.expose());
    // Written straight into `text`, which is wiped, so no stray copy of the
    // key is left in a temporary.
    let _ = write!(
        text,
        "  Account: {} (issuer {})\n  Key:     {}\n  Type:    time-based, {}, {} digits, every {} seconds\nURI: {}\n",
        p.user,
        p.issuer,
        grouped,
        p.algorithm.as_str(),
        p.digits,
        p.period,
        p.uri.expose()
    );
    grouped.zeroize();
    if with_qr {
        let mut drawn =
            qr::render_with(p.uri.expose(), invert).map_err(|e| CliError::Usage(e.to_string()))?;
        text.push_str(&drawn);
        drawn.zeroize();
    } else {
        text.push('\n');
    }
    let res = w
        .write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(CliError::io("writing output"));
    text.zeroize();
    res
}

fn user_flag(user: Option<&str>) -> String {
    user.map(|u| format!(" --user {u}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::light_background;

    #[test]
    fn colorfgbg_names_a_light_background() {
        for light in ["0;15", "0;7", "12;9", "default;15"] {
            assert!(light_background(Some(light.into())), "{light}");
        }
        for dark in ["15;0", "7;0", "0;8", "", "junk", "15;default"] {
            assert!(!light_background(Some(dark.into())), "{dark}");
        }
        assert!(!light_background(None));
    }
}
