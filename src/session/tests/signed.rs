//! MCUboot images signed with ECDSA P-256 (the `signed-images` feature).

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::{Digest, Sha256};

use super::*;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

/// The DER SubjectPublicKeyInfo of a key, as `imgtool getpub` gives it.
fn spki(key: &SigningKey) -> Vec<u8> {
    let point = key.verifying_key().to_encoded_point(false);
    [&crate::verify::P256_SPKI_PREFIX[..], point.as_bytes()].concat()
}

/// An MCUboot image signed like `imgtool sign` does: version major.minor.rev,
/// protected TLVs, then KEYHASH, SHA256 and ECDSA_SIG.
fn signed(
    body: &[u8],
    version: (u8, u8, u16),
    prot: &[(u16, Vec<u8>)],
    key: &SigningKey,
) -> Vec<u8> {
    let build = |tlvs: &[(u16, Vec<u8>)]| {
        let mut img = crate::mcuboot::tests::image(body, prot, tlvs);
        img[20] = version.0;
        img[21] = version.1;
        img[22..24].copy_from_slice(&version.2.to_le_bytes());
        img
    };
    let unsigned = build(&[]);
    let hash: [u8; 32] = Sha256::digest(&unsigned[..unsigned.len() - 4]).into();
    let sig: DerSignature = key.sign_prehash(&hash).unwrap();
    let keyhash: [u8; 32] = Sha256::digest(spki(key)).into();
    build(&[
        (0x01, keyhash.to_vec()),
        (0x10, hash.to_vec()),
        (0x22, sig.as_bytes().to_vec()),
    ])
}

fn verified<'a>(key: &'a [u8]) -> Options<'a> {
    let mut o = retrying(2);
    o.image_key = key;
    o.params.version = Some("1.2.0");
    o
}

#[test]
fn a_signed_image_is_committed_whole_and_checked_before_init() {
    let key = signing_key(7);
    let pubkey = spki(&key);
    let img = signed(&image(50_000), (1, 2, 3), &[], &key);
    for split in [Split::Whole, Split::Every(7), Split::Random(3, 3000)] {
        let mut c = conn(&response_200(&img));
        c.split = split.clone();
        let r = run(&verified(&pubkey), vec![c]);
        assert_eq!(r.result, Ok(()), "{split:?}");
        assert_eq!(r.flash.image(), &img[..]);
        assert_eq!(r.status.snapshot().verify_reason, 0);
    }
    // Chunked in pieces smaller than the header: init waits for 32 bytes.
    let r = run(
        &verified(&pubkey),
        vec![conn(&chunked(&img, &[1, 5, 30, 4000]))],
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
    // A PEM key works the same.
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64(&pubkey)
    );
    let r = run(&verified(pem.as_bytes()), vec![conn(&response_200(&img))]);
    assert_eq!(r.result, Ok(()));
}

#[test]
fn every_tampered_part_of_a_signed_image_is_refused() {
    let key = signing_key(7);
    let pubkey = spki(&key);
    let body = image(20_000);
    let img = signed(
        &body,
        (1, 2, 3),
        &[(0x50, 5u32.to_le_bytes().to_vec())],
        &key,
    );
    // Offsets: header byte 30 (padding), body, protected TLV value, the hash TLV, the signature.
    let prot_value = 64 + body.len() + 8;
    let info = 64 + body.len() + 12; // unprotected info
    let hash_value = info + 4 + 36 + 4;
    let sig_value = hash_value + 32 + 4 + 10;
    let cases = [
        ("header (load address)", 4, Reason::ImageHash),
        ("header (image size)", 12, Reason::Tlv),
        ("body", 64 + 777, Reason::ImageHash),
        ("protected tlv", prot_value, Reason::ImageHash),
        ("hash tlv", hash_value, Reason::ImageHash),
        ("signature", sig_value, Reason::Signature),
    ];
    for (what, at, reason) in cases {
        let mut bad = img.clone();
        bad[at] ^= 0x10;
        let r = run(&verified(&pubkey), vec![conn(&response_200(&bad))]);
        refused(&r, reason, what);
    }
    let other = spki(&signing_key(9));
    let r = run(&verified(&other), vec![conn(&response_200(&img))]);
    refused(&r, Reason::KeyHash, "another key");
    let unsigned = crate::mcuboot::tests::image(&body, &[], &[]);
    let r = run(&verified(&pubkey), vec![conn(&response_200(&unsigned))]);
    refused(&r, Reason::Tlv, "unsigned");
    let r = run(&verified(&pubkey), vec![conn(&response_200(&body))]);
    refused(&r, Reason::Header, "not an MCUboot image");
    assert!(r.flash.inits.is_empty(), "refused before init");
    let r = run(
        &verified(&pubkey),
        vec![conn(&response_200(&img[..img.len() - 9]))],
    );
    refused(&r, Reason::Tlv, "truncated TLV area");
    let mut long = img.clone();
    let n = long.len();
    long[n - 74..n - 72].copy_from_slice(&500u16.to_le_bytes()); // a TLV length past the end
    let r = run(&verified(&pubkey), vec![conn(&response_200(&long))]);
    assert_eq!(r.result, Err(Error::Verify), "tlv past the end");
}

