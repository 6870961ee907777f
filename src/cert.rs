//! The two names of a certificate, read from its DER, so the CA that issued
//! a server's chain can be picked from several. Pure functions over byte
//! slices.

use crate::pem::tlv;

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
    use crate::pem::tests::der;

    // A P-256 CA and a server certificate it issued (openssl, test data).
    const CA_PEM: &[u8] = include_bytes!("../tests/data/ca.pem");
    const SERVER_PEM: &[u8] = include_bytes!("../tests/data/server.pem");
    const OTHER_CA_PEM: &[u8] = include_bytes!("../tests/data/other-ca.pem");

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
