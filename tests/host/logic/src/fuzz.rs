// SPDX-License-Identifier: GPL-2.0

//! Seeded fuzzing of the pure path a segment takes in the module: parse (the 128-byte copy and
//! a layout the glue could report), decide, complete a FIN_WAIT_2 entry, build the ACK and the
//! RST. Runs under libtest with overflow checks on (the test profile), as the debug kernel runs
//! the same code with `RUST_OVERFLOW_CHECKS`: a panic, an overflow, an index out of range, a
//! parsed length beyond the packet, or a reply that fails its own checksum fails the test with
//! the seed and iteration in the message. `RTW_FUZZ_SEED` and `RTW_FUZZ_ITERS` change the run.

extern crate std;

use crate::logic::family::Family;
use crate::logic::reply::{build_entry_ack, build_rst, checksum_ok, IpFields, REPLY_MAX};
use crate::logic::segment::{parse_ipv4_in, parse_ipv6_in, Layout, TcpSegment, Timestamp};
use crate::logic::twcheck::{decide, EntryState, Substate};

/// splitmix64, as the guest fuzzers use.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn u32(&mut self) -> u32 {
        self.next() as u32
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A well-formed segment to start from: what the reply builder makes is a valid packet.
fn template(rng: &mut Rng, buf: &mut [u8; REPLY_MAX]) -> usize {
    let v6 = rng.chance(50);
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    for b in src.iter_mut().chain(dst.iter_mut()) {
        *b = rng.next() as u8;
    }
    if !v6 {
        src[4..].fill(0);
        dst[4..].fill(0);
    }
    let seg = TcpSegment {
        family: if v6 { Family::V6 } else { Family::V4 },
        src_addr: src,
        dst_addr: dst,
        src_port: rng.next() as u16,
        dst_port: rng.next() as u16,
        seq: rng.u32(),
        ack: rng.u32(),
        flags: rng.next() as u8,
        window: rng.next() as u16,
        payload_len: 0,
        ts: None,
        mcast_or_bcast: false,
    };
    let state = random_state(rng);
    build_entry_ack(buf, &seg, &state, rng.u32(), IpFields::plain(64))
}

fn random_state(rng: &mut Rng) -> EntryState {
    EntryState {
        snd_nxt: rng.u32(),
        rcv_nxt: rng.u32(),
        last_win: rng.next() as u16,
        // Beyond 14 too: the state must clamp what an add could not have passed.
        rcv_wscale: rng.below(20) as u8,
        ts_recent: rng.u32(),
        has_ts: rng.chance(50),
        ts_recent_valid: rng.chance(50),
        substate: if rng.chance(50) { Substate::TimeWait } else { Substate::FinWait2 },
    }
}

#[test]
fn parse_decide_reply_survive_random_and_damaged_segments() {
    let seed = env_u64("RTW_FUZZ_SEED", 0x7274_7721);
    let iters = env_u64("RTW_FUZZ_ITERS", 1_000_000);
    let mut rng = Rng(seed);
    let (mut parsed, mut replies) = (0u64, 0u64);
    for i in 0..iters {
        // The glue copies at most 128 bytes; the packet may be longer (payload, skb_len).
        let mut pkt = [0u8; 128];
        let mut tmpl = [0u8; REPLY_MAX];
        let mut n = template(&mut rng, &mut tmpl);
        pkt[..n].copy_from_slice(&tmpl[..n]);
        if rng.chance(20) {
            // Entirely random bytes, with a plausible version nibble half the time.
            for b in pkt.iter_mut() {
                *b = rng.next() as u8;
            }
            n = rng.below(129) as usize;
            if rng.chance(50) {
                pkt[0] = (pkt[0] & 0x0f) | if rng.chance(50) { 0x40 } else { 0x60 };
            }
        } else {
            for _ in 0..rng.below(5) {
                let at = rng.below(n as u64) as usize;
                pkt[at] ^= 1 + rng.below(255) as u8;
            }
            if rng.chance(10) {
                n = rng.below(n as u64 + 1) as usize;
            }
        }
        let copied = &pkt[..n];
        let layout = Layout {
            skb_len: match rng.below(4) {
                0 => n as u32,
                1 => (n as u32).saturating_add(rng.below(70_000) as u32),
                2 => rng.below(n as u64 + 1) as u32,
                _ => rng.u32(),
            },
            ext_len: if rng.chance(80) { 0 } else { 8 * rng.below(10) as u32 + rng.below(3) as u32 },
            gso_tcp: rng.chance(10),
        };
        let res = if copied.first().is_some_and(|b| b >> 4 == 6) {
            parse_ipv6_in(copied, layout)
        } else {
            parse_ipv4_in(copied, layout)
        };
        let Ok(mut seg) = res else { continue };
        parsed += 1;
        assert!(
            seg.payload_len <= layout.skb_len,
            "seed {seed} iteration {i}: payload {} beyond the packet's {} bytes",
            seg.payload_len,
            layout.skb_len
        );
        if rng.chance(30) {
            seg.ts = Some(Timestamp { tsval: rng.u32(), tsecr: rng.u32() });
        }
        let mut state = random_state(&mut rng);
        let d = decide(&state, &seg);
        if let Some(c) = d.transition {
            state.complete_fin_wait2(c);
        }
        let mut out = [0u8; REPLY_MAX];
        let ip = IpFields { hop_limit: rng.next() as u8, dsfield: rng.next() as u8, flowlabel: rng.u32() };
        let len = build_entry_ack(&mut out, &seg, &state, rng.u32(), ip);
        assert!(checksum_ok(&out[..len]), "seed {seed} iteration {i}: ACK with a bad checksum");
        let len = build_rst(&mut out, &seg, ip);
        assert!(len == 0 || checksum_ok(&out[..len]), "seed {seed} iteration {i}: RST with a bad checksum");
        replies += 1;
        let _ = d.reason.row();
    }
    // The damage must leave enough segments parseable for the rest of the path to be exercised.
    assert!(parsed * 4 > iters, "seed {seed}: only {parsed} of {iters} parsed");
    assert_eq!(parsed, replies);
}
