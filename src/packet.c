// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's packet I/O: the netfilter hook (the miss path, an RCU lookup in table.c, and
 * the hand-over of a hit to Rust), the checksum check, and the routing and sending of the
 * replies Rust builds. No decision is made here (the decisions are src/logic/twcheck.rs's).
 */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/skbuff.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/l3mdev.h>
#include <net/route.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "glue.h"
#include "glue_internal.h"

/* Set only by the benchmark (bench.c): replies are built but not sent. */
bool rtw_bench_dry_run;

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

/*
 * Route a reply to the segment being processed, as Linux routes its TIME_WAIT ACKs and RSTs
 * (ip_send_unicast_reply, tcp_v6_send_response): out of the device the socket was bound to,
 * else the L3 master (VRF) the segment came through, or, to an IPv6 link-local peer, the
 * interface it came in on; the mark reflected when fwmark_reflect says so, else the socket's;
 * the reply's DSCP, ports, protocol and the netns's root uid in the flow for policy routing and
 * IPsec selectors; the IPsec output policy applied (D35); for IPv6, the connection's ECMP path
 * (its txhash) and the flow label Linux would write. Routed before Rust builds the reply, so
 * the reply is built whole, hop limit and flow label included, in one place (logic/reply.rs).
 * Returns a held route, or NULL and *err.
 */
void *rtw_glue_reply_route(void *vctx, struct rtw_glue_reply_params *p, int *err)
{
	struct rtw_pkt_ctx *ctx = vctx;
	const struct rtw_glue_conn *conn = p->conn;
	struct net *net = ctx->state->net;
	struct sk_buff *skb = ctx->skb;
	int oif = conn->bound_ifindex;
	const struct tcphdr *th;
	struct tcphdr _th;

	th = skb_header_pointer(skb, ctx->thoff, sizeof(_th), &_th);
	if (!th) {
		*err = -EINVAL;
		return NULL;
	}
	if (ctx->state->pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);
		struct flowi4 fl4;
		struct rtable *rt;

		if (!oif && netif_index_is_l3_master(net, skb->skb_iif))
			oif = skb->skb_iif;
		flowi4_init_output(&fl4, oif, IP4_REPLY_MARK(net, skb->mark) ?: conn->mark,
				   p->tos & INET_DSCP_MASK, RT_SCOPE_UNIVERSE, IPPROTO_TCP, 0,
				   iph->saddr, iph->daddr, th->source, th->dest,
				   sock_net_uid(net, NULL));
		security_skb_classify_flow(skb, flowi4_to_flowi_common(&fl4));
		rt = ip_route_output_flow(net, &fl4, NULL);
		if (IS_ERR(rt)) {
			*err = PTR_ERR(rt);
			return NULL;
		}
		p->hop_limit = ip4_dst_hoplimit(&rt->dst);
		p->flowlabel = 0;
		return &rt->dst;
	}
#if IS_ENABLED(CONFIG_IPV6)
	{
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		struct flowi6 fl6 = {
			.daddr = ip6h->saddr,
			.saddr = ip6h->daddr,
			.flowlabel = cpu_to_be32(conn->flowlabel),
			.flowi6_proto = IPPROTO_TCP,
			.flowi6_mark = IP6_REPLY_MARK(net, skb->mark) ?: conn->mark,
			.fl6_dport = th->source,
			.fl6_sport = th->dest,
			.flowi6_uid = sock_net_uid(net, NULL),
		};
		struct dst_entry *dst;
		struct flow_keys keys;
		u32 hash;

		if (rt6_need_strict(&fl6.daddr) && !oif)
			fl6.flowi6_oif = inet6_iif(skb);
		else if (!oif && netif_index_is_l3_master(net, skb->skb_iif))
			fl6.flowi6_oif = skb->skb_iif;
		else
			fl6.flowi6_oif = oif;
		/* The connection's nexthop, as its data took (tcp_v6_send_response). */
		if (conn->txhash)
			ip6_ecmp_set_mp_hash(net, &fl6, conn->txhash);
		security_skb_classify_flow(skb, flowi6_to_flowi_common(&fl6));
		dst = ip6_dst_lookup_flow(net, NULL, &fl6, NULL);
		if (IS_ERR(dst)) {
			*err = PTR_ERR(dst);
			return NULL;
		}
		p->hop_limit = ip6_dst_hoplimit(dst);
		/*
		 * ip6_make_flowlabel() as ip6_xmit() applies it for the control socket (no per-socket
		 * choice: the netns default): the socket's label, else one from the connection's
		 * txhash, which is the label its data carried, else from the reply's flow.
		 */
		p->flowlabel = conn->flowlabel & 0xfffff;
		if (!p->flowlabel && ip6_default_np_autolabel(net)) {
			hash = conn->txhash ?: __get_hash_from_flowi6(&fl6, &keys);
			p->flowlabel = be32_to_cpu((__force __be32)rol32(hash, 16) &
						   IPV6_FLOWLABEL_MASK);
			if (READ_ONCE(net->ipv6.sysctl.flowlabel_state_ranges))
				p->flowlabel |= be32_to_cpu(IPV6_FLOWLABEL_STATELESS_FLAG);
		}
		return dst;
	}
#else
	*err = -EAFNOSUPPORT;
	return NULL;
#endif
}

