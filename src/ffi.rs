//! The C ABI: the only `unsafe` and `extern "C"` code of the crate.
//!
//! C structs are turned into the session's Rust types here, and the hook
//! tables into the `Transport`, `Flash` and `System` traits. Every pointer is
//! checked before use; every hook return value is range-checked.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_void};
use core::ptr;

use crate::hooks::{Clock, Flash, Level, Received, Stream, System, Transport};
use crate::options::{
    Options, TlsOptions, FOTA_DEFAULT_IDLE_TIMEOUT_MS, FOTA_DEFAULT_MAX_RETRIES,
    FOTA_DEFAULT_RETRY_DELAY_MS, FOTA_DEFAULT_STATE_INTERVAL, FOTA_DEFAULT_TIMEOUT_MS,
};
use crate::result::{self, Error, FOTA_ERR_BUSY, FOTA_ERR_INVALID_ARG, FOTA_OK};
use crate::session::{self, Workspace};
use crate::status::{State, Status};
use crate::url::{DeviceIdKind, DeviceParams, FOTA_URL_MAX};
use crate::verify::Reason;

/// Returned by the `recv` and `send` hooks when nothing moved within the
/// timeout (the value of `-EAGAIN` on Linux and newlib).
pub const FOTA_NET_WOULD_BLOCK: i32 = -11;

/// Log level passed to the `log` hook: an error ended the request.
pub const FOTA_LOG_ERROR: i32 = 1;
/// Log level: something unexpected that the request survives.
pub const FOTA_LOG_WARN: i32 = 2;
/// Log level: the URL requested, the platform's answer.
pub const FOTA_LOG_INFO: i32 = 3;
/// Log level: status lines and other detail.
pub const FOTA_LOG_DEBUG: i32 = 4;

/// `fota_progress_t.verify_reason`: no check refused the image.
pub const FOTA_VERIFY_NONE: u32 = 0;
/// The image's length differs from `image_len`.
pub const FOTA_VERIFY_LENGTH: u32 = 1;
/// The image's SHA-256 differs from `image_sha256`.
pub const FOTA_VERIFY_SHA256: u32 = 2;
/// The image's SHA-256 differs from the server's `Repr-Digest`.
pub const FOTA_VERIFY_REPR_DIGEST: u32 = 3;
/// Not an MCUboot image, or its sizes do not fit the length or `max_len`.
pub const FOTA_VERIFY_HEADER: u32 = 4;
/// A malformed, truncated or missing MCUboot TLV area, or bytes after it.
pub const FOTA_VERIFY_TLV: u32 = 5;
/// The `SHA256` TLV differs from the hash of header, body and protected TLVs.
pub const FOTA_VERIFY_IMAGE_HASH: u32 = 6;
/// The `KEYHASH` TLV names another key than `image_key`.
pub const FOTA_VERIFY_KEY_HASH: u32 = 7;
/// No `ECDSA_SIG` TLV, or it does not verify with `image_key`.
pub const FOTA_VERIFY_SIGNATURE: u32 = 8;
/// The image is older than `version` and `allow_downgrade` is false.
pub const FOTA_VERIFY_DOWNGRADE: u32 = 9;
/// The image's security counter is missing or below `security_counter`.
pub const FOTA_VERIFY_SECURITY_COUNTER: u32 = 10;
/// The image read back through `flash.read` differs from what was written.
pub const FOTA_VERIFY_READBACK: u32 = 11;

/// `fota_progress_t.state`: no request running.
pub const FOTA_STATE_IDLE: u32 = 0;
/// `fota_progress_t.state`: connecting (DNS, TCP).
pub const FOTA_STATE_CONNECTING: u32 = 1;
/// `fota_progress_t.state`: sending the request.
pub const FOTA_STATE_SENDING: u32 = 2;
/// `fota_progress_t.state`: waiting for the response head.
pub const FOTA_STATE_RECEIVING_HEAD: u32 = 3;
/// `fota_progress_t.state`: writing the image into flash.
pub const FOTA_STATE_DOWNLOADING: u32 = 4;
/// `fota_progress_t.state`: polling `done()` and committing.
pub const FOTA_STATE_FINISHING: u32 = 5;
/// `fota_progress_t.state`: pausing before a retry.
pub const FOTA_STATE_WAITING_RETRY: u32 = 6;

/// Longest C string accepted in `fota_opts_t` other than the URL (bytes,
/// without the NUL); a longer one is `FOTA_ERR_INVALID_ARG`.
pub const FOTA_STRING_MAX: usize = 4096;

/// Network hooks: one TCP connection at a time, DNS included.
///
/// Every hook may block up to the timeout it is given. `ctx` is passed back
/// untouched. Pointers passed to a hook are valid only during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_net_ops_t {
    /// Passed as the first argument of every hook.
    pub ctx: *mut c_void,
    /// Required. Resolves `host` (a NUL-terminated name or IP literal,
    /// IPv6 without brackets) and connects to `port` within `timeout_ms`.
    /// Returns: a socket handle >= 0, or < 0 on failure (`FOTA_ERR_CONNECT`).
    pub connect: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            host: *const c_char,
            port: u16,
            timeout_ms: u32,
        ) -> i32,
    >,
    /// Required. Sends up to `len` bytes of `buf`, waiting at most `timeout_ms`.
    /// Returns: bytes sent (1..=len); `FOTA_NET_WOULD_BLOCK` if nothing could
    /// be sent in time; any other value <= 0 is an error.
    pub send: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            sock: i32,
            buf: *const u8,
            len: usize,
            timeout_ms: u32,
        ) -> i32,
    >,
    /// Required. Receives up to `len` bytes into `buf`, waiting at most `timeout_ms`.
    /// Returns: bytes received (1..=len); 0 when the peer closed the
    /// connection; `FOTA_NET_WOULD_BLOCK` when nothing arrived in time; any
    /// other negative value is an error. A value above `len` is treated as an error.
    pub recv: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            sock: i32,
            buf: *mut u8,
            len: usize,
            timeout_ms: u32,
        ) -> i32,
    >,
    /// Required. Closes a handle returned by `connect`; called exactly once per
    /// successful `connect`.
    pub close: Option<unsafe extern "C" fn(ctx: *mut c_void, sock: i32)>,
}

