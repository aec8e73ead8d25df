//! What a test needs from the machine, checked loudly.
//!
//! A test that needs root or a system program FAILS when it is missing; it
//! never returns early and passes. `scripts/test` runs as root and
//! `scripts/deps` installs every program the tests drive, so a missing one
//! is a broken setup, and a silent skip would report coverage that did not
//! run. (We chose failing over `#[ignore = "needs root"]` because `#[ignore]`
//! is taken: it marks the child entry points that only a parent test
//! re-executes, see [`crate::daemon::assert_child_ok`]; running ignored
//! tests as root would run those without their parent.)

use std::path::Path;

/// Panics unless the test runs as root (uid switching, mount namespaces).
#[track_caller]
pub fn require_root() {
    assert!(
        crate::daemon::is_root(),
        "this test needs root: run scripts/test as root"
    );
}

/// Panics unless every program in `programs` is installed: a name is looked
/// up on `PATH`, an absolute path is taken as is.
#[track_caller]
pub fn require_programs(programs: &[&str]) {
    for p in programs {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
            || Path::new(p).is_file();
        assert!(
            found,
            "this test needs {p}, which is not installed: run scripts/test (scripts/deps installs it)"
        );
    }
}
