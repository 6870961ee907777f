//! fota's certificate verifier (`fota::x509`) on chains built and signed
//! here (the builder of the x509 fuzz target), each edge case with the
//! reason it is refused, and rustpki's verdict on the same chain beside it
//! (the verifier fota used before).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../fuzz/src/lib.rs"]
mod harness;

use fota::x509::{verify_chain, Reject};
use harness::x509::*;

const DAY: u64 = 86_400;

struct Pki {
    keys: Vec<p256::ecdsa::SigningKey>,
    root: Vec<u8>,
}

fn cn(value: &str) -> Vec<u8> {
    name(&[("2.5.4.3", value.as_bytes())])
}

fn server_ext() -> Vec<Vec<u8>> {
    vec![
        extension("2.5.29.15", true, &key_usage(0x80)),
        extension("2.5.29.37", false, &seq(&[oid("1.3.6.1.5.5.7.3.1")])),
    ]
}

fn ca_ext(path_len: Option<u8>) -> Vec<Vec<u8>> {
    vec![
        extension("2.5.29.19", true, &basic_constraints(true, path_len)),
        extension("2.5.29.15", true, &key_usage(0x06)),
    ]
}

impl Pki {
    fn new(root_path_len: Option<u8>) -> Pki {
        let keys: Vec<_> = (1..=4).map(key).collect();
        let root = certificate(
            &Spec {
                issuer: cn("Root"),
                subject: cn("Root"),
                not_before: NOW - 400 * DAY,
                not_after: NOW + 400 * DAY,
                generalized: false,
                key: &keys[0],
                extensions: ca_ext(root_path_len),
            },
            &keys[0],
            None,
        );
        Pki { keys, root }
    }

    /// A certificate for key `key` issued by key `by` named `issuer`.
    fn cert(
        &self,
        subject: &str,
        issuer: &str,
        key: usize,
        by: usize,
        ext: Vec<Vec<u8>>,
    ) -> Vec<u8> {
        certificate(
            &Spec {
                issuer: cn(issuer),
                subject: cn(subject),
                not_before: NOW - DAY,
                not_after: NOW + DAY,
                generalized: false,
                key: &self.keys[key],
                extensions: ext,
            },
            &self.keys[by],
            None,
        )
    }

    fn server(&self, subject: &str, mut ext: Vec<Vec<u8>>) -> Vec<u8> {
        ext.extend(server_ext());
        self.cert(subject, "Root", 1, 0, ext)
    }

    /// fota's verdict and rustpki's, checked against each other as the
    /// fuzz target does.
    #[track_caller]
    fn both(&self, chain: &[Vec<u8>], host: &str) -> (Result<(), Reject>, bool) {
        let ours =
            verify_chain(&self.root, chain.iter().map(Vec::as_slice), host, Some(NOW)).map(|_| ());
        let theirs = rustpki(&self.root, chain, host, Some(NOW));
        if let (Err(reject), true) = (ours, theirs) {
            assert!(!reject.is_core(), "{reject:?}");
        }
        (ours, theirs)
    }
}

fn san(names: &[&str]) -> Vec<u8> {
    let names: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    extension("2.5.29.17", false, &dns_names(&names))
}

