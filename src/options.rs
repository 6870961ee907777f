//! What a request does: the options the caller gives (from `fota_opts_t`)
//! and the build-time limits.

use crate::url::DeviceParams;

/// Bytes of the receive buffer, a build-time choice: 4096 (firmware, the
/// default), 16384 with the cargo feature `rx-16k`, 65536 with `rx-64k`
/// (hosts; the CMake module's default for a host build). Each receive asks
/// for at most what is free of it. A response head must fit in it (a longer
/// head is `FOTA_ERR_RESPONSE`); the request head is written into it too.
#[cfg(not(any(feature = "rx-16k", feature = "rx-64k")))]
pub const FOTA_RX_BUF: usize = 4096;
/// Bytes of the receive buffer (`rx-16k`).
#[cfg(all(feature = "rx-16k", not(feature = "rx-64k")))]
pub const FOTA_RX_BUF: usize = 16384;
/// Bytes of the receive buffer (`rx-64k`; wins over `rx-16k`).
#[cfg(feature = "rx-64k")]
pub const FOTA_RX_BUF: usize = 65536;
/// Largest write granularity the flash hooks may declare.
pub const FOTA_WRITE_GRANULARITY_MAX: u32 = 4096;
/// Default overall deadline of a request (libfota2's default).
pub const FOTA_DEFAULT_TIMEOUT_MS: u32 = 300_000;
/// Default idle timeout: the longest wait for the next byte.
pub const FOTA_DEFAULT_IDLE_TIMEOUT_MS: u32 = 30_000;
/// Longest single wait inside a receive or send: bounds the latency of `fota_abort()`.
pub const FOTA_ABORT_SLICE_MS: u32 = 250;
/// Default of `max_retries`: reconnections after a failure that a new
/// connection may cure (connect failed, connection lost, idle timeout).
pub const FOTA_DEFAULT_MAX_RETRIES: u32 = 5;
/// Default of `retry_delay_ms`: the pause before the first retry; it doubles
/// for each further retry.
pub const FOTA_DEFAULT_RETRY_DELAY_MS: u32 = 1000;
/// Longest pause between two retries.
pub const FOTA_RETRY_DELAY_MAX_MS: u32 = 30_000;
/// Pause after a receive or send hook said "nothing yet" sooner than its
/// timeout (a non-blocking socket): the task yields instead of spinning.
pub const FOTA_IDLE_POLL_MS: u32 = 10;
/// Pause between two `done()` polls while the flash reports busy.
pub const FOTA_DONE_POLL_MS: u32 = 10;
/// Default bytes between two state saves (`fota_opts_t.state_interval` 0).
pub const FOTA_DEFAULT_STATE_INTERVAL: u32 = 64 * 1024;
/// Longest `ETag` / `Last-Modified` value kept for `If-Range` (a SHA-512 hex
/// ETag with quotes is 130 bytes). A longer one cannot prove a
/// continuation: the download then restarts from byte 0 after a drop.
pub const FOTA_VALIDATOR_MAX: usize = 256;

/// The TLS options of a request (from `fota_opts_t`); used for https.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsOptions<'a> {
    /// CA certificate(s), PEM (one or more) or DER (one).
    pub server_cert: &'a [u8],
    /// Client certificate, PEM or DER.
    pub client_cert: &'a [u8],
    /// Client key: SEC1 EC P-256 (`EC PRIVATE KEY`), PEM or DER.
    pub client_key: &'a [u8],
    /// Password of an encrypted key: not supported.
    pub client_password: Option<&'a str>,
    /// Skip certificate verification (logged on every request).
    pub insecure: bool,
    /// `max_fragment_length` to ask for: 0, 512, 1024, 2048 or 4096.
    pub max_fragment: u16,
}

/// What a request does, as the session needs it (the FFI layer fills it from
/// `fota_opts_t`).
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Custom URL; `None` for the LuatOS IoT platform.
    pub url: Option<&'a str>,
    /// Device parameters appended to the URL.
    pub params: DeviceParams<'a>,
    /// Port when the URL has none (0: the scheme's default).
    pub port: u16,
    /// HTTP method.
    pub method: &'a str,
    /// Extra header lines, `"Name: value"` separated by CRLF.
    pub headers: &'a [u8],
    /// Request body (sent with a `Content-Length` when not empty).
    pub body: &'a [u8],
    /// Most bytes the update area holds (0: no limit).
    pub max_len: u32,
    /// Overall deadline in milliseconds.
    pub timeout_ms: u32,
    /// Longest wait for the next byte in milliseconds.
    pub idle_timeout_ms: u32,
    /// Redirects followed (0: a 3xx is "no update", as in libfota).
    pub max_redirects: u8,
    /// Reconnections after a failure a new connection may cure.
    pub max_retries: u32,
    /// Pause before the first retry, doubled for each further one.
    pub retry_delay_ms: u32,
    /// TLS options, for https.
    pub tls: TlsOptions<'a>,
    /// Whether the URL may be logged (it carries the device parameters).
    pub show_url: bool,
    /// Whether a redirect from https to plain http may be followed (it drops
    /// the server's authentication; refused with `Tls` otherwise).
    pub allow_insecure_redirect: bool,
    /// MCUboot signing key (ECDSA P-256 public key, PEM or DER
    /// SubjectPublicKeyInfo); empty: images need not be signed.
    pub image_key: &'a [u8],
    /// The image's expected SHA-256, from the caller's manifest.
    pub image_sha256: Option<&'a [u8; 32]>,
    /// The image's expected length (0: unknown).
    pub image_len: u32,
    /// Accept an MCUboot image older than `params.version`.
    pub allow_downgrade: bool,
    /// The current security counter (0: not checked).
    pub security_counter: u32,
    /// Image bytes between two saves of the resume record (with state hooks).
    pub state_interval: u32,
}

impl Default for Options<'_> {
    /// The defaults of `fota_opts_init()`: a GET of the platform URL, default
    /// deadlines and retries, no limit, no redirects.
    fn default() -> Self {
        Options {
            url: None,
            params: DeviceParams::default(),
            port: 0,
            method: "GET",
            headers: b"",
            body: b"",
            max_len: 0,
            timeout_ms: FOTA_DEFAULT_TIMEOUT_MS,
            idle_timeout_ms: FOTA_DEFAULT_IDLE_TIMEOUT_MS,
            max_redirects: 0,
            max_retries: FOTA_DEFAULT_MAX_RETRIES,
            retry_delay_ms: FOTA_DEFAULT_RETRY_DELAY_MS,
            tls: TlsOptions::default(),
            show_url: true,
            allow_insecure_redirect: false,
            image_key: b"",
            image_sha256: None,
            image_len: 0,
            allow_downgrade: false,
            security_counter: 0,
            state_interval: FOTA_DEFAULT_STATE_INTERVAL,
        }
    }
}
