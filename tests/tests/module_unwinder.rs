//! pam_twofold.so carries its own unwinder (libgcc_eh, linked statically; see
//! pam-module/build.rs) instead of needing libgcc_s.so.1, which a C host
//! (sshd, sudo, su, login, a screen locker) does not load: every login's
//! dlopen of the module used to load and map it too (issue 5).
//!
//! The module must still catch its own panics: a panic that cannot unwind
//! aborts the host, and a screen locker that aborts may unlock the screen.
//! The proof loads the built module through the real libpam in a small C
//! program (compiled here with `cc`, linked with nothing but libpam and libc)
//! and makes the module panic on a production path, with no hook in the
//! module: the program's own `clock_gettime` (exported, so it interposes
//! libc's for the module too) fails CLOCK_MONOTONIC during `pam_authenticate`,
//! and std's `Instant::now`, the module's first step towards the daemon,
//! panics on that. The panic must unwind to the `catch_unwind` in
//! `pam_sm_authenticate`, which fails the login closed (PAM_AUTH_ERR), and
//! the program must go on to `pam_end` with libgcc_s never loaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use twofold_tests::pam::{PamCode, PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR};
use twofold_tests::system::run_bounded;
use twofold_tests::{module_path, PamConfig};

const SERVICE: &str = "tf-unwind";

/// The C host. It declares the few libpam functions it calls itself (the
/// ABI is stable), so building it needs no libpam0g-dev. Usage:
/// `host CONFDIR SERVICE broken|working`; it prints `key=value` lines.
const HOST_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct pam_message { int msg_style; const char *msg; };
struct pam_response { char *resp; int resp_retcode; };
struct pam_conv {
    int (*conv)(int, const struct pam_message **, struct pam_response **, void *);
    void *appdata_ptr;
};
typedef struct pam_handle pam_handle_t;
int pam_start_confdir(const char *, const char *, const struct pam_conv *,
                      const char *, pam_handle_t **);
int pam_authenticate(pam_handle_t *, int);
int pam_end(pam_handle_t *, int);

static int broken_clock;
static int clock_failures;

/* Exported (-rdynamic): the module's calls to clock_gettime land here. */
int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (broken_clock && clk == CLOCK_MONOTONIC) {
        clock_failures++;
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

/* The module must not get this far: it panics before it talks to anyone. */
static int conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
    (void)n; (void)m; (void)r; (void)d;
    return 19; /* PAM_CONV_ERR */
}

static int gcc_s_loaded(void) {
    void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 64;
    struct pam_conv c = { conv, NULL };
    pam_handle_t *pamh = NULL;
    printf("gcc_s_before=%d\n", gcc_s_loaded());
    int r = pam_start_confdir(argv[2], "alice", &c, argv[1], &pamh);
    if (r != 0) { printf("pam_start=%d\n", r); return 2; }
    broken_clock = strcmp(argv[3], "broken") == 0;
    r = pam_authenticate(pamh, 0);
    broken_clock = 0;
    printf("authenticate=%d\n", r);
    printf("clock_failures=%d\n", clock_failures);
    printf("gcc_s_during=%d\n", gcc_s_loaded());
    pam_end(pamh, r);
    printf("gcc_s_after=%d\n", gcc_s_loaded());
    printf("survived\n");
    return 0;
}
"#;

/// Compiles [`HOST_C`] into `dir` and returns the program's path.
fn build_host(dir: &Path) -> PathBuf {
    let src = dir.join("host.c");
    let exe = dir.join("host");
    std::fs::write(&src, HOST_C).unwrap();
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-Wextra", "-Werror", "-rdynamic", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-l:libpam.so.0")
        .output()
        .expect("run cc (the C compiler Rust links with)");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// What one run of the host printed: its `key=value` lines and everything.
struct HostRun {
    text: String,
}

impl HostRun {
    fn value(&self, key: &str) -> &str {
        let prefix = format!("{key}=");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("host printed no {key}:\n{}", self.text))
    }

    fn flag(&self, key: &str) -> bool {
        self.value(key) == "1"
    }

    fn code(&self) -> PamCode {
        PamCode(self.value("authenticate").parse().unwrap())
    }
}

