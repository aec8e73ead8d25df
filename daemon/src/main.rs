//! `twofoldd [--config FILE]`: parses flags, loads the configuration, binds
//! the socket and hands over to the library.

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use twofold_config::{Config, DEFAULT_CONFIG};
use twofold_daemon::{bind, ConfigSource, Daemon, Logger, Reload, Shutdown, SystemClock};

const USAGE: &str = "usage: twofoldd [--config FILE]\n\
       twofoldd [--config FILE] --migrate-from-sqlite [--apply]\n\
\n\
  -c, --config FILE   configuration file (default /etc/twofold/twofold.toml;\n\
                      if that file is absent, built-in defaults are used)\n\
      --migrate-from-sqlite  move this host's SQLite state ([daemon]\n\
                      database) into the PostgreSQL database of [store] (twofoldd stopped,\n\
                      same master key), once per host; without --apply a dry run\n\
      --apply         with --migrate-from-sqlite, write it\n\
  -h, --help          show this help\n\
  -V, --version       show the version\n\
\n\
SIGHUP reloads the configuration (a refused file keeps the running one);\n\
SIGTERM and SIGINT stop the daemon.\n";

/// Exit code for a bad command line or configuration.
const EXIT_USAGE: u8 = 2;

enum Args {
    Run(Option<PathBuf>),
    /// `--migrate-from-sqlite`: the configuration and `--apply`.
    Migrate(Option<PathBuf>, bool),
    Help,
    Version,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = None;
    let (mut migrate, mut apply) = (false, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--migrate-from-sqlite" => migrate = true,
            "--apply" => apply = true,
            "-h" | "--help" => return Ok(Args::Help),
            "-V" | "--version" => return Ok(Args::Version),
            "-c" | "--config" => {
                let v = args.next().ok_or_else(|| format!("{a} needs a file"))?;
                config = Some(PathBuf::from(v));
            }
            other => match other.strip_prefix("--config=") {
                Some(v) => config = Some(PathBuf::from(v)),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    if apply && !migrate {
        return Err("--apply goes with --migrate-from-sqlite".into());
    }
    if migrate {
        return Ok(Args::Migrate(config, apply));
    }
    Ok(Args::Run(config))
}

/// The configuration and where it came from (read again on SIGHUP).
fn load_config(explicit: Option<PathBuf>) -> Result<(Config, ConfigSource), String> {
    let source = ConfigSource::resolve(explicit);
    if let ConfigSource::Defaults(_) = source {
        say(format_args!(
            "twofoldd: {DEFAULT_CONFIG} not found; running on built-in defaults"
        ));
    }
    match source.load() {
        Ok(c) => Ok((c, source)),
        Err(e) => {
            let origin = source.origin();
            let text = match &source {
                ConfigSource::File(path) => std::fs::read_to_string(path).ok(),
                ConfigSource::Defaults(_) => None,
            };
            let now = twofold_daemon::Clock::now(&SystemClock);
            twofold_daemon::audit::syslog_config_rejected(
                &origin,
                text.as_deref(),
                &e.to_string(),
                now,
            );
            Err(e.to_string())
        }
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in every thread and handles them on
/// one dedicated thread: TERM and INT trigger a shutdown, HUP asks for a
/// reload of the configuration (coalesced, run by the daemon's reload
/// thread, so this one is never held up). Must run before any other
/// thread starts.
fn handle_signals(shutdown: Shutdown, reload: Reload) -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set.thread_block()
        .map_err(std::io::Error::from)
        .context("cannot block signals")?;
    std::thread::Builder::new()
        .name("twofoldd-signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => {
                    reload.request();
                    say(format_args!(
                        "twofoldd: signal 1 received; reloading the configuration"
                    ));
                }
                Ok(sig) => {
                    // Shut down first, then say so without `eprintln!`,
                    // which panics on a closed or broken stderr: this
                    // thread must never die, or every later SIGTERM would
                    // be ignored.
                    shutdown.trigger();
                    say(format_args!(
                        "twofoldd: signal {} received; shutting down",
                        sig as i32
                    ));
                }
                Err(_) => {}
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Points standard output at /dev/null while serving: twofoldd says
/// everything on stderr and in syslog, and a library that prints on
/// stdout (ctap-hid-fido2 does, for a getRetries field of CTAP 2.1 it does
/// not know) must not write into the journal or a closed pipe. Failing to
/// open /dev/null leaves stdout as it was.
fn silence_stdout() {
    // SAFETY: plain open/dup2/close on descriptors this function owns;
    // called before any other thread starts.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, libc::STDOUT_FILENO);
            if null != libc::STDOUT_FILENO {
                libc::close(null);
            }
        }
    }
}

/// Writes a line to standard error; a closed or broken stderr is ignored
/// (`eprintln!` would panic, and a panic here must not stop the daemon).
fn say(line: std::fmt::Arguments<'_>) {
    let text = format!("{line}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
}

fn serve(config: Config, source: ConfigSource) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let reload = Reload::new();
    handle_signals(shutdown.clone(), reload.clone())?;
    let socket = config.daemon.socket.clone();
    let origin = source.origin();
    let daemon =
        Daemon::open_with_origin(config, Arc::new(SystemClock), Logger::stderr(), &origin)?
            .reload_on(reload, source);
    let listener =
        bind(&socket).with_context(|| format!("cannot listen on {}", socket.display()))?;
    say(format_args!("twofoldd: listening on {}", socket.display()));
    twofold_daemon::notify::ready();
    let result = daemon.serve(listener, shutdown);
    let _ = std::fs::remove_file(&socket);
    result?;
    Ok(())
}

fn main() -> ExitCode {
    let explicit = match parse_args(std::env::args().skip(1)) {
        Ok(Args::Run(c)) => c,
        Ok(Args::Migrate(c, apply)) => return migrate(c, apply),
        Ok(Args::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Args::Version) => {
            println!("twofoldd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say(format_args!("twofoldd: {e}\n{USAGE}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (config, source) = match load_config(explicit) {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("twofoldd: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    limit_malloc_arenas();
    silence_stdout();
    match serve(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("twofoldd: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn migrate(explicit: Option<PathBuf>, apply: bool) -> ExitCode {
    let (config, _) = match load_config(explicit) {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("twofoldd: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let now = twofold_daemon::Clock::now(&SystemClock);
    match twofold_daemon::migrate_from_sqlite(&config, now, apply) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(format_args!("twofoldd: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// and freed memory stays in them: with a worker per connection that grew
/// RSS with concurrency. Two arenas are plenty for a daemon whose work is
/// mostly waiting on sockets, with one SQLite transaction at a time.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
