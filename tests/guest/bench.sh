#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` (qemu/bench.sh writes docs/bench.md from what this prints). Two halves:
# - end to end, here: a flood of segments to a tuple nobody guards and request/response over
#   veth, with 1M entries in the table against the module not loaded, and the memory per entry;
# - per call, in the kernel (src/bench.c, through /sys/kernel/debug/rust_timewait/bench): the
#   hook against Linux's own lookup, two vCPUs, growth, reaping.
# Every result line is "rtw-bench: <figure> min=.. median=.. max=.. <unit>"; "rtw-bench-note:"
# lines carry the absolute values behind a figure.
. /tests/net.inc
B=/sys/kernel/debug/rust_timewait
KO=/lib/modules/rust_timewait.ko
# rtw.bench_scale=N divides the table sizes and traffic (a quick functional run, not a result).
scale=1
for arg in $(cat /proc/cmdline); do
	case "$arg" in rtw.bench_scale=*) scale=${arg#rtw.bench_scale=} ;; esac
done
N=$((1000000 / scale))
[ $N -ge 1000 ] || N=1000
FLOOD=$((10000 / (scale > 10 ? 10 : scale)))
RR=$((5000 / (scale > 10 ? 10 : scale)))
# Nine loaded samples, each between two unloaded ones (see ratios below): at least five, and
# enough for a median to stand against the host's slow stretches.
CYCLES=9
ECHO_PORT=7000

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

bench() {
	echo "rtw-bench-note: cpus_online=$(grep -c ^processor /proc/cpuinfo) scale=$scale entries=$N flood_segments=$FLOOD rr_transactions=$RR"
	net_up
	# The request/response client needs an address in the peer netns; floods bypass it (AF_PACKET).
	$IP netns exec peer ip addr add $P4/24 dev veth1
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
	# Loaded sample i against the mean of the unloaded samples just before and just after it: a
	# slow stretch of the host moves both sides.
	ratios() { echo "$1" | awk -v l="$2" '{ n = split(l, L, " "); for (i = 1; i <= n; i++)
		printf "%.4f ", L[i] / (($i + $(i + 1)) / 2) }'; }
	echo "rtw-bench: miss_flood_1m_vs_unloaded $(stats $(ratios "$uf" "$lf")) x samples=$CYCLES"
	echo "rtw-bench: rr_1m_vs_unloaded $(stats $(ratios "$ur" "$lr")) x samples=$CYCLES"
	echo "rtw-bench: bytes_per_entry_ipv4 $(stats $bytes) B samples=$CYCLES"

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
