// SPDX-License-Identifier: GPL-2.0

//! `TimeWaitTable`: one address family's entries, hashed by 4-tuple for O(1) lookup from the
//! hook, and queued on a FIFO in the order their 2MSL (or FIN_WAIT_2) timeout started, the
//! seed's `twq_2msl`. The table links entries it is given; allocating and freeing them is the
//! caller's (slab in the module, `KBox` in the tests).
//!
//! Every method runs under the per-netns lock (`netns.rs`); the table itself is not `Sync`.

use crate::entry::{Addr, Entry, Key};
use core::ptr;
use kernel::prelude::*;

/// Smallest and largest bucket arrays. Buckets grow (×4) when the table holds more than two
/// entries per bucket, so a chain stays short however large `maxtcptw` is.
pub const BUCKETS_MIN: usize = 256;
/// 2^20 buckets (8 MiB of pointers) serve 2^21 entries at two per chain.
pub const BUCKETS_MAX: usize = 1 << 20;

/// Hash chains and the 2MSL FIFO of one address family.
///
/// # Invariants
///
/// - Every non-null pointer reachable from `buckets` or from `fifo_head`/`fifo_tail` points to
///   a valid, initialised `Entry<A>` that the table's owner allocated and handed over with
///   [`TimeWaitTable::insert`] and has not taken back with [`TimeWaitTable::remove`].
/// - Each such entry is on exactly one hash chain (the one its key hashes to) and on the FIFO
///   exactly once; `count` is the number of them.
pub struct TimeWaitTable<A: Addr> {
    buckets: KVVec<*mut Entry<A>>,
    seed: u64,
    fifo_head: *mut Entry<A>,
    fifo_tail: *mut Entry<A>,
    count: usize,
    changes: u32,
}

// SAFETY: the raw pointers are owned by the table (see the invariants); it is only used under
// the per-netns lock, so moving it between contexts is sound.
unsafe impl<A: Addr> Send for TimeWaitTable<A> {}

/// A keyed hash of the 4-tuple. The seed is random per netns so a peer choosing its ports
/// cannot aim every entry at one chain (the reason Linux mixes a secret into inet_ehashfn).
pub fn hash_key<A: Addr>(seed: u64, key: &Key<A>) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut mix = |b: u64| {
        h ^= b;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
    };
    for part in [key.laddr.bytes(), key.raddr.bytes()] {
        for chunk in part.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            mix(u64::from_ne_bytes(w));
        }
    }
    mix((u64::from(key.lport) << 16) | u64::from(key.rport));
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 29)
}

impl<A: Addr> TimeWaitTable<A> {
    /// An empty table with `BUCKETS_MIN` chains.
    pub fn new(seed: u64) -> Result<Self> {
        Ok(TimeWaitTable {
            buckets: KVVec::from_elem(ptr::null_mut(), BUCKETS_MIN, GFP_KERNEL)?,
            seed,
            fifo_head: ptr::null_mut(),
            fifo_tail: ptr::null_mut(),
            count: 0,
            changes: 0,
        })
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Bumped by every change that moves entries on the hash chains (insert, remove, rehash),
    /// so a dump that spans several lock holds can tell it may have missed or repeated one.
    pub fn changes(&self) -> u32 {
        self.changes
    }

    /// Hash chains.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_of(&self, key: &Key<A>) -> usize {
        // The bucket count is a power of two.
        (hash_key(self.seed, key) as usize) & (self.buckets.len() - 1)
    }

    /// The entry guarding `key`, or null.
    pub fn lookup(&self, key: &Key<A>) -> *mut Entry<A> {
        let mut p = self.buckets[self.bucket_of(key)];
        while !p.is_null() {
            // SAFETY: by the type invariant every pointer on a chain is a valid entry.
            let e = unsafe { &*p };
            if e.key == *key {
                return p;
            }
            p = e.hash_next;
        }
        ptr::null_mut()
    }

