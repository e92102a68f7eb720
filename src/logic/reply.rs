// SPDX-License-Identifier: GPL-2.0

//! Building the replies the module sends: a bare ACK from the entry's state (the seed's
//! `tcp_twrespond()`, behaviour §4) and a RST answering a segment (Linux's `tcp_v4_send_reset()`).
//!
//! A reply is a complete IP packet, addresses and ports swapped from the incoming segment, with
//! valid IP and TCP checksums, written into a caller buffer of [`REPLY_MAX`] bytes. The caller
//! routes and sends it in the incoming segment's netns.

use crate::logic::segment::{Family, TcpSegment};
use crate::logic::wire::{ACK, IPPROTO_TCP, IPV4_DF, IPV4_HEADER_MIN, IPV6_HEADER_LEN, RST, TCP_HEADER_MIN, TS_BLOCK_HEAD, TS_BLOCK_LEN};
use crate::logic::twcheck::EntryState;

/// The largest reply: IPv6 header, TCP header, NOP NOP TS.
pub(crate) const REPLY_MAX: usize = IPV6_HEADER_LEN + TCP_HEADER_MIN + TS_BLOCK_LEN;


/// The IP header fields of a reply that come from the connection or the route, not from the
/// segment answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpFields {
    /// IPv4 TTL or IPv6 hop limit (the route's).
    pub(crate) hop_limit: u8,
    /// IPv4 TOS or IPv6 traffic class byte, DSCP and ECN.
    pub(crate) dsfield: u8,
    /// IPv6 flow label (20 bits; ignored for IPv4).
    pub(crate) flowlabel: u32,
}

impl IpFields {
    /// DSCP 0, no ECN, no flow label.
    #[cfg_attr(not(rtw_host), allow(dead_code))]
    pub(crate) fn plain(hop_limit: u8) -> Self {
        IpFields { hop_limit, dsfield: 0, flowlabel: 0 }
    }
}

/// The ECN field of the TOS / traffic class byte (RFC 3168 §5).
pub(crate) const ECN_MASK: u8 = 0x03;

/// The TOS byte of an ACK from an entry whose connection used `tos`: Linux's TIME_WAIT sends
/// it as it is, except that the out-of-window and PAWS ACKs (`TCP_TW_ACK_OOW`, the ones the
/// limiter governs) leave ECN out, so they are not queued as L4S traffic (tcp_v4_timewait_ack).
pub(crate) fn ack_dsfield(tos: u8, oow: bool) -> u8 {
    if oow {
        tos & !ECN_MASK
    } else {
        tos
    }
}

/// The TOS byte of a RST: the incoming segment's DSCP, ECN cleared (tcp_v4_send_reset,
/// tcp_v6_send_reset: RFC 3168 §6.1.1 puts no ECN on a RST).
pub(crate) fn rst_dsfield(incoming: u8) -> u8 {
    incoming & !ECN_MASK
}

/// The TCP fields a reply carries.
struct TcpReply {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    ts: Option<(u32, u32)>,
}

/// Builds a bare ACK answering `incoming` and returns its length. `ts` is `(TSval, TSecr)` for
/// connections with timestamps.
pub(crate) fn build_ack(
    buf: &mut [u8; REPLY_MAX],
    incoming: &TcpSegment,
    seq: u32,
    ack: u32,
    win: u16,
    ts: Option<(u32, u32)>,
    ip: IpFields,
) -> usize {
    let reply = TcpReply {
        seq,
        ack,
        flags: ACK,
        window: win,
        ts,
    };
    build(buf, incoming, &reply, ip)
}

/// Builds behaviour §4's ACK for `entry`: `seq = snd_nxt`, `ack = rcv_nxt`, the last advertised
/// window, and with timestamps `TSval = tsval_now` (module clock + the entry's offset) and
/// `TSecr` from [`EntryState::reply_tsecr`].
pub(crate) fn build_entry_ack(
    buf: &mut [u8; REPLY_MAX],
    incoming: &TcpSegment,
    entry: &EntryState,
    tsval_now: u32,
    ip: IpFields,
) -> usize {
    let ts = entry.reply_tsecr().map(|tsecr| (tsval_now, tsecr));
    build_ack(
        buf,
        incoming,
        entry.snd_nxt,
        entry.rcv_nxt,
        entry.last_win,
        ts,
        ip,
    )
}

