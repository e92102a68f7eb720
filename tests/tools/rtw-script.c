// SPDX-License-Identifier: GPL-2.0
/*
 * rtw-script: a scripted TCP peer for the conformance runner (tests/guest/75-conformance.sh).
 * It plays the far end of one connection from a netns without addresses, with AF_PACKET: it
 * answers the host's SYN itself, follows both initial sequence numbers, sends the segments a
 * script describes and prints every segment that comes back in one canonical line, relative to
 * the ISNs and to its own timestamp clock, so that two runs of the same script (one against
 * Linux's own FIN_WAIT2/TIME_WAIT, one against rust_timewait) can be compared line by line.
 *
 * Peer:     rtw-script -i IF -m HOSTMAC -s PEER -d HOST -p PORT [-g GOFILE] [-o PORTFILE]
 *                      [-T TOLERANCE_MS] < SCRIPT
 * App:      rtw-script -c ADDR:PORT [-t TEXT] [-w MS] [-H] [-Q TOS] [-C TCLASS] [-F LABEL]
 *                      [-- COMMAND...]
 *           connect (SO_REUSEADDR, so a listener can take the port later), send TEXT, wait MS,
 *           then close(); with -H first shutdown(SHUT_WR) and wait for FIN_WAIT2. With a
 *           COMMAND, run it instead of closing, with the socket as fd 3 (`twctl handoff --fd 3
 *           --shutdown`). Prints "connected local=ADDR:PORT" and "closed" or "exec COMMAND",
 *           each behind the time (CLOCK_MONOTONIC, ms). ADDR may be [IPv6] (an IPv4-mapped one
 *           for a dual-stack socket). -Q: set IP_TOS (and IPV6_TCLASS on an AF_INET6 socket)
 *           to TOS before connect(); Linux keeps the ECN bits of a TCP socket's TOS to itself
 *           (ip_sockglue.c __ip_sock_set_tos, ipv6_sockglue.c IPV6_TCLASS), so only the DSCP
 *           bits take. -C: an AF_INET6 socket's IPV6_TCLASS is TCLASS rather than TOS (an
 *           IPv4-mapped connection sends with IP_TOS, its TIME_WAIT with the traffic class).
 *           -F: an AF_INET6 socket sends with the explicit flow label LABEL
 *           (IPV6_FLOWLABEL_MGR to lease it, shared with anyone: labels are leased per netns
 *           and both variants of a case use the same; IPV6_FLOWINFO_SEND, sin6_flowinfo).
 * Clock:    rtw-script -M   prints CLOCK_MONOTONIC in ms.
 * Listener: rtw-script -l ADDR:PORT [-w MS]
 *           listen (SO_REUSEADDR) and print "accepted" if a connection completes within MS.
 *
 * The script, one step a line ('#' starts a comment):
 *   isn N | tsbase N | win N     our ISN, the start of our TSval clock, our window field
 *   accept [opts=LIST] [timeout=MS]
 *                                wait for the host's SYN to PORT, answer SYN-ACK. LIST is a
 *                                comma list of mss[=N], sack, ts, ws=N (our SYN options; also
 *                                used on a later SYN we send), ecn (our SYN-ACK carries ECE:
 *                                classic ECN, RFC 3168, if the host's SYN asked for it), accecn
 *                                (our SYN-ACK carries CWR alone: Accurate ECN, the answer to a
 *                                not-ECT SYN, RFC 9768 Table 2). Timestamps are in use when both
 *                                SYNs carry them; the host's window scale when both carry one.
 *   wait FLAGS[,FLAGS...] [timeout=MS] [ack]
 *                                consume what arrives until a segment has all flags of one set;
 *                                with ack, acknowledge each data segment before that one at once
 *   send FLAGS [seq=E] [ack=E] [win=N] [len=N] [tsval=E] [tsraw=N] [tsecr=echo|0] [nots]
 *        [l2=bcast|mcast] [csum=bad] [tos=N]
 *                                FLAGS from "FSRPAUEC" ("." for none). tos: the IPv4 TOS byte or
 *                                the IPv6 traffic class of the segment (default 0). seq is relative to our ISN
 *                                (default snd), ack to the host's ISN (default rcv), tsval to
 *                                tsbase (default tsv, which then advances by 10; tsraw: the TSval
 *                                as is); tsecr echoes the host's last TSval (0 on a SYN without
 *                                ACK) unless 0 is asked for. E: terms joined by + and -, each a
 *                                number or snd (our next sequence number: it follows what we sent
 *                                without a gap), rcv (the host's next), tsv (our clock), hwnd (the
 *                                host's last window, in bytes).
 *   expect [MS]                  print what arrives within MS ms (default 300), or "< none"
 *   seen FLAGS                   print whether a segment with these flags came before `show`
 *   sleep MS | tick N            wait (what arrives meanwhile is printed); advance our clock
 *   sync [NAME]                  wait until GOFILE (or GOFILE.NAME) exists (the runner's go-ahead)
 *   show                         from here on, print sends and replies as compared lines
 * Compared lines start with '>' (sent), '<' (received) or '=' (seen); other output starts
 * with '#' (before `show`: with the time in ms). A step that fails prints "error: ..." and exits 1.
 * A received segment:  < FLAGS seq=S ack=A win=W len=L [opts=...] [ecr=E tsclk=ok|off(D)]
 *   S relative to the host's ISN (raw0: an RST+ACK's seq of 0, answering a segment without
 *   ACK; a SYN-ACK of a new connection: "rcv+65537" when its ISN is the old connection's
 *   snd_nxt + 65537, Linux's TIME_WAIT rule, else "fresh"); A relative to
 *   our ISN; E relative to tsbase (0 when it is 0); tsclk says whether TSval is on the host's
 *   connection clock (at most TOLERANCE_MS, default 5, ahead of it, and at most RTW_LATE_MS
 *   behind: a reply delivered late on a loaded machine looks behind by its delay, while a
 *   wrong clock is off by far more) as measured at the host's SYN, using the
 *   receive timestamps of the packets. Every received line ends with the IP header's fields,
 *   one word (grep -o ' ip=[^ ]*'):
 *     IPv4  ip=tos:0xTT,ttl:N,df:0|1,len:N,opt:N,id:N  TOS byte (DSCP = TT >> 2, ECN = TT & 3), TTL,
 *                                                   DF, total length, bytes of IP options, ID
 *     IPv6  ip=tc:0xTT,fl:L,hl:N,plen:N,nh:N        traffic class (the same split), flow label,
 *                                                   hop limit, payload length, next header
 *   L is the raw label (fl:0x12345) before `show`; from `show` on, "conn" when it equals the label
 *   of the host's last segment before `show` (the connection's own: Linux derives it from the
 *   socket's txhash, which is random per connection, or it is the socket's explicit label), "0",
 *   or "other". Next header is always 6: a reply behind an extension header is not read (it
 *   would show as missing). The IPv4 ID of Linux's TIME_WAIT replies is 0: they go out from its
 *   per-CPU control socket, which has no peer address and sets DF (include/net/ip.h
 *   ip_select_ident_segs); a full socket's would carry its counter, which starts at random (RFC
 *   6864 §4.1 gives the ID of an atomic datagram no meaning), but no case compares one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtw-wire.h"

/* How far behind the connection's clock a reply's TSval may look: its delivery delay. */
#define RTW_LATE_MS 30

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10
#define F_URG 0x20
#define F_ECE 0x40
#define F_CWR 0x80
static const char flag_names[] = "FSRPAUEC";

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("error: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	exit(1);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Sequence space: `a` after `b` (docs/behaviour.md's notation). */
static int after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

/* ---- app and listener modes (the host side) ---- */

/* "A.B.C.D:PORT" or "[V6]:PORT" into a sockaddr; its length, 0 if bad. */
static socklen_t parse_endpoint(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(s, ':');

	memset(ss, 0, sizeof(*ss));
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return 0;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	unsigned port = (unsigned)strtoul(colon + 1, NULL, 10);
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (void *)ss;
		size_t l = strlen(host);

		if (l < 2 || host[l - 1] != ']')
			return 0;
		host[l - 1] = 0;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? sizeof(*s6) : 0;
	}
	struct sockaddr_in *s4 = (void *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? sizeof(*s4) : 0;
}

static void print_endpoint(const char *what, const struct sockaddr_storage *ss)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		printf("%s=[%s]:%u\n", what, a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		printf("%s=%s:%u\n", what, a, ntohs(s4->sin_port));
	}
}

