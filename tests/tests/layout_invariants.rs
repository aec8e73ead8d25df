//! The daemon's layout invariants, read from its sources on disk:
//!
//! - the login core (`daemon/src/login/`) names no factor, not even in a
//!   comment: it knows factors only through the registry;
//! - only the SQLite store (`daemon/src/store/sqlite/`) names `rusqlite` or
//!   writes SQL;
//! - the engine's methods live in one file (`impl Engine` once).
//!
//! Each failure names the offending file and line.

use std::path::{Path, PathBuf};

/// Names of factors, this build's or not, that the login core must not use.
const FACTOR_NAMES: &[&str] = &["totp", "backup", "hotp", "fido", "email", "sms"];

/// Where the store that may speak SQL lives, under `daemon/src`.
/// Where SQL may be written: the two implementations of the store.
const SQL_HOMES: [&str; 2] = ["store/sqlite", "store/postgres"];

fn daemon_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src")
}

/// One offending line.
struct Hit {
    file: PathBuf,
    line: usize,
    text: String,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "daemon/src/{}:{}: {}",
            self.file.display(),
            self.line,
            self.text.trim()
        )
    }
}

/// Every file under `dir` (paths relative to `root`), sorted.
fn files(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("read {}: {e}", root.join(dir).display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let rel = dir.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            out.extend(files(root, &rel));
        } else {
            out.push(rel);
        }
    }
    out.sort();
    out
}

fn read(root: &Path, file: &Path) -> String {
    let bytes = std::fs::read(root.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", root.join(file).display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn report(what: &str, hits: &[Hit]) -> String {
    let lines: Vec<String> = hits.iter().map(|h| h.to_string()).collect();
    format!("{what}:\n{}", lines.join("\n"))
}

/// Whether `line` names `name` (lowercase), in any case, at the start of a
/// word or of a camel-case hump: `Method::TOTP`, `totp_secret`,
/// `TotpEnroll`, `isTotp` count; `mechanisms` does not name SMS.
fn names(line: &str, name: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    let bytes = line.as_bytes();
    lower.match_indices(name).any(|(i, _)| {
        i == 0 || !bytes[i - 1].is_ascii_alphabetic() || bytes[i].is_ascii_uppercase()
    })
}

/// Lines of the files under `dir` for which `bad` holds.
fn grep(root: &Path, dir: &Path, bad: impl Fn(&str) -> bool) -> Vec<Hit> {
    let mut hits = Vec::new();
    for file in files(root, dir) {
        for (i, text) in read(root, &file).lines().enumerate() {
            if bad(text) {
                hits.push(Hit {
                    file: file.clone(),
                    line: i + 1,
                    text: text.to_owned(),
                });
            }
        }
    }
    hits
}

/// Lines under `login/` that name a factor.
fn factor_names_in_login(root: &Path) -> Vec<Hit> {
    grep(root, Path::new("login"), |line| {
        FACTOR_NAMES.iter().any(|n| names(line, n))
    })
}

/// A word of a file and the line it is on.
struct Word<'a> {
    text: &'a str,
    line: usize,
}

fn words(source: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        for text in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !text.is_empty() {
                out.push(Word { text, line: i + 1 });
            }
        }
    }
    out
}

fn is_table_name(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_lowercase())
        && w.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether SQL starts at `w[0]`: an uppercase statement keyword, as SQL is
/// written here (prose says "select", not "SELECT"), with what must follow
/// it (`UPDATE` a lowercase table name and `SET`). Words may span lines.
fn sql_at(w: &[&str]) -> bool {
    match w {
        ["SELECT", ..] => true,
        ["INSERT", "INTO", ..] | ["INSERT", "OR", _, "INTO", ..] => true,
        ["DELETE", "FROM", ..] => true,
        ["UPDATE", table, "SET", ..] => is_table_name(table),
        ["CREATE" | "DROP", "TABLE" | "INDEX" | "TRIGGER" | "VIEW", ..] => true,
        _ => false,
    }
}

