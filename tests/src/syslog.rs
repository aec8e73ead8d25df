//! Seeing what the PAM module logs: libpam's `pam_syslog` lines, captured in
//! the test process instead of going to /dev/log.

/// Defines, in the test binary that invokes it, a `__syslog_chk` that
/// captures libpam's `pam_syslog` lines, and `fn logged(service: &str) ->
/// Vec<(i32, String)>`, the (priority, text) lines logged so far for
/// `service`.
///
/// libpam's `pam_vsyslog` calls glibc's `__syslog_chk` as
/// `syslog(pri, "%s %s", prefix, message)`; `tests/build.rs` exports the
/// symbol from test binaries, so the one defined here wins. It is declared
/// with fixed arguments: on x86_64 the variadic ones arrive in the same
/// registers. A macro rather than a function of this library, so only the
/// test binaries that ask for the capture define the symbol.
#[macro_export]
macro_rules! capture_pam_syslog {
    () => {
        /// Log lines libpam's `pam_syslog` wrote in this process: (priority, text).
        static SYSLOG: ::std::sync::Mutex<Vec<(i32, String)>> = ::std::sync::Mutex::new(Vec::new());

        /// Stands in for glibc's `__syslog_chk` (see [`twofold_tests::capture_pam_syslog`]).
        ///
        /// # Safety
        /// Called by libpam with the format and two C strings.
        #[no_mangle]
        pub unsafe extern "C" fn __syslog_chk(
            pri: ::std::ffi::c_int,
            _flag: ::std::ffi::c_int,
            fmt: *const ::std::ffi::c_char,
            a: *const ::std::ffi::c_char,
            b: *const ::std::ffi::c_char,
        ) {
            let _ = ::std::panic::catch_unwind(|| {
                use ::std::ffi::CStr;
                // SAFETY: fmt is a C string (caller).
                if fmt.is_null()
                    || unsafe { CStr::from_ptr(fmt) } != c"%s %s"
                    || a.is_null()
                    || b.is_null()
                {
                    return;
                }
                // SAFETY: both are C strings, as the format says.
                let line = unsafe {
                    format!(
                        "{} {}",
                        CStr::from_ptr(a).to_string_lossy(),
                        CStr::from_ptr(b).to_string_lossy()
                    )
                };
                SYSLOG
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((pri, line));
            });
        }

        /// The lines logged for `service` so far.
        fn logged(service: &str) -> Vec<(i32, String)> {
            let tag = format!("({service}:");
            SYSLOG
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, l)| l.contains(&tag))
                .cloned()
                .collect()
        }
    };
}
