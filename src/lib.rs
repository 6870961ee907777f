//! fota: a firmware-over-the-air client for microcontrollers.
//!
//! A sans-I/O core (`url`, `http`) with a session state machine (`session`)
//! that talks to the world through the traits of `hooks`, the image in the
//! update area (`image`), and a C ABI (`ffi`) that adapts the C hook tables
//! to those traits. No heap: every buffer is static or on the stack, with
//! sizes fixed at build time.
//!
//! Imports run downwards: `hooks`, `result` <- `url`, `http`, `options`,
//! `status`, `timer`, `resume` <- `image`, `tls` <- `session` <- `ffi`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]

mod decimal;
pub mod ffi;
pub mod hooks;
pub mod http;
mod image;
mod line;
pub mod mcuboot;
pub mod options;
pub mod pem;
pub mod result;
pub mod resume;
pub mod session;
pub mod status;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;
pub mod verify;
#[cfg(feature = "tls")]
pub mod x509;
