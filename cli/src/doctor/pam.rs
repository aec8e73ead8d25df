//! The PAM stacks of the services twofold is used with, includes and
//! substacks flattened into their lines, and what is wrong with where
//! twofold sits in them (and beside it: pam_env reading users' files).

use super::sshd::Sshd;
use super::{Finding, Host, Severity};
use std::path::Path;

/// Services checked when their file exists.
pub const SERVICES: &[&str] = &[
    "sshd",
    "sudo",
    "sudo-i",
    "su",
    "su-l",
    "login",
    "gdm-password",
    "lightdm",
    "xsecurelock",
    "i3lock",
    "swaylock",
    "slock",
];

/// Programs that answer every question with what was typed.
pub const ONE_QUESTION: &[&str] = &["i3lock", "swaylock", "slock"];

/// Modules that check the password.
const PASSWORD_MODULES: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
];

/// How deep includes may nest before the walk gives up (libpam's own
/// limit is of the same order).
const MAX_DEPTH: usize = 8;

/// One line of a flattened stack.
#[derive(Debug, Clone)]
pub struct AuthLine {
    /// Its type: `auth`, `account`, `session` or `password`.
    pub kind: String,
    /// Where it is written: `file:line`.
    pub at: String,
    /// Its control (`required`, `[success=1 default=ignore]`, …).
    pub control: String,
    /// The module's file name (`pam_unix.so`).
    pub module: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl AuthLine {
    fn is_twofold(&self) -> bool {
        self.module.contains("pam_twofold") && self.module.ends_with(".so")
    }

    fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }
}

/// The `auth` lines of a flattened stack, in order.
pub fn auth_only(lines: &[AuthLine]) -> Vec<AuthLine> {
    lines.iter().filter(|l| l.kind == "auth").cloned().collect()
}

/// Every line of `service` in `dir` (all four types), in order, or why not.
pub fn stack_lines(dir: &Path, service: &str) -> Result<Vec<AuthLine>, String> {
    let mut out = Vec::new();
    walk(dir, service, None, 0, &mut out)?;
    Ok(out)
}

/// Appends the lines of `name` to `out`; only those of type `only` when
/// it came in through `<type> include|substack` (libpam's own rule),
/// every type through `@include`.
fn walk(
    dir: &Path,
    name: &str,
    only: Option<&str>,
    depth: usize,
    out: &mut Vec<AuthLine>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("includes nest deeper than {MAX_DEPTH} at {name}"));
    }
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        if let Some(inc) = line.strip_prefix("@include") {
            walk(dir, inc.trim(), only, depth + 1, out)?;
            continue;
        }
        let mut tokens = line.split_whitespace();
        let Some(kind) = tokens.next() else { continue };
        let kind = kind.trim_start_matches('-');
        if !["auth", "account", "session", "password"].contains(&kind)
            || only.is_some_and(|o| o != kind)
        {
            continue;
        }
        let Some(mut control) = tokens.next().map(str::to_owned) else {
            continue;
        };
        if control.starts_with('[') {
            while !control.ends_with(']') {
                match tokens.next() {
                    Some(t) => {
                        control.push(' ');
                        control.push_str(t);
                    }
                    None => break,
                }
            }
        }
        let Some(module) = tokens.next() else {
            continue;
        };
        if control == "include" || control == "substack" {
            walk(dir, module, Some(kind), depth + 1, out)?;
            continue;
        }
        let module = Path::new(module)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(AuthLine {
            kind: kind.to_owned(),
            at,
            control,
            module,
            args: tokens.map(str::to_owned).collect(),
        });
    }
    Ok(())
}

/// The findings about every service's stack.
pub fn check(host: &Host<'_>, sshd: &Sshd) -> Vec<Finding> {
    let mut out = Vec::new();
    for service in SERVICES {
        if !host.pam_d.join(service).exists() {
            continue;
        }
        match stack_lines(host.pam_d, service) {
            Ok(lines) => {
                out.extend(check_stack(service, &auth_only(&lines), sshd));
                out.extend(check_user_env(service, &lines));
            }
            Err(why) => out.push(Finding {
                id: "pam.unreadable",
                severity: Severity::Warning,
                what: format!("the PAM stack of {service} could not be read: {why}"),
                why: "libpam may fail the same way, and twofold's place in it cannot be checked"
                    .into(),
                fix: "fix the file or the include it names".into(),
            }),
        }
    }
    out
}

