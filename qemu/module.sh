#!/usr/bin/env bash
# Build rust_timewait.ko against the cached test kernel, inside the build root:
# the standard external-module build, `make -C /kernel/src M=/src`.
. "$(dirname "$0")/env.sh"

"$RTW_TOP/qemu/kernel.sh" >/dev/null
log="$RTW_CACHE/module-build.log"
if ! rtw_chroot "$RTW_ROOT" "$RTW_KERNEL" "$RTW_TOP" -- \
	make -C /kernel/src M=/src modules >"$log" 2>&1; then
	cat "$log" >&2
	rtw_die "module build failed; log: $log"
fi
grep -E 'warning|error' "$log" >&2 || true
test -f "$RTW_TOP/rust_timewait.ko"
echo "$RTW_TOP/rust_timewait.ko"
