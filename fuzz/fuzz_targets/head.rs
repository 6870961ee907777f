//! cargo-fuzz target `head`: see `fota_fuzz::check_head` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fota_fuzz::check_head(data));