#ifndef IPV6_FLOWLABEL_MGR
#define IPV6_FLOWLABEL_MGR 32
#endif
#ifndef IPV6_FLOWINFO_SEND
#define IPV6_FLOWINFO_SEND 33
#endif
/* struct in6_flowlabel_req of <linux/in6.h>, which clashes with <netinet/in.h>. */
struct flowlabel_req {
	struct in6_addr dst;
	uint32_t label;                 /* network order */
	uint8_t action, share;
	uint16_t flags, expires, linger;
	uint32_t pad;
};

static int app(const char *dst, const char *text, long wait, int half_close, char **exec_argv,
	       int tos, int tclass, long label)
{
	struct sockaddr_storage da, la;
	socklen_t len = parse_endpoint(dst, &da), ll = sizeof(la);
	int one = 1;

	if (!len)
		fail("bad endpoint %s", dst);
	int fd = socket(da.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* An AF_INET6 socket takes IP_TOS for what it sends over IPv4 (IPv4-mapped). */
	if (tos >= 0 && setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) < 0)
		fail("IP_TOS: %s", strerror(errno));
	if (tclass < 0)
		tclass = tos;
	if (tclass >= 0 && da.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof(tclass)) < 0)
		fail("IPV6_TCLASS: %s", strerror(errno));
	if (label >= 0) {
		struct sockaddr_in6 *s6 = (void *)&da;
		struct flowlabel_req fr = { .dst = s6->sin6_addr, .label = htonl((uint32_t)label),
					    .action = 0 /* IPV6_FL_A_GET */,
					    .share = 255 /* IPV6_FL_S_ANY */,
					    .flags = 1 /* IPV6_FL_F_CREATE */ };

		if (da.ss_family != AF_INET6)
			fail("-F needs an IPv6 destination");
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, &fr, sizeof(fr)) < 0)
			fail("IPV6_FLOWLABEL_MGR: %s", strerror(errno));
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWINFO_SEND, &one, sizeof(one)) < 0)
			fail("IPV6_FLOWINFO_SEND: %s", strerror(errno));
		s6->sin6_flowinfo = htonl((uint32_t)label & 0xfffff);
	}
	if (connect(fd, (struct sockaddr *)&da, len) < 0)
		fail("connect: %s", strerror(errno));
	getsockname(fd, (struct sockaddr *)&la, &ll);
	printf("%lld ", mono_ms());
	print_endpoint("connected local", &la);
	if (text && *text && write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail("write: %s", strerror(errno));
	if (wait > 0)
		sleep_ms(wait);
	if (exec_argv && exec_argv[0]) {
		/* Hand the connected socket on as fd 3 (e.g. to `twctl handoff --fd 3 --shutdown`). */
		if (dup2(fd, 3) < 0)
			fail("dup2: %s", strerror(errno));
		if (fd != 3)
			close(fd);
		printf("%lld exec %s\n", mono_ms(), exec_argv[0]);
		fflush(stdout);
		execvp(exec_argv[0], exec_argv);
		fail("exec %s: %s", exec_argv[0], strerror(errno));
	}
	if (half_close) {
		shutdown(fd, SHUT_WR);
		for (int i = 0; i < 500; i++) {
			struct tcp_info ti;
			socklen_t tl = sizeof(ti);

			if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
			    ti.tcpi_state != TCP_ESTABLISHED && ti.tcpi_state != TCP_FIN_WAIT1)
				break;
			sleep_ms(10);
		}
	}
	close(fd);
	printf("%lld closed\n", mono_ms());
	return 0;
}

