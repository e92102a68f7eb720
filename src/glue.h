/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between rust_timewait's Rust code and its C glue (glue.c).
 *
 * rtw_glue_*: C functions the Rust side calls (bindgen generates their declarations).
 * rtw_rs_*:   Rust functions the C side calls (defined #[no_mangle] in src/ffi.rs).
 */
#ifndef RTW_GLUE_H
#define RTW_GLUE_H

#include <linux/types.h>

/* Register the per-netns state and netfilter hooks; undo it. */
int rtw_glue_init(void);
void rtw_glue_exit(void);

/* How many packets the hooks of the initial netns have seen (for tests). */
u64 rtw_glue_init_net_seen(void);

#endif
