// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for rust_timewait: the kernel APIs that kernel::bindings lacks in 7.3 or that are
 * static inlines, macros and static tables (netfilter hook ops, pernet ops, sysctl tables,
 * timers, slab caches, routing and ip_local_out, the generic netlink family).
 * No decision is made here: segments and requests go to Rust (src/rust_timewait_main.rs).
 */
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/sysctl.h>
#include <linux/workqueue.h>
#include <net/addrconf.h>
#include <net/genetlink.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/route.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "glue.h"
#include "glue_internal.h"

/* ---- generic netlink numbering: must match spec/rust_timewait.yaml ---- */
#define RTW_GENL_NAME "rust_timewait"
#define RTW_GENL_VERSION 1

enum { RTW_CMD_UNSPEC, RTW_CMD_ADD, RTW_CMD_DEL, RTW_CMD_GET, RTW_CMD_FLUSH, RTW_CMD_GET_STATS };

enum {
	RTW_A_UNSPEC,
	RTW_A_ENTRY,
	RTW_A_REPLACE,
	RTW_A_STATS,
	RTW_A_FLUSHED,
	__RTW_A_MAX,
};
#define RTW_A_MAX (__RTW_A_MAX - 1)

enum {
	RTW_E_UNSPEC,
	RTW_E_FAMILY,
	RTW_E_LOCAL_ADDR,
	RTW_E_REMOTE_ADDR,
	RTW_E_LOCAL_PORT,
	RTW_E_REMOTE_PORT,
	RTW_E_IFINDEX,
	RTW_E_SND_NXT,
	RTW_E_RCV_NXT,
	RTW_E_LAST_WIN,
	RTW_E_RCV_WSCALE,
	RTW_E_TS_RECENT,
	RTW_E_TS_OFFSET,
	RTW_E_HAS_TS,
	RTW_E_TS_RECENT_VALID,
	RTW_E_SUBSTATE,
	RTW_E_EXPIRES_MS,
	RTW_E_RESULT,
	__RTW_E_MAX,
};
#define RTW_E_MAX (__RTW_E_MAX - 1)

/* Entries per add request: bounds the kernel memory one message can pin while it is parsed. */
#define RTW_ADD_BATCH_MAX 4096

static unsigned int rtw_net_id __read_mostly;

struct rtw_glue_net *rtw_gn(const struct net *net)
{
	return net_generic(net, rtw_net_id);
}

/* Set only by the benchmark (bench.c): replies are built but not sent. */
bool rtw_bench_dry_run;

/* ---- small wrappers over static inlines and macros ---- */

__u64 rtw_glue_jiffies(void)
{
	return get_jiffies_64();
}

/* The entries' timeout clock: monotonic microseconds, low 32 bits. */
__u32 rtw_glue_clock_us(void)
{
	return (__u32)div_u64(ktime_get_ns(), NSEC_PER_USEC);
}

__u64 rtw_glue_usecs_to_jiffies(__u32 us)
{
	return usecs_to_jiffies(us);
}

/* The clock Linux's own TCP timestamps use (tcp_time_stamp_ms), so ts_offset means the same. */
__u32 rtw_glue_tcp_clock_ms(void)
{
	return (__u32)tcp_clock_ms();
}

int rtw_glue_sysctl_get(const struct rtw_glue_net *gn, int which)
{
	if (which < 0 || which >= RTW_GLUE_SYSCTL_COUNT)
		return 0;
	return READ_ONCE(gn->sysctl[which]);
}

void rtw_glue_port_range(const struct rtw_glue_net *gn, int *lo, int *hi)
{
	inet_get_local_port_range(gn->net, lo, hi);
}

/* Linux's own limit on out-of-window replies (net.ipv4.tcp_invalid_ratelimit, ms). */
__u32 rtw_glue_invalid_ratelimit_jiffies(const struct rtw_glue_net *gn)
{
	return msecs_to_jiffies(READ_ONCE(gn->net->ipv4.sysctl_tcp_invalid_ratelimit));
}

/*
 * The most entries a netns may hold whatever its maxtcptw says: unbounded for one owned by the
 * initial user namespace, the initial netns's capacity otherwise, so root in a fresh user
 * namespace cannot pin more kernel memory per netns than the host allows its own (D34).
 */
__u32 rtw_glue_capacity_ceiling(const struct rtw_glue_net *gn)
{
	struct rtw_glue_net *init = rtw_gn(&init_net);

	if (gn->net->user_ns == &init_user_ns || !init->rs)
		return U32_MAX;
	return rtw_rs_capacity(init->rs);
}

/* Linux's own rule for a connect() onto a TIME_WAIT tuple (tcp_twsk_unique). */
void rtw_glue_tw_reuse(const struct rtw_glue_net *gn, __u8 *mode, __u32 *delay_ms)
{
	*mode = READ_ONCE(gn->net->ipv4.sysctl_tcp_tw_reuse);
	*delay_ms = READ_ONCE(gn->net->ipv4.sysctl_tcp_tw_reuse_delay);
}

/* The seed's in_localip(): is the address one of this netns's own? */
bool rtw_glue_addr_is_local(const struct rtw_glue_net *gn, __u8 family, const __u8 *addr)
{
	if (family == AF_INET) {
		__be32 a;

		memcpy(&a, addr, sizeof(a));
		return inet_addr_type(gn->net, a) == RTN_LOCAL;
	}
#if IS_ENABLED(CONFIG_IPV6)
	return ipv6_chk_addr(gn->net, (const struct in6_addr *)addr, NULL, 0);
#else
	return false;
#endif
}

