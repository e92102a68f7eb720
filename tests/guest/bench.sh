#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` (qemu/bench.sh writes docs/bench.md from what this prints). Two halves:
# - end to end, here: a flood of segments to a tuple nobody guards and request/response over
#   veth, with 1M entries in the table against the module not loaded, and the memory per entry;
# - per call, in the kernel (src/bench.c, through /sys/kernel/debug/rust_timewait/bench): the
#   hook against Linux's own lookup, two vCPUs, growth, reaping;
# - a server closing its connections with the non-blocking handoff against close()
#   (handoff_vs_close, twctl/examples/handoff_server.rs).
# Every result line is "rtw-bench: <figure> min=.. median=.. max=.. <unit>"; "rtw-bench-note:"
# lines carry the absolute values behind a figure.
. /tests/net.inc
B=/sys/kernel/debug/rust_timewait
KO=/lib/modules/rust_timewait.ko
# rtw.bench_scale=N divides the table sizes and traffic (a quick functional run, not a result).
# rtw.bench_only=handoff_vs_close measures that figure alone (a quick look at it).
scale=1 only=""
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rtw.bench_scale=*) scale=${arg#rtw.bench_scale=} ;;
	rtw.bench_only=*) only=${arg#rtw.bench_only=} ;;
	esac
done
N=$((1000000 / scale))
[ $N -ge 1000 ] || N=1000
FLOOD=$((10000 / (scale > 10 ? 10 : scale)))
RR=$((5000 / (scale > 10 ? 10 : scale)))
# Nine loaded samples, each between two unloaded ones (see ratios below): at least five, and
# enough for a median to stand against the host's slow stretches.
CYCLES=9
ECHO_PORT=7000
# handoff_vs_close: connections timed per sample (the server serves until this many are done and
# times the last nine tenths), client threads, how long a client keeps a finished connection
# open before it closes (longer than Linux's 40 ms delayed ACK, so the server's FIN is
# acknowledged on its own and the socket reaches FIN_WAIT2, as with a browser or a client pool).
HC=$((8000 / (scale > 10 ? 10 : scale)))
HC_CLIENTS=4
# Cycles for handoff_vs_close, whose samples vary by ±10 % on a loaded host: more of them than
# of the reported handoff figures, so its median moves less.
HC_CYCLES=21
HC_HOLD_MS=300
HC_PORT=7100
SS=/usr/local/bin/ss

grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug

# kbench CMD: run a command of src/bench.c and print its kernel lines (the console interleaves
# them with everything else; the kernel log keeps them whole).
kbench() {
	dmesg -c >/dev/null
	echo "$1" >$B/bench
	rc=$?
	dmesg | sed -n 's/^\[[^]]*\] *//; /^rtw-bench/p'
	return $rc
}
# One flood from the peer: ACKs to 10.9.0.1:81, where no socket listens, so the stack answers
# each with a RST; rtw-peer prints the time per segment sendto() took (the receive path runs
# within it, see rtw-peer.c).
# Pinned to CPU0: veth delivers on the sending CPU, so the whole path runs on one vCPU.
flood() { taskset 1 $IP netns exec peer rtw-peer -i veth1 -m "$HOST_MAC" -s $P4 -d $H4 -p 9998 -P 81 \
	-q 2000 -a 1000 -f A -n $FLOOD -W 0 | sed -n 's/.*ns_per_segment=//p'; }
# One-byte request/response over veth from the peer netns to an echo server here; client and
# server share CPU0, so no cross-CPU wakeup adds its noise.
rr() { taskset 1 $IP netns exec peer rtw-peer -T -d $H4 -P $ECHO_PORT -n $RR | sed -n 's/.*ns_per_transaction=//p'; }
# best3 CMD: the fastest of three runs of CMD. The emulator's vCPUs only ever lose time to the
# host, so the fastest run is the one the host disturbed least.
best3() { { $1; $1; $1; } | sort -n | head -n1; }
# stats LIST: "min=.. median=.. max=.." of a list of numbers (three decimals).
stats() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END {
	printf "min=%.3f median=%.3f max=%.3f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
# slab FILE: the first number of a /sys/kernel/slab/rust_timewait4 file.
slab() { cut -d' ' -f1 /sys/kernel/slab/rust_timewait4/$1; }
# ratios UNLOADED LOADED: loaded sample i against the mean of the unloaded samples just before
# and just after it (one more unloaded sample than loaded ones): a slow stretch of the host moves
# both sides.
ratios() { echo "$1" | awk -v l="$2" '{ n = split(l, L, " "); for (i = 1; i <= n; i++) {
	d = ($i + $(i + 1)) / 2; printf "%.4f ", d ? L[i] / d : 0 } }'; }
# tcpext NAME: a TcpExt counter of /proc/net/netstat.
tcpext() { awk -v k="$1" '/^TcpExt:/ { if (!n) { for (i = 2; i <= NF; i++) c[i] = $i; n = 1 }
	else for (i = 2; i <= NF; i++) if (c[i] == k) print $i }' /proc/net/netstat; }

# handoff_sample MODE: one run of the event-loop server on a fresh port (--loop: close(),
# --takeover: close() with net.rust_timewait.takeover set, --batch: HandoffBatch, the wait in
# the kernel; --queue: HandoffQueue, the wait in userspace) under the client load from the peer
# netns; prints its connections/s.
handoff_sample() {
	HC_PORT=$((HC_PORT + 1))
	mode=$1 takeover=0
	[ "$mode" != --takeover ] || mode=--loop takeover=1
	echo $takeover >/proc/sys/net/rust_timewait/takeover
	handoff_server $H4:$HC_PORT $HC $mode >/tmp/hs.out 2>/tmp/hs.err &
	srv=$!
	i=0
	until $SS -ltnH | grep -q "$H4:$HC_PORT "; do
		i=$((i + 1))
		[ $i -lt 600 ] || break
		sleep 0.05
	done
	$IP netns exec peer handoff_server --load $H4:$HC_PORT $HC_CLIENTS $HC_HOLD_MS >/tmp/hl.out &
	load=$!
	wait $srv
	rc=$?
	wait $load
	echo 0 >/proc/sys/net/rust_timewait/takeover
	echo "rtw-bench-note: handoff_vs_close sample mode=${1#--} rc=$rc $(grep '^rate' /tmp/hs.out | sed 's/^rate //') $(grep '^served' /tmp/hs.out | tr -d ',:') $(cat /tmp/hl.out) server_errors=$(wc -l </tmp/hs.err)" >&2
	head -n 3 /tmp/hs.err >&2
	sed -n 's/^rate conn_per_s=\([0-9.]*\).*/\1/p' /tmp/hs.out
}

# handoff_vs_close: the same one-threaded event-loop server, closing with close() or with the
# non-blocking handoff, under the same client load; both with the module loaded. Plain first
# and last, alternating; each handoff sample against the mean of the plain samples around it.
handoff_vs_close() {
	insmod $KO || exit 1
	# Both sides keep every connection's TIME_WAIT for the whole run: Linux's default bound
	# here (tcp_max_tw_buckets, from this 1 GiB guest's ehash size: 4096) would let close()
	# skip the TIME_WAIT of most connections (TCPTimeWaitOverflow), and the module's automatic
	# capacity would recycle entries.
	tw_buckets=$(cat /proc/sys/net/ipv4/tcp_max_tw_buckets)
	echo 1048576 >/proc/sys/net/ipv4/tcp_max_tw_buckets
	echo 1048576 >/proc/sys/net/rust_timewait/maxtcptw
	echo "rtw-bench-note: handoff_vs_close setup connections_per_sample=$HC clients=$HC_CLIENTS hold_ms=$HC_HOLD_MS tcp_max_tw_buckets=$(cat /proc/sys/net/ipv4/tcp_max_tw_buckets) (was $tw_buckets) maxtcptw=$(cat /proc/sys/net/rust_timewait/maxtcptw) msl_ms=$(cat /proc/sys/net/rust_timewait/msl_ms)"
	# Untimed: ARP, the netlink family, the first connections.
	handoff_sample --queue >/dev/null 2>&1
	tw_overflow=$(tcpext TCPTimeWaitOverflow)
	hp="" hk="" hb="" hq=""
	i=0
	while [ $i -le $HC_CYCLES ]; do
		hp="$hp $(handoff_sample --loop)"
		[ $i -lt $HC_CYCLES ] || break
		# Each handoff sample sits between the same two plain ones. The target's figure
		# (takeover) is in every cycle, the reported ones (batch, queue) in the first $CYCLES;
		# where all three run, they take turns at going first.
		if [ $i -ge $CYCLES ]; then
			hk="$hk $(handoff_sample --takeover)"
		else
			case $((i % 3)) in
			0)
				hk="$hk $(handoff_sample --takeover)"
				hb="$hb $(handoff_sample --batch)"
				hq="$hq $(handoff_sample --queue)" ;;
			1)
				hb="$hb $(handoff_sample --batch)"
				hq="$hq $(handoff_sample --queue)"
				hk="$hk $(handoff_sample --takeover)" ;;
			2)
				hq="$hq $(handoff_sample --queue)"
				hk="$hk $(handoff_sample --takeover)"
				hb="$hb $(handoff_sample --batch)" ;;
			esac
		fi
		i=$((i + 1))
	done
	echo "rtw-bench-note: handoff_vs_close conn_per_s plain:$hp takeover:$hk queue:$hq batch:$hb"
	# The last sockets taken reach FIN_WAIT2 after the server is done with them.
	sleep 2
	m=""
	for c in capacity entries added recycled fin_wait2_completed fin_wait2_timeouts syn_reuse acks_sent handoffs_deferred handoffs_returned taken_over; do
		m="$m $c=$(stat $c)"
	done
	echo "rtw-bench-note: handoff_vs_close module$m linux_tw_overflow=$(($(tcpext TCPTimeWaitOverflow) - tw_overflow))"
	echo "rtw-bench: handoff_vs_close $(stats $(ratios "$hp" "$hk")) x samples=$HC_CYCLES"
	echo "rtw-bench: handoff_batch_vs_close $(stats $(ratios "$hp" "$hb")) x samples=$CYCLES"
	echo "rtw-bench: handoff_queue_vs_close $(stats $(ratios "$hp" "$hq")) x samples=$CYCLES"
	twctl flush >/dev/null
	rmmod rust_timewait || exit 1
	echo $tw_buckets >/proc/sys/net/ipv4/tcp_max_tw_buckets
}

