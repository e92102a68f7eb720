// SPDX-License-Identifier: GPL-2.0
/*
 * rust_timewait's handoff with the wait in the kernel (adopt by fd with `wait`; decision D46).
 *
 * A server hands the module a socket it is done with, at once, and close()s its fd; the module
 * shuts the socket down for writing (if the caller has not), keeps a reference on its file and
 * adopts it (adopt.c, in repair mode) when Linux acknowledges our FIN and wakes the socket's
 * sk_state_change: FIN_WAIT1 to FIN_WAIT2. Then it drops the file, and the close that follows
 * sends nothing. So the server pays one close() a connection and a share of one netlink
 * message, against close()'s whole tcp_close() (handoff_vs_close), and never waits for the
 * peer's ACK itself, which a Linux peer delays by 40 ms or more.
 *
 * Whenever the adoption cannot be made, the socket is closed as the caller's close() would have
 * closed it, so nothing is lost: the peer's FIN first (Linux's own TIME_WAIT keeps the tuple),
 * data received meanwhile (tcp_close() resets, RFC 2525 §2.17), a reset, our FIN not
 * acknowledged within tcp_fin_time() (then an orphan in FIN_WAIT1, as after close()), its
 * tuple guarded already (-EEXIST), or the module going away.
 */
#include <linux/file.h>
#include <linux/list.h>
#include <linux/net.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "glue.h"
#include "glue_internal.h"

/*
 * One socket waited for.
 *
 * # Invariants
 * `sock` holds a reference on the socket's file until rtw_handoff_finish(); while `sk`'s
 * sk_user_data points here, sk_state_change is rtw_handoff_state_change() and `saved` is the
 * one it replaced; the handoff is on rtw_handoffs from rtw_handoff_arm() until it is freed.
 */
struct rtw_handoff {
	struct list_head node;
	struct rtw_glue_net *gn;
	struct socket *sock;
	void (*saved)(struct sock *sk);
	struct delayed_work work;
	unsigned long deadline;
	/* The caller heard of it: from here on the module alone decides (rtw_handoff_commit). */
	bool committed;
	/* Where it stands, under gn->handoffs_ready_lock; on gn->handoffs_ready while READY. */
	enum { RTW_HANDOFF_WAITING, RTW_HANDOFF_READY, RTW_HANDOFF_FINISHING } phase;
	struct list_head ready;
	/* The tuple, as the answer told it, and the entry the adoption fills in. */
	struct rtw_glue_entry e;
};

/*
 * A socket that left FIN_WAIT1 is adopted by the netns's next adopt with `wait` (the server's
 * next flush, in its own context: no context switch, and the silent close's __fput at its
 * return to userspace, where close() would have run it), or by the worker this long after: a
 * quarter second, long beside a busy server's flushes, short beside a peer's keep-alive.
 */
#define RTW_HANDOFF_LATE (HZ / 4)

static struct workqueue_struct *rtw_handoff_wq;
/* Every handoff not yet finished, for the module's exit; `rtw_handoff_stopping` set there. */
static LIST_HEAD(rtw_handoffs);
static DEFINE_SPINLOCK(rtw_handoffs_lock);
static bool rtw_handoff_stopping;

/*
 * `h`'s socket left FIN_WAIT1: on the netns's ready list, for the next adopt with wait to
 * finish, and its work set to run RTW_HANDOFF_LATE from now in case none comes (at once when
 * the module is going). Under sk_callback_lock (either side), bottom halves off.
 */
static void rtw_handoff_ready(struct rtw_handoff *h)
{
	struct rtw_glue_net *gn = h->gn;
	bool first = false;

	spin_lock(&gn->handoffs_ready_lock);
	if (h->phase == RTW_HANDOFF_WAITING) {
		h->phase = RTW_HANDOFF_READY;
		list_add_tail(&h->ready, &gn->handoffs_ready);
		first = true;
	}
	spin_unlock(&gn->handoffs_ready_lock);
	if (READ_ONCE(rtw_handoff_stopping))
		mod_delayed_work(rtw_handoff_wq, &h->work, 0);
	else if (first)
		/* Replaces the deadline's timer, which no longer matters out of FIN_WAIT1. */
		mod_delayed_work(rtw_handoff_wq, &h->work, RTW_HANDOFF_LATE);
}

