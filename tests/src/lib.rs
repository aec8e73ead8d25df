//! Test harness: the real libpam through `pam_start_confdir`, the built
//! `pam_twofold.so`, and a scripted fake daemon; nothing in /etc is touched.
//!
//! ```no_run
//! use twofold_tests::{fake_daemon::{FakeDaemon, Script}, pam::*, PamConfig};
//! let daemon = FakeDaemon::start(Script::login().prompt("Code: ", false).success()).unwrap();
//! let pam = PamConfig::new().unwrap();
//! pam.twofold("tf-test", &[&format!("socket={}", daemon.socket().display())]).unwrap();
//! let (code, transcript) = PamLogin::new(pam.dir(), "tf-test", "alice").unwrap()
//!     .authenticate(Conversation::new().answer("123456")).unwrap();
//! assert_eq!(code, PAM_SUCCESS);
//! ```

mod conv;
pub mod daemon;
pub mod drip;
pub mod fake_daemon;
pub mod faults;
pub mod http;
pub mod isolation;
pub mod mailtest;
mod module;
pub mod otp;
pub mod pam;
pub mod peers;
pub mod pgproxy;
pub mod postgres;
pub mod readme;
mod require;
pub mod smtp;
pub mod sshd;
pub mod syslog;
pub mod system;
pub mod x11;

pub use module::{module_line, module_path, write_service, PamConfig, MODULE_ENV};
pub use require::{require_programs, require_root};
