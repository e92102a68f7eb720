#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seeded segment fuzzing (tests/tools/rtw-fuzz-segments.c) through a tun device into the
# guest's own stack: random and damaged IPv4 and IPv6 segments (truncated, bad offsets and
# checksums, odd options, fragments, extension headers, jumbo and zero lengths, GSO and partial
# checksums, IPv4 fragment pairs) aimed at guarded tuples in both substates and beside them.
# What the IP layer refuses (lengths that lie, lone fragments, jumbograms shorter than 64 KiB)
# never reaches the hook, and is sent anyway. The entries are put back before every round.
# rtw.fuzz=full (make test-debug): 1,000,000 segments; make test: 40,000. Every TCP segment the
# stack sends back must carry a right checksum.
. /tests/tap.inc
. /tests/net.inc
seed=$(arg seed 1)
# Entries are put back every round: a round's SYNs, RSTs and data end most of them within a few
# thousand segments, and a segment that finds none tests only the miss path.
if [ "$(arg fuzz quick)" = full ]; then rounds=200 per=5000; else rounds=8 per=5000; fi
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
$IP tuntap add dev rtwfz0 mode tun vnet_hdr
$IP addr add 10.7.0.1/24 dev rtwfz0
$IP -6 addr add fd07::1/64 dev rtwfz0 nodad
$IP link set rtwfz0 up
# 64 peer ports a family: 40000-40031 TIME_WAIT (half with timestamps), 40032-40063 FIN_WAIT_2.
: >/tmp/fz-entries
for fam in 4 6; do
	if [ $fam = 4 ]; then L=10.7.0.1:80 R=10.7.0.2; else L='[fd07::1]:80' R='[fd07::2]'; fi
	i=0
	while [ $i -lt 64 ]; do
		p=$((40000 + i))
		r="$R:$p"
		if [ $i -lt 16 ]; then extra=""; elif [ $i -lt 32 ]; then extra="ts ts_recent=500 ts_offset=100"; else extra="fw2"; fi
		[ $i -ge 48 ] && extra="fw2 ts"
		echo "$L $r snd_nxt=1000 rcv_nxt=2000 win=512 wscale=$((i % 15)) $extra" >>/tmp/fz-entries
		i=$((i + 1))
	done
done
total=0 written=0 round=0
while [ $round -lt $rounds ]; do
	twctl add --replace -f /tmp/fz-entries >/tmp/fz-add 2>&1 || { sed 's/^/# /' /tmp/fz-add; not_ok "round $round: entries put back"; }
	out=$(rtw-fuzz-segments -s $((seed + round)) -n $per -i rtwfz0 -p 80 -P 40000 -k 64 -q 1000 -a 2000 2>&1)
	rc=$?
	if [ $rc != 0 ]; then
		echo "$out" | sed 's/^/# /'
		not_ok "round $round: rc $rc"
	fi
	n=$(echo "$out" | sed -n 's/.* segments=\([0-9]*\) .*/\1/p')
	w=$(echo "$out" | sed -n 's/.* written=\([0-9]*\) .*/\1/p')
	total=$((total + ${n:-0})) written=$((written + ${w:-0}))
	round=$((round + 1))
done
echo "$out" | sed 's/^/# last round: /'
check_eq "$((rounds * per)) segments sent, every reply well-formed" $((rounds * per)) "$total"
twctl stats | sed 's/^/# /'
# Hits: segments the module consumed or let through as a new SYN. At least one in ten must have
# found a live entry, or the fuzzing tested little more than the miss path.
hits=$(($(stat segments_dropped) + $(stat syn_reuse)))
check "at least a tenth of the segments hit a live entry ($hits of $total)" [ "$hits" -ge $((total / 10)) ]
check "the engine answered (acks sent)" [ "$(stat acks_sent)" -gt 0 ]
sleep 0.5
check_eq "counters add up: added = entries + expired + deleted + recycled + reused" 0 "$(balance)"
check "entries can be put back" twctl add --replace -f /tmp/fz-entries
check_eq "all 128 guarded" 128 "$(stat entries)"
$IP link del rtwfz0
check "rmmod" rmmod rust_timewait
survived "segments=$written"
tap_done
