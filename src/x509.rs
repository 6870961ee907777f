//! X.509 certificates for TLS server authentication, checked in place: a
//! streaming walk over each certificate's DER (nothing decoded into a copy
//! of the certificate), the chain from a trust anchor down to the server's
//! certificate, validity periods, the host name, and the ECDSA P-256 /
//! SHA-256 signatures. Pure functions over byte slices.
//!
//! What [`verify_chain`] requires, in two groups. The core (what embedded-tls's
//! rustpki verifier also checks): every certificate is DER as RFC 5280 lays it
//! out, signed with ecdsa-with-SHA256 by its issuer's P-256 key (the issuer of
//! the top one is the anchor), within its validity period when the time is
//! known, and the host name matches the server certificate's names. The
//! policy (RFC 5280 section 6 and RFC 6125; rustpki checks none of it):
//! names chain (each issuer field is its issuer's subject), issuers are CAs
//! (basicConstraints cA, keyUsage keyCertSign when present) within their
//! pathLenConstraint, the server certificate is not a CA and may sign
//! (keyUsage digitalSignature, extendedKeyUsage serverAuth, when present), no
//! unknown critical extension nor a second instance of a known one, the TBS
//! signature algorithm is the outer one, and the CN is consulted only when
//! no SAN dNSName exists. The core is
//! checked for the whole chain before the policy, so a policy [`Reject`]
//! means the core passed (the differential fuzz target relies on it).

use p256::ecdsa::signature::digest::Digest;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::Sha256;

/// Why a chain is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Core: not DER, not an X.509 certificate, or an empty chain.
    Malformed,
    /// Core: a signature algorithm other than ecdsa-with-SHA256, a key
    /// other than P-256.
    Algorithm,
    /// Core: a signature does not verify (or is not an ECDSA signature).
    Signature,
    /// Core: outside a validity period.
    Validity,
    /// Core: no SAN dNSName (or, without any, no CN) matches the host.
    Name,
    /// Policy: an issuer field is not its issuer's subject.
    Issuer,
    /// Policy: an issuer that is not a CA (basicConstraints, keyUsage).
    NotCa,
    /// Policy: more CAs below an issuer than its pathLenConstraint allows.
    PathLen,
    /// Policy: the server's certificate is a CA, or its key usage or
    /// extended key usage leaves out TLS server authentication.
    Usage,
    /// Policy: an extension marked critical that is not understood.
    Critical,
    /// Policy: the TBS signature algorithm differs from the outer one, or
    /// the key is not labelled id-ecPublicKey on prime256v1.
    Labels,
    /// Policy: the CN matches but SAN dNSNames exist and none does.
    CommonName,
    /// Policy: one of the extensions read here appears twice.
    Duplicate,
}

impl Reject {
    /// Whether embedded-tls's rustpki verifier checks this too.
    pub fn is_core(self) -> bool {
        matches!(
            self,
            Reject::Malformed
                | Reject::Algorithm
                | Reject::Signature
                | Reject::Validity
                | Reject::Name
        )
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// GeneralName dNSName: [2] IMPLICIT IA5String.
const DNS_NAME: u8 = 0x82;

/// AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters.
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// Content of the SPKI AlgorithmIdentifier: id-ecPublicKey, prime256v1.
const EC_P256: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07,
];
/// Content of the prime256v1 OID (1.2.840.10045.3.1.7).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const ANY_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
/// keyUsage bits in the first content byte: digitalSignature (0), keyCertSign (5).
const DIGITAL_SIGNATURE: u8 = 0x80;
const KEY_CERT_SIGN: u8 = 0x04;

/// One DER element.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    /// Tag, length and content.
    whole: &'a [u8],
}

/// A reader of consecutive DER elements. Strict: one-byte tags, definite
/// lengths in the shortest form, at most 3 length bytes.
#[derive(Clone, Copy)]
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Result<Tlv<'a>, Reject> {
        let input = self.0;
        let (&tag, rest) = input.split_first().ok_or(Reject::Malformed)?;
        let (&first, mut rest) = rest.split_first().ok_or(Reject::Malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(Reject::Malformed);
        }
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            let (bytes, tail) = rest.split_at_checked(count).ok_or(Reject::Malformed)?;
            rest = tail;
            let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
            // 1..=3 bytes, no leading zero, and only where the short form
            // cannot say it.
            if !(1..=3).contains(&count) || bytes.first() == Some(&0) || len < 0x80 {
                return Err(Reject::Malformed);
            }
            len
        };
        let (content, tail) = rest.split_at_checked(len).ok_or(Reject::Malformed)?;
        let header = input.len() - rest.len();
        let whole = input.get(..header + len).ok_or(Reject::Malformed)?;
        self.0 = tail;
        Ok(Tlv {
            tag,
            content,
            whole,
        })
    }

    /// The next element, which must have tag `tag`.
    fn tagged(&mut self, tag: u8) -> Result<Tlv<'a>, Reject> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(Reject::Malformed);
        }
        Ok(tlv)
    }

    /// The content of the next element, which must have tag `tag`.
    fn expect(&mut self, tag: u8) -> Result<&'a [u8], Reject> {
        self.tagged(tag).map(|t| t.content)
    }

    /// The content of the next element if it has tag `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, Reject> {
        if self.0.first() == Some(&tag) {
            return self.expect(tag).map(Some);
        }
        Ok(None)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nothing may follow.
    fn end(&self) -> Result<(), Reject> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Reject::Malformed)
        }
    }
}

