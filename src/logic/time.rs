// SPDX-License-Identifier: GPL-2.0

//! Wrapping time: the one home of the serial comparisons on the module's clocks (RFC 1982, as
//! the kernel's `time_after_eq()`). Entries keep their times as the low 32 bits of a clock (the
//! microsecond timeout clock, jiffies for the reply limiter), so every comparison and every
//! conversion back to 64 bits goes through here. Sequence numbers and TCP timestamps wrap too,
//! with their own rules (RFC 9293, RFC 7323): `seq.rs`.

/// `a` is at or after `b` on a wrapping 32-bit clock: they are less than 2^31 apart.
pub(crate) fn after_eq32(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// The earlier of two times on a wrapping 32-bit clock.
pub(crate) fn earliest32(a: u32, b: u32) -> u32 {
    if after_eq32(a, b) {
        b
    } else {
        a
    }
}

/// The 64-bit value of a 32-bit stamp taken within 2^31 ticks of `now`.
pub(crate) fn widen(stamp: u32, now: u64) -> u64 {
    let delta = stamp.wrapping_sub(now as u32) as i32;
    now.wrapping_add(delta as i64 as u64)
}

/// Ticks from `now` until `then` on a wrapping 32-bit clock, 0 if `then` has passed.
pub(crate) fn until32(then: u32, now: u32) -> u32 {
    let left = then.wrapping_sub(now) as i32;
    left.max(0) as u32
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_time))]
mod tests {
    use super::*;

    #[test]
    fn after_eq_wraps() {
        assert!(after_eq32(5, 0xffff_fff0));
        assert!(!after_eq32(0xffff_fff0, 5));
        assert!(after_eq32(7, 7));
        assert_eq!(earliest32(5, 0xffff_fff0), 0xffff_fff0);
        assert_eq!(earliest32(3, 9), 3);
    }

    #[test]
    fn widen_recovers_nearby_stamps() {
        let now = 0x1_0000_0010u64;
        assert_eq!(widen(0x20, now), 0x1_0000_0020);
        assert_eq!(widen(0x05, now), 0x1_0000_0005);
        // Just before the 32-bit wrap of the low half.
        assert_eq!(widen(0xffff_fff0, now), 0x0_ffff_fff0);
    }

    #[test]
    fn until_clamps_at_zero_and_wraps() {
        assert_eq!(until32(10, 4), 6);
        assert_eq!(until32(4, 10), 0);
        assert_eq!(until32(0x10, 0xffff_fff0), 0x20);
    }
}
