#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Ensure the kernel of $RTW_FLAVOR (tinyconfig + qemu/kernel.config [+ qemu/kernel-$RTW_FLAVOR.config],
# with Rust and KUnit) is built in the cache. Builds into a temporary directory and renames it into place only when complete, so an
# interrupted run never leaves a tree that later runs trust. Inside the build root the tree is
# always /kernel/src, whatever its path in the cache, so the rename does not break its paths.
. "$(dirname "$0")/env.sh"

"$RTW_TOP/qemu/buildroot.sh" >/dev/null

# The debug flavor's KASAN needs clang with Rust (see qemu/kernel-debug.config); the others
# keep GCC, the compiler most distribution kernels are built with.
toolchain=""
[ "$RTW_FLAVOR" != debug ] || toolchain="LLVM=1"

build_kernel() {
	local tmp=$1 jobs
	jobs=$(nproc)
	mkdir -p "$tmp"
	rtw_fragment >"$tmp/fragment.config"
	rtw_chroot "$RTW_ROOT" "$tmp" "" -- /bin/bash -euc '
		cd /kernel
		tar xf /usr/src/linux-source-'"$RTW_KVER"'.tar.xz
		mv linux-source-'"$RTW_KVER"' src
		cd src
		make -s '"$toolchain"' tinyconfig
		scripts/kconfig/merge_config.sh -m .config /kernel/fragment.config
		make -s '"$toolchain"' olddefconfig
		# Fail loudly when an option asked for did not survive (a missing dependency).
		bad=0
		while IFS= read -r line; do
			case "$line" in
			CONFIG_*=*) grep -qx "$line" .config || { echo "config: $line did not survive olddefconfig" >&2; bad=1; } ;;
			"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
				! grep -q "^$opt=" .config || { echo "config: $opt is set but the fragment unsets it" >&2; bad=1; } ;;
			esac
		done </kernel/fragment.config
		[ $bad = 0 ] || exit 1
		make '"$toolchain"' rustavailable
		make '"$toolchain"' -j'"$jobs"' bzImage modules
		# Module.symvers exists only after `make modules`; external modules need it for modpost.
		test -f Module.symvers && test -f arch/x86/boot/bzImage'
}

rtw_cached "$RTW_KERNEL" "$RTW_CACHE/kernel-$RTW_FLAVOR-build.log" \
	"building the $RTW_FLAVOR kernel $RTW_KVER (about 8-10 min on 2 cores)" build_kernel
echo "$RTW_KERNEL"
