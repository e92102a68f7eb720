#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` (qemu/bench.sh writes docs/bench.md from what this prints). Two halves:
# - end to end, here: a flood of segments to a tuple nobody guards and request/response over
#   veth, with 1M entries in the table against the module not loaded, and the memory per entry;
# - per call, in the kernel (src/bench.c, through /sys/kernel/debug/rust_timewait/bench): the
#   hook against Linux's own lookup, two vCPUs, growth, reaping;
# - a server closing its connections with the non-blocking handoff against the same server
#   closing them with close(), the two side by side (handoff_vs_close,
#   twctl/examples/handoff_server.rs).
# Every result line is "rtw-bench: <figure> min=.. median=.. max=.. <unit>"; "rtw-bench-note:"
# lines carry the absolute values behind a figure.
. /tests/net.inc
B=/sys/kernel/debug/rust_timewait
KO=/lib/modules/rust_timewait.ko
# rtw.bench_scale=N divides the table sizes and traffic (a quick functional run, not a result).
# rtw.bench_only=handoff_vs_close measures that figure alone (a quick look at it);
# rtw.bench_only=profile runs qemu/profile.sh's workload (profile_workload) and nothing else.
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
# handoff_vs_close: connections timed per sample (each server serves until this many are done
# and times the last nine tenths), client threads per server, how long a client keeps a finished
# connection open before it closes (longer than Linux's 40 ms delayed ACK, so the server's FIN is
# acknowledged on its own and the socket reaches FIN_WAIT2, as with a browser or a client pool).
HC=$((8000 / (scale > 10 ? 10 : scale)))
HC_CLIENTS=4
# Samples of handoff_vs_close: more of them than of the reported handoff figures, so its median
# moves less.
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
# tcpext NAME SIDE: a TcpExt counter of /proc/net/netstat, in handoff side SIDE's netns (side).
tcpext() { side "$2" awk -v k="$1" '/^TcpExt:/ { if (!n) { for (i = 2; i <= NF; i++) c[i] = $i; n = 1 }
	else for (i = 2; i <= NF; i++) if (c[i] == k) print $i }' /proc/net/netstat; }

# The second server netns, srv2 (10.9.2.1), which the peer netns reaches through veth2/veth3
# (10.9.2.2): each handoff sample runs two servers at once, one here and one there, each under a
# client load of its own, so whatever the host does to the guest meanwhile it does to both.
S2=10.9.2.1 S2P=10.9.2.2
pair_up() {
	$IP netns add srv2
	$IP link add veth2 type veth peer name veth3
	$IP link set veth2 netns srv2
	$IP link set veth3 netns peer
	$IP netns exec srv2 ip link set lo up
	$IP netns exec srv2 ip addr add $S2/24 dev veth2
	$IP netns exec srv2 ip link set veth2 up
	$IP netns exec peer ip addr add $S2P/24 dev veth3
	$IP netns exec peer ip link set veth3 up
	# As this netns reaches the peer (net.inc): a permanent neighbour entry, no ARP.
	$IP netns exec srv2 ip neigh replace $S2P lladdr "$($IP netns exec peer cat /sys/class/net/veth3/address)" dev veth2 nud permanent
}
# pair_setup: srv2 up, and both sides keeping every connection's TIME_WAIT for the whole run:
# Linux's default bound (tcp_max_tw_buckets, from this 1 GiB guest's ehash size: 4096) would let
# close() skip the TIME_WAIT of most connections (TCPTimeWaitOverflow), and the module's
# automatic capacity would recycle entries.
pair_setup() {
	pair_up
	for n in 0 1; do
		side_sysctl $n net/ipv4/tcp_max_tw_buckets 1048576
		side_sysctl $n net/rust_timewait/maxtcptw 1048576
	done
}
pair_down() {
	$IP netns del srv2 2>/dev/null
}
# side N CMD...: CMD in side N's netns (0: this one, 1: srv2).
side() {
	if [ "$1" = 0 ]; then shift; "$@"; else shift; $IP netns exec srv2 "$@"; fi
}
# side_sysctl N PATH VALUE (PATH under /proc/sys).
side_sysctl() { side "$1" sh -c "echo $3 >/proc/sys/$2"; }

