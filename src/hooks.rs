// SPDX-License-Identifier: GPL-2.0

//! Registration of everything the module puts into the kernel: the slab caches, the per-netns
//! state with its hooks, sysctls and timer, and the generic netlink family.

use crate::callbacks::entry_layouts;
use crate::ffi;
use kernel::prelude::*;

/// The module's registrations, held for its lifetime.
///
/// # Invariants
///
/// While a `Registration` exists, `rtw_glue_init()` has succeeded and `rtw_glue_exit()` has
/// not been called.
pub(crate) struct Registration(());

impl Registration {
    /// Create the caches, register the pernet operations (which set up every netns) and the
    /// netlink family.
    pub(crate) fn register() -> Result<Self> {
        let (s4, a4, s6, a6) = entry_layouts();
        // SAFETY: `rtw_glue_init` has no preconditions; it is paired with `rtw_glue_exit` in
        // `Drop`, and the type invariant records that it succeeded.
        kernel::error::to_result(unsafe { ffi::rtw_glue_init(s4, a4, s6, a6) })?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `rtw_glue_init` succeeded and this is the only call to
        // `rtw_glue_exit`. It unregisters the family, then every netns's hooks (waiting for
        // running ones) and state, then destroys the caches once they are empty.
        unsafe { ffi::rtw_glue_exit() };
    }
}
