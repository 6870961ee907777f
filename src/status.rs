//! The live figures of the running request, readable from any task.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// Request states reported by `fota_get_progress()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Idle = 0,
    Connecting = 1,
    Sending = 2,
    ReceivingHead = 3,
    Downloading = 4,
    Finishing = 5,
    WaitingRetry = 6,
}

/// Live figures of the running request, readable from any task (atomics).
pub struct Status {
    state: AtomicU32,
    written: AtomicU32,
    total: AtomicU32,
    retries: AtomicU32,
    http_status: AtomicU32,
    platform_code: AtomicI32,
    verify_reason: AtomicU32,
    resumed_from: AtomicU32,
    state_saves: AtomicU32,
    abort: AtomicBool,
    running: AtomicBool,
}

/// A copy of [`Status`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub state: u32,
    pub written: u32,
    pub total: u32,
    pub retries: u32,
    pub http_status: u32,
    pub platform_code: i32,
    pub verify_reason: u32,
    /// Where the image was taken up from a resume record (0: it was not).
    pub resumed_from: u32,
    /// Resume records (and tombstones) saved by the request.
    pub state_saves: u32,
}

impl Status {
    /// All zero, idle.
    pub const fn new() -> Self {
        Status {
            state: AtomicU32::new(0),
            written: AtomicU32::new(0),
            total: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            http_status: AtomicU32::new(0),
            platform_code: AtomicI32::new(0),
            verify_reason: AtomicU32::new(0),
            resumed_from: AtomicU32::new(0),
            state_saves: AtomicU32::new(0),
            abort: AtomicBool::new(false),
            running: AtomicBool::new(false),
        }
    }

    /// Current figures.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            http_status: self.http_status.load(Ordering::Relaxed),
            platform_code: self.platform_code.load(Ordering::Relaxed),
            verify_reason: self.verify_reason.load(Ordering::Relaxed),
            resumed_from: self.resumed_from.load(Ordering::Relaxed),
            state_saves: self.state_saves.load(Ordering::Relaxed),
        }
    }

    /// Asks the running request to stop; a no-op when none runs.
    pub fn request_abort(&self) {
        if self.running.load(Ordering::Acquire) {
            self.abort.store(true, Ordering::Release);
        }
    }

    pub(crate) fn begin(&self) {
        self.abort.store(false, Ordering::Release);
        self.written.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.retries.store(0, Ordering::Relaxed);
        self.http_status.store(0, Ordering::Relaxed);
        self.platform_code.store(0, Ordering::Relaxed);
        self.verify_reason.store(0, Ordering::Relaxed);
        self.resumed_from.store(0, Ordering::Relaxed);
        self.state_saves.store(0, Ordering::Relaxed);
        self.set_state(State::Idle);
        self.running.store(true, Ordering::Release);
    }

    pub(crate) fn finish(&self) {
        self.running.store(false, Ordering::Release);
        self.abort.store(false, Ordering::Release);
        self.set_state(State::Idle);
    }

    pub(crate) fn set_state(&self, state: State) {
        self.state.store(state as u32, Ordering::Relaxed);
    }

    pub(crate) fn set_written(&self, written: u32) {
        self.written.store(written, Ordering::Relaxed);
    }

    /// A new image of `total` bytes (0: unknown), nothing written yet.
    pub(crate) fn set_image(&self, total: u32) {
        self.total.store(total, Ordering::Relaxed);
        self.written.store(0, Ordering::Relaxed);
    }

    pub(crate) fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn set_retries(&self, retries: u32) {
        self.retries.store(retries, Ordering::Relaxed);
    }

    pub(crate) fn set_http_status(&self, status: u16) {
        self.http_status.store(u32::from(status), Ordering::Relaxed);
    }

    pub(crate) fn set_verify_reason(&self, reason: u32) {
        self.verify_reason.store(reason, Ordering::Relaxed);
    }

    pub(crate) fn set_resumed_from(&self, offset: u32) {
        self.resumed_from.store(offset, Ordering::Relaxed);
    }

    pub(crate) fn set_state_saves(&self, saves: u32) {
        self.state_saves.store(saves, Ordering::Relaxed);
    }

    pub(crate) fn set_platform_code(&self, code: i32) {
        self.platform_code.store(code, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

impl Default for Status {
    fn default() -> Self {
        Self::new()
    }
}
