#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# twctl in the guest: exit codes (3 no module, 1 refusal with the kernel's message, 4 EPERM,
# 5 peer FIN first), IPv4/IPv6/link-local entries, batch reports, the live-socket handoff
# against a listener that does not accept (our data and FIN are ACKed, the peer stays in
# CLOSE_WAIT), then the peer's FIN turning the FIN_WAIT_2 entry into TIME_WAIT (F5).
. /tests/tap.inc
rc() { "$@" >/tmp/out 2>&1; echo $?; }
# sockets STATE: Linux sockets on port 5000 in STATE (iproute2's ss); "error" if ss fails.
sockets() {
	/usr/local/bin/ss -tanH state "$1" >/tmp/ss 2>&1 || { echo error; return; }
	grep -c ':5000 ' /tmp/ss
}
show() { sed 's/^/# /' /tmp/out; }
rmmod rust_timewait 2>/dev/null
check_eq "no module: exit 3" 3 "$(rc twctl stats)"; show
check "insmod" insmod /lib/modules/rust_timewait.ko
check "add v4" twctl add 10.9.0.1:80 10.9.0.2:40000 --snd-nxt 1000 --rcv-nxt 2000 --win 501 --wscale 7 --ts-recent 7000 --ts-offset -5
check "add fw2 with ts, no ts_recent" twctl add 10.9.0.1:81 10.9.0.2:40000 --snd-nxt 1 --rcv-nxt 2 --ts --ts-offset 9 --fw2
twctl list -e | sed 's/^/# /'
twctl get 10.9.0.1:80 10.9.0.2:40000 | sed 's/^/# /'
check_eq "get json" '"ts_recent":7000' "$(twctl -j get 10.9.0.1:80 10.9.0.2:40000 | grep ts_recent | tr -d ' ')"
twctl -j get 10.9.0.1:80 10.9.0.2:40000 | grep -E 'ts_recent|ts_offset|rcv_wscale|last_win' | sed 's/^/# /'
check_eq "duplicate: exit 1" 1 "$(rc twctl add 10.9.0.1:80 10.9.0.2:40000 --snd-nxt 1 --rcv-nxt 2)"; show
check_eq "del missing: exit 1" 1 "$(rc twctl del 10.9.0.1:99 10.9.0.2:40000)"; show
check_eq "get missing: exit 1" 1 "$(rc twctl get 10.9.0.1:99 10.9.0.2:40000)"; show
check "add link-local v6" twctl add '[fe80::1%1]:80' '[fe80::2]:1000' --snd-nxt 1 --rcv-nxt 2
check_eq "list v6 shows scope" 1 "$(twctl list -6 | grep -c 'fe80::1%1\]:80')"
twctl list -6 | sed 's/^/# /'
check "get v6" twctl get '[fe80::1]:80' '[fe80::2%1]:1000' -j
i=0; while [ $i -lt 300 ]; do echo "10.9.1.1:$((20000 + i)) 10.9.1.2:1 snd_nxt=1 rcv_nxt=1"; i=$((i+1)); done > /tmp/b
echo "10.9.0.1:80 10.9.0.2:40000 snd_nxt=1 rcv_nxt=1 # already there" >> /tmp/b
check_eq "batch with one duplicate: exit 1" 1 "$(rc twctl add -f /tmp/b --batch 100)"; show
check_eq "batch: 300 listed" 300 "$(twctl list | grep -c '10.9.1.2:1 ')"
check_eq "batch json" '"taken":0' "$(twctl -j add -f /tmp/b 2>/dev/null | grep '"taken"' | tr -d ' ')"
check_eq "replace: exit 0" 0 "$(rc twctl add -f /tmp/b --replace)"; show
check_eq "unprivileged add: exit 4" 4 "$(rc su nobody -s /bin/sh -c 'twctl add 10.9.0.1:82 10.9.0.2:1 --snd-nxt 1 --rcv-nxt 1')"; show
# Entries carry sequence numbers: reading them is as privileged as changing them; counters are not.
check_eq "unprivileged list: exit 4" 4 "$(rc su nobody -s /bin/sh -c 'twctl list')"; show
check "... and says why" grep -q CAP_NET_ADMIN /tmp/out
check_eq "unprivileged get: exit 4" 4 "$(rc su nobody -s /bin/sh -c 'twctl get 10.9.0.1:80 10.9.0.2:40000')"
check_eq "unprivileged stats: exit 0" 0 "$(rc su nobody -s /bin/sh -c 'twctl stats')"
twctl stats | sed 's/^/# /'
check_eq "flush" "flushed 303 entries" "$(twctl flush)"
# Live-socket handoff (docs/behaviour.md §6), IPv4 and IPv6: a server that reads our data and FIN,
# then closes a moment later. The handoff happens while it waits (our FIN acknowledged, theirs
# not sent: FIN_WAIT2); its FIN then reaches the module's entry, not a Linux socket.
for fam in 4 6; do
	if [ $fam = 4 ]; then A=127.0.0.1; U=127.0.0.1:5000; else A=::1; U='[::1]:5000'; fi
	rtw-peer -L -s $A -p 5000 -W 3000 >/tmp/served & srv=$!
	sleep 0.3
	before=$(twctl -j stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"fin_wait2_completed": *\([0-9]*\).*/\1/p')
	check_eq "IPv$fam handoff: exit 0" 0 "$(rc twctl handoff --connect $U --send hello)"; show
	check_eq "IPv$fam handoff: a FIN_WAIT_2 entry" 1 "$(twctl list --state fin-wait2 | grep -cF "$U")"
	check_eq "IPv$fam handoff: the client socket is gone (not in FIN-WAIT-2)" 0 "$(sockets fin-wait-2)"
	wait $srv
	check_eq "IPv$fam the server saw our data and FIN" "served bytes=5" "$(cat /tmp/served)"
	sleep 0.3
	check_eq "IPv$fam the server's FIN made it TIME_WAIT (F5)" 1 "$(twctl list --state time-wait | grep -cF "$U")"
	check_eq "IPv$fam no Linux TIME_WAIT socket" 0 "$(sockets time-wait)"
	after=$(twctl -j stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"fin_wait2_completed": *\([0-9]*\).*/\1/p')
	check_eq "IPv$fam fin_wait2_completed counted" $((before + 1)) "$after"
done
check_eq "handoff --fd of a listener: exit 1" 1 "$(rc sh -c 'twctl handoff --fd 0' < /dev/null)"; show
twctl flush >/dev/null
# A server that closes at once: either handed off (0) or the peer's FIN won (5, no entry).
(sleep 3 | nc -l -p 5001 >/dev/null) & sleep 0.3
r=$(rc twctl handoff --connect 127.0.0.1:5001 --send bye); show
diag "race outcome: $r"
sleep 0.5
if [ "$r" = 5 ]; then check_eq "no entry left" 0 "$(twctl list | grep -c :5001)"; else check_eq "handed off, then TIME-WAIT" 1 "$(twctl list --state tw | grep -c :5001)"; fi
# Data received and not read: a handoff would lose it silently (the module would acknowledge
# the peer's FIN as if the data had been delivered). twctl refuses, and the socket is closed as
# close() closes it (a reset, RFC 2525 §2.17).
rtw-peer -L -s 127.0.0.1 -p 5002 -W 3000 -l 11 >/dev/null & srv=$!
sleep 0.3
check_eq "handoff with unread data: refused (exit 1)" 1 "$(rc twctl handoff --connect 127.0.0.1:5002 --send hi)"; show
check "... and says why" grep -q "received and not read" /tmp/out
check_eq "... and leaves no entry" 0 "$(twctl list | grep -c :5002)"
wait $srv
check "ifname scope" twctl add '[fe80::1%lo]:80' '[fe80::2]:1' --snd-nxt 1 --rcv-nxt 2
twctl list -6 | sed 's/^/# /'
twctl flush >/dev/null
check "rmmod" rmmod rust_timewait
tap_done
