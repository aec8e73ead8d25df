//! SIGHUP reloads the built `twofoldd`'s configuration file (issue 11):
//! a changed policy decides the next login, a refused file keeps the
//! running one and says why as `twofold config check` does, a burst of
//! signals neither stops the daemon nor piles up threads, a login in
//! progress finishes under the configuration it started with, and the
//! settings fixed at start are reported, not applied. Real process, real
//! `kill(2)`, logins over its socket.

use std::path::Path;
use std::time::{Duration, Instant};
use twofold_config::{Config, Unenrolled};
use twofold_proto::{AuditRecord, Client, Request, Response, Secret};
use twofold_tests::daemon::{bin_path, config_in, open_tempdir, DaemonProcess};

/// What every reload logs exactly once, whatever its outcome, as its
/// last line.
const RELOADED: &str = "twofoldd: config_reload result=";

/// A configuration in `dir` whose failures never lock anyone out here
/// (the tests count tries, not locks).
fn config(dir: &Path, edit: impl FnOnce(&mut Config)) -> Config {
    let mut c = config_in(dir);
    c.rate_limit.source_failures = 100;
    c.rate_limit.user_failures = 100;
    edit(&mut c);
    c
}

/// Sends `sig` to the daemon.
fn signal(d: &DaemonProcess, sig: libc::c_int) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, sig) }, 0, "kill");
}

/// The daemon's log up to its last complete line.
fn log(d: &DaemonProcess) -> String {
    let mut text = d.log();
    text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    text
}

/// Complete lines of the daemon's log holding `needle`.
fn count(d: &DaemonProcess, needle: &str) -> usize {
    log(d).lines().filter(|l| l.contains(needle)).count()
}

