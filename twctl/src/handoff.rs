// SPDX-License-Identifier: GPL-2.0

//! Handing a live socket over to the module (docs/behaviour.md §6).
//!
//! After `shutdown(SHUT_WR)`, once our FIN is acknowledged (FIN_WAIT2): ask the module to
//! **adopt** the connection by its tuple (it checks the socket under its lock and reads its
//! state itself: sequence numbers, window, scale, timestamps, TOS, mark, bound device, flow
//! label, priority, transmit hash, and adds a FIN_WAIT_2 entry), then enter `TCP_REPAIR`, check
//! the socket is still in FIN_WAIT2, and close it in repair mode, so the kernel sends nothing
//! and keeps no TIME_WAIT socket of its own. Needs CAP_NET_ADMIN.
//!
//! The adopt results are mapped by [`adopt_refusal`] (pure, unit-tested). A dry run
//! ([`dry_run`]) needs no module: it still reads the state in repair mode itself
//! ([`RepairState`], [`build_entry`]); the window and clock arithmetic are pure and
//! unit-tested; the socket options are thin `libc` wrappers.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::client::{AdoptResult, Client};
use crate::entry::{Entry, Key, Substate, Tuple};
use crate::error::{exit, Error, PERMISSION_HINT};
use crate::proto::{Extack, Refusal};

/// `TCP_REPAIR` (include/uapi/linux/tcp.h).
pub const TCP_REPAIR: libc::c_int = 19;
/// `TCP_REPAIR_QUEUE`.
pub const TCP_REPAIR_QUEUE: libc::c_int = 20;
/// `TCP_QUEUE_SEQ`.
pub const TCP_QUEUE_SEQ: libc::c_int = 21;
/// `TCP_TIMESTAMP`.
pub const TCP_TIMESTAMP: libc::c_int = 24;
/// `TCP_REPAIR_WINDOW`.
pub const TCP_REPAIR_WINDOW: libc::c_int = 29;
/// `TCP_RECV_QUEUE`.
pub const TCP_RECV_QUEUE: libc::c_int = 1;
/// `TCP_SEND_QUEUE`.
pub const TCP_SEND_QUEUE: libc::c_int = 2;
/// `TCP_REPAIR_ON`.
pub const TCP_REPAIR_ON: libc::c_int = 1;
/// `TCP_REPAIR_OFF_NO_WP`: leave repair mode without sending a window probe.
pub const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;
/// `SO_BINDTOIFINDEX` (SOL_SOCKET): the index of the device the socket is bound to, 0 when
/// unbound (include/uapi/asm-generic/socket.h; sparc and parisc number it apart).
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
pub const SO_BINDTOIFINDEX: libc::c_int = 0x0041;
/// `SO_BINDTOIFINDEX` (SOL_SOCKET): the index of the device the socket is bound to, 0 when
/// unbound (include/uapi/asm-generic/socket.h; sparc and parisc number it apart).
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
pub const SO_BINDTOIFINDEX: libc::c_int = 62;
/// `TCPI_OPT_TIMESTAMPS`.
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
/// `TCPI_OPT_USEC_TS`: the connection's TSval counts microseconds.
pub const TCPI_OPT_USEC_TS: u8 = 64;

/// `struct tcp_repair_window`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepairWindow {
    pub snd_wl1: u32,
    pub snd_wnd: u32,
    pub max_window: u32,
    pub rcv_wnd: u32,
    pub rcv_wup: u32,
}

/// The first fields of `struct tcp_info` (the kernel copies as much as we ask for).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    /// `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`.
    pub wscale: u8,
    pub flags: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
}

impl TcpInfo {
    /// `tcpi_rcv_wscale`: the second 4-bit field of the byte (C bitfields are allocated from
    /// the low bits on little-endian targets, from the high bits on big-endian ones).
    pub fn rcv_wscale(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.wscale >> 4
        } else {
            self.wscale & 0x0f
        }
    }

    /// The connection uses timestamps.
    pub fn has_ts(&self) -> bool {
        self.options & TCPI_OPT_TIMESTAMPS != 0
    }

    /// The state, as [`TcpState`].
    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_u8(self.state)
    }
}

/// TCP states as `tcpi_state` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    Other(u8),
}

impl TcpState {
    /// From `tcpi_state`.
    pub fn from_u8(v: u8) -> Self {
        use TcpState::*;
        match v {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            n => Other(n),
        }
    }

    /// The name `ss` uses.
    pub fn name(&self) -> String {
        use TcpState::*;
        match self {
            Established => "ESTAB".into(),
            SynSent => "SYN-SENT".into(),
            SynRecv => "SYN-RECV".into(),
            FinWait1 => "FIN-WAIT-1".into(),
            FinWait2 => "FIN-WAIT-2".into(),
            TimeWait => "TIME-WAIT".into(),
            Close => "CLOSE".into(),
            CloseWait => "CLOSE-WAIT".into(),
            LastAck => "LAST-ACK".into(),
            Listen => "LISTEN".into(),
            Closing => "CLOSING".into(),
            Other(n) => format!("state {n}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parts

/// The window to advertise, as on the wire: `(rcv_wup + rcv_wnd - rcv_nxt) >> rcv_wscale`,
/// wrapping, 0 when negative (Linux's `tcp_receive_window()`), clamped to 65535.
pub fn advertised_window(w: &TcpRepairWindow, rcv_nxt: u32, rcv_wscale: u8) -> u16 {
    let win = w.rcv_wup.wrapping_add(w.rcv_wnd).wrapping_sub(rcv_nxt) as i32;
    let win = if win < 0 { 0u32 } else { win as u32 };
    (win >> rcv_wscale.min(31)).min(u16::MAX as u32) as u16
}

/// The module's TCP clock as userspace sees it: Linux's `tcp_clock_ms()` is
/// `ktime_get_ns() / NSEC_PER_MSEC` truncated to u32, i.e. `CLOCK_MONOTONIC` in ms.
pub fn clock_ms(sec: i64, nsec: i64) -> u32 {
    (sec as u64)
        .wrapping_mul(1000)
        .wrapping_add((nsec / 1_000_000) as u64) as u32
}

/// `ts_offset` = our TSval minus the module's clock (wrapping). `clock_before` is the clock
/// read just before `TCP_TIMESTAMP`: if the kernel's clock ticked in between, the offset errs
/// by that much towards the future, which keeps our TSvals non-decreasing for the peer's PAWS.
pub fn ts_offset(tsval: u32, clock_before: u32) -> u32 {
    tsval.wrapping_sub(clock_before)
}

/// The monotonic offset of a time namespace, from `/proc/self/timens_offsets`
/// (`monotonic SECS NSECS`), in ms; 0 outside one. The module's clock is the host's.
pub fn timens_monotonic_offset_ms(text: &str) -> i64 {
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if matches!(w.next(), Some("monotonic") | Some("1")) {
            let s: i64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let ns: i64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            return s * 1000 + ns / 1_000_000;
        }
    }
    0
}

/// An IPv4-mapped IPv6 end (a dual-stack socket talking IPv4) as the IPv4 end it is: the
/// module sees IPv4 packets for it.
pub fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => a,
        },
        v4 => v4,
    }
}

