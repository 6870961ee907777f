//! Checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the
//! regression tests (`tests/fuzz_regressions.rs` includes this file with
//! `#[path]`, so it depends on nothing but `fota`, `std` and the crates fota
//! itself links: `sha2` and `p256` for the reference verifier of `mcuboot`).
//!
//! Each `check_*` function takes the raw fuzzer input, drives one part of the
//! library with it and panics when an invariant breaks. Input formats are
//! documented on each function; the seed corpora in `fuzz/corpus/<target>/`
//! follow them (see `fuzz/capture.py`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code
)]

use std::cell::Cell;
use std::rc::Rc;

use fota::hooks::{Clock, Flash, Level, Received, Stream, System, Transport};
use fota::http::{self, ChunkStep, ChunkedDecoder, Framing, Head};
use fota::options::{Options, FOTA_RX_BUF};
use fota::result::{self, Error};
use fota::session::{self, Workspace};
use fota::status::Status;
use fota::url::{self, DeviceIdKind, DeviceParams, Scheme, FOTA_URL_MAX, PLATFORM_URL};

// ---------------------------------------------------------------------------
// head: http::parse_head
// ---------------------------------------------------------------------------

/// Input: the bytes of a response (head and maybe body), as a server sends
/// them. Parsed as a response to GET and to HEAD.
///
/// Invariants: no panic; GET and HEAD agree on everything but the framing
/// (always `None` for HEAD); a complete head has a status in 100..=999, a
/// `head_len` within the input that ends with an empty line, byte ranges
/// within the head holding trimmed non-empty values, a `Content-Range` only
/// on a 206 with `first <= last < total`, no body on 1xx/204/304; the same
/// head parses from `input[..head_len]`, and every shorter prefix is
/// "incomplete" (never an error), so the result cannot depend on how the
/// bytes were split across reads.
pub fn check_head(data: &[u8]) {
    let get = http::parse_head(data, false);
    let head = http::parse_head(data, true);
    match (&get, &head) {
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => {
            assert_eq!(*a, Error::Response);
            assert_eq!(*b, Error::Response);
        }
        (Ok(Some(g)), Ok(Some(h))) => {
            assert_eq!(h.framing, Framing::None, "a response to HEAD has no body");
            assert_eq!(
                Head {
                    framing: Framing::None,
                    ..g.clone()
                },
                *h,
                "GET and HEAD parse the same head"
            );
            check_complete_head(data, g);
        }
        _ => panic!("GET and HEAD disagree: {get:?} vs {head:?}"),
    }
}

fn check_complete_head(data: &[u8], h: &Head) {
    assert!((100..=999).contains(&h.status), "status {}", h.status);
    assert!(h.head_len <= data.len() && h.head_len >= 2);
    let head = &data[..h.head_len];
    assert!(head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n"));
    for range in [&h.location, &h.validator].into_iter().flatten() {
        assert!(
            range.start < range.end && range.end <= h.head_len,
            "{range:?}"
        );
        let value = &data[range.clone()];
        assert_eq!(value, value.trim_ascii(), "values are trimmed");
    }
    if let Some(r) = h.content_range {
        assert_eq!(h.status, 206, "Content-Range only on 206");
        assert!(r.first <= r.last);
        assert!(r.total.is_none_or(|t| r.last < t));
    }
    if h.status < 200 || h.status == 204 || h.status == 304 {
        assert_eq!(h.framing, Framing::None);
    }
    // The head alone parses the same.
    assert_eq!(http::parse_head(head, false), Ok(Some(h.clone())));
    // Every prefix is incomplete: the session parses after each read (all
    // prefixes of short heads, about 32 spread over longer ones, and the
    // last 16 always).
    let step = (h.head_len / 32).max(1);
    let mut n = 0;
    while n < h.head_len {
        assert_eq!(
            http::parse_head(&data[..n], false),
            Ok(None),
            "prefix of {n} bytes of a {}-byte head",
            h.head_len
        );
        n += if h.head_len - n <= 16 { 1 } else { step };
    }
}

// ---------------------------------------------------------------------------
// chunked: http::ChunkedDecoder
// ---------------------------------------------------------------------------

/// How a chunked body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkEnd {
    /// Last chunk and trailers complete after this many input bytes.
    Done(usize),
    /// The input ended first.
    Incomplete,
    /// Malformed.
    Error,
}

/// Size lines longer than this (without the line end) are errors.
const REF_MAX_SIZE_LINE: usize = 1024;
/// Trailer sections longer than this (line ends included) are errors.
const REF_MAX_TRAILERS: usize = 4096;

