// SPDX-License-Identifier: GPL-2.0

//! What to do with one segment for a guarded tuple: the seed's `tcp_twcheck()`, extended with
//! Linux's orphaned FIN_WAIT_2 processing.
//!
//! Pure: the caller looks the entry up, parses the segment ([`crate::logic::segment`]), calls
//! [`decide`], then acts on the [`Decision`] (send, rate-limit, re-arm, delete, count). Rows are
//! named after behaviour.md's tables (T1–T11 for TIME_WAIT, F1–F6 for FIN_WAIT_2) and are checked
//! top to bottom; the first that fits wins. T12 (expiry) is the caller's timer, decided by
//! [`crate::logic::policy::expired`]. T11 applies to FIN_WAIT_2 too and comes first in both.

use crate::logic::segment::TcpSegment;
use crate::logic::wire::{ACK, FIN, RST, SYN};
use crate::logic::seq::{seq_after, seq_before, ts_after, ts_before};

/// Largest window shift a peer may apply (RFC 7323 §2.3: larger values are treated as 14).
pub(crate) const MAX_WSCALE: u8 = 14;

/// Which half of the close the entry stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Substate {
    /// Both FINs exchanged and acknowledged; waiting 2·MSL.
    TimeWait,
    /// Our FIN acknowledged, the peer's FIN not yet received.
    FinWait2,
}

/// The per-entry TCP state the decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryState {
    /// Our next sequence number (after our FIN).
    pub(crate) snd_nxt: u32,
    /// Next sequence number expected from the peer (after its FIN in TIME_WAIT).
    pub(crate) rcv_nxt: u32,
    /// The window we last advertised, as on the wire (already shifted right by `rcv_wscale`).
    pub(crate) last_win: u16,
    /// Our receive window scale.
    pub(crate) rcv_wscale: u8,
    /// Last TSval seen from the peer; meaningful only if `ts_recent_valid`.
    pub(crate) ts_recent: u32,
    /// The connection negotiated timestamps (RFC 7323 §3.2).
    pub(crate) has_ts: bool,
    /// `ts_recent` has been learned. A FIN_WAIT_2 handoff cannot read it from the socket and
    /// learns it from the peer's FIN (behaviour §6), so PAWS waits until then.
    pub(crate) ts_recent_valid: bool,
    /// TIME_WAIT or FIN_WAIT_2.
    pub(crate) substate: Substate,
}

impl EntryState {
    /// The receive window in bytes, as Linux's `tw_rcv_wnd`. The shift is clamped to 14
    /// (RFC 7323 §2.3), which also keeps it from overflowing.
    pub(crate) fn receive_window(&self) -> u32 {
        u32::from(self.last_win) << self.rcv_wscale.min(MAX_WSCALE)
    }

    /// TSecr for a reply, `None` when the connection has no timestamps. Without a learned
    /// `ts_recent` we still send the option, echoing 0: RFC 7323 §3.2 wants TSopt on every
    /// non-RST segment once negotiated (FreeBSD drops segments without it), and a TSecr of 0 is
    /// what Linux and FreeBSD treat as "nothing to measure".
    pub(crate) fn reply_tsecr(&self) -> Option<u32> {
        match (self.has_ts, self.ts_recent_valid) {
            (false, _) => None,
            (true, true) => Some(self.ts_recent),
            (true, false) => Some(0),
        }
    }

    /// Applies an F5 transition: the entry becomes TIME_WAIT. The caller also sets the expiry
    /// to now + 2·MSL and builds the ACK from the updated state.
    pub(crate) fn complete_fin_wait2(&mut self, completion: FinWait2Completion) {
        self.substate = Substate::TimeWait;
        self.rcv_nxt = completion.rcv_nxt;
        if let Some(tsval) = completion.ts_recent {
            self.ts_recent = tsval;
            self.ts_recent_valid = true;
        }
    }
}

impl Reason {
    /// Whether Linux sends this row's ACK as `TCP_TW_ACK_OOW` (out of window: through
    /// `tcp_timewait_check_oow_rate_limit`, ECN bits cleared) rather than `TCP_TW_ACK`. Only
    /// the FIN that completes FIN_WAIT_2 (F5) gets the plain ACK; a retransmitted FIN (T6), PAWS
    /// and every other answered segment go the out-of-window way, limited or not.
    pub(crate) fn ack_is_oow(self) -> bool {
        self != Reason::Fw2FinReceived
    }
}

/// What happens to the segment and the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Consume the segment silently; the entry stays.
    Drop,
    /// Consume the segment and answer with an ACK built from the entry (behaviour §4).
    AckAndDrop,
    /// Consume the segment, answer with a RST built from the segment (`build_rst`), delete the
    /// entry.
    RstAndDelete,
    /// Delete the entry and let the segment (a new SYN) go on to the stack (T3/T4).
    DeleteAndPass,
    /// Delete the entry and consume the segment (F2).
    DeleteAndDrop,
}

/// The row that decided, for counters and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// T11: source or destination multicast/broadcast; checked before every other row.
    McastOrBcast,
    /// T1: RST in TIME_WAIT.
    RstDropped,
    /// T2: PAWS rejected the segment.
    PawsRejected,
    /// T3: new SYN with a higher sequence number.
    SynReuseBySeq,
    /// T4: new SYN with a newer timestamp.
    SynReuseByTimestamp,
    /// T5: no ACK bit.
    NoAck,
    /// T6: retransmission of the peer's FIN.
    FinRetransmit,
    /// T7: exact duplicate of the last ACK.
    DupAck,
    /// T8: acknowledges something we never sent.
    AckOfUnsent,
    /// T9: acknowledges less than we sent.
    OldAck,
    /// T10: any other segment with ACK.
    OtherAck,
    /// F1: PAWS rejected the segment.
    Fw2PawsRejected,
    /// F1: outside the receive window.
    Fw2OutOfWindow,
    /// F1: RST outside the receive window.
    Fw2RstOutOfWindow,
    /// F2: RST in window.
    Fw2Reset,
    /// F3: SYN at or after `rcv_nxt`.
    Fw2Syn,
    /// F4: nothing new (no ACK, or no sequence space).
    Fw2NothingNew,
    /// F5: the peer's FIN; the entry becomes TIME_WAIT.
    Fw2FinReceived,
    /// F6: new data or a FIN elsewhere after our application closed.
    Fw2NewData,
}

