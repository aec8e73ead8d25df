//! pam-u2f's `u2f_keys` imported with the real `twofold` CLI (a dry run,
//! then `--apply`), then each imported credential logs in through the real
//! libpam, signed by a software key holding the same private key: an
//! old-format line (pamu2fcfg ≤ 1.0.8: web-safe base64 key handle, hex
//! point, asserted for pam-u2f's `appid`) and new-format ones (base64,
//! `es256` and `eddsa`, asserted for its `origin`). A malformed line is
//! refused by its number and nothing is imported.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use twofold_daemon::factors::fido2::parse::CoseKey;
use twofold_daemon::factors::fido2::soft::{Alg, SoftAuthenticator, SoftKey};
use twofold_daemon::factors::fido2::{Fido2, CUE};
use twofold_daemon::factors::Registry;
use twofold_tests::daemon::TestDaemon;
use twofold_tests::pam::*;

const ORIGIN: &str = "pam://u2f-host";
const APPID: &str = "pam://u2f-app";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(A[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Web-safe, unpadded: the old format's key handles.
fn b64_websafe(bytes: &[u8]) -> String {
    b64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn xy(k: &CoseKey) -> Vec<u8> {
    match k {
        CoseKey::Es256 { x, y } => [&x[..], &y[..]].concat(),
        CoseKey::Ed25519 { x } => x.to_vec(),
    }
}

struct Bed {
    d: TestDaemon,
    keys: Arc<SoftAuthenticator>,
    old: Arc<SoftKey>,
    new: Arc<SoftKey>,
    ed: Arc<SoftKey>,
    file: PathBuf,
}

/// Three software keys holding credentials made "by pamu2fcfg", and
/// alice's `u2f_keys` line naming them (old format, new ES256, new EdDSA).
fn bed() -> Bed {
    let keys = SoftAuthenticator::new();
    let mut r = Registry::builtin();
    r.register(Arc::new(
        Fido2::new(keys.clone()).deadline(Duration::from_secs(1)),
    ));
    let d = TestDaemon::start_with_factors(|c| c.login.max_tries = 1, r);
    let old = SoftKey::new("old", Alg::Es256, false);
    let new = SoftKey::new("new", Alg::Es256, false);
    let ed = SoftKey::new("ed", Alg::Ed25519, false);
    let (old_id, new_id, ed_id) = ([0xa1u8; 64], [0xb2u8; 48], [0xc3u8; 37]);
    let old_pk = old.hold(APPID, &old_id, [7; 32]).unwrap();
    let new_pk = new.hold(ORIGIN, &new_id, [8; 32]).unwrap();
    let ed_pk = ed.hold(ORIGIN, &ed_id, [9; 32]).unwrap();
    let line = format!(
        "alice:{},04{}:{},{},es256,+presence:{},{},eddsa,+presence+pin\n",
        b64_websafe(&old_id),
        hex(&xy(&old_pk)),
        b64(&new_id),
        b64(&xy(&new_pk)),
        b64(&ed_id),
        b64(&xy(&ed_pk)),
    );
    let file = d.dir().join("u2f_keys");
    std::fs::write(&file, line).unwrap();
    Bed {
        d,
        keys,
        old,
        new,
        ed,
        file,
    }
}

fn import(b: &Bed, extra: &[&str]) -> Output {
    let path = b.file.display().to_string();
    let mut args = vec![
        "admin", "import", "u2f-keys", "--from", &path, "--origin", ORIGIN, "--appid", APPID,
    ];
    args.extend_from_slice(extra);
    b.d.twofold(&args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn keys_of_alice(d: &TestDaemon) -> String {
    d.sqlite3(
        "SELECT label FROM credentials WHERE user = 'alice' AND method = 'fido2' AND confirmed_at IS NOT NULL ORDER BY label",
    )
}

fn login_with(b: &Bed, key: &Arc<SoftKey>) -> (PamCode, Transcript) {
    for name in ["old", "new", "ed"] {
        b.keys.unplug(name);
    }
    b.keys.plug(key);
    PamLogin::new(b.d.pam().dir(), "tf", "alice")
        .unwrap()
        .tty("tty1")
        .authenticate(Conversation::new())
        .unwrap()
}

#[test]
fn old_and_new_format_credentials_are_imported_and_each_key_logs_in() {
    let b = bed();
    let dry = import(&b, &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    let shown = text(&dry);
    assert!(shown.contains("Would import"), "{shown}");
    assert!(
        shown.contains(&format!(
            "alice: fido2 es256 security key for {APPID} from pam-u2f:"
        )) && shown.contains("(old format)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("alice: fido2 eddsa security key for {ORIGIN}")),
        "{shown}"
    );
    assert!(shown.contains("verify_services"), "the +pin note: {shown}");
    assert_eq!(keys_of_alice(&b.d), "", "a dry run writes nothing");

    let applied = import(&b, &["--apply"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(
        text(&applied).matches("imported: alice").count(),
        3,
        "{}",
        text(&applied)
    );
    assert_eq!(keys_of_alice(&b.d), "u2f-1\nu2f-2\nu2f-3\n");
    let enrolled = b.d.sqlite3(
        "SELECT detail FROM audit WHERE user = 'alice' AND event = 'enroll' AND method = 'fido2' ORDER BY id",
    );
    assert_eq!(enrolled.lines().count(), 3, "{enrolled}");
    assert!(enrolled.contains(&format!("rp_id={APPID}")), "{enrolled}");
    assert!(enrolled.contains("imported_from=pam-u2f:"), "{enrolled}");

    for key in [&b.old, &b.new, &b.ed] {
        let (rc, t) = login_with(&b, key);
        assert_eq!(rc, PAM_SUCCESS, "{t:?}");
        assert_eq!(t.infos(), [CUE], "{t:?}");
        assert_eq!(key.touches(), 1);
    }
    assert_eq!(
        b.d.sqlite3("SELECT count(*) FROM audit WHERE user = 'alice' AND event = 'login_success' AND method = 'fido2'")
            .trim(),
        "3"
    );

    // Imported twice: refused per key, nothing doubled.
    let again = import(&b, &["--apply"]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("already has this security key"),
        "{}",
        text(&again)
    );
    assert_eq!(keys_of_alice(&b.d), "u2f-1\nu2f-2\nu2f-3\n");
}

#[test]
fn an_old_format_credential_asserted_for_the_origin_instead_of_the_appid_does_not_log_in() {
    // pam-u2f asserts old credentials for its appid: imported under the
    // origin, the key holds no credential for that RP ID.
    let b = bed();
    let path = b.file.display().to_string();
    let out = b.d.twofold(&[
        "admin", "import", "u2f-keys", "--from", &path, "--origin", ORIGIN, "--apply",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let (rc, t) = login_with(&b, &b.old);
    assert_ne!(rc, PAM_SUCCESS, "{t:?}");
    assert!(t.infos().is_empty(), "no key found, no cue: {t:?}");
    assert_eq!(login_with(&b, &b.new).0, PAM_SUCCESS);
}

#[test]
fn a_malformed_line_is_refused_by_its_number_and_nothing_is_imported() {
    let b = bed();
    let good = std::fs::read_to_string(&b.file).unwrap();
    std::fs::write(
        &b.file,
        format!(
            "{good}bob:{},{},es256,+presence\n",
            b64(&[1; 16]),
            b64(&[2; 63])
        ),
    )
    .unwrap();
    let out = import(&b, &["--apply"]);
    assert!(!out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("line 2: credential 1: the public key is not an uncompressed P-256 point"),
        "{shown}"
    );
    assert!(shown.contains("nothing was imported"), "{shown}");
    assert_eq!(keys_of_alice(&b.d), "");
    assert_eq!(
        b.d.sqlite3("SELECT count(*) FROM audit WHERE event = 'enroll'")
            .trim(),
        "0"
    );
}
