//! The PAM stacks and sshd settings that README's admin guide gives, read
//! from README.md itself so that the guide and the tests cannot drift, and
//! their expansion into whole files.
//!
//! A stack is a fenced block whose first line is `# /etc/pam.d/NAME` (a
//! PAM file, possibly naming several: `(and /etc/pam.d/lightdm)`), or a
//! block of bare `pam_twofold.so` lines (single-prompt mode). An
//! `sshd_config` block (one with `AuthenticationMethods`) belongs to the
//! next `/etc/pam.d/sshd` block.
//!
//! In a PAM file block, `...` stands for the lines of Debian's own file
//! between the lines the block shows ([`expand`]); a line of Debian's file
//! that the block neither shows nor covers by `...` would be silently
//! deleted by an admin following the block literally, so it is an error
//! unless it is a comment.

use std::path::PathBuf;

/// One stack of the admin guide.
#[derive(Debug, Clone)]
pub struct Stack {
    /// What names it: the PAM files it is for (`sudo`, `gdm-password,
    /// lightdm`), for sshd with the `AuthenticationMethods` it goes with
    /// (`sshd: AuthenticationMethods keyboard-interactive`), or
    /// `single-prompt`.
    pub key: String,
    /// The `/etc/pam.d` files the block is for (none for single-prompt).
    pub files: Vec<String>,
    /// The block's lines, without the `# /etc/pam.d/NAME` header.
    pub lines: Vec<String>,
    /// The `sshd_config` lines that go with an sshd stack.
    pub sshd_config: Vec<String>,
    /// README's line number of the block's opening fence.
    pub line: usize,
}

/// README.md at the top of the workspace.
pub fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// README.md's text; panics when it cannot be read.
pub fn readme() -> String {
    let p = readme_path();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fenced block: where it opens, its info string, its lines.
struct Block {
    line: usize,
    info: String,
    lines: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    open = Some(Block {
                        line: i + 1,
                        info: info.trim().to_owned(),
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(b) = open.as_mut() {
            b.lines.push(l.to_owned());
        }
    }
    out
}

/// Every stack README gives, in order.
pub fn stacks(text: &str) -> Result<Vec<Stack>, String> {
    let mut stacks = Vec::new();
    let mut sshd_configs: Vec<(usize, Vec<String>)> = Vec::new();
    for b in blocks(text) {
        let first = b.lines.first().map(|l| l.trim()).unwrap_or("");
        if first.starts_with("# /etc/pam.d/") {
            let files: Vec<String> = first
                .split("/etc/pam.d/")
                .skip(1)
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect()
                })
                .collect();
            let mut stack = Stack {
                key: files.join(", "),
                files,
                lines: b.lines[1..].to_vec(),
                sshd_config: Vec::new(),
                line: b.line,
            };
            if stack.files == ["sshd"] {
                if sshd_configs.is_empty() {
                    return Err(format!(
                        "README line {}: an /etc/pam.d/sshd block with no sshd_config block before it",
                        b.line
                    ));
                }
                let (_, config) = sshd_configs.remove(0);
                let methods = config
                    .iter()
                    .find(|l| l.starts_with("AuthenticationMethods "))
                    .cloned()
                    .unwrap_or_default();
                stack.key = format!("sshd: {methods}");
                stack.sshd_config = config;
            }
            stacks.push(stack);
        } else if b.info.is_empty()
            && b.lines
                .iter()
                .any(|l| l.starts_with("AuthenticationMethods "))
        {
            sshd_configs.push((b.line, b.lines));
        } else if b.lines.iter().any(|l| l.contains("pam_twofold.so [")) {
            // The PAM line's syntax, with its optional parts in brackets.
        } else if b.lines.iter().any(|l| is_twofold(l)) {
            let key = if b.lines.iter().any(|l| l.contains("single_prompt=")) {
                "single-prompt".to_owned()
            } else {
                format!("a bare block at README line {}", b.line)
            };
            stacks.push(Stack {
                key,
                files: Vec::new(),
                lines: b.lines,
                sshd_config: Vec::new(),
                line: b.line,
            });
        }
    }
    if let Some((line, _)) = sshd_configs.first() {
        return Err(format!(
            "README line {line}: an sshd_config block with no /etc/pam.d/sshd block after it"
        ));
    }
    Ok(stacks)
}

