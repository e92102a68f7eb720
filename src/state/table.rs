// SPDX-License-Identifier: GPL-2.0

//! The safe face of `table.c`: one netns's entries, hashed by tuple in an rhashtable (lookups
//! under RCU, no lock), guarded by striped locks, and queued per stripe on FIFOs in the order
//! their timeouts started (the seed's `twq_2msl`).
//!
//! - [`Tables::lookup`] finds an entry under an RCU read guard; the entry's memory stays valid
//!   for the guard's life (entries are freed after a grace period).
//! - [`Tables::lock`] takes a stripe; [`StripeGuard::occupied`] turns an entry found by a lookup
//!   into an [`Occupied`] handle if it is still in the table, and only through that handle can
//!   the entry's state change, be requeued or be removed.
//! - [`SlabBox`] owns an entry that is not yet published; its `Drop` frees it.

use crate::state::entry::{flag, Addr, Entry, Key, Mutable};
use crate::ffi;
use crate::logic::twcheck::Substate;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::rcu;

/// A timeout class: which FIFO an entry waits on.
fn class_of(s: Substate) -> u8 {
    match s {
        Substate::TimeWait => ffi::rtw_glue_substate_RTW_GLUE_TIME_WAIT as u8,
        Substate::FinWait2 => ffi::rtw_glue_substate_RTW_GLUE_FIN_WAIT2 as u8,
    }
}

/// The two timeout classes, in FIFO index order.
pub(crate) const CLASSES: [Substate; 2] = [Substate::TimeWait, Substate::FinWait2];

/// One netns's tables.
///
/// # Invariants
///
/// `raw` points to a live `rtw_glue_tables` that outlives this object: the glue creates it
/// before the netns state and frees it after the state is gone.
pub(crate) struct Tables {
    raw: NonNull<ffi::rtw_glue_tables>,
}

// SAFETY: `rtw_glue_tables` is built for concurrent use: RCU lookups, per-stripe locks,
// per-CPU counters, the rhashtables' own locking.
unsafe impl Send for Tables {}
// SAFETY: as above.
unsafe impl Sync for Tables {}

impl Tables {
    /// # Safety
    ///
    /// `raw` is a live table that outlives the returned object.
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::rtw_glue_tables>) -> Self {
        Tables { raw }
    }

    fn ptr(&self) -> *mut ffi::rtw_glue_tables {
        self.raw.as_ptr()
    }

    /// Entries in both families' tables.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: the table is live (type invariant).
        unsafe { ffi::rtw_glue_table_len(self.ptr()) as usize }
    }

    /// Number of stripes.
    pub(crate) fn stripes(&self) -> u32 {
        // SAFETY: no preconditions.
        unsafe { ffi::rtw_glue_table_stripes() }
    }

    /// Add `n` to a counter (this CPU's copy).
    pub(crate) fn count(&self, stat: u32, n: u64) {
        // SAFETY: the table is live (type invariant); the glue ignores unknown counters.
        unsafe { ffi::rtw_glue_stat_add(self.ptr(), stat, n) };
    }

    /// The counters summed over CPUs.
    pub(crate) fn counters(&self, out: &mut [u64; ffi::rtw_glue_stat_RTW_GLUE_STAT_COUNT as usize]) {
        // SAFETY: the table is live; `out` has room for every counter.
        unsafe { ffi::rtw_glue_stats_read(self.ptr(), out.as_mut_ptr()) };
    }

    /// The stripe that guards `key`.
    pub(crate) fn stripe_of<A: Addr>(&self, key: &Key<A>) -> u32 {
        // SAFETY: the table is live; `key` is the family's key, `size_of::<Key<A>>()` bytes,
        // as table.c reads it.
        unsafe { ffi::rtw_glue_table_stripe(self.ptr(), A::FAMILY.af(), (key as *const Key<A>).cast()) }
    }

    /// The entry for `key`, if the table holds one. Takes no lock and writes nothing.
    pub(crate) fn lookup<'g, A: Addr>(&self, key: &Key<A>, _rcu: &'g rcu::Guard) -> Option<&'g Entry<A>> {
        // SAFETY: the table is live; `key` is the family's key (see `stripe_of`).
        let p = unsafe { ffi::rtw_glue_table_lookup(self.ptr(), A::FAMILY.af(), (key as *const Key<A>).cast()) };
        // SAFETY: a non-null result is an entry of the family's table (an `Entry<A>` allocated
        // from the family's cache); it is freed only after a grace period, and `_rcu` keeps the
        // caller in a read-side critical section for `'g`.
        unsafe { from_table(p) }
    }

    /// Take stripe `stripe`'s lock (bottom halves off).
    pub(crate) fn lock(&self, stripe: u32) -> StripeGuard<'_> {
        // SAFETY: the table is live; released by `StripeGuard::drop`.
        unsafe { ffi::rtw_glue_stripe_lock(self.ptr(), stripe) };
        StripeGuard { tables: self, stripe, _not_send: PhantomData }
    }
}

