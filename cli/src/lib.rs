//! The `twofold` command line: enrollment, status and administration.
//!
//! The binary only parses arguments and calls [`main`]; everything else lives
//! here so tests can call it. The CLI talks to `twofoldd` only through
//! `twofold_proto`, one connection per request.
//!
//! **Invariant:** the CLI never prints a code it was given, and errors name
//! the problem, never the input that caused it.

mod account;
mod admin;
mod args;
mod audit;
mod daemon;
mod devices;
mod doctor;
mod email;
mod enroll;
mod error;
mod format;
mod import;
mod input;
mod migrate;
mod policy;
mod stats;

use twofold_qr as qr;

pub use account::{list_text, status_json, status_text, AUTH_PROMPT};
pub use admin::locks_text;
pub use args::{
    parse_user, Admin, AdminEnroll, AdminImport, AuditCmd, AuditFilterArgs, BackupCodes, Cli,
    CodeArg, Command, ConfigCmd, DevicesCmd, Enroll, JsonArg, MigrateTo, Remove, StatsFormat,
    UserArg,
};
pub use audit::{parse_time, record_json, record_text, FOLLOW_EVERY};
pub use daemon::{is_self, own_user_name, resolve_socket, Daemon, CLIENT_NAME};
pub use enroll::{TotpOptions, CODE_PROMPT, CONFIRM_TRIES};
pub use error::{CliError, Exit, EXIT_CODES_HELP};
pub use format::{group4, utc};
pub use input::{totp_code, CodeSource, Terminal};
pub use policy::explain as explain_policy;
pub use qr::{render as render_qr, QrError, QUIET_ZONE};
pub use stats::{prometheus, stats_json, stats_text, StatsOutput};

use clap::Parser;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use twofold_config::{Config, DEFAULT_CONFIG};
use twofold_proto::Secret;

/// Where a command writes and reads.
pub struct Io<'a> {
    /// Results: text or JSON.
    pub out: &'a mut dyn Write,
    /// Warnings, hints and (with `--json`) what is meant for eyes only.
    pub err: &'a mut dyn Write,
    /// Codes typed by the person.
    pub codes: &'a mut dyn CodeSource,
}

impl fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Io { .. }")
    }
}

