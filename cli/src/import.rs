//! `twofold admin import`: other modules' files read (never changed),
//! shown as a plan, and enrolled through the daemon with `--apply`. The
//! parsing is `twofold-import`'s; this file finds the files, names their
//! owners, prints and sends.

use crate::daemon::Daemon;
use crate::error::CliError;
use crate::Io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use twofold_import::{google, hex_encode, oath, u2f, Otp, Record, MAX_FILE};
use twofold_proto::{Method, Request, Response, Secret};
use zeroize::Zeroizing;

/// Where google-authenticator keeps a user's file, under the home.
pub const GOOGLE_FILE: &str = ".google_authenticator";

/// One file's records, with where they came from.
struct Found {
    source: String,
    records: Vec<(String, Record)>,
}

/// `twofold admin import google-authenticator`.
pub fn google_authenticator(
    daemon: &Daemon,
    from: Option<&Path>,
    user: Option<&str>,
    all_homes: bool,
    apply: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let files: Vec<(PathBuf, Option<String>)> = match (from, all_homes) {
        (Some(f), false) => vec![(f.to_owned(), user.map(str::to_owned))],
        (None, true) => homes()?
            .into_iter()
            .map(|(name, home)| (home.join(GOOGLE_FILE), Some(name)))
            .filter(|(p, _)| p.exists())
            .collect(),
        _ => {
            return Err(CliError::Usage(
                "give --from FILE (with --user NAME, or the file's owner) or --all-homes".into(),
            ))
        }
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (path, named) in files {
        match read(&path)
            .and_then(|text| google::parse(&text).map_err(|e| format!("{}: {e}", path.display())))
        {
            Ok(record) => {
                let owner = match named {
                    Some(n) => n,
                    None => owner_of(&path)?,
                };
                found.push(Found {
                    source: format!("google-authenticator:{}", path.display()),
                    records: vec![(owner, record)],
                });
            }
            Err(e) => errors.push(e),
        }
    }
    finish(daemon, found, errors, apply, io)
}

/// `twofold admin import oath`.
pub fn oath_file(
    daemon: &Daemon,
    from: &Path,
    apply: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let text = read(from).map_err(CliError::Usage)?;
    let records =
        oath::parse(&text).map_err(|e| CliError::Usage(format!("{}: {e}", from.display())))?;
    let found = Found {
        source: format!("pam_oath:{}", from.display()),
        records: records
            .into_iter()
            .map(|r| (r.user.clone().unwrap_or_default(), r))
            .collect(),
    };
    finish(daemon, vec![found], Vec::new(), apply, io)
}

/// `twofold admin import u2f-keys`: each user's security keys, with the
/// RP ID pam-u2f asserted them for (`origin`, or `appid` for old-format
/// credentials; both `pam://<host>` by default, as in pam-u2f).
pub fn u2f_keys(
    daemon: &Daemon,
    from: &Path,
    origin: Option<&str>,
    appid: Option<&str>,
    apply: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let text = read(from).map_err(CliError::Usage)?;
    let entries = u2f::parse(&text)
        .map_err(|e| CliError::Usage(format!("{}: {e}\nnothing was imported", from.display())))?;
    let origin = origin.map_or_else(default_origin, str::to_owned);
    let appid = appid.map_or_else(|| origin.clone(), str::to_owned);
    let source = format!("pam-u2f:{}", from.display());
    let mut out = String::new();
    if entries.iter().all(|e| e.keys.is_empty()) {
        out.push_str("Nothing to import.\n");
    } else if !apply {
        out.push_str("Would import (a dry run: nothing is written; add --apply):\n");
    }
    let mut failed = 0;
    for e in &entries {
        for note in &e.notes {
            out.push_str(&format!("{}: {note} (line {})\n", e.user, e.line));
        }
        for k in &e.keys {
            let rp_id = if k.old_format { &appid } else { &origin };
            let format = if k.old_format { "old" } else { "new" };
            out.push_str(&format!(
                "{}: fido2 {} security key for {rp_id} from {source} line {} ({format} format)\n",
                e.user,
                k.alg.as_str(),
                e.line
            ));
            if !apply {
                continue;
            }
            let req = Request::AdminImportKey {
                user: e.user.clone(),
                name: None,
                rp_id: rp_id.clone(),
                credential_id_hex: hex_encode(&k.credential_id).to_string(),
                algorithm: k.alg.as_str().to_owned(),
                public_key_hex: hex_encode(&k.public).to_string(),
                source: source.clone(),
            };
            match daemon.call(&req) {
                Ok(Response::Done { message }) => out.push_str(&format!("  imported: {message}\n")),
                Ok(other) => {
                    return Err(CliError::Unexpected(twofold_proto::response_name(&other)))
                }
                Err(CliError::Failed { message, .. }) => {
                    failed += 1;
                    out.push_str(&format!("  NOT imported: {message}\n"));
                }
                Err(e) => return Err(e),
            }
        }
    }
    io.out
        .write_all(out.as_bytes())
        .map_err(CliError::io("writing output"))?;
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} not imported (see above)"
        )));
    }
    Ok(())
}

