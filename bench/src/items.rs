//! The logins of a cell: which user, and what the person types.
//!
//! Written by the parent to a file (one login a line, tab-separated), read by
//! each worker. The file holds throwaway benchmark secrets; it lives in the
//! run's private work directory and is removed with it.

use anyhow::{bail, Context};
use std::io::Write;
use std::path::Path;
use twofold_tests::otp::base32_decode;

/// What is typed at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No prompt expected (`pam_permit`).
    None,
    /// The current TOTP code for this secret (raw bytes).
    Totp(Vec<u8>),
    /// A six-digit code that is valid for no step in the window.
    Wrong(Vec<u8>),
    /// This text, e.g. a backup or scratch code.
    Fixed(String),
}

/// One login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// PAM_USER.
    pub user: String,
    /// What is typed.
    pub answer: Answer,
}

impl Item {
    /// A login of `user` typing `answer`.
    pub fn new(user: &str, answer: Answer) -> Item {
        Item {
            user: user.to_owned(),
            answer,
        }
    }

    /// Parses one line of an items file.
    pub fn parse(line: &str) -> anyhow::Result<Item> {
        let mut parts = line.splitn(3, '\t');
        let (Some(user), Some(kind), data) = (parts.next(), parts.next(), parts.next()) else {
            bail!("malformed item line");
        };
        let secret = || -> anyhow::Result<Vec<u8>> {
            let d = data.context("item without data")?;
            base32_decode(d).context("item secret is not base32")
        };
        let answer = match kind {
            "none" => Answer::None,
            "totp" => Answer::Totp(secret()?),
            "wrong" => Answer::Wrong(secret()?),
            "fixed" => Answer::Fixed(data.context("item without data")?.to_owned()),
            other => bail!("unknown item kind {other:?}"),
        };
        Ok(Item::new(user, answer))
    }

    /// The line [`Item::parse`] reads back.
    pub fn line(&self) -> String {
        match &self.answer {
            Answer::None => format!("{}\tnone", self.user),
            Answer::Totp(s) => format!("{}\ttotp\t{}", self.user, base32_encode(s)),
            Answer::Wrong(s) => format!("{}\twrong\t{}", self.user, base32_encode(s)),
            Answer::Fixed(t) => format!("{}\tfixed\t{t}", self.user),
        }
    }
}

/// Writes `items` to `path`, readable by its owner only.
pub fn write(path: &Path, items: &[Item]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut text = String::new();
    for it in items {
        text.push_str(&it.line());
        text.push('\n');
    }
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// RFC 4648 base32 without padding (the harness's own, like its TOTP).
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Lowercase hex, as `pam_oath`'s users file wants secrets.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let s = base32_decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        for it in [
            Item::new("bu000001", Answer::None),
            Item::new("bu000002", Answer::Totp(s.clone())),
            Item::new("bu000003", Answer::Wrong(s)),
            Item::new("bu000004", Answer::Fixed("abcde-23456".into())),
        ] {
            assert_eq!(Item::parse(&it.line()).unwrap(), it);
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "",
            "bu1",
            "bu1\tbogus\tx",
            "bu1\ttotp",
            "bu1\ttotp\t0189",
            "bu1\tfixed",
        ] {
            assert!(Item::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base32_and_hex_match_known_values() {
        assert_eq!(base32_encode(b"foo"), "MZXW6");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32_decode(&base32_encode(&[0xff; 20])).unwrap(),
            [0xff; 20]
        );
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
    }
}
