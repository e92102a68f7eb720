// SPDX-License-Identifier: GPL-2.0
/*
 * rtw-fuzz-netlink: seeded fuzzing of the rust_timewait generic netlink family. Sends COUNT
 * messages built from the family's own attribute layout and then damaged: wrong types and
 * lengths, missing, duplicated and unknown attributes, nests inside nests, lengths that run
 * past the message, unknown commands and flags, adds at and over the 4096-entry batch limit,
 * several messages in one send, dumps interleaved with flushes and adds on a second socket,
 * and dumps abandoned half-read.
 *
 *   rtw-fuzz-netlink -s SEED -n COUNT [-u] [-a LOCAL4] [-A LOCAL6]
 *
 * -u: the sender has no CAP_NET_ADMIN over the netns (an unprivileged user, or root of a user
 *     namespace that does not own it): every add, del, get, dump and flush must then fail with
 *     EPERM; a success or an entry in a reply is a violation.
 * -a/-A: local addresses, so that some adds are accepted (default 127.0.0.1 and ::1).
 *
 * Prints one line "fuzz-netlink seed=S messages=N ..." with what the kernel answered, and
 * exits 1 when a violation was seen or the family could not be found. The same seed sends the
 * same messages: a failure replays with the command line printed in that line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtw-wire.h"

/* The family's numbering: spec/rust_timewait.yaml (tests/host/spec_check.py keeps it true). */
enum { CMD_ADD = 1, CMD_DEL, CMD_GET, CMD_FLUSH, CMD_GET_STATS, CMD_LAST = CMD_GET_STATS };
enum { A_ENTRY = 1, A_REPLACE, A_STATS, A_FLUSHED, A_MAX = A_FLUSHED };
enum {
	E_FAMILY = 1, E_LOCAL_ADDR, E_REMOTE_ADDR, E_LOCAL_PORT, E_REMOTE_PORT, E_IFINDEX,
	E_SND_NXT, E_RCV_NXT, E_LAST_WIN, E_RCV_WSCALE, E_TS_RECENT, E_TS_OFFSET, E_HAS_TS,
	E_TS_RECENT_VALID, E_SUBSTATE, E_EXPIRES_MS, E_RESULT, E_MAX = E_RESULT
};
#define BATCH_MAX 4096
#define BUF_SIZE (1 << 20)

static uint8_t *msg;
static size_t len;
static uint16_t family_id;
static int unpriv;
static uint8_t local4[4], local6[16];

static struct {
	unsigned long messages, sends, acks, errors, eperm, einval, other_err, data, dumps,
		dumps_abandoned, batches_over, multi, no_reply, violations;
} st;

static void put(const void *p, size_t n)
{
	if (len + n > BUF_SIZE)
		return;
	memcpy(msg + len, p, n);
	len += n;
}

/* An attribute header; the caller writes the payload and fixes nla_len with attr_end(). */
static size_t attr_begin(uint16_t type)
{
	struct nlattr a = { .nla_len = 0, .nla_type = type };
	size_t at = len;

	put(&a, sizeof(a));
	return at;
}
static void attr_end(size_t at)
{
	if (at + sizeof(struct nlattr) > len)
		return;
	struct nlattr *a = (void *)(msg + at);
	size_t n = len - at;

	a->nla_len = n > 0xffff ? 0xffff : (uint16_t)n;
	while (len % 4)
		msg[len++] = 0;
}
static void attr(uint16_t type, const void *p, size_t n)
{
	size_t at = attr_begin(type);

	if (n)
		put(p, n);
	attr_end(at);
}
static void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, 4); }
static void attr_u16(uint16_t type, uint16_t v) { attr(type, &v, 2); }
static void attr_u8(uint16_t type, uint8_t v) { attr(type, &v, 1); }