/// Turn a pointer from table.c into an entry reference.
///
/// # Safety
///
/// `p` is null or an `Entry<A>` of the family's table that stays allocated for `'g`.
unsafe fn from_table<'g, A: Addr>(p: *mut core::ffi::c_void) -> Option<&'g Entry<A>> {
    // SAFETY: the caller's contract.
    NonNull::new(p.cast::<Entry<A>>()).map(|e| unsafe { &*e.as_ptr() })
}

/// Build an entry reference from a pointer the glue handed over (a hook's lookup, a dump's walk).
///
/// # Safety
///
/// `p` is null or an `Entry<A>` of the family's table found under RCU, and the caller stays in
/// that read-side critical section for `'g`.
pub(crate) unsafe fn entry_from_glue<'g, A: Addr>(p: *mut core::ffi::c_void, _rcu: &'g rcu::Guard) -> Option<&'g Entry<A>> {
    // SAFETY: the caller's contract.
    unsafe { from_table(p) }
}

/// A stripe's lock, held.
///
/// # Invariants
///
/// The stripe `stripe` of `tables` is locked by this object.
pub(crate) struct StripeGuard<'a> {
    tables: &'a Tables,
    stripe: u32,
    _not_send: PhantomData<*mut ()>,
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock (type invariant).
        unsafe { ffi::rtw_glue_stripe_unlock(self.tables.ptr(), self.stripe) };
    }
}

impl<'a> StripeGuard<'a> {
    /// The entry, if it is still in the table and this stripe guards it. `e` must come from
    /// a lookup in, or an insert into, these same tables (every caller's does): an entry of
    /// another netns's table that happened to share the stripe index would pass the checks
    /// below.
    pub(crate) fn occupied<'g, A: Addr>(&'g mut self, e: &'g Entry<A>) -> Option<Occupied<'g, 'a, A>> {
        if self.tables.stripe_of(&e.key) != self.stripe {
            return None;
        }
        // SAFETY: we hold the entry's stripe lock and create no other reference.
        let linked = unsafe { e.mutable() }.flags & flag::LINKED != 0;
        linked.then_some(Occupied { guard: self, entry: e })
    }

    /// Publish `b` (whose key this stripe guards) on the FIFO of its substate; the published
    /// entry stays allocated for as long as `_rcu` (as any entry a lookup finds).
    /// On failure (`EEXIST`, or the hash could not grow) the entry comes back.
    pub(crate) fn insert<'g, A: Addr>(&mut self, b: SlabBox<A>, _rcu: &'g rcu::Guard) -> core::result::Result<&'g Entry<A>, (Error, SlabBox<A>)> {
        // SAFETY: `b` owns the unpublished entry.
        let m = unsafe { b.entry().mutable() };
        if self.tables.stripe_of(&b.entry().key) != self.stripe {
            return Err((EINVAL, b));
        }
        m.flags |= flag::LINKED;
        let class = class_of(m.substate());
        // SAFETY: we hold the stripe lock; `b` is a fully initialised entry of the family's
        // cache with its key right after its link.
        let err = unsafe {
            ffi::rtw_glue_table_insert(self.tables.ptr(), A::FAMILY.af(), self.stripe, b.as_ptr().cast(), class)
        };
        if err != 0 {
            // SAFETY: still unpublished and ours.
            unsafe { b.entry().mutable() }.flags &= !flag::LINKED;
            return Err((Error::from_errno(err), b));
        }
        // Owned by the table now; freed by `Occupied::remove`, after a grace period.
        let p = b.as_ptr();
        core::mem::forget(b);
        // SAFETY: published above; removed entries are freed only after a grace period, and
        // `_rcu` keeps the caller in a read-side critical section for `'g`.
        Ok(unsafe { &*p })
    }

    /// The oldest entry of a family's FIFO for a timeout class in this stripe.
    pub(crate) fn head<A: Addr>(&mut self, class: Substate) -> Option<Occupied<'_, 'a, A>> {
        // SAFETY: we hold the stripe lock.
        let p = unsafe { ffi::rtw_glue_table_head(self.tables.ptr(), A::FAMILY.af(), self.stripe, class_of(class)) };
        // SAFETY: a FIFO holds entries of the family's table, which stay allocated while they
        // are linked, which they are until the lock we hold is dropped.
        let e = unsafe { from_table::<A>(p) }?;
        Some(Occupied { guard: self, entry: e })
    }
}