/// Builds a RST answering `incoming` as Linux's `tcp_v4_send_reset()` does, and returns its
/// length; 0 (send nothing) when `incoming` is itself a RST: RFC 9293 §3.10.7.1 discards a
/// RST rather than answering it. With an ACK in the segment the RST takes its sequence number
/// from that ACK so the peer accepts it; without, it is RST|ACK acknowledging the whole segment
/// (RFC 9293 §3.5.2).
/// No timestamps: Linux sends none, RFC 1323 §4.2.1 recommends none, and the receiver ignores
/// them on a RST anyway (RFC 7323 §5.3 R1).
pub(crate) fn build_rst(buf: &mut [u8; REPLY_MAX], incoming: &TcpSegment, ip: IpFields) -> usize {
    if incoming.has_flag(RST) {
        return 0;
    }
    let reply = if incoming.has_flag(ACK) {
        TcpReply {
            seq: incoming.ack,
            ack: 0,
            flags: RST,
            window: 0,
            ts: None,
        }
    } else {
        TcpReply {
            seq: 0,
            ack: incoming.end_seq(),
            flags: RST | ACK,
            window: 0,
            ts: None,
        }
    };
    build(buf, incoming, &reply, ip)
}

fn build(buf: &mut [u8; REPLY_MAX], incoming: &TcpSegment, reply: &TcpReply, ip: IpFields) -> usize {
    buf.fill(0);
    let ip_len = match incoming.family {
        Family::V4 => IPV4_HEADER_MIN,
        Family::V6 => IPV6_HEADER_LEN,
    };
    let tcp_len = TCP_HEADER_MIN + if reply.ts.is_some() { TS_BLOCK_LEN } else { 0 };
    let total_len = ip_len + tcp_len;
    // The reply goes back where the segment came from.
    let (src, dst) = (&incoming.dst_addr, &incoming.src_addr);

    let tcp = ip_len;
    put(buf, tcp, &incoming.dst_port.to_be_bytes());
    put(buf, tcp + 2, &incoming.src_port.to_be_bytes());
    put(buf, tcp + 4, &reply.seq.to_be_bytes());
    put(buf, tcp + 8, &reply.ack.to_be_bytes());
    // Data offset in 32-bit words in the high nibble; tcp_len is 20 or 32.
    put(buf, tcp + 12, &[((tcp_len / 4) << 4) as u8, reply.flags]);
    put(buf, tcp + 14, &reply.window.to_be_bytes());
    if let Some((tsval, tsecr)) = reply.ts {
        put(buf, tcp + TCP_HEADER_MIN, &TS_BLOCK_HEAD);
        put(buf, tcp + 24, &tsval.to_be_bytes());
        put(buf, tcp + 28, &tsecr.to_be_bytes());
    }
    let segment = buf.get(tcp..total_len).unwrap_or_default();
    let sum = pseudo_header_sum(incoming.family, src, dst, tcp_len).wrapping_add(sum16(segment));
    put(buf, tcp + 16, &(!fold(sum)).to_be_bytes());

    match incoming.family {
        Family::V4 => {
            put(buf, 0, &[0x45, ip.dsfield]);
            // total_len is at most 52 here.
            put(buf, 2, &(total_len as u16).to_be_bytes());
            put(buf, 6, &IPV4_DF.to_be_bytes());
            put(buf, 8, &[ip.hop_limit, IPPROTO_TCP]);
            put(buf, 12, src.get(..4).unwrap_or_default());
            put(buf, 16, dst.get(..4).unwrap_or_default());
            let header = buf.get(..IPV4_HEADER_MIN).unwrap_or_default();
            let header_sum = !fold(sum16(header));
            put(buf, 10, &header_sum.to_be_bytes());
        }
        Family::V6 => {
            // Version 6, traffic class, flow label (RFC 8200 §3).
            let word = (6u32 << 28) | (u32::from(ip.dsfield) << 20) | (ip.flowlabel & 0xf_ffff);
            put(buf, 0, &word.to_be_bytes());
            put(buf, 4, &(tcp_len as u16).to_be_bytes());
            put(buf, 6, &[IPPROTO_TCP, ip.hop_limit]);
            put(buf, 8, src);
            put(buf, 24, dst);
        }
    }
    total_len
}

