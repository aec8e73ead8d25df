//! twofold's side: the release `twofoldd` as a separate process, users
//! enrolled through its admin requests over the socket, and the bulk
//! confirmation of filler users (see [`bulk_confirm`] for why).

use crate::worker::self_cpu_ns;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use twofold_config::Config;
use twofold_proto::{Client, Request, Response, Secret};
use twofold_tests::otp::{base32_decode, totp_sha1};

/// A running `twofoldd`.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    binary: PathBuf,
    config_file: PathBuf,
    log_file: PathBuf,
    /// Its configuration.
    pub config: Config,
}

/// The daemon configuration for a run: every path in `dir`, one try per
/// login (the anchors ask once per `pam_authenticate`), defaults otherwise.
pub fn config_in(dir: &Path) -> Config {
    let mut c = Config::default();
    c.daemon.socket = dir.join("twofold.sock");
    c.daemon.database = dir.join("state/twofold.db");
    c.daemon.master_key = dir.join("keys/master.key");
    c.login.max_tries = 1;
    c
}

impl Daemon {
    /// Starts `binary --config dir/twofold.toml`; returns once it answers.
    pub fn start(binary: &Path, dir: &Path, config: Config) -> anyhow::Result<Daemon> {
        let config_file = dir.join("twofold.toml");
        std::fs::write(&config_file, config.to_toml())?;
        let log_file = dir.join("twofoldd.log");
        let mut d = Daemon {
            child: spawn(binary, &config_file, &log_file)?,
            binary: binary.to_path_buf(),
            config_file,
            log_file,
            config,
        };
        d.wait_ready()?;
        Ok(d)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..1000 {
            if Client::connect(&self.config.daemon.socket, Duration::from_secs(1), "bench").is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("twofoldd exited ({status}): {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("twofoldd did not answer: {}", self.log_tail())
    }

    /// Stops it with SIGTERM (a clean shutdown) and waits.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("twofoldd exited with {status}: {}", self.log_tail());
        }
        Ok(())
    }

    /// Starts it again on the same configuration, database and key.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.child = spawn(&self.binary, &self.config_file, &self.log_file)?;
        self.wait_ready()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used, nanoseconds (its per-process CPU
    /// clock, which includes threads that have exited).
    pub fn cpu_ns(&self) -> u64 {
        process_cpu_ns(self.pid())
    }

    /// `(VmRSS, VmHWM)` in KiB: resident now and the peak so far.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(
            &self.config.daemon.socket,
            Duration::from_secs(30),
            "twofold-bench",
        )?)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    Command::new(binary)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// CPU time of process `pid` in nanoseconds, from its CPU-time clock.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: valid out-pointer; fails (non-zero) for a process that is gone.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return 0;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A user enrolled with twofold: the secret (raw bytes) the daemon made.
#[derive(Debug, Clone)]
pub struct TfUser {
    /// Account name.
    pub user: String,
    /// TOTP secret, as the daemon showed it (decoded).
    pub secret: Vec<u8>,
    /// Backup codes, when enrollment was confirmed through the daemon.
    pub backup_codes: Vec<String>,
}

