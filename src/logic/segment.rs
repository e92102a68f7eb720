// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked parsing of the IP and TCP headers of an incoming segment.
//!
//! The caller copies at most the first 128 bytes of the packet (from the IP header on) and
//! passes the packet's full length separately. Every length the packet claims (IHL, total
//! length, TCP data offset, option lengths) is checked against both before a field behind it is
//! read. Anything we cannot fully understand is an error, and the caller passes such a packet
//! to the stack untouched (docs/behaviour.md §3: the module never trusts a header length it has not
//! bounds-checked): the stack has the whole packet and its own, stricter, validation.
//!
//! Not checked here: the TCP checksum. It covers the whole payload, which the caller did not
//! copy; the caller must verify it (e.g. `nf_checksum()`) before acting on a segment.

pub(crate) use crate::logic::family::Family;
use crate::logic::wire::{
    FIN, SYN,
    IPPROTO_TCP, IPV4_HEADER_MIN, IPV4_MF_AND_OFFSET, IPV6_HEADER_LEN, TCPOLEN_TIMESTAMP, TCPOPT_EOL, TCPOPT_NOP,
    TCPOPT_TIMESTAMP, TCP_HEADER_MIN,
};


/// The TCP timestamps option (RFC 7323 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// The sender's timestamp clock.
    pub(crate) tsval: u32,
    /// The most recent TSval the sender has seen from us.
    pub(crate) tsecr: u32,
}

/// What the TIME_WAIT logic needs to know about one incoming segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpSegment {
    /// IPv4 or IPv6.
    pub(crate) family: Family,
    /// Source address (IPv4: first 4 bytes).
    pub(crate) src_addr: [u8; 16],
    /// Destination address (IPv4: first 4 bytes).
    pub(crate) dst_addr: [u8; 16],
    /// Source port.
    pub(crate) src_port: u16,
    /// Destination port.
    pub(crate) dst_port: u16,
    /// Sequence number.
    pub(crate) seq: u32,
    /// Acknowledgment number (meaningful only with [`ACK`]).
    pub(crate) ack: u32,
    /// Flag bits: [`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`], [`URG`], [`ECE`], [`CWR`].
    pub(crate) flags: u8,
    /// Window field as on the wire (unscaled).
    pub(crate) window: u16,
    /// Payload bytes after the TCP header.
    pub(crate) payload_len: u32,
    /// The timestamps option, if present and well-formed.
    pub(crate) ts: Option<Timestamp>,
    /// Source or destination is multicast, broadcast or unspecified: never answer it.
    pub(crate) mcast_or_bcast: bool,
}

impl TcpSegment {
    /// Whether all bits of `flag` are set.
    #[inline]
    pub(crate) fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }

    /// The sequence number after this segment: SYN and FIN each occupy one (RFC 9293 §3.4,
    /// Linux `TCP_SKB_CB(skb)->end_seq`).
    pub(crate) fn end_seq(&self) -> u32 {
        let syn = u32::from(self.has_flag(SYN));
        let fin = u32::from(self.has_flag(FIN));
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(syn)
            .wrapping_add(fin)
    }
}

/// Why a packet was not parsed. Every variant means "hand the packet to the stack unchanged".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The copied bytes end before a header the packet claims to have.
    Truncated,
    /// The IP version nibble is not the one expected.
    BadVersion,
    /// IPv4 IHL below 5.
    BadIpHeaderLength,
    /// IP total (or IPv6 payload) length is larger than the packet or too small for the headers.
    BadTotalLength,
    /// An IPv4 fragment (first or later): only a reassembled packet has a whole TCP header.
    Fragment,
    /// Not TCP (IPv6: an extension header the glue did not walk).
    NotTcp,
    /// TCP data offset below 5, or a TCP header longer than the IP payload.
    BadTcpHeaderLength,
}

/// What the glue knows of a packet beyond its first bytes.
#[derive(Clone, Copy, Default)]
pub(crate) struct Layout {
    /// Length of the whole packet from the IP header on.
    pub(crate) skb_len: u32,
    /// IPv6: bytes of extension headers between the fixed header and TCP, walked by the glue
    /// as the stack walks them (`ipv6_find_hdr`) and left out of the copy, which holds the fixed
    /// header and then the TCP header.
    pub(crate) ext_len: u32,
    /// A GRO-built TCP packet, whose length field may be 0 when it exceeds 64 KiB (BIG TCP).
    pub(crate) gso_tcp: bool,
}

