//! What an image must pass before `end(true)`, in one place (as MCUboot
//! keeps "is this image good" in one file): the caller's expected length and
//! SHA-256, the server's `Repr-Digest`, and for MCUboot images the header,
//! the image hash, the key hash, the ECDSA P-256 signature, the version and
//! the security counter. The bytes are hashed as they stream past; a wrong
//! image is refused as early as its bytes allow.

use sha2::{Digest, Sha256};

use crate::mcuboot::{Fault, Header, TlvReader, Version};
use crate::options::Options;
use crate::result::Error;

/// Which check refused an image (`fota_progress_t.verify_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    /// No check failed.
    None = 0,
    /// The length differs from `image_len`.
    Length = 1,
    /// The SHA-256 differs from `image_sha256`.
    Sha256 = 2,
    /// The SHA-256 differs from the server's `Repr-Digest`.
    ReprDigest = 3,
    /// Not an MCUboot image, or its sizes do not fit the length or `max_len`.
    Header = 4,
    /// A malformed, truncated or missing TLV area (or bytes after it).
    Tlv = 5,
    /// The `SHA256` TLV differs from the hash of header, body and protected TLVs.
    ImageHash = 6,
    /// The `KEYHASH` TLV names another key.
    KeyHash = 7,
    /// No `ECDSA_SIG` TLV, or it does not verify with `image_key`.
    Signature = 8,
    /// The image is older than `version` (and `allow_downgrade` is false).
    Downgrade = 9,
    /// The security counter is missing or below `security_counter`.
    SecurityCounter = 10,
    /// The image read back from flash differs from what was written.
    Readback = 11,
}

impl Reason {
    /// The name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::Length => "length",
            Reason::Sha256 => "sha256",
            Reason::ReprDigest => "repr-digest",
            Reason::Header => "mcuboot header",
            Reason::Tlv => "mcuboot tlv area",
            Reason::ImageHash => "mcuboot image hash",
            Reason::KeyHash => "mcuboot key hash",
            Reason::Signature => "signature",
            Reason::Downgrade => "downgrade",
            Reason::SecurityCounter => "security counter",
            Reason::Readback => "read-back",
        }
    }
}

impl From<Fault> for Reason {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Header => Reason::Header,
            Fault::Tlv => Reason::Tlv,
        }
    }
}

/// The signing key of MCUboot images: ECDSA P-256.
#[cfg(feature = "signed-images")]
struct ImageKey {
    key: p256::ecdsa::VerifyingKey,
    /// SHA-256 of its SubjectPublicKeyInfo DER, as in the `KEYHASH` TLV.
    hash: [u8; 32],
}

/// The DER of a P-256 SubjectPublicKeyInfo up to the uncompressed point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 ... }.
#[cfg(feature = "signed-images")]
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[cfg(feature = "signed-images")]
impl ImageKey {
    /// From a PEM (`PUBLIC KEY`) or DER SubjectPublicKeyInfo of a P-256 key.
    fn parse(input: &[u8]) -> Result<ImageKey, Error> {
        let mut der = [0u8; 128];
        let decoded = crate::pem::decode(input, b"PUBLIC KEY", &mut der)?;
        let spki = decoded
            .objects
            .first()
            .filter(|_| decoded.count == 1)
            .and_then(|r| der.get(r.clone()))
            .ok_or(Error::InvalidArg)?;
        let point = spki
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .filter(|p| p.len() == 65)
            .ok_or(Error::InvalidArg)?;
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| Error::InvalidArg)?;
        Ok(ImageKey {
            key,
            hash: Sha256::digest(spki).into(),
        })
    }

    fn verifies(&self, hash: &[u8; 32], der_signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        p256::ecdsa::Signature::from_der(der_signature)
            .is_ok_and(|sig| self.key.verify_prehash(hash, &sig).is_ok())
    }
}

/// The checks the caller configured, parsed once before any traffic.
pub(crate) struct Checks<'a> {
    image_len: u32,
    sha256: Option<&'a [u8; 32]>,
    #[cfg(feature = "signed-images")]
    key: Option<ImageKey>,
    current: Option<Version>,
    allow_downgrade: bool,
    security_counter: u32,
}

impl<'a> Checks<'a> {
    /// Errors: `InvalidArg` for a key that is not a P-256 public key (or any
    /// key without the `signed-images` feature).
    pub(crate) fn new(opts: &Options<'a>) -> Result<Self, Error> {
        #[cfg(not(feature = "signed-images"))]
        if !opts.image_key.is_empty() {
            return Err(Error::InvalidArg);
        }
        Ok(Checks {
            image_len: opts.image_len,
            sha256: opts.image_sha256,
            #[cfg(feature = "signed-images")]
            key: match opts.image_key {
                [] => None,
                key => Some(ImageKey::parse(key)?),
            },
            current: opts.params.version.and_then(Version::parse),
            allow_downgrade: opts.allow_downgrade,
            security_counter: opts.security_counter,
        })
    }