static int listener(const char *addr, long wait)
{
	struct sockaddr_storage sa;
	socklen_t len = parse_endpoint(addr, &sa);
	int one = 1;

	if (!len)
		fail("bad endpoint %s", addr);
	int fd = socket(sa.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0)
		fail("bind/listen %s: %s", addr, strerror(errno));
	printf("listening\n");
	fflush(stdout);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, (int)(wait > 0 ? wait : 10000)) == 1 && accept(fd, NULL, NULL) >= 0)
		printf("accepted\n");
	else
		printf("no connection\n");
	return 0;
}

/* ---- the scripted peer ---- */

struct peer {
	int fd, v6, alen, ifindex;
	uint8_t saddr[16], daddr[16], hmac[6];
	uint16_t sport, dport;          /* ours; the host's (0 until its SYN) */
	uint32_t isn, irs, tsbase;      /* our ISN, the host's ISN, our TSval clock's origin */
	uint32_t snd, rcv, tsv;         /* relative: our next seq, the host's next seq, our clock */
	uint32_t host_tsval;            /* the host's last TSval */
	int have_host_ts, accepted;
	uint16_t win;                   /* our window field */
	/* Our SYN options. */
	int o_mss, o_sack, o_ts, o_ws, o_ecn;  /* o_ecn: 1 classic ECN, 2 AccECN */
	/* Negotiated. */
	int use_ts, host_ws;
	uint32_t hwnd;                  /* the host's last window, bytes */
	/* The host's connection clock: TSval - receive time, the largest seen before `show`. */
	int have_clk;
	int32_t clk;
	long tol;
	int show;
	unsigned seen_flags[16];        /* flag sets seen before `show` */
	int nseen;
	const char *gofile, *portfile;
	long long rt_minus_mono_ns;     /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	uint32_t conn_flow;             /* the flow label of the host's last segment before `show` */
	int have_conn_flow;
};

struct seg {
	uint32_t seq, ack, tsval, tsecr;
	uint16_t win, len;
	uint8_t flags;
	int has_ts, mss, ws, sack;
	/* The options as text: at most 40 option bytes, the longest text a byte ",nop" (4 chars). */
	char opts[4 * 40 + 1];
	long long rx_ms;                /* monotonic, from the packet's receive timestamp */
	/* The IP header: v4 TOS or v6 traffic class, TTL or hop limit, DF, the length field
	 * (v4 total, v6 payload), v4 option bytes, v4 ID, v6 flow label and next header. */
	uint8_t tos, ttl, df, nh;
	uint16_t iplen, ipid;
	unsigned ipopt;
	uint32_t flow;
};

