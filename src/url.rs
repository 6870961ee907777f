//! URLs: parsing, the `Host` header, the request URL with device parameters
//! (the LuatOS cloud contract) and redirect resolution.
//!
//! Everything here is a pure function over borrowed strings and caller
//! buffers: no heap, no I/O, no `core::fmt`, and no input can make it panic.

use crate::decimal::{decimal, U32_DIGITS};
use crate::result::Error;

/// Longest URL the library handles, including the appended device parameters.
pub const FOTA_URL_MAX: usize = 512;

/// The LuatOS IoT platform endpoint used when no URL is given.
pub const PLATFORM_URL: &str = "http://iot.openluat.com/api/site/firmware_upgrade";

/// A custom URL starting with this is used verbatim, without device parameters.
const VERBATIM_PREFIX: &str = "###";

/// The URL schemes the library speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port used when the URL names none: 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme's name as written in URLs, lower case.
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An absolute http/https URL, borrowing the string it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Url<'a> {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP literal; IPv6 literals WITHOUT the brackets ("::1").
    pub host: &'a str,
    /// Port from the URL, or None when the URL has none.
    pub port: Option<u16>,
    /// Path and query to put on the request line; "/" when the URL has no path. Fragment ("#...") dropped.
    ///
    /// Always starts with '/'.
    pub target: &'a str,
}

impl Url<'_> {
    /// Port to connect to: the URL's, else `override_port` when non-zero, else the scheme default.
    pub fn effective_port(&self, override_port: u16) -> u16 {
        match (self.port, override_port) {
            (Some(p), _) => p,
            (None, 0) => self.scheme.default_port(),
            (None, p) => p,
        }
    }
}

/// Parses an absolute http/https URL. Errors are `Error::Url`.
///
/// Accepts `scheme://host[:port][/path][?query][#fragment]` with a
/// case-insensitive `http` or `https` scheme, a host name of ASCII
/// alphanumerics, '-', '.' and '_', or a bracketed IPv6 literal of hex digits,
/// ':' and '.' (no zone). The path is kept exactly as written (no
/// percent-decoding); the fragment is dropped.
///
/// Rejected: other schemes, userinfo, an empty host, an empty, zero or
/// out-of-range port, spaces, control or non-ASCII bytes anywhere, more than
/// [`FOTA_URL_MAX`] bytes, and a query with no path (`http://h?x=1`): the
/// target borrows the input, so it cannot gain the '/' the request line needs.
/// [`compose`] never produces that form when it adds a query.
pub fn parse(url: &str) -> Result<Url<'_>, Error> {
    if url.len() > FOTA_URL_MAX || !url.bytes().all(is_url_byte) {
        return Err(Error::Url);
    }
    let (scheme, rest) = split_scheme(url).ok_or(Error::Url)?;
    let (authority, tail) = rest
        .split_at_checked(authority_len(rest))
        .ok_or(Error::Url)?;
    let target = tail.split_once('#').map_or(tail, |(t, _)| t);
    let target = match target {
        "" => "/",
        t if t.starts_with('/') => t,
        _ => return Err(Error::Url),
    };
    let (host, port) = split_authority(authority)?;
    Ok(Url {
        scheme,
        host,
        port,
        target,
    })
}

/// Writes the value of a `Host` header for `url` connecting to `port` into `out`: host (IPv6 in brackets), plus ":port" when port differs from the scheme default. Returns bytes written; Error::Url if it does not fit.
pub fn write_host_header(out: &mut [u8], url: &Url<'_>, port: u16) -> Result<usize, Error> {
    let mut w = Writer::new(out);
    w.push_host(url.host)?;
    if port != url.scheme.default_port() {
        w.push(b":")?;
        w.push(decimal(port.into(), &mut [0; U32_DIGITS]).as_bytes())?;
    }
    Ok(w.len)
}

/// Which device identifier the platform gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceIdKind {
    /// Modem IMEI, sent as `imei=`.
    Imei,
    /// Network MAC address, sent as `mac=`.
    Mac,
    /// Chip unique ID, sent as `uid=`.
    Uid,
}

impl DeviceIdKind {
    /// The query parameter name the platform expects.
    fn query_name(self) -> &'static str {
        match self {
            DeviceIdKind::Imei => "imei",
            DeviceIdKind::Mac => "mac",
            DeviceIdKind::Uid => "uid",
        }
    }
}

/// The device parameters appended to the request URL; unset or empty ones are left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceParams<'a> {
    /// The device's identifier and its kind.
    pub device_id: Option<(DeviceIdKind, &'a str)>,
    /// The platform project key (required for the platform).
    pub project_key: Option<&'a str>,
    /// The firmware name the platform matches images against.
    pub firmware_name: Option<&'a str>,
    /// The running firmware version (`xxx.yyy.zzz` for the platform).
    pub version: Option<&'a str>,
}

