//! Decimal digits by hand: `core::fmt` costs kilobytes of flash, and 32-bit
//! arithmetic avoids pulling in 64-bit division on 32-bit cores.

/// Room for the digits of any `u32`.
pub(crate) const U32_DIGITS: usize = 10;

/// The decimal digits of `n` (no leading zeros; "0" for 0), in `buf`.
pub(crate) fn decimal(mut n: u32, buf: &mut [u8; U32_DIGITS]) -> &str {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        // `n % 10` is below 10: the cast keeps it whole.
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(start..)
        .and_then(|d| core::str::from_utf8(d).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        let mut buf = [0; U32_DIGITS];
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (10, "10"),
            (8080, "8080"),
            (u32::MAX, "4294967295"),
        ] {
            assert_eq!(decimal(n, &mut buf), text);
        }
    }
}
