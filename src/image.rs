//! The image in the update area: begun from byte 0, written in order,
//! finished and committed, or discarded; and what a continuation (a `206`
//! answer to `Range: bytes=N-`) must prove to be appended to it.
//!
//! This is the only code that calls the flash hooks, so the rule "`end(true)`
//! only for a complete image that passed every check" lives in one place.

use crate::hooks::{Clock, Flash};
use crate::http::Head;
use crate::options::FOTA_DONE_POLL_MS;
use crate::result::Error;
use crate::timer::Timer;

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

/// The image in the update area, across the connections of one request.
pub(crate) struct Image<'f, F: Flash> {
    flash: &'f mut F,
    /// Most bytes the area holds (0: no limit).
    max_len: u32,
    /// `init` succeeded and `end` was not called yet.
    open: bool,
    /// Bytes written, in order from 0: where a continuation must start.
    written: u32,
    /// Length announced by the first response (0: unknown).
    total: u32,
    identity: Identity,
    validator: [u8; FOTA_VALIDATOR_MAX],
}

impl<'f, F: Flash> Image<'f, F> {
    pub(crate) fn new(flash: &'f mut F, max_len: u32) -> Self {
        Image {
            flash,
            max_len,
            open: false,
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

    /// Where a new connection may continue the image with `Range`: only a
    /// body of known length whose identity a validator can prove.
    pub(crate) fn resume_from(&self) -> Option<u32> {
        let provable = matches!(self.identity, Identity::Kept(_));
        (self.open && self.total > 0 && self.written > 0 && provable).then_some(self.written)
    }

    /// The validator to send in `If-Range` with a resume request.
    pub(crate) fn if_range(&self) -> Option<&[u8]> {
        match self.identity {
            Identity::Kept(len) => self.validator.get(..len),
            Identity::Unproven => None,
        }
    }

    /// Whether a 206 answer to `Range: bytes=from-` continues this image:
    /// same start, same total, and the same strong validator as the first
    /// response (a missing one proves nothing).
    pub(crate) fn continues(
        &self,
        head: &Head,
        validator: Option<&[u8]>,
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
        range_ok && length_ok && identity_ok
    }

    /// Starts a new image from byte 0: discards a partial one, checks the
    /// announced length (`None`: unknown) against `max_len`, calls `init`,
    /// keeps the validator. Returns the total (0: unknown).
    pub(crate) fn begin(
        &mut self,
        validator: Option<&[u8]>,
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
        self.flash.init(total).map_err(|_| Error::Flash)?;
        self.open = true;
        self.total = total;
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
        self.flash.write(offset, data).map_err(|_| Error::Flash)?;
        self.written = next;
        Ok(next)
    }

    /// Whether every announced byte arrived (with an unknown length: any).
    pub(crate) fn complete(&self) -> bool {
        match self.total {
            0 => self.written > 0,
            total => self.written == total,
        }
    }

    /// Polls `done()` until the flash is finished, then commits.
    pub(crate) fn commit<C: Clock>(&mut self, timer: &Timer<'_, C>) -> Result<(), Error> {
        if !self.open || !self.complete() {
            return Err(Error::Response);
        }
        loop {
            timer.check_abort()?;
            if self.flash.done().map_err(|_| Error::Flash)? {
                break;
            }
            timer.sleep(FOTA_DONE_POLL_MS)?;
        }
        self.open = false;
        self.flash.end(true).map_err(|_| Error::Flash)
    }

    /// Ends an open image with `end(false)` and forgets it.
    pub(crate) fn discard(&mut self) {
        if self.open {
            let _ = self.flash.end(false);
        }
        self.open = false;
        self.written = 0;
        self.total = 0;
        self.identity = Identity::Unproven;
    }
}
