// SPDX-License-Identifier: GPL-2.0
/*
 * rtw-fuzz-segments: seeded fuzzing of the hook with TCP segments written into the guest's own
 * stack through a tun device, as if they came from the wire. Each segment is aimed at one of the
 * guarded tuples (both substates: the scenario adds them) or beside one (a port or an address
 * off), with random flags, sequence and acknowledgment numbers near the entries' and far from
 * them, every option with right and odd lengths, payloads, and then damaged: bad checksums, bad
 * data offsets, truncated headers, IPv4 options and fragments, IPv6 extension-header chains
 * (hop-by-hop, destination options, routing, fragment, AH), zero and jumbo payload lengths,
 * and GSO and partially-checksummed packets through the virtio-net header.
 *
 *   rtw-fuzz-segments -s SEED -n COUNT -i TUNDEV -p LPORT -P RPORT -k NPORTS
 *                     [-q SND_NXT] [-a RCV_NXT]
 *
 * The tun device exists and is up with 10.7.0.1/24 and fd07::1/64 (the guarded side); the peer
 * is 10.7.0.2 / fd07::2, its ports RPORT..RPORT+NPORTS-1; SND_NXT/RCV_NXT are the entries'.
 * Whatever the stack sends back out of the device is read and checked: every TCP segment must
 * carry a correct checksum. Prints "fuzz-segments seed=S segments=N ..." and exits 1 when a
 * reply was malformed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rtw-wire.h"

static uint8_t local4[4], peer4[4], other4[4], local6[16], peer6[16], other6[16];
static uint16_t lport, rport, nports;
static uint32_t snd_nxt = 1000, rcv_nxt = 2000;

static struct {
	unsigned long segments, written, refused, v6, gso, partial, exthdr, frag, bad_csum, bad_doff,
		truncated, replies, replies_tcp, replies_bad;
} st;

/* Random TCP options, `max` bytes at most: the usual ones with right and wrong lengths,
 * unknown kinds, lengths running past the end. Returns the length written. */
static size_t options(uint8_t *o, size_t max)
{
	size_t n = 0;

	while (n < max && chance(70)) {
		size_t room = max - n;
		uint32_t k = below(100);

		if (k < 35 && room >= 10) { /* timestamps, mostly right */
			o[n] = 8;
			o[n + 1] = chance(90) ? 10 : (uint8_t)below(14);
			put32(o + n + 2, chance(50) ? (uint32_t)rnd() : 100 + below(2000));
			put32(o + n + 6, chance(50) ? (uint32_t)rnd() : below(3000));
			n += 10;
		} else if (k < 45 && room >= 4) {
			o[n] = 2; o[n + 1] = chance(90) ? 4 : (uint8_t)below(6);
			put16(o + n + 2, (uint16_t)rnd());
			n += 4;
		} else if (k < 55 && room >= 3) {
			o[n] = 3; o[n + 1] = chance(90) ? 3 : (uint8_t)below(6); o[n + 2] = (uint8_t)below(20);
			n += 3;
		} else if (k < 62 && room >= 2) {
			o[n] = 4; o[n + 1] = 2; n += 2;
		} else if (k < 70 && room >= 10) { /* SACK blocks */
			size_t blocks = 1 + below((uint32_t)((room - 2) / 8 < 4 ? (room - 2) / 8 : 4));
			o[n] = 5; o[n + 1] = (uint8_t)(2 + 8 * blocks - (chance(10) ? 1 : 0));
			for (size_t b = 0; b < 8 * blocks; b++)
				o[n + 2 + b] = (uint8_t)rnd();
			n += 2 + 8 * blocks;
		} else if (k < 80) {
			o[n++] = 1; /* NOP */
		} else if (k < 83) {
			o[n++] = 0; /* EOL */
		} else { /* unknown kind, any length (0 and 1 are malformed; past the end too) */
			o[n] = (uint8_t)(6 + below(250));
			if (room >= 2) {
				o[n + 1] = (uint8_t)below(chance(80) ? (uint32_t)room + 1 : 256);
				size_t l = o[n + 1] >= 2 && o[n + 1] <= room ? o[n + 1] : 2;
				for (size_t b = 2; b < l; b++)
					o[n + b] = (uint8_t)rnd();
				n += l;
			} else {
				n++;
			}
		}
	}
	return n;
}

