//! Fleet mode over TCP with TLS: a real PostgreSQL server on 127.0.0.1
//! (`ssl=on`, a certificate from a CA the test makes with `openssl`,
//! `pg_hba.conf` admitting TCP over TLS only, with a password), the real
//! `twofoldd` logging a user in through it; a CA file that does not verify
//! the server, or a password file others can read, stops twofoldd at start
//! with a clear error (as an unreachable database does), never a silent
//! fall back to plain TCP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use twofold_config::{Backend, Config, StoreTls};
use twofold_proto::{Request, Response, Secret};
use twofold_tests::daemon::{bin_path, config_in, login_at, open_tempdir, DaemonProcess};
use twofold_tests::otp::oathtool_totp;
use twofold_tests::postgres::{psql_at, PgServer};
use twofold_tests::smtp::make_ca;

const PASSWORD: &str = "fleet-pw-3141";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A host's configuration for the TLS server, its password file 0600.
fn tls_config(dir: &Path, server: &PgServer, db: &str, tls: StoreTls, ca: &Path) -> Config {
    let mut c = config_in(dir);
    let pass = dir.join("pg.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    c.store.backend = Backend::Postgres;
    c.store.host = "127.0.0.1".into();
    c.store.port = server.tcp_port().expect("a TCP server");
    c.store.dbname = db.into();
    c.store.user = "postgres".into();
    c.store.password_file = Some(pass);
    c.store.tls = tls;
    c.store.ca_file = Some(ca.to_path_buf());
    c.store.host_name = Some("tls-host".into());
    c
}

/// Runs twofoldd on `config` and expects it to refuse to start; its stderr.
fn refused_at_start(dir: &Path, config: &Config) -> String {
    let file = dir.join("refused.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    let mut child = Command::new(bin_path("twofoldd"))
        .arg("--config")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("refused.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("twofoldd started (or hung) with a store it cannot trust");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "twofoldd must refuse to start");
    std::fs::read_to_string(dir.join("refused.log")).unwrap()
}

#[test]
fn a_login_over_tls_to_postgres_and_a_ca_that_does_not_verify_the_server_refused_at_start() {
    let certs = open_tempdir();
    let ca = make_ca(certs.path(), "pg");
    let other = make_ca(certs.path(), "other");
    let server = PgServer::start_tls(&ca.cert, &ca.key, PASSWORD);
    let port = server.tcp_port().unwrap();
    psql_at(
        &server.socket_dir(),
        port,
        "postgres",
        "CREATE DATABASE fleet",
    );

    // The right CA: enrollment and a login through the TLS connection.
    let dir = open_tempdir();
    let config = tls_config(dir.path(), &server, "fleet", StoreTls::Require, &ca.ca);
    let d = DaemonProcess::start(dir.path(), &config);
    let pending = match d.call(&Request::TotpEnrollStart {
        user: Some("alice".into()),
        algorithm: None,
        digits: None,
    }) {
        Response::TotpPending(p) => p,
        other => panic!("enroll start: {other:?}"),
    };
    let r = d.call(&Request::TotpEnrollConfirm {
        user: Some("alice".into()),
        code: Secret::from(oathtool_totp(&pending, now(), 0).as_str()),
    });
    assert!(matches!(r, Response::BackupCodes { .. }), "{r:?}");
    let seen = login_at(d.socket(), "alice", &[&oathtool_totp(&pending, now(), 1)]);
    assert!(matches!(seen.last(), Some(Response::Success)), "{seen:?}");
    let over_tls = psql_at(
        &server.socket_dir(),
        port,
        "postgres",
        "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'twofoldd' AND s.ssl AND a.client_addr IS NOT NULL",
    );
    assert_ne!(over_tls, "0", "twofoldd's connections use TLS");
    drop(d);

    // A CA that did not sign the server's certificate: refused at start,
    // saying what to check — with `require`, and with `auto` (to a
    // loopback server that offers TLS, a failed check is no reason to
    // fall back to plain TCP).
    for tls in [StoreTls::Require, StoreTls::Auto] {
        let dir = open_tempdir();
        let config = tls_config(dir.path(), &server, "fleet", tls, &other.ca);
        let said = refused_at_start(dir.path(), &config);
        assert!(
            said.contains("invalid peer certificate: UnknownIssuer")
                && said.contains("check [store] ca_file"),
            "{tls:?}: {said}"
        );
    }

    // A password file the group may read is refused before any connection.
    let dir = open_tempdir();
    let config = tls_config(dir.path(), &server, "fleet", StoreTls::Require, &ca.ca);
    let pass = config.store.password_file.clone().unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o640)).unwrap();
    let said = refused_at_start(dir.path(), &config);
    assert!(said.contains("mode 640") && said.contains("0600"), "{said}");
}