/// Waits (at most 20 s) until the log holds `n` lines with `needle`.
fn wait_for(d: &DaemonProcess, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(d, needle) < n {
        assert!(
            Instant::now() < deadline,
            "no {n} lines with {needle:?} within 20 s:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `text` as the daemon's configuration file, sends SIGHUP and
/// waits for that reload to be logged; returns the log lines it added.
fn reload_with(d: &DaemonProcess, text: &str) -> String {
    std::fs::write(&d.config_file, text).expect("write config");
    hup_and_wait(d)
}

/// Sends SIGHUP and waits for the reload it asks for; returns the log
/// lines it added.
fn hup_and_wait(d: &DaemonProcess) -> String {
    let before = log(d).lines().count();
    let done = count(d, RELOADED);
    signal(d, libc::SIGHUP);
    wait_for(d, RELOADED, done + 1);
    log(d).lines().skip(before).collect::<Vec<_>>().join("\n")
}

/// A login of `user` for `service` begun as root: the connection and the
/// daemon's first answer.
fn begin(socket: &Path, user: &str, service: &str) -> (Client, Response) {
    let mut c = Client::connect(socket, Duration::from_secs(10), "reload-test").expect("connect");
    let first = c
        .call(&Request::Begin {
            user: user.into(),
            service: service.into(),
            rhost: None,
            tty: Some("pts/0".into()),
            ruser: Some("root".into()),
            ssh_auth_info: None,
        })
        .expect("begin");
    (c, first)
}

/// The first answer the daemon gives a new login.
fn decision(socket: &Path, user: &str, service: &str) -> Response {
    begin(socket, user, service).1
}

fn answer(c: &mut Client, text: &str) -> Response {
    c.call(&Request::Answer {
        text: Secret::from(text),
    })
    .expect("answer")
}

fn is_prompt(r: &Response) -> bool {
    matches!(r, Response::Prompt { .. })
}

/// The audit rows of `event`.
fn audit(d: &DaemonProcess, event: &str) -> Vec<AuditRecord> {
    match d.call(&Request::AuditQuery {
        user: None,
        event: Some(event.into()),
        service: None,
        since: None,
        until: None,
        after_id: None,
        limit: None,
    }) {
        Response::AuditRecords { records, .. } => records,
        other => panic!("audit query {event}: {other:?}"),
    }
}

/// `twofold audit verify` over the socket: the chain holds.
fn assert_chain_verifies(d: &DaemonProcess) {
    match d.call(&Request::AuditVerify) {
        Response::AuditVerified(r) => assert!(r.broken.is_none() && r.rows > 0, "{r:?}"),
        other => panic!("audit verify: {other:?}"),
    }
}

/// What `twofold config check FILE` says of `file` on standard error,
/// without its `twofold: ` prefix (it must refuse the file).
fn config_check_error(file: &Path) -> String {
    let out = std::process::Command::new(bin_path("twofold"))
        .args(["config", "check", "--file"])
        .arg(file)
        .output()
        .expect("run twofold config check");
    assert!(!out.status.success(), "config check accepted {file:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    err.trim_end()
        .strip_prefix("twofold: ")
        .unwrap_or_else(|| panic!("config check said {err:?}"))
        .to_owned()
}

#[test]
fn sighup_with_a_changed_policy_changes_the_next_logins_decision() {
    let dir = open_tempdir();
    let allow = config(dir.path(), |_| {});
    let socket = allow.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &allow);
    // Unenrolled and `allow`: twofold has no say.
    assert_eq!(decision(&socket, "carol", "sudo"), Response::Ignore);

    let deny = config(dir.path(), |c| c.policy.unenrolled = Unenrolled::Deny);
    let added = reload_with(&d, &deny.to_toml());
    assert!(
        added.contains("config_reload result=applied")
            && added.contains("changed=policy.unenrolled"),
        "{added}"
    );
    let pid = d.pid();
    let next = decision(&socket, "carol", "sudo");
    assert!(is_prompt(&next), "after the reload: {next:?}");

    // And back: the file decides again, in the same process.
    reload_with(&d, &allow.to_toml());
    assert_eq!(decision(&socket, "carol", "sudo"), Response::Ignore);
    assert_eq!(d.pid(), pid);

    let rows = audit(&d, "config_reloaded");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let file = d.config_file.display().to_string();
    for r in &rows {
        assert!(
            r.detail.contains(&format!("source={file}"))
                && r.detail.contains("changed=policy.unenrolled")
                && r.detail.contains("sha256="),
            "{r:?}"
        );
    }
    assert_chain_verifies(&d);
}

#[test]
fn a_refused_file_keeps_the_running_policy_and_says_why_as_config_check_does() {
    let dir = open_tempdir();
    let deny = config(dir.path(), |c| c.policy.unenrolled = Unenrolled::Deny);
    let socket = deny.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &deny);
    assert!(is_prompt(&decision(&socket, "carol", "sudo")));

    // Each would let carol through if it were applied.
    let allow = config(dir.path(), |_| {}).to_toml();
    let broken = [
        // An unknown key, on the last line.
        (format!("{allow}bogus = 1\n"), "bogus"),
        // A value out of range.
        (
            allow.replace("max_tries = 3", "max_tries = 0"),
            "login.max_tries",
        ),
        // Not TOML.
        (format!("{allow}[policy\n"), ""),
    ];
    let file = d.config_file.clone();
    for (i, (text, key)) in broken.iter().enumerate() {
        std::fs::write(&file, text).unwrap();
        let said = config_check_error(&file);
        assert!(said.starts_with(&format!("{}:", file.display())), "{said}");
        assert!(said.contains(key), "{said}");
        let added = hup_and_wait(&d);
        assert!(
            added.contains("config_reload result=refused")
                && added.contains("kept=\"the running configuration\""),
            "{added}"
        );
        // Word for word what `config check` printed (file, line, key),
        // escaped as every log value is, to stay on one line.
        let escaped = said.escape_debug().to_string();
        assert!(added.contains(&escaped), "log lacks {escaped}:\n{added}");
        let next = decision(&socket, "carol", "sudo");
        assert!(is_prompt(&next), "refused file {i} was applied: {next:?}");
    }
    // A file that cannot be read (gone) is refused too: the defaults it
    // would fall back to are not put in force.
    std::fs::remove_file(&file).unwrap();
    let added = hup_and_wait(&d);
    assert!(
        added.contains("config_reload result=refused") && added.contains("No such file"),
        "{added}"
    );
    assert!(is_prompt(&decision(&socket, "carol", "sudo")));

    let rows = audit(&d, "config_reload_refused");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows[0].detail.contains(&format!(
            "{}:{}:",
            file.display(),
            allow.lines().count() + 1
        )),
        "{:?}",
        rows[0]
    );
    assert!(audit(&d, "config_reloaded").is_empty());
    assert_chain_verifies(&d);
}

/// The names of the daemon's threads.
fn threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// Threads that are not connection workers (those start with load).
fn fixed_threads(pid: u32) -> Vec<String> {
    threads(pid)
        .into_iter()
        .filter(|n| !n.starts_with("twofoldd-worker"))
        .collect()
}

/// Issue 11: SIGHUP killed twofoldd (only TERM and INT were handled) and
/// left its socket behind.
#[test]
fn regression_sighup_killed_the_daemon_a_burst_of_twenty_neither_stops_it_nor_piles_up_threads() {
    let dir = open_tempdir();
    let allow = config(dir.path(), |_| {});
    let socket = allow.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &allow);
    let pid = d.pid();
    // A thread names itself once it runs: under load the socket can answer
    // before the reload thread (or the outbox's) has, so wait for it.
    let named = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fixed_threads(pid)
        .iter()
        .filter(|n| *n == "twofoldd")
        .count()
        > 1
        && std::time::Instant::now() < named
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let before = fixed_threads(pid);
    assert_eq!(
        before.iter().filter(|n| *n == "twofoldd-reload").count(),
        1,
        "{before:?}"
    );

    let deny = config(dir.path(), |c| c.policy.unenrolled = Unenrolled::Deny);
    std::fs::write(&d.config_file, deny.to_toml()).unwrap();
    for _ in 0..20 {
        signal(&d, libc::SIGHUP);
        assert_eq!(fixed_threads(pid), before, "a thread per signal");
    }
    wait_for(&d, "config_reload result=applied", 1);
    // Still the same process, serving on the same socket file.
    assert!(std::fs::symlink_metadata(&socket).is_ok(), "socket gone");
    assert!(matches!(
        d.call(&Request::Status { user: None }),
        Response::Status(_)
    ));
    assert_eq!(d.pid(), pid);
    assert!(is_prompt(&decision(&socket, "carol", "sudo")));
    assert_eq!(fixed_threads(pid), before);
    // Coalesced: never more reloads than signals.
    let reloads = count(&d, RELOADED);
    assert!((1..=20).contains(&reloads), "{reloads} reloads");

    // And the next signal still reloads.
    reload_with(&d, &allow.to_toml());
    assert_eq!(decision(&socket, "carol", "sudo"), Response::Ignore);
    assert!(
        !d.log().contains("shutting down"),
        "SIGHUP stopped it:\n{}",
        d.log()
    );
}

