use super::*;

const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEHocKj972+txk2ixzyyOXmD9uQ1vysGZ6hoKiDlejyT";

#[test]
fn publickey_lines_are_kept_and_other_methods_dropped() {
    // As OpenSSH 9 sets it for `publickey,keyboard-interactive`.
    let raw = format!("publickey ssh-ed25519 {KEY}\n");
    assert_eq!(
        ssh_key_lines(Some(raw.as_bytes())),
        Ok(Some(format!("publickey ssh-ed25519 {KEY}")))
    );
    let raw = format!(
        "keyboard-interactive/pam\npublickey ssh-ed25519 {KEY} extra fields\npassword\npublickey ssh-rsa AAAAB3\n"
    );
    assert_eq!(
        ssh_key_lines(Some(raw.as_bytes())),
        Ok(Some(format!(
            "publickey ssh-ed25519 {KEY}\npublickey ssh-rsa AAAAB3"
        )))
    );
}

#[test]
fn an_unset_or_keyless_value_sends_nothing() {
    assert_eq!(ssh_key_lines(None), Ok(None));
    assert_eq!(ssh_key_lines(Some(b"")), Ok(None));
    assert_eq!(ssh_key_lines(Some(b"keyboard-interactive/pam\n")), Ok(None));
    // A line that only looks like a key line.
    assert_eq!(
        ssh_key_lines(Some(b"publickey\npublickeyssh-ed25519 x\n")),
        Ok(None)
    );
}

#[test]
fn an_unreadable_value_is_not_sent() {
    assert!(ssh_key_lines(Some(b"publickey ssh-ed25519 \xff\xfe")).is_err());
    let long = format!("publickey ssh-ed25519 {}", "A".repeat(MAX_AUTH_INFO));
    assert!(ssh_key_lines(Some(long.as_bytes())).is_err());
}
