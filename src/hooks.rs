// SPDX-License-Identifier: GPL-2.0

//! Registration of the per-netns state and netfilter hooks, held for the module's lifetime.

use crate::ffi;
use kernel::prelude::*;

/// The module's netfilter hooks and per-netns state, registered in every network namespace.
///
/// # Invariants
///
/// While a `NetHooks` exists, `rtw_glue_init()` has succeeded and `rtw_glue_exit()` has not
/// been called.
pub(crate) struct NetHooks(());

impl NetHooks {
    /// Registers the pernet operations; their `init` registers the hooks in each netns.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: `rtw_glue_init` has no preconditions; it is paired with `rtw_glue_exit` in
        // `Drop`, and the type invariant records that it succeeded.
        kernel::error::to_result(unsafe { ffi::rtw_glue_init() })?;
        Ok(NetHooks(()))
    }

    /// Packets the initial netns's hooks have seen.
    pub(crate) fn init_net_seen(&self) -> u64 {
        // SAFETY: by the type invariant the pernet state exists, which is all it reads.
        unsafe { ffi::rtw_glue_init_net_seen() }
    }
}

impl Drop for NetHooks {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `rtw_glue_init` succeeded and this is the only call
        // to `rtw_glue_exit`; it unregisters the hooks (waiting for running ones) before the
        // per-netns memory goes away.
        unsafe { ffi::rtw_glue_exit() };
    }
}
