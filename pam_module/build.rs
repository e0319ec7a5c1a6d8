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
//! (`-z pack-relative-relocs` is left out on purpose: a module linked with
//! it does not load with a glibc older than 2.36, such as RHEL 9's.)
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
