//! Link options for `libpam_curfew.so`.
//!
//! `-z nodelete`: libpam `dlclose`s every module at `pam_end`. A program
//! that runs many logins in one process (a display manager, `login` under
//! pam_wrapper tests, any PAM client library) would otherwise map, relocate
//! and initialise the module again for each one (about 1 ms), and the
//! module's process-wide caches (the parsed policy, the open store; see
//! `system::Host`) would be lost each time, leaking what they held. Marked
//! non-deletable, the module stays loaded after its first `pam_end`.
//!
//! The unwinder linked in (`libgcc_eh.a`), not `libgcc_s.so.1`: Rust's
//! standard library unwinds panics with libgcc's unwinder, which it links
//! as the shared `libgcc_s.so.1`. Loading that library into a login costs
//! about 0.18 ms, almost all of it its constructor `__cpu_indicator_init`
//! probing the CPU with `cpuid` (each one a VM exit on a virtual machine),
//! for a library that sshd and login do not otherwise load. The static
//! archive is the same unwinder (GCC's `-static-libgcc`); panics are still
//! caught at the C boundary (`ffi::dispatch`), and since they never cross
//! into C frames, this copy never meets another process-wide one. It is
//! used only when building for the machine's own Linux/glibc target with a
//! `cc` that has the archive; otherwise the module links `libgcc_s` as
//! before (and says so in a warning). Measured in BENCHMARKS.md.
//!
//! (`-z pack-relative-relocs` is left out on purpose: a module linked with
//! it does not load with a glibc older than 2.36, such as RHEL 9's.)
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
    match static_unwinder() {
        Ok(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
        Err(why) => println!("cargo:warning=pam_curfew links libgcc_s.so.1: {why}"),
    }
}

/// The directory of `libgcc_eh.a`, when this build can link it.
fn static_unwinder() -> Result<PathBuf, String> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return Err("not a Linux/glibc target".into());
    }
    if var("TARGET") != var("HOST") {
        return Err("cross-compiling: the host's libgcc_eh.a would not fit".into());
    }
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .map_err(|e| format!("cc -print-file-name=libgcc_eh.a: {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // cc prints the bare name back when it has no such file.
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return Err("cc has no libgcc_eh.a".into());
    }
    println!("cargo:rerun-if-changed={}", path.display());
    path.parent()
        .map(PathBuf::from)
        .ok_or_else(|| "libgcc_eh.a has no directory".into())
}
