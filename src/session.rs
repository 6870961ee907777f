//! One request, start to finish: connect, send, read the head, stream the body
//! into flash, finish. The session talks to the world only through the
//! [`Transport`], [`Flash`] and [`System`] traits, so tests drive it with
//! scripted doubles and the FFI layer with the C hook tables.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use crate::decimal::{decimal, U32_DIGITS};
use crate::http::{self, ChunkStep, ChunkedDecoder, Framing, Head};
use crate::result::Error;
use crate::timer::Timer;
#[cfg(feature = "tls")]
use crate::tls::{self, Credentials};

use crate::url::{self, DeviceParams, Scheme, Url, FOTA_URL_MAX};

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
/// Pause between two `done()` polls while the flash reports busy.
pub const FOTA_DONE_POLL_MS: u32 = 10;

/// What a receive produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// This many bytes were stored at the start of the buffer (at least 1).
    Data(usize),
    /// Nothing arrived within the timeout.
    Idle,
    /// The peer closed the connection in an orderly way.
    Closed,
}

/// A byte stream to one server: a TCP connection, or TLS on top of it.
pub trait Stream {
    /// Sends some of `data`; `Ok(0)` when nothing could be sent within the timeout.
    fn send(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, Error>;
    /// Receives into `buf`. A broken connection is `Err(Disconnected)`.
    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error>;
}

/// TCP connections, one at a time.
pub trait Transport: Stream {
    /// Opens a connection. Errors: `Connect`.
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u32) -> Result<(), Error>;
    /// Closes the connection; called once after every successful `connect`.
    fn close(&mut self);
}

/// A monotonic millisecond clock (shared by the session and the TLS layer).
pub trait Clock {
    /// Milliseconds from a monotonic clock; wraps around.
    fn now_ms(&self) -> u32;

    /// Seconds since 1970 for certificate validity checks, `None` when the
    /// date is unknown (validity is then not checked). An associated function
    /// because the TLS verifier asks for the time without a handle.
    fn unix_time() -> Option<u64>
    where
        Self: Sized,
    {
        None
    }
}

/// The update area in flash.
pub trait Flash {
    /// Write granularity: 0 for any, else a power of two up to
    /// [`FOTA_WRITE_GRANULARITY_MAX`]; writes are then whole aligned blocks
    /// except the last.
    fn granularity(&self) -> u32;
    /// Prepares the area for an image of `image_len` bytes (0 = unknown).
    fn init(&mut self, image_len: u32) -> Result<(), Error>;
    /// Writes `data` at `offset` from the start of the image.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error>;
    /// `Ok(true)` when the area is finished, `Ok(false)` while still busy.
    fn done(&mut self) -> Result<bool, Error>;
    /// Commits the image for the bootloader, or discards it.
    fn end(&mut self, commit: bool) -> Result<(), Error>;
}

/// Log levels, as passed to the log hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Sleep, randomness, log and progress reporting.
pub trait System {
    /// Blocks the calling task for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u32);
    /// A log line (without a line terminator).
    fn log(&mut self, level: Level, msg: &str);
    /// Called after each flash write with the bytes written so far and the
    /// total (0 if unknown).
    fn progress(&mut self, written: u32, total: u32);
    /// Fills `buf` from a cryptographic random source (TLS needs it).
    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error>;
}

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
        }
    }
}

/// Request states reported by `fota_get_progress()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Idle = 0,
    Connecting = 1,
    Sending = 2,
    ReceivingHead = 3,
    Downloading = 4,
    Finishing = 5,
    WaitingRetry = 6,
}

/// Live figures of the running request, readable from any task (atomics).
pub struct Status {
    state: AtomicU32,
    written: AtomicU32,
    total: AtomicU32,
    retries: AtomicU32,
    http_status: AtomicU32,
    platform_code: AtomicI32,
    abort: AtomicBool,
    running: AtomicBool,
}