/// Where the image goes, passed to the flash `init` hook as given in the options
/// (libfota's storage location, maximum length and SPI flash device).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_storage_t {
    /// Start address of the update area (platform specific; 0 = the platform's default).
    pub address: u32,
    /// Most bytes the area holds; a larger image is `FOTA_ERR_TOO_LARGE`
    /// before anything is written. 0 = no limit.
    pub max_len: u32,
    /// File path when the image is stored in a file system, else NULL.
    pub path: *const c_char,
    /// Platform handle, e.g. the SPI flash device; NULL if unused.
    pub param1: *mut c_void,
}

/// Flash hooks: the update area. One image at a time: `init` (or `reopen`),
/// `write`s in order without gaps, `done` until finished, then `end` exactly
/// once; with the state hooks, a request that fails in a way a later one may
/// cure leaves the image without `end`, for the next request's `reopen`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_flash_ops_t {
    /// Passed as the first argument of every hook.
    pub ctx: *mut c_void,
    /// Required. Prepares (e.g. erases) the area for an image of `image_len`
    /// bytes (0 = length not known in advance). Called only once a response
    /// head announced an image. Returns: >= 0 ok, < 0 failed (`FOTA_ERR_FLASH`).
    pub init: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            storage: *const fota_storage_t,
            image_len: u32,
        ) -> i32,
    >,
    /// Required. Writes `len` bytes at `offset` from the start of the image.
    /// With `write_granularity` g > 0, `offset` is a multiple of g and `len` is
    /// a multiple of g except for the image's last write.
    /// Returns: >= 0 ok, < 0 failed (`FOTA_ERR_FLASH`).
    pub write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, data: *const u8, len: usize) -> i32,
    >,
    /// Optional (NULL: finished at once). Called after the last write until it
    /// returns 0: > 0 still busy (called again after a short sleep, within the
    /// deadline), 0 finished, < 0 failed (`FOTA_ERR_FLASH`).
    pub done: Option<unsafe extern "C" fn(ctx: *mut c_void) -> i32>,
    /// Required. `commit` true: every byte arrived and every check passed, mark
    /// the new image for the bootloader. False: discard it. Called exactly once
    /// after every successful `init` or `reopen` that kept bytes, except when
    /// a failure left the image for a later request (see `reopen`).
    /// Returns: >= 0 ok, < 0 failed.
    pub end: Option<unsafe extern "C" fn(ctx: *mut c_void, commit: bool) -> i32>,
    /// Write granularity in bytes: 0 for any, else a power of two up to 4096.
    pub write_granularity: u32,
    /// Optional (NULL: no read-back). Copies `len` bytes of the image at
    /// `offset` from flash into `buf`. When given, fota reads the whole image
    /// back after the last write and `done()`, before `end(true)`, and
    /// compares its SHA-256 with the bytes it wrote: a flash that
    /// mis-programs is `FOTA_ERR_VERIFY` (reason `FOTA_VERIFY_READBACK`)
    /// instead of a bad image at boot. Costs one read of the image; the
    /// reads use the receive buffer (at most `FOTA_RX_BUF` bytes each).
    /// Right after a `reopen` that kept bytes, fota also reads those back
    /// (when a check needs the image's digest) to rebuild the digest.
    /// Returns: >= 0 ok, < 0 failed (`FOTA_ERR_FLASH`; after `reopen`: the
    /// kept part is discarded and the image starts from byte 0).
    pub read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32,
    >,
    /// Optional, with `state_load` and `state_save` (all three NULL: a
    /// download never outlives its request). Takes up an image an earlier
    /// request (before a reboot, or earlier in this boot) left in the area
    /// instead of `init`: fota calls it before any traffic when a resume
    /// record of the same request names `image_len` bytes of which the
    /// first `offset` were written. Keep the first bytes that are intact
    /// (at least `offset` when they are; a file system may know that more
    /// are) and make the rest writable again (erase it). Never claim bytes
    /// that `end` discarded or committed: after `end` the area holds nothing
    /// to take up. The area may still be open from a request in this boot
    /// that failed and kept its record: close what is open first.
    /// Returns: the bytes kept, a multiple of `write_granularity` below
    /// `image_len` (fota continues writing there; then `done` and `end`
    /// exactly once, as after `init`); 0: nothing kept (fota forgets the
    /// record and starts from byte 0 with `init`, no `end` for this call);
    /// < 0: failed (the same). Any other value: fota calls `end(false)` and
    /// starts from byte 0. Maps to LuatOS: `luat_fota_init()` with the area
    /// kept (a platform whose init always erases cannot resume: leave these
    /// hooks NULL).
    pub reopen: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            storage: *const fota_storage_t,
            image_len: u32,
            offset: u32,
        ) -> i32,
    >,
    /// Optional (see `reopen`). Copies state slot `slot` (0 or 1) into
    /// `buf` (`len` is `FOTA_STATE_RECORD_MAX`). Returns: the bytes copied
    /// (0 = empty slot), < 0 failed (read as empty). Whatever a torn save
    /// left is fine: fota checks each record's CRC.
    pub state_load:
        Option<unsafe extern "C" fn(ctx: *mut c_void, slot: u32, buf: *mut u8, len: usize) -> i32>,
    /// Optional (see `reopen`). Replaces state slot `slot` (0 or 1) with the
    /// `len` bytes of `buf` (at most `FOTA_STATE_RECORD_MAX`). The two slots
    /// must not share an erase unit: fota writes only the slot that does not
    /// hold the newest record, so a power loss during the save leaves the
    /// other one intact. Returns: >= 0 ok, and the bytes must be durable
    /// then (a later `state_load` returns them after a power loss); < 0
    /// failed (the download goes on; the older record stays).
    pub state_save: Option<
        unsafe extern "C" fn(ctx: *mut c_void, slot: u32, buf: *const u8, len: usize) -> i32,
    >,
}

