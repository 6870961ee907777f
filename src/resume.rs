//! The resume record: what fota keeps in the platform's state slots so that
//! a download cut by a reset continues after the reboot, and what proves
//! that a record belongs to the request at hand.
//!
//! Two slots (0 and 1) hold a record each; a save goes to the slot that does
//! not hold the newest record, with the next sequence number, so a save torn
//! by a power loss leaves the previous good record in the other slot. Each
//! record ends with a CRC-32 of everything before it: a torn, truncated or
//! bit-flipped record is ignored. A "tombstone" (a record that is not live)
//! with a higher sequence number forgets what the older one said.
//!
//! Layout (little-endian), `RECORD_HEAD` bytes then the validator then the CRC:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `FOTA` |
//! | 4 | 1 | format version (1) |
//! | 5 | 1 | flags: bit 0 live, bit 1 server digest present |
//! | 6 | 2 | validator length (<= `FOTA_VALIDATOR_MAX`) |
//! | 8 | 4 | sequence number |
//! | 12 | 32 | request id (see [`request_id`]) |
//! | 44 | 4 | image length |
//! | 48 | 4 | durable offset |
//! | 52 | 32 | the server's `Repr-Digest` SHA-256, or zeros |
//! | 84 | n | the validator (`ETag` or `Last-Modified`) |
//! | 84 + n | 4 | CRC-32 (IEEE) of bytes 0 .. 84 + n |

use sha2::{Digest, Sha256};

use crate::options::FOTA_VALIDATOR_MAX;

/// Bytes before the validator.
const RECORD_HEAD: usize = 84;
/// Longest record: the bytes a state slot must hold (a record with an
/// `ETag` of n bytes takes 88 + n).
pub const FOTA_STATE_RECORD_MAX: usize = 344;
const _: () = assert!(FOTA_STATE_RECORD_MAX == RECORD_HEAD + FOTA_VALIDATOR_MAX + 4);

const MAGIC: [u8; 4] = *b"FOTA";
const VERSION: u8 = 1;
const LIVE: u8 = 1;
const HAS_DIGEST: u8 = 2;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) seq: u32,
    /// False: a tombstone (nothing to resume).
    pub(crate) live: bool,
    pub(crate) id: [u8; 32],
    pub(crate) total: u32,
    pub(crate) offset: u32,
    pub(crate) digest: Option<[u8; 32]>,
    pub(crate) validator: &'a [u8],
}

