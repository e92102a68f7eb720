#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The engine on real IPv6 segments from another netns (same checks as IPv4 where they differ
# only by family: the reply's header, checksum over the IPv6 pseudo-header, hop limit).
. /tests/tap.inc
. /tests/net.inc
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
net_up

T="-s $P6 -d $H6 -p 50000 -P 443"
check "add an IPv6 TIME_WAIT entry" \
	twctl add "[$H6]:443" "[$P6]:50000" --snd-nxt 0xfffffff0 --rcv-nxt 0x10 --win 1234 --ts-recent 0xfffffffe --ts-offset 5
check_eq "list shows it" 1 "$(twctl list | grep -c "$H6")"

# T6 across the sequence wrap: the FIN sat at 0xf, so seq + 1 == rcv_nxt (0x10).
out=$(peer $T -q 15 -a 4294967280 -f FA -t 3:9)
diag "$out"
check_eq "T6 reply flags" A "$(echo "$out" | field flags)"
check_eq "T6 reply seq = snd_nxt" 4294967280 "$(echo "$out" | field seq)"
check_eq "T6 reply ack = rcv_nxt" 16 "$(echo "$out" | field ack)"
check_eq "T6 reply window" 1234 "$(echo "$out" | field win)"
check_eq "T6 reply data offset 8" 8 "$(echo "$out" | field doff)"
check_eq "T6 reply TCP checksum (IPv6 pseudo-header)" ok "$(echo "$out" | field tcp_csum)"
check_eq "T6 reply hop limit is the netns default" 64 "$(echo "$out" | field ttl)"
ts=$(echo "$out" | field ts)
check_eq "T6 reply TSecr = ts_recent" 4294967294 "${ts#*:}"

# T2 across the timestamp wrap: 3 is after 0xfffffffe, so it is not a PAWS failure; 0xfffffff0 is.
out=$(peer $T -q 16 -a 4294967280 -f A -t 4294967280:9 -l 5)
check_eq "T2 PAWS (wrapped): ACK" A "$(echo "$out" | field flags)"
check_eq "T2 PAWS counted" 1 "$(stat paws_dropped)"

# T1: RST dropped, entry kept.
out=$(peer $T -q 16 -a 4294967280 -f R)
check_eq "T1 RST: no reply" "replies=0" "$(echo "$out" | tail -n1)"
check_eq "T1 RST: entry alive" 1 "$(twctl list | grep -c "$H6")"

# T4: a SYN not above rcv_nxt but with a newer timestamp reuses the tuple (RFC 6191).
out=$(peer $T -q 5 -a 0 -f S -t 100:0 -W 500)
check_eq "T4 SYN reuse by timestamp: counted" 1 "$(stat syn_reuse)"
check_eq "T4 entry gone" 0 "$(twctl list | grep -c "$H6")"
check_eq "T4 the stack answered" RA "$(echo "$out" | field flags)"

# Extension headers are walked as the stack walks them (D13): a retransmitted FIN behind a
# destination-options header is answered, and a SYN behind one still reuses the tuple (T3)
# rather than leaving the new connection to hang on a stale entry.
check "add an entry for extension-header segments" \
	twctl add "[$H6]:444" "[$P6]:50003" --snd-nxt 1000 --rcv-nxt 2000 --win 10
X="-s $P6 -d $H6 -p 50003 -P 444"
out=$(peer $X -X -q 1999 -a 1000 -f FA)
check_eq "FIN behind destination options: ACK" A "$(echo "$out" | field flags)"
check_eq "... with our numbers" 2000 "$(echo "$out" | field ack)"
out=$(peer $X -X -q 9000 -a 0 -f S -W 500)
check_eq "SYN behind destination options: counted as reuse" 2 "$(stat syn_reuse)"
check_eq "... entry gone" 0 "$(twctl list | grep -c "$H6\]:444")"
check_eq "... and the stack answered" RA "$(echo "$out" | field flags)"

# Link-local tuples belong to a link (RFC 4007): an entry scoped to veth0 answers there, one
# scoped to another interface does not (the stack answers RST for no socket).
$IP -6 addr add fe80::1/64 dev veth0 nodad
$IP -6 neigh replace fe80::2 lladdr "$PEER_MAC" dev veth0 nud permanent
check "add a link-local entry scoped to veth0" \
	twctl add "[fe80::1%veth0]:443" "[fe80::2]:50001" --snd-nxt 77 --rcv-nxt 88 --win 10
check "add one scoped to lo" twctl add "[fe80::1%lo]:443" "[fe80::2]:50002" --snd-nxt 77 --rcv-nxt 88 --win 10
out=$(peer -s fe80::2 -d fe80::1 -p 50001 -P 443 -q 87 -a 77 -f FA)
check_eq "link-local on its own link: ACK" A "$(echo "$out" | field flags)"
check_eq "link-local reply checksum" ok "$(echo "$out" | field tcp_csum)"
out=$(peer -s fe80::2 -d fe80::1 -p 50002 -P 443 -q 87 -a 77 -f FA)
check_eq "link-local entry of another link: not ours, the stack's RST" R "$(echo "$out" | field flags)"

net_down
check "rmmod" rmmod rust_timewait
tap_done