/// Parses an IPv4 packet. `pkt` is a copy of the first bytes (IP header first), `skb_len` the
/// length of the whole packet.
pub(crate) fn parse_ipv4(pkt: &[u8], skb_len: u32) -> Result<TcpSegment, ParseError> {
    parse_ipv4_in(pkt, Layout { skb_len, ..Layout::default() })
}

/// Parses an IPv6 packet whose next header is TCP. `pkt` is a copy of the first bytes (IPv6
/// header first), `skb_len` the length of the whole packet.
pub(crate) fn parse_ipv6(pkt: &[u8], skb_len: u32) -> Result<TcpSegment, ParseError> {
    parse_ipv6_in(pkt, Layout { skb_len, ..Layout::default() })
}

/// Parses an IPv4 packet laid out as `l` says.
pub(crate) fn parse_ipv4_in(pkt: &[u8], l: Layout) -> Result<TcpSegment, ParseError> {
    let skb_len = l.skb_len;
    let h: &[u8; IPV4_HEADER_MIN] = pkt.first_chunk().ok_or(ParseError::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(ParseError::BadVersion);
    }
    let ip_hdr_len = usize::from(h[0] & 0x0f) * 4;
    // RFC 791: IHL counts 32-bit words and the fixed header alone is five of them.
    if ip_hdr_len < IPV4_HEADER_MIN {
        return Err(ParseError::BadIpHeaderLength);
    }
    if pkt.len() < ip_hdr_len {
        return Err(ParseError::Truncated);
    }
    let tot_len_field = u16::from_be_bytes([h[2], h[3]]);
    // BIG TCP: a GRO packet over 64 KiB carries tot_len 0 and its length in the skb, as the
    // stack's iph_totlen() reads it.
    let tot_len = if tot_len_field == 0 && l.gso_tcp { skb_len as usize } else { usize::from(tot_len_field) };
    // Linux ip_rcv_core() drops a tot_len beyond the skb; less than the headers is nonsense.
    if tot_len > skb_len as usize || tot_len < ip_hdr_len + TCP_HEADER_MIN {
        return Err(ParseError::BadTotalLength);
    }
    if h[9] != IPPROTO_TCP {
        return Err(ParseError::NotTcp);
    }
    // A first fragment has a TCP header but not the segment's true length, a later one has no
    // TCP header at all (RFC 791); only the stack can reassemble.
    if u16::from_be_bytes([h[6], h[7]]) & IPV4_MF_AND_OFFSET != 0 {
        return Err(ParseError::Fragment);
    }
    let src = [h[12], h[13], h[14], h[15]];
    let dst = [h[16], h[17], h[18], h[19]];
    let tcp_bytes = pkt.get(ip_hdr_len..).ok_or(ParseError::Truncated)?;
    let tcp = parse_tcp(tcp_bytes, tot_len - ip_hdr_len)?;
    Ok(tcp.into_segment(
        Family::V4,
        widen_v4(src),
        widen_v4(dst),
        ipv4_mcast_or_bcast(src) || ipv4_mcast_or_bcast(dst),
    ))
}

