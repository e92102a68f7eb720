// SPDX-License-Identifier: GPL-2.0

//! Exact bytes of requests, computed by hand from the spec, and hand-made replies.

use super::*;
use crate::entry::{Entry, Key, Substate, Tuple};

fn tuple(l: &str, r: &str) -> Tuple {
    Tuple::new(l.parse().unwrap(), r.parse().unwrap()).unwrap()
}

/// The family message that opens a datagram.
fn first_message(bytes: &[u8]) -> TwMessage {
    match parse_datagram::<TwMessage>(bytes).unwrap().remove(0) {
        Reply::Message { msg, .. } => msg,
        r => panic!("{r:?}"),
    }
}

fn v4_entry() -> Entry {
    Entry {
        tuple: tuple("10.0.0.1:80", "10.0.0.2:40000"),
        snd_nxt: 0x0102_0304,
        rcv_nxt: 0x0a0b_0c0d,
        last_win: 502,
        rcv_wscale: 7,
        has_ts: true,
        ts_recent: Some(0x1122_3344),
        ts_offset: 0x5566_7788,
        substate: Substate::TimeWait,
        expires_ms: None,
        tos: 0,
        mark: 0,
        bound_ifindex: 0,
        flowlabel: 0,
        priority: 0,
        txhash: 0,
    }
}

#[rustfmt::skip]
const V4_ADD: [u8; 136] = [
    // nlmsghdr: len 136, type 0x20 (the family id), flags REQUEST|ACK, seq 1, pid 0
    0x88, 0, 0, 0,  0x20, 0,  0x05, 0,  1, 0, 0, 0,  0, 0, 0, 0,
    // genlmsghdr: cmd add (1), version 1
    1, 1, 0, 0,
    // entry nest: len 116, type 1 | NLA_F_NESTED
    0x74, 0, 0x01, 0x80,
      5, 0, 1, 0,   2, 0, 0, 0,              // family AF_INET
      8, 0, 2, 0,   10, 0, 0, 1,             // local-addr 10.0.0.1
      8, 0, 3, 0,   10, 0, 0, 2,             // remote-addr 10.0.0.2
      6, 0, 4, 0,   0x50, 0, 0, 0,           // local-port 80, host order
      6, 0, 5, 0,   0x40, 0x9c, 0, 0,        // remote-port 40000 = 0x9c40
      8, 0, 6, 0,   0, 0, 0, 0,              // ifindex 0
      8, 0, 7, 0,   4, 3, 2, 1,              // snd-nxt 0x01020304
      8, 0, 8, 0,   0x0d, 0x0c, 0x0b, 0x0a,  // rcv-nxt 0x0a0b0c0d
      6, 0, 9, 0,   0xf6, 0x01, 0, 0,        // last-win 502
      5, 0, 10, 0,  7, 0, 0, 0,              // rcv-wscale 7
      8, 0, 11, 0,  0x44, 0x33, 0x22, 0x11,  // ts-recent
      8, 0, 12, 0,  0x88, 0x77, 0x66, 0x55,  // ts-offset
      4, 0, 13, 0,                           // has-ts
      4, 0, 14, 0,                           // ts-recent-valid
      5, 0, 15, 0,  0, 0, 0, 0,              // substate time-wait
];

#[test]
fn add_request_ipv4_exact_bytes() {
    let bytes = serialize_request(add_message(&[v4_entry()], false), 0x20, 1, DO_FLAGS);
    assert_eq!(bytes, V4_ADD.to_vec());
}

#[rustfmt::skip]
const V6_ADD: [u8; 140] = [
    // nlmsghdr: len 140, type 0x1c, flags REQUEST|ACK, seq 0x01020304, pid 0
    0x8c, 0, 0, 0,  0x1c, 0,  0x05, 0,  4, 3, 2, 1,  0, 0, 0, 0,
    1, 1, 0, 0,
    // entry nest: len 116 (no timestamps: no ts-recent, ts-offset or flags)
    0x74, 0, 0x01, 0x80,
      5, 0, 1, 0,   10, 0, 0, 0,             // family AF_INET6
      20, 0, 2, 0,                           // local-addr fe80::1
        0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 1,
      20, 0, 3, 0,                           // remote-addr fe80::2
        0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 2,
      6, 0, 4, 0,   0xbb, 0x01, 0, 0,        // local-port 443
      6, 0, 5, 0,   0x50, 0xc3, 0, 0,        // remote-port 50000
      8, 0, 6, 0,   3, 0, 0, 0,              // ifindex 3 (the %3 scope)
      8, 0, 7, 0,   1, 0, 0, 0,              // snd-nxt
      8, 0, 8, 0,   2, 0, 0, 0,              // rcv-nxt
      6, 0, 9, 0,   0xff, 0xff, 0, 0,        // last-win 65535
      5, 0, 10, 0,  14, 0, 0, 0,             // rcv-wscale 14
      5, 0, 15, 0,  1, 0, 0, 0,              // substate fin-wait2
    4, 0, 2, 0,                              // replace
];

#[test]
fn add_request_ipv6_exact_bytes() {
    let mut e = Entry::new(tuple("[fe80::1%3]:443", "[fe80::2]:50000"), 1, 2);
    e.last_win = 65535;
    e.rcv_wscale = 14;
    e.substate = Substate::FinWait2;
    let bytes = serialize_request(add_message(&[e], true), 0x1c, 0x0102_0304, DO_FLAGS);
    assert_eq!(bytes, V6_ADD.to_vec());
}

