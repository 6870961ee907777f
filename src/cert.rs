//! Certificates and keys as the caller gives them (PEM or DER), turned into
//! DER for the TLS layer; and the two names of a certificate, read from its
//! DER, so the CA that issued a server's chain can be picked from several.
//! Pure functions over byte slices.

use core::ops::Range;

use crate::result::Error;

/// Most certificates accepted in one PEM bundle (`server_cert`).
pub const FOTA_TLS_MAX_CAS: usize = 4;

/// The DER objects decoded from one input, as ranges of the output buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub objects: [Range<usize>; FOTA_TLS_MAX_CAS],
    pub count: usize,
    /// Bytes of the output buffer used.
    pub used: usize,
}

/// Decodes `input` into `out`: either one DER object (the input starts with a
/// SEQUENCE tag and is exactly one TLV) or PEM blocks labelled `label`
/// (`-----BEGIN <label>-----`); other PEM blocks are skipped. Errors
/// (`InvalidArg`): no object, bad base64, an unterminated block, more than
/// [`FOTA_TLS_MAX_CAS`] objects, or no room in `out`.
pub fn decode(input: &[u8], label: &[u8], out: &mut [u8]) -> Result<Decoded, Error> {
    let mut decoded = Decoded::default();
    if input.first() == Some(&0x30) {
        let (whole, rest) = tlv(input).ok_or(Error::InvalidArg)?;
        if !rest.is_empty() {
            return Err(Error::InvalidArg);
        }
        let slot = out.get_mut(..whole.len()).ok_or(Error::InvalidArg)?;
        slot.copy_from_slice(whole);
        decoded.push(0..whole.len())?;
        return Ok(decoded);
    }
    let mut rest = input;
    while let Some(begin) = find(rest, b"-----BEGIN ") {
        let after = rest.get(begin + 11..).unwrap_or_default();
        let label_end = find(after, b"-----").ok_or(Error::InvalidArg)?;
        let this_label = after.get(..label_end).unwrap_or_default();
        let body = after.get(label_end + 5..).unwrap_or_default();
        let end = find(body, b"-----END ").ok_or(Error::InvalidArg)?;
        rest = body.get(end + 9..).unwrap_or_default();
        if this_label != label {
            continue;
        }
        let start = decoded.used;
        let room = out.get_mut(start..).ok_or(Error::InvalidArg)?;
        let n = base64_decode(body.get(..end).unwrap_or_default(), room)?;
        decoded.push(start..start + n)?;
    }
    if decoded.count == 0 {
        return Err(Error::InvalidArg);
    }
    Ok(decoded)
}

impl Decoded {
    fn push(&mut self, range: Range<usize>) -> Result<(), Error> {
        let slot = self.objects.get_mut(self.count).ok_or(Error::InvalidArg)?;
        self.used = range.end;
        *slot = range;
        self.count += 1;
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes standard base64, skipping whitespace, into `out`; returns the
/// bytes written.
fn base64_decode(text: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    let mut padding = false;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding = true;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return Err(Error::InvalidArg),
        };
        if padding {
            return Err(Error::InvalidArg);
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n).ok_or(Error::InvalidArg)? = (acc >> bits) as u8;
            n += 1;
        }
    }
    Ok(n)
}

/// Splits one DER TLV off the front of `input`: (the whole TLV, the rest).
fn tlv(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let first_len = *input.get(1)?;
    let (header, len) = if first_len < 0x80 {
        (2, usize::from(first_len))
    } else {
        let count = usize::from(first_len & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let len = input
            .get(2..2 + count)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + count, len)
    };
    input.split_at_checked(header.checked_add(len)?)
}

/// The content of a TLV (without tag and length).
fn content(whole: &[u8]) -> Option<&[u8]> {
    let first_len = *whole.get(1)?;
    let header = if first_len < 0x80 {
        2
    } else {
        2 + usize::from(first_len & 0x7f)
    };
    whole.get(header..)
}

/// The issuer and subject names (whole DER TLVs) of an X.509 certificate.
pub fn names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (certificate, _) = tlv(cert)?;
    let (tbs, _) = tlv(content(certificate)?)?;
    let mut fields = content(tbs)?;
    // [0] EXPLICIT version, present from v2 on.
    if fields.first() == Some(&0xA0) {
        fields = tlv(fields)?.1;
    }
    let (_serial, fields) = tlv(fields)?;
    let (_signature, fields) = tlv(fields)?;
    let (issuer, fields) = tlv(fields)?;
    let (_validity, fields) = tlv(fields)?;
    let (subject, _) = tlv(fields)?;
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

    // A P-256 CA and a server certificate it issued (openssl, test data).
    const CA_PEM: &[u8] = include_bytes!("../tests/data/ca.pem");
    const SERVER_PEM: &[u8] = include_bytes!("../tests/data/server.pem");
    const OTHER_CA_PEM: &[u8] = include_bytes!("../tests/data/other-ca.pem");

    fn der(pem: &[u8]) -> Vec<u8> {
        let mut out = vec![0; 4096];
        let d = decode(pem, b"CERTIFICATE", &mut out).unwrap();
        assert_eq!(d.count, 1);
        out.truncate(d.used);
        out
    }

    #[test]
    fn pem_and_der_give_the_same_bytes() {
        let from_pem = der(CA_PEM);
        let mut out = vec![0; 4096];
        let d = decode(&from_pem, b"CERTIFICATE", &mut out).unwrap();
        assert_eq!(&out[d.objects[0].clone()], &from_pem[..]);
    }

    #[test]
    fn a_bundle_gives_each_certificate() {
        let mut bundle = OTHER_CA_PEM.to_vec();
        bundle.extend_from_slice(
            b"\n-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        );
        bundle.extend_from_slice(CA_PEM);
        let mut out = vec![0; 4096];
        let d = decode(&bundle, b"CERTIFICATE", &mut out).unwrap();
        assert_eq!(d.count, 2, "the key block is skipped");
        assert_eq!(&out[d.objects[1].clone()], &der(CA_PEM)[..]);
    }

    #[test]
    fn bad_inputs_are_invalid_arguments() {
        let mut out = vec![0; 4096];
        for bad in [
            &b""[..],
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\nAAAA",
            b"\x30\x05\x01",
            b"\x30\x01\x01\x02",
        ] {
            assert_eq!(
                decode(bad, b"CERTIFICATE", &mut out),
                Err(Error::InvalidArg),
                "{bad:?}"
            );
        }
        let mut small = [0u8; 10];
        assert_eq!(
            decode(CA_PEM, b"CERTIFICATE", &mut small),
            Err(Error::InvalidArg)
        );
        let mut five = Vec::new();
        for _ in 0..=FOTA_TLS_MAX_CAS {
            five.extend_from_slice(CA_PEM);
        }
        assert_eq!(
            decode(&five, b"CERTIFICATE", &mut out),
            Err(Error::InvalidArg)
        );
    }

    #[test]
    fn base64_matches_known_values() {
        let mut out = [0u8; 16];
        let n = base64_decode(b"aGVs\nbG8=", &mut out).unwrap();
        assert_eq!(&out[..n], b"hello");
        assert_eq!(base64_decode(b"aG=Vs", &mut out), Err(Error::InvalidArg));
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
