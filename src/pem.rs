//! PEM and DER inputs as the caller gives them (CA certificates, client
//! keys, the image signing key), turned into DER; and the base64 both PEM and
//! HTTP structured fields use. Pure functions over byte slices.

use core::ops::Range;

use crate::result::Error;

/// Most objects accepted in one PEM input (CA certificates in `server_cert`).
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
pub(crate) fn base64_decode(text: &[u8], out: &mut [u8]) -> Result<usize, Error> {
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
pub(crate) fn tlv(input: &[u8]) -> Option<(&[u8], &[u8])> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // A P-256 CA and a server certificate it issued (openssl, test data).
    const CA_PEM: &[u8] = include_bytes!("../tests/data/ca.pem");
    const OTHER_CA_PEM: &[u8] = include_bytes!("../tests/data/other-ca.pem");

    /// The DER of the one certificate of a PEM input (also used by cert's tests).
    pub(crate) fn der(pem: &[u8]) -> Vec<u8> {
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
}
