#!/usr/bin/env bash
# `make bench`: boot the test kernel on two vCPUs, run tests/guest/bench.sh (end-to-end figures)
# and src/bench.c (per-call figures, through debugfs), print the table and write docs/bench.md.
#
#   RTW_BENCH_SCALE=N   divide table sizes and traffic by N: a quick functional run of the
#                       benchmark itself (kmemleak stays on and checks it), written to
#                       build/bench/bench.md, never to docs/.
#   RTW_BENCH_KMEMLEAK  on|off: override the above (a full run needs it off to fit 4M entries).
#   RTW_BENCH_TIMEOUT   the boot's time limit in seconds (default 5400).
. "$(dirname "$0")/env.sh"

scale=${RTW_BENCH_SCALE:-1}
limit=${RTW_BENCH_TIMEOUT:-5400}
work="$RTW_TOP/build/bench"
log="$work/console.log"
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"

# The boot differs from the tests' in three arguments, all about the measurement:
# - slub_debug: boot.sh turns on red zones, poisoning and owner tracking for our caches; a later
#   slub_debug= with its own cache list replaces that list (mm/slub.c keeps the last one), and
#   "-" switches every option off, so entries have the size a production kernel gives them;
# - kmemleak=off: kmemleak tracks every slab object with a ~250-byte record of its own, which
#   4M entries would need a GiB for, and its scans would run in the middle of timed sections;
#   a quick run (RTW_BENCH_SCALE) keeps it on and checks that the benchmark frees everything;
# - kunit.enable=0: the in-module KUnit suites would rerun at every insmod, six times here.
args="rtw.scenarios=bench kunit.enable=0 slub_debug=-,rust_timewait4,rust_timewait6"
kmemleak=${RTW_BENCH_KMEMLEAK:-$([ "$scale" = 1 ] && echo off || echo on)}
[ "$kmemleak" = on ] || args="$args kmemleak=off"
if [ "$scale" = 1 ]; then
	out="$RTW_TOP/docs/bench.md"
else
	args="$args rtw.bench_scale=$scale"
	out="$work/bench.md"
fi
rtw_log "booting the test kernel for the benchmark (about 30-60 min under TCG; log: $log)"
start=$SECONDS
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$log" "$limit" $args
took=$((SECONDS - start))

