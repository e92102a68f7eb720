// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: the tables, and the operations the hooks, the reaper and the
//! netlink commands perform on them. The decisions themselves are `twcheck::decide`'s; this
//! file applies them.
//!
//! Concurrency (docs/decisions.md D20): a segment for a tuple the netns does not guard never
//! reaches this file (the C hook's RCU lookup misses). A hit, and every netlink command, locks
//! only the entry's stripe; checksums are verified and replies sent outside it. Counters are
//! per-CPU. The reaper is a worker that frees expired FIFO heads a bounded batch per lock hold.

use crate::entry::{time_after_eq32, Addr, Entry, Key, Mutable, V4, V6, AF_INET, AF_INET6};
use crate::ffi;
use crate::policy;
use crate::reply::{self, REPLY_MAX};
use crate::segment::{self, TcpSegment, ACK, SYN};
use crate::table::{SlabBox, StripeGuard, Tables, CLASSES};
use crate::twcheck::{self, EntryState, Reason, Substate, Verdict};
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::rcu;

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
    /// ACKs sent (handed to the output path without error).
    AcksSent,
    /// RSTs sent (FIN_WAIT_2; handed to the output path without error).
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
    /// Replies built but not sent (no route, no memory, dropped by the output path).
    RepliesFailed,
}

/// Number of counters.
pub const STAT_COUNT: usize = ffi::rtw_glue_stat_RTW_GLUE_STAT_COUNT as usize;

// The Rust and C numbering must agree: checked at build time, not hoped for.
const _: () = assert!(Stat::RepliesFailed as usize + 1 == STAT_COUNT);
const _: () = assert!(Stat::Capacity as u32 == ffi::rtw_glue_stat_RTW_GLUE_STAT_CAPACITY);
const _: () = assert!(Stat::Expired as u32 == ffi::rtw_glue_stat_RTW_GLUE_STAT_EXPIRED);
const _: () = assert!(Stat::FinWait2Timeouts as u32 == ffi::rtw_glue_stat_RTW_GLUE_STAT_FIN_WAIT2_TIMEOUTS);

/// Entries freed per stripe lock hold by the reaper and a flush: a hold stays far below a
/// millisecond even under emulation, and the worker reschedules between holds.
const BATCH: usize = 32;
/// TTL/hop limit placeholder: the glue sets the route's value before sending.
const TTL_PLACEHOLDER: u8 = 64;

/// One network namespace's state.
///
/// # Invariants
///
/// `gn` points to the netns's `struct rtw_glue_net`, which outlives this object: the glue
/// creates the state in its pernet `init` and destroys it in `exit` before the pernet memory
/// goes away.
pub struct NetState {
    gn: *mut ffi::rtw_glue_net,
    tables: Tables,
}

// SAFETY: `gn` is only used through glue functions that are safe from any context (sysctl
// reads, reaper arming, hook registration under genl_mutex); `Tables` is `Sync`.
unsafe impl Sync for NetState {}
// SAFETY: as above.
unsafe impl Send for NetState {}

fn now() -> u64 {
    // SAFETY: reads jiffies; no preconditions.
    unsafe { ffi::rtw_glue_jiffies() }
}

/// The clock of entries' timeouts: microseconds, low 32 bits (wraps every 71 min; an entry
/// lives at most 20 min). Finer than jiffies so FIFO heads of different stripes compare in the
/// order their timeouts started, as the seed's single FIFO would.
fn clock_us() -> u32 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { ffi::rtw_glue_clock_us() }
}

/// Jiffies from now until `left_us` microseconds have passed (rounded up).
fn jiffies_after_us(left_us: u32) -> u64 {
    // SAFETY: reads jiffies and converts; no preconditions.
    now().wrapping_add(unsafe { ffi::rtw_glue_usecs_to_jiffies(left_us) }).wrapping_add(1)
}

/// Widen a 32-bit jiffies stamp near `now` back to 64 bits.
fn widen(stamp: u32, now: u64) -> u64 {
    let delta = stamp.wrapping_sub(now as u32) as i32;
    now.wrapping_add(delta as i64 as u64)
}

/// A segment's tuple from our side: incoming segments are addressed to us, outgoing from us.
fn key_of<A: Addr>(seg: &TcpSegment, incoming: bool) -> Key<A> {
    if incoming {
        Key { laddr: A::from_buf(&seg.dst_addr), raddr: A::from_buf(&seg.src_addr), lport: seg.dst_port, rport: seg.src_port }
    } else {
        Key { laddr: A::from_buf(&seg.src_addr), raddr: A::from_buf(&seg.dst_addr), lport: seg.src_port, rport: seg.dst_port }
    }
}

