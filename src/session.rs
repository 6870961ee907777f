//! One request, start to finish: connect, send, read the head, frame the
//! body into the image, follow redirects, retry, finish. The session talks to
//! the world only through the traits of [`crate::hooks`], so tests drive it
//! with scripted doubles and the FFI layer with the C hook tables. A body byte
//! goes: transport -> HTTP framing (here, with [`crate::http`]) -> image
//! ([`crate::image`]) -> flash hook.

use crate::hooks::{Clock, Flash, Level, Stream, System, Transport};
use crate::http::{self, ChunkStep, ChunkedDecoder, Framing, Head};
use crate::image::Image;
use crate::line::Line;
use crate::mcuboot::HEADER_LEN;
use crate::options::{Options, FOTA_RETRY_DELAY_MAX_MS, FOTA_RX_BUF, FOTA_WRITE_GRANULARITY_MAX};
use crate::result::Error;
use crate::resume;
use crate::status::{State, Status};
use crate::timer::Timer;
#[cfg(feature = "tls")]
use crate::tls::{self, Credentials};
use crate::url::{self, Scheme, Url, FOTA_URL_MAX};
use crate::verify::{self, Checks};

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
    let outcome = match Checks::new(opts) {
        Err(e) => {
            sys.log(
                Level::Error,
                "image_key: not an ECDSA P-256 public key (PEM or DER SubjectPublicKeyInfo), or no signed-images feature",
            );
            Err(e)
        }
        Ok(checks) => {
            let mut session = Session {
                image: Image::new(flash, checks, opts.max_len),
                sys,
                status,
                opts,
                timer: &timer,
                jitter: None,
            };
            let outcome = session.request(net, ws);
            if let Err(e) = outcome {
                // The image is incomplete or failed a check: never leave it
                // marked good. After a failure a later request may cure,
                // the resume record keeps it for that request instead.
                let curable = retryable(e) || e == Error::Aborted;
                let kept = if curable {
                    session.image.suspend()
                } else {
                    None
                };
                if kept.is_none() {
                    session.image.discard();
                }
                session.ended(e, kept);
            }
            session.status.set_state_saves(session.image.saves());
            outcome
        }
    };
    status.finish();
    outcome
}

/// What one connection achieved.
enum Verdict {
    /// The image was stored and committed.
    Done,
    /// Follow the `Location` found at this range of the receive buffer.
    Redirect(core::ops::Range<usize>),
    /// The server is overloaded (429, 503): the refusal's outcome, and the
    /// pause it asked for in seconds (`Retry-After`), if any.
    Busy(Error, Option<u64>),
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
    /// What a redirect status leads to.
    redirects: Redirects,
}

/// How a redirect status is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Redirects {
    /// `max_redirects` is 0: a 3xx is "no update", as in libfota.
    Off,
    /// Follow it.
    Follow,
    /// The budget is spent: `FOTA_ERR_RESPONSE`.
    Spent,
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

