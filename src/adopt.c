// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's adopt operation: a live connection in FIN_WAIT2, found by its tuple in the
 * caller's netns, becomes a fin-wait2 entry holding exactly what Linux's tcp_time_wait() would
 * copy from it (docs/decisions.md D45). Read in the kernel, under the socket lock, because
 * userspace cannot read ts_recent at all (D43) and pays a socket call per field for the rest.
 * The caller then closes the socket in TCP_REPAIR mode, so Linux sends nothing for it; asked
 * to (`repair`), the module puts it in that mode itself, and a server, naming its sockets by fd,
 * pays one close() a connection for what was a dozen socket calls (handoff_vs_close).
 */
#include <linux/tcp.h>
#include <net/inet6_hashtables.h>
#include <net/inet_hashtables.h>
#include <net/ipv6.h>
#include <net/l3mdev.h>
#include <net/tcp.h>

#include "glue.h"
#include "glue_internal.h"

/*
 * The caller's fd `e->fd` as a held TCP socket of this netns, and its tuple in `e`: the tuple
 * as tcp_v4_rcv/tcp_v6_rcv would look it up (an IPv4-mapped IPv6 socket's is IPv4). With
 * `keep`, also the socket's file, referenced (sockfd_put() drops it).
 */
struct sock *rtw_adopt_fd(struct net *net, struct rtw_glue_entry *e, int *err,
			  struct socket **keep)
{
	struct socket *sock = sockfd_lookup(e->fd, err);
	struct sock *sk;

	if (!sock) {
		/* -EBADF, or -ENOTSOCK for an fd that is not a socket. */
		return NULL;
	}
	sk = sock->sk;
	if (!sk || sk->sk_type != SOCK_STREAM || sk->sk_protocol != IPPROTO_TCP ||
	    (sk->sk_family != AF_INET && sk->sk_family != AF_INET6)) {
		sockfd_put(sock);
		*err = -ENOTSOCK;
		return NULL;
	}
	if (!net_eq(sock_net(sk), net)) {
		sockfd_put(sock);
		*err = -ENOENT;
		return NULL;
	}
	sock_hold(sk);
	/* Kept: the reference on the file keeps the socket open after the caller's close(). */
	if (keep)
		*keep = sock;
	else
		sockfd_put(sock);

	lock_sock(sk);
	if (sk->sk_family == AF_INET ||
	    ipv6_addr_v4mapped(&sk->sk_v6_daddr)) {
		e->family = AF_INET;
		memcpy(e->laddr, &inet_sk(sk)->inet_rcv_saddr, 4);
		memcpy(e->raddr, &inet_sk(sk)->inet_daddr, 4);
	} else {
#if IS_ENABLED(CONFIG_IPV6)
		e->family = AF_INET6;
		memcpy(e->laddr, &sk->sk_v6_rcv_saddr, 16);
		memcpy(e->raddr, &sk->sk_v6_daddr, 16);
		if (ipv6_addr_type(&sk->sk_v6_daddr) & IPV6_ADDR_LINKLOCAL)
			e->ifindex = sk->sk_bound_dev_if;
#endif
	}
	/*
	 * inet_sport, not inet_num: a socket the peer's FIN closed first (its TIME_WAIT took the
	 * tuple) gave its port back (inet_num 0), and the caller still wants to hear which it was.
	 */
	e->lport = ntohs(inet_sk(sk)->inet_sport);
	e->rport = ntohs(inet_sk(sk)->inet_dport);
	release_sock(sk);
	return sk;
}

/*
 * The established socket (or TIME_WAIT / request socket) for a tuple, held, found as
 * tcp_v4_rcv/tcp_v6_rcv find it, by the device and L3 master it is matched against (`dif`,
 * `sdif`): adopt's lookup and takeover.c's. An IPv4 tuple also finds an IPv6 socket talking to
 * an IPv4-mapped peer, and, the established hash comparing no family, a native IPv6 one with
 * the same address pair: the caller tells them apart.
 */