/* Run the reaper at `expires` (jiffies) unless it is already due earlier. */
void rtw_glue_reaper_arm(struct rtw_glue_net *gn, __u64 expires)
{
	u64 now = get_jiffies_64();
	unsigned long delay = time_after64(expires, now) ? (unsigned long)(expires - now) : 0;

	/*
	 * Already due no later: nothing to do, and no shared lock taken (a re-arm on the hit path
	 * lands here nearly always). A stale read only sends us to the locked check below.
	 */
	if (delayed_work_pending(&gn->reaper)) {
		/* Pairs with the barrier in mod_delayed_work(): reap_at is written before pending. */
		smp_rmb();
		if (!time_after64(READ_ONCE(gn->reap_at), expires))
			return;
	}
	spin_lock_bh(&gn->reaper_lock);
	if (!gn->dying && (!delayed_work_pending(&gn->reaper) || time_before64(expires, gn->reap_at))) {
		WRITE_ONCE(gn->reap_at, expires);
		mod_delayed_work(system_dfl_wq, &gn->reaper, delay);
	}
	spin_unlock_bh(&gn->reaper_lock);
}

static void rtw_reaper_fn(struct work_struct *work)
{
	struct rtw_glue_net *gn = container_of(to_delayed_work(work), struct rtw_glue_net, reaper);

	rtw_rs_reap(gn->rs);
}

/* ---- hooks ---- */

struct rtw_pkt_ctx {
	struct sk_buff *skb;
	const struct nf_hook_state *state;
	/* Where the TCP header starts, from skb->data. */
	unsigned int thoff;
};

/* Enough for an IPv6 header and a TCP header with every option. */
#define RTW_HEAD_COPY 128

bool rtw_glue_pkt_csum_ok(void *vctx)
{
	struct rtw_pkt_ctx *ctx = vctx;
	struct sk_buff *skb = ctx->skb;

	/* Locally generated (CHECKSUM_PARTIAL) or verified by the device: as tcp_v4_rcv trusts. */
	if (skb_csum_unnecessary(skb))
		return true;
	return nf_checksum(skb, ctx->state->hook, ctx->thoff, IPPROTO_TCP,
			   ctx->state->pf == NFPROTO_IPV4 ? AF_INET : AF_INET6) == 0;
}