/// A copy of [`Status`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub state: u32,
    pub written: u32,
    pub total: u32,
    pub retries: u32,
    pub http_status: u32,
    pub platform_code: i32,
}

impl Status {
    /// All zero, idle.
    pub const fn new() -> Self {
        Status {
            state: AtomicU32::new(0),
            written: AtomicU32::new(0),
            total: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            http_status: AtomicU32::new(0),
            platform_code: AtomicI32::new(0),
            abort: AtomicBool::new(false),
            running: AtomicBool::new(false),
        }
    }

    /// Current figures.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            http_status: self.http_status.load(Ordering::Relaxed),
            platform_code: self.platform_code.load(Ordering::Relaxed),
        }
    }

    /// Asks the running request to stop; a no-op when none runs.
    pub fn request_abort(&self) {
        if self.running.load(Ordering::Acquire) {
            self.abort.store(true, Ordering::Release);
        }
    }

    fn begin(&self) {
        self.abort.store(false, Ordering::Release);
        self.written.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.retries.store(0, Ordering::Relaxed);
        self.http_status.store(0, Ordering::Relaxed);
        self.platform_code.store(0, Ordering::Relaxed);
        self.set_state(State::Idle);
        self.running.store(true, Ordering::Release);
    }

    fn finish(&self) {
        self.running.store(false, Ordering::Release);
        self.abort.store(false, Ordering::Release);
        self.set_state(State::Idle);
    }

    fn set_state(&self, state: State) {
        self.state.store(state as u32, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

impl Default for Status {
    fn default() -> Self {
        Self::new()
    }
}

/// The buffers of one request; owned by whoever holds the request lock.
pub struct Workspace {
    rx: [u8; FOTA_RX_BUF],
    /// Two URL buffers: the current URL and the target of a redirect.
    urls: [[u8; FOTA_URL_MAX]; 2],
    #[cfg(feature = "tls")]
    tls: tls::TlsBuffers,
}

impl Workspace {
    /// Zeroed buffers (placed in `.bss` when static).
    pub const fn new() -> Self {
        Workspace {
            rx: [0; FOTA_RX_BUF],
            urls: [[0; FOTA_URL_MAX]; 2],
            #[cfg(feature = "tls")]
            tls: tls::TlsBuffers::new(),
        }
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one request to its end. The flash is committed only when `Ok(())`.
#[allow(clippy::too_many_arguments)]
pub fn run<T: Transport, F: Flash, C: Clock, S: System>(
    ws: &mut Workspace,
    net: &mut T,
    flash: &mut F,
    clock: &C,
    sys: &mut S,
    status: &Status,
    opts: &Options<'_>,
) -> Result<(), Error> {
    status.begin();
    let timer = Timer::start(clock, status, opts.timeout_ms, opts.idle_timeout_ms);
    let mut session = Session {
        flash,
        sys,
        status,
        opts,
        timer: &timer,
        image: Image::NONE,
    };
    let outcome = session.request(net, ws);
    if outcome.is_err() {
        // The image is incomplete or failed a check: never leave it marked good.
        session.discard();
    }
    if let Err(e) = outcome {
        let mut line = Line::new();
        line.push("request ended: ");
        line.push(crate::result::name(e as i32).to_str().unwrap_or_default());
        session.log(Level::Warn, &line);
    }
    status.finish();
    outcome
}

/// What one connection achieved.
enum Verdict {
    /// The image was stored and committed.
    Done,
    /// Follow the `Location` found at this range of the receive buffer.
    Redirect(core::ops::Range<usize>),
    /// The continuation did not match the image begun earlier; it was
    /// discarded and the next connection starts from byte 0.
    Restart,
}

/// What to send on one connection.
#[derive(Clone, Copy)]
struct Exchange<'a> {
    target: &'a Url<'a>,
    port: u16,
    extra_ends_with_crlf: bool,
    may_redirect: bool,
}

/// What https needs: the TLS record buffers and the checked credentials.
#[cfg(feature = "tls")]
struct Secure<'w> {
    rx: &'w mut [u8],
    tx: &'w mut [u8],
    creds: Credentials<'w>,
}

/// Without the `tls` feature there is nothing to carry.
#[cfg(not(feature = "tls"))]
struct Secure<'w>(core::marker::PhantomData<&'w ()>);

impl Secure<'_> {
    /// Refuses https before any traffic when it cannot be done safely.
    #[cfg(feature = "tls")]
    fn check<S: System>(&self, sys: &mut S) -> Result<(), Error> {
        // Without a random source there is no handshake: refuse before connecting.
        sys.random(&mut [0u8; 1])?;
        if !self.creds.usable() {
            sys.log(
                Level::Error,
                "https needs a CA certificate (server_cert) or tls_insecure",
            );
            return Err(Error::Tls);
        }
        if self.creds.insecure() {
            sys.log(
                Level::Warn,
                "tls_insecure: the server's certificate is NOT verified",
            );
        }
        Ok(())
    }

    #[cfg(not(feature = "tls"))]
    fn check<S: System>(&self, sys: &mut S) -> Result<(), Error> {
        sys.log(Level::Error, "https:// needs the tls feature");
        Err(Error::Url)
    }
}

