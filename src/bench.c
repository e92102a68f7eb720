// SPDX-License-Identifier: GPL-2.0
/*
 * The benchmark's kernel half (`make bench`, docs/bench.md): the figures that need the hook, the
 * table and Linux's own lookup side by side in one boot, measured from inside the kernel.
 *
 * Idle unless written to: `echo <figure>|all > /sys/kernel/debug/rust_timewait/bench` runs it
 * synchronously in the writer's context and prints one line per figure to the kernel log,
 *   rtw-bench: <figure> min=<x> median=<y> max=<z> <unit>
 * plus `rtw-bench-note:` lines with the absolute values behind it. `fill N` and `flush` leave
 * init_net's table at N entries for the end-to-end figures the guest script measures itself.
 * Every figure works on init_net's table; entries are added and flushed with the same Rust
 * calls netlink uses (rtw_rs_add, rtw_rs_flush), and segments go through rtw_hook() itself.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/sort.h>
#include <linux/tcp.h>
#include <linux/uaccess.h>
#include <net/genetlink.h>
#include <net/inet_hashtables.h>
#include <net/ip.h>
#include <net/sock.h>

#include "glue.h"
#include "glue_internal.h"

/* At least five samples per figure (docs/bench.md); odd, so the median is one of them. */
#define RTW_BENCH_SAMPLES 7
/* Enough repetitions of the 4M growth and of the 1M reap/flush to give a median: each costs
 * millions of adds under TCG, so these stay at the minimum of five. */
#define RTW_BENCH_REPS 5
/* Calls to calibrate with; a timed sample then lasts about RTW_BENCH_SAMPLE_MS of hook calls:
 * long against the clock's resolution and the host's scheduling hiccups (a few ms), short
 * enough for many samples. */
#define RTW_BENCH_CALLS 20000
#define RTW_BENCH_SAMPLE_MS 100
/* Calls per section with bottom halves off: a softirq pending at the end of a section runs
 * outside the timed part, and a section never keeps softirqs waiting for long. Also the unit
 * whose median time a run reports (rtw_bench_run). */
#define RTW_BENCH_CHUNK 500
/* Fixed-time runs of the two-vCPU figure. */
#define RTW_BENCH_SCALING_MS 2000

/* The table sizes the figures name. */
#define RTW_BENCH_1K 1000
#define RTW_BENCH_1M 1000000
#define RTW_BENCH_4M 4000000

/* Entry state: a TIME_WAIT with these numbers; the hit segment is a retransmitted FIN (T6). */
#define RTW_BENCH_SND 1000
#define RTW_BENCH_RCV 2000
#define RTW_BENCH_WIN 502
/* maxtcptw's largest value (policy.rs), so 4M entries are never recycled. */
#define RTW_BENCH_MAXTCPTW 16777216
/* The longest MSL: nothing expires while a figure runs... */
#define RTW_BENCH_MSL_LONG 600000
/* ...and the shortest, to make a whole table expire at once. */
#define RTW_BENCH_MSL_SHORT 100

/* Clients per address in the generated tuples (the source ports of one client host). */
#define RTW_BENCH_PORTS 50000

/* Set with the "scale" file: divides 1M and 4M (a quick functional run, not a measurement). */
static u32 rtw_bench_scale = 1;
static struct dentry *rtw_bench_dir;
/* One benchmark at a time: they share init_net's table and its sysctls. */
static DEFINE_MUTEX(rtw_bench_mutex);

/* The sysctls a run changes, restored when it ends. */
struct rtw_bench_saved {
	bool saved;
	int maxtcptw;
	int msl_ms;
};
static struct rtw_bench_saved rtw_bench_saved;

static u32 rtw_bench_n(u32 n)
{
	return max_t(u32, n / max_t(u32, rtw_bench_scale, 1), RTW_BENCH_1K);
}

/*
 * Tuple i of the benchmark: 10.9.0.1:80 guarding clients 10.128.x.y:1024+, the TIME_WAIT load of
 * one busy server. Misses come from 10.192/10: same server, same port, clients it never closed
 * a connection with, so a miss differs from a hit only in what the table holds.
 */
static void rtw_bench_tuple(u32 i, bool miss, __be32 *laddr, __be32 *raddr, u16 *lport,
			    u16 *rport)
{
	*laddr = htonl(0x0a090001);
	*raddr = htonl((miss ? 0x0ac00000 : 0x0a800000) + i / RTW_BENCH_PORTS);
	*lport = 80;
	*rport = 1024 + i % RTW_BENCH_PORTS;
}

/* ---- the table ---- */

static struct rtw_glue_net *rtw_bench_gn(void)
{
	return rtw_gn(&init_net);
}

/* Room for 16M entries and a lifetime longer than any figure; the old values are kept. */
static void rtw_bench_sysctls_set(struct rtw_glue_net *gn)
{
	if (!rtw_bench_saved.saved) {
		rtw_bench_saved.maxtcptw = READ_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MAXTCPTW]);
		rtw_bench_saved.msl_ms = READ_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS]);
		rtw_bench_saved.saved = true;
	}
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MAXTCPTW], RTW_BENCH_MAXTCPTW);
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS], RTW_BENCH_MSL_LONG);
}

static void rtw_bench_sysctls_restore(struct rtw_glue_net *gn)
{
	if (!rtw_bench_saved.saved)
		return;
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MAXTCPTW], rtw_bench_saved.maxtcptw);
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS], rtw_bench_saved.msl_ms);
	rtw_bench_saved.saved = false;
}

/*
 * Add entries [from, to). genl_mutex is held around each batch as for a netlink add, the context
 * rtw_rs_add is written for (the first add registers the hooks); it is dropped between batches
 * so a netlink request is never held up for long. An add the rhashtable refuses while it is
 * growing (-EBUSY, -ENOMEM for an atomic bucket table) is retried after a pause: the growth
 * worker catches up, as it would for a burst of real adds.
 */
static int rtw_bench_fill(struct rtw_glue_net *gn, u32 from, u32 to)
{
	struct rtw_glue_entry e = {
		.family = AF_INET,
		.snd_nxt = RTW_BENCH_SND,
		.rcv_nxt = RTW_BENCH_RCV,
		.last_win = RTW_BENCH_WIN,
		.substate = RTW_GLUE_TIME_WAIT,
	};
	u32 i = from, retries = 0;
	int err = 0;

	while (i < to) {
		u32 end = min(to, i + 1024);

		mutex_lock(&gn->nl_lock);
		for (; i < end; i++) {
			__be32 l, r;

			rtw_bench_tuple(i, false, &l, &r, &e.lport, &e.rport);
			memcpy(e.laddr, &l, 4);
			memcpy(e.raddr, &r, 4);
			err = rtw_rs_add(gn->rs, &e, false);
			if (err)
				break;
		}
		mutex_unlock(&gn->nl_lock);
		if (err == -EBUSY || err == -ENOMEM || err == -EAGAIN) {
			if (++retries > 1000)
				break;
			msleep(2);
			err = 0;
			continue;
		}
		if (err)
			break;
		cond_resched();
	}
	if (err)
		pr_err("rtw-bench: add %u of [%u, %u) failed: %d\n", i, from, to, err);
	return err;
}

/*
 * The bucket count the rhashtable grows to for n entries: table.c's min_size (16), doubled while
 * n is above 75 % of it (rht_grow_above_75). After the last add or removal the table still
 * grows or shrinks for a while in its worker; a figure measured meanwhile would time that worker
 * too (and share a CPU with it).
 */
static u32 rtw_bench_buckets_for(u32 n)
{
	u32 size = 16;

	while (n > size / 4 * 3)
		size *= 2;
	return size;
}

