// SPDX-License-Identifier: GPL-2.0

//! Pure TIME_WAIT logic: no kernel bindings, no FFI, no `unsafe`. Every file carries a KUnit
//! suite that runs in the guest at `insmod` and on the host (`tests/host/logic` includes this
//! folder whole).

pub(crate) mod policy;
pub(crate) mod reply;
pub(crate) mod segment;
pub(crate) mod seq;
pub(crate) mod time;
pub(crate) mod twcheck;
