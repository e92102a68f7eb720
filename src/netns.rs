// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: the IPv4 and IPv6 tables, the counters, and the operations the
//! hooks, the reaper timer and the netlink commands perform on them. The decisions themselves
//! are `twcheck::decide`'s; this file applies them.
//!
//! Locking: one spinlock per netns, always taken with bottom halves disabled, guards both
//! tables and the counters. Every path that finds an entry also changes it (re-arm, FIN_WAIT_2
//! completion, rate-limit stamp), so readers are writers and RCU would buy little; the hold
//! time is one hash lookup plus a decision. Replies are sent and entries freed after unlocking
//! where possible.

use crate::entry::{jiffies_after_eq, Addr, Entry, Key, V4, V6, AF_INET, AF_INET6};
use crate::ffi;
use crate::policy;
use crate::reply::{self, REPLY_MAX};
use crate::segment::{self, TcpSegment, ACK, SYN};
use crate::table::TimeWaitTable;
use crate::twcheck::{self, EntryState, Reason, Substate, Verdict};
use core::ffi::c_void;
use core::ptr;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::SpinLock;

/// Counters (spec section 8), in the order of `enum rtw_glue_stat` and the netlink spec.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Stat {
    /// Entries now in the table.
    Entries = 0,
    /// Entries added.
    Added,
    /// Adds refused by `nolocaltimewait`.
    RefusedNolocal,
    /// Adds refused because the tuple was guarded.
    RefusedExists,
    /// Adds refused as invalid.
    RefusedInvalid,
    /// Oldest entries recycled because the table was full.
    Recycled,
    /// Entries that reached their 2MSL expiry.
    Expired,
    /// Entries deleted (netlink, flush, replace, RST in FIN_WAIT_2).
    Deleted,
    /// New SYNs let through (T3/T4).
    SynReuse,
    /// RSTs dropped (T1).
    RstDropped,
    /// Segments that failed PAWS.
    PawsDropped,
    /// ACKs sent.
    AcksSent,
    /// RSTs sent (FIN_WAIT_2).
    RstsSent,
    /// Replies suppressed by the rate limit.
    RepliesRatelimited,
    /// Segments consumed.
    SegmentsDropped,
    /// FIN_WAIT_2 entries that saw the peer's FIN.
    FinWait2Completed,
    /// FIN_WAIT_2 entries that timed out.
    FinWait2Timeouts,
    /// Local connect()s allowed to reuse a guarded tuple.
    LocalConnectReuse,
    /// Local connect()s dropped on a guarded tuple.
    LocalConnectDropped,
    /// Effective `maxtcptw`.
    Capacity,
}

/// Number of counters.
pub const STAT_COUNT: usize = ffi::rtw_glue_stat_RTW_GLUE_STAT_COUNT as usize;

// The Rust and C numbering must agree: checked at build time, not hoped for.
const _: () = assert!(Stat::Capacity as usize + 1 == STAT_COUNT);
const _: () = assert!(Stat::Expired as u32 == ffi::rtw_glue_stat_RTW_GLUE_STAT_EXPIRED);
const _: () = assert!(Stat::FinWait2Timeouts as u32 == ffi::rtw_glue_stat_RTW_GLUE_STAT_FIN_WAIT2_TIMEOUTS);

/// Entries reaped per timer run: a million expiring entries never stall softirq for long.
const REAP_BATCH: usize = 256;
/// Entries freed per lock hold by a flush.
const FLUSH_BATCH: usize = 1024;
/// TTL/hop limit placeholder: the glue sets the route's value before sending.
const TTL_PLACEHOLDER: u8 = 64;

/// The tables and counters guarded by the per-netns lock.
pub struct Tables {
    v4: TimeWaitTable<V4>,
    v6: TimeWaitTable<V6>,
    stats: [u64; STAT_COUNT],
}