struct sock *rtw_lookup_established(struct net *net, u8 family, const u8 *laddr,
				    const u8 *raddr, u16 lport, u16 rport, int dif, int sdif)
{
	struct sock *sk = NULL;

	rcu_read_lock();
	if (family == AF_INET) {
		__be32 l, r;

		memcpy(&l, laddr, 4);
		memcpy(&r, raddr, 4);
		sk = __inet_lookup_established(net, r, htons(rport), l, lport, dif, sdif);
	} else {
#if IS_ENABLED(CONFIG_IPV6)
		sk = __inet6_lookup_established(net, (const struct in6_addr *)raddr, htons(rport),
						(const struct in6_addr *)laddr, lport, dif, sdif);
#endif
	}
	rcu_read_unlock();
	return sk;
}

/*
 * The socket for the entry's tuple, held. A socket bound to a device is found only by that
 * device (inet_sk_bound_dev_eq): the request names it as bound-ifindex, or as ifindex for a
 * link-local scope.
 */
static struct sock *rtw_adopt_lookup(struct net *net, const struct rtw_glue_entry *e)
{
	/*
	 * As sdif too: an unbound socket of the same tuple then matches only under
	 * tcp_l3mdev_accept (inet_bound_dev_eq), instead of hiding the bound one.
	 */
	return rtw_lookup_established(net, e->family, e->laddr, e->raddr, e->lport, e->rport,
				      e->ifindex ?: e->conn.bound_ifindex, e->conn.bound_ifindex);
}

/*
 * Why the socket cannot be adopted as it is now (0: it can), or with `before_fin`, why it cannot
 * be waited for (handoff.c: it may still be established, our FIN unsent or unacknowledged).
 * Under the socket lock.
 */
int rtw_adopt_check(struct sock *sk, bool before_fin)
{
	struct tcp_sock *tp = tcp_sk(sk);

	switch (sk->sk_state) {
	case TCP_FIN_WAIT2:
		break;
	case TCP_ESTABLISHED:
		if (!before_fin)
			return -ENOTCONN;
		break;
	case TCP_FIN_WAIT1:
		/* Our FIN is not acknowledged yet: an entry could not retransmit it. */
		if (!before_fin)
			return -EINPROGRESS;
		break;
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
	case TCP_CLOSING:
	case TCP_CLOSE:
		/* The peer's FIN came first (CLOSE: it made a TIME_WAIT, which now holds the tuple). */
		return -EALREADY;
	default:
		return -ENOTCONN;
	}
	/* Orphaned: close() already ran and Linux's own FIN_WAIT2 timer owns it. */
	if (sock_flag(sk, SOCK_DEAD))
		return -ENOTCONN;
	/* Restored or checkpointed by someone else (CRIU): its state is theirs. */
	if (tp->repair)
		return -EOPNOTSUPP;
	/* An entry cannot sign its replies (RFC 2385, RFC 5925), nor count microseconds. */
#ifdef CONFIG_TCP_MD5SIG
	if (rcu_access_pointer(tp->md5sig_info))
		return -EOPNOTSUPP;
#endif
#ifdef CONFIG_TCP_AO
	if (rcu_access_pointer(tp->ao_info))
		return -EOPNOTSUPP;
#endif
	if (tp->tcp_usec_ts)
		return -EOPNOTSUPP;
	/*
	 * Not a plain TCP socket: an MPTCP subflow or a ULP (kTLS, espintcp) holds state an entry
	 * cannot keep; sockmap or another kernel user may hold data rcv_nxt does not show; a
	 * transparent socket's replies need a non-local source (tw_transparent, not kept: D45).
	 */
	if (sk_is_mptcp(sk) || inet_csk(sk)->icsk_ulp_ops || rcu_access_pointer(sk->sk_user_data) ||
	    inet_test_bit(TRANSPARENT, sk))
		return -EOPNOTSUPP;
	/* RFC 2525 §2.17: close() would reset; an entry would ACK data nobody read. */
	if (READ_ONCE(tp->rcv_nxt) != READ_ONCE(tp->copied_seq))
		return -ENOTEMPTY;
	return 0;
}

