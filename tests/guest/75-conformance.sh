#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Conformance with Linux's own TIME_WAIT (issue 10): Linux is the oracle. Each case builds the
# same connection twice, from the host to the scripted peer (rtw-script in netns "peer"):
#   linux: the application close()s; Linux's own orphaned FIN_WAIT2, then TIME_WAIT, answers;
#   ours:  the application execs `twctl handoff --fd 3 --shutdown` instead: shutdown, wait for
#          FIN_WAIT2, hand off to rust_timewait (the library's close_with_handoff).
# A second pass (D47) runs every case in which the peer sends a FIN, but the expiry, once more as
#   takeover: the application close()s as in linux, with net.rust_timewait.takeover 2: the
#          module takes the connection over from Linux's FIN_WAIT2 at the peer's first FIN;
# compared with the first pass's linux transcript and reported as case ID@takeover.
# The two run side by side on their own peer ports. Then the peer sends the case's segments,
# the same in both, and prints what comes back, relative to both ISNs and to its own TS clock
# (flags, seq, ack, window, length, options, TSecr, whether TSval is on the connection's clock,
# and whether a new SYN reaches a listener) with the IP header of every reply (IPv4: TOS, TTL,
# DF, total length, option bytes, ID; IPv6: traffic class, flow label as "the connection's", "0"
# or "other", hop limit, payload length, next header; see the head of rtw-script.c). The transcripts are compared line by line:
#   match                 identical;
#   expected-difference   they differ and the case is in EXPECTED below, which names the
#                         decision (docs/decisions.md D-number, or the behaviour.md row whose
#                         Linux and rust_timewait columns differ) and the RFC;
#   MISMATCH              any other difference, or a case whose setup failed: the check fails.
# Each case prints "rtw-conf:" lines; tests/host/conformance.py turns them into
# docs/conformance.md. Neither side is left to expire except in the T12 case, which runs in
# the background for 2MSL (60 s on both sides: msl_ms is left at its default). Cases with the
# default sysctls run POOL at a time; the scenario takes about 90-100 s under TCG.
#
# rtw.conf=PATTERN on the kernel command line runs only the cases whose id matches (grep -E).
. /tests/tap.inc
. /tests/net.inc
W=/tmp/conf
rm -rf $W
mkdir -p $W
filter=$(arg conf '')
start=$(date +%s)

insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
net_up
old_rl=$(cat /proc/sys/net/ipv4/tcp_invalid_ratelimit)
old_1337=$(cat /proc/sys/net/ipv4/tcp_rfc1337)
old_ecn=$(cat /proc/sys/net/ipv4/tcp_ecn)

# Where the two answers may differ on purpose: case | decision | RFC | what differs.
EXPECTED='
t1-rfc1337off-v4-ts   | D39              | RFC 1337            | tcp_rfc1337=0 (Linux default): an in-order RST ends Linux TIME_WAIT (the FIN that follows is reset by the stack); the module always drops RSTs and keeps the entry
t3-nolisten-v4-ts     | D14              | RFC 1122 §4.2.2.13  | new SYN above rcv_nxt, no listener: Linux keeps TIME_WAIT and ACKs; the module deletes the entry and the stack resets
t3-nolisten-m4-nots   | D14              | RFC 1122 §4.2.2.13  | as t3-nolisten-v4-ts, IPv4-mapped, no timestamps
t4-nolisten-v6-ts     | D14              | RFC 6191            | new SYN with a newer TSval, no listener: Linux ACKs, the module deletes the entry and the stack resets
t3-listen-v4-ts       | D40              | RFC 1122 §4.2.2.13  | the SYN reaches the listener in both; Linux gives the new connection ISN snd_nxt+65537, the listener picks a fresh one when the module let the SYN through
t3-listen-v6-nots     | D40              | RFC 1122 §4.2.2.13  | as t3-listen-v4-ts, IPv6, no timestamps
t4-listen-v4-ts       | D40              | RFC 6191            | as t3-listen-v4-ts, reopened by a newer TSval
t4-samets-v4-ts       | D41              | RFC 9293 §3.10.7.4  | SYN below rcv_nxt, TSval not newer: Linux ACKs (rate-limited), the module drops a segment without ACK
t5-fin-noack-v4-ts    | D41              | RFC 9293 §3.10.7.4  | FIN without ACK: Linux ACKs, the module drops a segment without ACK
t5-syn-old-v6-nots    | D41              | RFC 9293 §3.10.7.4  | SYN below rcv_nxt without timestamps: Linux ACKs, the module drops
t8-ackunsent-v4-ts    | D42              | RFC 9293 §3.10.7.4  | in-order ACK of data never sent: Linux drops it, the module ACKs (rate-limited)
d10-tszero-v4-ts      | D10              | RFC 7323 §5.3       | the FIN carries TSval 0: Linux takes ts_recent 0 for "none" and leaves the option off its ACK; the module honours 0 and echoes it
f1-rst-oow-v4-nots    | D3               | RFC 5961 §3.2       | out-of-window RST in FIN_WAIT_2: Linux answers with an ACK, the module never answers a RST
unread-close-v4       | D36              | RFC 2525 §2.17      | data left unread: close() resets at once; twctl shuts down first, refuses once FIN_WAIT2 is reached, and the close that follows resets
'
expected_ref() {
	echo "$EXPECTED" | awk -F' *[|] *' -v id="$1" '$1 == id { print $2 "|" $3 "|" $4; exit }'
}

