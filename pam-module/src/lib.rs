//! pam_twofold.so.