/// An entry in the table, under its stripe lock.
///
/// # Invariants
///
/// `entry` is linked in `guard`'s tables and guarded by `guard`'s stripe.
pub(crate) struct Occupied<'g, 'a, A: Addr> {
    guard: &'g mut StripeGuard<'a>,
    entry: &'g Entry<A>,
}

impl<A: Addr> Occupied<'_, '_, A> {
    /// The entry's fixed part.
    pub(crate) fn entry(&self) -> &Entry<A> {
        self.entry
    }

    /// The entry's mutable part.
    pub(crate) fn get(&self) -> &Mutable {
        // SAFETY: we hold its stripe lock, and the only writer under it, `get_mut`, needs
        // `&mut self`, which cannot coexist with this borrow.
        unsafe { self.entry.mutable_ref() }
    }

    /// The entry's mutable part, to change.
    pub(crate) fn get_mut(&mut self) -> &mut Mutable {
        // SAFETY: we hold its stripe lock and `&mut self` is the only way in.
        unsafe { self.entry.mutable() }
    }

    /// Move to the tail of its substate's FIFO (after a re-arm or a FIN_WAIT_2 completion;
    /// the caller set `start` to now).
    pub(crate) fn requeue(&mut self) {
        let class = class_of(self.get().substate());
        // SAFETY: the entry is linked in this stripe (type invariant) and we hold the lock.
        unsafe {
            ffi::rtw_glue_table_requeue(
                self.guard.tables.ptr(),
                A::FAMILY.af(),
                self.guard.stripe,
                (self.entry as *const Entry<A>).cast_mut().cast(),
                class,
            )
        };
    }

    /// Take the entry out of the table; it is freed after a grace period.
    pub(crate) fn remove(mut self) {
        self.get_mut().flags &= !flag::LINKED;
        // SAFETY: the entry is linked in this stripe (type invariant) and we hold the lock;
        // `self` is consumed, so nothing here touches the entry again.
        unsafe {
            ffi::rtw_glue_table_unlink(
                self.guard.tables.ptr(),
                A::FAMILY.af(),
                self.guard.stripe,
                (self.entry as *const Entry<A>).cast_mut().cast(),
            )
        };
    }
}

/// An entry allocated from its family's slab cache and not yet in any table.
///
/// # Invariants
///
/// `ptr` is an initialised `Entry<A>` from the family's cache, owned by this box alone.
pub(crate) struct SlabBox<A: Addr> {
    ptr: NonNull<Entry<A>>,
}

impl<A: Addr> SlabBox<A> {
    /// Allocate (GFP_KERNEL, process context) and initialise.
    pub(crate) fn new(e: Entry<A>) -> Result<Self> {
        Self::alloc(e, false)
    }

    /// Allocate without sleeping (the hook, softirq) and initialise.
    pub(crate) fn new_atomic(e: Entry<A>) -> Result<Self> {
        Self::alloc(e, true)
    }

    fn alloc(e: Entry<A>, atomic: bool) -> Result<Self> {
        // SAFETY: no preconditions; the sleeping one is asked for by `new`, whose callers are
        // in process context.
        let raw = unsafe {
            if atomic {
                ffi::rtw_glue_entry_alloc_atomic(A::FAMILY.af())
            } else {
                ffi::rtw_glue_entry_alloc(A::FAMILY.af())
            }
        };
        let p = NonNull::new(raw.cast::<Entry<A>>()).ok_or(ENOMEM)?;
        // SAFETY: a fresh object of the family's cache, created with `Entry<A>`'s size and
        // alignment (`entry_layouts`).
        unsafe { p.as_ptr().write(e) };
        Ok(SlabBox { ptr: p })
    }

    /// The entry.
    pub(crate) fn entry(&self) -> &Entry<A> {
        // SAFETY: initialised and owned (type invariant).
        unsafe { self.ptr.as_ref() }
    }