    /// Link a new entry at the FIFO's tail.
    ///
    /// # Safety
    ///
    /// `e` must point to a valid, initialised entry that is in no table, whose key is not
    /// already in this one, and that stays valid until it is handed back by `remove`,
    /// `pop_oldest` or `drain_one`.
    pub unsafe fn insert(&mut self, e: *mut Entry<A>) {
        // SAFETY: the caller guarantees `e` is valid and exclusively ours.
        let entry = unsafe { &mut *e };
        let b = self.bucket_of(&entry.key);
        entry.hash_next = self.buckets[b];
        self.buckets[b] = e;
        self.fifo_push_tail(e);
        self.count += 1;
        self.changes = self.changes.wrapping_add(1);
    }

    /// Append `e`, which is on no FIFO, at the tail.
    fn fifo_push_tail(&mut self, e: *mut Entry<A>) {
        // SAFETY: callers pass a valid entry of this table that is off the FIFO; a non-null
        // tail is a valid entry (type invariant).
        unsafe {
            (*e).fifo_next = ptr::null_mut();
            (*e).fifo_prev = self.fifo_tail;
            if self.fifo_tail.is_null() {
                self.fifo_head = e;
            } else {
                (*self.fifo_tail).fifo_next = e;
            }
        }
        self.fifo_tail = e;
    }

    fn fifo_unlink(&mut self, e: *mut Entry<A>) {
        // SAFETY: callers pass entries in this table; their FIFO neighbours are valid entries
        // or null (type invariant).
        unsafe {
            let (prev, next) = ((*e).fifo_prev, (*e).fifo_next);
            if prev.is_null() {
                self.fifo_head = next;
            } else {
                (*prev).fifo_next = next;
            }
            if next.is_null() {
                self.fifo_tail = prev;
            } else {
                (*next).fifo_prev = prev;
            }
            (*e).fifo_prev = ptr::null_mut();
            (*e).fifo_next = ptr::null_mut();
        }
    }

    fn hash_unlink(&mut self, e: *mut Entry<A>) {
        // SAFETY: `e` is in this table (callers' contract), so it is a valid entry.
        let b = self.bucket_of(unsafe { &(*e).key });
        let mut link: *mut *mut Entry<A> = &mut self.buckets[b];
        // SAFETY: `link` points either at the bucket slot or at the `hash_next` field of a valid
        // entry on the chain; the chain contains `e`, so the walk ends on it.
        unsafe {
            while !(*link).is_null() {
                if *link == e {
                    *link = (*e).hash_next;
                    (*e).hash_next = ptr::null_mut();
                    return;
                }
                link = &mut (**link).hash_next;
            }
        }
    }

    /// Unlink `e`; the caller owns it again.
    ///
    /// # Safety
    ///
    /// `e` must be an entry of this table.
    pub unsafe fn remove(&mut self, e: *mut Entry<A>) {
        self.hash_unlink(e);
        self.fifo_unlink(e);
        self.count -= 1;
        self.changes = self.changes.wrapping_add(1);
    }

    /// Move `e` to the FIFO's tail with a new expiry: the seed's `tcp_tw_2msl_reset(tw, 1)`.
    ///
    /// # Safety
    ///
    /// `e` must be an entry of this table.
    pub unsafe fn requeue(&mut self, e: *mut Entry<A>, expires: u32) {
        self.fifo_unlink(e);
        // SAFETY: `e` is a valid entry of this table (caller's contract).
        unsafe { (*e).expires = expires };
        self.fifo_push_tail(e);
    }

    /// The oldest entry (FIFO head), or null.
    pub fn oldest(&self) -> *mut Entry<A> {
        self.fifo_head
    }

    /// Unlink and return the oldest entry, or null: the seed's `tcp_tw_2msl_scan()`.
    pub fn pop_oldest(&mut self) -> *mut Entry<A> {
        let e = self.fifo_head;
        if !e.is_null() {
            // SAFETY: the head is an entry of this table.
            unsafe { self.remove(e) };
        }
        e
    }

