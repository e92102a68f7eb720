#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# kmemleak: with the module loaded and busy (entries added, deleted, expired, handed through a
# netns that goes away), no object the module allocated is left unreferenced.
. /tests/tap.inc
. /tests/net.inc
S=/proc/sys/net/rust_timewait
mount -t debugfs none /sys/kernel/debug 2>/dev/null
K=/sys/kernel/debug/kmemleak
[ -w $K ] || { not_ok "kmemleak is available"; tap_done; exit 0; }
echo clear >$K
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
net_up
echo 1000 >$S/msl_ms
echo 1000 >$S/fin_timeout_ms
entry_lines 3000 1024 1 >/tmp/leak
check "add 3000 entries" twctl add -f /tmp/leak
check "delete one" twctl del $H4:1026 $P4:1
twctl add "[$H6]:80" "[$P6]:1" --snd-nxt 1 --rcv-nxt 2 --fw2 >/dev/null
peer -s $P4 -d $H4 -p 1 -P 1024 -q 0 -a 1 -f FA >/dev/null
peer -s $P4 -d $H4 -p 1 -P 1027 -q 5 -a 1 -f S >/dev/null
unshare -n sh -c "twctl add 127.0.0.1:80 127.0.0.2:1 --snd-nxt 1 --rcv-nxt 1" >/dev/null
# Everything expires (2 s) and is reaped in batches; then the table fills again and is flushed.
sleep 3
check_eq "all expired and reaped" 0 "$(stat entries)"
check "add them again" twctl add -f /tmp/leak
twctl flush >/dev/null
check_eq "no unreferenced object allocated by the module" 0 "$(module_leaks)"
net_down
check "rmmod" rmmod rust_timewait
tap_done
