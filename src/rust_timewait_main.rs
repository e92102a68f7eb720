// SPDX-License-Identifier: GPL-2.0

//! rust_timewait: FreeBSD's compressed TIME_WAIT (`sys/netinet/tcp_timewait.c`, "the seed") for
//! Linux. The crate root, as Rust Binder's `rust_binder_main.rs`: the module's registration and
//! every function the C glue calls (`rtw_rs_*` in `glue/glue.h`), which turn raw pointers and
//! `rtw_glue_entry` into the safe types of the state layer and turn its `Result` into an errno
//! and its `Action` into a netfilter verdict, once, here.
//!
//! The layers, by folder (README, Architecture):
//! - `logic/`: pure TIME_WAIT logic (sequence arithmetic, segment parsing, the `tcp_twcheck`
//!   decision table, reply building, table policy) in safe Rust with no kernel bindings; the
//!   host harness (`tests/host/logic`) builds the folder whole.
//! - `state/`: a netns's entries and what the hooks, the reaper and netlink do to them. Safe
//!   Rust but for the table's wrapper over `glue/table.c` (`state/table.rs`) and the one
//!   accessor of an entry's lock-guarded part (`state/entry.rs`).
//! - `sys.rs`: the kernel services the state layer uses (clocks, sysctls, reaper, the packet),
//!   as safe functions; `ffi.rs`: the bindgen output of `glue/glue.h`.
//!
//! Every `unsafe` is in this file, `sys.rs`, `state/table.rs` or `state/entry.rs`, each with a
//! `// SAFETY:` comment.

mod ffi;
mod logic;
mod state;
mod sys;

use crate::logic::policy::{self, Arrival};
use crate::logic::segment;
use crate::logic::twcheck::{EntryState, Substate};
use crate::logic::family::Family;
use crate::state::entry::{Addr, Entry, Key, V4, V6};
use crate::state::netns::{Action, NetState, Snapshot, Via};
use crate::state::stats::STAT_COUNT;
use crate::state::table::{self, Tables};
use crate::sys::{NetGlue, Packet};
use core::ffi::{c_int, c_uint, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::rcu;

module! {
    type: RustTimeWait,
    name: "rust_timewait",
    authors: ["rust_timewait developers"],
    description: "Compressed TCP TIME_WAIT, after FreeBSD's tcp_timewait.c",
    license: "GPL",
}

struct RustTimeWait {
    _registration: Registration,
}

impl kernel::Module for RustTimeWait {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registration = Registration::register()?;
        let (s4, _, s6, _) = entry_layouts();
        pr_info!("loaded: entries of {s4} bytes (IPv4) and {s6} bytes (IPv6), hooks and genl family registered\n");
        Ok(RustTimeWait { _registration: registration })
    }
}

impl Drop for RustTimeWait {
    fn drop(&mut self) {
        pr_info!("unloading\n");
    }
}

// ---- registration ----

/// The module's registrations, held for its lifetime.
///
/// # Invariants
///
/// While a `Registration` exists, `rtw_glue_init()` has succeeded and `rtw_glue_exit()` has
/// not been called.
struct Registration(());