# The peer's SYN options per option set.
opts_of() {
	case $1 in
	ts) echo "mss,sack,ts,ws=7" ;;    # what Linux offers: timestamps and window scaling
	ecn) echo "mss,sack,ts,ws=7,ecn" ;;       # as ts, and classic ECN (with ecn=1)
	accecn) echo "mss,sack,ts,ws=7,accecn" ;; # as ts, and Accurate ECN (with ecn=3)
	accecn) echo "mss,sack,ts,ws=7,accecn" ;; # as ts, and Accurate ECN (with ecn=3)
	nots) echo "mss,sack,ws=7" ;;     # no timestamps
	nows) echo "mss,sack,ts" ;;       # timestamps, no window scaling
	bare) echo "mss" ;;               # neither, nor SACK
	esac
}

# wait_for FILE TEXT TENTHS: until FILE holds TEXT, at most TENTHS tenths of a second.
wait_for() {
	i=0
	until grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le "$3" ] || return 1
		sleep 0.1
	done
}

# variant linux|ours PORT: one run of the case in $W/$id.* (runs in a subshell of its own).
variant() {
	var=$1 port=$2
	base=$W/$id.$var
	case $fam in
	v4) pa=$P4 ha=$H4 dst=$P4:$port lha=$H4 ;;
	v6) pa=$P6 ha=$H6 dst="[$P6]:$port" lha="[$H6]" ;;
	m4) pa=$P4 ha=$H4 dst="[::ffff:$P4]:$port" lha="[::ffff:$H4]" ;;
	esac
	$IP netns exec peer rtw-script -i veth1 -m "$HOST_MAC" -s $pa -d $ha -p "$port" \
		-g $base.go -o $base.port <$W/$id.script >$base.out 2>&1 &
	sp=$!
	wait_for $base.out '^# ready' 50 || echo "setup: the peer did not start" >>$base.setup
	# The same application on both sides; only its end differs.
	w="" h="" q=""
	for s in $settings; do
		case $s in
		tos=*) q="$q -Q ${s#*=}" ;;          # IP_TOS / IPV6_TCLASS on the socket
		tclass=*) q="$q -C ${s#*=}" ;;       # IPV6_TCLASS other than tos=
		flowlabel=*) q="$q -F ${s#*=}" ;;    # an explicit IPv6 flow label
		esac
	done
	case $app in
	unread) w="-w 500" ;;          # the peer's data arrives before close() or the handoff
	unread-half) w="-w 500" h=-H ;; # Linux: shutdown, wait for FIN_WAIT2, then close()
	esac
	if [ "$var" != ours ]; then
		rtw-script -c "$dst" -t hello $w $h $q >$base.app 2>&1
		rc=$?
		touch $base.go.closed
	else
		# The handoff waits for FIN_WAIT2: the peer's ACK goes at once.
		touch $base.go.closed
		rtw-script -c "$dst" -t hello $w $q -- twctl handoff --fd 3 --shutdown >$base.app 2>&1
		rc=$?
	fi
	echo "$(rtw-script -M) exit $rc" >>$base.app
	$SS -tinH "( dport = :$port )" 2>/dev/null | sed 's/^/ss: /' >>$base.app
	# What each side should hold now, before the peer is let go. Linux's close() returns
	# before the peer's ACK of our FIN: give a slow (emulated, loaded) peer 5 s to send it.
	t=0
	while [ "$var" != ours ] && [ $t -lt 50 ] &&
		[ "$($SS -tanH "( dport = :$port )" 2>/dev/null | awk '{ print $1 }' | head -n1)" = FIN-WAIT-1 ]; do
		sleep 0.1; t=$((t + 1))
	done
	sock=$($SS -tanH "( dport = :$port )" 2>/dev/null | awk '{ print $1 }' | head -n1)
	# A FIN_WAIT2 socket of Linux's is a timewait one (ss shows its substate), with its timer.
	if [ "$sock" = FIN-WAIT-2 ]; then
		timer=$($SS -tanoH "( dport = :$port )" 2>/dev/null | head -n1)
		case $timer in
		*'timer:(timewait'*) ;;
		*) echo "setup: $var Linux kept a full FIN_WAIT2 socket, not a timewait one: $timer" >>$base.setup ;;
		esac
	fi
	entry=$(twctl list 2>/dev/null | grep ":$port " | awk '{ print $1 }' | head -n1)
	want_rc=0 want_sock=FIN-WAIT-2 want_entry=""
	[ "$var" = ours ] && want_sock="" want_entry=FIN-WAIT-2
	case $app in unread*) want_sock="" want_entry="" ;; esac
	[ "$var:$app" = ours:unread ] || [ "$var:$app" = ours:unread-half ] && want_rc=1
	[ "$rc" = "$want_rc" ] || echo "setup: $var application exit $rc, expected $want_rc" >>$base.setup
	[ "$sock" = "$want_sock" ] || echo "setup: $var Linux socket '$sock', expected '$want_sock'" >>$base.setup
	[ "$entry" = "$want_entry" ] || echo "setup: $var module entry '$entry', expected '$want_entry'" >>$base.setup
	lp=""
	if [ "$listen" = 1 ]; then
		rtw-script -l "$lha:$(cat $base.port 2>/dev/null)" -w 30000 >$base.lst 2>&1 &
		lp=$!
		wait_for $base.lst 'listening\|error' 50
		grep -q listening $base.lst || echo "setup: listener: $(cat $base.lst)" >>$base.setup
	fi
	touch $base.go
	wait $sp
	[ -z "$lp" ] || kill $lp 2>/dev/null
	wait 2>/dev/null
	return 0
}

