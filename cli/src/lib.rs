//! The twofold command line.