impl Reason {
    /// The row of docs/behaviour.md's tables ("T1".."T11", "F1".."F6").
    pub(crate) fn row(self) -> &'static str {
        match self {
            Reason::McastOrBcast => "T11",
            Reason::RstDropped => "T1",
            Reason::PawsRejected => "T2",
            Reason::SynReuseBySeq => "T3",
            Reason::SynReuseByTimestamp => "T4",
            Reason::NoAck => "T5",
            Reason::FinRetransmit => "T6",
            Reason::DupAck => "T7",
            Reason::AckOfUnsent => "T8",
            Reason::OldAck => "T9",
            Reason::OtherAck => "T10",
            Reason::Fw2PawsRejected | Reason::Fw2OutOfWindow | Reason::Fw2RstOutOfWindow => "F1",
            Reason::Fw2Reset => "F2",
            Reason::Fw2Syn => "F3",
            Reason::Fw2NothingNew => "F4",
            Reason::Fw2FinReceived => "F5",
            Reason::Fw2NewData => "F6",
        }
    }
}

/// F5: the new state of an entry that leaves FIN_WAIT_2 for TIME_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FinWait2Completion {
    /// `rcv_nxt` after the peer's FIN.
    pub(crate) rcv_nxt: u32,
    /// The FIN's TSval, to become `ts_recent`; `None` leaves `ts_recent` as it was.
    pub(crate) ts_recent: Option<u32>,
}

/// The outcome for one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// What happens to the segment and the entry.
    pub(crate) verdict: Verdict,
    /// The reply is subject to the per-entry rate limit (behaviour §4); false for drops.
    pub(crate) rate_limited: bool,
    /// Restart the 2·MSL timer (T6 only).
    pub(crate) rearm_2msl: bool,
    /// F5: apply with [`EntryState::complete_fin_wait2`] before building the ACK, and set the
    /// expiry to now + 2·MSL.
    pub(crate) transition: Option<FinWait2Completion>,
    /// T1, T5, T7–T9: the new `ts_recent`, the TSval of an acceptable segment (RFC 7323 §4.3).
    pub(crate) ts_recent: Option<u32>,
    /// The row that decided.
    pub(crate) reason: Reason,
}

impl Decision {
    fn new(verdict: Verdict, reason: Reason) -> Self {
        Decision {
            verdict,
            rate_limited: false,
            rearm_2msl: false,
            transition: None,
            ts_recent: None,
            reason,
        }
    }

    fn ack(reason: Reason, rate_limited: bool) -> Self {
        Decision {
            rate_limited,
            ..Decision::new(Verdict::AckAndDrop, reason)
        }
    }
}

/// Decides what to do with `seg` for the entry `state` (the seed's `tcp_twcheck()`).
pub(crate) fn decide(state: &EntryState, seg: &TcpSegment) -> Decision {
    // T11 before anything that replies or deletes: TCP is unicast only, so a segment from or to
    // a group or broadcast address is bogus and answering it would multiply traffic
    // (RFC 1122 §4.2.3.10; the seed's "don't bother to respond if destination was broadcast").
    // It also keeps such a RST from deleting a FIN_WAIT_2 entry (F2).
    if seg.mcast_or_bcast {
        return Decision::new(Verdict::Drop, Reason::McastOrBcast);
    }
    match state.substate {
        Substate::TimeWait => decide_time_wait(state, seg),
        Substate::FinWait2 => decide_fin_wait2(state, seg),
    }
}

fn decide_time_wait(state: &EntryState, seg: &TcpSegment) -> Decision {
    // T1: RFC 1337 (TIME-WAIT assassination hazards), Stevens vol. 2 p. 964: an RST must not
    // cut TIME_WAIT short, whatever its sequence number.
    if seg.has_flag(RST) {
        return Decision {
            ts_recent: in_order_tsval(state, seg),
            ..Decision::new(Verdict::Drop, Reason::RstDropped)
        };
    }

    // T2: RFC 7323 §5.3 R1: an old TSval makes the segment unacceptable; send an ACK (keeps
    // half-open detection working) and drop. No re-arm, so a replayer cannot hold the tuple.
    if paws_rejects(state, seg) {
        return Decision::ack(Reason::PawsRejected, oow_reply_rate_limited(seg));
    }

    let syn_without_ack = seg.has_flag(SYN) && !seg.has_flag(ACK);

    // T3: RFC 1122 §4.2.2.13: a SYN above the old incarnation's sequence space may reopen the
    // connection; the seed closes the entry and lets the SYN reach a listener.
    if syn_without_ack && seq_after(seg.seq, state.rcv_nxt) {
        return Decision::new(Verdict::DeleteAndPass, Reason::SynReuseBySeq);
    }

    // T4: RFC 6191 §2: with timestamps, a SYN whose TSval is newer than the old incarnation's
    // may reopen it even if its sequence number is not higher.
    if syn_without_ack && ts_recent_known(state) {
        if let Some(ts) = seg.ts {
            if ts_after(ts.tsval, state.ts_recent) {
                return Decision::new(Verdict::DeleteAndPass, Reason::SynReuseByTimestamp);
            }
        }
    }

    // T5: RFC 9293 §3.10.7.4, fifth check: "if the ACK bit is off drop the segment".
    if !seg.has_flag(ACK) {
        return Decision {
            ts_recent: in_order_tsval(state, seg),
            ..Decision::new(Verdict::Drop, Reason::NoAck)
        };
    }

    // T6: RFC 9293 §3.10.7.4 (TIME-WAIT, FIN bit): a retransmitted FIN means our last ACK was
    // lost: "acknowledge it, and restart the 2 MSL timeout". Not rate-limited: it is the one
    // ACK the peer is waiting for. end_seq includes a SYN as the seed's computation does.
    if seg.has_flag(FIN) && seg.end_seq() == state.rcv_nxt {
        return Decision {
            rearm_2msl: true,
            ..Decision::ack(Reason::FinRetransmit, false)
        };
    }

    // T7–T9 look at bare ACKs exactly at rcv_nxt. PSH/URG/ECE/CWR are ignored: they occupy no
    // sequence space and Linux treats such a segment as a plain ACK too (the seed's
    // `thflags != TH_ACK` would answer them, inviting ACK loops).
    let bare_ack = seg.payload_len == 0 && !seg.has_flag(SYN) && !seg.has_flag(FIN);
    if bare_ack && seg.seq == state.rcv_nxt {
        let ts_recent = in_order_tsval(state, seg);
        // T7: an exact duplicate ACK says nothing new; answering it makes ACK loops.
        // T8: RFC 9293 §3.10.7.4 (fifth check): an ACK of something not yet sent gets an ACK.
        // T9: RFC 9293 §3.10.7.4: an old (duplicate) ACK is ignored.
        let d = if seg.ack == state.snd_nxt {
            Decision::new(Verdict::Drop, Reason::DupAck)
        } else if seq_after(seg.ack, state.snd_nxt) {
            Decision::ack(Reason::AckOfUnsent, true)
        } else {
            Decision::new(Verdict::Drop, Reason::OldAck)
        };
        return Decision { ts_recent, ..d };
    }

    // T10: RFC 9293 §3.10.7.4 (first check): an unacceptable segment gets an ACK. Never re-arm
    // here, or a peer could hold the tuple forever.
    Decision::ack(Reason::OtherAck, oow_reply_rate_limited(seg))
}