/* tcp_time_wait()'s copy of the socket (tcp_minisocks.c, inet_twsk_alloc), as an entry. */
static void rtw_adopt_copy(struct sock *sk, struct rtw_glue_entry *e)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u8 wscale = tp->rx_opt.rcv_wscale;

	e->snd_nxt = tp->snd_nxt;
	e->rcv_nxt = tp->rcv_nxt;
	e->rcv_wscale = wscale;
	/* Linux's TIME_WAIT ACK: tw_rcv_wnd >> tw_rcv_wscale. */
	e->last_win = min_t(u32, tcp_receive_window(tp) >> wscale, U16_MAX);
	e->has_ts = tp->rx_opt.tstamp_ok;
	/*
	 * ts_recent_stamp is set whenever ts_recent was learned (tcp_store_ts_recent); a
	 * ts_recent of 0 is no value to Linux's PAWS (tcp_paws_check), so none to ours either.
	 */
	e->ts_recent_valid = e->has_ts && tp->rx_opt.ts_recent_stamp && tp->rx_opt.ts_recent;
	e->ts_recent = e->ts_recent_valid ? tp->rx_opt.ts_recent : 0;
	/* The module's clock is tcp_clock_ms(), the clock tsoffset is added to. */
	e->ts_offset = tp->tsoffset;
	e->substate = RTW_GLUE_FIN_WAIT2;

	e->conn.mark = READ_ONCE(sk->sk_mark);
	e->conn.priority = READ_ONCE(sk->sk_priority);
	e->conn.txhash = READ_ONCE(sk->sk_txhash);
	e->conn.bound_ifindex = READ_ONCE(sk->sk_bound_dev_if);
	/* The entry is keyed by the socket's VRF, as its TIME_WAIT would be found only there. */
	e->l3index = l3mdev_master_ifindex_by_index(sock_net(sk), e->conn.bound_ifindex);
	/*
	 * An AF_INET6 socket's TIME_WAIT keeps its traffic class, not its IP_TOS (tcp_time_wait:
	 * tw_tclass is tw_tos), and tcp_v4_timewait_ack sends an IPv4-mapped connection's ACKs
	 * with it: so do the entry's, though the connection's own IPv4 segments carried inet->tos.
	 */
	e->conn.tos = READ_ONCE(inet_sk(sk)->tos);
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6)
		e->conn.tos = READ_ONCE(inet6_sk(sk)->tclass);
	if (e->family == AF_INET6) {
		const struct ipv6_pinfo *np = inet6_sk(sk);

		e->conn.flowlabel = be32_to_cpu(np->flow_label & IPV6_FLOWLABEL_MASK);
		/* A link-local conversation's scope is the device the socket is bound to. */
		if (!e->ifindex && ipv6_addr_type((const struct in6_addr *)e->laddr) &
				   IPV6_ADDR_LINKLOCAL)
			e->ifindex = sk->sk_bound_dev_if;
	}
#endif
}

/*
 * Adopt `sk` (held by the caller) as `e` (its tuple filled in): 0 and the entry is in the table
 * (and with `repair` the socket in repair mode), or a negative errno and nothing changed.
 *
 * The entry goes in under the socket lock, so the socket processes no segment between the
 * check and the insert; from the insert on, the hook sees the peer's segments first. Segments
 * the socket queued meanwhile (its backlog, run by release_sock) are looked at after: a FIN or
 * data among them takes the entry back. What is left is a segment already past the hook on
 * another CPU and not yet at the socket: the caller checks the state once more after putting
 * the socket in repair mode (twctl's race rule), or, with `repair`, the module puts it in
 * repair mode right after its own last check, under the socket lock.
 */
