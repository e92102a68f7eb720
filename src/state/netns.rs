// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: the tables, and the operations the hooks, the reaper and the
//! netlink commands perform on them. The decisions themselves are `twcheck::decide`'s; this
//! file applies them.
//!
//! Concurrency (docs/decisions.md D20): a segment for a tuple the netns does not guard never
//! reaches this file (the C hook's RCU lookup misses). A hit, and every netlink command, locks
//! only the entry's stripe; checksums are verified and replies sent outside it. Counters are
//! per-CPU. The reaper is a worker that frees expired FIFO heads a bounded batch per lock hold.

use crate::logic::time;
use crate::logic::family::Family;
use crate::state::entry::{Addr, Conn, Entry, Key, Mutable, V4, V6};
use crate::logic::policy;
use crate::logic::reply::{self, IpFields, REPLY_MAX};
use crate::logic::segment::TcpSegment;
use crate::logic::wire::{ACK, RST, SYN};
use crate::state::stats::{Stat, STAT_COUNT};
use crate::sys::{self, NetGlue, Packet, Sysctl};
use crate::state::table::{SlabBox, StripeGuard, Tables, CLASSES};
use crate::logic::twcheck::{self, EntryState, Reason, Substate, Verdict};
use kernel::prelude::*;
use kernel::sync::rcu;

/// The loopback device's interface index (`LOOPBACK_IFINDEX`).
const LOOPBACK_IFINDEX: u32 = 1;

/// Entries freed per stripe lock hold by the reaper and a flush: a hold stays far below a
/// millisecond even under emulation, and the worker reschedules between holds.
const BATCH: usize = 32;
/// The reaper runs again no sooner than this after a run (µs), however soon the next entry
/// expires: each run visits all 64 stripes and wakes a worker, and re-arming for the next
/// expiry ran it every jiffy under a steady stream of connections (D17). An expired entry
/// guards nothing in the meantime (T12); it only holds its memory a little longer.
const REAP_INTERVAL_US: u32 = 100_000;

/// One network namespace's state.
pub(crate) struct NetState {
    glue: NetGlue,
    tables: Tables,
}

/// What the hook does with the segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Action {
    /// Hand it on (to the stack, or the next hook).
    Accept,
    /// Consume it.
    Drop,
}

/// An entry as netlink reports it (`get`, dump).
pub(crate) struct Snapshot {
    /// The state the decision table reads.
    pub(crate) state: EntryState,
    /// Our TSval clock minus the module's TCP clock.
    pub(crate) ts_offset: u32,
    /// IPv6 scope (interface index; 0 for none or IPv4).
    pub(crate) ifindex: u32,
    /// The connection's reply and lookup attributes.
    pub(crate) conn: Conn,
    /// Milliseconds left before expiry.
    pub(crate) expires_ms: u32,
}

use sys::{clock_us, jiffies as now, jiffies_after_us};

/// How a segment reached the hook: the entry must be the one its socket would have been.
pub(crate) struct Via {
    /// The interface it came in on (LOCAL_IN) or goes out of (LOCAL_OUT): an IPv6
    /// link-local entry's scope.
    pub(crate) ifindex: u32,
    /// LOCAL_IN: the device and VRF a bound entry must match.
    pub(crate) arrival: policy::Arrival,
    /// The segment's TOS / traffic class byte (a RST takes its DSCP).
    pub(crate) dsfield: u8,
}


