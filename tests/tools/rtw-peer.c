// SPDX-License-Identifier: GPL-2.0
/*
 * rtw-peer: the far end of a guarded connection, for guest scenarios. Sends one hand-made TCP
 * segment (IPv4 or IPv6) out of an interface with AF_PACKET, then prints what comes back for
 * the same 4-tuple, field by field, so a scenario can check the module's reply byte by byte.
 *
 *   rtw-peer -i IF -m DSTMAC -s SRC -d DST -p SPORT -P DPORT -q SEQ -a ACK -f FLAGS
 *            [-w WIN] [-t TSVAL:TSECR] [-l PAYLOAD_LEN] [-x (corrupt checksum)] [-W WAIT_MS]
 *            [-n COUNT (send the segment COUNT times back to back: a flood)]
 *            [-X (IPv6: an 8-byte destination-options header before TCP)]
 *
 *   rtw-peer -C -s SRC -d DST -p SPORT -P DPORT [-W WAIT_MS]
 *            connect() from SRC:SPORT to DST:DPORT (a local connect onto a tuple) and print
 *            "connect=ok|refused|timeout|error". SPORT 0: connect() picks the port.
 *
 *   rtw-peer -L -s ADDR -p PORT [-W WAIT_MS] [-l N]
 *            a server that closes late: accept one connection, send N bytes (default none),
 *            read until the client's FIN, wait WAIT_MS, then close (our FIN). Prints
 *            "served bytes=N".
 *
 *   rtw-peer -R -d DST -P DPORT [-W WAIT_MS]
 *            a client that closes late: connect, send one request line, read the reply until
 *            the server's FIN, wait WAIT_MS, then close. Prints "got bytes=N".
 *
 *   rtw-peer -E -s ADDR -p PORT
 *            an echo server for request/response timing: accept connections one after another
 *            and send back every byte read, until killed.
 *
 *   rtw-peer -T -d DST -P DPORT -n COUNT
 *            COUNT one-byte request/response transactions on one connection to an echo server;
 *            prints "transactions=N ns_per_transaction=N".
 *
 *   rtw-peer -M   print CLOCK_MONOTONIC in ms (busybox date has no %N) and exit.
 *
 * FLAGS is a subset of "FSRPAU". Output: one line per reply seen within WAIT_MS (default 300):
 *   reply flags=A seq=N ack=N win=N doff=N ts=VAL:ECR|none ttl=N tcp_csum=ok|bad ip_csum=ok|bad
 * and "replies=N" at the end. Exit 0 unless something failed locally.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtw-wire.h"

/* Fill `ss` with ADDR:PORT (IPv6 when ADDR has a colon); the sockaddr's length, 0 if bad. */
static socklen_t make_sockaddr(const char *addr, unsigned long port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? sizeof(*s6) : 0;
	}
	struct sockaddr_in *s4 = (void *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? sizeof(*s4) : 0;
}

/* Read until the other side's FIN, wait `wait` ms with our side still open, then close (our
 * FIN): an end that closes a moment after its peer. Returns the bytes read. */
static long drain_wait_close(int fd, unsigned long wait)
{
	char buf[4096];
	long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	struct timespec ts = { .tv_sec = wait / 1000, .tv_nsec = (long)(wait % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	close(fd);
	return total;
}

static int do_connect(const char *src, const char *dst, unsigned long sport, unsigned long dport,
		      unsigned long wait)
{
	int v6 = strchr(src, ':') != NULL, one = 1;
	struct sockaddr_storage sa, da;
	socklen_t len = make_sockaddr(src, sport, &sa);

	if (!len || make_sockaddr(dst, dport, &da) != len)
		return 2;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Port 0: bind the address only, so connect() picks the port (as an unbound client). */
	if (!sport)
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, len) < 0)
		die("bind");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&da, len) == 0) {
		printf("connect=ok\n");
		return 0;
	}
	if (errno != EINPROGRESS) {
		printf("connect=%s\n", errno == ECONNREFUSED ? "refused" : "error");
		return 0;
	}
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, (int)wait) <= 0) {
		printf("connect=timeout\n");
		return 0;
	}
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	printf("connect=%s\n", err == 0 ? "ok" : err == ECONNREFUSED ? "refused" : "error");
	return 0;
}

static int do_listen(const char *addr, unsigned long port, unsigned long wait, unsigned long plen)
{
	int v6 = strchr(addr, ':') != NULL, one = 1;
	struct sockaddr_storage sa;
	socklen_t len = make_sockaddr(addr, port, &sa);

	if (!len)
		return 2;
	int lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, len) < 0 || listen(lfd, 4) < 0)
		die("bind/listen");
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	/* -l N: first send N bytes the client may leave unread. */
	for (unsigned long i = 0; i < plen; i++)
		if (write(fd, "x", 1) != 1)
			die("write");
	long total = drain_wait_close(fd, wait);
	close(lfd);
	printf("served bytes=%ld\n", total);
	return 0;
}

