//! The built twofoldd as a real process: `kill -9` and a restart lose
//! nothing; its files are private; its log carries no code or secret.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;
use twofold_proto::{Request, Response, UserStatus};
use twofold_tests::daemon::{config_in, open_tempdir, DaemonProcess};
use twofold_tests::otp::oathtool;
use twofold_tests::pam::*;
use twofold_tests::PamConfig;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status(d: &DaemonProcess, user: &str) -> UserStatus {
    match d.call(&Request::Status {
        user: Some(user.into()),
    }) {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

fn login(pam: &PamConfig, user: &str, answer: &str) -> PamCode {
    PamLogin::new(pam.dir(), "tf", user)
        .unwrap()
        .authenticate(Conversation::new().answer(answer))
        .unwrap()
        .0
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn kill_9_and_restart_keep_every_enrollment_and_every_used_code() {
    let dir = open_tempdir();
    let mut config = config_in(dir.path());
    config.login.max_tries = 1;
    let d = DaemonProcess::start(dir.path(), &config);

    let mut secrets = Vec::new();
    let mut backups = Vec::new();
    for user in ["alice", "bob"] {
        let pending = match d.call(&Request::TotpEnrollStart {
            user: Some(user.into()),
            algorithm: None,
            digits: None,
        }) {
            Response::TotpPending(p) => p,
            other => panic!("{other:?}"),
        };
        let secret = pending.secret.expose().to_owned();
        let code = oathtool(&secret, now());
        let codes = match d.call(&Request::TotpEnrollConfirm {
            user: Some(user.into()),
            code: code.as_str().into(),
        }) {
            Response::BackupCodes { codes } => codes
                .iter()
                .map(|c| c.expose().to_owned())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        secrets.push(secret);
        backups.push(codes);
    }
    // A third user only started enrolling.
    assert!(matches!(
        d.call(&Request::TotpEnrollStart {
            user: Some("carol".into()),
            algorithm: None,
            digits: None
        }),
        Response::TotpPending(_)
    ));

    let pam = PamConfig::new().unwrap();
    pam.twofold(
        "tf",
        &[&format!("socket={}", config.daemon.socket.display())],
    )
    .unwrap();
    // alice logs in with the next step's code and two backup codes.
    let totp = oathtool(&secrets[0], now() + 30);
    assert_eq!(login(&pam, "alice", &totp), PAM_SUCCESS);
    assert_eq!(login(&pam, "alice", &backups[0][0]), PAM_SUCCESS);
    assert_eq!(login(&pam, "alice", &backups[0][1]), PAM_SUCCESS);

    let before = [status(&d, "alice"), status(&d, "bob"), status(&d, "carol")];
    assert_eq!(before[0].backup_codes_left, 8);
    assert_eq!(before[1].backup_codes_left, 10);
    assert!(before[2].pending_enrollment);
    let log_before = d.log();
    d.kill9();

    let d = DaemonProcess::start(dir.path(), &config);
    let after = [status(&d, "alice"), status(&d, "bob"), status(&d, "carol")];
    assert_eq!(before, after, "state changed across kill -9");

    // Used codes stay used; unused ones still work.
    assert_eq!(login(&pam, "alice", &backups[0][0]), PAM_AUTH_ERR);
    assert_eq!(login(&pam, "alice", &backups[0][1]), PAM_AUTH_ERR);
    assert_eq!(login(&pam, "alice", &totp), PAM_AUTH_ERR);
    assert_eq!(login(&pam, "alice", &backups[0][2]), PAM_SUCCESS);
    assert_eq!(login(&pam, "bob", &backups[1][0]), PAM_SUCCESS);

    // Files are private to the daemon's user.
    assert_eq!(mode(&config.daemon.master_key), 0o600);
    assert_eq!(mode(&config.daemon.database), 0o600);
    assert_eq!(mode(config.daemon.database.parent().unwrap()), 0o700);
    assert_eq!(mode(config.daemon.master_key.parent().unwrap()), 0o700);

    let log = format!("{log_before}\n{}", d.log());
    assert!(log.contains("result=success"), "{log}");
    let key = std::fs::read_to_string(&config.daemon.master_key).unwrap();
    let mut secret_texts: Vec<&str> = vec![key.trim(), totp.as_str()];
    secret_texts.extend(secrets.iter().map(String::as_str));
    secret_texts.extend(backups.iter().flatten().map(String::as_str));
    for s in secret_texts {
        assert!(!log.contains(s), "twofoldd's log leaks {s:?}:\n{log}");
    }
}
