// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's takeover (docs/decisions.md D47). With net.rust_timewait.takeover set, a
 * connection the server ended with a plain close() becomes an entry when the peer's FIN comes,
 * the moment Linux would turn its FIN_WAIT2 timewait socket into a TIME_WAIT one: the seed's
 * tcp_twstart() compresses every connection that enters TIME_WAIT, and so does this. The entry
 * holds what that socket holds (tcp_time_wait()'s copy of the connection); the socket goes as
 * a SYN that reuses its tuple makes it go (inet_twsk_deschedule_put, tcp_v4_rcv's TCP_TW_SYN).
 * The server's close() is the whole handoff: it pays nothing and waits for nothing; the FIN
 * pays the socket early demux already found (or one established-hash lookup without it), a
 * slab allocation and an insert.
 */
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/tcp.h>
#include <net/inet6_hashtables.h>
#include <net/inet_hashtables.h>
#include <net/inet_timewait_sock.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/l3mdev.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "glue.h"
#include "glue_internal.h"

/*
 * The socket early demux found for this very segment (tcp_v4_early_demux/tcp_v6_early_demux
 * put it in skb->sk, with its reference, as tcp_v4_rcv's inet_steal_sock takes it), held: the
 * lookup Linux itself would not repeat. NULL if there is none, or it is something else.
 */
static struct sock *rtw_takeover_demuxed(struct sk_buff *skb, u8 family, const u8 *laddr,
					 const u8 *raddr, u16 lport, u16 rport)
{
	struct sock *sk = skb->sk;

	if (!sk || skb->destructor != sock_edemux || sk->sk_num != lport ||
	    sk->sk_dport != htons(rport))
		return NULL;
	if (family == AF_INET) {
		if (memcmp(&sk->sk_rcv_saddr, laddr, 4) || memcmp(&sk->sk_daddr, raddr, 4))
			return NULL;
	} else {
#if IS_ENABLED(CONFIG_IPV6)
		if (memcmp(&sk->sk_v6_rcv_saddr, laddr, 16) || memcmp(&sk->sk_v6_daddr, raddr, 16))
			return NULL;
#else
		return NULL;
#endif
	}
	return sk;
}

/*
 * Linux's timewait socket for the segment's tuple, held, found as tcp_v4_rcv/tcp_v6_rcv find
 * it (the device and L3 master it came in through); NULL for anything else.
 */
static struct inet_timewait_sock *rtw_takeover_lookup(struct net *net, struct sk_buff *skb,
						      u8 family, const u8 *laddr, const u8 *raddr,
						      u16 lport, u16 rport)
{
	struct sock *sk = rtw_takeover_demuxed(skb, family, laddr, raddr, lport, rport);

	/*
	 * Early demux found this segment's socket: a live one (the peer's FIN to a connection
	 * still open, the common case) is no business of ours, and is not looked up again; a
	 * timewait one is taken unless another CPU's takeover or its timer already unhashed it.
	 */
	if (sk) {
		if (sk->sk_state != TCP_TIME_WAIT ||
		    hlist_nulls_unhashed_lockless(&sk->sk_nulls_node) ||
		    !refcount_inc_not_zero(&sk->sk_refcnt))
			return NULL;
	} else {
		sk = rtw_lookup_established(net, family, laddr, raddr, lport, rport,
					    family == AF_INET ? inet_iif(skb) : inet6_iif(skb),
					    family == AF_INET ? inet_sdif(skb) : inet6_sdif(skb));
		if (!sk)
			return NULL;
	}
	/*
	 * A full socket (not closed, or closed with our FIN unacknowledged), a request one, or,
	 * for an IPv4 segment, a native IPv6 one that matched by its address pair alone (adopt.c
	 * refuses it too).
	 */
	if (sk->sk_state != TCP_TIME_WAIT ||
	    (family == AF_INET && sk->sk_family == AF_INET6 &&
	     !ipv6_addr_v4mapped(&sk->sk_v6_daddr))) {
		sock_gen_put(sk);
		return NULL;
	}
	return inet_twsk(sk);
}

/*
 * Whether an entry can answer for the timewait socket as it would: only in FIN_WAIT2 (in
 * TIME_WAIT the peer's FIN already came, and nothing marks the moment to take it); with
 * `takeover` 1, only a connection this host accepted or bound itself (a connect() that chose
 * its port leaves tw_connect_bind: the port goes back with the socket, and the next connect()
 * could pick it only to have its SYN held by the entry (docs/behaviour.md §7), where Linux
 * skips a port its TIME_WAIT holds; 2 takes those too, as the seed does); and
 * none of what an entry does not keep (D45's list for sockets): signing keys (RFC 2385,
 * RFC 5925), microsecond timestamps, a transparent source, a transmit delay, a PSP association.
 */
static bool rtw_takeover_fits(struct inet_timewait_sock *tw, int mode)
{
	struct tcp_timewait_sock *tcptw = tcp_twsk((struct sock *)tw);

	if (READ_ONCE(tw->tw_substate) != TCP_FIN_WAIT2 || (tw->tw_connect_bind && mode < 2) ||
	    tw->tw_usec_ts || tw->tw_transparent || tcptw->tw_tx_delay)
		return false;
#ifdef CONFIG_TCP_MD5SIG
	if (tcptw->tw_md5_key)
		return false;
#endif
#ifdef CONFIG_TCP_AO
	if (rcu_access_pointer(tcptw->ao_info))
		return false;
#endif
#if IS_ENABLED(CONFIG_INET_PSP)
	if (rcu_access_pointer(tw->psp_assoc))
		return false;
#endif
	return true;
}

/* The timewait socket's copy of the connection (tcp_time_wait, inet_twsk_alloc) as an entry. */
static void rtw_takeover_copy(struct net *net, struct inet_timewait_sock *tw,
			      struct rtw_glue_entry *e)
{
	struct tcp_timewait_sock *tcptw = tcp_twsk((struct sock *)tw);
	int stamp = READ_ONCE(tcptw->tw_ts_recent_stamp);
	u32 ts_recent = READ_ONCE(tcptw->tw_ts_recent);
	u8 wscale = tw->tw_rcv_wscale;

	e->snd_nxt = tcptw->tw_snd_nxt;
	e->rcv_wscale = wscale;
	/* Its ACKs' window: tw_rcv_wnd >> tw_rcv_wscale (tcp_v4_timewait_ack). */
	e->last_win = min_t(u32, tcptw->tw_rcv_wnd >> wscale, U16_MAX);
	/*
	 * tcp_timewait_state_process() applies PAWS only with a ts_recent_stamp, which a socket
	 * that negotiated timestamps always has; a ts_recent of 0 is no value (as in adopt.c).
	 */
	e->has_ts = stamp != 0;
	e->ts_recent_valid = e->has_ts && ts_recent;
	e->ts_recent = e->ts_recent_valid ? ts_recent : 0;
	e->ts_offset = tcptw->tw_ts_offset;
	e->substate = RTW_GLUE_FIN_WAIT2;

	e->conn.mark = tw->tw_mark;
	e->conn.priority = tw->tw_priority;
	e->conn.txhash = tw->tw_txhash;
	e->conn.bound_ifindex = tw->tw_bound_dev_if;
	e->l3index = l3mdev_master_ifindex_by_index(net, e->conn.bound_ifindex);
	/* tw_tclass is tw_tos: an AF_INET socket's TOS, an AF_INET6 one's traffic class. */
	e->conn.tos = tw->tw_tos;
	if (e->family == AF_INET6) {
		e->conn.flowlabel = tw->tw_flowlabel;
		/* A link-local conversation's scope is the device the socket was bound to. */
		if ((ipv6_addr_type((const struct in6_addr *)e->raddr) |
		     ipv6_addr_type((const struct in6_addr *)e->laddr)) & IPV6_ADDR_LINKLOCAL)
			e->ifindex = tw->tw_bound_dev_if;
	}
}

/*
 * The peer's FIN where tcp_timewait_state_process() would complete FIN_WAIT2 with it: with ACK,
 * at rcv_nxt, without data. Any other FIN is left to Linux's socket, which answers it (an ACK,
 * or a RST for data) and keeps its own timeout: a FIN only someone on the path can send moves
 * the connection. PAWS is the entry's to apply (F1, as Linux's socket would: the same ACK);
 * an old TSval then leaves the entry in FIN_WAIT_2 with its timeout started afresh (D47). Old
 * data with a FIN ending at rcv_nxt + 1, which Linux also completes with, stays Linux's.
 */
static bool rtw_takeover_fin_ok(struct sk_buff *skb, unsigned int thoff,
				const struct tcphdr *th, struct inet_timewait_sock *tw)
{
	return th->ack && skb->len == thoff + th->doff * 4 &&
	       ntohl(th->seq) == READ_ONCE(tcp_twsk((struct sock *)tw)->tw_rcv_nxt);
}

/*
 * 0: the entry is in the table, and in `*entry`, valid for the hook's RCU read-side section
 * (the segment has passed the IPsec policy and the checksum already). -EPERM: the IPsec input
 * policy refuses the segment (the caller drops it, as tcp_v4_rcv would: Linux's timewait
 * socket never sees it). Any other error: the segment is not taken over (another CPU may have
 * done it: the caller looks again).
 */
int rtw_takeover(struct rtw_glue_net *gn, struct sk_buff *skb, const struct nf_hook_state *state,
		 u8 family, unsigned int thoff, const struct tcphdr *th, const u8 *laddr,
		 const u8 *raddr, u16 lport, u16 rport, int mode, void **entry)
{
	struct net *net = state->net;
	struct inet_timewait_sock *tw;
	struct mem_cgroup *memcg, *old;
	struct rtw_glue_entry e = {
		.family = family,
		.lport = lport,
		.rport = rport,
	};
	int err;

	/*
	 * What tcp_v4_rcv/tcp_v6_rcv discard before any lookup: not addressed to this host. And
	 * a segment received from the emergency reserves (swap over the network): its softirq
	 * runs with PF_MEMALLOC, under which the memory cgroup would be charged past its limit.
	 */
	if (skb->pkt_type != PACKET_HOST || skb_pfmemalloc(skb))
		return -EINVAL;
	tw = rtw_takeover_lookup(net, skb, family, laddr, raddr, lport, rport);
	if (!tw)
		return -ENOENT;
	if (!rtw_takeover_fits(tw, mode) || !rtw_takeover_fin_ok(skb, thoff, th, tw)) {
		inet_twsk_put(tw);
		return -EINVAL;
	}
	/*
	 * What tcp_v4_rcv/tcp_v6_rcv check before a timewait socket sees a segment: the IPsec
	 * policy (a timewait socket has none of its own) and the checksum.
	 */
	if (!(family == AF_INET ? xfrm4_policy_check(NULL, XFRM_POLICY_IN, skb)
				: xfrm6_policy_check(NULL, XFRM_POLICY_IN, skb))) {
		inet_twsk_put(tw);
		return -EPERM;
	}
	if (!skb_csum_unnecessary(skb) &&
	    nf_checksum(skb, state->hook, thoff, IPPROTO_TCP, family)) {
		inet_twsk_put(tw);
		return -EINVAL;
	}
	memcpy(e.laddr, laddr, family == AF_INET ? 4 : 16);
	memcpy(e.raddr, raddr, family == AF_INET ? 4 : 16);
	rtw_takeover_copy(net, tw, &e);
	/* The rcv_nxt the FIN was checked against (rtw_takeover_fin_ok), not a second read. */
	e.rcv_nxt = ntohl(th->seq);
	/*
	 * A FIN another CPU's tcp_timewait_state_process() took meanwhile made the socket
	 * TIME_WAIT: then it is Linux's to finish.
	 */
	if (READ_ONCE(tw->tw_substate) != TCP_FIN_WAIT2) {
		inet_twsk_put(tw);
		return -EINVAL;
	}
	/*
	 * Charged to the memory cgroup of whoever set `takeover` (pernet.c), as an add is to
	 * the adder's (D34): in softirq there is no task to charge otherwise.
	 */
	rcu_read_lock();
	memcg = rcu_dereference(gn->takeover_memcg);
	old = set_active_memcg(memcg);
	err = rtw_rs_take_over(gn->rs, &e, entry);
	set_active_memcg(old);
	rcu_read_unlock();
	if (err) {
		/* The table is full, the peer is local under nolocaltimewait, or it lost a race. */
		inet_twsk_put(tw);
		return err;
	}
	/*
	 * The entry first, then the socket goes: from the insert on, the hook answers the tuple.
	 * A segment already past the hook on another CPU may still reach the socket and be
	 * answered by it too (a duplicate ACK), or, once the socket is gone, by the stack (a RST
	 * to a retransmission the entry would have ACKed), as in any handoff's last instant (D45).
	 * Bottom halves off, as nf_tproxy_twsk_deschedule_put() does: a segment NFQUEUE hands
	 * back runs the later hooks in process context, and the established hash's bucket lock
	 * is also taken in softirq.
	 */
	local_bh_disable();
	inet_twsk_deschedule_put(tw);
	local_bh_enable();
	return 0;
}

/*
 * `takeover` written, in the writer's context (pernet.c): 1 or 2 brings the hooks into the
 * netns and makes the writer's memory cgroup the one takeover entries are charged to, as an
 * add charges the adder's (D34); 0 lets that cgroup go once no hook can still be using it.
 */
int rtw_takeover_sysctl(struct rtw_glue_net *gn, int val)
{
	static DEFINE_MUTEX(lock);
	struct mem_cgroup *memcg = NULL, *old;

	if (val) {
		int err = rtw_glue_hooks_enable(gn);

		if (err)
			return err;
		memcg = get_mem_cgroup_from_mm(current->mm);
	}
	/* The value and its cgroup together: two writers never leave one without the other. */
	mutex_lock(&lock);
	old = rcu_replace_pointer(gn->takeover_memcg, memcg, lockdep_is_held(&lock));
	WRITE_ONCE(gn->sysctl[RTW_GLUE_SYSCTL_TAKEOVER], val);
	mutex_unlock(&lock);
	if (old) {
		synchronize_rcu();
		mem_cgroup_put(old);
	}
	return 0;
}

/* Netns exit, after the hooks' grace period: no hook can be reading the cgroup any more. */
void rtw_takeover_net_exit(struct rtw_glue_net *gn)
{
	mem_cgroup_put(rcu_dereference_protected(gn->takeover_memcg, true));
	RCU_INIT_POINTER(gn->takeover_memcg, NULL);
}