static int do_request(const char *dst, unsigned long dport, unsigned long wait)
{
	int v6 = strchr(dst, ':') != NULL;
	struct sockaddr_storage da;
	socklen_t len = make_sockaddr(dst, dport, &da);

	if (!len)
		return 2;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&da, len) < 0)
		die("connect");
	if (write(fd, "GET /\n", 6) != 6)
		die("write");
	long total = drain_wait_close(fd, wait);
	printf("got bytes=%ld\n", total);
	return 0;
}

static int do_echo(const char *addr, unsigned long port)
{
	int v6 = strchr(addr, ':') != NULL, one = 1;
	struct sockaddr_storage sa;
	socklen_t len = make_sockaddr(addr, port, &sa);
	char buf[4096];

	if (!len)
		return 2;
	int lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, len) < 0 || listen(lfd, 4) < 0)
		die("bind/listen");
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			die("accept");
		/* One byte each way: without TCP_NODELAY a reply could wait for an ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(fd, buf, (size_t)n) != n)
				break;
		close(fd);
	}
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int do_rr(const char *dst, unsigned long dport, unsigned long count)
{
	int v6 = strchr(dst, ':') != NULL, one = 1;
	struct sockaddr_storage da;
	socklen_t len = make_sockaddr(dst, dport, &da);
	char c = 'x';

	if (!len || !count)
		return 2;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&da, len) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	long long t0 = now_ns();
	for (unsigned long i = 0; i < count; i++)
		if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
			die("transaction");
	long long ns = now_ns() - t0;
	close(fd);
	printf("transactions=%lu ns_per_transaction=%lld\n", count, ns / (long long)count);
	return 0;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *mac = NULL, *src = NULL, *dst = NULL, *flags = "A";
	unsigned long sport = 0, dport = 0, seq = 0, ack = 0, win = 1000, plen = 0, wait = 300;
	unsigned long tsval = 0, tsecr = 0, count = 1;
	int have_ts = 0, corrupt = 0, dstopts = 0, connect_mode = 0, listen_mode = 0, request_mode = 0, opt, v6, alen;
	int echo_mode = 0, rr_mode = 0;
	uint8_t s_addr[16], d_addr[16], pkt[2048] = { 0 }, dmac[6];

	while ((opt = getopt(argc, argv, "i:m:s:d:p:P:q:a:f:w:t:l:xXW:n:CLRMET")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'm': mac = optarg; break;
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'p': sport = strtoul(optarg, NULL, 0); break;
		case 'P': dport = strtoul(optarg, NULL, 0); break;
		case 'q': seq = strtoul(optarg, NULL, 0); break;
		case 'a': ack = strtoul(optarg, NULL, 0); break;
		case 'f': flags = optarg; break;
		case 'w': win = strtoul(optarg, NULL, 0); break;
		case 't': have_ts = sscanf(optarg, "%lu:%lu", &tsval, &tsecr) == 2; break;
		case 'l': plen = strtoul(optarg, NULL, 0); break;
		case 'x': corrupt = 1; break;
		case 'X': dstopts = 1; break;
		case 'W': wait = strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoul(optarg, NULL, 0); break;
		case 'C': connect_mode = 1; break;
		case 'L': listen_mode = 1; break;
		case 'R': request_mode = 1; break;
		case 'M': printf("%lld\n", now_ms()); return 0;
		case 'E': echo_mode = 1; break;
		case 'T': rr_mode = 1; break;
		default: fprintf(stderr, "usage: see the header of rtw-peer.c\n"); return 2;
		}
	}
	if (echo_mode && src && sport)
		return do_echo(src, sport);
	if (rr_mode && dst && dport)
		return do_rr(dst, dport, count);
	if (request_mode && dst && dport)
		return do_request(dst, dport, wait);
	if (listen_mode && src && sport)
		return do_listen(src, sport, wait, plen);
	if (connect_mode && src && dst && dport)
		return do_connect(src, dst, sport, dport, wait);
	if (!ifname || !mac || !src || !dst || !sport || !dport || plen > 1000) {
		fprintf(stderr, "rtw-peer: -i -m -s -d -p -P are required (payload <= 1000)\n");
		return 2;
	}
	v6 = strchr(src, ':') != NULL;
	alen = v6 ? 16 : 4;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, src, s_addr) != 1 ||
	    inet_pton(v6 ? AF_INET6 : AF_INET, dst, d_addr) != 1) {
		fprintf(stderr, "rtw-peer: bad address\n");
		return 2;
	}
	if (sscanf(mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dmac[0], &dmac[1], &dmac[2], &dmac[3],
		   &dmac[4], &dmac[5]) != 6) {
		fprintf(stderr, "rtw-peer: bad MAC\n");
		return 2;
	}

	size_t exthl = v6 && dstopts ? 8 : 0;
	size_t iphl = (v6 ? 40 : 20) + exthl, thl = have_ts ? 32 : 20, tlen = thl + plen;
	uint8_t *ip = pkt, *tcp = pkt + iphl;

	if (v6) {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)(exthl + tlen));
		ip[6] = exthl ? 60 : 6; /* destination options, or TCP */
		ip[7] = 64;
		memcpy(ip + 8, s_addr, 16);
		memcpy(ip + 24, d_addr, 16);
		if (exthl) {
			/* Next header TCP, length 0 (8 bytes), a PadN option filling the rest. */
			ip[40] = 6; ip[41] = 0; ip[42] = 1; ip[43] = 4;
		}
	} else {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(iphl + tlen));
		ip[6] = 0x40; /* DF */
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, s_addr, 4);
		memcpy(ip + 16, d_addr, 4);
		put16(ip + 10, fold(sum16(ip, 20, 0)));
	}
	put16(tcp, (uint16_t)sport);
	put16(tcp + 2, (uint16_t)dport);
	put32(tcp + 4, (uint32_t)seq);
	put32(tcp + 8, (uint32_t)ack);
	tcp[12] = (uint8_t)((thl / 4) << 4);
	for (const char *f = flags; *f; f++)
		tcp[13] |= *f == 'F' ? 0x01 : *f == 'S' ? 0x02 : *f == 'R' ? 0x04 :
			   *f == 'P' ? 0x08 : *f == 'A' ? 0x10 : *f == 'U' ? 0x20 : 0;
	put16(tcp + 14, (uint16_t)win);
	if (have_ts) {
		tcp[20] = 1; tcp[21] = 1; tcp[22] = 8; tcp[23] = 10;
		put32(tcp + 24, (uint32_t)tsval);
		put32(tcp + 28, (uint32_t)tsecr);
	}
	for (size_t i = 0; i < plen; i++)
		tcp[thl + i] = (uint8_t)('a' + i % 26);
	put16(tcp + 16, tcp_csum(v6, s_addr, d_addr, tcp, tlen) ^ (corrupt ? 0x5a5a : 0));

	int ifindex = if_nametoindex(ifname);
	if (!ifindex)
		die("if_nametoindex");
	int fd = socket(AF_PACKET, SOCK_DGRAM, htons(v6 ? ETH_P_IPV6 : ETH_P_IP));
	if (fd < 0)
		die("socket(AF_PACKET)");
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex,
				   .sll_protocol = htons(v6 ? ETH_P_IPV6 : ETH_P_IP), .sll_halen = 6 };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die("bind");
	memcpy(sll.sll_addr, dmac, 6);
	/* A veth transmit runs the receiving side's softirq before sendto() returns, so the
	 * loop's time is (mostly) the time the receiver, hooks included, spends per segment. */
	long long t0 = now_us();
	for (unsigned long i = 0; i < count; i++)
		if (sendto(fd, pkt, iphl + tlen, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
			die("sendto");
	long long sent_us = now_us() - t0;

	int replies = 0;
	long long end = now_ms() + (long long)wait;
	for (;;) {
		long long left = end - now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint8_t r[2048];
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		ssize_t n = recvfrom(fd, r, sizeof(r), 0, (struct sockaddr *)&from, &fl);
		if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		size_t rh = v6 ? 40 : (size_t)(r[0] & 0xf) * 4;
		if ((size_t)n < rh + 20 || (v6 ? r[6] : r[9]) != 6)
			continue;
		const uint8_t *rs = v6 ? r + 8 : r + 12, *rd = v6 ? r + 24 : r + 16, *t = r + rh;
		/* Only the reverse direction of our tuple. */
		if (memcmp(rs, d_addr, alen) || memcmp(rd, s_addr, alen) ||
		    get16(t) != dport || get16(t + 2) != sport)
			continue;
		size_t seglen = v6 ? get16(r + 4) : get16(r + 2) - rh;
		if (rh + seglen > (size_t)n)
			continue;
		unsigned doff = t[12] >> 4;
		char fl_s[8] = "", ts_s[32] = "none";
		const char *names = "FSRPAU";
		for (int b = 0, k = 0; b < 6; b++)
			if (t[13] & (1 << b))
				fl_s[k++] = names[b];
		for (unsigned o = 20; o + 1 < doff * 4u;) {
			uint8_t kind = t[o];
			if (kind == 0)
				break;
			if (kind == 1) { o++; continue; }
			uint8_t ol = t[o + 1];
			if (ol < 2)
				break;
			if (kind == 8 && ol == 10 && o + 10 <= doff * 4u)
				snprintf(ts_s, sizeof(ts_s), "%u:%u", get32(t + o + 2), get32(t + o + 6));
			o += ol;
		}
		int tcp_ok = tcp_csum(v6, rs, rd, t, seglen) == 0;
		int ip_ok = v6 ? 1 : fold(sum16(r, rh, 0)) == 0;
		printf("reply flags=%s seq=%u ack=%u win=%u doff=%u ts=%s ttl=%u tcp_csum=%s ip_csum=%s\n",
		       fl_s, get32(t + 4), get32(t + 8), get16(t + 14), doff, ts_s, v6 ? r[7] : r[8],
		       tcp_ok ? "ok" : "bad", ip_ok ? "ok" : "bad");
		replies++;
	}
	printf("replies=%d\n", replies);
	if (count > 1)
		printf("sent=%lu ns_per_segment=%lld\n", count, sent_us * 1000 / (long long)count);
	return 0;
}