/// System hooks.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_sys_ops_t {
    /// Passed as the first argument of every hook.
    pub ctx: *mut c_void,
    /// Required. Milliseconds from a monotonic clock; may wrap around.
    pub now_ms: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Required. Blocks the calling task for `ms` milliseconds.
    pub sleep_ms: Option<unsafe extern "C" fn(ctx: *mut c_void, ms: u32)>,
    /// Optional; required for https (else `FOTA_ERR_INVALID_ARG`). Fills
    /// `buf` with `len` random bytes from a cryptographic source.
    /// Returns: 0 ok, anything else failed (the handshake ends with `FOTA_ERR_TLS`).
    pub random: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: usize) -> i32>,
    /// Optional. Seconds since 1970-01-01 UTC, or 0 when the date is not known
    /// (e.g. before network time). Used for certificate validity periods; when
    /// NULL or 0, validity periods are not checked (the chain and the host
    /// name still are).
    pub unix_time: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>,
    /// Optional. One log line of `len` bytes (UTF-8, not NUL-terminated, no
    /// line terminator) at `level` (`FOTA_LOG_ERROR`..`FOTA_LOG_DEBUG`).
    pub log:
        Option<unsafe extern "C" fn(ctx: *mut c_void, level: i32, msg: *const c_char, len: usize)>,
    /// Optional. Called if fota hits an internal bug (a Rust panic: none is
    /// known to be reachable; every input error is a result code), with a
    /// short reason of `len` bytes (not NUL-terminated). It should not
    /// return: log, then reset the device. If it is NULL or returns, fota
    /// executes a trap instruction (`udf` on Arm: a HardFault the firmware's
    /// fault handler sees; `unimp` on RISC-V) rather than hang the task with
    /// the request lock held. Called from the task that ran `fota_request()`.
    pub fatal: Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_char, len: usize)>,
}

/// Everything the library needs from the platform; copied by `fota_init()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_platform_t {
    pub net: fota_net_ops_t,
    pub flash: fota_flash_ops_t,
    pub sys: fota_sys_ops_t,
}

/// Figures of the running (or last) request; see `fota_get_progress()`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct fota_progress_t {
    /// One of the `FOTA_STATE_*` values.
    pub state: u32,
    /// Image bytes written to flash so far.
    pub bytes_written: u32,
    /// Image length announced by the server, 0 if unknown.
    pub total: u32,
    /// Reconnections so far.
    pub retries: u32,
    /// Status code of the last response head, 0 before one arrived.
    pub http_status: u32,
    /// The platform's refusal code (`{"code":N}`), 0 if none.
    pub platform_code: i32,
    /// After `FOTA_ERR_VERIFY`: which check refused the image
    /// (`FOTA_VERIFY_*`); `FOTA_VERIFY_NONE` otherwise.
    pub verify_reason: u32,
    /// The byte the request took the image up from, after a resume record
    /// left by an earlier request (e.g. before a reboot); 0 when it started
    /// from byte 0.
    pub resumed_from: u32,
    /// State saves (resume records and the tombstones that forget them)
    /// of the last request, once it ended.
    pub state_saves: u32,
}

/// Called exactly once per `fota_request()` with its result code.
pub type fota_callback_t = Option<unsafe extern "C" fn(result: i32, user: *mut c_void)>;

/// Called after each flash write with the bytes written so far and the
/// total (0 if unknown). It may call `fota_get_progress()` and `fota_abort()`;
/// `fota_request()` from here returns `FOTA_ERR_BUSY`.
pub type fota_progress_cb_t =
    Option<unsafe extern "C" fn(written: u32, total: u32, user: *mut c_void)>;