/// What PAM reads of `line`: `None` for a blank line or a comment, else the
/// line without its trailing `# comment`, whitespace collapsed.
pub fn pam_code(line: &str) -> Option<String> {
    let code = line.split('#').next().unwrap_or("");
    let words: Vec<&str> = code.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Whether `line` loads `pam_twofold.so`.
pub fn is_twofold(line: &str) -> bool {
    pam_code(line).is_some_and(|c| c.split(' ').nth(2) == Some("pam_twofold.so"))
}

enum Item {
    /// `...`: Debian's lines up to the next line the block shows.
    Rest,
    /// A line of Debian's file, at this index; commented out if `true`.
    Anchor(usize, bool),
    /// A line the block adds.
    Insert(String),
}

/// The whole file an admin gets by following `block` on Debian's file
/// `host`: a block line that is a line of `host` (compared as PAM reads
/// them, in order) stays where it is; `# LINE` where LINE is a line of
/// `host` comments that line out; `...` stands for `host`'s lines up to
/// the next line the block shows (or the end); any other block line is
/// added there. Fails naming any of `host`'s PAM lines the block would
/// drop (neither shown nor covered by `...`).
pub fn expand(block: &[String], host: &str) -> Result<Vec<String>, String> {
    let host: Vec<&str> = host.lines().collect();
    let find = |code: &str, from: usize| {
        (from..host.len()).find(|&j| pam_code(host[j]).as_deref() == Some(code))
    };
    let mut items = Vec::new();
    let mut cursor = 0;
    for l in block {
        let t = l.trim();
        let code = pam_code(t);
        if code.as_deref() == Some("...") {
            items.push(Item::Rest);
        } else if let Some(j) = code.as_deref().and_then(|c| find(c, cursor)) {
            items.push(Item::Anchor(j, false));
            cursor = j + 1;
        } else if let Some(j) = t
            .strip_prefix('#')
            .and_then(pam_code)
            .and_then(|c| find(&c, cursor))
        {
            items.push(Item::Anchor(j, true));
            cursor = j + 1;
        } else {
            items.push(Item::Insert(l.clone()));
        }
    }
    let mut out = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    let mut pos = 0;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Rest => {
                let end = items[i + 1..]
                    .iter()
                    .find_map(|it| match it {
                        Item::Anchor(j, _) => Some(*j),
                        _ => None,
                    })
                    .unwrap_or(host.len());
                out.extend(host[pos..end].iter().map(|s| s.to_string()));
                pos = end;
            }
            Item::Anchor(j, commented) => {
                dropped.extend(host[pos..*j].iter().copied());
                out.push(if *commented {
                    format!("# {}", host[*j])
                } else {
                    host[*j].to_owned()
                });
                pos = j + 1;
            }
            Item::Insert(l) => out.push(l.clone()),
        }
    }
    dropped.extend(host[pos..].iter().copied());
    let dropped: Vec<&str> = dropped
        .into_iter()
        .filter(|l| pam_code(l).is_some())
        .collect();
    if dropped.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "the block drops these lines of Debian's file (show them, or cover them with `...`): {dropped:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    const HOST: &str = "# head\n@include common-auth\naccount required pam_nologin.so\n\
                        @include common-account\nsession required pam_env.so # [1]\n";

    #[test]
    fn rest_keeps_debians_lines_between_the_shown_ones() {
        let got = expand(
            &v(&[
                "@include common-auth",
                "auth required pam_twofold.so",
                "...   # the rest",
            ]),
            HOST,
        )
        .unwrap();
        assert_eq!(
            got,
            v(&[
                "@include common-auth",
                "auth required pam_twofold.so",
                "account required pam_nologin.so",
                "@include common-account",
                "session required pam_env.so # [1]",
            ])
        );
    }

    #[test]
    fn a_commented_line_replaces_debians_line_in_place() {
        let got = expand(
            &v(&[
                "# @include common-auth   # why",
                "auth required pam_twofold.so",
                "...",
            ]),
            HOST,
        )
        .unwrap();
        assert_eq!(got[0], "# @include common-auth");
        assert_eq!(got[1], "auth required pam_twofold.so");
        assert_eq!(got[2], "account required pam_nologin.so");
    }

    #[test]
    fn a_line_neither_shown_nor_covered_is_an_error() {
        let err = expand(
            &v(&[
                "@include common-auth",
                "auth required pam_twofold.so",
                "@include common-account",
                "...",
            ]),
            HOST,
        )
        .unwrap_err();
        assert!(err.contains("pam_nologin.so"), "{err}");
        assert!(!err.contains("# head"), "{err}");
    }

    #[test]
    fn whitespace_and_trailing_comments_do_not_matter_for_matching() {
        let got = expand(
            &v(&["...", "session   required pam_env.so", "auth required x.so"]),
            HOST,
        )
        .unwrap();
        assert_eq!(got.last().unwrap(), "auth required x.so");
        assert_eq!(got[got.len() - 2], "session required pam_env.so # [1]");
    }

    #[test]
    fn sshd_blocks_pair_with_the_config_before_them() {
        let text = "```\nAuthenticationMethods a,b\n```\n```\n# /etc/pam.d/sshd\nx\n```\n\
                    ```\n# /etc/pam.d/gdm-password  (and /etc/pam.d/lightdm)\n...\n```\n\
                    ```\nauth required pam_twofold.so [socket=PATH]\n```\n\
                    ```\nauth requisite pam_twofold.so single_prompt=ask\n```\n";
        let s = stacks(text).unwrap();
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sshd: AuthenticationMethods a,b",
                "gdm-password, lightdm",
                "single-prompt"
            ]
        );
        assert_eq!(s[0].lines, ["x"]);
        assert!(stacks("```\nAuthenticationMethods a\n```\n").is_err());
    }
}
