//! The anchors: `pam_google_authenticator.so` with secret files made by its
//! own `google-authenticator` CLI, `pam_oath.so` with a users file, and
//! `pam_permit.so` as the floor; and the PAM services of every product.

use crate::items::hex;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;
use twofold_tests::otp::base32_decode;

/// Where Debian puts PAM modules.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/security",
    "/lib/x86_64-linux-gnu/security",
    "/lib/security",
];

/// The absolute path of a system PAM module, e.g. `pam_permit.so`.
pub fn system_module(name: &str) -> anyhow::Result<PathBuf> {
    MODULE_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found (bench/run installs the Debian packages)"))
}

/// Where each product's state is, for its PAM line.
#[derive(Debug, Clone)]
pub struct Paths {
    /// pam_twofold.so.
    pub module: PathBuf,
    /// Socket of the daemon with every user.
    pub socket: PathBuf,
    /// Socket of the daemon with only the small phase's users.
    pub small_socket: PathBuf,
    /// google-authenticator secret files, one per user.
    pub ga_dir: PathBuf,
    /// pam_oath users file with every user.
    pub oath_file: PathBuf,
    /// pam_oath users file with only the small phase's users.
    pub small_oath_file: PathBuf,
}

/// Service names, one per product (and per size for twofold and pam_oath).
pub const TWOFOLD: &str = "twofold";
/// twofold against the daemon that holds only the small phase's users.
pub const TWOFOLD_SMALL: &str = "twofold-small";
/// pam_twofold.so with no daemon behind its socket: what loading the module
/// and failing to connect cost, before any conversation (a floor for twofold).
pub const TWOFOLD_MODULE_ONLY: &str = "twofold-module-only";
/// `pam_google_authenticator.so`.
pub const GOOGLE: &str = "google-authenticator";
/// `pam_oath.so`.
pub const OATH: &str = "oath";
/// `pam_oath.so` with the small users file.
pub const OATH_SMALL: &str = "oath-small";
/// `pam_permit.so`: what libpam itself costs.
pub const PERMIT: &str = "permit";

/// The product a service measures (the small variants report as their product).
pub fn product_of(service: &str) -> &str {
    match service {
        TWOFOLD_SMALL => TWOFOLD,
        OATH_SMALL => OATH,
        other => other,
    }
}

/// Writes one service per product into `confdir`, the PAM config directory
/// of a run.
pub fn write_services(confdir: &Path, p: &Paths) -> anyhow::Result<()> {
    std::fs::create_dir_all(confdir)?;
    let twofold = |socket: &Path| {
        format!(
            "auth required {} socket={} timeout=5",
            p.module.display(),
            socket.display()
        )
    };
    let oath = |file: &Path| -> anyhow::Result<String> {
        Ok(format!(
            "auth required {} usersfile={} window=1 digits=6",
            system_module("pam_oath.so")?.display(),
            file.display()
        ))
    };
    let lines = [
        (TWOFOLD, twofold(&p.socket)),
        (TWOFOLD_SMALL, twofold(&p.small_socket)),
        (
            TWOFOLD_MODULE_ONLY,
            twofold(&p.ga_dir.join("no-daemon.sock")),
        ),
        (
            // user=root: the harness runs as root and the secret files are
            // root's (no per-user home directories needed); ${USER} picks
            // each user's file.
            GOOGLE,
            format!(
                "auth required {} secret={}/${{USER}} user=root",
                system_module("pam_google_authenticator.so")?.display(),
                p.ga_dir.display()
            ),
        ),
        (OATH, oath(&p.oath_file)?),
        (OATH_SMALL, oath(&p.small_oath_file)?),
        (
            PERMIT,
            format!(
                "auth required {}",
                system_module("pam_permit.so")?.display()
            ),
        ),
    ];
    for (service, line) in lines {
        std::fs::write(confdir.join(service), format!("{line}\n"))?;
    }
    Ok(())
}