/// Options of one request (libfota/libfota2 `opts`). Start from
/// `fota_opts_init()`; every pointer may be NULL and is read only during
/// `fota_request()`. Strings are NUL-terminated UTF-8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct fota_opts_t {
    /// Server URL (`http://host[:port]/path?query`). NULL: the LuatOS IoT
    /// platform. The device parameters that are set are appended to the
    /// query, unless the URL starts with `###` (then used verbatim).
    pub url: *const c_char,
    /// Firmware version; the platform needs `xxx.yyy.zzz`.
    pub version: *const c_char,
    /// Overall deadline in milliseconds (0: 300000).
    pub timeout_ms: u32,
    /// Platform project key (required with the platform).
    pub project_key: *const c_char,
    /// Device IMEI, sent as `imei=`. The first set of `imei`, `mac`, `uid` is sent.
    pub imei: *const c_char,
    /// Device MAC, sent as `mac=` when `imei` is NULL.
    pub mac: *const c_char,
    /// Device unique id, sent as `uid=` when `imei` and `mac` are NULL.
    pub uid: *const c_char,
    /// Firmware name, sent as `firmware_name=`.
    pub firmware_name: *const c_char,
    /// CA certificate(s) for https, PEM or DER.
    pub server_cert: *const u8,
    /// Bytes of `server_cert`.
    pub server_cert_len: usize,
    /// Client certificate for https, PEM or DER.
    pub client_cert: *const u8,
    /// Bytes of `client_cert`.
    pub client_cert_len: usize,
    /// Client private key for https, PEM or DER (SEC1 P-256). A key that is
    /// not the one of `client_cert` is `FOTA_ERR_INVALID_ARG` before any traffic.
    pub client_key: *const u8,
    /// Bytes of `client_key`.
    pub client_key_len: usize,
    /// Password of an encrypted `client_key`: not supported (a non-empty
    /// password is `FOTA_ERR_INVALID_ARG`); give the key decrypted.
    pub client_password: *const c_char,
    /// https without certificate verification: anyone on the path can then
    /// send an image. Logged as a warning on every request. Default false;
    /// https without `server_cert` and without this is `FOTA_ERR_TLS`.
    pub tls_insecure: bool,
    /// TLS `max_fragment_length` to ask the server for: 0 (none), 512, 1024,
    /// 2048 or 4096; other values are `FOTA_ERR_INVALID_ARG`.
    pub tls_max_fragment: u16,
    /// HTTP method (NULL: "GET").
    pub method: *const c_char,
    /// Extra request headers: `"Name: value"` lines separated by `"\r\n"`.
    /// A bare CR or LF, an empty line or a malformed line is `FOTA_ERR_INVALID_ARG`.
    pub headers: *const c_char,
    /// Request body, sent with a `Content-Length` (NULL: none).
    pub body: *const u8,
    /// Bytes of `body`.
    pub body_len: usize,
    /// Where the image goes; passed to the flash `init` hook.
    pub storage: fota_storage_t,
    /// Port when the URL has none (0: 80 for http).
    pub port: u16,
    /// Whether the URL (with the device parameters) may be logged.
    pub show_url: bool,
    /// Longest wait for the next byte in milliseconds (0: 30000).
    pub idle_timeout_ms: u32,
    /// Reconnections after a failure a new connection may cure: connect
    /// failed, connection lost, idle timeout (default `FOTA_DEFAULT_MAX_RETRIES`;
    /// 0: none). A lost image download continues with `Range: bytes=N-`.
    pub max_retries: u32,
    /// Ceiling of the pause before the first retry in milliseconds, doubled
    /// for each further retry up to `FOTA_RETRY_DELAY_MAX_MS` (0:
    /// `FOTA_DEFAULT_RETRY_DELAY_MS`). The pause itself is uniformly random
    /// between 0 and that ceiling (full jitter), so that a fleet that lost
    /// the same server does not retry in lockstep. A 429 or 503 with
    /// `Retry-After` (seconds, or an HTTP date when `unix_time` is given)
    /// waits that long instead, within the deadline and `max_retries`.
    pub retry_delay_ms: u32,
    /// Redirects (301/302/303/307/308) followed; 0 (default): a 3xx means
    /// "no update", as in libfota. A redirect past this budget is
    /// `FOTA_ERR_RESPONSE`.
    pub max_redirects: u8,
    /// Follow a redirect from https to plain http (default false: such a
    /// redirect is `FOTA_ERR_TLS`, because the image would arrive without
    /// any authentication of the server).
    pub allow_insecure_redirect: bool,
    /// MCUboot signing key: an ECDSA P-256 public key, PEM (`PUBLIC KEY`)
    /// or DER SubjectPublicKeyInfo (`imgtool getpub --encoding pem`), of
    /// `image_key_len` bytes. NULL: images need not be signed. With a key,
    /// the image must be an MCUboot image whose `SHA256` TLV matches header,
    /// body and protected TLVs, whose `KEYHASH` (if present) names this key
    /// and whose `ECDSA_SIG` verifies; its 32-byte header is checked before
    /// `flash.init` (magic, sizes against the length and `max_len`, version).
    /// A key that is not a P-256 public key is `FOTA_ERR_INVALID_ARG`.
    pub image_key: *const u8,
    /// Bytes of `image_key`.
    pub image_key_len: usize,
    /// NULL, or 32 bytes: the SHA-256 the whole image must have (from the
    /// caller's own manifest).
    pub image_sha256: *const u8,
    /// The image's length in bytes, if known from the caller's manifest (0:
    /// unknown). A server that announces another length is refused before
    /// `flash.init`.
    pub image_len: u32,
    /// With `image_key`: accept an image whose version is older than
    /// `version` (`x.y.z[+build]`; major, minor and revision are compared).
    /// Default false: an older image is refused before `flash.init`.
    pub allow_downgrade: bool,
    /// With `image_key`: the device's current security counter; the image's
    /// `SEC_CNT` TLV must be present and not lower. 0: not checked.
    pub security_counter: u32,
    /// Optional progress callback.
    pub progress_cb: fota_progress_cb_t,
    /// Passed to `progress_cb`.
    pub progress_user: *mut c_void,
    /// With the flash state hooks: image bytes between two saves of the
    /// resume record (0: `FOTA_DEFAULT_STATE_INTERVAL`, 64 KiB). A record
    /// is also saved when a request fails in a way a later one may cure
    /// (connection, timeout, abort). Each save writes one slot of at most
    /// `FOTA_STATE_RECORD_MAX` bytes: a 4 MiB image costs 64 saves by
    /// default; after a power loss at most this many bytes are fetched
    /// again (fewer when `reopen` keeps more).
    pub state_interval: u32,
}

/// The hook tables, once checked. The pointers are the C caller's; fota only
/// passes them back to its hooks.
#[derive(Clone, Copy)]
struct Platform(fota_platform_t);

// SAFETY: the hooks and their contexts are the C caller's, who promises in
// fota.h that they may be called from the task that runs fota_request().
unsafe impl Send for Platform {}

static PLATFORM: spin::Mutex<Option<Platform>> = spin::Mutex::new(None);
/// The request lock and the buffers it guards.
static WORKSPACE: spin::Mutex<Workspace> = spin::Mutex::new(Workspace::new());
static STATUS: Status = Status::new();