/* The payload an attribute of `type` should have, or a damaged one. */
static void entry_attr(uint16_t type, int family)
{
	uint8_t raw[40];

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)rnd();
	if (chance(8)) { /* wrong length, any type */
		attr(type, raw, below(21));
		return;
	}
	switch (type) {
	case E_FAMILY: attr_u8(type, chance(90) ? (family == 6 ? 10 : 2) : (uint8_t)rnd()); break;
	case E_LOCAL_ADDR:
		if (chance(70))
			attr(type, family == 6 ? local6 : local4, family == 6 ? 16 : 4);
		else
			attr(type, raw, chance(50) ? (family == 6 ? 16 : 4) : below(17));
		break;
	case E_REMOTE_ADDR: attr(type, raw, chance(85) ? (family == 6 ? 16 : 4) : below(17)); break;
	case E_LOCAL_PORT: case E_REMOTE_PORT:
		attr_u16(type, chance(90) ? (uint16_t)(1 + below(65535)) : (uint16_t)below(2)); break;
	case E_LAST_WIN: attr_u16(type, (uint16_t)rnd()); break;
	case E_RCV_WSCALE: attr_u8(type, (uint8_t)below(chance(80) ? 15 : 256)); break;
	case E_SUBSTATE: attr_u8(type, (uint8_t)below(chance(80) ? 2 : 256)); break;
	case E_HAS_TS: case E_TS_RECENT_VALID:
		attr(type, raw, chance(85) ? 0 : 1 + below(8)); break;
	default: attr_u32(type, (uint32_t)rnd()); break;
	}
}

/* One `entry` nest: the attributes a valid request needs, some missing, some twice, some
 * unknown, sometimes a nest inside it. */
static void entry_nest(int depth)
{
	int family = chance(50) ? 6 : 4;
	size_t at = attr_begin(A_ENTRY | (chance(90) ? NLA_F_NESTED : 0));
	int full = chance(60);

	for (uint16_t t = E_FAMILY; t <= E_MAX; t++) {
		int want = t <= E_REMOTE_PORT || (t >= E_SND_NXT && t <= E_RCV_NXT) ? full || chance(70)
										      : chance(25);
		if (want)
			entry_attr(t, family);
		if (want && chance(3))
			entry_attr(t, family); /* duplicated */
	}
	if (chance(5))
		entry_attr((uint16_t)(E_MAX + 1 + below(40)), family); /* unknown */
	if (chance(3))
		entry_attr(0, family); /* type 0 */
	if (depth < 24 && chance(4))
		entry_nest(depth + 1); /* nesting abuse: an entry inside an entry */
	attr_end(at);
}

/* A minimal valid add entry (local address, random peer), for batches. */
static void batch_entry(void)
{
	int v6 = chance(50);
	uint8_t raddr[16];
	size_t at = attr_begin(A_ENTRY | NLA_F_NESTED);

	for (int i = 0; i < 16; i++)
		raddr[i] = (uint8_t)rnd();
	attr_u8(E_FAMILY, v6 ? 10 : 2);
	attr(E_LOCAL_ADDR, v6 ? local6 : local4, v6 ? 16 : 4);
	attr(E_REMOTE_ADDR, raddr, v6 ? 16 : 4);
	attr_u16(E_LOCAL_PORT, (uint16_t)(1 + below(65535)));
	attr_u16(E_REMOTE_PORT, (uint16_t)(1 + below(65535)));
	attr_u32(E_SND_NXT, (uint32_t)rnd());
	attr_u32(E_RCV_NXT, (uint32_t)rnd());
	attr_end(at);
}

static uint32_t seq;
/* What each sequence number asked for, so a reply is judged by its own request (several
 * messages may go in one send): whether it was a privileged operation of the family. */
static uint8_t privileged_seq[256];
/* Privileged requests sent and not yet answered: each must get its EPERM (errors are always
 * acked), so an unprivileged sender's silence is judged too. */
static int unanswered;
/* The request behind each sequence number, for the report of a violation. */
static struct nlmsghdr sent_hdr[256];
static uint8_t sent_cmd[256];

/* Start a message: nlmsghdr + genlmsghdr, mostly right, sometimes not. */
static size_t msg_begin(uint8_t cmd, uint16_t flags)
{
	struct nlmsghdr h = {
		.nlmsg_type = chance(97) ? family_id : (uint16_t)(chance(50) ? GENL_ID_CTRL : rnd()),
		.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags),
		.nlmsg_seq = ++seq,
	};
	struct genlmsghdr g = { .cmd = cmd, .version = chance(95) ? 1 : (uint8_t)rnd() };
	size_t at = len;

	put(&h, sizeof(h));
	put(&g, sizeof(g));
	return at;
}
static void msg_end(size_t at)
{
	((struct nlmsghdr *)(msg + at))->nlmsg_len = (uint32_t)(len - at);
}

