#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make profile`: where the guest's CPU goes with the takeover (D47) against plain close(). Boots
# the bench kernel with tests/guest/bench.sh's profile workload (rtw.bench_only=profile: the two
# servers of handoff_vs_close both closing with close(), then both with the takeover, twice),
# samples both vCPUs' instruction pointers through QEMU's monitor every 2 ms (qemu/profile.py),
# and prints each function's share of each phase's samples, the largest differences first, into
# build/profile/report.txt. The sampling slows the guest; the shares, not the rates, are the result.
export RTW_FLAVOR=${RTW_FLAVOR:-bench}
. "$(dirname "$0")/env.sh"

work="$RTW_TOP/build/profile"
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"
sock="$work/monitor.sock"
rm -f "$sock" "$work/samples.txt"
# The sampler at a real-time priority: the emulator's vCPU threads keep the host's cores busy,
# and a sampler that waits its turn runs mostly when a vCPU idles (its report shows the rate).
prio=()
if chrt -f 1 true 2>/dev/null; then prio=(chrt -f 1); fi
"${prio[@]}" python3 "$RTW_TOP/qemu/profile.py" sample "$sock" "$work/console.log" "$work/samples.txt" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
rtw_log "booting the $RTW_FLAVOR kernel for the profile (about 6 min; log: $work/console.log)"
RTW_QEMU_MONITOR="$sock" bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" \
	3600 rtw.scenarios=bench kunit.enable=0 slub_debug=-,rust_timewait4,rust_timewait6 \
	rtw.bench_only=profile
wait $sampler
python3 "$RTW_TOP/qemu/profile.py" report "$work/samples.txt" "$RTW_KERNEL/src/vmlinux" \
	"$RTW_TOP/rust_timewait.ko" | tee "$work/report.txt"