/// A user of `pam_google_authenticator`, as its CLI made them.
#[derive(Debug, Clone)]
pub struct GaUser {
    /// Account name.
    pub user: String,
    /// TOTP secret (decoded from the file's first line).
    pub secret: Vec<u8>,
    /// Emergency scratch codes (single use).
    pub scratch: Vec<String>,
}

/// Makes each user's secret file with `google-authenticator` itself: TOTP,
/// reuse disallowed, ±1 step (window 3), no rate limit (twofold has none
/// yet either), 10 scratch codes (as twofold's 10 backup codes).
pub fn ga_enroll(dir: &Path, users: &[String], threads: usize) -> anyhow::Result<Vec<GaUser>> {
    std::fs::create_dir_all(dir)?;
    let chunk = users.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<Vec<GaUser>> {
                    part.iter().map(|u| ga_enroll_one(dir, u)).collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(users.len());
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("ga thread panicked"))??,
            );
        }
        Ok(all)
    })
}

fn ga_enroll_one(dir: &Path, user: &str) -> anyhow::Result<GaUser> {
    let file = dir.join(user);
    if !file.exists() {
        let out = Command::new("google-authenticator")
            .args(["--time-based", "--disallow-reuse", "--force", "--quiet"])
            .args(["--no-confirm", "--no-rate-limit", "--window-size=3"])
            .args(["--emergency-codes=10", "--qr-mode=NONE"])
            .arg(format!("--label={user}"))
            .arg("--issuer=bench")
            .arg(format!("--secret={}", file.display()))
            .output()
            .context("running google-authenticator (bench/run installs it)")?;
        if !out.status.success() {
            bail!(
                "google-authenticator for {user}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    parse_ga_file(user, &std::fs::read_to_string(&file)?)
}

/// Reads a `~/.google_authenticator` file: the base32 secret, option lines
/// starting with `"`, then one scratch code a line.
pub fn parse_ga_file(user: &str, text: &str) -> anyhow::Result<GaUser> {
    let mut lines = text.lines();
    let secret = lines
        .next()
        .and_then(base32_decode)
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{user}: secret file has no secret"))?;
    let scratch = lines
        .filter(|l| !l.starts_with('"') && !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .collect();
    Ok(GaUser {
        user: user.to_owned(),
        secret,
        scratch,
    })
}

/// Writes `pam_oath`'s users file: one `HOTP/T30/6` (TOTP, 30 s, 6 digits)
/// line per user, no password, in a shuffled order so the users a run logs
/// in sit anywhere in the file, not all near its top.
pub fn write_oath_file(path: &Path, users: &[(&str, &[u8])]) -> anyhow::Result<()> {
    let mut order: Vec<usize> = (0..users.len()).collect();
    // A fixed-seed shuffle (xorshift): the same file every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut text = String::with_capacity(users.len() * 64);
    for i in order {
        let (user, secret) = users[i];
        text.push_str(&format!("HOTP/T30/6\t{user}\t-\t{}\n", hex(secret)));
    }
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_file_gives_secret_and_scratch_codes() {
        let text = "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n";
        let u = parse_ga_file("bu1", text).unwrap();
        assert_eq!(u.secret, base32_decode("JBSWY3DPEHPK3PXP").unwrap());
        assert_eq!(u.scratch, ["12345678", "87654321"]);
        assert!(parse_ga_file("bu1", "").is_err());
        assert!(parse_ga_file("bu1", "0189\n").is_err());
    }

    #[test]
    fn oath_file_has_every_user_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.oath");
        let names: Vec<String> = (0..50).map(|i| format!("bu{i:06}")).collect();
        let users: Vec<(&str, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), &[0xabu8, 1][..]))
            .collect();
        write_oath_file(&path, &users).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen: Vec<&str> = text
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap())
            .collect();
        assert!(text
            .lines()
            .all(|l| l.starts_with("HOTP/T30/6\t") && l.ends_with("\t-\tab01")));
        assert_ne!(seen.first(), Some(&"bu000000"), "not shuffled");
        seen.sort_unstable();
        assert_eq!(seen, names.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
