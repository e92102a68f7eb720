#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Entries keyed by VRF and replies routed and marked as Linux routes its TIME_WAIT replies
# (issue 9 item 4, D45). Two VRFs, red and blue, each with its own peer netns behind a veth and
# the same addresses (10.9.0.1 here, 10.9.0.2 there):
#   - the same tuple added in both VRFs is two entries, and each peer is answered by its own;
#   - an entry of an unbound socket answers no segment that came through a VRF, unless
#     net.ipv4.tcp_l3mdev_accept (as an unbound socket);
#   - get and del find an entry by its VRF;
#   - an entry's mark routes its replies: a policy rule for that mark that prohibits the peer
#     keeps the reply from going out (replies-failed), where the same entry without the mark
#     is answered.
. /tests/tap.inc
IP=/usr/local/bin/ip
H4=10.9.0.1 P4=10.9.0.2 H6=fd00::1 P6=fd00::2
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }

# vrf_side NAME TABLE HOSTDEV PEERDEV: a VRF with a veth into netns NAME; prints the peer's MAC.
vrf_side() {
	$IP link add "$1" type vrf table "$2"
	$IP link set "$1" up
	$IP netns add "p$1"
	$IP link add "$3" type veth peer name "$4"
	$IP link set "$4" netns "p$1"
	$IP link set "$3" master "$1"
	$IP addr add $H4/24 dev "$3"
	$IP -6 addr add $H6/64 dev "$3" nodad
	$IP link set "$3" up
	$IP netns exec "p$1" ip link set lo up
	$IP netns exec "p$1" ip link set "$4" up
	mac=$($IP netns exec "p$1" cat /sys/class/net/"$4"/address)
	$IP neigh replace $P4 lladdr "$mac" dev "$3" nud permanent
	$IP -6 neigh replace $P6 lladdr "$mac" dev "$3" nud permanent
}
vrf_side red 10 vr0 vr1
vrf_side blue 20 vb0 vb1
MAC_R=$(cat /sys/class/net/vr0/address)
MAC_B=$(cat /sys/class/net/vb0/address)
red_peer() { $IP netns exec pred rtw-peer -i vr1 -m "$MAC_R" "$@"; }
blue_peer() { $IP netns exec pblue rtw-peer -i vb1 -m "$MAC_B" "$@"; }
field() { sed -n "s/^reply .*\b$1=\([^ ]*\).*/\1/p" | head -n1; }
# answer: "FLAGS SEQ ACK" of the first reply on stdin. An entry's ACK and the stack's RST to the
# same FIN|ACK both carry seq = its ack: the flags and the ack tell them apart.
answer() { out=$(cat); echo "$(echo "$out" | field flags) $(echo "$out" | field seq) $(echo "$out" | field ack)"; }
stat() { twctl --json stats | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\([0-9]*\) *$/\1/p"; }
T="-s $P4 -d $H4 -p 40000"

# Same tuple, two VRFs: two entries (one key would refuse the second with EEXIST).
check "add the tuple in VRF red" \
	twctl add $H4:80 $P4:40000 --snd-nxt 1000 --rcv-nxt 2000 --win 501 --bound-ifindex red
check "add the same tuple in VRF blue: a second entry" \
	twctl add $H4:80 $P4:40000 --snd-nxt 5000 --rcv-nxt 6000 --win 502 --bound-ifindex blue
check_eq "two entries" 2 "$(stat entries)"
# T6, a retransmitted FIN, from each side: each gets its own VRF's entry's numbers.
out=$(red_peer $T -P 80 -q 1999 -a 1000 -f FA)
diag "$out"
check_eq "red's peer: ACK from red's entry (seq)" 1000 "$(echo "$out" | field seq)"
check_eq "red's peer: ACK from red's entry (ack)" 2000 "$(echo "$out" | field ack)"
out=$(blue_peer $T -P 80 -q 5999 -a 5000 -f FA)
diag "$out"
check_eq "blue's peer: ACK from blue's entry (seq)" 5000 "$(echo "$out" | field seq)"
check_eq "blue's peer: ACK from blue's entry (ack)" 6000 "$(echo "$out" | field ack)"
check "get finds blue's entry by its VRF" sh -c \
	"twctl --json get $H4:80 $P4:40000 --bound-ifindex blue | grep -q '\"snd_nxt\": *5000'"
check "get without a VRF: no entry guards the tuple in the default VRF" sh -c \
	"twctl get $H4:80 $P4:40000 2>&1 | grep -q 'no entry guards this tuple'"
check "del red's entry by its VRF" twctl del $H4:80 $P4:40000 --bound-ifindex red
out=$(blue_peer $T -P 80 -q 5999 -a 5000 -f FA)
check_eq "blue's entry still answers" "A 5000 6000" "$(echo "$out" | answer)"
check_eq "one entry left" 1 "$(stat entries)"

# The same over IPv6 (inet6_iif / inet6_sdif).
T6="-s $P6 -d $H6 -p 40000"
check "IPv6: add the tuple in VRF red" \
	twctl add "[$H6]:80" "[$P6]:40000" --snd-nxt 1100 --rcv-nxt 2100 --win 501 --bound-ifindex red
check "IPv6: and in VRF blue" \
	twctl add "[$H6]:80" "[$P6]:40000" --snd-nxt 5100 --rcv-nxt 6100 --win 501 --bound-ifindex blue
out=$(red_peer $T6 -P 80 -q 2099 -a 1100 -f FA)
diag "$out"
check_eq "IPv6: red's peer gets red's entry" "A 1100 2100" "$(echo "$out" | answer)"
out=$(blue_peer $T6 -P 80 -q 6099 -a 5100 -f FA)
check_eq "IPv6: blue's peer gets blue's entry" "A 5100 6100" "$(echo "$out" | answer)"
# An entry of a socket bound to the enslaved device itself: the VRF is still red's.
check "add an entry bound to vr0 (in red)" \
	twctl add $H4:84 $P4:40000 --snd-nxt 9000 --rcv-nxt 9100 --win 501 --bound-ifindex vr0
out=$(red_peer $T -P 84 -q 9099 -a 9000 -f FA)
check_eq "the entry bound to vr0 answers through red" "A 9000 9100" "$(echo "$out" | answer)"
check "... and is found by its VRF" twctl get $H4:84 $P4:40000 --bound-ifindex red

# An unbound entry (the default VRF) and a segment through VRF red: not ours unless
# tcp_l3mdev_accept, as for an unbound socket (inet_bound_dev_eq).
accept0=$(cat /proc/sys/net/ipv4/tcp_l3mdev_accept)
check "add an unbound entry" twctl add $H4:81 $P4:40000 --snd-nxt 3000 --rcv-nxt 4000 --win 501
echo 0 >/proc/sys/net/ipv4/tcp_l3mdev_accept
out=$(red_peer $T -P 81 -q 3999 -a 3000 -f FA)
diag "$out"
# (The stack answers instead, with a RST: no socket has this tuple.)
check_eq "tcp_l3mdev_accept=0: the unbound entry does not answer through a VRF" R \
	"$(echo "$out" | field flags)"
echo 1 >/proc/sys/net/ipv4/tcp_l3mdev_accept
out=$(red_peer $T -P 81 -q 3999 -a 3000 -f FA)
diag "$out"
check_eq "tcp_l3mdev_accept=1: it answers" "A 3000 4000" "$(echo "$out" | answer)"
echo "$accept0" >/proc/sys/net/ipv4/tcp_l3mdev_accept

# The entry's mark routes its replies: mark 7's table prohibits the peer.
$IP rule add fwmark 7 table 77 pref 5
$IP route add prohibit $P4/32 table 77
check "add an entry with mark 7 in red" \
	twctl add $H4:82 $P4:40000 --snd-nxt 7000 --rcv-nxt 8000 --win 501 --bound-ifindex red --mark 7
check "add the same without a mark" \
	twctl add $H4:83 $P4:40000 --snd-nxt 7000 --rcv-nxt 8000 --win 501 --bound-ifindex red
failed0=$(stat replies_failed)
out=$(red_peer $T -P 82 -q 7999 -a 7000 -f FA)
diag "$out"
check_eq "mark 7: no reply (its route is prohibited)" 0 "$(echo "$out" | grep -c '^reply ')"
check_eq "... counted as a reply that failed" $((failed0 + 1)) "$(stat replies_failed)"
out=$(red_peer $T -P 83 -q 7999 -a 7000 -f FA)
check_eq "no mark: answered" "A 7000 8000" "$(echo "$out" | answer)"
$IP rule del fwmark 7 table 77 pref 5
$IP route del prohibit $P4/32 table 77

twctl flush >/dev/null
rmmod rust_timewait
for v in red blue; do $IP link del "$v"; $IP netns del "p$v"; done
$IP link del vr0 2>/dev/null
$IP link del vb0 2>/dev/null
tap_done