static void out(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	/* Set-up lines carry the time (CLOCK_MONOTONIC, ms), for diagnosis. */
	if (!p->show)
		printf("# %lld ", mono_ms());
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void flags_str(uint8_t f, char *s)
{
	int k = 0;

	for (int b = 0; b < 8; b++)
		if (f & (1 << b))
			s[k++] = flag_names[b];
	if (!k)
		s[k++] = '.';
	s[k] = 0;
}

static uint8_t parse_flags(const char *s)
{
	uint8_t f = 0;

	for (; *s && *s != ' '; s++) {
		const char *c = strchr(flag_names, *s);

		if (*s == '.')
			continue;
		if (!c)
			fail("bad flag %c", *s);
		f |= 1 << (c - flag_names);
	}
	return f;
}

/* Read one segment of our connection, if one is queued or arrives within `ms`. 1: got one. */
static int recv_seg(struct peer *p, struct seg *s, long ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		uint8_t r[2048];
		char cbuf[256];
		struct sockaddr_ll from;
		struct iovec iov = { .iov_base = r, .iov_len = sizeof(r) };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				     .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		long long t0 = mono_ms();

		if (poll(&pfd, 1, (int)(ms < 0 ? 0 : ms)) <= 0)
			return 0;
		ms -= mono_ms() - t0;
		ssize_t n = recvmsg(p->fd, &mh, 0);
		if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		size_t rh = p->v6 ? 40 : (size_t)(r[0] & 0xf) * 4;
		if (rh < 20 || (size_t)n < rh + 20 || (p->v6 ? r[6] : r[9]) != 6)
			continue;
		/* The length field must cover the headers and stay within what was received. */
		size_t iplen = p->v6 ? 40 + (size_t)get16(r + 4) : get16(r + 2);
		if (iplen < rh + 20 || iplen > (size_t)n)
			continue;
		const uint8_t *rs = p->v6 ? r + 8 : r + 12, *rd = p->v6 ? r + 24 : r + 16, *t = r + rh;
		if (memcmp(rs, p->daddr, p->alen) || memcmp(rd, p->saddr, p->alen) || get16(t + 2) != p->sport)
			continue;
		if (p->dport && get16(t) != p->dport)
			continue;
		size_t seglen = iplen - rh;
		unsigned doff = (t[12] >> 4) * 4u;
		if (rh + seglen > (size_t)n || doff < 20 || doff > seglen)
			continue;
		memset(s, 0, sizeof(*s));
		s->seq = get32(t + 4);
		s->ack = get32(t + 8);
		s->flags = t[13];
		s->win = get16(t + 14);
		s->len = (uint16_t)(seglen - doff);
		s->ws = -1;
		char *o = s->opts;
		for (unsigned i = 20; i < doff;) {
			uint8_t kind = t[i];
			const char *sep = o == s->opts ? "" : ",";

			if (kind == 0) {
				o += sprintf(o, "%seol", sep);
				break;
			}
			if (kind == 1) {
				o += sprintf(o, "%snop", sep);
				i++;
				continue;
			}
			if (i + 1 >= doff || t[i + 1] < 2 || i + t[i + 1] > doff) {
				o += sprintf(o, "%sbad", sep);
				break;
			}
			uint8_t ol = t[i + 1];
			if (kind == 2 && ol == 4) {
				s->mss = get16(t + i + 2);
				o += sprintf(o, "%smss%d", sep, s->mss);
			} else if (kind == 3 && ol == 3) {
				s->ws = t[i + 2];
				o += sprintf(o, "%sws%d", sep, s->ws);
			} else if (kind == 4 && ol == 2) {
				s->sack = 1;
				o += sprintf(o, "%ssack", sep);
			} else if (kind == 8 && ol == 10) {
				s->has_ts = 1;
				s->tsval = get32(t + i + 2);
				s->tsecr = get32(t + i + 6);
				o += sprintf(o, "%sts", sep);
			} else {
				o += sprintf(o, "%sk%d", sep, kind);
			}
			i += ol;
		}
		if (p->v6) {
			s->tos = (uint8_t)(get16(r) >> 4);
			s->flow = get32(r) & 0xfffff;
			s->iplen = get16(r + 4);
			s->nh = r[6];
			s->ttl = r[7];
		} else {
			s->tos = r[1];
			s->iplen = get16(r + 2);
			s->ipid = get16(r + 4);
			s->df = !!(r[6] & 0x40);
			s->ttl = r[8];
			s->ipopt = (unsigned)rh - 20;
		}
		s->rx_ms = mono_ms();
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
				struct timespec ts;

				memcpy(&ts, CMSG_DATA(c), sizeof(ts));
				long long ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
				long long as_rt = (ns - p->rt_minus_mono_ns) / 1000000, as_mono = ns / 1000000;
				/* Normally the receive time (CLOCK_REALTIME); a delivery time the sender
				 * stamped may survive the veth as CLOCK_MONOTONIC: take the one that is
				 * now-ish. */
				s->rx_ms = llabs(as_rt - s->rx_ms) <= llabs(as_mono - s->rx_ms) ? as_rt : as_mono;
			}
		}
		if (!p->dport) {
			if (!(s->flags & F_SYN) || (s->flags & F_ACK))
				continue;
			p->dport = get16(t);
		}
		return 1;
	}
}

/* Account for a received segment and print it. */
static void got(struct peer *p, struct seg *s)
{
	char fl[10], line[512];
	int n = 0;
	/* A SYN-ACK after the handshake is a new connection on the same tuple (T3/T4). */
	int new_conn = p->accepted && (s->flags & F_SYN);

	flags_str(s->flags, fl);
	if (!p->accepted && (s->flags & F_SYN)) {
		p->irs = s->seq;
		p->rcv = 1;
	}
	if (new_conn) {
		uint32_t rel = s->seq - p->irs;

		n += sprintf(line + n, "< %s seq=%s", fl, rel == p->rcv + 65537 ? "rcv+65537" : "fresh");
	} else if ((s->flags & (F_RST | F_ACK)) == (F_RST | F_ACK) && s->seq == 0) {
		/* A reset of a segment without ACK: its seq is 0, not a sequence number. */
		n += sprintf(line + n, "< %s seq=raw0", fl);
	} else {
		n += sprintf(line + n, "< %s seq=%d", fl, (int32_t)(s->seq - p->irs));
	}
	if (s->flags & F_ACK)
		n += sprintf(line + n, " ack=%d", (int32_t)(s->ack - p->isn));
	n += sprintf(line + n, " win=%u len=%u", s->win, s->len);
	if (s->opts[0])
		n += sprintf(line + n, " opts=%s", s->opts);
	if (s->has_ts) {
		int32_t clk = (int32_t)(s->tsval - (uint32_t)s->rx_ms);

		if (s->tsecr == 0)
			n += sprintf(line + n, " ecr=0");
		else
			n += sprintf(line + n, " ecr=%+d", (int32_t)(s->tsecr - p->tsbase));
		if (!p->show) {
			if (!p->have_clk || clk - p->clk > 0)
				p->clk = clk;
			p->have_clk = 1;
			n += sprintf(line + n, " tsclk=base");
		} else if (p->have_clk && clk - p->clk <= p->tol && p->clk - clk <= RTW_LATE_MS) {
			n += sprintf(line + n, " tsclk=ok");
		} else {
			n += sprintf(line + n, " tsclk=off(%d)", p->have_clk ? clk - p->clk : 0);
		}
		p->host_tsval = s->tsval;
		p->have_host_ts = 1;
	}
	if (p->v6) {
		char fl[16];

		if (!p->show) {
			snprintf(fl, sizeof(fl), "0x%05x", s->flow);
			p->conn_flow = s->flow;
			p->have_conn_flow = 1;
		} else {
			snprintf(fl, sizeof(fl), "%s", p->have_conn_flow && s->flow == p->conn_flow ?
				 "conn" : s->flow ? "other" : "0");
		}
		n += sprintf(line + n, " ip=tc:0x%02x,fl:%s,hl:%u,plen:%u,nh:%u", s->tos, fl, s->ttl,
			     s->iplen, s->nh);
	} else {
		n += sprintf(line + n, " ip=tos:0x%02x,ttl:%u,df:%u,len:%u,opt:%u,id:%u", s->tos,
			     s->ttl, s->df, s->iplen, s->ipopt, s->ipid);
	}
	out(p, "%s", line);
	/* A reset takes no sequence space and advertises no window (its seq may be 0). */
	if (!new_conn && !(s->flags & F_RST)) {
		uint32_t end = s->seq - p->irs + s->len + !!(s->flags & F_SYN) + !!(s->flags & F_FIN);

		if (after(end, p->rcv))
			p->rcv = end;
		if (!(s->flags & F_SYN))
			p->hwnd = (uint32_t)s->win << (p->host_ws > 0 ? p->host_ws : 0);
	}
	if (!p->show && p->nseen < 16)
		p->seen_flags[p->nseen++] = s->flags;
}

