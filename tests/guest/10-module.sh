#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The module's life: load, per-netns sysctls with their defaults and bounds, a netns created and
# destroyed with entries in it, unload with live entries.
. /tests/tap.inc
S=/proc/sys/net/rust_timewait
check "insmod" insmod /lib/modules/rust_timewait.ko
check "module is live" grep -q '^rust_timewait .* Live' /proc/modules
check "load message names the entry sizes" sh -c 'dmesg | grep -q "rust_timewait: loaded: entries of 96 bytes (IPv4)"'
check_eq "msl_ms default (FreeBSD's MSL)" 30000 "$(cat $S/msl_ms)"
check_eq "fin_timeout_ms default (Linux's tcp_fin_timeout)" 60000 "$(cat $S/fin_timeout_ms)"
check_eq "maxtcptw default 0 (auto)" 0 "$(cat $S/maxtcptw)"
check_eq "nolocaltimewait default 0" 0 "$(cat $S/nolocaltimewait)"
check "maxtcptw below 32 refused" sh -c "! echo 31 > $S/maxtcptw"
check_eq "refused write keeps the value" 0 "$(cat $S/maxtcptw)"
check "maxtcptw 32 accepted" sh -c "echo 32 > $S/maxtcptw"
check "msl_ms 0 refused" sh -c "! echo 0 > $S/msl_ms"
check "nolocaltimewait 2 refused" sh -c "! echo 2 > $S/nolocaltimewait"
check_eq "auto-size: half of 32768-60999, as the seed" 14115 "$(echo 0 > $S/maxtcptw; twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"capacity": *\([0-9]*\).*/\1/p')"
check "auto-size follows ip_local_port_range" sh -c "echo '40000 40063' > /proc/sys/net/ipv4/ip_local_port_range"
check_eq "auto-size never below 32" 32 "$(twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"capacity": *\([0-9]*\).*/\1/p')"
echo '32768 60999' > /proc/sys/net/ipv4/ip_local_port_range
# A netns of its own: own sysctls, own table; it goes away with entries in it.
check "a new netns has its own table and sysctls" unshare -n sh -c "
	[ \$(cat $S/msl_ms) = 30000 ] && echo 1000 > $S/msl_ms &&
	twctl add 127.0.0.1:80 127.0.0.2:1234 --snd-nxt 1 --rcv-nxt 2 &&
	[ \$(twctl list | grep -c 127.0.0.1:80) = 1 ]"
check_eq "the init netns did not see it" 0 "$(twctl list | grep -c 127.0.0.1:80)"
check_eq "nor its sysctl write" 30000 "$(cat $S/msl_ms)"
check "add entries, then unload with them live" twctl add 127.0.0.1:80 127.0.0.2:4321 --snd-nxt 1 --rcv-nxt 2
check "rmmod with live entries" rmmod rust_timewait
check "module is gone" sh -c '! grep -q "^rust_timewait " /proc/modules'
check "slab caches are gone" sh -c '! ls /sys/kernel/slab | grep -q rust_timewait'
tap_done
