//! cargo-fuzz target `url`: see `fota_fuzz::check_url` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fota_fuzz::check_url(data));
