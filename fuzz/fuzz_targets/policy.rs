//! Fuzzes the policy parser and validator: no input may panic, hang or
//! allocate without bound. Seeds: fuzz/corpus/policy (the examples and the
//! broken policies of the test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    curfew_policy::fuzzing::policy(data);
});
