//! Test harness: real libpam through pam_start_confdir, daemons in temp dirs.