SS=/usr/local/bin/ss
n=0 ran=0 bg_ids="" bg_pids=""
# sysctls RATELIMIT RFC1337 ECN: Linux's settings for the cases that run now (the module reads
# tcp_invalid_ratelimit too).
sysctls() {
	echo "$1" >/proc/sys/net/ipv4/tcp_invalid_ratelimit
	echo "$2" >/proc/sys/net/ipv4/tcp_rfc1337
	echo "$3" >/proc/sys/net/ipv4/tcp_ecn
}
# run_case ID: both variants side by side.
run_case() {
	local id rows fam opt title num rl r1337 listen app bg settings port p1 p2
	IFS='|' read -r id rows fam opt title num rl r1337 listen app bg settings <$W/$1.meta
	port=$((20000 + 2 * num))
	if [ $MODE = takeover ]; then
		# One case at a time in this pass (POOL=1), so the counter tells this case's takeover.
		local t0
		t0=$(stat taken_over)
		variant takeover $((port + 1000))
		t0=$(($(stat taken_over) - t0))
		[ ! -f $W/$id.finfirst ] || [ $t0 -ge 1 ] ||
			echo "setup: the completing FIN (the first step) took nothing over" >>$W/$id.takeover.setup
		return
	fi
	(variant linux $port) &
	p1=$!
	(variant ours $((port + 1))) &
	p2=$!
	wait $p1 $p2
}

# report ID: compare, print the rtw-conf lines and the TAP line.
report() {
	local id rows fam opt title num rl r1337 listen app bg settings var ref setup verdict
	IFS='|' read -r id rows fam opt title num rl r1337 listen app bg settings <$W/$1.meta
	# ours: the handoff's variant; in the takeover pass, the takeover's, reported as ID@takeover.
	local o=ours cid=$id label
	[ $MODE != takeover ] || o=takeover cid=$id@takeover title="$title (taken over)"
	echo "rtw-conf: case $cid|$rows|$fam|$opt|$title|$settings"
	for var in linux $o; do
		grep '^[<>=]' $W/$id.$var.out >$W/$id.$var.cmp 2>/dev/null
		grep -q '^# end' $W/$id.$var.out 2>/dev/null ||
			echo "setup: $var peer: $(grep '^error' $W/$id.$var.out | head -n1)" >>$W/$id.$var.setup
		label=$var
		[ $var != takeover ] || label=ours
		sed "s/^/rtw-conf: $label $cid|/" $W/$id.$var.cmp
	done
	ref=$(expected_ref "$id")
	setup=$(cat $W/$id.linux.setup $W/$id.$o.setup 2>/dev/null)
	if [ -n "$setup" ]; then
		verdict=MISMATCH
		echo "$setup" | sed "s/^/rtw-conf: note $cid|/"
	elif cmp -s $W/$id.linux.cmp $W/$id.$o.cmp; then
		verdict=match
		[ -z "$ref" ] || echo "rtw-conf: note $cid|listed as an expected difference, but the answers are the same"
	elif [ -n "$ref" ]; then
		verdict=expected-difference
	else
		verdict=MISMATCH
	fi
	echo "rtw-conf: verdict $cid|$verdict|$ref"
	if [ $verdict = MISMATCH ]; then
		not_ok "conformance $cid ($rows, $fam, $opt): MISMATCH"
		if [ -n "$setup" ]; then
			# The whole run of each side, set-up included, to see what went wrong.
			echo "$setup" | sed 's/^/# /'
			for var in linux $o; do
				head -n 60 $W/$id.$var.out 2>/dev/null | sed "s/^/# $var: /"
				sed "s/^/# $var application: /" $W/$id.$var.app 2>/dev/null
			done
		else
			diff $W/$id.linux.cmp $W/$id.$o.cmp 2>/dev/null | sed 's/^/# /'
		fi
	else
		ok "conformance $cid ($rows, $fam, $opt): $verdict${ref:+ (${ref%%|*})}"
	fi
}