/// A reference chunked decoder over the whole input, written independently
/// of `ChunkedDecoder` from the rules in its documentation (RFC 9112 7.1, bare
/// LF accepted on size and trailer lines, exact CRLF after data, 1024-byte
/// size lines, 4096 bytes of trailers). Returns the body decoded so far and
/// how the input ended.
pub fn ref_chunked(input: &[u8]) -> (Vec<u8>, ChunkEnd) {
    let mut body = Vec::new();
    let mut i = 0usize;
    let is_value = |b: u8| b == b'\t' || (b >= b' ' && b != 0x7f);
    macro_rules! byte {
        () => {
            match input.get(i) {
                Some(&b) => b,
                None => return (body, ChunkEnd::Incomplete),
            }
        };
    }
    macro_rules! fail {
        () => {
            return (body, ChunkEnd::Error)
        };
    }
    loop {
        // Size line.
        let line_start = i;
        let mut size = 0u64;
        let mut digits = 0usize;
        loop {
            let b = byte!();
            let Some(d) = (b as char).to_digit(16) else {
                break;
            };
            size = match size.checked_mul(16).and_then(|s| s.checked_add(d.into())) {
                Some(s) => s,
                None => fail!(),
            };
            digits += 1;
            i += 1;
            if i - line_start > REF_MAX_SIZE_LINE {
                fail!();
            }
        }
        if digits == 0 {
            fail!();
        }
        let mut in_ext = false;
        loop {
            let b = byte!();
            match b {
                b'\r' => {
                    i += 1;
                    if byte!() != b'\n' {
                        fail!();
                    }
                    i += 1;
                    break;
                }
                b'\n' => {
                    i += 1;
                    break;
                }
                b';' => in_ext = true,
                b' ' | b'\t' => {}
                _ if in_ext && is_value(b) => {}
                _ => fail!(),
            }
            i += 1;
            if i - line_start > REF_MAX_SIZE_LINE {
                fail!();
            }
        }
        if size == 0 {
            break;
        }
        // Data, then exactly CRLF.
        let avail = (input.len() - i) as u64;
        if avail < size {
            body.extend_from_slice(&input[i..]);
            return (body, ChunkEnd::Incomplete);
        }
        let end = i + size as usize;
        body.extend_from_slice(&input[i..end]);
        i = end;
        if byte!() != b'\r' {
            fail!();
        }
        i += 1;
        if byte!() != b'\n' {
            fail!();
        }
        i += 1;
    }
    // Trailer lines, then the empty line.
    let mut total = 0usize;
    loop {
        match byte!() {
            b'\r' => {
                i += 1;
                if byte!() != b'\n' {
                    fail!();
                }
                return (body, ChunkEnd::Done(i + 1));
            }
            b'\n' => return (body, ChunkEnd::Done(i + 1)),
            _ => {}
        }
        // A non-empty trailer line; every byte counts, its line end too.
        loop {
            let b = byte!();
            i += 1;
            total += 1;
            if total > REF_MAX_TRAILERS {
                fail!();
            }
            match b {
                b'\r' => {
                    if byte!() != b'\n' {
                        fail!();
                    }
                    i += 1;
                    total += 1;
                    if total > REF_MAX_TRAILERS {
                        fail!();
                    }
                    break;
                }
                b'\n' => break,
                _ if is_value(b) => {}
                _ => fail!(),
            }
        }
    }
}

/// Feeds `parts` to a `ChunkedDecoder` the way the session does (undecoded
/// bytes stay, new bytes are appended), checking every step's promises.
/// `Done` carries the offset in the concatenated input.
pub fn lib_chunked(parts: &[&[u8]]) -> (Vec<u8>, ChunkEnd) {
    let mut dec = ChunkedDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut body = Vec::new();
    // Bytes of the concatenated input already dropped from `pending`.
    let mut dropped = 0usize;
    for part in parts {
        pending.extend_from_slice(part);
        loop {
            match dec.step(&pending) {
                Err(e) => {
                    assert_eq!(e, Error::Response);
                    assert!(!dec.is_done());
                    assert!(dec.step(&pending).is_err(), "errors are sticky");
                    assert!(dec.step(b"0\r\n\r\n").is_err(), "errors are sticky");
                    return (body, ChunkEnd::Error);
                }
                Ok(ChunkStep::Framing { consumed }) => {
                    assert!(consumed <= pending.len());
                    assert_eq!(consumed, pending.len(), "framing stops only at input end");
                    assert!(!dec.is_done());
                    dropped += consumed;
                    pending.clear();
                    break;
                }
                Ok(ChunkStep::Data { range }) => {
                    assert!(range.start < range.end, "data is never empty");
                    assert!(range.end <= pending.len(), "data within input");
                    body.extend_from_slice(&pending[range.clone()]);
                    dropped += range.end;
                    pending.drain(..range.end);
                }
                Ok(ChunkStep::Done { consumed }) => {
                    assert!(consumed <= pending.len(), "done within input");
                    assert!(dec.is_done());
                    assert_eq!(
                        dec.step(&pending[consumed..]),
                        Ok(ChunkStep::Done { consumed: 0 }),
                        "done stays done"
                    );
                    return (body, ChunkEnd::Done(dropped + consumed));
                }
            }
        }
    }
    assert!(!dec.is_done());
    (body, ChunkEnd::Incomplete)
}

/// Input: `k` (low 3 bits of the first byte), then `k` part lengths (one
/// byte each), then the chunked body. The body is cut into those parts (the
/// rest is the last part) and decoded.
///
/// Invariants: no panic; every step's `consumed`/range within its input,
/// data never empty, framing stops only at the input end, errors and done
/// are sticky; decoding the parts gives exactly the body, the end and the
/// end offset of decoding the whole input in one piece, one byte at a time,
/// and of the independent reference decoder [`ref_chunked`].
pub fn check_chunked(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k & 7).min(rest.len());
    let (lens, input) = rest.split_at(k);
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut tail = input;
    for &len in lens {
        let (a, b) = tail.split_at(usize::from(len).min(tail.len()));
        parts.push(a);
        tail = b;
    }
    parts.push(tail);

    let whole = lib_chunked(&[input]);
    let split = lib_chunked(&parts);
    assert_eq!(split, whole, "split decoding differs from one piece");
    let reference = ref_chunked(input);
    assert_eq!(whole, reference, "decoder differs from the reference");
    if input.len() <= 512 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(lib_chunked(&bytes), whole, "byte-at-a-time differs");
    }
}

// ---------------------------------------------------------------------------
// url: url::parse, compose, resolve_location, write_host_header
// ---------------------------------------------------------------------------