#[test]
fn a_login_in_progress_finishes_under_the_configuration_it_started_with() {
    let dir = open_tempdir();
    let three = config(dir.path(), |c| {
        c.policy.unenrolled = Unenrolled::Deny;
        c.login.max_tries = 3;
    });
    let socket = three.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &three);
    let (mut held, first) = begin(&socket, "carol", "sudo");
    assert_eq!(
        first,
        Response::Prompt {
            text: "Verification code: ".into(),
            echo: false
        }
    );

    let one = config(dir.path(), |c| {
        c.policy.unenrolled = Unenrolled::Deny;
        c.login.max_tries = 1;
        c.login.prompt = "New code: ".into();
    });
    let added = reload_with(&d, &one.to_toml());
    assert!(added.contains("result=applied"), "{added}");

    // A new login runs under the new file: one try, the new prompt.
    let (mut fresh, prompt) = begin(&socket, "carol", "sudo");
    assert_eq!(
        prompt,
        Response::Prompt {
            text: "New code: ".into(),
            echo: false
        }
    );
    assert!(matches!(
        answer(&mut fresh, "000000"),
        Response::Denied { .. }
    ));

    // The held one keeps three tries and its prompt.
    for _ in 0..2 {
        let r = answer(&mut held, "000000");
        assert!(matches!(r, Response::Error { .. }), "{r:?}");
        let again = held.call(&Request::Ack).expect("ack");
        assert_eq!(
            again,
            Response::Prompt {
                text: "Verification code: ".into(),
                echo: false
            }
        );
    }
    assert!(matches!(
        answer(&mut held, "000000"),
        Response::Denied { .. }
    ));
}