/* Route and send a reply built by Rust (reply.rs) from the netns of the incoming segment. */
int rtw_glue_reply(void *vctx, const __u8 *data, __u32 len)
{
	struct rtw_pkt_ctx *ctx = vctx;
	struct net *net = ctx->state->net;
	struct sk_buff *skb = ctx->skb, *nskb;
	int err;

	if (unlikely(READ_ONCE(rtw_bench_dry_run)))
		return 0;
	nskb = alloc_skb(LL_MAX_HEADER + len, GFP_ATOMIC);
	if (!nskb)
		return -ENOMEM;
	skb_reserve(nskb, LL_MAX_HEADER);
	skb_reset_network_header(nskb);
	skb_put_data(nskb, data, len);
	skb_set_transport_header(nskb, ctx->state->pf == NFPROTO_IPV4 ?
				 sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	nskb->ip_summed = CHECKSUM_NONE;

	/*
	 * Routed as Linux routes its TIME_WAIT ACKs and RSTs (ip_send_unicast_reply,
	 * tcp_v6_send_response): no interface unless the segment came through an L3 master
	 * (VRF), or IPv6 link-local (strict) through the interface it came in on; the mark
	 * reflected when fwmark_reflect says so; ports, protocol and uid in the flow for policy
	 * routing and IPsec selectors; the IPsec output policy looked up (D35).
	 */
	if (ctx->state->pf == NFPROTO_IPV4) {
		struct iphdr *iph = ip_hdr(nskb);
		const struct tcphdr *th = (const struct tcphdr *)(iph + 1);
		int oif = 0;
		struct flowi4 fl4;
		struct rtable *rt;

		if (netif_index_is_l3_master(net, skb->skb_iif))
			oif = skb->skb_iif;
		flowi4_init_output(&fl4, oif, IP4_REPLY_MARK(net, skb->mark), 0, RT_SCOPE_UNIVERSE,
				   IPPROTO_TCP, 0, iph->daddr, iph->saddr, th->dest, th->source,
				   sock_net_uid(net, NULL));
		security_skb_classify_flow(skb, flowi4_to_flowi_common(&fl4));
		rt = ip_route_output_flow(net, &fl4, NULL);
		if (IS_ERR(rt)) {
			kfree_skb(nskb);
			return PTR_ERR(rt);
		}
		skb_dst_set(nskb, &rt->dst);
		nskb->mark = fl4.flowi4_mark;
		/* The netns's default TTL (or the route's); ip_local_out redoes the header checksum. */
		iph->ttl = ip4_dst_hoplimit(&rt->dst);
		nskb->protocol = htons(ETH_P_IP);
		/* net_xmit_eval() evaluates its argument twice: the skb is sent once, here. */
		err = ip_local_out(net, NULL, nskb);
		err = net_xmit_eval(err);
		return err > 0 ? -ENOBUFS : err;
	}
#if IS_ENABLED(CONFIG_IPV6)
	{
		struct ipv6hdr *ip6h = ipv6_hdr(nskb);
		const struct tcphdr *th = (const struct tcphdr *)(ip6h + 1);
		struct flowi6 fl6 = {
			.daddr = ip6h->daddr,
			.saddr = ip6h->saddr,
			.flowi6_proto = IPPROTO_TCP,
			.flowi6_mark = IP6_REPLY_MARK(net, skb->mark),
			.fl6_dport = th->dest,
			.fl6_sport = th->source,
			.flowi6_uid = sock_net_uid(net, NULL),
		};
		struct dst_entry *dst;

		if (rt6_need_strict(&fl6.daddr))
			fl6.flowi6_oif = inet6_iif(skb);
		else if (netif_index_is_l3_master(net, skb->skb_iif))
			fl6.flowi6_oif = skb->skb_iif;
		security_skb_classify_flow(skb, flowi6_to_flowi_common(&fl6));
		dst = ip6_dst_lookup_flow(net, NULL, &fl6, NULL);
		if (IS_ERR(dst)) {
			kfree_skb(nskb);
			return PTR_ERR(dst);
		}
		skb_dst_set(nskb, dst);
		nskb->mark = fl6.flowi6_mark;
		ip6h->hop_limit = ip6_dst_hoplimit(dst);
		nskb->protocol = htons(ETH_P_IPV6);
		err = ip6_local_out(net, NULL, nskb);
		err = net_xmit_eval(err);
		return err > 0 ? -ENOBUFS : err;
	}
#else
	kfree_skb(nskb);
	return -EAFNOSUPPORT;
#endif
}

/* The key of table.c's hash, from our side of the conversation (Rust's `Key`). */
union rtw_hook_key {
	struct { __u8 laddr[4], raddr[4]; __u16 lport, rport; } v4;
	struct { __u8 laddr[16], raddr[16]; __u16 lport, rport; } v6;
	/* Hashed as 32-bit words (jhash2). */
	__u32 align;
};

/*
 * Every TCP segment of a netns that guards something comes here. The miss path (almost every
 * segment) reads the addresses and ports, looks the tuple up under the RCU read lock the hook
 * already runs in, and returns: no lock taken, nothing shared written, no copy.
 */
unsigned int rtw_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	struct rtw_glue_net *gn = rtw_gn(state->net);
	bool output = state->hook == NF_INET_LOCAL_OUT;
	struct rtw_pkt_ctx ctx = { .skb = skb, .state = state };
	unsigned int off = skb_network_offset(skb), thoff, len, ext_len = 0;
	union rtw_hook_key key;
	const struct tcphdr *th;
	struct tcphdr _th;
	u8 head[RTW_HEAD_COPY];
	struct rtw_glue_pkt pkt;
	void *entry;
	u8 family;

	if (state->pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		/* Only TCP can belong to a guarded tuple; the IP header is linear here. */
		if (iph->protocol != IPPROTO_TCP)
			return NF_ACCEPT;
		thoff = off + iph->ihl * 4;
		th = skb_header_pointer(skb, thoff, sizeof(_th), &_th);
		if (!th)
			return NF_ACCEPT;
		memcpy(output ? key.v4.laddr : key.v4.raddr, &iph->saddr, 4);
		memcpy(output ? key.v4.raddr : key.v4.laddr, &iph->daddr, 4);
		family = AF_INET;
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);

		thoff = off + sizeof(*ip6h);
		if (unlikely(ip6h->nexthdr != IPPROTO_TCP)) {
			unsigned int t = 0;
			int frag_flags = 0;

			/*
			 * Extension headers before TCP: walked as the stack walks them, so a SYN with
			 * a destination-options header still reaches its entry. Fragments stay the
			 * stack's (D13): only it reassembles.
			 */
			if (!ipv6_ext_hdr(ip6h->nexthdr) ||
			    ipv6_find_hdr(skb, &t, -1, NULL, &frag_flags) != IPPROTO_TCP ||
			    (frag_flags & IP6_FH_F_FRAG) || t <= thoff)
				return NF_ACCEPT;
			ext_len = t - thoff;
			thoff = t;
		}
		th = skb_header_pointer(skb, thoff, sizeof(_th), &_th);
		if (!th)
			return NF_ACCEPT;
		memcpy(output ? key.v6.laddr : key.v6.raddr, &ip6h->saddr, 16);
		memcpy(output ? key.v6.raddr : key.v6.laddr, &ip6h->daddr, 16);
		family = AF_INET6;
	}
	/* LOCAL_OUT only cares about a local connect(): a SYN without ACK (docs/behaviour.md §7). */
	if (output && !(th->syn && !th->ack))
		return NF_ACCEPT;
	if (family == AF_INET) {
		key.v4.lport = ntohs(output ? th->source : th->dest);
		key.v4.rport = ntohs(output ? th->dest : th->source);
	} else {
		key.v6.lport = ntohs(output ? th->source : th->dest);
		key.v6.rport = ntohs(output ? th->dest : th->source);
	}
	entry = rtw_glue_table_lookup(gn->tables, family, &key);
	if (likely(!entry))
		return NF_ACCEPT;
	/*
	 * IPsec policy first, as tcp_v4_rcv/tcp_v6_rcv check it before a TIME_WAIT socket sees the
	 * segment: one the policy refuses neither gets an answer nor changes the entry. Linux
	 * discards it; so do we (passing it on would only have the stack drop it and count twice).
	 */
	if (!output && !(family == AF_INET ? xfrm4_policy_check(NULL, XFRM_POLICY_IN, skb)
					   : xfrm6_policy_check(NULL, XFRM_POLICY_IN, skb)))
		return NF_DROP;

	/*
	 * A hit: Rust parses the whole header and decides. It gets the IP header and the TCP
	 * header (with options) in one piece; IPv6 extension headers in between are left out.
	 */
	if (family == AF_INET6 && ext_len) {
		len = min_t(unsigned int, skb->len - thoff, sizeof(head) - sizeof(struct ipv6hdr));
		if (skb_copy_bits(skb, off, head, sizeof(struct ipv6hdr)) ||
		    skb_copy_bits(skb, thoff, head + sizeof(struct ipv6hdr), len))
			return NF_ACCEPT;
		len += sizeof(struct ipv6hdr);
	} else {
		len = min_t(unsigned int, skb->len - off, sizeof(head));
		if (skb_copy_bits(skb, off, head, len))
			return NF_ACCEPT;
	}
	ctx.thoff = thoff;
	pkt.head = head;
	pkt.head_len = len;
	pkt.skb_len = skb->len - off;
	pkt.ext_len = ext_len;
	/* BIG TCP: a GRO packet over 64 KiB has a zero length field (iph_totlen, ipv6_payload_len). */
	pkt.gso_tcp = skb_is_gso(skb) && skb_is_gso_tcp(skb);
	pkt.family = family;
	pkt.output = output;
	pkt.ifindex = state->in ? state->in->ifindex : state->out ? state->out->ifindex : 0;
	pkt.link_bcast = skb->pkt_type == PACKET_BROADCAST || skb->pkt_type == PACKET_MULTICAST;
	if (family == AF_INET && skb_rtable(skb) &&
	    (skb_rtable(skb)->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)))
		pkt.link_bcast = true;
	pkt.ctx = &ctx;
	return rtw_rs_hook(gn->rs, &pkt, entry);
}

