#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Where the hook sits and what it may cost the host (docs/decisions.md D33, D34): a segment an
# nftables rule or an IPsec policy drops is neither answered nor allowed to change an entry, as
# for Linux's own TIME_WAIT; entries are charged to the adder's memory cgroup; root of a user
# namespace cannot raise its table above the host's.
. /tests/tap.inc
. /tests/net.inc
S=/proc/sys/net/rust_timewait
net_up
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
# Each section starts from a fresh entry, so one section's outcome never decides another's.
fresh() { twctl add $H4:80 $P4:7777 --snd-nxt 1000 --rcv-nxt 2000 --replace >/dev/null; }
fresh
fin() { peer -s $P4 -d $H4 -p 7777 -P 80 -q 1999 -a 1000 -f FA; }
syn() { peer -s $P4 -d $H4 -p 7777 -P 80 -q 9000 -a 0 -f S >/dev/null; }
guarded() { twctl list | grep -c "$H4:80 "; }
check_eq "control: a retransmitted FIN is answered" A "$(fin | field flags)"

# An INPUT drop rule at the filter priority.
fresh
nft add table inet rtwtest
nft 'add chain inet rtwtest in { type filter hook input priority filter; }'
nft add rule inet rtwtest in tcp sport 7777 drop
a0=$(stat acks_sent)
check_eq "nft drop: the FIN gets no reply" "" "$(fin | field flags)"
check_eq "nft drop: no ACK counted" "$a0" "$(stat acks_sent)"
syn
check_eq "nft drop: a SYN above rcv_nxt does not delete the entry (T3)" 1 "$(guarded)"
nft delete table inet rtwtest
fresh
check_eq "rule removed: answered again" A "$(fin | field flags)"

# conntrack's view: a segment it calls invalid, dropped by a `ct state invalid` rule. A FIN for
# a connection conntrack never saw is invalid (whatever nf_conntrack_tcp_loose says; it is set
# to 0 so a plain ACK would be too).
echo 0 >/proc/sys/net/netfilter/nf_conntrack_tcp_loose 2>/dev/null
fresh
nft add table inet rtwtest
nft 'add chain inet rtwtest in { type filter hook input priority filter; }'
nft add rule inet rtwtest in ct state invalid drop
a0=$(stat acks_sent)
check_eq "ct state invalid drop: no reply" "" "$(fin | field flags)"
check_eq "ct state invalid drop: no ACK counted" "$a0" "$(stat acks_sent)"
nft delete table inet rtwtest
echo 1 >/proc/sys/net/netfilter/nf_conntrack_tcp_loose 2>/dev/null

# An IPsec input policy that blocks the peer's TCP (Linux checks it before a TIME_WAIT sees it).
fresh
$IP xfrm policy add src $P4/32 dst $H4/32 proto 6 dir in action block
a0=$(stat acks_sent)
check_eq "IPsec block: the FIN gets no reply" "" "$(fin | field flags)"
check_eq "IPsec block: no ACK counted" "$a0" "$(stat acks_sent)"
syn
check_eq "IPsec block: a SYN does not delete the entry" 1 "$(guarded)"
$IP xfrm policy flush
fresh
check_eq "policy removed: answered again" A "$(fin | field flags)"
twctl flush >/dev/null

# Memory: entries are charged to the memory cgroup of the task that adds them.
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/rtw
slab() { sed -n 's/^slab \([0-9]*\)$/\1/p' /sys/fs/cgroup/rtw/memory.stat; }
s0=$(slab)
entry_lines 4000 10000 46000 >/tmp/batch
sh -c 'echo $$ >/sys/fs/cgroup/rtw/cgroup.procs; exec twctl add -f /tmp/batch' >/dev/null
s1=$(slab)
check "4000 entries charged to the adder's cgroup (slab $s0 -> $s1 bytes; at least 4000 x 64)" \
	[ $((s1 - s0)) -ge 256000 ]
twctl flush >/dev/null
echo $$ >/sys/fs/cgroup/cgroup.procs

# User namespaces: root there may shrink its table, not grow it past the host's capacity.
host=$(stat capacity)
cat >/tmp/userns.sh <<EOS
echo 16777216 >$S/maxtcptw 2>/dev/null && echo raise=taken || echo raise=refused
echo 64 >$S/maxtcptw 2>/dev/null && echo lower=taken || echo lower=refused
echo "1024 65535" >/proc/sys/net/ipv4/ip_local_port_range && echo range=wide
echo 0 >$S/maxtcptw
twctl --json stats | tr ',{}' '\n\n\n' | sed -n 's/^ *"capacity": *\([0-9]*\).*/auto=\1/p'
EOS
su nobody -s /bin/sh -c 'unshare -r -n sh /tmp/userns.sh' >/tmp/userns.out 2>&1
sed 's/^/# /' /tmp/userns.out
check_eq "user namespace: maxtcptw above the host's refused" 1 "$(grep -c raise=refused /tmp/userns.out)"
check_eq "user namespace: a smaller table is allowed" 1 "$(grep -c lower=taken /tmp/userns.out)"
# Half of 1024-65535 would be 32255: the host's capacity caps it.
check_eq "user namespace: a wider port range was set" 1 "$(grep -c range=wide /tmp/userns.out)"
check_eq "user namespace: auto-size is capped at the host's capacity ($host)" "auto=$host" \
	"$(grep auto= /tmp/userns.out)"

net_down
check "rmmod" rmmod rust_timewait
tap_done
