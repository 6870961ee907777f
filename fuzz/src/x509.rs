//! x509: fota's certificate verifier against embedded-tls's rustpki verifier
//! (the one fota used before), on chains built from the fuzzer's choices and
//! signed with real P-256 keys, so that inputs get past the signatures.
//!
//! Input (every byte optional; missing bytes read as 0): a choice of host
//! name, time, chain shape and then, per certificate, of names, validity,
//! basicConstraints, keyUsage, extendedKeyUsage, SANs, an unknown
//! (maybe critical) extension, a wrong issuer name or a broken signature;
//! then the CertificateVerify signature (right or wrong key, bit flips).
//! Bytes left over are also parsed as a certificate on their own.
//!
//! Invariants: no panic; where rustpki accepts and fota refuses, fota's
//! reason is one of its policy checks (`Reject::is_core` false: rustpki does
//! not check issuer names, CA flags, path lengths, key usage, critical
//! extensions, algorithm labels, CN-beside-SAN); where fota accepts, rustpki
//! accepts too unless the chain is beyond rustpki's fixed capacities (host
//! or name longer than 64 bytes, more than 3 SAN dNSNames, in any
//! certificate of the chain: rustpki reads the names of each); after both
//! accept, both give the same verdict on the CertificateVerify signature.

use std::cell::Cell;
use std::sync::OnceLock;

use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, Sha256, TlsClock,
    TlsVerifier,
};
use embedded_tls::pki::CertVerifier;
use fota::x509::{self, Reject};
use p256::ecdsa::signature::digest::Digest;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};

/// 2026-12-01 00:00:00 UTC.
pub const NOW: u64 = 1_796_083_200;

thread_local! {
    static CLOCK: Cell<Option<u64>> = const { Cell::new(None) };
}

struct FixedClock;

impl TlsClock for FixedClock {
    fn now() -> Option<u64> {
        CLOCK.with(Cell::get)
    }
}

/// Reads the fuzzer's choices; past the end every choice is 0.
pub struct Choices<'a>(pub &'a [u8]);

impl Choices<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.byte()) % options.len()]
    }
}

// ---- DER building -----------------------------------------------------------

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An OBJECT IDENTIFIER from its dotted form.
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut bytes = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            bytes.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        bytes.reverse();
        body.extend_from_slice(&bytes);
    }
    tlv(0x06, &body)
}

/// A Name with one attribute per RDN: (OID, UTF8String value).
pub fn name(attributes: &[(&str, &[u8])]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attributes
        .iter()
        .map(|(kind, value)| tlv(0x31, &seq(&[oid(kind), tlv(0x0c, value)])))
        .collect();
    seq(&rdns)
}

/// UTCTime before 2050, GeneralizedTime from then on (or when `generalized`).
pub fn time(unix: u64, generalized: bool) -> Vec<u8> {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // civil_from_days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rest = format!(
        "{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if generalized || year >= 2050 {
        tlv(0x18, format!("{year:04}{rest}").as_bytes())
    } else {
        tlv(0x17, format!("{:02}{rest}", year % 100).as_bytes())
    }
}

/// One extension: (OID, critical, value inside the OCTET STRING).
pub fn extension(id: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(id)];
    if critical {
        parts.push(tlv(0x01, &[0xff]));
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Vec<u8> {
    let mut parts = Vec::new();
    if ca {
        parts.push(tlv(0x01, &[0xff]));
    }
    if let Some(n) = path_len {
        parts.push(if n >= 0x80 {
            tlv(0x02, &[0, n])
        } else {
            tlv(0x02, &[n])
        });
    }
    seq(&parts)
}

/// keyUsage with the first byte of bits `bits` (bit 0 = 0x80).
pub fn key_usage(bits: u8) -> Vec<u8> {
    if bits == 0 {
        return tlv(0x03, &[0]);
    }
    tlv(0x03, &[bits.trailing_zeros() as u8, bits])
}

pub fn dns_names(names: &[&[u8]]) -> Vec<u8> {
    seq(&names.iter().map(|n| tlv(0x82, n)).collect::<Vec<_>>())
}

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// What goes into one certificate.
pub struct Spec<'a> {
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
    pub generalized: bool,
    pub key: &'a SigningKey,
    pub extensions: Vec<Vec<u8>>,
}