int rtw_adopt_sock(struct rtw_glue_net *gn, struct sock *sk, struct rtw_glue_entry *e,
		   bool repair)
{
	int err;

	lock_sock(sk);
	err = rtw_adopt_check(sk, false);
	if (!err) {
		rtw_adopt_copy(sk, e);
		mutex_lock(&gn->nl_lock);
		err = rtw_rs_add(gn->rs, e, false);
		mutex_unlock(&gn->nl_lock);
	}
	release_sock(sk);
	if (err)
		return err;

	lock_sock(sk);
	err = rtw_adopt_check(sk, false);
	/*
	 * Asked to: the socket goes into repair mode as setsockopt(TCP_REPAIR) puts it (the caller
	 * has CAP_NET_ADMIN in the netns, as tcp_can_repair_sock asks), after the last check, so
	 * the caller's close() sends nothing and leaves no TIME_WAIT of Linux's.
	 */
	if (!err && repair) {
		tcp_sk(sk)->repair = 1;
		sk->sk_reuse = SK_FORCE_REUSE;
		WRITE_ONCE(tcp_sk(sk)->repair_queue, TCP_NO_QUEUE);
	}
	release_sock(sk);
	if (err) {
		mutex_lock(&gn->nl_lock);
		rtw_rs_del(gn->rs, e);
		mutex_unlock(&gn->nl_lock);
	}
	return err;
}

/*
 * Adopt the connection with `e`'s tuple (or fd): 0 and the entry is in the table, `e` filled
 * in; or a negative errno (spec/rust_timewait.yaml, `result`) and nothing changed.
 */
int rtw_adopt(struct rtw_glue_net *gn, struct rtw_glue_entry *e, struct sock **in_repair)
{
	int want_dev = e->conn.bound_ifindex;
	struct sock *sk;
	int err = -ENOENT;

	sk = e->by_fd ? rtw_adopt_fd(gn->net, e, &err, NULL) : rtw_adopt_lookup(gn->net, e);
	if (!sk)
		return err;
	/*
	 * Asked for the socket bound to a device: an unbound one of the same tuple (in another
	 * VRF, which tcp_l3mdev_accept lets the lookup match) is another application's connection.
	 */
	if (want_dev && READ_ONCE(sk->sk_bound_dev_if) != want_dev) {
		sock_gen_put(sk);
		return -ENOENT;
	}
	if (!sk_fullsock(sk)) {
		/* A TIME_WAIT socket: the peer's FIN came first. A request socket: not ours yet. */
		err = sk->sk_state == TCP_TIME_WAIT ? -EALREADY : -ENOTCONN;
		sock_gen_put(sk);
		return err;
	}
	/*
	 * Not TCP, or an IPv4 request that matched a native IPv6 socket by its address pair (the
	 * ehash compares no family): not the connection asked for.
	 */
	if (sk->sk_protocol != IPPROTO_TCP ||
	    (e->family == AF_INET && sk->sk_family == AF_INET6 &&
	     !ipv6_addr_v4mapped(&sk->sk_v6_daddr))) {
		sock_put(sk);
		return -ENOENT;
	}

	err = rtw_adopt_sock(gn, sk, e, e->repair);
	if (!err && e->repair) {
		/* Held for the caller until its answer is out: rtw_adopt_unrepair() if it is not. */
		*in_repair = sk;
		return 0;
	}
	sock_put(sk);
	return err;
}

/*
 * Take an adoption with `repair` back before its entry goes (the caller never heard of it and
 * will close the socket normally): out of repair mode as TCP_REPAIR_OFF_NO_WP leaves it, so
 * the socket is never in repair mode without an entry. Drops the reference rtw_adopt() kept.
 */
void rtw_adopt_unrepair(struct sock *sk)
{
	lock_sock(sk);
	if (tcp_sk(sk)->repair) {
		tcp_sk(sk)->repair = 0;
		sk->sk_reuse = SK_NO_REUSE;
	}
	release_sock(sk);
	sock_put(sk);
}
