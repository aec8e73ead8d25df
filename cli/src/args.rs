//! The command line, defined once with clap; `--help` is generated from it.

use crate::error::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use twofold_proto::Algorithm;

/// Second-factor enrollment and administration for twofold.
#[derive(Debug, Parser)]
#[command(
    name = "twofold",
    version,
    about = "Second-factor (TOTP) enrollment and administration for twofold",
    long_about = "Second-factor (TOTP) enrollment and administration for twofold.\n\n\
        Talks to the twofoldd daemon over its Unix socket. Users enroll and manage \
        their own account; members of the admin group (and root) may act on any account.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock].
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub socket: Option<PathBuf>,

    /// Configuration file to take the socket path from [default: /etc/twofold/twofold.toml].
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// Seconds to wait for the daemon to connect and to answer each request.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10, help_heading = "Global options",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll a second factor.
    #[command(subcommand)]
    Enroll(Enroll),
    /// Check this host's sshd, PAM stacks, twofoldd, its files and the
    /// clock; each finding says what, why and the fix. Changes nothing.
    /// Exit 0 when clean, 9 with warnings, 10 with errors.
    Doctor {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show what is enrolled for an account.
    Status {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Manage backup codes.
    #[command(subcommand, name = "backup-codes")]
    BackupCodes(BackupCodes),
    /// Remove a second factor.
    #[command(subcommand)]
    Remove(Remove),
    /// Administer accounts (root or the admin group only).
    #[command(subcommand)]
    Admin(Admin),
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Read the audit trail (admins: every account; others: their own), or verify it.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        /// `verify` checks the chain instead of listing rows.
        #[command(subcommand)]
        verify: Option<AuditCmd>,
        /// Which rows.
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
    /// Enrollment, policy and login figures (admins only).
    Stats {
        /// Output format.
        #[command(flatten)]
        format: StatsFormat,
    },
    /// List the remembered devices (SSH keys, login sessions) that log in
    /// without a second factor until they expire, or forget them.
    #[command(args_conflicts_with_subcommands = true)]
    Devices {
        /// `forget` takes a device's trust away.
        #[command(subcommand)]
        forget: Option<DevicesCmd>,
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
}

/// `twofold devices forget`.
#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// Forget a remembered device (its next login asks for the second factor again).
    Forget {
        /// The device's id, as `twofold devices` lists it.
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        id: Option<i64>,
        /// Forget every remembered device of the account.
        #[arg(long)]
        all: bool,
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
    },
}

/// `twofold audit verify`.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; names the first row where it breaks (exit 8).
    Verify {
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
}

/// Filters of `twofold audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditFilterArgs {
    /// Only rows about this account.
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: Option<String>,
    /// Only this event (login_success, login_failure, login_denied, login_locked,
    /// login_skipped, lockout, unlock, enroll, factor_removed, backup_code_used,
    /// codes_regenerated, grace_started, admin, config_loaded, config_reloaded,
    /// config_reload_refused, audit_pruned, device_remembered, device_forgotten,
    /// security_key_refused).
    #[arg(long, value_name = "EVENT")]
    pub event: Option<String>,
    /// Only rows of this PAM service.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// From: a duration ago (`1h`, `7d`), `@UNIXTIME`, or UTC `YYYY-MM-DD[THH:MM[:SS]]`.
    #[arg(long, value_name = "WHEN", value_parser = crate::audit::parse_time)]
    pub since: Option<twofold_proto::TimeRef>,
    /// Up to (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = crate::audit::parse_time)]
    pub until: Option<twofold_proto::TimeRef>,
    /// Print one JSON object per line (times as Unix seconds).
    #[arg(long)]
    pub json: bool,
    /// Keep printing new rows as they are written (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
}

/// `--json` or `--prometheus`.
#[derive(Debug, Clone, Copy, Args)]
#[group(multiple = false)]
pub struct StatsFormat {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the Prometheus text exposition format.
    #[arg(long)]
    pub prometheus: bool,
}