/*
 * Wait (up to 10 min) until the table has settled: grown to its size for the entries it holds,
 * or, empty, shrunk to a small table (where it stops depends on when the last shrink was
 * queued, anywhere from 16 to a few hundred buckets; what is left to rehash is nothing).
 * Returns the ms waited.
 */
static u64 rtw_bench_settle(struct rtw_glue_net *gn)
{
	u64 t0 = ktime_get_ns(), waited;
	u32 len = rtw_glue_table_len(gn->tables), want = rtw_bench_buckets_for(len);
	bool done;

	for (;;) {
		u32 b = rtw_glue_table_buckets(gn->tables, AF_INET);

		done = len ? b >= want : b <= 1024;
		if (done || ktime_get_ns() - t0 > 600 * NSEC_PER_SEC)
			break;
		msleep(20);
	}
	waited = div_u64(ktime_get_ns() - t0, NSEC_PER_MSEC);
	if (!done)
		pr_info("rtw-bench-note: table did not settle in 10 min: %u entries, %u buckets\n",
			len, rtw_glue_table_buckets(gn->tables, AF_INET));
	return waited;
}

static u32 rtw_bench_flush(struct rtw_glue_net *gn)
{
	u32 n;

	mutex_lock(&gn->nl_lock);
	n = rtw_rs_flush(gn->rs);
	mutex_unlock(&gn->nl_lock);
	/* Flushed entries are freed after a grace period: wait for them, so the next figure starts
	 * with their memory back and no freeing going on behind it. */
	rcu_barrier();
	rtw_bench_settle(gn);
	return n;
}

/* Fill [0, n) from an empty table and wait for the table to settle. */
static int rtw_bench_fill_settled(struct rtw_glue_net *gn, u32 n, u64 *add_ms, u64 *settle_ms)
{
	u64 t0 = ktime_get_ns();
	int err = rtw_bench_fill(gn, 0, n);

	if (add_ms)
		*add_ms = div_u64(ktime_get_ns() - t0, NSEC_PER_MSEC);
	if (!err && settle_ms)
		*settle_ms = rtw_bench_settle(gn);
	else if (!err)
		rtw_bench_settle(gn);
	return err;
}

/* ---- segments ---- */

/* A segment from one of the tuples, and the hook state it arrives with. */
struct rtw_bench_seg {
	struct sk_buff *skb;
	struct nf_hook_state state;
	/* Tuples are drawn from 0..n-1, guarded ones or misses. */
	u32 n;
	bool miss;
	/* xorshift32: a different tuple every call, the same sequence for every kind of call. */
	u32 seed;
	u32 rnd;
	/* Calls per timed sample (rtw_bench_calibrate). */
	u32 calls;
};

enum rtw_bench_segkind {
	/* An ACK for a tuple the table does not hold. */
	RTW_SEG_MISS,
	/* A retransmitted FIN for a guarded tuple (T6). */
	RTW_SEG_FIN,
	/* A duplicate ACK for a guarded tuple (T7: decided and dropped, no reply, no re-arm). */
	RTW_SEG_DUPACK,
};

/*
 * An IPv4 segment as ip_rcv_finish hands it to LOCAL_IN: network header set, linear, checksum
 * verified (CHECKSUM_UNNECESSARY, as a device with checksum offload reports it). For the hit
 * figures it is a retransmitted FIN (T6): ACKed and re-armed every time, never rate-limited, so
 * every call takes the longest path: lookup, stripe lock, decision, re-arm, reply built (not
 * sent).
 */
static int rtw_bench_seg_init(struct rtw_bench_seg *s, u32 n, enum rtw_bench_segkind kind,
			      u32 seed)
{
	bool miss = kind == RTW_SEG_MISS;
	struct iphdr *iph;
	struct tcphdr *th;

	memset(s, 0, sizeof(*s));
	s->skb = alloc_skb(MAX_HEADER + sizeof(*iph) + sizeof(*th), GFP_KERNEL);
	if (!s->skb)
		return -ENOMEM;
	skb_reserve(s->skb, MAX_HEADER);
	skb_reset_network_header(s->skb);
	iph = skb_put_zero(s->skb, sizeof(*iph));
	iph->version = 4;
	iph->ihl = 5;
	iph->tot_len = htons(sizeof(*iph) + sizeof(*th));
	iph->ttl = 64;
	iph->protocol = IPPROTO_TCP;
	skb_set_transport_header(s->skb, sizeof(*iph));
	th = skb_put_zero(s->skb, sizeof(*th));
	th->doff = sizeof(*th) / 4;
	th->ack = 1;
	th->fin = kind == RTW_SEG_FIN;
	th->seq = htonl(kind == RTW_SEG_FIN ? RTW_BENCH_RCV - 1 : RTW_BENCH_RCV);
	th->ack_seq = htonl(RTW_BENCH_SND);
	th->window = htons(1000);
	s->skb->protocol = htons(ETH_P_IP);
	s->skb->pkt_type = PACKET_HOST;
	/* The device it came in on, as for any received skb (the hook's IPsec check reads it). */
	s->skb->dev = init_net.loopback_dev;
	s->skb->ip_summed = CHECKSUM_UNNECESSARY;
	s->state.hook = NF_INET_LOCAL_IN;
	s->state.pf = NFPROTO_IPV4;
	s->state.net = &init_net;
	s->state.in = init_net.loopback_dev;
	s->n = n;
	s->miss = miss;
	s->seed = seed | 1;
	s->rnd = s->seed;
	s->calls = RTW_BENCH_CALLS;
	return 0;
}

static void rtw_bench_seg_free(struct rtw_bench_seg *s)
{
	kfree_skb(s->skb);
	s->skb = NULL;
}

/* Point the segment at the next tuple of the sequence. */
static __always_inline void rtw_bench_aim(struct rtw_bench_seg *s)
{
	struct iphdr *iph = ip_hdr(s->skb);
	struct tcphdr *th = tcp_hdr(s->skb);
	u32 x = s->rnd;
	__be32 l, r;
	u16 lp, rp;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	s->rnd = x;
	rtw_bench_tuple(reciprocal_scale(x, s->n), s->miss, &l, &r, &lp, &rp);
	iph->saddr = r;
	iph->daddr = l;
	th->source = htons(rp);
	th->dest = htons(lp);
}

/*
 * Linux's own per-segment lookup for the same tuple, as tcp_v4_rcv() does it: the established
 * hash (__inet_lookup_established), from the headers of the same skb. A found socket is put
 * back at once (never the case here: no socket has these tuples).
 */
static noinline unsigned int rtw_bench_linux(const struct rtw_bench_seg *s)
{
	const struct iphdr *iph = ip_hdr(s->skb);
	const struct tcphdr *th = tcp_hdr(s->skb);
	struct sock *sk;

	sk = __inet_lookup_established(s->state.net, iph->saddr, th->source, iph->daddr,
				       ntohs(th->dest), s->state.in->ifindex, 0);
	if (!sk)
		return NF_ACCEPT;
	sock_gen_put(sk);
	return NF_DROP;
}

/* table.c's IPv4 key (the hook's `union rtw_hook_key`), for timing the lookup on its own. */
struct rtw_bench_key4 {
	__u8 laddr[4], raddr[4];
	__u16 lport, rport;
	__u32 l3index;
};

/* The pieces of the miss path timed on their own, to say where its cost goes. */
static noinline unsigned int rtw_bench_lookup(const struct rtw_bench_seg *s)
{
	const struct iphdr *iph = ip_hdr(s->skb);
	const struct tcphdr *th = tcp_hdr(s->skb);
	struct rtw_bench_key4 k;

	memcpy(k.raddr, &iph->saddr, 4);
	memcpy(k.laddr, &iph->daddr, 4);
	k.lport = ntohs(th->dest);
	k.rport = ntohs(th->source);
	k.l3index = 0;
	return rtw_glue_table_lookup(rtw_gn(s->state.net)->tables, AF_INET, &k) ? NF_DROP : NF_ACCEPT;
}

