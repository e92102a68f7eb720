#!/usr/bin/env bash
# `make demo`: build what is missing, boot the test kernel and run the demo scenario
# (tests/guest/demo.sh) with the console on this terminal.
. "$(dirname "$0")/env.sh"

work="$RTW_TOP/build/demo"
mkdir -p "$work"
bash "$RTW_TOP/qemu/module.sh" >/dev/null
bash "$RTW_TOP/qemu/guest-tools.sh" >/dev/null
bash "$RTW_TOP/qemu/initramfs.sh" "$work/initramfs.cpio" "$RTW_TOP"/build/guest-bin/* >/dev/null
rtw_log "booting the test kernel (console below; log: $work/console.log)"
set +e
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" 300 rtw.scenarios=demo quiet
rc=$?
set -e
# The guest's side of the story, without the kernel's boot chatter.
sed -n '/^rtw-scenario-begin: demo/,/^rtw-scenario-end: demo/p' "$work/console.log" | sed 's/^rtw-tap: //'
exit $rc