/// The URL as it would be written from its parts.
fn rebuild(u: &url::Url<'_>) -> String {
    let scheme = match u.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let mut s = format!("{scheme}://{}", bracketed(u.host));
    if let Some(p) = u.port {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(u.target);
    s
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn is_url_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None; // upper-case hex only
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            let c = b[i];
            if !(c.is_ascii_alphanumeric() || b"-._~".contains(&c)) {
                return None;
            }
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// Checks one parsed URL: parts within the input, consistent re-parse,
/// `Host` header value, a request head that the HTTP writer accepts.
fn check_parsed(text: &str, u: &url::Url<'_>, override_port: u16, host_room: usize) {
    assert!(text.len() <= FOTA_URL_MAX);
    assert!(!u.host.is_empty());
    assert!(u.target.starts_with('/'), "target {:?}", u.target);
    assert!(!u.target.contains('#'));
    assert!(!u.host.contains(['[', ']', '@', '/']));
    assert!(u.port != Some(0));
    assert!(text.contains(u.host));
    assert!(u.target == "/" || text.contains(u.target));
    let rebuilt = rebuild(u);
    if rebuilt.len() <= FOTA_URL_MAX {
        let again = url::parse(&rebuilt).expect("a rebuilt URL parses");
        assert_eq!(again, *u, "{text:?} rebuilt as {rebuilt:?}");
    }
    let port = u.effective_port(override_port);
    let want_port = u.port.unwrap_or(if override_port == 0 {
        u.scheme.default_port()
    } else {
        override_port
    });
    assert_eq!(port, want_port);
    let mut want = bracketed(u.host);
    if port != u.scheme.default_port() {
        want.push_str(&format!(":{port}"));
    }
    let mut out = vec![0u8; host_room];
    match url::write_host_header(&mut out, u, port) {
        Ok(n) => assert_eq!(&out[..n], want.as_bytes()),
        Err(e) => {
            assert_eq!(e, Error::Url);
            assert!(want.len() > host_room, "{want:?} fits in {host_room}");
        }
    }
    // The session builds its request head from these parts: a parsed URL
    // never makes the HTTP writer refuse it (the head fits in 4096 bytes).
    let mut head = vec![0u8; FOTA_RX_BUF];
    let req = http::Request {
        method: "GET",
        target: u.target,
        host: &want,
        range_from: Some(u32::MAX),
        if_range: None,
        body_len: None,
    };
    let n = http::write_request_head(&mut head, &req).expect("request head");
    assert!(n > 0);
}

/// Input: a mode byte, a port byte pair, then newline-separated fields
/// (lossy UTF-8): url, location, project_key, firmware_name, version,
/// device id. Mode: bits 0-1 device id kind (none/imei/mac/uid), bit 2 no
/// custom URL (the platform), bits 3-7 output room (in 16-byte steps;
/// 0 = 2048).
///
/// Invariants: no panic; an accepted URL's parts lie in the input, rebuild
/// and re-parse to the same URL, give the expected `Host` value (or
/// `Error::Url` exactly when it does not fit) and a request head; `compose`
/// output fits its buffer, equals the output with a large buffer when it
/// fits and is `Error::Url` only when it does not, keeps the base, appends
/// every set parameter percent-encoded in order, refuses exactly the bad
/// platform parameters, and re-parses to the same host and port whenever
/// the base URL parsed; `resolve_location` output fits its buffer, copies
/// absolute locations, keeps the base origin for every other location, and
/// a relative location of URL bytes always yields a URL that parses.
pub fn check_url(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let mode = data[0];
    let override_port = u16::from_le_bytes([data[1], data[2]]);
    let text = String::from_utf8_lossy(&data[3..]);
    let mut fields = text.split('\n');
    let custom = fields.next().unwrap_or("");
    let location = fields.next().unwrap_or("");
    let key = fields.next();
    let firmware = fields.next();
    let version = fields.next();
    let id = fields.next();
    // Room for any output: percent-encoding makes at most 3 bytes of each
    // input byte (and a lossy U+FFFD, 3 bytes, of each invalid one).
    let big_room = 1024 + 9 * data.len();
    let room = match usize::from(mode >> 3) {
        0 => 2048,
        n => n * 16,
    };

    // parse
    let parsed = url::parse(custom);
    if let Ok(u) = &parsed {
        check_parsed(custom, u, override_port, room.min(300));
    } else {
        assert_eq!(parsed, Err(Error::Url));
    }

    // compose
    let kind = match mode & 3 {
        0 => None,
        1 => Some(DeviceIdKind::Imei),
        2 => Some(DeviceIdKind::Mac),
        _ => Some(DeviceIdKind::Uid),
    };
    let params = DeviceParams {
        device_id: kind.zip(id),
        project_key: key,
        firmware_name: firmware,
        version,
    };
    let custom_opt = (mode & 4 == 0).then_some(custom);
    let mut small = vec![0u8; room];
    let mut big = vec![0u8; big_room];
    let small_r = url::compose(&mut small, custom_opt, &params).map(str::to_string);
    let big_r = url::compose(&mut big, custom_opt, &params).map(str::to_string);
    match (&small_r, &big_r) {
        (Ok(s), Ok(b)) => {
            assert!(s.len() <= room);
            assert_eq!(s, b);
        }
        (Err(Error::Url), Ok(b)) => assert!(b.len() > room, "{b:?} fits in {room}"),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("compose: {small_r:?} with {room} bytes, {big_r:?} with {big_room}"),
    }
    match custom_opt {
        None => {
            let ok =
                key.is_some_and(|k| !k.is_empty()) && version.is_some_and(url::is_platform_version);
            if !ok {
                assert_eq!(big_r, Err(Error::PlatformParam));
            } else {
                let s = big_r.as_ref().expect("platform URL");
                check_appended(s, PLATFORM_URL, &params);
                if s.len() <= FOTA_URL_MAX {
                    let u = url::parse(s).expect("platform URL parses");
                    assert_eq!(u.host, "iot.openluat.com");
                }
            }
        }
        Some(c) => match c.strip_prefix("###") {
            Some(verbatim) => assert_eq!(big_r.as_deref(), Ok(verbatim)),
            None => {
                let s = big_r
                    .as_ref()
                    .expect("the large buffer holds any composed URL");
                let base = c.split_once('#').map_or(c, |(b, _)| b);
                let head = base.split_once('?').map_or(base, |(h, _)| h);
                assert!(s.starts_with(head), "{s:?} keeps {head:?}");
                check_appended(s, base, &params);
                if let Ok(u) = &parsed {
                    if s.len() <= FOTA_URL_MAX {
                        let v = url::parse(s).expect("composed URL of a valid base parses");
                        assert_eq!((v.scheme, v.host, v.port), (u.scheme, u.host, u.port));
                        let path = u.target.split_once('?').map_or(u.target, |(p, _)| p);
                        assert!(v.target.starts_with(path), "{v:?} keeps {path:?}");
                    }
                }
            }
        },
    }

    // resolve_location
    let fallback = url::Url {
        scheme: Scheme::Http,
        host: "fw.example",
        port: Some(8080),
        target: "/a/b.bin?x=1",
    };
    let base = parsed.unwrap_or(fallback);
    let mut small = vec![0u8; room];
    let mut big = vec![0u8; big_room];
    let small_r = url::resolve_location(&mut small, &base, location).map(str::to_string);
    let big_r = url::resolve_location(&mut big, &base, location).map(str::to_string);
    if location.is_empty() {
        assert_eq!(big_r, Err(Error::Url));
        assert_eq!(small_r, Err(Error::Url));
        return;
    }
    let lower = location.to_ascii_lowercase();
    let has_scheme = location.split_once(':').is_some_and(|(name, _)| {
        let mut b = name.bytes();
        b.next().is_some_and(|c| c.is_ascii_alphabetic())
            && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    });
    let absolute = lower.starts_with("http://") || lower.starts_with("https://");
    if has_scheme && !absolute {
        // RFC 3986 4.3: a reference with a scheme is absolute, never a path.
        assert_eq!(big_r, Err(Error::Url), "other scheme in {location:?}");
        assert_eq!(small_r, Err(Error::Url));
        return;
    }
    let s = big_r.expect("the large buffer holds any resolved location");
    let scheme = match base.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    // The reference: RFC 3986 5.2.2 concatenation, then 5.2.4 on the path.
    let joined = if absolute {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else {
        let mut origin = format!("{scheme}://{}", bracketed(base.host));
        if let Some(p) = base.port {
            origin.push_str(&format!(":{p}"));
        }
        let path = base.target.split_once('?').map_or(base.target, |(p, _)| p);
        let prefix = match location.as_bytes()[0] {
            b'/' => "",
            b'?' => path,
            b'#' => base.target,
            _ => path.rfind('/').map_or("/", |i| &path[..=i]),
        };
        format!("{origin}{prefix}{location}")
    };
    assert_eq!(s, reference_remove_dots(&joined), "resolving {location:?}");
    // The reference is joined before its dot segments go: that is the room needed.
    match &small_r {
        Ok(t) => assert_eq!(*t, s),
        Err(e) => {
            assert_eq!(*e, Error::Url);
            assert!(joined.len() > room);
        }
    }
    let relative = !absolute && !location.starts_with("//");
    if relative && location.bytes().all(is_url_byte) && s.len() <= FOTA_URL_MAX {
        let v = url::parse(&s)
            .unwrap_or_else(|e| panic!("{location:?} resolves to {s:?}, not a URL: {e:?}"));
        assert_eq!(
            (v.scheme, v.host, v.port),
            (base.scheme, base.host, base.port)
        );
    }
}

/// RFC 3986 5.2.4, written as the RFC's loop over string prefixes, applied
/// to the path of an absolute URL (after `scheme://authority`, before `?`/`#`).
fn reference_remove_dots(url: &str) -> String {
    let Some(at) = url.find("://") else {
        return url.to_string();
    };
    let after = at + 3;
    let path_start = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    let path_end = url[path_start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| path_start + i);
    let path = &url[path_start..path_end];
    if !path.starts_with('/') {
        return url.to_string();
    }
    let mut input = path.to_string();
    let mut out = String::new();
    let pop = |out: &mut String| {
        let cut = out.rfind('/').unwrap_or(0);
        out.truncate(cut);
    };
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_string();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_string();
        } else if let Some(rest) = input.strip_prefix("/./") {
            input = format!("/{rest}");
        } else if input == "/." {
            input = "/".to_string();
        } else if let Some(rest) = input.strip_prefix("/../") {
            input = format!("/{rest}");
            pop(&mut out);
        } else if input == "/.." {
            input = "/".to_string();
            pop(&mut out);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| start + i);
            out.push_str(&input[..end]);
            input = input[end..].to_string();
        }
    }
    format!("{}{}{}", &url[..path_start], out, &url[path_end..])
}