static DEFINE_SPINLOCK(rtw_bench_lock);

/*
 * A function with 256 bytes of locals, about what the hook keeps on its stack (the 128-byte
 * header copy, the packet descriptor, the key): with CONFIG_INIT_STACK_ALL_ZERO the compiler
 * zeroes them on every call, whichever way the call returns.
 */
static noinline unsigned int rtw_bench_stack(void)
{
	u8 locals[256];

	barrier_data(locals);
	return NF_ACCEPT;
}

enum rtw_bench_kind {
	/* Only the harness (tuple choice, loop): subtracted from all of the others. */
	RTW_BENCH_EMPTY,
	RTW_BENCH_HOOK,
	RTW_BENCH_LINUX,
	/* rtw_gn() + rtw_glue_table_lookup(): the miss path without the hook's header reads. */
	RTW_BENCH_LOOKUP,
	/* rtw_gn() alone: net_generic(), its own rcu_read_lock() pair and rcu_dereference(). */
	RTW_BENCH_GN,
	/* What PROVE_RCU adds to every rcu_dereference() under it: one rcu_read_lock_held(). */
	RTW_BENCH_RCU_HELD,
	/* What a call pays for its locals: rtw_bench_stack(). */
	RTW_BENCH_STACK,
	/* What lockdep adds to the hit path: an rcu_read_lock() pair, a spin_lock_bh() pair. */
	RTW_BENCH_RCU_PAIR,
	RTW_BENCH_LOCK_PAIR,
	RTW_BENCH_KINDS,
};

static const char *const rtw_bench_kind_names[RTW_BENCH_KINDS] = {
	"harness", "hook", "linux_lookup", "gn_plus_table_lookup", "rtw_gn", "rcu_read_lock_held",
	"stack_256_bytes", "rcu_read_lock_pair", "spin_lock_bh_pair",
};

static __always_inline unsigned int rtw_bench_call(struct rtw_bench_seg *s,
						   enum rtw_bench_kind kind)
{
	switch (kind) {
	case RTW_BENCH_HOOK:
		return rtw_hook(NULL, s->skb, &s->state);
	case RTW_BENCH_LINUX:
		return rtw_bench_linux(s);
	case RTW_BENCH_LOOKUP:
		return rtw_bench_lookup(s);
	case RTW_BENCH_GN:
		return rtw_gn(s->state.net) ? NF_ACCEPT : NF_DROP;
	case RTW_BENCH_RCU_HELD:
		return rcu_read_lock_held() ? NF_ACCEPT : NF_DROP;
	case RTW_BENCH_STACK:
		return rtw_bench_stack();
	case RTW_BENCH_RCU_PAIR:
		rcu_read_lock();
		rcu_read_unlock();
		return NF_ACCEPT;
	case RTW_BENCH_LOCK_PAIR:
		spin_lock_bh(&rtw_bench_lock);
		spin_unlock_bh(&rtw_bench_lock);
		return NF_ACCEPT;
	default:
		barrier();
		return NF_ACCEPT;
	}
}

/* Most chunks a run can have (rtw_bench_calibrate caps a run at 100 x RTW_BENCH_CALLS). */
#define RTW_BENCH_MAX_CHUNKS (100 * RTW_BENCH_CALLS / RTW_BENCH_CHUNK)
/* The chunks' times of the run in progress; runs are serialised by rtw_bench_mutex. */
static u32 rtw_bench_chunk_ns[RTW_BENCH_MAX_CHUNKS];

static int rtw_bench_cmp32(const void *a, const void *b)
{
	u32 x = *(const u32 *)a, y = *(const u32 *)b;

	return x < y ? -1 : x > y;
}

/*
 * `calls` calls of one kind (a multiple of RTW_BENCH_CHUNK), each chunk timed inside a section
 * where bottom halves are off and the RCU read lock is held (the context netfilter calls hooks
 * in), so softirqs that run when a section ends are not counted. Returns the median chunk's time
 * times the number of chunks: the emulator's vCPUs are threads of a host that sometimes does not
 * run them for milliseconds, and a chunk it stalls must not count; on a settled table every
 * chunk does the same work. `drops` counts NF_DROP verdicts: a hit must be dropped every time,
 * a miss never.
 */
static u64 rtw_bench_run(struct rtw_bench_seg *s, enum rtw_bench_kind kind, u32 calls, u32 *drops)
{
	u32 done = 0, dropped = 0, n = 0;

	s->rnd = s->seed;
	while (done < calls) {
		u32 k = min_t(u32, calls - done, RTW_BENCH_CHUNK), j;
		u64 t0, t;

		local_bh_disable();
		rcu_read_lock();
		t0 = ktime_get_ns();
		for (j = 0; j < k; j++) {
			rtw_bench_aim(s);
			dropped += rtw_bench_call(s, kind) == NF_DROP;
		}
		t = ktime_get_ns() - t0;
		rcu_read_unlock();
		local_bh_enable();
		if (n < RTW_BENCH_MAX_CHUNKS)
			rtw_bench_chunk_ns[n++] = min_t(u64, t, U32_MAX);
		done += k;
		cond_resched();
	}
	if (drops)
		*drops = dropped;
	if (!n)
		return 0;
	sort(rtw_bench_chunk_ns, n, sizeof(rtw_bench_chunk_ns[0]), rtw_bench_cmp32, NULL);
	return div_u64((u64)rtw_bench_chunk_ns[n / 2] * calls, RTW_BENCH_CHUNK);
}

/*
 * An untimed pass first (the first calls fault the entries and the code into the caches), then
 * the number of calls that makes a sample last RTW_BENCH_SAMPLE_MS of hook calls.
 */
static void rtw_bench_calibrate(struct rtw_bench_seg *s)
{
	u64 ns = rtw_bench_run(s, RTW_BENCH_HOOK, RTW_BENCH_CALLS, NULL);
	u64 calls = div64_u64((u64)RTW_BENCH_SAMPLE_MS * NSEC_PER_MSEC * RTW_BENCH_CALLS, ns ?: 1);

	calls = clamp_t(u64, calls, RTW_BENCH_CALLS, 100 * RTW_BENCH_CALLS);
	s->calls = rounddown(calls, RTW_BENCH_CHUNK);
}

/* ---- results ---- */

/* A figure's samples, in thousandths of its unit (three decimals, the kernel has no floats). */
struct rtw_bench_fig {
	const char *name;
	const char *unit;
	u64 v[RTW_BENCH_SAMPLES];
	u32 n;
};

