// SPDX-License-Identifier: GPL-2.0

//! Pure TIME_WAIT logic: no kernel bindings, no FFI, no `unsafe`. Every file carries a KUnit
//! suite that runs in the guest at `insmod` and on the host (`tests/host/logic` includes this
//! folder whole).

/// Fixtures of the test suites, compiled exactly when they are: the kernel's `kunit_tests`
/// attribute keeps them for `CONFIG_KUNIT="y"`, the host harness (`rtw_host`) always.
#[cfg(any(CONFIG_KUNIT = "y", rtw_host))]
pub(crate) mod fixtures;

pub(crate) mod family;
pub(crate) mod policy;
pub(crate) mod reply;
pub(crate) mod segment;
pub(crate) mod seq;
pub(crate) mod time;
pub(crate) mod twcheck;
pub(crate) mod wire;
