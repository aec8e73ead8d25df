//! Replays every stored input of every fuzz target (`fuzz/corpus/<target>/`
//! and `fuzz/artifacts/<target>/`) through the target's body, so a stable
//! `cargo test` keeps what the fuzzers found fixed without a nightly
//! toolchain or cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use twofold_fuzz_replay::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let body = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("a known target");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is empty");
    let artifacts = inputs(&fuzz.join("artifacts").join(target));
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(file).expect("readable input");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        corpus.len() + artifacts.len(),
        failed.join("\n")
    );
}

#[test]
fn every_target_is_replayed_here() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "frame_reader",
            "request_decode",
            "response_decode",
            "config_parse",
            "import_google",
            "import_oath",
            "import_u2f",
            "fido2_auth_data"
        ]
    );
}

#[test]
fn frame_reader_corpus_and_artifacts() {
    replay("frame_reader");
}

#[test]
fn request_decode_corpus_and_artifacts() {
    replay("request_decode");
}

#[test]
fn response_decode_corpus_and_artifacts() {
    replay("response_decode");
}

#[test]
fn config_parse_corpus_and_artifacts() {
    replay("config_parse");
}

/// The hand-made seeds named `valid-*` are accepted, so a change of the
/// protocol or the configuration that leaves them stale is noticed (stale
/// seeds would quietly start the fuzzers from refused inputs only).
#[test]
fn valid_seeds_are_accepted() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let valid = |target: &str| {
        let files: Vec<PathBuf> = inputs(&corpus.join(target))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("valid-"))
            })
            .collect();
        assert!(!files.is_empty(), "no valid-* seed for {target}");
        files
            .into_iter()
            .map(|p| (std::fs::read(&p).expect("readable"), p))
    };
    for (data, path) in valid("request_decode") {
        let decoded = twofold_proto::Request::decode(&data);
        assert!(decoded.is_ok(), "{}: {decoded:?}", path.display());
    }
    for (data, path) in valid("response_decode") {
        let decoded = serde_json::from_slice::<twofold_proto::Response>(&data);
        assert!(decoded.is_ok(), "{}: {decoded:?}", path.display());
    }
    for (data, path) in valid("config_parse") {
        let text = String::from_utf8(data).expect("UTF-8");
        let parsed = twofold_config::Config::parse(&text, &path.display().to_string());
        assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
    }
    for (data, path) in valid("import_u2f") {
        let text = String::from_utf8(data).expect("UTF-8");
        let parsed = twofold_import::u2f::parse(&text);
        assert!(
            parsed
                .as_ref()
                .is_ok_and(|e| e.iter().any(|e| !e.keys.is_empty())),
            "{}: {parsed:?}",
            path.display()
        );
    }
    use twofold_daemon::factors::fido2::parse;
    for (data, path) in valid("fido2_auth_data") {
        let ok = parse::auth_data(&data).is_ok() || parse::cose_key(&data).is_ok();
        assert!(ok, "{}", path.display());
    }
}

#[test]
fn import_google_corpus_and_artifacts() {
    replay("import_google");
}

#[test]
fn import_oath_corpus_and_artifacts() {
    replay("import_oath");
}

#[test]
fn import_u2f_corpus_and_artifacts() {
    replay("import_u2f");
}

#[test]
fn fido2_auth_data_corpus_and_artifacts() {
    replay("fido2_auth_data");
}