impl Registration {
    /// Create the caches, register the pernet operations (which set up every netns) and the
    /// netlink family.
    fn register() -> Result<Self> {
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

// ---- the functions the C glue calls ----

/// Sizes and alignments of the two entry types, for the slab caches.
fn entry_layouts() -> (u32, u32, u32, u32) {
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
    let (Some(gn), Some(tables)) = (NonNull::new(gn), NonNull::new(tables)) else {
        return core::ptr::null_mut();
    };
    // SAFETY: both outlive the state (the caller's contract).
    let (glue, tables) = unsafe { (NetGlue::from_raw(gn), Tables::from_raw(tables)) };
    match NetState::new(glue, tables) {
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

fn verdict(a: Action) -> c_uint {
    match a {
        Action::Accept => ffi::NF_ACCEPT,
        Action::Drop => ffi::NF_DROP,
    }
}

fn errno(r: Result) -> c_int {
    r.map_or_else(|e| e.to_errno(), |()| 0)
}

/// The tuple of a netlink entry, for address family `A`.
fn key_of<A: Addr>(g: &ffi::rtw_glue_entry) -> Key<A> {
    Key { laddr: A::from_buf(&g.laddr), raddr: A::from_buf(&g.raddr), lport: g.lport, rport: g.rport, l3index: g.l3index }
}

fn state_of(g: &ffi::rtw_glue_entry) -> EntryState {
    EntryState {
        snd_nxt: g.snd_nxt,
        rcv_nxt: g.rcv_nxt,
        last_win: g.last_win,
        rcv_wscale: g.rcv_wscale,
        ts_recent: g.ts_recent,
        has_ts: g.has_ts,
        ts_recent_valid: g.ts_recent_valid,
        substate: if u32::from(g.substate) == ffi::rtw_glue_substate_RTW_GLUE_FIN_WAIT2 {
            Substate::FinWait2
        } else {
            Substate::TimeWait
        },
    }
}

/// Fill a netlink entry from an entry's tuple and snapshot.
fn fill<A: Addr>(key: &Key<A>, s: &Snapshot, g: &mut ffi::rtw_glue_entry) {
    g.family = A::FAMILY.af();
    let n = key.laddr.bytes().len();
    g.laddr[..n].copy_from_slice(key.laddr.bytes());
    g.raddr[..n].copy_from_slice(key.raddr.bytes());
    g.lport = key.lport;
    g.rport = key.rport;
    g.l3index = key.l3index;
    g.ifindex = s.ifindex;
    g.snd_nxt = s.state.snd_nxt;
    g.rcv_nxt = s.state.rcv_nxt;
    g.last_win = s.state.last_win;
    g.rcv_wscale = s.state.rcv_wscale;
    g.ts_recent = s.state.ts_recent;
    g.ts_offset = s.ts_offset;
    g.has_ts = s.state.has_ts;
    g.ts_recent_valid = s.state.ts_recent_valid;
    g.substate = match s.state.substate {
        Substate::TimeWait => ffi::rtw_glue_substate_RTW_GLUE_TIME_WAIT as u8,
        Substate::FinWait2 => ffi::rtw_glue_substate_RTW_GLUE_FIN_WAIT2 as u8,
    };
    g.expires_ms = s.expires_ms;
    g.conn = sys::glue_conn(&s.conn);
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
/// family by `rtw_glue_table_lookup`, or added to it by `rtw_rs_take_over`, within the RCU
/// read-side critical section the call runs in.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_hook(rs: *mut c_void, pkt: *const ffi::rtw_glue_pkt, entry: *mut c_void) -> c_uint {
    // SAFETY: the caller guarantees `pkt` is valid for the call.
    let pkt = unsafe { &*pkt };
    if pkt.head.is_null() {
        return ffi::NF_ACCEPT;
    }
    // SAFETY: `head` has `head_len` readable bytes (the glue's stack copy), alive for the call.
    let head = unsafe { core::slice::from_raw_parts(pkt.head, pkt.head_len as usize) };
    let layout = segment::Layout { skb_len: pkt.skb_len, ext_len: pkt.ext_len, gso_tcp: pkt.gso_tcp };
    let family = Family::from_af(pkt.family);
    let parsed = match family {
        Some(Family::V4) => segment::parse_ipv4_in(head, layout),
        Some(Family::V6) => segment::parse_ipv6_in(head, layout),
        None => return ffi::NF_ACCEPT,
    };
    // Not a well-formed TCP segment: the stack deals with it (docs/behaviour.md §3).
    let Ok(mut seg) = parsed else { return ffi::NF_ACCEPT };
    if pkt.link_bcast {
        seg.mcast_or_bcast = true;
    }
    let Some(ctx) = NonNull::new(pkt.ctx) else { return ffi::NF_ACCEPT };
    // SAFETY: `ctx` is the glue's handle for this segment, valid for the call.
    let packet = unsafe { Packet::from_raw(ctx) };
    // Nested in the hook's own read-side section: it only ties `entry`'s lifetime to it.
    let rcu = rcu::read_lock();
    // SAFETY: `rs` is live (caller's contract).
    let st = unsafe { state(rs) };
    let via = Via {
        ifindex: pkt.ifindex,
        arrival: Arrival { dif: pkt.dif, sdif: pkt.sdif, l3mdev_accept: pkt.l3mdev_accept },
        dsfield: pkt.dsfield,
    };
    let action = match (family, pkt.output) {
        // SAFETY: `entry` is an entry of the IPv4 table found (or added) under the RCU read
        // lock that `rcu` stands for (caller's contract).
        (Some(Family::V4), output) => unsafe { table::entry_from_glue::<V4>(entry, &rcu) }.map(|e| {
            if output {
                st.local_connect(&seg, pkt.ifindex, pkt.bound_port, e)
            } else {
                st.input(&seg, &via, &packet, e)
            }
        }),
        // SAFETY: as above, for the IPv6 table (the parse accepted only these two families).
        (_, output) => unsafe { table::entry_from_glue::<V6>(entry, &rcu) }.map(|e| {
            if output {
                st.local_connect(&seg, pkt.ifindex, pkt.bound_port, e)
            } else {
                st.input(&seg, &via, &packet, e)
            }
        }),
    };
    verdict(action.unwrap_or(Action::Accept))
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
    let (st, g) = unsafe { (state(rs), &*e) };
    errno(match Family::from_af(g.family) {
        Some(Family::V4) => st.add(key_of::<V4>(g), g.ifindex, &state_of(g), g.ts_offset, sys::conn_from_glue(&g.conn), replace),
        Some(Family::V6) => st.add(key_of::<V6>(g), g.ifindex, &state_of(g), g.ts_offset, sys::conn_from_glue(&g.conn), replace),
        None => Err(EINVAL),
    })
}

/// Add one entry taken over from Linux's own FIN_WAIT2 socket (takeover.c, the hook); returns
/// 0 and the entry in `*entry` (for the hook to hand the FIN at once, as a lookup's result), or
/// a negative errno.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid entry; `entry` is writable; the caller is in an RCU
/// read-side critical section (the hook's), which keeps `*entry` allocated until it ends.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_take_over(rs: *mut c_void, e: *const ffi::rtw_glue_entry, entry: *mut *mut c_void) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    let (st, g) = unsafe { (state(rs), &*e) };
    // Nested in the caller's read-side section: it only ties the entry's lifetime to it.
    let rcu = rcu::read_lock();
    let taken = match Family::from_af(g.family) {
        Some(Family::V4) => st
            .take_over(key_of::<V4>(g), g.ifindex, &state_of(g), g.ts_offset, sys::conn_from_glue(&g.conn), &rcu)
            .map(|e| core::ptr::from_ref(e).cast_mut().cast::<c_void>()),
        Some(Family::V6) => st
            .take_over(key_of::<V6>(g), g.ifindex, &state_of(g), g.ts_offset, sys::conn_from_glue(&g.conn), &rcu)
            .map(|e| core::ptr::from_ref(e).cast_mut().cast::<c_void>()),
        None => Err(EINVAL),
    };
    errno(taken.map(|p| {
        // SAFETY: `entry` is writable (caller's contract).
        unsafe { *entry = p };
    }))
}

/// Delete one entry by key.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid entry.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_del(rs: *mut c_void, e: *const ffi::rtw_glue_entry) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    let (st, g) = unsafe { (state(rs), &*e) };
    errno(match Family::from_af(g.family) {
        Some(Family::V4) => st.del(key_of::<V4>(g)),
        Some(Family::V6) => st.del(key_of::<V6>(g)),
        None => Err(EINVAL),
    })
}

/// Fill in one entry by key.
///
/// # Safety
///
/// `rs` is live; `e` points to a valid, writable entry.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_get(rs: *mut c_void, e: *mut ffi::rtw_glue_entry) -> c_int {
    // SAFETY: the caller guarantees both pointers.
    let (st, g) = unsafe { (state(rs), &mut *e) };
    errno(match Family::from_af(g.family) {
        Some(Family::V4) => {
            let key = key_of::<V4>(g);
            st.get(key).map(|s| fill(&key, &s, g))
        }
        Some(Family::V6) => {
            let key = key_of::<V6>(g);
            st.get(key).map(|s| fill(&key, &s, g))
        }
        None => Err(EINVAL),
    })
}

/// A dump's entry as it crosses netlink: 0, or -ENOENT if it is gone or expired.
///
/// # Safety
///
/// `rs` is live; `entry` was found in the family's table by the glue's walker within the RCU
/// read-side critical section the call runs in; `out` is valid and writable.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_export(rs: *mut c_void, family: u8, entry: *mut c_void, out: *mut ffi::rtw_glue_entry) -> c_int {
    let rcu = rcu::read_lock();
    // SAFETY: the caller guarantees `rs` and `out`.
    let (st, g) = unsafe { (state(rs), &mut *out) };
    errno(match Family::from_af(family) {
        // SAFETY: `entry` is an entry of the IPv4 table found under the RCU read lock that
        // `rcu` stands for (caller's contract).
        Some(Family::V4) => unsafe { table::entry_from_glue::<V4>(entry, &rcu) }
            .ok_or(ENOENT)
            .and_then(|e| st.snapshot(e).map(|s| fill(&e.key, &s, g))),
        // SAFETY: as above, for the IPv6 table.
        Some(Family::V6) => unsafe { table::entry_from_glue::<V6>(entry, &rcu) }
            .ok_or(ENOENT)
            .and_then(|e| st.snapshot(e).map(|s| fill(&e.key, &s, g))),
        None => Err(EINVAL),
    })
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

/// The table bound in force for a netns.
///
/// # Safety
///
/// `rs` is live.
#[no_mangle]
pub unsafe extern "C" fn rtw_rs_capacity(rs: *mut c_void) -> u32 {
    // SAFETY: `rs` is live (caller's contract).
    unsafe { state(rs) }.own_capacity()
}

/// A sysctl's value in a new netns; policy.rs holds the defaults.
#[no_mangle]
pub extern "C" fn rtw_rs_sysctl_default(which: c_int) -> c_int {
    match which as u32 {
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MAXTCPTW => policy::MAXTCPTW_DEFAULT,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT => policy::NOLOCALTIMEWAIT_DEFAULT,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS => policy::MSL_MS_DEFAULT as c_int,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS => policy::FIN_TIMEOUT_MS_DEFAULT as c_int,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_TAKEOVER => policy::TAKEOVER_DEFAULT,
        _ => 0,
    }
}

/// Whether a sysctl write is acceptable; policy.rs holds the bounds.
#[no_mangle]
pub extern "C" fn rtw_rs_sysctl_valid(which: c_int, value: c_int) -> bool {
    match which as u32 {
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MAXTCPTW => policy::maxtcptw_valid(value),
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT => value == 0 || value == 1,
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS => policy::msl_ms_valid(value),
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS => policy::fin_timeout_ms_valid(value),
        ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_TAKEOVER => policy::takeover_valid(value),
        _ => false,
    }
}
