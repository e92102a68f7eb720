# SPDX-License-Identifier: GPL-2.0
#
# rust_timewait: the commands a person runs. Kbuild (the kernel's build) reads `Kbuild`, not
# this file.
#
#   make              build rust_timewait.ko against the cached test kernel (built on first use)
#   make KDIR=/path   build it against your own Rust-enabled kernel tree
#   make demo         build what is missing, boot the test kernel in QEMU, show the module working
#   make test         run every test: host-side, KUnit (in the guest) and guest scenarios
#   make test-debug   the same on the debug kernel (KASAN, UBSAN, debug objects; built by
#                     clang), with the fuzzers and the churn at full size (about 35 min)
#   make bench        table size against add rate and per-segment hook cost (in the guest)
#   make profile      where the guest's CPU goes with the takeover against plain close()
#   make clean        remove build products from this directory
#
# RTW_CACHE (default /var/cache/rust_timewait) holds the build root and the test kernel.

ifdef KDIR
# A kernel built by clang builds its modules with clang too (LLVM=1, as it was configured),
# unless the caller names its own LLVM (LLVM=-19, LLVM=/path/).
ifeq ($(origin LLVM),undefined)
KBUILD_LLVM := $(if $(shell grep -sx 'CONFIG_CC_IS_CLANG=y' $(KDIR)/.config $(KDIR)/include/config/auto.conf),LLVM=1)
endif
all:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KBUILD_LLVM) modules
clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KBUILD_LLVM) clean
else
all:
	bash qemu/module.sh
clean:
	rm -f *.o *.ko *.mod *.mod.c *.mod.o .*.cmd Module.symvers modules.order src/*.o src/.*.cmd \
		src/bindings_generated.rs src/.*.d .*.d
endif

demo:
	bash qemu/demo.sh

test:
	bash tests/run.sh

test-debug:
	RTW_FLAVOR=debug RTW_FUZZ=full bash tests/run.sh

bench:
	bash qemu/bench.sh

profile:
	bash qemu/profile.sh

.PHONY: all clean demo test test-debug bench profile