/// A segment's tuple from our side: incoming segments are addressed to us, outgoing from us
/// (its VRF is the hook's to match).
fn key_of<A: Addr>(seg: &TcpSegment, incoming: bool) -> Key<A> {
    if incoming {
        Key { laddr: A::from_buf(&seg.dst_addr), raddr: A::from_buf(&seg.src_addr), lport: seg.dst_port, rport: seg.src_port, l3index: 0 }
    } else {
        Key { laddr: A::from_buf(&seg.src_addr), raddr: A::from_buf(&seg.dst_addr), lport: seg.src_port, rport: seg.dst_port, l3index: 0 }
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

/// The reply a decision calls for, built once the stripe is unlocked and the route is known.
enum Reply {
    /// None.
    None,
    /// An ACK from the entry's state (as it was under the lock) with this TSval; out of window
    /// (limited by `tcp_invalid_ratelimit`) or not.
    Ack(EntryState, u32, bool),
    /// A RST answering the segment.
    Rst,
}

/// What the hook does once the stripe is unlocked.
struct Outcome {
    action: Action,
    reply: Reply,
}

/// The counter an entry's death at its expiry goes to.
fn expiry_stat(m: &Mutable) -> Stat {
    match m.substate() {
        Substate::TimeWait => Stat::Expired,
        Substate::FinWait2 => Stat::FinWait2Timeouts,
    }
}

impl NetState {
    /// A new state for a netns, over its glue state and table.
    pub(crate) fn new(glue: NetGlue, tables: Tables) -> Result<KBox<Self>> {
        Ok(KBox::new(NetState { glue, tables }, GFP_KERNEL)?)
    }

    fn bump(&self, s: Stat) {
        self.tables.count(s as u32, 1);
    }

    fn timeouts(&self) -> Timeouts {
        let msl = self.glue.sysctl(Sysctl::MslMs) as u32;
        let fin = self.glue.sysctl(Sysctl::FinTimeoutMs) as u32;
        // At most 2 × 600 s (policy.rs): 1.2e9 µs, inside the clock's 2^31 comparison range.
        Timeouts { msl2: msl.saturating_mul(2000), fin: fin.saturating_mul(1000) }
    }

    /// The table bound in force (`maxtcptw`, or half the ephemeral port range when 0).
    pub(crate) fn capacity(&self) -> u32 {
        self.own_capacity().min(self.glue.capacity_ceiling())
    }

    /// The bound this netns's own sysctls give, before the host's ceiling (D34).
    pub(crate) fn own_capacity(&self) -> u32 {
        let (lo, hi) = self.glue.port_range();
        policy::effective_capacity(self.glue.sysctl(Sysctl::MaxTcpTw), lo, hi)
    }

    // ---- the hooks ----

    /// LOCAL_IN: a segment for the tuple of `e` (which the hook's lookup found).
    pub(crate) fn input<A: Addr>(&self, seg: &TcpSegment, via: &Via, pkt: &Packet<'_>, e: &Entry<A>) -> Action {
        let key = key_of::<A>(seg, true);
        // A link-local entry's scope is the device its socket was bound to: in a VRF that is the
        // enslaved device (sdif), while the segment is seen on the VRF's (as Linux matches it).
        let scoped = A::scope_matches(e.scope, &key.laddr, via.ifindex)
            || (via.arrival.sdif != 0 && A::scope_matches(e.scope, &key.laddr, via.arrival.sdif));
        if !e.key.same_tuple(&key) || !scoped || !policy::bound_dev_matches(e.conn.bound_ifindex, via.arrival) {
            return Action::Accept;
        }
        // A segment the stack would drop as corrupt must not move our state (behaviour §3).
        // Verified before the stripe is locked: it reads the whole segment.
        let csum_ok = pkt.csum_ok();
        let out = {
            let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
            self.input_locked(seg, &mut guard, e, csum_ok)
        };
        let stat = match out.reply {
            Reply::None => return out.action,
            Reply::Ack(..) => Stat::AcksSent,
            Reply::Rst => Stat::RstsSent,
        };
        // The TOS / traffic class byte as Linux's TIME_WAIT writes it.
        let dsfield = match out.reply {
            Reply::Ack(_, _, oow) => reply::ack_dsfield(e.conn.tos, oow),
            _ => reply::rst_dsfield(via.dsfield),
        };
        // Routed first, so the reply is built whole, hop limit and flow label included, in one
        // place.
        let sent = pkt.route_reply(&e.conn, dsfield).and_then(|route| {
            let mut buf = [0u8; REPLY_MAX];
            let ip = IpFields { hop_limit: route.hop_limit(), dsfield, flowlabel: route.flowlabel() };
            let len = match &out.reply {
                Reply::Ack(state, tsval, _) => reply::build_entry_ack(&mut buf, seg, state, *tsval, ip),
                _ => reply::build_rst(&mut buf, seg, ip),
            };
            route.send(buf.get(..len).filter(|b| !b.is_empty()).ok_or(EINVAL)?)
        });
        // Count what went out, not what was built.
        self.bump(if sent.is_ok() { stat } else { Stat::RepliesFailed });
        out.action
    }

    fn input_locked<A: Addr>(&self, seg: &TcpSegment, guard: &mut StripeGuard<'_>, e: &Entry<A>, csum_ok: bool) -> Outcome {
        let mut out = Outcome { action: Action::Accept, reply: Reply::None };
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
        if let Some(ts) = d.ts_recent {
            state.ts_recent = ts;
            occ.get_mut().set_state(&state);
        }

        match d.verdict {
            Verdict::Drop => {
                out.action = Action::Drop;
                self.bump(Stat::SegmentsDropped);
            }
            Verdict::AckAndDrop => {
                out.action = Action::Drop;
                self.bump(Stat::SegmentsDropped);
                let m = occ.get_mut();
                let last = if m.flags & crate::state::entry::flag::REPLIED != 0 {
                    time::widen(m.last_reply, now64)
                } else {
                    policy::NEVER_REPLIED
                };
                let interval = self.glue.invalid_ratelimit_jiffies();
                if !d.rate_limited || policy::ratelimit_allows(last, now64, interval) {
                    let tsval = sys::tcp_clock_ms().wrapping_add(e.ts_offset);
                    out.reply = Reply::Ack(state, tsval, d.reason.ack_is_oow());
                    // Only the replies the limiter governs stamp it, as Linux's
                    // tcp_oow_rate_limited() (a re-armed FIN's ACK is never limited).
                    if d.rate_limited {
                        m.last_reply = policy::ratelimit_stamp(now64) as u32;
                        m.flags |= crate::state::entry::flag::REPLIED;
                    }
                } else {
                    self.bump(Stat::RepliesRatelimited);
                }
            }
            Verdict::RstAndDelete => {
                out.action = Action::Drop;
                // Linux's tcp_v4_send_reset never answers a RST (F-rows do not either).
                if !seg.has_flag(RST) {
                    out.reply = Reply::Rst;
                }
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
                out.action = Action::Drop;
                self.bump(Stat::SegmentsDropped);
                self.bump(Stat::Deleted);
                occ.remove();
                return out;
            }
        }
        // Re-arm (the seed's tcp_tw_2msl_reset) and FIN_WAIT_2 completion restart the timeout
        // and move the entry to its FIFO's tail: the FIFO stays in expiry order. A completion's
        // 2MSL may end before the fin_timeout the reaper was armed for: bring it forward (a
        // lock-free check when it is already due earlier, as after every re-arm).
        if d.rearm_2msl || d.transition.is_some() {
            occ.get_mut().start = now_us;
            occ.requeue();
            self.glue.arm_reaper(jiffies_after_us(timeouts.msl2));
        }
        out
    }

    /// LOCAL_OUT, docs/behaviour.md §7: a local connect() onto the tuple of `e`.
    pub(crate) fn local_connect<A: Addr>(&self, seg: &TcpSegment, ifindex: u32, bound_port: bool, e: &Entry<A>) -> Action {
        if !(seg.has_flag(SYN) && !seg.has_flag(ACK)) {
            return Action::Accept;
        }
        let key = key_of::<A>(seg, false);
        if !e.key.same_tuple(&key) || !A::scope_matches(e.scope, &key.laddr, ifindex) {
            return Action::Accept;
        }
        let timeouts = self.timeouts();
        let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
        let Some(occ) = guard.occupied(e) else { return Action::Accept };
        let now_us = clock_us();
        let m = occ.get();
        // The timeout started at `start`; a clock that reads earlier (a stamp from another
        // CPU's clock read) counts as age 0 rather than wrapping.
        let age_ms = time::until32(now_us, m.start) / 1000;
        // `tcp_twsk_unique()`'s test: either end loopback, or the entry bound to `lo`.
        let loopback = e.key.laddr.is_loopback() || e.key.raddr.is_loopback() || A::scope_ifindex(e.scope) == LOOPBACK_IFINDEX;
        let state = m.state();
        if timeouts.expired(m, now_us)
            || policy::local_reuse_allowed(
                self.glue.tw_reuse(),
                policy::ReuseAsk { loopback, bound_port, fin_wait2: state.substate == Substate::FinWait2, ts_recent_valid: state.ts_recent_valid, age_ms },
            )
        {
            self.bump(Stat::LocalConnectReuse);
            occ.remove();
            Action::Accept
        } else {
            self.bump(Stat::LocalConnectDropped);
            Action::Drop
        }
    }

    // ---- the reaper ----

    /// Free every expired entry, a bounded batch per stripe lock hold, rescheduling between
    /// holds (process context: the reaper is a worker). Then arm for the earliest expiry left,
    /// and no sooner than `REAP_INTERVAL_US`.
    /// A table over its capacity (the bound was lowered) is trimmed to it afterwards.
    pub(crate) fn reap(&self) {
        let next = self.reap_expired();
        self.trim_to_capacity();
        if let Some(left_us) = next {
            self.glue.arm_reaper(jiffies_after_us(left_us.max(REAP_INTERVAL_US)));
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
                // Process context (the reaper's worker, netlink), no lock held.
                sys::cond_resched();
                if budget > 0 {
                    for at in heads.into_iter().flatten() {
                        next = Some(next.map_or(at, |n| time::earliest32(at, n)));
                    }
                    break;
                }
            }
        }
        // A head found live before `now_us` was read again cannot be behind it: clamp at 0.
        next.map(|at| time::until32(at, clock_us()))
    }

    // ---- netlink ----

    /// Add an entry guarding `key` with `state` (netlink, process context).
    pub(crate) fn add<A: Addr>(&self, key: Key<A>, ifindex: u32, state: &EntryState, ts_offset: u32, conn: Conn, replace: bool) -> Result {
        self.check_nolocal(&key)?;
        let state = EntryState { rcv_wscale: state.rcv_wscale.min(twcheck::MAX_WSCALE), ..*state };
        let mut b = SlabBox::new(Entry::new(key, &state, ts_offset, conn, 0, A::scope_from(ifindex)))?;
        // The first entry brings the hooks into this netns; until then it pays nothing.
        self.glue.enable_hooks()?;

        let timeouts = self.timeouts();
        let stripe = self.tables.stripe_of(&key);
        // The tuple first: a refused add must cost no other entry its place, and a replace
        // frees the slot it then takes. Adds are serialised per netns (the glue's nl_lock); a
        // takeover (the hook) that inserts the tuple between here and the insert below makes
        // that insert fail with EEXIST.
        {
            let rcu = rcu::read_lock();
            let mut guard = self.tables.lock(stripe);
            self.free_tuple(&mut guard, &rcu, &key, &timeouts, replace).inspect_err(|_| self.bump(Stat::RefusedExists))?;
        }
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
        let mut guard = self.tables.lock(stripe);
        // Read under the stripe lock: entries of one FIFO are stamped in the order they join it.
        let now_us = clock_us();
        b.get_mut().start = now_us;
        guard.insert(b, &rcu).map_err(|(err, _b)| err)?;
        drop(guard);
        drop(rcu);
        self.bump(Stat::Added);
        self.glue.arm_reaper(jiffies_after_us(timeouts.of(state.substate)));
        Ok(())
    }

    /// Add an entry taken over from Linux's FIN_WAIT2 timewait socket at the peer's FIN (the
    /// hook, softirq; takeover.c, D47). Nothing here sleeps, reaps or recycles: a table at its
    /// capacity leaves the connection to Linux, as a busy tuple does.
    pub(crate) fn take_over<'g, A: Addr>(
        &self,
        key: Key<A>,
        ifindex: u32,
        state: &EntryState,
        ts_offset: u32,
        conn: Conn,
        rcu: &'g rcu::Guard,
    ) -> Result<&'g Entry<A>> {
        self.check_nolocal(&key)?;
        if self.tables.len() >= self.capacity() as usize {
            return Err(ENOSPC);
        }
        let state = EntryState { rcv_wscale: state.rcv_wscale.min(twcheck::MAX_WSCALE), ..*state };
        let mut b = SlabBox::new_atomic(Entry::new(key, &state, ts_offset, conn, 0, A::scope_from(ifindex)))?;
        let timeouts = self.timeouts();
        let stripe = self.tables.stripe_of(&key);
        // One stripe lock hold: an entry past its expiry gives the tuple up, a live one keeps
        // it (EEXIST). The insert looks the tuple up itself, so the common case (no entry) costs
        // one lookup, not two.
        let mut guard = self.tables.lock(stripe);
        b.get_mut().start = clock_us();
        let entry = match guard.insert(b, rcu) {
            Ok(entry) => entry,
            Err((err, b)) if err == EEXIST => {
                self.free_tuple(&mut guard, rcu, &key, &timeouts, false)?;
                guard.insert(b, rcu).map_err(|(err, _b)| err)?
            }
            Err((err, _b)) => return Err(err),
        };
        drop(guard);
        self.bump(Stat::Added);
        self.bump(Stat::TakenOver);
        self.glue.arm_reaper(jiffies_after_us(timeouts.of(state.substate)));
        // The hook answers the FIN through it at once, without looking it up again.
        Ok(entry)
    }

    /// The seed's in_localip() under `nolocaltimewait`: a local peer has its own TIME_WAIT to
    /// answer for it.
    fn check_nolocal<A: Addr>(&self, key: &Key<A>) -> Result {
        let mut raddr = [0u8; 16];
        raddr[..key.raddr.bytes().len()].copy_from_slice(key.raddr.bytes());
        if self.glue.sysctl(Sysctl::NoLocalTimeWait) != 0 && self.glue.addr_is_local(A::FAMILY, &raddr) {
            self.bump(Stat::RefusedNolocal);
            return Err(EADDRNOTAVAIL);
        }
        Ok(())
    }

    /// Make `key`'s tuple free for an insert: an entry past its expiry no longer guards it
    /// (T12), reaped or not; a live one goes only to a `replace`, else EEXIST (which an add
    /// counts as refused-exists; a takeover that finds one lost a race and counts nothing).
    fn free_tuple<A: Addr>(&self, guard: &mut StripeGuard<'_>, rcu: &rcu::Guard, key: &Key<A>, timeouts: &Timeouts, replace: bool) -> Result {
        if let Some(occ) = self.tables.lookup(key, rcu).and_then(|e| guard.occupied(e)) {
            if timeouts.expired(occ.get(), clock_us()) {
                self.bump(expiry_stat(occ.get()));
                occ.remove();
            } else if replace {
                self.bump(Stat::Deleted);
                occ.remove();
            } else {
                return Err(EEXIST);
            }
        }
        Ok(())
    }

    /// Remove the entry closest to its expiry (the oldest FIFO head of any stripe).
    fn recycle_one(&self, timeouts: &Timeouts) {
        let now32 = clock_us();
        // (remaining µs, stripe)
        let mut best: Option<(u32, u32)> = None;
        for stripe in 0..self.tables.stripes() {
            let mut guard = self.tables.lock(stripe);
            if let Some((left, ..)) = nearest_head(&mut guard, timeouts, now32) {
                // Live heads only (a dead one was just reaped): `left` is small.
                if best.is_none_or(|b| (left as i32) < (b.0 as i32)) {
                    best = Some((left, stripe));
                }
            }
        }
        let Some((_, stripe)) = best else { return };
        let mut guard = self.tables.lock(stripe);
        if remove_nearest(&mut guard, timeouts, clock_us()) {
            self.bump(Stat::Recycled);
        }
    }

    /// Bring a table over its capacity (`maxtcptw` lowered below the live count, D37) back to
    /// it: each pass takes from every stripe its entry closest to expiry, a stripe lock at a
    /// time, so trimming k entries costs O(k) and never holds a lock for long.
    fn trim_to_capacity(&self) {
        let capacity = self.capacity() as usize;
        let timeouts = self.timeouts();
        // Never 0 (`max`), which also spares the divisions below a divide-by-zero check.
        let stripes = self.tables.stripes().max(1);
        // Each pass starts one stripe further on, so a last partial pass does not always take
        // from the same few stripes.
        let mut first = clock_us() % stripes;
        while self.tables.len() > capacity {
            let mut removed = 0u64;
            for i in 0..stripes {
                if self.tables.len() <= capacity {
                    break;
                }
                let mut guard = self.tables.lock(first.wrapping_add(i) % stripes);
                if remove_nearest(&mut guard, &timeouts, clock_us()) {
                    removed += 1;
                }
            }
            self.tables.count(Stat::Recycled as u32, removed);
            // Process context (the reaper's worker), no lock held.
            sys::cond_resched();
            if removed == 0 {
                break;
            }
            first = first.wrapping_add(1) % stripes;
        }
    }

    /// Delete the entry guarding `key`.
    pub(crate) fn del<A: Addr>(&self, key: Key<A>) -> Result {
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

    /// The entry guarding `key`.
    pub(crate) fn get<A: Addr>(&self, key: Key<A>) -> Result<Snapshot> {
        let rcu = rcu::read_lock();
        let e = self.tables.lookup(&key, &rcu).ok_or(ENOENT)?;
        self.snapshot(e)
    }

    /// A consistent snapshot of a live entry (found under RCU); `ENOENT` if it is gone or
    /// expired.
    pub(crate) fn snapshot<A: Addr>(&self, e: &Entry<A>) -> Result<Snapshot> {
        let timeouts = self.timeouts();
        let m = {
            let mut guard = self.tables.lock(self.tables.stripe_of(&e.key));
            *guard.occupied(e).ok_or(ENOENT)?.get()
        };
        let now_us = clock_us();
        if timeouts.expired(&m, now_us) {
            return Err(ENOENT);
        }
        let left_us = time::until32(m.expires(timeouts.of(m.substate())), now_us);
        Ok(Snapshot {
            state: m.state(),
            ts_offset: e.ts_offset,
            ifindex: A::scope_ifindex(e.scope),
            conn: e.conn,
            expires_ms: left_us.div_ceil(1000),
        })
    }

    /// Delete every entry; returns how many. A bounded batch per stripe lock hold.
    pub(crate) fn flush(&self) -> u32 {
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
                // Process context (the reaper's worker, netlink), no lock held.
                sys::cond_resched();
                if batch < BATCH {
                    break;
                }
            }
        }
        n
    }

    /// A request the glue refused as malformed.
    pub(crate) fn count_invalid(&self) {
        self.bump(Stat::RefusedInvalid);
    }

    /// The counters.
    pub(crate) fn stats(&self, out: &mut [u64; STAT_COUNT]) {
        self.tables.counters(out);
        out[Stat::Entries as usize] = self.tables.len() as u64;
        out[Stat::Capacity as usize] = u64::from(self.capacity());
    }

    /// Free every entry (netns exit). Nothing else can reach the state any more.
    pub(crate) fn drain(&self) {
        self.flush();
    }
}