/*
 * LOCAL_IN: only segments addressed to this host can belong to one of our connections.
 * LOCAL_OUT: a local connect() onto a guarded tuple (docs/behaviour.md §7).
 * Last but for conntrack's confirmation: Linux's own TIME_WAIT processing runs in tcp_v4_rcv,
 * after the whole chain, so the filter, security and NAT tables (and whatever a firewall drops
 * there) see every segment before we answer it or let it change an entry (D33).
 */
static const struct nf_hook_ops rtw_hook_ops[] = {
	{ .hook = rtw_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP6_PRI_LAST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP6_PRI_LAST - 1 },
};

/* ---- sysctls ---- */

/* Validation is Rust's (policy.rs), so the bounds have one home; a refused write keeps the value. */
static int rtw_proc_int(const struct ctl_table *table, int write, void *buffer, size_t *lenp,
			loff_t *ppos)
{
	int *data = table->data;
	int val = READ_ONCE(*data);
	struct ctl_table tmp = {
		.procname = table->procname,
		.data = &val,
		.maxlen = sizeof(int),
		.mode = table->mode,
	};
	int ret = proc_dointvec(&tmp, write, buffer, lenp, ppos);

	if (write && ret == 0) {
		int which = (int)(long)table->extra1;

		if (!rtw_rs_sysctl_valid(which, val))
			return -EINVAL;
		/* Root of a user namespace may shrink its table, never grow it past the host's (D34). */
		if (which == RTW_GLUE_SYSCTL_MAXTCPTW && val > 0 &&
		    (u32)val > rtw_glue_capacity_ceiling(table->extra2))
			return -EPERM;
		WRITE_ONCE(*data, val);
	}
	return ret;
}

static const struct ctl_table rtw_sysctl_template[] = {
	{ .procname = "maxtcptw", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_MAXTCPTW },
	{ .procname = "nolocaltimewait", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT },
	{ .procname = "msl_ms", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_MSL_MS },
	{ .procname = "fin_timeout_ms", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS },
};

static int rtw_sysctl_register(struct rtw_glue_net *gn)
{
	struct ctl_table *table;
	int i;

	table = kmemdup(rtw_sysctl_template, sizeof(rtw_sysctl_template), GFP_KERNEL);
	if (!table)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(rtw_sysctl_template); i++) {
		table[i].data = &gn->sysctl[i];
		table[i].extra2 = gn;
	}
	gn->sysctl_hdr = register_net_sysctl_sz(gn->net, "net/rust_timewait", table,
						ARRAY_SIZE(rtw_sysctl_template));
	if (!gn->sysctl_hdr) {
		kfree(table);
		return -ENOMEM;
	}
	return 0;
}

static void rtw_sysctl_unregister(struct rtw_glue_net *gn)
{
	const struct ctl_table *table = gn->sysctl_hdr->ctl_table_arg;

	unregister_net_sysctl_table(gn->sysctl_hdr);
	kfree(table);
}

/* ---- per network namespace ---- */

/*
 * Register the hooks in this netns: called before its first entry is added, so a netns that
 * never guards anything never sees the module on its packet path.
 */
int rtw_glue_hooks_enable(struct rtw_glue_net *gn)
{
	static DEFINE_MUTEX(lock);
	int err = 0;

	if (READ_ONCE(gn->hooks_on))
		return 0;
	mutex_lock(&lock);
	if (!gn->hooks_on) {
		err = nf_register_net_hooks(gn->net, rtw_hook_ops, ARRAY_SIZE(rtw_hook_ops));
		if (!err)
			WRITE_ONCE(gn->hooks_on, true);
	}
	mutex_unlock(&lock);
	return err;
}

static int __net_init rtw_net_init(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);
	int err;

	gn->net = net;
	gn->sysctl[RTW_GLUE_SYSCTL_MAXTCPTW] = 0;		/* auto, as the seed */
	gn->sysctl[RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT] = 0;
	gn->sysctl[RTW_GLUE_SYSCTL_MSL_MS] = 30000;		/* FreeBSD's MSL */
	gn->sysctl[RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS] = 60000;	/* Linux's tcp_fin_timeout */
	INIT_DELAYED_WORK(&gn->reaper, rtw_reaper_fn);
	spin_lock_init(&gn->reaper_lock);
	mutex_init(&gn->nl_lock);
	gn->dying = false;
	gn->hooks_on = false;

	gn->tables = rtw_glue_tables_new();
	if (!gn->tables)
		return -ENOMEM;
	gn->rs = rtw_rs_net_init(gn, gn->tables);
	if (!gn->rs) {
		err = -ENOMEM;
		goto free_tables;
	}
	err = rtw_sysctl_register(gn);
	if (err)
		goto free_rs;
	return 0;

