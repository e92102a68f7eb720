#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest's initramfs: busybox (static, from the build root), iproute2's ip and ss
# with their libraries, the module, the guest scenarios, and any static test helpers.
#   qemu/initramfs.sh OUT.cpio [extra-file...]   (extra files land in /bin of the guest)
. "$(dirname "$0")/env.sh"

out=$1; shift
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,tests,usr/bin,usr/sbin}

cp "$RTW_ROOT/bin/busybox" "$stage/bin/busybox"
# iproute2 (veth, netns) and ss are dynamic: bring their libraries along, resolved in the root.
# copy_dynamic PROGRAM NAME: a program of the build root into /usr/local/bin as NAME, with the
# libraries ldd resolves for it inside the root.
copy_dynamic() {
	rtw_chroot "$RTW_ROOT" "" "" -- /bin/sh -c "ldd $1" |
		awk '/=>/ {print $3} /^\t\/lib/ {print $1}' >"$stage/.libs"
	cp "$RTW_ROOT$1" "$stage/usr/local/bin/$2"
	while read -r lib; do
		[ -n "$lib" ] || continue
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$RTW_ROOT$lib" "$stage$lib"
	done <"$stage/.libs"
	rm -f "$stage/.libs"
}
mkdir -p "$stage/usr/local/bin"
copy_dynamic /usr/bin/ip ip
copy_dynamic /usr/bin/ss ss
# nftables for the firewall scenarios (the hook runs after the filter tables).
copy_dynamic /usr/sbin/nft nft
ln -sf lib "$stage/lib64" 2>/dev/null || true
[ -e "$stage/lib64/ld-linux-x86-64.so.2" ] || cp -L "$RTW_ROOT/lib64/ld-linux-x86-64.so.2" "$stage/lib/"

# python3 and the kernel's ynl CLI with our YAML spec, so a scenario can drive the family the
# way the kernel's own tooling does (tests/guest/60-ynl.sh).
py=$(basename "$(readlink -f "$RTW_ROOT/usr/bin/python3")")
copy_dynamic "/usr/bin/$py" python3
mkdir -p "$stage/usr/lib/python3/dist-packages" "$stage/ynl"
cp -a "$RTW_ROOT/usr/lib/$py" "$stage/usr/lib/"
rm -rf "$stage/usr/lib/$py"/{test,idlelib,tkinter,ensurepip,pydoc_data,turtledemo}
cp -a "$RTW_ROOT/usr/lib/python3/dist-packages/yaml" "$stage/usr/lib/python3/dist-packages/"
cp -a "$RTW_KERNEL/src/tools/net/ynl/pyynl" "$stage/ynl/"
cp "$RTW_TOP/spec/rust_timewait.yaml" "$stage/ynl/"

cp "$RTW_TOP/rust_timewait.ko" "$stage/lib/modules/"
cp "$RTW_TOP/qemu/init" "$stage/init"
cp "$RTW_TOP"/tests/guest/*.sh "$RTW_TOP"/tests/guest/*.inc "$stage/tests/"
for f in "$@"; do cp "$f" "$stage/bin/"; done
chmod +x "$stage/init" "$stage"/tests/*.sh

echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out.tmp"
# An empty archive boots into "No working init found": refuse it here instead.
[ "$(stat -c %s "$out.tmp")" -gt 1000000 ] || rtw_die "initramfs $out is too small"
mv "$out.tmp" "$out"
echo "$out"