/// The FIFO head of `guard`'s stripe closest to its expiry: (µs left, family, class).
fn nearest_head(guard: &mut StripeGuard<'_>, timeouts: &Timeouts, now32: u32) -> Option<(u32, Family, Substate)> {
    let mut best: Option<(u32, Family, Substate)> = None;
    for class in CLASSES {
        for (family, left) in [
            (Family::V4, guard.head::<V4>(class).map(|o| o.get().expires(timeouts.of(class)).wrapping_sub(now32))),
            (Family::V6, guard.head::<V6>(class).map(|o| o.get().expires(timeouts.of(class)).wrapping_sub(now32))),
        ] {
            if let Some(left) = left {
                if best.is_none_or(|b| (left as i32) < (b.0 as i32)) {
                    best = Some((left, family, class));
                }
            }
        }
    }
    best
}

/// Remove the entry of `guard`'s stripe closest to its expiry; false if the stripe is empty.
fn remove_nearest(guard: &mut StripeGuard<'_>, timeouts: &Timeouts, now32: u32) -> bool {
    match nearest_head(guard, timeouts, now32) {
        Some((_, Family::V4, class)) => guard.head::<V4>(class).map(|o| o.remove()).is_some(),
        Some((_, _, class)) => guard.head::<V6>(class).map(|o| o.remove()).is_some(),
        None => false,
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
    fn key_of_swaps_for_incoming() {
        let mut seg = TcpSegment {
            family: Family::V4,
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