free_rs:
	rtw_rs_net_exit(gn->rs);
	gn->rs = NULL;
free_tables:
	rtw_glue_tables_free(gn->tables);
	gn->tables = NULL;
	return err;
}

/*
 * Unregistering a hook does not wait for the ones running; the pernet core puts an RCU grace
 * period between pre_exit and exit, so by exit no hook can still be using the state we free
 * (as iptable_filter does).
 */
static void __net_exit rtw_net_pre_exit(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);

	if (gn->hooks_on)
		nf_unregister_net_hooks(net, rtw_hook_ops, ARRAY_SIZE(rtw_hook_ops));
	/*
	 * Sysctls go here too (unregistering waits for writers in flight): at module unload every
	 * netns's pre_exit runs before any exit, so no write in another netns can still be reading
	 * the initial netns's state (rtw_glue_capacity_ceiling) when its exit frees it.
	 */
	rtw_sysctl_unregister(gn);
}

static void __net_exit rtw_net_exit(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);

	/* No hook runs any more (pre_exit + grace period) and no netlink command can reach this
	 * netns; stop the reaper for good before the entries and the table go. */
	spin_lock_bh(&gn->reaper_lock);
	gn->dying = true;
	spin_unlock_bh(&gn->reaper_lock);
	cancel_delayed_work_sync(&gn->reaper);
	rtw_rs_net_exit(gn->rs);
	gn->rs = NULL;
	/* Unlinked entries wait for a grace period; the table itself has no reader left. */
	rtw_glue_tables_free(gn->tables);
	gn->tables = NULL;
}

static struct pernet_operations rtw_net_ops = {
	.init = rtw_net_init,
	.pre_exit = rtw_net_pre_exit,
	.exit = rtw_net_exit,
	.id = &rtw_net_id,
	.size = sizeof(struct rtw_glue_net),
};

/* ---- generic netlink ---- */

