//! HTTP/1.1 wire format, sans I/O: the request head, the caller's extra
//! headers, the response head, the chunked body and the platform's refusal.
//!
//! Everything here is a pure function over byte slices that never panics and
//! never allocates; parsers are streaming and bounded, so partial input asks
//! for more and oversized input is an error.

use core::ops::Range;

use crate::decimal::{decimal, U32_DIGITS};
use crate::result::Error;

/// Most response header lines parsed (more → `Error::Response`).
pub const MAX_HEADERS: usize = 32;

/// Sent as `User-Agent` so servers can tell this client and its version.
const USER_AGENT: &[u8] = concat!("fota/", env!("CARGO_PKG_VERSION")).as_bytes();

/// Longest chunk-size line (size, whitespace and extensions, without CRLF).
const MAX_SIZE_LINE: u16 = 1024;

/// Most bytes of trailer section after the last chunk (line ends included).
const MAX_TRAILERS: u16 = 4096;

/// Deepest JSON nesting `platform_code` accepts: serde-json-core recurses
/// once per level with no limit of its own, and the stack is small.
const MAX_JSON_DEPTH: usize = 8;

/// What the session wants in the request head.
pub struct Request<'a> {
    /// Request method, `"GET"` usually; must be an HTTP token.
    pub method: &'a str,
    /// Path and query, starting with `'/'`.
    pub target: &'a str,
    /// Full `Host` header value, already formatted by the caller.
    pub host: &'a str,
    /// `Some(n)` asks for the bytes from `n` on: `Range: bytes=n-`.
    pub range_from: Option<u32>,
    /// `Some(v)` adds `If-Range: v`, `v` being an ETag or Last-Modified
    /// value copied from an earlier response.
    pub if_range: Option<&'a [u8]>,
    /// `Some(n)` adds `Content-Length: n` for a request body.
    pub body_len: Option<usize>,
}

/// Writes the request line and the library's headers into `out`, without the
/// blank line that ends the head (the session sends the caller's extra headers
/// and then `"\r\n"` itself). Returns the number of bytes written.
///
/// Output: `<METHOD> <target> HTTP/1.1\r\nHost: <host>\r\nUser-Agent:
/// fota/<version>\r\nAccept-Encoding: identity\r\n`, then `Range`, `If-Range`
/// and `Content-Length` lines when asked for.
///
/// Errors: `Error::InvalidArg` for a method that is not a token or an
/// `if_range` with control characters; `Error::Url` when the head does not
/// fit (the URL is what makes it long), the target does not start with `'/'`
/// or holds spaces or control characters, or the host holds control
/// characters (either would let a URL inject header lines).
pub fn write_request_head(out: &mut [u8], req: &Request<'_>) -> Result<usize, Error> {
    check_method(req.method)?;
    let method = req.method.as_bytes();
    let target = req.target.as_bytes();
    if target.first() != Some(&b'/') || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Error::Url);
    }
    if !is_field_value(req.host.as_bytes()) {
        return Err(Error::Url);
    }
    if req.if_range.is_some_and(|v| !is_field_value(v)) {
        return Err(Error::InvalidArg);
    }

    let mut w = Writer { buf: out, len: 0 };
    w.put(method)?;
    w.put(b" ")?;
    w.put(target)?;
    w.put(b" HTTP/1.1\r\nHost: ")?;
    w.put(req.host.as_bytes())?;
    w.put(b"\r\nUser-Agent: ")?;
    w.put(USER_AGENT)?;
    // The image must arrive byte for byte as stored: no content coding.
    w.put(b"\r\nAccept-Encoding: identity\r\n")?;
    if let Some(from) = req.range_from {
        w.put(b"Range: bytes=")?;
        w.put(decimal(from, &mut [0; U32_DIGITS]).as_bytes())?;
        w.put(b"-\r\n")?;
    }
    if let Some(validator) = req.if_range {
        w.put(b"If-Range: ")?;
        w.put(validator)?;
        w.put(b"\r\n")?;
    }
    if let Some(len) = req.body_len {
        w.put(b"Content-Length: ")?;
        let len = u32::try_from(len).map_err(|_| Error::InvalidArg)?;
        w.put(decimal(len, &mut [0; U32_DIGITS]).as_bytes())?;
        w.put(b"\r\n")?;
    }
    Ok(w.len)
}

/// Appends to a fixed buffer; running out of room is `Error::Url`.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    /// Appends `bytes`, or fails without writing when they do not fit.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(bytes.len()).ok_or(Error::Url)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::Url)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// Checks that `method` is an HTTP token (`Error::InvalidArg` otherwise), so
/// that it can neither break the request line nor a log line.
pub fn check_method(method: &str) -> Result<(), Error> {
    let method = method.as_bytes();
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Error::InvalidArg);
    }
    Ok(())
}

/// Validates the caller's extra header block: `Name: value` lines separated
/// by `"\r\n"`, optionally ending with `"\r\n"`.
///
/// Rejected with `Error::InvalidArg`: a bare CR or LF (header injection), an
/// empty line (it would end the head early), a name that is not an HTTP
/// token, a line without `':'`, and control characters other than HTAB in a
/// value.
///
/// Returns `Ok(true)` when nothing needs adding before the blank line that
/// ends the head: the block is empty or already ends with `"\r\n"`.
/// `Ok(false)` means the session must send `"\r\n"` after the block.
pub fn check_extra_headers(block: &[u8]) -> Result<bool, Error> {
    let mut rest = block;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            // Last line without its CRLF.
            check_header_line(rest)?;
            return Ok(false);
        };
        let (line, tail) = rest.split_at_checked(end).ok_or(Error::InvalidArg)?;
        rest = tail.strip_prefix(b"\r\n").ok_or(Error::InvalidArg)?;
        check_header_line(line)?;
    }
    Ok(true)
}