/// True when `v` is three dot-separated decimal numbers ("1025.1.0"), each 1..=9 digits.
pub fn is_platform_version(v: &str) -> bool {
    let mut parts = 0usize;
    for part in v.split('.') {
        parts = parts.saturating_add(1);
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 3
}

/// Composes the URL to request into `out` and returns it as &str (borrowing `out`).
///
/// - `custom == None`: the platform. A missing or empty `project_key`, or a
///   `version` that is missing or not [`is_platform_version`], is
///   `Error::PlatformParam`. Result: [`PLATFORM_URL`] with the parameters.
/// - `custom` starting with `###`: the rest, verbatim.
/// - other `custom`: it with the parameters appended, after '?' when it has no
///   query, '&' when it has one, nothing when it already ends with '?' or '&';
///   a fragment is dropped (parameters go where it was).
///
/// Parameters, each only when set and non-empty, in this order:
/// `imei|mac|uid`, `project_key`, `firmware_name`, `version`; values are
/// percent-encoded (all but `A-Z a-z 0-9 - . _ ~`, upper-case hex).
///
/// One normalisation: when the URL has an empty path and a query follows
/// (`http://h` plus parameters, or `http://h?x=1`), a '/' is inserted before
/// the '?', which means the same and lets [`parse`] accept the result.
///
/// Does not validate the URL (callers [`parse`] the result). Output longer
/// than `out` is `Error::Url`.
pub fn compose<'o>(
    out: &'o mut [u8],
    custom: Option<&str>,
    params: &DeviceParams<'_>,
) -> Result<&'o str, Error> {
    let base = match custom {
        None => {
            let key_ok = params.project_key.is_some_and(|k| !k.is_empty());
            let version_ok = params.version.is_some_and(is_platform_version);
            if !key_ok || !version_ok {
                return Err(Error::PlatformParam);
            }
            PLATFORM_URL
        }
        Some(u) => match u.strip_prefix(VERBATIM_PREFIX) {
            Some(verbatim) => {
                let mut w = Writer::new(out);
                w.push_str(verbatim)?;
                return w.into_str();
            }
            None => u,
        },
    };

    let fields = [
        params.device_id.map(|(kind, id)| (kind.query_name(), id)),
        params.project_key.map(|v| ("project_key", v)),
        params.firmware_name.map(|v| ("firmware_name", v)),
        params.version.map(|v| ("version", v)),
    ];
    let mut fields = fields
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_empty())
        .peekable();
    let any_param = fields.peek().is_some();

    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let (head, query) = base
        .find('?')
        .and_then(|i| base.split_at_checked(i))
        .unwrap_or((base, ""));

    let mut w = Writer::new(out);
    w.push_str(head)?;
    if (any_param || !query.is_empty()) && has_empty_path(head) {
        w.push(b"/")?;
    }
    w.push_str(query)?;

    let mut sep: &[u8] = if query.is_empty() {
        b"?"
    } else if query.ends_with(['?', '&']) {
        b""
    } else {
        b"&"
    };
    for (name, value) in fields {
        w.push(sep)?;
        w.push_str(name)?;
        w.push(b"=")?;
        w.push_encoded(value)?;
        sep = b"&";
    }
    w.into_str()
}

/// Resolves a `Location` header value against the URL it came from, into
/// `out`; returns the absolute URL (RFC 3986 section 5.2).
///
/// - a reference with a scheme (`name:`, RFC 3986 3.1) is absolute: `http`
///   and `https` (any case) are kept, every other scheme (`ftp:`, `file:`,
///   `data:` ...) is `Error::Url`;
/// - `//host/...`: the base scheme, ':', then the location;
/// - `/path`: the base origin (host bracketed when IPv6, `:port` when the
///   base has one), then the location;
/// - `?query`: the base path (without its query), then the location;
/// - `#fragment`: the base target, then the location;
/// - anything else (`img.bin`, `../x`): the base target up to and including
///   the last '/' of its path, then the location.
///
/// Dot segments (`.`, `..`) of the resulting path are removed (RFC 3986
/// 5.2.4); `..` never climbs above the root.
///
/// An empty location, or a result longer than `out` before its dot segments
/// are removed, is `Error::Url`. The result is not validated otherwise
/// (callers [`parse`] it).
pub fn resolve_location<'o>(
    out: &'o mut [u8],
    base: &Url<'_>,
    location: &str,
) -> Result<&'o str, Error> {
    if location.is_empty() {
        return Err(Error::Url);
    }
    let mut w = Writer::new(out);
    if split_scheme(location).is_some() {
        w.push_str(location)?;
    } else if has_other_scheme(location) {
        return Err(Error::Url);
    } else if location.starts_with("//") {
        w.push_str(base.scheme.name())?;
        w.push(b":")?;
        w.push_str(location)?;
    } else {
        w.push_str(base.scheme.name())?;
        w.push(b"://")?;
        w.push_host(base.host)?;
        if let Some(port) = base.port {
            w.push(b":")?;
            w.push(decimal(port.into(), &mut [0; U32_DIGITS]).as_bytes())?;
        }
        let path = base.target.split_once('?').map_or(base.target, |(p, _)| p);
        let prefix = match location.as_bytes().first() {
            Some(b'/') => "",
            Some(b'?') => path,
            Some(b'#') => base.target,
            // Up to and including the last '/'; a hand-made base without one counts as "/".
            _ => path.rfind('/').and_then(|i| path.get(..=i)).unwrap_or("/"),
        };
        w.push_str(prefix)?;
        w.push_str(location)?;
    }
    w.remove_dot_segments();
    w.into_str()
}

