//! The master key, sealing of factor secrets, keyed lookups, and argon2id.

pub mod kdf;
pub mod keys;
