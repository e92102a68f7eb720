#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the test kernel with an initramfs under QEMU (TCG), collect the serial console into a
# log, and fail on a timeout, a panic, an Oops, a WARNING, a BUG, a KASAN, UBSAN, debug-objects,
# lockdep, RCU or kmemleak report, a Rust panic, or a guest that never said it was done.  qemu/boot.sh INITRAMFS LOG TIMEOUT_S [kernel args...]
# Our slab caches run with SLUB debugging (red zones, poisoning, sanity checks): a use after
# free or an entry left behind at unload ("Objects remaining") prints a BUG and fails the run.
# RCU stalls are reported after 120 s rather than 21: an emulated CPU under KASAN on a loaded
# host is slow, not stalled; a real stall still fails the run.
. "$(dirname "$0")/env.sh"

initrd=$1 log=$2 limit=$3; shift 3
kernel="$RTW_KERNEL/src/arch/x86/boot/bzImage"
[ -f "$kernel" ] || rtw_die "no test kernel at $kernel (run qemu/kernel.sh)"

# RTW_QEMU_MONITOR=PATH: QEMU's monitor on that Unix socket (qemu/profile.sh samples through it).
monitor=none
[ -z "${RTW_QEMU_MONITOR:-}" ] || monitor="unix:$RTW_QEMU_MONITOR,server=on,wait=off"
set +e
timeout --foreground -k 5 "$limit" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024M \
	-nographic -no-reboot -monitor "$monitor" -serial stdio -display none \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=7 slub_debug=FZPU,rust_timewait4,rust_timewait6 rcupdate.rcu_cpu_stall_timeout=120 $*" </dev/null >"$log" 2>&1
rc=$?
set -e
tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"

fail=""
[ $rc = 124 ] || [ $rc = 137 ] && fail="timed out after ${limit} s"
grep -q 'Kernel panic' "$log" && fail="${fail:+$fail; }kernel panic"
grep -qE 'Oops|BUG:|BUG [a-z0-9_-]+ \(|Objects remaining|WARNING:|general protection fault|UBSAN:|KASAN:|ODEBUG:|rust_kernel: panicked|kmemleak: [0-9]+ new suspected|kmemleak: Kernel memory leak detector disabled|Cannot allocate a kmemleak_object|rcu: INFO:|detected stall|INFO: task .* blocked for more than|inconsistent lock state|possible recursive locking|circular locking|suspicious RCU usage' "$log" &&
	fail="${fail:+$fail; }kernel Oops/BUG/WARNING/KASAN/UBSAN/lockdep/RCU/kmemleak report"
grep -q '^rtw-guest: done' "$log" || fail="${fail:+$fail; }guest did not finish"
if [ -n "$fail" ]; then
	echo "---- last 40 console lines ($log) ----" >&2
	tail -n 40 "$log" >&2
	echo "boot failed: $fail" >&2
	exit 1
fi