#[test]
fn host_names_longer_than_64_bytes_verify() {
    // Issue 12 defect 4: rustpki (and fota's 64-byte copy of the name)
    // refused every name longer than 64 bytes.
    let pki = Pki::new(None);
    let host = format!(
        "{}.{}.{}.example.com",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    assert_eq!(host.len(), 203);
    let chain = [pki.server("long", vec![san(&[&host])])];
    assert_eq!(pki.both(&chain, &host), (Ok(()), false));
    let upper = host.to_uppercase();
    assert_eq!(pki.both(&chain, &upper).0, Ok(()));
    let other = host.replacen('a', "x", 1);
    assert_eq!(pki.both(&chain, &other), (Err(Reject::Name), false));
}

#[test]
fn names() {
    let pki = Pki::new(None);
    let wildcard = [pki.server("w", vec![san(&["*.example.com"])])];
    assert_eq!(pki.both(&wildcard, "a.example.com"), (Ok(()), true));
    assert_eq!(
        pki.both(&wildcard, "a.b.example.com"),
        (Err(Reject::Name), false)
    );
    assert_eq!(
        pki.both(&wildcard, "example.com"),
        (Err(Reject::Name), false)
    );
    let five = [pki.server(
        "f",
        vec![san(&[
            "one.test",
            "two.test",
            "three.test",
            "four.test",
            "localhost",
        ])],
    )];
    assert_eq!(
        pki.both(&five, "localhost"),
        (Ok(()), false),
        "rustpki reads 3 SANs"
    );
    assert_eq!(pki.both(&five, "two.test"), (Ok(()), true));
    let cn_only = [pki.server("localhost", vec![])];
    assert_eq!(pki.both(&cn_only, "localhost"), (Ok(()), true));
    let cn_beside = [pki.server("localhost", vec![san(&["other.test"])])];
    assert_eq!(
        pki.both(&cn_beside, "localhost"),
        (Err(Reject::CommonName), true)
    );
    assert_eq!(pki.both(&cn_beside, "other.test"), (Ok(()), true));
}

#[test]
fn usage_and_extensions() {
    let pki = Pki::new(None);
    let unknown = |critical| extension("1.2.3.4", critical, &tlv(0x0c, b"x"));
    let host = "localhost";
    let with =
        |ext: Vec<Vec<u8>>| [pki.cert(host, "Root", 1, 0, [vec![san(&[host])], ext].concat())];
    assert_eq!(pki.both(&with(server_ext()), host), (Ok(()), true));
    assert_eq!(pki.both(&with(vec![unknown(false)]), host), (Ok(()), true));
    assert_eq!(
        pki.both(&with(vec![unknown(true)]), host),
        (Err(Reject::Critical), true)
    );
    let key_encipherment = extension("2.5.29.15", true, &key_usage(0x20));
    assert_eq!(
        pki.both(&with(vec![key_encipherment]), host),
        (Err(Reject::Usage), true)
    );
    let client = extension("2.5.29.37", false, &seq(&[oid("1.3.6.1.5.5.7.3.2")]));
    assert_eq!(
        pki.both(&with(vec![client]), host),
        (Err(Reject::Usage), true)
    );
    let any = extension("2.5.29.37", false, &seq(&[oid("2.5.29.37.0")]));
    assert_eq!(pki.both(&with(vec![any]), host), (Ok(()), true));
    assert_eq!(
        pki.both(&with(ca_ext(None)), host),
        (Err(Reject::Usage), true),
        "CA as server"
    );
    let twice = vec![san(&["x.test"])];
    assert_eq!(
        pki.both(&with(twice), host),
        (Err(Reject::Duplicate), true),
        "two SANs"
    );
}

#[test]
fn chains() {
    let host = "localhost";
    for (root_path_len, want) in [
        (None, Ok(())),
        (Some(1), Ok(())),
        (Some(0), Err(Reject::PathLen)),
    ] {
        let pki = Pki::new(root_path_len);
        let inter = pki.cert("Inter", "Root", 2, 0, ca_ext(None));
        let server = pki.cert(
            host,
            "Inter",
            1,
            2,
            [vec![san(&[host])], server_ext()].concat(),
        );
        let chain = [server.clone(), inter.clone()];
        assert_eq!(
            pki.both(&chain, host),
            (want, true),
            "root pathlen {root_path_len:?}"
        );
        // The root sent along changes nothing.
        let with_root = [server.clone(), inter, pki.root.clone()];
        assert_eq!(pki.both(&with_root, host), (want, true));
        // Without the intermediate, the server's issuer is not the root.
        assert_eq!(pki.both(&[server], host), (Err(Reject::Signature), false));
    }
    let pki = Pki::new(None);
    let server = |issuer: &str| {
        pki.cert(
            host,
            issuer,
            1,
            2,
            [vec![san(&[host])], server_ext()].concat(),
        )
    };
    let not_ca = pki.cert(
        "Inter",
        "Root",
        2,
        0,
        vec![extension(
            "2.5.29.19",
            true,
            &basic_constraints(false, None),
        )],
    );
    assert_eq!(
        pki.both(&[server("Inter"), not_ca], host),
        (Err(Reject::NotCa), true)
    );
    let no_basic = pki.cert("Inter", "Root", 2, 0, vec![]);
    assert_eq!(
        pki.both(&[server("Inter"), no_basic], host),
        (Err(Reject::NotCa), true)
    );
    let no_cert_sign = pki.cert(
        "Inter",
        "Root",
        2,
        0,
        vec![
            extension("2.5.29.19", true, &basic_constraints(true, None)),
            extension("2.5.29.15", true, &key_usage(0x80)),
        ],
    );
    assert_eq!(
        pki.both(&[server("Inter"), no_cert_sign], host),
        (Err(Reject::NotCa), true)
    );
    // The root sent in the middle of the chain is not skipped: here it
    // would have to be issued by "Inter".
    let ca_inter = pki.cert("Inter", "Root", 2, 0, ca_ext(None));
    let mixed = [server("Inter"), pki.root.clone(), ca_inter];
    assert_eq!(pki.both(&mixed, host), (Err(Reject::Signature), false));
    let inter = pki.cert("Inter", "Root", 2, 0, ca_ext(Some(0)));
    assert_eq!(
        pki.both(&[server("Someone"), inter.clone()], host),
        (Err(Reject::Issuer), true)
    );
    assert_eq!(
        pki.both(&[server("Inter"), inter], host),
        (Ok(()), true),
        "pathlen 0: no CA below"
    );
}

#[test]
fn validity_and_signatures() {
    let pki = Pki::new(None);
    let host = "localhost";
    let spec = |not_before, not_after, generalized| Spec {
        issuer: cn("Root"),
        subject: cn(host),
        not_before,
        not_after,
        generalized,
        key: &pki.keys[1],
        extensions: vec![san(&[host])],
    };
    let at = |c: Vec<u8>, now| {
        let ours = verify_chain(&pki.root, [&c[..]].into_iter(), host, now).map(|_| ());
        (ours, rustpki(&pki.root, &[c], host, now))
    };
    let c = certificate(&spec(NOW, NOW + 10, false), &pki.keys[0], None);
    assert_eq!(at(c.clone(), Some(NOW)), (Ok(()), true));
    assert_eq!(at(c.clone(), Some(NOW + 10)), (Ok(()), true));
    assert_eq!(at(c.clone(), Some(NOW - 1)), (Err(Reject::Validity), false));
    assert_eq!(
        at(c.clone(), Some(NOW + 11)),
        (Err(Reject::Validity), false)
    );
    assert_eq!(at(c, None), (Ok(()), true), "no clock: validity unchecked");
    let c = certificate(&spec(NOW, 2_524_608_000, true), &pki.keys[0], None);
    assert_eq!(at(c, Some(NOW)), (Ok(()), true), "GeneralizedTime");
    for flip in [0, 10, 100, 150] {
        let c = certificate(&spec(NOW, NOW + 10, false), &pki.keys[0], Some(flip));
        assert!(at(c.clone(), Some(NOW)).0.is_err(), "bit flipped at {flip}");
        assert!(!at(c, Some(NOW)).1);
    }
    let c = certificate(&spec(NOW, NOW + 10, false), &pki.keys[3], None);
    assert_eq!(
        at(c, Some(NOW)),
        (Err(Reject::Signature), false),
        "signed by another key"
    );
}