/// `s` is `base`-derived and ends with every set, non-empty parameter as
/// `name=value` (percent-encoded), in the documented order.
fn check_appended(s: &str, base: &str, params: &DeviceParams<'_>) {
    let fields: Vec<(&str, &str)> = [
        params.device_id.map(|(k, v)| {
            let name = match k {
                DeviceIdKind::Imei => "imei",
                DeviceIdKind::Mac => "mac",
                DeviceIdKind::Uid => "uid",
            };
            (name, v)
        }),
        params.project_key.map(|v| ("project_key", v)),
        params.firmware_name.map(|v| ("firmware_name", v)),
        params.version.map(|v| ("version", v)),
    ]
    .into_iter()
    .flatten()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    if fields.is_empty() {
        return;
    }
    // Walk the parameters back from the end of `s`.
    let mut rest = s;
    for (name, value) in fields.iter().rev() {
        let at = rest.rfind(&format!("{name}=")).expect("parameter present");
        let enc = &rest[at + name.len() + 1..];
        assert_eq!(
            percent_decode(enc).as_deref(),
            Some(value.as_bytes()),
            "{name} in {s:?}"
        );
        rest = &rest[..at];
        let sep_ok = rest.ends_with('&') || rest.ends_with('?');
        assert!(sep_ok, "separator before {name} in {s:?}");
        rest = &rest[..rest.len() - 1];
    }
    let _ = base;
}

// ---------------------------------------------------------------------------
// session: session::run over a scripted transport and a RAM flash
// ---------------------------------------------------------------------------

/// Separates the responses of successive connections in a session input.
pub const CONN_SEP: &[u8] = b"\xfe\xffNEXT\xff\xfe";
/// Bytes of configuration at the start of a session input.
pub const SESSION_CONFIG: usize = 8;

/// How a connection ends once its scripted bytes are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Close,
    Reset,
    Stall,
}

/// What one accepted connection delivered.
#[derive(Debug, Default)]
struct ConnLog {
    request: Vec<u8>,
    delivered: Vec<u8>,
    /// Closed cleanly after the delivered bytes (not reset, not stalled,
    /// not cut by the session).
    clean_close: bool,
    closed: bool,
}

type Time = Rc<Cell<u32>>;

/// The clock: one millisecond per read; waits and sleeps add theirs.
struct FuzzClock {
    time: Time,
}

impl Clock for FuzzClock {
    fn now_ms(&self) -> u32 {
        self.time.set(self.time.get().wrapping_add(1));
        self.time.get()
    }
    fn sleep_ms(&self, ms: u32) {
        self.time.set(self.time.get().wrapping_add(ms));
    }
}