    /// Whether images must be MCUboot images signed with the configured key.
    pub(crate) fn signed(&self) -> bool {
        #[cfg(feature = "signed-images")]
        return self.key.is_some();
        #[cfg(not(feature = "signed-images"))]
        false
    }

    /// Whether any check needs the image's digest.
    fn need_digest(&self) -> bool {
        self.sha256.is_some() || self.signed()
    }

    /// Checks an announced length (`None`: unknown) before `init`.
    pub(crate) fn length(&self, length: Option<u32>) -> Result<(), Reason> {
        match length {
            Some(n) if self.image_len != 0 && n != self.image_len => Err(Reason::Length),
            _ => Ok(()),
        }
    }

    /// Whether an image of at least `len` bytes can still be the expected one.
    pub(crate) fn fits(&self, len: u32) -> Result<(), Reason> {
        if self.image_len != 0 && len > self.image_len {
            return Err(Reason::Length);
        }
        Ok(())
    }

    /// Checks an MCUboot header before `init`: magic and sizes, the sizes
    /// against the announced length (0: unknown) and `max_len`, the version.
    pub(crate) fn header(&self, first: &[u8], total: u32, max_len: u32) -> Result<Header, Reason> {
        let header = Header::parse(first)?;
        let min = header.min_len().ok_or(Reason::Header)?;
        if (total != 0 && min > total) || (max_len != 0 && min > max_len) {
            return Err(Reason::Header);
        }
        let older = self
            .current
            .is_some_and(|now| header.version.older_than(&now));
        if older && !self.allow_downgrade {
            return Err(Reason::Downgrade);
        }
        Ok(header)
    }
}

/// The verification of one image as its bytes go by.
pub(crate) struct Verification {
    /// SHA-256 of every byte so far (`None`: nothing needs it).
    hasher: Option<Sha256>,
    /// The server's `Repr-Digest: sha-256`, from the first response.
    server_digest: Option<[u8; 32]>,
    /// MCUboot: the TLV reader and where the hashed part ends.
    tlv: Option<(TlvReader, u32)>,
    /// MCUboot: SHA-256 of header, body and protected TLVs.
    image_hash: Option<[u8; 32]>,
    /// Bytes fed so far.
    fed: u32,
}

impl Verification {
    /// For a new image; `read_back`: the digest is needed to compare flash.
    pub(crate) fn new(
        checks: &Checks<'_>,
        server_digest: Option<[u8; 32]>,
        read_back: bool,
    ) -> Self {
        let hash = checks.need_digest() || server_digest.is_some() || read_back;
        Verification {
            hasher: hash.then(Sha256::new),
            server_digest,
            tlv: None,
            image_hash: None,
            fed: 0,
        }
    }

    /// Whether the bytes are hashed (a check, the server's digest or the
    /// read-back needs their SHA-256).
    pub(crate) fn hashes(&self) -> bool {
        self.hasher.is_some()
    }

    /// The server's `Repr-Digest: sha-256` from the first response.
    pub(crate) fn server_digest(&self) -> Option<[u8; 32]> {
        self.server_digest
    }

    /// Whether a continuation's `Repr-Digest` (`None`: none) describes the
    /// same representation as the first response's.
    pub(crate) fn same_digest(&self, digest: Option<[u8; 32]>) -> bool {
        match (self.server_digest, digest) {
            (Some(a), Some(b)) => a == b,
            (None, Some(_)) => false,
            (_, None) => true,
        }
    }

    /// Reads the TLV areas of this MCUboot image from now on.
    pub(crate) fn mcuboot(&mut self, header: Header) -> Result<(), Reason> {
        let hashed = header.tlv_start().ok_or(Reason::Header)?;
        self.tlv = Some((TlvReader::new(header), hashed));
        Ok(())
    }

    /// Feeds the next bytes (in order, from byte 0).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(), Reason> {
        if let Some((reader, hashed)) = &mut self.tlv {
            reader.feed(data)?;
            // The image hash ends inside this piece: finish a copy of the hasher there.
            let split = hashed.checked_sub(self.fed).map(|n| n as usize);
            if let (Some(at), Some(hasher)) = (split.filter(|&n| n <= data.len()), &mut self.hasher)
            {
                let (before, after) = data.split_at(at);
                hasher.update(before);
                if self.image_hash.is_none() {
                    self.image_hash = Some(hasher.clone().finalize().into());
                }
                hasher.update(after);
                self.fed = self.fed.saturating_add(data.len() as u32);
                return Ok(());
            }
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
        self.fed = self.fed.saturating_add(data.len() as u32);
        Ok(())
    }

