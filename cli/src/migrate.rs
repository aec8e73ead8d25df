//! `twofold admin migrate --to postgres [--apply]`: runs `twofoldd
//! --migrate-from-sqlite` on the same configuration file (the move needs
//! the master key and the database, which only root and twofoldd read, and
//! the daemon's store code, which the CLI does not link), passing its
//! report through and its failure on as this command's.

use crate::args::MigrateTo;
use crate::error::CliError;
use crate::Io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use twofold_proto::ErrorKind;

/// Where the packaged twofoldd is.
const INSTALLED: &str = "/usr/sbin/twofoldd";

/// The twofoldd beside this `twofold` (a build tree), else the installed one.
fn twofoldd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("twofoldd")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(INSTALLED))
}

/// Moves this host's state to `to`, as `config` describes it.
pub fn to(to: MigrateTo, config: &Path, apply: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    let MigrateTo::Postgres = to;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CliError::Failed {
            kind: ErrorKind::PermissionDenied,
            message: "twofold admin migrate must run as root: it reads the master key and the \
                      SQLite database"
                .into(),
        });
    }
    let bin = twofoldd();
    let mut cmd = Command::new(&bin);
    cmd.arg("--config")
        .arg(config)
        .arg("--migrate-from-sqlite")
        .stdin(Stdio::null());
    if apply {
        cmd.arg("--apply");
    }
    let out = cmd.output().map_err(|e| CliError::Failed {
        kind: ErrorKind::Internal,
        message: format!("cannot run {}: {e}", bin.display()),
    })?;
    io.out
        .write_all(&out.stdout)
        .map_err(CliError::io("writing the report"))?;
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim();
    if out.status.success() {
        if !said.is_empty() {
            writeln!(io.err, "{said}").map_err(CliError::io("writing the report"))?;
        }
        return Ok(());
    }
    let message = said.strip_prefix("twofoldd: ").unwrap_or(said).to_owned();
    let message = if message.is_empty() {
        format!(
            "{} --migrate-from-sqlite failed ({})",
            bin.display(),
            out.status
        )
    } else {
        message
    };
    // twofoldd exits 2 for a bad command line or configuration.
    Err(match out.status.code() {
        Some(2) => CliError::Usage(message),
        _ => CliError::Failed {
            kind: ErrorKind::Internal,
            message,
        },
    })
}
