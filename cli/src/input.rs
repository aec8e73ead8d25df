//! Reading codes from the person: the terminal with echo off, or stdin.

use crate::error::CliError;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use twofold_proto::Secret;
use zeroize::Zeroize;

/// Where codes typed by the person come from.
pub trait CodeSource {
    /// Shows `prompt` and reads one line; `None` when the input has ended.
    fn read_code(&mut self, prompt: &str) -> Result<Option<Secret>, CliError>;
}

/// Reads codes from `/dev/tty` with echo off when stdin is a terminal, else
/// one line at a time from stdin (prompts then go to stderr).
#[derive(Debug, Default)]
pub struct Terminal {
    tty: Option<File>,
}

impl CodeSource for Terminal {
    fn read_code(&mut self, prompt: &str) -> Result<Option<Secret>, CliError> {
        // SAFETY: isatty only inspects the descriptor.
        let interactive = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
        if !interactive {
            eprint!("{prompt}");
            let mut line = String::new();
            let n = io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(CliError::io("reading the code from stdin"))?;
            eprintln!();
            return Ok((n > 0).then(|| take_line(line)));
        }
        let mut tty = match self.tty.take() {
            Some(t) => t,
            None => match OpenOptions::new().read(true).write(true).open("/dev/tty") {
                Ok(t) => t,
                // Standard input is a terminal, but not the controlling one
                // (or there is none: `su - user -c ...`, `setsid`): read
                // from standard input itself, echo off all the same.
                Err(_) => stdin_terminal()?,
            },
        };
        let read = read_hidden(&mut tty, prompt)
            .map_err(CliError::io("reading the code from the terminal"));
        // Kept open: the signal handler restores settings on this descriptor.
        self.tty = Some(tty);
        read
    }
}

/// Standard input (a terminal) as a file to read a hidden line from; the
/// prompt still goes to it, as it does to `/dev/tty`.
fn stdin_terminal() -> Result<File, CliError> {
    use std::os::fd::AsFd;
    let fd = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(CliError::io("reading the code from standard input"))?;
    Ok(File::from(fd))
}

/// Moves a raw line into a [`Secret`], dropping the line ending, and wipes the original.
fn take_line(mut line: String) -> Secret {
    let trimmed = Secret::from(line.trim_end_matches(['\n', '\r']));
    line.zeroize();
    trimmed
}

/// The terminal settings to put back if a signal ends the process mid-read.
static SAVED: OnceLock<(libc::c_int, libc::termios)> = OnceLock::new();

extern "C" fn restore_and_reraise(sig: libc::c_int) {
    if let Some((fd, saved)) = SAVED.get() {
        // SAFETY: tcsetattr, signal and raise are async-signal-safe.
        unsafe {
            libc::tcsetattr(*fd, libc::TCSANOW, saved);
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Restores the terminal when a read ends, however it ends.
struct EchoOff<'a> {
    fd: libc::c_int,
    saved: &'a libc::termios,
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: fd is open for the guard's lifetime; saved came from tcgetattr.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, self.saved) };
    }
}

fn read_hidden(tty: &mut File, prompt: &str) -> io::Result<Option<Secret>> {
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain old data and tcgetattr fills it.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a valid terminal descriptor; original is writable.
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let saved = &SAVED
        .get_or_init(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                // SAFETY: the handler only calls async-signal-safe functions.
                unsafe {
                    libc::signal(sig, restore_and_reraise as *const () as libc::sighandler_t)
                };
            }
            (fd, original)
        })
        .1;
    let mut quiet = original;
    quiet.c_lflag &= !libc::ECHO;
    // ECHONL still moves the cursor to a new line when Enter is pressed.
    quiet.c_lflag |= libc::ECHONL;
    if tty
        .write_all(prompt.as_bytes())
        .and_then(|()| tty.flush())
        .is_err()
    {
        // A terminal opened for reading only (standard input): say it on
        // standard error instead.
        eprint!("{prompt}");
    }
    let _guard = EchoOff { fd, saved };
    // SAFETY: fd is valid; quiet is a complete termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut bytes = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    let ended = loop {
        match tty.read(&mut byte) {
            Ok(0) => break bytes.is_empty(),
            Ok(_) if byte[0] == b'\n' => break false,
            Ok(_) => bytes.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                bytes.zeroize();
                return Err(e);
            }
        }
        if bytes.len() > 1024 {
            break false;
        }
    };
    byte.zeroize();
    if ended {
        return Ok(None);
    }
    let text = String::from_utf8(bytes).unwrap_or_else(|e| {
        let mut raw = e.into_bytes();
        raw.zeroize();
        String::new()
    });
    Ok(Some(take_line(text)))
}

/// A code from an authenticator app: 6 to 8 digits. Spaces are dropped, as
/// apps show codes as `123 456`. The error never repeats what was typed.
pub fn totp_code(raw: &Secret) -> Result<Secret, CliError> {
    let code: String = raw
        .expose()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let code = Secret::new(code);
    if !(6..=8).contains(&code.len()) || !code.expose().bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::Usage(
            "that is not a code from an authenticator app (6 to 8 digits)".into(),
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_code_accepts_digits_with_spaces() {
        assert_eq!(totp_code(&"123 456".into()).unwrap().expose(), "123456");
        assert_eq!(
            totp_code(&" 12345678 ".into()).unwrap().expose(),
            "12345678"
        );
    }

    #[test]
    fn totp_code_refuses_bad_input_without_echoing_it() {
        for bad in [
            "",
            "12345",
            "123456789",
            "12345a",
            "１２３４５６",
            "123-456",
        ] {
            let err = totp_code(&bad.into()).unwrap_err();
            assert_eq!(err.exit().code(), 2, "{bad:?}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{bad:?} echoed");
            }
        }
    }

    #[test]
    fn line_endings_are_dropped() {
        assert_eq!(take_line("123456\r\n".into()).expose(), "123456");
        assert_eq!(take_line("123456".into()).expose(), "123456");
    }
}