/* A route from rtw_glue_reply_route() that no reply was sent on. */
void rtw_glue_route_release(void *dst)
{
	dst_release(dst);
}

/* Send a whole IP packet built by Rust (logic/reply.rs) on its route, which this consumes. */
int rtw_glue_reply_send(void *vctx, void *vdst, const struct rtw_glue_conn *conn,
			const __u8 *data, __u32 len)
{
	struct rtw_pkt_ctx *ctx = vctx;
	struct net *net = ctx->state->net;
	bool v4 = ctx->state->pf == NFPROTO_IPV4;
	struct dst_entry *dst = vdst;
	struct sk_buff *nskb;
	int err;

	if (unlikely(READ_ONCE(rtw_bench_dry_run))) {
		dst_release(dst);
		return 0;
	}
	nskb = alloc_skb(LL_MAX_HEADER + len, GFP_ATOMIC);
	if (!nskb) {
		dst_release(dst);
		return -ENOMEM;
	}
	skb_reserve(nskb, LL_MAX_HEADER);
	skb_reset_network_header(nskb);
	skb_put_data(nskb, data, len);
	skb_set_transport_header(nskb, v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	nskb->ip_summed = CHECKSUM_NONE;
	skb_dst_set(nskb, dst);
	/* The segment's conntrack entry, as nf_send_reset() attaches it: OUTPUT rules see the reply
	 * as part of the connection Linux's own reply would belong to. */
	nf_ct_attach(nskb, ctx->skb);
	nskb->mark = (v4 ? IP4_REPLY_MARK(net, ctx->skb->mark) : IP6_REPLY_MARK(net, ctx->skb->mark)) ?:
		     conn->mark;
	/*
	 * IPv6 replies carry the connection's priority (tcp_v6_send_response's ip6_xmit); IPv4
	 * ones do not: ip_send_unicast_reply's cork takes the priority of an empty ipcm cookie.
	 */
	nskb->priority = v4 ? 0 : conn->priority;
	/* The connection's hash: the same transmit queue and path as its data. */
	if (conn->txhash)
		skb_set_hash(nskb, conn->txhash, PKT_HASH_TYPE_L4);
	nskb->protocol = htons(v4 ? ETH_P_IP : ETH_P_IPV6);
	/* net_xmit_eval() evaluates its argument twice: the skb is sent once, here. */
	err = v4 ? ip_local_out(net, NULL, nskb) : ip6_local_out(net, NULL, nskb);
	err = net_xmit_eval(err);
	return err > 0 ? -ENOBUFS : err;
}

/* The key of table.c's hash, from our side of the conversation (Rust's `Key`). */
union rtw_hook_key {
	struct { __u8 laddr[4], raddr[4]; __u16 lport, rport; __u32 l3index; } v4;
	struct { __u8 laddr[16], raddr[16]; __u16 lport, rport; __u32 l3index; } v6;
	/* Hashed as 32-bit words (jhash2). */
	__u32 align;
};

/*
 * The L3 master (VRF) a segment belongs to, as TCP's own lookup sees it (l3index in
 * tcp_v4_rcv's MD5/AO lookups): LOCAL_IN, the master it came in through when it came through an
 * enslaved device (inet_sdif set; then inet_iif is the master); LOCAL_OUT, the master of the
 * connecting socket's device (else of the device it leaves by). 0 outside any VRF.
 */
static u32 rtw_l3index(struct sk_buff *skb, const struct nf_hook_state *state, u8 family)
{
#if IS_ENABLED(CONFIG_NET_L3_MASTER_DEV)
	/* A connect(): the VRF of the socket's device, as __inet_check_established matches it. */
	if (state->hook == NF_INET_LOCAL_OUT) {
		if (skb->sk && sk_fullsock(skb->sk))
			return l3mdev_master_ifindex_by_index(state->net,
							     READ_ONCE(skb->sk->sk_bound_dev_if));
		return state->out ? l3mdev_master_ifindex_rcu(state->out) : 0;
	}
	if (family == AF_INET)
		return inet_sdif(skb) ? inet_iif(skb) : 0;
	return inet6_sdif(skb) ? inet6_iif(skb) : 0;
#else
	return 0;
#endif
}

/*
 * Every TCP segment of a netns that guards something comes here. The miss path (almost every
 * segment) reads the addresses and ports, looks the tuple up under the RCU read lock the hook
 * already runs in, and returns: no lock taken, nothing shared written, no copy.
 */
/*
 * The hit half of the hook, out of line: its 128-byte header copy and the packet description
 * are zeroed on entry (CONFIG_INIT_STACK_ALL_ZERO), which every miss would otherwise pay.
 */
static noinline unsigned int rtw_hook_hit(struct rtw_glue_net *gn, struct sk_buff *skb,
					  const struct nf_hook_state *state, void *entry, u8 family,
					  unsigned int off, unsigned int thoff, unsigned int ext_len)
{
	bool output = state->hook == NF_INET_LOCAL_OUT;
	struct rtw_pkt_ctx ctx = { .skb = skb, .state = state };
	u8 head[RTW_HEAD_COPY];
	struct rtw_glue_pkt pkt;
	unsigned int len;

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
	pkt.bound_port = output && skb->sk && sk_fullsock(skb->sk) &&
			 (skb->sk->sk_userlocks & SOCK_BINDPORT_LOCK);
	pkt.ifindex = state->in ? state->in->ifindex : state->out ? state->out->ifindex : 0;
	/* What tcp_v4_rcv/tcp_v6_rcv match a bound socket against (inet_sk_bound_dev_eq). */
	pkt.dif = output ? 0 : family == AF_INET ? inet_iif(skb) : inet6_iif(skb);
	pkt.sdif = output ? 0 : family == AF_INET ? inet_sdif(skb) : inet6_sdif(skb);
	pkt.l3mdev_accept = !IS_ENABLED(CONFIG_NET_L3_MASTER_DEV) ||
			    READ_ONCE(state->net->ipv4.sysctl_tcp_l3mdev_accept);
	pkt.dsfield = family == AF_INET ? ipv4_get_dsfield(ip_hdr(skb))
					: ipv6_get_dsfield(ipv6_hdr(skb));
	pkt.link_bcast = skb->pkt_type == PACKET_BROADCAST || skb->pkt_type == PACKET_MULTICAST;
	if (family == AF_INET && skb_rtable(skb) &&
	    (skb_rtable(skb)->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)))
		pkt.link_bcast = true;
	pkt.ctx = &ctx;
	return rtw_rs_hook(gn->rs, &pkt, entry);
}

