#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Unload and reload the module while a peer floods a guarded tuple and netns come and go: the
# hooks must be gone (and no hook still running) before the per-netns state is freed. A stress
# test, not a proof: a use after free here shows up as an Oops, a slub_debug BUG or a WARNING,
# which fail the boot, but the race window is narrow (under TCG an injected version of that bug
# survived five cycles), so the guarantee itself is the pre_exit/exit split in pernet.c.
. /tests/tap.inc
. /tests/net.inc
net_up
guard() { twctl add $H4:80 $P4:7777 --snd-nxt 1000 --rcv-nxt 2000 >/dev/null 2>&1; }
insmod /lib/modules/rust_timewait.ko && guard
# Duplicate ACKs for the guarded tuple, back to back, for the whole test.
peer -s $P4 -d $H4 -p 7777 -P 80 -q 2000 -a 1000 -f A -n 400000 -W 0 >/tmp/flood.out 2>&1 & flood=$!
i=0 ok_cycles=0
while [ $i -lt 5 ]; do
	unshare -n true &
	rmmod rust_timewait && insmod /lib/modules/rust_timewait.ko && guard && ok_cycles=$((ok_cycles + 1))
	wait $!
	i=$((i + 1))
done
check_eq "5 unload/reload cycles under a flood" 5 "$ok_cycles"
check "the flood was still running through the cycles" kill -0 $flood
kill $flood 2>/dev/null
wait $flood 2>/dev/null
check "final rmmod" rmmod rust_timewait
net_down
tap_done