/// Installs the platform hooks (copied; `platform` need not outlive the call).
///
/// Parameters: `platform`: the hook tables; required hooks must be non-NULL.
/// Returns: `FOTA_OK`, or `FOTA_ERR_INVALID_ARG` when `platform` is NULL or a
/// required hook is missing (the previous hooks then stay installed). May be
/// called again to replace the hooks; a running request keeps its own copy.
///
/// # Safety
/// `platform` is NULL or points to a valid `fota_platform_t`.
#[no_mangle]
pub unsafe extern "C" fn fota_init(platform: *const fota_platform_t) -> i32 {
    // SAFETY: a non-NULL pointer is a valid fota_platform_t (fota.h contract).
    let Some(p) = (unsafe { platform.as_ref() }) else {
        return FOTA_ERR_INVALID_ARG;
    };
    let complete = p.net.connect.is_some()
        && p.net.send.is_some()
        && p.net.recv.is_some()
        && p.net.close.is_some()
        && p.flash.init.is_some()
        && p.flash.write.is_some()
        && p.flash.end.is_some()
        && p.sys.now_ms.is_some()
        && p.sys.sleep_ms.is_some();
    if !complete {
        return FOTA_ERR_INVALID_ARG;
    }
    *PLATFORM.lock() = Some(Platform(*p));
    FOTA_OK
}

/// Sets every field of `*opts` to its default: NULL strings, method GET,
/// timeout 300000 ms, idle timeout 30000 ms, `FOTA_DEFAULT_MAX_RETRIES`
/// retries `FOTA_DEFAULT_RETRY_DELAY_MS` apart (doubling), no redirects,
/// `show_url` true. Does nothing when `opts` is NULL.
///
/// # Safety
/// `opts` is NULL or points to writable memory for a `fota_opts_t`.
#[no_mangle]
pub unsafe extern "C" fn fota_opts_init(opts: *mut fota_opts_t) {
    if opts.is_null() {
        return;
    }
    let defaults = fota_opts_t {
        url: ptr::null(),
        version: ptr::null(),
        timeout_ms: FOTA_DEFAULT_TIMEOUT_MS,
        project_key: ptr::null(),
        imei: ptr::null(),
        mac: ptr::null(),
        uid: ptr::null(),
        firmware_name: ptr::null(),
        server_cert: ptr::null(),
        server_cert_len: 0,
        client_cert: ptr::null(),
        client_cert_len: 0,
        client_key: ptr::null(),
        client_key_len: 0,
        client_password: ptr::null(),
        tls_insecure: false,
        tls_max_fragment: 0,
        method: ptr::null(),
        headers: ptr::null(),
        body: ptr::null(),
        body_len: 0,
        storage: fota_storage_t {
            address: 0,
            max_len: 0,
            path: ptr::null(),
            param1: ptr::null_mut(),
        },
        port: 0,
        show_url: true,
        idle_timeout_ms: FOTA_DEFAULT_IDLE_TIMEOUT_MS,
        max_retries: FOTA_DEFAULT_MAX_RETRIES,
        retry_delay_ms: FOTA_DEFAULT_RETRY_DELAY_MS,
        max_redirects: 0,
        allow_insecure_redirect: false,
        image_key: ptr::null(),
        image_key_len: 0,
        image_sha256: ptr::null(),
        image_len: 0,
        allow_downgrade: false,
        security_counter: 0,
        progress_cb: None,
        progress_user: ptr::null_mut(),
        state_interval: FOTA_DEFAULT_STATE_INTERVAL,
    };
    // SAFETY: non-NULL and, per fota.h, points to a writable fota_opts_t.
    unsafe { opts.write(defaults) };
}

/// Checks for a new image and, if the server sends one, streams it into the
/// update area, verifies it and commits it.
///
/// Runs on the calling task and blocks until the request ends (bounded by
/// `opts->timeout_ms`). Calls `cb` (if not NULL) exactly once with the result,
/// after the request lock is released, then returns the same code.
///
/// Parameters: `cb`: result callback or NULL; `user`: passed to `cb`;
/// `opts`: the options (required; see `fota_opts_init()`).
/// Returns: `FOTA_OK` when the image is committed (reboot to install it),
/// `FOTA_NO_UPDATE` when there is nothing newer, else a `FOTA_ERR_*` code.
/// `FOTA_ERR_BUSY` at once when another request runs;
/// `FOTA_ERR_INVALID_ARG` when `opts` is NULL or `fota_init()` was not called.
///
/// # Safety
/// `opts` is NULL or points to a valid `fota_opts_t` whose pointers are NULL
/// or valid (strings NUL-terminated, buffers of their stated length) until
/// the call returns.
#[no_mangle]
pub unsafe extern "C" fn fota_request(
    cb: fota_callback_t,
    user: *mut c_void,
    opts: *const fota_opts_t,
) -> i32 {
    let code = match WORKSPACE.try_lock() {
        None => FOTA_ERR_BUSY,
        Some(mut ws) => {
            // SAFETY: a non-NULL pointer is a valid fota_opts_t (fota.h contract).
            let opts = unsafe { opts.as_ref() };
            let platform = *PLATFORM.lock();
            match (opts, platform) {
                (Some(opts), Some(platform)) => {
                    // SAFETY: the caller keeps the option strings valid during the call.
                    result::code(unsafe { request(&mut ws, platform.0, opts) })
                }
                _ => FOTA_ERR_INVALID_ARG,
            }
        }
    };
    if let Some(cb) = cb {
        // SAFETY: a C function pointer supplied by the caller for this purpose.
        unsafe { cb(code, user) };
    }
    code
}

/// Asks the running request to stop. Safe from any task or interrupt; returns
/// at once. The request ends at its next I/O boundary (within about
/// `FOTA_ABORT_SLICE_MS` plus one hook call) with `FOTA_ERR_ABORTED`, and the
/// flash `end(false)`. Does nothing when no request runs.
#[no_mangle]
pub extern "C" fn fota_abort() {
    STATUS.request_abort();
}