    /// The image's SHA-256, once every byte was fed (`None`: not hashed).
    pub(crate) fn digest(&self) -> Option<[u8; 32]> {
        self.hasher.clone().map(|h| h.finalize().into())
    }

    /// Every check on a complete image of `len` bytes.
    pub(crate) fn finish(&self, checks: &Checks<'_>, len: u32) -> Result<(), Reason> {
        let digest = self.digest();
        if checks.image_len != 0 && len != checks.image_len {
            return Err(Reason::Length);
        }
        if checks.sha256.is_some_and(|want| Some(*want) != digest) {
            return Err(Reason::Sha256);
        }
        if self.server_digest.is_some_and(|want| Some(want) != digest) {
            return Err(Reason::ReprDigest);
        }
        if checks.signed() {
            self.signed(checks)?;
        }
        Ok(())
    }

    /// The MCUboot checks after the last byte.
    fn signed(&self, checks: &Checks<'_>) -> Result<(), Reason> {
        let (reader, _) = self.tlv.as_ref().ok_or(Reason::Header)?;
        if !reader.done() {
            return Err(Reason::Tlv);
        }
        let tlvs = &reader.tlvs;
        let hash = tlvs.sha256.ok_or(Reason::Tlv)?;
        if Some(hash) != self.image_hash {
            return Err(Reason::ImageHash);
        }
        #[cfg(feature = "signed-images")]
        {
            let key = checks.key.as_ref().ok_or(Reason::Signature)?;
            if tlvs.keyhash.is_some_and(|k| k != key.hash) {
                return Err(Reason::KeyHash);
            }
            let signature = tlvs
                .signature
                .as_ref()
                .and_then(|s| s.get(..tlvs.signature_len))
                .ok_or(Reason::Signature)?;
            if !key.verifies(&hash, signature) {
                return Err(Reason::Signature);
            }
        }
        if checks.security_counter != 0
            && tlvs
                .security_counter
                .is_none_or(|c| c < checks.security_counter)
        {
            return Err(Reason::SecurityCounter);
        }
        Ok(())
    }
}

/// The `sha-256` member of a `Repr-Digest` field (RFC 9530: a structured
/// dictionary of byte sequences, `sha-256=:<base64>:`). `Ok(None)` when the
/// field names only other algorithms; `Err(Response)` when it is malformed.
pub fn repr_digest_sha256(value: &[u8]) -> Result<Option<[u8; 32]>, Error> {
    let mut found = None;
    for member in value.split(|&b| b == b',') {
        let member = member.trim_ascii();
        let (key, bytes) = member
            .iter()
            .position(|&b| b == b'=')
            .map(|i| member.split_at(i))
            .ok_or(Error::Response)?;
        let encoded = bytes
            .get(1..)
            .and_then(|b| b.strip_prefix(b":"))
            .and_then(|b| b.strip_suffix(b":"))
            .filter(|b| !b.contains(&b':'))
            .ok_or(Error::Response)?;
        if key != b"sha-256" {
            continue;
        }
        let mut out = [0u8; 33];
        let n = crate::pem::base64_decode(encoded, &mut out).map_err(|_| Error::Response)?;
        let digest = out.get(..n).and_then(|d| <[u8; 32]>::try_from(d).ok());
        if found.is_some() || digest.is_none() {
            return Err(Error::Response);
        }
        found = digest;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_digest_fields() {
        // sha-256 of "hello world"
        let b64 = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";
        let want: [u8; 32] = Sha256::digest(b"hello world").into();
        let field = format!("sha-256=:{b64}:");
        assert_eq!(repr_digest_sha256(field.as_bytes()), Ok(Some(want)));
        let both = format!("sha-512=:AAAA:, sha-256=:{b64}:");
        assert_eq!(repr_digest_sha256(both.as_bytes()), Ok(Some(want)));
        assert_eq!(repr_digest_sha256(b"sha-512=:AAAA:"), Ok(None));
        for bad in [
            "sha-256=uU0n",
            "sha-256=:AAAA:",
            "sha-256",
            "sha-256=:***:",
            ":x:",
            "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:, sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:",
        ] {
            assert_eq!(repr_digest_sha256(bad.as_bytes()), Err(Error::Response), "{bad}");
        }
    }
}