#[test]
fn small_requests_exact_bytes() {
    // Headers only: nlmsghdr (len 20, type 0x20, flags, seq, pid 0) and genlmsghdr.
    #[rustfmt::skip]
    let bare = [
        // REQUEST|DUMP (ROOT|MATCH), cmd get; the others REQUEST|ACK
        (dump_message(), DUMP_FLAGS, 9,
         [0x14, 0, 0, 0,  0x20, 0,  0x01, 0x03,  9, 0, 0, 0,  0, 0, 0, 0,  3, 1, 0, 0]),
        (flush_message(), DO_FLAGS, 2,
         [0x14, 0, 0, 0,  0x20, 0,  0x05, 0,  2, 0, 0, 0,  0, 0, 0, 0,  4, 1, 0, 0]),
        (stats_message(), DO_FLAGS, 3,
         [0x14, 0, 0, 0,  0x20, 0,  0x05, 0,  3, 0, 0, 0,  0, 0, 0, 0,  5, 1, 0, 0]),
    ];
    for (msg, flags, seq, bytes) in bare {
        assert_eq!(serialize_request(msg, 0x20, seq, flags), bytes.to_vec());
    }
    #[rustfmt::skip]
    let del = [
        0x48, 0, 0, 0,  0x20, 0,  0x05, 0,  4, 0, 0, 0,  0, 0, 0, 0,  2, 1, 0, 0,
        0x34, 0, 1, 0x80,
          5, 0, 1, 0,  2, 0, 0, 0,
          8, 0, 2, 0,  192, 0, 2, 1,
          8, 0, 3, 0,  192, 0, 2, 2,
          6, 0, 4, 0,  0x16, 0, 0, 0,        // 22
          6, 0, 5, 0,  0xff, 0xff, 0, 0,     // 65535
          8, 0, 6, 0,  0, 0, 0, 0,
    ];
    let t = tuple("192.0.2.1:22", "192.0.2.2:65535");
    assert_eq!(
        serialize_request(del_message(t), 0x20, 4, DO_FLAGS),
        del.to_vec()
    );
    let mut get = del;
    get[16] = 3; // only the command differs
    get[8] = 5;
    assert_eq!(
        serialize_request(get_message(t), 0x20, 5, DO_FLAGS),
        get.to_vec()
    );
}

/// `del` and `get` with a bound device: the key's nest gains `bound-ifindex` (attribute 20)
/// after the tuple's; an entry names itself by its `bound_ifindex`; 0 is not sent.
#[test]
fn del_and_get_with_bound_ifindex_exact_bytes() {
    #[rustfmt::skip]
    let del = [
        // len 20 + 60 = 80, cmd del (2)
        0x50, 0, 0, 0,  0x20, 0,  0x05, 0,  4, 0, 0, 0,  0, 0, 0, 0,  2, 1, 0, 0,
        0x3c, 0, 1, 0x80,
          5, 0, 1, 0,  2, 0, 0, 0,
          8, 0, 2, 0,  192, 0, 2, 1,
          8, 0, 3, 0,  192, 0, 2, 2,
          6, 0, 4, 0,  0x16, 0, 0, 0,
          6, 0, 5, 0,  0xff, 0xff, 0, 0,
          8, 0, 6, 0,  0, 0, 0, 0,
          8, 0, 20, 0, 0x2a, 0x01, 0, 0,     // bound-ifindex 298 = 0x12a
    ];
    let t = tuple("192.0.2.1:22", "192.0.2.2:65535");
    let k = Key::new(t, 298);
    assert_eq!(
        serialize_request(del_message(k), 0x20, 4, DO_FLAGS),
        del.to_vec()
    );
    let mut e = Entry::new(t, 1, 2);
    e.bound_ifindex = 298;
    assert_eq!(
        serialize_request(del_message(e), 0x20, 4, DO_FLAGS),
        del.to_vec()
    );
    let mut get = del;
    get[16] = 3;
    assert_eq!(
        serialize_request(get_message(k), 0x20, 4, DO_FLAGS),
        get.to_vec()
    );
    // Without a device (a tuple, a key or an entry with 0): the 72 bytes of before, as
    // small_requests_exact_bytes has them.
    let mut plain = del[..0x48].to_vec();
    plain[0] = 0x48; // message length
    plain[20] = 0x34; // nest length
    e.bound_ifindex = 0;
    for msg in [del_message(t), del_message(Key::new(t, 0)), del_message(e)] {
        assert_eq!(serialize_request(msg, 0x20, 4, DO_FLAGS), plain);
    }
    assert_eq!(key_attrs(&k).last(), Some(&EntryAttr::BoundIfindex(298)));
}

#[rustfmt::skip]
const ADD_REPLY: [u8; 120] = [
    // the reply: len 84, type 0x20, flags 0, seq 1, pid 0; cmd add, version 1
    0x54, 0, 0, 0,  0x20, 0,  0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  1, 1, 0, 0,
    // entry 1: the tuple and result 0
    0x34, 0, 1, 0x80,
      5, 0, 1, 0,  2, 0, 0, 0,
      8, 0, 2, 0,  10, 0, 0, 1,
      8, 0, 3, 0,  10, 0, 0, 2,
      6, 0, 4, 0,  0x50, 0, 0, 0,
      6, 0, 5, 0,  0x40, 0x9c, 0, 0,
      8, 0, 17, 0, 0, 0, 0, 0,
    // entry 2: only its result, -EEXIST
    0x0c, 0, 1, 0x80,
      8, 0, 17, 0, 0xef, 0xff, 0xff, 0xff,
    // then the ACK: NLMSG_ERROR, NLM_F_CAPPED, code 0, the request's header
    0x24, 0, 0, 0,  2, 0,  0, 1,  1, 0, 0, 0,  0, 0, 0, 0,
    0, 0, 0, 0,
    0x88, 0, 0, 0,  0x20, 0,  0x05, 0,  1, 0, 0, 0,  0, 0, 0, 0,
];