/// The content of `input`, which must be exactly one element tagged `tag`.
fn only(input: &[u8], tag: u8) -> Result<&[u8], Reject> {
    let mut der = Der(input);
    let content = der.expect(tag)?;
    der.end()?;
    Ok(content)
}

/// What one certificate says, as slices of its DER.
pub struct Cert<'a> {
    /// The signed part (whole TLV).
    tbs: &'a [u8],
    /// Issuer and subject names (whole TLVs, compared byte for byte).
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// The subject's attributes (content of the Name).
    subject_attributes: &'a [u8],
    not_before: u64,
    not_after: u64,
    /// The subject's public key (SEC1 point) and whether it is labelled
    /// id-ecPublicKey/prime256v1.
    key: &'a [u8],
    key_labelled: bool,
    /// Signed with ecdsa-with-SHA256.
    ecdsa_sha256: bool,
    /// The TBS signature algorithm equals the outer one.
    algorithms_agree: bool,
    /// The issuer's signature (DER Ecdsa-Sig-Value).
    signature: &'a [u8],
    ext: Extensions<'a>,
}

#[derive(Default)]
struct Extensions<'a> {
    /// basicConstraints: cA and pathLenConstraint (`None`: no limit).
    basic: Option<(bool, Option<u32>)>,
    /// First byte of the keyUsage bits (`None`: no keyUsage).
    key_usage: Option<u8>,
    /// extendedKeyUsage present: whether it allows serverAuth.
    server_auth: Option<bool>,
    /// subjectAltName GeneralNames content.
    alt_names: Option<&'a [u8]>,
    /// An extension marked critical that is not one of the four above.
    unknown_critical: bool,
    /// One of the four appears twice (the first one counts).
    duplicate: bool,
}

/// Reads one DER certificate (exactly one element, nothing after it).
pub fn parse(der: &[u8]) -> Result<Cert<'_>, Reject> {
    let mut cert = Der(only(der, SEQUENCE)?);
    let tbs = cert.tagged(SEQUENCE)?;
    let algorithm = cert.tagged(SEQUENCE)?.whole;
    let signature = bits(cert.expect(BIT_STRING)?)?;
    cert.end()?;
    let mut f = Der(tbs.content);
    if let Some(version) = f.optional(0xa0)? {
        if !matches!(only(version, INTEGER)?, [0..=2]) {
            return Err(Reject::Malformed);
        }
    }
    let serial = f.expect(INTEGER)?;
    if !minimal_integer(serial) {
        return Err(Reject::Malformed);
    }
    let inner_algorithm = f.tagged(SEQUENCE)?.whole;
    let issuer = name(f.tagged(SEQUENCE)?)?;
    let mut validity = Der(f.expect(SEQUENCE)?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    validity.end()?;
    let subject = f.tagged(SEQUENCE)?;
    attributes(subject.content, |_, _| {})?;
    let mut spki = Der(f.expect(SEQUENCE)?);
    let key_algorithm = spki.expect(SEQUENCE)?;
    let key = bits(spki.expect(BIT_STRING)?)?;
    spki.end()?;
    f.optional(0x81)?;
    f.optional(0x82)?;
    let ext = match f.optional(0xa3)? {
        Some(list) => extensions(only(list, SEQUENCE)?)?,
        None => Extensions::default(),
    };
    f.end()?;
    Ok(Cert {
        tbs: tbs.whole,
        issuer,
        subject: subject.whole,
        subject_attributes: subject.content,
        not_before,
        not_after,
        key,
        key_labelled: key_algorithm == EC_P256,
        ecdsa_sha256: algorithm == ECDSA_SHA256,
        algorithms_agree: inner_algorithm == algorithm,
        signature,
        ext,
    })
}

/// The bytes of a BIT STRING without unused bits.
fn bits(content: &[u8]) -> Result<&[u8], Reject> {
    match content.split_first() {
        Some((0, bytes)) => Ok(bytes),
        _ => Err(Reject::Malformed),
    }
}

/// A non-empty INTEGER in the fewest bytes.
fn minimal_integer(content: &[u8]) -> bool {
    match content {
        [] => false,
        [0, next, ..] => *next >= 0x80,
        [0xff, next, ..] => *next < 0x80,
        _ => true,
    }
}

