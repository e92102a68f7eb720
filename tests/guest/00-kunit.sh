#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Load the module once with KUnit enabled: its #[kunit_tests] suites run at load and print KTAP
# on the console (parsed on the host). Later scenarios load it with KUnit filtered out.
. /tests/tap.inc
check "insmod rust_timewait.ko (KUnit suites run)" insmod /lib/modules/rust_timewait.ko
check "rmmod rust_timewait" rmmod rust_timewait
# Later insmods skip the suites: their results were collected here.
echo 'rtw-no-such-suite' >/sys/module/kunit/parameters/filter_glob
tap_done