/// The scripted transport: responses and a control stream from the input.
struct FuzzNet<'a> {
    time: Time,
    responses: Vec<&'a [u8]>,
    control: &'a [u8],
    next_response: usize,
    current: Option<(&'a [u8], usize, End)>,
    log: Vec<ConnLog>,
    connects: usize,
}

impl<'a> FuzzNet<'a> {
    fn new(time: &Time, responses: Vec<&'a [u8]>, control: &'a [u8]) -> Self {
        FuzzNet {
            time: time.clone(),
            responses,
            control,
            next_response: 0,
            current: None,
            log: Vec::new(),
            connects: 0,
        }
    }

    fn control(&mut self) -> Option<u8> {
        let (&c, rest) = self.control.split_first()?;
        self.control = rest;
        Some(c)
    }
}

impl Transport for FuzzNet<'_> {
    fn close(&mut self) {
        assert!(self.current.is_some(), "close without a connection");
        self.current = None;
        let log = self.log.last_mut().unwrap();
        assert!(!log.closed, "closed twice");
        log.closed = true;
    }

    fn connect(&mut self, host: &str, port: u16, _timeout_ms: u32) -> Result<(), Error> {
        assert!(self.current.is_none(), "connect while connected");
        assert!(!host.is_empty() && port != 0);
        self.connects += 1;
        let c = self.control().unwrap_or(0);
        if c % 16 == 15 {
            return Err(Error::Connect);
        }
        let Some(&response) = self.responses.get(self.next_response) else {
            return Err(Error::Connect);
        };
        self.next_response += 1;
        let end = match (c >> 4) % 4 {
            2 => End::Reset,
            3 => End::Stall,
            _ => End::Close,
        };
        self.current = Some((response, 0, end));
        self.log.push(ConnLog::default());
        Ok(())
    }
}

impl Stream for FuzzNet<'_> {
    fn send(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, Error> {
        assert!(self.current.is_some(), "send without a connection");
        assert!(!data.is_empty(), "empty send");
        self.log.last_mut().unwrap().request.extend_from_slice(data);
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error> {
        assert!(!buf.is_empty(), "recv into an empty buffer");
        assert!(timeout_ms > 0, "recv with a zero timeout");
        let (response, pos, end) = self.current.expect("recv without a connection");
        let left = &response[pos..];
        if left.is_empty() {
            return match end {
                End::Close => {
                    self.log.last_mut().unwrap().clean_close = true;
                    Ok(Received::Closed)
                }
                End::Reset => Err(Error::Disconnected),
                End::Stall => {
                    self.time.set(self.time.get().wrapping_add(timeout_ms));
                    Ok(Received::Idle)
                }
            };
        }
        let want = match self.control() {
            None => left.len(),
            Some(c @ 0..=0x7f) => usize::from(c) + 1,
            Some(c @ 0x80..=0xef) => usize::from(c - 0x7f) * 64,
            Some(0xf0..=0xfb) => {
                self.time.set(self.time.get().wrapping_add(timeout_ms));
                return Ok(Received::Idle);
            }
            Some(_) => {
                // Reset mid-response: the rest never arrives.
                self.current = Some((&response[..pos], pos, End::Reset));
                return Err(Error::Disconnected);
            }
        };
        let n = want.min(left.len()).min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.log
            .last_mut()
            .unwrap()
            .delivered
            .extend_from_slice(&left[..n]);
        self.current = Some((response, pos + n, end));
        Ok(Received::Data(n))
    }
}

/// Flash faults chosen by the input.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    init_fails: bool,
    done_fails: bool,
    end_fails: bool,
    /// Fail the Nth write (from 1); 0 = never.
    fail_write: usize,
    /// `done()` reports busy this many times first.
    busy: u32,
    /// The platform gave a read hook: the image is read back before commit.
    readable: bool,
}

/// One flash call, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FlashCall {
    Init { len: u32, ok: bool },
    Write { offset: u32, len: usize, ok: bool },
    Done { result: Result<bool, Error> },
    End { commit: bool },
}

/// NOR-like RAM flash: erased by `init`, written once, in order, aligned.
struct FuzzFlash {
    granularity: u32,
    max_len: u32,
    faults: Faults,
    mem: Vec<u8>,
    open: bool,
    writes: usize,
    write_failed: bool,
    polls: u32,
    calls: Vec<FlashCall>,
    /// Length announced to the open image's `init`.
    announced: u32,
}

impl FuzzFlash {
    fn new(granularity: u32, max_len: u32, faults: Faults) -> Self {
        FuzzFlash {
            granularity,
            max_len,
            faults,
            mem: Vec::new(),
            open: false,
            writes: 0,
            write_failed: false,
            polls: 0,
            calls: Vec::new(),
            announced: 0,
        }
    }
}

impl Flash for FuzzFlash {
    fn granularity(&self) -> u32 {
        self.granularity
    }

    fn init(&mut self, image_len: u32) -> Result<(), Error> {
        assert!(!self.open, "init while an image is open");
        if self.max_len != 0 {
            assert!(image_len <= self.max_len, "init beyond max_len");
        }
        if self.faults.init_fails {
            self.calls.push(FlashCall::Init {
                len: image_len,
                ok: false,
            });
            return Err(Error::Flash);
        }
        self.calls.push(FlashCall::Init {
            len: image_len,
            ok: true,
        });
        self.open = true;
        self.mem.clear();
        self.announced = image_len;
        self.write_failed = false;
        self.polls = 0;
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        assert!(self.open, "write without an open image");
        assert!(!self.write_failed, "write after a failed write");
        assert!(!data.is_empty(), "empty write");
        assert_eq!(offset as usize, self.mem.len(), "writes in order, no gaps");
        let g = self.granularity as usize;
        if g > 0 {
            assert_eq!(self.mem.len() % g, 0, "write after a short one / unaligned");
        }
        let end = offset as u64 + data.len() as u64;
        if self.max_len != 0 {
            assert!(end <= u64::from(self.max_len), "write past max_len");
        }
        if self.announced != 0 {
            assert!(
                end <= u64::from(self.announced),
                "write past the announced length"
            );
        }
        self.writes += 1;
        let ok = self.faults.fail_write != self.writes;
        self.calls.push(FlashCall::Write {
            offset,
            len: data.len(),
            ok,
        });
        if !ok {
            self.write_failed = true;
            return Err(Error::Flash);
        }
        self.mem.extend_from_slice(data);
        Ok(())
    }

