#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: boot the benchmark kernel on two vCPUs, run tests/guest/bench.sh (end-to-end
# figures) and src/bench.c (per-call figures, through debugfs), print the table and write
# docs/bench.md.
#
#   RTW_FLAVOR          the kernel: "bench" (default: qemu/kernel.config without lockdep,
#                       PROVE_RCU and kmemleak, see qemu/kernel-bench.config) or "test".
#   RTW_BENCH_SCALE=N   divide table sizes and traffic by N: a quick functional run of the
#                       benchmark itself, written to build/bench/bench.md, never to docs/.
#                       With RTW_FLAVOR=test, kmemleak stays on and checks that the benchmark
#                       frees everything it allocates.
#   RTW_BENCH_TIMEOUT   the boot's time limit in seconds (default 5400).
#   RTW_BENCH_ARGS      more kernel arguments, e.g. rtw.bench_only=handoff_vs_close to run one figure.
export RTW_FLAVOR=${RTW_FLAVOR:-bench}
. "$(dirname "$0")/env.sh"

scale=${RTW_BENCH_SCALE:-1}
limit=${RTW_BENCH_TIMEOUT:-5400}
work="$RTW_TOP/build/bench"
log="$work/console.log"
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"
cfg="$RTW_KERNEL/src/.config"

# The boot differs from the tests' in these arguments, all about the measurement:
# - slub_debug: boot.sh turns on red zones, poisoning and owner tracking for our caches; a later
#   slub_debug= with its own cache list replaces that list (mm/slub.c keeps the last one), and
#   "-" switches every option off, so entries have the size a production kernel gives them;
# - kunit.enable=0: the in-module KUnit suites would rerun at every insmod, six times here;
# - kmemleak=off, when the kernel has kmemleak (the test flavor) and the run is a full one:
#   kmemleak tracks every slab object with a ~250-byte record of its own, which 4M entries would
#   need a GiB for, and its scans would run in the middle of timed sections.
args="rtw.scenarios=bench kunit.enable=0 slub_debug=-,rust_timewait4,rust_timewait6 ${RTW_BENCH_ARGS:-}"
if grep -q '^CONFIG_DEBUG_KMEMLEAK=y' "$cfg" && [ "$scale" = 1 ]; then
	args="$args kmemleak=off"
fi
if [ "$scale" = 1 ]; then
	out="$RTW_TOP/docs/bench.md"
else
	args="$args rtw.bench_scale=$scale"
	out="$work/bench.md"
fi
rtw_log "booting the $RTW_FLAVOR kernel for the benchmark (about 10 min; log: $log)"
start=$SECONDS
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$log" "$limit" $args
took=$((SECONDS - start))

# What the guest printed: "rtw-bench: FIGURE min=A median=B max=C UNIT samples=N" and notes.
# The guest prints them again, together, once everything else is quiet (tests/guest/bench.sh):
# lines printed as they came may have kernel messages woven into them on the console.
sed -n '/^rtw-tap: rtw-bench-results:/,$ s/^rtw-tap: \(rtw-bench.*\)$/\1/p' "$log" |
	grep -v '^rtw-bench-results:' >"$work/results.txt"