impl Tables {
    fn bump(&mut self, s: Stat) {
        self.stats[s as usize] = self.stats[s as usize].wrapping_add(1);
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// Picks a family's table out of [`Tables`].
pub trait Family: Addr {
    /// This family's table.
    fn table(t: &mut Tables) -> &mut TimeWaitTable<Self>;
}

impl Family for V4 {
    fn table(t: &mut Tables) -> &mut TimeWaitTable<V4> {
        &mut t.v4
    }
}

impl Family for V6 {
    fn table(t: &mut Tables) -> &mut TimeWaitTable<V6> {
        &mut t.v6
    }
}

/// One network namespace's state.
///
/// # Invariants
///
/// `gn` points to the netns's `struct rtw_glue_net`, which outlives this object: the glue
/// creates the state in its pernet `init` and destroys it in `exit` before the pernet memory
/// goes away.
#[pin_data]
pub struct NetState {
    gn: *mut ffi::rtw_glue_net,
    /// Entries in the tables, published on every unlock: the hooks skip an empty netns without
    /// taking the lock, so a host that guards nothing pays one load per TCP segment.
    populated: Atomic<usize>,
    #[pin]
    inner: SpinLock<Tables>,
}

/// The lock held with bottom halves disabled: the hook and the timer take it in softirq, so
/// process context must not be interrupted by them while holding it.
struct BhGuard<'a> {
    guard: core::mem::ManuallyDrop<kernel::sync::lock::Guard<'a, Tables, kernel::sync::lock::spinlock::SpinLockBackend>>,
    populated: &'a Atomic<usize>,
}

impl core::ops::Deref for BhGuard<'_> {
    type Target = Tables;
    fn deref(&self) -> &Tables {
        &self.guard
    }
}

impl core::ops::DerefMut for BhGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tables {
        &mut self.guard
    }
}

impl Drop for BhGuard<'_> {
    fn drop(&mut self) {
        // Every change to the tables is made under this guard, so publishing here on every
        // unlock keeps `populated` exact without a store at each call site.
        self.populated.store(self.guard.len(), Relaxed);
        // SAFETY: dropped exactly once, here; the lock is released before BHs are re-enabled.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        // SAFETY: pairs with the `rtw_glue_bh_disable` in `NetState::lock`.
        unsafe { ffi::rtw_glue_bh_enable() };
    }
}

fn now() -> u64 {
    // SAFETY: reads jiffies; no preconditions.
    unsafe { ffi::rtw_glue_jiffies() }
}

fn ms_to_jiffies(ms: u32) -> u64 {
    // SAFETY: pure conversion; no preconditions.
    unsafe { ffi::rtw_glue_msecs_to_jiffies(ms) }
}

fn jiffies_to_ms(j: u64) -> u32 {
    // SAFETY: pure conversion; no preconditions.
    unsafe { ffi::rtw_glue_jiffies_to_msecs(j) }
}

/// Widen a 32-bit jiffies stamp near `now` back to 64 bits.
fn widen(stamp: u32, now: u64) -> u64 {
    let delta = stamp.wrapping_sub(now as u32) as i32;
    now.wrapping_add(delta as i64 as u64)
}

fn free_entry<A: Addr>(e: *mut Entry<A>) {
    if !e.is_null() {
        // SAFETY: `e` came from `rtw_glue_entry_alloc(A::FAMILY)` and is in no table; an
        // `Entry` has no destructor to run.
        unsafe { ffi::rtw_glue_entry_free(A::FAMILY, e.cast()) };
    }
}

/// A segment's tuple from our side: incoming segments are addressed to us, outgoing from us.
fn key_of<A: Addr>(seg: &TcpSegment, incoming: bool) -> Key<A> {
    if incoming {
        Key { laddr: A::from_buf(&seg.dst_addr), raddr: A::from_buf(&seg.src_addr), lport: seg.dst_port, rport: seg.src_port }
    } else {
        Key { laddr: A::from_buf(&seg.src_addr), raddr: A::from_buf(&seg.dst_addr), lport: seg.src_port, rport: seg.dst_port }
    }
}

/// What the hook does once the lock is released.
struct Outcome<A: Addr> {
    verdict: u32,
    reply: [u8; REPLY_MAX],
    reply_len: usize,
    free: *mut Entry<A>,
}

impl NetState {
    /// Whether the netns guards anything, without taking the lock: the hook asks before it
    /// even copies a header. A segment racing with the first add is indistinguishable from one
    /// that arrived just before it.
    pub fn guards_any(&self) -> bool {
        self.populated.load(Relaxed) != 0
    }

    /// A new, empty state for the netns whose glue state is `gn`.
    pub fn new(gn: *mut ffi::rtw_glue_net) -> Result<Pin<KBox<Self>>> {
        // SAFETY: no preconditions.
        let seed = unsafe { ffi::rtw_glue_random_u64() };
        let tables = Tables {
            v4: TimeWaitTable::new(seed)?,
            v6: TimeWaitTable::new(seed.rotate_left(17))?,
            stats: [0; STAT_COUNT],
        };
        KBox::pin_init(
            pin_init!(NetState {
                gn,
                populated: Atomic::new(0),
                inner <- kernel::new_spinlock!(tables, "rust_timewait"),
            }),
            GFP_KERNEL,
        )
    }

