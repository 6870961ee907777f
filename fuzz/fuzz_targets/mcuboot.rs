//! cargo-fuzz target `mcuboot`: see `fota_fuzz::check_mcuboot` for the input
//! format and the invariant ("committed if and only if the reference verifier
//! accepts, signature included").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fota_fuzz::check_mcuboot(data);
});