# What the guest printed: "rtw-bench: FIGURE min=A median=B max=C UNIT samples=N" and notes.
sed -n 's/^rtw-tap: \(rtw-bench.*\)$/\1/p' "$log" >"$work/results.txt"
result() { grep -m1 "^rtw-bench: $1 " "$work/results.txt" || true; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# name | target | met when (awk condition on the median m) | how
figures=(
"miss_vs_linux_lookup|≤ 1.0|m <= 1.0|rtw_hook() called directly (entry to verdict) with a crafted IPv4 ACK (CHECKSUM_UNNECESSARY) for a tuple the table does not hold, table at 1M entries, over __inet_lookup_established() for the same tuple read from the same skb; bottom halves off and RCU held as in softirq; the tuple changes every call (10.192/10 clients of 10.9.0.1:80); 20,000 calls per sample, the harness's own cost (tuple choice) measured and taken off both; the three kinds run back to back per sample"
"hit_vs_linux_lookup|≤ 1.5|m <= 1.5|as miss_vs_linux_lookup, for guarded tuples drawn at random from the 1M entries; the segment is a retransmitted FIN (T6: FIN+ACK, seq+1 = rcv_nxt), which every time takes the stripe lock, is decided, re-arms the entry and gets an ACK that is built but not sent (rtw_bench_dry_run): the longest hit path, never rate-limited; every call checked to return NF_DROP"
"miss_flood_1m_vs_unloaded|≤ 1.05|m <= 1.05|end to end over veth: rtw-peer in the peer netns sends N ACKs with AF_PACKET to 10.9.0.1:81 (no socket: the stack answers RST), pinned to CPU0, and reports sendto() time per segment (the receive path runs inside it); module loaded with 1M entries over module not loaded; each loaded sample against the mean of the unloaded samples just before and after it (insmod, fill, rmmod between)"
"lookup_4m_vs_1k|≤ 1.5|m <= 1.5|per-call cost of the hit path of hit_vs_linux_lookup (harness taken off) with 4,000,000 entries over 1,000, hits drawn at random from the whole table; each sample pairs the 1k measurement with the 4M one of the same growth"
"two_vcpu_scaling|≥ 1.8|m >= 1.8|kthreads bound to CPU0 and CPU1 each calling the miss path of miss_vs_linux_lookup (1M entries) for 2 s: calls/s of both together over calls/s of one alone (the lone one alternates between CPU0 and CPU1)"
"resize_max_stall_us|≤ 1000|m <= 1000|longest single rtw_hook() call (alternately a hit on one of the first 1,000 entries and a miss), each timed on its own on CPU1 inside its bottom-half-off section, while a kthread on CPU0 adds entries from 1,000 to 4,000,000 and the rhashtable grows in its worker (until it has settled); maximum per growth, five growths. Only hard interrupts and the emulator (a vCPU the host does not run) can add to a call: every call is followed by a control section, an 8 us busy wait timed the same way, whose longest overrun is in the notes (control_max_overrun_ns)"

"reap_max_stall_us|≤ 1000|m <= 1000|1M entries added with msl_ms=600000, then msl_ms=100 so all are expired, reaper armed for now: the longest delay between a tick's timer interrupt and a SCHED_FIFO observer kthread running, on each CPU, while the reaper empties the table. The kernel is preemptible, so the delay is what was left of a section that held the CPU (a stripe lock hold, a softirq); sampled once per tick per CPU, a lower bound of the longest hold. Control: the same observers for as long again with the table empty (quiet_max_stall_ns in the notes)"

"reap_1m_vs_flush|≤ 1.5|m <= 1.5|time from arming the reaper until rtw_glue_table_len() is 0 for 1M expired entries (polled every 0.5-1 ms) over the time rtw_rs_flush() takes for 1M entries, same boot, sample by sample"
"bytes_per_entry_ipv4|≤ 64 (goal 48)|m <= 64|at 1M entries: (rust_timewait4 slabs × PAGE_SIZE << order, partial slabs included, from /sys/kernel/slab) + rtw_glue_table_buckets(AF_INET) × 8, over the entries; slab debugging off for the cache"
"rr_1m_vs_unloaded|report|1|one-byte request/response on one TCP connection over veth (rtw-peer -T in the peer netns to an echo server here, both pinned to CPU0, TCP_NODELAY), time per transaction with 1M entries over module not loaded, paired as miss_flood_1m_vs_unloaded"
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

cfg="$RTW_KERNEL/src/.config"
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
	echo "* kernel: Linux $krel, tinyconfig + qemu/kernel.config: SMP (NR_CPUS=$(sed -n 's/^CONFIG_NR_CPUS=//p' "$cfg")), ACPI, preemption $preempt, HZ=$(sed -n 's/^CONFIG_HZ=//p' "$cfg"); debug options on: lockdep (PROVE_LOCKING $(opt CONFIG_PROVE_LOCKING)), PROVE_RCU $(opt CONFIG_PROVE_RCU), DEBUG_ATOMIC_SLEEP $(opt CONFIG_DEBUG_ATOMIC_SLEEP), kmemleak $(opt CONFIG_DEBUG_KMEMLEAK) (compiled in; switched off on this boot's command line unless a quick run), SLUB_DEBUG $(opt CONFIG_SLUB_DEBUG) (off for the module's caches on this boot)"
	echo "* boot arguments added for the benchmark: \`$args\` (why: qemu/bench.sh)"
	echo "* machine: QEMU TCG ($qver), $cpus vCPUs online in the guest (-smp 2, -cpu max), 1024 MiB; host: $(nproc) cores ($hostcpu)"
	echo
	echo "Absolute numbers behind the figures (the guest's notes, as printed):"
	echo
	echo '```'
	grep '^rtw-bench-note:' "$work/results.txt" | sed 's/^rtw-bench-note: //'
	echo '```'
} >"$out"

echo
echo "$table"
echo
rtw_log "written: $out (console: $log)"
