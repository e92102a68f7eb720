// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for rust_timewait: the kernel APIs that kernel::bindings lacks or that are static
 * inlines, macros and static tables. Kept small; the decisions are made in Rust.
 */
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "glue.h"

struct rtw_net {
	atomic64_t seen;
};

static unsigned int rtw_net_id __read_mostly;

static unsigned int rtw_hook_in(void *priv, struct sk_buff *skb,
				const struct nf_hook_state *state)
{
	struct rtw_net *rn = net_generic(state->net, rtw_net_id);

	atomic64_inc(&rn->seen);
	return NF_ACCEPT;
}

/* LOCAL_IN: only segments addressed to this host can belong to one of our connections. */
static const struct nf_hook_ops rtw_hook_ops[] = {
	{
		.hook = rtw_hook_in,
		.pf = NFPROTO_IPV4,
		.hooknum = NF_INET_LOCAL_IN,
		.priority = NF_IP_PRI_FILTER - 1,
	},
	{
		.hook = rtw_hook_in,
		.pf = NFPROTO_IPV6,
		.hooknum = NF_INET_LOCAL_IN,
		.priority = NF_IP6_PRI_FILTER - 1,
	},
};

static int __net_init rtw_net_init(struct net *net)
{
	struct rtw_net *rn = net_generic(net, rtw_net_id);

	atomic64_set(&rn->seen, 0);
	return nf_register_net_hooks(net, rtw_hook_ops, ARRAY_SIZE(rtw_hook_ops));
}

static void __net_exit rtw_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, rtw_hook_ops, ARRAY_SIZE(rtw_hook_ops));
}

static struct pernet_operations rtw_net_ops = {
	.init = rtw_net_init,
	.exit = rtw_net_exit,
	.id = &rtw_net_id,
	.size = sizeof(struct rtw_net),
};

int rtw_glue_init(void)
{
	return register_pernet_subsys(&rtw_net_ops);
}

void rtw_glue_exit(void)
{
	unregister_pernet_subsys(&rtw_net_ops);
}

u64 rtw_glue_init_net_seen(void)
{
	struct rtw_net *rn = net_generic(&init_net, rtw_net_id);

	return atomic64_read(&rn->seen);
}
