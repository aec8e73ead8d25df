//! `scripts/demo`: a real login through libpam against a throwaway twofoldd.
//!
//! Starts the built `twofoldd` on a temp socket with a temp SQLite database
//! and master key (everything else on the embedded defaults), enrolls the
//! user running the demo with the built `twofold` CLI, then logs in through
//! `pam_start_confdir` with a temp PAM config naming the built module. No
//! root, nothing in /etc. With `--auto` the codes are computed by the
//! harness's own TOTP (not the daemon's) and typed for you.

use std::process::{Command, ExitCode, Stdio};
use twofold_cli::{own_user_name, CodeSource, Terminal};
use twofold_tests::daemon::{bin_path, config_in, DaemonProcess};
use twofold_tests::otp::{base32_decode, totp_sha1};
use twofold_tests::pam::*;
use twofold_tests::PamConfig;

const SERVICE: &str = "twofold-demo";

fn main() -> ExitCode {
    let auto = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--auto") => true,
        Some(_) => {
            eprintln!("usage: twofold-demo [--auto]");
            return ExitCode::from(2);
        }
    };
    match run(auto) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(auto: bool) -> Result<(), String> {
    let user = own_user_name().ok_or("this uid has no passwd entry")?;
    let dir = tempfile::Builder::new()
        .prefix("twofold-demo-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let config = config_in(dir.path());
    say(&format!(
        "Starting twofoldd in {} (socket, SQLite database and master key there; embedded defaults otherwise).",
        dir.path().display()
    ));
    let daemon = DaemonProcess::start(dir.path(), &config);
    let socket = config.daemon.socket.display().to_string();

    let enrolled = if auto {
        Some(enroll_auto(&socket, &user)?)
    } else {
        enroll_interactive(&socket, &user)?;
        None
    };

    let pam = PamConfig::new().map_err(|e| format!("PAM config dir: {e}"))?;
    let module_args = [format!("socket={socket}")];
    pam.twofold(SERVICE, &[module_args[0].as_str()])
        .map_err(|e| format!("PAM service file: {e}"))?;
    say(&format!(
        "PAM service {SERVICE} in {}:\n    {}",
        pam.dir().display(),
        std::fs::read_to_string(pam.dir().join(SERVICE))
            .unwrap_or_default()
            .trim()
    ));

    let result = match &enrolled {
        Some(e) => logins_auto(&pam, &user, e),
        None => login_interactive(&pam, &user),
    };
    let status = Command::new(bin_path("twofold"))
        .args(["--socket", &socket, "status"])
        .status();
    if let Ok(s) = status {
        if !s.success() {
            say("(twofold status failed)");
        }
    }
    let exit = daemon_log_and_stop(daemon);
    result.and(exit)
}

fn say(text: &str) {
    println!("\n== {text}");
}

fn enroll_interactive(socket: &str, user: &str) -> Result<(), String> {
    say(&format!(
        "Enrolling {user}: scan the QR code with your authenticator app, then type the code it shows."
    ));
    let status = Command::new(bin_path("twofold"))
        .args(["--socket", socket, "enroll", "totp"])
        .status()
        .map_err(|e| format!("running twofold: {e}"))?;
    if !status.success() {
        return Err(format!("enrollment did not complete ({status})"));
    }
    Ok(())
}

/// What the automatic enrollment leaves the demo to type later.
struct Enrolled {
    secret: String,
    backup_codes: Vec<String>,
}

/// Enrolls through the CLI's script interface.
fn enroll_auto(socket: &str, user: &str) -> Result<Enrolled, String> {
    say(&format!(
        "Enrolling {user}: twofold enroll totp --no-confirm --json"
    ));
    let out = cli(socket, &["enroll", "totp", "--no-confirm", "--json"])?;
    let pending: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("enroll output: {e}"))?;
    let secret = pending["secret"]
        .as_str()
        .ok_or("no secret in output")?
        .to_owned();
    println!(
        "   otpauth URI: {}",
        pending["uri"].as_str().unwrap_or_default()
    );
    let code = code_at(&secret, now())?;
    say(&format!(
        "Confirming with the current code {code}: twofold enroll confirm --code {code}"
    ));
    let out = cli(socket, &["enroll", "confirm", "--json", "--code", &code])?;
    let codes: Vec<String> =
        serde_json::from_str(&out).map_err(|e| format!("confirm output: {e}"))?;
    println!("   {} backup codes issued, shown once.", codes.len());
    Ok(Enrolled {
        secret,
        backup_codes: codes,
    })
}