/// `twofold enroll ...`.
#[derive(Debug, Subcommand)]
pub enum Enroll {
    /// Enroll an authenticator app (TOTP): shows a QR code, then asks for a code to confirm.
    #[command(
        after_help = "The enrollment counts only once it is confirmed with a code from the app. \
        The backup codes printed on success are shown only once."
    )]
    Totp {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// HMAC algorithm: SHA1 (works with every app), SHA256 or SHA512 [default: as configured, normally SHA1].
        #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
        algorithm: Option<Algorithm>,
        /// Code length, 6 to 8 digits [default: as configured, normally 6].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(6..=8))]
        digits: Option<u32>,
        /// Do not draw the QR code (print only the URI and the secret).
        #[arg(long)]
        no_qr: bool,
        /// Draw the QR code for a terminal with a light background (dark
        /// text on white); chosen by itself when COLORFGBG says so.
        #[arg(long)]
        qr_invert: bool,
        /// Only start the enrollment and print it; confirm later with `twofold enroll confirm`.
        #[arg(long)]
        no_confirm: bool,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Enroll a FIDO2 security key plugged into this machine: touch it
    /// twice (register, confirm). For console, sudo, desktop and screen
    /// locker logins on this machine; never offered over SSH.
    #[command(
        after_help = "twofoldd talks to the key, so run this where the key is plugged in. \
        Several keys may be enrolled; each has a name (`twofold status` lists them)."
    )]
    Fido2 {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// A name for the key, e.g. "YubiKey 5" [default: key-N].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The key has a PIN: ask it (hidden, or a line of stdin) and pass
        /// it to the key for the registration.
        #[arg(long)]
        pin: bool,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Confirm a pending TOTP enrollment with a code from the app.
    Confirm {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Where the code comes from.
        #[command(flatten)]
        code: CodeArg,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Enroll an email address: the daemon mails a code to it, and the
    /// address counts once that code is typed back.
    #[command(
        after_help = "Without --address, confirms the pending address with the code from the mail. \
                      With --address beside a confirmed address, changes it in one step: a current \
                      code first; the old address keeps working until the new one is confirmed, and \
                      both are told by mail. An unconfirmed address can also be confirmed inside a \
                      login during the grace period."
    )]
    Email {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// The address codes are sent to (a code is mailed to it now).
        #[arg(long, value_name = "ADDRESS")]
        address: Option<String>,
        /// The code from the mail.
        #[command(flatten)]
        code: CodeArg,
        /// Only send the code; confirm later with `twofold enroll email`.
        #[arg(long)]
        no_confirm: bool,
    },
    /// Enroll a phone number for SMS codes: the daemon texts a code to it,
    /// and the number counts once that code is typed back. SMS is the
    /// weakest factor (SIM swap): prefer TOTP where it matters.
    #[command(
        after_help = "Without --phone, confirms the pending number with the code from the text message. \
                      With --phone beside a confirmed number, changes it in one step: a current code \
                      first; the old number keeps working until the new one is confirmed. An \
                      unconfirmed number can also be confirmed inside a login during the grace period."
    )]
    Sms {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// The number codes are sent to, in E.164 form (+14155550100).
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
        /// The code from the text message.
        #[command(flatten)]
        code: CodeArg,
        /// Only send the code; confirm later with `twofold enroll sms`.
        #[arg(long)]
        no_confirm: bool,
    },
}

/// `twofold backup-codes ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCodes {
    /// Replace all backup codes with a fresh set (the old ones stop working).
    Regenerate {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Where the code comes from.
        #[command(flatten)]
        code: CodeArg,
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
}

/// `twofold remove ...`.
#[derive(Debug, Subcommand)]
pub enum Remove {
    /// Remove the TOTP authenticator and the backup codes tied to it.
    Totp {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Where the code comes from.
        #[command(flatten)]
        code: CodeArg,
    },
    /// Remove the email address codes are sent to.
    Email {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Where the code comes from.
        #[command(flatten)]
        code: CodeArg,
    },
    /// Remove the phone number SMS codes are sent to.
    Sms {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// Where the code comes from.
        #[command(flatten)]
        code: CodeArg,
    },
    /// Remove one FIDO2 security key (the backup codes go with the last factor).
    Fido2 {
        /// Whose account.
        #[command(flatten)]
        user: UserArg,
        /// The key's name, as `twofold status` lists it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Where the code comes from (a current code authorizes the removal).
        #[command(flatten)]
        code: CodeArg,
    },
}