static int rtw_bench_cmp(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static void rtw_bench_add(struct rtw_bench_fig *f, u64 milli)
{
	if (f->n < RTW_BENCH_SAMPLES)
		f->v[f->n++] = milli;
}

/* x/y in thousandths. */
static u64 rtw_bench_ratio(u64 x, u64 y)
{
	return y ? div64_u64(x * 1000, y) : 0;
}

#define RTW_BENCH_FMT "%llu.%03llu"
#define RTW_BENCH_ARG(m) (m) / 1000, (m) % 1000

static void rtw_bench_report(struct rtw_bench_fig *f)
{
	u64 v[RTW_BENCH_SAMPLES];

	if (!f->n) {
		pr_info("rtw-bench: %s not measured\n", f->name);
		return;
	}
	memcpy(v, f->v, sizeof(v));
	sort(v, f->n, sizeof(v[0]), rtw_bench_cmp, NULL);
	pr_info("rtw-bench: %s min=" RTW_BENCH_FMT " median=" RTW_BENCH_FMT " max=" RTW_BENCH_FMT
		" %s samples=%u\n", f->name, RTW_BENCH_ARG(v[0]), RTW_BENCH_ARG(v[f->n / 2]),
		RTW_BENCH_ARG(v[f->n - 1]), f->unit, f->n);
}

/* The median of n values (sorted in place). */
static u64 rtw_bench_median(u64 *v, u32 n)
{
	if (!n)
		return 0;
	sort(v, n, sizeof(v[0]), rtw_bench_cmp, NULL);
	return v[n / 2];
}

/* ---- per-call cost against Linux's lookup ---- */

/*
 * Where the time goes: the pieces of the path (miss) or the debug-kernel costs it pays (hit),
 * each timed like the figure itself, harness taken off, medians of five samples.
 */
static void rtw_bench_parts(struct rtw_bench_seg *s, const char *name, bool miss)
{
	static const enum rtw_bench_kind miss_kinds[] = {
		RTW_BENCH_LOOKUP, RTW_BENCH_GN, RTW_BENCH_STACK, RTW_BENCH_RCU_PAIR,
	};
	static const enum rtw_bench_kind hit_kinds[] = {
		RTW_BENCH_LOOKUP, RTW_BENCH_RCU_HELD, RTW_BENCH_RCU_PAIR, RTW_BENCH_LOCK_PAIR,
	};
	const enum rtw_bench_kind *kinds = miss ? miss_kinds : hit_kinds;
	u64 v[4][5];
	u32 i, k;

	for (i = 0; i < 5; i++) {
		u64 e = rtw_bench_run(s, RTW_BENCH_EMPTY, s->calls, NULL);

		for (k = 0; k < 4; k++) {
			u64 t = rtw_bench_run(s, kinds[k], s->calls, NULL);

			v[k][i] = div_u64(t > e ? t - e : 0, s->calls);
		}
	}
	pr_info("rtw-bench-note: %s parts: %s_ns=%llu %s_ns=%llu %s_ns=%llu %s_ns=%llu (per call, medians)\n",
		name, rtw_bench_kind_names[kinds[0]], rtw_bench_median(v[0], 5),
		rtw_bench_kind_names[kinds[1]], rtw_bench_median(v[1], 5),
		rtw_bench_kind_names[kinds[2]], rtw_bench_median(v[2], 5),
		rtw_bench_kind_names[kinds[3]], rtw_bench_median(v[3], 5));
}

/* Per-call costs of one variant, harness taken off, medians of five samples. */
struct rtw_bench_costs {
	u64 hook;
	u64 linux_lookup;
	/* rtw_gn() + rtw_glue_table_lookup() alone. */
	u64 table_lookup;
};

/*
 * The variants the notes set beside a figure: one kind of segment, `n` tuples, seen on `hook`
 * (LOCAL_IN, or LOCAL_OUT for what the host sends).
 */
static int rtw_bench_costs(u32 n, enum rtw_bench_segkind kind, unsigned int hook,
			   struct rtw_bench_costs *c)
{
	u64 h[5], l[5], t[5];
	struct rtw_bench_seg s;
	u32 i;
	int err = rtw_bench_seg_init(&s, n, kind, 0x7a1 + kind);

	if (err)
		return err;
	s.state.hook = hook;
	rtw_bench_calibrate(&s);
	for (i = 0; i < 5; i++) {
		u64 e = rtw_bench_run(&s, RTW_BENCH_EMPTY, s.calls, NULL);
		u64 x = rtw_bench_run(&s, RTW_BENCH_HOOK, s.calls, NULL);
		u64 y = rtw_bench_run(&s, RTW_BENCH_LINUX, s.calls, NULL);
		u64 z = rtw_bench_run(&s, RTW_BENCH_LOOKUP, s.calls, NULL);

		h[i] = div_u64(x > e ? x - e : 0, s.calls);
		l[i] = div_u64(y > e ? y - e : 0, s.calls);
		t[i] = div_u64(z > e ? z - e : 0, s.calls);
	}
	c->hook = rtw_bench_median(h, 5);
	c->linux_lookup = rtw_bench_median(l, 5);
	c->table_lookup = rtw_bench_median(t, 5);
	rtw_bench_seg_free(&s);
	return 0;
}

/*
 * Per-call hook cost over per-call __inet_lookup_established cost, the harness's own cost taken
 * off both. The three kinds run back to back for every sample, so a slow patch of the host
 * slows all three and cancels in the ratio. The tuple changes every call, drawn from the whole
 * table (hits) or from as many unguarded clients (misses): a table of 1M entries is mostly out of
 * every cache, as on a busy server. The notes add the same with one tuple for every call (all
 * of it cached: what the code alone costs) and, for hits, a duplicate ACK (T7: no reply, no
 * re-arm).
 */
static int rtw_bench_vs_linux(const char *name, u32 n, bool miss)
{
	struct rtw_bench_fig f = { .name = name, .unit = "x" };
	u64 hook[RTW_BENCH_SAMPLES], lin[RTW_BENCH_SAMPLES], emp[RTW_BENCH_SAMPLES];
	struct rtw_bench_costs hot, other;
	enum rtw_bench_segkind kind = miss ? RTW_SEG_MISS : RTW_SEG_FIN;
	struct rtw_bench_seg s;
	u32 i, drops, bad = 0;
	int err;

	err = rtw_bench_seg_init(&s, n, kind, 0x5eed1 + miss);
	if (err)
		return err;
	rtw_bench_calibrate(&s);
	for (i = 0; i < RTW_BENCH_SAMPLES; i++) {
		u64 e = rtw_bench_run(&s, RTW_BENCH_EMPTY, s.calls, NULL);
		u64 h = rtw_bench_run(&s, RTW_BENCH_HOOK, s.calls, &drops);
		u64 l = rtw_bench_run(&s, RTW_BENCH_LINUX, s.calls, NULL);

		bad += miss ? drops : s.calls - drops;
		emp[i] = e;
		hook[i] = h > e ? h - e : 0;
		lin[i] = l > e ? l - e : 0;
		rtw_bench_add(&f, rtw_bench_ratio(hook[i], lin[i]));
	}
	if (bad) {
		rtw_bench_seg_free(&s);
		pr_err("rtw-bench: %s: %u calls did not %s\n", name, bad,
		       miss ? "miss" : "hit (NF_DROP)");
		return -EIO;
	}
	rtw_bench_report(&f);
	pr_info("rtw-bench-note: %s entries=%u hook_ns=%llu linux_lookup_ns=%llu harness_ns=%llu calls_per_sample=%u (per call, medians)\n",
		name, rtw_glue_table_len(rtw_bench_gn()->tables),
		div_u64(rtw_bench_median(hook, RTW_BENCH_SAMPLES), s.calls),
		div_u64(rtw_bench_median(lin, RTW_BENCH_SAMPLES), s.calls),
		div_u64(rtw_bench_median(emp, RTW_BENCH_SAMPLES), s.calls), s.calls);
	rtw_bench_parts(&s, name, miss);
	rtw_bench_seg_free(&s);

	err = rtw_bench_costs(1, kind, NF_INET_LOCAL_IN, &hot);
	if (err)
		return err;
	pr_info("rtw-bench-note: %s one_tuple: hook_ns=%llu linux_lookup_ns=%llu table_lookup_ns=%llu ratio=" RTW_BENCH_FMT "\n",
		name, hot.hook, hot.linux_lookup, hot.table_lookup,
		RTW_BENCH_ARG(rtw_bench_ratio(hot.hook, hot.linux_lookup)));
	if (miss) {
		/* What every segment the host sends pays: the LOCAL_OUT hook looks for SYNs only. */
		err = rtw_bench_costs(1, RTW_SEG_MISS, NF_INET_LOCAL_OUT, &other);
		if (!err)
			pr_info("rtw-bench-note: %s local_out_ack: hook_ns=%llu (one tuple)\n", name,
				other.hook);
	} else {
		err = rtw_bench_costs(n, RTW_SEG_DUPACK, NF_INET_LOCAL_IN, &other);
		if (!err)
			pr_info("rtw-bench-note: %s dup_ack_t7: hook_ns=%llu (random guarded tuples)\n",
				name, other.hook);
	}
	return err;
}

/* Per-call hit cost (harness taken off) of one sample, in ns * 1000 / call. */
static u64 rtw_bench_hit_cost(struct rtw_bench_seg *s)
{
	u32 drops;
	u64 e = rtw_bench_run(s, RTW_BENCH_EMPTY, s->calls, NULL);
	u64 h = rtw_bench_run(s, RTW_BENCH_HOOK, s->calls, &drops);

	if (drops != s->calls)
		return 0;
	return div_u64((h > e ? h - e : 0) * 1000, s->calls);
}

/*
 * Durations by powers of two of a microsecond: [0, 1), [1, 2), [2, 4) ... [16384, inf) us. A
 * maximum alone cannot tell a stall that comes back from a single hiccup of the host; the shape
 * of the tail, set beside the control's, can.
 */
#define RTW_BENCH_HIST 16

struct rtw_bench_hist {
	u64 n[RTW_BENCH_HIST];
	u64 ns;
};

static void rtw_bench_hist_add(struct rtw_bench_hist *h, u64 ns)
{
	u64 us = div_u64(ns, NSEC_PER_USEC);

	h->n[us ? min_t(u32, ilog2(us) + 1, RTW_BENCH_HIST - 1) : 0]++;
	h->ns += ns;
}

static void rtw_bench_hist_merge(struct rtw_bench_hist *to, const struct rtw_bench_hist *from)
{
	u32 i;

	for (i = 0; i < RTW_BENCH_HIST; i++)
		to->n[i] += from->n[i];
	to->ns += from->ns;
}

/* "from_us:count ..." for the non-empty buckets, and the sections' total time. */
static void rtw_bench_hist_print(const char *what, const struct rtw_bench_hist *h)
{
	char buf[320];
	u32 i, len = 0;
	u64 n = 0;

	for (i = 0; i < RTW_BENCH_HIST; i++) {
		n += h->n[i];
		if (h->n[i])
			len += scnprintf(buf + len, sizeof(buf) - len, " %u:%llu",
					 i ? 1U << (i - 1) : 0, h->n[i]);
	}
	buf[len] = '\0';
	pr_info("rtw-bench-note: %s sections=%llu total_ms=%llu histogram_us(from:count):%s\n", what,
		n, div_u64(h->ns, NSEC_PER_MSEC), buf);
}

/* ---- kthreads on chosen CPUs ---- */

struct rtw_bench_worker {
	struct task_struct *task;
	void (*fn)(struct rtw_bench_worker *w);
	struct completion done;
	/* Released together, so two workers start within a wakeup of each other. */
	struct completion *start;
	bool *stop;
	struct rtw_bench_seg seg;
	struct rtw_bench_seg seg2;
	u64 run_ns;
	u64 calls;
	u64 max_ns;
	/* The growth probe's longest hit (max_ns covers hits and misses). */
	u64 max_hit_ns;
	u64 ctl_max_ns;
	u64 over_100us;
	u64 ctl_over_100us;
	/* The probed sections and their controls (overruns). */
	struct rtw_bench_hist hist;
	struct rtw_bench_hist ctl_hist;
	int err;
	/* The adder's range. */
	u32 from, to;
};

static int rtw_bench_thread(void *arg)
{
	struct rtw_bench_worker *w = arg;

	if (w->start)
		wait_for_completion(w->start);
	w->fn(w);
	complete(&w->done);
	/* Stay until kthread_stop(), which needs the task alive to reap it. */
	set_current_state(TASK_INTERRUPTIBLE);
	while (!kthread_should_stop()) {
		schedule();
		set_current_state(TASK_INTERRUPTIBLE);
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

/* A kthread bound to `cpu`, running fn(w): a per-CPU kthread, never migrated. */
static int rtw_bench_spawn(struct rtw_bench_worker *w, unsigned int cpu,
			   void (*fn)(struct rtw_bench_worker *))
{
	w->fn = fn;
	init_completion(&w->done);
	w->task = kthread_create_on_cpu(rtw_bench_thread, w, cpu, "rtw-bench/%u");
	if (IS_ERR(w->task)) {
		int err = PTR_ERR(w->task);

		w->task = NULL;
		return err;
	}
	wake_up_process(w->task);
	return 0;
}

static void rtw_bench_join(struct rtw_bench_worker *w)
{
	if (!w->task)
		return;
	wait_for_completion(&w->done);
	kthread_stop(w->task);
	w->task = NULL;
}

/* Miss-path calls until run_ns has passed; counts the calls. */
static void rtw_bench_spin(struct rtw_bench_worker *w)
{
	u64 t0 = ktime_get_ns(), until = t0 + w->run_ns, now = t0;

	w->calls = 0;
	w->seg.rnd = w->seg.seed;
	while (now < until) {
		u32 j;

		local_bh_disable();
		rcu_read_lock();
		for (j = 0; j < RTW_BENCH_CHUNK; j++) {
			rtw_bench_aim(&w->seg);
			rtw_hook(NULL, w->seg.skb, &w->seg.state);
		}
		rcu_read_unlock();
		local_bh_enable();
		w->calls += RTW_BENCH_CHUNK;
		cond_resched();
		now = ktime_get_ns();
	}
	w->run_ns = now - t0;
}

/* Calls per second of one worker's run. */
static u64 rtw_bench_rate(const struct rtw_bench_worker *w)
{
	return w->run_ns ? div64_u64(w->calls * NSEC_PER_SEC, w->run_ns) : 0;
}

/*
 * Miss-path throughput of two workers on CPU0 and CPU1 at once over one alone. The lone worker
 * alternates between the CPUs, so neither CPU's own background work (the writer, timers) favours
 * one side of the ratio.
 */
static int rtw_bench_scaling(u32 n)
{
	struct rtw_bench_fig f = { .name = "two_vcpu_scaling", .unit = "x" };
	u64 one[RTW_BENCH_SAMPLES], two[RTW_BENCH_SAMPLES];
	struct rtw_bench_worker *w;
	u32 i;
	int c, err = 0;

	if (num_online_cpus() < 2 || !cpu_online(0) || !cpu_online(1)) {
		pr_err("rtw-bench: two_vcpu_scaling needs CPU0 and CPU1 online (%u online)\n",
		       num_online_cpus());
		return -ENODEV;
	}
	w = kcalloc(2, sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	for (c = 0; c < 2 && !err; c++)
		err = rtw_bench_seg_init(&w[c].seg, n, RTW_SEG_MISS, 0xc0ffee + c);
	for (i = 0; i < RTW_BENCH_SAMPLES && !err; i++) {
		struct completion start;
		u32 lone = i & 1;

		/* One worker alone. */
		init_completion(&start);
		w[lone].start = &start;
		w[lone].run_ns = (u64)RTW_BENCH_SCALING_MS * NSEC_PER_MSEC;
		err = rtw_bench_spawn(&w[lone], lone, rtw_bench_spin);
		if (err)
			break;
		complete_all(&start);
		rtw_bench_join(&w[lone]);
		one[i] = rtw_bench_rate(&w[lone]);

		/* Both at once. */
		init_completion(&start);
		for (c = 0; c < 2 && !err; c++) {
			w[c].start = &start;
			w[c].run_ns = (u64)RTW_BENCH_SCALING_MS * NSEC_PER_MSEC;
			err = rtw_bench_spawn(&w[c], c, rtw_bench_spin);
		}
		complete_all(&start);
		rtw_bench_join(&w[0]);
		rtw_bench_join(&w[1]);
		if (err)
			break;
		two[i] = rtw_bench_rate(&w[0]) + rtw_bench_rate(&w[1]);
		rtw_bench_add(&f, rtw_bench_ratio(two[i], one[i]));
	}
	for (c = 0; c < 2; c++)
		if (w[c].seg.skb)
			rtw_bench_seg_free(&w[c].seg);
	kfree(w);
	if (err)
		return err;
	rtw_bench_report(&f);
	pr_info("rtw-bench-note: two_vcpu_scaling entries=%u one_cpu_calls_per_s=%llu two_cpus_calls_per_s=%llu (medians, %u ms runs)\n",
		rtw_glue_table_len(rtw_bench_gn()->tables),
		rtw_bench_median(one, f.n), rtw_bench_median(two, f.n), RTW_BENCH_SCALING_MS);
	return 0;
}

/* ---- stalls while the table grows ---- */

/* The probe's control section: a busy wait about as long as a hook call. */
#define RTW_BENCH_CONTROL_NS 8000

/*
 * Time every single hook call, alternately a hit (one of the first 1,000 entries, present from
 * the start) and a miss, until told to stop. The clock is read inside the bottom-half-off
 * section, so only hard interrupts can add to a call's time, and the emulator: a vCPU the host
 * does not run for a while makes whatever section it was in look that much longer. To tell the
 * two apart, every call is followed by a control section of the same shape, a busy wait of
 * RTW_BENCH_CONTROL_NS, whose overrun can only come from interrupts and the host: in the same
 * window, with about the same chance of being hit.
 */
static void rtw_bench_probe(struct rtw_bench_worker *w)
{
	u64 calls = 0;

	w->max_ns = 0;
	w->max_hit_ns = 0;
	w->ctl_max_ns = 0;
	w->over_100us = 0;
	w->ctl_over_100us = 0;
	memset(&w->hist, 0, sizeof(w->hist));
	memset(&w->ctl_hist, 0, sizeof(w->ctl_hist));
	w->seg.rnd = w->seg.seed;
	w->seg2.rnd = w->seg2.seed;
	while (!READ_ONCE(*w->stop)) {
		struct rtw_bench_seg *s = calls & 1 ? &w->seg2 : &w->seg;
		u64 t0, t, c;

		rtw_bench_aim(s);
		local_bh_disable();
		rcu_read_lock();
		t0 = ktime_get_ns();
		rtw_hook(NULL, s->skb, &s->state);
		t = ktime_get_ns() - t0;
		rcu_read_unlock();
		local_bh_enable();

		local_bh_disable();
		t0 = ktime_get_ns();
		ndelay(RTW_BENCH_CONTROL_NS);
		c = ktime_get_ns() - t0;
		local_bh_enable();
		c = c > RTW_BENCH_CONTROL_NS ? c - RTW_BENCH_CONTROL_NS : 0;

		w->max_ns = max(w->max_ns, t);
		if (s == &w->seg)
			w->max_hit_ns = max(w->max_hit_ns, t);
		w->ctl_max_ns = max(w->ctl_max_ns, c);
		rtw_bench_hist_add(&w->hist, t);
		rtw_bench_hist_add(&w->ctl_hist, c);
		w->over_100us += t > 100 * NSEC_PER_USEC;
		w->ctl_over_100us += c > 100 * NSEC_PER_USEC;
		calls++;
		if (!(calls & 255))
			cond_resched();
	}
	w->calls = calls;
}

/* Add the entries, then wait while the rhashtable finishes growing: that is growth too. */
static void rtw_bench_adder(struct rtw_bench_worker *w)
{
	struct rtw_glue_net *gn = rtw_bench_gn();

	w->err = rtw_bench_fill(gn, w->from, w->to);
	if (!w->err)
		rtw_bench_settle(gn);
	WRITE_ONCE(*w->stop, true);
}

/*
 * One growth from `from` to `to` entries: an adder on CPU0 (where the rhashtable's growth
 * worker runs too, queued by the adds) and the probe on CPU1. `probe` gets the probe's results.
 */
static int rtw_bench_grow(u32 from, u32 to, struct rtw_bench_worker *probe)
{
	struct rtw_bench_worker *w;
	bool stop = false;
	int err;

	w = kcalloc(2, sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	err = rtw_bench_seg_init(&w[1].seg, RTW_BENCH_1K, RTW_SEG_FIN, 0xab1);
	if (!err)
		err = rtw_bench_seg_init(&w[1].seg2, RTW_BENCH_1K, RTW_SEG_MISS, 0xab2);
	if (err)
		goto out;
	w[0].stop = &stop;
	w[1].stop = &stop;
	w[0].from = from;
	w[0].to = to;
	err = rtw_bench_spawn(&w[1], 1, rtw_bench_probe);
	if (err)
		goto out;
	err = rtw_bench_spawn(&w[0], 0, rtw_bench_adder);
	if (err) {
		WRITE_ONCE(stop, true);
		rtw_bench_join(&w[1]);
		goto out;
	}
	rtw_bench_join(&w[0]);
	rtw_bench_join(&w[1]);
	err = w[0].err;
	probe->max_ns = w[1].max_ns;
	probe->max_hit_ns = w[1].max_hit_ns;
	probe->ctl_max_ns = w[1].ctl_max_ns;
	probe->calls = w[1].calls;
	probe->over_100us = w[1].over_100us;
	probe->ctl_over_100us = w[1].ctl_over_100us;
	probe->hist = w[1].hist;
	probe->ctl_hist = w[1].ctl_hist;
out:
	if (w[1].seg.skb)
		rtw_bench_seg_free(&w[1].seg);
	if (w[1].seg2.skb)
		rtw_bench_seg_free(&w[1].seg2);
	kfree(w);
	return err;
}

/*
 * resize_max_stall_us and lookup_4m_vs_1k, sample by sample: at 1k entries the hit cost, then
 * the growth to 4M with the probe, then the hit cost at 4M, then a flush. Hits are drawn from
 * the whole table, so at 4M they reach memory no cache holds, as a busy server's segments do.
 */
static noinline_for_stack int rtw_bench_growth(void)
{
	struct rtw_bench_fig stall = { .name = "resize_max_stall_us", .unit = "us" };
	struct rtw_bench_fig look = { .name = "lookup_4m_vs_1k", .unit = "x" };
	struct rtw_glue_net *gn = rtw_bench_gn();
	u64 c1k[RTW_BENCH_REPS], c4m[RTW_BENCH_REPS], ctl[RTW_BENCH_REPS];
	u64 calls = 0, over = 0, ctl_over = 0;
	/* Off the stack (the kernel's frame limit); runs are serialised by rtw_bench_mutex. */
	static struct rtw_bench_hist hist, ctl_hist;
	u32 big = rtw_bench_n(RTW_BENCH_4M), i;
	struct rtw_bench_seg s;
	int err = 0;

	memset(&hist, 0, sizeof(hist));
	memset(&ctl_hist, 0, sizeof(ctl_hist));
	for (i = 0; i < RTW_BENCH_REPS && !err; i++) {
		struct rtw_bench_worker probe = {};
		u64 t0;

		rtw_bench_flush(gn);
		err = rtw_bench_fill_settled(gn, RTW_BENCH_1K, NULL, NULL);
		if (err)
			break;
		err = rtw_bench_seg_init(&s, RTW_BENCH_1K, RTW_SEG_FIN, 0x1e1 + i);
		if (err)
			break;
		rtw_bench_calibrate(&s);
		c1k[i] = rtw_bench_hit_cost(&s);
		rtw_bench_seg_free(&s);

		t0 = ktime_get_ns();
		err = rtw_bench_grow(RTW_BENCH_1K, big, &probe);
		if (err)
			break;
		t0 = ktime_get_ns() - t0;
		rtw_bench_add(&stall, probe.max_ns);
		ctl[i] = probe.ctl_max_ns;
		calls += probe.calls;
		over += probe.over_100us;
		ctl_over += probe.ctl_over_100us;
		rtw_bench_hist_merge(&hist, &probe.hist);
		rtw_bench_hist_merge(&ctl_hist, &probe.ctl_hist);

		err = rtw_bench_seg_init(&s, big, RTW_SEG_FIN, 0x4e4 + i);
		if (err)
			break;
		rtw_bench_calibrate(&s);
		c4m[i] = rtw_bench_hit_cost(&s);
		rtw_bench_seg_free(&s);
		if (!c1k[i] || !c4m[i]) {
			pr_err("rtw-bench: lookup_4m_vs_1k: a hit was not dropped\n");
			err = -EIO;
			break;
		}
		rtw_bench_add(&look, rtw_bench_ratio(c4m[i], c1k[i]));
		pr_info("rtw-bench-note: growth %u: entries=%u buckets4=%u growth_ms=%llu probe_max_ns=%llu probe_max_hit_ns=%llu control_max_overrun_ns=%llu probe_calls=%llu hit_1k_ns=%llu hit_4m_ns=%llu\n",
			i, rtw_glue_table_len(gn->tables), rtw_glue_table_buckets(gn->tables, AF_INET),
			div_u64(t0, NSEC_PER_MSEC), probe.max_ns, probe.max_hit_ns, probe.ctl_max_ns,
			probe.calls,
			div_u64(c1k[i], 1000), div_u64(c4m[i], 1000));
	}
	rtw_bench_flush(gn);
	if (err)
		return err;
	rtw_bench_report(&stall);
	rtw_bench_report(&look);
	pr_info("rtw-bench-note: resize_max_stall_us control_max_overrun_ns=%llu (median) probe_calls=%llu calls_over_100us=%llu controls_over_100us=%llu\n",
		rtw_bench_median(ctl, RTW_BENCH_REPS), calls, over, ctl_over);
	rtw_bench_hist_print("resize_max_stall_us hook calls", &hist);
	rtw_bench_hist_print("resize_max_stall_us control overruns", &ctl_hist);
	pr_info("rtw-bench-note: lookup_4m_vs_1k hit_1k_ns=%llu hit_4m_ns=%llu (medians)\n",
		div_u64(rtw_bench_median(c1k, RTW_BENCH_REPS), 1000),
		div_u64(rtw_bench_median(c4m, RTW_BENCH_REPS), 1000));
	return 0;
}

/* ---- reaping ---- */

/*
 * How long the reaper holds a CPU without scheduling, seen from another CPU. The kernel is
 * preemptible, so the reaper can only keep a CPU while it holds a stripe lock (spin_lock_bh: no
 * preemption, no softirq), a batch of entries at a time; a probe that takes every stripe lock in
 * turn waits, when it meets the reaper's, for what is left of that hold. The longest wait over
 * a reap is a sampled lower bound of the longest hold. One probe per CPU, so one of them is
 * always on the CPU the (unbound) reaper is not on. The reaper and table.c are not
 * instrumented: this file only uses what glue.h offers. Each attempt is followed by the same
 * control section as the growth probe's, to show what the emulator adds on its own.
 */
static void rtw_bench_lock_probe(struct rtw_bench_worker *w)
{
	struct rtw_glue_tables *t = rtw_bench_gn()->tables;
	u32 stripes = rtw_glue_table_stripes(), st = 0;
	u64 calls = 0;

	w->max_ns = 0;
	w->ctl_max_ns = 0;
	memset(&w->hist, 0, sizeof(w->hist));
	memset(&w->ctl_hist, 0, sizeof(w->ctl_hist));
	while (!READ_ONCE(*w->stop)) {
		u64 t0, d, c;

		t0 = ktime_get_ns();
		rtw_glue_stripe_lock(t, st);
		d = ktime_get_ns() - t0;
		rtw_glue_stripe_unlock(t, st);

		local_bh_disable();
		t0 = ktime_get_ns();
		ndelay(RTW_BENCH_CONTROL_NS);
		c = ktime_get_ns() - t0;
		local_bh_enable();
		c = c > RTW_BENCH_CONTROL_NS ? c - RTW_BENCH_CONTROL_NS : 0;

		w->max_ns = max(w->max_ns, d);
		w->ctl_max_ns = max(w->ctl_max_ns, c);
		rtw_bench_hist_add(&w->hist, d);
		rtw_bench_hist_add(&w->ctl_hist, c);
		st = (st + 1) % stripes;
		calls++;
		if (!(calls & 255))
			cond_resched();
	}
	w->calls = calls;
}

/*
 * Expire the n entries in the table at once (an entry expires at its start plus the current
 * timeout: cutting the MSL to 100 ms puts all of them past it), arm the reaper for now and
 * wait until the table is empty. Returns the ns from arming to empty.
 */
static u64 rtw_bench_reap_all(struct rtw_glue_net *gn)
{
	u64 t0;

	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS], RTW_BENCH_MSL_SHORT);
	/* Past 2 x the short MSL, so the newest entry has expired too. */
	msleep(3 * RTW_BENCH_MSL_SHORT);
	t0 = ktime_get_ns();
	rtw_glue_reaper_arm(gn, get_jiffies_64());
	while (rtw_glue_table_len(gn->tables))
		usleep_range(500, 1000);
	t0 = ktime_get_ns() - t0;
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS], RTW_BENCH_MSL_LONG);
	return t0;
}

/* After a reap or a flush: the grace periods and the table's shrinking, outside the timing. */
static void rtw_bench_drain(struct rtw_glue_net *gn)
{
	rcu_barrier();
	rtw_bench_settle(gn);
}

/*
 * reap_1m_vs_flush and reap_max_stall_us, sample by sample: 1M entries reaped (time from arming
 * to an empty table), 1M flushed (the time rtw_rs_flush takes), both without probes; then 1M
 * reaped again with the lock probes on both CPUs. Both times stop when the table is empty:
 * entries unlinked, their memory following after a grace period in both cases.
 */
static noinline_for_stack int rtw_bench_reap(void)
{
	struct rtw_bench_fig stall = { .name = "reap_max_stall_us", .unit = "us" };
	struct rtw_bench_fig ratio = { .name = "reap_1m_vs_flush", .unit = "x" };
	struct rtw_glue_net *gn = rtw_bench_gn();
	u64 reap[RTW_BENCH_REPS], flush[RTW_BENCH_REPS], ctl[RTW_BENCH_REPS], calls = 0;
	struct rtw_bench_hist hist = {}, ctl_hist = {};
	u32 n = rtw_bench_n(RTW_BENCH_1M), i;
	struct rtw_bench_worker *w;
	int err = 0, c;

	w = kcalloc(2, sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	rtw_bench_flush(gn);
	for (i = 0; i < RTW_BENCH_REPS && !err; i++) {
		bool stop = false;
		u64 t0, probed;

		err = rtw_bench_fill_settled(gn, n, NULL, NULL);
		if (err)
			break;
		reap[i] = rtw_bench_reap_all(gn);
		rtw_bench_drain(gn);

		err = rtw_bench_fill_settled(gn, n, NULL, NULL);
		if (err)
			break;
		t0 = ktime_get_ns();
		mutex_lock(&gn->nl_lock);
		rtw_rs_flush(gn->rs);
		mutex_unlock(&gn->nl_lock);
		flush[i] = ktime_get_ns() - t0;
		rtw_bench_drain(gn);

		err = rtw_bench_fill_settled(gn, n, NULL, NULL);
		if (err)
			break;
		for (c = 0; c < 2 && !err; c++) {
			w[c].stop = &stop;
			err = rtw_bench_spawn(&w[c], c, rtw_bench_lock_probe);
		}
		probed = err ? 0 : rtw_bench_reap_all(gn);
		WRITE_ONCE(stop, true);
		rtw_bench_join(&w[0]);
		rtw_bench_join(&w[1]);
		rtw_bench_drain(gn);
		if (err)
			break;

		rtw_bench_add(&stall, max(w[0].max_ns, w[1].max_ns));
		rtw_bench_add(&ratio, rtw_bench_ratio(reap[i], flush[i]));
		ctl[i] = max(w[0].ctl_max_ns, w[1].ctl_max_ns);
		calls += w[0].calls + w[1].calls;
		for (c = 0; c < 2; c++) {
			rtw_bench_hist_merge(&hist, &w[c].hist);
			rtw_bench_hist_merge(&ctl_hist, &w[c].ctl_hist);
		}
		pr_info("rtw-bench-note: reap %u: entries=%u reap_ms=%llu flush_ms=%llu reap_with_probes_ms=%llu stripe_lock_max_wait_ns=%llu control_max_overrun_ns=%llu probe_attempts=%llu\n",
			i, n, div_u64(reap[i], NSEC_PER_MSEC), div_u64(flush[i], NSEC_PER_MSEC),
			div_u64(probed, NSEC_PER_MSEC), max(w[0].max_ns, w[1].max_ns), ctl[i],
			w[0].calls + w[1].calls);
	}
	kfree(w);
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS], RTW_BENCH_MSL_LONG);
	rtw_bench_flush(gn);
	if (err)
		return err;
	rtw_bench_report(&stall);
	rtw_bench_report(&ratio);
	pr_info("rtw-bench-note: reap entries=%u reap_ms=%llu flush_ms=%llu control_max_overrun_ns=%llu (medians) probe_attempts=%llu\n",
		n, div_u64(rtw_bench_median(reap, RTW_BENCH_REPS), NSEC_PER_MSEC),
		div_u64(rtw_bench_median(flush, RTW_BENCH_REPS), NSEC_PER_MSEC),
		rtw_bench_median(ctl, RTW_BENCH_REPS), calls);
	rtw_bench_hist_print("reap_max_stall_us stripe lock waits", &hist);
	rtw_bench_hist_print("reap_max_stall_us control overruns", &ctl_hist);
	return 0;
}