    /// Rehash into `new` (zeroed, a power of two long). Used to grow as the table fills.
    pub fn rehash(&mut self, mut new: KVVec<*mut Entry<A>>) {
        let mask = new.len() - 1;
        for slot in self.buckets.iter_mut() {
            let mut p = core::mem::replace(slot, ptr::null_mut());
            while !p.is_null() {
                // SAFETY: every pointer on a chain is a valid entry of this table.
                let e = unsafe { &mut *p };
                let next = e.hash_next;
                let b = (hash_key(self.seed, &e.key) as usize) & mask;
                e.hash_next = new[b];
                new[b] = p;
                p = next;
            }
        }
        self.buckets = new;
        self.changes = self.changes.wrapping_add(1);
    }

    /// Bucket count the table should have for `count` entries (two per chain).
    pub fn wanted_buckets(&self) -> usize {
        let mut n = self.buckets.len();
        while self.count > 2 * n && n < BUCKETS_MAX {
            n *= 4;
        }
        n.min(BUCKETS_MAX)
    }

    /// Visit entries in hash order from `cursor` (bucket, position in chain), until `f`
    /// returns false. Returns the cursor of the first entry not accepted, or `None` at the end.
    pub fn walk_from(
        &self,
        cursor: (usize, usize),
        mut f: impl FnMut(&Entry<A>) -> bool,
    ) -> Option<(usize, usize)> {
        let (mut b, mut skip) = cursor;
        while b < self.buckets.len() {
            let mut p = self.buckets[b];
            let mut pos = 0;
            while !p.is_null() {
                // SAFETY: every pointer on a chain is a valid entry of this table.
                let e = unsafe { &*p };
                if pos >= skip && !f(e) {
                    return Some((b, pos));
                }
                pos += 1;
                p = e.hash_next;
            }
            b += 1;
            skip = 0;
        }
        None
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_table))]
mod tests {
    use super::*;
    use crate::entry::{Key, V4};
    use crate::twcheck::{EntryState, Substate};

    fn state() -> EntryState {
        EntryState {
            snd_nxt: 1,
            rcv_nxt: 2,
            last_win: 100,
            rcv_wscale: 0,
            ts_recent: 0,
            has_ts: false,
            ts_recent_valid: false,
            substate: Substate::TimeWait,
        }
    }

    fn key(port: u16) -> Key<V4> {
        Key { laddr: V4([10, 0, 0, 1]), raddr: V4([10, 0, 0, 2]), lport: 80, rport: port }
    }

    fn alloc(port: u16, expires: u32) -> *mut Entry<V4> {
        match KBox::new(Entry::new(key(port), &state(), 0, expires, ()), GFP_KERNEL) {
            Ok(b) => KBox::into_raw(b),
            Err(_) => ptr::null_mut(),
        }
    }

    fn free_all(t: &mut TimeWaitTable<V4>) -> usize {
        let mut n = 0;
        loop {
            let e = t.pop_oldest();
            if e.is_null() {
                return n;
            }
            // SAFETY: every entry in the test table came from `KBox::into_raw` in `alloc`.
            drop(unsafe { KBox::from_raw(e) });
            n += 1;
        }
    }

    #[test]
    fn lookup_finds_each_and_only_each() {
        let Ok(mut t) = TimeWaitTable::<V4>::new(42) else { return assert!(false) };
        for port in 1000..1600u16 {
            let e = alloc(port, u32::from(port));
            assert!(!e.is_null());
            // SAFETY: fresh entry, key not in the table.
            unsafe { t.insert(e) };
        }
        assert_eq!(t.len(), 600);
        let mut found = 0;
        for port in 1000..1600u16 {
            let e = t.lookup(&key(port));
            // SAFETY: non-null lookups are entries of the table.
            if !e.is_null() && unsafe { (*e).key.rport } == port {
                found += 1;
            }
        }
        assert_eq!(found, 600);
        assert!(t.lookup(&key(999)).is_null());
        assert!(t.lookup(&key(1600)).is_null());
        assert_eq!(free_all(&mut t), 600);
    }