/// `twofold admin ...`.
#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Remove every factor of an account.
    Disable {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
    },
    /// List every account twofoldd knows.
    List {
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Clear every lock and failure count of an account.
    Unlock {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
    },
    /// List the locks in force (too many failed codes).
    Locks {
        /// Output format.
        #[command(flatten)]
        json: JsonArg,
    },
    /// Extend or reset an account's enrollment grace deadline (`unenrolled = "enroll"`).
    #[command(group = clap::ArgGroup::new("change").required(true).args(["extend", "reset"]))]
    Grace {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// Move the deadline this long past the later of now and the current deadline (e.g. `7d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        extend: Option<u64>,
        /// Forget the deadline: the next login starts a fresh grace period.
        #[arg(long)]
        reset: bool,
    },
    /// Issue a one-time token that lets the account set up its first factor
    /// inside a login (`enroll_at_login = "token"`); shown once.
    EnrollToken {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// How long the token works (1m to 30d; default 24h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        valid: Option<u64>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Issue a break-glass code for someone who lost every factor, instead
    /// of disabling MFA for them: it opens `--uses` logins (default 1)
    /// until it expires (default 1h), is shown once, and replaces an
    /// outstanding one. Issue it with `--uses 2` to let them log in and
    /// then replace the lost factor (`twofold enroll totp` asks for a code).
    TempCode {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// How long it works (1m to 7d; default 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, conflicts_with = "revoke")]
        valid: Option<u64>,
        /// How many logins it opens (1 to 10; default 1).
        #[arg(long, value_name = "N", conflicts_with = "revoke")]
        uses: Option<u32>,
        /// Withdraw the outstanding code instead.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Enroll a factor for an account that the person cannot enroll
    /// themselves (a hardware token).
    #[command(subcommand)]
    Enroll(AdminEnroll),
    /// Import the secrets other OTP modules keep (a dry run unless
    /// --apply; the files are only read).
    #[command(subcommand)]
    Import(AdminImport),
    /// Move this host's SQLite state (enrollments, backup codes, replay
    /// ledger, locks, audit trail with its chain) into the fleet's
    /// PostgreSQL database named in [store]: a dry run unless --apply, once
    /// per host. Run as root with twofoldd stopped; it runs `twofoldd
    /// --migrate-from-sqlite` on the same configuration file.
    Migrate {
        /// Where to: `postgres` ([store] of the configuration).
        #[arg(long, value_enum, value_name = "BACKEND")]
        to: MigrateTo,
        /// Write: move what the dry run shows.
        #[arg(long)]
        apply: bool,
    },
    /// Bring a hardware OATH token back in step from two consecutive codes
    /// (press it twice), when it was pressed far beyond the login window.
    HotpResync {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// The token, when the account has several.
        #[arg(long, value_name = "TOKEN")]
        name: Option<String>,
        /// The first code.
        first: String,
        /// The code of the next press.
        second: String,
    },
}

/// Where `twofold admin migrate` moves a host's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateTo {
    /// The fleet's PostgreSQL database ([store] backend = "postgres").
    Postgres,
}

/// `twofold admin import ...`.
#[derive(Debug, Subcommand)]
pub enum AdminImport {
    /// google-authenticator-libpam's ~/.google_authenticator: TOTP or HOTP
    /// secret, scratch codes (become backup codes, hashed); its window,
    /// rate-limit and reuse settings are reported.
    GoogleAuthenticator {
        /// One file (its owner is the account unless --user).
        #[arg(long, value_name = "FILE", conflicts_with = "all_homes")]
        from: Option<PathBuf>,
        /// The account the file belongs to.
        #[arg(long, value_name = "NAME", value_parser = parse_user, requires = "from")]
        user: Option<String>,
        /// Every ~/.google_authenticator under the homes in /etc/passwd.
        #[arg(long)]
        all_homes: bool,
        /// Write: enroll what the dry run shows.
        #[arg(long)]
        apply: bool,
    },
    /// pam_oath's users.oath (HOTP and TOTP lines; counters kept).
    Oath {
        /// The file.
        #[arg(long, value_name = "FILE", default_value = "/etc/users.oath")]
        from: PathBuf,
        /// Write: enroll what the dry run shows.
        #[arg(long)]
        apply: bool,
    },
    /// pam-u2f's u2f_keys (old and new formats): each user's security keys,
    /// with the RP ID pam-u2f asserted them for, so the same keys log in.
    U2fKeys {
        /// The file (a user's ~/.config/Yubico/u2f_keys, or pam-u2f's
        /// authfile=).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// pam-u2f's origin= (the RP ID of credentials made by pamu2fcfg
        /// 1.1.0 and later). Default pam://<this host's name>.
        #[arg(long, value_name = "URL")]
        origin: Option<String>,
        /// pam-u2f's appid= (the RP ID of old-format credentials, made by
        /// pamu2fcfg 1.0.8 and earlier). Default: the origin.
        #[arg(long, value_name = "URL")]
        appid: Option<String>,
        /// Write: enroll what the dry run shows.
        #[arg(long)]
        apply: bool,
    },
}

/// `twofold admin enroll ...`.
#[derive(Debug, Subcommand)]
pub enum AdminEnroll {
    /// A hardware OATH token (HOTP, RFC 4226), from its secret. It counts
    /// at once; codes are accepted up to 10 presses ahead, each once.
    Hotp {
        /// The account.
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// A file holding the token's secret, hexadecimal (as oathtool and
        /// pam_oath's users.oath write it) unless --base32.
        #[arg(long, value_name = "F")]
        secret_file: PathBuf,
        /// The file holds base32 (RFC 4648) instead of hexadecimal.
        #[arg(long)]
        base32: bool,
        /// HMAC algorithm (SHA1, SHA256, SHA512) [default: SHA1].
        #[arg(long, value_parser = parse_algorithm)]
        algorithm: Option<Algorithm>,
        /// Code length, 6 to 8 [default: 6].
        #[arg(long)]
        digits: Option<u32>,
        /// The counter value of the token's next code [default: 0].
        #[arg(long, value_name = "N")]
        counter: Option<u64>,
        /// A name for the token, e.g. its serial number [default: hotp].
        #[arg(long, value_name = "TOKEN")]
        name: Option<String>,
    },
}

/// `twofold config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Check a configuration file; prints `OK: FILE` or the error (file:line: key) and exits 2.
    Check {
        /// The file to check [default: --config, else /etc/twofold/twofold.toml].
        #[arg(long, value_name = "F")]
        file: Option<PathBuf>,
        /// Print the effective configuration, every option spelled out, before `OK`.
        #[arg(long)]
        print: bool,
        /// Show the effective policy for this user (with --service): groups
        /// from the group database, and the rule that decided each setting.
        #[arg(long, value_name = "NAME", value_parser = parse_user, requires = "service")]
        user: Option<String>,
        /// The PAM service of that login (e.g. sshd, sudo).
        #[arg(long, value_name = "SERVICE", requires = "user")]
        service: Option<String>,
        /// The remote host (PAM_RHOST) of that login, for trusted networks.
        #[arg(long, value_name = "IP", requires = "user")]
        rhost: Option<String>,
    },
}