/* The TCP header and payload, at `t`. Returns its length. */
static size_t tcp_segment(uint8_t *t, int guarded, int *flags_out)
{
	static const uint8_t common[] = { 0x10, 0x11, 0x02, 0x04, 0x14, 0x12, 0x18, 0x19, 0x01, 0x10 };
	uint8_t flags = chance(85) ? common[below(sizeof(common))] : (uint8_t)rnd();
	uint16_t sp = (uint16_t)(rport + below(nports)), dp = lport;
	uint32_t seqv, ackv;

	if (!guarded) { /* beside a guarded tuple */
		if (chance(50))
			sp = (uint16_t)(rport + nports + below(3));
		else
			dp = (uint16_t)(lport + 1 + below(2));
	}
	switch (below(6)) {
	case 0: case 1: seqv = rcv_nxt; break;
	case 2: seqv = rcv_nxt - 1 - below(4); break;
	case 3: seqv = rcv_nxt + below(1 << 20); break;
	case 4: seqv = rcv_nxt + 0x7fffffff + below(3); break; /* half the space away */
	default: seqv = (uint32_t)rnd(); break;
	}
	switch (below(4)) {
	case 0: case 1: ackv = snd_nxt; break;
	case 2: ackv = snd_nxt + below(3) - 1; break;
	default: ackv = (uint32_t)rnd(); break;
	}
	put16(t, sp);
	put16(t + 2, dp);
	put32(t + 4, seqv);
	put32(t + 8, ackv);
	size_t olen = options(t + 20, 40);
	size_t hlen = 20 + ((olen + 3) & ~3u);

	memset(t + 20 + olen, 1, hlen - 20 - olen); /* pad with NOPs */
	t[12] = (uint8_t)((hlen / 4) << 4) | (chance(3) ? (uint8_t)below(16) : 0);
	if (chance(4)) { /* a data offset that lies: below 5, or past the segment */
		t[12] = (uint8_t)(below(16) << 4) | (t[12] & 15);
		st.bad_doff++;
	}
	t[13] = flags;
	put16(t + 14, chance(90) ? (uint16_t)(1000 + below(64000)) : (uint16_t)rnd());
	put16(t + 16, 0);
	put16(t + 18, chance(95) ? 0 : (uint16_t)rnd());
	size_t plen = chance(75) ? 0 : below(chance(90) ? 200 : 1400);

	for (size_t i = 0; i < plen; i++)
		t[hlen + i] = (uint8_t)rnd();
	*flags_out = flags;
	return hlen + plen;
}

static uint8_t pkt[8192];

/* The TCP checksum of the segment at `t` (`at` bytes into the packet): right; wrong; or left
 * partial, only the pseudo-header summed, for the "device" to finish (CHECKSUM_PARTIAL). */
static void tcp_checksum(uint8_t *t, size_t tlen, uint32_t pseudo, struct virtio_net_hdr *vh, size_t at)
{
	if (chance(5)) {
		st.partial++;
		put16(t + 16, (uint16_t)~fold(pseudo));
		vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		vh->csum_start = (uint16_t)at;
		vh->csum_offset = 16;
		return;
	}
	put16(t + 16, fold(sum16(t, tlen, pseudo)));
	if (chance(8)) {
		t[16] ^= (uint8_t)(1 + below(255));
		st.bad_csum++;
	}
}

/* Whether the datagram ipv4() built goes out as two fragments. */
static int split;

static void ipv4_csum(uint8_t *p)
{
	put16(p + 10, 0);
	put16(p + 10, fold(sum16(p, (size_t)(p[0] & 15) * 4, 0)));
}

