#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Two vCPUs at once on the lock-free data path: a peer floods a guarded tuple (hits: re-armed
# FINs, answered) from CPU 0 and an unguarded one (misses) from CPU 1, while entries are added,
# deleted, expired and flushed, then the module is unloaded under the floods. Lockdep, PROVE_RCU,
# kmemleak and slub_debug watch; any splat fails the boot.
. /tests/tap.inc
. /tests/net.inc
S=/proc/sys/net/rust_timewait
check_eq "two CPUs online" "0-1" "$(cat /sys/devices/system/cpu/online)"
net_up
insmod /lib/modules/rust_timewait.ko || exit 1
guard() { twctl add $H4:80 $P4:7777 --snd-nxt 1000 --rcv-nxt 2000 >/dev/null 2>&1; }
guard
# veth delivers on the sending CPU: pinning the senders puts the hooks on both CPUs.
taskset 1 sh -c ". /tests/net.inc; HOST_MAC=$HOST_MAC;
	peer -s $P4 -d $H4 -p 7777 -P 80 -q 1999 -a 1000 -f FA -n 100000000 -W 0" >/tmp/hit.out 2>&1 & hit=$!
taskset 2 sh -c ". /tests/net.inc; HOST_MAC=$HOST_MAC;
	peer -s $P4 -d $H4 -p 7778 -P 81 -q 1 -a 1 -f A -n 100000000 -W 0" >/tmp/miss.out 2>&1 & miss=$!
# Entries live 3 s: long enough for each round's own add, del and list on a loaded emulator,
# short enough that earlier rounds' entries expire and are reaped while later rounds run.
echo 1500 >$S/msl_ms
rounds=0 i=0
while [ $i -lt 6 ]; do
	entry_lines 500 $((20000 + i * 500)) 45000 >/tmp/batch
	twctl add -f /tmp/batch >/dev/null 2>&1 &&
	twctl del $H4:$((20000 + i * 500)) $P4:45000 >/dev/null 2>&1 &&
	twctl list >/dev/null 2>&1 &&
	rounds=$((rounds + 1))
	# Re-guard the hit tuple if it expired.
	sleep 0.5
	guard
	[ $i = 3 ] && twctl flush >/dev/null
	i=$((i + 1))
done
check_eq "6 rounds of add/del/list/expire/flush under two floods" 6 "$rounds"
check "the hit flood ran through the rounds" kill -0 $hit
check "the miss flood ran through the rounds" kill -0 $miss
check "FINs were answered on the hit path" [ "$(stat acks_sent)" -gt 0 ]
# No more adds: every batch entry expires (3 s) and the reaper frees it while both floods run;
# only the hit tuple, re-armed by every FIN, stays.
sleep 3.5
check_eq "the reaper freed the expired entries under the floods" 1 "$(stat entries)"
echo 30000 >$S/msl_ms
check "both floods still running" kill -0 $hit $miss
check "unload under both floods" rmmod rust_timewait
check "reload under both floods" insmod /lib/modules/rust_timewait.ko
guard
sleep 0.5
check "final unload under both floods" rmmod rust_timewait
kill $hit $miss 2>/dev/null
wait $hit $miss 2>/dev/null
net_down
tap_done
