// SPDX-License-Identifier: GPL-2.0

//! `twctl`: the userspace side of the `rust_timewait` kernel module (compressed TIME_WAIT).
//!
//! - [`entry`]: the entry model; [`line`]: the text line format of add files;
//! - [`proto`]: the generic netlink family's messages (built and parsed with the rust-netlink
//!   crates); [`client`]: the netlink connection;
//! - [`format`]: tables and JSON; [`handoff`]: handing a live socket over (the module's adopt,
//!   then a close in TCP_REPAIR mode);
//!   [`handoff_batch`]: a server's handoffs with the wait in the kernel (one netlink message
//!   per batch, then one close() per socket); [`handoff_queue`]: the same with the wait in
//!   userspace (epoll, then adopt by fd);
//! - [`cli`]: the command line (the binary is a thin wrapper around it).

pub mod cli;
pub mod client;
pub mod entry;
pub mod error;
pub mod format;
pub mod handoff;
pub mod handoff_batch;
pub mod handoff_queue;
pub mod line;
pub mod proto;

pub use client::{AddOutcome, AddReport, AdoptResult, Client};
pub use entry::{Entry, Key, Substate, Tuple};
pub use error::{exit, Error};
pub use handoff::{close_with_handoff, handoff, HandoffError, Outcome};
pub use handoff_batch::{Flushed, HandoffBatch, Refused};
pub use handoff_queue::{EntrySink, Handoff, HandoffQueue};