/* ---- commands ---- */

/* The figures measured at 1M entries share one fill. */
static noinline_for_stack int rtw_bench_at_1m(bool miss, bool hit, bool scaling)
{
	struct rtw_glue_net *gn = rtw_bench_gn();
	u32 n = rtw_bench_n(RTW_BENCH_1M);
	int err;

	rtw_bench_flush(gn);
	err = rtw_bench_fill_settled(gn, n, NULL, NULL);
	if (!err && miss)
		err = rtw_bench_vs_linux("miss_vs_linux_lookup", n, true);
	if (!err && hit)
		err = rtw_bench_vs_linux("hit_vs_linux_lookup", n, false);
	if (!err && scaling)
		err = rtw_bench_scaling(n);
	rtw_bench_flush(gn);
	return err;
}

/* `fill N`: leave N entries in the table (sysctls stay raised until `flush`). */
static int rtw_bench_cmd_fill(u32 n)
{
	struct rtw_glue_net *gn = rtw_bench_gn();
	u64 add_ms = 0, settle_ms = 0;
	int err;

	rtw_bench_flush(gn);
	err = rtw_bench_fill_settled(gn, n, &add_ms, &settle_ms);
	if (err)
		return err;
	pr_info("rtw-bench-note: fill entries=%u buckets4=%u add_ms=%llu settle_ms=%llu\n",
		rtw_glue_table_len(gn->tables), rtw_glue_table_buckets(gn->tables, AF_INET),
		add_ms, settle_ms);
	return 0;
}