impl<'a> Record<'a> {
    /// A tombstone with this sequence number.
    pub(crate) fn tombstone(seq: u32) -> Record<'static> {
        Record {
            seq,
            live: false,
            id: [0; 32],
            total: 0,
            offset: 0,
            digest: None,
            validator: &[],
        }
    }

    /// Writes the record into `buf`; returns its length (`None`: the
    /// validator is too long).
    pub(crate) fn encode(&self, buf: &mut [u8; FOTA_STATE_RECORD_MAX]) -> Option<usize> {
        let vlen = self.validator.len();
        let end = RECORD_HEAD.checked_add(vlen)?;
        let flags = if self.live { LIVE } else { 0 } | self.digest.map_or(0, |_| HAS_DIGEST);
        let fields: [&[u8]; 9] = [
            &MAGIC,
            &[VERSION, flags],
            &u16::try_from(vlen).ok()?.to_le_bytes(),
            &self.seq.to_le_bytes(),
            &self.id,
            &self.total.to_le_bytes(),
            &self.offset.to_le_bytes(),
            &self.digest.unwrap_or([0; 32]),
            self.validator,
        ];
        let mut at = 0;
        for field in fields {
            let next = at + field.len();
            buf.get_mut(at..next)?.copy_from_slice(field);
            at = next;
        }
        let crc = crc32(buf.get(..end)?);
        buf.get_mut(end..end + 4)?
            .copy_from_slice(&crc.to_le_bytes());
        Some(end + 4)
    }

    /// The record in `bytes` (what a slot returned), or `None` when it is
    /// empty, torn, corrupted or of another format.
    pub(crate) fn decode(bytes: &'a [u8]) -> Option<Record<'a>> {
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let array_at = |at: usize| bytes.get(at..at + 32).and_then(|b| b.try_into().ok());
        if bytes.get(..4)? != MAGIC || *bytes.get(4)? != VERSION {
            return None;
        }
        let flags = *bytes.get(5)?;
        let vlen = usize::from(u16::from_le_bytes(bytes.get(6..8)?.try_into().ok()?));
        let end = RECORD_HEAD + vlen;
        if vlen > FOTA_VALIDATOR_MAX || u32_at(end)? != crc32(bytes.get(..end)?) {
            return None;
        }
        Some(Record {
            seq: u32_at(8)?,
            live: flags & LIVE != 0,
            id: array_at(12)?,
            total: u32_at(44)?,
            offset: u32_at(48)?,
            digest: if flags & HAS_DIGEST != 0 {
                Some(array_at(52)?)
            } else {
                None
            },
            validator: bytes.get(RECORD_HEAD..end)?,
        })
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), bit by bit: no table,
/// a few dozen bytes of code; records are short and written rarely.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Query parameters that change from one request of the same image to the
/// next (signed CDN URLs: expiry, signature, token); compared without case,
/// a name ending in `*` as a prefix.
const VOLATILE: [&str; 14] = [
    "x-amz-*",
    "expires",
    "signature",
    "key-pair-id",
    "policy",
    "token",
    "auth_key",
    "sign",
    "sig",
    "se",
    "st",
    "sp",
    "sv",
    "ossaccesskeyid",
];

fn volatile(name: &str) -> bool {
    VOLATILE.iter().any(|v| match v.strip_suffix('*') {
        Some(prefix) => name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
        None => name.eq_ignore_ascii_case(v),
    })
}

/// What identifies a request across reboots: the SHA-256 of the caller's
/// expected image digest when given (the same image from any URL), else of
/// the method and the URL without its volatile query parameters.
pub(crate) fn request_id(method: &str, url: &str, image_sha256: Option<&[u8; 32]>) -> [u8; 32] {
    let mut h = Sha256::new();
    if let Some(sha) = image_sha256 {
        h.update(b"sha256\0");
        h.update(sha);
        return h.finalize().into();
    }
    h.update(method.as_bytes());
    h.update(b" ");
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    h.update(base.as_bytes());
    for param in query.split('&') {
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if !volatile(name) {
            h.update(b"&");
            h.update(param.as_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    fn sample(seq: u32, validator: &[u8]) -> Record<'_> {
        Record {
            seq,
            live: true,
            id: [7; 32],
            total: 4 << 20,
            offset: 65536 * 3,
            digest: Some([9; 32]),
            validator,
        }
    }

    #[test]
    fn records_round_trip() {
        let long = [b'x'; FOTA_VALIDATOR_MAX];
        for r in [
            sample(1, b"\"abc\""),
            sample(u32::MAX, &long),
            Record::tombstone(5),
        ] {
            let mut buf = [0u8; FOTA_STATE_RECORD_MAX];
            let n = r.encode(&mut buf).unwrap();
            assert_eq!(Record::decode(&buf[..n]), Some(r));
            // Trailing bytes (a slot larger than the record) do not matter.
            assert_eq!(Record::decode(&buf), Some(r));
        }
        let mut buf = [0u8; FOTA_STATE_RECORD_MAX];
        assert_eq!(
            sample(1, &[0; FOTA_VALIDATOR_MAX + 1]).encode(&mut buf),
            None
        );
    }

    #[test]
    fn every_torn_truncated_or_flipped_record_is_ignored() {
        let mut buf = [0u8; FOTA_STATE_RECORD_MAX];
        let n = sample(3, b"\"etag\"").encode(&mut buf).unwrap();
        let good = buf[..n].to_vec();
        for cut in 0..n {
            assert_eq!(Record::decode(&good[..cut]), None, "truncated at {cut}");
            // A save torn at byte `cut` over an erased slot.
            let mut torn = good.clone();
            torn[cut..].fill(0xFF);
            assert_eq!(Record::decode(&torn), None, "torn at {cut}");
        }
        for bit in 0..n * 8 {
            let mut flipped = good.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Record::decode(&flipped), None, "bit {bit}");
        }
        assert_eq!(Record::decode(&[0xFF; FOTA_STATE_RECORD_MAX]), None);
        assert_eq!(Record::decode(&[]), None);
    }

    #[test]
    fn request_id_ignores_volatile_query_parameters() {
        let id = |u: &str| request_id("GET", u, None);
        let base = id("http://cdn.example.com/fw.bin?model=a1");
        assert_eq!(
            base,
            id("http://cdn.example.com/fw.bin?model=a1&Expires=1&Signature=x&Key-Pair-Id=k")
        );
        assert_eq!(
            base,
            id("http://cdn.example.com/fw.bin?X-Amz-Date=1&model=a1&x-amz-signature=2")
        );
        assert_ne!(base, id("http://cdn.example.com/fw.bin?model=a2"));
        assert_ne!(base, id("http://cdn.example.com/fw2.bin?model=a1"));
        assert_ne!(
            base,
            request_id("POST", "http://cdn.example.com/fw.bin?model=a1", None)
        );
        // The platform's parameters are not volatile: another version is another request.
        assert_ne!(
            id("http://iot.openluat.com/api?imei=1&version=1.0.0"),
            id("http://iot.openluat.com/api?imei=1&version=1.0.1")
        );
        // An expected digest names the image wherever it comes from.
        let sha = [1u8; 32];
        assert_eq!(
            request_id("GET", "http://a/x", Some(&sha)),
            request_id("GET", "http://b/y", Some(&sha))
        );
    }
}