/// Parses an IPv6 packet laid out as `l` says: TCP right behind the fixed header, or behind
/// `l.ext_len` bytes of extension headers the glue walked (RFC 8200 §4) and left out of `pkt`.
pub(crate) fn parse_ipv6_in(pkt: &[u8], l: Layout) -> Result<TcpSegment, ParseError> {
    let skb_len = l.skb_len;
    let h: &[u8; IPV6_HEADER_LEN] = pkt.first_chunk().ok_or(ParseError::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(ParseError::BadVersion);
    }
    // Without extension headers the next header must be TCP; with them, the glue's walk found
    // TCP at their end (and passed fragments to the stack, D13).
    if l.ext_len == 0 && h[6] != IPPROTO_TCP {
        return Err(ParseError::NotTcp);
    }
    let ext_len = l.ext_len as usize;
    let payload_len_field = u16::from_be_bytes([h[4], h[5]]);
    // BIG TCP: a GRO packet over 64 KiB carries payload length 0 and its length in the skb
    // (the stack's ipv6_payload_len()); otherwise 0 is a jumbogram header we do not parse.
    let payload_len = if payload_len_field == 0 && l.gso_tcp {
        (skb_len as usize).saturating_sub(IPV6_HEADER_LEN)
    } else {
        usize::from(payload_len_field)
    };
    // Too short for the extension headers and a TCP header, or longer than the packet. The
    // fixed header is 40 bytes, so the sum cannot overflow.
    if payload_len < ext_len + TCP_HEADER_MIN || payload_len + IPV6_HEADER_LEN > skb_len as usize {
        return Err(ParseError::BadTotalLength);
    }
    let src = address16(h, 8).ok_or(ParseError::Truncated)?;
    let dst = address16(h, 24).ok_or(ParseError::Truncated)?;
    let tcp_bytes = pkt.get(IPV6_HEADER_LEN..).ok_or(ParseError::Truncated)?;
    let tcp = parse_tcp(tcp_bytes, payload_len - ext_len)?;
    Ok(tcp.into_segment(
        Family::V6,
        src,
        dst,
        ipv6_mcast_or_unspecified(&src) || ipv6_mcast_or_unspecified(&dst),
    ))
}

/// The TCP part of a segment, before the IP layer adds addresses.
struct TcpFields {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload_len: u32,
    ts: Option<Timestamp>,
}

impl TcpFields {
    fn into_segment(
        self,
        family: Family,
        src_addr: [u8; 16],
        dst_addr: [u8; 16],
        mcast_or_bcast: bool,
    ) -> TcpSegment {
        TcpSegment {
            family,
            src_addr,
            dst_addr,
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload_len: self.payload_len,
            ts: self.ts,
            mcast_or_bcast,
        }
    }
}

/// Parses the TCP header at the start of `bytes` (what was copied; may be shorter or, with
/// link-layer padding, longer than the segment), `tcp_len` being the IP payload length.
fn parse_tcp(bytes: &[u8], tcp_len: usize) -> Result<TcpFields, ParseError> {
    let h: &[u8; TCP_HEADER_MIN] = bytes.first_chunk().ok_or(ParseError::Truncated)?;
    let tcp_hdr_len = usize::from(h[12] >> 4) * 4;
    // RFC 9293 §3.1: the data offset counts 32-bit words and includes the fixed 20 bytes; a
    // header longer than the IP payload is a lie Linux's tcp_v4_rcv() also rejects.
    if tcp_hdr_len < TCP_HEADER_MIN || tcp_hdr_len > tcp_len {
        return Err(ParseError::BadTcpHeaderLength);
    }
    let header = bytes.get(..tcp_hdr_len).ok_or(ParseError::Truncated)?;
    let options = header.get(TCP_HEADER_MIN..).unwrap_or(&[]);
    Ok(TcpFields {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: h[13],
        window: u16::from_be_bytes([h[14], h[15]]),
        // Both are at most 65535 (an IP length field), so the conversion is exact.
        payload_len: (tcp_len - tcp_hdr_len) as u32,
        ts: find_timestamp_option(options),
    })
}

/// Finds the timestamps option the way Linux's `tcp_parse_options()` does, so the module and
/// the stack agree on what a segment carried: EOL ends the list, NOP is skipped, an option whose
/// length is below 2 or runs past the header ends parsing (keeping what was found before it), a
/// kind-8 option whose length is not 10 is ignored (RFC 7323 §3.2), and the last valid one wins.
pub(crate) fn find_timestamp_option(options: &[u8]) -> Option<Timestamp> {
    let mut found = None;
    let mut at = 0usize;
    while let Some(&kind) = options.get(at) {
        if kind == TCPOPT_EOL {
            break;
        }
        if kind == TCPOPT_NOP {
            at = at.saturating_add(1);
            continue;
        }
        let Some(&len) = options.get(at.saturating_add(1)) else {
            break;
        };
        let len = usize::from(len);
        if len < 2 {
            break;
        }
        let Some(option) = options.get(at..at.saturating_add(len)) else {
            break;
        };
        if kind == TCPOPT_TIMESTAMP && len == TCPOLEN_TIMESTAMP {
            if let (Some(tsval), Some(tsecr)) = (be32_at(option, 2), be32_at(option, 6)) {
                found = Some(Timestamp { tsval, tsecr });
            }
        }
        at = at.saturating_add(len);
    }
    found
}

