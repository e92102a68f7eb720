// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's takeover (docs/decisions.md D47). With net.rust_timewait.takeover set, a
 * connection the server ended with a plain close() becomes an entry when the peer's FIN comes,
 * the moment Linux would turn its FIN_WAIT2 timewait socket into a TIME_WAIT one: the seed's
 * tcp_twstart() compresses every connection that enters TIME_WAIT, and so does this. The entry
 * holds what that socket holds (tcp_time_wait()'s copy of the connection); the socket goes as
 * a SYN that reuses its tuple makes it go (inet_twsk_deschedule_put, tcp_v4_rcv's TCP_TW_SYN).
 * The server's close() is the whole handoff: it pays nothing, waits for nothing, and the FIN
 * pays one established-hash lookup.
 */
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
 * Linux's timewait socket for the segment's tuple, held, found as tcp_v4_rcv/tcp_v6_rcv find
 * it (the device and L3 master it came in through); NULL for anything else.
 */
static struct inet_timewait_sock *rtw_takeover_lookup(struct net *net, struct sk_buff *skb,
						      u8 family, const u8 *laddr, const u8 *raddr,
						      u16 lport, u16 rport)
{
	struct sock *sk;

	if (family == AF_INET) {
		__be32 l, r;

		memcpy(&l, laddr, 4);
		memcpy(&r, raddr, 4);
		sk = __inet_lookup_established(net, r, htons(rport), l, lport, inet_iif(skb),
					       inet_sdif(skb));
	} else {
#if IS_ENABLED(CONFIG_IPV6)
		sk = __inet6_lookup_established(net, (const struct in6_addr *)raddr, htons(rport),
						(const struct in6_addr *)laddr, lport,
						inet6_iif(skb), inet6_sdif(skb));
#else
		sk = NULL;
#endif
	}
	if (!sk)
		return NULL;
	/* A full socket (not closed, or closed with our FIN unacknowledged) or a request one. */
	if (sk->sk_state != TCP_TIME_WAIT) {
		sock_gen_put(sk);
		return NULL;
	}
	return inet_twsk(sk);
}

/*
 * Whether an entry can answer for the timewait socket as it would: only in FIN_WAIT2 (in
 * TIME_WAIT the peer's FIN already came, and nothing marks the moment to take it), and none of
 * what an entry does not keep (D45's list for sockets): signing keys (RFC 2385, RFC 5925),
 * microsecond timestamps, a transparent source, a transmit delay, a PSP association.
 */
static bool rtw_takeover_fits(struct inet_timewait_sock *tw)
{
	struct tcp_timewait_sock *tcptw = tcp_twsk((struct sock *)tw);

	if (READ_ONCE(tw->tw_substate) != TCP_FIN_WAIT2 || tw->tw_usec_ts ||
	    tw->tw_transparent || tcptw->tw_tx_delay)
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
	e->rcv_nxt = READ_ONCE(tcptw->tw_rcv_nxt);
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
	/* tw_tclass is tw_tos: the IPv4 TOS, or the traffic class of an IPv6 connection. */
	e->conn.tos = tw->tw_tos;
	if (e->family == AF_INET6) {
		e->conn.flowlabel = tw->tw_flowlabel;
		/* A link-local conversation's scope is the device the socket was bound to. */
		if (ipv6_addr_type((const struct in6_addr *)e->laddr) & IPV6_ADDR_LINKLOCAL)
			e->ifindex = tw->tw_bound_dev_if;
	}
}

int rtw_takeover(struct rtw_glue_net *gn, struct sk_buff *skb, const struct nf_hook_state *state,
		 u8 family, unsigned int thoff, const u8 *laddr, const u8 *raddr, u16 lport,
		 u16 rport)
{
	struct net *net = state->net;
	struct inet_timewait_sock *tw;
	struct rtw_glue_entry e = {
		.family = family,
		.lport = lport,
		.rport = rport,
	};
	int err;

	tw = rtw_takeover_lookup(net, skb, family, laddr, raddr, lport, rport);
	if (!tw)
		return -ENOENT;
	/*
	 * What tcp_v4_rcv/tcp_v6_rcv check before a timewait socket sees a segment: the IPsec
	 * policy (a timewait socket has none of its own) and the checksum. A FIN either refuses
	 * takes nothing over; the stack then drops it as it always would.
	 */
	if (!rtw_takeover_fits(tw) ||
	    !(family == AF_INET ? xfrm4_policy_check(NULL, XFRM_POLICY_IN, skb)
				: xfrm6_policy_check(NULL, XFRM_POLICY_IN, skb)) ||
	    (!skb_csum_unnecessary(skb) &&
	     nf_checksum(skb, state->hook, thoff, IPPROTO_TCP, family))) {
		inet_twsk_put(tw);
		return -EINVAL;
	}
	memcpy(e.laddr, laddr, family == AF_INET ? 4 : 16);
	memcpy(e.raddr, raddr, family == AF_INET ? 4 : 16);
	rtw_takeover_copy(net, tw, &e);
	/*
	 * The entry first, then the socket goes: from the insert on, the hook answers the tuple.
	 * A segment already past the hook on another CPU may still reach the socket and be
	 * answered by it too (a duplicate ACK at worst), as with any handoff (D45).
	 */
	err = rtw_rs_take_over(gn->rs, &e);
	if (err) {
		/* The table is full, the peer is local under nolocaltimewait, or it lost a race. */
		inet_twsk_put(tw);
		return err;
	}
	inet_twsk_deschedule_put(tw);
	return 0;
}