/// Whether `pkt` (an IPv4 or IPv6 packet carrying TCP directly) has a valid IPv4 header
/// checksum and a valid TCP checksum. Bytes after the IP length are ignored.
pub(crate) fn checksum_ok(pkt: &[u8]) -> bool {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => ipv4_checksums_ok(pkt),
        Some(6) => ipv6_checksum_ok(pkt),
        _ => false,
    }
}

fn ipv4_checksums_ok(pkt: &[u8]) -> bool {
    let Some(h) = pkt.first_chunk::<IPV4_HEADER_MIN>() else {
        return false;
    };
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if header_len < IPV4_HEADER_MIN || total_len < header_len || h[9] != IPPROTO_TCP {
        return false;
    }
    let (Some(header), Some(segment)) = (pkt.get(..header_len), pkt.get(header_len..total_len))
    else {
        return false;
    };
    if fold(sum16(header)) != 0xffff {
        return false;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    put(&mut src, 0, &[h[12], h[13], h[14], h[15]]);
    put(&mut dst, 0, &[h[16], h[17], h[18], h[19]]);
    let sum = pseudo_header_sum(Family::V4, &src, &dst, segment.len()).wrapping_add(sum16(segment));
    fold(sum) == 0xffff
}

fn ipv6_checksum_ok(pkt: &[u8]) -> bool {
    let Some(h) = pkt.first_chunk::<IPV6_HEADER_LEN>() else {
        return false;
    };
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if h[6] != IPPROTO_TCP {
        return false;
    }
    let Some(segment) = pkt.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len) else {
        return false;
    };
    let (Some(src), Some(dst)) = (h.get(8..24), h.get(24..40)) else {
        return false;
    };
    let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) else {
        return false;
    };
    let sum = pseudo_header_sum(Family::V6, &src, &dst, segment.len()).wrapping_add(sum16(segment));
    fold(sum) == 0xffff
}

/// The pseudo-header's contribution to the TCP checksum: RFC 9293 §3.1 (IPv4: addresses, zero,
/// protocol, TCP length) and RFC 8200 §8.1 (IPv6: addresses, 32-bit length, next header).
fn pseudo_header_sum(family: Family, src: &[u8; 16], dst: &[u8; 16], tcp_len: usize) -> u64 {
    let addr_len = family.addr_len();
    let addresses = sum16(src.get(..addr_len).unwrap_or_default())
        .wrapping_add(sum16(dst.get(..addr_len).unwrap_or_default()));
    // The 32-bit IPv6 length and the 16-bit IPv4 one add up the same for lengths below 2^16;
    // as a u64 it cannot overflow.
    addresses
        .wrapping_add(tcp_len as u64)
        .wrapping_add(u64::from(IPPROTO_TCP))
}

/// Sum of big-endian 16-bit words, an odd last byte padded with zero (RFC 1071 §4.1). Carries
/// are folded later; a u64 holds the sum of any slice that fits in memory.
fn sum16(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        if let [hi, lo] = *word {
            sum = sum.wrapping_add(u64::from(u16::from_be_bytes([hi, lo])));
        }
    }
    if let [last] = *words.remainder() {
        sum = sum.wrapping_add(u64::from(u16::from_be_bytes([last, 0])));
    }
    sum
}

/// Folds carries into 16 bits: the ones' complement sum (RFC 1071 §4.1).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Copies `bytes` to `buf` at `at`; out-of-range writes are impossible by construction and
/// would be skipped rather than panic.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_reply))]
mod tests {
    use super::*;
    use crate::logic::fixtures::{segment_v4, segment_v6};
    use crate::logic::segment::{parse_ipv4, parse_ipv6, Timestamp};
    use crate::logic::wire::{FIN, PSH, SYN};
    use crate::logic::twcheck::Substate;

    fn entry(has_ts: bool, ts_recent_valid: bool) -> EntryState {
        EntryState {
            snd_nxt: 0x0102_0304,
            rcv_nxt: 0x0a0b_0c0d,
            last_win: 0x1234,
            rcv_wscale: 7,
            ts_recent: 0x5566_7788,
            has_ts,
            ts_recent_valid,
            substate: Substate::TimeWait,
        }
    }