fn be32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at.saturating_add(4))?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

fn address16(bytes: &[u8], at: usize) -> Option<[u8; 16]> {
    bytes.get(at..at.saturating_add(16))?.try_into().ok()
}

fn widen_v4(addr: [u8; 4]) -> [u8; 16] {
    let mut wide = [0u8; 16];
    for (to, from) in wide.iter_mut().zip(addr) {
        *to = from;
    }
    wide
}

/// 224.0.0.0/4 multicast (RFC 5771), 255.255.255.255 limited broadcast and 0.0.0.0 (RFC 1122
/// §3.2.1.3: never a valid source or destination of a TCP segment). Directed subnet broadcasts
/// need the interface's addresses; the caller checks those (Linux's `RTCF_BROADCAST`).
pub(crate) fn ipv4_mcast_or_bcast(addr: [u8; 4]) -> bool {
    addr[0] & 0xf0 == 0xe0 || addr == [0xff; 4] || addr == [0; 4]
}

/// ff00::/8 multicast (RFC 4291 §2.7), and the unspecified address :: (RFC 4291 §2.5.2: never
/// a destination, and a source only before an address is assigned, so never TCP).
pub(crate) fn ipv6_mcast_or_unspecified(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff || *addr == [0u8; 16]
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_segment))]
mod tests {
    use super::*;
    use crate::logic::fixtures::{segment_v4, segment_v6};
    use crate::logic::wire::{ACK, PSH};

    /// 10.0.0.1:40000 -> 10.0.0.2:80, ACK|PSH, NOP NOP TS(0x01020304, 0x05060708), 4 bytes data.
    const V4_PACKET: [u8; 56] = [
        0x45, 0x00, 0x00, 0x38, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // IP
        10, 0, 0, 1, 10, 0, 0, 2, // addresses
        0x9c, 0x40, 0x00, 0x50, // ports 40000, 80
        0xaa, 0xbb, 0xcc, 0xdd, // seq
        0x11, 0x22, 0x33, 0x44, // ack
        0x80, 0x18, 0x01, 0xf5, // doff 8, ACK|PSH, window 501
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x01, 0x01, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // options
        b'd', b'a', b't', b'a',
    ];
    const V4_HEADERS_LEN: usize = 52;

