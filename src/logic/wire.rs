// SPDX-License-Identifier: GPL-2.0

//! Wire constants of IPv4, IPv6 and TCP: the one home of the numbers `segment.rs` reads and
//! `reply.rs` writes.

/// TCP flag bits as in byte 13 of the TCP header (RFC 9293 §3.1, RFC 3168 §6.1 for ECE/CWR).
pub(crate) const FIN: u8 = 0x01;
/// Synchronize sequence numbers.
pub(crate) const SYN: u8 = 0x02;
/// Reset the connection.
pub(crate) const RST: u8 = 0x04;
/// Push.
pub(crate) const PSH: u8 = 0x08;
/// The acknowledgment field is significant.
pub(crate) const ACK: u8 = 0x10;
/// The urgent pointer is significant.
pub(crate) const URG: u8 = 0x20;
/// ECN echo (RFC 3168).
pub(crate) const ECE: u8 = 0x40;
/// Congestion window reduced (RFC 3168).
pub(crate) const CWR: u8 = 0x80;

/// Length of an IPv4 header without options.
pub(crate) const IPV4_HEADER_MIN: usize = 20;
/// Length of the fixed IPv6 header.
pub(crate) const IPV6_HEADER_LEN: usize = 40;
/// Length of a TCP header without options.
pub(crate) const TCP_HEADER_MIN: usize = 20;
/// IP protocol number / IPv6 next header value of TCP.
pub(crate) const IPPROTO_TCP: u8 = 6;

/// TCP option kind: end of option list (RFC 9293 §3.2).
pub(crate) const TCPOPT_EOL: u8 = 0;
/// TCP option kind: no-operation (RFC 9293 §3.2).
pub(crate) const TCPOPT_NOP: u8 = 1;
/// TCP option kind: timestamps (RFC 7323 §3).
pub(crate) const TCPOPT_TIMESTAMP: u8 = 8;
/// Length of the timestamps option: kind, length, TSval, TSecr.
pub(crate) const TCPOLEN_TIMESTAMP: usize = 10;
/// The timestamps option as Linux and FreeBSD send it, behind two NOPs so the 32-bit fields
/// stay aligned (RFC 7323 Appendix A): 12 bytes with TSval and TSecr.
pub(crate) const TS_BLOCK_HEAD: [u8; 4] = [TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP as u8];
/// Length of [`TS_BLOCK_HEAD`] with TSval and TSecr.
pub(crate) const TS_BLOCK_LEN: usize = 12;

/// IPv4 "more fragments" flag and fragment offset, in the 16-bit field at byte 6.
pub(crate) const IPV4_MF_AND_OFFSET: u16 = 0x3fff;
/// IPv4 Don't Fragment flag, in the 16-bit field at byte 6.
pub(crate) const IPV4_DF: u16 = 0x4000;