    #[test]
    fn fifo_is_insertion_order_and_requeue_moves_to_tail() {
        let Ok(mut t) = TimeWaitTable::<V4>::new(7) else { return assert!(false) };
        let a = alloc(1, 10);
        let b = alloc(2, 20);
        let c = alloc(3, 30);
        // SAFETY: fresh entries with distinct keys.
        unsafe {
            t.insert(a);
            t.insert(b);
            t.insert(c);
        }
        assert_eq!(t.oldest(), a);
        // SAFETY: `a` is in the table.
        unsafe { t.requeue(a, 99) };
        assert_eq!(t.pop_oldest(), b);
        assert_eq!(t.pop_oldest(), c);
        assert_eq!(t.pop_oldest(), a);
        // SAFETY: `a` was popped and is ours again.
        assert_eq!(unsafe { (*a).expires }, 99);
        assert!(t.pop_oldest().is_null());
        for e in [a, b, c] {
            // SAFETY: all three came from `alloc` and left the table.
            drop(unsafe { KBox::from_raw(e) });
        }
    }

    #[test]
    fn remove_from_middle_keeps_links() {
        let Ok(mut t) = TimeWaitTable::<V4>::new(1) else { return assert!(false) };
        let es = [alloc(1, 1), alloc(2, 2), alloc(3, 3)];
        for e in es {
            // SAFETY: fresh entries with distinct keys.
            unsafe { t.insert(e) };
        }
        // SAFETY: es[1] is in the table.
        unsafe { t.remove(es[1]) };
        assert!(t.lookup(&key(2)).is_null());
        assert_eq!(t.lookup(&key(3)), es[2]);
        assert_eq!(t.len(), 2);
        // SAFETY: es[1] left the table.
        drop(unsafe { KBox::from_raw(es[1]) });
        assert_eq!(free_all(&mut t), 2);
    }

    #[test]
    fn rehash_keeps_every_entry_and_walk_visits_each_once() {
        let Ok(mut t) = TimeWaitTable::<V4>::new(3) else { return assert!(false) };
        for port in 1..=1200u16 {
            let e = alloc(port, 0);
            // SAFETY: fresh entry, distinct key.
            unsafe { t.insert(e) };
        }
        let want = t.wanted_buckets();
        assert_eq!(want, 1024);
        let Ok(new) = KVVec::from_elem(ptr::null_mut(), want, GFP_KERNEL) else {
            return assert!(false);
        };
        t.rehash(new);
        assert_eq!(t.bucket_count(), 1024);
        let mut sum = 0u32;
        let mut n = 0;
        assert!(t.walk_from((0, 0), |e| {
            sum += u32::from(e.key.rport);
            n += 1;
            true
        }).is_none());
        assert_eq!(n, 1200);
        assert_eq!(sum, 1200 * 1201 / 2);
        // A walk stopped after 500 entries resumes where it stopped and sees the other 700.
        let mut first = 0;
        let Some(cursor) = t.walk_from((0, 0), |_| {
            first += 1;
            first <= 500
        }) else {
            return assert!(false);
        };
        let mut rest = 0;
        assert!(t.walk_from(cursor, |_| {
            rest += 1;
            true
        }).is_none());
        assert_eq!(rest, 700);
        assert_eq!(free_all(&mut t), 1200);
    }

    #[test]
    fn changes_count_structural_changes_only() {
        let Ok(mut t) = TimeWaitTable::<V4>::new(9) else { return assert!(false) };
        let a = alloc(1, 1);
        // SAFETY: fresh entry.
        unsafe { t.insert(a) };
        assert_eq!(t.changes(), 1);
        // SAFETY: `a` is in the table.
        unsafe { t.requeue(a, 5) };
        assert_eq!(t.changes(), 1);
        assert_eq!(free_all(&mut t), 1);
        assert_eq!(t.changes(), 2);
    }

    #[test]
    fn hash_depends_on_seed_and_every_key_field() {
        let k = key(5);
        let h = hash_key(1, &k);
        assert!(hash_key(2, &k) != h);
        let mut k2 = k;
        k2.lport = 81;
        assert!(hash_key(1, &k2) != h);
        let mut k3 = k;
        k3.raddr = V4([10, 0, 0, 3]);
        assert!(hash_key(1, &k3) != h);
    }
}
