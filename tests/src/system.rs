//! Real system programs in private mount namespaces: sshd, sudo, su.