/// Copies the figures of the running (or last) request into `*out`. Safe from
/// any task at any time; never blocks. Does nothing when `out` is NULL.
///
/// # Safety
/// `out` is NULL or points to writable memory for a `fota_progress_t`.
#[no_mangle]
pub unsafe extern "C" fn fota_get_progress(out: *mut fota_progress_t) {
    if out.is_null() {
        return;
    }
    let s = STATUS.snapshot();
    let progress = fota_progress_t {
        state: s.state,
        bytes_written: s.written,
        total: s.total,
        retries: s.retries,
        http_status: s.http_status,
        platform_code: s.platform_code,
        verify_reason: s.verify_reason,
        resumed_from: s.resumed_from,
        state_saves: s.state_saves,
    };
    // SAFETY: non-NULL and, per fota.h, points to a writable fota_progress_t.
    unsafe { out.write(progress) };
}

/// Forgets the resume record in the flash state slots, if there is one: the
/// next `fota_request()` starts from byte 0. Call it when the image a record
/// may name is no longer wanted (new firmware installed by other means, a
/// user asking for a fresh start). Does not touch the update area (the next
/// `init` prepares it).
/// Returns: `FOTA_OK` (also without state hooks: nothing to forget);
/// `FOTA_ERR_FLASH` when neither slot took the tombstone; `FOTA_ERR_BUSY`
/// while a request runs; `FOTA_ERR_INVALID_ARG` before `fota_init()`.
#[no_mangle]
pub extern "C" fn fota_state_discard() -> i32 {
    let Some(_request) = WORKSPACE.try_lock() else {
        return FOTA_ERR_BUSY;
    };
    let Some(platform) = *PLATFORM.lock() else {
        return FOTA_ERR_INVALID_ARG;
    };
    let mut flash = CFlash {
        ops: platform.0.flash,
        storage: fota_storage_t {
            address: 0,
            max_len: 0,
            path: ptr::null(),
            param1: ptr::null_mut(),
        },
    };
    result::code(crate::image::discard_record(&mut flash))
}

/// The name of a result code (`"FOTA_OK"`, `"FOTA_ERR_CONNECT"`, ...), or
/// `"FOTA_ERR_UNKNOWN"`. The string is static and NUL-terminated.
#[no_mangle]
pub extern "C" fn fota_result_str(result: i32) -> *const c_char {
    result::name(result).as_ptr()
}

/// The code libfota/libfota2 (0-5) gives for the same event: `FOTA_NO_UPDATE`
/// and other receive-side failures are 4, `FOTA_ERR_TLS` is 1.
#[no_mangle]
pub extern "C" fn fota_result_libfota(result: i32) -> i32 {
    result::libfota(result)
}

/// Converts the options and runs the session with the C hooks.
///
/// SAFETY: every non-NULL pointer in `opts` is valid for its documented use.
unsafe fn request(
    ws: &mut Workspace,
    platform: fota_platform_t,
    opts: &fota_opts_t,
) -> Result<(), Error> {
    // SAFETY (all `c_str` calls): the strings are NUL-terminated per fota.h.
    let url = unsafe { c_str(opts.url, FOTA_URL_MAX) }.map_err(|_| Error::Url)?;
    let string = |p| unsafe { c_str(p, FOTA_STRING_MAX) };
    let device_id = [
        (DeviceIdKind::Imei, string(opts.imei)?),
        (DeviceIdKind::Mac, string(opts.mac)?),
        (DeviceIdKind::Uid, string(opts.uid)?),
    ]
    .into_iter()
    .find_map(|(kind, id)| id.filter(|s| !s.is_empty()).map(|id| (kind, id)));
    let session_opts = Options {
        url,
        params: DeviceParams {
            device_id,
            project_key: string(opts.project_key)?,
            firmware_name: string(opts.firmware_name)?,
            version: string(opts.version)?,
        },
        port: opts.port,
        method: string(opts.method)?.unwrap_or("GET"),
        headers: string(opts.headers)?.unwrap_or_default().as_bytes(),
        body: unsafe { bytes(opts.body, opts.body_len) }?,
        max_len: opts.storage.max_len,
        timeout_ms: nonzero_or(opts.timeout_ms, FOTA_DEFAULT_TIMEOUT_MS),
        idle_timeout_ms: nonzero_or(opts.idle_timeout_ms, FOTA_DEFAULT_IDLE_TIMEOUT_MS),
        max_redirects: opts.max_redirects,
        max_retries: opts.max_retries,
        retry_delay_ms: nonzero_or(opts.retry_delay_ms, FOTA_DEFAULT_RETRY_DELAY_MS),
        show_url: opts.show_url,
        allow_insecure_redirect: opts.allow_insecure_redirect,
        image_key: unsafe { bytes(opts.image_key, opts.image_key_len) }?,
        // SAFETY: a non-NULL image_sha256 points to 32 bytes (fota.h).
        image_sha256: unsafe { opts.image_sha256.cast::<[u8; 32]>().as_ref() },
        image_len: opts.image_len,
        allow_downgrade: opts.allow_downgrade,
        security_counter: opts.security_counter,
        state_interval: nonzero_or(opts.state_interval, FOTA_DEFAULT_STATE_INTERVAL),
        tls: TlsOptions {
            server_cert: unsafe { bytes(opts.server_cert, opts.server_cert_len) }?,
            client_cert: unsafe { bytes(opts.client_cert, opts.client_cert_len) }?,
            client_key: unsafe { bytes(opts.client_key, opts.client_key_len) }?,
            client_password: string(opts.client_password)?,
            insecure: opts.tls_insecure,
            max_fragment: opts.tls_max_fragment,
        },
    };
    let mut net = CNet {
        ops: platform.net,
        sock: None,
    };
    let mut flash = CFlash {
        ops: platform.flash,
        storage: opts.storage,
    };
    let mut sys = CSys {
        ops: platform.sys,
        progress: opts.progress_cb,
        progress_user: opts.progress_user,
    };
    session::run(
        ws,
        &mut net,
        &mut flash,
        &platform.sys,
        &mut sys,
        &STATUS,
        &session_opts,
    )
}

