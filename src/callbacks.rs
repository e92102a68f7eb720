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
    // is pinned and only dropped by `rtw_rs_net_exit`.
    unsafe { &*rs.cast::<NetState>() }
}

/// Create a netns's state. Returns null on allocation failure.
#[no_mangle]
pub extern "C" fn rtw_rs_net_init(gn: *mut ffi::rtw_glue_net) -> *mut c_void {
    match NetState::new(gn) {
        // SAFETY: the state is never moved out of its box: the pointer is only turned back
        // into a `Pin<KBox<_>>` by `rtw_rs_net_exit`.
        Ok(b) => KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) }).cast(),
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
    // SAFETY: by the contract above `rs` is a live state that nothing else can reach.
    let b = unsafe { KBox::from_raw(rs.cast::<NetState>()) };
    b.drain();
    drop(b);
}

/// A segment from a netfilter hook; returns the verdict.
///
/// # Safety
///
/// `rs` is live; `pkt` points to a valid `rtw_glue_pkt` whose `head` has `head_len` readable
/// bytes and whose `ctx` is valid for this call.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_hook(rs: *mut c_void, pkt: *const ffi::rtw_glue_pkt) -> c_uint {
    // SAFETY: the caller guarantees `pkt` is valid for the call.
    let pkt = unsafe { &*pkt };
    if pkt.head.is_null() {
        return ffi::NF_ACCEPT;
    }
    // SAFETY: `head` has `head_len` readable bytes (the glue's stack copy), alive for the call.
    let head = unsafe { core::slice::from_raw_parts(pkt.head, pkt.head_len as usize) };
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.hook(pkt.family, head, pkt.skb_len, pkt.output, pkt.link_bcast, pkt.ifindex, pkt.ctx)
}

/// Whether the netns guards any tuple (lock-free; the hook's fast path).
///
/// # Safety
///
/// `rs` is live.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_guards_any(rs: *mut c_void) -> bool {
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.guards_any()
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

/// Dump entries from `*cursor` through `emit`.
///
/// # Safety
///
/// `rs` is live; `cursor` and `generation` are valid and writable; `emit` may be called with
/// `arg` and a valid entry while the per-netns lock is held (it must not sleep).
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_dump(
    rs: *mut c_void,
    cursor: *mut u64,
    emit: ffi::rtw_glue_emit_fn,
    arg: *mut c_void,
    generation: *mut u32,
) -> c_int {
    let Some(emit) = emit else { return -(kernel::bindings::EINVAL as i32) };
    // SAFETY: the caller guarantees `emit` accepts `arg` and a valid entry.
    let call = |g: &ffi::rtw_glue_entry| unsafe { emit(arg, g) };
    // SAFETY: the caller guarantees `rs`, `cursor` and `generation`.
    unsafe { state(rs).dump(&mut *cursor, &mut *generation, call) }
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
