//! Log lines assembled without `core::fmt` (which costs kilobytes of flash).

use crate::decimal::{decimal, U32_DIGITS};

/// A log line assembled without `core::fmt`, truncated at its capacity.
pub(crate) struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    pub(crate) fn new() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    pub(crate) fn from(text: &str) -> Self {
        let mut line = Line::new();
        line.push(text);
        line
    }

    pub(crate) fn push(&mut self, text: &str) {
        for (slot, byte) in self.buf.iter_mut().skip(self.len).zip(text.bytes()) {
            *slot = byte;
            self.len += 1;
        }
    }

    pub(crate) fn push_num(&mut self, n: u32) {
        self.push(decimal(n, &mut [0; U32_DIGITS]));
    }

    pub(crate) fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            // Truncation split a UTF-8 sequence: keep the valid prefix.
            Err(e) => bytes
                .get(..e.valid_up_to())
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }
}