# c ID ROWS FAMILY OPTSET "TITLE" [SETTING...] <<'EOF' steps EOF
# FAMILY: v4, v6, m4 (an AF_INET6 socket talking to an IPv4 peer). OPTSET: see opts_of.
# SETTING: ratelimit=MS (net.ipv4.tcp_invalid_ratelimit, default 0: every reply goes out),
# rfc1337=0|1 (default 1, the Linux column of behaviour.md), ecn=N (net.ipv4.tcp_ecn, default 2:
# the host asks for no ECN); a case with other settings than these defaults runs alone, the
# others up to POOL at a time; tos=N (the application sets IP_TOS, and IPV6_TCLASS on an
# AF_INET6 socket, before connect()), tclass=N (IPV6_TCLASS N rather than tos=), flowlabel=N
# (an explicit IPv6 flow label); listen (a listener on the host's port before the steps),
# app=close|unread|unread-half, isn=N, tsbase=N, bg (run in the background, reported at the
# end). The steps follow a prologue that makes the connection and takes it to FIN_WAIT2 (our FIN
# sent and acknowledged); app=unread* has its own.
c() {
	id=$1 rows=$2 fam=$3 opt=$4 title=$5
	shift 5
	body=$(cat)
	n=$((n + 1))
	rl=0 r1337=1 ecn=2 listen=0 app=close isn="" tsbase="" bg=0
	for s in "$@"; do
		case $s in
		ratelimit=*) rl=${s#*=} ;;
		rfc1337=*) r1337=${s#*=} ;;
		ecn=*) ecn=${s#*=} ;;
		listen) listen=1 ;;
		app=*) app=${s#*=} ;;
		isn=*) isn=${s#*=} ;;
		tsbase=*) tsbase=${s#*=} ;;
		bg) bg=1 ;;
		esac
	done
	[ -z "$filter" ] || echo "$id" | grep -qE "$filter" || return 0
	[ "$MODE:$bg" != takeover:1 ] || return 0
	# The hook takes over on a FIN only: a case in which the peer sends none would compare
	# Linux with itself.
	[ $MODE != takeover ] || sed -n '/^show$/,$p' $W/$id.script 2>/dev/null | grep -qE '^send [^ ]*F' ||
		return 0
	ran=$((ran + 1))
	if [ $MODE = takeover ]; then
		# The first pass wrote the script and the linux transcript.
		[ -f $W/$id.meta ] || return 0
		# A case whose first step is the FIN that completes FIN_WAIT2 (with ACK, at rcv_nxt,
		# no data; its timestamp may be anything) must be taken over: run_case counts.
		rm -f $W/$id.finfirst
		! sed -n '/^show$/{n;p;q}' $W/$id.script | grep -qE '^send FA( ts(val|raw)=[^ ]*)?$' ||
			{ touch $W/$id.finfirst; tk_fin=$((tk_fin + 1)); }
	else
	{
		[ -z "$isn" ] || echo "isn $isn"
		[ -z "$tsbase" ] || echo "tsbase $tsbase"
		echo "accept opts=$(opts_of $opt)"
		case $app in
		close)
			echo "wait A ack"      # the handshake's ACK
			echo "wait F ack"      # the data (acknowledged at once) and the host's FIN
			# Until close() has returned: an ACK that meets the socket still owned by
			# close() is processed from its backlog, where Linux keeps a full FIN_WAIT2
			# socket (tcp_rcv_state_process, FIN_WAIT1 under sock_owned_by_user) in
			# place of the timewait one its TIME_WAIT (and the takeover) works from.
			echo "sync closed"
			echo "send A"          # acknowledge them: FIN_WAIT2
			echo "sync"            # the runner checked both sides
			echo "show" ;;
		*)
			echo "wait A ack"
			echo "send PA len=3"   # data the application never reads
			echo "wait F,R ack"
			echo "send A"
			echo "sync"
			echo "show" ;;
		esac
		echo "$body"
	} >$W/$id.script
	echo "$id|$rows|$fam|$opt|$title|$n|$rl|$r1337|$listen|$app|$bg|$*" >$W/$id.meta
	fi
	if [ $bg = 1 ]; then
		run_case $id &
		bg_pids="$bg_pids $!" bg_ids="$bg_ids $id"
	elif [ "$rl:$r1337:$ecn" = 0:1:2 ]; then
		# The default settings: up to $POOL cases at a time.
		run_case $id &
		pool_pids="$pool_pids $!" pool_ids="$pool_ids $id"
		[ "$(echo $pool_ids | wc -w)" -lt $POOL ] || flush_pool
	else
		# Its own settings: alone.
		flush_pool
		sysctls "$rl" "$r1337" "$ecn"
		run_case $id
		report $id
		sysctls 0 1 2
	fi
}
# flush_pool: wait for the cases running together, report them in order.
POOL=3 pool_pids="" pool_ids=""
flush_pool() {
	local p
	[ -z "$pool_pids" ] || wait $pool_pids
	for p in $pool_ids; do report $p; done
	pool_pids="" pool_ids=""
}
sysctls 0 1 2

