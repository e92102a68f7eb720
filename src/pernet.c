// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's per network namespace glue: the pernet state and its life (init, pre_exit,
 * exit), the sysctls under net.rust_timewait, the reaper worker, the small wrappers Rust uses
 * over static inlines and macros, and the module's set-up and tear-down.
 */
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/sysctl.h>
#include <linux/workqueue.h>
#include <net/addrconf.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/route.h>
#include <net/tcp.h>

#include "glue.h"
#include "glue_internal.h"

static unsigned int rtw_net_id __read_mostly;

struct rtw_glue_net *rtw_gn(const struct net *net)
{
	return net_generic(net, rtw_net_id);
}


/* ---- small wrappers over static inlines and macros ---- */

__u64 rtw_glue_jiffies(void)
{
	return get_jiffies_64();
}

/* The entries' timeout clock: monotonic microseconds, low 32 bits. */
__u32 rtw_glue_clock_us(void)
{
	return (__u32)div_u64(ktime_get_ns(), NSEC_PER_USEC);
}

__u64 rtw_glue_usecs_to_jiffies(__u32 us)
{
	return usecs_to_jiffies(us);
}

/* The clock Linux's own TCP timestamps use (tcp_time_stamp_ms), so ts_offset means the same. */
__u32 rtw_glue_tcp_clock_ms(void)
{
	return (__u32)tcp_clock_ms();
}

int rtw_glue_sysctl_get(const struct rtw_glue_net *gn, int which)
{
	if (which < 0 || which >= RTW_GLUE_SYSCTL_COUNT)
		return 0;
	return READ_ONCE(gn->sysctl[which]);
}

void rtw_glue_port_range(const struct rtw_glue_net *gn, int *lo, int *hi)
{
	inet_get_local_port_range(gn->net, lo, hi);
}

/*
 * Linux's own limit on out-of-window replies (net.ipv4.tcp_invalid_ratelimit): written in ms,
 * kept in jiffies (proc_dointvec_ms_jiffies), compared in jiffies by __tcp_oow_rate_limited().
 */
__u32 rtw_glue_invalid_ratelimit_jiffies(const struct rtw_glue_net *gn)
{
	return READ_ONCE(gn->net->ipv4.sysctl_tcp_invalid_ratelimit);
}

/*
 * The most entries a netns may hold whatever its maxtcptw says: unbounded for one owned by the
 * initial user namespace, the initial netns's capacity otherwise, so root in a fresh user
 * namespace cannot pin more kernel memory per netns than the host allows its own (D34).
 */
__u32 rtw_glue_capacity_ceiling(const struct rtw_glue_net *gn)
{
	struct rtw_glue_net *init = rtw_gn(&init_net);

	if (gn->net->user_ns == &init_user_ns || !init->rs)
		return U32_MAX;
	return rtw_rs_capacity(init->rs);
}

/* Linux's own rule for a connect() onto a TIME_WAIT tuple (tcp_twsk_unique). */
void rtw_glue_tw_reuse(const struct rtw_glue_net *gn, __u8 *mode, __u32 *delay_ms)
{
	*mode = READ_ONCE(gn->net->ipv4.sysctl_tcp_tw_reuse);
	*delay_ms = READ_ONCE(gn->net->ipv4.sysctl_tcp_tw_reuse_delay);
}

/* The seed's in_localip(): is the address one of this netns's own? */
bool rtw_glue_addr_is_local(const struct rtw_glue_net *gn, __u8 family, const __u8 *addr)
{
	if (family == AF_INET) {
		__be32 a;

		memcpy(&a, addr, sizeof(a));
		return inet_addr_type(gn->net, a) == RTN_LOCAL;
	}
#if IS_ENABLED(CONFIG_IPV6)
	return ipv6_chk_addr(gn->net, (const struct in6_addr *)addr, NULL, 0);
#else
	return false;
#endif
}