    fn done(&mut self) -> Result<bool, Error> {
        assert!(self.open, "done without an open image");
        assert!(!self.write_failed, "done after a failed write");
        self.polls += 1;
        let result = if self.polls <= self.faults.busy {
            Ok(false)
        } else if self.faults.done_fails {
            Err(Error::Flash)
        } else {
            Ok(true)
        };
        self.calls.push(FlashCall::Done { result });
        result
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        assert!(self.open, "end without an open image");
        self.open = false;
        self.calls.push(FlashCall::End { commit });
        if commit {
            assert!(!self.write_failed, "commit after a failed write");
            assert!(!self.mem.is_empty(), "commit of an empty image");
            if self.announced != 0 {
                assert_eq!(
                    self.mem.len(),
                    self.announced as usize,
                    "commit of a short image"
                );
            }
            assert!(
                matches!(
                    self.calls.iter().rev().nth(1),
                    Some(FlashCall::Done { result: Ok(true) })
                ),
                "commit right after done() finished"
            );
        }
        if self.faults.end_fails {
            Err(Error::Flash)
        } else {
            Ok(())
        }
    }

    fn can_read(&self) -> bool {
        self.faults.readable
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        assert!(self.faults.readable, "read without a read hook");
        assert!(self.open, "read outside init..end");
        let at = offset as usize;
        buf.copy_from_slice(&self.mem[at..at + buf.len()]);
        Ok(())
    }
}

struct FuzzSys {
    time: Time,
    last_progress: Option<(u32, u32)>,
}

impl System for FuzzSys {
    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(0x5a);
        Ok(())
    }
    fn log(&mut self, _level: Level, msg: &str) {
        assert!(!msg.contains(['\r', '\n']), "log line with a line end");
    }
    fn progress(&mut self, written: u32, total: u32) {
        assert!(written > 0, "progress after a write");
        if total != 0 {
            assert!(written <= total, "progress past the total");
        }
        self.last_progress = Some((written, total));
    }
}

/// Per-connection reference: the final status and the body the delivered
/// bytes frame (Content-Length, chunked, until close), and whether it is
/// complete. `None` when no final head is there.
fn reference_response(log: &ConnLog, head_request: bool) -> Option<(u16, Vec<u8>, bool)> {
    let mut rest = &log.delivered[..];
    loop {
        let h = http::parse_head(rest, head_request).ok()??;
        rest = &rest[h.head_len..];
        if h.status < 200 {
            continue;
        }
        let (body, complete) = match h.framing {
            Framing::None => (Vec::new(), true),
            Framing::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                (rest[..n.min(rest.len())].to_vec(), rest.len() >= n)
            }
            Framing::Chunked => {
                let (body, end) = ref_chunked(rest);
                (body, matches!(end, ChunkEnd::Done(_)))
            }
            Framing::UntilClose => (rest.to_vec(), log.clean_close),
        };
        return Some((h.status, body, complete));
    }
}