/// One `Name: value` line without its line end.
fn check_header_line(line: &[u8]) -> Result<(), Error> {
    let mut parts = line.splitn(2, |&b| b == b':');
    let name = parts.next().unwrap_or_default();
    let value = parts.next().ok_or(Error::InvalidArg)?;
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || !is_field_value(value) {
        return Err(Error::InvalidArg);
    }
    Ok(())
}

/// RFC 9110 `tchar`: what names and methods are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// No control characters but HTAB (obs-text is allowed).
fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// How the body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: 1xx, 204, 304 or a response to HEAD.
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with `ChunkedDecoder`.
    Chunked,
    /// The body ends when the server closes the connection.
    UntilClose,
}

/// A `Content-Range: bytes first-last/total` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte position, inclusive.
    pub first: u64,
    /// Last byte position, inclusive (`first <= last`).
    pub last: u64,
    /// Complete length, `None` for `'*'` (unknown); `last < total`.
    pub total: Option<u64>,
}

/// What the session needs from a response head. Byte ranges point into the
/// buffer that was parsed, so the caller can copy them out before reusing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Status code, 100 to 999.
    pub status: u16,
    /// Bytes of the head including the final CRLFCRLF: the body starts here.
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// `Content-Range` of a 206 response (ignored on other statuses).
    pub content_range: Option<ContentRange>,
    /// Value of the first non-empty `Location`.
    pub location: Option<Range<usize>>,
    /// Raw value of the first non-empty `ETag` (strong or weak, quotes
    /// included), else of the first non-empty `Last-Modified`.
    pub validator: Option<Range<usize>>,
    /// Value of the first non-empty `Retry-After` (seconds or an HTTP date).
    pub retry_after: Option<Range<usize>>,
    /// Value of the first non-empty `Repr-Digest` (RFC 9530).
    pub repr_digest: Option<Range<usize>>,
}

/// Parses a response head at the start of `buf` (at most `MAX_HEADERS`
/// header lines).
///
/// `Ok(None)`: incomplete, read more (the caller turns a full buffer into
/// `Error::Response`).
///
/// `Error::Response`: malformed head, too many headers, a status below 100,
/// a `Transfer-Encoding` that is not exactly `chunked` (this client cannot
/// undo any other coding) or that comes in an HTTP/1.0 response (faulty
/// framing by RFC 9112 section 6.1), conflicting or non-decimal
/// `Content-Length` values, a malformed or repeated `Content-Range` on a 206.
///
/// Framing: 1xx, 204, 304 and any response to HEAD (`head_request`) have
/// none; chunked wins over `Content-Length`; then `Content-Length`; else the
/// body runs until the connection closes.
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Response),
    };
    let status = resp.code.filter(|&c| c >= 100).ok_or(Error::Response)?;

    let mut length = None;
    let mut te_seen = false;
    let mut chunked = false;
    let mut content_range = None;
    let mut location = None;
    let mut etag = None;
    let mut last_modified = None;
    let mut retry_after = None;
    let mut repr_digest = None;
    for header in resp.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            length = merge_content_length(length, value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if coding.is_empty() {
                    continue; // empty list elements are allowed
                }
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(Error::Response);
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-range") && status == 206 {
            if content_range.is_some() {
                return Err(Error::Response);
            }
            content_range = Some(parse_content_range(value).ok_or(Error::Response)?);
        } else if value.is_empty() {
            // An empty Location or validator is as good as none.
        } else if name.eq_ignore_ascii_case(b"location") && location.is_none() {
            location = Some(range_in(buf, value)?);
        } else if name.eq_ignore_ascii_case(b"etag") && etag.is_none() {
            etag = Some(range_in(buf, value)?);
        } else if name.eq_ignore_ascii_case(b"last-modified") && last_modified.is_none() {
            last_modified = Some(range_in(buf, value)?);
        } else if name.eq_ignore_ascii_case(b"retry-after") && retry_after.is_none() {
            retry_after = Some(range_in(buf, value)?);
        } else if name.eq_ignore_ascii_case(b"repr-digest") && repr_digest.is_none() {
            repr_digest = Some(range_in(buf, value)?);
        }
    }
    // A Transfer-Encoding with no coding, or any in HTTP/1.0, is faulty framing.
    if te_seen && (!chunked || resp.version == Some(0)) {
        return Err(Error::Response);
    }

    let framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        head_len,
        framing,
        content_range,
        location,
        validator: etag.or(last_modified),
        retry_after,
        repr_digest,
    }))
}

/// Folds one `Content-Length` field (maybe a list like `42, 42`) into what
/// earlier fields said; every value must be the same.
fn merge_content_length(mut known: Option<u64>, value: &[u8]) -> Result<Option<u64>, Error> {
    for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        // A length past u64 is as "too large" as any above the update area:
        // saturate, and let the length check say so.
        let digits_only = !item.is_empty() && item.iter().all(u8::is_ascii_digit);
        let n = parse_decimal(item)
            .or(digits_only.then_some(u64::MAX))
            .ok_or(Error::Response)?;
        if known.is_some_and(|k| k != n) {
            return Err(Error::Response);
        }
        known = Some(n);
    }
    Ok(known)
}

