#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seeded netlink fuzzing (tests/tools/rtw-fuzz-netlink.c): damaged and random messages to every
# operation of the family, from root, from an unprivileged user, from root of a user namespace
# over the initial netns (both must get EPERM for every add, del, get, dump and flush), and from
# an unprivileged user in a user namespace and netns of its own. rtw.fuzz=full (make test-debug) sends 100,000;
# make test a quick 4,000. The seed is rtw.seed=; a failure replays with the command printed.
. /tests/tap.inc
. /tests/net.inc
seed=$(arg seed 1)
if [ "$(arg fuzz quick)" = full ]; then n=100000; else n=4000; fi
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
# fuzz WHO N CMD...: run one fuzzer, show its line, count what it sent.
sent=0
fuzz() {
	who=$1 count=$2; shift 2
	out=$("$@" 2>&1); rc=$?
	{ echo "$out" | grep '^violation' | head -n 20; echo "$out" | grep -v '^violation'; } | sed 's/^/# /'
	check_eq "$who: $count messages, no violation (rc 0)" 0 "$rc"
	m=$(echo "$out" | sed -n 's/.* sends=\([0-9]*\) .*/\1/p')
	sent=$((sent + ${m:-0}))
}
fuzz "root" $((n * 6 / 10)) rtw-fuzz-netlink -s $seed -n $((n * 6 / 10))
# Entries for the unprivileged runs to fail to see: a get or dump that answered would show one.
entry_lines 20 30000 40000 | sed 's/10.9.0.1/127.0.0.1/' | twctl add -f - >/dev/null
fuzz "unprivileged user (EPERM)" $((n / 10)) \
	su nobody -s /bin/sh -c "rtw-fuzz-netlink -u -s $((seed + 1)) -n $((n / 10))"
fuzz "root of a user namespace, initial netns (EPERM)" $((n / 10)) \
	unshare -U -r rtw-fuzz-netlink -u -s $((seed + 2)) -n $((n / 10))
# Any local user can make a user namespace with a netns it administers: the adds there are
# bounded by the host's capacity and charged to the user (D34).
fuzz "an unprivileged user's own user namespace and netns" $((n * 2 / 10)) \
	su nobody -s /bin/sh -c "unshare -r -n sh -c 'ip link set lo up; rtw-fuzz-netlink -s $((seed + 3)) -n $((n * 2 / 10))'"
check "at least $n messages sent" [ "$sent" -ge "$n" ]
# Nothing in flight now: the counters of the initial netns add up.
check_eq "counters add up: added = entries + expired + deleted + recycled + reused" 0 "$(balance)"
# The family still works as it should.
check "add after the fuzzing" twctl add 127.0.0.1:80 10.1.2.3:4 --snd-nxt 1 --rcv-nxt 2 --replace
check "get" twctl get 127.0.0.1:80 10.1.2.3:4
check "flush" twctl flush
check_eq "no entry left" 0 "$(stat entries)"
check "rmmod" rmmod rust_timewait
survived "netlink_messages=$sent"
tap_done
