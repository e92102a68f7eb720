// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's generic netlink family: numbering (spec/rust_timewait.yaml), strict
 * policies, parsing with extack naming the attribute, and the add, del, get, dump, flush and
 * get-stats operations, which hand each request to Rust, and adopt (adopt.c).
 */
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/ipv6.h>
#include <net/l3mdev.h>

#include "glue.h"
#include "glue_internal.h"

/* ---- generic netlink numbering: must match spec/rust_timewait.yaml ---- */
#define RTW_GENL_NAME "rust_timewait"
#define RTW_GENL_VERSION 1

enum {
	RTW_CMD_UNSPEC,
	RTW_CMD_ADD,
	RTW_CMD_DEL,
	RTW_CMD_GET,
	RTW_CMD_FLUSH,
	RTW_CMD_GET_STATS,
	RTW_CMD_ADOPT,
};

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
	RTW_E_TOS,
	RTW_E_MARK,
	RTW_E_BOUND_IFINDEX,
	RTW_E_FLOWLABEL,
	RTW_E_PRIORITY,
	RTW_E_TXHASH,
	RTW_E_FD,
	RTW_E_REPAIR,
	RTW_E_WAIT,
	__RTW_E_MAX,
};
#define RTW_E_MAX (__RTW_E_MAX - 1)

/* Entries per add request: bounds the kernel memory one message can pin while it is parsed. */
#define RTW_ADD_BATCH_MAX 4096
/*
 * Per adopt request: its reply carries each entry's whole state, about 210 bytes, and must fit
 * the caller's receive buffer with the ACK behind it (rmem_default is 208 KiB): 256 make 54 KiB.
 */
#define RTW_ADOPT_BATCH_MAX 256


/* ---- generic netlink ---- */

/* An IPv6 flow label has 20 bits (RFC 8200 §6). */
static const struct netlink_range_validation rtw_flowlabel_range = { .max = 0xfffff };

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
	[RTW_E_TOS] = { .type = NLA_U8 },
	[RTW_E_MARK] = { .type = NLA_U32 },
	[RTW_E_BOUND_IFINDEX] = { .type = NLA_U32 },
	[RTW_E_FLOWLABEL] = NLA_POLICY_FULL_RANGE(NLA_U32, &rtw_flowlabel_range),
	[RTW_E_PRIORITY] = { .type = NLA_U32 },
	[RTW_E_TXHASH] = { .type = NLA_U32 },
	[RTW_E_FD] = { .type = NLA_U32 },
	[RTW_E_REPAIR] = { .type = NLA_FLAG },
	[RTW_E_WAIT] = { .type = NLA_FLAG },
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

/* What a request's entry nest must hold. */
enum rtw_parse {
	/* The key only (del, get). */
	RTW_PARSE_KEY,
	/* The key and the state (add). */
	RTW_PARSE_FULL,
	/*
	 * The key, or an fd of the caller's instead; and whether to leave it in repair, or to wait
	 * for its FIN_WAIT2 (adopt).
	 */
	RTW_PARSE_ADOPT,
};

/* Parse one `entry` nest (already validated against rtw_entry_policy) for `what`. */
static int rtw_parse_entry(struct net *net, const struct nlattr *nest, enum rtw_parse what,
			   struct rtw_glue_entry *e, struct netlink_ext_ack *extack)
{
	bool full = what == RTW_PARSE_FULL;
	static const int key_attrs[] = { RTW_E_FAMILY, RTW_E_LOCAL_ADDR, RTW_E_REMOTE_ADDR,
					 RTW_E_LOCAL_PORT, RTW_E_REMOTE_PORT };
	static const int state_attrs[] = { RTW_E_SND_NXT, RTW_E_RCV_NXT, RTW_E_LAST_WIN };
	struct nlattr *tb[RTW_E_MAX + 1];
	unsigned int alen;
	int err, i;