    /// 2001:db8::1 -> 2001:db8::2, port 40000 -> 443, SYN, no options, no data.
    const V6_PACKET: [u8; 60] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x40, // version, payload 20, TCP, hop 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // source
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // destination
        0x9c, 0x40, 0x01, 0xbb, // ports
        0xff, 0xff, 0xff, 0xfe, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x50, 0x02, 0xff, 0xff, // doff 5, SYN, window 65535
        0x00, 0x00, 0x00, 0x00,
    ];

    fn v4_with(edits: &[(usize, u8)]) -> [u8; 56] {
        let mut pkt = V4_PACKET;
        for &(at, value) in edits {
            if let Some(byte) = pkt.get_mut(at) {
                *byte = value;
            }
        }
        pkt
    }

    fn v6_with(edits: &[(usize, u8)]) -> [u8; 60] {
        let mut pkt = V6_PACKET;
        for &(at, value) in edits {
            if let Some(byte) = pkt.get_mut(at) {
                *byte = value;
            }
        }
        pkt
    }

    /// A 20-byte TCP header plus `options` (a multiple of 4 bytes, at most 40) after a plain
    /// IPv4 header; returns the packet and its length.
    fn v4_with_options(options: &[u8]) -> ([u8; 100], usize) {
        let mut pkt = [0u8; 100];
        let tcp_len = TCP_HEADER_MIN + options.len();
        let total = IPV4_HEADER_MIN + tcp_len;
        for (to, from) in pkt.iter_mut().zip(V4_PACKET.iter().take(40)) {
            *to = *from;
        }
        pkt[2] = (total >> 8) as u8;
        pkt[3] = total as u8;
        pkt[32] = ((tcp_len / 4) << 4) as u8;
        for (to, from) in pkt.iter_mut().skip(40).zip(options) {
            *to = *from;
        }
        (pkt, total)
    }

    fn ts_of(options: &[u8]) -> Option<Timestamp> {
        let (pkt, len) = v4_with_options(options);
        match parse_ipv4(pkt.get(..len).unwrap_or(&[]), len as u32) {
            Ok(seg) => seg.ts,
            Err(_) => Some(Timestamp {
                tsval: 0xdead,
                tsecr: 0xdead,
            }),
        }
    }

    #[test]
    fn ipv4_fields() {
        // The fixture's peer 10.0.0.1:40000 and our 10.0.0.2:80, unicast.
        let want = TcpSegment {
            window: 501,
            ts: Some(Timestamp {
                tsval: 0x0102_0304,
                tsecr: 0x0506_0708,
            }),
            ..segment_v4(ACK | PSH, 0xaabb_ccdd, 0x1122_3344, 4)
        };
        assert_eq!(parse_ipv4(&V4_PACKET, 56), Ok(want));
        assert_eq!(want.end_seq(), 0xaabb_cce1);
    }

    #[test]
    fn ipv6_fields() {
        // The fixture's 2001:db8::1 and 2001:db8::2, unicast, no timestamps.
        let want = TcpSegment {
            dst_port: 443,
            window: 0xffff,
            ..segment_v6(SYN, 0xffff_fffe, 0, 0)
        };
        assert_eq!(parse_ipv6(&V6_PACKET, 60), Ok(want));
        // SYN occupies one sequence number, and the end wraps past 2^32.
        assert_eq!(want.end_seq(), 0xffff_ffff);
    }

    #[test]
    fn ipv6_behind_extension_headers() {
        // The glue walked 8 bytes of destination options and copied the fixed header and TCP.
        let mut pkt = V6_PACKET;
        pkt[6] = 60; // next header: destination options
        let payload = u16::from_be_bytes([pkt[4], pkt[5]]) + 8;
        pkt[4..6].copy_from_slice(&payload.to_be_bytes());
        let l = Layout { skb_len: 68, ext_len: 8, gso_tcp: false };
        let seg = parse_ipv6_in(&pkt, l);
        assert!(matches!(seg, Ok(ref s) if s.flags == SYN && s.payload_len == 0 && s.dst_port == 443));
        // Without the walk it is not TCP; with a walk longer than the payload it is nonsense.
        assert!(matches!(parse_ipv6(&pkt, 68), Err(ParseError::NotTcp)));
        let long = Layout { ext_len: 16, ..l };
        assert!(matches!(parse_ipv6_in(&pkt, long), Err(ParseError::BadTotalLength)));
    }

    #[test]
    fn big_tcp_lengths_come_from_the_skb() {
        // IPv4 tot_len 0 on a GRO packet: the skb's length counts, as iph_totlen() does.
        let mut v4 = V4_PACKET;
        v4[2] = 0;
        v4[3] = 0;
        let gso = Layout { skb_len: 70_000, ext_len: 0, gso_tcp: true };
        assert!(matches!(parse_ipv4_in(&v4, gso), Ok(ref s) if s.payload_len == 70_000 - 20 - 32));
        // Not a GRO packet: a zero length is a lie.
        assert!(matches!(parse_ipv4(&v4, 70_000), Err(ParseError::BadTotalLength)));
        let mut v6 = V6_PACKET;
        v6[4] = 0;
        v6[5] = 0;
        assert!(matches!(parse_ipv6_in(&v6, gso), Ok(ref s) if s.payload_len == 70_000 - 40 - 20));
        assert!(matches!(parse_ipv6(&v6, 70_000), Err(ParseError::BadTotalLength)));
    }

    #[test]
    fn end_seq_counts_syn_fin_and_wraps() {
        let base = parse_ipv6(&V6_PACKET, 60);
        assert!(base.is_ok());
        if let Ok(mut seg) = base {
            seg.flags = SYN | FIN;
            seg.payload_len = 3;
            assert_eq!(seg.end_seq(), 3); // 0xfffffffe + 3 + 2
            seg.flags = ACK;
            seg.payload_len = 0;
            assert_eq!(seg.end_seq(), 0xffff_fffe);
        }
    }

    #[test]
    fn ipv4_truncated_copy_at_every_length() {
        // The copy ends inside the headers: an error whatever skb_len says, never a panic.
        for n in 0..V4_HEADERS_LEN {
            assert!(parse_ipv4(V4_PACKET.get(..n).unwrap_or(&[]), 56).is_err());
        }
        // The copy may stop inside the payload: only the headers are needed.
        for n in V4_HEADERS_LEN..=V4_PACKET.len() {
            assert!(parse_ipv4(V4_PACKET.get(..n).unwrap_or(&[]), 56).is_ok());
        }
    }

    #[test]
    fn ipv4_truncated_packet_at_every_length() {
        // The packet itself is shorter than its total length claims.
        for n in 0..V4_PACKET.len() {
            assert!(parse_ipv4(V4_PACKET.get(..n).unwrap_or(&[]), n as u32).is_err());
        }
        assert!(parse_ipv4(&V4_PACKET, 55).is_err());
        assert!(parse_ipv4(&V4_PACKET, 56).is_ok());
        // Link-layer padding after the packet is allowed and not parsed.
        assert!(parse_ipv4(&V4_PACKET, 60).is_ok());
    }

    #[test]
    fn ipv6_truncated_at_every_length() {
        for n in 0..V6_PACKET.len() {
            assert!(parse_ipv6(V6_PACKET.get(..n).unwrap_or(&[]), 60).is_err());
            assert!(parse_ipv6(V6_PACKET.get(..n).unwrap_or(&[]), n as u32).is_err());
        }
        assert!(parse_ipv6(&V6_PACKET, 59).is_err());
        assert!(parse_ipv6(&V6_PACKET, 60).is_ok());
    }

    #[test]
    fn ipv4_bad_header_lengths() {
        let cases: [([u8; 56], ParseError); 9] = [
            (v4_with(&[(0, 0x65)]), ParseError::BadVersion),
            (v4_with(&[(0, 0x44)]), ParseError::BadIpHeaderLength),
            (v4_with(&[(0, 0x40)]), ParseError::BadIpHeaderLength),
            // IHL 15 = 60 bytes: more than was copied.
            (v4_with(&[(0, 0x4f)]), ParseError::Truncated),
            (v4_with(&[(2, 0x00), (3, 0x27)]), ParseError::BadTotalLength), // 39 < 20 + 20
            (v4_with(&[(2, 0x00), (3, 0x39)]), ParseError::BadTotalLength), // 57 > skb_len
            (v4_with(&[(32, 0x40)]), ParseError::BadTcpHeaderLength),       // doff 4
            (v4_with(&[(32, 0x00)]), ParseError::BadTcpHeaderLength),       // doff 0
            // doff 10 = 40 bytes, but the IP payload (36 bytes) is shorter.
            (v4_with(&[(32, 0xa0)]), ParseError::BadTcpHeaderLength),
        ];
        for (pkt, error) in cases {
            assert_eq!(parse_ipv4(&pkt, 56), Err(error));
        }
    }

    #[test]
    fn ipv4_ihl_beyond_copy_is_truncated() {
        // A 24-byte IP header (IHL 6) whose options lie past the copied bytes.
        let pkt = v4_with(&[(0, 0x46)]);
        assert_eq!(
            parse_ipv4(pkt.get(..22).unwrap_or(&[]), 56),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn ipv4_with_ip_options_is_parsed_after_them() {
        // IHL 6: four bytes of IP options (NOPs) shift the TCP header.
        let mut pkt = [0u8; 60];
        for (to, from) in pkt.iter_mut().zip(V4_PACKET.iter().take(20)) {
            *to = *from;
        }
        pkt[0] = 0x46;
        pkt[3] = 0x3c;
        pkt[20..24].copy_from_slice(&[1, 1, 1, 1]);
        for (to, from) in pkt.iter_mut().skip(24).zip(V4_PACKET.iter().skip(20)) {
            *to = *from;
        }
        let seg = parse_ipv4(&pkt, 60);
        assert_eq!(
            seg.map(|s| (s.src_port, s.seq, s.payload_len)),
            Ok((40000, 0xaabb_ccdd, 4))
        );
    }

    #[test]
    fn ipv4_not_tcp_and_fragments() {
        assert_eq!(
            parse_ipv4(&v4_with(&[(9, 17)]), 56),
            Err(ParseError::NotTcp)
        );
        assert_eq!(parse_ipv4(&v4_with(&[(9, 1)]), 56), Err(ParseError::NotTcp));
        // More fragments, with and without DF; a non-first fragment; offset bits only.
        assert_eq!(
            parse_ipv4(&v4_with(&[(6, 0x20)]), 56),
            Err(ParseError::Fragment)
        );
        assert_eq!(
            parse_ipv4(&v4_with(&[(6, 0x60)]), 56),
            Err(ParseError::Fragment)
        );
        assert_eq!(
            parse_ipv4(&v4_with(&[(6, 0x00), (7, 0x01)]), 56),
            Err(ParseError::Fragment)
        );
        assert_eq!(
            parse_ipv4(&v4_with(&[(6, 0x1f)]), 56),
            Err(ParseError::Fragment)
        );
        // DF alone is not a fragment.
        assert!(parse_ipv4(&v4_with(&[(6, 0x40)]), 56).is_ok());
    }

    #[test]
    fn ipv6_errors() {
        assert_eq!(
            parse_ipv6(&v6_with(&[(0, 0x40)]), 60),
            Err(ParseError::BadVersion)
        );
        assert_eq!(parse_ipv4(&V6_PACKET, 60), Err(ParseError::BadVersion));
        assert_eq!(parse_ipv6(&V4_PACKET, 56), Err(ParseError::BadVersion));
        assert_eq!(
            parse_ipv6(V6_PACKET.get(..39).unwrap_or(&[]), 60),
            Err(ParseError::Truncated)
        );
        // Hop-by-hop, routing, fragment, destination options, no next header.
        for next in [0u8, 43, 44, 60, 59, 17] {
            assert_eq!(
                parse_ipv6(&v6_with(&[(6, next)]), 60),
                Err(ParseError::NotTcp)
            );
        }
        // Payload 0 (jumbogram without its header) and 19 are too short for TCP.
        assert_eq!(
            parse_ipv6(&v6_with(&[(5, 0)]), 60),
            Err(ParseError::BadTotalLength)
        );
        assert_eq!(
            parse_ipv6(&v6_with(&[(5, 19)]), 60),
            Err(ParseError::BadTotalLength)
        );
        assert_eq!(
            parse_ipv6(&v6_with(&[(5, 21)]), 60),
            Err(ParseError::BadTotalLength)
        );
        assert_eq!(
            parse_ipv6(&v6_with(&[(52, 0x40)]), 60),
            Err(ParseError::BadTcpHeaderLength)
        );
        assert_eq!(
            parse_ipv6(&v6_with(&[(52, 0x60)]), 60),
            Err(ParseError::BadTcpHeaderLength)
        );
        // Payload 24 with doff 6: the 4 option bytes lie beyond the copy.
        assert_eq!(
            parse_ipv6(&v6_with(&[(5, 24), (52, 0x60)]), 64),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn ipv4_multicast_broadcast_unspecified() {
        let cases: [([u8; 4], bool); 9] = [
            ([224, 0, 0, 1], true),
            ([239, 255, 255, 250], true),
            ([255, 255, 255, 255], true),
            ([0, 0, 0, 0], true),
            ([223, 255, 255, 255], false),
            ([240, 0, 0, 1], false),
            ([10, 0, 0, 255], false),
            ([192, 168, 1, 1], false),
            ([0, 0, 0, 1], false),
        ];
        for (addr, expected) in cases {
            assert_eq!(ipv4_mcast_or_bcast(addr), expected);
            // The same address as source, then as destination, of a real packet.
            let [a, b, c, d] = addr;
            let as_src = v4_with(&[(12, a), (13, b), (14, c), (15, d)]);
            let as_dst = v4_with(&[(16, a), (17, b), (18, c), (19, d)]);
            assert_eq!(
                parse_ipv4(&as_src, 56).map(|s| s.mcast_or_bcast),
                Ok(expected)
            );
            assert_eq!(
                parse_ipv4(&as_dst, 56).map(|s| s.mcast_or_bcast),
                Ok(expected)
            );
        }
    }

    #[test]
    fn ipv6_multicast_unspecified() {
        assert!(ipv6_mcast_or_unspecified(&[
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
        assert!(ipv6_mcast_or_unspecified(&[0u8; 16]));
        assert!(!ipv6_mcast_or_unspecified(&[
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
        assert!(!ipv6_mcast_or_unspecified(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
        let mcast_dst = v6_with(&[(24, 0xff), (25, 0x02)]);
        let mcast_src = v6_with(&[(8, 0xff), (9, 0x05)]);
        assert_eq!(
            parse_ipv6(&mcast_dst, 60).map(|s| s.mcast_or_bcast),
            Ok(true)
        );
        assert_eq!(
            parse_ipv6(&mcast_src, 60).map(|s| s.mcast_or_bcast),
            Ok(true)
        );
    }

    #[test]
    fn timestamp_option_layouts() {
        let ts = Some(Timestamp {
            tsval: 0x0102_0304,
            tsecr: 0x0506_0708,
        });
        // Canonical NOP NOP TS.
        assert_eq!(ts_of(&[1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]), ts);
        // Unaligned, followed by EOL padding.
        assert_eq!(ts_of(&[8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]), ts);
        // After MSS, SACK-permitted and window scale.
        assert_eq!(
            ts_of(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7]),
            ts
        );
        // Two TS options: the last one wins, as in Linux.
        assert_eq!(
            ts_of(&[8, 10, 9, 9, 9, 9, 9, 9, 9, 9, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]),
            ts
        );
        // No options at all, or only padding.
        assert_eq!(ts_of(&[]), None);
        assert_eq!(ts_of(&[1, 1, 1, 0]), None);
    }

    #[test]
    fn timestamp_option_malformed() {
        // A TS after EOL does not count.
        assert_eq!(ts_of(&[0, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]), None);
        // A TS of the wrong length is ignored.
        assert_eq!(ts_of(&[8, 9, 1, 2, 3, 4, 5, 6, 7, 1, 1, 1]), None);
        assert_eq!(ts_of(&[8, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]), None);
        // Option length 0 or 1 ends parsing: the TS after it is not seen.
        assert_eq!(ts_of(&[2, 0, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]), None);
        assert_eq!(ts_of(&[2, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]), None);
        // A length running past the header, and a TS cut by the header's end.
        assert_eq!(ts_of(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 40]), None);
        assert_eq!(ts_of(&[1, 1, 1, 1, 1, 1, 8, 10, 1, 2, 3, 4]), None);
        // A kind byte with no room for its length.
        assert_eq!(ts_of(&[1, 1, 1, 3]), None);
        // A TS seen before a malformed option is kept, as tcp_parse_options() keeps it.
        assert_eq!(
            ts_of(&[8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 5, 1]),
            Some(Timestamp {
                tsval: 0x0102_0304,
                tsecr: 0x0506_0708
            })
        );
    }

    #[test]
    fn option_parser_survives_every_byte_pattern_at_every_length() {
        // Exhaustive over kind/length pairs at every position: no panic, no overrun.
        let mut hits = 0u32;
        for kind in 0u8..=10 {
            for len in 0u8..=42 {
                for start in 0usize..12 {
                    let mut opts = [1u8; 40];
                    if let Some(k) = opts.get_mut(start) {
                        *k = kind;
                    }
                    if let Some(l) = opts.get_mut(start + 1) {
                        *l = len;
                    }
                    for cut in [0usize, 1, 2, 3, 10, 11, 12, 39, 40] {
                        if find_timestamp_option(opts.get(..cut).unwrap_or(&[])).is_some() {
                            hits += 1;
                        }
                    }
                }
            }
        }
        // Only kind 8 with length 10 fully inside the cut is a timestamp: every start for cuts
        // 39 and 40, and starts 0, 0..=1, 0..=2 for cuts 10, 11, 12.
        assert_eq!(hits, 12 * 2 + 1 + 2 + 3);
    }
}