/// Where the bytes of a body go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Into flash, in order.
    Flash,
    /// Kept at the start of the buffer, to be read as a refusal.
    Buffer,
}

/// Longest `ETag` / `Last-Modified` value kept for `If-Range`.
const VALIDATOR_MAX: usize = 96;

/// The image in the update area, across connections.
struct Image {
    /// `init` succeeded and `end` was not called yet.
    open: bool,
    /// Bytes written, in order from 0: where a continuation must start.
    written: u32,
    /// Length announced by the first response (0: unknown).
    total: u32,
    /// The first response's `ETag` (or `Last-Modified`), `validator_len` bytes.
    validator: [u8; VALIDATOR_MAX],
    validator_len: usize,
}

impl Image {
    const NONE: Image = Image {
        open: false,
        written: 0,
        total: 0,
        validator: [0; VALIDATOR_MAX],
        validator_len: 0,
    };

    fn validator(&self) -> Option<&[u8]> {
        self.validator
            .get(..self.validator_len)
            .filter(|v| !v.is_empty())
    }

    /// Only a body of known length can be continued with a Range request.
    fn resume_from(&self) -> Option<u32> {
        (self.open && self.total > 0 && self.written > 0).then_some(self.written)
    }
}

struct Session<'s, F, C: Clock, S> {
    flash: &'s mut F,
    sys: &'s mut S,
    status: &'s Status,
    opts: &'s Options<'s>,
    timer: &'s Timer<'s, C>,
    image: Image,
}

/// Failures after which a new connection may succeed.
fn retryable(e: Error) -> bool {
    matches!(e, Error::Connect | Error::Disconnected | Error::Timeout)
}

