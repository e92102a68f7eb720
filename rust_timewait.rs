// SPDX-License-Identifier: GPL-2.0

//! rust_timewait: FreeBSD's compressed TIME_WAIT (`sys/netinet/tcp_timewait.c`) for Linux.
//!
//! Pure TIME_WAIT logic (sequence arithmetic, segment parsing, the `tcp_twcheck` decision
//! table, reply building, table policy) lives in safe Rust without FFI so KUnit can test it
//! exhaustively; every `unsafe` is in the thin layer over the C glue (`src/ffi.rs`,
//! `src/hooks.rs`).

use kernel::prelude::*;

#[path = "src/ffi.rs"]
mod ffi;
#[path = "src/hooks.rs"]
mod hooks;
#[path = "src/policy.rs"]
pub mod policy;
#[path = "src/reply.rs"]
pub mod reply;
#[path = "src/segment.rs"]
pub mod segment;
#[path = "src/seq.rs"]
pub mod seq;
#[path = "src/twcheck.rs"]
pub mod twcheck;

module! {
    type: RustTimeWait,
    name: "rust_timewait",
    authors: ["rust_timewait developers"],
    description: "Compressed TCP TIME_WAIT, after FreeBSD's tcp_timewait.c",
    license: "GPL",
}

struct RustTimeWait {
    hooks: hooks::NetHooks,
}

impl kernel::Module for RustTimeWait {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let hooks = hooks::NetHooks::register()?;
        pr_info!("loaded: netfilter hooks registered (IPv4, IPv6)\n");
        Ok(RustTimeWait { hooks })
    }
}

impl Drop for RustTimeWait {
    fn drop(&mut self) {
        pr_info!("unloading: hooks saw {} packets in init_net\n", self.hooks.init_net_seen());
    }
}