/// `bytes first-last/total` or `bytes first-last/*`.
fn parse_content_range(value: &[u8]) -> Option<ContentRange> {
    let (unit, rest) = value.split_at_checked(5)?;
    if !unit.eq_ignore_ascii_case(b"bytes") || !rest.starts_with(b" ") {
        return None;
    }
    let mut parts = rest.trim_ascii_start().splitn(2, |&b| b == b'/');
    let range = parts.next()?;
    let total = parts.next()?;
    let mut ends = range.splitn(2, |&b| b == b'-');
    let first = parse_decimal(ends.next()?)?;
    let last = parse_decimal(ends.next()?)?;
    let total = if total == b"*" {
        None
    } else {
        Some(parse_decimal(total)?)
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// A non-empty run of ASCII digits that fits in u64.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(d.into())
    })
}

/// Where `part`, a sub-slice of `buf`, lies in `buf`.
fn range_in(buf: &[u8], part: &[u8]) -> Result<Range<usize>, Error> {
    let start = (part.as_ptr() as usize)
        .checked_sub(buf.as_ptr() as usize)
        .ok_or(Error::Response)?;
    let end = start.checked_add(part.len()).ok_or(Error::Response)?;
    if end > buf.len() {
        return Err(Error::Response);
    }
    Ok(start..end)
}

/// Decodes `Transfer-Encoding: chunked` incrementally, without copying data.
///
/// Size and trailer lines may end with a bare LF (RFC 9112 section 2.2 lets
/// recipients accept it); the CRLF after chunk data must be exact. A CR not
/// followed by LF, a control character in an extension or trailer, a size
/// line over 1024 bytes or trailers over 4096 bytes are `Error::Response`.
/// After an error every later step fails too.
#[derive(Clone, Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
}

/// Where the decoder is; `line` counts size-line bytes, `total` trailer bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At the start of a size line.
    #[default]
    Start,
    /// In the hex digits of a size line, `line` bytes so far.
    Size {
        size: u64,
        line: u16,
    },
    /// Whitespace after the digits, before `';'` or the line end.
    SizeSpace {
        size: u64,
        line: u16,
    },
    /// In chunk extensions, skipped up to the line end.
    Extension {
        size: u64,
        line: u16,
    },
    /// CR seen at the end of a size line.
    SizeLf {
        size: u64,
    },
    /// `left` (> 0) data bytes of the current chunk to go.
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart {
        total: u16,
    },
    Trailer {
        total: u16,
    },
    TrailerLf {
        total: u16,
    },
    /// CR of the final empty line seen.
    EndLf,
    Done,
    Failed,
}