/* An expression: terms joined by + and -. */
static uint32_t eval(struct peer *p, const char *e)
{
	uint32_t v = 0;
	int sign = 1;

	while (*e && *e != ' ') {
		uint32_t t;
		char *end;

		if (*e == '+' || *e == '-') {
			sign = *e == '-' ? -1 : 1;
			e++;
			continue;
		}
		if (!strncmp(e, "snd", 3)) {
			t = p->snd;
			e += 3;
		} else if (!strncmp(e, "rcv", 3)) {
			t = p->rcv;
			e += 3;
		} else if (!strncmp(e, "tsv", 3)) {
			t = p->tsv;
			e += 3;
		} else if (!strncmp(e, "hwnd", 4)) {
			t = p->hwnd;
			e += 4;
		} else {
			t = (uint32_t)strtoull(e, &end, 0);
			if (end == e)
				fail("bad expression at '%s'", e);
			e = end;
		}
		v += sign > 0 ? t : (uint32_t)-t;
		sign = 1;
	}
	return v;
}

/* The value of KEY=... among the words of `args`, or NULL. */
static const char *arg(const char *args, const char *key)
{
	size_t kl = strlen(key);

	for (const char *a = args; a && *a;) {
		while (*a == ' ')
			a++;
		if (!strncmp(a, key, kl) && (a[kl] == '=' || a[kl] == ' ' || a[kl] == 0))
			return a[kl] == '=' ? a + kl + 1 : a + kl;
		a = strchr(a, ' ');
	}
	return NULL;
}

static void parse_opts(struct peer *p, const char *l)
{
	p->o_mss = p->o_sack = p->o_ts = p->o_ecn = 0;
	p->o_ws = -1;
	while (l && *l && *l != ' ') {
		if (!strncmp(l, "mss", 3))
			p->o_mss = l[3] == '=' ? atoi(l + 4) : 1460;
		else if (!strncmp(l, "sack", 4))
			p->o_sack = 1;
		else if (!strncmp(l, "ts", 2))
			p->o_ts = 1;
		else if (!strncmp(l, "ws", 2))
			p->o_ws = atoi(l + 3);
		else if (!strncmp(l, "accecn", 6))
			p->o_ecn = 2;
		else if (!strncmp(l, "ecn", 3))
			p->o_ecn = 1;
		else
			fail("bad option list at '%s'", l);
		l = strpbrk(l, ", ");
		if (l && *l == ',')
			l++;
	}
}

