// SPDX-License-Identifier: GPL-2.0
/*
 * The per-netns table of compressed entries, on the kernel's own facilities (docs/decisions.md
 * D20, D21):
 *
 * - an rhashtable per address family, keyed by the 4-tuple: lookups under RCU take no lock
 *   and write nothing shared (the miss path of every TCP segment), inserts and removals take
 *   only the rhashtable's per-bucket bit lock, and growth is rehashed by the rhashtable's
 *   worker, a bucket at a time, never in softirq;
 * - striped locks (as the established hash's ehash_locks): a stripe, chosen by a keyed hash of
 *   the tuple, guards the mutable state of its entries and their place on the 2MSL FIFOs, so a
 *   hit locks 1/RTW_STRIPES of the table instead of the netns;
 * - per stripe, one FIFO per family and timeout class (TIME_WAIT: 2MSL, FIN_WAIT_2:
 *   fin_timeout), in the order the entries' timeouts started: the seed's twq_2msl. Since an
 *   entry's expiry is its start plus its class's timeout, each FIFO is sorted by expiry and the
 *   reaper only ever looks at heads;
 * - entries freed after an RCU grace period (call_rcu), so a lookup that raced with a removal
 *   still reads valid memory; the stripe lock plus the entry's `linked` flag (Rust's) tell it
 *   whether the entry is still in the table.
 *
 * Rust (src/state/table.rs) owns the entries' contents; this file owns their links.
 */
#include <linux/jhash.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rhashtable.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/spinlock.h>

#include "glue.h"

/* The C view of an entry's first bytes: its links, then its key (Rust's `Entry`). */
struct rtw_link {
	struct rhash_head node;
	union {
		/* On a FIFO while linked... */
		struct list_head fifo;
		/* ...and the RCU callback's once unlinked: no reader follows the FIFO links. */
		struct rcu_head rcu;
	};
};
static_assert(sizeof(struct rtw_link) == sizeof(struct rtw_glue_link));
static_assert(__alignof__(struct rtw_link) == __alignof__(struct rtw_glue_link));

/* The key (Rust's `Key`): the tuple and the L3 master (VRF) it belongs to, 0 for none. */
struct rtw_key4 {
	__u8 laddr[4];
	__u8 raddr[4];
	__u16 lport;
	__u16 rport;
	__u32 l3index;
};

struct rtw_key6 {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u32 l3index;
};

/*
 * Grows at 75 % load and shrinks below 30 %: about one entry per chain at any size. The
 * largest table holds 2^25 buckets, enough for maxtcptw's maximum (2^24) at half load.
 */
#define RTW_BUCKETS_MAX (1U << 25)

static const struct rhashtable_params rtw_params4 = {
	.key_len = sizeof(struct rtw_key4),
	.key_offset = sizeof(struct rtw_link),
	.head_offset = offsetof(struct rtw_link, node),
	.max_size = RTW_BUCKETS_MAX,
	.min_size = 16,
	.automatic_shrinking = true,
};

static const struct rhashtable_params rtw_params6 = {
	.key_len = sizeof(struct rtw_key6),
	.key_offset = sizeof(struct rtw_link),
	.head_offset = offsetof(struct rtw_link, node),
	.max_size = RTW_BUCKETS_MAX,
	.min_size = 16,
	.automatic_shrinking = true,
};

/* 64 stripes: a hit contends with 1/64 of the other hits; 64 FIFO heads for the reaper. */
#define RTW_STRIPES 64

struct rtw_stripe {
	spinlock_t lock;
	/* [family: 0 IPv4, 1 IPv6][class: RTW_GLUE_TIME_WAIT, RTW_GLUE_FIN_WAIT2] */
	struct list_head fifo[2][2];
};

struct rtw_glue_tables {
	struct rhashtable ht[2];
	u32 stripe_seed;
	struct rtw_stats __percpu *stats;
	struct rtw_stripe stripes[RTW_STRIPES];
};

struct rtw_stats {
	u64 v[RTW_GLUE_STAT_COUNT];
};

static struct kmem_cache *rtw_cache[2];

static inline int rtw_fam(__u8 family)
{
	return family == AF_INET6;
}

static inline struct rtw_link *rtw_link(void *entry)
{
	return entry;
}

