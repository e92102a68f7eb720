// SPDX-License-Identifier: GPL-2.0

//! The compressed TIME_WAIT entry: the seed's `struct tcptw`, cut down to what `tcp_twcheck` and
//! `tcp_twrespond` read, plus the links of the hash chain and the 2MSL FIFO (owned by
//! `table.c`), which become the RCU head once the entry is unlinked.
//!
//! An IPv4 entry is 96 bytes with its links (against 248 for Linux's `tw_sock_TCP`; 64 without
//! the connection's attributes and VRF, D45); IPv6 entries live in a second slab cache so they
//! do not bloat IPv4.

use crate::ffi;
use crate::logic::family::Family;
use crate::logic::time;
use crate::logic::twcheck::{EntryState, Substate};
use core::cell::UnsafeCell;
use kernel::types::Opaque;

/// An address family's address as stored in an entry.
pub(crate) trait Addr: Copy + PartialEq + Default {
    /// Per-family extra state (the IPv6 scope), `()` for IPv4 so it costs nothing.
    type Scope: Copy + Default;
    /// Address family.
    const FAMILY: Family;
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
    /// A loopback address (127/8; ::1 or an IPv4-mapped 127/8), as `tcp_twsk_unique()` tests.
    fn is_loopback(&self) -> bool;
}

/// IPv4 address, network order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub(crate) struct V4(pub(crate) [u8; 4]);

/// IPv6 address, network order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub(crate) struct V6(pub(crate) [u8; 16]);


impl Addr for V4 {
    type Scope = ();
    const FAMILY: Family = Family::V4;
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
    fn is_loopback(&self) -> bool {
        self.0[0] == 127
    }
}

impl Addr for V6 {
    type Scope = u32;
    const FAMILY: Family = Family::V6;
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
    fn is_loopback(&self) -> bool {
        let a = &self.0;
        let v4_mapped = a[..10].iter().all(|b| *b == 0) && a[10] == 0xff && a[11] == 0xff;
        (a[..15].iter().all(|b| *b == 0) && a[15] == 1) || (v4_mapped && a[12] == 127)
    }
}

/// The 4-tuple an entry guards, seen from our side: the hash key, hashed as 32-bit words
/// (`jhash2`), hence the alignment.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, align(4))]
pub(crate) struct Key<A: Addr> {
    /// Our address.
    pub(crate) laddr: A,
    /// The peer's address.
    pub(crate) raddr: A,
    /// Our port.
    pub(crate) lport: u16,
    /// The peer's port.
    pub(crate) rport: u16,
    /// The L3 master (VRF) the socket was bound to, 0 for none: the same addresses in two VRFs
    /// are two conversations (D45).
    pub(crate) l3index: u32,
}

impl<A: Addr> Key<A> {
    /// The same addresses and ports, whatever the VRF (the hook's lookup chose the VRF).
    pub(crate) fn same_tuple(&self, other: &Self) -> bool {
        self.laddr == other.laddr && self.raddr == other.raddr && self.lport == other.lport && self.rport == other.rport
    }
}

/// What Linux's TIME_WAIT keeps of the socket besides the sequence state (`tw_tos` or
/// `tw_tclass`, `tw_mark`, `tw_bound_dev_if`, `tw_flowlabel`, `tw_priority`, `tw_txhash`): how
/// the entry's replies are routed, marked and written, and which device's segments it answers
/// (D45). All 0 for an entry added without a socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Conn {
    /// The socket's mark (`SO_MARK`).
    pub(crate) mark: u32,
    /// The device the socket was bound to (0: none).
    pub(crate) bound_ifindex: u32,
    /// The socket's priority (`SO_PRIORITY`).
    pub(crate) priority: u32,
    /// The connection's transmit hash (0: none).
    pub(crate) txhash: u32,
    /// The IPv6 flow label the socket set (0: none).
    pub(crate) flowlabel: u32,
    /// IPv4 TOS or IPv6 traffic class.
    pub(crate) tos: u8,
}