#[test]
fn parse_hand_made_add_reply() {
    let replies = parse_datagram::<TwMessage>(&ADD_REPLY).unwrap();
    assert_eq!(replies.len(), 2);
    let Reply::Message { seq: 1, msg, .. } = &replies[0] else {
        panic!("{:?}", replies[0])
    };
    assert_eq!(msg.cmd, cmd::ADD);
    let mut second = v4_entry();
    second.tuple = tuple("10.0.0.1:81", "10.0.0.2:40000");
    assert_eq!(
        add_results(msg, &[v4_entry(), second]).unwrap(),
        vec![0, -libc::EEXIST]
    );
    assert_eq!(
        replies[1],
        Reply::Ack {
            seq: 1,
            extack: Extack::default()
        }
    );
}

#[test]
fn add_results_refuses_mismatches() {
    let msg = &first_message(&ADD_REPLY);
    // Count differs.
    let err = add_results(msg, &[v4_entry()]).unwrap_err().to_string();
    assert!(err.contains("2 results for 1 entries"), "{err}");
    // The first nest names another tuple than the one sent first.
    let mut other = v4_entry();
    other.tuple = tuple("10.0.0.9:80", "10.0.0.2:40000");
    let err = add_results(msg, &[other, v4_entry()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("names 10.0.0.1:80 10.0.0.2:40000"), "{err}");
}

#[test]
fn parse_hand_made_stats_reply() {
    #[rustfmt::skip]
    let bytes = [
        0x44, 0, 0, 0,  0x20, 0,  0, 0,  7, 0, 0, 0,  0, 0, 0, 0,  5, 1, 0, 0,
        0x30, 0, 3, 0x80,
          8, 0, 1, 0,    5, 0, 0, 0,                  // entries 5 (4 bytes)
          12, 0, 2, 0,   2, 0, 0, 0, 1, 0, 0, 0,      // added 0x1_0000_0002 (8 bytes)
          8, 0, 20, 0,   64, 0, 0, 0,                 // capacity 64
          8, 0, 21, 0,   3, 0, 0, 0,                  // replies-failed 3
          8, 0, 25, 0,   7, 0, 0, 0,                  // a counter this version lacks
    ];
    assert_eq!(parse_datagram::<TwMessage>(&bytes).unwrap()[0].seq(), 7);
    let stats = Stats::from_message(&first_message(&bytes)).unwrap();
    assert_eq!(stats.get("entries"), Some(5));
    assert_eq!(stats.get("added"), Some(0x1_0000_0002));
    assert_eq!(stats.get("capacity"), Some(64));
    assert_eq!(stats.get("replies-failed"), Some(3));
    assert_eq!(stats.get("stat-25"), Some(7));
    assert_eq!(stats.0.len(), 5);
}

#[test]
fn stats_uint_of_bad_size_is_an_error() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 0, 0, 0,  0x20, 0,  0, 0,  7, 0, 0, 0,  0, 0, 0, 0,  5, 1, 0, 0,
        0x0c, 0, 3, 0x80,
          6, 0, 1, 0,  5, 0, 0, 0,   // 2-byte uint
    ];
    assert!(parse_datagram::<TwMessage>(&bytes).is_err());
}

#[test]
fn parse_hand_made_flush_reply() {
    #[rustfmt::skip]
    let bytes = [
        0x1c, 0, 0, 0,  0x20, 0,  0, 0,  2, 0, 0, 0,  0, 0, 0, 0,  4, 1, 0, 0,
        8, 0, 4, 0,  42, 0, 0, 0,
    ];
    assert_eq!(flushed_count(&first_message(&bytes)).unwrap(), 42);
}

#[test]
fn dump_entry_round_trip_with_expiry() {
    let mut e = v4_entry();
    e.substate = Substate::FinWait2;
    e.expires_ms = Some(59_800);
    let mut attrs = entry_attrs(&e);
    attrs.push(EntryAttr::ExpiresMs(59_800));
    let msg = TwMessage {
        cmd: cmd::GET,
        attrs: vec![MainAttr::Entry(attrs)],
    };
    let bytes = serialize_request(msg, 0x20, 11, 0x02 /* NLM_F_MULTI */);
    let got = reply_entries(&first_message(&bytes));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entry().unwrap(), e);
}

#[test]
fn reply_entry_checks() {
    let mut r = ReplyEntry::from_attrs(&tuple_attrs(&tuple("10.0.0.1:80", "10.0.0.2:1")));
    assert!(r.entry().unwrap_err().to_string().contains("snd-nxt"));
    r.snd_nxt = Some(1);
    r.rcv_nxt = Some(2);
    r.substate = Some(9);
    assert!(r
        .entry()
        .unwrap_err()
        .to_string()
        .contains("unknown substate 9"));
    r.substate = None;
    assert_eq!(r.entry().unwrap().substate, Substate::TimeWait);
    r.family = Some(7);
    assert!(r
        .entry()
        .unwrap_err()
        .to_string()
        .contains("unknown address family 7"));
    r.family = Some(10);
    assert!(r.entry().unwrap_err().to_string().contains("another size"));
}

fn two_entry_request() -> Vec<u8> {
    let mut a = Entry::new(tuple("10.0.0.1:80", "10.0.0.2:1"), 1, 2);
    a.substate = Substate::TimeWait;
    let b = Entry::new(tuple("10.0.0.1:80", "10.0.0.2:2"), 1, 2);
    serialize_request(add_message(&[a, b], false), 0x20, 1, DO_FLAGS)
}