/// Runs the parsed command line.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let daemon = || -> Result<Daemon, CliError> {
        Ok(Daemon {
            socket: resolve_socket(
                cli.socket.as_deref(),
                cli.config.as_deref(),
                Path::new(DEFAULT_CONFIG),
                &mut std::io::stderr(),
            )?,
            timeout: Duration::from_secs(cli.timeout),
        })
    };
    match &cli.command {
        Command::Enroll(Enroll::Totp {
            user,
            algorithm,
            digits,
            no_qr,
            qr_invert,
            no_confirm,
            json,
        }) => {
            let opts = TotpOptions {
                user: user.user.clone(),
                algorithm: *algorithm,
                digits: *digits,
                qr: !no_qr,
                qr_invert: *qr_invert || enroll::light_background(std::env::var("COLORFGBG").ok()),
                confirm: !no_confirm,
                json: json.json,
            };
            enroll::totp(&daemon()?, &opts, io)
        }
        Command::Enroll(Enroll::Confirm { user, code, json }) => enroll::confirm(
            &daemon()?,
            user.user.as_deref(),
            code.code.as_deref(),
            json.json,
            io,
        ),
        Command::Doctor { json } => {
            let config = match cli.config.as_deref() {
                Some(f) => Config::load(f)?,
                None if Path::new(DEFAULT_CONFIG).exists() => {
                    Config::load(Path::new(DEFAULT_CONFIG))?
                }
                None => Config::default(),
            };
            doctor::run(&daemon()?, &config, json.json, io)
        }
        Command::Status { user, json } => {
            account::status(&daemon()?, user.user.as_deref(), json.json, io)
        }
        Command::BackupCodes(BackupCodes::Regenerate { user, code, json }) => account::regenerate(
            &daemon()?,
            user.user.as_deref(),
            code.code.as_deref(),
            json.json,
            io,
        ),
        Command::Enroll(Enroll::Fido2 {
            user,
            name,
            pin,
            json,
        }) => enroll::fido2(
            &daemon()?,
            user.user.as_deref(),
            name.as_deref(),
            *pin,
            json.json,
            io,
        ),
        Command::Remove(Remove::Fido2 { user, name, code }) => account::remove_fido2(
            &daemon()?,
            user.user.as_deref(),
            name,
            code.code.as_deref(),
            io,
        ),
        Command::Remove(Remove::Totp { user, code }) => {
            account::remove_totp(&daemon()?, user.user.as_deref(), code.code.as_deref(), io)
        }
        Command::Enroll(Enroll::Email {
            user,
            address,
            code,
            no_confirm,
        }) => email::enroll(
            &daemon()?,
            user.user.as_deref(),
            address.as_deref(),
            code.code.as_deref(),
            !no_confirm,
            io,
        ),
        Command::Remove(Remove::Email { user, code }) => email::remove(
            &daemon()?,
            twofold_proto::Method::EMAIL,
            user.user.as_deref(),
            code.code.as_deref(),
            io,
        ),
        Command::Enroll(Enroll::Sms {
            user,
            phone,
            code,
            no_confirm,
        }) => email::enroll_sms(
            &daemon()?,
            user.user.as_deref(),
            phone.as_deref(),
            code.code.as_deref(),
            !no_confirm,
            io,
        ),
        Command::Remove(Remove::Sms { user, code }) => email::remove(
            &daemon()?,
            twofold_proto::Method::SMS,
            user.user.as_deref(),
            code.code.as_deref(),
            io,
        ),
        Command::Admin(Admin::Disable { user }) => account::disable(&daemon()?, user, io),
        Command::Admin(Admin::List { json }) => account::list(&daemon()?, json.json, io),
        Command::Admin(Admin::Unlock { user }) => admin::unlock(&daemon()?, user, io),
        Command::Admin(Admin::Locks { json }) => admin::locks(&daemon()?, json.json, io),
        Command::Admin(Admin::Grace {
            user,
            extend,
            reset,
        }) => admin::grace(&daemon()?, user, *extend, *reset, io),
        Command::Admin(Admin::EnrollToken { user, valid, json }) => {
            admin::enroll_token(&daemon()?, user, *valid, json.json, io)
        }
        Command::Admin(Admin::TempCode {
            user,
            valid,
            uses,
            revoke,
            json,
        }) => admin::temp_code(&daemon()?, user, *valid, *uses, *revoke, json.json, io),
        Command::Admin(Admin::Enroll(AdminEnroll::Hotp {
            user,
            secret_file,
            base32,
            algorithm,
            digits,
            counter,
            name,
        })) => admin::enroll_hotp(
            &daemon()?,
            admin::HotpToken {
                user,
                secret_file,
                base32: *base32,
                algorithm: *algorithm,
                digits: *digits,
                counter: *counter,
                name: name.as_deref(),
            },
            io,
        ),
        Command::Admin(Admin::Import(AdminImport::GoogleAuthenticator {
            from,
            user,
            all_homes,
            apply,
        })) => import::google_authenticator(
            &daemon()?,
            from.as_deref(),
            user.as_deref(),
            *all_homes,
            *apply,
            io,
        ),
        Command::Admin(Admin::Import(AdminImport::Oath { from, apply })) => {
            import::oath_file(&daemon()?, from, *apply, io)
        }
        Command::Admin(Admin::Migrate { to, apply }) => {
            let file = cli.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
            migrate::to(*to, file, *apply, io)
        }
        Command::Admin(Admin::Import(AdminImport::U2fKeys {
            from,
            origin,
            appid,
            apply,
        })) => import::u2f_keys(
            &daemon()?,
            from,
            origin.as_deref(),
            appid.as_deref(),
            *apply,
            io,
        ),
        Command::Admin(Admin::HotpResync {
            user,
            name,
            first,
            second,
        }) => admin::hotp_resync(&daemon()?, user, name.as_deref(), first, second, io),
        Command::Audit {
            verify: Some(AuditCmd::Verify { json }),
            ..
        } => audit::verify(&daemon()?, json.json, io),
        Command::Audit {
            verify: None,
            filter,
        } => audit::list(&daemon()?, filter, io),
        Command::Stats { format } => {
            let out = if format.json {
                StatsOutput::Json
            } else if format.prometheus {
                StatsOutput::Prometheus
            } else {
                StatsOutput::Text
            };
            stats::stats(&daemon()?, out, io)
        }
        Command::Devices {
            forget: Some(DevicesCmd::Forget { id, all, user }),
            ..
        } => devices::forget(&daemon()?, user.user.as_deref(), *id, *all, io),
        Command::Devices {
            forget: None,
            user,
            json,
        } => devices::list(&daemon()?, user.user.as_deref(), json.json, io),
        Command::Config(ConfigCmd::Check {
            file,
            print,
            user,
            service,
            rhost,
        }) => {
            let explicit = file.as_deref().or(cli.config.as_deref());
            let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG));
            let login = match (user, service) {
                (Some(u), Some(s)) => Some((u.as_str(), s.as_str(), rhost.as_deref())),
                _ => None,
            };
            // No file named and none at the default path: twofoldd runs on
            // its built-in defaults then, so that is what is checked.
            let source = if explicit.is_none() && !path.exists() {
                Source::Defaults(path)
            } else {
                Source::File(path)
            };
            config_check(source, *print, login, io)
        }
    }
}

