//! `SSH_AUTH_INFO_0`: what sshd (OpenSSH ≥ 7.8) puts into the PAM
//! environment about the methods that succeeded before PAM ran, one a
//! line (`publickey ssh-ed25519 AAAA…`). Only the `publickey` lines are
//! sent to the daemon, which may remember the key after a second factor
//! (and trusts them only from sshd on a service its policy names).
//!
//! A value that cannot be used (not UTF-8, longer than [`MAX_AUTH_INFO`])
//! is not sent: without it nothing is remembered and nothing is let
//! through, so the login asks for the code as usual (fail closed).

/// The longest value read; a longer one is not sent.
pub const MAX_AUTH_INFO: usize = 16 * 1024;

/// The PAM environment variable sshd sets.
pub const SSH_AUTH_INFO: &std::ffi::CStr = c"SSH_AUTH_INFO_0";

/// The `publickey TYPE KEY` lines of the variable's value (`raw`, `None`
/// when unset), joined by newlines; `Ok(None)` when there are none;
/// `Err` (for the log) when the value cannot be used.
pub fn ssh_key_lines(raw: Option<&[u8]>) -> Result<Option<String>, &'static str> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.len() > MAX_AUTH_INFO {
        return Err("SSH_AUTH_INFO_0 is too long; not sent (the code is asked as usual)");
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| "SSH_AUTH_INFO_0 is not valid UTF-8; not sent (the code is asked as usual)")?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        if f.next() != Some("publickey") {
            continue;
        }
        let (Some(kind), Some(key)) = (f.next(), f.next()) else {
            continue;
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("publickey ");
        out.push_str(kind);
        out.push(' ');
        out.push_str(key);
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
#[path = "authinfo_tests.rs"]
mod tests;
