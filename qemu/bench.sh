#!/usr/bin/env bash
# `make bench`: boot the test kernel, fill the table to growing sizes and print how adds and
# the hook's per-segment cost move with it (tests/guest/bench.sh).
. "$(dirname "$0")/env.sh"

work="$RTW_TOP/build/bench"
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"
rtw_log "booting the test kernel for the benchmark (log: $work/console.log)"
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" 900 rtw.scenarios=bench
printf '\n%-9s | %-8s | %-10s | %-26s | %-26s\n' entries "add (ms)" "adds/s" "ns/segment, guarded tuple" "ns/segment, unguarded"
printf -- '----------|----------|------------|----------------------------|---------------------------\n'
sed -n 's/^rtw-tap: bench: \([0-9]\)/\1/p' "$work/console.log" |
	while read -r n ms rate hit miss; do
		printf '%-9s | %-8s | %-10s | %-26s | %-26s\n' "$n" "$ms" "$rate" "$hit" "$miss"
	done