/// `--user NAME`, shared by the self-service commands.
#[derive(Debug, Clone, Args)]
pub struct UserArg {
    /// Act on this account instead of your own (admins only).
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: Option<String>,
}

/// `--json`, shared by the commands that can print JSON.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print JSON for scripts (times as Unix seconds).
    #[arg(long)]
    pub json: bool,
}

/// `--code CODE`, shared by the commands that need a code.
#[derive(Debug, Clone, Args)]
pub struct CodeArg {
    /// The code; without it, it is read from the terminal with echo off, or as
    /// one line from stdin when stdin is not a terminal. A code on the command
    /// line is visible to other users in the process list: prefer stdin.
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
}

fn parse_duration_arg(s: &str) -> Result<u64, String> {
    match twofold_config::parse_duration(s)? {
        0 => Err("the duration must be more than 0".into()),
        n => Ok(n),
    }
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}: use SHA1, SHA256 or SHA512"))
}

/// Checks the shape of an account name; whether it exists is the daemon's call.
pub fn parse_user(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the user name is empty".into());
    }
    if s.len() > 256 {
        return Err("the user name is longer than 256 bytes".into());
    }
    if s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == ':' || c == '/')
    {
        return Err(format!(
            "{s:?} is not a valid user name (no spaces, control characters, ':' or '/')"
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_user_names_are_refused() {
        for bad in ["", "a b", "a\nb", "root:x", "../etc", &"x".repeat(257)] {
            assert!(parse_user(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_user("alice.smith-2").unwrap(), "alice.smith-2");
    }

    #[test]
    fn algorithm_any_case_and_bad_value_named() {
        let cli =
            Cli::try_parse_from(["twofold", "enroll", "totp", "--algorithm", "sha256"]).unwrap();
        match cli.command {
            Command::Enroll(Enroll::Totp { algorithm, .. }) => {
                assert_eq!(algorithm, Some(Algorithm::Sha256))
            }
            other => panic!("{other:?}"),
        }
        let err =
            Cli::try_parse_from(["twofold", "enroll", "totp", "--algorithm", "MD5"]).unwrap_err();
        assert!(err.to_string().contains("MD5"), "{err}");
    }

    #[test]
    fn digits_out_of_range_is_a_usage_error() {
        let err = Cli::try_parse_from(["twofold", "enroll", "totp", "--digits", "9"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["twofold", "status", "--socket", "/tmp/s", "--timeout", "3"])
                .unwrap();
        assert_eq!(cli.socket.as_deref(), Some(std::path::Path::new("/tmp/s")));
        assert_eq!(cli.timeout, 3);
    }
}