/// Runs the host once in `mode` (`broken` or `working` clock) against a
/// service whose only auth module is the built pam_twofold.so, pointed at a
/// socket that does not exist.
fn run_host(mode: &str) -> HostRun {
    let dir = tempfile::tempdir().unwrap();
    let host = build_host(dir.path());
    let pam = PamConfig::new().unwrap();
    let socket = format!("socket={}", dir.path().join("no-daemon.sock").display());
    pam.twofold(SERVICE, &[&socket, "timeout=2"]).unwrap();
    let mut cmd = Command::new(&host);
    cmd.arg(pam.dir())
        .args([SERVICE, mode])
        // Nothing may load libgcc_s for the module; the backtrace makes the
        // panic hook walk the stack with the module's own unwinder too.
        .env_remove("LD_PRELOAD")
        .env("RUST_BACKTRACE", "1");
    let run = run_bounded(&mut cmd, "", Duration::from_secs(60)).unwrap();
    // Exit status 0 and "survived": the host was neither aborted nor
    // unwound into, and went on to pam_end.
    assert!(
        run.ok() && run.text.contains("survived"),
        "host did not survive ({:?}):\n{}",
        run.status,
        run.text
    );
    HostRun { text: run.text }
}

#[test]
fn a_panic_in_the_module_is_caught_in_a_c_host_without_libgcc_s() {
    let run = run_host("broken");
    let text = &run.text;
    assert_eq!(run.value("clock_failures"), "1", "{text}");
    // It really panicked (the default hook's report on stderr) ...
    assert!(text.contains("panicked at"), "{text}");
    assert!(text.contains("Invalid argument"), "{text}");
    // ... _Unwind_Backtrace walked from the panic up to the entry point ...
    assert!(text.contains("stack backtrace:"), "{text}");
    assert!(text.contains("pam_sm_authenticate"), "{text}");
    // ... and _Unwind_RaiseException brought it back to catch_unwind, which
    // failed the login closed.
    assert_eq!(run.code(), PAM_AUTH_ERR, "{text}");
    // Without libgcc_s in the process at any point: the unwinder that did
    // all this is the module's own.
    assert!(!run.flag("gcc_s_before"), "{text}");
    assert!(!run.flag("gcc_s_during"), "{text}");
    assert!(!run.flag("gcc_s_after"), "{text}");
}

/// The control: with a working clock the same login takes the module's
/// ordinary path (no daemon: PAM_AUTHINFO_UNAVAIL) and nothing panics, so
/// the PAM_AUTH_ERR above came from the caught panic.
#[test]
fn the_same_c_host_with_a_working_clock_does_not_panic() {
    let run = run_host("working");
    let text = &run.text;
    assert_eq!(run.value("clock_failures"), "0", "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(run.code(), PAM_AUTHINFO_UNAVAIL, "{text}");
    assert!(!run.flag("gcc_s_during"), "{text}");
}

/// Regression (issue 5): the module listed libgcc_s.so.1 as NEEDED, so every
/// login in a C host loaded it (about 120 µs of CPU per dlopen+dlclose).
#[test]
fn module_does_not_need_libgcc_s_and_carries_its_own_unwinder() {
    let path = module_path();
    let tool = |cmd: &str, args: &[&str]| -> String {
        let out = Command::new(cmd).args(args).arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dynamic = tool("readelf", &["-d", "-W"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.is_empty() && !needed.iter().any(|l| l.contains("libgcc_s")),
        "{dynamic}"
    );
    // The unwinder's entry points are defined inside the .so, local ('t'):
    // neither imported nor exported.
    let symbols = tool("nm", &[]);
    for name in ["_Unwind_RaiseException", "_Unwind_Resume"] {
        assert!(
            symbols.lines().any(|l| l.ends_with(&format!(" t {name}"))),
            "{name} is not a local definition in {} (stripped?)",
            path.display()
        );
    }
    let imports = tool("nm", &["-D", "--undefined-only"]);
    assert!(!imports.contains("_Unwind_"), "{imports}");
}