int rtw_glue_caches_create(__u32 size4, __u32 align4, __u32 size6, __u32 align6)
{
	if (size4 < sizeof(struct rtw_link) + sizeof(struct rtw_key4) ||
	    size6 < sizeof(struct rtw_link) + sizeof(struct rtw_key6))
		return -EINVAL;
	/*
	 * The seed's uma_zone; unmerged so /sys/kernel/slab shows the entry's own size. Accounted:
	 * an entry is charged to the memory cgroup of the task that adds it (D34).
	 */
	rtw_cache[0] = kmem_cache_create("rust_timewait4", size4, align4,
					 SLAB_NO_MERGE | SLAB_ACCOUNT, NULL);
	if (!rtw_cache[0])
		return -ENOMEM;
	rtw_cache[1] = kmem_cache_create("rust_timewait6", size6, align6,
					 SLAB_NO_MERGE | SLAB_ACCOUNT, NULL);
	if (!rtw_cache[1]) {
		kmem_cache_destroy(rtw_cache[0]);
		return -ENOMEM;
	}
	return 0;
}

void rtw_glue_caches_destroy(void)
{
	/* Entries unlinked last are still waiting for their grace period. */
	rcu_barrier();
	kmem_cache_destroy(rtw_cache[1]);
	kmem_cache_destroy(rtw_cache[0]);
}

void *rtw_glue_entry_alloc(__u8 family)
{
	return kmem_cache_alloc(rtw_cache[rtw_fam(family)], GFP_KERNEL_ACCOUNT);
}

/*
 * From the hook (takeover.c): no sleeping. Charged (SLAB_ACCOUNT) to the memory cgroup
 * takeover.c makes active; GFP_NOWAIT, not GFP_ATOMIC, whose __GFP_HIGH would charge past the
 * cgroup's limit and dip into the atomic reserves: at the limit the connection stays Linux's,
 * as an add there fails (D34, D47). (takeover.c leaves alone the segments received under
 * PF_MEMALLOC, which would force the charge.)
 */
void *rtw_glue_entry_alloc_atomic(__u8 family)
{
	return kmem_cache_alloc(rtw_cache[rtw_fam(family)], GFP_NOWAIT | __GFP_NOWARN);
}

/* An entry that was never published (in no table): freed at once. */
void rtw_glue_entry_free(__u8 family, void *entry)
{
	kmem_cache_free(rtw_cache[rtw_fam(family)], entry);
}

static void rtw_free4_rcu(struct rcu_head *head)
{
	kmem_cache_free(rtw_cache[0], container_of(head, struct rtw_link, rcu));
}

static void rtw_free6_rcu(struct rcu_head *head)
{
	kmem_cache_free(rtw_cache[1], container_of(head, struct rtw_link, rcu));
}

struct rtw_glue_tables *rtw_glue_tables_new(void)
{
	struct rtw_glue_tables *t;
	int i, f, c, err;

	/* Charged to whoever creates the netns, as the rest of its state. */
	t = kzalloc(sizeof(*t), GFP_KERNEL_ACCOUNT);
	if (!t)
		return NULL;
	t->stats = alloc_percpu_gfp(struct rtw_stats, GFP_KERNEL_ACCOUNT);
	if (!t->stats)
		goto free_t;
	err = rhashtable_init(&t->ht[0], &rtw_params4);
	if (err)
		goto free_stats;
	err = rhashtable_init(&t->ht[1], &rtw_params6);
	if (err)
		goto destroy4;
	/* Keyed, so a peer choosing its ports cannot aim every entry at one stripe. */
	t->stripe_seed = get_random_u32();
	for (i = 0; i < RTW_STRIPES; i++) {
		spin_lock_init(&t->stripes[i].lock);
		for (f = 0; f < 2; f++)
			for (c = 0; c < 2; c++)
				INIT_LIST_HEAD(&t->stripes[i].fifo[f][c]);
	}
	return t;

destroy4:
	rhashtable_destroy(&t->ht[0]);
free_stats:
	free_percpu(t->stats);
free_t:
	kfree(t);
	return NULL;
}

/* The caller has unlinked every entry. */
void rtw_glue_tables_free(struct rtw_glue_tables *t)
{
	if (!t)
		return;
	WARN_ON(atomic_read(&t->ht[0].nelems) || atomic_read(&t->ht[1].nelems));
	rhashtable_destroy(&t->ht[1]);
	rhashtable_destroy(&t->ht[0]);
	free_percpu(t->stats);
	kfree(t);
}