/// The certificate for `spec`, signed by `signer`; `flip` inverts a bit of
/// the signed bytes after signing.
pub fn certificate(spec: &Spec<'_>, signer: &SigningKey, flip: Option<usize>) -> Vec<u8> {
    let point = VerifyingKey::from(spec.key).to_encoded_point(false);
    let spki = seq(&[
        seq(&[oid("1.2.840.10045.2.1"), oid("1.2.840.10045.3.1.7")]),
        tlv(0x03, &[&[0][..], point.as_bytes()].concat()),
    ]);
    let mut tbs_parts = vec![
        tlv(0xa0, &tlv(0x02, &[2])),
        tlv(0x02, &[0x01, 0x23]),
        seq(&[oid(ECDSA_SHA256)]),
        spec.issuer.clone(),
        seq(&[
            time(spec.not_before, spec.generalized),
            time(spec.not_after, spec.generalized),
        ]),
        spec.subject.clone(),
        spki,
    ];
    if !spec.extensions.is_empty() {
        tbs_parts.push(tlv(0xa3, &seq(&spec.extensions)));
    }
    let mut tbs = seq(&tbs_parts);
    let signature: DerSignature = signer.sign(&tbs);
    if let Some(i) = flip {
        let i = i % tbs.len();
        tbs[i] ^= 0x01;
    }
    seq(&[
        tbs,
        seq(&[oid(ECDSA_SHA256)]),
        tlv(0x03, &[&[0][..], signature.as_bytes()].concat()),
    ])
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32].into()).unwrap()
}

// ---- the two verifiers ---------------------------------------------------------

/// rustpki's verdict on the chain.
pub fn rustpki(anchor: &[u8], chain: &[Vec<u8>], host: &str, now: Option<u64>) -> bool {
    CLOCK.with(|c| c.set(now));
    let mut verifier: CertVerifier<'_, Aes128GcmSha256, FixedClock, 16384> =
        CertVerifier::new(Certificate::X509(anchor));
    let mut entries = CertificateRef::with_context(&[]);
    for der in chain {
        entries.add(CertificateEntryRef::X509(der)).unwrap();
    }
    verifier
        .set_hostname_verification(host)
        .and_then(|()| verifier.verify_certificate(&Sha256::new(), entries))
        .is_ok()
}

/// The reference verdict on a CertificateVerify signature, as rustpki
/// reaches it (its `verify_signature` needs the chain as it came off the
/// wire, so it is restated here): the ecdsa crate's DER signature decoding
/// and verification with the server's key.
pub fn reference_signature(key: &VerifyingKey, transcript: &Sha256, verify: &[u8]) -> bool {
    let hash: [u8; 32] = transcript.clone().finalize().into();
    let mut message = vec![0x20u8; 64];
    message.extend_from_slice(b"TLS 1.3, server CertificateVerify\x00");
    message.extend_from_slice(&hash);
    p256::ecdsa::Signature::from_der(verify).is_ok_and(|s| key.verify(&message, &s).is_ok())
}

/// fota's verdict, as src/tls.rs's verifier reaches it.
pub fn fota(
    anchor: &[u8],
    chain: &[Vec<u8>],
    host: &str,
    now: Option<u64>,
    transcript: &Sha256,
    verify: &[u8],
) -> (Result<(), Reject>, bool) {
    let key = match x509::verify_chain(anchor, chain.iter().map(Vec::as_slice), host, now) {
        Ok(key) => key,
        Err(reject) => return (Err(reject), false),
    };
    let key = VerifyingKey::from_sec1_bytes(key).unwrap();
    let hash: [u8; 32] = transcript.clone().finalize().into();
    (
        Ok(()),
        x509::verify_certificate_verify(&key, &hash, verify).is_ok(),
    )
}

// ---- the fuzz check -------------------------------------------------------------

