// SPDX-License-Identifier: GPL-2.0

//! The kernel services the state layer (`netns.rs`) uses, as safe functions over the C glue:
//! clocks, a netns's sysctls and reaper, and the segment being processed (checksum, reply).
//! Every `unsafe` call into the glue for them is here, once.

use crate::ffi;
use crate::state::entry::Conn;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::prelude::*;

/// `jiffies_64`.
pub(crate) fn jiffies() -> u64 {
    // SAFETY: reads jiffies; no preconditions.
    unsafe { ffi::rtw_glue_jiffies() }
}

/// The clock of entries' timeouts: monotonic microseconds, low 32 bits (wraps every 71 min; an
/// entry lives at most 20 min). Finer than jiffies, so FIFO heads of different stripes compare
/// in the order their timeouts started, as the seed's single FIFO would.
pub(crate) fn clock_us() -> u32 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { ffi::rtw_glue_clock_us() }
}

/// The jiffies value `left_us` microseconds from now (rounded up).
pub(crate) fn jiffies_after_us(left_us: u32) -> u64 {
    // SAFETY: pure conversion; no preconditions.
    jiffies().wrapping_add(unsafe { ffi::rtw_glue_usecs_to_jiffies(left_us) }).wrapping_add(1)
}

/// The clock Linux's own TCP timestamps use (`tcp_clock_ms`).
pub(crate) fn tcp_clock_ms() -> u32 {
    // SAFETY: no preconditions.
    unsafe { ffi::rtw_glue_tcp_clock_ms() }
}

/// Let the scheduler run something else (process context, no lock held).
pub(crate) fn cond_resched() {
    // SAFETY: no preconditions beyond the caller's context, which every caller documents.
    unsafe { ffi::rtw_glue_cond_resched() }
}

/// An entry's connection attributes as the glue takes them.
pub(crate) fn glue_conn(c: &Conn) -> ffi::rtw_glue_conn {
    ffi::rtw_glue_conn {
        mark: c.mark,
        bound_ifindex: c.bound_ifindex,
        priority: c.priority,
        txhash: c.txhash,
        flowlabel: c.flowlabel,
        tos: c.tos,
    }
}

/// An entry's connection attributes as the glue gives them.
pub(crate) fn conn_from_glue(g: &ffi::rtw_glue_conn) -> Conn {
    Conn {
        mark: g.mark,
        bound_ifindex: g.bound_ifindex,
        priority: g.priority,
        txhash: g.txhash,
        flowlabel: g.flowlabel,
        tos: g.tos,
    }
}

/// A sysctl under `net.rust_timewait`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Sysctl {
    /// `maxtcptw`.
    MaxTcpTw = ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MAXTCPTW,
    /// `nolocaltimewait`.
    NoLocalTimeWait = ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_NOLOCALTIMEWAIT,
    /// `msl_ms`.
    MslMs = ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_MSL_MS,
    /// `fin_timeout_ms`.
    FinTimeoutMs = ffi::rtw_glue_sysctl_RTW_GLUE_SYSCTL_FIN_TIMEOUT_MS,
}

/// A network namespace's glue state (sysctls, reaper, hooks).
///
/// # Invariants
///
/// `gn` points to the netns's `struct rtw_glue_net`, which outlives this object: the glue
/// creates the Rust state in its pernet `init` and destroys it in `exit`, before the pernet
/// memory goes away.
pub(crate) struct NetGlue {
    gn: NonNull<ffi::rtw_glue_net>,
}

// SAFETY: every glue function used here is safe from any context and CPU (READ_ONCE sysctls,
// a spinlock around the reaper, a mutex around hook registration).
unsafe impl Send for NetGlue {}
// SAFETY: as above.
unsafe impl Sync for NetGlue {}

impl NetGlue {
    /// # Safety
    ///
    /// `gn` is a netns's glue state that outlives the returned object.
    pub(crate) unsafe fn from_raw(gn: NonNull<ffi::rtw_glue_net>) -> Self {
        NetGlue { gn }
    }

    fn ptr(&self) -> *mut ffi::rtw_glue_net {
        self.gn.as_ptr()
    }

    /// A sysctl's value.
    pub(crate) fn sysctl(&self, which: Sysctl) -> i32 {
        // SAFETY: `gn` is valid (type invariant).
        unsafe { ffi::rtw_glue_sysctl_get(self.ptr(), which as i32) }
    }

    /// `net.ipv4.ip_local_port_range`.
    pub(crate) fn port_range(&self) -> (u16, u16) {
        let (mut lo, mut hi) = (0i32, 0i32);
        // SAFETY: `gn` is valid (type invariant); the out-pointers are live locals.
        unsafe { ffi::rtw_glue_port_range(self.ptr(), &mut lo, &mut hi) };
        (lo.clamp(0, 65535) as u16, hi.clamp(0, 65535) as u16)
    }

    /// `net.ipv4.tcp_invalid_ratelimit`, in jiffies.
    pub(crate) fn invalid_ratelimit_jiffies(&self) -> u64 {
        // SAFETY: `gn` is valid (type invariant).
        u64::from(unsafe { ffi::rtw_glue_invalid_ratelimit_jiffies(self.ptr()) })
    }

    /// The most entries this netns may hold whatever its `maxtcptw` (the initial netns's
    /// capacity for a netns of another user namespace).
    pub(crate) fn capacity_ceiling(&self) -> u32 {
        // SAFETY: `gn` is valid (type invariant).
        unsafe { ffi::rtw_glue_capacity_ceiling(self.ptr()) }
    }

