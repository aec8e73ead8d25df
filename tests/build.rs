//! Lets the integration tests see what the PAM module logs: a test binary
//! that defines `__syslog_chk` exports it, so libpam's `pam_syslog` calls
//! land there instead of /dev/log. Binaries that do not define it are not
//! affected.

fn main() {
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=__syslog_chk");
}