    /// The entry's mutable part, before it is published.
    pub(crate) fn get_mut(&mut self) -> &mut Mutable {
        // SAFETY: owned alone and unpublished (type invariant); `&mut self` is the only way in.
        unsafe { self.entry().mutable() }
    }

    fn as_ptr(&self) -> *mut Entry<A> {
        self.ptr.as_ptr()
    }
}

impl<A: Addr> Drop for SlabBox<A> {
    fn drop(&mut self) {
        // SAFETY: never published, so no reader can see it; an `Entry` has no destructor.
        unsafe { ffi::rtw_glue_entry_free(A::FAMILY.af(), self.ptr.as_ptr().cast()) };
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_table))]
mod tests {
    use super::*;
    use crate::state::entry::V4;
    use crate::logic::twcheck::EntryState;

    fn state(substate: Substate) -> EntryState {
        EntryState {
            snd_nxt: 1,
            rcv_nxt: 2,
            last_win: 100,
            rcv_wscale: 0,
            ts_recent: 0,
            has_ts: false,
            ts_recent_valid: false,
            substate,
        }
    }

    fn key(port: u16) -> Key<V4> {
        Key { laddr: V4([10, 0, 0, 1]), raddr: V4([10, 0, 0, 2]), lport: 80, rport: port, l3index: 0 }
    }

    /// A private table for a test, freed (after emptying) when dropped.
    struct TestTables(Tables);

    impl TestTables {
        fn new() -> Option<Self> {
            // SAFETY: no preconditions.
            let raw = NonNull::new(unsafe { ffi::rtw_glue_tables_new() })?;
            // SAFETY: fresh, freed only by our `Drop`.
            Some(TestTables(unsafe { Tables::from_raw(raw) }))
        }

        fn add(&self, port: u16, start: u32, sub: Substate) -> bool {
            let Ok(b) = SlabBox::new(Entry::new(key(port), &state(sub), 0, Default::default(), start, ())) else { return false };
            let rcu = rcu::read_lock();
            let mut g = self.0.lock(self.0.stripe_of(&key(port)));
            g.insert(b, &rcu).is_ok()
        }

        fn remove(&self, port: u16) -> bool {
            let rcu = rcu::read_lock();
            let Some(e) = self.0.lookup(&key(port), &rcu) else { return false };
            let mut g = self.0.lock(self.0.stripe_of(&e.key));
            match g.occupied(e) {
                Some(o) => {
                    o.remove();
                    true
                }
                None => false,
            }
        }

        fn drain(&self) -> usize {
            let mut n = 0;
            for s in 0..self.0.stripes() {
                let mut g = self.0.lock(s);
                for class in CLASSES {
                    while let Some(o) = g.head::<V4>(class) {
                        o.remove();
                        n += 1;
                    }
                }
            }
            n
        }
    }

    impl Drop for TestTables {
        fn drop(&mut self) {
            self.drain();
            // SAFETY: empty, and nothing else holds it.
            unsafe { ffi::rtw_glue_tables_free(self.0.ptr()) };
        }
    }