/*
 * The entry for `key`. Inside a VRF, an entry of an unbound socket answers too when
 * tcp_l3mdev_accept says so, as an unbound socket does (inet_bound_dev_eq): a second lookup,
 * for VRF traffic only.
 */
static __always_inline void *rtw_hook_lookup(struct rtw_glue_net *gn,
					     const struct nf_hook_state *state, u8 family,
					     union rtw_hook_key *key, u32 l3index)
{
	void *entry = rtw_glue_table_lookup(gn->tables, family, key);

	if (!entry && l3index && state->hook != NF_INET_LOCAL_OUT &&
	    READ_ONCE(state->net->ipv4.sysctl_tcp_l3mdev_accept)) {
		if (family == AF_INET)
			key->v4.l3index = 0;
		else
			key->v6.l3index = 0;
		entry = rtw_glue_table_lookup(gn->tables, family, key);
		if (family == AF_INET)
			key->v4.l3index = l3index;
		else
			key->v6.l3index = l3index;
	}
	return entry;
}

unsigned int rtw_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	struct rtw_glue_net *gn = rtw_gn(state->net);
	bool output = state->hook == NF_INET_LOCAL_OUT;
	unsigned int off = skb_network_offset(skb), thoff, ext_len = 0;
	union rtw_hook_key key;
	const struct tcphdr *th;
	struct tcphdr _th;
	const void *saddr, *daddr;
	__u8 *local, *remote;
	unsigned int alen;
	void *entry;
	u32 l3index;
	u8 family;

	if (state->pf == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);

		/* Only TCP can belong to a guarded tuple; the IP header is linear here. */
		if (iph->protocol != IPPROTO_TCP)
			return NF_ACCEPT;
		thoff = off + iph->ihl * 4;
		saddr = &iph->saddr;
		daddr = &iph->daddr;
		local = key.v4.laddr;
		remote = key.v4.raddr;
		alen = 4;
		family = AF_INET;
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);

		thoff = off + sizeof(*ip6h);
		if (unlikely(ip6h->nexthdr != IPPROTO_TCP)) {
			unsigned int t = 0;
			/*
			 * Stop at AH: IPv6 processes it after LOCAL_IN (ip6_input_finish) and hands
			 * the verified packet back through the hooks with its secpath; what is behind
			 * an unverified AH is not ours to act on yet.
			 */
			int frag_flags = IP6_FH_F_AUTH;

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
		saddr = &ip6h->saddr;
		daddr = &ip6h->daddr;
		local = key.v6.laddr;
		remote = key.v6.raddr;
		alen = 16;
		family = AF_INET6;
	}
	th = skb_header_pointer(skb, thoff, sizeof(_th), &_th);
	if (!th)
		return NF_ACCEPT;
	/* Our side first: the destination of what comes in, the source of what goes out. */
	memcpy(output ? local : remote, saddr, alen);
	memcpy(output ? remote : local, daddr, alen);
	/* LOCAL_OUT only cares about a local connect(): a SYN without ACK (docs/behaviour.md §7). */
	if (output && !(th->syn && !th->ack))
		return NF_ACCEPT;
	l3index = rtw_l3index(skb, state, family);
	if (family == AF_INET) {
		key.v4.lport = ntohs(output ? th->source : th->dest);
		key.v4.rport = ntohs(output ? th->dest : th->source);
		key.v4.l3index = l3index;
	} else {
		key.v6.lport = ntohs(output ? th->source : th->dest);
		key.v6.rport = ntohs(output ? th->dest : th->source);
		key.v6.l3index = l3index;
	}
	entry = rtw_hook_lookup(gn, state, family, &key, l3index);
	if (likely(!entry)) {
		/*
		 * The peer's FIN to a connection the server close()d, which Linux holds in
		 * FIN_WAIT2, when the netns asks for it (takeover.c, D47): FINs only, so every other
		 * miss pays one bit test.
		 */
		int takeover;

		if (likely(!th->fin) || th->syn || th->rst || output)
			return NF_ACCEPT;
		takeover = READ_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_TAKEOVER]);
		if (!takeover)
			return NF_ACCEPT;
		switch (rtw_takeover(gn, skb, state, family, thoff, th, local, remote,
				     family == AF_INET ? key.v4.lport : key.v6.lport,
				     family == AF_INET ? key.v4.rport : key.v6.rport, takeover,
				     &entry)) {
		case 0:
			/* Past the IPsec policy already (rtw_takeover). */
			return rtw_hook_hit(gn, skb, state, entry, family, off, thoff, ext_len);
		case -EPERM:
			return NF_DROP;
		}
		/* Perhaps taken over by a copy of the FIN on another CPU just now. */
		entry = rtw_hook_lookup(gn, state, family, &key, l3index);
		if (!entry)
			return NF_ACCEPT;
	}
	/*
	 * IPsec policy first, as tcp_v4_rcv/tcp_v6_rcv check it before a TIME_WAIT socket sees the
	 * segment: one the policy refuses neither gets an answer nor changes the entry. Linux
	 * discards it; so do we (passing it on would only have the stack drop it and count twice).
	 */
	if (!output && !(family == AF_INET ? xfrm4_policy_check(NULL, XFRM_POLICY_IN, skb)
					   : xfrm6_policy_check(NULL, XFRM_POLICY_IN, skb)))
		return NF_DROP;

	return rtw_hook_hit(gn, skb, state, entry, family, off, thoff, ext_len);
}

/*
 * LOCAL_IN: only segments addressed to this host can belong to one of our connections. Last but
 * for conntrack's confirmation: Linux's own TIME_WAIT processing runs in tcp_v4_rcv, after the
 * whole chain, so the filter, security and NAT tables (and whatever a firewall drops there) see
 * every segment before we answer it or let it change an entry (D33).
 * LOCAL_OUT: a local connect() onto a guarded tuple (docs/behaviour.md §7). Linux checks the
 * socket's own tuple at connect(), before any netfilter table: we look before NAT rewrites it.
 */
static const struct nf_hook_ops rtw_hook_ops[] = {
	{ .hook = rtw_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP_PRI_NAT_DST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP6_PRI_LAST - 1 },
	{ .hook = rtw_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP6_PRI_NAT_DST - 1 },
};

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


/* Unregister them at netns exit (pre_exit: the pernet core waits a grace period after it). */
void rtw_hooks_disable(struct rtw_glue_net *gn)
{
	if (gn->hooks_on)
		nf_unregister_net_hooks(gn->net, rtw_hook_ops, ARRAY_SIZE(rtw_hook_ops));
}