/// What the repair-mode reads of a dry run gave (a real handoff lets the module read the
/// socket: see [`Client::adopt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepairState {
    /// `TCP_QUEUE_SEQ` on the send queue (`write_seq` = `snd_nxt` after an acknowledged FIN).
    pub snd_nxt: u32,
    /// `TCP_QUEUE_SEQ` on the receive queue.
    pub rcv_nxt: u32,
    /// `TCP_REPAIR_WINDOW`.
    pub window: TcpRepairWindow,
    /// `tcpi_rcv_wscale`.
    pub rcv_wscale: u8,
    /// `TCPI_OPT_TIMESTAMPS`.
    pub has_ts: bool,
    /// `TCP_TIMESTAMP` and the module clock read just before it (when `has_ts`).
    pub tsval_and_clock: Option<(u32, u32)>,
}

/// The FIN_WAIT_2 entry a dry run shows for a socket: `ts_recent` is unknown (the entry learns
/// it from the peer's FIN); the connection's TOS, mark, flow label, priority and transmit hash
/// are not read (the module's adopt reads them); the dry run sets the bound device it read
/// (`SO_BINDTOIFINDEX`) itself.
pub fn build_entry(tuple: Tuple, s: &RepairState) -> Entry {
    let mut e = Entry::new(tuple, s.snd_nxt, s.rcv_nxt);
    e.last_win = advertised_window(&s.window, s.rcv_nxt, s.rcv_wscale);
    e.rcv_wscale = s.rcv_wscale;
    e.has_ts = s.has_ts;
    e.ts_offset = match (s.has_ts, s.tsval_and_clock) {
        (true, Some((tsval, clock))) => ts_offset(tsval, clock),
        _ => 0,
    };
    e.substate = Substate::FinWait2;
    e
}

/// Why a socket cannot be handed off.
#[derive(Debug)]
pub enum HandoffErrorKind {
    /// Not a TCP socket over IPv4/IPv6.
    NotTcp(String),
    /// A listening socket.
    Listening,
    /// Still ESTABLISHED: the application has not called `shutdown(SHUT_WR)`.
    NotShutDown,
    /// FIN_WAIT1: data or our FIN not yet acknowledged.
    FinNotAcked {
        /// Bytes in the send queue not acknowledged (SIOCOUTQ), when known.
        unacked: Option<u32>,
    },
    /// Any other state (explained by [`HandoffErrorKind`]'s Display).
    WrongState(TcpState),
    /// The connection counts its timestamps in microseconds; the module's clock is ms.
    UsecTimestamps,
    /// Data received and not read (SIOCINQ): handing off would discard it silently.
    UnreadData(u32),
    /// `TCP_REPAIR` was refused: no CAP_NET_ADMIN. (The module's refusal of an adopt for the
    /// same reason is [`HandoffErrorKind::Module`] with [`Error::PermissionDenied`]; both exit 4.)
    Permission,
    /// Our FIN was not acknowledged in time.
    Timeout(Duration),
    /// The connection was reset while waiting.
    Reset(io::Error),
    /// A system call failed.
    Sys(&'static str, io::Error),
    /// The module: not loaded, no permission, or a refusal.
    Module(Error),
    /// The module refused the entry (its `result`, negative errno).
    EntryRefused(i32),
    /// The peer's FIN arrived first and the entry could not be deleted again.
    Cleanup(Tuple, Error),
    /// Adopt: the module found no connection with this tuple in this network namespace
    /// (-ENOENT).
    NotFound,
    /// Adopt: the module found the connection not shut down for writing, or not synchronized
    /// (-ENOTCONN).
    NotConnected,
    /// Adopt: the kernel cannot take this connection over (-EOPNOTSUPP): TCP-MD5 or TCP-AO
    /// signatures, microsecond timestamps, or a socket already in repair mode.
    Unsupported,
    /// The module adopted the connection, `why` then stopped the handoff, and deleting the
    /// entry again failed: the entry may still guard the tuple.
    Undo {
        /// What stopped the handoff.
        why: Box<HandoffErrorKind>,
        /// The tuple whose entry could not be deleted.
        tuple: Tuple,
        /// The error of the delete.
        err: Error,
    },
}

/// A failed handoff: what went wrong and, when nothing was done to it, the socket back.
#[derive(Debug)]
pub struct HandoffError {
    /// What went wrong.
    pub kind: HandoffErrorKind,
    /// The untouched socket, when the handoff was refused before changing anything; `None`
    /// when the socket was closed normally (after leaving repair mode).
    pub socket: Option<OwnedFd>,
}

impl HandoffError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match &self.kind {
            HandoffErrorKind::Module(e) => e.exit_code(),
            HandoffErrorKind::Permission => exit::PERMISSION,
            _ => exit::FAILED,
        }
    }
}

