// SPDX-License-Identifier: GPL-2.0

//! The counters (docs/behaviour.md §8): their numbering is `enum rtw_glue_stat` in `glue.h`, the
//! `stats` attribute set of `spec/rust_timewait.yaml` (attribute = index + 1) and twctl's
//! `STAT_NAMES`; `tests/host/spec_check.py` checks the YAML against `glue.h`, and every
//! discriminant below is taken from `glue.h`.

use crate::ffi;

/// A counter, numbered by `glue.h`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Stat {
    /// Entries now in the table.
    Entries = ffi::rtw_glue_stat_RTW_GLUE_STAT_ENTRIES,
    /// Entries added.
    Added = ffi::rtw_glue_stat_RTW_GLUE_STAT_ADDED,
    /// Adds refused by `nolocaltimewait`.
    RefusedNolocal = ffi::rtw_glue_stat_RTW_GLUE_STAT_REFUSED_NOLOCAL,
    /// Adds refused because the tuple was guarded.
    RefusedExists = ffi::rtw_glue_stat_RTW_GLUE_STAT_REFUSED_EXISTS,
    /// Adds refused as invalid.
    RefusedInvalid = ffi::rtw_glue_stat_RTW_GLUE_STAT_REFUSED_INVALID,
    /// Oldest entries recycled because the table was full.
    Recycled = ffi::rtw_glue_stat_RTW_GLUE_STAT_RECYCLED,
    /// Entries that reached their 2MSL expiry.
    Expired = ffi::rtw_glue_stat_RTW_GLUE_STAT_EXPIRED,
    /// Entries deleted (netlink, flush, replace, RST in FIN_WAIT_2).
    Deleted = ffi::rtw_glue_stat_RTW_GLUE_STAT_DELETED,
    /// New SYNs let through (T3/T4).
    SynReuse = ffi::rtw_glue_stat_RTW_GLUE_STAT_SYN_REUSE,
    /// RSTs dropped (T1).
    RstDropped = ffi::rtw_glue_stat_RTW_GLUE_STAT_RST_DROPPED,
    /// Segments that failed PAWS.
    PawsDropped = ffi::rtw_glue_stat_RTW_GLUE_STAT_PAWS_DROPPED,
    /// ACKs sent (handed to the output path without error).
    AcksSent = ffi::rtw_glue_stat_RTW_GLUE_STAT_ACKS_SENT,
    /// RSTs sent (FIN_WAIT_2; handed to the output path without error).
    RstsSent = ffi::rtw_glue_stat_RTW_GLUE_STAT_RSTS_SENT,
    /// Replies suppressed by the rate limit.
    RepliesRatelimited = ffi::rtw_glue_stat_RTW_GLUE_STAT_REPLIES_RATELIMITED,
    /// Segments consumed.
    SegmentsDropped = ffi::rtw_glue_stat_RTW_GLUE_STAT_SEGMENTS_DROPPED,
    /// FIN_WAIT_2 entries that saw the peer's FIN.
    FinWait2Completed = ffi::rtw_glue_stat_RTW_GLUE_STAT_FIN_WAIT2_COMPLETED,
    /// FIN_WAIT_2 entries that timed out.
    FinWait2Timeouts = ffi::rtw_glue_stat_RTW_GLUE_STAT_FIN_WAIT2_TIMEOUTS,
    /// Local connect()s allowed to reuse a guarded tuple.
    LocalConnectReuse = ffi::rtw_glue_stat_RTW_GLUE_STAT_LOCAL_CONNECT_REUSE,
    /// Local connect()s dropped on a guarded tuple.
    LocalConnectDropped = ffi::rtw_glue_stat_RTW_GLUE_STAT_LOCAL_CONNECT_DROPPED,
    /// Effective `maxtcptw`.
    Capacity = ffi::rtw_glue_stat_RTW_GLUE_STAT_CAPACITY,
    /// Replies built but not sent (no route, no memory, dropped by the output path).
    RepliesFailed = ffi::rtw_glue_stat_RTW_GLUE_STAT_REPLIES_FAILED,
    /// Sockets taken by adopt with `wait`, to adopt at FIN_WAIT2 (counted in C, handoff.c).
    #[allow(dead_code)]
    HandoffsDeferred = ffi::rtw_glue_stat_RTW_GLUE_STAT_HANDOFFS_DEFERRED,
    /// Of those, the ones left to Linux's close() instead (counted in C, handoff.c).
    #[allow(dead_code)]
    HandoffsReturned = ffi::rtw_glue_stat_RTW_GLUE_STAT_HANDOFFS_RETURNED,
    /// Connections taken over from Linux's FIN_WAIT2 at the peer's FIN (takeover.c, D47).
    TakenOver = ffi::rtw_glue_stat_RTW_GLUE_STAT_TAKEN_OVER,
}

/// Number of counters.
pub(crate) const STAT_COUNT: usize = ffi::rtw_glue_stat_RTW_GLUE_STAT_COUNT as usize;

// Every counter is numbered above; the last one closes the range.
const _: () = assert!(Stat::TakenOver as usize + 1 == STAT_COUNT);