    #[test]
    fn lookup_finds_each_and_only_each() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        for port in 1000..1600u16 {
            assert!(t.add(port, 0, Substate::TimeWait));
        }
        assert_eq!(t.0.len(), 600);
        let rcu = rcu::read_lock();
        let found = (1000..1600u16).filter(|p| t.0.lookup(&key(*p), &rcu).map(|e| e.key.rport) == Some(*p)).count();
        assert_eq!(found, 600);
        assert!(t.0.lookup(&key(999), &rcu).is_none());
        assert!(t.0.lookup(&key(1600), &rcu).is_none());
        drop(rcu);
        assert_eq!(t.drain(), 600);
        assert_eq!(t.0.len(), 0);
    }

    #[test]
    fn duplicate_insert_is_refused_and_comes_back() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        assert!(t.add(7, 0, Substate::TimeWait));
        assert!(!t.add(7, 0, Substate::TimeWait));
        assert_eq!(t.0.len(), 1);
    }

    #[test]
    fn growth_keeps_every_entry_and_chains_short() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        for port in 1..=5000u16 {
            assert!(t.add(port, 0, Substate::TimeWait));
        }
        // The rhashtable grows at 75 % load: at least one bucket per 1.34 entries, whenever
        // its worker has run; lookups stay correct while it has not.
        let rcu = rcu::read_lock();
        assert!((1..=5000u16).all(|p| t.0.lookup(&key(p), &rcu).is_some()));
        drop(rcu);
        assert_eq!(t.drain(), 5000);
    }

    #[test]
    fn removed_entry_is_found_by_a_concurrent_lookup_but_not_occupied() {
        // The sequence a hook racing with a netlink delete sees: it looked the entry up, then
        // the entry was removed, then the hook takes the stripe lock.
        let Some(t) = TestTables::new() else { return assert!(false) };
        assert!(t.add(9, 0, Substate::TimeWait));
        let rcu = rcu::read_lock();
        let Some(e) = t.0.lookup(&key(9), &rcu) else { return assert!(false) };
        {
            let mut g = t.0.lock(t.0.stripe_of(&e.key));
            let Some(o) = g.occupied(e) else { return assert!(false) };
            o.remove();
        }
        // Still readable (freed after the grace period our guard holds off)...
        assert_eq!(e.key.rport, 9);
        // ...but no longer the table's.
        let mut g = t.0.lock(t.0.stripe_of(&e.key));
        assert!(g.occupied(e).is_none());
        drop(g);
        assert!(t.0.lookup(&key(9), &rcu).is_none());
        drop(rcu);
        assert!(!t.remove(9));
    }

    #[test]
    fn fifo_is_start_order_and_requeue_moves_to_tail() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        // Find three ports that share a stripe, so they share a FIFO.
        let s = t.0.stripe_of(&key(1));
        let ports: KVec<u16> = {
            let mut v = KVec::new();
            let mut p = 1u16;
            while v.len() < 3 && p < 60000 {
                if t.0.stripe_of(&key(p)) == s && v.push(p, GFP_KERNEL).is_err() {
                    return assert!(false);
                }
                p += 1;
            }
            v
        };
        assert_eq!(ports.len(), 3);
        for (i, p) in ports.iter().enumerate() {
            assert!(t.add(*p, i as u32, Substate::TimeWait));
        }
        let rcu = rcu::read_lock();
        let Some(first) = t.0.lookup(&key(ports[0]), &rcu) else { return assert!(false) };
        let mut g = t.0.lock(s);
        assert_eq!(g.head::<V4>(Substate::TimeWait).map(|o| o.entry().key.rport), Some(ports[0]));
        {
            let Some(mut o) = g.occupied(first) else { return assert!(false) };
            o.get_mut().start = 99;
            o.requeue();
        }
        // No allocation under the stripe lock (GFP_KERNEL may sleep): a fixed array.
        let mut order = [0u16; 4];
        let mut n = 0;
        while let Some(o) = g.head::<V4>(Substate::TimeWait) {
            if let Some(slot) = order.get_mut(n) {
                *slot = o.entry().key.rport;
            }
            n += 1;
            o.remove();
        }
        assert_eq!(n, 3);
        assert_eq!(&order[..3], &[ports[1], ports[2], ports[0]]);
    }

    #[test]
    fn classes_have_their_own_fifos() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        let s = t.0.stripe_of(&key(5));
        assert!(t.add(5, 0, Substate::FinWait2));
        let rcu = rcu::read_lock();
        let Some(e) = t.0.lookup(&key(5), &rcu) else { return assert!(false) };
        let mut g = t.0.lock(s);
        assert!(g.head::<V4>(Substate::TimeWait).map(|o| o.entry().key.rport) != Some(5));
        assert_eq!(g.head::<V4>(Substate::FinWait2).map(|o| o.entry().key.rport), Some(5));
        // FIN_WAIT_2 completion: the entry moves to the TIME_WAIT FIFO.
        {
            let Some(mut o) = g.occupied(e) else { return assert!(false) };
            let mut st = o.get().state();
            st.substate = Substate::TimeWait;
            o.get_mut().set_state(&st);
            o.requeue();
        }
        assert!(g.head::<V4>(Substate::FinWait2).map(|o| o.entry().key.rport) != Some(5));
    }

    #[test]
    fn counters_sum_over_cpus() {
        let Some(t) = TestTables::new() else { return assert!(false) };
        t.0.count(3, 2);
        t.0.count(3, 5);
        t.0.count(10_000, 1);
        let mut c = [0u64; ffi::rtw_glue_stat_RTW_GLUE_STAT_COUNT as usize];
        t.0.counters(&mut c);
        assert_eq!(c[3], 7);
        assert_eq!(c.iter().sum::<u64>(), 7);
    }
}