fn decide_fin_wait2(state: &EntryState, seg: &TcpSegment) -> Decision {
    let rcv_nxt = state.rcv_nxt;

    // F1 (PAWS): RFC 7323 §5.3 R1, as Linux's FIN_WAIT2 minisock: ACK and drop.
    if paws_rejects(state, seg) {
        return Decision::ack(Reason::Fw2PawsRejected, oow_reply_rate_limited(seg));
    }

    // F1 (window): RFC 9293 §3.10.7.4 first check, with Linux's tcp_in_window().
    let window_end = rcv_nxt.wrapping_add(state.receive_window());
    if !tcp_in_window(seg.seq, seg.end_seq(), rcv_nxt, window_end) {
        // RFC 9293 §3.10.7.4 "(unless the RST bit is set, if so drop the segment and return)",
        // RFC 5961 §3.2: never answer an out-of-window RST. (Linux answers it with a
        // rate-limited ACK here; that is a reply to a RST.)
        if seg.has_flag(RST) {
            return Decision::new(Verdict::Drop, Reason::Fw2RstOutOfWindow);
        }
        return Decision::ack(Reason::Fw2OutOfWindow, oow_reply_rate_limited(seg));
    }

    // F2: RFC 9293 §3.10.7.4 second check: an in-window RST closes the connection; the
    // application is gone, so there is nothing left to protect.
    if seg.has_flag(RST) {
        return Decision::new(Verdict::DeleteAndDrop, Reason::Fw2Reset);
    }

    // F3: RFC 9293 §3.10.7.4 fourth check, as Linux: a SYN in window is an error; reset.
    if seg.has_flag(SYN) && !seq_before(seg.seq, rcv_nxt) {
        return Decision::new(Verdict::RstAndDelete, Reason::Fw2Syn);
    }

    // F4: Linux's "Dup ACK?": no ACK (RFC 9293 fifth check), or nothing beyond rcv_nxt, or no
    // sequence space at all: drop silently.
    let end_seq = seg.end_seq();
    if !seg.has_flag(ACK) || !seq_after(end_seq, rcv_nxt) || end_seq == seg.seq {
        return Decision::new(Verdict::Drop, Reason::Fw2NothingNew);
    }

    // F5: the peer's FIN, ending exactly one past rcv_nxt (Linux's test: old data in front of it
    // is a retransmission, not new data). RFC 9293 §3.10.7.4 eighth check: FIN-WAIT-2 enters
    // TIME-WAIT and the FIN is acknowledged at once (not rate-limited). RFC 7323 §4.3: its TSval
    // becomes TS.Recent, if the connection uses timestamps.
    if seg.has_flag(FIN) && end_seq == rcv_nxt.wrapping_add(1) {
        let ts_recent = match (state.has_ts, seg.ts) {
            (true, Some(ts)) => Some(ts.tsval),
            _ => None,
        };
        return Decision {
            transition: Some(FinWait2Completion {
                rcv_nxt: end_seq,
                ts_recent,
            }),
            ..Decision::ack(Reason::Fw2FinReceived, false)
        };
    }

    // F6: RFC 9293 §3.10.7.4 / RFC 1122 §4.2.2.13: data arriving after the application closed
    // cannot be delivered; reset so the peer learns it was lost.
    Decision::new(Verdict::RstAndDelete, Reason::Fw2NewData)
}

/// Linux's `tcp_in_window()`: the segment starts at `s_win`, or overlaps `(s_win, e_win)`, or is
/// an empty segment exactly at `e_win` (a zero window).
pub(crate) fn tcp_in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    if seq == s_win {
        return true;
    }
    if seq_after(end_seq, s_win) && seq_before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// `ts_recent` exists to compare with.
fn ts_recent_known(state: &EntryState) -> bool {
    state.has_ts && state.ts_recent_valid
}

/// PAWS (RFC 7323 §5.3 R1): the segment's TSval is older than `ts_recent`. Never for a RST:
/// R1 applies only "if the RST bit is not set" (RFC 1323 §4.2.1: RSTs are acceptable
/// regardless of their timestamp); T1 drops RSTs in TIME_WAIT anyway. Linux also skips PAWS when `ts_recent` is 0 or older than 24 days; we
/// have an explicit validity flag instead of the 0 sentinel, and an entry lives minutes.
fn paws_rejects(state: &EntryState, seg: &TcpSegment) -> bool {
    if seg.has_flag(RST) || !ts_recent_known(state) {
        return false;
    }
    match seg.ts {
        Some(ts) => ts_before(ts.tsval, state.ts_recent),
        None => false,
    }
}

/// RFC 7323 §4.3 (3): a segment that starts at `rcv_nxt`, takes no sequence space (or is a
/// RST) and passes PAWS is acceptable, and its TSval becomes TS.Recent: Linux's TIME_WAIT takes
/// it so (the in-window branch of `tcp_timewait_state_process`), for T1, T5 and T7–T9 alike.
/// Later replies echo it, and T2 and T4 judge the next SYN by it (D38).
fn in_order_tsval(state: &EntryState, seg: &TcpSegment) -> Option<u32> {
    let ts = seg.ts?;
    let in_order = seg.seq == state.rcv_nxt && (seg.end_seq() == seg.seq || seg.has_flag(RST));
    // The PAWS test applies here to a RST too (D2 only keeps PAWS from answering one).
    let old = ts_recent_known(state) && ts_before(ts.tsval, state.ts_recent);
    (state.has_ts && in_order && !old).then_some(ts.tsval)
}

