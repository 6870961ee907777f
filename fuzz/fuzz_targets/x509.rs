//! cargo-fuzz target `x509`: see `fota_fuzz::x509` for the input format and
//! the invariants checked (fota's certificate verifier against rustpki's).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fota_fuzz::x509::check_x509(data));