/* One IPv4 datagram at `p` (after the virtio-net header). Returns its length. */
static size_t ipv4(uint8_t *p, struct virtio_net_hdr *vh)
{
	int guarded = chance(65), flags;
	size_t ihl = chance(95) ? 20 : 20 + 4 * (1 + below(10));
	uint8_t *t = p + ihl;
	size_t tlen = tcp_segment(t, guarded, &flags);
	const uint8_t *dst = chance(97) ? local4 : other4, *src = peer4;

	memset(p, 0, ihl);
	p[0] = (uint8_t)(0x40 | ihl / 4);
	for (size_t i = 20; i < ihl; i++) /* IP options: NOPs, then junk */
		p[i] = chance(70) ? 1 : (uint8_t)rnd();
	p[1] = chance(90) ? 0 : (uint8_t)rnd(); /* TOS / ECN */
	put16(p + 4, (uint16_t)rnd());
	split = 0;
	if (chance(1)) { /* a lone fragment: more-fragments, or an offset; defrag keeps it */
		put16(p + 6, chance(50) ? 0x2000 : (uint16_t)(1 + below(0x1fff)));
		st.frag++;
	} else {
		put16(p + 6, chance(80) ? 0x4000 : 0);
		/* Sent as two fragments that defrag puts back together before LOCAL_IN. */
		split = chance(3);
	}
	p[8] = 64;
	p[9] = chance(99) ? 6 : (uint8_t)rnd();
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	size_t total = ihl + tlen;

	put16(p + 2, (uint16_t)total);
	/* The TCP checksum: right, wrong, or left partial for the device to "offload". */
	tcp_checksum(t, tlen, tcp_pseudo(0, src, dst, tlen), vh, ihl);
	if (vh->flags)
		split = 0; /* a partial checksum is for a whole packet */
	if (!split && tlen > 60 && chance(3)) { /* a GSO super-packet of a data segment */
		vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		vh->gso_size = (uint16_t)(8 + below((uint32_t)tlen / 2));
		vh->hdr_len = (uint16_t)(ihl + ((t[12] >> 4) * 4));
		st.gso++;
	}
	if (!split && chance(2)) /* a total length that lies (under a right header checksum) */
		put16(p + 2, chance(30) ? 0 : (uint16_t)below((uint32_t)total + 40));
	ipv4_csum(p);
	return total;
}

/* One IPv6 datagram at `p`, with an extension-header chain sometimes. */
static size_t ipv6(uint8_t *p, struct virtio_net_hdr *vh)
{
	int guarded = chance(65), flags;
	uint8_t *e = p + 40;
	size_t ext = 0;
	int jumbo = 0;

	memset(p, 0, 40);
	p[0] = 0x60 | (chance(90) ? 0 : (uint8_t)below(16));
	p[1] = (uint8_t)rnd() & (chance(50) ? 0x0f : 0xff); /* traffic class / flow label */
	p[7] = 64;
	memcpy(p + 8, peer6, 16);
	memcpy(p + 24, chance(97) ? local6 : other6, 16);
	/* Extension headers (RFC 8200 §4.1 order, sometimes not): each 8 bytes here. */
	uint8_t chain[4];
	int nchain = 0;

	if (chance(15)) {
		st.exthdr++;
		if (chance(40))
			chain[nchain++] = 0; /* hop-by-hop */
		int more = (int)below(3);

		for (int i = 0; i < more; i++) {
			static const uint8_t kinds[] = { 60, 60, 43, 44, 51, 0 };

			chain[nchain++] = kinds[below(sizeof(kinds))];
		}
	}
	uint8_t *prev_next = p + 6;

	for (int i = 0; i < nchain; i++) {
		uint8_t *h = e + ext;

		*prev_next = chain[i];
		memset(h, 0, 8);
		prev_next = h;
		switch (chain[i]) {
		case 0: /* hop-by-hop: PadN, or a jumbo payload option (RFC 2675) */
			if (chance(40)) {
				h[2] = 0xc2; h[3] = 4;
				put32(h + 4, 70000 + below(1000));
				jumbo = 1;
			} else {
				h[2] = 1; h[3] = 4;
			}
			break;
		case 60: h[2] = 1; h[3] = 4; break; /* destination options, PadN */
		case 43: h[2] = chance(50) ? 4 : (uint8_t)below(5); h[3] = 0; break; /* routing, segments left 0 */
		case 44: /* fragment: atomic (offset 0, M 0) or a real piece */
			if (chance(50))
				put16(h + 2, (uint16_t)(chance(50) ? 1 : below(0xfff8)));
			put32(h + 4, (uint32_t)rnd());
			st.frag++;
			break;
		case 51: put32(h + 4, (uint32_t)rnd()); break; /* AH: SPI only, no sequence or ICV */
		}
		if (chance(3))
			h[1] = (uint8_t)below(4); /* a header length that lies */
		ext += 8;
	}
	*prev_next = chance(99) ? 6 : (uint8_t)rnd();
	uint8_t *t = e + ext;
	size_t tlen = tcp_segment(t, guarded, &flags);
	tcp_checksum(t, tlen, tcp_pseudo(1, p + 8, p + 24, tlen), vh, 40 + ext);
	if (!ext && tlen > 60 && chance(3)) {
		vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
		vh->gso_size = (uint16_t)(8 + below((uint32_t)tlen / 2));
		vh->hdr_len = (uint16_t)(40 + ((t[12] >> 4) * 4));
		st.gso++;
	}
	size_t total = 40 + ext + tlen;

	/* payload_len: right; 0 with the jumbo option (as BIG TCP sends it); or a lie. */
	put16(p + 4, jumbo && chance(70) ? 0 : (uint16_t)(total - 40));
	if (chance(2))
		put16(p + 4, (uint16_t)below((uint32_t)total));
	st.v6++;
	return total;
}