    /// The reply with byte `at` XOR-ed with 1.
    fn flipped(buf: &[u8; REPLY_MAX], at: usize) -> [u8; REPLY_MAX] {
        let mut copy = *buf;
        if let Some(byte) = copy.get_mut(at) {
            *byte ^= 1;
        }
        copy
    }

    #[test]
    fn ones_complement_sum_known_answer() {
        // RFC 1071 §3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            fold(sum16(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        // An odd length pads with a zero byte.
        assert_eq!(fold(sum16(&[0x12, 0x34, 0x56])), 0x6834);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn ack_ipv4_with_timestamps_layout() {
        let mut buf = [0u8; REPLY_MAX];
        let seg = segment_v4(ACK, 7, 9, 0);
        let len = build_ack(
            &mut buf,
            &seg,
            0x0102_0304,
            0x0a0b_0c0d,
            0x1234,
            Some((0x1122_3344, 0x5566_7788)),
            IpFields::plain(64),
        );
        assert_eq!(len, 52);
        // IPv4: version/IHL, TOS, total length 52, ID 0, DF, TTL 64, TCP.
        assert_eq!(
            buf.get(..10),
            Some(&[0x45, 0, 0, 52, 0, 0, 0x40, 0, 64, 6][..])
        );
        // Addresses swapped.
        assert_eq!(buf.get(12..20), Some(&[10, 0, 0, 2, 10, 0, 0, 1][..]));
        // Ports swapped, seq, ack.
        assert_eq!(buf.get(20..24), Some(&[0x00, 0x50, 0x9c, 0x40][..]));
        assert_eq!(
            buf.get(24..32),
            Some(&[1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d][..])
        );
        // Data offset 8, ACK only, window, urgent pointer 0.
        assert_eq!(buf.get(32..36), Some(&[0x80, 0x10, 0x12, 0x34][..]));
        assert_eq!(buf.get(38..40), Some(&[0, 0][..]));
        // NOP NOP TS(10) TSval TSecr.
        assert_eq!(
            buf.get(40..52),
            Some(&[1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88][..])
        );
        // Checksums computed independently (Python, RFC 1071) for exactly these bytes.
        assert_eq!(buf.get(10..12), Some(&[0x26, 0xc2][..]));
        assert_eq!(buf.get(36..38), Some(&[0x88, 0x83][..]));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
        // Nothing written past the reply.
        assert!(buf.iter().skip(len).all(|&b| b == 0));
    }

    #[test]
    fn ack_ipv4_without_timestamps() {
        let mut buf = [0xaau8; REPLY_MAX];
        let len = build_ack(&mut buf, &segment_v4(ACK, 7, 9, 0), 1, 2, 3, None, IpFields::plain(255));
        assert_eq!(len, 40);
        assert_eq!(buf.get(2..4), Some(&[0, 40][..]));
        assert_eq!(buf.get(8), Some(&255));
        assert_eq!(buf.get(32..36), Some(&[0x50, 0x10, 0, 3][..]));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
    }

    #[test]
    fn ack_ipv6_layout() {
        let mut buf = [0u8; REPLY_MAX];
        let seg = segment_v6(ACK, 7, 9, 0);
        let len = build_ack(&mut buf, &seg, 0xffff_ffff, 0, 0xffff, Some((1, 2)), IpFields::plain(33));
        assert_eq!(len, REPLY_MAX);
        // Version 6, payload length 32, next header TCP, hop limit 33.
        assert_eq!(buf.get(..8), Some(&[0x60, 0, 0, 0, 0, 32, 6, 33][..]));
        assert_eq!(buf.get(8..24), Some(&seg.dst_addr[..]));
        assert_eq!(buf.get(24..40), Some(&seg.src_addr[..]));
        assert_eq!(buf.get(40..44), Some(&[0x00, 0x50, 0x9c, 0x40][..]));
        assert_eq!(
            buf.get(44..52),
            Some(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..])
        );
        assert_eq!(buf.get(52..56), Some(&[0x80, 0x10, 0xff, 0xff][..]));
        assert_eq!(
            buf.get(60..72),
            Some(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2][..])
        );
        // TCP checksum over the IPv6 pseudo-header, computed independently.
        assert_eq!(buf.get(56..58), Some(&[0x7e, 0xb5][..]));
        assert!(checksum_ok(&buf));
    }

    #[test]
    fn replies_parse_back_as_the_segment_built() {
        let mut buf = [0u8; REPLY_MAX];
        let len = build_ack(
            &mut buf,
            &segment_v4(ACK, 7, 9, 0),
            11,
            22,
            33,
            Some((44, 55)),
            IpFields::plain(64),
        );
        let parsed = parse_ipv4(buf.get(..len).unwrap_or_default(), len as u32);
        assert_eq!(
            parsed.map(|s| (s.src_port, s.dst_port, s.seq, s.ack, s.flags, s.window, s.ts)),
            Ok((
                80,
                40000,
                11,
                22,
                ACK,
                33,
                Some(Timestamp {
                    tsval: 44,
                    tsecr: 55
                })
            ))
        );
        let len = build_rst(&mut buf, &segment_v6(SYN, 100, 0, 0), IpFields::plain(64));
        let parsed = parse_ipv6(buf.get(..len).unwrap_or_default(), len as u32);
        assert_eq!(
            parsed.map(|s| (s.seq, s.ack, s.flags, s.payload_len)),
            Ok((0, 101, RST | ACK, 0))
        );
    }

    #[test]
    fn rst_answers_an_ack_with_its_ack_number() {
        let mut buf = [0u8; REPLY_MAX];
        let len = build_rst(&mut buf, &segment_v4(ACK | PSH, 500, 0xdead_beef, 10), IpFields::plain(64));
        assert_eq!(len, 40);
        // seq = the segment's ack, ack field 0, data offset 5, RST only, window 0.
        assert_eq!(
            buf.get(24..32),
            Some(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0][..])
        );
        assert_eq!(buf.get(32..36), Some(&[0x50, 0x04, 0, 0][..]));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
    }

    #[test]
    fn rst_answers_a_segment_without_ack_with_rst_ack() {
        let mut buf = [0u8; REPLY_MAX];
        // SYN at 0xffffffff: it ends at 0 (wraps).
        let len = build_rst(&mut buf, &segment_v4(SYN, 0xffff_ffff, 77, 0), IpFields::plain(64));
        assert_eq!(len, 40);
        assert_eq!(buf.get(24..32), Some(&[0, 0, 0, 0, 0, 0, 0, 0][..]));
        assert_eq!(buf.get(32..36), Some(&[0x50, 0x14, 0, 0][..]));
        // SYN + FIN + 5 bytes of data are all acknowledged.
        let len = build_rst(&mut buf, &segment_v6(SYN | FIN, 1000, 0, 5), IpFields::plain(64));
        assert_eq!(len, 60);
        assert_eq!(buf.get(44..52), Some(&[0, 0, 0, 0, 0, 0, 0x03, 0xef][..]));
        assert_eq!(buf.get(52..54), Some(&[0x50, 0x14][..]));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
    }

    #[test]
    fn rst_is_never_sent_for_a_rst() {
        let mut buf = [0u8; REPLY_MAX];
        assert_eq!(build_rst(&mut buf, &segment_v4(RST, 1, 0, 0), IpFields::plain(64)), 0);
        assert_eq!(build_rst(&mut buf, &segment_v6(RST | ACK, 1, 2, 0), IpFields::plain(64)), 0);
    }

    #[test]
    fn entry_ack_uses_entry_state() {
        let mut buf = [0u8; REPLY_MAX];
        let seg = segment_v4(ACK, 7, 9, 0);
        let len = build_entry_ack(&mut buf, &seg, &entry(true, true), 0xcafe_f00d, IpFields::plain(64));
        assert_eq!(len, 52);
        assert_eq!(
            buf.get(24..36),
            Some(&[1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x80, 0x10, 0x12, 0x34][..])
        );
        assert_eq!(
            buf.get(44..52),
            Some(&[0xca, 0xfe, 0xf0, 0x0d, 0x55, 0x66, 0x77, 0x88][..])
        );
        // ts_recent not yet learned: the option is sent with TSecr 0.
        let len = build_entry_ack(&mut buf, &seg, &entry(true, false), 5, IpFields::plain(64));
        assert_eq!(len, 52);
        assert_eq!(buf.get(44..52), Some(&[0, 0, 0, 5, 0, 0, 0, 0][..]));
        // No timestamps on the connection: no option.
        let len = build_entry_ack(&mut buf, &seg, &entry(false, false), 5, IpFields::plain(64));
        assert_eq!(len, 40);
        assert_eq!(buf.get(32), Some(&0x50));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
    }

    #[test]
    fn any_flipped_byte_breaks_the_ipv4_checksums() {
        let mut buf = [0u8; REPLY_MAX];
        let len = build_ack(
            &mut buf,
            &segment_v4(ACK, 7, 9, 0),
            1,
            2,
            3,
            Some((4, 5)),
            IpFields::plain(64),
        );
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
        for at in 0..len {
            let bad = flipped(&buf, at);
            assert!(!checksum_ok(bad.get(..len).unwrap_or_default()));
        }
    }

    #[test]
    fn any_flipped_covered_byte_breaks_the_ipv6_checksum() {
        let mut buf = [0u8; REPLY_MAX];
        let len = build_rst(&mut buf, &segment_v6(ACK, 7, 9, 0), IpFields::plain(64));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
        // IPv6 has no header checksum: version/class/flow (0..4) and hop limit (7) are not
        // covered by the TCP checksum; everything else is.
        for at in (4..7).chain(8..len) {
            let bad = flipped(&buf, at);
            assert!(!checksum_ok(bad.get(..len).unwrap_or_default()));
        }
    }

    #[test]
    fn checksum_check_rejects_malformed_packets() {
        assert!(!checksum_ok(&[]));
        assert!(!checksum_ok(&[0x45; 10]));
        let mut buf = [0u8; REPLY_MAX];
        let len = build_ack(&mut buf, &segment_v4(ACK, 7, 9, 0), 1, 2, 3, None, IpFields::plain(64));
        // Truncated copies of a valid packet never pass.
        for cut in 0..len {
            assert!(!checksum_ok(buf.get(..cut).unwrap_or_default()));
        }
        // Trailing padding after the IP length is ignored.
        assert!(checksum_ok(buf.get(..len + 6).unwrap_or_default()));
    }

    #[test]
    fn ip_fields_from_the_connection() {
        let mut buf = [0u8; REPLY_MAX];
        let ip = IpFields { hop_limit: 9, dsfield: 0x2a, flowlabel: 0x12345 };
        let len = build_ack(&mut buf, &segment_v4(ACK, 7, 9, 0), 1, 2, 3, None, ip);
        // IPv4: the TOS byte as given (no flow label), checksums still right.
        assert_eq!(buf.get(..2), Some(&[0x45, 0x2a][..]));
        assert_eq!(buf.get(8), Some(&9));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
        let len = build_rst(&mut buf, &segment_v6(SYN, 100, 0, 0), ip);
        // IPv6: version 6, traffic class 0x2a, flow label 0x12345.
        assert_eq!(buf.get(..4), Some(&[0x62, 0xa1, 0x23, 0x45][..]));
        assert_eq!(buf.get(7), Some(&9));
        assert!(checksum_ok(buf.get(..len).unwrap_or_default()));
        // A label wider than 20 bits never reaches the traffic class.
        let wide = IpFields { flowlabel: 0xfff_ffff, dsfield: 0, ..ip };
        build_rst(&mut buf, &segment_v6(SYN, 100, 0, 0), wide);
        assert_eq!(buf.get(..4), Some(&[0x60, 0x0f, 0xff, 0xff][..]));
    }

    #[test]
    fn ecn_bits_as_linux_sends_them() {
        // ECT(0) on the connection: kept on an ordinary ACK, cleared on an out-of-window one.
        assert_eq!(ack_dsfield(0x2a, false), 0x2a);
        assert_eq!(ack_dsfield(0x2a, true), 0x28);
        // A RST takes the incoming DSCP without its ECN (CE here).
        assert_eq!(rst_dsfield(0xbb), 0xb8);
    }
}
