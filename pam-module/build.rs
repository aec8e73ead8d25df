//! Link settings for the cdylib (`pam_twofold.so`) only; the rlib and the
//! test binaries that link it are untouched.
//!
//! 1. exports.map restricts the .so's dynamic symbol table to the pam_sm_*
//!    entry points.
//! 2. The unwinder is linked in statically, so the .so does not need
//!    libgcc_s.so.1 (issue 5). A C host (sshd, sudo, su, a screen locker)
//!    does not load libgcc_s, so a NEEDED libgcc_s made every login's dlopen
//!    of the module load and map it as well: ~185 µs of CPU per
//!    dlopen+dlclose instead of ~60 µs. The module still needs an unwinder:
//!    its entry points catch panics (`catch_unwind`), because a panic must
//!    fail the login, never abort the host (`panic = "abort"` is not an
//!    option: a screen locker that aborts may unlock the screen).
//!
//! How 2 works: std's `unwind` crate asks for `-lgcc_s` (dynamic) after all
//! rlibs, and cargo puts cdylib link args after that. An archive listed
//! there normally adds nothing: its members are only pulled in for symbols
//! still undefined, and libgcc_s already defines the `_Unwind_*` ones.
//! `--whole-archive` makes the linker take every member of libgcc_eh.a (the
//! gcc-12 static unwinder that crt-static Rust programs link; gcc's driver
//! finds it in its own library directory) as an object file. Definitions
//! from object files win over a shared library's, so nothing binds to
//! libgcc_s, and `--as-needed` (which rustc passes) leaves it out of
//! DT_NEEDED: rust-lld decides that after symbol resolution. (ld.bfd could
//! not link this .so anyway: it refuses rustc's version script next to
//! exports.map.) `--gc-sections` drops the members nothing uses, and
//! exports.map's `local: *` keeps the unwinder's symbols out of the dynamic
//! table. The static unwinder finds unwind tables with `_dl_find_object`,
//! so the .so needs glibc 2.35 (Debian 12 has 2.36).
//! tests/tests/module_unwinder.rs checks all of this on the built .so: no
//! libgcc_s in NEEDED, `_Unwind_*` defined locally, and a panic inside the
//! module caught in a C host that never loads libgcc_s.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rerun-if-changed=exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/exports.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--push-state,-Bstatic,--whole-archive,-lgcc_eh,--pop-state"
    );
}
