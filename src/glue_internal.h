/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the C files share and Rust does not see (bindgen reads glue.h only): the per-netns glue
 * state, the hook, and the benchmark's entry points (bench.c).
 */
#ifndef RTW_GLUE_INTERNAL_H
#define RTW_GLUE_INTERNAL_H

#include <linux/memcontrol.h>
#include <linux/mutex.h>
#include <linux/netfilter.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>

#include "glue.h"

struct rtw_glue_net {
	struct net *net;
	void *rs;
	struct rtw_glue_tables *tables;
	/* The reaper: a worker, so freeing a million expired entries never holds softirq. */
	struct delayed_work reaper;
	spinlock_t reaper_lock;
	u64 reap_at;
	bool dying;
	/* Hooks are registered when the netns gets its first entry (netlink, under nl_lock). */
	bool hooks_on;
	/*
	 * Serialises this netns's add, del and flush (the family runs with parallel_ops, so one
	 * netns's long flush never holds up another netns or another genl family): the capacity
	 * check and the make-room step of an add must see no other add in between.
	 */
	struct mutex nl_lock;
	/* Sockets taken to adopt at FIN_WAIT2 and not yet adopted or returned (handoff.c). */
	atomic_t handoffs_waiting;
	/* Of those, the ones that left FIN_WAIT1, for the next adopt with wait to finish. */
	spinlock_t handoffs_ready_lock;
	struct list_head handoffs_ready;
	/* The memory cgroup takeover entries are charged to: the writer of `takeover` (D47). */
	struct mem_cgroup __rcu *takeover_memcg;
	struct ctl_table_header *sysctl_hdr;
	int sysctl[RTW_GLUE_SYSCTL_COUNT];
};

struct rtw_glue_net *rtw_gn(const struct net *net);

/* packet.c: the netfilter hook (all four registrations), and its removal at netns exit. */
unsigned int rtw_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state);
void rtw_hooks_disable(struct rtw_glue_net *gn);

/* adopt.c: a live FIN_WAIT2 socket's state made a fin-wait2 entry (netlink, process context). */
int rtw_adopt(struct rtw_glue_net *gn, struct rtw_glue_entry *e, struct sock **in_repair);
int rtw_adopt_sock(struct rtw_glue_net *gn, struct sock *sk, struct rtw_glue_entry *e,
		   bool repair);
int rtw_adopt_check(struct sock *sk, bool before_fin);
struct sock *rtw_adopt_fd(struct net *net, struct rtw_glue_entry *e, int *err,
			  struct socket **keep);
void rtw_adopt_unrepair(struct sock *sk);
struct sock *rtw_lookup_established(struct net *net, u8 family, const u8 *laddr,
				    const u8 *raddr, u16 lport, u16 rport, int dif, int sdif);

/* handoff.c: a socket taken by fd and adopted when our FIN is acknowledged (process context). */
struct rtw_handoff;
int rtw_handoff_arm(struct rtw_glue_net *gn, struct rtw_glue_entry *e, struct rtw_handoff **out);
void rtw_handoff_commit(struct rtw_handoff *h);
void rtw_handoff_cancel(struct rtw_handoff *h);
void rtw_handoff_reap(struct rtw_glue_net *gn, int max);
int rtw_handoff_init(void);
void rtw_handoff_exit(void);

/*
 * takeover.c: the peer's FIN to a connection Linux holds in FIN_WAIT2 after the server's
 * close() turns it into an entry (the hook, softirq, RCU read side); 0 and the entry in
 * `*entry` if it did.
 */
int rtw_takeover(struct rtw_glue_net *gn, struct sk_buff *skb, const struct nf_hook_state *state,
		 u8 family, unsigned int thoff, const struct tcphdr *th, const u8 *laddr,
		 const u8 *raddr, u16 lport, u16 rport, int mode, void **entry);
int rtw_takeover_sysctl(struct rtw_glue_net *gn, int val);
void rtw_takeover_net_exit(struct rtw_glue_net *gn);

/* genl.c: the generic netlink family. */
int rtw_genl_register(void);
void rtw_genl_unregister(void);

/* Benchmark (bench.c): a debugfs entry point, idle unless written to. */
extern bool rtw_bench_dry_run;
void rtw_bench_init(void);
void rtw_bench_exit(void);

#endif