fn nonzero_or(value: u32, default: u32) -> u32 {
    if value == 0 {
        default
    } else {
        value
    }
}

/// A NUL-terminated UTF-8 string of at most `max` bytes; `None` for NULL.
///
/// SAFETY: a non-NULL `p` points to a NUL-terminated string. Reads stop at
/// the NUL or after `max + 1` bytes, so an over-long string is never read
/// past its terminator.
unsafe fn c_str<'a>(p: *const c_char, max: usize) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    let mut len = 0;
    // SAFETY: every byte read is at or before the terminator (see above).
    while unsafe { *p.add(len) } != 0 {
        len += 1;
        if len > max {
            return Err(Error::InvalidArg);
        }
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
    core::str::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::InvalidArg)
}

/// A byte buffer given as pointer and length; NULL is empty only with length 0.
///
/// SAFETY: a non-NULL `p` points to `len` readable bytes.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> Result<&'a [u8], Error> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::InvalidArg)
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArg);
    }
    // SAFETY: see the function's contract.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// Longest host name passed to `connect` (a DNS name is at most 253 bytes).
const HOST_CSTR_MAX: usize = 256;

struct CNet {
    ops: fota_net_ops_t,
    sock: Option<i32>,
}

impl Transport for CNet {
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u32) -> Result<(), Error> {
        let connect = self.ops.connect.ok_or(Error::InvalidArg)?;
        let mut name = [0u8; HOST_CSTR_MAX];
        let slot = name
            .get_mut(..host.len())
            .filter(|_| host.len() < HOST_CSTR_MAX);
        slot.ok_or(Error::Url)?.copy_from_slice(host.as_bytes());
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let sock = unsafe { connect(self.ops.ctx, name.as_ptr().cast(), port, timeout_ms) };
        if sock < 0 {
            return Err(Error::Connect);
        }
        self.sock = Some(sock);
        Ok(())
    }

    fn close(&mut self) {
        if let (Some(close), Some(sock)) = (self.ops.close, self.sock.take()) {
            // SAFETY: closes the handle `connect` returned, once.
            unsafe { close(self.ops.ctx, sock) };
        }
    }
}

impl Stream for CNet {
    fn send(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, Error> {
        let (send, sock) = self.ops.send.zip(self.sock).ok_or(Error::Disconnected)?;
        // SAFETY: `data` is valid for `data.len()` bytes during the call.
        let n = unsafe { send(self.ops.ctx, sock, data.as_ptr(), data.len(), timeout_ms) };
        match usize::try_from(n) {
            Ok(n) if n > 0 && n <= data.len() => Ok(n),
            _ if n == FOTA_NET_WOULD_BLOCK => Ok(0),
            _ => Err(Error::Disconnected),
        }
    }

    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error> {
        let (recv, sock) = self.ops.recv.zip(self.sock).ok_or(Error::Disconnected)?;
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        let n = unsafe { recv(self.ops.ctx, sock, buf.as_mut_ptr(), buf.len(), timeout_ms) };
        match usize::try_from(n) {
            Ok(0) => Ok(Received::Closed),
            Ok(n) if n <= buf.len() => Ok(Received::Data(n)),
            _ if n == FOTA_NET_WOULD_BLOCK => Ok(Received::Idle),
            _ => Err(Error::Disconnected),
        }
    }
}

struct CFlash {
    ops: fota_flash_ops_t,
    storage: fota_storage_t,
}

/// A hook's status: >= 0 is success.
fn flash_status(ret: i32) -> Result<(), Error> {
    if ret >= 0 {
        Ok(())
    } else {
        Err(Error::Flash)
    }
}

impl Flash for CFlash {
    fn granularity(&self) -> u32 {
        self.ops.write_granularity
    }

    fn init(&mut self, image_len: u32) -> Result<(), Error> {
        let init = self.ops.init.ok_or(Error::Flash)?;
        // SAFETY: `storage` lives in `self` for the whole call.
        flash_status(unsafe { init(self.ops.ctx, &self.storage, image_len) })
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        let write = self.ops.write.ok_or(Error::Flash)?;
        // SAFETY: `data` is valid for `data.len()` bytes during the call.
        flash_status(unsafe { write(self.ops.ctx, offset, data.as_ptr(), data.len()) })
    }

    fn done(&mut self) -> Result<bool, Error> {
        let Some(done) = self.ops.done else {
            return Ok(true);
        };
        // SAFETY: a hook installed by fota_init().
        match unsafe { done(self.ops.ctx) } {
            0 => Ok(true),
            n if n > 0 => Ok(false),
            _ => Err(Error::Flash),
        }
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        let end = self.ops.end.ok_or(Error::Flash)?;
        // SAFETY: a hook installed by fota_init().
        flash_status(unsafe { end(self.ops.ctx, commit) })
    }

    fn can_read(&self) -> bool {
        self.ops.read.is_some()
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        let read = self.ops.read.ok_or(Error::Flash)?;
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        flash_status(unsafe { read(self.ops.ctx, offset, buf.as_mut_ptr(), buf.len()) })
    }

    fn can_persist(&self) -> bool {
        self.ops.reopen.is_some() && self.ops.state_load.is_some() && self.ops.state_save.is_some()
    }