const HOSTS: &[&str] = &[
    "localhost",
    "a.example.com",
    "A.EXAMPLE.COM",
    "example.com",
    "x.y.example.com",
    "b.example.com",
];
const NAMES: &[&[u8]] = &[
    b"localhost",
    b"*.example.com",
    b"a.example.com",
    b"example.com",
    b"*.com",
    b"LOCALHOST",
    b"f*o.example.com",
    b"x.*.example.com",
    b"b.example.com",
    b"exa mple.com",
    b"",
];
const TIMES: &[u64] = &[
    NOW - 400 * 86_400,
    NOW - 1,
    NOW,
    NOW + 1,
    NOW + 400 * 86_400,
    2_524_608_000, // 2050-01-01: GeneralizedTime
    0,
];
const EXTRA_OIDS: &[&str] = &["1.2.3.4", "2.5.29.14", "2.5.29.32", "2.5.29.30"];

/// A long DNS name (beyond rustpki's 64 bytes), for host and SAN.
fn long_name() -> String {
    format!("{}.{}.example.com", "a".repeat(63), "b".repeat(40))
}

/// Extensions from the choices; returns them and whether rustpki's
/// capacities are exceeded (SAN dNSName longer than 64 bytes, more than 3).
fn extensions(c: &mut Choices<'_>, ca: bool, long: &str) -> (Vec<Vec<u8>>, bool) {
    let mut list = Vec::new();
    let mut beyond = false;
    let flags = c.byte();
    if flags & 0x01 != 0 {
        let path_len = (flags & 0x02 != 0).then(|| c.byte() % 4);
        let is_ca = if flags & 0x04 != 0 { !ca } else { ca };
        list.push(extension(
            "2.5.29.19",
            flags & 0x08 != 0,
            &basic_constraints(is_ca, path_len),
        ));
    }
    if flags & 0x10 != 0 {
        let bits = c.pick(&[0x80u8, 0x04, 0x84, 0x20, 0x06, 0xa0, 0x00]);
        list.push(extension("2.5.29.15", c.byte() & 1 != 0, &key_usage(bits)));
    }
    if flags & 0x20 != 0 {
        let purposes = c.pick(&[
            &["1.3.6.1.5.5.7.3.1"][..],
            &["1.3.6.1.5.5.7.3.2"],
            &["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"],
            &["2.5.29.37.0"],
        ]);
        let value = seq(&purposes.iter().map(|p| oid(p)).collect::<Vec<_>>());
        list.push(extension("2.5.29.37", false, &value));
    }
    if flags & 0x40 != 0 {
        let count = usize::from(c.byte() % 6);
        let mut names: Vec<Vec<u8>> = Vec::new();
        for _ in 0..count {
            let n = c.byte();
            names.push(if n == 0xff {
                long.as_bytes().to_vec()
            } else {
                NAMES[usize::from(n) % NAMES.len()].to_vec()
            });
        }
        beyond |= count > 3 || names.iter().any(|n| n.len() > 64);
        let mut general: Vec<u8> = names.iter().flat_map(|n| tlv(0x82, n)).collect();
        if c.byte() & 1 != 0 {
            // An iPAddress and a URI beside the dNSNames.
            general.extend_from_slice(&tlv(0x87, &[127, 0, 0, 1]));
            general.extend_from_slice(&tlv(0x86, b"https://localhost/"));
        }
        let general = tlv(0x30, &general);
        list.push(extension("2.5.29.17", c.byte() & 1 != 0, &general));
    }
    if flags & 0x80 != 0 {
        let id = c.pick(EXTRA_OIDS);
        let value: Vec<u8> = (0..c.byte() % 8).map(|_| c.byte()).collect();
        list.push(extension(id, c.byte() & 1 != 0, &tlv(0x04, &value)));
    }
    (list, beyond)
}