# serve N MODE PORT: side N's server (--loop: close(), --takeover: close() with
# net.rust_timewait.takeover set there, --batch: HandoffBatch, the wait in the kernel; --queue:
# HandoffQueue, the wait in userspace) on PORT, in the background, output in /tmp/hsN.*.
serve() {
	mode=$2 takeover=0
	[ "$mode" != --takeover ] || mode=--loop takeover=1
	side_sysctl $1 net/rust_timewait/takeover $takeover
	side $1 handoff_server $(addr_of $1):$3 $HC $mode --until /tmp/hs.stop >/tmp/hs$1.out 2>/tmp/hs$1.err &
}
addr_of() { [ "$1" = 0 ] && echo $H4 || echo $S2; }

# profile_mark TEXT: a mark for qemu/profile.sh's sampler, written to the serial port itself:
# through the scenario's output pipe (qemu/init's sed) a mark reached the host seconds late while
# the servers' load ran.
profile_mark() { echo "rtw-profile: $1" >/dev/ttyS0; }

# pair_sample MODE0 MODE1 PORT: both servers at once on PORT, under the same client load each
# (4 client threads in the peer netns, one set per server); each keeps serving, untimed, until
# the other has its window too. Prints "RATE0 RATE1" (connections/s).
pair_sample() {
	rm -f /tmp/hs.stop /tmp/hs0.* /tmp/hs1.* /tmp/hl0.out /tmp/hl1.out
	serve 0 $1 $3
	s0=$!
	serve 1 $2 $3
	s1=$!
	for n in 0 1; do
		i=0
		until side $n $SS -ltnH | grep -q "$(addr_of $n):$3 "; do
			i=$((i + 1))
			[ $i -lt 600 ] || break
			sleep 0.05
		done
	done
	# qemu/profile.sh samples from here until both windows are full (profile_workload).
	[ -z "${PROFILE_PHASE:-}" ] || profile_mark "phase $PROFILE_PHASE"
	$IP netns exec peer handoff_server --load $H4:$3 $HC_CLIENTS $HC_HOLD_MS >/tmp/hl0.out &
	l0=$!
	$IP netns exec peer handoff_server --load $S2:$3 $HC_CLIENTS $HC_HOLD_MS >/tmp/hl1.out &
	l1=$!
	i=0
	until grep -q '^window full' /tmp/hs0.out 2>/dev/null && grep -q '^window full' /tmp/hs1.out 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 6000 ] || break
		kill -0 $s0 2>/dev/null && kill -0 $s1 2>/dev/null || break
		sleep 0.05
	done
	[ -z "${PROFILE_PHASE:-}" ] || profile_mark "phase -"
	touch /tmp/hs.stop
	wait $s0
	rc0=$?
	wait $s1
	rc1=$?
	wait $l0 $l1
	side_sysctl 0 net/rust_timewait/takeover 0
	side_sysctl 1 net/rust_timewait/takeover 0
	for n in 0 1; do
		eval "rc=\$rc$n"
		m=$1
		[ $n = 0 ] || m=$2
		echo "rtw-bench-note: handoff_vs_close sample side=$n mode=${m#--} rc=$rc $(grep '^rate' /tmp/hs$n.out | sed 's/^rate //') $(grep '^served' /tmp/hs$n.out | tr -d ',:') $(cat /tmp/hl$n.out) server_errors=$(wc -l </tmp/hs$n.err)" >&2
		head -n 3 /tmp/hs$n.err >&2
	done
	# 0 for a server that measured nothing: the pair stays a pair.
	r0=$(sed -n 's/^rate conn_per_s=\([0-9.]*\).*/\1/p' /tmp/hs0.out)
	r1=$(sed -n 's/^rate conn_per_s=\([0-9.]*\).*/\1/p' /tmp/hs1.out)
	echo "${r0:-0} ${r1:-0}"
}