/*
 * The socket's state changed (softirq, or release_sock running its backlog; the socket is
 * locked either way): anything but FIN_WAIT1 makes the handoff ready. The reader lock
 * keeps the handoff alive: rtw_handoff_detach() takes the writer lock to unhook it.
 */
static void rtw_handoff_state_change(struct sock *sk)
{
	void (*saved)(struct sock *sk) = NULL;
	struct rtw_handoff *h;

	read_lock_bh(&sk->sk_callback_lock);
	h = __locked_read_sk_user_data_with_flags(sk, 0);
	if (h) {
		saved = h->saved;
		/*
		 * Ready: for the next request to take (a peer FIN meanwhile is Linux's to answer,
		 * and the entry is then not made), else for the worker RTW_HANDOFF_LATE from now;
		 * at once when the module is going.
		 */
		if (READ_ONCE(h->committed) && sk->sk_state != TCP_FIN_WAIT1)
			rtw_handoff_ready(h);
		/* Whoever else waits on the socket (nobody, once the caller closed its fd). */
		saved(sk);
	}
	read_unlock_bh(&sk->sk_callback_lock);
	if (!h) {
		/* Unhooked while this call was on its way: the restored callback is the one. */
		saved = READ_ONCE(sk->sk_state_change);
		if (saved != rtw_handoff_state_change)
			saved(sk);
	}
}

/* Give the socket its own callback back. Under the socket lock. */
static void rtw_handoff_detach(struct rtw_handoff *h)
{
	struct sock *sk = h->sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	sk->sk_state_change = h->saved;
	rcu_assign_sk_user_data(sk, NULL);
	write_unlock_bh(&sk->sk_callback_lock);
}

/* Off the list: rtw_handoff_exit() queues it no more. */
static void rtw_handoff_unlist(struct rtw_handoff *h)
{
	spin_lock_bh(&rtw_handoffs_lock);
	list_del(&h->node);
	spin_unlock_bh(&rtw_handoffs_lock);
}

/* Drop the file (the socket closes as close() closes it, silently if in repair) and `h`. */
static void rtw_handoff_free(struct rtw_handoff *h)
{
	atomic_dec(&h->gn->handoffs_waiting);
	sock_put(h->sock->sk);
	sockfd_put(h->sock);
	kfree(h);
}

/*
 * Take `h` to finish it: false if another already did (the worker and the next request both
 * may try), and then `h` is not to be touched again.
 */
static bool rtw_handoff_claim(struct rtw_handoff *h)
{
	struct rtw_glue_net *gn = h->gn;
	bool won;

	spin_lock_bh(&gn->handoffs_ready_lock);
	won = h->phase != RTW_HANDOFF_FINISHING;
	if (h->phase == RTW_HANDOFF_READY)
		list_del(&h->ready);
	h->phase = RTW_HANDOFF_FINISHING;
	spin_unlock_bh(&gn->handoffs_ready_lock);
	return won;
}

/*
 * Adopt the claimed `h`'s socket, or leave it to Linux, and free `h`. `in_worker`: called from
 * `h`'s own work (which cannot wait for itself); otherwise a run of it may be under way, which
 * loses the claim and is waited for.
 */
static void rtw_handoff_finish(struct rtw_handoff *h, bool in_worker)
{
	struct sock *sk = h->sock->sk;
	int err;

	lock_sock(sk);
	rtw_handoff_detach(h);
	release_sock(sk);
	rtw_handoff_unlist(h);
	/* A run queued before the detach or the unlisting: nothing can queue one after them. */
	if (in_worker)
		cancel_delayed_work(&h->work);
	else
		cancel_delayed_work_sync(&h->work);

	/*
	 * FIN_WAIT2, the entry; anything else (FIN_WAIT1 at the deadline, the peer's FIN or data
	 * first, a reset) gives the errno adopt would and leaves the socket to Linux. So does the
	 * module's exit, whose tables are about to go.
	 */
	if (READ_ONCE(rtw_handoff_stopping))
		err = -ESHUTDOWN;
	else
		err = rtw_adopt_sock(h->gn, sk, &h->e, true);
	if (err)
		rtw_glue_stat_add(h->gn->tables, RTW_GLUE_STAT_HANDOFFS_RETURNED, 1);
	rtw_handoff_free(h);
}