/// One step of decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkStep {
    /// `consumed` input bytes were framing (size lines, CRLFs, extensions,
    /// trailers); nothing to deliver. `consumed` is 0 only for empty input.
    Framing {
        /// Bytes of input used.
        consumed: usize,
    },
    /// The data bytes `range` of the input (starting at 0 or after framing
    /// bytes) belong to the body; consumed = `range.end`. Never empty.
    Data {
        /// Body bytes within the input.
        range: Range<usize>,
    },
    /// The body ended (last chunk and trailers done) after `consumed` bytes;
    /// bytes after are not part of the message.
    Done {
        /// Bytes of input used.
        consumed: usize,
    },
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub const fn new() -> Self {
        Self {
            state: State::Start,
        }
    }

    /// Decodes from the start of `input` (which the caller advances by what
    /// was consumed). With empty input or input that ends mid-framing,
    /// returns `Framing { consumed: n }` having consumed all it could; with
    /// n == 0 the caller must read more. Once done, returns
    /// `Done { consumed: 0 }`.
    pub fn step(&mut self, input: &[u8]) -> Result<ChunkStep, Error> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                State::Done => return Ok(ChunkStep::Done { consumed: pos }),
                State::Data { left } => {
                    if rest.is_empty() {
                        return Ok(ChunkStep::Framing { consumed: pos });
                    }
                    let n = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    // n <= left, so neither can wrap.
                    let left = left.saturating_sub(n as u64);
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    let end = pos.saturating_add(n);
                    return Ok(ChunkStep::Data { range: pos..end });
                }
                _ => {
                    let Some(&b) = rest.first() else {
                        return Ok(ChunkStep::Framing { consumed: pos });
                    };
                    pos = pos.saturating_add(1);
                    match next_state(self.state, b) {
                        Ok(state) => self.state = state,
                        Err(e) => {
                            self.state = State::Failed;
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// The framing state after byte `b`.
fn next_state(state: State, b: u8) -> Result<State, Error> {
    let next = match state {
        State::Start => match hex_digit(b) {
            Some(d) => State::Size {
                size: d.into(),
                line: 1,
            },
            None => return Err(Error::Response), // empty size or not hex
        },
        State::Size { size, line } => match hex_digit(b) {
            Some(d) => State::Size {
                size: size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(d.into()))
                    .ok_or(Error::Response)?,
                line: size_line(line)?,
            },
            None => after_size(size, line, b)?,
        },
        State::SizeSpace { size, line } => after_size(size, line, b)?,
        State::Extension { size, line } => match b {
            b'\r' => State::SizeLf { size },
            b'\n' => chunk_start(size),
            // A quoted value holds no CR or LF, so skipping to the line end
            // skips quoted values too.
            _ if is_field_value(&[b]) => State::Extension {
                size,
                line: size_line(line)?,
            },
            _ => return Err(Error::Response),
        },
        State::SizeLf { size } if b == b'\n' => chunk_start(size),
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => State::Start,
        State::TrailerStart { .. } if b == b'\r' => State::EndLf,
        State::TrailerStart { .. } if b == b'\n' => State::Done,
        State::TrailerStart { total } | State::Trailer { total } => {
            let total = trailer_bytes(total)?;
            match b {
                b'\r' => State::TrailerLf { total },
                b'\n' => State::TrailerStart { total },
                _ if is_field_value(&[b]) => State::Trailer { total },
                _ => return Err(Error::Response),
            }
        }
        State::TrailerLf { total } if b == b'\n' => State::TrailerStart {
            total: trailer_bytes(total)?,
        },
        State::EndLf if b == b'\n' => State::Done,
        _ => return Err(Error::Response),
    };
    Ok(next)
}

/// After the size digits: whitespace, an extension or the line end.
fn after_size(size: u64, line: u16, b: u8) -> Result<State, Error> {
    Ok(match b {
        b' ' | b'\t' => State::SizeSpace {
            size,
            line: size_line(line)?,
        },
        b';' => State::Extension {
            size,
            line: size_line(line)?,
        },
        b'\r' => State::SizeLf { size },
        b'\n' => chunk_start(size),
        _ => return Err(Error::Response),
    })
}

/// Once a size line ends: size 0 is the last chunk, trailers follow.
fn chunk_start(size: u64) -> State {
    if size == 0 {
        State::TrailerStart { total: 0 }
    } else {
        State::Data { left: size }
    }
}

/// Counts one more size-line byte, within the bound.
fn size_line(line: u16) -> Result<u16, Error> {
    line.checked_add(1)
        .filter(|&l| l <= MAX_SIZE_LINE)
        .ok_or(Error::Response)
}

/// Counts one more trailer byte, within the bound.
fn trailer_bytes(total: u16) -> Result<u16, Error> {
    total
        .checked_add(1)
        .filter(|&t| t <= MAX_TRAILERS)
        .ok_or(Error::Response)
}

/// The value of a hex digit, either case.
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The part of a platform refusal that matters.
#[derive(serde::Deserialize)]
struct Refusal {
    code: i32,
}

/// The `code` of a LuatOS IoT platform refusal body `{"code":N,...}`, if
/// `body` is such JSON (other fields ignored, in any order; nesting deeper
/// than 8 levels is refused to bound stack use).
pub fn platform_code(body: &[u8]) -> Option<i32> {
    if json_depth(body)? > MAX_JSON_DEPTH {
        return None;
    }
    serde_json_core::from_slice::<Refusal>(body)
        .ok()
        .map(|(refusal, _)| refusal.code)
}

/// Deepest `{`/`[` nesting outside strings, `None` if it gets absurd.
fn json_depth(body: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut deepest = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth = depth.checked_add(1)?;
                    deepest = deepest.max(depth);
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Some(deepest)
}

/// The pause a `Retry-After` value asks for, in seconds from now:
/// `delay-seconds`, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// when the date `now` (seconds since 1970) is known; a date in the past is
/// 0. `None` for anything else (the obsolete date forms included).
pub fn retry_after_seconds(value: &[u8], now: Option<u64>) -> Option<u64> {
    if let Some(seconds) = parse_decimal(value) {
        return Some(seconds);
    }
    Some(imf_fixdate(value)?.saturating_sub(now?))
}

/// Seconds since 1970 of an IMF-fixdate (RFC 9110 5.6.7).
fn imf_fixdate(value: &[u8]) -> Option<u64> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    // "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions.
    if value.len() != 29 || value.get(3..5)? != b", " || value.get(25..)? != b" GMT" {
        return None;
    }
    // 32-bit arithmetic: a 64-bit division costs a kilobyte of flash on Cortex-M.
    let number = |range: Range<usize>| u32::try_from(parse_decimal(value.get(range)?)?).ok();
    let day = number(5..7)?;
    let month = MONTHS.iter().position(|m| Some(*m) == value.get(8..11))? as u32;
    let year = number(12..16)?;
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    let separators = [
        value.get(7),
        value.get(11),
        value.get(16),
        value.get(19),
        value.get(22),
    ];
    if separators
        != [
            Some(&b' '),
            Some(&b' '),
            Some(&b' '),
            Some(&b':'),
            Some(&b':'),
        ]
        || !(1..=31).contains(&day)
        || year < 1970
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from 1970-01-01 to the first of the month (civil calendar).
    let (y, m) = if month < 2 {
        (year - 1, month + 10)
    } else {
        (year, month - 2)
    };
    let era_days = 365 * y + y / 4 - y / 100 + y / 400;
    let days = (era_days + (153 * m + 2) / 5 + day - 1).checked_sub(719_468)?;
    let (days, hour, minute, second) = (
        u64::from(days),
        u64::from(hour),
        u64::from(minute),
        u64::from(second),
    );
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = concat!("fota/", env!("CARGO_PKG_VERSION"));

    fn request<'a>() -> Request<'a> {
        Request {
            method: "GET",
            target: "/fw/app.bin?v=1",
            host: "example.com:8080",
            range_from: None,
            if_range: None,
            body_len: None,
        }
    }

    fn head_of(req: &Request<'_>) -> Result<String, Error> {
        let mut out = [0u8; 512];
        let n = write_request_head(&mut out, req)?;
        Ok(String::from_utf8(out[..n].to_vec()).unwrap())
    }

    #[test]
    fn request_head_plain() {
        let expected = format!(
            "GET /fw/app.bin?v=1 HTTP/1.1\r\nHost: example.com:8080\r\n\
             User-Agent: {UA}\r\nAccept-Encoding: identity\r\n"
        );
        assert_eq!(head_of(&request()).unwrap(), expected);
    }

    #[test]
    fn request_head_with_range_if_range_and_body() {
        let req = Request {
            method: "POST",
            range_from: Some(4_294_967_295),
            if_range: Some(b"W/\"abc\""),
            body_len: Some(0),
            ..request()
        };
        let expected = format!(
            "POST /fw/app.bin?v=1 HTTP/1.1\r\nHost: example.com:8080\r\n\
             User-Agent: {UA}\r\nAccept-Encoding: identity\r\n\
             Range: bytes=4294967295-\r\nIf-Range: W/\"abc\"\r\nContent-Length: 0\r\n"
        );
        assert_eq!(head_of(&req).unwrap(), expected);

        let req = Request {
            range_from: Some(0),
            body_len: Some(1234),
            ..request()
        };
        let text = head_of(&req).unwrap();
        assert!(text.ends_with("identity\r\nRange: bytes=0-\r\nContent-Length: 1234\r\n"));
    }

    #[test]
    fn request_head_rejects_bad_input() {
        for method in ["", "G ET", "GET\r\n", "GÉT", "GET:", "(GET)"] {
            let req = Request {
                method,
                ..request()
            };
            assert_eq!(head_of(&req), Err(Error::InvalidArg), "{method:?}");
        }
        for target in ["", "fw", "/a b", "/a\r\nX: y", "/\x7f"] {
            let req = Request {
                target,
                ..request()
            };
            assert_eq!(head_of(&req), Err(Error::Url), "{target:?}");
        }
        let req = Request {
            host: "h\r\nX: y",
            ..request()
        };
        assert_eq!(head_of(&req), Err(Error::Url));
        let req = Request {
            if_range: Some(b"\"a\"\r\nX: y"),
            ..request()
        };
        assert_eq!(head_of(&req), Err(Error::InvalidArg));
    }

    #[test]
    fn body_longer_than_u32_is_invalid() {
        let req = Request {
            body_len: Some(u32::MAX as usize + 1),
            ..request()
        };
        assert_eq!(head_of(&req), Err(Error::InvalidArg));
    }

    #[test]
    fn request_head_too_long_is_url_error() {
        let req = Request {
            range_from: Some(12345),
            body_len: Some(u32::MAX as usize),
            ..request()
        };
        let full = head_of(&req).unwrap().len();
        let mut out = [0u8; 512];
        for n in 0..full {
            assert_eq!(write_request_head(&mut out[..n], &req), Err(Error::Url));
        }
        assert_eq!(write_request_head(&mut out[..full], &req), Ok(full));
    }

    #[test]
    fn extra_headers_valid() {
        assert_eq!(check_extra_headers(b""), Ok(true));
        assert_eq!(check_extra_headers(b"X-A: 1"), Ok(false));
        assert_eq!(check_extra_headers(b"X-A: 1\r\n"), Ok(true));
        assert_eq!(
            check_extra_headers(b"X-A: 1\r\nAuthorization: Bearer a\tb\xc3\xa9\r\nX-Empty:"),
            Ok(false)
        );
    }

    #[test]
    fn extra_headers_rejected() {
        let bad: &[&[u8]] = &[
            b"a: b\r\n\r\nGET /",
            b"a: b\nX: y",
            b"a: b\rc",
            b"a: b\r",
            b"\r\n",
            b"a: b\r\n\r\n",
            b"a b: c",
            b"a",
            b"a: b\r\nc",
            b": b",
            b" a: b",
            b"a : b",
            b"a: b\x00",
            b"a: b\x7f",
            b"a: \x1b[0m",
        ];
        for block in bad {
            assert_eq!(
                check_extra_headers(block),
                Err(Error::InvalidArg),
                "{:?}",
                String::from_utf8_lossy(block)
            );
        }
    }

    fn head(buf: &[u8]) -> Result<Option<Head>, Error> {
        parse_head(buf, false)
    }

    fn text<'a>(buf: &'a [u8], range: &Option<Range<usize>>) -> &'a [u8] {
        &buf[range.clone().unwrap()]
    }

    #[test]
    fn head_200_with_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: x\r\n\r\nBODY";
        let h = head(buf).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.head_len, buf.len() - 4);
        assert_eq!(h.framing, Framing::Length(1234));
        assert_eq!(h.content_range, None);
        assert_eq!(h.location, None);
        assert_eq!(h.validator, None);
    }

    #[test]
    fn head_206_with_content_range() {
        let buf = b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 100-199/1000\r\n\
                    Content-Length: 100\r\n\r\n";
        let h = head(buf).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(100));
        let cr = ContentRange {
            first: 100,
            last: 199,
            total: Some(1000),
        };
        assert_eq!(h.content_range, Some(cr));

        let buf = b"HTTP/1.1 206 OK\r\nContent-Range: BYTES  0-0/*\r\n\r\n";
        let cr = ContentRange {
            first: 0,
            last: 0,
            total: None,
        };
        assert_eq!(head(buf).unwrap().unwrap().content_range, Some(cr));

        // Ignored where it means nothing to the session.
        let buf = b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1000\r\n\r\n";
        assert_eq!(head(buf).unwrap().unwrap().content_range, None);
    }

    #[test]
    fn head_206_bad_content_range() {
        let values: &[&[u8]] = &[
            b"bytes */1000",
            b"bytes 1-0/10",
            b"bytes 0-10/10",
            b"bytes 0-9",
            b"bytes 0-9/",
            b"bytes -9/10",
            b"bytes 0-/10",
            b"bytes=0-9/10",
            b"bytes0-9/10",
            b"items 0-9/10",
            b"bytes 0 -9/10",
            b"bytes 0-9/1x",
            b"bytes 0-99999999999999999999/*",
            b"",
            b"byte",
        ];
        for v in values {
            let buf = [b"HTTP/1.1 206 OK\r\nContent-Range: ", *v, b"\r\n\r\n"].concat();
            assert_eq!(
                head(&buf),
                Err(Error::Response),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let buf = b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-9/10\r\n\
                    Content-Range: bytes 0-9/10\r\n\r\n";
        assert_eq!(head(buf), Err(Error::Response));
    }

    #[test]
    fn head_chunked() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(head(buf).unwrap().unwrap().framing, Framing::Chunked);
        // Chunked wins over Content-Length.
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(head(buf).unwrap().unwrap().framing, Framing::Chunked);
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked ,\r\n\r\n";
        assert_eq!(head(buf).unwrap().unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn head_bad_transfer_encoding() {
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for buf in bad {
            assert_eq!(
                head(buf),
                Err(Error::Response),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn head_until_close() {
        let buf = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nbody...";
        assert_eq!(head(buf).unwrap().unwrap().framing, Framing::UntilClose);
        let buf = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(head(buf).unwrap().unwrap().framing, Framing::UntilClose);
    }

    #[test]
    fn head_without_body() {
        let none: &[&[u8]] = &[
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for buf in none {
            let h = head(buf).unwrap().unwrap();
            assert_eq!(h.framing, Framing::None);
            assert_eq!(h.head_len, buf.len());
        }
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n";
        assert_eq!(
            parse_head(buf, true).unwrap().unwrap().framing,
            Framing::None
        );
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(buf, true).unwrap().unwrap().framing,
            Framing::None
        );
    }

    #[test]
    fn head_content_length_values() {
        let ok: &[(&[u8], u64)] = &[
            (b"Content-Length: 5\r\nContent-Length: 5\r\n", 5),
            (b"Content-Length: 5, 5\r\n", 5),
            (b"Content-Length: 007\r\n", 7),
            (b"Content-Length: 18446744073709551615\r\n", u64::MAX),
            (b"CONTENT-LENGTH:0\r\n", 0),
        ];
        for (fields, n) in ok {
            let buf = [b"HTTP/1.1 200 OK\r\n", *fields, b"\r\n"].concat();
            assert_eq!(head(&buf).unwrap().unwrap().framing, Framing::Length(*n));
        }
        let bad: &[&[u8]] = &[
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            b"Content-Length: 5, 6\r\n",
            b"Content-Length: 5,\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: +1\r\n",
            b"Content-Length: 1a\r\n",
            b"Content-Length: 0x10\r\n",
            b"Content-Length: 1 2\r\n",
            b"Content-Length: \r\n",
        ];
        for fields in bad {
            let buf = [b"HTTP/1.1 200 OK\r\n", *fields, b"\r\n"].concat();
            assert_eq!(
                head(&buf),
                Err(Error::Response),
                "{:?}",
                String::from_utf8_lossy(fields)
            );
        }
    }

    #[test]
    fn head_partial_is_none() {
        let buf = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n\
                    ETag: \"x\"\r\nContent-Length: 10\r\n\r\n";
        for n in 0..buf.len() {
            assert_eq!(head(&buf[..n]), Ok(None), "prefix {n}");
        }
        assert!(head(buf).unwrap().is_some());
    }

    #[test]
    fn head_malformed() {
        let bad: &[&[u8]] = &[
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 Odd\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
            b"<html>",
        ];
        for buf in bad {
            assert_eq!(
                head(buf),
                Err(Error::Response),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn head_too_many_headers() {
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..MAX_HEADERS {
            buf.extend_from_slice(b"X: y\r\n");
        }
        let mut full = buf.clone();
        full.extend_from_slice(b"\r\n");
        assert!(head(&full).unwrap().is_some());
        buf.extend_from_slice(b"X: y\r\n\r\n");
        assert_eq!(head(&buf), Err(Error::Response));
    }

    #[test]
    fn head_location_and_validators() {
        let buf = b"HTTP/1.1 302 Found\r\nLocation:  https://cdn.example/fw.bin \r\n\
                    Location: /second\r\nETag: \"v1\"\r\nLast-Modified: Tue, 1 Jan 2030\r\n\
                    Content-Length: 0\r\n\r\n";
        let h = head(buf).unwrap().unwrap();
        assert_eq!(h.status, 302);
        assert_eq!(text(buf, &h.location), b"https://cdn.example/fw.bin");
        assert_eq!(text(buf, &h.validator), b"\"v1\"");

        let buf = b"HTTP/1.1 200 OK\r\nlast-modified: Tue, 1 Jan 2030\r\netag: W/\"weak\"\r\n\r\n";
        let h = head(buf).unwrap().unwrap();
        assert_eq!(text(buf, &h.validator), b"W/\"weak\"");

        let buf = b"HTTP/1.1 200 OK\r\nETag:\r\nLast-Modified: Tue, 1 Jan 2030 \r\n\r\n";
        let h = head(buf).unwrap().unwrap();
        assert_eq!(text(buf, &h.validator), b"Tue, 1 Jan 2030");
        assert_eq!(h.location, None);
    }

    /// Feeds `parts` to a decoder the way the session does: bytes not yet
    /// consumed stay in a buffer, new ones are appended. Returns the body and
    /// the bytes left over after the end.
    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut dec = ChunkedDecoder::new();
        let mut pending = Vec::new();
        let mut body = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            pending.extend_from_slice(part);
            loop {
                match dec.step(&pending)? {
                    ChunkStep::Framing { consumed } => {
                        assert_eq!(consumed, pending.len(), "framing stops only at input end");
                        pending.clear();
                        break;
                    }
                    ChunkStep::Data { range } => {
                        assert!(!range.is_empty());
                        body.extend_from_slice(&pending[range.clone()]);
                        pending.drain(..range.end);
                    }
                    ChunkStep::Done { consumed } => {
                        assert!(dec.is_done());
                        pending.drain(..consumed);
                        assert_eq!(dec.step(&pending), Ok(ChunkStep::Done { consumed: 0 }));
                        pending.extend(parts[i + 1..].iter().copied().flatten());
                        return Ok((body, pending));
                    }
                }
            }
        }
        Err(Error::Disconnected)
    }

    fn decode_all_ways(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let whole = decode(&[input]);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(decode(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(&bytes), whole, "one byte at a time");
        whole
    }

    fn body_of(input: &[u8]) -> Result<Vec<u8>, Error> {
        decode_all_ways(input).map(|(body, _)| body)
    }

    #[test]
    fn chunked_every_split() {
        let input = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n\
                      0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1 200 OK";
        let (body, rest) = decode_all_ways(input).unwrap();
        assert_eq!(body, b"hello 0123456789");
        assert_eq!(rest, b"HTTP/1.1 200 OK");
    }

    #[test]
    fn chunked_sizes() {
        assert_eq!(body_of(b"0\r\n\r\n").unwrap(), b"");
        assert_eq!(body_of(b"000\r\n\r\n").unwrap(), b"");
        let data = [b'x'; 0x1f];
        let mut upper = b"1F\r\n".to_vec();
        upper.extend_from_slice(&data);
        upper.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(body_of(&upper).unwrap(), data);
        let lower = [&b"0001f\r\n"[..], &data, b"\r\n0\r\n\r\n"].concat();
        assert_eq!(body_of(&lower).unwrap(), data);
        // Bare LF ends size and trailer lines.
        assert_eq!(body_of(b"2\nab\r\n0\nT: 1\n\n").unwrap(), b"ab");
        assert_eq!(body_of(b"2 \t\r\nab\r\n0\r\n\r\n").unwrap(), b"ab");
    }

    #[test]
    fn chunked_extensions_and_trailers() {
        let input = b"3;a=b;q=\"x;\\\"y\\\" \t\"\r\nabc\r\n2 ; c\r\nde\r\n0;last\r\n\
                      Expires: never\r\nX-Sum:\tabc\r\n\r\n";
        assert_eq!(body_of(input).unwrap(), b"abcde");
    }

    #[test]
    fn chunked_errors() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b";ext\r\n",
            b"g\r\n",
            b"-1\r\n",
            b"0x5\r\n",
            b"5 5\r\nhello\r\n",
            b"5\rhello\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\rX",
            b"5\r\nhello\r\r\n",
            b"5;\x00\r\nhello\r\n0\r\n\r\n",
            b"0\r\nT: 1\rX",
            b"0\r\nT: \x01\r\n\r\n",
            b"0\r\n\rX",
            b"10000000000000000\r\n",
            b"fffffffffffffffff\r\n",
            b"00000000000000000ffffffffffffffffa\r\n",
        ];
        for input in bad {
            assert_eq!(
                body_of(input),
                Err(Error::Response),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Largest size is fine (the body just has not arrived).
        assert_eq!(
            decode(&[b"ffffffffffffffff\r\nab"]),
            Err(Error::Disconnected)
        );
        assert_eq!(
            decode(&[b"0000000000000000ffffffffffffffff\r\n"]),
            Err(Error::Disconnected)
        );
    }

    #[test]
    fn chunked_bounds() {
        let mut line = b"1;".to_vec();
        line.resize(1024, b'e');
        let ok = [&line[..], b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(body_of(&ok).unwrap(), b"x");
        let too_long = [&line[..], b"e\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(body_of(&too_long), Err(Error::Response));

        let zeros = [&[b'0'; 1024][..], b"\r\n\r\n"].concat();
        assert_eq!(body_of(&zeros).unwrap(), b"");
        let zeros = [&[b'0'; 1025][..], b"\r\n\r\n"].concat();
        assert_eq!(body_of(&zeros), Err(Error::Response));

        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..(4096 / 8) {
            trailers.extend_from_slice(b"T: 123\r\n");
        }
        let ok = [&trailers[..], b"\r\n"].concat();
        assert_eq!(decode(&[&ok]).unwrap().0, b"");
        let too_many = [&trailers[..], b"T\r\n\r\n"].concat();
        assert_eq!(decode(&[&too_many]), Err(Error::Response));
    }

    #[test]
    fn chunked_error_is_sticky_and_empty_input_waits() {
        let mut dec = ChunkedDecoder::default();
        assert_eq!(dec.step(b""), Ok(ChunkStep::Framing { consumed: 0 }));
        assert_eq!(dec.step(b"2\r\n"), Ok(ChunkStep::Framing { consumed: 3 }));
        assert_eq!(dec.step(b""), Ok(ChunkStep::Framing { consumed: 0 }));
        assert_eq!(dec.step(b"abX"), Ok(ChunkStep::Data { range: 0..2 }));
        assert_eq!(dec.step(b"X"), Err(Error::Response));
        assert_eq!(dec.step(b"\r\n0\r\n\r\n"), Err(Error::Response));
        assert!(!dec.is_done());
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after_seconds(b"120", None), Some(120));
        assert_eq!(retry_after_seconds(b"0", Some(5)), Some(0));
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(imf_fixdate(date), Some(784_111_777));
        assert_eq!(imf_fixdate(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            imf_fixdate(b"Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        assert_eq!(retry_after_seconds(date, Some(784_111_777 - 30)), Some(30));
        assert_eq!(retry_after_seconds(date, Some(784_111_777 + 30)), Some(0));
        // A date needs the time of day to mean anything.
        assert_eq!(retry_after_seconds(date, None), None);
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Xyz 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
        ] {
            assert_eq!(retry_after_seconds(bad, Some(1)), None, "{bad:?}");
        }
    }

    #[test]
    fn content_length_past_u64_is_too_large_not_malformed() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(u64::MAX));
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n").is_err());
    }

    #[test]
    fn platform_codes() {
        assert_eq!(platform_code(br#"{"code":27}"#), Some(27));
        assert_eq!(platform_code(br#" { "code" : -3 } "#), Some(-3));
        assert_eq!(
            platform_code(
                r#"{"msg":"no \"update\" \\ \u00e9 – ok","code":27,"data":null}"#.as_bytes()
            ),
            Some(27)
        );
        assert_eq!(
            platform_code(
                br#"{"data":{"list":[1,{"a":[true,false]},"x"],"e":{}},"ok":false,"code":4,"n":1.5e3}"#
            ),
            Some(4)
        );
        assert_eq!(
            platform_code("{\"msg\":\"中文\",\"code\":44}\r\n".as_bytes()),
            Some(44)
        );
        assert_eq!(platform_code(br#"{"code":"27"}"#), None);
        assert_eq!(platform_code(br#"{"code":2147483648}"#), None);
        assert_eq!(platform_code(br#"{"code":1.5}"#), None);
        assert_eq!(platform_code(br#"{"msg":"x"}"#), None);
        assert_eq!(platform_code(br#"{"code":1,"code":2}"#), None);
        assert_eq!(platform_code(br#"{"code":27"#), None);
        assert_eq!(platform_code(br#"{"code":27}x"#), None);
        assert_eq!(platform_code(br#"[27]"#), None);
        assert_eq!(platform_code(b""), None);
        assert_eq!(platform_code(b"\x7fELF\x00\x01\xff"), None);
        assert_eq!(platform_code(b"<html>error</html>"), None);
        let deep = [&br#"{"code":1,"a":"#[..], &[b'['; 100], &[b']'; 100], b"}"].concat();
        assert_eq!(platform_code(&deep), None);
        let ok = [&br#"{"code":1,"a":"#[..], &[b'['; 7], &[b']'; 7], b"}"].concat();
        assert_eq!(platform_code(&ok), Some(1));
    }

    /// Mutated templates through every parser: nothing may panic, and the
    /// chunked decoder must keep its promises about `consumed` and ranges.
    #[test]
    fn mutated_input_never_panics() {
        let templates: &[&[u8]] = &[
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 1-2/3\r\nLocation: /x\r\nETag: \"a\"\r\n\
              Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"5;a=\"b\"\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"X-A: 1\r\nX-B: 2\r\n",
            br#"{"code":27,"a":[{"b":"\"c"}]}"#,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"\r\n:;,/-\"\\ \t0aF{}[]*\x00\xff";
        for _ in 0..20_000 {
            let mut input = templates[(rand() % templates.len() as u64) as usize].to_vec();
            for _ in 0..(rand() % 4) {
                let at = (rand() % (input.len() as u64 + 1)) as usize;
                let b = alphabet[(rand() % alphabet.len() as u64) as usize];
                match rand() % 3 {
                    0 => input.insert(at, b),
                    1 if at < input.len() => input[at] = b,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = parse_head(&input, rand() % 2 == 0);
            let _ = check_extra_headers(&input);
            let _ = platform_code(&input);
            let mut dec = ChunkedDecoder::new();
            let mut rest = &input[..];
            while let Ok(step) = dec.step(rest) {
                let used = match step {
                    ChunkStep::Framing { consumed } | ChunkStep::Done { consumed } => consumed,
                    ChunkStep::Data { range } => {
                        assert!(range.start < range.end && range.end <= rest.len());
                        range.end
                    }
                };
                assert!(used <= rest.len());
                if used == 0 {
                    break;
                }
                rest = &rest[used..];
            }
        }
    }
}