impl fmt::Display for HandoffErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandoffErrorKind::*;
        match self {
            NotTcp(what) => write!(f, "not a TCP socket ({what})"),
            Listening => write!(f, "a listening socket has no connection to hand off"),
            NotShutDown => write!(
                f,
                "the connection is still ESTABLISHED: call shutdown(SHUT_WR) first and wait for \
                 FIN-WAIT-2, or use close_with_handoff / 'twctl handoff --shutdown'"
            ),
            FinNotAcked { unacked: Some(n) } if *n > 0 => write!(
                f,
                "FIN-WAIT-1: {n} bytes of data and our FIN are not acknowledged yet; retry once \
                 the socket is in FIN-WAIT-2"
            ),
            FinNotAcked { .. } => write!(
                f,
                "FIN-WAIT-1: our FIN is not acknowledged yet; retry once the socket is in FIN-WAIT-2"
            ),
            WrongState(s) => match s {
                TcpState::CloseWait | TcpState::LastAck => write!(
                    f,
                    "{}: the peer closed first, so the peer, not this side, keeps TIME_WAIT",
                    s.name()
                ),
                TcpState::Closing => write!(
                    f,
                    "CLOSING: both FINs crossed; Linux's own TIME_WAIT will hold the tuple"
                ),
                TcpState::Close | TcpState::TimeWait => write!(
                    f,
                    "{}: the connection is already closed (the peer's FIN arrived first, it was \
                     reset, or it never connected)",
                    s.name()
                ),
                TcpState::SynSent | TcpState::SynRecv => {
                    write!(f, "{}: not connected yet", s.name())
                }
                s => write!(f, "{}: cannot be handed off", s.name()),
            },
            UnreadData(n) => {
                if *n > 0 {
                    write!(f, "{n} bytes received and not read")?;
                } else {
                    write!(f, "data received and not read")?;
                }
                write!(
                    f,
                    ": a handoff would discard them while the module acknowledged the peer's \
                     FIN as if they had been delivered; read them first, or close() the socket \
                     (Linux then resets the connection, RFC 2525 §2.17)"
                )
            }
            UsecTimestamps => write!(
                f,
                "the connection uses microsecond TCP timestamps (tcp_usec_ts); the module's \
                 clock counts milliseconds"
            ),
            Permission => write!(f, "TCP_REPAIR refused: {PERMISSION_HINT}"),
            Timeout(d) => write!(
                f,
                "our FIN was not acknowledged within {} ms; the socket was closed normally",
                d.as_millis()
            ),
            Reset(e) => write!(f, "the connection failed while closing ({e})"),
            Sys(op, e) => write!(f, "{op}: {e}"),
            Module(e) => write!(f, "{e}"),
            EntryRefused(r) => write!(
                f,
                "the module refused the entry: {}",
                crate::client::AddOutcome::Refused(*r).describe()
            ),
            Cleanup(t, e) => write!(
                f,
                "the peer's FIN arrived first, and deleting the entry for {t} again failed: {e}"
            ),
            NotFound => write!(
                f,
                "the module found no connection with this tuple (ENOENT): the socket belongs to \
                 another network namespace than twctl's, or its connection is gone"
            ),
            NotConnected => write!(
                f,
                "the module found the connection not shut down for writing, or not synchronized \
                 (ENOTCONN)"
            ),
            Unsupported => write!(
                f,
                "the kernel cannot hand this connection off (EOPNOTSUPP): it uses TCP-MD5 or \
                 TCP-AO signatures, or microsecond timestamps, or the socket is already in \
                 TCP_REPAIR mode; Linux keeps its own TIME_WAIT for it"
            ),
            Undo { why, tuple, err } => write!(
                f,
                "{why}; and deleting the module's entry for {tuple} again failed: {err}"
            ),
        }
    }
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if self.socket.is_none() {
            if !matches!(self.kind, HandoffErrorKind::Timeout(_)) {
                write!(f, " (the socket was closed normally)")?;
            }
        } else {
            write!(f, " (nothing was done to the socket)")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandoffError {}

/// The result of a handoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The module guards the tuple with this FIN_WAIT_2 entry; the socket is gone silently.
    HandedOff(Entry),
    /// The peer's FIN reached the socket first: it was closed normally, Linux's own TIME_WAIT
    /// holds the tuple, and no entry was left behind.
    PeerFinFirst(Tuple),
    /// [`dry_run`]: the entry a handoff would add; nothing was added and the socket was closed
    /// normally after leaving repair mode.
    DryRun(Entry),
}

/// What the state check before a handoff decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// FIN_WAIT2: hand off now.
    Ready,
    /// ESTABLISHED or FIN_WAIT1 and the caller will shut down / wait.
    Wait,
}

/// The pure state check. `will_wait`: the caller (close_with_handoff) shuts down and waits.
pub fn check_state(info: &TcpInfo, will_wait: bool) -> Result<Readiness, HandoffErrorKind> {
    if info.options & TCPI_OPT_USEC_TS != 0 {
        return Err(HandoffErrorKind::UsecTimestamps);
    }
    match info.tcp_state() {
        TcpState::FinWait2 => Ok(Readiness::Ready),
        TcpState::Listen => Err(HandoffErrorKind::Listening),
        TcpState::Established | TcpState::FinWait1 if will_wait => Ok(Readiness::Wait),
        TcpState::Established => Err(HandoffErrorKind::NotShutDown),
        TcpState::FinWait1 => Err(HandoffErrorKind::FinNotAcked { unacked: None }),
        s => Err(HandoffErrorKind::WrongState(s)),
    }
}

// ---------------------------------------------------------------------------------------------
// System calls

fn getsockopt_raw<T: Copy + Default>(fd: RawFd, level: i32, name: i32) -> io::Result<(T, usize)> {
    let mut v = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: v is a plain-old-data value of len bytes, owned here.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut T as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((v, len as usize))
}

fn getsockopt<T: Copy + Default>(fd: RawFd, level: i32, name: i32) -> io::Result<T> {
    getsockopt_raw(fd, level, name).map(|(v, _)| v)
}

pub(crate) fn setsockopt_int(fd: RawFd, level: i32, name: i32, val: libc::c_int) -> io::Result<()> {
    // SAFETY: a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The device the socket is bound to (`SO_BINDTOIFINDEX`: SO_BINDTODEVICE, or a VRF), 0 when
/// unbound: the `bound-ifindex` of the adopt and of the undo's `del`, as the module finds such
/// a socket only by its device and keys its entry by the device's VRF.
pub fn bound_ifindex(fd: RawFd) -> io::Result<u32> {
    getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, SO_BINDTOIFINDEX).map(|i| i.max(0) as u32)
}

/// `TCP_INFO`.
pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfo> {
    getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO)
}

/// Bytes received and not read (SIOCINQ).
pub(crate) fn inq(fd: RawFd) -> Option<u32> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCINQ (FIONREAD) writes one int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r == 0).then_some(n as u32)
}

fn outq(fd: RawFd) -> Option<u32> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (r == 0).then_some(n as u32)
}

fn monotonic_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    clock_ms(ts.tv_sec, ts.tv_nsec)
}

/// The module's clock now, in ms: CLOCK_MONOTONIC, corrected for a time namespace's offset.
fn module_clock_ms(timens_ms: i64) -> u32 {
    (monotonic_ms() as i64).wrapping_sub(timens_ms) as u32
}

fn check_tcp(fd: RawFd) -> Result<(), HandoffErrorKind> {
    let sys = |op| move |e| HandoffErrorKind::Sys(op, e);
    let domain: libc::c_int =
        getsockopt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTSOCK) => HandoffErrorKind::NotTcp("not a socket".into()),
            _ => HandoffErrorKind::Sys("getsockopt(SO_DOMAIN)", e),
        })?;
    let ty: libc::c_int =
        getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE).map_err(sys("getsockopt(SO_TYPE)"))?;
    let proto: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)
        .map_err(sys("getsockopt(SO_PROTOCOL)"))?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(HandoffErrorKind::NotTcp(format!("address family {domain}")));
    }
    if ty != libc::SOCK_STREAM || proto != libc::IPPROTO_TCP {
        return Err(HandoffErrorKind::NotTcp(format!(
            "socket type {ty}, protocol {proto}"
        )));
    }
    Ok(())
}

