//! `twofold-stamp`: copies stdin to stdout, each chunk as it arrives on a
//! line of its own after its CLOCK_BOOTTIME time (`12.345 text`, newlines
//! shown as `\n`). The guest's scenarios read a PAM client's stderr through
//! it to time a prompt, which ends with no newline.

use std::io::{Read, Write};

fn boottime() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buf[..n]).replace('\n', "\\n");
        if writeln!(out, "{:.3} {text}", boottime())
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