/*
 * Walk the buffer about to be sent as netlink_rcv_skb() and genl_family_rcv_msg() will, and
 * note which requests reach the permission check of an add, del, get or flush (those need
 * CAP_NET_ADMIN; get-stats does not): a request of the family, flagged NLM_F_REQUEST, with a
 * whole generic netlink header whose reserved byte is 0 and no flag but REQUEST, ACK, ECHO and
 * DUMP (genl_header_check() refuses the rest with EINVAL first, the family being strict from its
 * first operation). Whatever the damage did to the rest, an unprivileged sender must get EPERM
 * for exactly these (or EOPNOTSUPP when the flags ask a dump of an operation that has none:
 * nothing is run either way).
 */
static void classify(void)
{
	size_t off = 0;

	while (off + NLMSG_HDRLEN <= len) {
		const struct nlmsghdr *h = (const void *)(msg + off);

		if (h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > len - off)
			break;
		const struct genlmsghdr *g = (const void *)(msg + off + NLMSG_HDRLEN);
		uint16_t flags = h->nlmsg_flags;

		if ((flags & NLM_F_DUMP) == NLM_F_DUMP)
			flags &= (uint16_t)~NLM_F_DUMP;

		sent_hdr[h->nlmsg_seq % 256] = *h;
		sent_cmd[h->nlmsg_seq % 256] = h->nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN ? g->cmd : 0;
		privileged_seq[h->nlmsg_seq % 256] =
			h->nlmsg_type == family_id && (h->nlmsg_flags & NLM_F_REQUEST) &&
			h->nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN && g->cmd >= CMD_ADD && g->cmd <= CMD_FLUSH &&
			!g->reserved && !(flags & ~(NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO));
		unanswered += privileged_seq[h->nlmsg_seq % 256];
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
}

static uint8_t pick_cmd(void)
{
	if (chance(8))
		return chance(30) ? 0 : (uint8_t)(CMD_LAST + 1 + below(250));
	return (uint8_t)(CMD_ADD + below(CMD_LAST));
}

/* Build one fuzzed message (or a few, concatenated) into msg/len. */
static void build(uint8_t *cmd_out, int *dump_out)
{
	uint8_t cmd = pick_cmd();
	uint16_t flags = chance(80) ? NLM_F_ACK : 0;
	int dump = cmd == CMD_GET && chance(30);

	if (dump)
		flags |= NLM_F_DUMP;
	if (chance(3))
		flags |= (uint16_t)rnd();
	len = 0;
	size_t at = msg_begin(cmd, flags);

	if (cmd == CMD_ADD && chance(2)) {
		/* A batch at or just over the limit. */
		int n = BATCH_MAX - 1 + (int)below(3);

		for (int i = 0; i < n; i++)
			batch_entry();
		if (n > BATCH_MAX)
			st.batches_over++;
	} else {
		int nattrs = (int)below(5);

		for (int i = 0; i < nattrs; i++) {
			uint32_t k = below(100);

			if (k < 70)
				entry_nest(0);
			else if (k < 80)
				attr(A_REPLACE, NULL, 0);
			else if (k < 90) /* reply-only attributes, which the policy rejects */
				attr_u32((uint16_t)(A_STATS + below(2)), (uint32_t)rnd());
			else
				attr_u32((uint16_t)(chance(50) ? 0 : A_MAX + 1 + below(40)), (uint32_t)rnd());
		}
	}
	msg_end(at);

	/* Damage: byte flips, an attribute length past the end, a short or long nlmsg_len. */
	if (len > 20 && chance(25)) {
		int flips = 1 + (int)below(4);

		for (int i = 0; i < flips; i++)
			msg[20 + below((uint32_t)len - 20)] ^= (uint8_t)(1 + below(255));
	}
	if (chance(3))
		((struct nlmsghdr *)msg)->nlmsg_len = below((uint32_t)len + 64);
	if (chance(3) && len > 24) /* cut the message short, header and all */
		len = 20 + below((uint32_t)len - 20);
	/* Several messages in one send. */
	if (chance(5)) {
		int more = 1 + (int)below(4);

		st.multi++;
		for (int i = 0; i < more; i++) {
			size_t a2 = msg_begin(pick_cmd(), NLM_F_ACK);

			if (chance(70))
				entry_nest(0);
			msg_end(a2);
		}
	}
	*cmd_out = cmd;
	*dump_out = dump;
	classify();
}

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	int big = 4 << 20, one = 1;

	if (fd < 0)
		die("socket(NETLINK_GENERIC)");
	/* Root may exceed wmem_max (the batches are ~200 KiB); others get what they may. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return fd;
}

static uint8_t rbuf[1 << 17];

static void violation(const struct nlmsghdr *h, int error)
{
	const struct nlmsghdr *q = &sent_hdr[h->nlmsg_seq % 256];

	st.violations++;
	fprintf(stderr, "violation: reply type %u error %d seq %u to request type %u flags %#x len %u cmd %u\n",
		h->nlmsg_type, error, h->nlmsg_seq, q->nlmsg_type, q->nlmsg_flags, q->nlmsg_len,
		sent_cmd[h->nlmsg_seq % 256]);
}

/* Judge one reply. Returns 1 when it ends its request (an ack, an error, NLMSG_DONE). */
static int judge(const struct nlmsghdr *h)
{
	int privileged = privileged_seq[h->nlmsg_seq % 256];

	if (h->nlmsg_type == NLMSG_DONE) {
		/* The end of a dump: without the capability there must not have been one. */
		if (unpriv && privileged)
			violation(h, 0);
		return 1;
	}
	if (h->nlmsg_type != NLMSG_ERROR) {
		st.data++;
		/* An entry, or any answer to an add, del, get or flush, without the capability. */
		if (unpriv && privileged)
			violation(h, 0);
		return 0;
	}
	const struct nlmsgerr *e = NLMSG_DATA(h);

	if (e->error == 0) {
		st.acks++;
		if (unpriv && privileged)
			violation(h, 0);
		return 1;
	}
	st.errors++;
	if (privileged) {
		unanswered--;
		privileged_seq[h->nlmsg_seq % 256] = 0;
	}
	if (e->error == -EPERM)
		st.eperm++;
	else if (e->error == -EINVAL)
		st.einval++;
	else
		st.other_err++;
	if ((unpriv && privileged && e->error != -EPERM && e->error != -EOPNOTSUPP) ||
	    e->error > 0 || e->error < -4095)
		violation(h, e->error);
	return 1;
}

/* Read what the kernel answered, at most `max_parts` datagrams (a dump may be left half-read).
 * Generic netlink runs a request inside sendmsg(), so its answer (and a dump's first part) is
 * queued when send() returns; a dump's later parts are produced as we read. Returns 1 when the
 * last reply read ended its request. */
static int drain(int fd, int max_parts)
{
	int parts = 0, ended = 0;

	while (parts < max_parts) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS)
				continue;
			die("recv");
		}
		parts++;
		for (struct nlmsghdr *h = (void *)rbuf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
			ended = judge(h);
	}
	if (!parts)
		st.no_reply++;
	return ended;
}