/// Checks a socket and returns it as a stream with its key (its tuple and bound device), or the
/// error with the socket.
pub(crate) fn precheck(
    fd: OwnedFd,
    will_wait: bool,
) -> Result<(TcpStream, Key, Readiness), HandoffError> {
    let raw = fd.as_raw_fd();
    let refuse = |kind, fd| {
        Err(HandoffError {
            kind,
            socket: Some(fd),
        })
    };
    if let Err(k) = check_tcp(raw) {
        return refuse(k, fd);
    }
    let info = match tcp_info(raw) {
        Ok(i) => i,
        Err(e) => return refuse(HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e), fd),
    };
    let ready = match check_state(&info, will_wait) {
        Ok(r) => r,
        Err(HandoffErrorKind::FinNotAcked { .. }) => {
            return refuse(HandoffErrorKind::FinNotAcked { unacked: outq(raw) }, fd)
        }
        Err(k) => return refuse(k, fd),
    };
    let bound = match bound_ifindex(raw) {
        Ok(i) => i,
        Err(e) => return refuse(HandoffErrorKind::Sys("getsockopt(SO_BINDTOIFINDEX)", e), fd),
    };
    let stream = TcpStream::from(fd);
    let ends = stream
        .local_addr()
        .and_then(|l| Ok((l, stream.peer_addr()?)));
    let (l, r) = match ends {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                HandoffErrorKind::Sys("getsockname/getpeername", e),
                stream.into(),
            )
        }
    };
    match Tuple::new(unmap(l), unmap(r)) {
        Ok(t) => Ok((stream, Key::new(t, bound), ready)),
        Err(e) => refuse(HandoffErrorKind::NotTcp(e.to_string()), stream.into()),
    }
}

/// The monotonic offset of this process's time namespace in ms (0 outside one).
pub(crate) fn timens_offset_ms() -> i64 {
    std::fs::read_to_string("/proc/self/timens_offsets")
        .map(|t| timens_monotonic_offset_ms(&t))
        .unwrap_or(0)
}

/// Reads the repair-mode state (the socket is in repair mode).
fn read_repair_state(fd: RawFd) -> Result<RepairState, HandoffErrorKind> {
    let info = tcp_info(fd).map_err(|e| HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e))?;
    read_repair_state_with(fd, &info, timens_offset_ms)
}

/// [`read_repair_state`] with the socket's `TCP_INFO` already read (its window scale and
/// timestamp option are fixed at the handshake) and the time namespace's offset asked only
/// when the connection has timestamps.
pub(crate) fn read_repair_state_with(
    fd: RawFd,
    info: &TcpInfo,
    timens: impl FnOnce() -> i64,
) -> Result<RepairState, HandoffErrorKind> {
    let sys = |op| move |e| HandoffErrorKind::Sys(op, e);
    setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        .map_err(sys("TCP_REPAIR_QUEUE"))?;
    let snd_nxt: u32 =
        getsockopt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map_err(sys("TCP_QUEUE_SEQ (send)"))?;
    setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        .map_err(sys("TCP_REPAIR_QUEUE"))?;
    let rcv_nxt: u32 =
        getsockopt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map_err(sys("TCP_QUEUE_SEQ (receive)"))?;
    let (window, len) = getsockopt_raw::<TcpRepairWindow>(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW)
        .map_err(sys("TCP_REPAIR_WINDOW"))?;
    if len != size_of::<TcpRepairWindow>() {
        return Err(HandoffErrorKind::Sys(
            "TCP_REPAIR_WINDOW",
            io::Error::new(io::ErrorKind::InvalidData, format!("{len} bytes")),
        ));
    }
    let has_ts = info.has_ts();
    let tsval_and_clock = if has_ts {
        let timens = timens();
        // Read the clock around TCP_TIMESTAMP; retry a few times for a read inside one ms.
        let mut best = None;
        for _ in 0..3 {
            let before = module_clock_ms(timens);
            let tsval: u32 =
                getsockopt(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP).map_err(sys("TCP_TIMESTAMP"))?;
            let after = module_clock_ms(timens);
            best = Some((tsval, before));
            if before == after {
                break;
            }
        }
        best
    } else {
        None
    };
    Ok(RepairState {
        snd_nxt,
        rcv_nxt,
        window,
        rcv_wscale: info.rcv_wscale(),
        has_ts,
        tsval_and_clock,
    })
}

/// What a per-tuple adopt result other than 0 means for the socket.
#[derive(Debug)]
pub enum AdoptRefusal {
    /// -EALREADY: the peer's FIN came first (CLOSE_WAIT, LAST_ACK, CLOSING or TIME_WAIT: Linux
    /// keeps the tuple): the socket is closed normally and the handoff reports
    /// [`Outcome::PeerFinFirst`] (exit 5).
    PeerFinFirst,
    /// -EINPROGRESS: our FIN is not acknowledged yet (FIN_WAIT1): nothing was done, the socket
    /// is as it was ([`HandoffErrorKind::FinNotAcked`]; the queue keeps waiting).
    FinNotAcked,
    /// -ENOTEMPTY: data received and not read: the socket is given back
    /// ([`HandoffErrorKind::UnreadData`]).
    UnreadData,
    /// Any other refusal: the handoff fails with this error, the socket is closed normally
    /// (Linux keeps its own TIME_WAIT).
    Fail(HandoffErrorKind),
}

/// Maps the `result` of one tuple of an adopt (a negative errno) to what it means.
pub fn adopt_refusal(result: i32) -> AdoptRefusal {
    use HandoffErrorKind::*;
    match result.checked_neg().unwrap_or(0) {
        libc::EALREADY => AdoptRefusal::PeerFinFirst,
        libc::EINPROGRESS => AdoptRefusal::FinNotAcked,
        libc::ENOTEMPTY => AdoptRefusal::UnreadData,
        libc::ENOENT => AdoptRefusal::Fail(NotFound),
        libc::ENOTCONN => AdoptRefusal::Fail(NotConnected),
        libc::EOPNOTSUPP => AdoptRefusal::Fail(Unsupported),
        // An adopt by fd: the kernel found no TCP socket over IPv4/IPv6 behind it.
        libc::ENOTSOCK => AdoptRefusal::Fail(NotTcp(
            "the kernel found no TCP socket over IPv4 or IPv6 behind the fd (ENOTSOCK)".into(),
        )),
        libc::EPERM => AdoptRefusal::Fail(Module(Error::PermissionDenied {
            op: "adopt",
            refusal: Box::new(Refusal::new(libc::EPERM, &Extack::default(), &[])),
        })),
        // -EEXIST already guarded, -EADDRNOTAVAIL nolocaltimewait, anything else.
        _ => AdoptRefusal::Fail(EntryRefused(result)),
    }
}

/// Whether a message-level adopt failure may have left entries behind: a refusal by the kernel
/// means none was added (it checks a message before acting on it); an answer that could not be
/// read (a socket error, a reply not understood) leaves it open.
pub(crate) fn may_have_adopted(e: &Error) -> bool {
    matches!(e, Error::Socket { .. } | Error::Protocol(_))
}

/// Leaves repair mode without a window probe (errors ignored: the socket is closed next).
pub(crate) fn leave_repair(stream: &TcpStream) {
    let _ = setsockopt_int(
        stream.as_raw_fd(),
        libc::IPPROTO_TCP,
        TCP_REPAIR,
        TCP_REPAIR_OFF_NO_WP,
    );
}

/// A socket in TCP_REPAIR mode. Dropping it (an early return, or a panic in code called
/// meanwhile, an [`EntrySink`](crate::handoff_queue::EntrySink) for instance) leaves repair mode
/// first, so the socket is closed normally: never silently, without a guard for its tuple.
pub(crate) struct InRepair(Option<TcpStream>);