#[test]
fn parse_error_with_extack_and_locate_it() {
    let request = two_entry_request();
    // Each entry nest is 4 + 11 * 8 = 92 bytes: entry 1 at 20, entry 2 at 112, its
    // attributes from 116: family 116, local-addr 124, remote-addr 132, local-port 140.
    assert_eq!(request.len(), 20 + 2 * 92);
    #[rustfmt::skip]
    let bytes = [
        // NLMSG_ERROR, flags CAPPED | ACK_TLVS, seq 1
        0x3c, 0, 0, 0,  2, 0,  0, 3,  1, 0, 0, 0,  0, 0, 0, 0,
        0xea, 0xff, 0xff, 0xff,                          // -EINVAL
        0xcc, 0, 0, 0,  0x20, 0,  0x05, 0,  1, 0, 0, 0,  0, 0, 0, 0, // the request's header
        13, 0, 1, 0,  b'b', b'a', b'd', b' ', b'p', b'o', b'r', b't', 0, 0, 0, 0, // MSG
        8, 0, 2, 0,   140, 0, 0, 0,                      // OFFS
    ];
    let replies = parse_datagram::<TwMessage>(&bytes).unwrap();
    let Reply::Error {
        seq: 1,
        errno,
        extack,
    } = &replies[0]
    else {
        panic!("{:?}", replies)
    };
    assert_eq!(*errno, libc::EINVAL);
    assert_eq!(extack.msg.as_deref(), Some("bad port"));
    assert_eq!(extack.offset, Some(140));
    let refusal = Refusal::new(*errno, extack, &request);
    assert_eq!(
        refusal.bad_attr,
        Some(Location {
            entry: Some(1),
            attr: "local-port".into()
        })
    );
    assert_eq!(refusal.entry_index(), Some(1));
    assert_eq!(
        refusal.to_string(),
        "Invalid argument (EINVAL): bad port; at attribute local-port of entry 2"
    );
    let with_lines = refusal.details(&|i| format!("line {}", [3, 7][i]));
    assert_eq!(with_lines, "bad port; at attribute local-port of line 7");
}

#[test]
fn extack_missing_attribute_and_uncapped_error() {
    let request = two_entry_request();
    // Not capped: the whole request is echoed before the TLVs.
    let mut bytes = vec![0u8; 16];
    bytes.extend_from_slice(&(-libc::EINVAL).to_le_bytes());
    bytes.extend_from_slice(&request);
    bytes.extend_from_slice(&[8, 0, 5, 0, 7, 0, 0, 0]); // MISS_TYPE snd-nxt
    bytes.extend_from_slice(&[8, 0, 6, 0, 20, 0, 0, 0]); // MISS_NEST: entry 1
    let len = bytes.len() as u32;
    bytes[0..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..6].copy_from_slice(&2u16.to_le_bytes());
    bytes[6..8].copy_from_slice(&0x200u16.to_le_bytes()); // ACK_TLVS only
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let replies = parse_datagram::<TwMessage>(&bytes).unwrap();
    let Reply::Error { errno, extack, .. } = &replies[0] else {
        panic!()
    };
    let r = Refusal::new(*errno, extack, &request);
    assert_eq!(r.missing, Some(("snd-nxt".to_string(), Some(0))));
    assert_eq!(r.entry_index(), Some(0));
    assert!(
        r.to_string()
            .ends_with("missing attribute snd-nxt in entry 1"),
        "{r}"
    );
}

#[test]
fn locate_top_level_and_outside() {
    let mut e = Entry::new(tuple("10.0.0.1:80", "10.0.0.2:1"), 1, 2);
    e.substate = Substate::FinWait2;
    let req = serialize_request(add_message(&[e], true), 0x20, 1, DO_FLAGS);
    // The replace flag follows the 92-byte nest.
    assert_eq!(
        locate(&req, 112),
        Some(Location {
            entry: None,
            attr: "replace".into()
        })
    );
    assert_eq!(
        locate(&req, 20),
        Some(Location {
            entry: Some(0),
            attr: "entry".into()
        })
    );
    assert_eq!(
        locate(&req, 24),
        Some(Location {
            entry: Some(0),
            attr: "family".into()
        })
    );
    assert_eq!(locate(&req, 4), None);
    assert_eq!(locate(&req, 4000), None);
}

#[test]
fn done_with_error_and_plain_done() {
    #[rustfmt::skip]
    let bytes = [
        0x1c, 0, 0, 0,  3, 0,  0x02, 0x02,  5, 0, 0, 0,  0, 0, 0, 0,
        0xf4, 0xff, 0xff, 0xff,                // -ENOMEM
        6, 0, 1, 0,  b'x', 0, 0, 0,            // MSG "x"
        0x14, 0, 0, 0,  3, 0,  0x02, 0,  6, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,
    ];
    let replies = parse_datagram::<TwMessage>(&bytes).unwrap();
    assert_eq!(replies.len(), 2);
    let Reply::Done {
        seq: 5,
        errno,
        extack,
    } = &replies[0]
    else {
        panic!()
    };
    assert_eq!(*errno, libc::ENOMEM);
    assert_eq!(extack.msg.as_deref(), Some("x"));
    assert_eq!(
        replies[1],
        Reply::Done {
            seq: 6,
            errno: 0,
            extack: Extack::default()
        }
    );
}

#[test]
fn ack_with_warning() {
    #[rustfmt::skip]
    let bytes = [
        0x2c, 0, 0, 0,  2, 0,  0, 3,  1, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,
        0x14, 0, 0, 0,  0x20, 0,  0x05, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        7, 0, 1, 0,  b'h', b'm', 0, 0,       // MSG "hm" (7 bytes, padded)
    ];
    let replies = parse_datagram::<TwMessage>(&bytes).unwrap();
    let Reply::Ack { extack, .. } = &replies[0] else {
        panic!()
    };
    assert_eq!(extack.msg.as_deref(), Some("hm"));
}