/// See the module documentation.
pub fn check_x509(data: &[u8]) {
    let mut c = Choices(data);
    let long = long_name();
    let host_choice = c.byte();
    let host = if host_choice == 0xff {
        long.clone()
    } else {
        HOSTS[usize::from(host_choice) % HOSTS.len()].to_string()
    };
    let mut beyond = host.len() > 64;
    let now = c.pick(&[Some(NOW), None, Some(TIMES[0]), Some(NOW + 800 * 86_400)]);
    let shape = c.byte();
    let intermediates = usize::from(shape % 3);
    let send_anchor = shape & 0x04 != 0;
    let pinned = shape & 0x08 != 0;

    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| (1..=5).map(key).collect());
    let anchor_name = name(&[("2.5.4.3", b"Anchor")]);
    let (anchor_ext, anchor_beyond) = extensions(&mut c, true, &long);
    let anchor = certificate(
        &Spec {
            issuer: anchor_name.clone(),
            subject: anchor_name.clone(),
            not_before: TIMES[0],
            not_after: TIMES[4],
            generalized: false,
            key: &keys[0],
            extensions: anchor_ext,
        },
        &keys[0],
        None,
    );

    let mut chain = Vec::new();
    if pinned {
        chain.push(anchor.clone());
        beyond |= anchor_beyond;
    } else {
        // From the top: intermediates, then the server certificate.
        let mut issuer_name = anchor_name;
        let mut issuer_key = &keys[0];
        for level in (0..=intermediates).rev() {
            let is_server = level == 0;
            let subject = if is_server {
                let cn = c.pick(NAMES);
                beyond |= cn.len() > 64;
                name(&[("2.5.4.6", b"XX"), ("2.5.4.3", cn)])
            } else {
                name(&[("2.5.4.3", format!("Intermediate {level}").as_bytes())])
            };
            let (ext, ext_beyond) = extensions(&mut c, !is_server, &long);
            // rustpki reads the names of every certificate in the chain.
            beyond |= ext_beyond;
            let faults = c.byte();
            let issuer = if faults & 0x01 != 0 {
                name(&[("2.5.4.3", b"Someone else")])
            } else {
                issuer_name.clone()
            };
            let signer = if faults & 0x02 != 0 {
                &keys[4]
            } else {
                issuer_key
            };
            let flip = (faults & 0x04 != 0).then(|| usize::from(c.byte()) * 7);
            let key = &keys[1 + (level % 3)];
            let spec = Spec {
                issuer,
                subject: subject.clone(),
                not_before: c.pick(&TIMES[..4]),
                not_after: c.pick(&TIMES[2..]),
                generalized: faults & 0x08 != 0,
                key,
                extensions: ext,
            };
            chain.push(certificate(&spec, signer, flip));
            issuer_name = subject;
            issuer_key = key;
        }
        chain.reverse();
        if send_anchor {
            chain.push(anchor.clone());
            beyond |= anchor_beyond;
        }
    }

    // The CertificateVerify signature over a transcript.
    let mut transcript = Sha256::new();
    transcript.update([c.byte(); 16]);
    let hash: [u8; 32] = transcript.clone().finalize().into();
    let mut message = vec![0x20u8; 64];
    message.extend_from_slice(b"TLS 1.3, server CertificateVerify\x00");
    message.extend_from_slice(&hash);
    let server_key = if pinned { &keys[0] } else { &keys[1] };
    let signer = if c.byte() & 1 != 0 {
        &keys[4]
    } else {
        server_key
    };
    let signature: DerSignature = signer.sign(&message);
    let mut verify = signature.as_bytes().to_vec();
    let flip = c.byte();
    if flip & 1 != 0 {
        let i = usize::from(flip) % verify.len();
        verify[i] ^= 0x80;
    }

    let old = (
        rustpki(&anchor, &chain, &host, now),
        reference_signature(&VerifyingKey::from(server_key), &transcript, &verify),
    );
    let new = fota(&anchor, &chain, &host, now, &transcript, &verify);
    match (old.0, new.0) {
        (true, Err(reject)) => assert!(
            !reject.is_core(),
            "rustpki accepts, fota refuses with core reason {reject:?}"
        ),
        (false, Ok(())) => assert!(beyond, "fota accepts what rustpki refuses"),
        (true, Ok(())) => assert_eq!(old.1, new.1, "CertificateVerify verdicts differ"),
        (false, Err(_)) => {}
    }

    // Whatever is left, as a certificate and as a chain of one.
    let rest = c.0;
    let _ = x509::parse(rest);
    let _ = x509::names(rest);
    let raw = [rest.to_vec()];
    let new_raw = fota(&anchor, &raw, "localhost", now, &transcript, &verify);
    if new_raw.0.is_ok() {
        assert!(
            rustpki(&anchor, &raw, "localhost", now),
            "fota accepts a raw certificate rustpki refuses"
        );
    }
}