/// Linux's `tcp_oow_rate_limited()`: "Data packets without SYNs are not likely part of an ACK
/// loop", so a segment occupying sequence space without SYN is always answered; everything
/// else is subject to the per-entry limit.
fn oow_reply_rate_limited(seg: &TcpSegment) -> bool {
    seg.end_seq() == seg.seq || seg.has_flag(SYN)
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_twcheck))]
mod tests {
    use super::*;
    use crate::logic::fixtures::{segment_v4, with_tsval};
    use crate::logic::wire::{CWR, ECE, PSH, URG};

    const RCV_NXT: u32 = 1000;
    const SND_NXT: u32 = 5000;
    const TS_RECENT: u32 = 700;

    fn time_wait() -> EntryState {
        EntryState {
            snd_nxt: SND_NXT,
            rcv_nxt: RCV_NXT,
            last_win: 502,
            rcv_wscale: 7,
            ts_recent: TS_RECENT,
            has_ts: true,
            ts_recent_valid: true,
            substate: Substate::TimeWait,
        }
    }

    fn fin_wait2() -> EntryState {
        EntryState {
            ts_recent: 0,
            ts_recent_valid: false,
            substate: Substate::FinWait2,
            ..time_wait()
        }
    }

    /// A segment from the peer; its addresses, ports and window play no part in a decision.
    fn seg(flags: u8, seq: u32, ack: u32, payload_len: u32, tsval: Option<u32>) -> TcpSegment {
        with_tsval(segment_v4(flags, seq, ack, payload_len), tsval)
    }

    fn row(state: &EntryState, s: &TcpSegment) -> (Verdict, Reason) {
        let d = decide(state, s);
        (d.verdict, d.reason)
    }

