//! Fuzzes the token hook's request parsing and decision: no body may panic,
//! hang or allocate without bound. Seeds: fuzz/corpus/token_hook.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = curfew_oidc::fuzzing::token_hook(data);
});
