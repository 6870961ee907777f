//! Waiting within limits: the overall deadline, the idle timeout and the
//! abort flag, applied to every send and receive. Shared by the session and
//! the TLS layer, which waits on the same limits inside its handshake.

use core::cell::Cell;

use crate::hooks::{Clock, Received, Stream};
use crate::options::{FOTA_ABORT_SLICE_MS, FOTA_IDLE_POLL_MS};
use crate::result::Error;
use crate::status::Status;

/// The limits of one request.
pub(crate) struct Timer<'a, C: Clock> {
    clock: &'a C,
    status: &'a Status,
    start: u32,
    timeout_ms: u32,
    idle_timeout_ms: u32,
    /// Milliseconds known to have passed in waits and sleeps: keeps the
    /// deadline even when the clock hook does not advance.
    spent_ms: Cell<u32>,
}

/// Time without progress on one stream operation.
pub(crate) struct Idle {
    since: u32,
    waited_ms: u32,
}

impl<'a, C: Clock> Timer<'a, C> {
    /// Starts the clock of a request.
    pub(crate) fn start(
        clock: &'a C,
        status: &'a Status,
        timeout_ms: u32,
        idle_timeout_ms: u32,
    ) -> Self {
        Timer {
            clock,
            status,
            start: clock.now_ms(),
            timeout_ms,
            idle_timeout_ms,
            spent_ms: Cell::new(0),
        }
    }

    /// Milliseconds left before the overall deadline, or `Timeout`.
    pub(crate) fn left(&self) -> Result<u32, Error> {
        let used = self
            .clock
            .now_ms()
            .wrapping_sub(self.start)
            .max(self.spent_ms.get());
        match self.timeout_ms.checked_sub(used) {
            Some(left) if left > 0 => Ok(left),
            _ => Err(Error::Timeout),
        }
    }

    /// The longest a connect may take: the idle timeout, within the deadline.
    pub(crate) fn connect_timeout(&self) -> Result<u32, Error> {
        Ok(self.left()?.min(self.idle_timeout_ms))
    }

    /// Records `ms` spent waiting.
    fn spent(&self, ms: u32) {
        self.spent_ms.set(self.spent_ms.get().saturating_add(ms));
    }

    /// Sleeps `ms` in abort slices, within the deadline.
    pub(crate) fn sleep(&self, mut ms: u32) -> Result<(), Error> {
        while ms > 0 {
            self.check_abort()?;
            let slice = ms.min(FOTA_ABORT_SLICE_MS).min(self.left()?);
            self.clock.sleep_ms(slice);
            self.spent(slice);
            ms -= slice;
        }
        Ok(())
    }

    /// The date (the request's own hook): certificate validity, `Retry-After` dates.
    pub(crate) fn unix_time(&self) -> Option<u64> {
        self.clock.unix_time()
    }

    pub(crate) fn check_abort(&self) -> Result<(), Error> {
        if self.status.aborted() {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }

    /// A fresh idle period, starting now.
    pub(crate) fn idle(&self) -> Idle {
        Idle {
            since: self.clock.now_ms(),
            waited_ms: 0,
        }
    }

    /// Timeout for the next wait: at most one abort slice, within the idle
    /// timeout and the overall deadline.
    pub(crate) fn wait(&self, idle: &Idle) -> Result<u32, Error> {
        self.check_abort()?;
        let left = self.left()?;
        let idle_used = self
            .clock
            .now_ms()
            .wrapping_sub(idle.since)
            .max(idle.waited_ms);
        match self.idle_timeout_ms.checked_sub(idle_used) {
            Some(idle_left) if idle_left > 0 => Ok(left.min(idle_left).min(FOTA_ABORT_SLICE_MS)),
            _ => Err(Error::Timeout),
        }
    }

    /// Charges a wait of up to `wait` ms that began at `began` and ended
    /// with nothing moved. The clock says how long it took: a hook may give
    /// up sooner than its timeout (a non-blocking socket), and then the task
    /// pauses `FOTA_IDLE_POLL_MS` rather than spin. Only when the clock has
    /// not moved at all, even over that pause, is the whole slice charged,
    /// so that a stuck clock still ends in a timeout.
    pub(crate) fn waited(&self, idle: &mut Idle, began: u32, wait: u32) {
        let mut took = self.clock.now_ms().wrapping_sub(began);
        let mut slept = 0;
        if took < wait {
            slept = FOTA_IDLE_POLL_MS.min(wait - took);
            self.clock.sleep_ms(slept);
            took = self.clock.now_ms().wrapping_sub(began);
        }
        let charged = if took == 0 { wait } else { took.max(slept) };
        idle.waited_ms = idle.waited_ms.saturating_add(charged);
        self.spent(charged);
    }

    /// The clock, read before a wait is handed to [`Timer::waited`].
    pub(crate) fn now(&self) -> u32 {
        self.clock.now_ms()
    }

    /// Sends all of `data`, waiting in slices.
    pub(crate) fn send_all<S: Stream + ?Sized>(
        &self,
        stream: &mut S,
        mut data: &[u8],
    ) -> Result<(), Error> {
        let mut idle = self.idle();
        while !data.is_empty() {
            let wait = self.wait(&idle)?;
            let began = self.now();
            match stream.send(data, wait)? {
                0 => self.waited(&mut idle, began, wait),
                n => {
                    data = data.get(n..).ok_or(Error::Disconnected)?;
                    idle = self.idle();
                }
            }
        }
        Ok(())
    }

    /// Receives into `buf`, waiting in slices: `Some(n)` bytes, or `None`
    /// when the peer closed.
    pub(crate) fn receive<S: Stream + ?Sized>(
        &self,
        stream: &mut S,
        buf: &mut [u8],
        idle: &mut Idle,
    ) -> Result<Option<usize>, Error> {
        loop {
            let wait = self.wait(idle)?;
            let began = self.now();
            match stream.recv(buf, wait)? {
                Received::Data(n) => {
                    *idle = self.idle();
                    return Ok(Some(n));
                }
                Received::Idle => self.waited(idle, began, wait),
                Received::Closed => return Ok(None),
            }
        }
    }
}