/// A non-negative INTEGER's value, saturated at `u32::MAX`.
fn unsigned(content: &[u8]) -> Result<u32, Reject> {
    if !minimal_integer(content) || content.first().is_some_and(|&b| b >= 0x80) {
        return Err(Reject::Malformed);
    }
    Ok(content
        .iter()
        .try_fold(0u32, |a, &b| a.checked_mul(256).map(|a| a | u32::from(b)))
        .unwrap_or(u32::MAX))
}

/// Checks a Name (SEQUENCE OF SET OF SEQUENCE { OID, value }); returns the
/// whole TLV.
fn name(tlv: Tlv<'_>) -> Result<&[u8], Reject> {
    attributes(tlv.content, |_, _| {})?;
    Ok(tlv.whole)
}

/// Calls `each(type, value)` for every attribute of a Name's content.
fn attributes<'a>(name: &'a [u8], mut each: impl FnMut(&'a [u8], Tlv<'a>)) -> Result<(), Reject> {
    let mut rdns = Der(name);
    while !rdns.is_empty() {
        let mut set = Der(rdns.expect(SET)?);
        if set.is_empty() {
            return Err(Reject::Malformed);
        }
        while !set.is_empty() {
            let mut attribute = Der(set.expect(SEQUENCE)?);
            let kind = oid(attribute.expect(OID)?)?;
            let value = attribute.next()?;
            attribute.end()?;
            each(kind, value);
        }
    }
    Ok(())
}

/// An OBJECT IDENTIFIER's content: non-empty, each arc ending in a byte
/// below 0x80, no arc starting with 0x80.
fn oid(content: &[u8]) -> Result<&[u8], Reject> {
    let well_formed = content.last().is_some_and(|&b| b < 0x80)
        && content
            .iter()
            .zip(core::iter::once(&0).chain(content))
            .all(|(&b, &before)| !(b == 0x80 && before < 0x80));
    if well_formed {
        Ok(content)
    } else {
        Err(Reject::Malformed)
    }
}

/// A UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as Unix
/// seconds; before 1970 is refused.
fn time(tlv: Tlv<'_>) -> Result<u64, Reject> {
    let digits = match (tlv.tag, tlv.content) {
        (UTC_TIME, [d @ .., b'Z']) if d.len() == 12 => d,
        (GENERALIZED_TIME, [d @ .., b'Z']) if d.len() == 14 => d,
        _ => return Err(Reject::Malformed),
    };
    let mut fields = [0u64; 7];
    for (field, pair) in fields.iter_mut().zip(digits.chunks(2)) {
        let value = pair.iter().try_fold(0u64, |a, &b| {
            b.is_ascii_digit().then_some(a * 10 + u64::from(b - b'0'))
        });
        *field = value.ok_or(Reject::Malformed)?;
    }
    let (year, rest) = if tlv.tag == UTC_TIME {
        let [yy, rest @ ..] = fields;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
    } else {
        let [cc, yy, month, day, hour, minute, second] = fields;
        (cc * 100 + yy, [month, day, hour, minute, second, 0])
    };
    let [month, day, hour, minute, second, _] = rest;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    if year < 1970 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return Err(Reject::Malformed);
    }
    Ok(days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (from 1970 on; Howard Hinnant's days_from_civil).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads the extensions this verifier understands; remembers any other
/// one marked critical, and a second instance of one of the four.
fn extensions(list: &[u8]) -> Result<Extensions<'_>, Reject> {
    let mut ext = Extensions::default();
    let mut list = Der(list);
    while !list.is_empty() {
        let mut field = Der(list.expect(SEQUENCE)?);
        let id = oid(field.expect(OID)?)?;
        let critical = match field.optional(BOOLEAN)? {
            None => false,
            Some([0xff]) => true,
            Some([0x00]) => false,
            Some(_) => return Err(Reject::Malformed),
        };
        let value = field.expect(OCTET_STRING)?;
        field.end()?;
        match id {
            BASIC_CONSTRAINTS => ext.duplicate |= once(&mut ext.basic, basic_constraints(value)?),
            KEY_USAGE => ext.duplicate |= once(&mut ext.key_usage, key_usage(value)?),
            EXT_KEY_USAGE => ext.duplicate |= once(&mut ext.server_auth, server_auth(value)?),
            SUBJECT_ALT_NAME => ext.duplicate |= once(&mut ext.alt_names, alt_names(value)?),
            _ => ext.unknown_critical |= critical,
        }
    }
    Ok(ext)
}

/// Stores the value of an extension unless it was there before; returns
/// whether it was (RFC 5280 4.2: at most one instance of each).
fn once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return true;
    }
    *slot = Some(value);
    false
}

