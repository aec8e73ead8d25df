//! Profiles of twofoldd while a cell runs: `perf record` (where the CPU
//! time goes) and `strace -f -c -w` (which system calls the wall time waits
//! in, e.g. fdatasync; strace, because it follows the per-connection threads
//! the daemon starts after it attached, which `perf trace -p` does not). Run
//! after the measured cells, on fresh users, so the table is not perturbed
//! by the profilers.

use anyhow::{bail, Context};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which profiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `perf record -g` on cpu-clock: on-CPU time by function.
    Cpu,
    /// `strace -f -c -w`: wall time per system call, every thread.
    Syscalls,
}

/// A profiler attached to a process.
#[derive(Debug)]
pub struct Profiler {
    child: Child,
    kind: Kind,
    data: PathBuf,
    text: PathBuf,
}

/// Attaches `perf` or `strace` to `pid`; the result goes to `dir/name.{cpu,syscalls}.txt`.
pub fn start(kind: Kind, pid: u32, dir: &Path, name: &str) -> anyhow::Result<Profiler> {
    std::fs::create_dir_all(dir)?;
    let (suffix, args): (&str, Vec<String>) = match kind {
        Kind::Cpu => (
            "cpu",
            ["record", "-e", "cpu-clock", "-F", "4999", "-g", "-o"]
                .map(String::from)
                .to_vec(),
        ),
        Kind::Syscalls => (
            "syscalls",
            ["-f", "-c", "-w", "-o"].map(String::from).to_vec(),
        ),
    };
    let data = dir.join(format!("{name}.{suffix}.data"));
    let text = dir.join(format!("{name}.{suffix}.txt"));
    let out = if kind == Kind::Cpu { &data } else { &text };
    let program = if kind == Kind::Cpu { "perf" } else { "strace" };
    let child = Command::new(program)
        .args(&args)
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {program} (Debian: linux-perf, strace)"))?;
    // perf needs a moment to attach before the cell starts.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Profiler {
        child,
        kind,
        data,
        text,
    })
}

impl Profiler {
    /// Detaches (SIGINT, as Ctrl-C) and writes the text report.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
        let interrupted = status.signal() == Some(libc::SIGINT) || status.code() == Some(130);
        if !status.success() && !interrupted {
            bail!("perf ended with {status}");
        }
        if self.kind == Kind::Cpu {
            let mut text = Vec::new();
            for (sort, limit) in [("dso", "0.5"), ("dso,symbol", "0.7")] {
                let out = Command::new("perf")
                    .args([
                        "report",
                        "--stdio",
                        "--no-children",
                        "--percent-limit",
                        limit,
                    ])
                    .args(["--sort", sort, "-g", "none", "-i"])
                    .arg(&self.data)
                    .output()?;
                text.extend_from_slice(&out.stdout);
            }
            // The data stays beside the text, for `perf report -g -i`.
            std::fs::write(&self.text, text)?;
        }
        Ok(self.text)
    }
}
