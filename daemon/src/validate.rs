//! Checks on names a client sends, before they reach storage or the log.

/// Why a field was refused; the message names the field, never echoes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {why}")]
pub struct Invalid {
    /// The field, e.g. `user`.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A user name: 1 to 256 bytes, no control characters, no `/` or `:`, not
/// starting with `-` (it ends up in paths, URIs and command lines).
pub fn user(name: &str) -> Result<(), Invalid> {
    let bad = |why| Err(Invalid { field: "user", why });
    if name.is_empty() || name.len() > 256 {
        return bad("must be 1 to 256 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if name.contains('/') || name.contains(':') {
        return bad("must not contain '/' or ':'");
    }
    if name.starts_with('-') {
        return bad("must not start with '-'");
    }
    Ok(())
}

/// A PAM service name: 1 to 64 printable ASCII characters.
pub fn service(name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 64 {
        return Err(Invalid {
            field: "service",
            why: "must be 1 to 64 bytes",
        });
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid {
            field: "service",
            why: "must be printable ASCII without spaces",
        });
    }
    Ok(())
}

/// An optional PAM item (rhost, tty, ruser): at most 256 bytes, no control characters.
pub fn item(field: &'static str, value: Option<&str>) -> Result<(), Invalid> {
    let Some(v) = value else { return Ok(()) };
    if v.len() > 256 {
        return Err(Invalid {
            field,
            why: "must be at most 256 bytes",
        });
    }
    if v.chars().any(char::is_control) {
        return Err(Invalid {
            field,
            why: "must not contain control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["alice", "j.doe", "DOMAIN\\user", "x", &"a".repeat(256)] {
            assert_eq!(user(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "al\0ice",
            "al\nice",
            "a\tb",
            "../etc",
            "a:b",
            "-oProxyCommand",
            &"a".repeat(257),
            "a\u{7f}",
        ] {
            assert!(user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn services_and_items() {
        assert!(service("sshd").is_ok());
        assert!(service("gdm-password").is_ok());
        assert!(service("").is_err());
        assert!(service("su do").is_err());
        assert!(service(&"s".repeat(65)).is_err());
        assert!(item("rhost", None).is_ok());
        assert!(item("rhost", Some("")).is_ok());
        assert!(item("rhost", Some("192.0.2.1")).is_ok());
        assert!(item("tty", Some("pts/0\n")).is_err());
        assert!(item("ruser", Some(&"r".repeat(257))).is_err());
    }
}