    /// `net.ipv4.tcp_tw_reuse` and `tcp_tw_reuse_delay`.
    pub(crate) fn tw_reuse(&self) -> crate::logic::policy::TwReuse {
        let (mut mode, mut delay_ms) = (0u8, 0u32);
        // SAFETY: `gn` is valid (type invariant); the out-pointers are live locals.
        unsafe { ffi::rtw_glue_tw_reuse(self.ptr(), &mut mode, &mut delay_ms) };
        crate::logic::policy::TwReuse { mode, delay_ms }
    }

    /// Whether `addr` (4 or 16 bytes used, by family) is one of this netns's own addresses.
    pub(crate) fn addr_is_local(&self, family: crate::logic::family::Family, addr: &[u8; 16]) -> bool {
        // SAFETY: `gn` is valid (type invariant); `addr` is 16 readable bytes.
        unsafe { ffi::rtw_glue_addr_is_local(self.ptr(), family.af(), addr.as_ptr()) }
    }

    /// Run the reaper at `expires` (jiffies) unless it is due earlier; ignored once the netns
    /// is exiting.
    pub(crate) fn arm_reaper(&self, expires: u64) {
        // SAFETY: `gn` is valid (type invariant).
        unsafe { ffi::rtw_glue_reaper_arm(self.ptr(), expires) };
    }

    /// Register the hooks in this netns if they are not yet (process context).
    pub(crate) fn enable_hooks(&self) -> Result {
        // SAFETY: `gn` is valid (type invariant); may sleep, and callers are netlink handlers.
        kernel::error::to_result(unsafe { ffi::rtw_glue_hooks_enable(self.ptr()) })
    }
}

/// The segment a hook is processing.
///
/// # Invariants
///
/// `ctx` is the glue's handle for the segment (its skb and hook state), valid for `'a`.
pub(crate) struct Packet<'a> {
    ctx: NonNull<c_void>,
    _life: core::marker::PhantomData<&'a ()>,
}

impl Packet<'_> {
    /// # Safety
    ///
    /// `ctx` is the glue's handle for the segment being processed, valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ctx: NonNull<c_void>) -> Packet<'a> {
        Packet { ctx, _life: core::marker::PhantomData }
    }

    /// Whether the TCP checksum is good (or was verified by the device, or is local).
    pub(crate) fn csum_ok(&self) -> bool {
        // SAFETY: `ctx` is live (type invariant).
        unsafe { ffi::rtw_glue_pkt_csum_ok(self.ctx.as_ptr()) }
    }

    /// The route a reply to this segment takes, as Linux routes its own TIME_WAIT replies for
    /// the connection `conn`, the reply's TOS byte being `dsfield`.
    pub(crate) fn route_reply(&self, conn: &Conn, dsfield: u8) -> Result<ReplyRoute<'_>> {
        let conn = glue_conn(conn);
        let mut p = ffi::rtw_glue_reply_params { conn: &conn, tos: dsfield, hop_limit: 0, flowlabel: 0 };
        let mut err = 0i32;
        // SAFETY: `ctx` is live (type invariant); `p`, the `conn` it points to and `err` are
        // live locals.
        let dst = unsafe { ffi::rtw_glue_reply_route(self.ctx.as_ptr(), &mut p, &mut err) };
        match NonNull::new(dst) {
            Some(dst) => Ok(ReplyRoute { packet: self, dst, conn, hop_limit: p.hop_limit, flowlabel: p.flowlabel }),
            None => Err(Error::from_errno(if err < 0 { err } else { -(kernel::bindings::EHOSTUNREACH as i32) })),
        }
    }
}

/// A route for a reply to the segment being processed, held until the reply is sent on it.
///
/// # Invariants
///
/// `dst` is a route the glue looked up (a reference held), released exactly once: by `send`
/// or by `Drop`.
pub(crate) struct ReplyRoute<'a> {
    packet: &'a Packet<'a>,
    dst: NonNull<c_void>,
    conn: ffi::rtw_glue_conn,
    hop_limit: u8,
    flowlabel: u32,
}

impl ReplyRoute<'_> {
    /// The TTL or hop limit the route gives (the netns's default unless the route says).
    pub(crate) fn hop_limit(&self) -> u8 {
        self.hop_limit
    }

    /// The IPv6 flow label to write (0 for IPv4).
    pub(crate) fn flowlabel(&self) -> u32 {
        self.flowlabel
    }

    /// Send `ip_packet` (a whole IP packet built by `logic/reply.rs`) on this route.
    pub(crate) fn send(self, ip_packet: &[u8]) -> Result {
        let len = u32::try_from(ip_packet.len()).map_err(|_| EINVAL)?;
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `ctx` is live (`Packet`'s invariant) and `dst` is held (type invariant); the
        // glue consumes the reference, and `ManuallyDrop` keeps `Drop` from releasing it again.
        kernel::error::to_result(unsafe {
            ffi::rtw_glue_reply_send(this.packet.ctx.as_ptr(), this.dst.as_ptr(), &this.conn, ip_packet.as_ptr(), len)
        })
    }
}

impl Drop for ReplyRoute<'_> {
    fn drop(&mut self) {
        // SAFETY: `dst` is held and not yet released (type invariant: `send` does not drop).
        unsafe { ffi::rtw_glue_route_release(self.dst.as_ptr()) };
    }
}