impl InRepair {
    /// Enters repair mode; on a refusal the socket comes back as it was, with
    /// [`HandoffErrorKind::Permission`] for EPERM.
    pub(crate) fn enter(stream: TcpStream) -> Result<Self, (HandoffErrorKind, TcpStream)> {
        match setsockopt_int(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_REPAIR,
            TCP_REPAIR_ON,
        ) {
            Ok(()) => Ok(InRepair(Some(stream))),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                Err((HandoffErrorKind::Permission, stream))
            }
            Err(e) => Err((HandoffErrorKind::Sys("TCP_REPAIR", e), stream)),
        }
    }

    /// The socket's fd.
    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// Closes the socket in repair mode: no FIN, no RST, no TIME_WAIT socket.
    pub(crate) fn close_silently(mut self) {
        drop(self.0.take());
    }

    /// Leaves repair mode and gives the socket back.
    pub(crate) fn leave(mut self) -> TcpStream {
        let s = self.0.take().expect("a socket in repair mode");
        leave_repair(&s);
        s
    }
}

impl Drop for InRepair {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            leave_repair(&s);
        }
    }
}

/// What became of a socket after the module adopted its connection.
pub(crate) enum AfterAdopt {
    /// Reported; the socket is closed: in repair mode when handed off, normally otherwise.
    Closed(Result<Outcome, HandoffErrorKind>),
    /// Data arrived after the checks: the entry was deleted again and the socket comes back out
    /// of repair mode, the data unread.
    GiveBack(HandoffErrorKind, TcpStream),
    /// Repair mode was refused: the entry was deleted again and the socket is as it was.
    RepairRefused(HandoffErrorKind, TcpStream),
}

/// The end of a handoff once the module adopted the connection (`entry`, from its reply):
/// enter repair mode, check again that nothing arrived (unread data: give the socket back) and
/// that the socket is still in FIN_WAIT2 (the race rule: if not, the peer's FIN got in first),
/// and close it in repair mode. Every way out but the handoff deletes the entry again with
/// `del` of the entry's key, its tuple and `bound_ifindex` (its VRF) (ENOENT counts as done:
/// the module takes an entry back itself when it sees the change).
/// `del` may be the caller's code: the socket is held by an [`InRepair`] meanwhile.
pub(crate) fn close_adopted(
    stream: TcpStream,
    entry: Entry,
    del: &mut dyn FnMut(&Key) -> Result<(), Error>,
) -> AfterAdopt {
    use HandoffErrorKind::*;
    let tuple = entry.tuple;
    let key = entry.key();
    let mut undo = |k: &Key| match del(k) {
        Err(e) if e.errno() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    };
    let repaired = match InRepair::enter(stream) {
        Ok(r) => r,
        Err((kind, stream)) => {
            return match undo(&key) {
                Ok(()) => AfterAdopt::RepairRefused(kind, stream),
                Err(err) => {
                    drop(stream);
                    AfterAdopt::Closed(Err(Undo {
                        why: Box::new(kind),
                        tuple,
                        err,
                    }))
                }
            };
        }
    };
    let fd = repaired.fd();
    // Data that arrived after the module's check: give the socket back, unread data and all,
    // rather than close it under the module.
    if let Some(n) = inq(fd).filter(|n| *n > 0) {
        if let Err(err) = undo(&key) {
            drop(repaired);
            return AfterAdopt::Closed(Err(Undo {
                why: Box::new(UnreadData(n)),
                tuple,
                err,
            }));
        }
        return AfterAdopt::GiveBack(UnreadData(n), repaired.leave());
    }
    // The module now sees the peer's segments first. Did the peer's FIN get in before?
    match tcp_info(fd) {
        Ok(i) if i.tcp_state() == TcpState::FinWait2 => {
            repaired.close_silently();
            AfterAdopt::Closed(Ok(Outcome::HandedOff(entry)))
        }
        other => {
            if let Err(e) = undo(&key) {
                drop(repaired);
                return AfterAdopt::Closed(Err(Cleanup(tuple, e)));
            }
            if let Err(e) = other {
                drop(repaired);
                return AfterAdopt::Closed(Err(Sys("getsockopt(TCP_INFO)", e)));
            }
            let s = repaired.leave();
            // A reset meanwhile is a reset, not the peer's FIN.
            if let Ok(Some(e)) = s.take_error() {
                return AfterAdopt::Closed(Err(Reset(e)));
            }
            drop(s);
            AfterAdopt::Closed(Ok(Outcome::PeerFinFirst(tuple)))
        }
    }
}

/// The handoff of a FIN_WAIT2 socket through the module's adopt; without a client, a dry run.
fn hand_off_ready(
    client: Option<&mut Client>,
    stream: TcpStream,
    key: Key,
) -> Result<Outcome, HandoffError> {
    let tuple = key.tuple;
    let fd = stream.as_raw_fd();
    let given_back = |kind, stream: TcpStream| {
        Err(HandoffError {
            kind,
            socket: Some(stream.into()),
        })
    };
    let closed = |kind, stream: TcpStream| {
        drop(stream);
        Err(HandoffError { kind, socket: None })
    };
    // Unread data would be lost without a trace (Linux's close() would reset instead).
    if let Some(n) = inq(fd).filter(|n| *n > 0) {
        return given_back(HandoffErrorKind::UnreadData(n), stream);
    }
    let Some(client) = client else {
        return dry_run_ready(stream, key);
    };
    let result = match client.adopt(&[key]) {
        Ok(r) => r.into_iter().next(),
        // No CAP_NET_ADMIN: nothing was done (as when TCP_REPAIR was refused first).
        Err(e @ Error::PermissionDenied { .. }) => {
            return given_back(HandoffErrorKind::Module(e), stream)
        }
        Err(e) => {
            if may_have_adopted(&e) {
                let _ = client.del(key);
            }
            return closed(HandoffErrorKind::Module(e), stream);
        }
    };
    match result {
        Some(AdoptResult::Taken(entry)) => {
            match close_adopted(stream, entry, &mut |k| client.del(k)) {
                AfterAdopt::Closed(Ok(o)) => Ok(o),
                AfterAdopt::Closed(Err(kind)) => Err(HandoffError { kind, socket: None }),
                AfterAdopt::GiveBack(kind, s) | AfterAdopt::RepairRefused(kind, s) => {
                    given_back(kind, s)
                }
            }
        }
        Some(AdoptResult::Refused(r)) => match adopt_refusal(r) {
            AdoptRefusal::PeerFinFirst => {
                // Closed normally: Linux's own TIME_WAIT keeps the tuple.
                drop(stream);
                Ok(Outcome::PeerFinFirst(tuple))
            }
            AdoptRefusal::FinNotAcked => {
                given_back(HandoffErrorKind::FinNotAcked { unacked: outq(fd) }, stream)
            }
            AdoptRefusal::UnreadData => {
                given_back(HandoffErrorKind::UnreadData(inq(fd).unwrap_or(0)), stream)
            }
            AdoptRefusal::Fail(kind) => closed(kind, stream),
        },
        // Client::adopt checks the reply has one result per tuple.
        None => closed(
            HandoffErrorKind::Module(Error::Protocol("adopt: no result".into())),
            stream,
        ),
    }
}

