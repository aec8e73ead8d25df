//! Isolation, measured: an SMS endpoint (Twilio's API) that accepts
//! connections and never answers holds the send workers, yet a login that
//! asked for a code is told within `[sms] wait` + 1 s that it could not be
//! sent, and 16 concurrent TOTP logins keep their p99 within twice the p99
//! they had before the hung endpoint was in use (same run, same machine;
//! the harness is `tests/src/isolation.rs`).

use std::sync::Arc;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::http::HttpRecorder;
use twofold_tests::isolation::{askers, measure, totp_users};
use twofold_tests::mailtest::{enroll_phone, twilio_at};

#[test]
fn a_hung_sms_endpoint_delays_no_other_login() {
    let dir = tempfile::tempdir().expect("dir");
    let good = HttpRecorder::start();
    let silent = HttpRecorder::start_silent();
    let p = dir.path().to_owned();
    let mut d = TestDaemon::start_with(|c| {
        twilio_at(c, &p, &good);
        // The breaker would answer later asks at once: keep it shut so
        // every attempt meets the hung endpoint (its own test is elsewhere).
        c.sms.breaker_failures = 100;
        c.sms.sends_per_number_per_hour = 1000;
    });
    let secrets = totp_users(&d);
    for user in askers() {
        d.enroll(&user);
        enroll_phone(&d, &good, &user);
    }
    // From now on every send goes to the endpoint that never answers.
    d.restart_with(|c| c.sms.twilio.base_url = silent.base_url());
    let wait = d.config().sms.wait.duration();
    let d = Arc::new(d);
    measure(&d, secrets, "sms", wait, "sms");
    assert!(silent.connections() > 0, "the hung endpoint was used");
}
