#!/bin/sh
# `make bench`: table size against add rate and per-segment cost of a guarded tuple's duplicate
# ACKs (T7, dropped: the hook's parse + lookup + decision, no reply). Run under QEMU TCG, so the
# absolute numbers are an emulated CPU's; what matters is how they move with the table size.
. /tests/net.inc
S=/proc/sys/net/rust_timewait
insmod /lib/modules/rust_timewait.ko || exit 1
net_up
echo 16777216 >$S/maxtcptw
K=${K:-20000}
echo "bench: entries add_ms adds_per_s ns_per_segment(matching) ns_per_segment(no module entry)"
for n in 0 1000 10000 100000 300000; do
	twctl flush >/dev/null
	awk -v n=$n -v h=$H4 -v p=$P4 'BEGIN { for (i = 0; i < n; i++)
		printf "%s:%d %s:%d snd_nxt=1 rcv_nxt=1\n", h, 1024 + i % 60000, p, 2000 + int(i / 60000) }' >/tmp/bench
	t0=$(rtw-peer -M)
	[ $n = 0 ] || twctl add -f /tmp/bench --batch 1024 >/dev/null
	t1=$(rtw-peer -M)
	add_ms=$((t1 - t0))
	rate=0; [ $add_ms -gt 0 ] && rate=$(( n * 1000 / add_ms ))
	twctl add $H4:80 $P4:9999 --snd-nxt 1000 --rcv-nxt 2000 >/dev/null
	hit=$(peer -s $P4 -d $H4 -p 9999 -P 80 -q 2000 -a 1000 -f A -n $K -W 0 | sed -n 's/.*ns_per_segment=//p')
	# An ACK for a tuple nobody guards: the hook's miss path, then the stack (which answers RST).
	miss=$(peer -s $P4 -d $H4 -p 9998 -P 81 -q 2000 -a 1000 -f A -n 2000 -W 0 | sed -n 's/.*ns_per_segment=//p')
	echo "bench: $n $add_ms $rate $hit $miss"
done
net_down
rmmod rust_timewait