/// What `config check` checks.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A file.
    File(&'a Path),
    /// The built-in defaults, because no file is at this (default) path.
    Defaults(&'a Path),
}

/// `twofold config check`: prints `OK: FILE` (to standard error with
/// `--print`, whose standard output is only the TOML), after the effective
/// configuration when `print` is set, and after the effective policy of one
/// login (user, service, rhost) when one is given.
pub fn config_check(
    source: Source<'_>,
    print: bool,
    login: Option<(&str, &str, Option<&str>)>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let (config, ok) = match source {
        Source::File(path) => (Config::load(path)?, format!("OK: {}\n", path.display())),
        Source::Defaults(path) => (
            Config::default(),
            format!(
                "OK: no {} — twofoldd runs on its built-in defaults\n",
                path.display()
            ),
        ),
    };
    let mut text = String::new();
    if print {
        text.push_str(&config.to_toml());
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    if let Some((user, service, rhost)) = login {
        text.push_str(&policy::explain(&config, user, service, rhost)?);
    }
    if !print {
        text.push_str(&ok);
    }
    io.out
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing output"))?;
    if print {
        // Standard output is then exactly the TOML, for a file or a pipe.
        io.err
            .write_all(ok.as_bytes())
            .map_err(CliError::io("writing output"))?;
    }
    Ok(())
}

/// The code given with `--code`, else one read from the person.
fn read_code(given: Option<&str>, prompt: &str, io: &mut Io<'_>) -> Result<Secret, CliError> {
    if let Some(c) = given {
        return Ok(Secret::from(c));
    }
    io.codes.read_code(prompt)?.ok_or_else(|| {
        CliError::Usage("no code given: the input ended before a code was entered".into())
    })
}

/// The whole program: parses `std::env::args`, runs, reports errors on stderr
/// as `twofold: <message>`, and returns the documented exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A bare `twofold` or `twofold admin` shows the help, as a usage error.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(Exit::Usage.code());
        }
        Err(e) => {
            // Same `twofold: ` prefix as every other error, for scripts
            // that grep stderr.
            let text = e.to_string();
            eprint!("twofold: {}", text.strip_prefix("error: ").unwrap_or(&text));
            return ExitCode::from(Exit::Usage.code());
        }
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let mut codes = Terminal::default();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        codes: &mut codes,
    };
    let result = run(&cli, &mut io);
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold: {e}");
            ExitCode::from(e.exit().code())
        }
    }
}
