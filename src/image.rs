//! The image in the update area: begun from byte 0, checked and written in
//! order, finished, read back and committed, or discarded; and what a
//! continuation (a `206` answer to `Range: bytes=N-`) must prove to be
//! appended to it.
//!
//! This is the only code that calls the flash hooks, so the rule "`end(true)`
//! only for a complete image that passed every check" lives in one place; the
//! checks themselves are in [`crate::verify`].

use crate::hooks::{Clock, Flash};
use crate::http::Head;
use crate::options::FOTA_DONE_POLL_MS;
use crate::result::Error;
use crate::timer::Timer;
use crate::verify::{Checks, Reason, Verification};

/// Longest `ETag` / `Last-Modified` value kept for `If-Range` (a SHA-512 hex
/// ETag with quotes is 130 bytes). A longer one cannot prove a
/// continuation: the download then restarts from byte 0 after a drop.
pub const FOTA_VALIDATOR_MAX: usize = 256;

/// What the first response said about the identity of the image.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// A strong validator, kept: `validator[..len]`.
    Kept(usize),
    /// No validator, a weak one, or one too long to keep: nothing can prove
    /// that a later range belongs to the same image.
    Unproven,
}

/// Where the image is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No image (none begun, or discarded).
    None,
    /// Begun, but `init` waits for the MCUboot header (the first bytes).
    AwaitingHeader,
    /// `init` succeeded and `end` was not called yet.
    Open,
}

/// The image in the update area, across the connections of one request.
pub(crate) struct Image<'f, F: Flash> {
    flash: &'f mut F,
    checks: Checks<'f>,
    verification: Verification,
    /// The check that refused the image, if one did.
    refused: Reason,
    /// Most bytes the area holds (0: no limit).
    max_len: u32,
    stage: Stage,
    /// Bytes written, in order from 0: where a continuation must start.
    written: u32,
    /// Length announced by the first response (0: unknown).
    total: u32,
    identity: Identity,
    validator: [u8; FOTA_VALIDATOR_MAX],
}

impl<'f, F: Flash> Image<'f, F> {
    pub(crate) fn new(flash: &'f mut F, checks: Checks<'f>, max_len: u32) -> Self {
        let verification = Verification::new(&checks, None, false);
        Image {
            flash,
            checks,
            verification,
            refused: Reason::None,
            max_len,
            stage: Stage::None,
            written: 0,
            total: 0,
            identity: Identity::Unproven,
            validator: [0; FOTA_VALIDATOR_MAX],
        }
    }

    /// The flash's write granularity (0: any).
    pub(crate) fn granularity(&self) -> u32 {
        self.flash.granularity()
    }

    pub(crate) fn written(&self) -> u32 {
        self.written
    }

    /// The check that refused the image (`Reason::None` if none did).
    pub(crate) fn refused(&self) -> Reason {
        self.refused
    }

    /// Whether body bytes must be held until the first
    /// [`crate::mcuboot::HEADER_LEN`] of
    /// them can be checked together (before `init`).
    pub(crate) fn awaits_header(&self) -> bool {
        self.stage == Stage::AwaitingHeader
    }

    /// `Err(Verify)`, remembering which check said so.
    fn refuse(&mut self, reason: Reason) -> Error {
        self.refused = reason;
        Error::Verify
    }

    /// Where a new connection may continue the image with `Range`: only a
    /// body of known length whose identity a validator can prove.
    pub(crate) fn resume_from(&self) -> Option<u32> {
        let provable = matches!(self.identity, Identity::Kept(_));
        let open = self.stage == Stage::Open;
        (open && self.total > 0 && self.written > 0 && provable).then_some(self.written)
    }

    /// The validator to send in `If-Range` with a resume request.
    pub(crate) fn if_range(&self) -> Option<&[u8]> {
        match self.identity {
            Identity::Kept(len) => self.validator.get(..len),
            Identity::Unproven => None,
        }
    }

    /// Whether a 206 answer to `Range: bytes=from-` continues this image:
    /// same start, same total, the same strong validator as the first
    /// response (a missing one proves nothing), and no other `Repr-Digest`.
    pub(crate) fn continues(
        &self,
        head: &Head,
        validator: Option<&[u8]>,
        digest: Option<[u8; 32]>,
        from: u32,
        length: Option<u64>,
    ) -> bool {
        let total = u64::from(self.total);
        let range_ok = matches!(
            head.content_range,
            Some(r) if r.first == u64::from(from) && r.total == Some(total) && r.last.checked_add(1) == Some(total)
        );
        let length_ok = length.is_none_or(|n| Some(n) == total.checked_sub(u64::from(from)));
        let identity_ok =
            matches!((self.if_range(), validator), (Some(old), Some(new)) if old == new);
        range_ok && length_ok && identity_ok && self.verification.same_digest(digest)
    }

