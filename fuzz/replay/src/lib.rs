//! The bodies of twofold's fuzz targets, as plain functions.
//!
//! `fuzz/` (cargo-fuzz, nightly, outside the workspace) calls each one from
//! its `fuzz_target!`, and this crate's `tests/replay.rs` (stable, in the
//! workspace) runs each one over every stored corpus and crash input, so CI
//! replays what the fuzzers found without a nightly toolchain. A body
//! panics, with a message naming the broken property, when the code under
//! test misbehaves; it returns quietly for any input the code handles.
//!
//! | target            | body                       |
//! |-------------------|----------------------------|
//! | `frame_reader`    | [`frames::frame_reader`]   |
//! | `request_decode`  | [`request::request_decode`]|
//! | `response_decode` | [`response::response_decode`] |
//! | `config_parse`    | [`config::config_parse`]   |
//! | `import_google`   | [`import::import_google`]  |
//! | `import_oath`     | [`import::import_oath`]    |
//! | `import_u2f`      | [`import::import_u2f`]     |
//! | `fido2_auth_data` | [`fido2::fido2_auth_data`] |

pub mod alloc;
pub mod config;
pub mod fido2;
pub mod frames;
pub mod import;
pub mod request;
pub mod response;

/// A target's body: panics when a property breaks.
pub type Body = fn(&[u8]);

/// Every fuzz target, by the name of its file in `fuzz/fuzz_targets/` and
/// of its folders in `fuzz/corpus/` and `fuzz/artifacts/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("frame_reader", frames::frame_reader),
    ("request_decode", request::request_decode),
    ("response_decode", response::response_decode),
    ("config_parse", config::config_parse),
    ("import_google", import::import_google),
    ("import_oath", import::import_oath),
    ("import_u2f", import::import_u2f),
    ("fido2_auth_data", fido2::fido2_auth_data),
];
