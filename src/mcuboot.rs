//! MCUboot images (the format `imgtool` signs): the 32-byte header, and the
//! TLV areas after the body, read as the image streams past. Nothing is
//! buffered but the few TLV values a check needs. Pure: no I/O, no crypto.
//!
//! Layout: header (`hdr_size` bytes, the first 32 parsed here), body
//! (`img_size`), the protected TLV area (`protect_tlv_size` bytes, info magic
//! 0x6908; covered by the image hash), then the TLV area (info magic 0x6907
//! and its total length) holding the hash, the key hash and the signature.

/// `ih_magic` of an MCUboot image header.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Bytes of the header fields (the header itself may be padded to `hdr_size`).
pub const HEADER_LEN: usize = 32;
const TLV_INFO_MAGIC: u16 = 0x6907;
const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// SHA-256 of the public key the image was signed with.
const TLV_KEYHASH: u16 = 0x01;
/// SHA-256 of header, body and protected TLVs.
const TLV_SHA256: u16 = 0x10;
/// ECDSA P-256 signature (DER) of that hash.
const TLV_ECDSA_SIG: u16 = 0x22;
/// Security counter (u32), in the protected area.
const TLV_SEC_CNT: u16 = 0x50;
/// Longest TLV value kept: a DER ECDSA P-256 signature is at most 72 bytes.
pub const VALUE_MAX: usize = 80;

/// Why an image is not a good MCUboot image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bad magic, a header size below 32, or sizes that overflow.
    Header,
    /// A malformed TLV area: bad info magic or length, a TLV past its area,
    /// a value of the wrong size, bytes after the TLV area.
    Tlv,
}

/// `major.minor.revision+build`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    pub revision: u16,
    pub build: u32,
}

impl Version {
    /// Parses `x.y.z` or `x.y.z+build` (each field within its MCUboot width).
    pub fn parse(text: &str) -> Option<Version> {
        let (numbers, build) = match text.split_once('+') {
            Some((n, b)) => (n, number(b)?),
            None => (text, 0),
        };
        let mut parts = numbers.split('.');
        let major = u8::try_from(number(parts.next()?)?).ok()?;
        let minor = u8::try_from(number(parts.next()?)?).ok()?;
        let revision = u16::try_from(number(parts.next()?)?).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            revision,
            build,
        })
    }

    /// Whether this image version is older than `current` (MCUboot compares
    /// major, minor and revision; the build number is not ordered).
    pub fn older_than(&self, current: &Version) -> bool {
        (self.major, self.minor, self.revision) < (current.major, current.minor, current.revision)
    }
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The fields of an image header that the checks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub hdr_size: u16,
    pub protect_tlv_size: u16,
    pub img_size: u32,
    pub version: Version,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of an image (little-endian).
    pub fn parse(bytes: &[u8]) -> Result<Header, Fault> {
        let field = |at: usize, n: usize| -> Result<u32, Fault> {
            let b = bytes.get(at..at + n).ok_or(Fault::Header)?;
            Ok(b.iter()
                .rev()
                .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
        };
        if bytes.len() < HEADER_LEN || field(0, 4)? != IMAGE_MAGIC {
            return Err(Fault::Header);
        }
        let header = Header {
            hdr_size: field(8, 2)? as u16,
            protect_tlv_size: field(10, 2)? as u16,
            img_size: field(12, 4)?,
            version: Version {
                major: field(20, 1)? as u8,
                minor: field(21, 1)? as u8,
                revision: field(22, 2)? as u16,
                build: field(24, 4)?,
            },
        };
        let protected_ok = header.protect_tlv_size == 0 || header.protect_tlv_size >= 4;
        if usize::from(header.hdr_size) < HEADER_LEN || !protected_ok {
            return Err(Fault::Header);
        }
        header.tlv_start().ok_or(Fault::Header)?;
        Ok(header)
    }

    /// Where the body ends (and the protected TLV area starts).
    fn body_end(&self) -> Option<u32> {
        u32::from(self.hdr_size).checked_add(self.img_size)
    }

    /// Bytes covered by the image hash: header, body, protected TLVs; also
    /// where the (unprotected) TLV area starts.
    pub fn tlv_start(&self) -> Option<u32> {
        self.body_end()?
            .checked_add(u32::from(self.protect_tlv_size))
    }

    /// The smallest possible image: up to the TLV info of the last area.
    pub fn min_len(&self) -> Option<u32> {
        self.tlv_start()?.checked_add(4)
    }
}

/// What the TLV areas said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tlvs {
    pub sha256: Option<[u8; 32]>,
    pub keyhash: Option<[u8; 32]>,
    /// The DER signature, `signature_len` bytes.
    pub signature: Option<[u8; VALUE_MAX]>,
    pub signature_len: usize,
    pub security_counter: Option<u32>,
}

/// Where the reader is in the TLV areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Header and body: nothing to read until the given offset.
    Skip,
    /// The 4-byte info of the protected (true) or unprotected area.
    Info { protected: bool },
    /// A 4-byte TLV header.
    TlvHeader { protected: bool },
    /// A value of `len` bytes of type `kind`.
    Value {
        protected: bool,
        kind: u16,
        len: u16,
    },
    /// The TLV area ended: no byte may follow.
    Done,
}