/// What is wrong with one service's auth lines.
pub fn check_stack(service: &str, lines: &[AuthLine], sshd: &Sshd) -> Vec<Finding> {
    let mut out = Vec::new();
    let twofold: Vec<&AuthLine> = lines.iter().filter(|l| l.is_twofold()).collect();
    if twofold.is_empty() {
        if service == "sshd" && sshd.present() && sshd.runs_kbdint() {
            out.push(Finding {
                id: "pam.sshd_without_twofold",
                severity: Severity::Warning,
                what: "sshd asks keyboard-interactive but /etc/pam.d/sshd has no pam_twofold.so line".into(),
                why: "SSH logins have no second factor".into(),
                fix: "add the twofold line as README's admin guide shows for your AuthenticationMethods".into(),
            });
        }
        return out;
    }
    for l in &twofold {
        if l.control == "sufficient" || l.control.contains("success=done") {
            out.push(Finding {
                id: "pam.twofold_sufficient",
                severity: Severity::Error,
                what: format!("{}: pam_twofold.so is `{}` in {service}", l.at, l.control),
                why: "a right code alone then opens the login, without the password (or the other modules after it)".into(),
                fix: "use `required` (or `requisite`)".into(),
            });
        }
    }
    let asks = lines
        .iter()
        .position(|l| l.is_twofold() && l.has_arg("single_prompt=ask"));
    let first_check = lines
        .iter()
        .position(|l| l.is_twofold() && !l.has_arg("single_prompt=ask"));
    let first_password = lines
        .iter()
        .position(|l| PASSWORD_MODULES.contains(&l.module.as_str()));
    if let (Some(t), Some(p)) = (first_check, first_password) {
        if t < p {
            out.push(Finding {
                id: "pam.twofold_before_password",
                severity: Severity::Error,
                what: format!(
                    "{}: twofold checks the code before {} checks the password in {service}",
                    lines[t].at, lines[p].module
                ),
                why: "someone who knows only a user name can spend that user's codes and lock them out, and learns whether a code was right".into(),
                fix: format!("move the twofold line after {} (on Debian: after `@include common-auth`)", lines[p].module),
            });
        }
    }
    if let Some(a) = asks {
        let verified = lines[a..]
            .iter()
            .any(|l| l.is_twofold() && l.has_arg("single_prompt=verify"));
        if !verified {
            out.push(Finding {
                id: "pam.single_prompt_without_verify",
                severity: Severity::Error,
                what: format!("{}: single_prompt=ask has no single_prompt=verify line after it in {service}", lines[a].at),
                why: "the ask line only asks and returns PAM_IGNORE: nobody checks the code, there is no second factor".into(),
                fix: "add `auth required pam_twofold.so single_prompt=verify` after the password module".into(),
            });
        }
    }
    if ONE_QUESTION.contains(&service) && asks.is_none() {
        out.push(Finding {
            id: "pam.one_question_without_single_prompt",
            severity: Severity::Error,
            what: format!("{service} asks one question, and its stack asks two"),
            why: format!("{service} answers the code prompt with the password: it can never unlock with a code (twofold refuses the password there without counting it)"),
            fix: "use README's single-prompt stack for it (Desktop section)".into(),
        });
    }
    let can_succeed = lines.iter().any(|l| {
        !l.is_twofold()
            && (PASSWORD_MODULES.contains(&l.module.as_str()) || l.module == "pam_permit.so")
    });
    if !can_succeed {
        out.push(Finding {
            id: "pam.ignore_only",
            severity: Severity::Error,
            what: format!("in {service} twofold is the only auth module that can succeed"),
            why: "for a user twofold has no say about (nothing enrolled and `unenrolled = \"allow\"`, an exempt group) it returns PAM_IGNORE, and a stack with no other result is denied: those users are locked out".into(),
            fix: "add `auth required pam_permit.so` after the twofold line (it does not weaken the stack: twofold's required failure stands)".into(),
        });
    }
    out
}

/// `pam_env.so user_readenv=1` (any type of line) in a stack that has
/// pam_twofold: each user's `~/.pam_environment` is read into the login's
/// environment.
pub fn check_user_env(service: &str, lines: &[AuthLine]) -> Vec<Finding> {
    if !lines.iter().any(|l| l.kind == "auth" && l.is_twofold()) {
        return Vec::new();
    }
    lines
        .iter()
        .filter(|l| l.module == "pam_env.so" && reads_user_env(l))
        .map(|l| Finding {
            id: "pam.env_user_readenv",
            severity: Severity::Warning,
            what: format!(
                "{}: pam_env.so reads each user's ~/.pam_environment (user_readenv) in {service}, a login twofold guards",
                l.at
            ),
            why: "the user being logged in then sets variables in the PAM environment that the modules after it and the session read (twofold reads SSH_AUTH_INFO_0 there to know a remembered SSH key); Linux-PAM turned it off by default after privilege escalations through it".into(),
            fix: format!(
                "remove user_readenv=1 from {} (pam_env's default is off); set shared variables in /etc/environment or /etc/security/pam_env.conf",
                l.at
            ),
        })
        .collect()
}

