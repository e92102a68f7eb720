# SPDX-License-Identifier: GPL-2.0
# Shared settings for the build/boot pipeline. Sourced, never run.
#
# Everything expensive (the Debian trixie build root, the test kernel) lives in a cache
# outside the clone, keyed by what went into it, so a fresh clone (CI) reuses it and a
# change to a key rebuilds only that part.

set -euo pipefail

RTW_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RTW_CACHE=${RTW_CACHE:-/var/cache/rust_timewait}
RTW_MIRROR=${RTW_MIRROR:-http://deb.debian.org/debian}
RTW_SUITE=trixie
RTW_KVER=${RTW_KVER:-7.3}
# What goes into the build root. Changing this list changes the root's key.
RTW_PACKAGES="rustc rust-src bindgen libclang-dev gcc libc6-dev make bc flex bison libelf-dev
libssl-dev python3 python3-yaml cpio kmod busybox-static xz-utils iproute2 ca-certificates
nftables clang lld llvm"

mkdir -p "$RTW_CACHE"

rtw_log() { printf '[rtw %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rtw_die() { printf '[rtw] error: %s\n' "$*" >&2; exit 1; }

rtw_hash() { sha256sum | cut -c1-16; }
# A script as it goes into a key: without its SPDX line, which changes nothing that is built.
rtw_keyed() { sed '/^# SPDX-License-Identifier: /d' "$@"; }

# The build root's key: suite, package list, kernel source package and the script that makes it.
rtw_root_key() {
	{ echo "$RTW_SUITE $RTW_MIRROR linux-source-$RTW_KVER"; echo "$RTW_PACKAGES";
	  rtw_keyed "$RTW_TOP/qemu/buildroot.sh"; } | rtw_hash
}
RTW_ROOT="$RTW_CACHE/root-$(rtw_root_key)"

# Which kernel: "test" (qemu/kernel.config: lockdep, PROVE_RCU, kmemleak, for every test),
# "bench" (the same with qemu/kernel-bench.config on top: no debugging instrumentation, for
# `make bench`, whose figures lockdep's per-lookup checks would otherwise dominate) or "debug"
# (qemu/kernel-debug.config on top: KASAN, UBSAN, debug objects, Rust debug assertions, built
# by clang; for `make test-debug`).
RTW_FLAVOR=${RTW_FLAVOR:-test}
# The config fragment of the flavor, one line per option, the last setting of each winning.
rtw_fragment() {
	local extra=""
	[ "$RTW_FLAVOR" = test ] || extra="$RTW_TOP/qemu/kernel-$RTW_FLAVOR.config"
	rtw_keyed "$RTW_TOP/qemu/kernel.config" $extra | awk '
		/^CONFIG_[A-Za-z0-9_]*=/ { o = $0; sub(/=.*/, "", o) }
		/^# CONFIG_[A-Za-z0-9_]* is not set/ { o = $2 }
		/^(CONFIG_|# CONFIG_)/ { if (!(o in v)) order[n++] = o; v[o] = $0; next }
		END { for (i = 0; i < n; i++) print v[order[i]] }'
}
# The kernel's key: the root it was built with, the config fragment and the build script.
rtw_kernel_key() {
	{ rtw_root_key; rtw_keyed "$RTW_TOP/qemu/kernel.config" "$RTW_TOP/qemu/kernel.sh";
	  [ "$RTW_FLAVOR" = test ] || { echo "$RTW_FLAVOR"; rtw_fragment; }; } | rtw_hash
}
RTW_KERNEL="$RTW_CACHE/kernel-$(rtw_kernel_key)"

# Run a command inside the build root in a private mount namespace: the bind mounts vanish
# with the namespace on every exit path (error, signal, kill), so none can be left behind.
#   rtw_chroot ROOT KERNELDIR SRCDIR -- cmd...
# KERNELDIR appears as /kernel and SRCDIR as /src inside the root ("" to skip either).
rtw_chroot() {
	local root=$1 kdir=$2 src=$3; shift 4
	unshare --mount --propagation private -- /bin/bash -euc '
		root=$1 kdir=$2 src=$3; shift 3
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		[ -z "$kdir" ] || { mkdir -p "$root/kernel"; mount --bind "$kdir" "$root/kernel"; }
		[ -z "$src" ] || { mkdir -p "$root/src"; mount --bind "$src" "$root/src"; }
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
			LANG=C.UTF-8 "$@"' rtw-chroot "$root" "$kdir" "$src" "$@"
}

# Run a long step with its output in a log file, a progress line every 20 s, and the log's
# tail on failure.  rtw_step LOG "what" cmd...
rtw_step() {
	local log=$1 what=$2; shift 2
	rtw_log "$what (log: $log)"
	local start=$SECONDS
	"$@" >"$log" 2>&1 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 20 &
		wait $! || true
		kill -0 "$pid" 2>/dev/null || break
		rtw_log "  ... $what: $((SECONDS - start)) s, $(wc -l <"$log") log lines, last: $(tail -n1 "$log" | cut -c1-90)"
	done
	if ! wait "$pid"; then
		tail -n 40 "$log" >&2
		rtw_die "$what failed after $((SECONDS - start)) s; full log: $log"
	fi
	rtw_log "$what: done in $((SECONDS - start)) s"
}

# Serialise cache builders: concurrent runs wait instead of building the same thing twice.
rtw_lock() { exec 9>"$RTW_CACHE/.lock"; flock 9; }
rtw_unlock() { flock -u 9; }

# Make the cache entry DIR unless it is complete: `BUILDER TMP` builds it in DIR.tmp.PID under
# the cache lock, and only a complete build is renamed into place, so an interrupted or
# concurrent run never leaves a half-built entry that a later run trusts.
#   rtw_cached DIR LOG "what" BUILDER
rtw_cached() {
	local dir=$1 log=$2 what=$3 builder=$4 tmp
	[ -f "$dir/.complete" ] && return 0
	rtw_lock
	if [ ! -f "$dir/.complete" ]; then
		tmp="$dir.tmp.$$"
		rm -rf "$tmp"
		trap "rm -rf '$tmp'" EXIT
		rtw_step "$log" "$what" "$builder" "$tmp"
		touch "$tmp/.complete"
		rm -rf "$dir"
		mv "$tmp" "$dir"
		trap - EXIT
	fi
	rtw_unlock
}

# Build the module and the guest tools and pack an initramfs at $1 with all of them: the common
# first step of `make test`, `make demo` and `make bench`.
rtw_prepare_guest() {
	bash "$RTW_TOP/qemu/module.sh" >/dev/null
	bash "$RTW_TOP/qemu/guest-tools.sh" >/dev/null
	bash "$RTW_TOP/qemu/initramfs.sh" "$1" "$RTW_TOP"/build/guest-bin/* >/dev/null
}