static void send_seg(struct peer *p, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		     unsigned len, int ts, uint32_t tsval, uint32_t tsecr, int l2, int badcsum,
		     uint8_t tos)
{
	uint8_t pkt[2048] = { 0 }, opt[40];
	size_t ol = 0;

	if (flags & F_SYN) {
		if (p->o_mss) {
			opt[ol++] = 2; opt[ol++] = 4;
			put16(opt + ol, (uint16_t)p->o_mss); ol += 2;
		}
		if (p->o_sack && ts) {
			opt[ol++] = 4; opt[ol++] = 2;
		} else if (p->o_sack) {
			opt[ol++] = 1; opt[ol++] = 1; opt[ol++] = 4; opt[ol++] = 2;
		} else if (ts) {
			opt[ol++] = 1; opt[ol++] = 1;
		}
		if (ts) {
			opt[ol++] = 8; opt[ol++] = 10;
			put32(opt + ol, tsval); put32(opt + ol + 4, tsecr); ol += 8;
		}
		if (p->o_ws >= 0) {
			opt[ol++] = 1; opt[ol++] = 3; opt[ol++] = 3; opt[ol++] = (uint8_t)p->o_ws;
		}
	} else if (ts) {
		opt[ol++] = 1; opt[ol++] = 1; opt[ol++] = 8; opt[ol++] = 10;
		put32(opt + ol, tsval); put32(opt + ol + 4, tsecr); ol += 8;
	}
	while (ol % 4)
		opt[ol++] = 0;
	size_t iphl = p->v6 ? 40 : 20, thl = 20 + ol, tlen = thl + len;
	uint8_t *ip = pkt, *tcp = pkt + iphl;

	if (tlen + iphl > sizeof(pkt))
		fail("segment too long");
	if (p->v6) {
		ip[0] = (uint8_t)(0x60 | tos >> 4);
		ip[1] = (uint8_t)(tos << 4);
		put16(ip + 4, (uint16_t)tlen);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, p->saddr, 16);
		memcpy(ip + 24, p->daddr, 16);
	} else {
		ip[0] = 0x45;
		ip[1] = tos;
		put16(ip + 2, (uint16_t)(iphl + tlen));
		ip[6] = 0x40;
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, p->saddr, 4);
		memcpy(ip + 16, p->daddr, 4);
		put16(ip + 10, fold(sum16(ip, 20, 0)));
	}
	put16(tcp, p->sport);
	put16(tcp + 2, p->dport);
	put32(tcp + 4, seq);
	put32(tcp + 8, (flags & F_ACK) ? ack : 0);
	tcp[12] = (uint8_t)((thl / 4) << 4);
	tcp[13] = flags;
	put16(tcp + 14, win);
	memcpy(tcp + 20, opt, ol);
	for (unsigned i = 0; i < len; i++)
		tcp[thl + i] = (uint8_t)('a' + i % 26);
	put16(tcp + 16, tcp_csum(p->v6, p->saddr, p->daddr, tcp, tlen) ^ (badcsum ? 0x5a5a : 0));

	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = p->ifindex,
				   .sll_protocol = htons(p->v6 ? ETH_P_IPV6 : ETH_P_IP), .sll_halen = 6 };
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t mcast4[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	static const uint8_t mcast6[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };
	memcpy(sll.sll_addr, l2 == 1 ? bcast : l2 == 2 ? (p->v6 ? mcast6 : mcast4) : p->hmac, 6);
	if (sendto(p->fd, pkt, iphl + tlen, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		fail("sendto: %s", strerror(errno));
	/* Our next sequence number moves with segments that take sequence space and leave no
	 * gap before them: a probe far ahead is not new data. */
	uint32_t rel = seq - p->isn, end = rel + len + !!(flags & F_SYN) + !!(flags & F_FIN);
	if (end != rel && !after(rel, p->snd) && after(end, p->snd))
		p->snd = end;
}

static void do_accept(struct peer *p, const char *args)
{
	const char *o = arg(args, "opts"), *t = arg(args, "timeout");
	long timeout = t ? atol(t) : 10000;
	long long end = mono_ms() + timeout;
	struct seg s;

	if (o)
		parse_opts(p, o);
	for (;;) {
		long left = (long)(end - mono_ms());

		if (left <= 0 || !recv_seg(p, &s, left))
			fail("no SYN from the host within %ld ms", timeout);
		if ((s.flags & (F_SYN | F_ACK)) == F_SYN)
			break;
	}
	got(p, &s);
	if (p->portfile) {
		FILE *f = fopen(p->portfile, "w");

		if (!f)
			fail("%s: %s", p->portfile, strerror(errno));
		fprintf(f, "%u\n", p->dport);
		fclose(f);
	}
	p->use_ts = s.has_ts && p->o_ts;
	p->host_ws = s.ws >= 0 && p->o_ws >= 0 ? s.ws : 0;
	p->snd = 0;
	/* ECN (RFC 3168 §6.1.1): ECE on the SYN-ACK to a SYN with ECE and CWR; Accurate ECN
	 * (RFC 9768 §3.1.1): CWR alone, "the SYN arrived not-ECT". */
	uint8_t ecn = p->o_ecn == 1 && (s.flags & (F_ECE | F_CWR)) == (F_ECE | F_CWR) ? F_ECE :
		      p->o_ecn == 2 ? F_CWR : 0;
	send_seg(p, F_SYN | F_ACK | ecn, p->isn, p->irs + 1, p->win, 0, p->use_ts,
		 p->tsbase + p->tsv, s.tsval, 0, 0, 0);
	printf("# host port %u\n", p->dport);
	out(p, "> SA%s seq=0 ack=1 (ts %s, host wscale %d)", ecn == F_ECE ? "E" : ecn ? "C" : "",
	    p->use_ts ? "on" : "off", p->host_ws);
	p->tsv += 10;
	p->accepted = 1;
}

static int flagset_match(const char *sets, uint8_t f)
{
	for (const char *s = sets; s && *s && *s != ' ';) {
		uint8_t want = 0;
		const char *c = strpbrk(s, ", ");

		for (const char *q = s; *q && *q != ',' && *q != ' '; q++) {
			const char *k = strchr(flag_names, *q);

			if (k)
				want |= 1 << (k - flag_names);
		}
		if ((f & want) == want)
			return 1;
		if (!c || *c == ' ')
			break;
		s = c + 1;
	}
	return 0;
}

static void send_seg(struct peer *p, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		     unsigned len, int ts, uint32_t tsval, uint32_t tsecr, int l2, int badcsum,
		     uint8_t tos);

static void do_wait(struct peer *p, const char *args)
{
	const char *t = arg(args, "timeout");
	long timeout = t ? atol(t) : 10000;
	long long end = mono_ms() + timeout;
	int ack = arg(args, "ack") != NULL;
	struct seg s;

	for (;;) {
		long left = (long)(end - mono_ms());

		if (left <= 0 || !recv_seg(p, &s, left)) {
			out(p, "< timeout waiting for %.*s", (int)strcspn(args, " "), args);
			return;
		}
		got(p, &s);
		/* `ack`: acknowledge data at once, as a peer's quick ACK would, so the host's
		 * retransmission timer never runs (after it, a cwnd of 1 would hold back the FIN
		 * behind the data). A FIN is left to the script. The TSval clock does not move: how
		 * the host cut its data into segments must not change the TSvals that follow. */
		if (ack && s.len && !(s.flags & (F_SYN | F_RST | F_FIN))) {
			send_seg(p, F_ACK, p->isn + p->snd, p->irs + p->rcv, p->win, 0, p->use_ts,
				 p->tsbase + p->tsv, p->host_tsval, 0, 0, 0);
			out(p, "> A seq=%d ack=%d (data acknowledged)", (int32_t)p->snd, (int32_t)p->rcv);
		}
		if (flagset_match(args, s.flags))
			return;
	}
}

static void do_send(struct peer *p, const char *args)
{
	uint8_t flags = parse_flags(args);
	const char *v;
	uint32_t seq = p->isn + (p->snd), ack = p->irs + p->rcv, tsval, tsecr;
	uint16_t win = p->win;
	unsigned len = 0;
	int ts = p->use_ts, l2 = 0, auto_ts = 1, badcsum = 0;
	uint8_t tos = 0;
	char fl[10], tsdesc[48] = "", tosdesc[16] = "";

	if ((v = arg(args, "seq")))
		seq = p->isn + eval(p, v);
	if ((v = arg(args, "ack")))
		ack = p->irs + eval(p, v);
	if ((v = arg(args, "win")))
		win = (uint16_t)strtoul(v, NULL, 0);
	if ((v = arg(args, "len")))
		len = (unsigned)strtoul(v, NULL, 0);
	tsval = p->tsbase + p->tsv;
	if ((v = arg(args, "tsval"))) {
		tsval = p->tsbase + eval(p, v);
		auto_ts = 0;
	}
	if ((v = arg(args, "tsraw"))) {
		tsval = (uint32_t)strtoull(v, NULL, 0);
		auto_ts = 0;
	}
	/* A new SYN echoes nothing. */
	tsecr = p->have_host_ts && (flags & (F_SYN | F_ACK)) != F_SYN ? p->host_tsval : 0;
	if ((v = arg(args, "tsecr")) && *v == '0')
		tsecr = 0;
	if (arg(args, "nots"))
		ts = 0;
	if ((v = arg(args, "l2")))
		l2 = !strncmp(v, "bcast", 5) ? 1 : !strncmp(v, "mcast", 5) ? 2 : 0;
	if ((v = arg(args, "csum")))
		badcsum = !strncmp(v, "bad", 3);
	if ((v = arg(args, "tos"))) {
		tos = (uint8_t)strtoul(v, NULL, 0);
		snprintf(tosdesc, sizeof(tosdesc), " tos=0x%02x", tos);
	}
	flags_str(flags, fl);
	if (ts)
		snprintf(tsdesc, sizeof(tsdesc), " tsval=%+d tsecr=%s", (int32_t)(tsval - p->tsbase),
			 tsecr ? "echo" : "0");
	out(p, "> %s seq=%d ack=%d win=%u len=%u%s%s%s%s", fl, (int32_t)(seq - p->isn),
	    (int32_t)(ack - p->irs), win, len, tsdesc, l2 ? (l2 == 1 ? " l2=bcast" : " l2=mcast") : "",
	    badcsum ? " csum=bad" : "", tosdesc);
	send_seg(p, flags, seq, ack, win, len, ts, tsval, tsecr, l2, badcsum, tos);
	if (ts && auto_ts)
		p->tsv += 10;
}

static void do_expect(struct peer *p, long ms)
{
	long long end = mono_ms() + ms;
	struct seg s;
	int n = 0;

	for (;;) {
		long left = (long)(end - mono_ms());

		if (!recv_seg(p, &s, left < 0 ? 0 : left))
			break;
		got(p, &s);
		n++;
	}
	if (!n)
		out(p, "< none");
}

static void do_seen(struct peer *p, const char *args)
{
	int yes = 0;

	for (int i = 0; i < p->nseen; i++)
		yes |= flagset_match(args, (uint8_t)p->seen_flags[i]);
	out(p, "= seen %.*s %s", (int)strcspn(args, " "), args, yes ? "yes" : "no");
}

static int peer_main(const char *ifname, const char *mac, const char *src, const char *dst,
		     unsigned port, const char *gofile, const char *portfile, long tol)
{
	static struct peer p;
	char line[512];
	int one = 1;

	p.v6 = strchr(src, ':') != NULL;
	p.alen = p.v6 ? 16 : 4;
	if (inet_pton(p.v6 ? AF_INET6 : AF_INET, src, p.saddr) != 1 ||
	    inet_pton(p.v6 ? AF_INET6 : AF_INET, dst, p.daddr) != 1)
		fail("bad address");
	if (sscanf(mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &p.hmac[0], &p.hmac[1], &p.hmac[2],
		   &p.hmac[3], &p.hmac[4], &p.hmac[5]) != 6)
		fail("bad MAC");
	p.sport = (uint16_t)port;
	p.isn = 1000000;
	p.tsbase = 100000;
	p.win = 65535;
	p.o_mss = 1460;
	p.o_ws = -1;
	p.tol = tol;
	p.gofile = gofile;
	p.portfile = portfile;
	p.ifindex = (int)if_nametoindex(ifname);
	if (!p.ifindex)
		fail("no interface %s", ifname);
	/* Protocol 0: nothing is queued until bind(), after the filter is in place. */
	p.fd = socket(AF_PACKET, SOCK_DGRAM, 0);
	if (p.fd < 0)
		fail("socket(AF_PACKET): %s", strerror(errno));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = p.ifindex,
				   .sll_protocol = htons(p.v6 ? ETH_P_IPV6 : ETH_P_IP) };
	/* Only TCP segments to our port are queued: the interface carries every other case's
	 * traffic too, and a socket that is not read while we sleep must not fill up with it.
	 * (A network header comes first on a SOCK_DGRAM packet socket.) */
	struct sock_filter v4[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),             /* protocol */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 4),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),            /* X = IHL * 4 */
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),             /* TCP destination port */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_filter v6[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),             /* next header */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 3),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 42),            /* TCP destination port */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = p.v6 ? sizeof(v6) / sizeof(v6[0]) : sizeof(v4) / sizeof(v4[0]),
				   .filter = p.v6 ? v6 : v4 };
	int rcvbuf = 1 << 20;
	if (setsockopt(p.fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		fail("SO_ATTACH_FILTER: %s", strerror(errno));
	setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(p.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	if (bind(p.fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		fail("bind: %s", strerror(errno));
	setsockopt(p.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	struct timespec rt, mo;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mo);
	p.rt_minus_mono_ns = (rt.tv_sec - mo.tv_sec) * 1000000000LL + (rt.tv_nsec - mo.tv_nsec);
	printf("# ready\n");

	while (fgets(line, sizeof(line), stdin)) {
		char *c = line, *hash = strchr(line, '#');

		if (hash)
			*hash = 0;
		line[strcspn(line, "\n")] = 0;
		while (*c == ' ' || *c == '\t')
			c++;
		if (!*c)
			continue;
		char *args = c + strcspn(c, " \t");
		while (*args == ' ' || *args == '\t')
			args++;
		size_t cl = strcspn(c, " \t");
#define IS(w) (cl == strlen(w) && !strncmp(c, w, cl))
		if (IS("isn"))
			p.isn = (uint32_t)strtoull(args, NULL, 0);
		else if (IS("tsbase"))
			p.tsbase = (uint32_t)strtoull(args, NULL, 0);
		else if (IS("win"))
			p.win = (uint16_t)strtoul(args, NULL, 0);
		else if (IS("accept"))
			do_accept(&p, args);
		else if (IS("wait"))
			do_wait(&p, args);
		else if (IS("send"))
			do_send(&p, args);
		else if (IS("expect"))
			do_expect(&p, *args ? atol(args) : 300);
		else if (IS("seen"))
			do_seen(&p, args);
		else if (IS("sleep")) {
			/* Read what comes meanwhile, as `expect` would, but print no "none". */
			long long end = mono_ms() + atol(args);
			struct seg s;

			for (long left; (left = (long)(end - mono_ms())) > 0;)
				if (recv_seg(&p, &s, left))
					got(&p, &s);
		}
		else if (IS("tick"))
			p.tsv += (uint32_t)strtoul(args, NULL, 0);
		else if (IS("sync")) {
			char path[PATH_MAX];
			struct stat st;
			long long end = mono_ms() + 30000;

			if (!p.gofile)
				fail("sync without -g");
			/* "sync NAME": the go-ahead GOFILE.NAME, one of several in a script. */
			if (snprintf(path, sizeof(path), *args ? "%s.%s" : "%s", p.gofile, args) >=
			    (int)sizeof(path))
				fail("go-ahead path too long");
			while (stat(path, &st) != 0) {
				if (mono_ms() > end)
					fail("no go-ahead (%s) within 30 s", path);
				sleep_ms(10);
			}
		} else if (IS("show")) {
			/* What arrived while we waited belongs to the set-up. */
			struct seg s;

			while (recv_seg(&p, &s, 0))
				got(&p, &s);
			p.show = 1;
		}
		else
			fail("unknown step '%s'", c);
#undef IS
		fflush(stdout);
	}
	/* Whatever is still queued. */
	struct seg s;
	while (recv_seg(&p, &s, 0))
		got(&p, &s);
	printf("# end\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *mac = NULL, *src = NULL, *dst = NULL, *gofile = NULL;
	const char *portfile = NULL, *conn = NULL, *lst = NULL, *text = NULL;
	unsigned long port = 0;
	long wait = 0, tol = 5, label = -1;
	int half = 0, opt, tos = -1, tclass = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "i:m:s:d:p:g:o:T:c:l:t:w:HMQ:C:F:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'm': mac = optarg; break;
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'p': port = strtoul(optarg, NULL, 0); break;
		case 'g': gofile = optarg; break;
		case 'o': portfile = optarg; break;
		case 'T': tol = atol(optarg); break;
		case 'c': conn = optarg; break;
		case 'l': lst = optarg; break;
		case 't': text = optarg; break;
		case 'w': wait = atol(optarg); break;
		case 'H': half = 1; break;
		case 'Q': tos = (int)strtol(optarg, NULL, 0); break;
		case 'C': tclass = (int)strtol(optarg, NULL, 0); break;
		case 'F': label = strtol(optarg, NULL, 0); break;
		case 'M': printf("%lld\n", mono_ms()); return 0;
		default: fprintf(stderr, "usage: see the header of rtw-script.c\n"); return 2;
		}
	}
	if (conn)
		return app(conn, text, wait, half, argv + optind, tos, tclass, label);
	if (lst)
		return listener(lst, wait);
	if (!ifname || !mac || !src || !dst || !port) {
		fprintf(stderr, "rtw-script: -i -m -s -d -p are required (or -c / -l)\n");
		return 2;
	}
	return peer_main(ifname, mac, src, dst, (unsigned)port, gofile, portfile, tol);
}
