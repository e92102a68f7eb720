#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# FIN_WAIT_2 entries (behaviour §5), expiry after 2MSL, recycling when full, nolocaltimewait,
# and the entry size beside Linux's own TIME_WAIT socket.
. /tests/tap.inc
. /tests/net.inc
S=/proc/sys/net/rust_timewait
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
net_up

# F5: a handed-off FIN_WAIT_2 entry sees the peer's FIN: ACK, ts_recent learned, TIME_WAIT.
check "add a FIN_WAIT_2 entry (timestamps, ts_recent unknown)" \
	twctl add $H4:8080 $P4:41000 --snd-nxt 500 --rcv-nxt 900 --win 300 --ts --ts-offset 0 --fw2
T="-s $P4 -d $H4 -p 41000 -P 8080"
out=$(peer $T -q 900 -a 500 -f FA -t 4242:1)
diag "$out"
check_eq "F5 ACK of the FIN" A "$(echo "$out" | field flags)"
check_eq "F5 ack = rcv_nxt + 1" 901 "$(echo "$out" | field ack)"
ts=$(echo "$out" | field ts)
check_eq "F5 TSecr = the FIN's TSval" 4242 "${ts#*:}"
check_eq "F5 now TIME_WAIT" 1 "$(twctl list --state time-wait | grep -c "$H4:8080")"
check_eq "F5 counted" 1 "$(stat fin_wait2_completed)"

# F6: new data on a FIN_WAIT_2 entry: the application has closed, so RST and delete.
check "add another FIN_WAIT_2 entry" twctl add $H4:8081 $P4:41001 --snd-nxt 700 --rcv-nxt 100 --win 300 --fw2
out=$(peer -s $P4 -d $H4 -p 41001 -P 8081 -q 100 -a 700 -f PA -l 10)
check_eq "F6 data: RST" R "$(echo "$out" | field flags)"
check_eq "F6 RST seq = the segment's ack" 700 "$(echo "$out" | field seq)"
check_eq "F6 entry deleted" 0 "$(twctl list | grep -c "$H4:8081")"

# Expiry: with msl_ms=1500, a TIME_WAIT entry dies after 3 s (and a FIN_WAIT_2 one after
# fin_timeout_ms=3000) and the reaper frees it. Long enough for a slow emulated guest to look
# at them first.
twctl flush >/dev/null
echo 1500 > $S/msl_ms
echo 3000 > $S/fin_timeout_ms
check "add short-lived entries" twctl add $H4:9000 $P4:42000 --snd-nxt 1 --rcv-nxt 1
twctl add $H4:9001 $P4:42001 --snd-nxt 1 --rcv-nxt 1 --fw2 >/dev/null
check_eq "two entries" 2 "$(stat entries)"
sleep 5
check_eq "both gone after 2MSL / fin_timeout" 0 "$(stat entries)"
check_eq "expired counted" 1 "$(stat expired)"
check_eq "FIN_WAIT_2 timeout counted" 1 "$(stat fin_wait2_timeouts)"
out=$(peer -s $P4 -d $H4 -p 42000 -P 9000 -q 0 -a 1 -f FA)
check_eq "T12 after expiry the stack answers (RST)" R "$(echo "$out" | field flags)"
# An expired entry no longer guards its tuple even before the reaper frees it: adding the
# tuple again is not EEXIST.
echo 300 > $S/msl_ms
check "re-add after expiry" sh -c "twctl add $H4:9002 $P4:42002 --snd-nxt 1 --rcv-nxt 1 &&
	sleep 0.7 && twctl add $H4:9002 $P4:42002 --snd-nxt 2 --rcv-nxt 2"
echo 30000 > $S/msl_ms

# Capacity: maxtcptw=32; the 33rd add recycles the oldest (the seed's tcp_tw_2msl_scan(1)).
twctl flush >/dev/null
echo 32 > $S/maxtcptw
entry_lines 33 10000 43000 >/tmp/batch
check "batch add of 33 entries" twctl add -f /tmp/batch
check_eq "table holds maxtcptw" 32 "$(stat entries)"
check_eq "recycled counted" 1 "$(stat recycled)"
check_eq "the oldest was recycled" 0 "$(twctl list | grep -c "$H4:10000 ")"
check_eq "the newest is there" 1 "$(twctl list | grep -c "$H4:10032 ")"
twctl flush >/dev/null
echo 0 > $S/maxtcptw

# nolocaltimewait: an entry whose peer is local is not created, and the add says so.
echo 1 > $S/nolocaltimewait
check "nolocaltimewait: local peer refused" sh -c "! twctl add 127.0.0.1:80 127.0.0.1:5555 --snd-nxt 1 --rcv-nxt 1"
check_eq "nolocaltimewait: counted" 1 "$(stat refused_nolocal)"
check "nolocaltimewait: remote peer still taken" twctl add $H4:80 $P4:5555 --snd-nxt 1 --rcv-nxt 1
echo 0 > $S/nolocaltimewait
check "an existing tuple is refused (EEXIST)" sh -c "! twctl add $H4:80 $P4:5555 --snd-nxt 1 --rcv-nxt 1"
check "... unless replace" twctl add $H4:80 $P4:5555 --snd-nxt 7 --rcv-nxt 1 --replace

