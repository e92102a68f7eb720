#!/bin/sh
# The demo a person watches (`make demo`): load the module, show its hooks working, unload.
# The KUnit suites have their own run (make test); keep the demo about the module.
echo rtw-no-such-suite >/sys/module/kunit/parameters/filter_glob
echo "== insmod rust_timewait.ko"
insmod /lib/modules/rust_timewait.ko
grep rust_timewait /proc/modules
dmesg | grep rust_timewait | tail -n 3
echo "== traffic through the hooks (IPv4 and IPv6)"
ping -c 2 -W 1 127.0.0.1 | tail -n 2
ping -6 -c 2 -W 1 ::1 | tail -n 2
echo "== rmmod"
rmmod rust_timewait
dmesg | grep rust_timewait | tail -n 1