#[test]
fn unknown_attributes_are_kept_not_fatal() {
    #[rustfmt::skip]
    let bytes = [
        0x30, 0, 0, 0,  0x20, 0,  0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  3, 1, 0, 0,
        8, 0, 9, 0,  1, 2, 3, 4,                 // main attribute 9
        0x14, 0, 1, 0x80,
          8, 0, 40, 0,  1, 0, 0, 0,              // entry attribute 40
          8, 0, 17, 0,  0, 0, 0, 0,
    ];
    let msg = first_message(&bytes);
    assert_eq!(msg.attrs.len(), 2);
    assert_eq!(reply_entries(&msg)[0].result, Some(0));
}

#[test]
fn strerror_names() {
    assert_eq!(strerror(libc::EEXIST), "File exists (EEXIST)");
    assert_eq!(errno_name(libc::EADDRNOTAVAIL), Some("EADDRNOTAVAIL"));
}

#[test]
fn link_local_add_reply_without_ifindex_matches() {
    // The module's add reply echoes family, addresses and ports, not the ifindex.
    let sent = Entry::new(tuple("[fe80::1%3]:443", "[fe80::2]:50000"), 1, 2);
    let mut nest: Vec<EntryAttr> = tuple_attrs(&sent.tuple)
        .into_iter()
        .filter(|a| !matches!(a, EntryAttr::Ifindex(_)))
        .collect();
    nest.push(EntryAttr::Result(-libc::EADDRNOTAVAIL));
    let reply = TwMessage {
        cmd: cmd::ADD,
        attrs: vec![MainAttr::Entry(nest)],
    };
    assert_eq!(
        add_results(&reply, &[sent]).unwrap(),
        vec![-libc::EADDRNOTAVAIL]
    );
    // A dumped link-local entry without ifindex is shown as it is, not refused.
    let mut r = ReplyEntry::from_attrs(&tuple_attrs(&sent.tuple));
    r.ifindex = None;
    r.snd_nxt = Some(1);
    r.rcv_nxt = Some(2);
    let e = r.entry().unwrap();
    assert_eq!(e.tuple.local.to_string(), "[fe80::1]:443");
}

#[test]
fn timestamps_are_sent_only_when_known() {
    let mut e = Entry::new(tuple("10.0.0.1:80", "10.0.0.2:1"), 1, 2);
    let kinds = |e: &Entry| entry_attrs(e).iter().map(|a| a.kind()).collect::<Vec<_>>();
    assert!(!kinds(&e).contains(&entry_attr::TS_RECENT));
    assert!(!kinds(&e).contains(&entry_attr::TS_OFFSET));
    e.has_ts = true;
    e.substate = Substate::FinWait2;
    let k = kinds(&e);
    assert!(k.contains(&entry_attr::TS_OFFSET) && k.contains(&entry_attr::HAS_TS));
    assert!(!k.contains(&entry_attr::TS_RECENT) && !k.contains(&entry_attr::TS_RECENT_VALID));
}

/// An entry with every connection attribute set: what add sends comes back from get.
fn v6_entry_with_attrs() -> Entry {
    let mut e = Entry::new(tuple("[2001:db8::1]:443", "[2001:db8::2]:50000"), 7, 9);
    e.substate = Substate::FinWait2;
    e.has_ts = true;
    e.ts_offset = 3;
    e.tos = 0xb8;
    e.mark = 0x1234_5678;
    e.bound_ifindex = 4;
    e.flowlabel = 0xfffff;
    e.priority = 6;
    e.txhash = 0xdead_beef;
    e
}

#[test]
fn connection_attributes_round_trip_through_add_and_get() {
    let e = v6_entry_with_attrs();
    let bytes = serialize_request(add_message(&[e], false), 0x20, 1, DO_FLAGS);
    // The add request carries them after substate, in the spec's order, with their sizes.
    #[rustfmt::skip]
    let tail = [
        5, 0, 15, 0,  1, 0, 0, 0,                   // substate fin-wait2
        5, 0, 18, 0,  0xb8, 0, 0, 0,                // tos
        8, 0, 19, 0,  0x78, 0x56, 0x34, 0x12,       // mark
        8, 0, 20, 0,  4, 0, 0, 0,                   // bound-ifindex
        8, 0, 21, 0,  0xff, 0xff, 0x0f, 0,          // flowlabel
        8, 0, 22, 0,  6, 0, 0, 0,                   // priority
        8, 0, 23, 0,  0xef, 0xbe, 0xad, 0xde,       // txhash
    ];
    assert!(bytes.ends_with(&tail), "{bytes:?}");
    // The same nest as a get reply (with expires-ms) decodes to the same entry.
    let mut attrs = entry_attrs(&e);
    attrs.push(EntryAttr::ExpiresMs(1000));
    let msg = TwMessage {
        cmd: cmd::GET,
        attrs: vec![MainAttr::Entry(attrs)],
    };
    let reply = serialize_request(msg, 0x20, 2, 0);
    let got = reply_entries(&first_message(&reply))[0].entry().unwrap();
    let mut want = e;
    want.expires_ms = Some(1000);
    assert_eq!(got, want);
    // Zero is absent: an entry without them is sent exactly as before (V4_ADD above).
    let k = entry_attrs(&v4_entry())
        .iter()
        .map(|a| a.kind())
        .collect::<Vec<_>>();
    assert!(k.iter().all(|k| *k <= entry_attr::SUBSTATE));
}