	err = nla_parse_nested(tb, RTW_E_MAX, nest, rtw_entry_policy, extack);
	if (err)
		return err;
	if (what != RTW_PARSE_ADOPT && (tb[RTW_E_FD] || tb[RTW_E_REPAIR] || tb[RTW_E_WAIT])) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_FD] ?: tb[RTW_E_REPAIR] ?: tb[RTW_E_WAIT],
				    "fd, repair, wait: for adopt only");
		return -EINVAL;
	}
	if (what == RTW_PARSE_ADOPT && tb[RTW_E_FD]) {
		static const int tuple_attrs[] = { RTW_E_FAMILY, RTW_E_LOCAL_ADDR,
						   RTW_E_REMOTE_ADDR, RTW_E_LOCAL_PORT,
						   RTW_E_REMOTE_PORT, RTW_E_IFINDEX,
						   RTW_E_BOUND_IFINDEX };

		/* The socket says which connection it is: one source of truth. */
		for (i = 0; i < ARRAY_SIZE(tuple_attrs); i++) {
			if (tb[tuple_attrs[i]]) {
				NL_SET_ERR_MSG_ATTR(extack, tb[tuple_attrs[i]],
						    "fd: give the socket or its tuple, not both");
				return -EINVAL;
			}
		}
		memset(e, 0, sizeof(*e));
		e->by_fd = true;
		e->fd = nla_get_u32(tb[RTW_E_FD]);
		/* Waited for, it is adopted in repair mode: the caller has closed its fd by then. */
		e->wait = nla_get_flag(tb[RTW_E_WAIT]);
		e->repair = e->wait || nla_get_flag(tb[RTW_E_REPAIR]);
		return 0;
	}
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

		/* Its segments arrive as IPv4: an IPv6 entry would never see them. */
		if (ipv6_addr_v4mapped(l) || ipv6_addr_v4mapped(r)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[ipv6_addr_v4mapped(l) ? RTW_E_LOCAL_ADDR :
							      RTW_E_REMOTE_ADDR],
					    "IPv4-mapped address: give the IPv4 tuple with family AF_INET");
			return -EINVAL;
		}
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
	/* Part of the key: the VRF of the device the socket was bound to (D45). */
	e->conn.bound_ifindex = nla_get_u32_default(tb[RTW_E_BOUND_IFINDEX], 0);
	if (e->conn.bound_ifindex) {
		struct net_device *dev;

		rcu_read_lock();
		dev = dev_get_by_index_rcu(net, e->conn.bound_ifindex);
		e->l3index = dev ? l3mdev_master_ifindex_rcu(dev) : 0;
		rcu_read_unlock();
		if (!dev) {
			NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_BOUND_IFINDEX],
					    "bound-ifindex: no such device in this netns");
			return -ENODEV;
		}
	}
	/* Repair mode only for the caller's own socket, never one found by its tuple. */
	if (tb[RTW_E_REPAIR] || tb[RTW_E_WAIT]) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_REPAIR] ?: tb[RTW_E_WAIT],
				    "repair, wait: only with fd");
		return -EINVAL;
	}
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
	e->conn.tos = nla_get_u8_default(tb[RTW_E_TOS], 0);
	e->conn.mark = nla_get_u32_default(tb[RTW_E_MARK], 0);
	e->conn.flowlabel = nla_get_u32_default(tb[RTW_E_FLOWLABEL], 0);
	e->conn.priority = nla_get_u32_default(tb[RTW_E_PRIORITY], 0);
	e->conn.txhash = nla_get_u32_default(tb[RTW_E_TXHASH], 0);
	if (e->conn.flowlabel && e->family != AF_INET6) {
		NL_SET_ERR_MSG_ATTR(extack, tb[RTW_E_FLOWLABEL], "flowlabel: IPv6 only");
		return -EINVAL;
	}
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

/* What rtw_put_entry() writes besides the key. */
#define RTW_PUT_RESULT 1
#define RTW_PUT_STATE 2

static int rtw_put_conn(struct sk_buff *skb, const struct rtw_glue_conn *c)
{
	if ((c->tos && nla_put_u8(skb, RTW_E_TOS, c->tos)) ||
	    (c->mark && nla_put_u32(skb, RTW_E_MARK, c->mark)) ||
	    (c->bound_ifindex && nla_put_u32(skb, RTW_E_BOUND_IFINDEX, c->bound_ifindex)) ||
	    (c->flowlabel && nla_put_u32(skb, RTW_E_FLOWLABEL, c->flowlabel)) ||
	    (c->priority && nla_put_u32(skb, RTW_E_PRIORITY, c->priority)) ||
	    (c->txhash && nla_put_u32(skb, RTW_E_TXHASH, c->txhash)))
		return -EMSGSIZE;
	return 0;
}

