#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Lifecycle churn under traffic: the module loaded and unloaded while a peer floods a guarded
# tuple and entries are added; network namespaces created with entries and traffic and
# destroyed; maxtcptw lowered below the live count; msl_ms and fin_timeout_ms changed under
# live entries; handoffs racing the peer's FIN (twctl/examples/handoff_race.rs), each ending
# with exactly one guard. Then kmemleak. rtw.fuzz=full (make test-debug): 100 module cycles,
# 100 netns, 1000 races; make test: 5, 5 and 40.
. /tests/tap.inc
. /tests/net.inc
S=/proc/sys/net/rust_timewait
if [ "$(arg fuzz quick)" = full ]; then cycles=100 nets=100 races=1000; else cycles=5 nets=5 races=40; fi
mount -t debugfs none /sys/kernel/debug 2>/dev/null
K=/sys/kernel/debug/kmemleak
[ -w $K ] && echo clear >$K
# The module's KUnit suites would run again at every insmod: once (00-kunit) is enough.
echo no-such-suite >/sys/module/kunit/parameters/filter_glob
KO=/lib/modules/rust_timewait.ko
net_up
entry_lines 200 20000 45000 >/tmp/churn-entries
guard() { twctl add $H4:80 $P4:7777 --snd-nxt 1000 --rcv-nxt 2000 >/dev/null 2>&1; }

# 1. Module cycles under a flood of duplicate ACKs, with netns coming and going.
peer -s $P4 -d $H4 -p 7777 -P 80 -q 2000 -a 1000 -f A -n 100000000 -W 0 >/dev/null 2>&1 & flood=$!
i=0 ok_cycles=0
while [ $i -lt $cycles ]; do
	unshare -n true &
	insmod $KO && guard && twctl add -f /tmp/churn-entries >/dev/null && rmmod rust_timewait &&
		ok_cycles=$((ok_cycles + 1))
	wait $!
	i=$((i + 1))
done
check_eq "$cycles insmod/add/rmmod cycles under a flood" $cycles "$ok_cycles"
check "the flood ran through them" kill -0 $flood

# 2. Netns with entries and their own traffic, destroyed while it and the flood run.
insmod $KO && guard
i=0 ok_nets=0
while [ $i -lt $nets ]; do
	# In the new netns: entries on loopback, then connects onto guarded tuples (the LOCAL_OUT
	# hook) in the background; the netns goes when its last process does, mid-traffic.
	unshare -n sh -c '
		ip link set lo up
		awk "BEGIN { for (p = 1; p <= 50; p++) printf \"127.0.0.1:%d 127.0.0.2:80 snd_nxt=1 rcv_nxt=1\n\", 30000 + p }" |
			twctl add -f - >/dev/null || exit 1
		(while :; do rtw-peer -C -s 127.0.0.1 -d 127.0.0.2 -p 30001 -P 80 -W 20 >/dev/null; done) &
		sleep 0.2
		kill $!' && ok_nets=$((ok_nets + 1))
	i=$((i + 1))
done
check_eq "$nets netns created with entries and traffic, destroyed" $nets "$ok_nets"
check "the flood still runs" kill -0 $flood
kill $flood 2>/dev/null
wait $flood 2>/dev/null

# wait_entries N: until the table holds N entries, 20 s at most (the reaper runs at once; an
# emulated, loaded guest may take a moment). The old timeouts were minutes: a pass is no accident.
wait_entries() {
	t=0
	while [ "$(stat entries)" != "$1" ] && [ $t -lt 40 ]; do sleep 0.5; t=$((t + 1)); done
}

# 3. maxtcptw lowered below the live count: the table comes down to it at once (D37).
echo 4096 >$S/maxtcptw
twctl flush >/dev/null
entry_lines 1000 20000 45001 >/tmp/churn-1000
twctl add -f /tmp/churn-1000 >/dev/null
check_eq "1000 entries" 1000 "$(stat entries)"
before=$(stat recycled)
echo 100 >$S/maxtcptw
wait_entries 100
check_eq "maxtcptw lowered to 100: the table trimmed to 100" 100 "$(stat entries)"
check_eq "... counted as recycled" 900 $(($(stat recycled) - before))
check "an add into the trimmed table" twctl add $H4:21000 $P4:45002 --snd-nxt 1 --rcv-nxt 1
check_eq "... stays within it" 100 "$(stat entries)"
echo 0 >$S/maxtcptw
twctl flush >/dev/null

# 4. Timeouts changed under live entries: shorter ones free them at once (D30, D37).
twctl add -f /tmp/churn-entries >/dev/null
twctl add $H4:81 $P4:7778 --snd-nxt 1 --rcv-nxt 2 --fw2 >/dev/null
echo 60000 >$S/msl_ms
echo 60000 >$S/fin_timeout_ms
e1=$(expires_ms $H4:20000 $P4:45000)
echo 120000 >$S/msl_ms
e2=$(expires_ms $H4:20000 $P4:45000)
check "msl_ms raised: live entries last longer ($e1 -> $e2 ms)" [ "$e2" -gt $((e1 + 100000)) ]
echo 200 >$S/msl_ms
wait_entries 1
check_eq "msl_ms lowered to 200: the TIME_WAIT entries are freed at once, not in 2 minutes" 1 "$(stat entries)"
echo 200 >$S/fin_timeout_ms
wait_entries 0
check_eq "fin_timeout_ms lowered: the FIN_WAIT_2 entry is freed too" 0 "$(stat entries)"
echo 30000 >$S/msl_ms
echo 60000 >$S/fin_timeout_ms
check_eq "counters add up" 0 "$(balance)"
net_down

# 5. Handoffs racing the peer's FIN: exactly one guard each time.
h=$((races / 2))
for a in 127.0.0.1 ::1; do
	out=$(handoff_race $a $h 2>&1); rc=$?
	echo "$out" | tail -n 20 | sed 's/^/# /'
	check_eq "$h handoff races on $a: every tuple has exactly one guard" 0 "$rc"
	# Both ends of the race were reached, or the test raced nothing.
	echo "$out" >/tmp/race.out
	check "... some handed off, some with the peer's FIN first" \
		grep -q 'handed_off=[1-9].* peer_fin_first=[1-9]' /tmp/race.out
done
twctl flush >/dev/null
check "rmmod" rmmod rust_timewait

# 6. Nothing the module allocated is left unreferenced.
if [ -w $K ]; then
	insmod $KO && twctl add $H4:80 $P4:1 --snd-nxt 1 --rcv-nxt 1 >/dev/null 2>&1
	check_eq "kmemleak: no unreferenced object from the module after the churn" 0 "$(module_leaks)"
	rmmod rust_timewait
else
	not_ok "kmemleak is available"
fi
echo '*.*' >/sys/module/kunit/parameters/filter_glob 2>/dev/null
survived "module_cycles=$ok_cycles netns_cycles=$ok_nets handoff_races=$races"
tap_done