fn cli(socket: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin_path("twofold"))
        .args(["--socket", socket])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running twofold: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "twofold {} failed ({})",
            args.join(" "),
            out.status
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("twofold output: {e}"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn code_at(secret_b32: &str, t: u64) -> Result<String, String> {
    let secret = base32_decode(secret_b32).ok_or("secret is not base32")?;
    Ok(totp_sha1(&secret, t, 6))
}

fn login(pam: &PamConfig, user: &str, codes: &[&str]) -> (PamCode, Transcript) {
    let conv = answers(codes);
    match PamLogin::new(pam.dir(), SERVICE, user).and_then(|l| l.tty("demo").authenticate(conv)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twofold-demo: libpam: {e}");
            (PAM_SYSTEM_ERR, Transcript::default())
        }
    }
}

/// The login, a replay of its code, and a backup code used twice.
fn logins_auto(pam: &PamConfig, user: &str, enrolled: &Enrolled) -> Result<(), String> {
    // The confirmation spent the current time step; the next step's code is
    // inside the ±1 step window, so the demo need not wait for it.
    let code = code_at(&enrolled.secret, now() + 30)?;
    say(&format!(
        "Logging in as {user} through libpam, typing {code}"
    ));
    let (got, t) = login(pam, user, &[&code]);
    show(&t);
    report("login with a fresh code", got, PAM_SUCCESS)?;

    say(&format!("The same code {code} again (replay)"));
    let (got, t) = login(pam, user, &[&code, &code, &code]);
    show(&t);
    report("replayed code", got, PAM_AUTH_ERR)?;

    let backup = enrolled
        .backup_codes
        .first()
        .ok_or("no backup codes were issued")?;
    say(&format!("A backup code, {backup}"));
    let (got, t) = login(pam, user, &[backup]);
    show(&t);
    report("backup code", got, PAM_SUCCESS)?;

    say(&format!("The same backup code {backup} again"));
    let (got, t) = login(pam, user, &[backup, backup, backup]);
    show(&t);
    report("used backup code", got, PAM_AUTH_ERR)
}

fn show(t: &Transcript) {
    for m in &t.messages {
        println!("   [{:?}] {}", m.style, m.text);
    }
}

fn login_interactive(pam: &PamConfig, user: &str) -> Result<(), String> {
    say("Logging in through libpam. Wait for your app to show a new code (the one you confirmed with is spent).");
    let mut term = Terminal::default();
    let mut shown = 0;
    let conv = Conversation::new().respond_with(move |t: &Transcript| {
        // Show what the daemon said since the last prompt (e.g. "Invalid
        // verification code."), then the prompt itself.
        let (last, earlier) = t.messages[shown..].split_last().unzip();
        for m in earlier.unwrap_or_default() {
            eprintln!("{}", m.text);
        }
        shown = t.messages.len();
        let prompt = last
            .map_or("Verification code: ", |m| m.text.as_str())
            .to_owned();
        match term.read_code(&prompt) {
            Ok(Some(code)) => Reply::Answer(code.expose().to_owned()),
            _ => Reply::ConvErr,
        }
    });
    let (code, _) = PamLogin::new(pam.dir(), SERVICE, user)
        .and_then(|l| l.tty("demo").authenticate(conv))
        .map_err(|e| format!("libpam: {e}"))?;
    report("login", code, PAM_SUCCESS)
}

fn report(what: &str, got: PamCode, want: PamCode) -> Result<(), String> {
    println!("   {what}: pam_authenticate returned {got:?}");
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, got {got:?}"))
    }
}

fn daemon_log_and_stop(daemon: DaemonProcess) -> Result<(), String> {
    let log = daemon.log();
    let status = daemon.terminate();
    say("What twofoldd logged (never a code or secret):");
    for line in log.lines() {
        println!("   {line}");
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!("twofoldd exited with {status}"))
    }
}