    fn lock(&self) -> BhGuard<'_> {
        // SAFETY: no preconditions; paired with the enable in `BhGuard::drop`.
        unsafe { ffi::rtw_glue_bh_disable() };
        BhGuard { guard: core::mem::ManuallyDrop::new(self.inner.lock()), populated: &self.populated }
    }

    fn sysctl(&self, which: u32) -> i32 {
        // SAFETY: `gn` is valid for our lifetime (type invariant).
        unsafe { ffi::rtw_glue_sysctl_get(self.gn, which as i32) }
    }

    fn msl2_jiffies(&self) -> u64 {
        let msl = self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS) as u32;
        ms_to_jiffies(msl.saturating_mul(2))
    }

    fn fin_timeout_jiffies(&self) -> u64 {
        ms_to_jiffies(self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS) as u32)
    }

    fn timeout_of(&self, substate: Substate) -> u64 {
        match substate {
            Substate::TimeWait => self.msl2_jiffies(),
            Substate::FinWait2 => self.fin_timeout_jiffies(),
        }
    }

    /// The table bound in force (`maxtcptw`, or half the ephemeral port range when 0).
    pub fn capacity(&self) -> u32 {
        let (mut lo, mut hi) = (0i32, 0i32);
        // SAFETY: `gn` is valid (type invariant); the out-pointers are live locals.
        unsafe { ffi::rtw_glue_port_range(self.gn, &mut lo, &mut hi) };
        policy::effective_capacity(
            self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MAXTCPTW),
            lo.clamp(0, 65535) as u16,
            hi.clamp(0, 65535) as u16,
        )
    }

    fn arm_reaper(&self, expires: u64) {
        // SAFETY: `gn` is valid (type invariant); the timer is set up before the state exists
        // and shut down only after no hook or netlink command can reach it.
        unsafe { ffi::rtw_glue_reaper_arm(self.gn, expires) };
    }

    // ---- the hooks ----

    /// A segment from a hook. `ctx` is the glue's handle for checksum and reply.
    #[allow(clippy::too_many_arguments)]
    pub fn hook(
        &self,
        family: u8,
        head: &[u8],
        skb_len: u32,
        output: bool,
        link_bcast: bool,
        ifindex: u32,
        ctx: *mut c_void,
    ) -> u32 {
        let parsed = match family {
            AF_INET => segment::parse_ipv4(head, skb_len),
            AF_INET6 => segment::parse_ipv6(head, skb_len),
            _ => return ffi::NF_ACCEPT,
        };
        // Not a well-formed TCP segment: the stack deals with it (spec section 3).
        let Ok(mut seg) = parsed else { return ffi::NF_ACCEPT };
        if link_bcast {
            seg.mcast_or_bcast = true;
        }
        match (family, output) {
            (AF_INET, false) => self.input::<V4>(&seg, ifindex, ctx),
            (AF_INET6, false) => self.input::<V6>(&seg, ifindex, ctx),
            (AF_INET, true) => self.local_connect::<V4>(&seg, ifindex),
            _ => self.local_connect::<V6>(&seg, ifindex),
        }
    }

    fn input<A: Family>(&self, seg: &TcpSegment, ifindex: u32, ctx: *mut c_void) -> u32 {
        let out = self.input_locked::<A>(seg, ifindex, ctx);
        free_entry(out.free);
        if out.reply_len > 0 {
            let Some(bytes) = out.reply.get(..out.reply_len) else { return out.verdict };
            // SAFETY: `ctx` is the glue's live handle for the segment being processed, and
            // `bytes` is a complete IP packet of `bytes.len()` bytes.
            let _ = unsafe { ffi::rtw_glue_reply(ctx, bytes.as_ptr(), bytes.len() as u32) };
        }
        out.verdict
    }

    fn input_locked<A: Family>(&self, seg: &TcpSegment, ifindex: u32, ctx: *mut c_void) -> Outcome<A> {
        let mut out = Outcome { verdict: ffi::NF_ACCEPT, reply: [0; REPLY_MAX], reply_len: 0, free: ptr::null_mut() };
        let key = key_of::<A>(seg, true);
        let now64 = now();
        let now32 = now64 as u32;
        let mut guard = self.lock();
        let tables: &mut Tables = &mut guard;
        let e = A::table(tables).lookup(&key);
        if e.is_null() {
            return out;
        }
        // SAFETY: `e` is an entry of the table and we hold the lock.
        let entry = unsafe { &mut *e };
        if !A::scope_matches(entry.scope, &key.laddr, ifindex) {
            return out;
        }
        if entry.expired(now32) {
            // T12: the reaper has not come by yet; the tuple is no longer ours.
            // SAFETY: `e` is an entry of this table.
            unsafe { retire_expired::<A>(tables, e) };
            out.free = e;
            return out;
        }
        // A segment the stack would drop as corrupt must not move our state (spec section 3).
        // SAFETY: `ctx` is the glue's live handle for this segment.
        if !unsafe { ffi::rtw_glue_pkt_csum_ok(ctx) } {
            return out;
        }

        let mut state = entry.state();
        let d = twcheck::decide(&state, seg);
        match d.reason {
            Reason::RstDropped => tables.bump(Stat::RstDropped),
            Reason::PawsRejected | Reason::Fw2PawsRejected => tables.bump(Stat::PawsDropped),
            _ => {}
        }
        if let Some(done) = d.transition {
            state.complete_fin_wait2(done);
            entry.set_state(&state);
            tables.bump(Stat::FinWait2Completed);
        }

        match d.verdict {
            Verdict::Pass => {}
            Verdict::Drop => {
                out.verdict = ffi::NF_DROP;
                tables.bump(Stat::SegmentsDropped);
            }
            Verdict::AckAndDrop => {
                out.verdict = ffi::NF_DROP;
                tables.bump(Stat::SegmentsDropped);
                let last = if entry.flags & crate::entry::flag::REPLIED != 0 {
                    widen(entry.last_reply, now64)
                } else {
                    policy::NEVER_REPLIED
                };
                // SAFETY: `gn` is valid (type invariant).
                let interval = u64::from(unsafe { ffi::rtw_glue_invalid_ratelimit_jiffies(self.gn) });
                if !d.rate_limited || policy::ratelimit_allows(last, now64, interval) {
                    // SAFETY: no preconditions.
                    let clock = unsafe { ffi::rtw_glue_tcp_clock_ms() };
                    let tsval = clock.wrapping_add(entry.ts_offset);
                    out.reply_len = reply::build_entry_ack(&mut out.reply, seg, &state, tsval, TTL_PLACEHOLDER);
                    entry.last_reply = policy::ratelimit_stamp(now64) as u32;
                    entry.flags |= crate::entry::flag::REPLIED;
                    tables.bump(Stat::AcksSent);
                } else {
                    tables.bump(Stat::RepliesRatelimited);
                }
            }
            Verdict::RstAndDelete => {
                out.verdict = ffi::NF_DROP;
                out.reply_len = reply::build_rst(&mut out.reply, seg, TTL_PLACEHOLDER);
                if out.reply_len > 0 {
                    tables.bump(Stat::RstsSent);
                }
                tables.bump(Stat::SegmentsDropped);
                tables.bump(Stat::Deleted);
                // SAFETY: `e` is an entry of this table.
                unsafe { A::table(tables).remove(e) };
                out.free = e;
            }
            Verdict::DeleteAndPass => {
                tables.bump(Stat::SynReuse);
                // SAFETY: `e` is an entry of this table.
                unsafe { A::table(tables).remove(e) };
                out.free = e;
            }
            Verdict::DeleteAndDrop => {
                out.verdict = ffi::NF_DROP;
                tables.bump(Stat::SegmentsDropped);
                tables.bump(Stat::Deleted);
                // SAFETY: `e` is an entry of this table.
                unsafe { A::table(tables).remove(e) };
                out.free = e;
            }
        }
        // Last, once `entry` is no longer used: the requeue writes through `e`. Re-arm and
        // completion only come with an ACK, never with a deleting verdict.
        if out.free.is_null() && (d.rearm_2msl || d.transition.is_some()) {
            let expires = now64.wrapping_add(self.msl2_jiffies());
            // SAFETY: `e` is an entry of this table (not removed: `out.free` is null).
            unsafe { A::table(tables).requeue(e, expires as u32) };
            self.arm_reaper(expires);
        }
        out
    }

    /// Spec section 7: a local connect() onto a guarded tuple.
    fn local_connect<A: Family>(&self, seg: &TcpSegment, ifindex: u32) -> u32 {
        if !(seg.has_flag(SYN) && !seg.has_flag(ACK)) {
            return ffi::NF_ACCEPT;
        }
        let key = key_of::<A>(seg, false);
        let now64 = now();
        let mut verdict = ffi::NF_ACCEPT;
        let mut free = ptr::null_mut();
        {
            let mut guard = self.lock();
            let tables: &mut Tables = &mut guard;
            let e = A::table(tables).lookup(&key);
            if e.is_null() {
                return ffi::NF_ACCEPT;
            }
            // SAFETY: `e` is an entry of the table and we hold the lock.
            let entry = unsafe { &*e };
            if !A::scope_matches(entry.scope, &key.laddr, ifindex) {
                return ffi::NF_ACCEPT;
            }
            let state = entry.state();
            let started = widen(entry.expires, now64).wrapping_sub(self.timeout_of(state.substate));
            // The timeout is today's sysctl; if it shrank since the entry was armed, `started`
            // lands in the future: call the entry new rather than let the age wrap.
            let age = now64.wrapping_sub(started);
            let age_ms = if (age as i64) < 0 { 0 } else { jiffies_to_ms(age) };
            if entry.expired(now64 as u32) || policy::local_reuse_allowed(state.has_ts, age_ms) {
                tables.bump(Stat::LocalConnectReuse);
                // SAFETY: `e` is an entry of this table.
                unsafe { A::table(tables).remove(e) };
                free = e;
            } else {
                tables.bump(Stat::LocalConnectDropped);
                verdict = ffi::NF_DROP;
            }
        }
        free_entry::<A>(free);
        verdict
    }

    // ---- the reaper ----

    /// Free expired entries from the FIFO heads, at most `REAP_BATCH` per run.
    pub fn reap(&self) {
        let now64 = now();
        let now32 = now64 as u32;
        let mut next: Option<u64> = None;
        {
            let mut guard = self.lock();
            let tables: &mut Tables = &mut guard;
            let mut budget = REAP_BATCH;
            budget = reap_family::<V4>(tables, now32, budget);
            budget = reap_family::<V6>(tables, now32, budget);
            if budget == 0 {
                // More may be due: come back on the next tick rather than loop in softirq.
                next = Some(now64.wrapping_add(1));
            } else {
                // Lazy FIFO (spec section 2): the head decides when to look again; an entry
                // behind it with a shorter timeout is already dead to lookups (T12).
                for head in [oldest_expiry::<V4>(tables), oldest_expiry::<V6>(tables)].into_iter().flatten() {
                    let at = widen(head, now64);
                    next = Some(next.map_or(at, |n: u64| if jiffies_after_eq(at as u32, n as u32) { n } else { at }));
                }
            }
        }
        if let Some(at) = next {
            self.arm_reaper(at);
        }
    }

    // ---- netlink ----

    /// Add one entry. Returns 0 or a negative errno (the entry's `result` in the reply).
    pub fn add(&self, g: &ffi::rtw_glue_entry, replace: bool) -> i32 {
        match g.family {
            AF_INET => self.add_family::<V4>(g, replace),
            AF_INET6 => self.add_family::<V6>(g, replace),
            _ => -(kernel::bindings::EINVAL as i32),
        }
    }

    fn add_family<A: Family>(&self, g: &ffi::rtw_glue_entry, replace: bool) -> i32 {
        if self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT) != 0
            // SAFETY: `gn` is valid (type invariant); `raddr` is 16 readable bytes.
            && unsafe { ffi::rtw_glue_addr_is_local(self.gn, A::FAMILY, g.raddr.as_ptr()) }
        {
            // The seed's in_localip(): a local peer has its own TIME_WAIT to answer for it.
            self.lock().bump(Stat::RefusedNolocal);
            return -(kernel::bindings::EADDRNOTAVAIL as i32);
        }
        let state = EntryState {
            snd_nxt: g.snd_nxt,
            rcv_nxt: g.rcv_nxt,
            last_win: g.last_win,
            rcv_wscale: g.rcv_wscale.min(twcheck::MAX_WSCALE),
            ts_recent: g.ts_recent,
            has_ts: g.has_ts,
            ts_recent_valid: g.ts_recent_valid,
            substate: if u32::from(g.substate) == ffi::rtw_glue_substate_RTW_GLUE_FIN_WAIT2 {
                Substate::FinWait2
            } else {
                Substate::TimeWait
            },
        };
        let key = Key { laddr: A::from_buf(&g.laddr), raddr: A::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
        self.grow_if_needed::<A>();

        // SAFETY: no preconditions; GFP_KERNEL from process context (netlink).
        let p: *mut Entry<A> = unsafe { ffi::rtw_glue_entry_alloc(A::FAMILY) }.cast();
        if p.is_null() {
            return -(kernel::bindings::ENOMEM as i32);
        }
        let now64 = now();
        let timeout = self.timeout_of(state.substate);
        let expires = now64.wrapping_add(timeout);
        let capacity = self.capacity() as usize;
        let mut free_v4: *mut Entry<V4> = ptr::null_mut();
        let mut free_v6: *mut Entry<V6> = ptr::null_mut();
        let mut free_new: *mut Entry<A> = ptr::null_mut();
        let mut free_old: *mut Entry<A> = ptr::null_mut();
        let result;
        {
            let mut guard = self.lock();
            let tables: &mut Tables = &mut guard;
            let mut existing = A::table(tables).lookup(&key);
            // An entry past its expiry no longer guards the tuple (T12), reaped or not.
            // SAFETY: a non-null lookup is an entry of the table; we hold the lock.
            if !existing.is_null() && unsafe { (*existing).expired(now64 as u32) } {
                // SAFETY: `existing` is an entry of this table.
                unsafe { retire_expired::<A>(tables, existing) };
                free_old = existing;
                existing = ptr::null_mut();
            }
            if !existing.is_null() && !replace {
                tables.bump(Stat::RefusedExists);
                free_new = p;
                result = -(kernel::bindings::EEXIST as i32);
            } else {
                if !existing.is_null() {
                    // SAFETY: `existing` is an entry of this table.
                    unsafe { A::table(tables).remove(existing) };
                    tables.bump(Stat::Deleted);
                    free_new = existing;
                }
                // Full: recycle the oldest entry, as the seed's tcp_tw_2msl_scan(1) when
                // uma_zalloc fails.
                if tables.len() >= capacity {
                    let older_v4 = match (oldest_expiry::<V4>(tables), oldest_expiry::<V6>(tables)) {
                        (Some(a), Some(b)) => !jiffies_after_eq(a, b) || a == b,
                        (Some(_), None) => true,
                        _ => false,
                    };
                    let now32 = now64 as u32;
                    if older_v4 {
                        free_v4 = recycle_oldest::<V4>(tables, now32);
                    } else {
                        free_v6 = recycle_oldest::<V6>(tables, now32);
                    }
                }
                let scope = A::scope_from(g.ifindex);
                // SAFETY: `p` is a fresh slab object sized and aligned for `Entry<A>` (the cache
                // was created with its size and alignment).
                unsafe { ptr::write(p, Entry::new(key, &state, g.ts_offset, expires as u32, scope)) };
                // SAFETY: `p` is initialised, in no table, and its key is not in this one (the
                // lookup above, under the same lock).
                unsafe { A::table(tables).insert(p) };
                tables.bump(Stat::Added);
                result = 0;
            }
        }
        if result == 0 {
            self.arm_reaper(expires);
        }
        free_entry(free_new);
        free_entry(free_old);
        free_entry(free_v4);
        free_entry(free_v6);
        result
    }

    /// Grow a family's hash table when it holds more than two entries per chain. Allocates
    /// outside the lock (GFP_KERNEL), rehashes under it.
    fn grow_if_needed<A: Family>(&self) {
        let want = {
            let mut guard = self.lock();
            let t = A::table(&mut guard);
            let w = t.wanted_buckets();
            if w <= t.bucket_count() {
                return;
            }
            w
        };
        let Ok(new) = KVVec::from_elem(ptr::null_mut(), want, GFP_KERNEL) else { return };
        let mut guard = self.lock();
        let t = A::table(&mut guard);
        if t.bucket_count() < want {
            t.rehash(new);
        }
    }

    /// Delete the entry guarding the tuple of `g`.
    pub fn del(&self, g: &ffi::rtw_glue_entry) -> i32 {
        match g.family {
            AF_INET => self.del_family::<V4>(g),
            AF_INET6 => self.del_family::<V6>(g),
            _ => -(kernel::bindings::EINVAL as i32),
        }
    }

    fn del_family<A: Family>(&self, g: &ffi::rtw_glue_entry) -> i32 {
        let key = Key { laddr: A::from_buf(&g.laddr), raddr: A::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
        let now32 = now() as u32;
        let (e, result) = {
            let mut guard = self.lock();
            let tables: &mut Tables = &mut guard;
            let e = A::table(tables).lookup(&key);
            if e.is_null() {
                return -(kernel::bindings::ENOENT as i32);
            }
            // SAFETY: `e` is an entry of the table and we hold the lock.
            if unsafe { (*e).expired(now32) } {
                // Dead already (T12): reap it, and tell the caller nothing guarded the tuple.
                // SAFETY: `e` is an entry of this table.
                unsafe { retire_expired::<A>(tables, e) };
                (e, -(kernel::bindings::ENOENT as i32))
            } else {
                // SAFETY: `e` is an entry of this table.
                unsafe { A::table(tables).remove(e) };
                tables.bump(Stat::Deleted);
                (e, 0)
            }
        };
        free_entry(e);
        result
    }

    /// Fill `g` (given its key) with the entry guarding the tuple.
    pub fn get(&self, g: &mut ffi::rtw_glue_entry) -> i32 {
        match g.family {
            AF_INET => self.get_family::<V4>(g),
            AF_INET6 => self.get_family::<V6>(g),
            _ => -(kernel::bindings::EINVAL as i32),
        }
    }

    fn get_family<A: Family>(&self, g: &mut ffi::rtw_glue_entry) -> i32 {
        let key = Key { laddr: A::from_buf(&g.laddr), raddr: A::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
        let now64 = now();
        let mut guard = self.lock();
        let e = A::table(&mut guard).lookup(&key);
        if e.is_null() {
            return -(kernel::bindings::ENOENT as i32);
        }
        // SAFETY: `e` is an entry of the table and we hold the lock.
        let entry = unsafe { &*e };
        if entry.expired(now64 as u32) {
            return -(kernel::bindings::ENOENT as i32);
        }
        export(entry, now64, g);
        0
    }

    /// Dump from `cursor`; `emit` returns non-zero when the message is full.
    /// Cursor: bit 63 set once IPv4 is done, bits 32..62 the bucket, bits 0..31 the position.
    pub fn dump(&self, cursor: &mut u64, generation: &mut u32, emit: impl Fn(&ffi::rtw_glue_entry) -> i32) -> i32 {
        const V6_BIT: u64 = 1 << 63;
        const DONE: u64 = u64::MAX;
        if *cursor == DONE {
            return 0;
        }
        let now64 = now();
        let mut guard = self.lock();
        let tables: &mut Tables = &mut guard;
        *generation = tables.v4.changes().wrapping_add(tables.v6.changes());
        let visit = |g: &ffi::rtw_glue_entry| emit(g) == 0;
        let pos = (((*cursor & !V6_BIT) >> 32) as usize, (*cursor & 0xffff_ffff) as usize);
        if *cursor & V6_BIT == 0 {
            let stop = tables.v4.walk_from(pos, |e| {
                let mut g = ffi::rtw_glue_entry::default();
                e.expired(now64 as u32) || { export(e, now64, &mut g); visit(&g) }
            });
            if let Some((b, p)) = stop {
                *cursor = ((b as u64) << 32) | p as u64;
                return -(kernel::bindings::EMSGSIZE as i32);
            }
            *cursor = V6_BIT;
        }
        let pos = (((*cursor & !V6_BIT) >> 32) as usize, (*cursor & 0xffff_ffff) as usize);
        let stop = tables.v6.walk_from(pos, |e| {
            let mut g = ffi::rtw_glue_entry::default();
            e.expired(now64 as u32) || { export(e, now64, &mut g); visit(&g) }
        });
        match stop {
            Some((b, p)) => {
                *cursor = V6_BIT | ((b as u64) << 32) | p as u64;
                -(kernel::bindings::EMSGSIZE as i32)
            }
            None => {
                *cursor = DONE;
                0
            }
        }
    }

    /// Delete every entry; returns how many. Frees in batches so softirq is never held off
    /// for a whole large table.
    pub fn flush(&self) -> u32 {
        let mut n: u32 = 0;
        loop {
            let mut guard = self.lock();
            let tables: &mut Tables = &mut guard;
            let mut batch = 0;
            while batch < FLUSH_BATCH {
                let e4 = tables.v4.pop_oldest();
                if !e4.is_null() {
                    free_entry(e4);
                } else {
                    let e6 = tables.v6.pop_oldest();
                    if e6.is_null() {
                        break;
                    }
                    free_entry(e6);
                }
                batch += 1;
                tables.bump(Stat::Deleted);
            }
            n = n.saturating_add(batch as u32);
            if batch < FLUSH_BATCH {
                return n;
            }
        }
    }

    /// A request the glue refused as malformed.
    pub fn count_invalid(&self) {
        self.lock().bump(Stat::RefusedInvalid);
    }

    /// The counters.
    pub fn stats(&self, out: &mut [u64; STAT_COUNT]) {
        let capacity = self.capacity();
        let guard = self.lock();
        *out = guard.stats;
        out[Stat::Entries as usize] = guard.len() as u64;
        out[Stat::Capacity as usize] = u64::from(capacity);
    }

    /// Free every entry (netns exit). Nothing else can reach the state any more.
    pub fn drain(&self) {
        self.flush();
    }
}

fn reap_family<A: Family>(tables: &mut Tables, now32: u32, mut budget: usize) -> usize {
    while budget > 0 {
        let e = A::table(tables).oldest();
        if e.is_null() {
            break;
        }
        // SAFETY: `e` is an entry of the table and the caller holds the lock.
        if !unsafe { (*e).expired(now32) } {
            break;
        }
        // SAFETY: `e` is an entry of this table.
        unsafe { retire_expired::<A>(tables, e) };
        free_entry(e);
        budget -= 1;
    }
    budget
}

/// The counter an entry's death at its expiry goes to.
fn expiry_stat<A: Addr>(e: &Entry<A>) -> Stat {
    match e.state().substate {
        Substate::TimeWait => Stat::Expired,
        Substate::FinWait2 => Stat::FinWait2Timeouts,
    }
}

/// Unlink an entry that died at its expiry and count it; the caller frees it.
///
/// # Safety
///
/// `e` must be an entry of the family's table, and the caller holds the lock.
unsafe fn retire_expired<A: Family>(tables: &mut Tables, e: *mut Entry<A>) {
    // SAFETY: `e` is a valid entry of the table (caller's contract).
    let stat = expiry_stat(unsafe { &*e });
    // SAFETY: as above.
    unsafe { A::table(tables).remove(e) };
    tables.bump(stat);
}

/// Make room: unlink the family's oldest entry (the seed's `tcp_tw_2msl_scan(1)`) and count it
/// as recycled, or as expired if it was past its expiry anyway. The caller frees it.
fn recycle_oldest<A: Family>(tables: &mut Tables, now32: u32) -> *mut Entry<A> {
    let e = A::table(tables).pop_oldest();
    if !e.is_null() {
        // SAFETY: popped from the table, so a valid entry that is ours.
        let entry = unsafe { &*e };
        tables.bump(if entry.expired(now32) { expiry_stat(entry) } else { Stat::Recycled });
    }
    e
}

fn oldest_expiry<A: Family>(tables: &mut Tables) -> Option<u32> {
    let e = A::table(tables).oldest();
    // SAFETY: a non-null head is an entry of the table; the caller holds the lock.
    (!e.is_null()).then(|| unsafe { (*e).expires })
}

fn export<A: Addr>(e: &Entry<A>, now64: u64, g: &mut ffi::rtw_glue_entry) {
    let s = e.state();
    g.family = A::FAMILY;
    let n = e.key.laddr.bytes().len();
    g.laddr[..n].copy_from_slice(e.key.laddr.bytes());
    g.raddr[..n].copy_from_slice(e.key.raddr.bytes());
    g.lport = e.key.lport;
    g.rport = e.key.rport;
    g.ifindex = A::scope_ifindex(e.scope);
    g.snd_nxt = s.snd_nxt;
    g.rcv_nxt = s.rcv_nxt;
    g.last_win = s.last_win;
    g.rcv_wscale = s.rcv_wscale;
    g.ts_recent = s.ts_recent;
    g.ts_offset = e.ts_offset;
    g.has_ts = s.has_ts;
    g.ts_recent_valid = s.ts_recent_valid;
    g.substate = match s.substate {
        Substate::TimeWait => ffi::rtw_glue_substate_RTW_GLUE_TIME_WAIT as u8,
        Substate::FinWait2 => ffi::rtw_glue_substate_RTW_GLUE_FIN_WAIT2 as u8,
    };
    let left = e.expires.wrapping_sub(now64 as u32) as i32;
    g.expires_ms = if left > 0 { jiffies_to_ms(left as u64) } else { 0 };
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_netns))]
mod tests {
    use super::*;

    #[test]
    fn widen_recovers_nearby_stamps() {
        let now = 0x1_0000_0010u64;
        assert_eq!(widen(0x20, now), 0x1_0000_0020);
        assert_eq!(widen(0x05, now), 0x1_0000_0005);
        // Just before the 32-bit wrap of the low half.
        assert_eq!(widen(0xffff_fff0, now), 0x0_ffff_fff0);
    }

    #[test]
    fn key_of_swaps_for_incoming() {
        let mut seg = TcpSegment {
            family: segment::Family::V4,
            src_addr: [0; 16],
            dst_addr: [0; 16],
            src_port: 40000,
            dst_port: 80,
            seq: 0,
            ack: 0,
            flags: ACK,
            window: 0,
            payload_len: 0,
            ts: None,
            mcast_or_bcast: false,
        };
        seg.src_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        seg.dst_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        let k = key_of::<V4>(&seg, true);
        assert_eq!(k.laddr.0, [10, 0, 0, 1]);
        assert_eq!(k.lport, 80);
        assert_eq!(k.rport, 40000);
        let k = key_of::<V4>(&seg, false);
        assert_eq!(k.laddr.0, [10, 0, 0, 2]);
        assert_eq!(k.lport, 40000);
    }
}