/// pam-u2f's default origin: `pam://` and this host's name.
fn default_origin() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host = if rc == 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    format!(
        "pam://{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// Prints the plan (and with `apply` enrolls each record); a malformed
/// file imports nothing at all.
fn finish(
    daemon: &Daemon,
    found: Vec<Found>,
    errors: Vec<String>,
    apply: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    if !errors.is_empty() {
        return Err(CliError::Usage(format!(
            "{}\nnothing was imported",
            errors.join("\n")
        )));
    }
    let mut out = String::new();
    if found.iter().all(|f| f.records.is_empty()) {
        out.push_str("Nothing to import.\n");
    } else if !apply {
        out.push_str("Would import (a dry run: nothing is written; add --apply):\n");
    }
    let mut failed = 0;
    for f in &found {
        for (user, r) in &f.records {
            out.push_str(&format!(
                "{user}: {} from {} line {}\n",
                describe(r),
                f.source,
                r.line
            ));
            for note in &r.notes {
                out.push_str(&format!("  - {note}\n"));
            }
            if apply {
                match daemon.call(&request(user, r, &f.source)) {
                    Ok(Response::Done { message }) => {
                        out.push_str(&format!("  imported: {message}\n"))
                    }
                    Ok(other) => {
                        return Err(CliError::Unexpected(twofold_proto::response_name(&other)))
                    }
                    // Refused for this user (already enrolled, a bad
                    // secret): said, and the others go on.
                    Err(CliError::Failed { message, .. }) => {
                        failed += 1;
                        out.push_str(&format!("  NOT imported: {message}\n"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    io.out
        .write_all(out.as_bytes())
        .map_err(CliError::io("writing output"))?;
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} not imported (see above)"
        )));
    }
    Ok(())
}

fn describe(r: &Record) -> String {
    let scratch = match r.scratch.len() {
        0 => String::new(),
        n => format!(", {n} scratch codes as backup codes"),
    };
    match &r.otp {
        Otp::Totp { digits, period, .. } => format!("totp ({digits} digits, {period} s){scratch}"),
        Otp::Hotp {
            digits, counter, ..
        } => format!("hotp ({digits} digits, next counter {counter}){scratch}"),
    }
}

fn request(user: &str, r: &Record, source: &str) -> Request {
    let (method, secret, digits, period, counter) = match &r.otp {
        Otp::Totp {
            secret,
            digits,
            period,
            last_step,
        } => (Method::TOTP, secret, *digits, Some(*period), *last_step),
        Otp::Hotp {
            secret,
            digits,
            counter,
        } => (Method::HOTP, secret, *digits, None, Some(*counter)),
    };
    let hex: Zeroizing<String> = hex_encode(secret);
    Request::AdminImport {
        user: user.to_owned(),
        method,
        secret_hex: Secret::new(hex.to_string()),
        digits,
        period,
        counter,
        scratch: r
            .scratch
            .iter()
            .map(|c| Secret::new(c.to_string()))
            .collect(),
        source: source.to_owned(),
    }
}

/// A file's text, at most [`MAX_FILE`] bytes; the error names the file.
fn read(path: &Path) -> Result<Zeroizing<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE as u64 {
        return Err(format!("{}: larger than {MAX_FILE} bytes", path.display()));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The name of the file's owner, from the passwd database.
fn owner_of(path: &Path) -> Result<String, CliError> {
    let uid = std::fs::metadata(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
        .uid();
    homes()?
        .into_iter()
        .find_map(|(name, _)| (uid_of(&name) == Some(uid)).then_some(name))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{}: its owner (uid {uid}) has no passwd entry; name the account with --user",
                path.display()
            ))
        })
}

fn uid_of(name: &str) -> Option<u32> {
    passwd_lines()
        .ok()?
        .into_iter()
        .find(|f| f.first().map(String::as_str) == Some(name))
        .and_then(|f| f.get(2)?.parse().ok())
}

/// Every account's name and home directory in /etc/passwd (accounts only
/// NSS knows are not listed: import those with --from and --user).
fn homes() -> Result<Vec<(String, PathBuf)>, CliError> {
    Ok(passwd_lines()?
        .into_iter()
        .filter_map(|f| Some((f.first()?.clone(), PathBuf::from(f.get(5)?))))
        .collect())
}

fn passwd_lines() -> Result<Vec<Vec<String>>, CliError> {
    let text = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| CliError::Usage(format!("/etc/passwd: {e}")))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect())
}