static void rtw_handoff_work(struct work_struct *work)
{
	struct rtw_handoff *h = container_of(to_delayed_work(work), struct rtw_handoff, work);
	struct sock *sk = h->sock->sk;
	unsigned long now;

	/*
	 * Run at the deadline, RTW_HANDOFF_LATE after the socket got ready and no request took it,
	 * or at the module's exit. Before the deadline and still in FIN_WAIT1 (a timer that fired
	 * early), wait on.
	 */
	lock_sock(sk);
	now = jiffies;
	if (sk->sk_state == TCP_FIN_WAIT1 && time_before(now, h->deadline) &&
	    !READ_ONCE(rtw_handoff_stopping)) {
		queue_delayed_work(rtw_handoff_wq, &h->work, h->deadline - now);
		release_sock(sk);
		return;
	}
	release_sock(sk);
	if (rtw_handoff_claim(h))
		rtw_handoff_finish(h, true);
}

/*
 * Adopt (or leave to Linux) up to `max` of the netns's sockets that left FIN_WAIT1, in the
 * caller's context (an adopt with `wait`, process context).
 */
void rtw_handoff_reap(struct rtw_glue_net *gn, int max)
{
	struct rtw_handoff *h, *next;
	LIST_HEAD(batch);

	spin_lock_bh(&gn->handoffs_ready_lock);
	list_for_each_entry_safe(h, next, &gn->handoffs_ready, ready) {
		if (max-- <= 0)
			break;
		h->phase = RTW_HANDOFF_FINISHING;
		list_move_tail(&h->ready, &batch);
	}
	spin_unlock_bh(&gn->handoffs_ready_lock);
	list_for_each_entry_safe(h, next, &batch, ready)
		rtw_handoff_finish(h, false);
}

/*
 * Take the caller's fd `e->fd` to adopt at FIN_WAIT2 (adopt by fd with `wait`, process context):
 * 0 and `*out` is the handoff, waiting for rtw_handoff_commit() (or rtw_handoff_cancel()), the
 * tuple in `e`; or a negative errno and nothing changed (the caller's close() does the rest).
 */
int rtw_handoff_arm(struct rtw_glue_net *gn, struct rtw_glue_entry *e, struct rtw_handoff **out)
{
	struct socket *sock = NULL;
	struct rtw_handoff *h;
	struct sock *sk;
	bool established;
	int err = 0;

	sk = rtw_adopt_fd(gn->net, e, &err, &sock);
	if (!sk)
		return err;
	/*
	 * Charged to the caller's memory cgroup, and no more than the table could hold: every
	 * handoff waiting would become an entry.
	 */
	h = kzalloc(sizeof(*h), GFP_KERNEL_ACCOUNT);
	if (!h) {
		err = -ENOMEM;
		goto put;
	}
	if (atomic_inc_return(&gn->handoffs_waiting) > rtw_rs_capacity(gn->rs)) {
		err = -ENOSPC;
		goto dec;
	}

	lock_sock(sk);
	if (READ_ONCE(sk->sk_state_change) == rtw_handoff_state_change)
		err = -EEXIST;
	/* A kernel socket does not hold its netns, which the worker needs until it is done. */
	else if (!sk->sk_net_refcnt)
		err = -EOPNOTSUPP;
	else
		err = rtw_adopt_check(sk, true);
	if (err) {
		release_sock(sk);
		goto dec;
	}
	h->gn = gn;
	h->sock = sock;
	h->e = *e;
	/* As long as Linux gives an orphan's FIN_WAIT2: the wait for our FIN's ACK is no longer. */
	h->deadline = jiffies + tcp_fin_time(sk);
	INIT_DELAYED_WORK(&h->work, rtw_handoff_work);
	spin_lock_bh(&rtw_handoffs_lock);
	if (rtw_handoff_stopping) {
		spin_unlock_bh(&rtw_handoffs_lock);
		release_sock(sk);
		err = -ESHUTDOWN;
		goto dec;
	}
	list_add(&h->node, &rtw_handoffs);
	spin_unlock_bh(&rtw_handoffs_lock);

	write_lock_bh(&sk->sk_callback_lock);
	h->saved = sk->sk_state_change;
	rcu_assign_sk_user_data(sk, h);
	sk->sk_state_change = rtw_handoff_state_change;
	write_unlock_bh(&sk->sk_callback_lock);
	established = sk->sk_state == TCP_ESTABLISHED;
	release_sock(sk);

	/* shutdown(SHUT_WR), as the caller would have: our FIN goes after anything unsent. */
	if (established)
		kernel_sock_shutdown(sock, SHUT_WR);
	*out = h;
	return 0;

dec:
	atomic_dec(&gn->handoffs_waiting);
	kfree(h);
put:
	sock_put(sk);
	sockfd_put(sock);
	return err;
}