    /// Starts a new image from byte 0: discards a partial one, checks the
    /// announced length (`None`: unknown) against `max_len` and `image_len`,
    /// keeps the validator and the server's digest, and calls `init` (for a
    /// signed image: once its header arrived). Returns the total (0: unknown).
    pub(crate) fn begin(
        &mut self,
        validator: Option<&[u8]>,
        digest: Option<[u8; 32]>,
        length: Option<u64>,
    ) -> Result<u32, Error> {
        self.discard();
        let total = match length {
            Some(n) => {
                let n = u32::try_from(n).map_err(|_| Error::TooLarge)?;
                if self.max_len != 0 && n > self.max_len {
                    return Err(Error::TooLarge);
                }
                n
            }
            None => 0,
        };
        if let Err(reason) = self.checks.length(length.map(|_| total)) {
            return Err(self.refuse(reason));
        }
        let read_back = self.flash.can_read();
        self.verification = Verification::new(&self.checks, digest, read_back);
        self.total = total;
        if self.checks.signed() {
            self.stage = Stage::AwaitingHeader;
        } else {
            self.flash.init(total).map_err(|_| Error::Flash)?;
            self.stage = Stage::Open;
        }
        // A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
        let strong = validator.filter(|v| !v.starts_with(b"W/"));
        self.identity = match strong.and_then(|v| self.validator.get_mut(..v.len()).zip(Some(v))) {
            Some((slot, v)) => {
                slot.copy_from_slice(v);
                Identity::Kept(v.len())
            }
            None => Identity::Unproven,
        };
        Ok(total)
    }

    /// Appends `data`, within `max_len` and within the length `init` was
    /// given (a continuation framed by chunks or by the close can carry more
    /// than its `Content-Range` announced). Returns the bytes written so far.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<u32, Error> {
        if self.stage == Stage::AwaitingHeader {
            // The session holds the first bytes back until HEADER_LEN are
            // here (or the body ended): check them before anything is erased.
            let checked = self.checks.header(data, self.total, self.max_len);
            let header = match checked {
                Ok(h) => h,
                Err(reason) => return Err(self.refuse(reason)),
            };
            if let Err(reason) = self.verification.mcuboot(header) {
                return Err(self.refuse(reason));
            }
            self.flash.init(self.total).map_err(|_| Error::Flash)?;
            self.stage = Stage::Open;
        }
        if self.stage != Stage::Open {
            return Err(Error::Response);
        }
        let offset = self.written;
        let next = u32::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or(Error::TooLarge)?;
        if self.max_len != 0 && next > self.max_len {
            return Err(Error::TooLarge);
        }
        if self.total != 0 && next > self.total {
            return Err(Error::Response);
        }
        if let Err(reason) = self
            .checks
            .fits(next)
            .and_then(|()| self.verification.feed(data))
        {
            return Err(self.refuse(reason));
        }
        self.flash.write(offset, data).map_err(|_| Error::Flash)?;
        self.written = next;
        Ok(next)
    }

    /// Whether every announced byte arrived (with an unknown length: any).
    /// (`image_len`, when given, is checked with the other checks.)
    pub(crate) fn complete(&self) -> bool {
        match self.total {
            0 => self.written > 0,
            total => self.written == total,
        }
    }

    /// Runs every check on the complete image, polls `done()` until the
    /// flash is finished, reads the image back (with a read hook; `buf` is
    /// the room to read into) and commits.
    pub(crate) fn commit<C: Clock>(
        &mut self,
        timer: &Timer<'_, C>,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        if self.stage != Stage::Open || !self.complete() {
            return Err(Error::Response);
        }
        if let Err(reason) = self.verification.finish(&self.checks, self.written) {
            return Err(self.refuse(reason));
        }
        loop {
            timer.check_abort()?;
            if self.flash.done().map_err(|_| Error::Flash)? {
                break;
            }
            timer.sleep(FOTA_DONE_POLL_MS)?;
        }
        if self.flash.can_read() {
            self.read_back(timer, buf)?;
        }
        self.stage = Stage::None;
        self.flash.end(true).map_err(|_| Error::Flash)
    }

    /// Reads the whole image back through the read hook and compares its
    /// digest with the one of the bytes written: a flash that mis-programs is
    /// caught before boot. Costs one read of the image, no RAM but `buf`.
    fn read_back<C: Clock>(&mut self, timer: &Timer<'_, C>, buf: &mut [u8]) -> Result<(), Error> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let mut offset = 0u32;
        while offset < self.written {
            timer.check_abort()?;
            let n = buf.len().min((self.written - offset) as usize);
            let piece = buf
                .get_mut(..n)
                .filter(|p| !p.is_empty())
                .ok_or(Error::Flash)?;
            self.flash.read(offset, piece).map_err(|_| Error::Flash)?;
            hasher.update(&*piece);
            offset += n as u32;
        }
        let read: [u8; 32] = hasher.finalize().into();
        if Some(read) != self.verification.digest() {
            return Err(self.refuse(Reason::Readback));
        }
        Ok(())
    }

    /// Ends an open image with `end(false)` and forgets it.
    pub(crate) fn discard(&mut self) {
        if self.stage == Stage::Open {
            let _ = self.flash.end(false);
        }
        self.stage = Stage::None;
        self.written = 0;
        self.total = 0;
        self.identity = Identity::Unproven;
    }
}
