// SPDX-License-Identifier: GPL-2.0

//! Test fixtures shared by the KUnit suites of this folder: the incoming segments the tests
//! decide on, answer and parse back. Compiled only with the suites (`CONFIG_KUNIT=y` in the
//! kernel, always in the host harness), like them free of kernel bindings.

use crate::logic::segment::{Family, TcpSegment, Timestamp};

/// 10.0.0.1, the peer.
const PEER_V4: [u8; 4] = [10, 0, 0, 1];
/// 10.0.0.2, our end.
const LOCAL_V4: [u8; 4] = [10, 0, 0, 2];
/// 2001:db8::1, the peer.
const PEER_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// 2001:db8::2, our end.
const LOCAL_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv4 address as a segment holds it: in the first 4 of 16 bytes.
const fn v4_in_16(a: [u8; 4]) -> [u8; 16] {
    [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// A unicast segment from the peer 10.0.0.1:40000 to our 10.0.0.2:80: window 100, no
/// timestamps; change what a test needs with struct update syntax or [`with_tsval`].
pub(crate) fn segment_v4(flags: u8, seq: u32, ack: u32, payload_len: u32) -> TcpSegment {
    TcpSegment {
        family: Family::V4,
        src_addr: v4_in_16(PEER_V4),
        dst_addr: v4_in_16(LOCAL_V4),
        src_port: 40000,
        dst_port: 80,
        seq,
        ack,
        flags,
        window: 100,
        payload_len,
        ts: None,
        mcast_or_bcast: false,
    }
}

/// [`segment_v4`] between 2001:db8::1 (the peer) and 2001:db8::2.
pub(crate) fn segment_v6(flags: u8, seq: u32, ack: u32, payload_len: u32) -> TcpSegment {
    TcpSegment {
        family: Family::V6,
        src_addr: PEER_V6,
        dst_addr: LOCAL_V6,
        ..segment_v4(flags, seq, ack, payload_len)
    }
}

/// `seg` carrying the timestamps option with `tsval` (TSecr 1), or none for `None`.
pub(crate) fn with_tsval(seg: TcpSegment, tsval: Option<u32>) -> TcpSegment {
    TcpSegment {
        ts: tsval.map(|tsval| Timestamp { tsval, tsecr: 1 }),
        ..seg
    }
}