/// A dry run on a FIN_WAIT2 socket: repair mode, the state reads, the entry built; repair mode
/// is left again and the socket closed normally.
fn dry_run_ready(stream: TcpStream, key: Key) -> Result<Outcome, HandoffError> {
    let repaired = match InRepair::enter(stream) {
        Ok(r) => r,
        Err((kind, stream)) => {
            return Err(HandoffError {
                kind,
                socket: Some(stream.into()),
            })
        }
    };
    match read_repair_state(repaired.fd()) {
        Ok(state) => {
            drop(repaired.leave());
            let mut e = build_entry(key.tuple, &state);
            e.bound_ifindex = key.bound_ifindex;
            Ok(Outcome::DryRun(e))
        }
        Err(kind) => {
            drop(repaired);
            Err(HandoffError { kind, socket: None })
        }
    }
}

fn open_client(stream: TcpStream) -> Result<(Client, TcpStream), HandoffError> {
    match Client::open() {
        Ok(c) => Ok((c, stream)),
        Err(e) => Err(HandoffError {
            kind: HandoffErrorKind::Module(e),
            socket: Some(stream.into()),
        }),
    }
}

/// Hands off a socket already in FIN_WAIT2 (the caller called `shutdown(SHUT_WR)` and our FIN
/// was acknowledged), through a new netlink connection. On success the socket is closed. When
/// the handoff is refused before anything was done, the error gives the socket back.
pub fn handoff(fd: OwnedFd) -> Result<Outcome, HandoffError> {
    let (stream, key, _) = precheck(fd, false)?;
    let (mut client, stream) = open_client(stream)?;
    hand_off_ready(Some(&mut client), stream, key)
}

/// [`handoff`] through an open [`Client`].
pub fn handoff_with(client: &mut Client, fd: OwnedFd) -> Result<Outcome, HandoffError> {
    let (stream, key, _) = precheck(fd, false)?;
    hand_off_ready(Some(client), stream, key)
}

/// Closes a connected socket with a handoff: `shutdown(SHUT_WR)`, wait (at most `timeout`)
/// for our FIN to be acknowledged, then [`handoff`]. The socket is always consumed once the
/// shutdown is done: on a failure after it, it is closed normally.
pub fn close_with_handoff(fd: OwnedFd, timeout: Duration) -> Result<Outcome, HandoffError> {
    let (stream, key, ready) = precheck(fd, true)?;
    let (mut client, stream) = open_client(stream)?;
    finish_close(Some(&mut client), stream, key, ready, timeout)
}

/// [`close_with_handoff`] through an open [`Client`].
pub fn close_with_handoff_with(
    client: &mut Client,
    fd: OwnedFd,
    timeout: Duration,
) -> Result<Outcome, HandoffError> {
    let (stream, key, ready) = precheck(fd, true)?;
    finish_close(Some(client), stream, key, ready, timeout)
}

/// A dry run: like [`handoff`] (or [`close_with_handoff`] with `shutdown`), but only builds the
/// entry ([`Outcome::DryRun`]): repair mode is left again without sending anything, and the
/// socket is closed normally. Needs CAP_NET_ADMIN (TCP_REPAIR), not the module.
pub fn dry_run(fd: OwnedFd, shutdown: bool, timeout: Duration) -> Result<Outcome, HandoffError> {
    let (stream, key, ready) = precheck(fd, shutdown)?;
    finish_close(None, stream, key, ready, timeout)
}

/// What waiting for FIN_WAIT2 gave.
enum Waited {
    /// Reached: our FIN is acknowledged.
    FinWait2(TcpStream),
    /// The peer's FIN came first; the socket is closed.
    Done(Outcome),
}

