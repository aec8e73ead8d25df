//! Parsing and validation of /etc/twofold/twofold.toml.
