//! Isolation, measured: an SMTP server that accepts connections and never
//! greets holds the send workers, yet a login that asked for a code is
//! told within `[email] wait` + 1 s that it could not be sent, and 16
//! concurrent TOTP logins keep their p99 within twice the p99 they had
//! before the hung server was in use (same run, same machine; the harness
//! is `tests/src/isolation.rs`).

use std::sync::Arc;
use twofold_config::SmtpTls;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::isolation::{askers, measure, totp_users};
use twofold_tests::mailtest::{enroll_address, point_at};
use twofold_tests::smtp::{Mode, SmtpServer};

#[test]
fn a_hung_smtp_server_delays_no_other_login() {
    let dir = tempfile::tempdir().expect("dir");
    let good = SmtpServer::start(dir.path(), Mode::Plain, None, None);
    let silent = SmtpServer::start(dir.path(), Mode::Silent, None, None);
    let mut d = TestDaemon::start_with(|c| {
        point_at(c, &good, SmtpTls::Plain);
        // The breaker would answer later asks at once: keep it shut so
        // every attempt meets the hung server (its own test is elsewhere).
        c.email.breaker_failures = 100;
    });
    let secrets = totp_users(&d);
    for (i, user) in askers().iter().enumerate() {
        d.enroll(user);
        enroll_address(&d, &good, user, &format!("{user}@example.org"), i + 1);
    }
    // From now on every send goes to the server that never greets.
    d.restart_with(|c| c.email.port = silent.port);
    let wait = d.config().email.wait.duration();
    let d = Arc::new(d);
    measure(&d, secrets, "email", wait, "email");
    assert!(
        silent.commands().iter().any(|c| c == "CONNECT"),
        "the hung server was used"
    );
}