#[test]
fn settings_fixed_at_start_are_reported_and_not_applied() {
    let dir = open_tempdir();
    let running = config(dir.path(), |_| {});
    let socket = running.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &running);

    let moved = dir.path().join("moved.sock");
    let file = config(dir.path(), |c| {
        c.daemon.socket = moved.clone();
        c.daemon.max_connections = 8;
        c.policy.unenrolled = Unenrolled::Deny;
    });
    let added = reload_with(&d, &file.to_toml());
    assert!(
        added.contains("config_reload result=applied")
            && added.contains("changed=policy.unenrolled")
            && added.contains(
                "config_reload restart_needed=daemon.socket,daemon.max_connections \
                 kept=\"their running values: they apply only when twofoldd starts\""
            ),
        "{added}"
    );
    // The rest is in force; the socket stays where it was.
    assert!(is_prompt(&decision(&socket, "carol", "sudo")));
    assert!(!moved.exists(), "bound the new socket");

    let rows = audit(&d, "config_reloaded");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].detail.contains("changed=policy.unenrolled")
            && rows[0]
                .detail
                .contains("restart_needed=daemon.socket,daemon.max_connections"),
        "{:?}",
        rows[0]
    );
}

#[test]
fn each_request_on_a_connection_opened_before_a_reload_runs_under_the_new_file() {
    use twofold_tests::otp::oathtool;
    let dir = open_tempdir();
    let running = config(dir.path(), |_| {});
    let socket = running.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &running);
    let mut open = Client::connect(&socket, Duration::from_secs(10), "reload-test").unwrap();
    assert!(matches!(
        open.call(&Request::Status { user: None }).unwrap(),
        Response::Status(_)
    ));

    reload_with(
        &d,
        &config(dir.path(), |c| c.backup_codes.count = 4).to_toml(),
    );
    // Requests are authorized and answered under the configuration in
    // force when each arrives (so a reload that drops someone from
    // `admin_group` takes effect on a connection they hold).
    let pending = match open
        .call(&Request::TotpEnrollStart {
            user: Some("dave".into()),
            algorithm: None,
            digits: None,
        })
        .unwrap()
    {
        Response::TotpPending(p) => p,
        other => panic!("{other:?}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = oathtool(pending.secret.expose(), now);
    match open
        .call(&Request::TotpEnrollConfirm {
            user: Some("dave".into()),
            code: code.as_str().into(),
        })
        .unwrap()
    {
        Response::BackupCodes { codes } => assert_eq!(codes.len(), 4),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reload_moves_the_syslog_copy_to_the_socket_the_file_names() {
    use twofold_tests::daemon::SyslogSink;
    let dir = open_tempdir();
    // config_in turns the syslog copy off.
    let running = config(dir.path(), |_| {});
    let socket = running.daemon.socket.clone();
    let d = DaemonProcess::start(dir.path(), &running);
    let sink = SyslogSink::bind(&dir.path().join("syslog.sock"));
    reload_with(
        &d,
        &config(dir.path(), |c| c.audit.syslog_socket = sink.path.clone()).to_toml(),
    );
    assert_eq!(decision(&socket, "carol", "sudo"), Response::Ignore);
    let lines = sink.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("event=login_skipped") && l.contains("user=carol")),
        "{lines:?}"
    );
}