/// `flags` bits.
pub(crate) mod flag {
    /// The connection uses timestamps (RFC 7323).
    pub(crate) const HAS_TS: u8 = 1;
    /// `ts_recent` was learned from the peer.
    pub(crate) const TS_VALID: u8 = 2;
    /// FIN_WAIT_2: our FIN acknowledged, the peer's not yet seen.
    pub(crate) const FIN_WAIT2: u8 = 4;
    /// A reply was sent (`last_reply` is meaningful).
    pub(crate) const REPLIED: u8 = 8;
    /// In the table: set by the insert, cleared by the removal, both under the stripe lock,
    /// so a lookup that raced with a removal can tell (the memory lives until a grace period).
    pub(crate) const LINKED: u8 = 16;
}

/// The part of an entry that changes while it is in the table: read and written only under its
/// stripe's lock (`table.rs`). `start` is on the module's microsecond clock and `last_reply` in
/// jiffies, both their low 32 bits: an entry lives at most 2 × 600 s, inside the 2^31 range
/// (35 min in microseconds) where the wrapping comparison holds.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Mutable {
    /// Our next sequence number.
    pub(crate) snd_nxt: u32,
    /// The next sequence number expected from the peer.
    pub(crate) rcv_nxt: u32,
    /// The peer's last TSval (valid with `flag::TS_VALID`).
    pub(crate) ts_recent: u32,
    /// When the entry's current timeout (2MSL or fin_timeout) started (microseconds).
    /// Its expiry is `start` plus that timeout as the sysctl says now, so every FIFO, whose
    /// entries share a timeout class, stays sorted by expiry whatever the sysctls do.
    pub(crate) start: u32,
    /// When the last rate-limited reply went out (jiffies, low 32 bits; see `flag::REPLIED`).
    pub(crate) last_reply: u32,
    /// Window as on the wire (the seed's `last_win`).
    pub(crate) last_win: u16,
    /// `flag::*`.
    pub(crate) flags: u8,
    /// Our receive window scale.
    pub(crate) rcv_wscale: u8,
}

/// One compressed entry.
///
/// # Invariants
///
/// `link` belongs to `table.c` (hash chain and FIFO links, or the RCU head once unlinked) and is
/// never touched from Rust. `mutable` is accessed only by the holder of the entry's stripe lock
/// (`table::Occupied`) or, before the entry is published, by its only owner (`table::SlabBox`).
#[repr(C)]
pub(crate) struct Entry<A: Addr> {
    /// Written by C on other CPUs while Rust holds `&Entry` (neighbours' inserts and removals,
    /// rehashing, `call_rcu`): interior mutability Rust never looks into.
    link: Opaque<ffi::rtw_glue_link>,
    /// The guarded tuple (the hash key: it must follow `link` directly).
    pub(crate) key: Key<A>,
    /// IPv6 scope.
    pub(crate) scope: A::Scope,
    /// Our TSval clock minus the module's TCP clock.
    pub(crate) ts_offset: u32,
    /// The connection's reply and lookup attributes.
    pub(crate) conn: Conn,
    mutable: UnsafeCell<Mutable>,
}

// SAFETY: the fields other than `mutable` never change once the entry is published; `mutable`
// is only accessed under the entry's stripe lock (type invariant), which orders those accesses
// between CPUs.
unsafe impl<A: Addr> Sync for Entry<A> {}
// SAFETY: as above; an entry holds no thread-bound resource.
unsafe impl<A: Addr> Send for Entry<A> {}

impl<A: Addr> Entry<A> {
    /// A new, unlinked entry whose timeout starts at `start`.
    pub(crate) fn new(key: Key<A>, state: &EntryState, ts_offset: u32, conn: Conn, start: u32, scope: A::Scope) -> Self {
        let mut m = Mutable { start, ..Mutable::default() };
        m.set_state(state);
        Entry { link: Opaque::uninit(), key, scope, ts_offset, conn, mutable: UnsafeCell::new(m) }
    }