# handoff_pair VAR MODE: one sample of MODE against plain close(), side by side, its ratio (MODE's
# rate over plain's) appended to VAR. MODE's side alternates from one of its samples to the next
# (a count per figure), and every sample has a port of its own: no tuple meets what an earlier
# sample left in either table.
pairs=0
handoff_pair() {
	port=$((HC_PORT + pairs))
	pairs=$((pairs + 1))
	eval "c=\${count_$1:-0}; count_$1=\$((c + 1))"
	if [ $((c % 2)) = 0 ]; then
		set -- "$1" "$2" $(pair_sample $2 --loop $port)
		h=$3 p=$4
	else
		set -- "$1" "$2" $(pair_sample --loop $2 $port)
		h=$4 p=$3
	fi
	echo "rtw-bench-note: handoff_vs_close pair mode=${2#--} side=$((c % 2)) plain=$p handoff=$h"
	eval "$1=\"\$$1 $(awk -v h="$h" -v p="$p" 'BEGIN { if (h > 0 && p > 0) printf "%.4f", h / p; else print 0 }')\""
}

# handoff_vs_close: the same one-threaded event-loop server, closing with close() or with a
# handoff, under the same client load, the two side by side (pair_sample); module loaded for
# both.
handoff_vs_close() {
	insmod $KO || exit 1
	tw_buckets=$(cat /proc/sys/net/ipv4/tcp_max_tw_buckets)
	pair_setup
	echo "rtw-bench-note: handoff_vs_close setup connections_per_sample=$HC clients_per_server=$HC_CLIENTS hold_ms=$HC_HOLD_MS tcp_max_tw_buckets=$(cat /proc/sys/net/ipv4/tcp_max_tw_buckets),$(side 1 cat /proc/sys/net/ipv4/tcp_max_tw_buckets) (was $tw_buckets here) maxtcptw=$(cat /proc/sys/net/rust_timewait/maxtcptw),$(side 1 cat /proc/sys/net/rust_timewait/maxtcptw) msl_ms=$(cat /proc/sys/net/rust_timewait/msl_ms)"
	# Untimed: the netlink family, the first connections, on both sides.
	pair_sample --queue --queue $HC_PORT >/dev/null 2>&1
	pairs=1
	o0=$(tcpext TCPTimeWaitOverflow 0)
	o1=$(tcpext TCPTimeWaitOverflow 1)
	hk="" hb="" hq=""
	i=0
	while [ $i -lt $HC_CYCLES ]; do
		# The target's figure (takeover) in every cycle, the reported ones (batch, queue) in
		# the first $CYCLES, taking turns at going first.
		if [ $i -ge $CYCLES ]; then
			handoff_pair hk --takeover
		else
			case $((i % 3)) in
			0) handoff_pair hk --takeover; handoff_pair hb --batch; handoff_pair hq --queue ;;
			1) handoff_pair hb --batch; handoff_pair hq --queue; handoff_pair hk --takeover ;;
			2) handoff_pair hq --queue; handoff_pair hk --takeover; handoff_pair hb --batch ;;
			esac
		fi
		i=$((i + 1))
	done
	echo "rtw-bench-note: handoff_vs_close ratios takeover:$hk batch:$hb queue:$hq"
	# The last sockets taken reach FIN_WAIT2 after the server is done with them.
	sleep 2
	for n in 0 1; do
		# One read of the counters per side (net.inc's stat reads them once per name).
		j=$(side $n twctl --json stats | tr ',{}' '\n\n\n')
		m=""
		for c in capacity entries added recycled fin_wait2_completed fin_wait2_timeouts syn_reuse acks_sent handoffs_deferred handoffs_returned taken_over; do
			m="$m $c=$(echo "$j" | sed -n "s/^ *\"$c\": *\([0-9]*\) *$/\1/p")"
		done
		echo "rtw-bench-note: handoff_vs_close module side=$n$m linux_tw_overflow=$(($(tcpext TCPTimeWaitOverflow $n) - o$n))"
	done
	echo "rtw-bench: handoff_vs_close $(stats $hk) x samples=$HC_CYCLES"
	echo "rtw-bench: handoff_batch_vs_close $(stats $hb) x samples=$CYCLES"
	echo "rtw-bench: handoff_queue_vs_close $(stats $hq) x samples=$CYCLES"
	twctl flush >/dev/null
	side 1 twctl flush >/dev/null
	pair_down
	leak_check handoff
	rmmod rust_timewait || exit 1
	echo $tw_buckets >/proc/sys/net/ipv4/tcp_max_tw_buckets
}