fn basic_constraints(value: &[u8]) -> Result<(bool, Option<u32>), Reject> {
    let mut fields = Der(only(value, SEQUENCE)?);
    let ca = match fields.optional(BOOLEAN)? {
        None => false,
        Some([0xff]) => true,
        Some([0x00]) => false,
        Some(_) => return Err(Reject::Malformed),
    };
    let path_len = fields.optional(INTEGER)?.map(unsigned).transpose()?;
    fields.end()?;
    Ok((ca, path_len))
}

fn key_usage(value: &[u8]) -> Result<u8, Reject> {
    let content = only(value, BIT_STRING)?;
    match content {
        [unused, bytes @ ..] if *unused < 8 && (*unused == 0 || !bytes.is_empty()) => {
            Ok(bytes.first().copied().unwrap_or(0))
        }
        _ => Err(Reject::Malformed),
    }
}

fn server_auth(value: &[u8]) -> Result<bool, Reject> {
    let mut purposes = Der(only(value, SEQUENCE)?);
    let mut allowed = false;
    if purposes.is_empty() {
        return Err(Reject::Malformed);
    }
    while !purposes.is_empty() {
        let purpose = oid(purposes.expect(OID)?)?;
        allowed |= purpose == SERVER_AUTH || purpose == ANY_EXT_KEY_USAGE;
    }
    Ok(allowed)
}

/// Checks the GeneralNames (dNSNames must be ASCII); returns its content.
fn alt_names(value: &[u8]) -> Result<&[u8], Reject> {
    let names = only(value, SEQUENCE)?;
    dns_names(names, |_| false)?;
    Ok(names)
}

/// Whether `found` is true for one of the dNSNames in GeneralNames content.
fn dns_names(names: &[u8], mut found: impl FnMut(&[u8]) -> bool) -> Result<bool, Reject> {
    let mut names = Der(names);
    let mut any = false;
    while !names.is_empty() {
        let name = names.next()?;
        if name.tag == DNS_NAME {
            if !name.content.is_ascii() {
                return Err(Reject::Malformed);
            }
            any |= found(name.content);
        }
    }
    Ok(any)
}

/// Whether certificate name `pattern` (a DNS name, or `*.` and one) names
/// `host`. ASCII letters, digits, `-` and `.` only, compared without case; a
/// wildcard stands for exactly one whole, non-empty leftmost label, and
/// needs at least two labels after it (RFC 6125 6.4.3, as rustpki).
pub fn name_matches(pattern: &[u8], host: &[u8]) -> bool {
    let name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.';
    if !host.iter().all(name_byte) {
        return false;
    }
    let Some(suffix) = pattern.strip_prefix(b"*.") else {
        return pattern.iter().all(name_byte) && pattern.eq_ignore_ascii_case(host);
    };
    let Some(dot) = host.iter().position(|&b| b == b'.') else {
        return false;
    };
    let host_suffix = host.get(dot + 1..).unwrap_or_default();
    dot > 0
        && suffix.iter().all(name_byte)
        && suffix.contains(&b'.')
        && suffix.eq_ignore_ascii_case(host_suffix)
}

/// Whether the server certificate names `host`: one of its SAN dNSNames,
/// or its (last) subject CN when it has no dNSName. Also says whether the
/// CN would have matched where the SANs did not (the only difference from
/// rustpki, which always consults the CN as well).
fn names_host(cert: &Cert<'_>, host: &[u8]) -> Result<(bool, bool), Reject> {
    let mut common_name = None;
    attributes(cert.subject_attributes, |kind, value| {
        if kind == COMMON_NAME {
            common_name = Some(value.content);
        }
    })?;
    let cn_matches = common_name.is_some_and(|cn| name_matches(cn, host));
    let mut has_dns = false;
    let alt = match cert.ext.alt_names {
        Some(names) => dns_names(names, |n| {
            has_dns = true;
            name_matches(n, host)
        })?,
        None => false,
    };
    if has_dns {
        Ok((alt, cn_matches))
    } else {
        Ok((cn_matches, false))
    }
}

