//! Result codes: the numbers C sees, their names, their text and the libfota mapping.
//!
//! Codes 0-5 are exactly libfota's; 6-15 split out what libfota folds into 4 or
//! cannot report. The numbers never change.

use core::ffi::CStr;

/// Image written, verified and committed: reboot to install it.
pub const FOTA_OK: i32 = 0;
/// DNS lookup or TCP connection failed.
pub const FOTA_ERR_CONNECT: i32 = 1;
/// URL malformed or unsupported (also `https://` without the `tls` feature).
pub const FOTA_ERR_URL: i32 = 2;
/// The server closed the connection before the image was complete.
pub const FOTA_ERR_DISCONNECTED: i32 = 3;
/// Malformed or unexpected response: bad head, empty body, bad chunk, bad 206.
pub const FOTA_ERR_RESPONSE: i32 = 4;
/// The cloud platform needs a project key and a version of the form `xxx.yyy.zzz`.
pub const FOTA_ERR_PLATFORM_PARAM: i32 = 5;
/// The server says there is nothing newer (status >= 300, or platform code 27).
pub const FOTA_NO_UPDATE: i32 = 6;
/// The idle timeout or the overall deadline passed.
pub const FOTA_ERR_TIMEOUT: i32 = 7;
/// A flash hook failed.
pub const FOTA_ERR_FLASH: i32 = 8;
/// The image is larger than the storage's `max_len`.
pub const FOTA_ERR_TOO_LARGE: i32 = 9;
/// A size, checksum or signature check failed.
pub const FOTA_ERR_VERIFY: i32 = 10;
/// TLS handshake or certificate verification failed.
pub const FOTA_ERR_TLS: i32 = 11;
/// `fota_abort()` was called while the request ran.
pub const FOTA_ERR_ABORTED: i32 = 12;
/// Another request is running.
pub const FOTA_ERR_BUSY: i32 = 13;
/// NULL or invalid argument, required hook missing, or `fota_init()` not called.
pub const FOTA_ERR_INVALID_ARG: i32 = 14;
/// The cloud platform refused; its code is in `fota_progress_t.platform_code`.
pub const FOTA_ERR_PLATFORM: i32 = 15;

/// Every outcome of a request other than success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Error {
    Connect = FOTA_ERR_CONNECT,
    Url = FOTA_ERR_URL,
    Disconnected = FOTA_ERR_DISCONNECTED,
    Response = FOTA_ERR_RESPONSE,
    PlatformParam = FOTA_ERR_PLATFORM_PARAM,
    NoUpdate = FOTA_NO_UPDATE,
    Timeout = FOTA_ERR_TIMEOUT,
    Flash = FOTA_ERR_FLASH,
    TooLarge = FOTA_ERR_TOO_LARGE,
    Verify = FOTA_ERR_VERIFY,
    Tls = FOTA_ERR_TLS,
    Aborted = FOTA_ERR_ABORTED,
    Busy = FOTA_ERR_BUSY,
    InvalidArg = FOTA_ERR_INVALID_ARG,
    Platform = FOTA_ERR_PLATFORM,
}

/// The C code of a request's outcome.
pub fn code(outcome: Result<(), Error>) -> i32 {
    match outcome {
        Ok(()) => FOTA_OK,
        Err(e) => e as i32,
    }
}

/// The constant's name for a code, or `"FOTA_ERR_UNKNOWN"`, NUL-terminated for C.
pub fn name(code: i32) -> &'static CStr {
    match code {
        FOTA_OK => c"FOTA_OK",
        FOTA_ERR_CONNECT => c"FOTA_ERR_CONNECT",
        FOTA_ERR_URL => c"FOTA_ERR_URL",
        FOTA_ERR_DISCONNECTED => c"FOTA_ERR_DISCONNECTED",
        FOTA_ERR_RESPONSE => c"FOTA_ERR_RESPONSE",
        FOTA_ERR_PLATFORM_PARAM => c"FOTA_ERR_PLATFORM_PARAM",
        FOTA_NO_UPDATE => c"FOTA_NO_UPDATE",
        FOTA_ERR_TIMEOUT => c"FOTA_ERR_TIMEOUT",
        FOTA_ERR_FLASH => c"FOTA_ERR_FLASH",
        FOTA_ERR_TOO_LARGE => c"FOTA_ERR_TOO_LARGE",
        FOTA_ERR_VERIFY => c"FOTA_ERR_VERIFY",
        FOTA_ERR_TLS => c"FOTA_ERR_TLS",
        FOTA_ERR_ABORTED => c"FOTA_ERR_ABORTED",
        FOTA_ERR_BUSY => c"FOTA_ERR_BUSY",
        FOTA_ERR_INVALID_ARG => c"FOTA_ERR_INVALID_ARG",
        FOTA_ERR_PLATFORM => c"FOTA_ERR_PLATFORM",
        _ => c"FOTA_ERR_UNKNOWN",
    }
}

/// The libfota/libfota2 number (0-5) for the same event.
///
/// "No update" and every receive-side failure are 4 in libfota; a refused or
/// broken TLS connection is a connection failure (1) there.
pub fn libfota(code: i32) -> i32 {
    match code {
        FOTA_OK => 0,
        FOTA_ERR_CONNECT | FOTA_ERR_TLS => 1,
        FOTA_ERR_URL => 2,
        FOTA_ERR_DISCONNECTED => 3,
        FOTA_ERR_PLATFORM_PARAM => 5,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_name_and_a_libfota_number() {
        for c in 0..=15 {
            assert_ne!(name(c), c"FOTA_ERR_UNKNOWN", "code {c}");
            assert!((0..=5).contains(&libfota(c)));
        }
        assert_eq!(name(16), c"FOTA_ERR_UNKNOWN");
        assert_eq!(name(-1), c"FOTA_ERR_UNKNOWN");
    }

    #[test]
    fn libfota_codes_keep_their_numbers() {
        for c in 0..=5 {
            assert_eq!(libfota(c), c);
        }
        assert_eq!(libfota(FOTA_NO_UPDATE), 4);
        assert_eq!(libfota(FOTA_ERR_TLS), 1);
    }
}