static const struct nla_policy rtw_entry_policy[RTW_E_MAX + 1] = {
	[RTW_E_FAMILY] = { .type = NLA_U8 },
	[RTW_E_LOCAL_ADDR] = NLA_POLICY_MAX_LEN(16),
	[RTW_E_REMOTE_ADDR] = NLA_POLICY_MAX_LEN(16),
	[RTW_E_LOCAL_PORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[RTW_E_REMOTE_PORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[RTW_E_IFINDEX] = { .type = NLA_U32 },
	[RTW_E_SND_NXT] = { .type = NLA_U32 },
	[RTW_E_RCV_NXT] = { .type = NLA_U32 },
	[RTW_E_LAST_WIN] = { .type = NLA_U16 },
	[RTW_E_RCV_WSCALE] = NLA_POLICY_MAX(NLA_U8, 14),
	[RTW_E_TS_RECENT] = { .type = NLA_U32 },
	[RTW_E_TS_OFFSET] = { .type = NLA_U32 },
	[RTW_E_HAS_TS] = { .type = NLA_FLAG },
	[RTW_E_TS_RECENT_VALID] = { .type = NLA_FLAG },
	[RTW_E_SUBSTATE] = NLA_POLICY_MAX(NLA_U8, RTW_GLUE_FIN_WAIT2),
	/* Reply-only attributes. */
	[RTW_E_EXPIRES_MS] = { .type = NLA_REJECT },
	[RTW_E_RESULT] = { .type = NLA_REJECT },
};

static const struct nla_policy rtw_main_policy[RTW_A_MAX + 1] = {
	[RTW_A_ENTRY] = NLA_POLICY_NESTED(rtw_entry_policy),
	[RTW_A_REPLACE] = { .type = NLA_FLAG },
	[RTW_A_STATS] = { .type = NLA_REJECT },
	[RTW_A_FLUSHED] = { .type = NLA_REJECT },
};

static struct genl_family rtw_genl_family;

static void *rtw_info_rs(struct genl_info *info)
{
	return rtw_gn(genl_info_net(info))->rs;
}

static const char *const rtw_entry_attr_names[RTW_E_MAX + 1] = {
	[RTW_E_FAMILY] = "family", [RTW_E_LOCAL_ADDR] = "local-addr",
	[RTW_E_REMOTE_ADDR] = "remote-addr", [RTW_E_LOCAL_PORT] = "local-port",
	[RTW_E_REMOTE_PORT] = "remote-port", [RTW_E_SND_NXT] = "snd-nxt",
	[RTW_E_RCV_NXT] = "rcv-nxt", [RTW_E_LAST_WIN] = "last-win",
};

/*
 * Parse one `entry` nest (already validated against rtw_entry_policy). With `full`, the state
 * needed to guard the tuple is required too (add); otherwise only the key (del, get).
 */
static int rtw_parse_entry(const struct nlattr *nest, bool full, struct rtw_glue_entry *e,
			   struct netlink_ext_ack *extack)
{
	static const int key_attrs[] = { RTW_E_FAMILY, RTW_E_LOCAL_ADDR, RTW_E_REMOTE_ADDR,
					 RTW_E_LOCAL_PORT, RTW_E_REMOTE_PORT };
	static const int state_attrs[] = { RTW_E_SND_NXT, RTW_E_RCV_NXT, RTW_E_LAST_WIN };
	struct nlattr *tb[RTW_E_MAX + 1];
	unsigned int alen;
	int err, i;

	err = nla_parse_nested(tb, RTW_E_MAX, nest, rtw_entry_policy, extack);
	if (err)
		return err;
	for (i = 0; i < ARRAY_SIZE(key_attrs); i++) {
		if (!tb[key_attrs[i]]) {
			NL_SET_ERR_ATTR_MISS(extack, nest, key_attrs[i]);
			NL_SET_ERR_MSG_FMT(extack, "entry: missing attribute %s",
					   rtw_entry_attr_names[key_attrs[i]]);
			return -EINVAL;
		}
	}
	for (i = 0; full && i < ARRAY_SIZE(state_attrs); i++) {
		if (!tb[state_attrs[i]]) {
			NL_SET_ERR_ATTR_MISS(extack, nest, state_attrs[i]);
			NL_SET_ERR_MSG_FMT(extack, "entry: missing attribute %s",
					   rtw_entry_attr_names[state_attrs[i]]);
			return -EINVAL;
		}
	}

	memset(e, 0, sizeof(*e));
	e->family = nla_get_u8(tb[RTW_E_FAMILY]);
	if (e->family != AF_INET && e->family != AF_INET6) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_FAMILY],
				    "family: must be AF_INET (2) or AF_INET6 (10)");
		return -EINVAL;
	}
	alen = e->family == AF_INET ? 4 : 16;
	if (nla_len(tb[RTW_E_LOCAL_ADDR]) != alen) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_LOCAL_ADDR],
				    "local-addr: length does not match family (4 or 16 bytes)");
		return -EINVAL;
	}
	if (nla_len(tb[RTW_E_REMOTE_ADDR]) != alen) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_REMOTE_ADDR],
				    "remote-addr: length does not match family (4 or 16 bytes)");
		return -EINVAL;
	}
	nla_memcpy(e->laddr, tb[RTW_E_LOCAL_ADDR], alen);
	nla_memcpy(e->raddr, tb[RTW_E_REMOTE_ADDR], alen);

	/* A TIME_WAIT guards a unicast conversation: nothing to answer for any other address. */
	if (e->family == AF_INET) {
		__be32 l, r;

		memcpy(&l, e->laddr, 4);
		memcpy(&r, e->raddr, 4);
		if (ipv4_is_multicast(l) || ipv4_is_lbcast(l) || ipv4_is_zeronet(l)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_LOCAL_ADDR],
					    "local-addr: must be a unicast address");
			return -EINVAL;
		}
		if (ipv4_is_multicast(r) || ipv4_is_lbcast(r) || ipv4_is_zeronet(r)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_REMOTE_ADDR],
					    "remote-addr: must be a unicast address");
			return -EINVAL;
		}
	} else {
		const struct in6_addr *l = (const struct in6_addr *)e->laddr;
		const struct in6_addr *r = (const struct in6_addr *)e->raddr;

		if (ipv6_addr_is_multicast(l) || ipv6_addr_any(l)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_LOCAL_ADDR],
					    "local-addr: must be a unicast address");
			return -EINVAL;
		}
		if (ipv6_addr_is_multicast(r) || ipv6_addr_any(r)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_REMOTE_ADDR],
					    "remote-addr: must be a unicast address");
			return -EINVAL;
		}
	}
	e->lport = nla_get_u16(tb[RTW_E_LOCAL_PORT]);
	e->rport = nla_get_u16(tb[RTW_E_REMOTE_PORT]);
	e->ifindex = nla_get_u32_default(tb[RTW_E_IFINDEX], 0);
	if (!full)
		return 0;

	e->snd_nxt = nla_get_u32(tb[RTW_E_SND_NXT]);
	e->rcv_nxt = nla_get_u32(tb[RTW_E_RCV_NXT]);
	e->last_win = nla_get_u16(tb[RTW_E_LAST_WIN]);
	e->rcv_wscale = nla_get_u8_default(tb[RTW_E_RCV_WSCALE], 0);
	e->ts_recent = nla_get_u32_default(tb[RTW_E_TS_RECENT], 0);
	e->ts_offset = nla_get_u32_default(tb[RTW_E_TS_OFFSET], 0);
	e->has_ts = nla_get_flag(tb[RTW_E_HAS_TS]);
	e->ts_recent_valid = nla_get_flag(tb[RTW_E_TS_RECENT_VALID]);
	e->substate = nla_get_u8_default(tb[RTW_E_SUBSTATE], RTW_GLUE_TIME_WAIT);
	if (e->ts_recent_valid && !e->has_ts) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_TS_RECENT_VALID],
				    "ts-recent-valid: needs has-ts (the connection uses timestamps)");
		return -EINVAL;
	}
	/* D15: ts-recent means something only with ts-recent-valid; otherwise it is 0. */
	if (!e->ts_recent_valid)
		e->ts_recent = 0;
	if (e->substate == RTW_GLUE_TIME_WAIT && e->has_ts && !e->ts_recent_valid) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_HAS_TS],
				    "has-ts: a time-wait entry needs ts-recent (only fin-wait2 learns it)");
		return -EINVAL;
	}
	return 0;
}