# A dump larger than one netlink message: 2000 entries, every one listed exactly once.
entry_lines 2000 20000 44000 >/tmp/batch
check "batch add of 2000 entries" twctl add -f /tmp/batch
# The dump walks the rhashtable with its walker: a resize during the walk (the table may still
# be growing in its worker) restarts it, so an entry may be listed twice but none is missed (D28).
twctl list | grep "$P4:44000" >/tmp/dump
check_eq "dump lists all 2000 (many messages)" 2000 "$(awk '{print $4}' /tmp/dump | sort -u | wc -l)"
check "... and nothing that is not there" [ "$(wc -l </tmp/dump)" -ge 2000 ]
check_eq "flush reports what it removed" 2001 "$(twctl --json flush | tr ',{}' '\n\n\n' | sed -n 's/^ *"flushed": *\([0-9]*\).*/\1/p')"

# docs/behaviour.md §7: a local connect() onto a guarded tuple. Without timestamps it is dropped
# (the connect retries, as against Linux's own TIME_WAIT); with timestamps and an entry at
# least 1 s old it takes the tuple over (tcp_tw_reuse's rule).
twctl add 127.0.0.1:5000 127.0.0.1:6000 --snd-nxt 1 --rcv-nxt 1 >/dev/null
out=$(rtw-peer -C -s 127.0.0.1 -d 127.0.0.1 -p 5000 -P 6000 -W 700)
check_eq "local connect without timestamps: SYN dropped, connect waits" connect=timeout "$out"
check "... counted" [ "$(stat local_connect_dropped)" -ge 1 ]
check_eq "... and the entry stays" 1 "$(twctl list | grep -c '127.0.0.1:5000 ')"
twctl add 127.0.0.1:5001 127.0.0.1:6000 --snd-nxt 1 --rcv-nxt 1 --ts-recent 5 >/dev/null
sleep 1
out=$(rtw-peer -C -s 127.0.0.1 -d 127.0.0.1 -p 5001 -P 6000 -W 2000)
check_eq "local connect with timestamps: the SYN reaches the stack (no listener)" connect=refused "$out"
check_eq "local connect with timestamps after 1 s reuses the tuple" 1 "$(stat local_connect_reuse)"
check_eq "... and the entry is gone" 0 "$(twctl list | grep -c '127.0.0.1:5001 ')"
# A socket that bound its own port is checked as Linux checks it, with no TIME_WAIT to take
# over (tcp_twsk_unique with twp NULL): a timestamp seen from the peer is enough, whatever
# net.ipv4.tcp_tw_reuse says.
echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse
twctl add 127.0.0.1:5002 127.0.0.1:6000 --snd-nxt 1 --rcv-nxt 1 --ts-recent 5 >/dev/null
out=$(rtw-peer -C -s 127.0.0.1 -d 127.0.0.1 -p 5002 -P 6000 -W 2000)
check_eq "tcp_tw_reuse=0, port bound by the socket: reused (a timestamp was seen)" connect=refused "$out"
# A port connect() picks is checked with the TIME_WAIT to take over: then the netns's
# tcp_tw_reuse decides (0 never, 2 loopback only, 1 always) and the entry must be older than
# tcp_tw_reuse_delay. A one-port range makes connect() pick the guarded port.
range=$(cat /proc/sys/net/ipv4/ip_local_port_range)
echo "5003 5003" > /proc/sys/net/ipv4/ip_local_port_range
twctl add 127.0.0.1:5003 127.0.0.1:6000 --snd-nxt 1 --rcv-nxt 1 --ts-recent 5 >/dev/null
sleep 1.2
out=$(rtw-peer -C -s 127.0.0.1 -d 127.0.0.1 -p 0 -P 6000 -W 700)
check_eq "tcp_tw_reuse=0, port picked by connect(): no reuse, the SYN is dropped" connect=timeout "$out"
echo 2 > /proc/sys/net/ipv4/tcp_tw_reuse
out=$(rtw-peer -C -s 127.0.0.1 -d 127.0.0.1 -p 0 -P 6000 -W 2000)
check_eq "tcp_tw_reuse=2: a loopback tuple is reused" connect=refused "$out"
twctl add $H4:5003 $P4:6000 --snd-nxt 1 --rcv-nxt 1 --ts-recent 5 >/dev/null
sleep 1.2
d0=$(stat local_connect_dropped)
rtw-peer -C -s $H4 -d $P4 -p 0 -P 6000 -W 300 >/dev/null
check "tcp_tw_reuse=2: a non-loopback tuple is not" [ "$(stat local_connect_dropped)" -gt "$d0" ]
echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse
r0=$(stat local_connect_reuse)
rtw-peer -C -s $H4 -d $P4 -p 0 -P 6000 -W 300 >/dev/null
check "tcp_tw_reuse=1: it is" [ "$(stat local_connect_reuse)" -gt "$r0" ]
echo 2 > /proc/sys/net/ipv4/tcp_tw_reuse
echo "$range" > /proc/sys/net/ipv4/ip_local_port_range

# Slab object sizes: ours beside Linux's own TIME_WAIT socket.
v4=$(cat /sys/kernel/slab/rust_timewait4/object_size)
v6=$(cat /sys/kernel/slab/rust_timewait6/object_size)
tw=$(cat /sys/kernel/slab/tw_sock_TCP/object_size)
echo "# entry_size: ipv4=$v4 ipv6=$v6 tw_sock_TCP=$tw"
# D45: the connection's attributes and its VRF (64 bytes before them).
check "IPv4 entry is at most 96 bytes ($v4)" [ "$v4" -le 96 ]
check "IPv4 entry is smaller than tw_sock_TCP ($v4 < $tw)" [ "$v4" -lt "$tw" ]

net_down
check "rmmod" rmmod rust_timewait
tap_done