/// True when `reference` starts with a scheme other than http/https:
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"` (RFC 3986 3.1).
fn has_other_scheme(reference: &str) -> bool {
    let Some((name, _)) = reference.split_once(':') else {
        return false;
    };
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Removes the dot segments of the absolute path `path[..len]` in place
/// (RFC 3986 5.2.4) and returns its new length; the output is never longer.
fn remove_dot_segments(path: &mut [u8], len: usize) -> usize {
    let mut out = 0;
    let mut i = 0;
    while i < len {
        // path[i] is the '/' that starts a segment.
        let start = i + 1;
        let end = path
            .get(start..len)
            .and_then(|rest| rest.iter().position(|&b| b == b'/'))
            .map_or(len, |p| start + p);
        let last = end == len;
        match path.get(start..end) {
            Some(b".") => {}
            Some(b"..") => {
                out = path
                    .get(..out)
                    .and_then(|kept| kept.iter().rposition(|&b| b == b'/'))
                    .unwrap_or(0);
            }
            _ => {
                path.copy_within(i..end, out);
                out += end - i;
                i = end;
                continue;
            }
        }
        if last {
            // "/a/." and "/a/.." end in a directory: keep its '/'.
            if let Some(slot) = path.get_mut(out) {
                *slot = b'/';
                out += 1;
            }
        }
        i = end;
    }
    out
}

/// Bytes allowed anywhere in a URL: printable ASCII without space.
fn is_url_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

/// Bytes allowed in a host name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Bytes allowed in a bracketed IPv6 literal.
fn is_ipv6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || matches!(b, b':' | b'.')
}

/// Bytes kept as they are in a percent-encoded query value (RFC 3986 unreserved).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Splits a case-insensitive `http://` or `https://` off `s`.
fn split_scheme(s: &str) -> Option<(Scheme, &str)> {
    [(Scheme::Https, "https://"), (Scheme::Http, "http://")]
        .into_iter()
        .find_map(|(scheme, prefix)| {
            let (head, rest) = s.split_at_checked(prefix.len())?;
            head.eq_ignore_ascii_case(prefix).then_some((scheme, rest))
        })
}

/// Length of the authority at the start of `rest` (what follows `scheme://`).
fn authority_len(rest: &str) -> usize {
    rest.find(['/', '?', '#']).unwrap_or(rest.len())
}

/// True when `head` (a URL without query or fragment) is `scheme://authority`
/// with nothing after the authority.
fn has_empty_path(head: &str) -> bool {
    split_scheme(head).is_some_and(|(_, rest)| authority_len(rest) == rest.len())
}

/// Splits `host[:port]` or `[ipv6][:port]` and checks both parts.
fn split_authority(authority: &str) -> Result<(&str, Option<u16>), Error> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(inner) => {
            let (host, after) = inner.split_once(']').ok_or(Error::Url)?;
            // The ':' also keeps `write_host_header`'s bracket test in step with this one.
            if !host.contains(':') || !host.bytes().all(is_ipv6_byte) {
                return Err(Error::Url);
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(Error::Url)?),
            };
            (host, port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            // Also rejects userinfo ('@') and an empty host.
            if host.is_empty() || !host.bytes().all(is_name_byte) {
                return Err(Error::Url);
            }
            (host, port)
        }
    };
    Ok((host, port.map(parse_port).transpose()?))
}

/// A decimal port in 1..=65535; leading zeros allowed.
fn parse_port(s: &str) -> Result<u16, Error> {
    if s.is_empty() {
        return Err(Error::Url);
    }
    let mut port: u16 = 0;
    for b in s.bytes() {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10).ok_or(Error::Url)?;
        port = port
            .checked_mul(10)
            .and_then(|p| p.checked_add(u16::from(digit)))
            .ok_or(Error::Url)?;
    }
    if port == 0 {
        return Err(Error::Url);
    }
    Ok(port)
}

/// Upper-case hex digit for `n` (also the decimal digit when `n < 10`).
fn hex_digit(n: u8) -> u8 {
    b"0123456789ABCDEF"
        .get(usize::from(n))
        .copied()
        .unwrap_or(b'0')
}

/// Appends to a caller buffer; running out of room is `Error::Url`.
struct Writer<'o> {
    /// Where the text goes.
    buf: &'o mut [u8],
    /// Bytes written so far, at the start of `buf`.
    len: usize,
}

impl<'o> Writer<'o> {
    /// An empty writer over `buf`.
    fn new(buf: &'o mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Appends `bytes`, or fails leaving what was written before.
    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(bytes.len()).ok_or(Error::Url)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::Url)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends `s`.
    fn push_str(&mut self, s: &str) -> Result<(), Error> {
        self.push(s.as_bytes())
    }

    /// A host as it appears in a URL or `Host` header: IPv6 literals bracketed.
    fn push_host(&mut self, host: &str) -> Result<(), Error> {
        if host.contains(':') {
            self.push(b"[")?;
            self.push_str(host)?;
            self.push(b"]")
        } else {
            self.push_str(host)
        }
    }

    /// Appends `value` percent-encoded: unreserved bytes as they are, the rest `%XX`.
    fn push_encoded(&mut self, value: &str) -> Result<(), Error> {
        for b in value.bytes() {
            if is_unreserved(b) {
                self.push(&[b])?;
            } else {
                self.push(&[b'%', hex_digit(b >> 4), hex_digit(b & 0x0f)])?;
            }
        }
        Ok(())
    }