impl<F: Flash, C: Clock, S: System> Session<'_, F, C, S> {
    fn request<T: Transport>(&mut self, net: &mut T, ws: &mut Workspace) -> Result<(), Error> {
        // Argument errors before any traffic (and before the method is logged).
        http::check_method(self.opts.method)?;
        let extra_ends_with_crlf = http::check_extra_headers(self.opts.headers)?;
        let granularity = self.flash.granularity();
        if granularity > FOTA_WRITE_GRANULARITY_MAX
            || (granularity != 0 && !granularity.is_power_of_two())
        {
            return Err(Error::InvalidArg);
        }
        let Workspace {
            rx,
            urls: [first, second],
            #[cfg(feature = "tls")]
                tls: tls_buffers,
        } = ws;
        #[cfg(feature = "tls")]
        let mut secure = {
            let (tls_rx, tls_tx, store) = tls::split(tls_buffers);
            Secure {
                rx: tls_rx,
                tx: tls_tx,
                creds: tls::load(&self.opts.tls, store)?,
            }
        };
        #[cfg(not(feature = "tls"))]
        let mut secure = Secure(core::marker::PhantomData);
        let (mut current, mut spare) = (first, second);
        let mut url_len = url::compose(current, self.opts.url, &self.opts.params)?.len();
        let mut redirects_left = self.opts.max_redirects;
        let mut retries = 0u32;
        loop {
            let text = current
                .get(..url_len)
                .and_then(|b| core::str::from_utf8(b).ok())
                .ok_or(Error::Url)?;
            let target = url::parse(text)?;
            if target.scheme == Scheme::Https {
                secure.check(&mut *self.sys)?;
            }
            if self.opts.show_url {
                let mut line = Line::from(self.opts.method);
                line.push(" ");
                line.push(text);
                self.log(Level::Info, &line);
            }
            let port = target.effective_port(self.opts.port);
            let exchange = Exchange {
                target: &target,
                port,
                extra_ends_with_crlf,
                may_redirect: redirects_left > 0,
            };
            let failure = match self.connection(net, rx, &mut secure, &exchange) {
                Ok(Verdict::Done) => return Ok(()),
                Ok(Verdict::Redirect(location)) => {
                    redirects_left = redirects_left.saturating_sub(1);
                    let value = rx
                        .get(location)
                        .and_then(|b| core::str::from_utf8(b).ok())
                        .ok_or(Error::Response)?;
                    url_len = url::resolve_location(spare, &target, value)?.len();
                    core::mem::swap(&mut current, &mut spare);
                    continue;
                }
                Ok(Verdict::Restart) => Error::Response,
                Err(e) if retryable(e) => e,
                Err(e) => return Err(e),
            };
            // Out of retries, or out of time for the pause before the next
            // one: the failure that ended the last connection is the answer.
            if retries >= self.opts.max_retries || !self.backoff_fits(retries + 1)? {
                return Err(failure);
            }
            retries += 1;
            self.status.retries.store(retries, Ordering::Relaxed);
            let mut line = Line::from("retry ");
            line.push_num(retries);
            line.push(" after ");
            line.push(
                crate::result::name(failure as i32)
                    .to_str()
                    .unwrap_or_default(),
            );
            line.push(" at byte ");
            line.push_num(self.image.written);
            self.log(Level::Warn, &line);
            self.backoff(retries)?;
        }
    }

    /// One connection: connect, exchange, close.
    fn connection<T: Transport>(
        &mut self,
        net: &mut T,
        rx: &mut [u8; FOTA_RX_BUF],
        secure: &mut Secure<'_>,
        exchange: &Exchange<'_>,
    ) -> Result<Verdict, Error> {
        self.timer.check_abort()?;
        self.status.set_state(State::Connecting);
        net.connect(
            exchange.target.host,
            exchange.port,
            self.timer.connect_timeout()?,
        )?;
        let verdict = match exchange.target.scheme {
            Scheme::Http => self.exchange(net, rx, exchange),
            Scheme::Https => self.secure_exchange(net, rx, secure, exchange),
        };
        net.close();
        verdict
    }

    /// The exchange inside a TLS connection (a new handshake every time).
    #[cfg(feature = "tls")]
    fn secure_exchange<T: Transport>(
        &mut self,
        net: &mut T,
        rx: &mut [u8; FOTA_RX_BUF],
        secure: &mut Secure<'_>,
        exchange: &Exchange<'_>,
    ) -> Result<Verdict, Error> {
        let io = tls::IoState::default();
        let mut stream = tls::open(
            net,
            secure.rx,
            secure.tx,
            self.timer,
            &io,
            &mut *self.sys,
            exchange.target.host,
            &secure.creds,
        )?;
        let verdict = self.exchange(&mut stream, rx, exchange);
        stream.close();
        verdict
    }

    /// Without the `tls` feature, https is refused before connecting.
    #[cfg(not(feature = "tls"))]
    fn secure_exchange<T: Transport>(
        &mut self,
        _: &mut T,
        _: &mut [u8; FOTA_RX_BUF],
        _: &mut Secure<'_>,
        _: &Exchange<'_>,
    ) -> Result<Verdict, Error> {
        Err(Error::Url)
    }

    /// The pause before retry number `retry` (from 1): `retry_delay_ms`
    /// doubled for each earlier retry, at most `FOTA_RETRY_DELAY_MAX_MS`.
    fn backoff_delay(&self, retry: u32) -> u32 {
        let doublings = retry.saturating_sub(1).min(16);
        self.opts
            .retry_delay_ms
            .saturating_mul(1 << doublings)
            .min(FOTA_RETRY_DELAY_MAX_MS)
    }

    /// Whether the pause before retry `retry` ends before the deadline.
    fn backoff_fits(&self, retry: u32) -> Result<bool, Error> {
        let left = self.timer.left()?;
        Ok(self.backoff_delay(retry) < left)
    }

    /// Sleeps before retry number `retry`, in abort slices.
    fn backoff(&mut self, retry: u32) -> Result<(), Error> {
        self.status.set_state(State::WaitingRetry);
        let mut delay = self.backoff_delay(retry);
        while delay > 0 {
            self.timer.check_abort()?;
            let slice = delay.min(FOTA_ABORT_SLICE_MS);
            self.sys.sleep_ms(slice);
            self.timer.slept(slice);
            delay -= slice;
        }
        Ok(())
    }

    /// Sends the request on the open connection and handles the response.
    fn exchange<N: Stream + ?Sized>(
        &mut self,
        stream: &mut N,
        rx: &mut [u8; FOTA_RX_BUF],
        exchange: &Exchange<'_>,
    ) -> Result<Verdict, Error> {
        let Exchange {
            target,
            port,
            extra_ends_with_crlf,
            may_redirect,
        } = *exchange;
        self.status.set_state(State::Sending);
        let resume_from = self.image.resume_from();
        let (host, out) = rx.split_at_mut(HOST_MAX);
        let host_len = url::write_host_header(host, target, port)?;
        let host = host
            .get(..host_len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or(Error::Url)?;
        let body = self.opts.body;
        // A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
        let if_range = resume_from
            .and(self.image.validator())
            .filter(|v| !v.starts_with(b"W/"));
        let head_len = http::write_request_head(
            out,
            &http::Request {
                method: self.opts.method,
                target: target.target,
                host,
                range_from: resume_from,
                if_range,
                body_len: (!body.is_empty()).then_some(body.len()),
            },
        )?;
        let timer = self.timer;
        timer.send_all(stream, out.get(..head_len).ok_or(Error::Url)?)?;
        let extra = self.opts.headers;
        timer.send_all(stream, extra)?;
        if !extra.is_empty() && !extra_ends_with_crlf {
            timer.send_all(stream, b"\r\n")?;
        }
        timer.send_all(stream, b"\r\n")?;
        timer.send_all(stream, body)?;

        self.status.set_state(State::ReceivingHead);
        let (head, filled) = self.read_head(stream, rx)?;
        self.status
            .http_status
            .store(u32::from(head.status), Ordering::Relaxed);
        let mut line = Line::from("status ");
        line.push_num(u32::from(head.status));
        self.log(Level::Debug, &line);
        match head.status {
            200 | 206 => self.download(stream, rx, &head, filled, resume_from),
            416 if resume_from.is_some() => {
                self.discard();
                Ok(Verdict::Restart)
            }
            301 | 302 | 303 | 307 | 308 if may_redirect => {
                head.location.map(Verdict::Redirect).ok_or(Error::Response)
            }
            s if s >= 300 => Err(self.refusal(stream, rx, &head, filled)),
            _ => Err(Error::Response),
        }
    }

    /// Reads until a final (non-1xx) response head is complete; returns it and
    /// the bytes in `rx`.
    fn read_head<N: Stream + ?Sized>(
        &mut self,
        stream: &mut N,
        rx: &mut [u8; FOTA_RX_BUF],
    ) -> Result<(Head, usize), Error> {
        let head_request = self.opts.method == "HEAD";
        let mut filled = 0;
        let mut idle = self.timer.idle();
        loop {
            match http::parse_head(rx.get(..filled).unwrap_or_default(), head_request)? {
                Some(head) if (100..200).contains(&head.status) => {
                    // Interim response: drop it and parse what follows.
                    rx.copy_within(head.head_len.min(filled)..filled, 0);
                    filled -= head.head_len.min(filled);
                    continue;
                }
                Some(head) => return Ok((head, filled)),
                None => {}
            }
            let free = rx.get_mut(filled..).unwrap_or_default();
            if free.is_empty() {
                return Err(Error::Response);
            }
            match self.timer.receive(stream, free, &mut idle)? {
                Some(n) => filled += n,
                None => return Err(Error::Disconnected),
            }
        }
    }

    /// Streams a 200/206 body into flash and commits it. `resume_from` is
    /// the offset asked for with `Range`, if any.
    fn download<N: Stream + ?Sized>(
        &mut self,
        stream: &mut N,
        rx: &mut [u8; FOTA_RX_BUF],
        head: &Head,
        filled: usize,
        resume_from: Option<u32>,
    ) -> Result<Verdict, Error> {
        let length = match head.framing {
            Framing::None | Framing::Length(0) => return Err(Error::Response),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        match (head.status, resume_from) {
            (206, Some(from)) => {
                if !self.continues_image(rx, head, from, length) {
                    self.log(
                        Level::Warn,
                        &Line::from("continuation does not match: restart"),
                    );
                    self.discard();
                    return Ok(Verdict::Restart);
                }
            }
            (206, None) => {
                // No Range was asked for: only the whole image in one part is an image.
                let whole = matches!(
                    (head.content_range, length),
                    (Some(r), Some(n)) if r.first == 0 && r.total == Some(n) && r.last.checked_add(1) == Some(n)
                );
                if !whole {
                    return Err(Error::Response);
                }
                self.begin_image(rx, head, length)?;
            }
            // A 200 to a Range request: the server sends the whole image
            // again; never append it to the part already written.
            _ => self.begin_image(rx, head, length)?,
        }
        self.status.set_state(State::Downloading);
        self.body(stream, rx, head, filled, Sink::Flash)?;
        let complete = match self.image.total {
            0 => self.image.written > 0,
            total => self.image.written == total,
        };
        if !complete {
            return Err(Error::Response);
        }
        self.finish_flash().map(|()| Verdict::Done)
    }

    /// Whether a 206 answer to `Range: bytes=from-` continues the image
    /// begun earlier: same start, same total, same validator.
    fn continues_image(&self, rx: &[u8], head: &Head, from: u32, length: Option<u64>) -> bool {
        let total = u64::from(self.image.total);
        let range_ok = matches!(
            head.content_range,
            Some(r) if r.first == u64::from(from) && r.total == Some(total) && r.last.checked_add(1) == Some(total)
        );
        let length_ok = length.is_none_or(|n| Some(n) == total.checked_sub(u64::from(from)));
        let validator = head.validator.clone().and_then(|r| rx.get(r));
        let validator_ok = match (self.image.validator(), validator) {
            (Some(old), Some(new)) => old == new,
            _ => true,
        };
        range_ok && length_ok && validator_ok
    }

    /// Starts a new image from byte 0: discards a partial one, checks the
    /// length against `max_len`, calls `init`, keeps the validator.
    fn begin_image(&mut self, rx: &[u8], head: &Head, length: Option<u64>) -> Result<(), Error> {
        self.discard();
        let total = match length {
            Some(n) => {
                let n = u32::try_from(n).map_err(|_| Error::TooLarge)?;
                if self.opts.max_len != 0 && n > self.opts.max_len {
                    return Err(Error::TooLarge);
                }
                n
            }
            None => 0,
        };
        self.flash.init(total).map_err(|_| Error::Flash)?;
        self.image.open = true;
        self.image.total = total;
        let validator = head.validator.clone().and_then(|r| rx.get(r));
        match validator.filter(|v| v.len() <= VALIDATOR_MAX) {
            Some(v) => {
                self.image.validator_len = v.len();
                self.image
                    .validator
                    .iter_mut()
                    .zip(v)
                    .for_each(|(slot, &b)| *slot = b);
            }
            None => self.image.validator_len = 0,
        }
        self.status.total.store(total, Ordering::Relaxed);
        self.status.written.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Ends an open image with `end(false)` and forgets it (the progress
    /// figures stay, to show how far the request got).
    fn discard(&mut self) {
        if self.image.open {
            let _ = self.flash.end(false);
        }
        self.image = Image::NONE;
    }

    /// Reads a refusal body and turns it into the request's outcome.
    fn refusal<N: Stream + ?Sized>(
        &mut self,
        stream: &mut N,
        rx: &mut [u8; FOTA_RX_BUF],
        head: &Head,
        filled: usize,
    ) -> Error {
        let kept = match self.body(stream, rx, head, filled, Sink::Buffer) {
            Ok(kept) => kept,
            Err(Error::Aborted) => return Error::Aborted,
            // The status already said "no update"; a broken body cannot change that.
            Err(_) => 0,
        };
        let body = rx.get(..kept).unwrap_or_default();
        match http::platform_code(body) {
            Some(code) => {
                self.status.platform_code.store(code, Ordering::Relaxed);
                let mut line = Line::from("platform code ");
                if code < 0 {
                    line.push("-");
                }
                line.push_num(code.unsigned_abs());
                self.log(Level::Info, &line);
                if code == PLATFORM_ALREADY_NEWEST {
                    Error::NoUpdate
                } else {
                    Error::Platform
                }
            }
            None => Error::NoUpdate,
        }
    }

    /// Decodes the body that starts at `rx[head.head_len..filled]` and goes on
    /// on the connection. Data bytes are compacted to the start of `rx`; the
    /// flash sink writes them out (whole granularity blocks while more
    /// follows), the buffer sink keeps them until the buffer is full. Returns
    /// the bytes written (flash) or kept (buffer).
    fn body<N: Stream + ?Sized>(
        &mut self,
        stream: &mut N,
        rx: &mut [u8; FOTA_RX_BUF],
        head: &Head,
        filled: usize,
        sink: Sink,
    ) -> Result<usize, Error> {
        let granularity = self.flash.granularity() as usize;
        let mut remaining = match head.framing {
            Framing::Length(n) => n,
            Framing::None => 0,
            Framing::Chunked | Framing::UntilClose => u64::MAX,
        };
        let mut chunked = ChunkedDecoder::new();
        // rx[..pending]: body bytes not yet written; rx[raw..end]: bytes not yet decoded.
        let mut pending = 0usize;
        let mut raw = head.head_len.min(filled);
        let mut end = filled;
        let mut kept = 0usize;
        let mut ended = remaining == 0;
        let mut idle = self.timer.idle();
        loop {
            while raw < end && !ended {
                let input = rx.get(raw..end).unwrap_or_default();
                let (skip, data) = if head.framing == Framing::Chunked {
                    match chunked.step(input)? {
                        ChunkStep::Framing { consumed: 0 } => break,
                        ChunkStep::Framing { consumed } => (consumed, 0..0),
                        ChunkStep::Data { range } => (range.end, range),
                        ChunkStep::Done { .. } => {
                            ended = true;
                            (input.len(), 0..0)
                        }
                    }
                } else {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    remaining -= take as u64;
                    ended = remaining == 0;
                    // Bytes past Content-Length are not part of the image.
                    (input.len(), 0..take)
                };
                let len = data.len();
                move_within(rx, raw + data.start..raw + data.end, pending);
                pending += len;
                raw += skip;
            }
            if ended {
                end = raw;
            }
            let ready = match sink {
                Sink::Buffer if ended || end == rx.len() => return Ok(pending),
                Sink::Buffer => 0,
                Sink::Flash if ended || granularity == 0 => pending,
                Sink::Flash => pending - pending % granularity,
            };
            if ready > 0 {
                self.write(rx.get(..ready).unwrap_or_default())?;
                kept += ready;
            }
            if ended {
                return Ok(kept);
            }
            // Keep the unwritten data and the undecoded bytes at the front,
            // dropping what was written and the framing already decoded.
            let tail = pending - ready;
            move_within(rx, ready..pending, 0);
            move_within(rx, raw..end, tail);
            end = tail + (end - raw);
            raw = tail;
            pending = tail;
            let free = rx.get_mut(end..).unwrap_or_default();
            if free.is_empty() {
                return Err(Error::Response);
            }
            match self.timer.receive(stream, free, &mut idle)? {
                Some(n) => end += n,
                None if head.framing == Framing::UntilClose || sink == Sink::Buffer => ended = true,
                None => return Err(Error::Disconnected),
            }
        }
    }

    /// Appends one run of body bytes to the image, within `max_len` and
    /// within the length `init` was given (a continuation framed by chunks
    /// or by the close can carry more than its `Content-Range` announced).
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let offset = self.image.written;
        let next = u32::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or(Error::TooLarge)?;
        if self.opts.max_len != 0 && next > self.opts.max_len {
            return Err(Error::TooLarge);
        }
        if self.image.total != 0 && next > self.image.total {
            return Err(Error::Response);
        }
        self.timer.check_abort()?;
        self.flash.write(offset, data).map_err(|_| Error::Flash)?;
        self.image.written = next;
        self.status.written.store(next, Ordering::Relaxed);
        let total = self.status.total.load(Ordering::Relaxed);
        self.sys.progress(next, total);
        Ok(())
    }

    /// Polls `done()` until the flash is finished, then commits.
    fn finish_flash(&mut self) -> Result<(), Error> {
        self.status.set_state(State::Finishing);
        loop {
            self.timer.check_abort()?;
            if self.flash.done().map_err(|_| Error::Flash)? {
                break;
            }
            self.timer.left()?;
            self.sys.sleep_ms(FOTA_DONE_POLL_MS);
            self.timer.slept(FOTA_DONE_POLL_MS);
        }
        self.image.open = false;
        self.flash.end(true).map_err(|_| Error::Flash)
    }

    fn log(&mut self, level: Level, line: &Line) {
        self.sys.log(level, line.as_str());
    }
}

/// `buf.copy_within(src, dest)`, skipped when nothing would move: most body
/// bytes are already in place, and a `memmove` onto itself still copies
/// every byte on targets whose `memmove` does not check (compiler-builtins).
fn move_within(buf: &mut [u8], src: core::ops::Range<usize>, dest: usize) {
    if src.start != dest && !src.is_empty() {
        buf.copy_within(src, dest);
    }
}

/// Platform refusal code meaning "already the newest version".
const PLATFORM_ALREADY_NEWEST: i32 = 27;
/// Room for the `Host` header value: a 253-byte name, brackets and a port.
const HOST_MAX: usize = 272;

/// A log line assembled without `core::fmt`, truncated at its capacity.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    fn from(text: &str) -> Self {
        let mut line = Line::new();
        line.push(text);
        line
    }

    fn push(&mut self, text: &str) {
        for (slot, byte) in self.buf.iter_mut().skip(self.len).zip(text.bytes()) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_num(&mut self, n: u32) {
        self.push(decimal(n, &mut [0; U32_DIGITS]));
    }

    fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            // Truncation split a UTF-8 sequence: keep the valid prefix.
            Err(e) => bytes
                .get(..e.valid_up_to())
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests;