#[test]
fn adopt_request_exact_bytes() {
    let a = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let b = tuple("[fe80::1%3]:443", "[fe80::2]:50000");
    let bytes = serialize_request(adopt_message(&[a, b]), 0x20, 7, DO_FLAGS);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        // nlmsghdr: len 20 + 52 + 76 = 148, type 0x20, REQUEST|ACK, seq 7; cmd adopt (6), v1
        &[0x94, 0, 0, 0,  0x20, 0,  0x05, 0,  7, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        // entry 1: only the key
        &[0x34, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,             // family AF_INET
            8, 0, 2, 0,   10, 0, 0, 1,            // local-addr
            8, 0, 3, 0,   10, 0, 0, 2,            // remote-addr
            6, 0, 4, 0,   0x50, 0, 0, 0,          // local-port 80
            6, 0, 5, 0,   0x40, 0x9c, 0, 0,       // remote-port 40000
            8, 0, 6, 0,   0, 0, 0, 0][..],        // ifindex 0
        // entry 2: link-local IPv6 with its scope
        &[0x4c, 0, 1, 0x80,
            5, 0, 1, 0,   10, 0, 0, 0,
            20, 0, 2, 0,  0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 1,
            20, 0, 3, 0,  0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 2,
            6, 0, 4, 0,   0xbb, 0x01, 0, 0,
            6, 0, 5, 0,   0x50, 0xc3, 0, 0,
            8, 0, 6, 0,   3, 0, 0, 0][..],        // ifindex 3
    ]
    .concat();
    assert_eq!(bytes, want);
}

#[test]
fn adopt_request_with_bound_ifindex_exact_bytes() {
    // A bound socket's key sends its device (bound-ifindex 5); an unbound one sends none.
    let a = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let b = tuple("[fe80::1%3]:443", "[fe80::2]:50000");
    let keys = [Key::new(a, 5), Key::new(b, 7), Key::new(a, 0)];
    let bytes = serialize_request(adopt_message(&keys), 0x20, 8, DO_FLAGS);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        // nlmsghdr: len 20 + 60 + 84 + 52 = 216, seq 8; cmd adopt (6), v1
        &[0xd8, 0, 0, 0,  0x20, 0,  0x05, 0,  8, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        &[0x3c, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,
            8, 0, 2, 0,   10, 0, 0, 1,
            8, 0, 3, 0,   10, 0, 0, 2,
            6, 0, 4, 0,   0x50, 0, 0, 0,
            6, 0, 5, 0,   0x40, 0x9c, 0, 0,
            8, 0, 6, 0,   0, 0, 0, 0,
            8, 0, 20, 0,  5, 0, 0, 0][..],        // bound-ifindex 5
        // link-local: ifindex (the scope, 3) and bound-ifindex (7) both sent
        &[0x54, 0, 1, 0x80,
            5, 0, 1, 0,   10, 0, 0, 0,
            20, 0, 2, 0,  0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 1,
            20, 0, 3, 0,  0xfe, 0x80, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 2,
            6, 0, 4, 0,   0xbb, 0x01, 0, 0,
            6, 0, 5, 0,   0x50, 0xc3, 0, 0,
            8, 0, 6, 0,   3, 0, 0, 0,
            8, 0, 20, 0,  7, 0, 0, 0][..],
        &[0x34, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,
            8, 0, 2, 0,   10, 0, 0, 1,
            8, 0, 3, 0,   10, 0, 0, 2,
            6, 0, 4, 0,   0x50, 0, 0, 0,
            6, 0, 5, 0,   0x40, 0x9c, 0, 0,
            8, 0, 6, 0,   0, 0, 0, 0][..],
    ]
    .concat();
    assert_eq!(bytes, want);
    // Tuples are keys without a device: exactly what adopt_request_exact_bytes sends.
    assert_eq!(
        serialize_request(adopt_message(&[a, b]), 0x20, 7, DO_FLAGS),
        serialize_request(
            adopt_message(&[Key::from(a), Key::from(b)]),
            0x20,
            7,
            DO_FLAGS
        )
    );
}

#[test]
fn adopt_reply_entry_has_the_device_the_module_read() {
    // The taken entry's bound_ifindex is the reply's (the socket's sk_bound_dev_if): absent
    // is 0, whatever key was sent; its key() then deletes it in the module's VRF.
    let t = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let nest = |bound: Option<u32>| {
        let mut v = tuple_attrs(&t);
        v.extend([
            EntryAttr::Result(0),
            EntryAttr::SndNxt(1),
            EntryAttr::RcvNxt(2),
            EntryAttr::Substate(1),
        ]);
        v.extend(bound.map(EntryAttr::BoundIfindex));
        TwMessage {
            cmd: cmd::ADOPT,
            attrs: vec![MainAttr::Entry(v)],
        }
    };
    let got = adopt_results(&nest(Some(9)), &[Key::new(t, 9)]).unwrap();
    let e = got[0].entry().unwrap();
    assert_eq!(e.key(), Key::new(t, 9));
    let got = adopt_results(&nest(None), &[Key::new(t, 9)]).unwrap();
    assert_eq!(got[0].entry().unwrap().key(), Key::new(t, 0));
    // A key naming another tuple than the reply's is refused, as a tuple is.
    let other = Key::new(tuple("10.0.0.1:80", "10.0.0.2:40001"), 9);
    assert!(adopt_results(&nest(Some(9)), &[other]).is_err());
}