/* Under rcu_read_lock (netfilter hooks run under it). Takes no lock, writes nothing. */
void *rtw_glue_table_lookup(struct rtw_glue_tables *t, __u8 family, const void *key)
{
	/* Constant parameters, so the hash and the compare are inlined (no indirect call). */
	if (rtw_fam(family))
		return rhashtable_lookup(&t->ht[1], key, rtw_params6);
	return rhashtable_lookup(&t->ht[0], key, rtw_params4);
}

__u32 rtw_glue_table_stripe(const struct rtw_glue_tables *t, __u8 family, const void *key)
{
	u32 len = rtw_fam(family) ? sizeof(struct rtw_key6) : sizeof(struct rtw_key4);

	/* Keys are 32-bit aligned (Rust's `Key` is align(4)), as the rhashtable's jhash2 needs. */
	return jhash2(key, len / sizeof(u32), t->stripe_seed) % RTW_STRIPES;
}

__u32 rtw_glue_table_stripes(void)
{
	return RTW_STRIPES;
}

/* Bottom halves off: hooks (softirq) take stripes too. */
void rtw_glue_stripe_lock(struct rtw_glue_tables *t, __u32 stripe)
{
	spin_lock_bh(&t->stripes[stripe % RTW_STRIPES].lock);
}

void rtw_glue_stripe_unlock(struct rtw_glue_tables *t, __u32 stripe)
{
	spin_unlock_bh(&t->stripes[stripe % RTW_STRIPES].lock);
}

/*
 * Under the entry's stripe lock: publish it in the hash and queue it at its FIFO's tail.
 * -EEXIST if the tuple is already in the table; -ENOMEM/-EBUSY if the hash could not grow.
 */
int rtw_glue_table_insert(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry,
			  __u8 class)
{
	int fam = rtw_fam(family);
	struct rtw_link *l = rtw_link(entry);
	int err;

	lockdep_assert_held(&t->stripes[stripe % RTW_STRIPES].lock);
	err = fam ? rhashtable_lookup_insert_fast(&t->ht[1], &l->node, rtw_params6)
		  : rhashtable_lookup_insert_fast(&t->ht[0], &l->node, rtw_params4);
	if (err)
		return err;
	list_add_tail(&l->fifo, &t->stripes[stripe % RTW_STRIPES].fifo[fam][class & 1]);
	return 0;
}

/*
 * Under the entry's stripe lock: take it out of the hash and its FIFO and free it after a
 * grace period. The caller never touches it again; readers that found it before see it until
 * they leave their RCU read section.
 */
void rtw_glue_table_unlink(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry)
{
	int fam = rtw_fam(family);
	struct rtw_link *l = rtw_link(entry);

	lockdep_assert_held(&t->stripes[stripe % RTW_STRIPES].lock);
	/* Cannot fail for an entry in the table (its bucket is found under the bucket lock). */
	WARN_ON_ONCE(fam ? rhashtable_remove_fast(&t->ht[1], &l->node, rtw_params6)
			 : rhashtable_remove_fast(&t->ht[0], &l->node, rtw_params4));
	list_del(&l->fifo);
	call_rcu(&l->rcu, fam ? rtw_free6_rcu : rtw_free4_rcu);
}

/* Under the stripe lock: move the entry to the tail of its (new) class's FIFO. */
void rtw_glue_table_requeue(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry,
			    __u8 class)
{
	struct rtw_link *l = rtw_link(entry);

	lockdep_assert_held(&t->stripes[stripe % RTW_STRIPES].lock);
	list_move_tail(&l->fifo, &t->stripes[stripe % RTW_STRIPES].fifo[rtw_fam(family)][class & 1]);
}

/* Under the stripe lock: the oldest entry of a FIFO, or NULL. */
void *rtw_glue_table_head(struct rtw_glue_tables *t, __u8 family, __u32 stripe, __u8 class)
{
	lockdep_assert_held(&t->stripes[stripe % RTW_STRIPES].lock);
	return list_first_entry_or_null(&t->stripes[stripe % RTW_STRIPES].fifo[rtw_fam(family)][class & 1],
					struct rtw_link, fifo);
}

