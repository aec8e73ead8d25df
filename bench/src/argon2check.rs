//! Counts argon2 verifications per backup-code attempt directly: the
//! daemon library served in this process (so its counter can be read),
//! logins through libpam and the same pam_twofold.so, with valid, wrong and
//! reused backup codes. The table's CPU per backup-code login gives the same
//! answer from the separate release process; this makes it exact.

use crate::anchors::TWOFOLD;
use crate::twofold::config_in;
use anyhow::{bail, Context};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use twofold_daemon::{bind, Daemon, Logger, ManualClock, MemoryLog, Shutdown};
use twofold_proto::{Client, Request, Response, Secret};
use twofold_tests::otp::{base32_decode, totp_sha1};
use twofold_tests::pam::{Conversation, PamLogin, PAM_SUCCESS};

/// A fixed instant (the daemon's clock is a manual one here).
const T0: u64 = 1_800_000_000;

/// What the count found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Count {
    /// Logins with an unused, valid backup code (each must succeed).
    pub valid: usize,
    /// Logins with a well-formed code that is none of the user's (each refused).
    pub wrong: usize,
    /// Logins with a code already used (each refused).
    pub reused: usize,
    /// argon2 verifications the daemon ran for all of them.
    pub verifications: u64,
}

/// Runs the count in `dir` with `module`.
pub fn run(dir: &Path, module: &Path) -> anyhow::Result<Argon2Count> {
    std::fs::create_dir_all(dir)?;
    let config = config_in(dir);
    let socket = config.daemon.socket.clone();
    let listener = bind(&socket)?;
    let clock = Arc::new(ManualClock::new(T0));
    let daemon = Daemon::open_with_log(config, clock, Logger::new(Arc::new(MemoryLog::new())))?;
    let stats = daemon.stats();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || daemon.serve(listener, stop));
    let result = count(dir, module, &socket, &stats);
    shutdown.trigger();
    let served = thread
        .join()
        .map_err(|_| anyhow::anyhow!("in-process daemon panicked"))?;
    served?;
    result
}

fn count(
    dir: &Path,
    module: &Path,
    socket: &Path,
    stats: &twofold_daemon::Stats,
) -> anyhow::Result<Argon2Count> {
    let confdir = dir.join("pam.d");
    std::fs::create_dir_all(&confdir)?;
    std::fs::write(
        confdir.join(TWOFOLD),
        format!(
            "auth required {} socket={} timeout=5\n",
            module.display(),
            socket.display()
        ),
    )?;
    let mut c = Client::connect(socket, Duration::from_secs(30), "twofold-bench")?;
    let mut codes = Vec::new();
    for user in ["argon2a", "argon2b"] {
        let Response::TotpPending(p) = c.call(&Request::TotpEnrollStart {
            user: Some(user.into()),
            algorithm: None,
            digits: None,
        })?
        else {
            bail!("enrolling {user}");
        };
        let secret = base32_decode(p.secret.expose()).context("secret")?;
        let code = totp_sha1(&secret, T0, 6);
        let Response::BackupCodes { codes: mine } = c.call(&Request::TotpEnrollConfirm {
            user: Some(user.into()),
            code: Secret::from(code.as_str()),
        })?
        else {
            bail!("confirming {user}");
        };
        codes.extend(mine.iter().map(|k| (user, k.expose().to_owned())));
    }
    let login = |user: &str, answer: &str| -> anyhow::Result<i32> {
        let (code, _) = PamLogin::new(&confdir, TWOFOLD, user)?
            .authenticate(Conversation::new().answer(answer))?;
        Ok(code.0)
    };
    let before = stats.argon2_verifications();
    let mut n = Argon2Count::default();
    for (user, code) in &codes {
        if login(user, code)? != PAM_SUCCESS.0 {
            bail!("a valid backup code of {user} was refused");
        }
        n.valid += 1;
    }
    for (i, (user, _)) in codes.iter().enumerate() {
        // Well-formed (10 characters of the alphabet) but never issued.
        let wrong = format!("{:05}-zzzzz", 22222 + i).replace(['0', '1'], "9");
        if login(user, &wrong)? == PAM_SUCCESS.0 {
            bail!("a wrong backup code of {user} was not refused");
        }
        n.wrong += 1;
    }
    for (user, code) in codes.iter().take(5) {
        if login(user, code)? == PAM_SUCCESS.0 {
            bail!("a used backup code of {user} was accepted again");
        }
        n.reused += 1;
    }
    n.verifications = stats.argon2_verifications() - before;
    Ok(n)
}