struct Session<'s, F: Flash, C: Clock, S> {
    image: Image<'s, F>,
    sys: &'s mut S,
    status: &'s Status,
    opts: &'s Options<'s>,
    timer: &'s Timer<'s, C>,
    /// State of the fallback generator of retry pauses (seeded on first
    /// use when the platform has no random source).
    jitter: Option<u32>,
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
        let granularity = self.image.granularity();
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
        self.resume(current.get(..url_len).unwrap_or_default(), rx)?;
        let mut redirects_left = self.opts.max_redirects;
        // The scheme of the URL that redirected here (None: the caller's URL).
        let mut redirected_from = None;
        let mut retries = 0u32;
        loop {
            let text = current
                .get(..url_len)
                .and_then(|b| core::str::from_utf8(b).ok())
                .ok_or(Error::Url)?;
            let target = url::parse(text)?;
            if redirected_from == Some(Scheme::Https)
                && target.scheme == Scheme::Http
                && !self.opts.allow_insecure_redirect
            {
                self.log(
                    Level::Error,
                    &Line::from("redirect from https to http refused: it drops authentication"),
                );
                return Err(Error::Tls);
            }
            if target.scheme == Scheme::Https {
                secure.check(&mut *self.sys)?;
            }
            if self.opts.show_url {
                let mut line = Line::from(self.opts.method);
                line.push(" ");
                line.push(text);
                self.log(Level::Info, &line);
            }
            // `opts.port` is the default port of the caller's URL only, not
            // of one the server chose.
            let default_port = match redirected_from {
                None => self.opts.port,
                Some(_) => 0,
            };
            let exchange = Exchange {
                target: &target,
                port: target.effective_port(default_port),
                extra_ends_with_crlf,
                redirects: match (self.opts.max_redirects, redirects_left) {
                    (0, _) => Redirects::Off,
                    (_, 0) => Redirects::Spent,
                    _ => Redirects::Follow,
                },
            };
            let (failure, asked_pause) = match self.connection(net, rx, &mut secure, &exchange) {
                Ok(Verdict::Done) => return Ok(()),
                Ok(Verdict::Redirect(location)) => {
                    redirects_left = redirects_left.saturating_sub(1);
                    let value = rx
                        .get(location)
                        .and_then(|b| core::str::from_utf8(b).ok())
                        .ok_or(Error::Response)?;
                    url_len = url::resolve_location(spare, &target, value)?.len();
                    redirected_from = Some(target.scheme);
                    core::mem::swap(&mut current, &mut spare);
                    continue;
                }
                Ok(Verdict::Restart) => (Error::Response, None),
                Ok(Verdict::Busy(e, pause)) => (e, Some(pause)),
                Err(e) if retryable(e) => (e, None),
                Err(e) => return Err(e),
            };
            // Out of retries, or out of time for the pause before the next
            // one: the failure that ended the last connection is the answer.
            if retries >= self.opts.max_retries {
                return Err(failure);
            }
            let pause = match asked_pause {
                Some(Some(seconds)) => {
                    u32::try_from(seconds.saturating_mul(1000)).unwrap_or(u32::MAX)
                }
                _ => self.jittered_pause(retries + 1),
            };
            if pause >= self.timer.left()? {
                return Err(failure);
            }
            retries += 1;
            self.status.set_retries(retries);
            let mut line = Line::from("retry ");
            line.push_num(retries);
            line.push(" after ");
            line.push(
                crate::result::name(failure as i32)
                    .to_str()
                    .unwrap_or_default(),
            );
            line.push(" at byte ");
            line.push_num(self.image.written());
            line.push(" in ");
            line.push_num(pause);
            line.push(" ms");
            self.log(Level::Warn, &line);
            self.status.set_state(State::WaitingRetry);
            self.timer.sleep(pause)?;
        }
    }

    /// Takes up the image a record in the state slots describes, when it
    /// belongs to this request (`url`: the composed URL). Not inlined: the
    /// request id's hasher lives only while this runs, before any traffic.
    #[inline(never)]
    fn resume(&mut self, url: &[u8], rx: &mut [u8]) -> Result<(), Error> {
        if !self.image.persistent() {
            return Ok(());
        }
        let url = core::str::from_utf8(url).unwrap_or_default();
        let id = resume::request_id(self.opts.method, url, self.opts.image_sha256);
        let interval = self.opts.state_interval.max(1);
        let Some(from) = self.image.resume(id, interval, self.timer, rx)? else {
            return Ok(());
        };
        self.status.set_image(self.image.total());
        self.status.set_written(from);
        self.status.set_resumed_from(from);
        let mut line = Line::from("resumed at byte ");
        line.push_num(from);
        line.push(" of ");
        line.push_num(self.image.total());
        self.log(Level::Info, &line);
        Ok(())
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
    /// Not inlined: its frame (the TLS connection state, embedded-tls's
    /// handshake) stays off the plain-HTTP path and is not laid out
    /// together with the caller's (BENCHMARKS.md, HTTPS: -1 KB of stack).
    #[cfg(feature = "tls")]
    #[inline(never)]
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

    /// The pause before retry number `retry` (from 1), with full jitter:
    /// uniformly random from 0 to `retry_delay_ms` doubled for each earlier
    /// retry (at most `FOTA_RETRY_DELAY_MAX_MS`), so that devices that lost
    /// the same server do not come back in lockstep.
    fn jittered_pause(&mut self, retry: u32) -> u32 {
        let doublings = retry.saturating_sub(1).min(16);
        let ceiling = self
            .opts
            .retry_delay_ms
            .saturating_mul(1 << doublings)
            .min(FOTA_RETRY_DELAY_MAX_MS);
        // ceiling <= FOTA_RETRY_DELAY_MAX_MS: ceiling + 1 cannot overflow.
        self.random_u32() % (ceiling + 1)
    }

    /// 32 random bits from the platform's random source, or, without one,
    /// from a xorshift generator seeded with the device id and the clock.
    fn random_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        if self.sys.random(&mut bytes).is_ok() {
            return u32::from_le_bytes(bytes);
        }
        let state = self.jitter.get_or_insert_with(|| {
            let id = self.opts.params.device_id.map_or("", |(_, id)| id);
            let seed = id.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            (seed ^ self.timer.now()) | 1
        });
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
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
            redirects,
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
        let if_range = resume_from.and(self.image.if_range());
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
        self.status.set_http_status(head.status);
        let mut line = Line::from("status ");
        line.push_num(u32::from(head.status));
        self.log(Level::Debug, &line);
        match head.status {
            200 | 206 => self.download(stream, rx, &head, filled, resume_from),
            416 if resume_from.is_some() => {
                self.image.discard();
                Ok(Verdict::Restart)
            }
            301 | 302 | 303 | 307 | 308 if redirects == Redirects::Follow => {
                head.location.map(Verdict::Redirect).ok_or(Error::Response)
            }
            301 | 302 | 303 | 307 | 308 if redirects == Redirects::Spent => {
                self.log(Level::Error, &Line::from("too many redirects"));
                Err(Error::Response)
            }
            429 | 503 => {
                // Read the pause before the body reuses the buffer.
                let pause = head
                    .retry_after
                    .clone()
                    .and_then(|r| http::retry_after_seconds(rx.get(r)?, self.timer.unix_time()));
                let refused = self.refusal(stream, rx, &head, filled);
                match refused {
                    Error::Aborted => Err(refused),
                    _ => Ok(Verdict::Busy(refused, pause)),
                }
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
        let validator = head.validator.clone().and_then(|r| rx.get(r));
        let digest = match head.repr_digest.clone().and_then(|r| rx.get(r)) {
            Some(value) => verify::repr_digest_sha256(value)?,
            None => None,
        };
        match (head.status, resume_from) {
            (206, Some(from)) => {
                if !self.image.continues(head, validator, digest, from, length) {
                    self.log(
                        Level::Warn,
                        &Line::from("continuation does not prove the same image: restart"),
                    );
                    self.image.discard();
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
                self.begin_image(validator, digest, length)?;
            }
            // A 200 to a Range request: the server sends the whole image
            // again; never append it to the part already written.
            _ => self.begin_image(validator, digest, length)?,
        }
        self.status.set_state(State::Downloading);
        self.body(stream, rx, head, filled, Sink::Flash)?;
        // Commit refuses an incomplete image (FOTA_ERR_RESPONSE) itself.
        self.status.set_state(State::Finishing);
        self.image.commit(self.timer, rx).map(|()| Verdict::Done)
    }

    /// Starts a new image from byte 0 (see [`Image::begin`]).
    fn begin_image(
        &mut self,
        validator: Option<&[u8]>,
        digest: Option<[u8; 32]>,
        length: Option<u64>,
    ) -> Result<(), Error> {
        let total = self.image.begin(validator, digest, length)?;
        self.status.set_image(total);
        Ok(())
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
                self.status.set_platform_code(code);
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
        let granularity = self.image.granularity() as usize;
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
                // A signed image's header is checked whole, before `init`.
                Sink::Flash if self.image.awaits_header() && pending < HEADER_LEN && !ended => 0,
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
            match self.timer.receive(stream, free, &mut idle) {
                Ok(Some(n)) => end += n,
                Ok(None) if head.framing == Framing::UntilClose || sink == Sink::Buffer => {
                    ended = true
                }
                Ok(None) => return Err(Error::Disconnected),
                // A refusal on a connection that stays open: what arrived is
                // all there is to read.
                Err(Error::Timeout | Error::Disconnected) if sink == Sink::Buffer => ended = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one run of body bytes to the image and reports progress.
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.timer.check_abort()?;
        let written = self.image.write(data)?;
        self.status.set_written(written);
        self.sys.progress(written, self.status.total());
        Ok(())
    }

    /// Reports how the request failed: the check that refused the image, if
    /// one did, the result, and where a resume record keeps the image.
    fn ended(&mut self, e: Error, kept: Option<u32>) {
        let refused = self.image.refused();
        if e == Error::Verify {
            self.status.set_verify_reason(refused as u32);
            let mut line = Line::from("image refused: ");
            line.push(refused.name());
            self.log(Level::Error, &line);
        }
        let mut line = Line::from("request ended: ");
        line.push(crate::result::name(e as i32).to_str().unwrap_or_default());
        if let Some(offset) = kept {
            line.push("; kept for a resume at byte ");
            line.push_num(offset);
        }
        self.log(Level::Warn, &line);
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

#[cfg(test)]
mod tests;