    #[test]
    fn t1_rst_is_dropped_and_entry_kept() {
        let tw = time_wait();
        let rsts = [
            seg(RST, RCV_NXT, 0, 0, None),
            seg(RST | ACK, RCV_NXT, SND_NXT, 0, None),
            seg(RST, RCV_NXT.wrapping_add(100), 0, 0, None),
            seg(RST | SYN, RCV_NXT + 1, 0, 0, None),
            seg(RST | ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT - 1)),
        ];
        for s in rsts {
            let d = decide(&tw, &s);
            assert_eq!(d.verdict, Verdict::Drop);
            assert_eq!(d.reason, Reason::RstDropped);
            assert!(!d.rate_limited);
            assert!(!d.rearm_2msl);
        }
    }

    #[test]
    fn t2_paws_rejects_old_tsval_with_ack() {
        let tw = time_wait();
        let d = decide(&tw, &seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT - 1)));
        assert_eq!(d.verdict, Verdict::AckAndDrop);
        assert_eq!(d.reason, Reason::PawsRejected);
        assert!(d.rate_limited);
        assert!(!d.rearm_2msl);
        // With data the reply is not rate-limited (tcp_oow_rate_limited).
        let d = decide(&tw, &seg(ACK, RCV_NXT, SND_NXT, 10, Some(TS_RECENT - 1)));
        assert_eq!((d.reason, d.rate_limited), (Reason::PawsRejected, false));
        // PAWS comes before SYN reuse: an old TSval blocks a SYN with a higher seq (RFC 6191).
        assert_eq!(
            row(&tw, &seg(SYN, RCV_NXT + 1000, 0, 0, Some(TS_RECENT - 1))),
            (Verdict::AckAndDrop, Reason::PawsRejected)
        );
        // And it answers a segment without ACK too (RFC 7323 R1 "send an acknowledgment").
        assert_eq!(
            row(&tw, &seg(FIN, RCV_NXT, 0, 0, Some(TS_RECENT - 1))),
            (Verdict::AckAndDrop, Reason::PawsRejected)
        );
    }

    #[test]
    fn t2_paws_needs_both_timestamps_and_a_known_ts_recent() {
        let old = seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT - 1));
        let no_ts = EntryState {
            has_ts: false,
            ..time_wait()
        };
        let unknown = EntryState {
            ts_recent_valid: false,
            ..time_wait()
        };
        assert_eq!(row(&no_ts, &old).1, Reason::DupAck);
        assert_eq!(row(&unknown, &old).1, Reason::DupAck);
        assert_eq!(
            row(&time_wait(), &seg(ACK, RCV_NXT, SND_NXT, 0, None)).1,
            Reason::DupAck
        );
        // Equal is not older.
        let same = seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT));
        assert_eq!(row(&time_wait(), &same).1, Reason::DupAck);
        // A learned ts_recent of 0 is honoured (Linux would treat 0 as "none").
        let zero = EntryState {
            ts_recent: 0,
            ..time_wait()
        };
        let behind_zero = seg(ACK, RCV_NXT, SND_NXT, 0, Some(0xffff_fff0));
        assert_eq!(row(&zero, &behind_zero).1, Reason::PawsRejected);
    }

    #[test]
    fn t2_paws_wraps_at_2_pow_32() {
        let high = EntryState {
            ts_recent: 0xffff_fff0,
            ..time_wait()
        };
        // 5 is 21 ticks after 0xfffffff0: acceptable.
        assert_eq!(
            row(&high, &seg(ACK, RCV_NXT, SND_NXT, 0, Some(5))).1,
            Reason::DupAck
        );
        let low = EntryState {
            ts_recent: 5,
            ..time_wait()
        };
        // 0xfffffff0 is 21 ticks before 5: rejected.
        assert_eq!(
            row(&low, &seg(ACK, RCV_NXT, SND_NXT, 0, Some(0xffff_fff0))).1,
            Reason::PawsRejected
        );
    }

    #[test]
    fn t3_syn_with_higher_seq_deletes_and_passes() {
        let tw = time_wait();
        for s in [
            seg(SYN, RCV_NXT + 1, 0, 0, None),
            seg(SYN, RCV_NXT + 0x7fff_0000, 0, 0, Some(TS_RECENT)),
            seg(SYN | ECE | CWR, RCV_NXT + 77, 0, 0, Some(TS_RECENT + 5)),
        ] {
            let d = decide(&tw, &s);
            assert_eq!(d.verdict, Verdict::DeleteAndPass);
            assert_eq!(d.reason, Reason::SynReuseBySeq);
            assert!(!d.rate_limited);
        }
        // Wraparound: 5 is after 0xfffffff0.
        let near_wrap = EntryState {
            rcv_nxt: 0xffff_fff0,
            ..time_wait()
        };
        assert_eq!(
            row(&near_wrap, &seg(SYN, 5, 0, 0, None)),
            (Verdict::DeleteAndPass, Reason::SynReuseBySeq)
        );
        // seq == rcv_nxt is not after it, nor is a seq that wrapped below it.
        assert_eq!(row(&tw, &seg(SYN, RCV_NXT, 0, 0, None)).1, Reason::NoAck);
        assert_eq!(
            row(&near_wrap, &seg(SYN, 0xffff_ffe0, 0, 0, None)).1,
            Reason::NoAck
        );
        // SYN|ACK is not a connection request: challenge-ACK it (T10).
        assert_eq!(
            row(&tw, &seg(SYN | ACK, RCV_NXT + 1, 1, 0, None)),
            (Verdict::AckAndDrop, Reason::OtherAck)
        );
    }

    #[test]
    fn t4_syn_with_newer_timestamp_deletes_and_passes() {
        let tw = time_wait();
        assert_eq!(
            row(&tw, &seg(SYN, RCV_NXT - 500, 0, 0, Some(TS_RECENT + 1))),
            (Verdict::DeleteAndPass, Reason::SynReuseByTimestamp)
        );
        assert_eq!(
            row(&tw, &seg(SYN, RCV_NXT, 0, 0, Some(TS_RECENT + 1))),
            (Verdict::DeleteAndPass, Reason::SynReuseByTimestamp)
        );
        // Timestamp wraparound.
        let high = EntryState {
            ts_recent: 0xffff_fff0,
            ..time_wait()
        };
        assert_eq!(
            row(&high, &seg(SYN, RCV_NXT - 1, 0, 0, Some(3))),
            (Verdict::DeleteAndPass, Reason::SynReuseByTimestamp)
        );
        // Equal TSval and no higher seq: RFC 6191 keeps TIME_WAIT (T5 drops).
        assert_eq!(
            row(&tw, &seg(SYN, RCV_NXT - 1, 0, 0, Some(TS_RECENT))).1,
            Reason::NoAck
        );
        // No timestamp on the SYN, or none on the entry, or ts_recent not learned.
        assert_eq!(
            row(&tw, &seg(SYN, RCV_NXT - 1, 0, 0, None)).1,
            Reason::NoAck
        );
        let no_ts = EntryState {
            has_ts: false,
            ..time_wait()
        };
        assert_eq!(
            row(&no_ts, &seg(SYN, RCV_NXT - 1, 0, 0, Some(9999))).1,
            Reason::NoAck
        );
        let unknown = EntryState {
            ts_recent_valid: false,
            ..time_wait()
        };
        assert_eq!(
            row(&unknown, &seg(SYN, RCV_NXT - 1, 0, 0, Some(9999))).1,
            Reason::NoAck
        );
    }

    #[test]
    fn t5_segment_without_ack_is_dropped() {
        let tw = time_wait();
        for s in [
            seg(FIN, RCV_NXT - 1, 0, 0, None),
            seg(PSH, RCV_NXT, 0, 20, None),
            seg(0, RCV_NXT, 0, 0, None),
            seg(URG, RCV_NXT, 0, 1, None),
            seg(SYN, RCV_NXT - 1, 0, 0, None),
        ] {
            let d = decide(&tw, &s);
            assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::NoAck));
            assert!(!d.rate_limited);
        }
    }

    #[test]
    fn t6_retransmitted_fin_is_acked_and_rearms() {
        let tw = time_wait();
        for s in [
            seg(FIN | ACK, RCV_NXT - 1, SND_NXT, 0, None),
            seg(
                FIN | ACK | PSH,
                RCV_NXT - 10,
                SND_NXT,
                9,
                Some(TS_RECENT + 3),
            ),
            seg(FIN | ACK, RCV_NXT - 1, SND_NXT - 100, 0, Some(TS_RECENT)),
        ] {
            let d = decide(&tw, &s);
            assert_eq!(d.verdict, Verdict::AckAndDrop);
            assert_eq!(d.reason, Reason::FinRetransmit);
            assert!(!d.rate_limited);
            assert!(d.rearm_2msl);
        }
        // Wraparound: the FIN at 0xffffffff ends at 0.
        let wrapped = EntryState {
            rcv_nxt: 0,
            ..time_wait()
        };
        assert_eq!(
            row(&wrapped, &seg(FIN | ACK, 0xffff_ffff, SND_NXT, 0, None)).1,
            Reason::FinRetransmit
        );
        // A FIN elsewhere is not a retransmission (T10, no re-arm).
        let d = decide(&tw, &seg(FIN | ACK, RCV_NXT, SND_NXT, 0, None));
        assert_eq!((d.reason, d.rearm_2msl), (Reason::OtherAck, false));
    }

    #[test]
    fn t7_exact_duplicate_ack_is_dropped() {
        let tw = time_wait();
        for flags in [ACK, ACK | PSH, ACK | ECE, ACK | CWR | URG] {
            let d = decide(&tw, &seg(flags, RCV_NXT, SND_NXT, 0, Some(TS_RECENT + 1)));
            assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::DupAck));
        }
    }

    #[test]
    fn in_order_segments_take_the_tsval_as_ts_recent() {
        let tw = time_wait();
        // An acceptable ACK at rcv_nxt with a newer TSval: T7, T8 and T9 alike.
        for ack in [SND_NXT, SND_NXT + 1, SND_NXT - 1] {
            let d = decide(&tw, &seg(ACK, RCV_NXT, ack, 0, Some(TS_RECENT + 50)));
            assert_eq!(d.ts_recent, Some(TS_RECENT + 50));
        }
        // T1 (an in-order RST) and T5 (an in-order segment without ACK) too.
        assert_eq!(decide(&tw, &seg(RST, RCV_NXT, 0, 0, Some(TS_RECENT + 60))).ts_recent, Some(TS_RECENT + 60));
        assert_eq!(decide(&tw, &seg(0, RCV_NXT, 0, 0, Some(TS_RECENT + 70))).ts_recent, Some(TS_RECENT + 70));
        assert_eq!(decide(&tw, &seg(RST, RCV_NXT, 0, 0, Some(TS_RECENT - 1))).ts_recent, None);
        assert_eq!(decide(&tw, &seg(RST, RCV_NXT + 9, 0, 0, Some(TS_RECENT + 60))).ts_recent, None);
        assert_eq!(decide(&tw, &seg(FIN, RCV_NXT - 1, 0, 0, Some(TS_RECENT + 60))).ts_recent, None);
        // Rejected by PAWS (T2), not at rcv_nxt (T10), with data, or without timestamps: no.
        assert_eq!(decide(&tw, &seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT - 1))).ts_recent, None);
        assert_eq!(decide(&tw, &seg(ACK, RCV_NXT + 1, SND_NXT, 0, Some(TS_RECENT + 50))).ts_recent, None);
        assert_eq!(decide(&tw, &seg(ACK, RCV_NXT, SND_NXT, 5, Some(TS_RECENT + 50))).ts_recent, None);
        let no_ts = EntryState { has_ts: false, ts_recent_valid: false, ..time_wait() };
        assert_eq!(decide(&no_ts, &seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT + 50))).ts_recent, None);
        // Once taken, a SYN whose TSval lies between the old and the new TS.Recent is old (T2),
        // not a newer incarnation (T4).
        let updated = EntryState { ts_recent: TS_RECENT + 50, ..time_wait() };
        assert_eq!(row(&updated, &seg(SYN, RCV_NXT - 10, 0, 0, Some(TS_RECENT + 10))).1, Reason::PawsRejected);
        assert_eq!(row(&tw, &seg(SYN, RCV_NXT - 10, 0, 0, Some(TS_RECENT + 10))).1, Reason::SynReuseByTimestamp);
    }

    #[test]
    fn t8_ack_of_unsent_data_gets_rate_limited_ack() {
        let tw = time_wait();
        let d = decide(&tw, &seg(ACK, RCV_NXT, SND_NXT + 1, 0, None));
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::AckAndDrop, Reason::AckOfUnsent)
        );
        assert!(d.rate_limited);
        assert!(!d.rearm_2msl);
        let near_wrap = EntryState {
            snd_nxt: 0xffff_ffff,
            ..time_wait()
        };
        assert_eq!(
            row(&near_wrap, &seg(ACK, RCV_NXT, 3, 0, None)).1,
            Reason::AckOfUnsent
        );
    }

    #[test]
    fn t9_old_ack_is_dropped() {
        let tw = time_wait();
        assert_eq!(
            row(&tw, &seg(ACK, RCV_NXT, SND_NXT - 1, 0, None)),
            (Verdict::Drop, Reason::OldAck)
        );
        let near_wrap = EntryState {
            snd_nxt: 3,
            ..time_wait()
        };
        assert_eq!(
            row(&near_wrap, &seg(ACK, RCV_NXT, 0xffff_fff0, 0, None)),
            (Verdict::Drop, Reason::OldAck)
        );
    }

    #[test]
    fn t10_other_ack_segments_get_an_ack() {
        let tw = time_wait();
        // (segment, rate-limited?)
        let cases = [
            (seg(ACK, RCV_NXT, SND_NXT, 10, None), false), // data
            (seg(ACK | PSH, RCV_NXT + 50, SND_NXT, 1, None), false),
            (seg(ACK, RCV_NXT - 1, SND_NXT, 0, None), true), // keepalive probe
            (seg(ACK, RCV_NXT + 1, SND_NXT + 9, 0, None), true),
            (seg(ACK | FIN, RCV_NXT, SND_NXT, 0, None), false), // FIN occupies a number
            (seg(ACK | SYN, RCV_NXT, SND_NXT, 0, None), true),
            (seg(ACK | SYN, RCV_NXT + 5, SND_NXT, 10, None), true), // SYN: limited anyway
        ];
        for (s, limited) in cases {
            let d = decide(&tw, &s);
            assert_eq!(
                (d.verdict, d.reason),
                (Verdict::AckAndDrop, Reason::OtherAck)
            );
            assert_eq!(d.rate_limited, limited);
            assert!(!d.rearm_2msl);
        }
        // Sequence wraparound: just below rcv_nxt across 2^32.
        let wrapped = EntryState {
            rcv_nxt: 2,
            ..time_wait()
        };
        assert_eq!(
            row(&wrapped, &seg(ACK, 0xffff_fffe, SND_NXT, 0, None)).1,
            Reason::OtherAck
        );
    }

    #[test]
    fn t11_multicast_is_dropped_before_any_reply_or_delete() {
        // One segment for every row that would reply, delete or pass, in both substates.
        let tw_rows = [
            seg(ACK, RCV_NXT, SND_NXT, 0, Some(TS_RECENT - 1)), // T2
            seg(SYN, RCV_NXT + 1, 0, 0, None),                  // T3
            seg(SYN, RCV_NXT, 0, 0, Some(TS_RECENT + 1)),       // T4
            seg(FIN | ACK, RCV_NXT - 1, SND_NXT, 0, None),      // T6
            seg(ACK, RCV_NXT, SND_NXT + 1, 0, None),            // T8
            seg(ACK, RCV_NXT, SND_NXT, 10, None),               // T10
            seg(RST, RCV_NXT, 0, 0, None),                      // T1
        ];
        let fw2_rows = [
            seg(ACK, RCV_NXT + 100_000, SND_NXT, 0, None), // F1
            seg(RST, RCV_NXT, 0, 0, None),                 // F2
            seg(SYN, RCV_NXT, 0, 0, None),                 // F3
            seg(FIN | ACK, RCV_NXT, SND_NXT, 0, Some(9)),  // F5
            seg(ACK, RCV_NXT, SND_NXT, 5, None),           // F6
        ];
        let mut unicast_replies_or_deletes = 0;
        for (state, rows) in [(time_wait(), &tw_rows[..]), (fin_wait2(), &fw2_rows[..])] {
            for s in rows {
                if decide(&state, s).verdict != Verdict::Drop {
                    unicast_replies_or_deletes += 1;
                }
                let bcast = TcpSegment {
                    mcast_or_bcast: true,
                    ..*s
                };
                let d = decide(&state, &bcast);
                assert_eq!(d.verdict, Verdict::Drop);
                assert_eq!(d.reason, Reason::McastOrBcast);
                assert!(!d.rate_limited);
                assert!(!d.rearm_2msl);
                assert_eq!(d.transition, None);
            }
        }
        // Every sample except T1 acts when unicast, so T11 changed each outcome.
        assert_eq!(
            unicast_replies_or_deletes,
            tw_rows.len() - 1 + fw2_rows.len()
        );
    }

    #[test]
    fn only_t6_rearms_the_timer() {
        let tw = time_wait();
        let samples = [
            seg(RST, RCV_NXT, 0, 0, None),
            seg(ACK, RCV_NXT, SND_NXT, 0, Some(1)),
            seg(SYN, RCV_NXT + 1, 0, 0, None),
            seg(FIN, RCV_NXT - 1, 0, 0, None),
            seg(FIN | ACK, RCV_NXT - 1, SND_NXT, 0, None),
            seg(ACK, RCV_NXT, SND_NXT, 0, None),
            seg(ACK, RCV_NXT, SND_NXT + 1, 0, None),
            seg(ACK, RCV_NXT, SND_NXT - 1, 0, None),
            seg(ACK, RCV_NXT + 3, SND_NXT, 7, None),
        ];
        let mut rearms = 0;
        for s in samples {
            let d = decide(&tw, &s);
            assert_eq!(d.rearm_2msl, d.reason == Reason::FinRetransmit);
            if d.rearm_2msl {
                rearms += 1;
            }
        }
        assert_eq!(rearms, 1);
    }

    #[test]
    fn in_window_matches_linux() {
        // Starts at the left edge (even with a zero window).
        assert!(tcp_in_window(100, 100, 100, 100));
        assert!(tcp_in_window(100, 110, 100, 200));
        // Overlaps the window.
        assert!(tcp_in_window(90, 101, 100, 200));
        assert!(tcp_in_window(199, 210, 100, 200));
        // Entirely old, or starting at/after the right edge.
        assert!(!tcp_in_window(90, 100, 100, 200));
        assert!(!tcp_in_window(200, 201, 100, 200));
        // Empty segment exactly at the right edge.
        assert!(tcp_in_window(200, 200, 100, 200));
        // Across 2^32.
        assert!(tcp_in_window(0x10, 0x20, 0xffff_ff00, 0x0000_0f00));
        assert!(!tcp_in_window(
            0x0000_0f01,
            0x0000_0f02,
            0xffff_ff00,
            0x0000_0f00
        ));
    }

    #[test]
    fn receive_window_scales_and_clamps() {
        assert_eq!(fin_wait2().receive_window(), 502 << 7);
        let huge = EntryState {
            last_win: 0xffff,
            rcv_wscale: 30,
            ..fin_wait2()
        };
        assert_eq!(huge.receive_window(), 0xffff << 14);
        let unscaled = EntryState {
            last_win: 1234,
            rcv_wscale: 0,
            ..fin_wait2()
        };
        assert_eq!(unscaled.receive_window(), 1234);
    }

    #[test]
    fn f1_out_of_window_gets_rate_limited_ack() {
        let fw2 = fin_wait2();
        let window = fw2.receive_window();
        let d = decide(&fw2, &seg(ACK, RCV_NXT + window + 1, SND_NXT, 0, None));
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::AckAndDrop, Reason::Fw2OutOfWindow)
        );
        assert!(d.rate_limited);
        assert_eq!(d.transition, None);
        // Entirely old data is answered, and not rate-limited.
        let d = decide(&fw2, &seg(ACK | PSH, RCV_NXT - 50, SND_NXT, 50, None));
        assert_eq!((d.reason, d.rate_limited), (Reason::Fw2OutOfWindow, false));
        // An old SYN ends at rcv_nxt: out of window, so F1 rather than F3.
        assert_eq!(
            row(&fw2, &seg(SYN, RCV_NXT - 1, 0, 0, None)).1,
            Reason::Fw2OutOfWindow
        );
        // Zero window: only seq == rcv_nxt fits.
        let closed = EntryState {
            last_win: 0,
            ..fin_wait2()
        };
        assert_eq!(
            row(&closed, &seg(ACK, RCV_NXT + 1, SND_NXT, 1, None)).1,
            Reason::Fw2OutOfWindow
        );
        assert_eq!(
            row(&closed, &seg(ACK, RCV_NXT, SND_NXT, 0, None)).1,
            Reason::Fw2NothingNew
        );
    }

    #[test]
    fn f1_window_wraps_at_2_pow_32() {
        let fw2 = EntryState {
            rcv_nxt: 0xffff_ff00,
            ..fin_wait2()
        };
        // 0x10 is 0x110 bytes past rcv_nxt, well inside 64256: in window, so new data (F6).
        assert_eq!(
            row(&fw2, &seg(ACK, 0x10, SND_NXT, 10, None)).1,
            Reason::Fw2NewData
        );
        // 0xfc00 lies 0xfd00 = 64768 bytes past rcv_nxt, beyond the 64256-byte window.
        assert_eq!(
            row(&fw2, &seg(ACK, 0xfc00, SND_NXT, 10, None)).1,
            Reason::Fw2OutOfWindow
        );
        // A FIN that wraps rcv_nxt to 0 is still the expected FIN (F5).
        let last = EntryState {
            rcv_nxt: 0xffff_ffff,
            ..fin_wait2()
        };
        let d = decide(&last, &seg(FIN | ACK, 0xffff_ffff, SND_NXT, 0, None));
        assert_eq!(d.reason, Reason::Fw2FinReceived);
        assert_eq!(d.transition.map(|t| t.rcv_nxt), Some(0));
    }

    #[test]
    fn f1_paws_after_ts_recent_is_learned() {
        let learned = EntryState {
            ts_recent: 5000,
            ts_recent_valid: true,
            ..fin_wait2()
        };
        let old = seg(FIN | ACK, RCV_NXT, SND_NXT, 0, Some(4999));
        let d = decide(&learned, &old);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::AckAndDrop, Reason::Fw2PawsRejected)
        );
        assert!(!d.rate_limited); // a FIN occupies sequence space
        assert_eq!(d.transition, None);
        // Before ts_recent is learned (handoff), the same FIN completes the close.
        assert_eq!(row(&fin_wait2(), &old).1, Reason::Fw2FinReceived);
    }

    #[test]
    fn f1_out_of_window_rst_is_dropped_silently() {
        let fw2 = fin_wait2();
        for seq in [
            RCV_NXT - 1,
            RCV_NXT + fw2.receive_window() + 1,
            RCV_NXT ^ 0x8000_0000,
        ] {
            let d = decide(&fw2, &seg(RST, seq, 0, 0, None));
            assert_eq!(
                (d.verdict, d.reason),
                (Verdict::Drop, Reason::Fw2RstOutOfWindow)
            );
            assert!(!d.rate_limited);
        }
    }

    #[test]
    fn f2_rst_in_window_deletes_and_drops() {
        let fw2 = fin_wait2();
        for s in [
            seg(RST, RCV_NXT, 0, 0, None),
            seg(RST | ACK, RCV_NXT + 1000, SND_NXT, 0, None),
        ] {
            assert_eq!(row(&fw2, &s), (Verdict::DeleteAndDrop, Reason::Fw2Reset));
        }
        // PAWS does not apply to RST (RFC 7323 §5.3 R1).
        let learned = EntryState {
            ts_recent: 5000,
            ts_recent_valid: true,
            ..fin_wait2()
        };
        assert_eq!(
            row(&learned, &seg(RST, RCV_NXT, 0, 0, Some(1))),
            (Verdict::DeleteAndDrop, Reason::Fw2Reset)
        );
    }

    #[test]
    fn f3_syn_in_window_resets_and_deletes() {
        let fw2 = fin_wait2();
        for s in [
            seg(SYN, RCV_NXT, 0, 0, None),
            seg(SYN, RCV_NXT + 10, 0, 0, None),
            seg(SYN | ACK, RCV_NXT + 10, SND_NXT, 0, None),
        ] {
            let d = decide(&fw2, &s);
            assert_eq!(
                (d.verdict, d.reason),
                (Verdict::RstAndDelete, Reason::Fw2Syn)
            );
            assert!(!d.rate_limited);
        }
    }

    #[test]
    fn f4_nothing_new_is_dropped() {
        let fw2 = fin_wait2();
        for s in [
            seg(ACK, RCV_NXT, SND_NXT, 0, None),
            seg(ACK | PSH, RCV_NXT, SND_NXT, 0, None),
            seg(PSH, RCV_NXT, 0, 10, None),
            seg(FIN, RCV_NXT, 0, 0, None),
        ] {
            assert_eq!(row(&fw2, &s), (Verdict::Drop, Reason::Fw2NothingNew));
        }
    }

    #[test]
    fn f5_fin_completes_the_close() {
        let fw2 = fin_wait2();
        let fin = seg(FIN | ACK, RCV_NXT, SND_NXT, 0, Some(123_456));
        let d = decide(&fw2, &fin);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::AckAndDrop, Reason::Fw2FinReceived)
        );
        assert!(!d.rate_limited);
        assert!(!d.rearm_2msl);
        assert_eq!(
            d.transition,
            Some(FinWait2Completion {
                rcv_nxt: RCV_NXT + 1,
                ts_recent: Some(123_456)
            })
        );

        // Applying it gives a TIME_WAIT entry whose replies echo the FIN's TSval ...
        let mut entry = fw2;
        assert_eq!(entry.reply_tsecr(), Some(0));
        if let Some(t) = d.transition {
            entry.complete_fin_wait2(t);
        }
        assert_eq!(entry.substate, Substate::TimeWait);
        assert_eq!(entry.rcv_nxt, RCV_NXT + 1);
        assert_eq!(entry.ts_recent, 123_456);
        assert!(entry.ts_recent_valid);
        assert_eq!(entry.reply_tsecr(), Some(123_456));
        // ... and which recognises the same FIN again as a retransmission (T6).
        assert_eq!(row(&entry, &fin).1, Reason::FinRetransmit);
    }

    #[test]
    fn f5_timestamp_only_when_both_sides_use_it() {
        let fin_no_ts = seg(FIN | ACK, RCV_NXT, SND_NXT, 0, None);
        let t = decide(&fin_wait2(), &fin_no_ts).transition;
        assert_eq!(
            t,
            Some(FinWait2Completion {
                rcv_nxt: RCV_NXT + 1,
                ts_recent: None
            })
        );
        let no_ts = EntryState {
            has_ts: false,
            ..fin_wait2()
        };
        let t = decide(&no_ts, &seg(FIN | ACK, RCV_NXT, SND_NXT, 0, Some(9))).transition;
        assert_eq!(
            t,
            Some(FinWait2Completion {
                rcv_nxt: RCV_NXT + 1,
                ts_recent: None
            })
        );
        // Without a TSval, applying keeps ts_recent unknown.
        let mut entry = fin_wait2();
        if let Some(t) = decide(&fin_wait2(), &fin_no_ts).transition {
            entry.complete_fin_wait2(t);
        }
        assert_eq!(entry.substate, Substate::TimeWait);
        assert!(!entry.ts_recent_valid);
    }

    #[test]
    fn f5_fin_behind_retransmitted_data() {
        // Old data followed by the FIN: end_seq is rcv_nxt + 1, as Linux accepts.
        let d = decide(
            &fin_wait2(),
            &seg(FIN | ACK | PSH, RCV_NXT - 5, SND_NXT, 5, None),
        );
        assert_eq!(d.reason, Reason::Fw2FinReceived);
        assert_eq!(d.transition.map(|t| t.rcv_nxt), Some(RCV_NXT + 1));
    }

    #[test]
    fn f6_new_data_or_misplaced_fin_resets() {
        let fw2 = fin_wait2();
        for s in [
            seg(ACK, RCV_NXT, SND_NXT, 10, None),
            seg(ACK | FIN, RCV_NXT, SND_NXT, 10, None),
            seg(ACK | FIN, RCV_NXT + 5, SND_NXT, 0, None),
            seg(ACK | PSH, RCV_NXT - 5, SND_NXT, 10, None),
        ] {
            let d = decide(&fw2, &s);
            assert_eq!(
                (d.verdict, d.reason),
                (Verdict::RstAndDelete, Reason::Fw2NewData)
            );
            assert_eq!(d.transition, None);
        }
    }

    #[test]
    fn reply_tsecr_by_timestamp_state() {
        assert_eq!(time_wait().reply_tsecr(), Some(TS_RECENT));
        assert_eq!(fin_wait2().reply_tsecr(), Some(0));
        assert_eq!(
            EntryState {
                has_ts: false,
                ..time_wait()
            }
            .reply_tsecr(),
            None
        );
    }

    #[test]
    fn reasons_name_their_rows() {
        let rows = [
            (Reason::RstDropped, "T1"),
            (Reason::PawsRejected, "T2"),
            (Reason::SynReuseBySeq, "T3"),
            (Reason::SynReuseByTimestamp, "T4"),
            (Reason::NoAck, "T5"),
            (Reason::FinRetransmit, "T6"),
            (Reason::DupAck, "T7"),
            (Reason::AckOfUnsent, "T8"),
            (Reason::OldAck, "T9"),
            (Reason::OtherAck, "T10"),
            (Reason::McastOrBcast, "T11"),
            (Reason::Fw2OutOfWindow, "F1"),
            (Reason::Fw2PawsRejected, "F1"),
            (Reason::Fw2RstOutOfWindow, "F1"),
            (Reason::Fw2Reset, "F2"),
            (Reason::Fw2Syn, "F3"),
            (Reason::Fw2NothingNew, "F4"),
            (Reason::Fw2FinReceived, "F5"),
            (Reason::Fw2NewData, "F6"),
        ];
        for (reason, name) in rows {
            assert_eq!(reason.row(), name);
        }
    }
}
