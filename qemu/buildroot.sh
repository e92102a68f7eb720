#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Ensure the Debian trixie build root exists in the cache (debootstrap + packages +
# linux-source from trixie-backports). Idempotent: does nothing when the keyed root is there.
. "$(dirname "$0")/env.sh"

need_host_tools() {
	local missing=()
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	command -v cpio >/dev/null || missing+=(cpio)
	command -v unshare >/dev/null || missing+=(util-linux)
	[ ${#missing[@]} = 0 ] && return 0
	[ "$(id -u)" = 0 ] || rtw_die "host packages missing (${missing[*]}); run as root or install them"
	rtw_log "installing host packages: ${missing[*]}"
	apt-get update -q >"$RTW_CACHE/host-apt.log" 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$RTW_CACHE/host-apt.log" 2>&1 \
		|| { tail -n 20 "$RTW_CACHE/host-apt.log"; rtw_die "apt-get install failed"; }
}

make_root() {
	local tmp=$1
	debootstrap --variant=minbase "$RTW_SUITE" "$tmp" "$RTW_MIRROR"
	cat >"$tmp/etc/apt/sources.list" <<EOS
deb $RTW_MIRROR $RTW_SUITE main
deb $RTW_MIRROR $RTW_SUITE-backports main
EOS
	rtw_chroot "$tmp" "" "" -- apt-get update -q
	# shellcheck disable=SC2086
	rtw_chroot "$tmp" "" "" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $RTW_PACKAGES
	rtw_chroot "$tmp" "" "" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends -t "$RTW_SUITE-backports" "linux-source-$RTW_KVER"
	rtw_chroot "$tmp" "" "" -- apt-get clean
	ls "$tmp"/usr/src/linux-source-"$RTW_KVER".tar.* >/dev/null
}

need_host_tools
rtw_cached "$RTW_ROOT" "$RTW_CACHE/buildroot.log" "building the trixie build root" make_root
echo "$RTW_ROOT"
