//! [`Method`]: the one name of a verification method, shared by the wire,
//! the configuration, the daemon and the CLI.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A verification method by name (`totp`, `backup_code`, …).
///
/// Open on the wire: a message may carry a method this build does not know
/// (a newer daemon's), and the PAM module never looks at one, so adding a
/// method never needs a new `.so`. [`Method::KNOWN`] is what a configuration
/// may name.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Method(Cow<'static, str>);

impl Method {
    /// A TOTP code from an authenticator app (RFC 6238).
    pub const TOTP: Method = Method(Cow::Borrowed("totp"));
    /// A single-use backup code.
    pub const BACKUP_CODE: Method = Method(Cow::Borrowed("backup_code"));
    /// A break-glass code an admin issued (`twofold admin temp-code`).
    pub const TEMP_CODE: Method = Method(Cow::Borrowed("temp_code"));
    /// A code from a hardware OATH token (RFC 4226 HOTP).
    pub const HOTP: Method = Method(Cow::Borrowed("hotp"));
    /// A FIDO2 security key touched at the machine that runs the login.
    pub const FIDO2: Method = Method(Cow::Borrowed("fido2"));
    /// Every method this build implements, in display order.
    pub const KNOWN: &'static [Method] = &[
        Method::TOTP,
        Method::HOTP,
        Method::BACKUP_CODE,
        Method::TEMP_CODE,
        Method::EMAIL,
        Method::SMS,
        Method::FIDO2,
    ];
    /// Codes sent by mail to a confirmed address.
    pub const EMAIL: Method = Method(Cow::Borrowed("email"));
    /// Codes sent by text message to a confirmed number.
    pub const SMS: Method = Method(Cow::Borrowed("sms"));

    /// A method by a name made of `a`–`z`, `0`–`9` and `_`, 1 to 32 long;
    /// `None` for anything else. Known or not.
    pub fn new(name: &str) -> Option<Method> {
        if let Some(m) = Method::KNOWN.iter().find(|m| m.as_str() == name) {
            return Some(m.clone());
        }
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        ok.then(|| Method(Cow::Owned(name.to_owned())))
    }

    /// A method named at compile time (a factor's own name).
    pub const fn named(name: &'static str) -> Method {
        Method(Cow::Borrowed(name))
    }

    /// Whether this build implements the method.
    pub fn is_known(&self) -> bool {
        Method::KNOWN.contains(self)
    }

    /// The name used on the wire, in files, the log and the audit trail.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The known methods' names, comma separated (for error messages).
    pub fn known_list() -> String {
        let names: Vec<&str> = Method::KNOWN.iter().map(Method::as_str).collect();
        names.join(", ")
    }
}

/// Display order: the known methods in [`Method::KNOWN`]'s order, then
/// the others by name.
impl Ord for Method {
    fn cmp(&self, other: &Method) -> std::cmp::Ordering {
        let rank = |m: &Method| Method::KNOWN.iter().position(|k| k == m);
        match (rank(self), rank(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Method {
    fn partial_cmp(&self, other: &Method) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Method({})", self.0)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_and_known_ones_are_the_constants() {
        assert_eq!(Method::new("totp"), Some(Method::TOTP));
        assert!(Method::new("totp").is_some_and(|m| m.is_known()));
        assert_eq!(Method::new("email"), Some(Method::EMAIL));
        assert_eq!(Method::new("sms"), Some(Method::SMS));
        let other = Method::new("carrier_pigeon").expect("a token");
        assert!(!other.is_known());
        for bad in ["", "TOTP", "a b", "x-y", &"a".repeat(33), "tötp"] {
            assert_eq!(Method::new(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_wire_form_is_the_bare_name_and_unknown_names_decode() {
        assert_eq!(
            serde_json::to_string(&Method::BACKUP_CODE).unwrap(),
            "\"backup_code\""
        );
        let m: Method = serde_json::from_str("\"fido2\"").unwrap();
        assert_eq!(m.as_str(), "fido2");
    }
}