#[test]
fn adopt_reply_with_mixed_results() {
    let a = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let b = tuple("10.0.0.1:80", "10.0.0.2:40001");
    #[rustfmt::skip]
    let bytes: Vec<u8> = [
        // reply: len 20 + 152 + 52 = 224, seq 7, cmd adopt
        &[0xe0, 0, 0, 0,  0x20, 0,  0, 0,  7, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        // entry 1: taken (result 0) with the whole state
        &[0x98, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,
            8, 0, 2, 0,   10, 0, 0, 1,
            8, 0, 3, 0,   10, 0, 0, 2,
            6, 0, 4, 0,   0x50, 0, 0, 0,
            6, 0, 5, 0,   0x40, 0x9c, 0, 0,
            8, 0, 17, 0,  0, 0, 0, 0,             // result 0
            8, 0, 7, 0,   0x10, 0, 0, 0,          // snd-nxt 16
            8, 0, 8, 0,   0x20, 0, 0, 0,          // rcv-nxt 32
            6, 0, 9, 0,   0x00, 0x02, 0, 0,       // last-win 512
            5, 0, 10, 0,  7, 0, 0, 0,             // rcv-wscale 7
            5, 0, 15, 0,  1, 0, 0, 0,             // substate fin-wait2
            8, 0, 16, 0,  0x60, 0xea, 0, 0,       // expires-ms 60000
            4, 0, 13, 0,                          // has-ts
            8, 0, 12, 0,  0x00, 0x10, 0, 0,       // ts-offset 4096
            5, 0, 18, 0,  0x2e, 0, 0, 0,          // tos
            8, 0, 19, 0,  9, 0, 0, 0,             // mark
            8, 0, 20, 0,  2, 0, 0, 0,             // bound-ifindex
            8, 0, 22, 0,  4, 0, 0, 0,             // priority
            8, 0, 23, 0,  0x44, 0x33, 0x22, 0x11][..], // txhash
        // entry 2: -EALREADY (-114), the key only
        &[0x34, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,
            8, 0, 2, 0,   10, 0, 0, 1,
            8, 0, 3, 0,   10, 0, 0, 2,
            6, 0, 4, 0,   0x50, 0, 0, 0,
            6, 0, 5, 0,   0x41, 0x9c, 0, 0,
            8, 0, 17, 0,  0x8e, 0xff, 0xff, 0xff][..],
    ]
    .concat();
    let msg = first_message(&bytes);
    assert_eq!(msg.cmd, cmd::ADOPT);
    let got = adopt_results(&msg, &[a, b]).unwrap();
    let mut want = Entry::new(a, 16, 32);
    want.last_win = 512;
    want.rcv_wscale = 7;
    want.substate = Substate::FinWait2;
    want.expires_ms = Some(60_000);
    want.has_ts = true;
    want.ts_offset = 4096;
    want.tos = 0x2e;
    want.mark = 9;
    want.bound_ifindex = 2;
    want.priority = 4;
    want.txhash = 0x1122_3344;
    assert_eq!(
        got,
        vec![
            AdoptResult::Taken(want),
            AdoptResult::Refused(-libc::EALREADY)
        ]
    );
    assert_eq!(got[0].result(), 0);
    assert_eq!(got[1].result(), -libc::EALREADY);
    assert!(got[1].entry().is_none());
    // Matched by order: swapped tuples, or a count that differs, are errors.
    let err = adopt_results(&msg, &[b, a]).unwrap_err().to_string();
    assert!(err.contains("names 10.0.0.1:80 10.0.0.2:40000"), "{err}");
    let err = adopt_results(&msg, &[a]).unwrap_err().to_string();
    assert!(err.contains("2 results for 1 tuples"), "{err}");
}

#[test]
fn adopt_reply_keeps_the_scope_sent() {
    // A link-local tuple whose reply nest lacks ifindex keeps the scope of the tuple sent.
    let t = tuple("[fe80::1%3]:443", "[fe80::2]:50000");
    let mut nest: Vec<EntryAttr> = tuple_attrs(&t)
        .into_iter()
        .filter(|a| !matches!(a, EntryAttr::Ifindex(_)))
        .collect();
    nest.extend([
        EntryAttr::Result(0),
        EntryAttr::SndNxt(1),
        EntryAttr::RcvNxt(2),
        EntryAttr::Substate(1),
        EntryAttr::Flowlabel(0x12345),
    ]);
    let reply = TwMessage {
        cmd: cmd::ADOPT,
        attrs: vec![MainAttr::Entry(nest)],
    };
    let got = adopt_results(&reply, &[t]).unwrap();
    let e = got[0].entry().unwrap();
    assert_eq!(e.tuple, t);
    assert_eq!(e.flowlabel, 0x12345);
    // A taken result without its state is an error, not a made-up entry.
    let bare = TwMessage {
        cmd: cmd::ADOPT,
        attrs: vec![MainAttr::Entry(vec![EntryAttr::Result(0)])],
    };
    let err = adopt_results(&bare, &[t]).unwrap_err().to_string();
    assert!(err.contains("snd-nxt"), "{err}");
}

#[test]
fn adopt_fd_request_exact_bytes() {
    let bytes = serialize_request(adopt_fd_message(&[5, 7], FdAdopt::Repair), 0x20, 9, DO_FLAGS);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        // nlmsghdr: len 20 + 16 + 16 = 52, type 0x20, REQUEST|ACK, seq 9; cmd adopt (6), v1
        &[0x34, 0, 0, 0,  0x20, 0,  0x05, 0,  9, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        // entry 1: fd 5 and repair, no tuple
        &[0x10, 0, 1, 0x80,
            8, 0, 24, 0,  5, 0, 0, 0,             // fd 5
            4, 0, 25, 0][..],                     // repair
        &[0x10, 0, 1, 0x80,
            8, 0, 24, 0,  7, 0, 0, 0,
            4, 0, 25, 0][..],
    ]
    .concat();
    assert_eq!(bytes, want);
    // Without repair: the fd alone.
    let bytes = serialize_request(adopt_fd_message(&[3], FdAdopt::Now), 0x20, 10, DO_FLAGS);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0x20, 0, 0, 0,  0x20, 0,  0x05, 0,  10, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        &[0x0c, 0, 1, 0x80,
            8, 0, 24, 0,  3, 0, 0, 0][..],
    ]
    .concat();
    assert_eq!(bytes, want);
    // The request parses back, and locate() names the new attributes.
    assert_eq!(
        locate(&bytes, 20 + 4).map(|l| (l.entry, l.attr)),
        Some((Some(0), "fd".to_string()))
    );
    let parsed = first_message(&{
        let mut b = serialize_request(adopt_fd_message(&[5], FdAdopt::Repair), 0x20, 9, DO_FLAGS);
        b[6] = 0; // a reply's flags
        b
    });
    assert_eq!(
        parsed.attrs,
        vec![MainAttr::Entry(vec![EntryAttr::Fd(5), EntryAttr::Repair])]
    );
}

