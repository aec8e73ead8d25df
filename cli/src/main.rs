//! `twofold`: see the library for everything but the entry point.

fn main() -> std::process::ExitCode {
    twofold_cli::main()
}