/// Checks an ECDSA P-256/SHA-256 `signature` (DER) of `message` by `key`
/// (a SEC1 point).
pub fn verify_signature(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Reject> {
    let key = VerifyingKey::from_sec1_bytes(key).map_err(|_| Reject::Algorithm)?;
    verify_with(&key, message, signature)
}

/// [`verify_signature`] with a key already read.
fn verify_with(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), Reject> {
    let signature = ecdsa_signature(signature)?;
    key.verify_prehash(&sha256(message), &signature)
        .map_err(|_| Reject::Signature)
}

/// SHA-256 of `message`, in a frame of its own: the hash state is gone
/// before the point multiplications, the deepest part of a handshake.
#[inline(never)]
fn sha256(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

/// A DER Ecdsa-Sig-Value { r INTEGER, s INTEGER } as a P-256 signature.
fn ecdsa_signature(der: &[u8]) -> Result<Signature, Reject> {
    let mut fields = Der(only(der, SEQUENCE).map_err(|_| Reject::Signature)?);
    let mut raw = [0u8; 64];
    for half in raw.chunks_mut(32) {
        let int = fields.expect(INTEGER).map_err(|_| Reject::Signature)?;
        let digits = match int {
            [0, rest @ ..] if minimal_integer(int) => rest,
            [first, ..] if *first < 0x80 && minimal_integer(int) => int,
            _ => return Err(Reject::Signature),
        };
        let at = half
            .len()
            .checked_sub(digits.len())
            .ok_or(Reject::Signature)?;
        half.get_mut(at..)
            .ok_or(Reject::Signature)?
            .copy_from_slice(digits);
    }
    fields.end().map_err(|_| Reject::Signature)?;
    Signature::from_slice(&raw).map_err(|_| Reject::Signature)
}

/// Verifies `chain` (DER certificates, the server's first, each issued by
/// the next) up to `anchor`, the trusted CA that issued the last one, for
/// `host` at Unix time `now` (validity unchecked when `None`). A copy of
/// the anchor at the end of the chain is skipped. Returns the server
/// certificate's public key (SEC1 point, a slice of the chain or, pinned,
/// of the anchor).
pub fn verify_chain<'c, I>(
    anchor: &'c [u8],
    chain: I,
    host: &str,
    now: Option<u64>,
) -> Result<&'c [u8], Reject>
where
    I: DoubleEndedIterator<Item = &'c [u8]> + ExactSizeIterator,
{
    let mut issuer = parse(anchor)?;
    let mut anchor_issues = true;
    let mut policy = None;
    // Set at the server certificate (depth 0, the last one walked), which
    // then is `issuer`: whether it is the anchor itself.
    let mut server_pinned = None;
    let top = chain.len().saturating_sub(1);
    for (depth, der) in chain.enumerate().rev() {
        // The anchor sent along on top of the chain: nothing to check.
        // Anywhere else in the chain it is checked like any certificate. As
        // the server certificate itself, it is pinned (checked as issued by
        // itself, and may be a CA).
        let is_anchor = der == anchor;
        if is_anchor && depth > 0 && depth == top {
            continue;
        }
        let pinned = is_anchor && depth == 0;
        let cert = parse(der)?;
        if !cert.ecdsa_sha256 {
            return Err(Reject::Algorithm);
        }
        verify_signature(issuer.key, cert.tbs, cert.signature)?;
        if let Some(now) = now {
            if now < cert.not_before || now > cert.not_after {
                return Err(Reject::Validity);
            }
        }
        let (ca, path_len) = issuer.ext.basic.unwrap_or((anchor_issues, None));
        let may_sign = issuer.ext.key_usage.is_none_or(|u| u & KEY_CERT_SIGN != 0);
        let problem = if pinned {
            None
        } else if cert.issuer != issuer.subject {
            Some(Reject::Issuer)
        } else if !ca || !may_sign {
            Some(Reject::NotCa)
        } else if path_len.is_some_and(|n| u32::try_from(depth).map_or(true, |d| d > n)) {
            Some(Reject::PathLen)
        } else if cert.ext.unknown_critical {
            Some(Reject::Critical)
        } else if cert.ext.duplicate {
            Some(Reject::Duplicate)
        } else if !cert.algorithms_agree || !cert.key_labelled || !issuer.key_labelled {
            Some(Reject::Labels)
        } else {
            None
        };
        policy = policy.or(problem);
        anchor_issues = false;
        if depth == 0 {
            server_pinned = Some(pinned);
        }
        issuer = cert;
    }
    let (server, pinned) = (issuer, server_pinned.ok_or(Reject::Malformed)?);
    let (named, cn_named) = names_host(&server, host.as_bytes())?;
    if !named && !cn_named {
        return Err(Reject::Name);
    }
    let (ca, _) = server.ext.basic.unwrap_or((false, None));
    let usage = (ca && !pinned)
        || server
            .ext
            .key_usage
            .is_some_and(|u| u & DIGITAL_SIGNATURE == 0)
        || server.ext.server_auth == Some(false);
    policy = policy.or(usage.then_some(Reject::Usage));
    policy = policy.or((!named).then_some(Reject::CommonName));
    match policy {
        Some(reject) => Err(reject),
        None => Ok(server.key),
    }
}

/// Checks a TLS 1.3 server's CertificateVerify `signature` (DER ECDSA
/// P-256/SHA-256) by `key` over a SHA-256 transcript hash (RFC 8446 4.4.3).
pub fn verify_certificate_verify(
    key: &VerifyingKey,
    transcript_hash: &[u8; 32],
    signature: &[u8],
) -> Result<(), Reject> {
    let signature = ecdsa_signature(signature)?;
    key.verify_prehash(&certificate_verify_digest(transcript_hash), &signature)
        .map_err(|_| Reject::Signature)
}

/// SHA-256 of the signed message: 64 spaces, the context string, the
/// transcript hash.
#[inline(never)]
fn certificate_verify_digest(transcript_hash: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0x20; 64])
        .chain_update(b"TLS 1.3, server CertificateVerify\x00")
        .chain_update(transcript_hash)
        .finalize()
        .into()
}

