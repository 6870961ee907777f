//! cargo-fuzz target `session`: see `fota_fuzz::check_session` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fota_fuzz::check_session(data);
});