    fn reopen(&mut self, image_len: u32, offset: u32) -> Result<u32, Error> {
        let reopen = self.ops.reopen.ok_or(Error::Flash)?;
        // SAFETY: `storage` lives in `self` for the whole call.
        let kept = unsafe { reopen(self.ops.ctx, &self.storage, image_len, offset) };
        u32::try_from(kept).map_err(|_| Error::Flash)
    }

    fn state_load(&mut self, slot: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let load = self.ops.state_load.ok_or(Error::Flash)?;
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        let n = unsafe { load(self.ops.ctx, slot, buf.as_mut_ptr(), buf.len()) };
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or(Error::Flash)
    }

    fn state_save(&mut self, slot: u32, data: &[u8]) -> Result<(), Error> {
        let save = self.ops.state_save.ok_or(Error::Flash)?;
        // SAFETY: `data` is valid for `data.len()` bytes during the call.
        flash_status(unsafe { save(self.ops.ctx, slot, data.as_ptr(), data.len()) })
    }
}

struct CSys {
    ops: fota_sys_ops_t,
    progress: fota_progress_cb_t,
    progress_user: *mut c_void,
}

impl Clock for fota_sys_ops_t {
    fn now_ms(&self) -> u32 {
        match self.now_ms {
            // SAFETY: a hook installed by fota_init().
            Some(now) => unsafe { now(self.ctx) },
            None => 0,
        }
    }

    fn sleep_ms(&self, ms: u32) {
        if let Some(sleep) = self.sleep_ms {
            // SAFETY: a hook installed by fota_init().
            unsafe { sleep(self.ctx, ms) };
        }
    }

    /// From the request's own copy of the hooks, never from the table a
    /// later `fota_init()` may replace.
    fn unix_time(&self) -> Option<u64> {
        // SAFETY: a hook installed by fota_init().
        let seconds = unsafe { self.unix_time?(self.ctx) };
        (seconds != 0).then_some(seconds)
    }
}

impl System for CSys {
    fn log(&mut self, level: Level, msg: &str) {
        if let Some(log) = self.ops.log {
            // SAFETY: `msg` is valid for `msg.len()` bytes during the call.
            unsafe { log(self.ops.ctx, level as i32, msg.as_ptr().cast(), msg.len()) };
        }
    }

    fn progress(&mut self, written: u32, total: u32) {
        if let Some(cb) = self.progress {
            // SAFETY: the caller's callback from the options.
            unsafe { cb(written, total, self.progress_user) };
        }
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let random = self.ops.random.ok_or(Error::InvalidArg)?;
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        match unsafe { random(self.ops.ctx, buf.as_mut_ptr(), buf.len()) } {
            0 => Ok(()),
            _ => Err(Error::Tls),
        }
    }
}

/// A `#![no_std]` library cannot unwind; nothing in fota panics on any input,
/// so reaching this is a bug: tell the firmware through the `fatal` hook and
/// trap, rather than run on corrupted state or hang with the lock held.
#[cfg(not(any(test, feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    const REASON: &str = "fota: internal error (panic)";
    // try_lock: the panic may have happened while the table was locked.
    let sys = PLATFORM.try_lock().and_then(|p| *p).map(|p| p.0.sys);
    if let Some(fatal) = sys.and_then(|s| s.fatal.zip(Some(s.ctx))) {
        // SAFETY: a hook installed by fota_init(), given a static string.
        unsafe { (fatal.0)(fatal.1, REASON.as_ptr().cast(), REASON.len()) };
    }
    trap()
}

/// Ends execution in a way the firmware sees: an undefined instruction on
/// bare metal (a HardFault on Arm), `abort()` where there is a C library.
#[cfg(not(any(test, feature = "std")))]
fn trap() -> ! {
    #[cfg(not(target_os = "none"))]
    {
        extern "C" {
            fn abort() -> !;
        }
        // SAFETY: the C library's abort() takes nothing and never returns.
        unsafe { abort() }
    }
    #[cfg(target_os = "none")]
    loop {
        // SAFETY: the instruction only raises the CPU's undefined-instruction
        // exception; the loop covers a handler that returns.
        #[cfg(target_arch = "arm")]
        unsafe {
            core::arch::asm!("udf #0xfe")
        };
        #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
        unsafe {
            core::arch::asm!("unimp")
        };
        #[cfg(not(any(target_arch = "arm", target_arch = "riscv32", target_arch = "riscv64")))]
        core::hint::spin_loop();
    }
}

/// The strings the header promises, checked here so they cannot drift.
const _: () = {
    assert!(FOTA_LOG_ERROR == Level::Error as i32);
    assert!(FOTA_LOG_DEBUG == Level::Debug as i32);
    assert!(FOTA_STATE_WAITING_RETRY == State::WaitingRetry as u32);
    assert!(FOTA_VERIFY_NONE == Reason::None as u32);
    assert!(FOTA_VERIFY_LENGTH == Reason::Length as u32);
    assert!(FOTA_VERIFY_SHA256 == Reason::Sha256 as u32);
    assert!(FOTA_VERIFY_REPR_DIGEST == Reason::ReprDigest as u32);
    assert!(FOTA_VERIFY_HEADER == Reason::Header as u32);
    assert!(FOTA_VERIFY_TLV == Reason::Tlv as u32);
    assert!(FOTA_VERIFY_IMAGE_HASH == Reason::ImageHash as u32);
    assert!(FOTA_VERIFY_KEY_HASH == Reason::KeyHash as u32);
    assert!(FOTA_VERIFY_SIGNATURE == Reason::Signature as u32);
    assert!(FOTA_VERIFY_DOWNGRADE == Reason::Downgrade as u32);
    assert!(FOTA_VERIFY_SECURITY_COUNTER == Reason::SecurityCounter as u32);
    assert!(FOTA_VERIFY_READBACK == Reason::Readback as u32);
};