/// The timeouts in force, in microseconds (read once per operation).
#[derive(Clone, Copy)]
struct Timeouts {
    msl2: u32,
    fin: u32,
}

impl Timeouts {
    fn of(&self, s: Substate) -> u32 {
        match s {
            Substate::TimeWait => self.msl2,
            Substate::FinWait2 => self.fin,
        }
    }

    fn expired(&self, m: &Mutable, now_us: u32) -> bool {
        m.expired(now_us, self.of(m.substate()))
    }
}

/// What the hook does once the stripe is unlocked.
struct Outcome {
    verdict: u32,
    reply: [u8; REPLY_MAX],
    reply_len: usize,
    /// The counter a successful send goes to.
    reply_stat: Stat,
}

/// The counter an entry's death at its expiry goes to.
fn expiry_stat(m: &Mutable) -> Stat {
    match m.substate() {
        Substate::TimeWait => Stat::Expired,
        Substate::FinWait2 => Stat::FinWait2Timeouts,
    }
}

impl NetState {
    /// A new state for the netns whose glue state is `gn` and table is `tables`.
    ///
    /// # Safety
    ///
    /// `gn` and `tables` outlive the returned state.
    pub unsafe fn new(gn: *mut ffi::rtw_glue_net, tables: core::ptr::NonNull<ffi::rtw_glue_tables>) -> Result<KBox<Self>> {
        // SAFETY: the caller guarantees `tables` outlives the state.
        Ok(KBox::new(NetState { gn, tables: unsafe { Tables::from_raw(tables) } }, GFP_KERNEL)?)
    }

    fn bump(&self, s: Stat) {
        self.tables.count(s as u32, 1);
    }

    fn sysctl(&self, which: u32) -> i32 {
        // SAFETY: `gn` is valid for our lifetime (type invariant).
        unsafe { ffi::rtw_glue_sysctl_get(self.gn, which as i32) }
    }