/// Shuts the socket down for writing and waits for FIN_WAIT2.
fn shutdown_and_wait(
    stream: TcpStream,
    tuple: Tuple,
    timeout: Duration,
) -> Result<Waited, HandoffError> {
    if let Err(e) = stream.shutdown(Shutdown::Write) {
        return Err(HandoffError {
            kind: HandoffErrorKind::Sys("shutdown(SHUT_WR)", e),
            socket: Some(stream.into()),
        });
    }
    let closed = |kind| Err(HandoffError { kind, socket: None });
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let info = match tcp_info(stream.as_raw_fd()) {
            Ok(i) => i,
            Err(e) => return closed(HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e)),
        };
        match info.tcp_state() {
            TcpState::FinWait2 => return Ok(Waited::FinWait2(stream)),
            TcpState::FinWait1 => {}
            TcpState::Closing | TcpState::TimeWait => {
                drop(stream);
                return Ok(Waited::Done(Outcome::PeerFinFirst(tuple)));
            }
            TcpState::Close => {
                // TIME_WAIT took the connection over (no error), or it was reset.
                match stream.take_error() {
                    Ok(None) => {
                        drop(stream);
                        return Ok(Waited::Done(Outcome::PeerFinFirst(tuple)));
                    }
                    Ok(Some(e)) | Err(e) => return closed(HandoffErrorKind::Reset(e)),
                }
            }
            s => return closed(HandoffErrorKind::WrongState(s)),
        }
        if Instant::now() >= deadline {
            return closed(HandoffErrorKind::Timeout(timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn finish_close(
    client: Option<&mut Client>,
    stream: TcpStream,
    key: Key,
    ready: Readiness,
    timeout: Duration,
) -> Result<Outcome, HandoffError> {
    let stream = if ready == Readiness::Wait {
        match shutdown_and_wait(stream, key.tuple, timeout)? {
            Waited::FinWait2(s) => s,
            Waited::Done(outcome) => return Ok(outcome),
        }
    } else {
        stream
    };
    hand_off_ready(client, stream, key).map_err(|mut e| {
        if ready == Readiness::Wait {
            // After our shutdown the socket is ours to close.
            e.socket = None;
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn win(rcv_wup: u32, rcv_wnd: u32) -> TcpRepairWindow {
        TcpRepairWindow {
            rcv_wup,
            rcv_wnd,
            ..Default::default()
        }
    }

    #[test]
    fn window_arithmetic() {
        // 65535 bytes open, no scaling.
        assert_eq!(advertised_window(&win(1000, 65535), 1000, 0), 65535);
        // Part of the window used since the last update.
        assert_eq!(advertised_window(&win(1000, 65535), 1500, 0), 65035);
        // Scaled: 262144 >> 7 = 2048.
        assert_eq!(advertised_window(&win(0, 262_144), 0, 7), 2048);
        // Shift truncates.
        assert_eq!(advertised_window(&win(0, 1000), 0, 3), 125);
        assert_eq!(advertised_window(&win(0, 1001), 0, 3), 125);
        // Too big for 16 bits without scaling: clamped.
        assert_eq!(advertised_window(&win(0, 1 << 20), 0, 0), 65535);
        // Sequence wrap: rcv_wup near 2^32.
        assert_eq!(
            advertised_window(&win(0xffff_ff00, 0x200), 0x0000_0010, 0),
            0xf0
        );
        // rcv_nxt past the right edge: no negative window.
        assert_eq!(advertised_window(&win(1000, 100), 1200, 0), 0);
        // Maximum scale.
        assert_eq!(advertised_window(&win(0, 0x3fff_c000), 0, 14), 0xffff);
    }

    #[test]
    fn clock_and_offset_arithmetic() {
        assert_eq!(clock_ms(0, 999_999), 0);
        assert_eq!(clock_ms(1, 1_000_000), 1001);
        // Truncated to u32, as tcp_clock_ms() is: 2^32 ms is about 49.7 days.
        assert_eq!(clock_ms(4_294_967, 296_000_000), 0);
        assert_eq!(clock_ms(4_294_967, 297_000_000), 1);
        assert_eq!(ts_offset(5000, 1000), 4000);
        // Wrapping both ways.
        assert_eq!(ts_offset(10, 0xffff_fff0), 0x1a);
        assert_eq!(ts_offset(1000, 5000), (-4000i32) as u32);
        // The module's TSval = clock + offset gives back the socket's TSval.
        let (tsval, clock) = (0x8000_0001u32, 0xdead_beefu32);
        assert_eq!(clock.wrapping_add(ts_offset(tsval, clock)), tsval);
    }

    #[test]
    fn timens_offsets() {
        assert_eq!(
            timens_monotonic_offset_ms("monotonic 0 0\nboottime 0 0\n"),
            0
        );
        assert_eq!(
            timens_monotonic_offset_ms("monotonic 10 5000000\nboottime 0 0\n"),
            10_005
        );
        assert_eq!(
            timens_monotonic_offset_ms("boottime 1 0\nmonotonic -2 0\n"),
            -2000
        );
        assert_eq!(timens_monotonic_offset_ms(""), 0);
    }

    #[test]
    fn wscale_bitfield() {
        let info = TcpInfo {
            wscale: 0x7e,
            ..Default::default()
        };
        if cfg!(target_endian = "little") {
            assert_eq!(info.rcv_wscale(), 7);
        } else {
            assert_eq!(info.rcv_wscale(), 14);
        }
    }

    #[test]
    fn tcp_info_layout() {
        // The prefix of struct tcp_info: 8 bytes of u8 fields, then u32s from offset 8.
        assert_eq!(size_of::<TcpInfo>(), 28);
        assert_eq!(size_of::<TcpRepairWindow>(), 20);
    }

    #[test]
    fn state_checks() {
        let st = |state, options| TcpInfo {
            state,
            options,
            ..Default::default()
        };
        assert!(matches!(
            check_state(&st(5, 1), false),
            Ok(Readiness::Ready)
        ));
        assert!(matches!(check_state(&st(5, 0), true), Ok(Readiness::Ready)));
        assert!(matches!(check_state(&st(1, 0), true), Ok(Readiness::Wait)));
        assert!(matches!(check_state(&st(4, 0), true), Ok(Readiness::Wait)));
        assert!(matches!(
            check_state(&st(1, 0), false),
            Err(HandoffErrorKind::NotShutDown)
        ));
        assert!(matches!(
            check_state(&st(4, 0), false),
            Err(HandoffErrorKind::FinNotAcked { .. })
        ));
        assert!(matches!(
            check_state(&st(10, 0), true),
            Err(HandoffErrorKind::Listening)
        ));
        assert!(matches!(
            check_state(&st(8, 0), true),
            Err(HandoffErrorKind::WrongState(TcpState::CloseWait))
        ));
        assert!(matches!(
            check_state(&st(7, 0), false),
            Err(HandoffErrorKind::WrongState(TcpState::Close))
        ));
        assert!(matches!(
            check_state(&st(5, 1 | 64), false),
            Err(HandoffErrorKind::UsecTimestamps)
        ));
    }

    #[test]
    fn messages_are_specific() {
        let m = HandoffErrorKind::WrongState(TcpState::CloseWait).to_string();
        assert!(m.contains("peer closed first"), "{m}");
        let m = HandoffErrorKind::FinNotAcked { unacked: Some(12) }.to_string();
        assert!(m.contains("12 bytes"), "{m}");
        let e = HandoffError {
            kind: HandoffErrorKind::Permission,
            socket: None,
        };
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        assert_eq!(e.exit_code(), exit::PERMISSION);
        let e = HandoffError {
            kind: HandoffErrorKind::Module(Error::ModuleNotLoaded),
            socket: None,
        };
        assert_eq!(e.exit_code(), exit::NO_MODULE);
        let e = HandoffError {
            kind: HandoffErrorKind::Listening,
            socket: None,
        };
        assert_eq!(e.exit_code(), exit::FAILED);
    }

    #[test]
    fn unmapping() {
        let a: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
        assert_eq!(unmap(a), "10.0.0.1:80".parse::<SocketAddr>().unwrap());
        let b: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(unmap(b), b);
    }

    #[test]
    fn entry_from_repair_state() {
        let t = Tuple::new(
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:5000".parse().unwrap(),
        )
        .unwrap();
        let s = RepairState {
            snd_nxt: 101,
            rcv_nxt: 2001,
            window: win(2001, 64_000 << 2),
            rcv_wscale: 2,
            has_ts: true,
            tsval_and_clock: Some((70_000, 50_000)),
        };
        let e = build_entry(t, &s);
        assert_eq!(
            (e.snd_nxt, e.rcv_nxt, e.last_win, e.rcv_wscale),
            (101, 2001, 64_000, 2)
        );
        assert!(e.has_ts);
        assert_eq!(e.ts_recent, None);
        assert_eq!(e.ts_offset, 20_000);
        assert_eq!(e.substate, Substate::FinWait2);
        let e = build_entry(
            t,
            &RepairState {
                has_ts: false,
                tsval_and_clock: None,
                ..s
            },
        );
        assert!(!e.has_ts);
        assert_eq!(e.ts_offset, 0);
    }

    #[test]
    fn adopt_results_map_to_outcomes_and_errors() {
        use crate::error::PERMISSION_HINT;
        assert!(matches!(
            adopt_refusal(-libc::EALREADY),
            AdoptRefusal::PeerFinFirst
        ));
        assert!(matches!(
            adopt_refusal(-libc::EINPROGRESS),
            AdoptRefusal::FinNotAcked
        ));
        assert!(matches!(
            adopt_refusal(-libc::ENOTEMPTY),
            AdoptRefusal::UnreadData
        ));
        let fail = |r: i32| match adopt_refusal(r) {
            AdoptRefusal::Fail(kind) => HandoffError { kind, socket: None },
            other => panic!("{r}: {other:?}"),
        };
        // (result, kind, words of the message, exit code)
        type Case = (i32, fn(&HandoffErrorKind) -> bool, &'static str, u8);
        let cases: [Case; 7] = [
            (
                -libc::ENOENT,
                |k| matches!(k, HandoffErrorKind::NotFound),
                "network namespace",
                1,
            ),
            (
                -libc::ENOTCONN,
                |k| matches!(k, HandoffErrorKind::NotConnected),
                "not shut down for writing",
                1,
            ),
            (
                -libc::EOPNOTSUPP,
                |k| matches!(k, HandoffErrorKind::Unsupported),
                "TCP-MD5 or TCP-AO",
                1,
            ),
            (
                -libc::EEXIST,
                |k| matches!(k, HandoffErrorKind::EntryRefused(r) if *r == -libc::EEXIST),
                "already guarded (EEXIST",
                1,
            ),
            (
                -libc::EADDRNOTAVAIL,
                |k| matches!(k, HandoffErrorKind::EntryRefused(_)),
                "nolocaltimewait",
                1,
            ),
            (
                -libc::EPERM,
                |k| matches!(k, HandoffErrorKind::Module(Error::PermissionDenied { .. })),
                PERMISSION_HINT,
                4,
            ),
            (
                -libc::ENOMEM,
                |k| matches!(k, HandoffErrorKind::EntryRefused(_)),
                "ENOMEM",
                1,
            ),
        ];
        for (r, is, words, code) in cases {
            let e = fail(r);
            assert!(is(&e.kind), "{r}: {:?}", e.kind);
            let m = e.to_string();
            assert!(m.contains(words), "{r}: {m}");
            assert!(m.ends_with("(the socket was closed normally)"), "{m}");
            assert_eq!(e.exit_code(), code, "{r}");
        }
        assert!(HandoffErrorKind::UnreadData(0)
            .to_string()
            .starts_with("data received and not read"));
        assert!(HandoffErrorKind::UnreadData(3)
            .to_string()
            .starts_with("3 bytes received and not read"));
    }

    /// After the module's adopt: the race rule and the clean-ups, on real loopback sockets
    /// (the repair-mode half needs CAP_NET_ADMIN).
    #[test]
    fn close_adopted_rules() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fin_wait2 = || {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            for _ in 0..1000 {
                if tcp_info(s.as_raw_fd()).unwrap().tcp_state() == TcpState::FinWait2 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let t = Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap()).unwrap();
            (c, s, t)
        };
        let fw2_entry = |t| {
            let mut e = Entry::new(t, 1, 2);
            e.substate = Substate::FinWait2;
            e
        };
        // Handed off: closed in repair mode, the peer sees nothing (still CLOSE_WAIT).
        let (c, s, t) = fin_wait2();
        let mut dels = Vec::new();
        match close_adopted(s, fw2_entry(t), &mut |t| {
            dels.push(*t);
            Ok(())
        }) {
            AfterAdopt::Closed(Ok(Outcome::HandedOff(e))) => assert_eq!(e.tuple, t),
            AfterAdopt::RepairRefused(HandoffErrorKind::Permission, _) => {
                // No CAP_NET_ADMIN: the entry is taken back and the socket given back.
                assert_eq!(dels, vec![Key::from(t)]);
                return;
            }
            AfterAdopt::Closed(r) => panic!("{r:?}"),
            _ => panic!("not handed off"),
        }
        assert!(dels.is_empty());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            tcp_info(c.as_raw_fd()).unwrap().tcp_state(),
            TcpState::CloseWait
        );

        // The peer's FIN got in first: the entry is deleted, the socket closed normally.
        // An entry of a bound socket is deleted in its VRF: by its tuple and bound_ifindex.
        let (c, s, t) = fin_wait2();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        let mut bound = fw2_entry(t);
        bound.bound_ifindex = 1;
        let r = close_adopted(s, bound, &mut |k| {
            dels.push(*k);
            Ok(())
        });
        assert!(matches!(r, AfterAdopt::Closed(Ok(Outcome::PeerFinFirst(x))) if x == t));
        assert_eq!(dels, vec![Key::new(t, 1)]);

        // Data arrived after the module's check: the entry is deleted (ENOENT counts as done:
        // the module took it back itself) and the socket comes back with its data.
        let (c, s, t) = fin_wait2();
        (&c).write_all(b"late").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let enoent = || Error::Refused {
            op: "del",
            refusal: Box::new(Refusal::new(libc::ENOENT, &Extack::default(), &[])),
        };
        match close_adopted(s, fw2_entry(t), &mut |_| Err(enoent())) {
            AfterAdopt::GiveBack(HandoffErrorKind::UnreadData(4), s) => {
                let mut buf = [0u8; 8];
                assert_eq!((&s).read(&mut buf).unwrap(), 4);
            }
            _ => panic!("not given back"),
        }

        // The delete fails: reported, the socket closed normally (out of repair mode).
        let (c, s, t) = fin_wait2();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        let r = close_adopted(s, fw2_entry(t), &mut |_| {
            Err(Error::Protocol("lost".into()))
        });
        assert!(matches!(r, AfterAdopt::Closed(Err(HandoffErrorKind::Cleanup(x, _))) if x == t));
    }

    // The socket-level checks that need no privileges: refusals give the socket back.
    #[test]
    fn refusals_return_the_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd: OwnedFd = l.try_clone().unwrap().into();
        let err = handoff(fd).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::Listening), "{err}");
        assert!(err.socket.is_some());

        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = handoff(u.into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotTcp(_)), "{err}");
        assert!(err.socket.is_some());

        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_server, _) = l.accept().unwrap();
        let err = handoff(c.into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotShutDown), "{err}");
        assert!(err.socket.is_some());

        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        let err = handoff(OwnedFd::from(r)).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotTcp(_)), "{err}");
    }

    /// The precheck reads the socket's bound device (SO_BINDTOIFINDEX) into its key: 0 unbound,
    /// the device's index once bound (here lo; binding an unbound socket needs no privilege).
    #[test]
    fn precheck_reads_the_bound_device() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let established = || {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            (c, s)
        };
        let (_c, s) = established();
        let t = Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap()).unwrap();
        assert_eq!(bound_ifindex(s.as_raw_fd()).unwrap(), 0);
        let (_, key, ready) = precheck(s.into(), true).unwrap();
        assert_eq!((key, ready), (Key::new(t, 0), Readiness::Wait));

        // SAFETY: a NUL-terminated string.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(lo, 0);
        let (_c, s) = established();
        let t = Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap()).unwrap();
        setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, SO_BINDTOIFINDEX, lo as i32).unwrap();
        assert_eq!(bound_ifindex(s.as_raw_fd()).unwrap(), lo);
        let (_, key, _) = precheck(s.into(), true).unwrap();
        assert_eq!(key, Key::new(t, lo));
    }

    #[test]
    fn peer_closed_first_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.shutdown(Shutdown::Write).unwrap();
        // Wait for our side to see the FIN (CLOSE_WAIT).
        for _ in 0..200 {
            if tcp_info(c.as_raw_fd()).unwrap().tcp_state() == TcpState::CloseWait {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = close_with_handoff(c.into(), Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err.kind, HandoffErrorKind::WrongState(TcpState::CloseWait)),
            "{err}"
        );
        assert!(err.socket.is_some());
    }
}
