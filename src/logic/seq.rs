// SPDX-License-Identifier: GPL-2.0

//! Wrapping comparison of TCP sequence numbers and timestamps.
//!
//! Both live in a 32-bit space that wraps (RFC 9293 §3.4, RFC 7323 §5.3), so "later" means
//! "less than 2^31 ahead". `seq_after` is the seed's `SEQ_GT` and Linux's `after()`;
//! `seq_before` is `SEQ_LT` and Linux's `before()`.
//!
//! At exactly 2^31 apart the answer is a convention, not a fact. We follow FreeBSD (and
//! docs/behaviour.md's notation `after(a, b) = (a - b) as i32 > 0`): `seq_before(a, b)` is true and
//! `seq_after(a, b)` is false for both orders. Linux's `after()` is `before()` with the arguments
//! swapped, so it answers true there; the difference is one value in 2^32 and cannot matter for
//! a TIME_WAIT decision.

/// Signed distance from `b` to `a` in the wrapping 32-bit space.
#[inline]
fn distance(a: u32, b: u32) -> i32 {
    // Reinterpreting the wrapped difference as signed is the whole trick (RFC 1982 style).
    a.wrapping_sub(b) as i32
}

/// `a` is strictly later than `b` (seed `SEQ_GT`, Linux `after(a, b)`).
#[inline]
pub(crate) fn seq_after(a: u32, b: u32) -> bool {
    distance(a, b) > 0
}

/// `a` is strictly earlier than `b` (seed `SEQ_LT`, Linux `before(a, b)`).
#[inline]
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    distance(a, b) < 0
}

/// `a` is `b` or later (seed `SEQ_GEQ`).
#[inline]
pub(crate) fn seq_geq(a: u32, b: u32) -> bool {
    distance(a, b) >= 0
}

/// `a` is `b` or earlier (seed `SEQ_LEQ`).
#[inline]
pub(crate) fn seq_leq(a: u32, b: u32) -> bool {
    distance(a, b) <= 0
}

/// Timestamp `a` is strictly later than `b` (seed `TSTMP_GT`, RFC 7323 §5.3).
#[inline]
pub(crate) fn ts_after(a: u32, b: u32) -> bool {
    distance(a, b) > 0
}

/// Timestamp `a` is strictly earlier than `b` (seed `TSTMP_LT`; the PAWS test of RFC 7323 §5.3).
#[inline]
pub(crate) fn ts_before(a: u32, b: u32) -> bool {
    distance(a, b) < 0
}

/// Timestamp `a` is `b` or later (seed `TSTMP_GEQ`).
#[inline]
pub(crate) fn ts_geq(a: u32, b: u32) -> bool {
    distance(a, b) >= 0
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_seq))]
mod tests {
    use super::*;

    #[test]
    fn after_wraps() {
        assert!(seq_after(1, 0xffff_fff0));
        assert!(seq_after(0, 0xffff_ffff));
        assert!(!seq_after(5, 5));
        assert!(!seq_after(0xffff_fff0, 1));
    }

    #[test]
    fn before_wraps() {
        assert!(seq_before(0xffff_fff0, 1));
        assert!(seq_before(0xffff_ffff, 0));
        assert!(!seq_before(5, 5));
        assert!(!seq_before(1, 0xffff_fff0));
    }

    #[test]
    fn plain_order_without_wrap() {
        assert!(seq_after(1000, 999));
        assert!(seq_before(999, 1000));
        assert!(!seq_after(999, 1000));
        assert!(!seq_before(1000, 999));
    }

    #[test]
    fn geq_leq_include_equality() {
        assert!(seq_geq(7, 7));
        assert!(seq_leq(7, 7));
        assert!(seq_geq(3, 0xffff_fffe));
        assert!(!seq_geq(0xffff_fffe, 3));
        assert!(seq_leq(0xffff_fffe, 3));
        assert!(!seq_leq(3, 0xffff_fffe));
    }

    #[test]
    fn half_space_boundary() {
        // 2^31 - 1 ahead is still "after"; exactly 2^31 is "before" in both orders (FreeBSD).
        assert!(seq_after(0x7fff_ffff, 0));
        assert!(seq_before(0, 0x7fff_ffff));
        assert!(!seq_after(0x8000_0000, 0));
        assert!(!seq_after(0, 0x8000_0000));
        assert!(seq_before(0x8000_0000, 0));
        assert!(seq_before(0, 0x8000_0000));
    }

    #[test]
    fn after_and_before_are_mirror_images() {
        let pairs: [(u32, u32); 6] = [
            (0, 1),
            (1, 0),
            (0xffff_ffff, 0),
            (0x1234_5678, 0x9abc_def0),
            (0x7fff_fff0, 0x8000_0010),
            (42, 42),
        ];
        for (a, b) in pairs {
            assert_eq!(seq_after(a, b), seq_before(b, a));
            assert_eq!(seq_geq(a, b), !seq_before(a, b));
            assert_eq!(seq_leq(a, b), !seq_after(a, b));
        }
    }

    #[test]
    fn timestamps_wrap_like_sequence_numbers() {
        assert!(ts_after(3, 0xffff_fff0));
        assert!(ts_before(0xffff_fff0, 3));
        assert!(!ts_before(3, 0xffff_fff0));
        assert!(ts_geq(9, 9));
        assert!(ts_geq(2, 0xffff_ffff));
        assert!(!ts_geq(0xffff_ffff, 2));
        assert!(!ts_after(9, 9));
    }
}