static int rtw_put_entry(struct sk_buff *skb, const struct rtw_glue_entry *e, bool with_result,
			 int result)
{
	unsigned int alen = e->family == AF_INET ? 4 : 16;
	struct nlattr *nest = nla_nest_start(skb, RTW_A_ENTRY);

	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u8(skb, RTW_E_FAMILY, e->family) ||
	    nla_put(skb, RTW_E_LOCAL_ADDR, alen, e->laddr) ||
	    nla_put(skb, RTW_E_REMOTE_ADDR, alen, e->raddr) ||
	    nla_put_u16(skb, RTW_E_LOCAL_PORT, e->lport) ||
	    nla_put_u16(skb, RTW_E_REMOTE_PORT, e->rport))
		goto cancel;
	if (with_result) {
		if (nla_put_s32(skb, RTW_E_RESULT, result))
			goto cancel;
	} else {
		if ((e->ifindex && nla_put_u32(skb, RTW_E_IFINDEX, e->ifindex)) ||
		    nla_put_u32(skb, RTW_E_SND_NXT, e->snd_nxt) ||
		    nla_put_u32(skb, RTW_E_RCV_NXT, e->rcv_nxt) ||
		    nla_put_u16(skb, RTW_E_LAST_WIN, e->last_win) ||
		    nla_put_u8(skb, RTW_E_RCV_WSCALE, e->rcv_wscale) ||
		    nla_put_u8(skb, RTW_E_SUBSTATE, e->substate) ||
		    nla_put_u32(skb, RTW_E_EXPIRES_MS, e->expires_ms))
			goto cancel;
		if (e->has_ts && (nla_put_flag(skb, RTW_E_HAS_TS) ||
				  nla_put_u32(skb, RTW_E_TS_OFFSET, e->ts_offset)))
			goto cancel;
		if (e->ts_recent_valid && (nla_put_flag(skb, RTW_E_TS_RECENT_VALID) ||
					   nla_put_u32(skb, RTW_E_TS_RECENT, e->ts_recent)))
			goto cancel;
	}
	nla_nest_end(skb, nest);
	return 0;
cancel:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

/* One add result in the reply, at its largest (IPv6): sized exactly, so a batch always fits. */
static size_t rtw_result_size(void)
{
	return nla_total_size(nla_total_size(sizeof(u8)) + 2 * nla_total_size(16) +
			      2 * nla_total_size(sizeof(u16)) + nla_total_size(sizeof(s32)));
}

