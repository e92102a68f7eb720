#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A real server closes many connections actively, first the ordinary way (Linux keeps a
# TIME_WAIT socket each), then with handoff (the module keeps a compressed entry each): no
# TIME_WAIT socket, entries with their lifetime, the peer's retransmitted FIN answered,
# counters moving, expiry after 2MSL, and the memory of both. `make demo` shows this script.
#
# Timing. Each reading is taken once what it counts has settled (every peer FIN processed), and
# the lifetimes are long beside the run: 2MSL is 40 s, where 40 handoffs take a few seconds
# under TCG even on a loaded machine. On a machine slower still, a check whose answer needs the
# entries alive is skipped rather than failed: every lifetime starts after the phase began, so
# none can have run out while less than one lifetime has passed since.
. /tests/tap.inc
N=${N:-40}
MSL_MS=20000
S=/proc/sys/net/rust_timewait
IP=/usr/local/bin/ip
SS=/usr/local/bin/ss
SRV=10.9.1.1 CLI=10.9.1.2
now_ms() { rtw-peer -M; }
tw_sockets() { $SS -tanH state time-wait | grep -c ":$1 "; }
counter() { twctl --json stats | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p"; }
clients() { # N clients in their own netns that close a while after the server
	i=0
	while [ $i -lt $N ]; do
		$IP netns exec client rtw-peer -R -d $SRV -P "$1" -W 3000 >/dev/null &
		i=$((i + 1))
	done
}
# settle WANT SECONDS cmd...: run cmd every 0.2 s until it prints WANT or SECONDS have passed;
# print its last output. A count read just after the clients exit could miss a FIN in flight.
settle() {
	want=$1 tries=$(($2 * 5))
	shift 2
	while v=$("$@"); [ "$v" != "$want" ] && [ $tries -gt 0 ]; do
		sleep 0.2
		tries=$((tries - 1))
	done
	echo "$v"
}
# serve PORT [--plain]: start the server, and wait until it listens so no client comes too early.
serve() {
	handoff_server $SRV:$1 $N $2 >/tmp/server.out & srv=$!
	i=0
	until $SS -ltnH | grep -q "$SRV:$1 "; do
		i=$((i + 1))
		[ $i -lt 300 ] || { not_ok "the server listens on port $1"; kill $srv; return; }
		sleep 0.1
	done
}
# timed_eq SINCE LIFETIME_MS "description" expected actual: check_eq for a reading that needs
# lifetimes that started after SINCE (ms) to be running still; skipped once one could be over.
timed_eq() {
	if [ $(($(now_ms) - $1)) -lt "$2" ]; then
		check_eq "$3" "$4" "$5"
	else
		ok "$3 # SKIP the machine took longer than $(($2 / 1000)) s: lifetimes may have run out"
	fi
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
echo $MSL_MS >$S/msl_ms
# Linux's default, written down: a FIN_WAIT_2 entry outlives 2MSL, so no entry of the handoff
# phase can end before 2MSL after the phase began.
echo 60000 >$S/fin_timeout_ms

diag "== Linux's own TIME_WAIT: the server closes $N connections normally"
since=$(now_ms)
serve 8080 --plain
clients 8080; wait $srv; wait
diag "$(cat /tmp/server.out)"
linux_tw=$(settle $N 10 tw_sockets 8080)
diag "ss -tan state time-wait: $linux_tw TIME_WAIT sockets"
# Linux's TIME_WAIT lasts 60 s (TCP_TIMEWAIT_LEN).
timed_eq "$since" 60000 "plain close leaves a Linux TIME_WAIT socket per connection" $N "$linux_tw"
tw=$(cat /sys/kernel/slab/tw_sock_TCP/object_size)

diag "== the same server with handoff to rust_timewait (msl_ms=$MSL_MS: 2MSL is $((MSL_MS / 500)) s)"
since=$(now_ms)
serve 8081
clients 8081; wait $srv; rc=$?; wait
diag "$(cat /tmp/server.out)"
check_eq "the server handed off every connection" 0 $rc
# Every client has closed; read the rest once the module has seen each peer's FIN.
settle $N 10 counter fin_wait2_completed >/dev/null
ours_tw=$(tw_sockets 8081)
diag "ss -tan state time-wait: $ours_tw TIME_WAIT sockets for the handed-off server"
check_eq "no Linux TIME_WAIT socket after handoff" 0 "$ours_tw"
# One listing: the count, the lines shown and the tuple used below all come from it.
twctl list --state time-wait >/tmp/list
diag "twctl list (first lines):"
head -n 6 /tmp/list | sed 's/^/#   /'
timed_eq "$since" $((MSL_MS * 2)) "twctl list shows an entry per connection, in TIME-WAIT" $N "$(grep -c "$SRV:8081 " /tmp/list)"
diag "$(twctl stats | grep -E 'entries|added|fin_wait2_completed|acks_sent' | tr -s ' ' | tr '\n' ';')"
check_eq "each peer FIN completed a FIN_WAIT_2 entry" $N "$(counter fin_wait2_completed)"

# The peer retransmits its FIN (as if our ACK was lost): the module answers it.
# The entry with the longest lifetime left, so it cannot expire while we look.
peer_end=$(grep "$SRV:8081 " /tmp/list | awk '{print $6, $5}' | sed 's/s / /' | sort -n | tail -n1 | awk '{print $2}')
cport=${peer_end##*:}
json=$(twctl --json get $SRV:8081 "$peer_end" | tr ',{}' '\n\n\n')
snd=$(echo "$json" | sed -n 's/^ *"snd_nxt": *\([0-9]*\).*/\1/p')
rcv=$(echo "$json" | sed -n 's/^ *"rcv_nxt": *\([0-9]*\).*/\1/p')
acks=$(counter acks_sent)
out=$($IP netns exec client rtw-peer -i veth3 -m "$HOST_MAC" -s $CLI -d $SRV -p "$cport" -P 8081 \
	-q $((rcv - 1)) -a "$snd" -f FA -W 1000)
diag "retransmitted FIN from $CLI:$cport -> $(echo "$out" | head -n1)"
timed_eq "$since" $((MSL_MS * 2)) "the retransmitted FIN is ACKed with ack = rcv_nxt" "$((rcv & 0xffffffff))" "$(echo "$out" | sed -n 's/^reply .*ack=\([0-9]*\).*/\1/p' | head -n1)"
timed_eq "$since" $((MSL_MS * 2)) "acks_sent moved" $((acks + 1)) "$(counter acks_sent)"

v4=$(cat /sys/kernel/slab/rust_timewait4/object_size)
diag "memory for $N closed connections: rust_timewait $((N * v4)) bytes ($v4 each) vs Linux TIME_WAIT $((N * tw)) bytes ($tw each)"
check "the entries take less memory than Linux's TIME_WAIT sockets" [ $((N * v4)) -lt $((N * tw)) ]

# Every lifetime has started by now (the FIN above restarted the last one): after 2MSL more,
# no entry guards its tuple any longer, and the reaper then frees them.
diag "== waiting 2MSL ($((MSL_MS / 500)) s)"
sleep $((MSL_MS / 500))
listed() { twctl list | grep -c "$SRV:8081 "; }
check_eq "entries expired after 2MSL" 0 "$(settle 0 5 listed)"
freed() { echo "$(counter entries) $(counter expired)"; }
check_eq "the reaper freed every entry (entries, expired)" "0 $N" "$(settle "0 $N" 90 freed)"
diag "$(twctl stats | grep -E 'entries|expired' | tr -s ' ' | tr '\n' ';')"
check "rmmod" rmmod rust_timewait
$IP link del veth2
$IP netns del client
tap_done
