//! The traits the platform implements: the network, the update area in
//! flash, the clock and the rest of the system. They sit at the bottom of the
//! import graph: everything above depends on them, they depend only on the
//! result codes. The FFI layer implements them over the C hook tables; tests
//! implement them with scripted doubles.

use crate::result::Error;

/// What a receive produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// This many bytes were stored at the start of the buffer (at least 1).
    Data(usize),
    /// Nothing arrived within the timeout (maybe sooner: a non-blocking
    /// socket may say so at once).
    Idle,
    /// The peer closed the connection in an orderly way.
    Closed,
}

/// A byte stream to one server: a TCP connection, or TLS on top of it.
pub trait Stream {
    /// Sends some of `data`; `Ok(0)` when nothing could be sent within the timeout.
    fn send(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, Error>;
    /// Receives into `buf`. A broken connection is `Err(Disconnected)`.
    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error>;
}

/// TCP connections, one at a time.
pub trait Transport: Stream {
    /// Opens a connection. Errors: `Connect`.
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u32) -> Result<(), Error>;
    /// Closes the connection; called once after every successful `connect`.
    fn close(&mut self);
}

/// Time: a monotonic millisecond clock, a way to wait, and the date.
pub trait Clock {
    /// Milliseconds from a monotonic clock; wraps around.
    fn now_ms(&self) -> u32;
    /// Blocks the calling task for `ms` milliseconds.
    fn sleep_ms(&self, ms: u32);
    /// Seconds since 1970 for certificate validity checks, `None` when the
    /// date is unknown (validity is then not checked).
    fn unix_time(&self) -> Option<u64> {
        None
    }
}

/// The update area in flash.
pub trait Flash {
    /// Write granularity: 0 for any, else a power of two up to
    /// [`crate::options::FOTA_WRITE_GRANULARITY_MAX`]; writes are then whole
    /// aligned blocks except the last.
    fn granularity(&self) -> u32;
    /// Prepares the area for an image of `image_len` bytes (0 = unknown).
    fn init(&mut self, image_len: u32) -> Result<(), Error>;
    /// Writes `data` at `offset` from the start of the image.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error>;
    /// `Ok(true)` when the area is finished, `Ok(false)` while still busy.
    fn done(&mut self) -> Result<bool, Error>;
    /// Commits the image for the bootloader, or discards it.
    fn end(&mut self, commit: bool) -> Result<(), Error>;
    /// Whether [`Flash::read`] works (the platform gave a read hook).
    fn can_read(&self) -> bool {
        false
    }
    /// Reads `buf.len()` bytes of the image at `offset` back from flash.
    fn read(&mut self, _offset: u32, _buf: &mut [u8]) -> Result<(), Error> {
        Err(Error::Flash)
    }
    /// Whether a download can continue after a reboot: the platform gave
    /// [`Flash::reopen`] and the state slots.
    fn can_persist(&self) -> bool {
        false
    }
    /// Takes up an image left by an earlier request (or boot) instead of
    /// `init`: keeps its first bytes, at least `offset` of them when they are
    /// intact. Returns how many it keeps (0: none, start with `init`).
    fn reopen(&mut self, _image_len: u32, _offset: u32) -> Result<u32, Error> {
        Err(Error::Flash)
    }
    /// Reads state slot `slot` (0 or 1) into `buf`; returns the bytes read
    /// (0: empty).
    fn state_load(&mut self, _slot: u32, _buf: &mut [u8]) -> Result<usize, Error> {
        Err(Error::Flash)
    }
    /// Replaces state slot `slot` with `data`, durably when it returns.
    fn state_save(&mut self, _slot: u32, _data: &[u8]) -> Result<(), Error> {
        Err(Error::Flash)
    }
}

/// Log levels, as passed to the log hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Randomness, log and progress reporting.
pub trait System {
    /// A log line (without a line terminator).
    fn log(&mut self, level: Level, msg: &str);
    /// Called after each flash write with the bytes written so far and the
    /// total (0 if unknown).
    fn progress(&mut self, written: u32, total: u32);
    /// Fills `buf` from a cryptographic random source (TLS needs it).
    /// `Err(InvalidArg)` when the platform has none.
    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error>;
}
