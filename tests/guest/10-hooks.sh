#!/bin/sh
# The skeleton's netfilter hooks: registered in every netns at load, see IPv4 and IPv6
# traffic, and are unregistered cleanly at unload.
. /tests/tap.inc
check "insmod" insmod /lib/modules/rust_timewait.ko
check "module is live" grep -q '^rust_timewait .* Live' /proc/modules
check "load message" sh -c 'dmesg | grep -q "rust_timewait: loaded: entries of"'
check "IPv4 traffic over lo" ping -c 2 -W 1 127.0.0.1
check "IPv6 traffic over lo" ping -6 -c 2 -W 1 ::1
# A netns created and destroyed while loaded runs the pernet init/exit (hook register/unregister).
check "netns create/destroy while loaded" unshare -n sh -c 'ip link set lo up && ping -c 1 -W 1 127.0.0.1 >/dev/null'
check "rmmod" rmmod rust_timewait
seen=$(dmesg | sed -n 's/.*hooks saw \([0-9]*\) packets in init_net.*/\1/p' | tail -n1)
# Four echo requests and four replies went through LOCAL_IN (IPv4 and IPv6 ping, 2 each).
check "hooks saw the pings (saw ${seen:-none})" [ "${seen:-0}" -ge 8 ]
check "module is gone" sh -c '! grep -q "^rust_timewait " /proc/modules'
tap_done