/// Lines outside the SQLite store that name rusqlite or hold SQL.
fn sql_outside_the_store(root: &Path) -> Vec<Hit> {
    let mut hits = Vec::new();
    for file in files(root, Path::new("")) {
        if SQL_HOMES.iter().any(|home| file.starts_with(home)) {
            continue;
        }
        let source = read(root, &file);
        let lines: Vec<&str> = source.lines().collect();
        let mut bad: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.to_ascii_lowercase().contains("rusqlite"))
            .map(|(i, _)| i + 1)
            .collect();
        let words = words(&source);
        let texts: Vec<&str> = words.iter().map(|w| w.text).collect();
        bad.extend(
            (0..words.len())
                .filter(|&i| sql_at(&texts[i..]))
                .map(|i| words[i].line),
        );
        bad.sort_unstable();
        bad.dedup();
        hits.extend(bad.into_iter().map(|line| Hit {
            file: file.clone(),
            line,
            text: lines[line - 1].to_owned(),
        }));
    }
    hits
}

/// Whether `line` opens an inherent impl of `Engine`: `impl Engine`, also
/// spelled with generics or a path (`impl crate::engine::Engine`), not a
/// trait's (`impl Debug for Engine`).
fn impl_engine(line: &str) -> bool {
    let mut rest = line;
    while let Some(i) = rest.find("impl") {
        let before = rest[..i].chars().next_back();
        let after = rest[i + 4..].chars().next();
        let word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + 4..];
        if !word {
            continue;
        }
        let mut ty = rest.trim_start();
        if ty.starts_with('<') {
            ty = ty.split_once('>').map_or("", |(_, t)| t).trim_start();
        }
        let path: String = ty
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if path.rsplit("::").next() == Some("Engine") {
            return true;
        }
    }
    false
}

/// Lines opening an inherent impl of `Engine`, anywhere in the daemon.
fn engine_impls(root: &Path) -> Vec<Hit> {
    grep(root, Path::new(""), impl_engine)
}

#[test]
fn the_login_core_names_no_factor() {
    let hits = factor_names_in_login(&daemon_src());
    assert!(
        hits.is_empty(),
        "{}",
        report(
            &format!("daemon/src/login/ names a factor (one of {FACTOR_NAMES:?})"),
            &hits
        )
    );
}

#[test]
fn only_the_stores_speak_sql() {
    let hits = sql_outside_the_store(&daemon_src());
    assert!(
        hits.is_empty(),
        "{}",
        report(
            &format!("rusqlite or SQL outside daemon/src/{SQL_HOMES:?}"),
            &hits
        )
    );
}

#[test]
fn the_engine_is_implemented_in_one_file() {
    let hits = engine_impls(&daemon_src());
    let mut files: Vec<&PathBuf> = hits.iter().map(|h| &h.file).collect();
    files.dedup();
    assert_eq!(
        files.len(),
        1,
        "{}",
        report("`impl Engine` must appear in exactly one file", &hits)
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    for (line, named) in [
        ("use crate::factors::totp;", true),
        ("Method::TOTP", true),
        ("TotpEnrollStart", true),
        ("isTotp", true),
        ("// recovery (backup) codes", true),
        ("send_sms", true),
        ("SmsFactor", true),
        ("an Email address", true),
        ("PAM mechanisms", false),
        ("the factor registry", false),
    ] {
        let found = FACTOR_NAMES.iter().any(|n| names(line, n));
        assert_eq!(found, named, "{line:?}");
    }
    for (source, sql) in [
        ("\"SELECT id FROM codes\"", true),
        ("\"INSERT OR IGNORE INTO users\"", true),
        ("\"INSERT INTO audit (id)\"", true),
        ("\"DELETE\n FROM credentials\"", true),
        ("\"UPDATE codes SET used_at = ?2\"", true),
        ("CREATE TABLE t", true),
        ("// select the factor, insert the row into the table", false),
        ("// UPDATE: this changed", false),
        ("const SELECT_ALL: u8 = 0;", false),
        ("// stored in SQLite", false),
    ] {
        let texts: Vec<&str> = words(source).iter().map(|w| w.text).collect();
        let found = (0..texts.len()).any(|i| sql_at(&texts[i..]));
        assert_eq!(found, sql, "{source:?}");
    }
    for (line, found) in [
        ("impl Engine {", true),
        ("impl Engine{", true),
        ("impl crate::engine::Engine {}", true),
        ("impl<'a> Engine {", true),
        ("pub(crate) fn x() {} impl Engine {", true),
        ("impl std::fmt::Debug for Engine {", false),
        ("impl EngineBuilder {", false),
        ("impl Engines {", false),
        ("fn simpl Engine", false),
    ] {
        assert_eq!(impl_engine(line), found, "{line:?}");
    }
}