/// Whether a pam_env line turns `user_readenv` on: the last setting
/// wins, read as pam_env does (C's `atoi`: `1` on, `0` or `yes` off).
fn reads_user_env(l: &AuthLine) -> bool {
    l.args
        .iter()
        .filter_map(|a| a.strip_prefix("user_readenv="))
        .next_back()
        .is_some_and(|v| {
            let v = v.strip_prefix(['-', '+']).unwrap_or(v);
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            digits.bytes().any(|b| b != b'0')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(files: &[(&str, &str)], service: &str) -> Vec<&'static str> {
        let dir = std::env::temp_dir().join(format!("tf-doctor-{}-{service}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let lines = auth_only(&stack_lines(&dir, service).unwrap());
        let ids = check_stack(service, &lines, &Sshd::default())
            .iter()
            .map(|f| f.id)
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        ids
    }

    const COMMON: &str = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n";

    #[test]
    fn each_misplacement_is_found_and_good_stacks_pass() {
        let good = stack(
            &[
                ("common-auth", COMMON),
                (
                    "sudo",
                    "@include common-auth\nauth required pam_twofold.so\n",
                ),
            ],
            "sudo",
        );
        assert!(good.is_empty(), "{good:?}");
        let key_code = stack(
            &[(
                "sshd",
                "auth required pam_twofold.so\nauth required pam_permit.so\n",
            )],
            "sshd",
        );
        assert!(key_code.is_empty(), "{key_code:?}");
        assert_eq!(
            stack(&[("sshd", "auth required pam_twofold.so\n")], "sshd"),
            ["pam.ignore_only"]
        );
        assert_eq!(
            stack(
                &[
                    ("common-auth", COMMON),
                    (
                        "su",
                        "auth sufficient pam_twofold.so\n@include common-auth\n"
                    )
                ],
                "su"
            ),
            ["pam.twofold_sufficient", "pam.twofold_before_password"]
        );
        assert_eq!(
            stack(
                &[
                    ("login", COMMON),
                    (
                        "i3lock",
                        "auth include login\nauth required pam_twofold.so\n"
                    )
                ],
                "i3lock"
            ),
            ["pam.one_question_without_single_prompt"]
        );
        assert_eq!(
            stack(
                &[("i3lock", "auth requisite pam_twofold.so single_prompt=ask\nauth requisite pam_unix.so use_first_pass\n")],
                "i3lock"
            ),
            ["pam.single_prompt_without_verify"]
        );
        let single = stack(
            &[("i3lock", "auth requisite pam_twofold.so single_prompt=ask\nauth [success=ok default=die] pam_unix.so use_first_pass\nauth required /usr/lib/x86_64-linux-gnu/security/pam_twofold.so single_prompt=verify\n")],
            "i3lock",
        );
        assert!(single.is_empty(), "{single:?}");
    }

    fn env_ids(files: &[(&str, &str)], service: &str) -> Vec<(&'static str, String)> {
        let dir = std::env::temp_dir().join(format!("tf-doctor-env-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let lines = stack_lines(&dir, service).unwrap();
        let found = check_user_env(service, &lines)
            .into_iter()
            .map(|f| (f.id, f.what))
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        found
    }

    #[test]
    fn pam_env_user_readenv_is_flagged_only_beside_twofold() {
        let twofold = "@include common-auth\nauth required pam_twofold.so\n";
        let sudo = |env: &str| {
            env_ids(
                &[
                    ("common-auth", COMMON),
                    ("common-session", env),
                    (
                        "sudo",
                        &format!("{twofold}session include common-session\n"),
                    ),
                ],
                "sudo",
            )
        };
        let found = sudo("session required pam_env.so readenv=1 user_readenv=1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "pam.env_user_readenv");
        assert!(found[0].1.contains("common-session:1"), "{found:?}");
        for off in [
            "session required pam_env.so readenv=1\n",
            "session required pam_env.so user_readenv=0\n",
            "session required pam_env.so user_readenv=yes\n",
            "session required pam_env.so user_readenv=1 user_readenv=0\n",
            // `session include` takes the session lines only.
            "auth required pam_env.so user_readenv=1\n",
        ] {
            assert!(sudo(off).is_empty(), "{off}");
        }
        // An auth line too, through @include.
        let auth = env_ids(
            &[
                (
                    "common-auth",
                    &format!("auth optional pam_env.so user_readenv=1\n{COMMON}"),
                ),
                ("su", twofold),
            ],
            "su",
        );
        assert_eq!(auth.len(), 1, "{auth:?}");
        // Without twofold in the stack, not doctor's business.
        let plain = env_ids(
            &[(
                "login",
                "auth required pam_unix.so\nsession required pam_env.so user_readenv=1\n",
            )],
            "login",
        );
        assert!(plain.is_empty(), "{plain:?}");
    }
}