/// Starts a pending TOTP enrollment for each user through the admin request
/// (`TotpEnrollStart` as root), on `threads` connections. The daemon makes
/// and seals each secret and commits the row durably.
pub fn enroll_start(d: &Daemon, users: &[String], threads: usize) -> anyhow::Result<Vec<TfUser>> {
    let chunk = users.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<Vec<TfUser>> {
                    let mut c = d.client()?;
                    part.iter()
                        .map(|u| {
                            let resp = c.call(&Request::TotpEnrollStart {
                                user: Some(u.clone()),
                                algorithm: None,
                                digits: None,
                            })?;
                            let Response::TotpPending(p) = resp else {
                                bail!("enrolling {u}: {resp:?}");
                            };
                            Ok(TfUser {
                                user: u.clone(),
                                secret: base32_decode(p.secret.expose())
                                    .context("daemon secret is not base32")?,
                                backup_codes: Vec::new(),
                            })
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(users.len());
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("enroll thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// Confirms `u`'s pending enrollment through the daemon (`TotpEnrollConfirm`)
/// with the previous step's code, so the current step stays free for the
/// first login; keeps the backup codes the daemon returns.
pub fn confirm(d: &Daemon, u: &mut TfUser) -> anyhow::Result<()> {
    let mut c = d.client()?;
    for _ in 0..2 {
        let now = crate::unix_now();
        let code = totp_sha1(&u.secret, now - 30, 6);
        let resp = c.call(&Request::TotpEnrollConfirm {
            user: Some(u.user.clone()),
            code: Secret::from(code.as_str()),
        })?;
        match resp {
            Response::BackupCodes { codes } => {
                u.backup_codes = codes.iter().map(|c| c.expose().to_owned()).collect();
                return Ok(());
            }
            // The step may have turned between computing and checking.
            Response::Failed { .. } => continue,
            other => bail!("confirming {}: {other:?}", u.user),
        }
    }
    bail!("confirming {}: code refused twice", u.user)
}

/// Confirms every pending enrollment in one SQLite transaction, with the
/// daemon stopped, and gives each such user `codes` backup-code rows.
///
/// Why a bulk path: confirming through the daemon hashes every backup code
/// with argon2id (~20 ms each), so 100 000 users × 10 codes would take hours.
/// Everything else is the daemon's own work: it made, sealed and stored each
/// secret (`TotpEnrollStart`); this only sets `confirmed_at`/`last_step` as
/// `TotpEnrollConfirm` does and adds rows of the right size (random lookups,
/// a real argon2id PHC string) so tables and indexes are as large as they
/// would be. Every filler user the run logs in must then succeed, which
/// checks that the rows are valid. Returns how many users were confirmed.
pub fn bulk_confirm(database: &Path, codes: u32) -> anyhow::Result<usize> {
    let mut conn = rusqlite::Connection::open(database)?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != twofold_daemon::SCHEMA_VERSION {
        bail!(
            "database schema {version}, this bench knows {}",
            twofold_daemon::SCHEMA_VERSION
        );
    }
    let tx = conn.transaction()?;
    let phc: String = tx
        .query_row(
            "SELECT hash FROM codes WHERE method = 'backup_code' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .context("no backup code to copy: confirm some users through the daemon first")?;
    tx.execute(
        "INSERT INTO codes (user, method, lookup, hash, created_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         SELECT t.user, 'backup_code', randomblob(32), ?2, t.created_at
         FROM credentials t, n WHERE t.confirmed_at IS NULL AND t.method = 'totp'",
        rusqlite::params![codes, phc],
    )?;
    // The bench enrolls with the default 30 s period (params `ALG:DIGITS:30`).
    let n = tx.execute(
        "UPDATE credentials SET confirmed_at = created_at, counter = created_at / 30 - 2
         WHERE confirmed_at IS NULL AND method = 'totp' AND params LIKE '%:30'",
        [],
    )?;
    tx.commit()?;
    Ok(n)
}

/// What one argon2id verification with the daemon's parameters
/// (`Argon2::default()`) costs in this process, nanoseconds of CPU.
pub fn argon2_cost_ns() -> u64 {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    // The daemon's own parameters for new hashes, so the ratio reads true.
    let Ok(params) = argon2::Params::new(
        twofold_daemon::ARGON2_M_COST,
        twofold_daemon::ARGON2_T_COST,
        twofold_daemon::ARGON2_P_COST,
        None,
    ) else {
        return 0;
    };
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let Ok(phc) = a.hash_password_with_salt(b"abcde23456", b"0123456789abcdef") else {
        return 0;
    };
    let phc = phc.to_string();
    // A warm-up first: the first run pays for mapping its memory.
    let mut samples: Vec<u64> = (0..6)
        .map(|_| {
            let c0 = self_cpu_ns();
            let _ = a.verify_password(b"abcde23456", phc.as_str());
            self_cpu_ns() - c0
        })
        .skip(1)
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Copies a stopped daemon's database and master key into `dir`, for a
/// second daemon with the same users, secrets and backup codes (each then
/// keeps its own replay state). Returns the second daemon's configuration.
pub fn clone_state(from: &Config, dir: &Path) -> anyhow::Result<Config> {
    use std::os::unix::fs::DirBuilderExt;
    let to = config_in(dir);
    let copy = |src: &Path, dst: &Path| -> anyhow::Result<()> {
        if let Some(parent) = dst.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        std::fs::copy(src, dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        Ok(())
    };
    copy(&from.daemon.master_key, &to.daemon.master_key)?;
    copy(&from.daemon.database, &to.daemon.database)?;
    for suffix in ["-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{suffix}", from.daemon.database.display()));
        if src.exists() {
            copy(
                &src,
                &PathBuf::from(format!("{}{suffix}", to.daemon.database.display())),
            )?;
        }
    }
    Ok(to)
}