# The cases, run once per pass (MODE).
cases() {
# TIME_WAIT, expiry: started first, reported last; 2MSL is 60 s on both sides, and Linux's
# timer may fire up to an eighth late (timer wheel), so the probe waits 75 s.
c t12-expiry-v4-ts "F5,T6,T12" v4 ts "after 2MSL nobody guards the tuple: the stack resets" bg <<'EOF'
send FA
expect
send FA seq=snd-1
expect
sleep 75000
send FA seq=snd-1
expect
EOF

# ---- TIME_WAIT: the peer's FIN (F5) makes it TIME_WAIT, then the rows.
c tw-v4-ts "F5,T6" v4 ts "FIN completes FIN_WAIT2; a retransmitted FIN is ACKed again" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-v6-ts "F5,T6" v6 ts "as tw-v4-ts over IPv6" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-m4-ts "F5,T6" m4 ts "as tw-v4-ts, IPv4-mapped (AF_INET6 socket)" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-v4-nots "F5,T6" v4 nots "as tw-v4-ts without timestamps" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-v6-bare "F5,T6" v6 bare "as tw-v4-ts with neither timestamps nor window scaling" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-m4-nows "F5,T6" m4 nows "timestamps without window scaling, IPv4-mapped" <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c tw-wrap-v4-ts "F5,T6,T10" v4 ts "sequence numbers wrap at the peer's FIN (ISN 2^32-2)" isn=4294967294 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send PA len=10
expect
EOF
c tw-wrap-v6-nots "F5,T6,T9" v6 nots "as tw-wrap-v4-ts over IPv6 without timestamps" isn=4294967294 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send A ack=rcv-1
expect
EOF
c t1-inorder-v4-ts "T1,T6" v4 ts "an in-order RST (no timestamp, as Linux sends them) is dropped, the tuple stays guarded" <<'EOF'
send FA
expect
send R nots
expect
send FA seq=snd-1
expect
EOF
c t1-inorder-tsrecent-v6-ts "T1,T6" v6 ts "an in-order RST with a newer TSval: does it move ts_recent (as a duplicate ACK does in Linux)?" <<'EOF'
send FA
expect
send R tsval=tsv+1000
expect
send FA seq=snd-1
expect
EOF
c t1-rfc1337off-v4-ts "T1,T6" v4 ts "as t1-inorder-v4-ts with Linux's default tcp_rfc1337=0" rfc1337=0 <<'EOF'
send FA
expect
send R nots
expect
send FA seq=snd-1
expect
EOF
c t1-oow-v6-ts "T1,T6" v6 ts "out-of-window RST and RST+ACK are dropped" <<'EOF'
send FA
expect
send R seq=snd+100000
expect
send RA seq=snd+100000
expect
send FA seq=snd-1
expect
EOF
c t2-paws-ack-v4-ts "T2" v4 ts "PAWS: an ACK with an old TSval gets an ACK" <<'EOF'
send FA
expect
send A tsval=tsv-1000
expect
EOF
c t2-paws-syn-v6-ts "T2" v6 ts "PAWS before the SYN rows: a SYN above rcv_nxt with an old TSval gets an ACK" <<'EOF'
send FA
expect
send S seq=snd+100000 tsval=tsv-1000
expect
EOF
c t2-paws-data-m4-ts "T2" m4 ts "PAWS: data with an old TSval gets an ACK" <<'EOF'
send FA
expect
send PA len=5 tsval=tsv-1000
expect
EOF
c t2-wrap-v4-ts "T2,T7" v4 ts "PAWS across the TSval wrap (peer clock starts at 2^32-5)" tsbase=4294967291 <<'EOF'
send FA
expect
send A tsval=tsv-100
expect
send A
expect
EOF
c t3-nolisten-v4-ts "T3" v4 ts "a SYN above rcv_nxt, no listener on the port" <<'EOF'
send FA
expect
send S seq=snd+100000
expect
EOF
c t3-nolisten-m4-nots "T3" m4 nots "as t3-nolisten-v4-ts, IPv4-mapped, no timestamps" <<'EOF'
send FA
expect
send S seq=snd+100000
expect
EOF
c t3-listen-v4-ts "T3" v4 ts "a SYN above rcv_nxt reaches a listener on the port" listen <<'EOF'
send FA
expect
send S seq=snd+100000
expect
send R seq=snd+100001
expect
EOF
c t3-listen-v6-nots "T3" v6 nots "as t3-listen-v4-ts, IPv6 without timestamps" listen <<'EOF'
send FA
expect
send S seq=snd+100000
expect
send R seq=snd+100001
expect
EOF
c t4-listen-v4-ts "T4" v4 ts "a SYN below rcv_nxt with a newer TSval reaches a listener" listen <<'EOF'
send FA
expect
send S seq=snd-1000
expect
send R seq=snd-999
expect
EOF
c t4-nolisten-v6-ts "T4" v6 ts "as t4-listen-v4-ts without a listener, IPv6" <<'EOF'
send FA
expect
send S seq=snd-1000
expect
EOF
c t4-samets-v4-ts "T4,T5" v4 ts "a SYN below rcv_nxt whose TSval is not newer" <<'EOF'
send FA
expect
send S seq=snd-1000 tsval=tsv-10
expect
EOF
c t5-noflags-v4-nots "T5" v4 nots "an in-order segment without any flag is dropped" <<'EOF'
send FA
expect
send . seq=snd
expect
EOF
c t5-noflags-tsrecent-m4-ts "T5,T6" m4 ts "an in-order segment without flags and with a newer TSval, then the FIN again" <<'EOF'
send FA
expect
send . tsval=tsv+1000
expect
send FA seq=snd-1
expect
EOF
c t5-fin-noack-v4-ts "T5" v4 ts "a retransmitted FIN without ACK" <<'EOF'
send FA
expect
send F seq=snd-1
expect
EOF
c t5-syn-old-v6-nots "T5" v6 nots "a SYN below rcv_nxt without timestamps" <<'EOF'
send FA
expect
send S seq=snd-1000
expect
EOF
c t6-synfin-v4-ts "T6" v4 ts "a retransmitted FIN with SYN set counts the SYN in end_seq (D8)" <<'EOF'
send FA
expect
send SFA seq=snd-2
expect
EOF
c t7-dupack-v4-nots "T7,T6" v4 nots "an exact duplicate of the peer's last ACK is dropped" <<'EOF'
send FA
expect
send A
expect
send FA seq=snd-1
expect
EOF
c t7-tsrecent-v4-ts "T7,T6" v4 ts "ts_recent follows an in-order duplicate ACK's TSval (issue 10, finding 2)" <<'EOF'
send FA
expect
send A
expect
send FA seq=snd-1
expect
EOF
c t7-tsrecent-syn-v6-ts "T7,T2,T4" v6 ts "a SYN whose TSval lies between the FIN's and a later ACK's (issue 10, finding 2)" <<'EOF'
send FA
expect
send A tsval=tsv+1000
expect
send S seq=snd-1000 tsval=tsv+500
expect
EOF
c t8-ackunsent-v4-ts "T8" v4 ts "an in-order ACK of data never sent" <<'EOF'
send FA
expect
send A ack=rcv+1000
expect
EOF
c t9-oldack-v6-ts "T9" v6 ts "an in-order ACK below snd_nxt is dropped" <<'EOF'
send FA
expect
send A ack=rcv-1
expect
EOF
c t9-oldack-m4-nots "T9" m4 nots "as t9-oldack-v6-ts, IPv4-mapped, no timestamps" <<'EOF'
send FA
expect
send A ack=rcv-1
expect
EOF
c t10-data-v4-ts "T10" v4 ts "new data after the FIN gets an ACK" <<'EOF'
send FA
expect
send PA len=10
expect
EOF
c t10-olddata-v6-ts "T10" v6 ts "data overlapping rcv_nxt from below gets an ACK" <<'EOF'
send FA
expect
send PA seq=snd-5 len=10
expect
EOF
c t10-oow-v4-nots "T10" v4 nots "an ACK far out of window gets an ACK" <<'EOF'
send FA
expect
send A seq=snd+5000
expect
EOF
c t10-synack-m4-ts "T10" m4 ts "a SYN+ACK gets an ACK" <<'EOF'
send FA
expect
send SA seq=snd+100
expect
EOF
c rl-t10-v4-ts "T10,§4" v4 ts "rate limit: of two out-of-window ACKs back to back only the first is answered" ratelimit=10000 <<'EOF'
send FA
expect
send A seq=snd+5000
expect
send A seq=snd+5000
expect
EOF
c rl-exempt-v6-ts "T6,T10,§4" v6 ts "rate limit: replies to a FIN and to data neither wait for nor stamp the limiter (D29)" ratelimit=10000 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send A seq=snd+5000
expect
send PA len=5
expect
send A seq=snd+5000
expect
EOF
c rl-interval-v4-nots "T10,§4" v4 nots "rate limit: a second reply 2 s after the first, with tcp_invalid_ratelimit 4 s" ratelimit=4000 <<'EOF'
send FA
expect
send A seq=snd+5000
expect
sleep 2000
send A seq=snd+5000
expect
EOF
c t11-bcast-v4-ts "T11,T6" v4 ts "a FIN sent as a link-layer broadcast is never answered" <<'EOF'
send FA
expect
send FA seq=snd-1 l2=bcast
expect
send FA seq=snd-1
expect
EOF
c t11-mcast-v6-ts "T11,T6" v6 ts "a FIN sent as a link-layer multicast is never answered" <<'EOF'
send FA
expect
send FA seq=snd-1 l2=mcast
expect
send FA seq=snd-1
expect
EOF
c csum-bad-v4-ts "§3,T6" v4 ts "a FIN with a bad checksum changes nothing" <<'EOF'
send FA
expect
send FA seq=snd-1 csum=bad
expect
send FA seq=snd-1
expect
EOF
c d10-tszero-v4-ts "F5" v4 ts "the peer's FIN carries TSval 0 (peer clock at 2^32-96)" tsbase=4294967200 <<'EOF'
send FA tsraw=0
expect
EOF

# ---- FIN_WAIT_2: the steps come before the peer's FIN.
c f1-oow-v4-nots "F1" v4 nots "data far out of window gets an ACK" <<'EOF'
send PA seq=snd+10000000 len=1
expect
EOF
c f1-oow-v6-ts "F1" v6 ts "as f1-oow-v4-nots with timestamps: the ACK echoes ts_recent (issue 10, finding 4)" <<'EOF'
send PA seq=snd+10000000 len=1
expect
EOF
c f1-paws-fin-v4-ts "F1,F5,T6" v4 ts "PAWS in FIN_WAIT2: a FIN with an old TSval (issue 10, finding 4)" <<'EOF'
send FA tsval=tsv-1000
expect
send FA seq=snd-1
expect
EOF
c f1-rst-oow-v4-nots "F1" v4 nots "an out-of-window RST" <<'EOF'
send R seq=snd+10000000
expect
send FA
expect
EOF
c f1-edge-empty-v4-nots "F1,F4" v4 nots "window edge: an empty ACK at the right edge is in window, one past it is not" <<'EOF'
send A seq=snd+hwnd
expect
send A seq=snd+hwnd+1
expect
EOF
c f1-edge-data-v6-nots "F1,F6" v6 nots "window edge: the last byte of the window is in window (new data: RST)" <<'EOF'
send PA seq=snd+hwnd-1 len=1
expect
EOF
c f1-edge-out-m4-nots "F1" m4 nots "window edge: the first byte past the window is out of window (ACK)" <<'EOF'
send PA seq=snd+hwnd len=1
expect
EOF
c f1-syn-old-v4-nots "F1" v4 nots "a SYN below rcv_nxt is out of window" <<'EOF'
send S seq=snd-1000
expect
EOF
c f2-rst-v4-ts "F2" v4 ts "an in-window RST ends FIN_WAIT2 silently; the stack answers what follows" <<'EOF'
send R
expect
send FA
expect
EOF
c f2-rst-m4-nots "F2" m4 nots "as f2-rst-v4-ts, IPv4-mapped, no timestamps" <<'EOF'
send R
expect
send FA
expect
EOF
c f3-syn-v6-ts "F3" v6 ts "a SYN at rcv_nxt is reset and ends FIN_WAIT2" <<'EOF'
send S
expect
send FA
expect
EOF
c f3-syn-v4-nows "F3" v4 nows "a SYN above rcv_nxt is reset" <<'EOF'
send S seq=snd+100
expect
EOF
c f3-wrap-v4-nots "F1,F3" v4 nots "rcv_nxt wraps to 0 (ISN 2^32-1): the byte before it is out of window, a SYN at it is reset" isn=4294967295 <<'EOF'
send PA seq=snd-1 len=1
expect
send S
expect
EOF
c f4-dupack-v4-ts "F4,F5" v4 ts "a duplicate ACK is dropped; the FIN that follows completes" <<'EOF'
send A
expect
send FA
expect
EOF
c f4-noack-v6-nots "F4,F5" v6 nots "data without ACK is dropped; the FIN that follows completes" <<'EOF'
send P len=5
expect
send FA seq=snd-5
expect
EOF
c f5-olddata-v4-ts "F5,T6" v4 ts "a FIN with old bytes in front of it completes (D4)" <<'EOF'
send FA seq=snd-3 len=3
expect
send FA seq=snd-1
expect
EOF
c f5-wrap-m4-ts "F5,T10" m4 ts "the FIN ends past the sequence wrap (ISN 2^32-2)" isn=4294967294 <<'EOF'
send FA
expect
send A seq=snd+10
expect
EOF
c f6-data-v4-ts "F6" v4 ts "new data after the application closed is reset" <<'EOF'
send PA len=10
expect
send FA
expect
EOF
c f6-findata-m4-ts "F6" m4 ts "a FIN with new data in front of it is reset" <<'EOF'
send FPA len=5
expect
EOF
c f6-fingap-v6-nots "F6" v6 nots "a FIN beyond rcv_nxt (a gap before it) is reset" <<'EOF'
send FA seq=snd+5
expect
EOF

# ---- The IP header of the replies (issue 9, item 5). Linux's TIME_WAIT (and its FIN_WAIT2,
# which is a timewait socket too once the application has closed) sends with the socket's TOS
# or traffic class, ECN bits cleared on every ACK but the one to the FIN that completes
# FIN_WAIT2 and the one to a new SYN (tcp_v4_timewait_ack, tcp_v6_timewait_ack: only
# TCP_TW_ACK_OOW clears them), with the connection's flow label (tw_flowlabel, else derived
# from tw_txhash); its RST takes the DSCP of the segment it answers, ECN cleared
# (tcp_v4_send_reset, tcp_v6_send_reset). The peer's own TOS is 0 unless a step says tos=.
c ip-tos-v4-ts "F5,T6,T2" v4 ts "IP_TOS 0x28 (DSCP AF11): the ACKs carry the socket's TOS, not the segment's" tos=0x28 <<'EOF'
send FA
expect
send FA seq=snd-1 tos=0xb9
expect
send A tsval=tsv-1000
expect
EOF
c ip-tos-f1-v4-nots "F1,F6" v4 nots "IP_TOS 0x28: out-of-window data in FIN_WAIT2 gets an ACK with the socket's TOS; the RST to new data takes the segment's DSCP (0xb9: EF, ECT(1)), ECN cleared" tos=0x28 <<'EOF'
send PA seq=snd+10000000 len=1 tos=0xb9
expect
send PA len=10 tos=0xb9
expect
send FA tos=0x11
expect
EOF
c ip-tclass-v6-ts "F5,T6,T2" v6 ts "as ip-tos-v4-ts with IPV6_TCLASS 0x28; the replies carry the connection's flow label" tos=0x28 <<'EOF'
send FA
expect
send FA seq=snd-1 tos=0xb9
expect
send A tsval=tsv-1000
expect
EOF
c ip-tclass-f1-v6-nots "F1,F6" v6 nots "as ip-tos-f1-v4-nots with IPV6_TCLASS 0x28" tos=0x28 <<'EOF'
send PA seq=snd+10000000 len=1 tos=0xb9
expect
send PA len=10 tos=0xb9
expect
send FA tos=0x11
expect
EOF
c ip-tos-m4-ts "F5,T6" m4 ts "IP_TOS 0x28 on an AF_INET6 socket talking IPv4 (IPv4-mapped)" tos=0x28 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c ip-tosonly-m4-ts "F5,T6" m4 ts "IP_TOS 0x28 and IPV6_TCLASS 0, IPv4-mapped: the connection's segments carry the TOS, its TIME_WAIT's ACKs the traffic class (tw_tclass is tw_tos)" tos=0x28 tclass=0 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c ip-tclassonly-m4-nots "F5,T6" m4 nots "as ip-tosonly-m4-ts the other way round: IP_TOS 0, IPV6_TCLASS 0x28" tos=0 tclass=0x28 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c ip-tos-ecnbits-v4-nots "F5,T6" v4 nots "IP_TOS 0x2b: Linux keeps the ECN bits of a TCP socket's TOS to itself, 0x28 is what takes" tos=0x2b <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c ip-flowlabel-v6-nots "F5,T6,T10" v6 nots "an explicit flow label (0x12345, IPV6_FLOWLABEL_MGR and IPV6_FLOWINFO_SEND): the replies carry it" flowlabel=0x12345 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send PA len=10
expect
EOF
c ip-flowlabel-f6-v6-nots "F1,F6" v6 nots "as ip-flowlabel-v6-nots in FIN_WAIT2: the ACK to out-of-window data and the RST to new data" flowlabel=0x12345 <<'EOF'
send PA seq=snd+10000000 len=1
expect
send PA len=10
expect
EOF
c ip-ecn-v4-ts "F5,T6" v4 ecn "classic ECN (tcp_ecn=1) with IP_TOS 0x28: the FIN cleared ECT on the socket, the replies carry 0x28" tos=0x28 ecn=1 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
EOF
c ip-accecn-v4-ts "F5,T6,T2" v4 accecn "Accurate ECN (tcp_ecn=3) with IP_TOS 0x28: ECT(0) stays on the socket; the ACK to the FIN keeps it, the out-of-window ACKs clear it" tos=0x28 ecn=3 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send A tsval=tsv-1000
expect
EOF
c ip-accecn-v6-ts "F5,T6,T2" v6 accecn "as ip-accecn-v4-ts with IPV6_TCLASS 0x28" tos=0x28 ecn=3 <<'EOF'
send FA
expect
send FA seq=snd-1
expect
send A tsval=tsv-1000
expect
EOF

# ---- Unread data at handoff (D36).
c unread-close-v4 "§6" v4 ts "the peer's data is never read; the application closes" app=unread <<'EOF'
seen F
seen R
send FA
expect
EOF
c unread-half-v6 "§6" v6 ts "the peer's data is never read; the application shuts down, waits for FIN_WAIT2, closes" app=unread-half <<'EOF'
seen F
seen R
send FA
expect
EOF

}
MODE=handoff
cases
flush_pool
[ -z "$bg_pids" ] || wait $bg_pids
for id in $bg_ids; do report $id; done