static int rtw_bench_command(char *cmd)
{
	struct rtw_glue_net *gn = rtw_bench_gn();
	bool all = !strcmp(cmd, "all");
	u32 n;
	int err = 0;

	if (sscanf(cmd, "fill %u", &n) == 1) {
		rtw_bench_sysctls_set(gn);
		return rtw_bench_cmd_fill(n);
	}
	if (!strcmp(cmd, "flush")) {
		rtw_bench_flush(gn);
		rtw_bench_sysctls_restore(gn);
		return 0;
	}

	rtw_bench_sysctls_set(gn);
	/* Hits are answered with an ACK that is built but not sent: a benchmark that floods
	 * replies into the stack would measure the stack. */
	WRITE_ONCE(rtw_bench_dry_run, true);
	if (all || !strcmp(cmd, "miss_vs_linux_lookup") || !strcmp(cmd, "hit_vs_linux_lookup") ||
	    !strcmp(cmd, "two_vcpu_scaling"))
		err = rtw_bench_at_1m(all || !strcmp(cmd, "miss_vs_linux_lookup"),
				      all || !strcmp(cmd, "hit_vs_linux_lookup"),
				      all || !strcmp(cmd, "two_vcpu_scaling"));
	else if (strcmp(cmd, "lookup_4m_vs_1k") && strcmp(cmd, "resize_max_stall_us") &&
		 strcmp(cmd, "reap_max_stall_us") && strcmp(cmd, "reap_1m_vs_flush"))
		err = -EINVAL;
	if (!err && (all || !strcmp(cmd, "lookup_4m_vs_1k") || !strcmp(cmd, "resize_max_stall_us")))
		err = rtw_bench_growth();
	if (!err && (all || !strcmp(cmd, "reap_max_stall_us") || !strcmp(cmd, "reap_1m_vs_flush")))
		err = rtw_bench_reap();
	WRITE_ONCE(rtw_bench_dry_run, false);
	rtw_bench_flush(gn);
	rtw_bench_sysctls_restore(gn);
	return err;
}

static ssize_t rtw_bench_write(struct file *file, const char __user *ubuf, size_t len,
			       loff_t *ppos)
{
	char buf[64], *cmd;
	int err;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	cmd = strim(buf);
	err = mutex_lock_interruptible(&rtw_bench_mutex);
	if (err)
		return err;
	pr_info("rtw-bench-begin: %s\n", cmd);
	err = rtw_bench_command(cmd);
	pr_info("rtw-bench-end: %s err=%d\n", cmd, err);
	mutex_unlock(&rtw_bench_mutex);
	return err ? err : len;
}

static const struct file_operations rtw_bench_fops = {
	.owner = THIS_MODULE,
	.write = rtw_bench_write,
	.llseek = noop_llseek,
};

/* Files only: nothing runs, nothing is allocated until the file is written. */
void rtw_bench_init(void)
{
	rtw_bench_dir = debugfs_create_dir("rust_timewait", NULL);
	debugfs_create_file("bench", 0200, rtw_bench_dir, NULL, &rtw_bench_fops);
	debugfs_create_u32("scale", 0600, rtw_bench_dir, &rtw_bench_scale);
}

void rtw_bench_exit(void)
{
	debugfs_remove(rtw_bench_dir);
	rtw_bench_dir = NULL;
}
