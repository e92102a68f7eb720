// SPDX-License-Identifier: GPL-2.0

//! The compressed TIME_WAIT entry: the seed's `struct tcptw`, cut down to what `tcp_twcheck` and
//! `tcp_twrespond` read, plus the links of the hash chain and the 2MSL FIFO.
//!
//! An IPv4 entry is 64 bytes with its links (one cache line, against several hundred for
//! Linux's `tw_sock_TCP`); IPv6 entries live in a second slab cache so they do not bloat IPv4.

use crate::twcheck::{EntryState, Substate};
use core::ptr;

/// An address family's address as stored in an entry.
pub trait Addr: Copy + PartialEq + Default {
    /// Per-family extra state (the IPv6 scope), `()` for IPv4 so it costs nothing.
    type Scope: Copy + Default;
    /// Address family (`AF_INET` or `AF_INET6`).
    const FAMILY: u8;
    /// Address bytes as they go on the wire.
    fn bytes(&self) -> &[u8];
    /// Build from the first bytes of a 16-byte buffer (IPv4 uses the first four).
    fn from_buf(buf: &[u8; 16]) -> Self;
    /// The scope as an interface index (0: none).
    fn scope_ifindex(scope: Self::Scope) -> u32;
    /// The scope from an interface index.
    fn scope_from(ifindex: u32) -> Self::Scope;
    /// Whether an entry with `scope` guarding local address `laddr` applies to a segment seen
    /// on interface `ifindex`.
    fn scope_matches(scope: Self::Scope, laddr: &Self, ifindex: u32) -> bool;
}

/// IPv4 address, network order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct V4(pub [u8; 4]);

/// IPv6 address, network order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct V6(pub [u8; 16]);

/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

impl Addr for V4 {
    type Scope = ();
    const FAMILY: u8 = AF_INET;
    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn from_buf(buf: &[u8; 16]) -> Self {
        V4([buf[0], buf[1], buf[2], buf[3]])
    }
    fn scope_ifindex(_scope: ()) -> u32 {
        0
    }
    fn scope_from(_ifindex: u32) {}
    fn scope_matches(_scope: (), _laddr: &V4, _ifindex: u32) -> bool {
        true
    }
}

impl Addr for V6 {
    type Scope = u32;
    const FAMILY: u8 = AF_INET6;
    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn from_buf(buf: &[u8; 16]) -> Self {
        V6(*buf)
    }
    fn scope_ifindex(scope: u32) -> u32 {
        scope
    }
    fn scope_from(ifindex: u32) -> u32 {
        ifindex
    }
    fn scope_matches(scope: u32, laddr: &V6, ifindex: u32) -> bool {
        // A link-local address (fe80::/10) means something only on its link (RFC 4007 §6): the
        // same tuple on another interface is another conversation. A scope of 0 matches any.
        let link_local = laddr.0[0] == 0xfe && laddr.0[1] & 0xc0 == 0x80;
        !link_local || scope == 0 || scope == ifindex
    }
}

/// The 4-tuple an entry guards, seen from our side.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Key<A: Addr> {
    /// Our address.
    pub laddr: A,
    /// The peer's address.
    pub raddr: A,
    /// Our port.
    pub lport: u16,
    /// The peer's port.
    pub rport: u16,
}

/// `flags` bits.
pub mod flag {
    /// The connection uses timestamps (RFC 7323).
    pub const HAS_TS: u8 = 1;
    /// `ts_recent` was learned from the peer.
    pub const TS_VALID: u8 = 2;
    /// FIN_WAIT_2: our FIN acknowledged, the peer's not yet seen.
    pub const FIN_WAIT2: u8 = 4;
    /// A reply was sent (`last_reply` is meaningful).
    pub const REPLIED: u8 = 8;
}

/// One compressed entry. Times are the low 32 bits of jiffies: an entry lives at most
/// 2 × 600 s, far below the 2^31 jiffies where the wrapping comparison would break.
#[repr(C)]
pub struct Entry<A: Addr> {
    pub(crate) hash_next: *mut Entry<A>,
    pub(crate) fifo_prev: *mut Entry<A>,
    pub(crate) fifo_next: *mut Entry<A>,
    /// The guarded tuple.
    pub key: Key<A>,
    /// Our next sequence number.
    pub snd_nxt: u32,
    /// The next sequence number expected from the peer.
    pub rcv_nxt: u32,
    /// The peer's last TSval (valid with `flag::TS_VALID`).
    pub ts_recent: u32,
    /// Our TSval clock minus the module's TCP clock.
    pub ts_offset: u32,
    /// Window as on the wire (the seed's `last_win`).
    pub last_win: u16,
    /// `flag::*`.
    pub flags: u8,
    /// Our receive window scale.
    pub rcv_wscale: u8,
    /// When the entry dies (jiffies, low 32 bits).
    pub expires: u32,
    /// When the last reply went out (jiffies, low 32 bits; see `flag::REPLIED`).
    pub last_reply: u32,
    /// IPv6 scope.
    pub scope: A::Scope,
}