/// Whether the P-256 private key (DER SEC1) belongs to the certificate
/// (DER): its public point is the certificate's key. A client certificate
/// given with another key would fail in the server's check, seen here only
/// as a reset that races the server's alert; checked before any traffic.
pub fn key_pair_matches(cert: &[u8], key: &[u8]) -> bool {
    let signer = sec1_private_key(key).and_then(|k| p256::ecdsa::SigningKey::from_slice(k).ok());
    let Some(signer) = signer else {
        return false;
    };
    let point = signer.verifying_key().to_encoded_point(false);
    parse(cert).is_ok_and(|c| c.key_labelled && c.key == point.as_bytes())
}

/// The private key (32 bytes) of a DER SEC1 `ECPrivateKey` (RFC 5915):
/// version 1, and when the parameters are present, prime256v1.
pub fn sec1_private_key(der: &[u8]) -> Option<&[u8]> {
    let mut fields = Der(only(der, SEQUENCE).ok()?);
    if fields.expect(INTEGER).ok()? != [1] {
        return None;
    }
    let key = fields.expect(OCTET_STRING).ok()?;
    if let Some(parameters) = fields.optional(0xa0).ok()? {
        if only(parameters, OID).ok()? != PRIME256V1 {
            return None;
        }
    }
    fields.optional(0xa1).ok()?;
    fields.end().ok()?;
    (key.len() == 32).then_some(key)
}

/// A P-256 ECDSA signature as DER Ecdsa-Sig-Value, the form TLS sends.
pub struct DerSignature {
    bytes: [u8; 72],
    len: usize,
}

impl DerSignature {
    /// Encodes `r` and `s` (big-endian scalars) as two minimal INTEGERs.
    pub fn new(r: &[u8; 32], s: &[u8; 32]) -> Self {
        let mut out = DerSignature {
            bytes: [0; 72],
            len: 2,
        };
        for half in [r, s] {
            // At most 32 digits, and a zero byte before a high bit: < 0x80.
            let start = half.iter().position(|&b| b != 0).unwrap_or(31);
            let digits = half.get(start..).unwrap_or_default();
            let pad = digits.first().is_some_and(|&b| b >= 0x80);
            out.push(&[INTEGER, (usize::from(pad) + digits.len()) as u8]);
            if pad {
                out.push(&[0]);
            }
            out.push(digits);
        }
        let content = (out.len - 2) as u8;
        if let Some(header) = out.bytes.get_mut(..2) {
            header.copy_from_slice(&[SEQUENCE, content]);
        }
        out
    }

    fn push(&mut self, data: &[u8]) {
        if let Some(slot) = self.bytes.get_mut(self.len..self.len + data.len()) {
            slot.copy_from_slice(data);
            self.len += data.len();
        }
    }
}

impl AsRef<[u8]> for DerSignature {
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// The issuer and subject names (whole DER TLVs) of a certificate, read
/// without checking anything else.
pub fn names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut outer = Der(cert);
    let mut certificate = Der(outer.expect(SEQUENCE).ok()?);
    let mut fields = Der(certificate.expect(SEQUENCE).ok()?);
    fields.optional(0xa0).ok()?;
    fields.expect(INTEGER).ok()?;
    fields.expect(SEQUENCE).ok()?;
    let issuer = fields.tagged(SEQUENCE).ok()?.whole;
    fields.expect(SEQUENCE).ok()?;
    let subject = fields.tagged(SEQUENCE).ok()?.whole;
    Some((issuer, subject))
}