#[test]
fn downgrades_and_old_security_counters_are_refused() {
    let key = signing_key(7);
    let pubkey = spki(&key);
    let old = signed(&image(5000), (1, 1, 9), &[], &key);
    let r = run(&verified(&pubkey), vec![conn(&response_200(&old))]);
    refused(&r, Reason::Downgrade, "1.1.9 after 1.2.0");
    assert!(
        r.flash.inits.is_empty(),
        "a downgrade is refused before init"
    );
    let mut o = verified(&pubkey);
    o.allow_downgrade = true;
    assert_eq!(run(&o, vec![conn(&response_200(&old))]).result, Ok(()));

    let counted = signed(
        &image(5000),
        (2, 0, 0),
        &[(0x50, 4u32.to_le_bytes().to_vec())],
        &key,
    );
    let mut o = verified(&pubkey);
    o.security_counter = 5;
    refused(
        &run(&o, vec![conn(&response_200(&counted))]),
        Reason::SecurityCounter,
        "4 < 5",
    );
    o.security_counter = 4;
    assert_eq!(run(&o, vec![conn(&response_200(&counted))]).result, Ok(()));
    let uncounted = signed(&image(5000), (2, 0, 0), &[], &key);
    refused(
        &run(&o, vec![conn(&response_200(&uncounted))]),
        Reason::SecurityCounter,
        "no counter",
    );
}

#[test]
fn a_bad_image_key_is_an_invalid_argument_before_any_traffic() {
    for key in [&b"not a key"[..], &[0x30, 0x03, 0x02, 0x01, 0x00][..]] {
        let r = run(&verified(key), vec![conn(&response_200(&image(10)))]);
        assert_eq!(r.result, Err(Error::InvalidArg));
        assert!(r.net.connects.is_empty());
    }
}

#[test]
fn a_signed_image_resumes_after_a_power_loss_through_the_same_checks() {
    use super::resume::{interrupted, request, Server};
    let key = signing_key(7);
    let pubkey = spki(&key);
    let img = signed(&image(60_000), (1, 2, 3), &[], &key);
    let mut o = verified(&pubkey);
    o.state_interval = 4096;
    // The kept part is read back through the header check and the TLV
    // reader; the signature is checked over every byte at the end.
    let mut device = interrupted(&img, &o, 30_000);
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert!(snap.resumed_from > 20_000, "{}", snap.resumed_from);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
    // A kept header that no longer passes: the image starts from byte 0.
    let mut device = interrupted(&img, &o, 30_000);
    device.mem[0] ^= 0xFF;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
    // A kept body byte that changed: the image hash refuses it at the end.
    let mut device = interrupted(&img, &o, 30_000);
    device.mem[1000] ^= 1;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Err(Error::Verify));
    assert!(snap.resumed_from > 0);
    assert_eq!(snap.verify_reason, Reason::ImageHash as u32);
    assert!(device.committed.is_none());
}