static int rtw_nl_add(struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	bool replace = nla_get_flag(info->attrs[RTW_A_REPLACE]);
	struct rtw_glue_entry *entries;
	const struct nlattr *nla;
	struct sk_buff *msg;
	void *hdr;
	int n = 0, i, rem, err;

	nlmsg_for_each_attr_type(nla, RTW_A_ENTRY, info->nlhdr, GENL_HDRLEN, rem)
		n++;
	if (n == 0) {
		NL_SET_ERR_MSG(extack, "add: no entry attribute");
		return -EINVAL;
	}
	if (n > RTW_ADD_BATCH_MAX) {
		NL_SET_ERR_MSG_FMT(extack, "add: at most %d entries per message", RTW_ADD_BATCH_MAX);
		return -E2BIG;
	}
	entries = kvcalloc(n, sizeof(*entries), GFP_KERNEL);
	if (!entries)
		return -ENOMEM;

	/* Parse every entry before taking any: a malformed request changes nothing. */
	i = 0;
	nlmsg_for_each_attr_type(nla, RTW_A_ENTRY, info->nlhdr, GENL_HDRLEN, rem) {
		err = rtw_parse_entry(nla, true, &entries[i], extack);
		if (err) {
			rtw_rs_count_invalid(rtw_info_rs(info));
			goto out;
		}
		i++;
	}

	msg = genlmsg_new(n * rtw_result_size(), GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	hdr = genlmsg_put_reply(msg, info, &rtw_genl_family, 0, RTW_CMD_ADD);
	if (!hdr) {
		nlmsg_free(msg);
		err = -EMSGSIZE;
		goto out;
	}
	/* Each entry's own outcome: a batch reports exactly which entries were taken. */
	mutex_lock(&rtw_gn(genl_info_net(info))->nl_lock);
	for (i = 0; i < n; i++) {
		int result = rtw_rs_add(rtw_info_rs(info), &entries[i], replace);

		if (rtw_put_entry(msg, &entries[i], true, result)) {
			mutex_unlock(&rtw_gn(genl_info_net(info))->nl_lock);
			nlmsg_free(msg);
			err = -EMSGSIZE;
			goto out;
		}
	}
	mutex_unlock(&rtw_gn(genl_info_net(info))->nl_lock);
	genlmsg_end(msg, hdr);
	err = genlmsg_reply(msg, info);
out:
	kvfree(entries);
	return err;
}

static int rtw_nl_one_entry(struct genl_info *info, struct rtw_glue_entry *e)
{
	const struct nlattr *nla, *found = NULL;
	int rem;

	nlmsg_for_each_attr_type(nla, RTW_A_ENTRY, info->nlhdr, GENL_HDRLEN, rem) {
		if (found) {
			NL_SET_ERR_MSG_ATTR(info->extack, nla, "entry: exactly one expected");
			return -EINVAL;
		}
		found = nla;
	}
	if (!found) {
		NL_SET_ERR_ATTR_MISS(info->extack, NULL, RTW_A_ENTRY);
		NL_SET_ERR_MSG(info->extack, "missing attribute entry");
		return -EINVAL;
	}
	return rtw_parse_entry(found, false, e, info->extack);
}

static int rtw_nl_del(struct sk_buff *skb, struct genl_info *info)
{
	struct rtw_glue_entry e;
	int err = rtw_nl_one_entry(info, &e);

	if (err)
		return err;
	mutex_lock(&rtw_gn(genl_info_net(info))->nl_lock);
	err = rtw_rs_del(rtw_info_rs(info), &e);
	mutex_unlock(&rtw_gn(genl_info_net(info))->nl_lock);
	if (err == -ENOENT)
		NL_SET_ERR_MSG(info->extack, "no entry guards this tuple");
	return err;
}

static int rtw_nl_get(struct sk_buff *skb, struct genl_info *info)
{
	struct rtw_glue_entry e;
	struct sk_buff *msg;
	void *hdr;
	int err = rtw_nl_one_entry(info, &e);

	if (err)
		return err;
	err = rtw_rs_get(rtw_info_rs(info), &e);
	if (err) {
		if (err == -ENOENT)
			NL_SET_ERR_MSG(info->extack, "no entry guards this tuple");
		return err;
	}
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &rtw_genl_family, 0, RTW_CMD_GET);
	if (!hdr || rtw_put_entry(msg, &e, false, 0)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

struct rtw_dump_arg {
	struct sk_buff *skb;
	struct netlink_callback *cb;
	void *rs;
};

static int rtw_dump_visit(void *varg, __u8 family, void *entry)
{
	struct rtw_dump_arg *arg = varg;
	struct rtw_glue_entry e = {};
	void *hdr;

	/* Gone or expired since the walker saw it: nothing to report. */
	if (rtw_rs_export(arg->rs, family, entry, &e))
		return 0;
	hdr = genlmsg_put(arg->skb, NETLINK_CB(arg->cb->skb).portid, arg->cb->nlh->nlmsg_seq,
			  &rtw_genl_family, NLM_F_MULTI, RTW_CMD_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (rtw_put_entry(arg->skb, &e, false, 0)) {
		genlmsg_cancel(arg->skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(arg->skb, hdr);
	return 0;
}

static int rtw_nl_dump_start(struct netlink_callback *cb)
{
	struct rtw_glue_walk *w = rtw_glue_walk_new(rtw_gn(sock_net(cb->skb->sk))->tables);

	if (!w)
		return -ENOMEM;
	cb->args[0] = (long)w;
	return 0;
}

static int rtw_nl_dump_done(struct netlink_callback *cb)
{
	rtw_glue_walk_free((struct rtw_glue_walk *)cb->args[0]);
	return 0;
}

/* A real dump: the walker resumes where the last message stopped. */
static int rtw_nl_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct rtw_glue_net *gn = rtw_gn(sock_net(skb->sk));
	struct rtw_dump_arg arg = { .skb = skb, .cb = cb, .rs = gn->rs };
	int err;

	err = rtw_glue_walk(gn->tables, (struct rtw_glue_walk *)cb->args[0], rtw_dump_visit, &arg);
	/* -EMSGSIZE: the message is full; the next one resumes at the entry that did not fit. */
	if (err < 0 && err != -EMSGSIZE)
		return err;
	return skb->len;
}

static int rtw_nl_flush(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;
	struct rtw_glue_net *gn = rtw_gn(genl_info_net(info));
	__u32 n;

	mutex_lock(&gn->nl_lock);
	n = rtw_rs_flush(gn->rs);
	mutex_unlock(&gn->nl_lock);

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &rtw_genl_family, 0, RTW_CMD_FLUSH);
	if (!hdr || nla_put_u32(msg, RTW_A_FLUSHED, n)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int rtw_nl_stats(struct sk_buff *skb, struct genl_info *info)
{
	__u64 v[RTW_GLUE_STAT_COUNT] = {};
	struct nlattr *nest;
	struct sk_buff *msg;
	void *hdr;
	int i;

	rtw_rs_stats(rtw_info_rs(info), v);
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &rtw_genl_family, 0, RTW_CMD_GET_STATS);
	if (!hdr)
		goto fail;
	nest = nla_nest_start(msg, RTW_A_STATS);
	if (!nest)
		goto fail;
	for (i = 0; i < RTW_GLUE_STAT_COUNT; i++)
		if (nla_put_uint(msg, i + 1, v[i]))
			goto fail;
	nla_nest_end(msg, nest);
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
fail:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

/*
 * Every command but get-stats needs CAP_NET_ADMIN in the netns's user namespace: entries carry
 * sequence numbers and timestamp offsets, with which any local user could forge an in-window
 * RST or data segment (Linux shows none of these without CAP_NET_ADMIN). Counters stay open,
 * as nstat's do.
 */
static const struct genl_ops rtw_genl_ops[] = {
	{ .cmd = RTW_CMD_ADD, .doit = rtw_nl_add, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = RTW_CMD_DEL, .doit = rtw_nl_del, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = RTW_CMD_GET, .doit = rtw_nl_get, .start = rtw_nl_dump_start, .dumpit = rtw_nl_dump,
	  .done = rtw_nl_dump_done, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = RTW_CMD_FLUSH, .doit = rtw_nl_flush, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = RTW_CMD_GET_STATS, .doit = rtw_nl_stats },
};

static struct genl_family rtw_genl_family __ro_after_init = {
	.name = RTW_GENL_NAME,
	.version = RTW_GENL_VERSION,
	.maxattr = RTW_A_MAX,
	.policy = rtw_main_policy,
	.netnsok = true,
	.module = THIS_MODULE,
	.ops = rtw_genl_ops,
	.n_ops = ARRAY_SIZE(rtw_genl_ops),
	/* A new family: every command is strict, reserved header fields included. */
	.resv_start_op = 0,
	/* No global genl_mutex: a netns's add, del and flush take its own nl_lock. */
	.parallel_ops = true,
};

/* ---- module ---- */

int rtw_glue_init(__u32 size4, __u32 align4, __u32 size6, __u32 align6)
{
	int err;

	err = rtw_glue_caches_create(size4, align4, size6, align6);
	if (err)
		return err;
	err = register_pernet_subsys(&rtw_net_ops);
	if (err)
		goto destroy_caches;
	err = genl_register_family(&rtw_genl_family);
	if (err)
		goto unregister_pernet;
	rtw_bench_init();
	return 0;

unregister_pernet:
	unregister_pernet_subsys(&rtw_net_ops);
destroy_caches:
	rtw_glue_caches_destroy();
	return err;
}

void rtw_glue_exit(void)
{
	rtw_bench_exit();
	genl_unregister_family(&rtw_genl_family);
	unregister_pernet_subsys(&rtw_net_ops);
	rtw_glue_caches_destroy();
}
