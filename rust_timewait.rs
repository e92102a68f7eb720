// SPDX-License-Identifier: GPL-2.0

//! rust_timewait: FreeBSD's compressed TIME_WAIT (`sys/netinet/tcp_timewait.c`) for Linux.
//!
//! Pure TIME_WAIT logic (sequence arithmetic, segment parsing, the `tcp_twcheck` decision
//! table, reply building, table policy) lives in safe Rust without FFI so KUnit can test it
//! exhaustively. The state layer (`src/netns.rs`) is safe Rust too. Every `unsafe` is in the
//! layer over the C glue: the boundary the glue calls (`src/callbacks.rs`), the safe wrappers
//! over the table and the kernel services (`src/table.rs`, `src/sys.rs`), the registration
//! (`src/hooks.rs`), and the one accessor of an entry's lock-guarded part (`src/entry.rs`).

use kernel::prelude::*;

#[path = "src/callbacks.rs"]
pub mod callbacks;
#[path = "src/entry.rs"]
pub mod entry;
#[path = "src/ffi.rs"]
mod ffi;
#[path = "src/hooks.rs"]
mod hooks;
#[path = "src/netns.rs"]
pub mod netns;
#[path = "src/table.rs"]
pub mod table;
#[path = "src/policy.rs"]
pub mod policy;
#[path = "src/reply.rs"]
pub mod reply;
#[path = "src/segment.rs"]
pub mod segment;
#[path = "src/seq.rs"]
pub mod seq;
#[path = "src/stats.rs"]
pub mod stats;
#[path = "src/sys.rs"]
pub mod sys;
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
    _registration: hooks::Registration,
}

impl kernel::Module for RustTimeWait {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registration = hooks::Registration::register()?;
        let (s4, _, s6, _) = callbacks::entry_layouts();
        pr_info!("loaded: entries of {s4} bytes (IPv4) and {s6} bytes (IPv6), hooks and genl family registered\n");
        Ok(RustTimeWait { _registration: registration })
    }
}

impl Drop for RustTimeWait {
    fn drop(&mut self) {
        pr_info!("unloading\n");
    }
}
