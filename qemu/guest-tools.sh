#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the static programs the guest runs into build/guest-bin: twctl and its examples (Rust,
# glibc crt-static, with the host's cargo) and every tests/tools/*.c (C, static, with the build
# root's gcc): the scripted peer and the fuzzers.
. "$(dirname "$0")/env.sh"

out="$RTW_TOP/build/guest-bin"
mkdir -p "$out"
"$RTW_TOP/qemu/buildroot.sh" >/dev/null

log="$RTW_TOP/build/guest-tools.log"
if ! RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
	--target x86_64-unknown-linux-gnu --manifest-path "$RTW_TOP/twctl/Cargo.toml" \
	--target-dir "$RTW_TOP/build/twctl-target" --bin twctl --example handoff_server --example handoff_race >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	rtw_die "static twctl build failed; log: $log"
fi
cp "$RTW_TOP/build/twctl-target/x86_64-unknown-linux-gnu/release/twctl" "$out/twctl"
for ex in handoff_server handoff_race; do
	cp "$RTW_TOP/build/twctl-target/x86_64-unknown-linux-gnu/release/examples/$ex" "$out/$ex"
done

for c in "$RTW_TOP"/tests/tools/*.c; do
	name=$(basename "$c" .c)
	if ! rtw_chroot "$RTW_ROOT" "" "$RTW_TOP" -- \
		gcc -static -O2 -Wall -Wextra -Werror -o "/src/build/guest-bin/$name" "/src/tests/tools/$name.c" \
		>>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rtw_die "$name build failed; log: $log"
	fi
done
ls "$out"/*