/// Reads the TLV areas of one image from its bytes, in order, in pieces of
/// any size.
#[derive(Clone, Copy, Debug)]
pub struct TlvReader {
    header: Header,
    /// Offset in the image of the next byte fed.
    pos: u32,
    step: Step,
    /// Where the current area ends.
    area_end: u32,
    field: [u8; VALUE_MAX],
    field_len: usize,
    pub tlvs: Tlvs,
}

impl TlvReader {
    pub fn new(header: Header) -> Self {
        TlvReader {
            header,
            pos: 0,
            step: Step::Skip,
            area_end: 0,
            field: [0; VALUE_MAX],
            field_len: 0,
            tlvs: Tlvs::default(),
        }
    }

    /// Whether the TLV area ended exactly where the bytes fed so far end.
    pub fn done(&self) -> bool {
        self.step == Step::Done
    }

    /// Feeds the next bytes of the image.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Fault> {
        while !data.is_empty() {
            let want = match self.step {
                Step::Done => return Err(Fault::Tlv),
                Step::Skip => {
                    let body_end = self.header.body_end().ok_or(Fault::Header)?;
                    let skip = body_end.saturating_sub(self.pos);
                    let n = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.pos += n as u32;
                    if self.pos == body_end {
                        self.step = Step::Info {
                            protected: self.header.protect_tlv_size > 0,
                        };
                    }
                    continue;
                }
                Step::Info { .. } | Step::TlvHeader { .. } => 4,
                Step::Value { len, .. } => usize::from(len),
            };
            // Values longer than the field are skipped, never kept.
            let keep = want.min(VALUE_MAX);
            let take = (want - self.field_len).min(data.len());
            let (piece, rest) = data.split_at(take);
            for &b in piece {
                if let Some(slot) = self
                    .field
                    .get_mut(self.field_len)
                    .filter(|_| self.field_len < keep)
                {
                    *slot = b;
                }
                self.field_len += 1;
            }
            data = rest;
            self.pos = self.pos.checked_add(take as u32).ok_or(Fault::Tlv)?;
            if self.field_len == want {
                self.field_len = 0;
                self.complete()?;
            }
        }
        Ok(())
    }

    fn u16_at(&self, at: usize) -> u16 {
        let lo = self.field.get(at).copied().unwrap_or(0);
        let hi = self.field.get(at + 1).copied().unwrap_or(0);
        u16::from_le_bytes([lo, hi])
    }

    /// A field (`want` bytes) is complete at `self.pos`: act on it.
    fn complete(&mut self) -> Result<(), Fault> {
        match self.step {
            Step::Info { protected } => {
                let magic = if protected {
                    TLV_PROT_INFO_MAGIC
                } else {
                    TLV_INFO_MAGIC
                };
                let total = self.u16_at(2);
                let start = self.pos - 4;
                let expected_total = if protected {
                    Some(self.header.protect_tlv_size)
                } else {
                    None
                };
                if self.u16_at(0) != magic
                    || total < 4
                    || expected_total.is_some_and(|t| t != total)
                {
                    return Err(Fault::Tlv);
                }
                self.area_end = start.checked_add(u32::from(total)).ok_or(Fault::Tlv)?;
                self.next_tlv(protected);
            }
            Step::TlvHeader { protected } => {
                let (kind, len) = (self.u16_at(0), self.u16_at(2));
                if self
                    .pos
                    .checked_add(u32::from(len))
                    .is_none_or(|end| end > self.area_end)
                {
                    return Err(Fault::Tlv);
                }
                self.step = Step::Value {
                    protected,
                    kind,
                    len,
                };
                if len == 0 {
                    self.complete()?;
                }
            }
            Step::Value {
                protected,
                kind,
                len,
            } => {
                self.keep(protected, kind, usize::from(len))?;
                self.next_tlv(protected);
            }
            Step::Skip | Step::Done => {}
        }
        Ok(())
    }

    /// After an info or a value: the next TLV, the next area, or the end.
    fn next_tlv(&mut self, protected: bool) {
        self.step = if self.pos < self.area_end {
            Step::TlvHeader { protected }
        } else if protected {
            Step::Info { protected: false }
        } else {
            Step::Done
        };
    }

    fn keep(&mut self, protected: bool, kind: u16, len: usize) -> Result<(), Fault> {
        let value = self.field.get(..len.min(VALUE_MAX)).unwrap_or_default();
        let hash = || <[u8; 32]>::try_from(value).map_err(|_| Fault::Tlv);
        match (kind, protected) {
            (TLV_SHA256, false) => self.tlvs.sha256 = Some(hash()?),
            (TLV_KEYHASH, false) => self.tlvs.keyhash = Some(hash()?),
            (TLV_ECDSA_SIG, false) => {
                if len > VALUE_MAX {
                    return Err(Fault::Tlv);
                }
                let mut signature = [0; VALUE_MAX];
                signature
                    .get_mut(..len)
                    .ok_or(Fault::Tlv)?
                    .copy_from_slice(value);
                self.tlvs.signature = Some(signature);
                self.tlvs.signature_len = len;
            }
            (TLV_SEC_CNT, true) => {
                let bytes = <[u8; 4]>::try_from(value).map_err(|_| Fault::Tlv)?;
                self.tlvs.security_counter = Some(u32::from_le_bytes(bytes));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// An image as imgtool lays it out (hash and signature bytes made up).
    pub(crate) fn image(
        body: &[u8],
        protected: &[(u16, Vec<u8>)],
        tlvs: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        let area = |magic: u16, items: &[(u16, Vec<u8>)]| {
            let len: usize = 4 + items.iter().map(|(_, v)| 4 + v.len()).sum::<usize>();
            let mut out = Vec::new();
            out.extend_from_slice(&magic.to_le_bytes());
            out.extend_from_slice(&(len as u16).to_le_bytes());
            for (kind, value) in items {
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(&(value.len() as u16).to_le_bytes());
                out.extend_from_slice(value);
            }
            out
        };
        let prot = if protected.is_empty() {
            Vec::new()
        } else {
            area(0x6908, protected)
        };
        let mut out = Vec::new();
        out.extend_from_slice(&IMAGE_MAGIC.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&(prot.len() as u16).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&[1, 2, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        out.resize(64, 0);
        out.extend_from_slice(body);
        out.extend_from_slice(&prot);
        out.extend_from_slice(&area(0x6907, tlvs));
        out
    }

    fn read(img: &[u8], piece: usize) -> Result<TlvReader, Fault> {
        let mut r = TlvReader::new(Header::parse(img)?);
        for chunk in img.chunks(piece) {
            r.feed(chunk)?;
        }
        Ok(r)
    }

    #[test]
    fn header_fields_and_versions() {
        let img = image(b"body", &[], &[]);
        let h = Header::parse(&img).unwrap();
        assert_eq!((h.hdr_size, h.img_size, h.protect_tlv_size), (64, 4, 0));
        assert_eq!(
            h.version,
            Version {
                major: 1,
                minor: 2,
                revision: 3,
                build: 4
            }
        );
        assert_eq!(Version::parse("1.2.3+4"), Some(h.version));
        assert_eq!(Version::parse("1.2.3").unwrap().build, 0);
        for bad in [
            "1.2",
            "1.2.3.4",
            "256.0.0",
            "1.2.65536",
            "a.b.c",
            "1.2.3+",
            "",
            "1..3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(Version::parse("1.2.2").unwrap().older_than(&h.version));
        assert!(!Version::parse("1.2.3+99").unwrap().older_than(&h.version));
        let mut bad = img.clone();
        bad[0] ^= 1;
        assert_eq!(Header::parse(&bad), Err(Fault::Header));
        let mut small = img.clone();
        small[8] = 16;
        assert_eq!(Header::parse(&small), Err(Fault::Header));
        assert_eq!(Header::parse(&img[..31]), Err(Fault::Header));
    }

    #[test]
    fn tlvs_are_read_in_pieces_of_any_size() {
        let sig: Vec<u8> = (0..71).collect();
        let img = image(
            &[7; 1000],
            &[(0x50, 9u32.to_le_bytes().to_vec()), (0x99, vec![1, 2, 3])],
            &[
                (0x01, vec![0xAA; 32]),
                (0x10, vec![0xBB; 32]),
                (0x22, sig.clone()),
                (0x77, vec![0; 200]),
            ],
        );
        for piece in [1, 3, 4, 7, 64, 4096] {
            let r = read(&img, piece).unwrap();
            assert!(r.done(), "{piece}");
            assert_eq!(r.tlvs.keyhash, Some([0xAA; 32]));
            assert_eq!(r.tlvs.sha256, Some([0xBB; 32]));
            assert_eq!(&r.tlvs.signature.unwrap()[..r.tlvs.signature_len], &sig[..]);
            assert_eq!(r.tlvs.security_counter, Some(9));
        }
    }

    #[test]
    fn malformed_tlv_areas_are_refused() {
        let good = image(b"abc", &[], &[(0x10, vec![1; 32])]);
        let tlv_start = 64 + 3;
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut m = good.clone();
        m[tlv_start] ^= 1;
        cases.push(("info magic", m));
        let mut m2 = good.clone();
        m2[tlv_start + 6] = 60; // the SHA256 TLV claims 60 bytes: past its area
        cases.push(("tlv past its area", m2));
        let mut m = good.clone();
        m.push(0);
        cases.push(("a byte after the area", m));
        let m = image(b"abc", &[], &[(0x10, vec![1; 31])]);
        cases.push(("short hash", m));
        let m = image(b"abc", &[], &[(0x22, vec![1; 81])]);
        cases.push(("long signature", m));
        for (name, img) in cases {
            assert_eq!(read(&img, 5).err(), Some(Fault::Tlv), "{name}");
        }
        // Truncated: not an error while streaming, but never done.
        let r = read(&good[..good.len() - 1], 5).unwrap();
        assert!(!r.done());
    }
}
