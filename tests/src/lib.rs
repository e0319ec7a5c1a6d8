//! End-to-end suites live in tests/tests/; this library holds their shared helpers.
#![forbid(unsafe_code)]
