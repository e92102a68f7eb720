/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between rust_timewait's Rust code and its C glue (packet.c, pernet.c, genl.c, table.c).
 *
 * rtw_glue_*: C functions and types the Rust side uses (bindgen generates their declarations,
 *             see Kbuild, so a change here is a build error there).
 * rtw_rs_*:   Rust functions the C side calls (defined #[no_mangle] in src/rust_timewait_main.rs).
 */
#ifndef RTW_GLUE_H
#define RTW_GLUE_H

#include <linux/types.h>

/* Per-netns glue state: hooks, sysctls, the reaper. Opaque to Rust. */
struct rtw_glue_net;
/* Per-netns table (src/table.c): rhashtables, stripes, FIFOs, per-CPU counters. Opaque. */
struct rtw_glue_tables;
/* A dump's position (an rhashtable walker). Opaque. */
struct rtw_glue_walk;

/*
 * The first bytes of every entry, owned by table.c: the hash chain link and the FIFO links
 * (an rcu_head once unlinked). Opaque here; table.c checks its size against the real layout.
 * The entry's key follows it directly.
 */
struct rtw_glue_link {
	void *slots[3];
};

/* Substates (netlink attribute `substate`). */
enum rtw_glue_substate {
	RTW_GLUE_TIME_WAIT = 0,
	RTW_GLUE_FIN_WAIT2 = 1,
};

/* Counters, in the order of spec/rust_timewait.yaml's `stats` set (attribute = index + 1). */
enum rtw_glue_stat {
	RTW_GLUE_STAT_ENTRIES,
	RTW_GLUE_STAT_ADDED,
	RTW_GLUE_STAT_REFUSED_NOLOCAL,
	RTW_GLUE_STAT_REFUSED_EXISTS,
	RTW_GLUE_STAT_REFUSED_INVALID,
	RTW_GLUE_STAT_RECYCLED,
	RTW_GLUE_STAT_EXPIRED,
	RTW_GLUE_STAT_DELETED,
	RTW_GLUE_STAT_SYN_REUSE,
	RTW_GLUE_STAT_RST_DROPPED,
	RTW_GLUE_STAT_PAWS_DROPPED,
	RTW_GLUE_STAT_ACKS_SENT,
	RTW_GLUE_STAT_RSTS_SENT,
	RTW_GLUE_STAT_REPLIES_RATELIMITED,
	RTW_GLUE_STAT_SEGMENTS_DROPPED,
	RTW_GLUE_STAT_FIN_WAIT2_COMPLETED,
	RTW_GLUE_STAT_FIN_WAIT2_TIMEOUTS,
	RTW_GLUE_STAT_LOCAL_CONNECT_REUSE,
	RTW_GLUE_STAT_LOCAL_CONNECT_DROPPED,
	RTW_GLUE_STAT_CAPACITY,
	RTW_GLUE_STAT_REPLIES_FAILED,
	RTW_GLUE_STAT_HANDOFFS_DEFERRED,
	RTW_GLUE_STAT_HANDOFFS_RETURNED,
	RTW_GLUE_STAT_TAKEN_OVER,
	RTW_GLUE_STAT_COUNT,
};

/* Per-netns sysctls under net.rust_timewait. */
enum rtw_glue_sysctl {
	RTW_GLUE_SYSCTL_MAXTCPTW,
	RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT,
	RTW_GLUE_SYSCTL_MSL_MS,
	RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS,
	RTW_GLUE_SYSCTL_TAKEOVER,
	RTW_GLUE_SYSCTL_COUNT,
};

/*
 * What Linux's TIME_WAIT keeps of the socket for its replies and its lookup (tcp_time_wait,
 * inet_twsk_alloc): tw_tos / tw_tclass, tw_mark, tw_bound_dev_if, tw_flowlabel, tw_priority,
 * tw_txhash. Fixed for an entry's life; all 0 for an entry added without a socket.
 */
struct rtw_glue_conn {
	__u32 mark;
	__u32 bound_ifindex;
	__u32 priority;
	__u32 txhash;
	/* IPv6 flow label the socket set (20 bits); 0: the reply gets one as auto_flowlabels says. */
	__u32 flowlabel;
	/* What Linux's TIME_WAIT keeps: an AF_INET socket's TOS, an AF_INET6 one's traffic class. */
	__u8 tos;
};

/* One entry as it crosses netlink: the key (family, addresses, ports) and the state. */
struct rtw_glue_entry {
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 ifindex;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 ts_recent;
	__u32 ts_offset;
	__u32 expires_ms;
	__u16 lport;
	__u16 rport;
	__u16 last_win;
	__u8 family;
	__u8 rcv_wscale;
	__u8 substate;
	bool has_ts;
	bool ts_recent_valid;
	struct rtw_glue_conn conn;
	/* Part of the key: the L3 master (VRF) of conn.bound_ifindex, 0 for none (C fills it). */
	__u32 l3index;
	/* adopt only (C): the socket given as the caller's fd rather than by its tuple. */
	bool by_fd;
	__s32 fd;
	/* adopt only (C): leave the socket in TCP_REPAIR mode once adopted. */
	bool repair;
	/* adopt by fd only (C): adopt the socket when it reaches FIN_WAIT2 (handoff.c). */
	bool wait;
};

/* A segment seen by a hook for a tuple the table holds: its first bytes from the IP header on. */
struct rtw_glue_pkt {
	const __u8 *head;
	__u32 head_len;
	__u32 skb_len;
	/* IPv6: bytes of extension headers between the fixed header and TCP, left out of head. */
	__u32 ext_len;
	/* A GRO TCP packet, whose IP length field may be 0 (BIG TCP). */
	bool gso_tcp;
	__u8 family;
	/* LOCAL_OUT (a local connect()) rather than LOCAL_IN. */
	bool output;
	/*
	 * LOCAL_OUT: the connecting socket chose its port itself (bind() with a port), so Linux
	 * checked the tuple without a TIME_WAIT to take over (tcp_twsk_unique with twp NULL).
	 */
	bool bound_port;
	/* The interface the segment came in on (LOCAL_IN) or goes out of (LOCAL_OUT). */
	__u32 ifindex;
	/*
	 * LOCAL_IN: the device and L3 master (VRF) TCP's own lookup would match a bound socket
	 * against (inet_iif/inet_sdif, inet6_iif/inet6_sdif), and net.ipv4.tcp_l3mdev_accept.
	 */
	__u32 dif;
	__u32 sdif;
	bool l3mdev_accept;
	/* The IPv4 TOS or IPv6 traffic class byte (DSCP and ECN) of the segment. */
	__u8 dsfield;
	/* Link-layer broadcast or multicast (directed broadcasts included): never answered. */
	bool link_bcast;
	/* For rtw_glue_pkt_csum_ok() and rtw_glue_reply(). */
	void *ctx;
};

/* Module set-up: slab caches for both entry sizes, pernet state, the genl family. */
int rtw_glue_init(__u32 size4, __u32 align4, __u32 size6, __u32 align6);
void rtw_glue_exit(void);

/* ---- table.c ---- */
int rtw_glue_caches_create(__u32 size4, __u32 align4, __u32 size6, __u32 align6);
void rtw_glue_caches_destroy(void);
void *rtw_glue_entry_alloc(__u8 family);
void *rtw_glue_entry_alloc_atomic(__u8 family);
void rtw_glue_entry_free(__u8 family, void *entry);
struct rtw_glue_tables *rtw_glue_tables_new(void);
void rtw_glue_tables_free(struct rtw_glue_tables *t);
void *rtw_glue_table_lookup(struct rtw_glue_tables *t, __u8 family, const void *key);
__u32 rtw_glue_table_stripe(const struct rtw_glue_tables *t, __u8 family, const void *key);
__u32 rtw_glue_table_stripes(void);
void rtw_glue_stripe_lock(struct rtw_glue_tables *t, __u32 stripe);
void rtw_glue_stripe_unlock(struct rtw_glue_tables *t, __u32 stripe);
int rtw_glue_table_insert(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry,
			  __u8 class);
void rtw_glue_table_unlink(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry);
void rtw_glue_table_requeue(struct rtw_glue_tables *t, __u8 family, __u32 stripe, void *entry,
			    __u8 class);
void *rtw_glue_table_head(struct rtw_glue_tables *t, __u8 family, __u32 stripe, __u8 class);
__u32 rtw_glue_table_len(const struct rtw_glue_tables *t);
__u32 rtw_glue_table_buckets(struct rtw_glue_tables *t, __u8 family);
void rtw_glue_stat_add(struct rtw_glue_tables *t, __u32 stat, __u64 n);
void rtw_glue_stats_read(const struct rtw_glue_tables *t, __u64 *out);
void rtw_glue_cond_resched(void);
void rtw_glue_rcu_read_lock(void);
void rtw_glue_rcu_read_unlock(void);
struct rtw_glue_walk *rtw_glue_walk_new(struct rtw_glue_tables *t);
void rtw_glue_walk_free(struct rtw_glue_walk *w);
int rtw_glue_walk(struct rtw_glue_tables *t, struct rtw_glue_walk *w,
		  int (*visit)(void *arg, __u8 family, void *entry), void *arg);

__u64 rtw_glue_jiffies(void);
__u32 rtw_glue_clock_us(void);
__u64 rtw_glue_usecs_to_jiffies(__u32 us);
__u32 rtw_glue_tcp_clock_ms(void);

int rtw_glue_sysctl_get(const struct rtw_glue_net *gn, int which);
void rtw_glue_port_range(const struct rtw_glue_net *gn, int *lo, int *hi);
__u32 rtw_glue_invalid_ratelimit_jiffies(const struct rtw_glue_net *gn);
void rtw_glue_tw_reuse(const struct rtw_glue_net *gn, __u8 *mode, __u32 *delay_ms);
__u32 rtw_glue_capacity_ceiling(const struct rtw_glue_net *gn);
bool rtw_glue_addr_is_local(const struct rtw_glue_net *gn, __u8 family, const __u8 *addr);
void rtw_glue_reaper_arm(struct rtw_glue_net *gn, __u64 expires);
int rtw_glue_hooks_enable(struct rtw_glue_net *gn);

/*
 * A reply's routing and marking, from the entry (conn) and the reply itself: in, the DSCP the
 * flow is routed by; out, the flow label to write (IPv6: the socket's, or auto_flowlabels's).
 */
struct rtw_glue_reply_params {
	const struct rtw_glue_conn *conn;
	__u8 tos;
	__u8 hop_limit;
	__u32 flowlabel;
};

bool rtw_glue_pkt_csum_ok(void *ctx);
void *rtw_glue_reply_route(void *ctx, struct rtw_glue_reply_params *p, int *err);
void rtw_glue_route_release(void *dst);
int rtw_glue_reply_send(void *ctx, void *dst, const struct rtw_glue_conn *conn, const __u8 *pkt,
			__u32 len);

/* Implemented in Rust (src/rust_timewait_main.rs). */
void *rtw_rs_net_init(struct rtw_glue_net *gn, struct rtw_glue_tables *tables);
void rtw_rs_net_exit(void *rs);
/*
 * `entry` was found for the segment's tuple by rtw_glue_table_lookup, or added for it by
 * rtw_rs_take_over, in the RCU read-side section the call runs in.
 */
unsigned int rtw_rs_hook(void *rs, const struct rtw_glue_pkt *pkt, void *entry);
void rtw_rs_reap(void *rs);
int rtw_rs_add(void *rs, const struct rtw_glue_entry *e, bool replace);
/*
 * Softirq (takeover.c): add `e` if its tuple is free and the table has room, nothing else; the
 * entry added, for the hook to process the segment with (valid for the caller's RCU section).
 */
int rtw_rs_take_over(void *rs, const struct rtw_glue_entry *e, void **entry);
int rtw_rs_del(void *rs, const struct rtw_glue_entry *key);
int rtw_rs_get(void *rs, struct rtw_glue_entry *e);
/* A walked entry (under RCU) as it crosses netlink; -ENOENT if it is gone or expired. */
int rtw_rs_export(void *rs, __u8 family, void *entry, struct rtw_glue_entry *out);
void rtw_rs_count_invalid(void *rs);
__u32 rtw_rs_flush(void *rs);
void rtw_rs_stats(void *rs, __u64 *out);
bool rtw_rs_sysctl_valid(int which, int value);
int rtw_rs_sysctl_default(int which);
__u32 rtw_rs_capacity(void *rs);

#endif