/* Run the reaper at `expires` (jiffies) unless it is already due earlier. */
void rtw_glue_reaper_arm(struct rtw_glue_net *gn, __u64 expires)
{
	u64 now = get_jiffies_64();
	unsigned long delay = time_after64(expires, now) ? (unsigned long)(expires - now) : 0;

	/*
	 * Already due no later: nothing to do, and no shared lock taken (a re-arm on the hit path
	 * lands here nearly always). A stale read only sends us to the locked check below.
	 */
	if (delayed_work_pending(&gn->reaper)) {
		/* Pairs with the barrier in mod_delayed_work(): reap_at is written before pending. */
		smp_rmb();
		if (!time_after64(READ_ONCE(gn->reap_at), expires))
			return;
	}
	spin_lock_bh(&gn->reaper_lock);
	if (!gn->dying && (!delayed_work_pending(&gn->reaper) || time_before64(expires, gn->reap_at))) {
		WRITE_ONCE(gn->reap_at, expires);
		mod_delayed_work(system_dfl_wq, &gn->reaper, delay);
	}
	spin_unlock_bh(&gn->reaper_lock);
}

static void rtw_reaper_fn(struct work_struct *work)
{
	struct rtw_glue_net *gn = container_of(to_delayed_work(work), struct rtw_glue_net, reaper);

	rtw_rs_reap(gn->rs);
}

/* ---- sysctls ---- */

/* Validation is Rust's (policy.rs), so the bounds have one home; a refused write keeps the value. */
static int rtw_proc_int(const struct ctl_table *table, int write, void *buffer, size_t *lenp,
			loff_t *ppos)
{
	int *data = table->data;
	int val = READ_ONCE(*data);
	struct ctl_table tmp = {
		.procname = table->procname,
		.data = &val,
		.maxlen = sizeof(int),
		.mode = table->mode,
	};
	int ret = proc_dointvec(&tmp, write, buffer, lenp, ppos);

	if (write && ret == 0) {
		int which = (int)(long)table->extra1;

		if (!rtw_rs_sysctl_valid(which, val))
			return -EINVAL;
		/* Root of a user namespace may shrink its table, never grow it past the host's (D34). */
		if (which == RTW_GLUE_SYSCTL_MAXTCPTW && val > 0 &&
		    (u32)val > rtw_glue_capacity_ceiling(table->extra2))
			return -EPERM;
		/*
		 * Takeover acts in the hook: the netns gets it now, not at its first entry, and
		 * the value goes with the memory cgroup its entries are charged to.
		 */
		if (which == RTW_GLUE_SYSCTL_TAKEOVER)
			return rtw_takeover_sysctl(table->extra2, val) ?: ret;
		WRITE_ONCE(*data, val);
		/*
		 * A shorter timeout makes live entries due now (D30) and a lower bound leaves the
		 * table over it: the reaper frees and trims at once rather than at its old time.
		 */
		if (which != RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT)
			rtw_glue_reaper_arm(table->extra2, get_jiffies_64());
	}
	return ret;
}

static const struct ctl_table rtw_sysctl_template[] = {
	{ .procname = "maxtcptw", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_MAXTCPTW },
	{ .procname = "nolocaltimewait", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT },
	{ .procname = "msl_ms", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_MSL_MS },
	{ .procname = "fin_timeout_ms", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS },
	{ .procname = "takeover", .maxlen = sizeof(int), .mode = 0644,
	  .proc_handler = rtw_proc_int, .extra1 = (void *)RTW_GLUE_SYSCTL_TAKEOVER },
};

static int rtw_sysctl_register(struct rtw_glue_net *gn)
{
	struct ctl_table *table;
	int i;

	table = kmemdup(rtw_sysctl_template, sizeof(rtw_sysctl_template), GFP_KERNEL);
	if (!table)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(rtw_sysctl_template); i++) {
		table[i].data = &gn->sysctl[i];
		table[i].extra2 = gn;
	}
	gn->sysctl_hdr = register_net_sysctl_sz(gn->net, "net/rust_timewait", table,
						ARRAY_SIZE(rtw_sysctl_template));
	if (!gn->sysctl_hdr) {
		kfree(table);
		return -ENOMEM;
	}
	return 0;
}

static void rtw_sysctl_unregister(struct rtw_glue_net *gn)
{
	const struct ctl_table *table = gn->sysctl_hdr->ctl_table_arg;

	unregister_net_sysctl_table(gn->sysctl_hdr);
	kfree(table);
}

/* ---- per network namespace ---- */