    /// The text written so far. Every piece came from a `&str` or is ASCII,
    /// so the check cannot fail; it stands in for `unsafe`.
    /// Removes the dot segments of the path of the absolute URL written so
    /// far (between the authority and the query or fragment).
    fn remove_dot_segments(&mut self) {
        let Some(written) = self.buf.get_mut(..self.len) else {
            return;
        };
        let after_scheme = written
            .windows(3)
            .position(|w| w == b"://")
            .map_or(0, |p| p + 3);
        let Some(rest) = written.get(after_scheme..) else {
            return;
        };
        let path_start = after_scheme
            + rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
        let Some(tail) = written.get_mut(path_start..) else {
            return;
        };
        let path_len = tail
            .iter()
            .position(|&b| matches!(b, b'?' | b'#'))
            .unwrap_or(tail.len());
        if tail.first() != Some(&b'/') {
            return;
        }
        let new_len = remove_dot_segments(tail, path_len);
        if new_len < path_len {
            let total = tail.len();
            tail.copy_within(path_len..total, new_len);
            self.len -= path_len - new_len;
        }
    }

    fn into_str(self) -> Result<&'o str, Error> {
        let buf: &'o [u8] = self.buf;
        let written = buf.get(..self.len).ok_or(Error::Url)?;
        core::str::from_utf8(written).map_err(|_| Error::Url)
    }
}

