//! The image in the update area: begun from byte 0, checked and written in
//! order, finished, read back and committed, or discarded; and what a
//! continuation (a `206` answer to `Range: bytes=N-`) must prove to be
//! appended to it.
//!
//! This is the only code that calls the flash hooks, so the rule "`end(true)`
//! only for a complete image that passed every check" lives in one place; the
//! checks themselves are in [`crate::verify`]. With the platform's state
//! hooks it also keeps the resume record ([`crate::resume`]): saved every
//! `state_interval` bytes and when a failure leaves the image for a later
//! request, forgotten before `end`, and taken up again by a later request
//! (after a reboot) with `reopen`.

use crate::hooks::{Clock, Flash};
use crate::http::Head;
use crate::options::{FOTA_DONE_POLL_MS, FOTA_VALIDATOR_MAX};
use crate::result::Error;
use crate::resume::{Record, FOTA_STATE_RECORD_MAX};
use crate::timer::Timer;
use crate::verify::{Checks, Reason, Verification};

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

/// The resume record of this request in the platform's state slots.
struct Persist {
    /// The request's identity ([`crate::resume::request_id`]).
    id: [u8; 32],
    /// Sequence number of the newest record in the slots (0: none).
    seq: u32,
    /// The slot that holds it (the next save goes to the other one).
    slot: u32,
    /// Whether the newest record is live (an image may be taken up).
    live: bool,
    /// The image length at which the next save is due.
    due: u32,
    /// Bytes between two saves.
    interval: u32,
    /// Successful saves (records and tombstones).
    saves: u32,
}

impl Persist {
    /// Reads both slots (into `buf`, room for two records) and returns the
    /// bookkeeping of the request `id` with the newest record, if any.
    fn load<'b, F: Flash>(
        flash: &mut F,
        id: [u8; 32],
        interval: u32,
        buf: &'b mut [u8],
    ) -> (Persist, Option<Record<'b>>) {
        let (a, b) = buf.split_at_mut(FOTA_STATE_RECORD_MAX.min(buf.len()));
        let (first, second) = (load(flash, 0, a), load(flash, 1, b));
        let newest = match (first, second) {
            (Some(x), Some(y)) => Some(if y.1.seq > x.1.seq { y } else { x }),
            (x, y) => x.or(y),
        };
        let persist = Persist {
            id,
            seq: newest.map_or(0, |(_, r)| r.seq),
            // With no record, the first save goes to slot 0.
            slot: newest.map_or(1, |(slot, _)| slot),
            live: newest.is_some_and(|(_, r)| r.live),
            due: interval,
            interval,
            saves: 0,
        };
        (persist, newest.map(|(_, r)| r))
    }

    /// Writes an encoded record (`seq`, `live`) into the slot that does not
    /// hold the newest record; with `anywhere`, if that fails, over the
    /// newest too (a tombstone must land somewhere). Returns whether a slot
    /// took it.
    fn store<F: Flash>(
        &mut self,
        flash: &mut F,
        data: &[u8],
        seq: u32,
        live: bool,
        anywhere: bool,
    ) -> bool {
        let other = 1 - self.slot.min(1);
        let tries = [other, self.slot];
        for &slot in tries.iter().take(1 + usize::from(anywhere)) {
            if flash.state_save(slot, data).is_ok() {
                self.saves = self.saves.wrapping_add(1);
                self.seq = seq;
                self.slot = slot;
                self.live = live;
                return true;
            }
        }
        false
    }

    /// Writes a tombstone over a live record. Returns false when no slot
    /// took it. Not inlined: its record buffer is on the stack only while
    /// it runs, not in every frame that might call it.
    #[inline(never)]
    fn forget<F: Flash>(&mut self, flash: &mut F) -> bool {
        if !self.live {
            return true;
        }
        let seq = self.seq.wrapping_add(1);
        let mut buf = [0u8; FOTA_STATE_RECORD_MAX];
        let data = Record::tombstone(seq)
            .encode(&mut buf)
            .and_then(|n| buf.get(..n));
        data.is_some_and(|data| self.store(flash, data, seq, false, true))
    }
}