# qemu/profile.sh's workload: the two servers of handoff_vs_close both closing with close(), then
# both with the takeover, twice over; the sampler samples while both serve their timed
# connections (pair_sample marks that stretch with PROFILE_PHASE), not the set-up in between.
profile_workload() {
	insmod $KO || exit 1
	pair_setup
	profile_mark "text $(cat /sys/module/rust_timewait/sections/.text)"
	pair_sample --queue --queue $HC_PORT >/dev/null 2>&1
	port=$HC_PORT
	for r in 1 2; do
		for m in loop takeover; do
			PROFILE_PHASE=$m
			[ $m != loop ] || PROFILE_PHASE=plain
			for p in 1 2 3; do
				# A port of its own: no SYN meets what an earlier phase left.
				port=$((port + 1))
				echo "rtw-bench-note: profile $PROFILE_PHASE $(pair_sample --$m --$m $port)"
			done
		done
	done
	PROFILE_PHASE=""
	profile_mark "phase end"
	pair_down
	rmmod rust_timewait
}

# leak_check WHAT: a quick run keeps kmemleak on (qemu/bench.sh): nothing the benchmark allocated
# may be left. Called with the module loaded (kmemleak names its functions only then); kmemleak
# reports only objects older than 5 s, and needs two scans to be sure.
leak_check() {
	K=/sys/kernel/debug/kmemleak
	if [ $scale -gt 1 ] && [ -w $K ] && ! grep -q kmemleak=off /proc/cmdline; then
		sleep 6
		echo scan >$K
		echo scan >$K
		echo "rtw-bench-note: kmemleak $1 unreferenced_rust_timewait=$(grep -c rust_timewait $K)"
		sed -n '1,40p' $K
	fi
}

bench() {
	echo "rtw-bench-note: cpus_online=$(grep -c ^processor /proc/cpuinfo) scale=$scale entries=$N flood_segments=$FLOOD rr_transactions=$RR"
	net_up
	# The request/response client needs an address in the peer netns; floods bypass it (AF_PACKET).
	$IP netns exec peer ip addr add $P4/24 dev veth1
	if [ "$only" = profile ]; then
		profile_workload
		net_down
		return
	fi
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

	# The per-call figures, in the kernel, with the module loaded once more. Before
	# handoff_vs_close: the TIME_WAIT sockets its plain servers leave (a minute each, in the
	# established hash all netns share) would lengthen the chains Linux's lookup walks.
	insmod $KO || exit 1
	echo $scale >$B/scale
	kbench all || echo "rtw-bench-note: in-kernel figures failed"
	leak_check kbench
	rmmod rust_timewait
	handoff_vs_close
	net_down
}

# Everything as it comes, and into a file: printed again at the end, together, when no kernel
# message can be woven into a line on the console (the host reads that copy).
bench 2>&1 | tee /tmp/results
sleep 1
echo "rtw-bench-results:"
grep '^rtw-bench' /tmp/results
