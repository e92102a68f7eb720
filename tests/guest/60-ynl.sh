#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The family driven by the kernel's own ynl CLI from spec/rust_timewait.yaml, and every kind of
# malformed request: each is refused with an extack message naming the attribute, and changes
# nothing. Our own checks answer EINVAL; the strict policies' range checks answer ERANGE with
# the policy's bounds and the offending attribute, as every netlink family does.
. /tests/tap.inc
export PYTHONPATH=/usr/lib/python3/dist-packages
ynl() { python3 /ynl/pyynl/cli.py --spec /ynl/rust_timewait.yaml --no-schema "$@" >/tmp/ynl.out 2>&1; }
out() { tr '\n' ' ' </tmp/ynl.out; }
entries() { ynl --do get-stats && sed -n "s/.*'entries': \([0-9]*\).*/\1/p" /tmp/ynl.out; }
E='"family":2,"local-addr":"0a090001","remote-addr":"0a090002","local-port":80,"remote-port":40000'
S='"snd-nxt":1000,"rcv-nxt":2000,"last-win":501'

insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
check "ynl add" ynl --do add --json "{\"entry\":[{$E,$S}]}"
diag "$(out)"
check "ynl add reply carries result 0" grep -q "'result': 0" /tmp/ynl.out
check_eq "ynl get-stats: 1 entry" 1 "$(entries)"
check "ynl dump get" ynl --dump get
check "ynl dump shows the entry with its lifetime" sh -c "grep -q \"'snd-nxt': 1000\" /tmp/ynl.out && grep -q expires-ms /tmp/ynl.out"
check "ynl do get" ynl --do get --json "{\"entry\":[{$E}]}"
check "ynl get: rcv-nxt" grep -q "'rcv-nxt': 2000" /tmp/ynl.out

# refused: the request, the errno and the words the extack must carry
refuse() {
	what=$1 json=$2 errno=$3 words=$4
	if ynl --do add --json "$json"; then not_ok "$what: accepted"; return; fi
	if grep -q -- "$errno" /tmp/ynl.out && grep -q -- "$words" /tmp/ynl.out; then
		ok "$what: $errno, \"$words\""
	else
		not_ok "$what: expected $errno and \"$words\""; diag "$(out)"
	fi
}
refuse "unknown family" "{\"entry\":[{\"family\":3,\"local-addr\":\"0a090001\",\"remote-addr\":\"0a090002\",\"local-port\":80,\"remote-port\":1,$S}]}" \
	"Invalid argument" "family: must be AF_INET"
refuse "address length vs family" "{\"entry\":[{\"family\":2,\"local-addr\":\"0a09000101\",\"remote-addr\":\"0a090002\",\"local-port\":80,\"remote-port\":1,$S}]}" \
	"Invalid argument" "local-addr: length does not match family"
refuse "missing snd-nxt" "{\"entry\":[{$E,\"rcv-nxt\":1,\"last-win\":1}]}" \
	"Invalid argument" "missing attribute snd-nxt"
refuse "window scale above 14 (policy)" "{\"entry\":[{$E,$S,\"rcv-wscale\":15}]}" \
	"Numerical result out of range" "bad-attr.: .\.entry\.rcv-wscale"
refuse "substate out of range (policy)" "{\"entry\":[{$E,$S,\"substate\":2}]}" \
	"Numerical result out of range" "bad-attr.: .\.entry\.substate"
refuse "port 0 (policy)" "{\"entry\":[{\"family\":2,\"local-addr\":\"0a090001\",\"remote-addr\":\"0a090002\",\"local-port\":0,\"remote-port\":1,$S}]}" \
	"Numerical result out of range" "bad-attr.: .\.entry\.local-port"
refuse "multicast peer" "{\"entry\":[{\"family\":2,\"local-addr\":\"0a090001\",\"remote-addr\":\"e0000001\",\"local-port\":80,\"remote-port\":1,$S}]}" \
	"Invalid argument" "remote-addr: must be a unicast address"
refuse "reply-only attribute in a request" "{\"entry\":[{$E,$S,\"expires-ms\":5}]}" \
	"Invalid argument" "expires-ms"
refuse "time-wait with has-ts but no ts-recent" "{\"entry\":[{$E,$S,\"has-ts\":true}]}" \
	"Invalid argument" "has-ts: a time-wait entry needs ts-recent"
refuse "a batch whose second entry is malformed" \
	"{\"entry\":[{\"family\":2,\"local-addr\":\"0a090001\",\"remote-addr\":\"0a090003\",\"local-port\":80,\"remote-port\":1,$S},{$E}]}" \
	"Invalid argument" "missing attribute snd-nxt"
refuse "an empty add" "{}" "Invalid argument" "no entry attribute"
check_eq "nothing malformed changed the table" 1 "$(entries)"
ynl --do get-stats
check "malformed adds counted as refused-invalid" [ "$(sed -n "s/.*'refused-invalid': \([0-9]*\).*/\1/p" /tmp/ynl.out)" -ge 6 ]
check_eq "... not even the good first entry of the bad batch" 1 "$(entries)"

if ynl --do del --json "{\"entry\":[{\"family\":2,\"local-addr\":\"0a090001\",\"remote-addr\":\"0a090002\",\"local-port\":81,\"remote-port\":40000}]}"; then
	not_ok "del of an unguarded tuple: accepted"
else
	check "del of an unguarded tuple: ENOENT with a message" grep -q "no entry guards this tuple" /tmp/ynl.out
fi
if su nobody -s /bin/sh -c "PYTHONPATH=$PYTHONPATH python3 /ynl/pyynl/cli.py --spec /ynl/rust_timewait.yaml --no-schema --do flush" >/tmp/ynl.out 2>&1; then
	not_ok "unprivileged flush: accepted"
else
	check "unprivileged flush: EPERM" grep -q "Operation not permitted" /tmp/ynl.out
fi
check_eq "... and the entry is still there" 1 "$(entries)"
check "ynl flush" ynl --do flush
check "flush reply: 1 flushed" grep -q "'flushed': 1" /tmp/ynl.out
check "rmmod" rmmod rust_timewait
tap_done
