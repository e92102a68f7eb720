#!/usr/bin/env bash
# `make demo`: build what is missing, boot the test kernel and run the server-handoff scenario
# (tests/guest/70-server-handoff.sh): a real server closing connections, first with Linux's own
# TIME_WAIT, then handing each to rust_timewait; shown as a person reads it.
. "$(dirname "$0")/env.sh"

work="$RTW_TOP/build/demo"
mkdir -p "$work"
rtw_prepare_guest "$work/initramfs.cpio"
rtw_log "booting the test kernel (console below; log: $work/console.log)"
set +e
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" 300 \
	rtw.scenarios=70-server-handoff quiet
rc=$?
set -e
# The guest's side of the story, without the kernel's boot chatter.
sed -n '/^rtw-scenario-begin: 70/,/^rtw-scenario-end: 70/p' "$work/console.log" |
	sed -n 's/^rtw-tap: //p' | sed 's/^# //' | grep -v '^1\.\.'
echo "(full console: $work/console.log)"
exit $rc
