// SPDX-License-Identifier: GPL-2.0

//! The functions the C glue calls (`rtw_rs_*` in `glue.h`): each turns raw pointers back into
//! the safe types of `netns.rs` and calls it.

use crate::entry::{Entry, V4, V6};
use crate::ffi;
use crate::netns::{NetState, STAT_COUNT};
use crate::policy;
use core::ffi::{c_int, c_uint, c_void};
use kernel::prelude::*;

/// Sizes and alignments of the two entry types, for the slab caches.
pub fn entry_layouts() -> (u32, u32, u32, u32) {
    (
        core::mem::size_of::<Entry<V4>>() as u32,
        core::mem::align_of::<Entry<V4>>() as u32,
        core::mem::size_of::<Entry<V6>>() as u32,
        core::mem::align_of::<Entry<V6>>() as u32,
    )
}

/// # Safety
///
/// `rs` must be a pointer returned by `rtw_rs_net_init` and not yet passed to `rtw_rs_net_exit`.
unsafe fn state<'a>(rs: *mut c_void) -> &'a NetState {
    // SAFETY: the caller guarantees `rs` is a live `NetState` (from `KBox::into_raw`), which
    // is only dropped by `rtw_rs_net_exit`.
    unsafe { &*rs.cast::<NetState>() }
}

/// Create a netns's state. Returns null on allocation failure.
///
/// # Safety
///
/// `gn` and `tables` are the netns's glue state and table, which outlive the state (the glue
/// frees them only after `rtw_rs_net_exit`).
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_net_init(gn: *mut ffi::rtw_glue_net, tables: *mut ffi::rtw_glue_tables) -> *mut c_void {
    let Some(tables) = core::ptr::NonNull::new(tables) else { return core::ptr::null_mut() };
    // SAFETY: the caller's contract.
    match unsafe { NetState::new(gn, tables) } {
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Free a netns's state and every entry in it.
///
/// # Safety
///
/// `rs` comes from `rtw_rs_net_init`; no hook, timer or netlink command uses it any more.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_net_exit(rs: *mut c_void) {
    if rs.is_null() {
        return;
    }
    // SAFETY: by the contract above `rs` is a live state (from `KBox::into_raw` in
    // `rtw_rs_net_init`) that nothing else can reach.
    let b = unsafe { KBox::from_raw(rs.cast::<NetState>()) };
    b.drain();
    drop(b);
}

/// A segment from a netfilter hook for the tuple of `entry`; returns the verdict.
///
/// # Safety
///
/// `rs` is live; `pkt` points to a valid `rtw_glue_pkt` whose `head` has `head_len` readable
/// bytes and whose `ctx` is valid for this call; `entry` was found in the table of `pkt`'s
/// family by `rtw_glue_table_lookup` within the RCU read-side critical section the call runs in.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_hook(rs: *mut c_void, pkt: *const ffi::rtw_glue_pkt, entry: *mut c_void) -> c_uint {
    // SAFETY: the caller guarantees `pkt` is valid for the call.
    let pkt = unsafe { &*pkt };
    if pkt.head.is_null() {
        return ffi::NF_ACCEPT;
    }
    // SAFETY: `head` has `head_len` readable bytes (the glue's stack copy), alive for the call.
    let head = unsafe { core::slice::from_raw_parts(pkt.head, pkt.head_len as usize) };
    // Nested in the hook's own read-side section: it only ties `entry`'s lifetime to it.
    let rcu = kernel::sync::rcu::read_lock();
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.hook(pkt.family, head, pkt.skb_len, pkt.output, pkt.link_bcast, pkt.ifindex, pkt.ctx, entry, &rcu)
}

/// The reaper timer fired.
///
/// # Safety
///
/// `rs` is live.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_reap(rs: *mut c_void) {
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.reap();
}

/// Add one entry; returns 0 or a negative errno.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid entry.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_add(rs: *mut c_void, e: *const ffi::rtw_glue_entry, replace: bool) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    unsafe { state(rs).add(&*e, replace) }
}

/// Delete one entry by key.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid entry.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_del(rs: *mut c_void, e: *const ffi::rtw_glue_entry) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    unsafe { state(rs).del(&*e) }
}

/// Fill in one entry by key.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid, writable entry.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_get(rs: *mut c_void, e: *mut ffi::rtw_glue_entry) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    unsafe { state(rs).get(&mut *e) }
}

/// A dump's entry as it crosses netlink: 0, or -ENOENT if it is gone or expired.
///
/// # Safety
///
/// `rs` is live; `entry` was found in the family's table by the glue's walker within the RCU
/// read-side critical section the call runs in; `out` is valid and writable.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_export(rs: *mut c_void, family: u8, entry: *mut c_void, out: *mut ffi::rtw_glue_entry) -> c_int {
    let rcu = kernel::sync::rcu::read_lock();
    // SAFETY: the caller guarantees `rs`, `entry` and `out`.
    unsafe { state(rs).export_walked(family, entry, &mut *out, &rcu) }
}

/// Count a malformed add request.
///
/// # Safety
///
/// `rs` is live.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_count_invalid(rs: *mut c_void) {
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.count_invalid();
}

/// Delete every entry.
///
/// # Safety
///
/// `rs` is live.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_flush(rs: *mut c_void) -> u32 {
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.flush()
}

/// Copy the counters to `out` (`RTW_GLUE_STAT_COUNT` values).
///
/// # Safety
///
/// `rs` is live; `out` has room for `RTW_GLUE_STAT_COUNT` values.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_stats(rs: *mut c_void, out: *mut u64) {
    // SAFETY: the caller guarantees `out` holds `STAT_COUNT` values.
    let out = unsafe { &mut *out.cast::<[u64; STAT_COUNT]>() };
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.stats(out);
}

/// Whether a sysctl write is acceptable; policy.rs holds the bounds.
#[no_mangle]
pub extern "C" fn rtw_rs_sysctl_valid(which: c_int, value: c_int) -> bool {
    match which as u32 {
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MAXTCPTW => policy::maxtcptw_valid(value),
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT => value == 0 || value == 1,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS => policy::msl_ms_valid(value),
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS => policy::fin_timeout_ms_valid(value),
        _ => false,
    }
}