/// The CA among `cas` whose subject is the issuer of `issued`, else the first.
pub fn issuer_of<'a>(cas: &[&'a [u8]], issued: &[u8]) -> Option<&'a [u8]> {
    let wanted = names(issued).map(|(issuer, _)| issuer);
    cas.iter()
        .copied()
        .find(|ca| names(ca).map(|(_, subject)| subject) == wanted && wanted.is_some())
        .or_else(|| cas.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pem::tests::der;

    // A P-256 CA and a server certificate it issued for DNS:localhost, both
    // valid 2026-11-23 09:36:21 .. 2126-10-30 09:36:21 (openssl, test data).
    const CA_PEM: &[u8] = include_bytes!("../tests/data/ca.pem");
    const SERVER_PEM: &[u8] = include_bytes!("../tests/data/server.pem");
    const OTHER_CA_PEM: &[u8] = include_bytes!("../tests/data/other-ca.pem");
    const NOT_BEFORE: u64 = 1_795_426_581;
    const NOT_AFTER: u64 = 4_949_026_581;

    #[track_caller]
    fn verify(anchor: &[u8], chain: &[&[u8]], host: &str, now: Option<u64>) -> Result<(), Reject> {
        verify_chain(anchor, chain.iter().copied(), host, now).map(|_| ())
    }

    #[test]
    fn the_test_chain_verifies_within_its_validity() {
        let (ca, server) = (der(CA_PEM), der(SERVER_PEM));
        let key = verify_chain(
            &ca,
            [&server[..]].into_iter(),
            "localhost",
            Some(NOT_BEFORE),
        );
        assert_eq!(key.map(<[u8]>::len), Ok(65));
        assert_eq!(
            verify(&ca, &[&server], "LocalHost", Some(NOT_AFTER)),
            Ok(())
        );
        assert_eq!(verify(&ca, &[&server], "localhost", None), Ok(()));
        assert_eq!(
            verify(&ca, &[&server, &ca], "localhost", None),
            Ok(()),
            "anchor sent along"
        );
        for now in [NOT_BEFORE - 1, NOT_AFTER + 1, 0] {
            assert_eq!(
                verify(&ca, &[&server], "localhost", Some(now)),
                Err(Reject::Validity)
            );
        }
        assert_eq!(
            verify(&ca, &[&server], "localhost.", None),
            Err(Reject::Name)
        );
        assert_eq!(verify(&ca, &[&server], "other", None), Err(Reject::Name));
        let other = der(OTHER_CA_PEM);
        assert_eq!(
            verify(&other, &[&server], "localhost", None),
            Err(Reject::Signature)
        );
        assert_eq!(verify(&ca, &[], "localhost", None), Err(Reject::Malformed));
        assert_eq!(
            verify(&ca, &[&[]], "localhost", None),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let (ca, server) = (der(CA_PEM), der(SERVER_PEM));
        for i in 0..server.len() {
            let mut bad = server.clone();
            bad[i] ^= 0x01;
            let got = verify(&ca, &[&bad], "localhost", None);
            assert!(got.is_err(), "byte {i}");
        }
        let mut long = server.clone();
        long.push(0);
        assert_eq!(
            verify(&ca, &[&long], "localhost", None),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn der_lengths_are_strict() {
        let read = |b: &[u8]| Der(b).next().map(|t| t.content.len());
        assert_eq!(read(&[0x04, 0x01, 0xaa]), Ok(1));
        assert_eq!(
            read(&[0x04, 0x81, 0x01, 0xaa]),
            Err(Reject::Malformed),
            "long form for 1"
        );
        assert_eq!(read(&[0x04, 0x80]), Err(Reject::Malformed), "indefinite");
        assert_eq!(
            read(&[0x04, 0x82, 0x00, 0x80]),
            Err(Reject::Malformed),
            "leading zero"
        );
        assert_eq!(
            read(&[0x04, 0x84, 1, 0, 0, 0]),
            Err(Reject::Malformed),
            "4 length bytes"
        );
        assert_eq!(
            read(&[0x1f, 0x01, 0x00]),
            Err(Reject::Malformed),
            "multi-byte tag"
        );
        assert_eq!(read(&[0x04, 0x02, 0xaa]), Err(Reject::Malformed), "short");
        let mut big = vec![0x04, 0x82, 0x01, 0x00];
        big.resize(4 + 256, 0);
        assert_eq!(read(&big), Ok(256));
    }

    #[test]
    fn times_are_unix_seconds() {
        let t = |tag, s: &[u8]| {
            time(Tlv {
                tag,
                content: s,
                whole: s,
            })
        };
        assert_eq!(t(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(t(UTC_TIME, b"261123093621Z"), Ok(NOT_BEFORE));
        assert_eq!(t(GENERALIZED_TIME, b"21261030093621Z"), Ok(NOT_AFTER));
        assert_eq!(t(GENERALIZED_TIME, b"20240229235959Z"), Ok(1_709_251_199));
        assert_eq!(t(UTC_TIME, b"490101000000Z"), Ok(2_493_072_000), "2049");
        for bad in [
            &b"500101000000Z"[..],
            b"690101000000Z",
            b"230229000000Z",
            b"231301000000Z",
            b"230100000000Z",
            b"230101240000Z",
            b"230101006000Z",
            b"230101000060Z",
            b"2301010000Z",
            b"230101000000",
            b"23010100000aZ",
            b"230101000000+0100",
        ] {
            assert_eq!(t(UTC_TIME, bad), Err(Reject::Malformed), "{bad:?}");
        }
        assert_eq!(t(0x04, b"700101000000Z"), Err(Reject::Malformed));
    }

    #[test]
    fn names_match_like_rfc_6125() {
        let yes = [
            ("example.com", "example.com"),
            ("EXAMPLE.com", "example.COM"),
            ("*.example.com", "api.example.com"),
            ("*.xn--bcher-kva.example", "a.xn--bcher-kva.example"),
        ];
        for (pattern, host) in yes {
            assert!(
                name_matches(pattern.as_bytes(), host.as_bytes()),
                "{pattern} {host}"
            );
        }
        let no = [
            ("example.com", "example.org"),
            ("example.com", "www.example.com"),
            ("*.example.com", "example.com"),
            ("*.example.com", "a.b.example.com"),
            ("*.example.com", ".example.com"),
            ("*.com", "example.com"),
            ("api.*.example.com", "api.x.example.com"),
            ("f*o.example.com", "foo.example.com"),
            ("*.*.example.com", "a.b.example.com"),
            ("**.example.com", "a.example.com"),
            ("exa mple.com", "exa mple.com"),
            ("example.com", "exämple.com"),
        ];
        for (pattern, host) in no {
            assert!(
                !name_matches(pattern.as_bytes(), host.as_bytes()),
                "{pattern} {host}"
            );
        }
        let long = format!("{}.example.com", "a".repeat(240));
        assert!(name_matches(
            long.as_bytes(),
            long.to_uppercase().as_bytes()
        ));
    }

    #[test]
    fn ecdsa_signatures_are_strict_der() {
        let one = |r: &[u8], s: &[u8]| {
            let mut v = vec![0x30, (r.len() + s.len() + 4) as u8, 0x02, r.len() as u8];
            v.extend_from_slice(r);
            v.extend_from_slice(&[0x02, s.len() as u8]);
            v.extend_from_slice(s);
            ecdsa_signature(&v).map(|_| ())
        };
        assert_eq!(one(&[1], &[2]), Ok(()));
        assert_eq!(one(&[0, 0x80], &[2]), Ok(()));
        assert_eq!(one(&[0, 1], &[2]), Err(Reject::Signature), "not minimal");
        assert_eq!(one(&[0x80], &[2]), Err(Reject::Signature), "negative");
        assert_eq!(one(&[0], &[2]), Err(Reject::Signature), "zero");
        assert_eq!(one(&[1; 33], &[2]), Err(Reject::Signature), "too long");
        assert_eq!(
            one(&[0xff; 32], &[2]),
            Err(Reject::Signature),
            "not below the order"
        );
    }

    #[test]
    fn der_signatures_round_trip() {
        let mut r = [0u8; 32];
        let mut s = [0x11u8; 32];
        for (lead_r, lead_s) in [(0x7f, 0x80), (0x00, 0xff), (0x01, 0x00)] {
            r[0] = lead_r;
            r[5] = 0x42;
            s[0] = lead_s;
            let der = DerSignature::new(&r, &s);
            let parsed = ecdsa_signature(der.as_ref()).unwrap();
            let (pr, ps) = parsed.split_bytes();
            assert_eq!((pr.as_slice(), ps.as_slice()), (&r[..], &s[..]));
            let ours = p256::ecdsa::DerSignature::from(parsed);
            assert_eq!(der.as_ref(), ours.as_bytes(), "same bytes as the der crate");
        }
    }

    #[test]
    fn sec1_keys_are_read() {
        // An EC P-256 key made by `openssl ecparam -genkey -noout` (test data).
        let pem = include_bytes!("../tests/data/client.key");
        let mut key = vec![0; 256];
        let decoded = crate::pem::decode(pem, b"EC PRIVATE KEY", &mut key).unwrap();
        key.truncate(decoded.used);
        let scalar = sec1_private_key(&key).unwrap();
        let secret = p256::SecretKey::from_sec1_der(&key).unwrap();
        assert_eq!(scalar, &secret.to_bytes()[..]);
        assert_eq!(sec1_private_key(&key[..key.len() - 1]), None);
        let mut v2 = key.clone();
        v2[4] = 2;
        assert_eq!(sec1_private_key(&v2), None);
    }

    #[test]
    fn the_issuing_ca_is_picked_by_name() {
        let ca = der(CA_PEM);
        let other = der(OTHER_CA_PEM);
        let server = der(SERVER_PEM);
        let (issuer, _) = names(&server).unwrap();
        let (_, subject) = names(&ca).unwrap();
        assert_eq!(issuer, subject);
        assert_eq!(issuer_of(&[&other, &ca], &server), Some(&ca[..]));
        assert_eq!(
            issuer_of(&[&other], &server),
            Some(&other[..]),
            "no match: the first"
        );
        assert_eq!(issuer_of(&[], &server), None);
        assert_eq!(names(b"\x30\x00"), None);
    }
}
