#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The engine on real IPv4 segments from another netns: hand off a TIME_WAIT entry over netlink,
# then check every kind of reply byte by byte, and the entry's life (re-arm, SYN reuse).
. /tests/tap.inc
. /tests/net.inc
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
net_up

T="-s $P4 -d $H4 -p 40000 -P 80"
check "add a TIME_WAIT entry with timestamps" \
	twctl add $H4:80 $P4:40000 --snd-nxt 1000 --rcv-nxt 2000 --win 501 --ts-recent 7000 --ts-offset 100000
check_eq "list shows it" 1 "$(twctl list | grep -c "$H4:80")"

# T6: the peer retransmits its FIN: an ACK comes back with the entry's numbers, 2MSL re-armed.
before=$(expires_ms $H4:80 $P4:40000)
sleep 5
out=$(peer $T -q 1999 -a 1000 -f FA -t 7001:5)
diag "$out"
check_eq "T6 reply flags" A "$(echo "$out" | field flags)"
check_eq "T6 reply seq = snd_nxt" 1000 "$(echo "$out" | field seq)"
check_eq "T6 reply ack = rcv_nxt" 2000 "$(echo "$out" | field ack)"
check_eq "T6 reply window = last_win" 501 "$(echo "$out" | field win)"
check_eq "T6 reply data offset 8 (NOP NOP TS)" 8 "$(echo "$out" | field doff)"
check_eq "T6 reply TCP checksum" ok "$(echo "$out" | field tcp_csum)"
check_eq "T6 reply IP checksum" ok "$(echo "$out" | field ip_csum)"
check_eq "T6 reply TTL is the netns default" 64 "$(echo "$out" | field ttl)"
ts=$(echo "$out" | field ts)
check_eq "T6 reply TSecr = ts_recent" 7000 "${ts#*:}"
tsval=${ts%%:*}
check "T6 reply TSval = clock + ts_offset ($tsval)" [ "$tsval" -ge 100000 ]
after=$(expires_ms $H4:80 $P4:40000)
# Five seconds passed: without a re-arm the lifetime would be at least 5 s shorter than before;
# with it, it is back near 2MSL less the few hundred ms the emulated guest needs to ask.
check "T6 re-armed 2MSL ($before -> $after ms)" [ "$after" -gt $((before - 3000)) ]

# T1: an RST is dropped and the entry lives (RFC 1337).
out=$(peer $T -q 2000 -a 1000 -f R)
check_eq "T1 RST: no reply" "replies=0" "$(echo "$out" | tail -n1)"
check_eq "T1 RST: counted" 1 "$(stat rst_dropped)"
check_eq "T1 RST: entry alive" 1 "$(twctl list | grep -c "$H4:80")"

# T2: PAWS: an old TSval gets an ACK (rate-limited), no re-arm.
out=$(peer $T -q 2000 -a 1000 -f A -t 6000:5 -l 10)
check_eq "T2 PAWS: ACK" A "$(echo "$out" | field flags)"
check_eq "T2 PAWS: counted" 1 "$(stat paws_dropped)"

# T7: an exact duplicate ACK is dropped silently.
out=$(peer $T -q 2000 -a 1000 -f A -t 7002:5)
check_eq "T7 duplicate ACK: no reply" "replies=0" "$(echo "$out" | tail -n1)"

# T8: an ACK of something we never sent gets an ACK (rate-limited: wait out the last reply).
sleep 0.6
out=$(peer $T -q 2000 -a 1500 -f A -t 7003:5)
check_eq "T8 ACK of unsent data: ACK" A "$(echo "$out" | field flags)"

# T9: an old ACK (before snd_nxt) is a duplicate: dropped silently.
sleep 0.6
out=$(peer $T -q 2000 -a 500 -f A -t 7003:5)
check_eq "T9 old ACK: no reply" "replies=0" "$(echo "$out" | tail -n1)"

# T11: even a retransmitted FIN is never answered when it came as a link-layer broadcast.
acks=$(stat acks_sent) dropped=$(stat segments_dropped)
out=$(peer $T -q 1999 -a 1000 -f FA -t 7003:5 -m ff:ff:ff:ff:ff:ff)
check_eq "T11 broadcast: no reply" "replies=0" "$(echo "$out" | tail -n1)"
check_eq "T11 broadcast: nothing sent" "$acks" "$(stat acks_sent)"
check_eq "T11 broadcast: the module saw and dropped it" $((dropped + 1)) "$(stat segments_dropped)"

# T10: data gets an ACK (not rate-limited: it carries data).
out=$(peer $T -q 2000 -a 1000 -f PA -t 7003:5 -l 20)
check_eq "T10 data: ACK" A "$(echo "$out" | field flags)"
check_eq "T10 data: ack = rcv_nxt" 2000 "$(echo "$out" | field ack)"

# Rate limit: a flood of window probes gets at most one ACK per 500 ms.
out=$(peer $T -q 1990 -a 1000 -f A -t 7004:5 -n 5)
n=$(echo "$out" | grep -c '^reply ')
check "rate limit: 5 out-of-window ACKs, at most 1 reply (got $n)" [ "$n" -le 1 ]
check "rate limit: suppressed replies counted" [ "$(stat replies_ratelimited)" -ge 4 ]

# T5: no ACK bit: dropped without a reply.
out=$(peer $T -q 2000 -a 0 -f F)
check_eq "T5 no ACK: no reply" "replies=0" "$(echo "$out" | tail -n1)"

# A corrupt checksum: passed to the stack untouched (it drops it), state unchanged.
acks=$(stat acks_sent)
out=$(peer $T -q 1999 -a 1000 -f FA -t 7005:5 -x)
check_eq "bad checksum: not answered by the module" "$acks" "$(stat acks_sent)"

# T3: a new SYN above rcv_nxt deletes the entry and reaches the stack (which, with no
# listener, answers RST|ACK: the tuple is free).
out=$(peer $T -q 5000 -a 0 -f S -W 500)
diag "$out"
check_eq "T3 SYN reuse: counted" 1 "$(stat syn_reuse)"
check_eq "T3 SYN reuse: entry gone" 0 "$(twctl list | grep -c "$H4:80")"
check_eq "T3 SYN reuse: the stack answered (no listener: RST)" RA "$(echo "$out" | field flags)"

# T12: after the entry is gone, the stack answers a FIN with RST.
out=$(peer $T -q 1999 -a 1000 -f FA)
check_eq "T12 no entry: the stack's RST" R "$(echo "$out" | field flags)"

net_down
check "rmmod with traffic done" rmmod rust_timewait
tap_done
