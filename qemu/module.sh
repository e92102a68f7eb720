#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build rust_timewait.ko against the cached test kernel, inside the build root, the way the
# README tells a user to build against their own tree: `make KDIR=<tree>`, which runs the
# standard external-module build `make -C <tree> M=$PWD modules`.
. "$(dirname "$0")/env.sh"

"$RTW_TOP/qemu/kernel.sh" >/dev/null
log="$RTW_CACHE/module-build.log"
# Objects built against another kernel (the test and the bench flavor differ in config) do not
# rebuild by themselves: Kbuild sees the same /kernel/src. Start clean when the kernel changed.
stamp="$RTW_TOP/.rtw-kernel"
if [ "$(cat "$stamp" 2>/dev/null)" != "$RTW_KERNEL" ]; then
	make -s -C "$RTW_TOP" clean >/dev/null
	echo "$RTW_KERNEL" >"$stamp"
fi
if ! rtw_chroot "$RTW_ROOT" "$RTW_KERNEL" "$RTW_TOP" -- \
	make -C /src KDIR=/kernel/src >"$log" 2>&1; then
	cat "$log" >&2
	rtw_die "module build failed; log: $log"
fi
grep -E 'warning|error' "$log" >&2 || true
test -f "$RTW_TOP/rust_timewait.ko"
echo "$RTW_TOP/rust_timewait.ko"