#[test]
fn adopt_fd_reply_decoded() {
    #[rustfmt::skip]
    let bytes: Vec<u8> = [
        // reply: len 20 + 100 + 60 + 20 = 200, seq 9, cmd adopt
        &[0xc8, 0, 0, 0,  0x20, 0,  0, 0,  9, 0, 0, 0,  0, 0, 0, 0,  6, 1, 0, 0][..],
        // entry 1 (fd 5): taken, the tuple the kernel read, the state
        &[0x64, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,             // family AF_INET
            8, 0, 2, 0,   10, 0, 0, 1,            // local-addr
            8, 0, 3, 0,   10, 0, 0, 2,            // remote-addr
            6, 0, 4, 0,   0x50, 0, 0, 0,          // local-port 80
            6, 0, 5, 0,   0x40, 0x9c, 0, 0,       // remote-port 40000
            8, 0, 24, 0,  5, 0, 0, 0,             // fd 5
            8, 0, 17, 0,  0, 0, 0, 0,             // result 0
            8, 0, 7, 0,   0x10, 0, 0, 0,          // snd-nxt 16
            8, 0, 8, 0,   0x20, 0, 0, 0,          // rcv-nxt 32
            5, 0, 15, 0,  1, 0, 0, 0,             // substate fin-wait2
            8, 0, 16, 0,  0x60, 0xea, 0, 0,       // expires-ms 60000
            8, 0, 20, 0,  2, 0, 0, 0][..],        // bound-ifindex 2
        // entry 2 (fd 7): -EALREADY (-114), its tuple
        &[0x3c, 0, 1, 0x80,
            5, 0, 1, 0,   2, 0, 0, 0,
            8, 0, 2, 0,   10, 0, 0, 1,
            8, 0, 3, 0,   10, 0, 0, 2,
            6, 0, 4, 0,   0x50, 0, 0, 0,
            6, 0, 5, 0,   0x41, 0x9c, 0, 0,       // remote-port 40001
            8, 0, 24, 0,  7, 0, 0, 0,
            8, 0, 17, 0,  0x8e, 0xff, 0xff, 0xff][..],
        // entry 3 (fd 9): -EBADF (-9), no socket, no tuple
        &[0x14, 0, 1, 0x80,
            8, 0, 24, 0,  9, 0, 0, 0,
            8, 0, 17, 0,  0xf7, 0xff, 0xff, 0xff][..],
    ]
    .concat();
    let msg = first_message(&bytes);
    let got = adopt_fd_results(&msg, &[5, 7, 9]).unwrap();
    let a = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let b = tuple("10.0.0.1:80", "10.0.0.2:40001");
    let mut want = Entry::new(a, 16, 32);
    want.substate = Substate::FinWait2;
    want.expires_ms = Some(60_000);
    want.bound_ifindex = 2;
    assert_eq!(
        got,
        vec![
            FdAdoptResult {
                tuple: Some(a),
                result: AdoptResult::Taken(want)
            },
            FdAdoptResult {
                tuple: Some(b),
                result: AdoptResult::Refused(-libc::EALREADY)
            },
            FdAdoptResult {
                tuple: None,
                result: AdoptResult::Refused(-libc::EBADF)
            },
        ]
    );
    assert_eq!(got[0].result.entry().unwrap().key(), Key::new(a, 2));
    // Matched by order: an echoed fd that differs, or a count that differs, is an error.
    let err = adopt_fd_results(&msg, &[7, 5, 9]).unwrap_err().to_string();
    assert!(err.contains("names fd 5, not 7"), "{err}");
    let err = adopt_fd_results(&msg, &[5, 7]).unwrap_err().to_string();
    assert!(err.contains("3 results for 2 fds"), "{err}");
}

#[test]
fn adopt_fd_reply_edge_cases() {
    let a = tuple("10.0.0.1:80", "10.0.0.2:40000");
    let msg = |nest: Vec<EntryAttr>| TwMessage {
        cmd: cmd::ADOPT,
        attrs: vec![MainAttr::Entry(nest)],
    };
    // No echo of the fd: matched by order alone.
    let mut v = tuple_attrs(&a);
    v.push(EntryAttr::Result(-libc::EINPROGRESS));
    let got = adopt_fd_results(&msg(v), &[4]).unwrap();
    assert_eq!(got[0].tuple, Some(a));
    assert_eq!(got[0].result, AdoptResult::Refused(-libc::EINPROGRESS));
    // A closed socket whose port was released names port 0: no tuple.
    let mut v = tuple_attrs(&a);
    v.retain(|x| !matches!(x, EntryAttr::LocalPort(_)));
    v.extend([EntryAttr::LocalPort(0), EntryAttr::Result(-libc::EALREADY)]);
    let got = adopt_fd_results(&msg(v), &[4]).unwrap();
    assert_eq!(got[0].tuple, None);
    // Taken without a tuple, or without a result: not understood.
    let v = vec![
        EntryAttr::Fd(4),
        EntryAttr::Result(0),
        EntryAttr::SndNxt(1),
        EntryAttr::RcvNxt(2),
    ];
    assert!(adopt_fd_results(&msg(v), &[4]).is_err());
    assert!(adopt_fd_results(&msg(vec![EntryAttr::Fd(4)]), &[4]).is_err());
    assert_eq!(errno_name(libc::EBADF), Some("EBADF"));
    assert_eq!(errno_name(libc::ENOTSOCK), Some("ENOTSOCK"));
}
