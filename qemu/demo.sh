#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: build what is missing, boot the test kernel and run the server-handoff scenario
# (tests/guest/70-server-handoff.sh): a real server closing connections, first with Linux's own
# TIME_WAIT, then handing each to rust_timewait; shown as a person reads it. Exits non-zero
# when the boot fails or any of the scenario's checks fails (or does not run to its end).
. "$(dirname "$0")/env.sh"

work="$RTW_TOP/build/demo"
scenario=70-server-handoff
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"
rtw_log "booting the test kernel (console below; log: $work/console.log)"
boot_ok=1
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" 600 \
	rtw.scenarios=$scenario quiet || boot_ok=0
# The guest's side of the story, without the kernel's boot chatter.
tap=$(sed -n "/^rtw-scenario-begin: $scenario\$/,/^rtw-scenario-end: $scenario\$/p" \
	"$work/console.log" | sed -n 's/^rtw-tap: //p')
printf '%s\n' "$tap" | sed 's/^# //' | grep -v '^1\.\.' || true
echo "(full console: $work/console.log)"

# The verdict: every check ran (the plan matches) and none failed.
passed=$(printf '%s\n' "$tap" | grep -cE '^ok [0-9]+' || true)
failed=$(printf '%s\n' "$tap" | grep -cE '^not ok [0-9]+' || true)
plan=$(printf '%s\n' "$tap" | sed -n 's/^1\.\.\([0-9]*\)$/\1/p' | tail -n1)
if [ $boot_ok = 0 ]; then
	rtw_die "the demo failed: the guest did not boot or finish cleanly (see above)"
elif [ "$failed" -gt 0 ]; then
	rtw_die "the demo failed: $failed of its checks failed (the 'not ok' lines above)"
elif [ -z "$plan" ] || [ "$plan" != $((passed + failed)) ]; then
	rtw_die "the demo failed: the scenario stopped after $((passed + failed)) checks${plan:+ of $plan}"
fi
skipped=$(printf '%s\n' "$tap" | grep -cE '^ok [0-9]+.*# SKIP' || true)
if [ "$skipped" -gt 0 ]; then
	rtw_log "the demo's checks passed; $skipped skipped, the machine being too slow for them"
else
	rtw_log "the demo's $passed checks passed"
fi
