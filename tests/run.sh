#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The test command (`make test`): host-side tests, then the module built against the cached
# test kernel, booted in QEMU with every guest scenario; KUnit's KTAP and the scenarios' TAP
# are parsed from the console log. Ends with one line: "N passed, N failed[, N skipped]".
#
# `make test-debug` runs the same on the debug kernel (RTW_FLAVOR=debug: KASAN, UBSAN, debug
# objects) with the fuzzers and the churn at full size (RTW_FUZZ=full) and a new seed each run.
#   RTW_SEED=N   the fuzzers' seed (make test: 1, so its runs repeat): a failure replays with it
. "$(dirname "$0")/../qemu/env.sh"

work="$RTW_TOP/build/test"
mkdir -p "$work"
passed=0 failed=0 skipped=0
count() { passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + ${3:-0})); }

# 1. Host-side cargo suites.
for manifest in "$RTW_TOP"/tests/host/*/Cargo.toml "$RTW_TOP"/twctl/Cargo.toml; do
	[ -f "$manifest" ] || continue
	name=$(basename "$(dirname "$manifest")")
	# Each host crate builds in build/, not in the clone's source folders.
	rtw_log "host tests: $name"
	if cargo test --manifest-path "$manifest" --target-dir "$RTW_TOP/build/host-$name" \
		>"$work/host-$name.log" 2>&1; then :; else
		tail -n 30 "$work/host-$name.log" >&2
	fi
	p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$work/host-$name.log" | awk '{s+=$4} END {print s+0}')
	f=$(grep -Eo '[0-9]+ failed;' "$work/host-$name.log" | awk '{s+=$1} END {print s+0}')
	# A crate that did not build ran nothing: count that as a failure.
	grep -q 'test result:' "$work/host-$name.log" || f=$((f + 1))
	rtw_log "host tests $name: $p passed, $f failed"
	count "$p" "$f"
done

# 2. The module and the guest.
bash "$RTW_TOP/qemu/module.sh" >/dev/null

# Host-side check of the netlink spec with the kernel's own ynl loader (needs the kernel tree).
python3 -c 'import yaml, jsonschema' 2>/dev/null ||
	python3 -m pip install -q --disable-pip-version-check jsonschema pyyaml >"$work/pip.log" 2>&1 || true
rtw_log "host tests: spec_check"
python3 "$RTW_TOP/tests/host/spec_check.py" "$RTW_KERNEL/src" "$RTW_TOP" >"$work/host-spec.log" 2>&1 || true
grep -E '^(not )?ok' "$work/host-spec.log" | grep '^not ok' || true
p=$(grep -cE '^ok [0-9]+' "$work/host-spec.log" || true)
s=$(grep -cE '^ok [0-9]+.*# SKIP' "$work/host-spec.log" || true)
f=$(grep -cE '^not ok [0-9]+' "$work/host-spec.log" || true)
[ "$p" -gt 0 ] || { tail -n 5 "$work/host-spec.log" >&2; f=$((f + 1)); }
rtw_log "host tests spec_check: $((p - s)) passed, $f failed, $s skipped"
count "$((p - s))" "$f" "$s"
rtw_prepare_guest "$work/initramfs.cpio"
fuzz=${RTW_FUZZ:-quick}
if [ "$fuzz" = full ]; then seed=${RTW_SEED:-$(date +%s)} limit=${RTW_BOOT_TIMEOUT:-5400}
else seed=${RTW_SEED:-1} limit=${RTW_BOOT_TIMEOUT:-900}; fi
replay="make test RTW_SEED=$seed"
[ "$fuzz" = quick ] || replay="RTW_FUZZ=$fuzz $replay"
[ "$RTW_FLAVOR" != debug ] || replay="make test-debug RTW_SEED=$seed"
rtw_log "booting the $RTW_FLAVOR kernel with every guest scenario, fuzz seed $seed ($fuzz) (log: $work/console.log)"
boot_ok=1
bash "$RTW_TOP/qemu/boot.sh" "$work/initramfs.cpio" "$work/console.log" "$limit" \
	rtw.scenarios=all rtw.seed="$seed" rtw.fuzz="$fuzz" || boot_ok=0

# 3. KUnit: the KTAP printed while 00-kunit loaded the module, parsed by the kernel's kunit.py.
sed -n '/^rtw-scenario-begin: 00-kunit/,/^rtw-scenario-end: 00-kunit/p' "$work/console.log" >"$work/kunit.log"
python3 "$RTW_KERNEL/src/tools/testing/kunit/kunit.py" parse "$work/kunit.log" >"$work/kunit-parsed.log" 2>&1 || true
sed 's/\x1b\[[0-9;]*m//g' "$work/kunit-parsed.log" | grep -E '\[(PASSED|FAILED|CRASHED|SKIPPED)\]|Testing complete' || true
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$work/kunit-parsed.log" | grep -o 'Ran [0-9]* tests:.*' | tail -n1)
kp=$(echo "$summary" | grep -o 'passed: [0-9]*' | grep -o '[0-9]*' || true)
kf=$(echo "$summary" | grep -o 'failed: [0-9]*' | grep -o '[0-9]*' || true)
kc=$(echo "$summary" | grep -o 'crashed: [0-9]*' | grep -o '[0-9]*' || true)
ks=$(echo "$summary" | grep -o 'skipped: [0-9]*' | grep -o '[0-9]*' || true)
kp=${kp:-0} kf=$(( ${kf:-0} + ${kc:-0} )) ks=${ks:-0}
if [ $((kp + kf + ks)) = 0 ]; then
	echo "KUnit: no results found in the console log" >&2
	kf=1
fi
rtw_log "KUnit: $kp passed, $kf failed, $ks skipped"
count "$kp" "$kf" "$ks"

# 4. Guest scenarios: TAP lines behind "rtw-tap: ".
sp=$(grep -cE '^rtw-tap: ok [0-9]+' "$work/console.log" || true)
ss=$(grep -cE '^rtw-tap: ok [0-9]+.*# SKIP' "$work/console.log" || true)
sf=$(grep -cE '^rtw-tap: not ok [0-9]+' "$work/console.log" || true)
grep -E '^rtw-(tap: not ok|scenario-begin)' "$work/console.log" || true
[ $boot_ok = 1 ] || sf=$((sf + 1))
rtw_log "guest scenarios: $((sp - ss)) passed, $sf failed, $ss skipped"
count "$((sp - ss))" "$sf" "$ss"

# docs/conformance.md from the differential run (75-conformance): every case, Linux's answer,
# ours and the verdict. Its cases are counted above; this counts whether the log held a whole,
# consistent run (at least 40 cases, verdicts that follow from the transcripts, decisions that
# exist) with no MISMATCH.
rtw_log "host: docs/conformance.md from the differential run"
if python3 "$RTW_TOP/tests/host/conformance.py" "$work/console.log" "$RTW_TOP/docs/conformance.md" \
	>"$work/conformance.log" 2>&1; then count 1 0; else tail -n 5 "$work/conformance.log" >&2; count 0 1; fi

# The figure the issue asks for, measured in the guest.
grep -o 'entry_size: .*' "$work/console.log" | head -n1 || true
# What the fuzzers and the churn put the module through, and how to replay it.
sed -n 's/^rtw-tap: rtw-survived: //p' "$work/console.log" | tr ' ' '\n' | awk -F= -v flavor="$RTW_FLAVOR" '
	NF == 2 { v[$1] += $2; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
	END { if (n) { printf "survived on the %s kernel:", flavor;
		for (i = 0; i < n; i++) printf " %s %d%s", order[i], v[order[i]], i + 1 < n ? "," : "\n" } }' | tr '_' ' '
[ "$failed" = 0 ] || echo "fuzz seed $seed: replay with '$replay'"

line="$passed passed, $failed failed"
[ "$skipped" = 0 ] || line="$line, $skipped skipped"
echo "$line"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