bench() {
	echo "rtw-bench-note: cpus_online=$(grep -c ^processor /proc/cpuinfo) scale=$scale entries=$N flood_segments=$FLOOD rr_transactions=$RR"
	net_up
	# The request/response client needs an address in the peer netns; floods bypass it (AF_PACKET).
	$IP netns exec peer ip addr add $P4/24 dev veth1
	if [ "$only" = handoff_vs_close ]; then
		echo "rtw-bench-note: only handoff_vs_close (rtw.bench_only)"
		handoff_vs_close
		net_down
		return
	fi
	taskset 1 rtw-peer -E -s $H4 -p $ECHO_PORT &
	echo_pid=$!
	sleep 1
	# Untimed: ARP, the first connection, caches.
	flood >/dev/null
	rr >/dev/null

	uf="" ur="" lf="" lr="" bytes=""
	i=0
	while [ $i -le $CYCLES ]; do
		uf="$uf $(best3 flood)"
		ur="$ur $(best3 rr)"
		[ $i -lt $CYCLES ] || break
		insmod $KO || exit 1
		kbench "fill $N" | tee /tmp/fill
		buckets=$(sed -n 's/.*buckets4=\([0-9]*\).*/\1/p' /tmp/fill)
		entries=$(sed -n 's/.*fill entries=\([0-9]*\).*/\1/p' /tmp/fill)
		# Slab pages actually held per entry (partial slabs included) plus 8 bytes per bucket of
		# the rhashtable, over the entries.
		slab_bytes=$(( $(slab slabs) * (4096 << $(slab order)) ))
		b=$(awk -v s=$slab_bytes -v bk="$buckets" -v n="$entries" 'BEGIN { printf "%.3f", (s + bk * 8) / n }')
		bytes="$bytes $b"
		echo "rtw-bench-note: bytes_per_entry_ipv4 entries=$entries slab_size=$(slab slab_size) objs_per_slab=$(slab objs_per_slab) order=$(slab order) slabs=$(slab slabs) objects=$(slab objects) buckets4=$buckets per_entry=$b"
		lf="$lf $(best3 flood)"
		lr="$lr $(best3 rr)"
		kbench flush >/dev/null
		rmmod rust_timewait || exit 1
		i=$((i + 1))
	done
	# Where a flood's extra cost comes from: the hooks on the path (module loaded, one entry) or the
	# table's size (N entries), each against the module not loaded, three rounds.
	du="" d1="" dn=""
	for r in 1 2 3; do
		du="$du $(best3 flood)"
		insmod $KO || exit 1
		kbench "fill 1" >/dev/null
		d1="$d1 $(best3 flood)"
		kbench "fill $N" >/dev/null
		dn="$dn $(best3 flood)"
		kbench flush >/dev/null
		rmmod rust_timewait || exit 1
	done
	echo "rtw-bench-note: flood_parts ns_per_segment unloaded:$du hooks_1_entry:$d1 hooks_${N}_entries:$dn"
	kill $echo_pid
	echo "rtw-bench-note: flood ns_per_segment unloaded:$uf loaded:$lf"
	echo "rtw-bench-note: rr ns_per_transaction unloaded:$ur loaded:$lr"
	echo "rtw-bench-note: tw_sock_TCP slab_size=$(cat /sys/kernel/slab/tw_sock_TCP/slab_size 2>/dev/null || echo none) object_size=$(cat /sys/kernel/slab/tw_sock_TCP/object_size 2>/dev/null || echo none)"
	# Loaded sample i against the mean of the unloaded samples just before and just after it.
	echo "rtw-bench: miss_flood_1m_vs_unloaded $(stats $(ratios "$uf" "$lf")) x samples=$CYCLES"
	echo "rtw-bench: rr_1m_vs_unloaded $(stats $(ratios "$ur" "$lr")) x samples=$CYCLES"
	echo "rtw-bench: bytes_per_entry_ipv4 $(stats $bytes) B samples=$CYCLES"
	handoff_vs_close

	# The per-call figures, in the kernel, with the module loaded once more.
	insmod $KO || exit 1
	echo $scale >$B/scale
	kbench all || echo "rtw-bench-note: in-kernel figures failed"
	# A quick run keeps kmemleak on (qemu/bench.sh): nothing the benchmark allocated may be left.
	# kmemleak reports only objects older than 5 s, and needs two scans to be sure.
	K=/sys/kernel/debug/kmemleak
	if [ $scale -gt 1 ] && [ -w $K ] && ! grep -q kmemleak=off /proc/cmdline; then
		sleep 6
		echo scan >$K
		echo scan >$K
		echo "rtw-bench-note: kmemleak unreferenced_rust_timewait=$(grep -c rust_timewait $K)"
		sed -n '1,40p' $K
	fi
	rmmod rust_timewait
	net_down
}

# Everything as it comes, and into a file: printed again at the end, together, when no kernel
# message can be woven into a line on the console (the host reads that copy).
bench 2>&1 | tee /tmp/results
sleep 1
echo "rtw-bench-results:"
grep '^rtw-bench' /tmp/results