static int __net_init rtw_net_init(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);
	int err, i;

	gn->net = net;
	/* Defaults and bounds have one home: logic/policy.rs. */
	for (i = 0; i < RTW_GLUE_SYSCTL_COUNT; i++)
		gn->sysctl[i] = rtw_rs_sysctl_default(i);
	INIT_DELAYED_WORK(&gn->reaper, rtw_reaper_fn);
	spin_lock_init(&gn->reaper_lock);
	mutex_init(&gn->nl_lock);
	gn->dying = false;
	gn->hooks_on = false;
	atomic_set(&gn->handoffs_waiting, 0);
	spin_lock_init(&gn->handoffs_ready_lock);
	INIT_LIST_HEAD(&gn->handoffs_ready);

	gn->tables = rtw_glue_tables_new();
	if (!gn->tables)
		return -ENOMEM;
	gn->rs = rtw_rs_net_init(gn, gn->tables);
	if (!gn->rs) {
		err = -ENOMEM;
		goto free_tables;
	}
	err = rtw_sysctl_register(gn);
	if (err)
		goto free_rs;
	return 0;

free_rs:
	rtw_rs_net_exit(gn->rs);
	gn->rs = NULL;
free_tables:
	rtw_glue_tables_free(gn->tables);
	gn->tables = NULL;
	return err;
}

/*
 * Unregistering a hook does not wait for the ones running; the pernet core puts an RCU grace
 * period between pre_exit and exit, so by exit no hook can still be using the state we free
 * (as iptable_filter does).
 */
static void __net_exit rtw_net_pre_exit(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);

	/*
	 * Sysctls and the reaper go here too: at module unload every netns's pre_exit runs before
	 * any exit, and both read the initial netns's state (rtw_glue_capacity_ceiling: a sysctl
	 * write, the reaper trimming to capacity), which the initial netns's exit frees first.
	 * Unregistering the sysctls waits for writers in flight; `dying` keeps a hook still running
	 * (until the grace period before exit) or a last write from arming the reaper again.
	 * Sysctls before hooks: a write to `takeover` registers the hooks.
	 */
	rtw_sysctl_unregister(gn);
	rtw_hooks_disable(gn);
	spin_lock_bh(&gn->reaper_lock);
	gn->dying = true;
	spin_unlock_bh(&gn->reaper_lock);
	cancel_delayed_work_sync(&gn->reaper);
}

static void __net_exit rtw_net_exit(struct net *net)
{
	struct rtw_glue_net *gn = rtw_gn(net);

	/* No hook runs any more (pre_exit + grace period), no netlink command can reach this
	 * netns and the reaper is stopped: the entries and the table go. */
	rtw_takeover_net_exit(gn);
	rtw_rs_net_exit(gn->rs);
	gn->rs = NULL;
	/* Unlinked entries wait for a grace period; the table itself has no reader left. */
	rtw_glue_tables_free(gn->tables);
	gn->tables = NULL;
}

static struct pernet_operations rtw_net_ops = {
	.init = rtw_net_init,
	.pre_exit = rtw_net_pre_exit,
	.exit = rtw_net_exit,
	.id = &rtw_net_id,
	.size = sizeof(struct rtw_glue_net),
};

/* ---- module ---- */

int rtw_glue_init(__u32 size4, __u32 align4, __u32 size6, __u32 align6)
{
	int err;

	err = rtw_glue_caches_create(size4, align4, size6, align6);
	if (err)
		return err;
	err = rtw_handoff_init();
	if (err)
		goto destroy_caches;
	err = register_pernet_subsys(&rtw_net_ops);
	if (err)
		goto handoff_exit;
	err = rtw_genl_register();
	if (err)
		goto unregister_pernet;
	rtw_bench_init();
	return 0;

unregister_pernet:
	unregister_pernet_subsys(&rtw_net_ops);
handoff_exit:
	rtw_handoff_exit();
destroy_caches:
	rtw_glue_caches_destroy();
	return err;
}

void rtw_glue_exit(void)
{
	rtw_bench_exit();
	rtw_genl_unregister();
	/* Sockets still waited for go back to Linux before the tables they would enter go. */
	rtw_handoff_exit();
	unregister_pernet_subsys(&rtw_net_ops);
	rtw_glue_caches_destroy();
}