#[cfg(test)]
// Tests may panic: that is how they fail.
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn url(
        scheme: Scheme,
        host: &'static str,
        port: Option<u16>,
        target: &'static str,
    ) -> Url<'static> {
        Url {
            scheme,
            host,
            port,
            target,
        }
    }

    fn host_header(u: &Url<'_>, port: u16) -> String {
        let mut out = [0u8; 64];
        let n = write_host_header(&mut out, u, port).unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    fn compose_s(custom: Option<&str>, params: &DeviceParams<'_>) -> Result<String, Error> {
        let mut out = [0u8; FOTA_URL_MAX];
        compose(&mut out, custom, params).map(String::from)
    }

    fn resolve(base: &str, location: &str) -> Result<String, Error> {
        let base = parse(base).unwrap();
        let mut out = [0u8; FOTA_URL_MAX];
        resolve_location(&mut out, &base, location).map(String::from)
    }

    const FULL: DeviceParams<'static> = DeviceParams {
        device_id: Some((DeviceIdKind::Imei, "C81234567830")),
        project_key: Some("b0wlkey"),
        firmware_name: Some("fotademo_LuatOS-SoC_AIR601"),
        version: Some("1025.1.0"),
    };

    // ---- parse ----

    #[test]
    fn parses_plain_http() {
        assert_eq!(
            parse("http://example.com/fw/app.bin?v=1").unwrap(),
            url(Scheme::Http, "example.com", None, "/fw/app.bin?v=1")
        );
    }

    #[test]
    fn parses_platform_url() {
        assert_eq!(
            parse(PLATFORM_URL).unwrap(),
            url(
                Scheme::Http,
                "iot.openluat.com",
                None,
                "/api/site/firmware_upgrade"
            )
        );
    }

    #[test]
    fn parses_ipv6_with_port() {
        let u = parse("http://[::1]:8080/x").unwrap();
        assert_eq!(u, url(Scheme::Http, "::1", Some(8080), "/x"));
        assert_eq!(
            parse("https://[2001:db8::1.2.3.4]/").unwrap(),
            url(Scheme::Https, "2001:db8::1.2.3.4", None, "/")
        );
    }

    #[test]
    fn rejects_bad_ipv6() {
        for bad in [
            "http://[]/",
            "http://[::1/",
            "http://[::g]/",
            "http://[fe80::1%25eth0]/",
            "http://[1.2.3.4]/",
            "http://[::1]x/",
            "http://[::1]:/",
            "http://[::1]:0/",
        ] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad}");
        }
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(
            parse("HTTPS://Example.COM/A").unwrap(),
            url(Scheme::Https, "Example.COM", None, "/A")
        );
        assert_eq!(parse("HtTp://h/").unwrap().scheme, Scheme::Http);
    }

    #[test]
    fn rejects_unknown_or_missing_scheme() {
        for bad in [
            "ftp://h/x",
            "h/x",
            "example.com",
            "http:/h/x",
            "http:h",
            "httpx://h/",
            "://h/",
            "",
            "http",
            "https:/",
        ] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad}");
        }
    }

    #[test]
    fn rejects_missing_host() {
        for bad in [
            "http://",
            "http:///x",
            "http://:80/",
            "http://?x",
            "http://#f",
        ] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(parse("http://h:8080/").unwrap().port, Some(8080));
        assert_eq!(parse("http://h:65535").unwrap().port, Some(65535));
        assert_eq!(parse("http://h:1/").unwrap().port, Some(1));
        assert_eq!(parse("http://h:0080/").unwrap().port, Some(80));
        for bad in [
            "http://h:0/",
            "http://h:65536/",
            "http://h:99999999999/",
            "http://h:8a/",
            "http://h:/x",
            "http://h:",
            "http://h:-1/",
            "http://h:+80/",
            "http://h:80:81/",
        ] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad}");
        }
    }

    #[test]
    fn rejects_userinfo() {
        assert_eq!(parse("http://user@h/"), Err(Error::Url));
        assert_eq!(parse("http://user:pw@h:80/"), Err(Error::Url));
        // '@' after the authority is just path.
        assert_eq!(parse("http://h/a@b").unwrap().target, "/a@b");
    }

    #[test]
    fn rejects_bad_host_chars() {
        for bad in ["http://h!/", "http://h~x/", "http://a,b/", "http://h%41/"] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad}");
        }
        assert_eq!(
            parse("http://my_host-1.local/").unwrap().host,
            "my_host-1.local"
        );
        assert_eq!(parse("http://10.0.0.1:81/").unwrap().host, "10.0.0.1");
    }

    #[test]
    fn rejects_space_control_and_non_ascii() {
        for bad in [
            "http://h/a b",
            " http://h/",
            "http://h/\t",
            "http://h/\r\nX: y",
            "http://h/\0",
            "http://h/\x7f",
            "http://h/é",
            "http://hé/",
        ] {
            assert_eq!(parse(bad), Err(Error::Url), "{bad:?}");
        }
    }

    #[test]
    fn length_limit() {
        let prefix = "http://h/";
        let ok = format!("{prefix}{}", "a".repeat(FOTA_URL_MAX - prefix.len()));
        assert_eq!(ok.len(), FOTA_URL_MAX);
        assert!(parse(&ok).is_ok());
        let long = format!("{ok}a");
        assert_eq!(parse(&long), Err(Error::Url));
    }

    #[test]
    fn keeps_percent_encoding_and_drops_fragment() {
        assert_eq!(
            parse("http://h/a%20b%2F?q=%26").unwrap().target,
            "/a%20b%2F?q=%26"
        );
        assert_eq!(parse("http://h/x?y#frag").unwrap().target, "/x?y");
        assert_eq!(parse("http://h/x#a?b").unwrap().target, "/x");
        assert_eq!(parse("http://h#frag").unwrap().target, "/");
        assert_eq!(parse("http://h:81#").unwrap().port, Some(81));
    }

    #[test]
    fn empty_path_is_slash() {
        assert_eq!(parse("http://h").unwrap().target, "/");
        assert_eq!(
            parse("https://h:8443").unwrap(),
            url(Scheme::Https, "h", Some(8443), "/")
        );
    }

    #[test]
    fn query_without_path_is_rejected() {
        assert_eq!(parse("http://h?x=1"), Err(Error::Url));
        assert_eq!(parse("http://h:80?x=1"), Err(Error::Url));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "http://[",
            "http://[]",
            "http://]",
            "https://:",
            "http://[:",
            "http://[::1]:",
            "HTTP://",
            "https://h:\u{1F600}",
        ] {
            let _ = parse(s);
        }
    }

    // ---- ports and Host header ----

    #[test]
    fn default_and_effective_ports() {
        assert_eq!(Scheme::Http.default_port(), 80);
        assert_eq!(Scheme::Https.default_port(), 443);
        let https = parse("https://h/").unwrap();
        assert_eq!(https.effective_port(0), 443);
        assert_eq!(https.effective_port(8443), 8443);
        let explicit = parse("http://h:81/").unwrap();
        assert_eq!(explicit.effective_port(0), 81);
        assert_eq!(explicit.effective_port(9000), 81);
        assert_eq!(parse("http://h/").unwrap().effective_port(0), 80);
    }

    #[test]
    fn host_header_values() {
        let h = parse("http://h/").unwrap();
        assert_eq!(host_header(&h, 80), "h");
        assert_eq!(host_header(&h, 8080), "h:8080");
        assert_eq!(host_header(&h, 443), "h:443");
        let s = parse("https://h/").unwrap();
        assert_eq!(host_header(&s, 443), "h");
        assert_eq!(host_header(&s, 80), "h:80");
        let v6 = parse("http://[::1]/").unwrap();
        assert_eq!(host_header(&v6, 80), "[::1]");
        let v6p = parse("http://[::1]:8080/x").unwrap();
        assert_eq!(host_header(&v6p, v6p.effective_port(0)), "[::1]:8080");
        assert_eq!(host_header(&h, 65535), "h:65535");
        assert_eq!(host_header(&h, 1), "h:1");
        assert_eq!(host_header(&h, 10), "h:10");
        assert_eq!(host_header(&h, 0), "h:0");
    }

    #[test]
    fn host_header_overflow() {
        let u = parse("http://example.com/").unwrap();
        let mut out = [0u8; 11];
        assert_eq!(write_host_header(&mut out, &u, 80), Ok(11));
        assert_eq!(&out, b"example.com");
        assert_eq!(write_host_header(&mut out, &u, 8080), Err(Error::Url));
        let mut small = [0u8; 10];
        assert_eq!(write_host_header(&mut small, &u, 80), Err(Error::Url));
        assert_eq!(write_host_header(&mut [], &u, 80), Err(Error::Url));
    }

    // ---- versions ----

    #[test]
    fn platform_versions() {
        for ok in ["1025.1.0", "0.0.0", "1.2.3", "123456789.1.1", "001.002.003"] {
            assert!(is_platform_version(ok), "{ok}");
        }
        for bad in [
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1..2",
            "",
            "..",
            "1.2.",
            ".1.2",
            "1234567890.1.1",
            "1.2.3 ",
            "+1.2.3",
            "1.2.-3",
            "V1.2.3",
            "1.2.٣",
        ] {
            assert!(!is_platform_version(bad), "{bad}");
        }
    }

    // ---- compose ----

    #[test]
    fn platform_golden() {
        assert_eq!(
            compose_s(None, &FULL).unwrap(),
            "http://iot.openluat.com/api/site/firmware_upgrade?imei=C81234567830&project_key=b0wlkey&firmware_name=fotademo_LuatOS-SoC_AIR601&version=1025.1.0"
        );
        let mac = DeviceParams {
            device_id: Some((DeviceIdKind::Mac, "0C:1A:2B")),
            ..FULL
        };
        assert_eq!(
            compose_s(None, &mac).unwrap(),
            "http://iot.openluat.com/api/site/firmware_upgrade?mac=0C%3A1A%3A2B&project_key=b0wlkey&firmware_name=fotademo_LuatOS-SoC_AIR601&version=1025.1.0"
        );
        let uid = DeviceParams {
            device_id: Some((DeviceIdKind::Uid, "0123abcd")),
            firmware_name: None,
            ..FULL
        };
        assert_eq!(
            compose_s(None, &uid).unwrap(),
            "http://iot.openluat.com/api/site/firmware_upgrade?uid=0123abcd&project_key=b0wlkey&version=1025.1.0"
        );
        let minimal = DeviceParams {
            project_key: Some("k"),
            version: Some("1.2.3"),
            ..DeviceParams::default()
        };
        assert_eq!(
            compose_s(None, &minimal).unwrap(),
            "http://iot.openluat.com/api/site/firmware_upgrade?project_key=k&version=1.2.3"
        );
        let empty_id = DeviceParams {
            device_id: Some((DeviceIdKind::Imei, "")),
            firmware_name: Some(""),
            ..minimal
        };
        assert_eq!(compose_s(None, &empty_id), compose_s(None, &minimal));
        // The platform result parses.
        let mut out = [0u8; FOTA_URL_MAX];
        let s = compose(&mut out, None, &FULL).unwrap();
        assert_eq!(parse(s).unwrap().host, "iot.openluat.com");
    }

    #[test]
    fn platform_needs_key_and_version() {
        let no_key = DeviceParams {
            project_key: None,
            ..FULL
        };
        let empty_key = DeviceParams {
            project_key: Some(""),
            ..FULL
        };
        let no_version = DeviceParams {
            version: None,
            ..FULL
        };
        assert_eq!(compose_s(None, &no_key), Err(Error::PlatformParam));
        assert_eq!(compose_s(None, &empty_key), Err(Error::PlatformParam));
        assert_eq!(compose_s(None, &no_version), Err(Error::PlatformParam));
        assert_eq!(
            compose_s(None, &DeviceParams::default()),
            Err(Error::PlatformParam)
        );
        for bad in ["1.2", "1.2.3.4", "a.b.c", "1..2", ""] {
            let p = DeviceParams {
                version: Some(bad),
                ..FULL
            };
            assert_eq!(compose_s(None, &p), Err(Error::PlatformParam), "{bad}");
        }
        // Checked before the buffer size.
        assert_eq!(compose(&mut [], None, &no_key), Err(Error::PlatformParam));
    }

    #[test]
    fn verbatim_custom() {
        assert_eq!(
            compose_s(Some("###http://h/fw.bin?a=1#x"), &FULL).unwrap(),
            "http://h/fw.bin?a=1#x"
        );
        assert_eq!(compose_s(Some("###"), &FULL).unwrap(), "");
        assert_eq!(compose_s(Some("####h"), &FULL).unwrap(), "#h");
        // Not the platform: no key or version needed.
        assert_eq!(
            compose_s(Some("###http://h/"), &DeviceParams::default()).unwrap(),
            "http://h/"
        );
    }

    #[test]
    fn custom_appends_parameters() {
        let p = DeviceParams {
            device_id: Some((DeviceIdKind::Imei, "86")),
            project_key: None,
            firmware_name: Some("fw"),
            version: Some("v1"),
        };
        assert_eq!(
            compose_s(Some("http://h/u"), &p).unwrap(),
            "http://h/u?imei=86&firmware_name=fw&version=v1"
        );
        assert_eq!(
            compose_s(Some("http://h/u?a=1"), &p).unwrap(),
            "http://h/u?a=1&imei=86&firmware_name=fw&version=v1"
        );
        assert_eq!(
            compose_s(Some("http://h/u?"), &p).unwrap(),
            "http://h/u?imei=86&firmware_name=fw&version=v1"
        );
        assert_eq!(
            compose_s(Some("http://h/u?a=1&"), &p).unwrap(),
            "http://h/u?a=1&imei=86&firmware_name=fw&version=v1"
        );
        assert_eq!(
            compose_s(Some("http://h/u?a=1#frag"), &p).unwrap(),
            "http://h/u?a=1&imei=86&firmware_name=fw&version=v1"
        );
        assert_eq!(
            compose_s(Some("http://h/u#fr?ag"), &p).unwrap(),
            "http://h/u?imei=86&firmware_name=fw&version=v1"
        );
        // A '&' outside a query does not start one.
        assert_eq!(
            compose_s(Some("http://h/a&"), &p).unwrap(),
            "http://h/a&?imei=86&firmware_name=fw&version=v1"
        );
    }

    #[test]
    fn custom_without_parameters_is_unchanged() {
        let none = DeviceParams::default();
        assert_eq!(
            compose_s(Some("http://h/u?a=1"), &none).unwrap(),
            "http://h/u?a=1"
        );
        assert_eq!(
            compose_s(Some("http://h/u?"), &none).unwrap(),
            "http://h/u?"
        );
        assert_eq!(
            compose_s(Some("http://h/u#x"), &none).unwrap(),
            "http://h/u"
        );
        assert_eq!(compose_s(Some("http://h"), &none).unwrap(), "http://h");
        let empty = DeviceParams {
            device_id: Some((DeviceIdKind::Uid, "")),
            project_key: Some(""),
            firmware_name: Some(""),
            version: Some(""),
        };
        assert_eq!(compose_s(Some("http://h/u"), &empty).unwrap(), "http://h/u");
        // Not validated.
        assert_eq!(compose_s(Some("not a url"), &none).unwrap(), "not a url");
        assert_eq!(compose_s(Some(""), &none).unwrap(), "");
    }

    #[test]
    fn custom_with_empty_path_gains_slash() {
        let p = DeviceParams {
            version: Some("1"),
            ..DeviceParams::default()
        };
        for (custom, want) in [
            ("http://h", "http://h/?version=1"),
            ("http://h:81", "http://h:81/?version=1"),
            ("https://[::1]#f", "https://[::1]/?version=1"),
            ("http://h?a=1", "http://h/?a=1&version=1"),
            ("http://h/", "http://h/?version=1"),
            ("nohost", "nohost?version=1"),
        ] {
            assert_eq!(compose_s(Some(custom), &p).unwrap(), want, "{custom}");
        }
        assert_eq!(
            compose_s(Some("http://h?a=1"), &DeviceParams::default()).unwrap(),
            "http://h/?a=1"
        );
        let mut out = [0u8; FOTA_URL_MAX];
        let s = compose(&mut out, Some("http://h"), &p).unwrap();
        assert_eq!(parse(s).unwrap().target, "/?version=1");
    }

    #[test]
    fn percent_encodes_values() {
        let p = DeviceParams {
            firmware_name: Some("a b&c=d/e?f#g%h+i~j-k.l_m"),
            version: Some("固件\u{1}"),
            ..DeviceParams::default()
        };
        assert_eq!(
            compose_s(Some("http://h/"), &p).unwrap(),
            "http://h/?firmware_name=a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2Bi~j-k.l_m&version=%E5%9B%BA%E4%BB%B6%01"
        );
        let all: String = (0x20u8..0x7f).map(char::from).collect();
        let p = DeviceParams {
            project_key: Some(&all),
            ..DeviceParams::default()
        };
        let mut out = [0u8; FOTA_URL_MAX];
        let s = compose(&mut out, Some("http://h/"), &p).unwrap();
        assert!(parse(s).is_ok());
        assert!(!s.contains("%7E") && s.contains('~'));
        assert!(!s.contains("%7F") && s.contains("%7C"));
    }

    #[test]
    fn compose_overflow() {
        let mut out = [0u8; FOTA_URL_MAX];
        let full = compose(&mut out, None, &FULL).unwrap().len();
        let mut exact = vec![0u8; full];
        assert!(compose(&mut exact, None, &FULL).is_ok());
        let mut short = vec![0u8; full - 1];
        assert_eq!(compose(&mut short, None, &FULL), Err(Error::Url));
        // Overflow inside a percent escape.
        let p = DeviceParams {
            version: Some(" "),
            ..DeviceParams::default()
        };
        let mut out = [0u8; 20];
        assert_eq!(
            compose(&mut out, Some("http://h/?version="), &p),
            Err(Error::Url)
        );
        let long_id = "9".repeat(FOTA_URL_MAX);
        let p = DeviceParams {
            device_id: Some((DeviceIdKind::Imei, &long_id)),
            ..FULL
        };
        let mut out = [0u8; FOTA_URL_MAX];
        assert_eq!(compose(&mut out, None, &p), Err(Error::Url));
        let long = "x".repeat(FOTA_URL_MAX + 1);
        assert_eq!(
            compose(&mut out, Some(&format!("###{long}")), &FULL),
            Err(Error::Url)
        );
        assert_eq!(
            compose(&mut out, Some(&long), &DeviceParams::default()),
            Err(Error::Url)
        );
    }

    // ---- resolve_location ----

    #[test]
    fn resolve_absolute() {
        assert_eq!(
            resolve("http://a/b", "https://c:1/d?e").unwrap(),
            "https://c:1/d?e"
        );
        assert_eq!(resolve("https://a/b", "HTTP://C/D").unwrap(), "HTTP://C/D");
    }

    #[test]
    fn resolve_scheme_relative() {
        assert_eq!(
            resolve("https://a:8443/b", "//cdn/x.bin").unwrap(),
            "https://cdn/x.bin"
        );
        assert_eq!(
            resolve("HTTP://a/b", "//cdn:81/x").unwrap(),
            "http://cdn:81/x"
        );
    }

    #[test]
    fn resolve_absolute_path() {
        assert_eq!(
            resolve("http://a/b/c?q", "/x/y.bin").unwrap(),
            "http://a/x/y.bin"
        );
        assert_eq!(resolve("http://a:8080/b", "/x").unwrap(), "http://a:8080/x");
        assert_eq!(resolve("http://a:80/b", "/x").unwrap(), "http://a:80/x");
        assert_eq!(
            resolve("https://[::1]:8443/b", "/x").unwrap(),
            "https://[::1]:8443/x"
        );
        assert_eq!(
            resolve("http://[fe80::2]/b", "/x?y").unwrap(),
            "http://[fe80::2]/x?y"
        );
    }

    #[test]
    fn resolve_relative() {
        assert_eq!(
            resolve("http://a/fw/v1/app?x=/y", "img.bin").unwrap(),
            "http://a/fw/v1/img.bin"
        );
        assert_eq!(
            resolve("http://a/fw/v1/", "img.bin").unwrap(),
            "http://a/fw/v1/img.bin"
        );
        assert_eq!(resolve("http://a", "img.bin").unwrap(), "http://a/img.bin");
        assert_eq!(
            resolve("http://a:81/fw/app", "../x").unwrap(),
            "http://a:81/x"
        );
        assert_eq!(
            resolve("http://a/fw/app?old", "?new").unwrap(),
            "http://a/fw/app?new"
        );
        assert_eq!(
            resolve("http://a/fw/app?q", "#f").unwrap(),
            "http://a/fw/app?q#f"
        );
        // A hand-made base with no '/' in its target.
        let odd = url(Scheme::Http, "a", None, "");
        let mut out = [0u8; 64];
        assert_eq!(resolve_location(&mut out, &odd, "x").unwrap(), "http://a/x");
    }

    #[test]
    fn resolve_refuses_other_schemes() {
        // A reference with a scheme is absolute (RFC 3986 4.3), never a path.
        for location in [
            "ftp://host/x",
            "file:///etc/passwd",
            "data:,x",
            "FTP://h/x",
            "a+b.c-d:x",
        ] {
            assert_eq!(
                resolve("http://a/dir/b", location),
                Err(Error::Url),
                "{location}"
            );
        }
        // A colon after a '/' or in the query is a path, not a scheme.
        assert_eq!(
            resolve("http://a/dir/b", "./x:y").unwrap(),
            "http://a/dir/x:y"
        );
        assert_eq!(
            resolve("http://a/dir/b", "?u=ftp://h").unwrap(),
            "http://a/dir/b?u=ftp://h"
        );
    }

    #[test]
    fn resolve_removes_dot_segments() {
        let cases = [
            ("http://a/b/c/d;p?q", "../g", "http://a/b/g"),
            ("http://a/b/c/d;p?q", "../../g", "http://a/g"),
            ("http://a/b/c/d;p?q", "../../../../g", "http://a/g"),
            ("http://a/b/c/d;p?q", "./g", "http://a/b/c/g"),
            ("http://a/b/c/d;p?q", ".", "http://a/b/c/"),
            ("http://a/b/c/d;p?q", "..", "http://a/b/"),
            ("http://a/b/c/d;p?q", "/./g", "http://a/g"),
            (
                "http://a/b/c/d;p?q",
                "g/../h?x=/../y",
                "http://a/b/c/h?x=/../y",
            ),
            ("http://a:81/fw/app", "../x", "http://a:81/x"),
            ("http://a/b", "https://c/x/./y/../z", "https://c/x/z"),
            ("http://a/b", "//c/../../x", "http://c/x"),
        ];
        for (base, location, want) in cases {
            assert_eq!(
                resolve(base, location).unwrap(),
                want,
                "{base} + {location}"
            );
        }
    }

    #[test]
    fn resolve_errors() {
        assert_eq!(resolve("http://a/b", ""), Err(Error::Url));
        let base = parse("http://a/b").unwrap();
        let mut out = [0u8; 10];
        assert_eq!(
            resolve_location(&mut out, &base, "/x").unwrap(),
            "http://a/x"
        );
        assert_eq!(resolve_location(&mut out, &base, "/xy"), Err(Error::Url));
        assert_eq!(
            resolve_location(&mut out, &base, "http://abcdefgh"),
            Err(Error::Url)
        );
        assert_eq!(resolve_location(&mut [], &base, "x"), Err(Error::Url));
    }

    #[test]
    fn pseudo_random_inputs_never_panic_and_keep_invariants() {
        let pieces = [
            "http://", "HTTPS://", "//", "/", "?", "#", "&", "[", "]", ":", "::1", "@", "%", "h",
            "0", "65535", "65536", "99999", ".", "..", "é", " ", "\0", "###", "x.bin", "",
        ];
        let mut seed: u32 = 0x1234_5678;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) as usize % n
        };
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..next(8) {
                s.push_str(pieces[next(pieces.len())]);
            }
            let p = DeviceParams {
                version: Some("1.2.3"),
                project_key: Some(&s),
                ..DeviceParams::default()
            };
            let mut out = [0u8; 64];
            let _ = compose(&mut out, Some(&s), &p);
            let _ = compose(&mut out, None, &p);
            let _ = is_platform_version(&s);
            if let Ok(u) = parse(&s) {
                assert!(u.target.starts_with('/'), "{s:?}");
                assert!(!u.host.is_empty(), "{s:?}");
                assert_ne!(u.port, Some(0), "{s:?}");
                let _ = write_host_header(&mut out, &u, next(70_000) as u16);
                let _ = resolve_location(&mut out, &u, &s);
                // Parsing is stable through the Host header + target round trip.
                let mut host = [0u8; FOTA_URL_MAX];
                let n = write_host_header(&mut host, &u, u.scheme.default_port()).unwrap();
                let again = format!(
                    "{}://{}{}",
                    u.scheme.name(),
                    std::str::from_utf8(&host[..n]).unwrap(),
                    u.target
                );
                let mut u2 = parse(&again).unwrap();
                u2.port = u.port;
                assert_eq!(u2, u, "{s:?}");
            }
        }
    }
}