/// The `N` of a `Range: bytes=N-` line in a request.
fn range_of(request: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(request).ok()?;
    let line = text.lines().find(|l| l.starts_with("Range: bytes="))?;
    line.strip_prefix("Range: bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// Input: 8 configuration bytes, a control stream, then the responses of
/// successive connections separated by [`CONN_SEP`].
///
/// - byte 0: write granularity: `b % 14` = 0 → none, else `1 << (b % 14 - 1)`
///   (1 to 4096)
/// - bytes 1-2: `max_len` (u16 LE; 0 = no limit)
/// - byte 3: bits 0-1 `max_retries`, bits 2-3 `max_redirects`, bits 4-6 = 7
///   → method HEAD
/// - byte 4: flash faults when bit 7 is set: bit 0 init fails, bit 1 done
///   fails, bit 2 end fails
/// - byte 5: fail the Nth write (0 = never); byte 6: `done()` busy polls (% 16)
/// - byte 7: length of the control stream that follows. Each `connect`
///   takes one control byte (`% 16 == 15`: refused; bits 4-5 = 2: reset
///   after the response, 3: stall, else close) and each `recv` one
///   (0x00-0x7f: up to b+1 bytes, 0x80-0xef: up to (b-0x7f)*64 bytes,
///   0xf0-0xfb: would block, 0xfc-0xff: reset now); when the stream is used
///   up, connections close after their response and `recv` returns all it can.
///
/// Invariants: no panic; `run` returns a valid result code and leaves the
/// status idle; every connection is closed exactly once and only used while
/// open; each request head is well-formed; flash calls are in order:
/// `init` only when no image is open and within `max_len`, writes in order
/// without gaps, aligned to the granularity except the last, never past
/// `max_len` or the announced length, `end` exactly once after every
/// successful `init`, `end(true)` only right after `done()` finished with
/// every announced byte written and only as the last call, and only when
/// the result is `OK` (or the commit itself failed); when the result is `OK`
/// the flash holds exactly the body the delivered bytes framed (the
/// reference follows each connection's response, and a 206 continues the
/// image at the offset its request asked for).
///
/// Returns the result code (-1 for an input too short to run).
pub fn check_session(data: &[u8]) -> i32 {
    if data.len() < SESSION_CONFIG {
        return -1;
    }
    let (config, rest) = data.split_at(SESSION_CONFIG);
    let granularity = match config[0] % 14 {
        0 => 0,
        n => 1u32 << (n - 1),
    };
    let max_len = u32::from(u16::from_le_bytes([config[1], config[2]]));
    let max_retries = u32::from(config[3] & 3);
    let max_redirects = (config[3] >> 2) & 3;
    let head_request = (config[3] >> 4) & 7 == 7;
    let faults = if config[4] & 0x80 != 0 {
        Faults {
            init_fails: config[4] & 1 != 0,
            done_fails: config[4] & 2 != 0,
            end_fails: config[4] & 4 != 0,
            fail_write: usize::from(config[5]),
            busy: u32::from(config[6] % 16),
            readable: config[4] & 8 != 0,
        }
    } else {
        Faults {
            fail_write: usize::from(config[5]),
            busy: u32::from(config[6] % 16),
            readable: config[4] & 8 != 0,
            ..Faults::default()
        }
    };
    let control_len = usize::from(config[7]).min(rest.len());
    let (control, script) = rest.split_at(control_len);
    let mut responses = Vec::new();
    let mut tail = script;
    while let Some(at) = find(tail, CONN_SEP) {
        responses.push(&tail[..at]);
        tail = &tail[at + CONN_SEP.len()..];
    }
    responses.push(tail);

    let time: Time = Rc::new(Cell::new(0xffff_0000)); // wraps during the run
    let mut net = FuzzNet::new(&time, responses, control);
    let mut flash = FuzzFlash::new(granularity, max_len, faults);
    let clock = FuzzClock { time: time.clone() };
    let mut sys = FuzzSys {
        time,
        last_progress: None,
    };
    let opts = Options {
        url: Some("http://fw.example/app.bin"),
        method: if head_request { "HEAD" } else { "GET" },
        headers: b"X-Fuzz: 1",
        max_len,
        timeout_ms: 60_000,
        idle_timeout_ms: 2_000,
        max_redirects,
        max_retries,
        retry_delay_ms: 100,
        ..Options::default()
    };
    let status = Status::new();
    let mut ws = Box::new(Workspace::new());
    let outcome = session::run(
        &mut ws, &mut net, &mut flash, &clock, &mut sys, &status, &opts,
    );

    // A valid code; the status is idle again.
    let code = result::code(outcome);
    assert!((0..=15).contains(&code), "code {code}");
    assert_eq!(status.snapshot().state, fota::status::State::Idle as u32);
    assert!(
        !matches!(
            outcome,
            Err(Error::Busy | Error::Tls | Error::PlatformParam)
        ),
        "{outcome:?} cannot happen here"
    );
    // No check is configured: only a server's Repr-Digest can refuse an image.
    if outcome == Err(Error::Verify) {
        let said = net.log.iter().any(|l| {
            l.delivered
                .to_ascii_lowercase()
                .windows(11)
                .any(|w| w == b"repr-digest")
        });
        assert!(said, "FOTA_ERR_VERIFY without a Repr-Digest");
    }

    // Connections: each closed once, nothing left open, well-formed requests.
    assert!(net.current.is_none(), "connection left open");
    assert!(
        net.connects <= 1 + 3 + 3,
        "more connects than retries and redirects allow"
    );
    for log in &net.log {
        assert!(log.closed);
        check_request(&log.request, opts.method);
    }

    // Flash: exactly one end after every successful init, commit last.
    let inits = flash
        .calls
        .iter()
        .filter(|c| matches!(c, FlashCall::Init { ok: true, .. }))
        .count();
    let ends: Vec<bool> = flash
        .calls
        .iter()
        .filter_map(|c| match c {
            FlashCall::End { commit } => Some(*commit),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), inits, "one end per successful init");
    assert!(!flash.open);
    let commits = ends.iter().filter(|&&c| c).count();
    match outcome {
        Ok(()) => {
            assert_eq!(commits, 1);
            assert_eq!(flash.calls.last(), Some(&FlashCall::End { commit: true }));
        }
        Err(Error::Flash) if faults.end_fails && commits == 1 => {
            assert_eq!(flash.calls.last(), Some(&FlashCall::End { commit: true }));
        }
        Err(_) => assert_eq!(commits, 0, "commit on a failed request: {outcome:?}"),
    }
    if flash
        .calls
        .iter()
        .any(|c| matches!(c, FlashCall::Write { ok: false, .. }))
    {
        assert_eq!(
            outcome,
            Err(Error::Flash),
            "a failed write fails the request"
        );
    }

    // The committed image is exactly what the responses framed.
    if outcome.is_ok() {
        let mut expected: Vec<u8> = Vec::new();
        for log in &net.log {
            let Some((status, body, _)) = reference_response(log, head_request) else {
                continue;
            };
            match (status, range_of(&log.request)) {
                (206, Some(from)) => {
                    // The session checked the continuation; what it accepted
                    // continues the image at `from`.
                    assert!(from <= expected.len(), "Range beyond the bytes received");
                    expected.truncate(from);
                    expected.extend_from_slice(&body);
                }
                (200 | 206, _) => expected = body,
                _ => {}
            }
        }
        assert_eq!(flash.mem.len(), expected.len(), "image length");
        assert!(flash.mem == expected, "image differs from the framed body");
        let last = net.log.last().expect("a connection");
        let (_, _, complete) = reference_response(last, head_request).expect("a head");
        assert!(complete, "committed an incomplete body");
    }
    code
}

/// The request head sent on one connection is one well-formed head.
fn check_request(req: &[u8], method: &str) {
    assert!(
        req.starts_with(format!("{method} /").as_bytes()),
        "request line"
    );
    assert!(find(req, b"\r\nHost: ").is_some() && find(req, b"\r\nX-Fuzz: 1\r\n").is_some());
    let end = find(req, b"\r\n\r\n").expect("head ends with an empty line");
    assert_eq!(end + 4, req.len(), "nothing after the head (no body)");
    let head = &req[..end + 2];
    for line in head.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.ends_with(b"\r"), "CRLF line ends");
        assert!(!line[..line.len() - 1].contains(&b'\r'), "bare CR");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// mcuboot: a signed-image request, against a reference verifier
// ---------------------------------------------------------------------------

/// The public half of `fuzz/keys/mcuboot-test.pem` (the corpus is signed with it).
const MCUBOOT_TEST_KEY: &[u8] = include_bytes!("../keys/mcuboot-test.pub.pem");

/// Input: one byte `n` (taken mod 33), `n` control bytes (how the transport
/// cuts the response, as in `session`), then an image served as the body of
/// one `200` with a `Content-Length`. The request has `image_key` = the test
/// key and `version` = 1.0.0.
///
/// Invariants: fota commits the image (exactly the served bytes) if and only
/// if the reference verifier below accepts it: a well-formed MCUboot image
/// whose `SHA256` TLV is the hash of header, body and protected TLVs, whose
/// `KEYHASH` (if any) is the test key's, whose `ECDSA_SIG` verifies with the
/// test key (p256, independently), not older than 1.0.0, ending exactly
/// where its TLV area ends. Otherwise the result is `FOTA_ERR_VERIFY` (or a
/// transport error from the control bytes) and nothing is committed.
pub fn check_mcuboot(data: &[u8]) -> i32 {
    let Some((&n, rest)) = data.split_first() else {
        return -1;
    };
    let (control, image) = rest.split_at(usize::from(n % 33).min(rest.len()));
    let mut response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", image.len()).into_bytes();
    response.extend_from_slice(image);
    let time: Time = Rc::new(Cell::new(0));
    let mut net = FuzzNet::new(&time, vec![&response], control);
    let mut flash = FuzzFlash::new(0, 0, Faults::default());
    let clock = FuzzClock { time: time.clone() };
    let mut sys = FuzzSys {
        time,
        last_progress: None,
    };
    let mut opts = Options {
        url: Some("http://fw.example/app.bin"),
        headers: b"X-Fuzz: 1",
        max_retries: 0,
        image_key: MCUBOOT_TEST_KEY,
        ..Options::default()
    };
    opts.params.version = Some("1.0.0");
    let status = Status::new();
    let mut ws = Box::new(Workspace::new());
    let outcome = session::run(
        &mut ws, &mut net, &mut flash, &clock, &mut sys, &status, &opts,
    );
    let code = result::code(outcome);
    let delivered_all = net
        .log
        .first()
        .is_some_and(|l| l.delivered.len() == response.len());
    let valid = reference_mcuboot(image);
    match outcome {
        Ok(()) => {
            assert!(
                valid.is_ok(),
                "committed an image the reference refuses: {valid:?}"
            );
            assert!(flash.mem == image, "committed bytes differ from the image");
        }
        Err(Error::Verify) => assert!(valid.is_err(), "refused a valid signed image"),
        Err(e) => assert!(
            !delivered_all || matches!(e, Error::Response | Error::TooLarge) && image.is_empty(),
            "{e:?} after the whole response arrived"
        ),
    }
    if valid.is_ok() && delivered_all {
        assert_eq!(
            outcome,
            Ok(()),
            "a valid signed image, fully delivered, not committed"
        );
    }
    code
}

/// The reference: the whole image in memory, parsed by position.
fn reference_mcuboot(img: &[u8]) -> Result<(), &'static str> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use sha2::{Digest, Sha256};
    let u16_at = |at: usize| {
        img.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        img.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if img.len() < 32 || u32_at(0) != Some(0x96f3_b83d) {
        return Err("magic");
    }
    let hdr = u64::from(u16_at(8).unwrap());
    let prot = u64::from(u16_at(10).unwrap());
    let body = u64::from(u32_at(12).unwrap());
    if hdr < 32 || (prot != 0 && prot < 4) {
        return Err("header sizes");
    }
    let body_end = hdr + body;
    let tlv_start = body_end + prot;
    if tlv_start > u64::from(u32::MAX) || tlv_start + 4 > img.len() as u64 {
        return Err("sizes past the image");
    }
    let version = (img[20], img[21], u16_at(22).unwrap());
    if version < (1, 0, 0) {
        return Err("older than 1.0.0");
    }
    // Walks one TLV area: its end and (kind, value) pairs, or an error.
    type Area<'a> = Result<(usize, Vec<(u16, &'a [u8])>), &'static str>;
    let area = |start: usize, magic: u16, total: Option<u16>| -> Area<'_> {
        if u16_at(start) != Some(magic) {
            return Err("info magic");
        }
        let tot = u16_at(start + 2).ok_or("info")?;
        if tot < 4 || total.is_some_and(|t| t != tot) {
            return Err("info length");
        }
        let end = start + usize::from(tot);
        let mut at = start + 4;
        let mut items = Vec::new();
        while at < end {
            let kind = u16_at(at).ok_or("truncated")?;
            let len = usize::from(u16_at(at + 2).ok_or("truncated")?);
            if at + 4 + len > end {
                return Err("tlv past its area");
            }
            items.push((kind, img.get(at + 4..at + 4 + len).ok_or("truncated")?));
            at += 4 + len;
        }
        Ok((end, items))
    };
    let mut counter = None;
    if prot > 0 {
        let (_, items) = area(body_end as usize, 0x6908, Some(prot as u16))?;
        for (kind, value) in items {
            if kind == 0x50 {
                counter = Some(<[u8; 4]>::try_from(value).map_err(|_| "counter size")?);
            }
        }
    }
    let _ = counter;
    let (end, items) = area(tlv_start as usize, 0x6907, None)?;
    if end != img.len() {
        return Err("length differs from the TLV area's end");
    }
    let (mut hash, mut keyhash, mut sig) = (None, None, None);
    for (kind, value) in items {
        match kind {
            0x10 => hash = Some(<[u8; 32]>::try_from(value).map_err(|_| "hash size")?),
            0x01 => keyhash = Some(<[u8; 32]>::try_from(value).map_err(|_| "keyhash size")?),
            0x22 if value.len() > 80 => return Err("signature size"),
            0x22 => sig = Some(value),
            _ => {}
        }
    }
    let hash = hash.ok_or("no hash")?;
    let digest: [u8; 32] = Sha256::digest(&img[..tlv_start as usize]).into();
    if hash != digest {
        return Err("hash");
    }
    let spki = test_key_spki();
    if keyhash.is_some_and(|k| k[..] != Sha256::digest(&spki)[..]) {
        return Err("keyhash");
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&spki[26..]).unwrap();
    let sig = p256::ecdsa::Signature::from_der(sig.ok_or("no signature")?).map_err(|_| "der")?;
    key.verify_prehash(&hash, &sig).map_err(|_| "signature")
}

/// The DER SubjectPublicKeyInfo of the test key (the PEM's base64 body).
fn test_key_spki() -> Vec<u8> {
    let text = std::str::from_utf8(MCUBOOT_TEST_KEY).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in b64.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