/// Seconds-free time arithmetic on 32-bit jiffies.
pub fn jiffies_after_eq(a: u32, b: u32) -> bool {
    // RFC 1982-style serial comparison, as the kernel's time_after_eq().
    (a.wrapping_sub(b) as i32) >= 0
}

impl<A: Addr> Entry<A> {
    /// A new, unlinked entry.
    pub fn new(key: Key<A>, state: &EntryState, ts_offset: u32, expires: u32, scope: A::Scope) -> Self {
        let mut e = Entry {
            hash_next: ptr::null_mut(),
            fifo_prev: ptr::null_mut(),
            fifo_next: ptr::null_mut(),
            key,
            snd_nxt: 0,
            rcv_nxt: 0,
            ts_recent: 0,
            ts_offset,
            last_win: 0,
            flags: 0,
            rcv_wscale: 0,
            expires,
            last_reply: 0,
            scope,
        };
        e.set_state(state);
        e
    }

    /// The decision table's view of the entry.
    pub fn state(&self) -> EntryState {
        EntryState {
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            last_win: self.last_win,
            rcv_wscale: self.rcv_wscale,
            ts_recent: self.ts_recent,
            has_ts: self.flags & flag::HAS_TS != 0,
            ts_recent_valid: self.flags & flag::TS_VALID != 0,
            substate: if self.flags & flag::FIN_WAIT2 != 0 {
                Substate::FinWait2
            } else {
                Substate::TimeWait
            },
        }
    }

    /// Store the decision table's view back (after a FIN_WAIT_2 completion).
    pub fn set_state(&mut self, s: &EntryState) {
        self.snd_nxt = s.snd_nxt;
        self.rcv_nxt = s.rcv_nxt;
        self.last_win = s.last_win;
        self.rcv_wscale = s.rcv_wscale;
        self.ts_recent = s.ts_recent;
        let mut f = self.flags & flag::REPLIED;
        if s.has_ts {
            f |= flag::HAS_TS;
        }
        if s.ts_recent_valid {
            f |= flag::TS_VALID;
        }
        if s.substate == Substate::FinWait2 {
            f |= flag::FIN_WAIT2;
        }
        self.flags = f;
    }

    /// T12: past its expiry, the entry no longer guards the tuple even if the reaper has not
    /// freed it yet.
    pub fn expired(&self, now: u32) -> bool {
        jiffies_after_eq(now, self.expires)
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_entry))]
mod tests {
    use super::*;

    #[test]
    fn ipv4_entry_fits_a_cache_line() {
        assert_eq!(core::mem::size_of::<Entry<V4>>(), 64);
    }

    #[test]
    fn ipv6_entry_size() {
        assert!(core::mem::size_of::<Entry<V6>>() <= 104);
    }

    #[test]
    fn link_local_scope_must_match_the_interface() {
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert!(V6::scope_matches(3, &V6(ll), 3));
        assert!(!V6::scope_matches(3, &V6(ll), 4));
        assert!(V6::scope_matches(0, &V6(ll), 4));
        let mut global = [0u8; 16];
        global[0] = 0xfd;
        assert!(V6::scope_matches(3, &V6(global), 4));
        assert!(V4::scope_matches((), &V4([10, 0, 0, 1]), 9));
    }

    #[test]
    fn jiffies_compare_wraps() {
        assert!(jiffies_after_eq(5, 0xffff_fff0));
        assert!(!jiffies_after_eq(0xffff_fff0, 5));
        assert!(jiffies_after_eq(7, 7));
    }

    #[test]
    fn state_round_trips_through_flags() {
        let s = EntryState {
            snd_nxt: 1,
            rcv_nxt: 2,
            last_win: 3,
            rcv_wscale: 7,
            ts_recent: 0,
            has_ts: true,
            ts_recent_valid: true,
            substate: Substate::FinWait2,
        };
        let e = Entry::<V4>::new(Key::default(), &s, 9, 100, ());
        assert_eq!(e.state(), s);
        assert_eq!(e.ts_offset, 9);
        assert!(!e.expired(99));
        assert!(e.expired(100));
    }
}