/* Read and check what the stack sent out of the device. */
static int reply_ok(const uint8_t *b, size_t n)
{
	const struct virtio_net_hdr *vh = (const void *)b;
	const uint8_t *p = b + sizeof(*vh);

	if (n < sizeof(*vh) + 20)
		return 1;
	n -= sizeof(*vh);
	int v6 = (p[0] >> 4) == 6;
	size_t hl = v6 ? 40 : (size_t)(p[0] & 15) * 4;
	uint8_t proto = v6 ? p[6] : p[9];

	if (proto != 6 || n < hl + 20)
		return 1; /* ICMP, or not TCP */
	st.replies_tcp++;
	if (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return 1; /* left for the device: nothing to check */
	size_t tlen = v6 ? get16(p + 4) : get16(p + 2) - hl;

	if (tlen > n - hl)
		return 0;
	const uint8_t *src = v6 ? p + 8 : p + 12, *dst = v6 ? p + 24 : p + 16;

	if (!v6 && fold(sum16(p, hl, 0)) != 0)
		return 0;
	return fold(sum16(p + hl, tlen, tcp_pseudo(v6, src, dst, tlen))) == 0;
}

static void fuzz_write(int fd, const uint8_t *b, size_t n)
{
	if (write(fd, b, n) < 0) {
		if (errno != EINVAL && errno != EAGAIN && errno != ENOMEM && errno != EIO && errno != EFAULT)
			die("write");
		st.refused++;
	} else {
		st.written++;
	}
}

int main(int argc, char **argv)
{
	unsigned long seed = 1, count = 1000;
	const char *dev = "rtwfz0";
	int c;

	while ((c = getopt(argc, argv, "s:n:i:p:P:k:q:a:")) != -1) {
		switch (c) {
		case 's': seed = strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoul(optarg, NULL, 0); break;
		case 'i': dev = optarg; break;
		case 'p': lport = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'P': rport = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'k': nports = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'q': snd_nxt = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'a': rcv_nxt = (uint32_t)strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: rtw-fuzz-segments -s SEED -n COUNT -i TUNDEV -p LPORT -P RPORT -k NPORTS [-q SND_NXT] [-a RCV_NXT]\n");
			return 2;
		}
	}
	if (!lport || !rport || !nports)
		return 2;
	inet_pton(AF_INET, "10.7.0.1", local4);
	inet_pton(AF_INET, "10.7.0.2", peer4);
	inet_pton(AF_INET, "10.7.0.3", other4);
	inet_pton(AF_INET6, "fd07::1", local6);
	inet_pton(AF_INET6, "fd07::2", peer6);
	inet_pton(AF_INET6, "fd07::3", other6);
	rng_state = seed;

	int fd = open("/dev/net/tun", O_RDWR);
	if (fd < 0)
		die("/dev/net/tun");
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF");
	fcntl(fd, F_SETFL, O_NONBLOCK);

	static uint8_t rb[70000];

	for (unsigned long i = 0; i < count; i++) {
		struct virtio_net_hdr *vh = (void *)pkt;
		uint8_t *p = pkt + sizeof(*vh);

		memset(vh, 0, sizeof(*vh));
		split = 0;
		int v6 = chance(50);
		size_t n = v6 ? ipv6(p, vh) : ipv4(p, vh);
		size_t ihl = v6 ? 40 : (size_t)(p[0] & 15) * 4;

		if (chance(3) && n > ihl + 1 && !vh->gso_type) {
			st.truncated++;
			if (chance(50)) {
				/* Cut anywhere, lengths left as they were: the IP layer drops it. */
				n = 1 + below((uint32_t)n - 1);
			} else {
				/* Cut inside TCP with the IP length agreeing, so it reaches the hook with
				 * a TCP header (or its options) shorter than it says. */
				n = ihl + 1 + below((uint32_t)(n - ihl - 1 < 40 ? n - ihl - 1 : 40));
				put16(p + (v6 ? 4 : 2), (uint16_t)(v6 ? n - 40 : n));
				if (!v6)
					ipv4_csum(p);
				vh->flags = 0;
			}
			split = 0;
		}
		st.segments++;
		if (split && n - ihl >= 16) {
			/* Two fragments: the first 8·k bytes of the transport, then the rest. */
			size_t k = 8 * (1 + below((uint32_t)((n - ihl) / 8 - 1)));
			static uint8_t second[8192];
			struct virtio_net_hdr *vh2 = (void *)second;
			uint8_t *q = second + sizeof(*vh2);

			memset(vh2, 0, sizeof(*vh2));
			memcpy(q, p, ihl);
			memcpy(q + ihl, p + ihl + k, n - ihl - k);
			put16(q + 2, (uint16_t)(n - k));
			put16(q + 6, (uint16_t)(k / 8));
			ipv4_csum(q);
			put16(p + 2, (uint16_t)(ihl + k));
			put16(p + 6, 0x2000);
			ipv4_csum(p);
			st.frag++;
			int second_first = chance(50);

			if (second_first)
				fuzz_write(fd, second, sizeof(*vh2) + n - k);
			fuzz_write(fd, pkt, sizeof(*vh) + ihl + k);
			if (!second_first)
				fuzz_write(fd, second, sizeof(*vh2) + n - k);
		} else {
			fuzz_write(fd, pkt, sizeof(*vh) + n);
		}
		if (i % 16 == 15 || i + 1 == count) {
			ssize_t r;

			while ((r = read(fd, rb, sizeof(rb))) > 0) {
				st.replies++;
				if (!reply_ok(rb, (size_t)r))
					st.replies_bad++;
			}
		}
	}
	printf("fuzz-segments seed=%lu segments=%lu written=%lu refused_by_tun=%lu ipv6=%lu gso=%lu "
	       "partial_csum=%lu exthdr=%lu fragments=%lu bad_csum=%lu bad_doff=%lu truncated=%lu replies=%lu "
	       "tcp_replies=%lu bad_replies=%lu replay='rtw-fuzz-segments -s %lu -n %lu -i %s -p %u -P %u -k %u -q %u -a %u'\n",
	       seed, st.segments, st.written, st.refused, st.v6, st.gso, st.partial, st.exthdr,
	       st.frag, st.bad_csum, st.bad_doff, st.truncated, st.replies, st.replies_tcp, st.replies_bad, seed,
	       count, dev, lport, rport, nports, snd_nxt, rcv_nxt);
	close(fd);
	return st.replies_bad ? 1 : 0;
}