/* The caller heard of `h`: from now on its state changes drive it. */
void rtw_handoff_commit(struct rtw_handoff *h)
{
	struct sock *sk = h->sock->sk;
	unsigned long now = jiffies;
	unsigned long delay = 0;

	rtw_glue_stat_add(h->gn->tables, RTW_GLUE_STAT_HANDOFFS_DEFERRED, 1);
	/*
	 * Serialised with the callback: a change before this saw no commit and woke nobody, so the
	 * state read here is the newer one; a change after it sees the commit and makes it ready.
	 * Still in FIN_WAIT1, the worker runs at the deadline unless the ACK comes first. Queued
	 * under the lock: the worker, which frees `h`, cannot detach before it is released; nor can
	 * a request reap it (finishing detaches first).
	 */
	write_lock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(h->committed, true);
	if (READ_ONCE(sk->sk_state) != TCP_FIN_WAIT1) {
		/* Acknowledged already (on loopback, within the shutdown): ready now. */
		rtw_handoff_ready(h);
	} else {
		if (time_before(now, h->deadline))
			delay = h->deadline - now;
		queue_delayed_work(rtw_handoff_wq, &h->work, delay);
	}
	write_unlock_bh(&sk->sk_callback_lock);
}

/*
 * The caller will not hear of `h` (its answer could not be delivered): it keeps its socket, as
 * if it had only called shutdown(SHUT_WR), and closes it normally.
 */
void rtw_handoff_cancel(struct rtw_handoff *h)
{
	struct sock *sk = h->sock->sk;

	lock_sock(sk);
	rtw_handoff_detach(h);
	release_sock(sk);
	rtw_handoff_unlist(h);
	/* Never committed, so never queued (exit waits for the netlink family): nothing left. */
	rtw_handoff_free(h);
}

int rtw_handoff_init(void)
{
	/* Unbound: the adoptions go to an idle CPU, off the server's. */
	rtw_handoff_wq = alloc_workqueue("rtw_handoff", WQ_UNBOUND, 0);
	return rtw_handoff_wq ? 0 : -ENOMEM;
}

/*
 * At module exit, after the netlink family is gone (nothing arms a handoff any more) and before
 * the tables go: every handoff still waiting is finished now, its socket left to Linux.
 */
void rtw_handoff_exit(void)
{
	struct rtw_handoff *h;
	bool empty;

	/*
	 * A worker that finishes frees its handoff, and none queues itself again once stopping;
	 * but a state change can still turn a queued run into a timer (the callback's delay),
	 * which a flush does not wait for: run them again until none is left.
	 */
	for (;;) {
		int n = 0;

		spin_lock_bh(&rtw_handoffs_lock);
		WRITE_ONCE(rtw_handoff_stopping, true);
		empty = list_empty(&rtw_handoffs);
		/* A bounded pass with bottom halves off: each finished one leaves the list. */
		list_for_each_entry(h, &rtw_handoffs, node) {
			mod_delayed_work(rtw_handoff_wq, &h->work, 0);
			if (++n == 1024)
				break;
		}
		spin_unlock_bh(&rtw_handoffs_lock);
		if (empty)
			break;
		flush_workqueue(rtw_handoff_wq);
		cond_resched();
	}
	/*
	 * No callback of ours is still running: every sk_state_change call runs under its socket's
	 * lock, which each unhooking held (lock_sock).
	 */
	destroy_workqueue(rtw_handoff_wq);
}