result() { grep -m1 "^rtw-bench: $1 " "$work/results.txt" || true; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# name | target | met when (awk condition on the median m) | how
figures=(
"miss_vs_linux_lookup|≤ 1.0|m <= 1.0|rtw_hook() called directly (entry to verdict) with a crafted IPv4 ACK (CHECKSUM_UNNECESSARY) for a tuple the table does not hold, table at 1M entries, over __inet_lookup_established() for the same tuple read from the same skb; bottom halves off and RCU held as in softirq; the tuple changes every call (10.192/10 clients of 10.9.0.1:80); calls per sample calibrated to about 100 ms of hook calls (at least 20,000), each sample timed in chunks of 500 calls and taken as the median chunk (a chunk the host stalled does not count), the harness's own cost (tuple choice) measured and taken off both; the three kinds run back to back per sample"
"hit_vs_linux_lookup|≤ 1.5|m <= 1.5|as miss_vs_linux_lookup, for guarded tuples drawn at random from the 1M entries; the segment is a retransmitted FIN (T6: FIN+ACK, seq+1 = rcv_nxt), which every time takes the stripe lock, is decided, re-arms the entry and gets an ACK that is routed (the reply route is looked up before the reply is built, D35) and built but not sent (rtw_bench_dry_run): the longest hit path, never rate-limited; every call checked to return NF_DROP"
"miss_flood_1m_vs_unloaded|≤ 1.05|m <= 1.05|end to end over veth: rtw-peer in the peer netns sends N ACKs with AF_PACKET to 10.9.0.1:81 (no socket: the stack answers RST), pinned to CPU0, and reports sendto() time per segment (the receive path runs inside it); module loaded with 1M entries over module not loaded; each sample the fastest of three floods of 10,000 segments; each loaded sample against the mean of the unloaded samples just before and after it (insmod, fill, rmmod between)"
"lookup_4m_vs_1k|≤ 1.5|m <= 1.5|per-call cost of the hit path of hit_vs_linux_lookup (harness taken off) with 4,000,000 entries over 1,000, hits drawn at random from the whole table; each sample pairs the 1k measurement with the 4M one of the same growth"
"two_vcpu_scaling|≥ 1.8|m >= 1.8|kthreads bound to CPU0 and CPU1 each calling the miss path of miss_vs_linux_lookup (1M entries) for 2 s: calls/s of both together over calls/s of one alone (the lone one alternates between CPU0 and CPU1)"
"resize_max_stall_us|≤ 1000|m <= 1000|longest single rtw_hook() call (alternately a hit on one of the first 1,000 entries and a miss), each timed on its own on CPU1 inside its bottom-half-off section, while a kthread on CPU0 adds entries from 1,000 to 4,000,000 and the rhashtable grows in its worker (until it has settled); maximum per growth, five growths. Only hard interrupts and the emulator (a vCPU the host does not run) can add to a call: every call is followed by a control section, an 8 us busy wait timed the same way, whose longest overrun is in the notes (control_max_overrun_ns)"

"reap_max_stall_us|≤ 1000|m <= 1000|1M entries added with msl_ms=600000, then msl_ms=100 so all are expired at once, reaper armed for now; meanwhile a probe kthread on each CPU takes every stripe lock in turn (rtw_glue_stripe_lock) and times the wait: the kernel is preemptible, so the reaper keeps a CPU only while it holds a stripe lock (a batch), and a probe that meets that lock waits for what is left of the hold. Longest wait per reap (a sampled lower bound of the longest hold), five reaps. Every attempt is followed by the 8 us control section of resize_max_stall_us (control_max_overrun_ns in the notes). The RCU callbacks that free the entries afterwards are not included"


"reap_1m_vs_flush|≤ 1.5|m <= 1.5|time from arming the reaper until rtw_glue_table_len() is 0 for 1M expired entries (polled every 0.5-1 ms) over the time rtw_rs_flush() takes for 1M entries, both without probes, same boot, sample by sample (entries unlinked; the frees follow after a grace period in both cases)"

"bytes_per_entry_ipv4|≤ 64 (goal 48)|m <= 64|at 1M entries: (rust_timewait4 slabs × PAGE_SIZE << order, partial slabs included, from /sys/kernel/slab) + rtw_glue_table_buckets(AF_INET) × 8, over the entries; slab debugging off for the cache"
"rr_1m_vs_unloaded|report|1|one-byte request/response on one TCP connection over veth (rtw-peer -T in the peer netns to an echo server here, both pinned to CPU0, TCP_NODELAY), time per transaction with 1M entries over module not loaded, paired as miss_flood_1m_vs_unloaded"
"handoff_vs_close|≥ 1.0|m >= 1.0|connections/s a server hands off over the same server closing with close(), same client load, same boot, the two running side by side: twctl/examples/handoff_server.rs, one thread, a poll() event loop (non-blocking accept and reads, one request line, one reply, then close()), twice at once: one server in this netns and one in a second (srv2, over a veth pair of its own), one with net.rust_timewait.takeover set in its netns (the handoff: Linux's FIN_WAIT2 timewait socket becomes an entry when the peer's FIN comes, src/takeover.c, D47), the other without it (plain: Linux's TIME_WAIT keeps the connection), the handoff's netns alternating from one sample of the figure to the next; each server's load: 4 client threads of its own in the peer netns (handoff_server --load), each connecting, sending a line, reading the reply to the server's FIN, and closing 300 ms later, as fast as the server answers; a sample is each server's rate over the last 9/10 of 8,000 connections done, each server serving on (untimed, --until) until the other is done too, so each window runs entirely beside the other server's load and the two windows cover nearly the same stretch of time (the host's stalls fall on both); the two servers and their loads share the guest's 2 vCPUs, so each rate is what its side gets of a busy guest (veth runs each segment's receive path in the sender's own thread, so a side's softirq work is mostly its own; work deferred to timers and workers falls on both sides alike); the ratio is taken within the sample; a new port every sample; module loaded in both netns, and both keep every connection's TIME_WAIT (net.ipv4.tcp_max_tw_buckets and maxtcptw raised to 1048576 in both: the guest's default of 4096 lets close() skip most TIME_WAITs); 21 samples (the reported handoffs' pairs run in the first 9 cycles, the three taking turns at going first)"
"handoff_batch_vs_close|report|1|as handoff_vs_close (a pair of its own each sample), for the handoff by fd with the wait in the kernel (D46): --batch: HandoffBatch::push() (shutdown(SHUT_WR): our FIN leaves) and flush() every 16 sockets or after 2 ms with nothing to do: one netlink adopt with wait for the sockets pushed since, in which the module first adopts the sockets of earlier flushes whose FIN is acknowledged, then takes each new one (a reference on its file); then a close() of each fd (nothing is sent)"
"handoff_queue_vs_close|report|1|as handoff_vs_close (a pair of its own each sample), for the handoff by fd with the wait in userspace (D44): --queue: HandoffQueue::push() (shutdown(SHUT_WR), epoll_ctl, returns), process() whenever the queue's epoll fd or its deadline says so (every socket that reached FIN_WAIT2: one netlink adopt by fd with repair for all of them, in which the module reads each socket's state under its lock, adds the entry and puts the socket in repair mode; then a close() of each, which sends nothing)"
)

fmt() { awk -v v="$1" -v u="$2" 'BEGIN { if (u == "x") printf "%.3f", v; else printf "%.1f", v }'; }
table=$(
	echo "| figure | median | min | max | target | how |"
	echo "|---|---|---|---|---|---|"
	for f in "${figures[@]}"; do
		IFS='|' read -r name target cond how <<<"$f"
		line=$(result "$name")
		if [ -z "$line" ]; then
			echo "| $name | not measured | | | $target | $how |"
			continue
		fi
		unit=$(echo "$line" | awk '{ print $6 }')
		med=$(echo "$line" | field median) min=$(echo "$line" | field min) max=$(echo "$line" | field max)
		n=$(echo "$line" | field samples)
		met=$(awk -v m="$med" "BEGIN { print ($cond) ? \"met\" : \"**missed**\" }")
		[ "$target" = report ] && met="informational"
		u=" $unit"; [ "$unit" = x ] && u=""
		echo "| $name | $(fmt "$med" "$unit")$u | $(fmt "$min" "$unit") | $(fmt "$max" "$unit") | $target: $met | $how; $n samples |"
	done
)

opt() { grep -q "^$1=y" "$cfg" && echo on || echo off; }
preempt=$(sed -n 's/^CONFIG_PREEMPT_\(NONE\|VOLUNTARY\|LAZY\|RT\)=y/\1/p; s/^CONFIG_PREEMPT=y/FULL/p' "$cfg" | head -n1)
krel=$(cat "$RTW_KERNEL/src/include/config/kernel.release" 2>/dev/null || echo "$RTW_KVER")
cpus=$(grep -m1 'rtw-bench-note: cpus_online=' "$work/results.txt" | field cpus_online)
qver=$(qemu-system-x86_64 --version | head -n1)
hostcpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

{
	echo "# Benchmark"
	echo
	echo "Generated by \`make bench\` (qemu/bench.sh, tests/guest/bench.sh, src/bench.c); do not edit."
	[ "$scale" = 1 ] || echo "**Quick functional run (RTW_BENCH_SCALE=$scale): table sizes divided by $scale, not a result.**"
	echo
	echo "$table"
	echo
	echo "Each figure is the median of its samples (min and max beside it); ratios are unitless."
	echo
	echo "* date: $(date -u +%Y-%m-%d) (boot took $((took / 60)) min $((took % 60)) s)"
	frag="qemu/kernel.config"; [ "$RTW_FLAVOR" = test ] || frag="$frag + qemu/kernel-$RTW_FLAVOR.config"
	leak=$(opt CONFIG_DEBUG_KMEMLEAK); case " $args " in *" kmemleak=off "*) leak="compiled in, off on this boot's command line" ;; esac
	echo "* kernel: Linux $krel, the $RTW_FLAVOR flavor: tinyconfig + $frag; SMP (NR_CPUS=$(sed -n 's/^CONFIG_NR_CPUS=//p' "$cfg")), ACPI, preemption $preempt, HZ=$(sed -n 's/^CONFIG_HZ=//p' "$cfg"); debugging: lockdep (PROVE_LOCKING) $(opt CONFIG_PROVE_LOCKING), PROVE_RCU $(opt CONFIG_PROVE_RCU), DEBUG_ATOMIC_SLEEP $(opt CONFIG_DEBUG_ATOMIC_SLEEP), kmemleak $leak, SLUB_DEBUG $(opt CONFIG_SLUB_DEBUG) (compiled in; off for the module's caches on this boot)"
	echo "* boot arguments added for the benchmark: \`$args\` (why: qemu/bench.sh)"
	echo "* machine: QEMU TCG ($qver), $cpus vCPUs online in the guest (-smp 2, -cpu max), 1024 MiB; host: $(nproc) cores ($hostcpu)"
	echo
	echo "## What the figures rest on"
	echo
	noteline() { grep -m1 "^rtw-bench-note: $1" "$work/results.txt" || true; }
	nv() { noteline "$1" | field "$2"; }
	med() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
	lists() { noteline "$1" | sed -n "s/.* $2:\([0-9 ]*\).*/\1/p"; }
	lockdep=""
	[ "$(opt CONFIG_PROVE_RCU)" = off ] || lockdep=" This kernel proves RCU and locks: one rcu_read_lock_held() costs $(nv 'hit_vs_linux_lookup parts' rcu_read_lock_held_ns) ns, one rcu_read_lock()/unlock() pair $(nv 'miss_vs_linux_lookup parts' rcu_read_lock_pair_ns) ns, one spin_lock_bh()/unlock() pair $(nv 'hit_vs_linux_lookup parts' spin_lock_bh_pair_ns) ns."
	echo "* miss, per call at 1M entries, a different tuple every call: the hook $(nv 'miss_vs_linux_lookup entries' hook_ns) ns, __inet_lookup_established $(nv 'miss_vs_linux_lookup entries' linux_lookup_ns) ns; of the hook, rtw_gn() + rtw_glue_table_lookup() $(nv 'miss_vs_linux_lookup parts' gn_plus_table_lookup_ns) ns (rtw_gn() alone $(nv 'miss_vs_linux_lookup parts' rtw_gn_ns) ns); a call that only has its 256 bytes of locals zeroed (INIT_STACK_ALL_ZERO $(opt CONFIG_INIT_STACK_ALL_ZERO)) costs $(nv 'miss_vs_linux_lookup parts' stack_256_bytes_ns) ns.$lockdep"
	echo "* miss with one tuple for every call (all of it cached: the code alone): the hook $(nv 'miss_vs_linux_lookup one_tuple' hook_ns) ns, of which rtw_gn() + rtw_glue_table_lookup() $(nv 'miss_vs_linux_lookup one_tuple' table_lookup_ns) ns; __inet_lookup_established $(nv 'miss_vs_linux_lookup one_tuple' linux_lookup_ns) ns; ratio $(nv 'miss_vs_linux_lookup one_tuple' ratio). A segment the host sends (LOCAL_OUT, not a SYN) costs the hook $(nv 'miss_vs_linux_lookup local_out' hook_ns) ns."
	echo "* hit, per call at 1M entries: the hook $(nv 'hit_vs_linux_lookup entries' hook_ns) ns (T6: lookup, stripe lock, decision, re-arm, ACK routed and built), __inet_lookup_established $(nv 'hit_vs_linux_lookup entries' linux_lookup_ns) ns, rtw_gn() + rtw_glue_table_lookup() $(nv 'hit_vs_linux_lookup parts' gn_plus_table_lookup_ns) ns; a duplicate ACK (T7: lookup, lock, decision, no reply, no re-arm) $(nv 'hit_vs_linux_lookup dup_ack' hook_ns) ns; with one tuple for every call the T6 hook costs $(nv 'hit_vs_linux_lookup one_tuple' hook_ns) ns, its lookup $(nv 'hit_vs_linux_lookup one_tuple' table_lookup_ns) ns (ratio to Linux's lookup $(nv 'hit_vs_linux_lookup one_tuple' ratio))."
	echo "* two vCPUs: one kthread $(nv 'two_vcpu_scaling entries' one_cpu_calls_per_s) miss-path calls/s, two $(nv 'two_vcpu_scaling entries' two_cpus_calls_per_s) calls/s (medians)."
	echo "* growth 1k → 4M: the probe's longest hit per growth: $(grep '^rtw-bench-note: growth [0-9]' "$work/results.txt" | field probe_max_hit_ns | tr '\n' ' ')ns; hit $(nv 'lookup_4m_vs_1k hit' hit_1k_ns) ns at 1k, $(nv 'lookup_4m_vs_1k hit' hit_4m_ns) ns at 4M; the probe's calls over 100 us: $(nv 'resize_max_stall_us control' calls_over_100us) of $(nv 'resize_max_stall_us control' probe_calls), its control sections' overruns over 100 us: $(nv 'resize_max_stall_us control' controls_over_100us); longest control overrun $(nv 'resize_max_stall_us control' control_max_overrun_ns) ns (median of the growths): what the emulator and interrupts alone do to a section of that length."
	tail1ms() { noteline "$1" | sed 's/.*histogram_us(from:count)://' | awk '{ for (i = 1; i <= NF; i++) {
		split($i, a, ":"); if (a[1] >= 1024) n += a[2]; t += a[2] } } END { printf "%d of %d", n, t }'; }
	echo "* sections of 1 ms or more (whole runs, all repetitions): growth probe's hook calls $(tail1ms 'resize_max_stall_us hook calls'), its control overruns $(tail1ms 'resize_max_stall_us control overruns'); reap probe's stripe lock waits $(tail1ms 'reap_max_stall_us stripe lock waits'), its control overruns $(tail1ms 'reap_max_stall_us control overruns'). Histograms below."
	echo "* reap of 1M: $(nv 'reap entries' reap_ms) ms, flush of 1M: $(nv 'reap entries' flush_ms) ms (medians); longest control overrun beside the lock probes $(nv 'reap entries' control_max_overrun_ns) ns (median)."
	echo "* flood, ns per segment (medians): unloaded $(med $(lists 'flood ns_per_segment' unloaded)), 1M entries $(med $(lists 'flood ns_per_segment' loaded)); in three further rounds, module not loaded $(med $(lists 'flood_parts' unloaded)), loaded with one entry (the hooks on the path, a table of one) $(med $(lists 'flood_parts' hooks_1_entry)), loaded with 1M entries $(med $(noteline 'flood_parts' | sed -n 's/.* hooks_[0-9]*_entries:\([0-9 ]*\).*/\1/p'))."
	echo "* request/response, ns per transaction (medians): unloaded $(med $(lists 'rr ns_per_transaction' unloaded)), 1M entries $(med $(lists 'rr ns_per_transaction' loaded))."
	echo "* memory at 1M entries: rust_timewait4 slab_size $(nv 'bytes_per_entry_ipv4' slab_size) B ($(nv 'bytes_per_entry_ipv4' objs_per_slab) per order-$(nv 'bytes_per_entry_ipv4' order) slab), $(nv 'bytes_per_entry_ipv4' buckets4) buckets of 8 B; Linux's own TIME_WAIT socket, tw_sock_TCP: slab_size $(nv 'tw_sock_TCP' slab_size) B (object_size $(nv 'tw_sock_TCP' object_size) B) on this kernel."
	echo
	echo "Everything the guest noted (per sample and per repetition):"
	echo
	echo '```'
	grep '^rtw-bench-note:' "$work/results.txt" | sed 's/^rtw-bench-note: //'
	echo '```'
} >"$out"

echo
echo "$table"
echo
rtw_log "written: $out (console: $log)"
