#!/bin/sh
# A real server closes many connections actively, first the ordinary way (Linux keeps a
# TIME_WAIT socket each), then with handoff (the module keeps a compressed entry each): no
# TIME_WAIT socket, entries with their lifetime, the peer's retransmitted FIN answered,
# counters moving, expiry after 2MSL, and the memory of both. `make demo` shows this script.
. /tests/tap.inc
N=${N:-40}
S=/proc/sys/net/rust_timewait
IP=/usr/local/bin/ip
SRV=10.9.1.1 CLI=10.9.1.2
tw_sockets() { /usr/local/bin/ss -tanH state time-wait | grep -c ":$1 "; }
clients() { # N clients in their own netns that close a moment after the server
	i=0
	while [ $i -lt $N ]; do
		$IP netns exec client rtw-peer -R -d $SRV -P "$1" -W 1500 >/dev/null &
		i=$((i + 1))
	done
}
# The clients live in netns "client" behind a veth pair, as on a real network.
$IP netns add client
$IP link add veth2 type veth peer name veth3
$IP link set veth3 netns client
$IP addr add $SRV/24 dev veth2
$IP link set veth2 up
$IP netns exec client ip addr add $CLI/24 dev veth3
$IP netns exec client ip link set veth3 up
$IP netns exec client ip link set lo up
HOST_MAC=$(cat /sys/class/net/veth2/address)
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
echo 5000 >$S/msl_ms

diag "== Linux's own TIME_WAIT: the server closes $N connections normally"
handoff_server $SRV:8080 $N --plain >/tmp/server.out & srv=$!
sleep 0.3; clients 8080; wait $srv; wait
diag "$(cat /tmp/server.out)"
linux_tw=$(tw_sockets 8080)
diag "ss -tan state time-wait: $linux_tw TIME_WAIT sockets"
check_eq "plain close leaves a Linux TIME_WAIT socket per connection" $N "$linux_tw"
tw=$(cat /sys/kernel/slab/tw_sock_TCP/object_size)

diag "== the same server with handoff to rust_timewait"
handoff_server $SRV:8081 $N >/tmp/server.out & srv=$!
sleep 0.3; clients 8081; wait $srv; rc=$?; wait
diag "$(cat /tmp/server.out)"
check_eq "the server handed off every connection" 0 $rc
sleep 0.5
ours_tw=$(tw_sockets 8081)
diag "ss -tan state time-wait: $ours_tw TIME_WAIT sockets for the handed-off server"
check_eq "no Linux TIME_WAIT socket after handoff" 0 "$ours_tw"
entries=$(twctl list | grep -c "$SRV:8081 ")
diag "twctl list (first lines):"
twctl list | head -n 6 | sed 's/^/#   /'
check_eq "twctl list shows an entry per connection, in TIME-WAIT" $N "$(twctl list --state time-wait | grep -c "$SRV:8081 ")"
diag "$(twctl stats | grep -E 'entries|added|fin_wait2_completed|acks_sent' | tr -s ' ' | tr '\n' ';')"
check_eq "each peer FIN completed a FIN_WAIT_2 entry" $N "$(twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"fin_wait2_completed": *\([0-9]*\).*/\1/p')"

# The peer retransmits its FIN (as if our ACK was lost): the module answers it.
# The entry with the longest lifetime left, so it cannot expire while we look.
peer_end=$(twctl list | grep "$SRV:8081 " | awk '{print $6, $5}' | sed 's/s / /' | sort -n | tail -n1 | awk '{print $2}')
cport=${peer_end##*:}
json=$(twctl --json get $SRV:8081 "$peer_end" | tr ',{}' '\n\n\n')
snd=$(echo "$json" | sed -n 's/^ *"snd_nxt": *\([0-9]*\).*/\1/p')
rcv=$(echo "$json" | sed -n 's/^ *"rcv_nxt": *\([0-9]*\).*/\1/p')
acks=$(twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"acks_sent": *\([0-9]*\).*/\1/p')
out=$($IP netns exec client rtw-peer -i veth3 -m "$HOST_MAC" -s $CLI -d $SRV -p "$cport" -P 8081 \
	-q $((rcv - 1)) -a "$snd" -f FA)
diag "retransmitted FIN from $CLI:$cport -> $(echo "$out" | head -n1)"
check_eq "the retransmitted FIN is ACKed with ack = rcv_nxt" "$((rcv & 0xffffffff))" "$(echo "$out" | sed -n 's/^reply .*ack=\([0-9]*\).*/\1/p' | head -n1)"
check_eq "acks_sent moved" $((acks + 1)) "$(twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"acks_sent": *\([0-9]*\).*/\1/p')"

v4=$(cat /sys/kernel/slab/rust_timewait4/object_size)
diag "memory for $N closed connections: rust_timewait $((N * v4)) bytes ($v4 each) vs Linux TIME_WAIT $((N * tw)) bytes ($tw each)"
check "the entries take less memory than Linux's TIME_WAIT sockets" [ $((N * v4)) -lt $((N * tw)) ]

diag "== waiting 2MSL (msl_ms=5000)"
sleep 11
check_eq "entries expired after 2MSL" 0 "$(twctl list | grep -c "$SRV:8081 ")"
diag "$(twctl stats | grep -E 'entries|expired' | tr -s ' ' | tr '\n' ';')"
check "rmmod" rmmod rust_timewait
$IP link del veth2
$IP netns del client
tap_done