# The takeover pass (D47): the application close()s as in the linux variant, with
# net.rust_timewait.takeover 2 (the host's end connect()ed), so the module takes the connection
# over from Linux's FIN_WAIT2
# at the peer's first FIN; compared with the first pass's linux transcript, as case ID@takeover.
# The expiry case is left out (the module's 2MSL is the handoff's, checked in the first pass),
# and so is every case in which the peer sends no FIN (nothing there for the takeover to act on).
MODE=takeover tk_fin=0 POOL=1
taken=$(stat taken_over)
echo 2 >/proc/sys/net/rust_timewait/takeover
cases
flush_pool
echo 0 >/proc/sys/net/rust_timewait/takeover
taken=$(($(stat taken_over) - taken))
# Each such case is checked on its own (run_case: one that took nothing over is a MISMATCH);
# this says the pass had them.
diag "takeover pass: $taken taken over, $tk_fin cases whose first step is the completing FIN"
[ -n "$filter" ] || check "the takeover pass had cases that begin with the completing FIN ($tk_fin)" [ "$tk_fin" -gt 40 ]
check "the takeover pass took over at least one connection per such case ($taken >= $tk_fin)" [ "$taken" -ge "$tk_fin" ]

echo "$old_rl" >/proc/sys/net/ipv4/tcp_invalid_ratelimit
echo "$old_1337" >/proc/sys/net/ipv4/tcp_rfc1337
echo "$old_ecn" >/proc/sys/net/ipv4/tcp_ecn
diag "conformance: $ran cases in $(($(date +%s) - start)) s"
check "rmmod" rmmod rust_timewait
net_down
tap_done