int main(int argc, char **argv)
{
	unsigned long seed = 1, count = 1000;
	int c;

	while ((c = getopt(argc, argv, "s:n:ua:A:")) != -1) {
		switch (c) {
		case 's': seed = strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoul(optarg, NULL, 0); break;
		case 'u': unpriv = 1; break;
		case 'a': if (inet_pton(AF_INET, optarg, local4) != 1) return 2; break;
		case 'A': if (inet_pton(AF_INET6, optarg, local6) != 1) return 2; break;
		default:
			fprintf(stderr, "usage: rtw-fuzz-netlink -s SEED -n COUNT [-u] [-a LOCAL4] [-A LOCAL6]\n");
			return 2;
		}
	}
	if (!local4[0])
		inet_pton(AF_INET, "127.0.0.1", local4);
	if (!local6[15] && !local6[0])
		inet_pton(AF_INET6, "::1", local6);
	rng_state = seed;
	msg = malloc(BUF_SIZE);
	if (!msg)
		die("malloc");

	/* The family's id, from the controller. */
	int fd = nl_open(), fd2 = nl_open();
	{
		len = 0;
		struct nlmsghdr h = { .nlmsg_type = GENL_ID_CTRL, .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = ++seq };
		struct genlmsghdr g = { .cmd = CTRL_CMD_GETFAMILY, .version = 1 };

		put(&h, sizeof(h));
		put(&g, sizeof(g));
		attr(CTRL_ATTR_FAMILY_NAME, "rust_timewait", sizeof("rust_timewait"));
		msg_end(0);
		if (send(fd, msg, len, 0) < 0)
			die("send(getfamily)");
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
		struct nlmsghdr *r = (void *)rbuf;

		if (n < 0 || !NLMSG_OK(r, (size_t)n) || r->nlmsg_type == NLMSG_ERROR) {
			fprintf(stderr, "rtw-fuzz-netlink: family rust_timewait not found\n");
			return 1;
		}
		struct nlattr *a = (void *)((uint8_t *)NLMSG_DATA(r) + GENL_HDRLEN);
		int rem = (int)(r->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);

		for (; rem >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= rem;
		     rem -= NLA_ALIGN(a->nla_len), a = (void *)((uint8_t *)a + NLA_ALIGN(a->nla_len)))
			if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
				memcpy(&family_id, (uint8_t *)a + NLA_HDRLEN, 2);
		if (!family_id)
			return 1;
	}

	for (unsigned long i = 0; i < count; i++) {
		uint8_t cmd;
		int dump;

		unanswered = 0;
		build(&cmd, &dump);
		st.messages++;
		if (send(fd, msg, len, 0) < 0) {
			/* The socket layer refused it (size, a header it cannot route): not our code. */
			if (errno != EMSGSIZE && errno != ENOBUFS && errno != EINVAL && errno != EPERM &&
			    errno != ECONNREFUSED && errno != EOPNOTSUPP)
				die("send");
			continue;
		}
		st.sends++;
		if (!dump || unpriv) {
			drain(fd, 64);
			/* Unprivileged: every privileged request was refused inside send(). */
			if (unpriv && unanswered > 0) {
				st.violations++;
				fprintf(stderr, "violation: %d privileged request(s) of seq %u went unanswered\n",
					unanswered, seq);
			}
			unanswered = 0;
			continue;
		}
		st.dumps++;
		/* A dump: read its first part; sometimes adds, dels and flushes on the other socket
		 * while it is open; then read the rest, or close the socket with it half-read. */
		drain(fd, 1);
		if (chance(40)) {
			for (int k = 0; k < 3; k++) {
				uint8_t c2;
				int d2;

				build(&c2, &d2);
				st.messages++;
				/* Whatever it was (a dump too), read to its end. */
				if (send(fd2, msg, len, 0) >= 0)
					drain(fd2, 1 << 16);
			}
		}
		if (chance(10)) {
			st.dumps_abandoned++;
			close(fd);
			fd = nl_open();
			continue;
		}
		drain(fd, 1 << 16);
	}
	printf("fuzz-netlink seed=%lu messages=%lu sends=%lu acks=%lu errors=%lu eperm=%lu einval=%lu "
	       "other_errors=%lu data=%lu dumps=%lu dumps_abandoned=%lu batches_over_limit=%lu "
	       "multi=%lu no_reply=%lu violations=%lu%s replay='rtw-fuzz-netlink -s %lu -n %lu%s'\n",
	       seed, st.messages, st.sends, st.acks, st.errors, st.eperm, st.einval, st.other_err,
	       st.data, st.dumps, st.dumps_abandoned, st.batches_over, st.multi, st.no_reply,
	       st.violations, unpriv ? " unprivileged" : "", seed, count, unpriv ? " -u" : "");
	close(fd);
	close(fd2);
	return st.violations ? 1 : 0;
}