    fn timeouts(&self) -> Timeouts {
        let msl = self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS) as u32;
        let fin = self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS) as u32;
        // At most 2 × 600 s (policy.rs): 1.2e9 µs, inside the clock's 2^31 comparison range.
        Timeouts { msl2: msl.saturating_mul(2000), fin: fin.saturating_mul(1000) }
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
        // SAFETY: `gn` is valid (type invariant); the glue ignores arming once the netns exits.
        unsafe { ffi::rtw_glue_reaper_arm(self.gn, expires) };
    }

    // ---- the hooks ----

    /// A segment from a hook, for the tuple of `entry` (found by the glue's lookup). `ctx` is
    /// the glue's handle for checksum and reply.
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
        entry: *mut c_void,
        rcu: &rcu::Guard,
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
        // SAFETY: the glue found `entry` for this family's table under the RCU read lock the
        // hook runs in, which `rcu` stands for.
        match (family, output) {
            (AF_INET, false) => unsafe { crate::table::entry_from_glue::<V4>(entry, rcu) }
                .map_or(ffi::NF_ACCEPT, |e| self.input(&seg, ifindex, ctx, e)),
            (AF_INET6, false) => unsafe { crate::table::entry_from_glue::<V6>(entry, rcu) }
                .map_or(ffi::NF_ACCEPT, |e| self.input(&seg, ifindex, ctx, e)),
            (AF_INET, true) => unsafe { crate::table::entry_from_glue::<V4>(entry, rcu) }
                .map_or(ffi::NF_ACCEPT, |e| self.local_connect(&seg, ifindex, e)),
            _ => unsafe { crate::table::entry_from_glue::<V6>(entry, rcu) }
                .map_or(ffi::NF_ACCEPT, |e| self.local_connect(&seg, ifindex, e)),
        }
    }

    fn input<A: Addr>(&self, seg: &TcpSegment, ifindex: u32, ctx: *mut c_void, e: &Entry<A>) -> u32 {
        let key = key_of::<A>(seg, true);
        if e.key != key || !A::scope_matches(e.scope, &key.laddr, ifindex) {
            return ffi::NF_ACCEPT;
        }
        // A segment the stack would drop as corrupt must not move our state (spec section 3).
        // Verified before the stripe is locked: it reads the whole segment.
        // SAFETY: `ctx` is the glue's live handle for this segment.
        let csum_ok = unsafe { ffi::rtw_glue_pkt_csum_ok(ctx) };
        let out = {
            let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
            self.input_locked(seg, &mut guard, e, csum_ok)
        };
        if out.reply_len > 0 {
            let Some(bytes) = out.reply.get(..out.reply_len) else { return out.verdict };
            // SAFETY: `ctx` is the glue's live handle for the segment being processed, and
            // `bytes` is a complete IP packet of `bytes.len()` bytes.
            let sent = unsafe { ffi::rtw_glue_reply(ctx, bytes.as_ptr(), bytes.len() as u32) };
            // Count what went out, not what was built.
            self.bump(if sent == 0 { out.reply_stat } else { Stat::RepliesFailed });
        }
        out.verdict
    }

    fn input_locked<A: Addr>(&self, seg: &TcpSegment, guard: &mut StripeGuard<'_>, e: &Entry<A>, csum_ok: bool) -> Outcome {
        let mut out = Outcome { verdict: ffi::NF_ACCEPT, reply: [0; REPLY_MAX], reply_len: 0, reply_stat: Stat::AcksSent };
        // Removed since the lookup: the tuple is no longer ours.
        let Some(mut occ) = guard.occupied(e) else { return out };
        let now64 = now();
        let now_us = clock_us();
        let timeouts = self.timeouts();
        if timeouts.expired(occ.get(), now_us) {
            // T12: the reaper has not come by yet; the tuple is no longer ours.
            self.bump(expiry_stat(occ.get()));
            occ.remove();
            return out;
        }
        if !csum_ok {
            return out;
        }

        let mut state = occ.get().state();
        let d = twcheck::decide(&state, seg);
        match d.reason {
            Reason::RstDropped => self.bump(Stat::RstDropped),
            Reason::PawsRejected | Reason::Fw2PawsRejected => self.bump(Stat::PawsDropped),
            _ => {}
        }
        if let Some(done) = d.transition {
            state.complete_fin_wait2(done);
            occ.get_mut().set_state(&state);
            self.bump(Stat::FinWait2Completed);
        }

        match d.verdict {
            Verdict::Pass => {}
            Verdict::Drop => {
                out.verdict = ffi::NF_DROP;
                self.bump(Stat::SegmentsDropped);
            }
            Verdict::AckAndDrop => {
                out.verdict = ffi::NF_DROP;
                self.bump(Stat::SegmentsDropped);
                let m = occ.get_mut();
                let last = if m.flags & crate::entry::flag::REPLIED != 0 {
                    widen(m.last_reply, now64)
                } else {
                    policy::NEVER_REPLIED
                };
                // SAFETY: `gn` is valid (type invariant).
                let interval = u64::from(unsafe { ffi::rtw_glue_invalid_ratelimit_jiffies(self.gn) });
                if !d.rate_limited || policy::ratelimit_allows(last, now64, interval) {
                    // SAFETY: no preconditions.
                    let clock = unsafe { ffi::rtw_glue_tcp_clock_ms() };
                    let tsval = clock.wrapping_add(e.ts_offset);
                    out.reply_len = reply::build_entry_ack(&mut out.reply, seg, &state, tsval, TTL_PLACEHOLDER);
                    // Only the replies the limiter governs stamp it, as Linux's
                    // tcp_oow_rate_limited() (a re-armed FIN's ACK is never limited).
                    if d.rate_limited {
                        m.last_reply = policy::ratelimit_stamp(now64) as u32;
                        m.flags |= crate::entry::flag::REPLIED;
                    }
                } else {
                    self.bump(Stat::RepliesRatelimited);
                }
            }
            Verdict::RstAndDelete => {
                out.verdict = ffi::NF_DROP;
                out.reply_len = reply::build_rst(&mut out.reply, seg, TTL_PLACEHOLDER);
                out.reply_stat = Stat::RstsSent;
                self.bump(Stat::SegmentsDropped);
                self.bump(Stat::Deleted);
                occ.remove();
                return out;
            }
            Verdict::DeleteAndPass => {
                self.bump(Stat::SynReuse);
                occ.remove();
                return out;
            }
            Verdict::DeleteAndDrop => {
                out.verdict = ffi::NF_DROP;
                self.bump(Stat::SegmentsDropped);
                self.bump(Stat::Deleted);
                occ.remove();
                return out;
            }
        }
        // Re-arm (the seed's tcp_tw_2msl_reset) and FIN_WAIT_2 completion restart the timeout
        // and move the entry to its FIFO's tail: the FIFO stays in expiry order. The reaper is
        // already due no later than the entry's old expiry, and looks again then.
        if d.rearm_2msl || d.transition.is_some() {
            occ.get_mut().start = now_us;
            occ.requeue();
        }
        out
    }

    /// Spec section 7: a local connect() onto a guarded tuple (the glue passes only SYNs).
    fn local_connect<A: Addr>(&self, seg: &TcpSegment, ifindex: u32, e: &Entry<A>) -> u32 {
        if !(seg.has_flag(SYN) && !seg.has_flag(ACK)) {
            return ffi::NF_ACCEPT;
        }
        let key = key_of::<A>(seg, false);
        if e.key != key || !A::scope_matches(e.scope, &key.laddr, ifindex) {
            return ffi::NF_ACCEPT;
        }
        let timeouts = self.timeouts();
        let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
        let Some(occ) = guard.occupied(e) else { return ffi::NF_ACCEPT };
        let now_us = clock_us();
        let m = occ.get();
        // The timeout started at `start`; a clock that reads earlier (a stamp from another
        // CPU's clock read) counts as age 0 rather than wrapping.
        let age = now_us.wrapping_sub(m.start) as i32;
        let age_ms = if age < 0 { 0 } else { age as u32 / 1000 };
        if timeouts.expired(m, now_us) || policy::local_reuse_allowed(m.flags & crate::entry::flag::HAS_TS != 0, age_ms) {
            self.bump(Stat::LocalConnectReuse);
            occ.remove();
            ffi::NF_ACCEPT
        } else {
            self.bump(Stat::LocalConnectDropped);
            ffi::NF_DROP
        }
    }

    // ---- the reaper ----

    /// Free every expired entry, a bounded batch per stripe lock hold, rescheduling between
    /// holds (process context: the reaper is a worker). Then arm for the earliest expiry left.
    pub fn reap(&self) {
        if let Some(left_us) = self.reap_expired() {
            self.arm_reaper(jiffies_after_us(left_us));
        }
    }

    /// One pass over every stripe; returns how long until the earliest expiry still ahead, in
    /// microseconds, if any entry is left.
    fn reap_expired(&self) -> Option<u32> {
        let now_us = clock_us();
        let timeouts = self.timeouts();
        let mut next: Option<u32> = None;
        for stripe in 0..self.tables.stripes() {
            loop {
                let mut guard = self.tables.lock(stripe);
                let mut budget = BATCH;
                let mut heads: [Option<u32>; 4] = [None; 4];
                reap_fifos::<V4>(self, &mut guard, &timeouts, now_us, &mut budget, &mut heads[..2]);
                reap_fifos::<V6>(self, &mut guard, &timeouts, now_us, &mut budget, &mut heads[2..]);
                drop(guard);
                // SAFETY: no preconditions; process context, no lock held.
                unsafe { ffi::rtw_glue_cond_resched() };
                if budget > 0 {
                    for at in heads.into_iter().flatten() {
                        next = Some(next.map_or(at, |n| if time_after_eq32(at, n) { n } else { at }));
                    }
                    break;
                }
            }
        }
        // A head found live before `now_us` was read again cannot be behind it: clamp at 0.
        next.map(|at| {
            let left = at.wrapping_sub(clock_us()) as i32;
            left.max(0) as u32
        })
    }

    // ---- netlink ----

    /// Add one entry. Returns 0 or a negative errno (the entry's `result` in the reply).
    pub fn add(&self, g: &ffi::rtw_glue_entry, replace: bool) -> i32 {
        let r = match g.family {
            AF_INET => self.add_family::<V4>(g, replace),
            AF_INET6 => self.add_family::<V6>(g, replace),
            _ => Err(EINVAL),
        };
        r.map_or_else(|e| e.to_errno(), |()| 0)
    }

    fn add_family<A: Addr>(&self, g: &ffi::rtw_glue_entry, replace: bool) -> Result {
        if self.sysctl(ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT) != 0
            // SAFETY: `gn` is valid (type invariant); `raddr` is 16 readable bytes.
            && unsafe { ffi::rtw_glue_addr_is_local(self.gn, A::FAMILY, g.raddr.as_ptr()) }
        {
            // The seed's in_localip(): a local peer has its own TIME_WAIT to answer for it.
            self.bump(Stat::RefusedNolocal);
            return Err(EADDRNOTAVAIL);
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
        let b = SlabBox::new(Entry::new(key, &state, g.ts_offset, 0, A::scope_from(g.ifindex)))?;
        // The first entry brings the hooks into this netns; until then it pays nothing.
        // SAFETY: `gn` is valid (type invariant); process context under genl_mutex.
        kernel::error::to_result(unsafe { ffi::rtw_glue_hooks_enable(self.gn) })?;

        let timeouts = self.timeouts();
        // Full: expired entries go first (they never count against the bound), then, as the
        // seed's tcp_tw_2msl_scan(1) when uma_zalloc fails, the entry closest to its expiry.
        let capacity = self.capacity() as usize;
        if self.tables.len() >= capacity {
            self.reap_expired();
            if self.tables.len() >= capacity {
                self.recycle_one(&timeouts);
            }
        }

        let rcu = rcu::read_lock();
        let mut guard = self.tables.lock(self.tables.stripe_of(&key));
        // Read under the stripe lock: entries of one FIFO are stamped in the order they join it.
        let now_us = clock_us();
        if let Some(existing) = self.tables.lookup(&key, &rcu) {
            if let Some(occ) = guard.occupied(existing) {
                if timeouts.expired(occ.get(), now_us) {
                    // Past its expiry it no longer guards the tuple (T12), reaped or not.
                    self.bump(expiry_stat(occ.get()));
                    occ.remove();
                } else if replace {
                    self.bump(Stat::Deleted);
                    occ.remove();
                } else {
                    self.bump(Stat::RefusedExists);
                    return Err(EEXIST);
                }
            }
        }
        // SAFETY: `b` is ours and unpublished.
        unsafe { b.entry().mutable() }.start = now_us;
        guard.insert(b).map_err(|(err, _b)| err)?;
        drop(guard);
        drop(rcu);
        self.bump(Stat::Added);
        self.arm_reaper(jiffies_after_us(timeouts.of(state.substate)));
        Ok(())
    }

    /// Remove the entry closest to its expiry (the oldest FIFO head of any stripe).
    fn recycle_one(&self, timeouts: &Timeouts) {
        let now32 = clock_us();
        // (remaining jiffies, stripe, family, class)
        let mut best: Option<(u32, u32, u8, Substate)> = None;
        for stripe in 0..self.tables.stripes() {
            let mut guard = self.tables.lock(stripe);
            for class in CLASSES {
                for (family, left) in [
                    (AF_INET, guard.head::<V4>(class).map(|o| o.get().expires(timeouts.of(class)).wrapping_sub(now32))),
                    (AF_INET6, guard.head::<V6>(class).map(|o| o.get().expires(timeouts.of(class)).wrapping_sub(now32))),
                ] {
                    if let Some(left) = left {
                        // Live heads only (a dead one was just reaped): `left` is small.
                        if best.is_none_or(|b| (left as i32) < (b.0 as i32)) {
                            best = Some((left, stripe, family, class));
                        }
                    }
                }
            }
        }
        let Some((_, stripe, family, class)) = best else { return };
        let mut guard = self.tables.lock(stripe);
        let recycled = match family {
            AF_INET => guard.head::<V4>(class).map(|o| o.remove()).is_some(),
            _ => guard.head::<V6>(class).map(|o| o.remove()).is_some(),
        };
        if recycled {
            self.bump(Stat::Recycled);
        }
    }

    /// Delete the entry guarding the tuple of `g`.
    pub fn del(&self, g: &ffi::rtw_glue_entry) -> i32 {
        let r = match g.family {
            AF_INET => self.del_family::<V4>(g),
            AF_INET6 => self.del_family::<V6>(g),
            _ => Err(EINVAL),
        };
        r.map_or_else(|e| e.to_errno(), |()| 0)
    }

    fn del_family<A: Addr>(&self, g: &ffi::rtw_glue_entry) -> Result {
        let key = Key { laddr: A::from_buf(&g.laddr), raddr: A::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
        let timeouts = self.timeouts();
        let now32 = clock_us();
        let rcu = rcu::read_lock();
        let e = self.tables.lookup(&key, &rcu).ok_or(ENOENT)?;
        let mut guard = self.tables.lock(self.tables.stripe_of(&key));
        let occ = guard.occupied(e).ok_or(ENOENT)?;
        if timeouts.expired(occ.get(), now32) {
            // Dead already (T12): reap it, and tell the caller nothing guarded the tuple.
            self.bump(expiry_stat(occ.get()));
            occ.remove();
            return Err(ENOENT);
        }
        occ.remove();
        self.bump(Stat::Deleted);
        Ok(())
    }

    /// Fill `g` (given its key) with the entry guarding the tuple.
    pub fn get(&self, g: &mut ffi::rtw_glue_entry) -> i32 {
        let rcu = rcu::read_lock();
        let r = match g.family {
            AF_INET => {
                let key = Key::<V4> { laddr: V4::from_buf(&g.laddr), raddr: V4::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
                self.tables.lookup(&key, &rcu).ok_or(ENOENT).and_then(|e| self.export(e, g))
            }
            AF_INET6 => {
                let key = Key::<V6> { laddr: V6::from_buf(&g.laddr), raddr: V6::from_buf(&g.raddr), lport: g.lport, rport: g.rport };
                self.tables.lookup(&key, &rcu).ok_or(ENOENT).and_then(|e| self.export(e, g))
            }
            _ => Err(EINVAL),
        };
        r.map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// A dump's entry (found by the glue's walker under RCU), as it crosses netlink.
    pub fn export_walked(&self, family: u8, entry: *mut c_void, g: &mut ffi::rtw_glue_entry, rcu: &rcu::Guard) -> i32 {
        // SAFETY: the walker found `entry` in this family's table under the RCU read lock that
        // `rcu` stands for.
        let r = match family {
            AF_INET => unsafe { crate::table::entry_from_glue::<V4>(entry, rcu) }.ok_or(ENOENT).and_then(|e| self.export(e, g)),
            AF_INET6 => unsafe { crate::table::entry_from_glue::<V6>(entry, rcu) }.ok_or(ENOENT).and_then(|e| self.export(e, g)),
            _ => Err(EINVAL),
        };
        r.map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// A consistent snapshot of a live entry; `ENOENT` if it is gone or expired.
    fn export<A: Addr>(&self, e: &Entry<A>, g: &mut ffi::rtw_glue_entry) -> Result {
        let timeouts = self.timeouts();
        let now32 = clock_us();
        let m = {
            let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
            *guard.occupied(e).ok_or(ENOENT)?.get()
        };
        if timeouts.expired(&m, now32) {
            return Err(ENOENT);
        }
        let s = m.state();
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
        let left = m.expires(timeouts.of(s.substate)).wrapping_sub(now32) as i32;
        g.expires_ms = if left > 0 { (left as u32).div_ceil(1000) } else { 0 };
        Ok(())
    }

    /// Delete every entry; returns how many. A bounded batch per stripe lock hold.
    pub fn flush(&self) -> u32 {
        let mut n: u32 = 0;
        for stripe in 0..self.tables.stripes() {
            loop {
                let mut guard = self.tables.lock(stripe);
                let mut batch = 0;
                for class in CLASSES {
                    while batch < BATCH {
                        if let Some(o) = guard.head::<V4>(class) {
                            o.remove();
                        } else if let Some(o) = guard.head::<V6>(class) {
                            o.remove();
                        } else {
                            break;
                        }
                        batch += 1;
                    }
                }
                drop(guard);
                self.tables.count(Stat::Deleted as u32, batch as u64);
                n = n.saturating_add(batch as u32);
                // SAFETY: no preconditions; process context, no lock held.
                unsafe { ffi::rtw_glue_cond_resched() };
                if batch < BATCH {
                    break;
                }
            }
        }
        n
    }

    /// A request the glue refused as malformed.
    pub fn count_invalid(&self) {
        self.bump(Stat::RefusedInvalid);
    }

    /// The counters.
    pub fn stats(&self, out: &mut [u64; STAT_COUNT]) {
        self.tables.counters(out);
        out[Stat::Entries as usize] = self.tables.len() as u64;
        out[Stat::Capacity as usize] = u64::from(self.capacity());
    }

    /// Free every entry (netns exit). Nothing else can reach the state any more.
    pub fn drain(&self) {
        self.flush();
    }
}

/// Free a family's expired FIFO heads in the locked stripe, within `budget`; record in `heads`
/// (one per class) the expiry of each FIFO's first live entry.
fn reap_fifos<A: Addr>(
    st: &NetState,
    guard: &mut StripeGuard<'_>,
    timeouts: &Timeouts,
    now_us: u32,
    budget: &mut usize,
    heads: &mut [Option<u32>],
) {
    for (i, class) in CLASSES.into_iter().enumerate() {
        while *budget > 0 {
            let Some(o) = guard.head::<A>(class) else { break };
            if !timeouts.expired(o.get(), now_us) {
                if let Some(h) = heads.get_mut(i) {
                    *h = Some(o.get().expires(timeouts.of(class)));
                }
                break;
            }
            st.bump(expiry_stat(o.get()));
            o.remove();
            *budget -= 1;
        }
    }
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
