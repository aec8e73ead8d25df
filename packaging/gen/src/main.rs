//! `twofold-gen [DIR]`: writes twofold(1), a page per subcommand
//! (twofold-enroll-totp(1), …) and the bash, zsh and fish completions from
//! the CLI's one clap definition (`twofold_cli::Cli`) into DIR/man and
//! DIR/completions (DIR defaults to packaging/). The results are checked
//! in; this crate's test fails, naming the command to run, when they are
//! not what the definition gives today.
//!
//! A separate binary rather than a hidden `twofold` subcommand, so the
//! installed CLI carries neither roff nor completion generators.

use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The command that regenerates the checked-in files.
const REGENERATE: &str = "cargo run --locked -p twofold-gen";

/// The hand-written pages the generated ones point to.
const SEE_ALSO: &str = ".SH \"SEE ALSO\"\n\
    .BR twofoldd (8),\n\
    .BR twofold.toml (5),\n\
    .BR pam_twofold (8),\n\
    .BR pam-auth-update (8)\n\
    .PP\n\
    The administrator's guide is /usr/share/doc/twofold/README.md.gz.\n";

/// Every generated file: its path below DIR and its contents.
fn generate() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut cmd = twofold_cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut files = Vec::new();
    pages(&cmd, true, &mut files)?;
    for (shell, name) in [
        (Shell::Bash, "twofold.bash"),
        (Shell::Zsh, "_twofold"),
        (Shell::Fish, "twofold.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "twofold", &mut text);
        files.push((Path::new("completions").join(name), text));
    }
    Ok(files)
}

/// The page of `cmd` and, recursively, of each of its visible subcommands.
fn pages(
    cmd: &clap::Command,
    top: bool,
    files: &mut Vec<(PathBuf, Vec<u8>)>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages(sub, false, files)?;
    }
    let man = clap_mangen::Man::new(cmd.clone()).manual("twofold manual");
    let mut text = Vec::new();
    man.render(&mut text)?;
    if top {
        text.write_all(SEE_ALSO.as_bytes())?;
    }
    files.push((Path::new("man").join(man.get_filename()), text));
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let run = || -> std::io::Result<usize> {
        let files = generate()?;
        for (path, text) in &files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
        }
        Ok(files.len())
    };
    match run() {
        Ok(n) => {
            println!("{REGENERATE}: wrote {n} files under {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twofold-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packaging() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn checked_in_man_pages_and_completions_are_current() {
        let files = generate().unwrap();
        let mut stale = Vec::new();
        for (path, text) in &files {
            match std::fs::read(packaging().join(path)) {
                Ok(old) if old == *text => {}
                _ => stale.push(path.display().to_string()),
            }
        }
        // A page of a subcommand that no longer exists is stale too
        // (section 1 pages are all generated; 5 and 8 are hand-written).
        for entry in std::fs::read_dir(packaging().join("man")).unwrap() {
            let name = PathBuf::from("man").join(entry.unwrap().file_name());
            if name.extension().is_some_and(|e| e == "1") && !files.iter().any(|(p, _)| *p == name)
            {
                stale.push(format!("{} (no such command now)", name.display()));
            }
        }
        assert!(
            stale.is_empty(),
            "generated files out of date with the clap definition: {stale:?}\n\
             run `{REGENERATE}` (and `git rm` pages of removed commands), then commit packaging/"
        );
    }

    #[test]
    fn every_subcommand_has_a_page_and_every_shell_a_completion() {
        let files = generate().unwrap();
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        for want in [
            "man/twofold.1",
            "man/twofold-enroll-totp.1",
            "man/twofold-admin-unlock.1",
            "man/twofold-config-check.1",
            "completions/twofold.bash",
            "completions/_twofold",
            "completions/twofold.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }

    /// The hand-written pages keep up with what they document: every
    /// option of the module's one option table (pam-module/src/options.rs)
    /// has an entry in pam_twofold(8), every flag of twofoldd's usage one
    /// in twofoldd(8).
    #[test]
    fn hand_written_pages_name_every_option() {
        let root = packaging().join("..");
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let entries = |page: &str| -> Vec<String> {
            let text = read(page);
            let lines: Vec<&str> = text.lines().collect();
            lines
                .windows(2)
                .filter(|w| w[0] == ".TP")
                .map(|w| w[1].replace("\\-", "-"))
                .collect()
        };
        let pam = entries("packaging/man/pam_twofold.8");
        let options = read("pam-module/src/options.rs");
        let names: Vec<&str> = options
            .lines()
            .filter_map(|l| l.strip_prefix("        name: \""))
            .filter_map(|l| l.strip_suffix("\","))
            .collect();
        assert!(names.len() >= 9, "option table not found: {names:?}");
        for name in names {
            assert!(
                pam.iter().any(|e| e.contains(name)),
                "pam_twofold(8) has no entry for the option {name}="
            );
        }
        let daemon = entries("packaging/man/twofoldd.8");
        let main = read("daemon/src/main.rs");
        let usage = &main[main.find("const USAGE").unwrap()..];
        let usage = &usage[..usage.find(";\n").unwrap()];
        let flags: Vec<&str> = usage
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| w.starts_with('-') && w.len() > 1)
            .collect();
        assert!(flags.contains(&"--config"), "usage not found: {flags:?}");
        for flag in flags {
            assert!(
                daemon.iter().any(|e| e.contains(flag)),
                "twofoldd(8) has no entry for {flag}"
            );
        }
    }

    /// Uncommenting every `#key = value` and `#[table]` line of the shipped
    /// /etc/twofold/twofold.toml gives exactly the built-in defaults, and
    /// names every option the daemon has: the example neither lies about a
    /// default nor leaves one out.
    #[test]
    fn the_example_configuration_spells_out_exactly_the_defaults() {
        let example = std::fs::read_to_string(packaging().join("twofold.toml")).unwrap();
        // As shipped, every setting is a comment.
        let shipped = twofold_config::Config::parse(&example, "twofold.toml").unwrap();
        assert_eq!(shipped, twofold_config::Config::default());
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase() || c == '['))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = twofold_config::Config::parse(&uncommented, "uncommented").unwrap();
        assert_eq!(parsed, twofold_config::Config::default());
        let all: toml::Table = twofold_config::Config::default().to_toml().parse().unwrap();
        let named: toml::Table = uncommented.parse().unwrap();
        for (table, keys) in &all {
            let keys = keys.as_table().unwrap();
            for (key, value) in keys {
                // Rule lists (policy.service, …) are shown as examples, not defaults.
                if value.as_array().is_some_and(|a| a.is_empty()) && !key.ends_with("groups") {
                    continue;
                }
                assert!(
                    named.get(table).and_then(|t| t.get(key)).is_some(),
                    "twofold.toml's example leaves out [{table}] {key}"
                );
            }
        }
    }
}