    /// The mutable part.
    ///
    /// # Safety
    ///
    /// The caller holds the entry's stripe lock, or owns the unpublished entry, and creates no
    /// other reference to the mutable part while this one lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn mutable(&self) -> &mut Mutable {
        // SAFETY: exclusive access is the caller's contract.
        unsafe { &mut *self.mutable.get() }
    }

    /// The mutable part, to read.
    ///
    /// # Safety
    ///
    /// The caller holds the entry's stripe lock, or owns the unpublished entry, and nobody
    /// changes the mutable part while this reference lives.
    pub(crate) unsafe fn mutable_ref(&self) -> &Mutable {
        // SAFETY: no writer meanwhile is the caller's contract.
        unsafe { &*self.mutable.get() }
    }
}

impl Mutable {
    /// The decision table's view of the entry.
    pub(crate) fn state(&self) -> EntryState {
        EntryState {
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            last_win: self.last_win,
            rcv_wscale: self.rcv_wscale,
            ts_recent: self.ts_recent,
            has_ts: self.flags & flag::HAS_TS != 0,
            ts_recent_valid: self.flags & flag::TS_VALID != 0,
            substate: self.substate(),
        }
    }

    /// TIME_WAIT or FIN_WAIT_2: also the entry's timeout class and FIFO.
    pub(crate) fn substate(&self) -> Substate {
        if self.flags & flag::FIN_WAIT2 != 0 {
            Substate::FinWait2
        } else {
            Substate::TimeWait
        }
    }

    /// Store the decision table's view back (after a FIN_WAIT_2 completion).
    pub(crate) fn set_state(&mut self, s: &EntryState) {
        self.snd_nxt = s.snd_nxt;
        self.rcv_nxt = s.rcv_nxt;
        self.last_win = s.last_win;
        self.rcv_wscale = s.rcv_wscale;
        self.ts_recent = s.ts_recent;
        let mut f = self.flags & (flag::REPLIED | flag::LINKED);
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

    /// When the entry dies, for a timeout of `timeout` microseconds.
    pub(crate) fn expires(&self, timeout: u32) -> u32 {
        self.start.wrapping_add(timeout)
    }

    /// T12: past its expiry, the entry no longer guards the tuple even if the reaper has not
    /// freed it yet.
    pub(crate) fn expired(&self, now: u32, timeout: u32) -> bool {
        time::after_eq32(now, self.expires(timeout))
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_entry))]
mod tests {
    use super::*;

    #[test]
    fn ipv4_entry_size() {
        // D45: the connection's attributes and VRF take it past one cache line (64 without).
        assert_eq!(core::mem::size_of::<Entry<V4>>(), 96);
    }

    #[test]
    fn ipv6_entry_size() {
        assert!(core::mem::size_of::<Entry<V6>>() <= 128);
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
    fn loopback_addresses() {
        assert!(V4([127, 0, 0, 1]).is_loopback());
        assert!(V4([127, 9, 9, 9]).is_loopback());
        assert!(!V4([10, 0, 0, 1]).is_loopback());
        let mut one = [0u8; 16];
        one[15] = 1;
        assert!(V6(one).is_loopback());
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12] = 127;
        mapped[15] = 1;
        assert!(V6(mapped).is_loopback());
        mapped[12] = 10;
        assert!(!V6(mapped).is_loopback());
        assert!(!V6([0xfd; 16]).is_loopback());
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
        let e = Entry::<V4>::new(Key::default(), &s, 9, Conn::default(), 100, ());
        // SAFETY: `e` is ours alone and unpublished.
        let m = unsafe { e.mutable() };
        assert_eq!(m.state(), s);
        assert_eq!(e.ts_offset, 9);
        assert!(!m.expired(149, 50));
        assert!(m.expired(150, 50));
        // Expiry wraps with jiffies.
        m.start = 0xffff_fff0;
        assert!(!m.expired(0x10, 0x30));
        assert!(m.expired(0x20, 0x30));
    }
}
