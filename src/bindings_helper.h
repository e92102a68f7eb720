/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The module-local header list bindgen reads (see Kbuild): the C glue's interface and the
 * kernel constants the Rust side needs. Kernel struct layouts stay on the C side.
 */
#include <linux/netfilter.h>
#include "glue.h"