/* Entries in both tables (the rhashtables' own element counts). */
__u32 rtw_glue_table_len(const struct rtw_glue_tables *t)
{
	return atomic_read(&t->ht[0].nelems) + atomic_read(&t->ht[1].nelems);
}

/* Buckets of one family's current table (for the benchmark's memory figure). */
__u32 rtw_glue_table_buckets(struct rtw_glue_tables *t, __u8 family)
{
	struct bucket_table *tbl;
	u32 n;

	rcu_read_lock();
	tbl = rcu_dereference(t->ht[rtw_fam(family)].tbl);
	n = tbl->size;
	rcu_read_unlock();
	return n;
}

/* Per-CPU counters: a hit writes only its own CPU's line. */
void rtw_glue_stat_add(struct rtw_glue_tables *t, __u32 stat, __u64 n)
{
	if (stat < RTW_GLUE_STAT_COUNT)
		this_cpu_add(t->stats->v[stat], n);
}

void rtw_glue_stats_read(const struct rtw_glue_tables *t, __u64 *out)
{
	int cpu, i;

	for (i = 0; i < RTW_GLUE_STAT_COUNT; i++)
		out[i] = 0;
	for_each_possible_cpu(cpu) {
		const struct rtw_stats *s = per_cpu_ptr(t->stats, cpu);

		for (i = 0; i < RTW_GLUE_STAT_COUNT; i++)
			out[i] += READ_ONCE(s->v[i]);
	}
}

void rtw_glue_cond_resched(void)
{
	cond_resched();
}

void rtw_glue_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rtw_glue_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/* ---- dump: the rhashtable's own walker, resumable across messages ---- */

struct rtw_glue_walk {
	struct rhashtable_iter iter;
	int fam;
	bool entered;
};

struct rtw_glue_walk *rtw_glue_walk_new(struct rtw_glue_tables *t)
{
	struct rtw_glue_walk *w = kzalloc(sizeof(*w), GFP_KERNEL);

	if (!w)
		return NULL;
	rhashtable_walk_enter(&t->ht[0], &w->iter);
	w->entered = true;
	return w;
}

void rtw_glue_walk_free(struct rtw_glue_walk *w)
{
	if (!w)
		return;
	if (w->entered)
		rhashtable_walk_exit(&w->iter);
	kfree(w);
}

/*
 * Visit entries from where the walk stopped: `visit` returns 0 to go on, -EMSGSIZE when the
 * message is full (the entry is visited again by the next call). No lock is held across
 * entries: the walker is RCU-protected and `visit` locks one stripe at a time. A resize during
 * the walk restarts it (-EAGAIN from the walker), so an entry may be reported twice, never
 * missed if it stayed in the table.
 */
int rtw_glue_walk(struct rtw_glue_tables *t, struct rtw_glue_walk *w,
		  int (*visit)(void *arg, __u8 family, void *entry), void *arg)
{
	unsigned int visited = 0;
	int err = 0;

	while (w->fam < 2) {
		void *e;

		rhashtable_walk_start(&w->iter);
		for (;;) {
			/*
			 * Expired or vanished entries take no message space: without a bound one call
			 * could walk a million of them in one RCU read section. Leave it now and then.
			 */
			if (++visited % 256 == 0) {
				rhashtable_walk_stop(&w->iter);
				cond_resched();
				rhashtable_walk_start(&w->iter);
			}
			e = rhashtable_walk_peek(&w->iter);
			if (IS_ERR(e)) {
				if (PTR_ERR(e) == -EAGAIN)
					continue;
				err = PTR_ERR(e);
				break;
			}
			if (!e)
				break;
			err = visit(arg, w->fam ? AF_INET6 : AF_INET, e);
			if (err)
				break;
			/* Step past the entry just reported. */
			e = rhashtable_walk_next(&w->iter);
			if (IS_ERR(e) && PTR_ERR(e) != -EAGAIN) {
				err = PTR_ERR(e);
				break;
			}
		}
		rhashtable_walk_stop(&w->iter);
		if (err)
			return err;
		rhashtable_walk_exit(&w->iter);
		w->entered = false;
		if (++w->fam < 2) {
			rhashtable_walk_enter(&t->ht[w->fam], &w->iter);
			w->entered = true;
		}
	}
	return 0;
}