static int rtw_put_entry(struct sk_buff *skb, const struct rtw_glue_entry *e, int what,
			 int result)
{
	unsigned int alen = e->family == AF_INET ? 4 : 16;
	struct nlattr *nest = nla_nest_start(skb, RTW_A_ENTRY);

	if (!nest)
		return -EMSGSIZE;
	/* An adopt by fd whose socket was not found has no tuple to tell: its fd says which. */
	if (e->family && (nla_put_u8(skb, RTW_E_FAMILY, e->family) ||
			  nla_put(skb, RTW_E_LOCAL_ADDR, alen, e->laddr) ||
			  nla_put(skb, RTW_E_REMOTE_ADDR, alen, e->raddr) ||
			  nla_put_u16(skb, RTW_E_LOCAL_PORT, e->lport) ||
			  nla_put_u16(skb, RTW_E_REMOTE_PORT, e->rport)))
		goto cancel;
	if (e->by_fd && nla_put_u32(skb, RTW_E_FD, e->fd))
		goto cancel;
	if ((what & RTW_PUT_RESULT) && nla_put_s32(skb, RTW_E_RESULT, result))
		goto cancel;
	if (what & RTW_PUT_STATE) {
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
		if (rtw_put_conn(skb, &e->conn))
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

/* One adopt result with the entry's state, at its largest: every attribute of the set once. */
static size_t rtw_adopt_result_size(void)
{
	return rtw_result_size() +
	       3 * nla_total_size(sizeof(u8)) +		/* rcv-wscale, substate, tos */
	       nla_total_size(sizeof(u16)) +		/* last-win */
	       2 * nla_total_size(0) +			/* has-ts, ts-recent-valid */
	       12 * nla_total_size(sizeof(u32));	/* the u32s, fd included */
}

/*
 * The entry nests of a batch request (add, adopt), every one parsed before any is acted on, so
 * a malformed request changes nothing. Returns the count, or a negative errno with extack set.
 */
static int rtw_parse_batch(struct genl_info *info, const char *op, int max, enum rtw_parse what,
			   struct rtw_glue_entry **out)
{
	struct netlink_ext_ack *extack = info->extack;
	struct rtw_glue_entry *entries;
	const struct nlattr *nla;
	int n = 0, i = 0, rem, err;

	nlmsg_for_each_attr_type(nla, RTW_A_ENTRY, info->nlhdr, GENL_HDRLEN, rem)
		n++;
	if (n == 0) {
		NL_SET_ERR_MSG_FMT(extack, "%s: no entry attribute", op);
		return -EINVAL;
	}
	if (n > max) {
		NL_SET_ERR_MSG_FMT(extack, "%s: at most %d entries per message", op, max);
		return -E2BIG;
	}
	entries = kvcalloc(n, sizeof(*entries), GFP_KERNEL);
	if (!entries)
		return -ENOMEM;
	nlmsg_for_each_attr_type(nla, RTW_A_ENTRY, info->nlhdr, GENL_HDRLEN, rem) {
		err = rtw_parse_entry(genl_info_net(info), nla, what, &entries[i++], extack);
		if (err) {
			rtw_rs_count_invalid(rtw_info_rs(info));
			kvfree(entries);
			return err;
		}
	}
	*out = entries;
	return n;
}

/*
 * A reply to `info` for `cmd` with room for `size` bytes, its header put (*hdr): the message,
 * or ERR_PTR(-ENOMEM) / ERR_PTR(-EMSGSIZE).
 */
static struct sk_buff *rtw_reply_new(struct genl_info *info, u8 cmd, size_t size, void **hdr)
{
	struct sk_buff *msg = genlmsg_new(size, GFP_KERNEL);

	if (!msg)
		return ERR_PTR(-ENOMEM);
	*hdr = genlmsg_put_reply(msg, info, &rtw_genl_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return ERR_PTR(-EMSGSIZE);
	}
	return msg;
}

static int rtw_nl_add(struct sk_buff *skb, struct genl_info *info)
{
	bool replace = nla_get_flag(info->attrs[RTW_A_REPLACE]);
	struct rtw_glue_entry *entries;
	struct sk_buff *msg;
	void *hdr;
	int n, i, err;

	n = rtw_parse_batch(info, "add", RTW_ADD_BATCH_MAX, RTW_PARSE_FULL, &entries);
	if (n < 0)
		return n;

	msg = rtw_reply_new(info, RTW_CMD_ADD, n * rtw_result_size(), &hdr);
	if (IS_ERR(msg)) {
		err = PTR_ERR(msg);
		goto out;
	}
	/* Each entry's own outcome: a batch reports exactly which entries were taken. */
	mutex_lock(&rtw_gn(genl_info_net(info))->nl_lock);
	for (i = 0; i < n; i++) {
		int result = rtw_rs_add(rtw_info_rs(info), &entries[i], replace);

		if (rtw_put_entry(msg, &entries[i], RTW_PUT_RESULT, result)) {
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
	return rtw_parse_entry(genl_info_net(info), found, RTW_PARSE_KEY, e, info->extack);
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
	msg = rtw_reply_new(info, RTW_CMD_GET, NLMSG_GOODSIZE, &hdr);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
	if (rtw_put_entry(msg, &e, RTW_PUT_STATE, 0)) {
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
	if (rtw_put_entry(arg->skb, &e, RTW_PUT_STATE, 0)) {
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

/* One adopt entry's outcome, kept until the answer is out. */
struct rtw_adopt_outcome {
	int result;
	/* Adopted with `repair`: the socket, held for an undo. */
	struct sock *in_repair;
	/* Taken with `wait`: the handoff, committed once the answer is out, else cancelled. */
	struct rtw_handoff *waiting;
};

/*
 * Take back the entries of an adoption whose caller will not hear of it: each socket put in
 * repair mode leaves it first, so none is ever in repair mode without its entry.
 */
static void rtw_adopt_undo(struct rtw_glue_net *gn, struct rtw_glue_entry *entries,
			   struct rtw_adopt_outcome *out, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (out[i].waiting) {
			rtw_handoff_cancel(out[i].waiting);
			out[i].waiting = NULL;
		}
		if (out[i].in_repair) {
			rtw_adopt_unrepair(out[i].in_repair);
			out[i].in_repair = NULL;
		}
	}
	mutex_lock(&gn->nl_lock);
	for (i = 0; i < n; i++)
		if (!out[i].result && !entries[i].wait)
			rtw_rs_del(gn->rs, &entries[i]);
	mutex_unlock(&gn->nl_lock);
}

/*
 * Adopt live FIN_WAIT2 connections by tuple or by the caller's fd (adopt.c), or take sockets to
 * adopt when they reach it (`wait`, handoff.c), many per message: each entry's result, and the
 * state taken when it was taken. Every entry is parsed before any is acted on; an answer that
 * cannot be delivered undoes them all.
 */
static int rtw_nl_adopt(struct sk_buff *skb, struct genl_info *info)
{
	struct rtw_glue_net *gn = rtw_gn(genl_info_net(info));
	struct rtw_adopt_outcome *out;
	struct rtw_glue_entry *entries;
	struct sk_buff *msg;
	void *hdr;
	int n, i, err;

	n = rtw_parse_batch(info, "adopt", RTW_ADOPT_BATCH_MAX, RTW_PARSE_ADOPT, &entries);
	if (n < 0)
		return n;
	out = kcalloc(n, sizeof(*out), GFP_KERNEL);
	if (!out) {
		err = -ENOMEM;
		goto free;
	}
	msg = rtw_reply_new(info, RTW_CMD_ADOPT, n * rtw_adopt_result_size(), &hdr);
	if (IS_ERR(msg)) {
		err = PTR_ERR(msg);
		goto free;
	}
	/*
	 * A server hands off in every turn of its loop: the sockets of its last turns whose FIN is
	 * acknowledged by now are adopted here, at the cost of an adoption each, and not by a
	 * worker woken for them.
	 */
	for (i = 0; i < n; i++) {
		if (entries[i].wait) {
			rtw_handoff_reap(gn, RTW_ADOPT_BATCH_MAX);
			break;
		}
	}
	for (i = 0; i < n; i++) {
		if (entries[i].wait) {
			out[i].result = rtw_handoff_arm(gn, &entries[i], &out[i].waiting);
			continue;
		}
		out[i].result = rtw_adopt(gn, &entries[i], &out[i].in_repair);
		/* As stored (and with its expiry); gone already if the peer reset it meanwhile. */
		if (!out[i].result)
			rtw_rs_get(gn->rs, &entries[i]);
	}
	for (i = 0; i < n; i++) {
		/* A socket waited for has no entry yet: its result and tuple. */
		int what = out[i].result || entries[i].wait ? RTW_PUT_RESULT :
							      RTW_PUT_RESULT | RTW_PUT_STATE;

		if (rtw_put_entry(msg, &entries[i], what, out[i].result)) {
			nlmsg_free(msg);
			rtw_adopt_undo(gn, entries, out, n);
			err = -EMSGSIZE;
			goto free;
		}
	}
	genlmsg_end(msg, hdr);
	err = genlmsg_reply(msg, info);
	/*
	 * A caller that does not learn its sockets were adopted closes them normally: Linux's own
	 * TIME_WAIT then guards the tuples, so take the entries back rather than guard twice.
	 */
	if (err)
		rtw_adopt_undo(gn, entries, out, n);
	/* The caller knows of the sockets it handed over: the module waits for them now. */
	for (i = 0; !err && i < n; i++)
		if (out[i].waiting)
			rtw_handoff_commit(out[i].waiting);
free:
	/* The answer is out (or the adoption undone): the sockets kept for the undo go. */
	for (i = 0; out && i < n; i++)
		if (out[i].in_repair)
			sock_put(out[i].in_repair);
	kfree(out);
	kvfree(entries);
	return err;
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

	msg = rtw_reply_new(info, RTW_CMD_FLUSH, NLMSG_GOODSIZE, &hdr);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
	if (nla_put_u32(msg, RTW_A_FLUSHED, n)) {
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
	msg = rtw_reply_new(info, RTW_CMD_GET_STATS, NLMSG_GOODSIZE, &hdr);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
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
	{ .cmd = RTW_CMD_ADOPT, .doit = rtw_nl_adopt, .flags = GENL_UNS_ADMIN_PERM },
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

int rtw_genl_register(void)
{
	return genl_register_family(&rtw_genl_family);
}

void rtw_genl_unregister(void)
{
	genl_unregister_family(&rtw_genl_family);
}