/// Forgets the resume record in the platform's state slots, if there is a
/// live one (`fota_state_discard()`). Errors: `Flash` when no slot took the
/// tombstone.
pub(crate) fn discard_record<F: Flash>(flash: &mut F) -> Result<(), Error> {
    if !flash.can_persist() {
        return Ok(());
    }
    let mut buf = [0u8; 2 * FOTA_STATE_RECORD_MAX];
    let (mut persist, _) = Persist::load(flash, [0; 32], 0, &mut buf);
    if persist.forget(flash) {
        Ok(())
    } else {
        Err(Error::Flash)
    }
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
    /// `None`: no state hooks, nothing outlives the request.
    persist: Option<Persist>,
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
            persist: None,
        }
    }

    /// Whether the platform gave the state hooks and `reopen`.
    pub(crate) fn persistent(&self) -> bool {
        self.flash.can_persist()
    }

    /// Successful state saves so far.
    pub(crate) fn saves(&self) -> u32 {
        self.persist.as_ref().map_or(0, |p| p.saves)
    }

    /// Looks in the state slots for a record of the request `id` (see
    /// [`crate::resume::request_id`]) and takes up the image it describes:
    /// `reopen`, then the bytes the platform kept are read back through the
    /// checks, so that the digest and the MCUboot reader cover them as if
    /// they had just arrived. Returns where the image continues (`None`:
    /// from byte 0). A record of another request, or one that cannot be
    /// taken up, is forgotten. Without state hooks, does nothing; records
    /// are saved every `interval` bytes from now on. `buf` is room to read
    /// into (at least two records). Errors: `Aborted` or `Timeout` while
    /// the kept bytes are read back (the image stays taken up, so that the
    /// failure keeps the record as it does after a drop). Not inlined: a
    /// request without state hooks does not carry its frame.
    #[inline(never)]
    pub(crate) fn resume<C: Clock>(
        &mut self,
        id: [u8; 32],
        interval: u32,
        timer: &Timer<'_, C>,
        buf: &mut [u8],
    ) -> Result<Option<u32>, Error> {
        if !self.flash.can_persist() {
            return Ok(None);
        }
        let (persist, newest) = Persist::load(self.flash, id, interval, buf);
        self.persist = Some(persist);
        let taken = newest
            .filter(|r| r.live && r.id == id)
            .and_then(|r| self.take_up(&r));
        let Some(offset) = taken else {
            // Nothing to take up: forget the record (and end an image
            // reopened in vain).
            self.discard();
            return Ok(None);
        };
        if let Some(p) = &mut self.persist {
            p.due = offset.saturating_add(interval);
        }
        match self.rebuild(timer, buf) {
            Ok(()) => Ok(Some(offset)),
            Err(e @ (Error::Aborted | Error::Timeout)) => {
                self.written = offset;
                Err(e)
            }
            // The kept bytes do not read back, or fail a check: from byte 0.
            Err(_) => {
                self.refused = Reason::None;
                self.discard();
                Ok(None)
            }
        }
    }

    /// `reopen` for a live record of this request; the bytes the platform
    /// keeps, when the image can continue from there.
    fn take_up(&mut self, record: &Record<'_>) -> Option<u32> {
        let total = record.total;
        let fits = total > 0
            && (self.max_len == 0 || total <= self.max_len)
            && self.checks.length(Some(total)).is_ok();
        let slot = self.validator.get_mut(..record.validator.len())?;
        if !fits || record.validator.is_empty() || record.offset >= total {
            return None;
        }
        slot.copy_from_slice(record.validator);
        let read_back = self.flash.can_read();
        let verification = Verification::new(&self.checks, record.digest, read_back);
        // Without a read hook, a digest of the first bytes cannot be rebuilt.
        if verification.hashes() && !read_back {
            return None;
        }
        let kept = self.flash.reopen(total, record.offset).ok()?;
        if kept == 0 {
            return None;
        }
        // Open from here on: a refusal below ends it with end(false).
        self.stage = Stage::Open;
        let granularity = self.flash.granularity();
        if kept >= total || (granularity != 0 && kept % granularity != 0) {
            return None;
        }
        self.verification = verification;
        self.total = total;
        self.identity = Identity::Kept(record.validator.len());
        self.written = kept;
        Some(kept)
    }

    /// Feeds the first `written` bytes, read back from flash, through the
    /// checks (nothing is read when nothing hashes them).
    fn rebuild<C: Clock>(&mut self, timer: &Timer<'_, C>, buf: &mut [u8]) -> Result<(), Error> {
        let kept = self.written;
        if !self.verification.hashes() {
            return Ok(());
        }
        self.written = 0;
        while self.written < kept {
            timer.check_abort()?;
            timer.left()?;
            let n = buf.len().min((kept - self.written) as usize);
            let piece = buf
                .get_mut(..n)
                .filter(|p| !p.is_empty())
                .ok_or(Error::Flash)?;
            self.flash
                .read(self.written, piece)
                .map_err(|_| Error::Flash)?;
            self.written = self.admit(piece)?;
        }
        Ok(())
    }

    /// Saves a live record of the image at its durable offset (whole blocks,
    /// short of the end). Returns that offset when the save succeeded. Not
    /// inlined, for the same reason as [`Persist::forget`].
    #[inline(never)]
    fn save(&mut self) -> Option<u32> {
        let granularity = self.flash.granularity().max(1);
        let offset = self.written.min(self.total.saturating_sub(1));
        let offset = offset - offset % granularity;
        if self.resume_from().is_none() || offset == 0 {
            return None;
        }
        let (Some(p), Some(validator)) = (&self.persist, self.if_range()) else {
            return None;
        };
        let record = Record {
            seq: p.seq.wrapping_add(1),
            live: true,
            id: p.id,
            total: self.total,
            offset,
            digest: self.verification.server_digest(),
            validator,
        };
        let mut buf = [0u8; FOTA_STATE_RECORD_MAX];
        let n = record.encode(&mut buf)?;
        let (seq, data) = (record.seq, buf.get(..n)?);
        let p = self.persist.as_mut()?;
        p.store(self.flash, data, seq, true, false)
            .then_some(offset)
    }

    /// Forgets a live record (before the image it names is ended).
    fn forget(&mut self) {
        if let Some(p) = &mut self.persist {
            p.forget(self.flash);
        }
    }

    /// After each write: a save once `interval` bytes passed since the
    /// last attempt.
    fn checkpoint(&mut self) {
        let written = self.written;
        let Some(p) = self.persist.as_mut().filter(|p| written >= p.due) else {
            return;
        };
        p.due = written.saturating_add(p.interval);
        self.save();
    }

    /// After a failure a later request may cure (a lost connection, a
    /// timeout, an abort): saves the record and leaves the image for
    /// `reopen`, without `end`. Returns the offset saved, or `None` (having
    /// done nothing) when the image cannot be taken up later: the caller
    /// then discards it.
    pub(crate) fn suspend(&mut self) -> Option<u32> {
        let offset = self.save()?;
        self.stage = Stage::None;
        self.written = 0;
        self.total = 0;
        self.identity = Identity::Unproven;
        Some(offset)
    }

    /// Length announced for the image (0: unknown).
    pub(crate) fn total(&self) -> u32 {
        self.total
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
        if self.persist.as_ref().is_some_and(|p| p.live) {
            // The record could not be forgotten and still names the old
            // bytes: a new image must not take their place.
            return Err(Error::Flash);
        }
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
        let next = self.admit(data)?;
        if self.stage == Stage::AwaitingHeader {
            self.flash.init(self.total).map_err(|_| Error::Flash)?;
            self.stage = Stage::Open;
        }
        self.flash
            .write(self.written, data)
            .map_err(|_| Error::Flash)?;
        self.written = next;
        self.checkpoint();
        Ok(next)
    }

    /// Checks the next bytes of the image (after the first `written`) and
    /// feeds them to the verification; returns the length they bring the
    /// image to. Writes nothing.
    fn admit(&mut self, data: &[u8]) -> Result<u32, Error> {
        if self.stage == Stage::None {
            return Err(Error::Response);
        }
        if self.written == 0 && self.checks.signed() {
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
        Ok(next)
    }

    /// Whether every announced byte arrived (with an unknown length: any).
    /// (`image_len`, when given, is checked with the other checks.)
    fn complete(&self) -> bool {
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
        // The record goes first: power lost between the two costs a new
        // download, never a record that names a committed area.
        self.forget();
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

    /// Forgets the resume record, ends an open image with `end(false)` and
    /// forgets it.
    pub(crate) fn discard(&mut self) {
        self.forget();
        if self.stage == Stage::Open {
            let _ = self.flash.end(false);
        }
        self.stage = Stage::None;
        self.written = 0;
        self.total = 0;
        self.identity = Identity::Unproven;
        if let Some(p) = &mut self.persist {
            p.due = p.interval;
        }
    }
}

/// Reads state slot `slot` into `room` and decodes it: `None` when the slot
/// is empty, unreadable, torn or corrupted.
fn load<'b, F: Flash>(flash: &mut F, slot: u32, room: &'b mut [u8]) -> Option<(u32, Record<'b>)> {
    let room = room.get_mut(..FOTA_STATE_RECORD_MAX)?;
    let n = flash.state_load(slot, room).ok()?;
    let record = Record::decode(room.get(..n)?)?;
    Some((slot, record))
}
