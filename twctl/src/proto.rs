// SPDX-License-Identifier: GPL-2.0

//! The `rust_timewait` generic netlink family (spec/rust_timewait.yaml): attribute types,
//! message building and parsing, extended-ACK decoding. Pure: no sockets here. The numbering
//! below (family name and version, commands, attribute types and names, counter names) is
//! written by hand; `tests/host/spec_check.py` checks every part of it against the spec.
//!
//! Built on the rust-netlink crates: `netlink-packet-core` (the `nlmsghdr`, `Nla`/`NlaBuffer`
//! attribute types, `NLMSG_ERROR`/`NLMSG_DONE`) and `netlink-packet-generic` (the `genlmsghdr`
//! and the `GenlFamily` trait).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use netlink_packet_core::{
    emit_i32, emit_u16, emit_u32, emit_u64, parse_i32, parse_string, parse_u16, parse_u32,
    parse_u64, parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext, NetlinkBuffer,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer,
    NlasIterator, Parseable, ParseableParametrized, NLA_F_NESTED, NLM_F_ACK, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::entry::{Entry, Key, Substate, Tuple, AF_INET, AF_INET6};

/// The family's name, as the generic netlink controller knows it.
pub const FAMILY_NAME: &str = "rust_timewait";
/// The family's version (`genlmsghdr.version`).
pub const FAMILY_VERSION: u8 = 1;

/// Commands (`operations` in the spec, numbered from 1).
pub mod cmd {
    /// Add entries.
    pub const ADD: u8 = 1;
    /// Delete one entry.
    pub const DEL: u8 = 2;
    /// Get one entry (do) or all (dump).
    pub const GET: u8 = 3;
    /// Delete every entry of the netns.
    pub const FLUSH: u8 = 4;
    /// Read the counters.
    pub const GET_STATS: u8 = 5;
    /// Take over live FIN_WAIT2 connections by tuple.
    pub const ADOPT: u8 = 6;
}

/// The `main` attribute set.
pub mod main_attr {
    /// `entry` (nest, multi-attr).
    pub const ENTRY: u16 = 1;
    /// `replace` (flag).
    pub const REPLACE: u16 = 2;
    /// `stats` (nest).
    pub const STATS: u16 = 3;
    /// `flushed` (u32).
    pub const FLUSHED: u16 = 4;
}

/// The `entry` attribute set.
pub mod entry_attr {
    #![allow(missing_docs)]
    pub const FAMILY: u16 = 1;
    pub const LOCAL_ADDR: u16 = 2;
    pub const REMOTE_ADDR: u16 = 3;
    pub const LOCAL_PORT: u16 = 4;
    pub const REMOTE_PORT: u16 = 5;
    pub const IFINDEX: u16 = 6;
    pub const SND_NXT: u16 = 7;
    pub const RCV_NXT: u16 = 8;
    pub const LAST_WIN: u16 = 9;
    pub const RCV_WSCALE: u16 = 10;
    pub const TS_RECENT: u16 = 11;
    pub const TS_OFFSET: u16 = 12;
    pub const HAS_TS: u16 = 13;
    pub const TS_RECENT_VALID: u16 = 14;
    pub const SUBSTATE: u16 = 15;
    pub const EXPIRES_MS: u16 = 16;
    pub const RESULT: u16 = 17;
    pub const TOS: u16 = 18;
    pub const MARK: u16 = 19;
    pub const BOUND_IFINDEX: u16 = 20;
    pub const FLOWLABEL: u16 = 21;
    pub const PRIORITY: u16 = 22;
    pub const TXHASH: u16 = 23;
    pub const FD: u16 = 24;
    pub const REPAIR: u16 = 25;
    pub const WAIT: u16 = 26;
}

/// Names of the `main` set, by attribute type (index 0 unused).
pub const MAIN_ATTR_NAMES: [&str; 5] = ["unspec", "entry", "replace", "stats", "flushed"];

/// Names of the `entry` set, by attribute type (index 0 unused).
pub const ENTRY_ATTR_NAMES: [&str; 27] = [
    "unspec",
    "family",
    "local-addr",
    "remote-addr",
    "local-port",
    "remote-port",
    "ifindex",
    "snd-nxt",
    "rcv-nxt",
    "last-win",
    "rcv-wscale",
    "ts-recent",
    "ts-offset",
    "has-ts",
    "ts-recent-valid",
    "substate",
    "expires-ms",
    "result",
    "tos",
    "mark",
    "bound-ifindex",
    "flowlabel",
    "priority",
    "txhash",
    "fd",
    "repair",
    "wait",
];

/// Names of the `stats` set, by attribute type minus one, in the spec's order.
pub const STAT_NAMES: [&str; 24] = [
    "entries",
    "added",
    "refused-nolocal",
    "refused-exists",
    "refused-invalid",
    "recycled",
    "expired",
    "deleted",
    "syn-reuse",
    "rst-dropped",
    "paws-dropped",
    "acks-sent",
    "rsts-sent",
    "replies-ratelimited",
    "segments-dropped",
    "fin-wait2-completed",
    "fin-wait2-timeouts",
    "local-connect-reuse",
    "local-connect-dropped",
    "capacity",
    "replies-failed",
    "handoffs-deferred",
    "handoffs-returned",
    "taken-over",
];

fn name_of(names: &[&'static str], kind: u16) -> String {
    match names.get(kind as usize) {
        Some(n) if kind != 0 => (*n).to_string(),
        _ => format!("attribute {kind}"),
    }
}

/// One attribute of the `entry` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryAttr {
    Family(u8),
    LocalAddr(IpAddr),
    RemoteAddr(IpAddr),
    LocalPort(u16),
    RemotePort(u16),
    Ifindex(u32),
    SndNxt(u32),
    RcvNxt(u32),
    LastWin(u16),
    RcvWscale(u8),
    TsRecent(u32),
    TsOffset(u32),
    HasTs,
    TsRecentValid,
    Substate(u8),
    ExpiresMs(u32),
    Result(i32),
    Tos(u8),
    Mark(u32),
    BoundIfindex(u32),
    Flowlabel(u32),
    Priority(u32),
    Txhash(u32),
    /// adopt only: a file descriptor of the caller's, a connected TCP socket, instead of the
    /// tuple (the reply names the tuple, and echoes the fd).
    Fd(u32),
    /// adopt only: put the socket in TCP_REPAIR mode once the entry is in.
    Repair,
    /// adopt by fd only: take the socket now and adopt it when our FIN is acknowledged.
    Wait,
    /// An attribute this version does not know (kept, ignored).
    Other(DefaultNla),
}

fn addr_len(a: &IpAddr) -> usize {
    match a {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

fn emit_addr(buf: &mut [u8], a: &IpAddr) {
    match a {
        IpAddr::V4(v) => buf.copy_from_slice(&v.octets()),
        IpAddr::V6(v) => buf.copy_from_slice(&v.octets()),
    }
}

fn parse_addr(what: &str, b: &[u8]) -> Result<IpAddr, DecodeError> {
    match b.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        n => Err(format!("{what}: {n} bytes, not 4 or 16").into()),
    }
}

impl Nla for EntryAttr {
    fn value_len(&self) -> usize {
        use EntryAttr::*;
        match self {
            Family(_) | RcvWscale(_) | Substate(_) | Tos(_) => 1,
            LocalPort(_) | RemotePort(_) | LastWin(_) => 2,
            Ifindex(_) | SndNxt(_) | RcvNxt(_) | TsRecent(_) | TsOffset(_) | ExpiresMs(_)
            | Result(_) | Mark(_) | BoundIfindex(_) | Flowlabel(_) | Priority(_) | Txhash(_)
            | Fd(_) => 4,
            LocalAddr(a) | RemoteAddr(a) => addr_len(a),
            HasTs | TsRecentValid | Repair | Wait => 0,
            Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use self::entry_attr as k;
        use EntryAttr::*;
        match self {
            Family(_) => k::FAMILY,
            LocalAddr(_) => k::LOCAL_ADDR,
            RemoteAddr(_) => k::REMOTE_ADDR,
            LocalPort(_) => k::LOCAL_PORT,
            RemotePort(_) => k::REMOTE_PORT,
            Ifindex(_) => k::IFINDEX,
            SndNxt(_) => k::SND_NXT,
            RcvNxt(_) => k::RCV_NXT,
            LastWin(_) => k::LAST_WIN,
            RcvWscale(_) => k::RCV_WSCALE,
            TsRecent(_) => k::TS_RECENT,
            TsOffset(_) => k::TS_OFFSET,
            HasTs => k::HAS_TS,
            TsRecentValid => k::TS_RECENT_VALID,
            Substate(_) => k::SUBSTATE,
            ExpiresMs(_) => k::EXPIRES_MS,
            Result(_) => k::RESULT,
            Tos(_) => k::TOS,
            Mark(_) => k::MARK,
            BoundIfindex(_) => k::BOUND_IFINDEX,
            Flowlabel(_) => k::FLOWLABEL,
            Priority(_) => k::PRIORITY,
            Txhash(_) => k::TXHASH,
            Fd(_) => k::FD,
            Repair => k::REPAIR,
            Wait => k::WAIT,
            Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        use EntryAttr::*;
        match self {
            Family(v) | RcvWscale(v) | Substate(v) | Tos(v) => buf[0] = *v,
            LocalPort(v) | RemotePort(v) | LastWin(v) => emit_u16(buf, *v).unwrap(),
            Ifindex(v) | SndNxt(v) | RcvNxt(v) | TsRecent(v) | TsOffset(v) | ExpiresMs(v)
            | Mark(v) | BoundIfindex(v) | Flowlabel(v) | Priority(v) | Txhash(v) | Fd(v) => {
                emit_u32(buf, *v).unwrap()
            }
            Result(v) => emit_i32(buf, *v).unwrap(),
            LocalAddr(a) | RemoteAddr(a) => emit_addr(buf, a),
            HasTs | TsRecentValid | Repair | Wait => {}
            Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for EntryAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        use self::entry_attr as k;
        let v = buf.value();
        let kind = buf.kind();
        let ctx = || format!("entry attribute {}", name_of(&ENTRY_ATTR_NAMES, kind));
        let flag = |a: EntryAttr| {
            if v.is_empty() {
                Ok(a)
            } else {
                Err(DecodeError::from("flag with a payload"))
            }
        };
        Ok(match kind {
            k::FAMILY => EntryAttr::Family(parse_u8(v).with_context(ctx)?),
            k::LOCAL_ADDR => EntryAttr::LocalAddr(parse_addr("local-addr", v)?),
            k::REMOTE_ADDR => EntryAttr::RemoteAddr(parse_addr("remote-addr", v)?),
            k::LOCAL_PORT => EntryAttr::LocalPort(parse_u16(v).with_context(ctx)?),
            k::REMOTE_PORT => EntryAttr::RemotePort(parse_u16(v).with_context(ctx)?),
            k::IFINDEX => EntryAttr::Ifindex(parse_u32(v).with_context(ctx)?),
            k::SND_NXT => EntryAttr::SndNxt(parse_u32(v).with_context(ctx)?),
            k::RCV_NXT => EntryAttr::RcvNxt(parse_u32(v).with_context(ctx)?),
            k::LAST_WIN => EntryAttr::LastWin(parse_u16(v).with_context(ctx)?),
            k::RCV_WSCALE => EntryAttr::RcvWscale(parse_u8(v).with_context(ctx)?),
            k::TS_RECENT => EntryAttr::TsRecent(parse_u32(v).with_context(ctx)?),
            k::TS_OFFSET => EntryAttr::TsOffset(parse_u32(v).with_context(ctx)?),
            k::HAS_TS => flag(EntryAttr::HasTs).with_context(ctx)?,
            k::TS_RECENT_VALID => flag(EntryAttr::TsRecentValid).with_context(ctx)?,
            k::SUBSTATE => EntryAttr::Substate(parse_u8(v).with_context(ctx)?),
            k::EXPIRES_MS => EntryAttr::ExpiresMs(parse_u32(v).with_context(ctx)?),
            k::RESULT => EntryAttr::Result(parse_i32(v).with_context(ctx)?),
            k::TOS => EntryAttr::Tos(parse_u8(v).with_context(ctx)?),
            k::MARK => EntryAttr::Mark(parse_u32(v).with_context(ctx)?),
            k::BOUND_IFINDEX => EntryAttr::BoundIfindex(parse_u32(v).with_context(ctx)?),
            k::FLOWLABEL => EntryAttr::Flowlabel(parse_u32(v).with_context(ctx)?),
            k::PRIORITY => EntryAttr::Priority(parse_u32(v).with_context(ctx)?),
            k::TXHASH => EntryAttr::Txhash(parse_u32(v).with_context(ctx)?),
            k::FD => EntryAttr::Fd(parse_u32(v).with_context(ctx)?),
            k::REPAIR => flag(EntryAttr::Repair).with_context(ctx)?,
            k::WAIT => flag(EntryAttr::Wait).with_context(ctx)?,
            _ => EntryAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One counter of the `stats` set (`uint`: 4 or 8 bytes on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsAttr {
    /// The attribute type (1-based index into [`STAT_NAMES`]).
    pub kind: u16,
    /// The value.
    pub value: u64,
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        if self.value > u32::MAX as u64 {
            8
        } else {
            4
        }
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buf: &mut [u8]) {
        if buf.len() == 8 {
            emit_u64(buf, self.value).unwrap()
        } else {
            emit_u32(buf, self.value as u32).unwrap()
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        let value = match v.len() {
            4 => parse_u32(v)? as u64,
            8 => parse_u64(v)?,
            n => return Err(format!("stats attribute {}: uint of {n} bytes", buf.kind()).into()),
        };
        Ok(StatsAttr {
            kind: buf.kind(),
            value,
        })
    }
}

/// One attribute of the `main` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MainAttr {
    Entry(Vec<EntryAttr>),
    Replace,
    Stats(Vec<StatsAttr>),
    Flushed(u32),
    Other(DefaultNla),
}

impl Nla for MainAttr {
    fn value_len(&self) -> usize {
        match self {
            MainAttr::Entry(v) => v.as_slice().buffer_len(),
            MainAttr::Replace => 0,
            MainAttr::Stats(v) => v.as_slice().buffer_len(),
            MainAttr::Flushed(_) => 4,
            MainAttr::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            MainAttr::Entry(_) => main_attr::ENTRY | NLA_F_NESTED,
            MainAttr::Replace => main_attr::REPLACE,
            MainAttr::Stats(_) => main_attr::STATS | NLA_F_NESTED,
            MainAttr::Flushed(_) => main_attr::FLUSHED,
            MainAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            MainAttr::Entry(v) => v.as_slice().emit(buf),
            MainAttr::Replace => {}
            MainAttr::Stats(v) => v.as_slice().emit(buf),
            MainAttr::Flushed(n) => emit_u32(buf, *n).unwrap(),
            MainAttr::Other(n) => n.emit_value(buf),
        }
    }
}

fn parse_nested<A>(v: &[u8]) -> Result<Vec<A>, DecodeError>
where
    A: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(v)
        .map(|n| n.and_then(|n| A::parse(&n)))
        .collect()
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for MainAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            main_attr::ENTRY => MainAttr::Entry(parse_nested(v).context("entry nest")?),
            main_attr::REPLACE => MainAttr::Replace,
            main_attr::STATS => MainAttr::Stats(parse_nested(v).context("stats nest")?),
            main_attr::FLUSHED => MainAttr::Flushed(parse_u32(v).context("flushed")?),
            _ => MainAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A message of the family: a command and its top-level attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwMessage {
    /// One of [`cmd`].
    pub cmd: u8,
    /// Top-level attributes, in order.
    pub attrs: Vec<MainAttr>,
}

impl GenlFamily for TwMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for TwMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buf: &mut [u8]) {
        self.attrs.as_slice().emit(buf)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for TwMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(TwMessage {
            cmd: header.cmd,
            attrs: parse_nested(buf).context("rust_timewait message")?,
        })
    }
}

/// Any generic netlink payload, kept as raw attributes (used for the controller's replies,
/// so that attributes a newer kernel adds cannot break the lookup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawGenl {
    /// The command.
    pub cmd: u8,
    /// The attribute bytes after the `genlmsghdr`.
    pub attrs: Vec<u8>,
}

impl ParseableParametrized<[u8], GenlHeader> for RawGenl {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(RawGenl {
            cmd: header.cmd,
            attrs: buf.to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// The attributes that name a tuple (family, addresses, ports, ifindex).
pub fn tuple_attrs(t: &Tuple) -> Vec<EntryAttr> {
    vec![
        EntryAttr::Family(t.family()),
        EntryAttr::LocalAddr(t.local.ip()),
        EntryAttr::RemoteAddr(t.remote.ip()),
        EntryAttr::LocalPort(t.local.port()),
        EntryAttr::RemotePort(t.remote.port()),
        EntryAttr::Ifindex(t.ifindex()),
    ]
}

/// Every attribute of an entry as an add request sends it: the tuple, the sequence numbers,
/// window and scale; `ts-recent` (with `ts-recent-valid`) only when it is known and `ts-offset`
/// (with `has-ts`) only with timestamps, as the module refuses a `ts-recent` that is not valid;
/// then `substate`; then each of `tos`, `mark`, `bound-ifindex`, `flowlabel`, `priority` and
/// `txhash` that is not 0 (absent means 0, so an entry without them is sent as before).
pub fn entry_attrs(e: &Entry) -> Vec<EntryAttr> {
    let mut v = tuple_attrs(&e.tuple);
    v.extend([
        EntryAttr::SndNxt(e.snd_nxt),
        EntryAttr::RcvNxt(e.rcv_nxt),
        EntryAttr::LastWin(e.last_win),
        EntryAttr::RcvWscale(e.rcv_wscale),
    ]);
    if let Some(r) = e.ts_recent {
        v.push(EntryAttr::TsRecent(r));
    }
    if e.has_ts {
        v.push(EntryAttr::TsOffset(e.ts_offset));
        v.push(EntryAttr::HasTs);
    }
    if e.ts_recent.is_some() {
        v.push(EntryAttr::TsRecentValid);
    }
    v.push(EntryAttr::Substate(e.substate.to_u8()));
    if e.tos != 0 {
        v.push(EntryAttr::Tos(e.tos));
    }
    for (val, attr) in [
        (e.mark, EntryAttr::Mark as fn(u32) -> EntryAttr),
        (e.bound_ifindex, EntryAttr::BoundIfindex),
        (e.flowlabel, EntryAttr::Flowlabel),
        (e.priority, EntryAttr::Priority),
        (e.txhash, EntryAttr::Txhash),
    ] {
        if val != 0 {
            v.push(attr(val));
        }
    }
    v
}

/// `add`: one `entry` nest per entry, then `replace` when asked.
pub fn add_message(entries: &[Entry], replace: bool) -> TwMessage {
    let mut attrs: Vec<MainAttr> = entries
        .iter()
        .map(|e| MainAttr::Entry(entry_attrs(e)))
        .collect();
    if replace {
        attrs.push(MainAttr::Replace);
    }
    TwMessage {
        cmd: cmd::ADD,
        attrs,
    }
}

/// The attributes of a key: the tuple's, then `bound-ifindex` when it is not 0 (the VRF of
/// the socket's device, part of the module's key; absent: the default VRF).
pub fn key_attrs(k: &Key) -> Vec<EntryAttr> {
    let mut v = tuple_attrs(&k.tuple);
    if k.bound_ifindex != 0 {
        v.push(EntryAttr::BoundIfindex(k.bound_ifindex));
    }
    v
}

/// `adopt`: one `entry` nest per key, with only its attributes (family, addresses, ports,
/// ifindex and, when not 0, bound-ifindex, the device the module looks the socket up by), as
/// `del` and `get` send them. Tuples are keys without a bound device.
pub fn adopt_message<K: Copy + Into<Key>>(keys: &[K]) -> TwMessage {
    TwMessage {
        cmd: cmd::ADOPT,
        attrs: keys
            .iter()
            .map(|k| MainAttr::Entry(key_attrs(&(*k).into())))
            .collect(),
    }
}

/// What an `adopt` by file descriptor asks of each socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdAdopt {
    /// Adopt it now (it must be in FIN_WAIT2); the caller closes it in repair mode.
    Now,
    /// Adopt it now and put it in TCP_REPAIR mode (`repair`): the caller just closes it.
    Repair,
    /// Take it now and adopt it (in repair mode) when our FIN is acknowledged (`wait`): the
    /// caller closes its fd at once.
    Wait,
}

/// `adopt` by file descriptor: one `entry` nest per fd with only `fd` (u32) and the flag
/// `mode` asks for. No tuple: the kernel reads it from the socket and names it in the reply.
pub fn adopt_fd_message(fds: &[RawFd], mode: FdAdopt) -> TwMessage {
    TwMessage {
        cmd: cmd::ADOPT,
        attrs: fds
            .iter()
            .map(|fd| {
                let mut v = vec![EntryAttr::Fd(*fd as u32)];
                match mode {
                    FdAdopt::Now => {}
                    FdAdopt::Repair => v.push(EntryAttr::Repair),
                    FdAdopt::Wait => v.push(EntryAttr::Wait),
                }
                MainAttr::Entry(v)
            })
            .collect(),
    }
}

/// `del` of one key (a tuple, an entry, or a [`Key`]).
pub fn del_message(k: impl Into<Key>) -> TwMessage {
    TwMessage {
        cmd: cmd::DEL,
        attrs: vec![MainAttr::Entry(key_attrs(&k.into()))],
    }
}

/// `get` (do) of one key (a tuple, an entry, or a [`Key`]).
pub fn get_message(k: impl Into<Key>) -> TwMessage {
    TwMessage {
        cmd: cmd::GET,
        attrs: vec![MainAttr::Entry(key_attrs(&k.into()))],
    }
}

/// `get` as a dump (send with [`DUMP_FLAGS`]).
pub fn dump_message() -> TwMessage {
    TwMessage {
        cmd: cmd::GET,
        attrs: vec![],
    }
}

/// `flush`.
pub fn flush_message() -> TwMessage {
    TwMessage {
        cmd: cmd::FLUSH,
        attrs: vec![],
    }
}

/// `get-stats`.
pub fn stats_message() -> TwMessage {
    TwMessage {
        cmd: cmd::GET_STATS,
        attrs: vec![],
    }
}

/// Flags of a `do` request: answered by an ACK (or an error) after any reply.
pub const DO_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Flags of a request answered by one reply message, without the ACK after it.
pub const DO_REPLY_FLAGS: u16 = NLM_F_REQUEST;
/// Flags of a dump request: answered by replies then `NLMSG_DONE`.
pub const DUMP_FLAGS: u16 = NLM_F_REQUEST | NLM_F_DUMP;

/// Serializes a request (`nlmsghdr` + `genlmsghdr` + attributes) for a resolved family id.
pub fn serialize_request(msg: TwMessage, family_id: u16, seq: u32, flags: u16) -> Vec<u8> {
    let genl = GenlMessage::from_payload(msg);
    serialize_genl(genl, family_id, seq, flags)
}

/// Serializes any generic netlink message for a family id.
pub fn serialize_genl<F>(mut genl: GenlMessage<F>, family_id: u16, seq: u32, flags: u16) -> Vec<u8>
where
    F: GenlFamily + Emitable + fmt::Debug,
{
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

// ---------------------------------------------------------------------------------------------
// Replies

/// An `entry` nest from a reply, every field optional (an add reply may carry only the tuple
/// and the result).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyEntry {
    pub family: Option<u8>,
    pub local_addr: Option<IpAddr>,
    pub remote_addr: Option<IpAddr>,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub ifindex: Option<u32>,
    pub snd_nxt: Option<u32>,
    pub rcv_nxt: Option<u32>,
    pub last_win: Option<u16>,
    pub rcv_wscale: Option<u8>,
    pub ts_recent: Option<u32>,
    pub ts_offset: Option<u32>,
    pub has_ts: bool,
    pub ts_recent_valid: bool,
    pub substate: Option<u8>,
    pub expires_ms: Option<u32>,
    pub result: Option<i32>,
    pub tos: Option<u8>,
    pub mark: Option<u32>,
    pub bound_ifindex: Option<u32>,
    pub flowlabel: Option<u32>,
    pub priority: Option<u32>,
    pub txhash: Option<u32>,
    /// The fd of an adopt by fd, as the kernel echoes it.
    pub fd: Option<u32>,
}

impl ReplyEntry {
    /// Collects the attributes of one nest.
    pub fn from_attrs(attrs: &[EntryAttr]) -> Self {
        let mut r = ReplyEntry::default();
        for a in attrs {
            match *a {
                EntryAttr::Family(v) => r.family = Some(v),
                EntryAttr::LocalAddr(v) => r.local_addr = Some(v),
                EntryAttr::RemoteAddr(v) => r.remote_addr = Some(v),
                EntryAttr::LocalPort(v) => r.local_port = Some(v),
                EntryAttr::RemotePort(v) => r.remote_port = Some(v),
                EntryAttr::Ifindex(v) => r.ifindex = Some(v),
                EntryAttr::SndNxt(v) => r.snd_nxt = Some(v),
                EntryAttr::RcvNxt(v) => r.rcv_nxt = Some(v),
                EntryAttr::LastWin(v) => r.last_win = Some(v),
                EntryAttr::RcvWscale(v) => r.rcv_wscale = Some(v),
                EntryAttr::TsRecent(v) => r.ts_recent = Some(v),
                EntryAttr::TsOffset(v) => r.ts_offset = Some(v),
                EntryAttr::HasTs => r.has_ts = true,
                EntryAttr::TsRecentValid => r.ts_recent_valid = true,
                EntryAttr::Substate(v) => r.substate = Some(v),
                EntryAttr::ExpiresMs(v) => r.expires_ms = Some(v),
                EntryAttr::Result(v) => r.result = Some(v),
                EntryAttr::Tos(v) => r.tos = Some(v),
                EntryAttr::Mark(v) => r.mark = Some(v),
                EntryAttr::BoundIfindex(v) => r.bound_ifindex = Some(v),
                EntryAttr::Flowlabel(v) => r.flowlabel = Some(v),
                EntryAttr::Priority(v) => r.priority = Some(v),
                EntryAttr::Txhash(v) => r.txhash = Some(v),
                EntryAttr::Fd(v) => r.fd = Some(v),
                EntryAttr::Repair | EntryAttr::Wait | EntryAttr::Other(_) => {}
            }
        }
        r
    }

    /// The tuple, when the nest names one.
    pub fn tuple(&self) -> Result<Option<Tuple>, DecodeError> {
        let (Some(fam), Some(la), Some(ra), Some(lp), Some(rp)) = (
            self.family,
            self.local_addr,
            self.remote_addr,
            self.local_port,
            self.remote_port,
        ) else {
            return Ok(None);
        };
        let want = match fam {
            AF_INET => 4,
            AF_INET6 => 16,
            f => return Err(format!("entry of unknown address family {f}").into()),
        };
        if addr_len(&la) != want || addr_len(&ra) != want {
            return Err(format!("entry of family {fam} with addresses of another size").into());
        }
        Ok(Some(Tuple::from_parts(
            la,
            lp,
            ra,
            rp,
            self.ifindex.unwrap_or(0),
        )))
    }

    /// The full entry (a `get` or dump reply).
    pub fn entry(&self) -> Result<Entry, DecodeError> {
        let tuple = self.tuple()?.ok_or("entry without its tuple")?;
        let snd = self.snd_nxt.ok_or("entry without snd-nxt")?;
        let rcv = self.rcv_nxt.ok_or("entry without rcv-nxt")?;
        let substate = match self.substate {
            None => Substate::TimeWait,
            Some(v) => Substate::from_u8(v).ok_or_else(|| format!("unknown substate {v}"))?,
        };
        Ok(Entry {
            tuple,
            snd_nxt: snd,
            rcv_nxt: rcv,
            last_win: self.last_win.unwrap_or(0),
            rcv_wscale: self.rcv_wscale.unwrap_or(0),
            has_ts: self.has_ts,
            ts_recent: if self.ts_recent_valid {
                Some(self.ts_recent.unwrap_or(0))
            } else {
                None
            },
            ts_offset: self.ts_offset.unwrap_or(0),
            substate,
            expires_ms: self.expires_ms,
            tos: self.tos.unwrap_or(0),
            mark: self.mark.unwrap_or(0),
            bound_ifindex: self.bound_ifindex.unwrap_or(0),
            flowlabel: self.flowlabel.unwrap_or(0),
            priority: self.priority.unwrap_or(0),
            txhash: self.txhash.unwrap_or(0),
        })
    }
}

/// The `entry` nests of a message, in order.
pub fn reply_entries(msg: &TwMessage) -> Vec<ReplyEntry> {
    msg.attrs
        .iter()
        .filter_map(|a| match a {
            MainAttr::Entry(v) => Some(ReplyEntry::from_attrs(v)),
            _ => None,
        })
        .collect()
}

/// Same addresses and ports (the add reply carries no ifindex, so scopes are not compared).
fn same_ends(a: &Tuple, b: &Tuple) -> bool {
    let eq =
        |x: std::net::SocketAddr, y: std::net::SocketAddr| x.ip() == y.ip() && x.port() == y.port();
    eq(a.local, b.local) && eq(a.remote, b.remote)
}

/// The per-entry results of an add reply, matched to the request by order; a nest that names
/// a tuple must name the one sent at its position.
pub fn add_results(reply: &TwMessage, sent: &[Entry]) -> Result<Vec<i32>, DecodeError> {
    let got = reply_entries(reply);
    if got.len() != sent.len() {
        return Err(format!(
            "the add reply carries {} results for {} entries sent",
            got.len(),
            sent.len()
        )
        .into());
    }
    got.iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (r, e))| {
            if let Some(t) = r.tuple()? {
                if !same_ends(&t, &e.tuple) {
                    return Err(format!(
                        "the add reply's entry {} names {t}, not {}",
                        i + 1,
                        e.tuple
                    )
                    .into());
                }
            }
            r.result
                .ok_or_else(|| format!("the add reply's entry {} has no result", i + 1).into())
        })
        .collect()
}

/// The outcome of one tuple of an `adopt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoptResult {
    /// Result 0: the module took the connection over; its fin-wait2 entry, as `get` returns it
    /// (the tuple is the one sent, its scope included).
    Taken(Entry),
    /// A negative errno: -ENOENT no connection with this tuple, -EINPROGRESS our FIN not
    /// acknowledged yet, -EALREADY the peer's FIN came first, -ENOTCONN not shut down for
    /// writing or not synchronized, -ENOTEMPTY unread data, -EOPNOTSUPP TCP-MD5/AO, microsecond
    /// timestamps or a socket in repair mode, -EEXIST already guarded, -EADDRNOTAVAIL
    /// nolocaltimewait.
    Refused(i32),
}

impl AdoptResult {
    /// The `result` attribute: 0 when taken, else the negative errno.
    pub fn result(&self) -> i32 {
        match self {
            AdoptResult::Taken(_) => 0,
            AdoptResult::Refused(r) => *r,
        }
    }

    /// The entry, when taken.
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            AdoptResult::Taken(e) => Some(e),
            AdoptResult::Refused(_) => None,
        }
    }
}

/// An adopt reply's entry nests, one per item sent (`what`: "tuples", "fds"), in order.
fn adopt_reply_entries(
    reply: &TwMessage,
    sent: usize,
    what: &str,
) -> Result<Vec<ReplyEntry>, DecodeError> {
    let got = reply_entries(reply);
    if got.len() != sent {
        return Err(format!(
            "the adopt reply carries {} results for {sent} {what} sent",
            got.len()
        )
        .into());
    }
    Ok(got)
}

/// The `result` of an adopt reply's entry `i` (0-based).
fn adopt_result_of(r: &ReplyEntry, i: usize) -> Result<i32, DecodeError> {
    r.result
        .ok_or_else(|| format!("the adopt reply's entry {} has no result", i + 1).into())
}

/// The per-tuple results of an adopt reply, matched to the request by order: one nest per
/// key sent, naming its tuple, with its `result`; a taken one carries the whole entry.
pub fn adopt_results<K: Copy + Into<Key>>(
    reply: &TwMessage,
    sent: &[K],
) -> Result<Vec<AdoptResult>, DecodeError> {
    adopt_reply_entries(reply, sent.len(), "tuples")?
        .iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (r, k))| {
            let key: Key = (*k).into();
            let t = &key.tuple;
            if let Some(named) = r.tuple()? {
                if !same_ends(&named, t) {
                    return Err(format!(
                        "the adopt reply's entry {} names {named}, not {t}",
                        i + 1
                    )
                    .into());
                }
            }
            let res = adopt_result_of(r, i)?;
            if res != 0 {
                return Ok(AdoptResult::Refused(res));
            }
            // The full state, under the tuple sent (the reply's may lack the scope).
            let mut full = r.clone();
            full.family = Some(t.family());
            full.local_addr = Some(t.local.ip());
            full.remote_addr = Some(t.remote.ip());
            full.local_port = Some(t.local.port());
            full.remote_port = Some(t.remote.port());
            let mut e = full
                .entry()
                .map_err(|e| format!("the adopt reply's entry {}: {e}", i + 1))?;
            // Its bound_ifindex is the reply's (the socket's device, absent: none), the
            // entry's key in the module, whatever was sent to find the socket.
            e.tuple = *t;
            Ok(AdoptResult::Taken(e))
        })
        .collect()
}

/// The outcome of one fd of an adopt by fd ([`adopt_fd_message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdAdoptResult {
    /// The socket's tuple as the kernel read it: `None` when it found no socket (-EBADF,
    /// -ENOTSOCK, another netns), or named one that is not a connection's (a closed socket
    /// whose port was released).
    pub tuple: Option<Tuple>,
    /// Taken (the entry, under the reply's tuple) or refused (the negative errno).
    pub result: AdoptResult,
}

/// The per-fd results of an adopt by fd, matched to the request by order: one nest per fd
/// sent, with its `result`, the tuple when the kernel found a socket, and the whole entry when
/// it was taken. A nest that echoes an `fd` must echo the one sent at its position.
pub fn adopt_fd_results(
    reply: &TwMessage,
    sent: &[RawFd],
) -> Result<Vec<FdAdoptResult>, DecodeError> {
    fd_results(reply, sent)?
        .into_iter()
        .enumerate()
        .map(|(i, (tuple, res, r))| {
            if res != 0 {
                return Ok(FdAdoptResult {
                    tuple,
                    result: AdoptResult::Refused(res),
                });
            }
            let e = r
                .entry()
                .map_err(|e| format!("the adopt reply's entry {}: {e}", i + 1))?;
            Ok(FdAdoptResult {
                tuple,
                result: AdoptResult::Taken(e),
            })
        })
        .collect()
}

/// The outcome of one fd of an adopt with `wait` ([`FdAdopt::Wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdWaitResult {
    /// The socket's tuple as the kernel read it (`None` as in [`FdAdoptResult::tuple`]).
    pub tuple: Option<Tuple>,
    /// 0: the module holds the socket and adopts it at FIN_WAIT2; or the negative errno.
    pub result: i32,
}

/// The per-fd results of an adopt with `wait`: as [`adopt_fd_results`], with no entry yet.
pub fn adopt_fd_wait_results(
    reply: &TwMessage,
    sent: &[RawFd],
) -> Result<Vec<FdWaitResult>, DecodeError> {
    Ok(fd_results(reply, sent)?
        .into_iter()
        .map(|(tuple, result, _)| FdWaitResult { tuple, result })
        .collect())
}

/// Each fd's tuple, result and nest: the echoed fd must be the one sent at its position, and
/// one taken (result 0) must name its tuple.
fn fd_results(
    reply: &TwMessage,
    sent: &[RawFd],
) -> Result<Vec<(Option<Tuple>, i32, ReplyEntry)>, DecodeError> {
    adopt_reply_entries(reply, sent.len(), "fds")?
        .into_iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (r, fd))| {
            if let Some(echo) = r.fd {
                if echo != *fd as u32 {
                    return Err(format!(
                        "the adopt reply's entry {} names fd {echo}, not {fd}",
                        i + 1
                    )
                    .into());
                }
            }
            let res = adopt_result_of(&r, i)?;
            // A tuple that is no connection's (port 0 of a closed socket) is no tuple.
            let tuple = r
                .tuple()?
                .filter(|t| t.local.port() != 0 && t.remote.port() != 0);
            if res == 0 && tuple.is_none() {
                return Err(format!(
                    "the adopt reply's entry {} is taken without its tuple",
                    i + 1
                )
                .into());
            }
            Ok((tuple, res, r))
        })
        .collect()
}

/// Counters, in the order received, with their spec names (unknown ones as `stat-N`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats(pub Vec<(String, u64)>);

impl Stats {
    /// From a `get-stats` reply.
    pub fn from_message(msg: &TwMessage) -> Result<Self, DecodeError> {
        let nest = msg
            .attrs
            .iter()
            .find_map(|a| match a {
                MainAttr::Stats(v) => Some(v),
                _ => None,
            })
            .ok_or("get-stats reply without a stats nest")?;
        Ok(Stats(
            nest.iter()
                .map(|s| {
                    let name = match STAT_NAMES.get((s.kind as usize).wrapping_sub(1)) {
                        Some(n) => (*n).to_string(),
                        None => format!("stat-{}", s.kind),
                    };
                    (name, s.value)
                })
                .collect(),
        ))
    }

    /// One counter by its spec name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// The `flushed` count of a flush reply.
pub fn flushed_count(msg: &TwMessage) -> Result<u32, DecodeError> {
    msg.attrs
        .iter()
        .find_map(|a| match a {
            MainAttr::Flushed(n) => Some(*n),
            _ => None,
        })
        .ok_or_else(|| "flush reply without flushed".into())
}

// ---------------------------------------------------------------------------------------------
// Errors and extended ACKs

/// `NLMSGERR_ATTR_*` (include/uapi/linux/netlink.h).
mod nlmsgerr {
    pub const MSG: u16 = 1;
    pub const OFFS: u16 = 2;
    pub const MISS_TYPE: u16 = 5;
    pub const MISS_NEST: u16 = 6;
}

/// The extended ACK of an error (or of a successful ACK, as a warning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extack {
    /// The kernel's message.
    pub msg: Option<String>,
    /// Offset of the offending attribute in the request (from its `nlmsghdr`).
    pub offset: Option<u32>,
    /// Type of a missing attribute.
    pub miss_type: Option<u32>,
    /// Offset of the nest the attribute is missing from.
    pub miss_nest: Option<u32>,
}

impl Extack {
    /// Decodes the TLVs after an error's original message (or a DONE's code).
    pub fn from_tlvs(tlvs: &[u8]) -> Self {
        let mut x = Extack::default();
        for nla in NlasIterator::new(tlvs).flatten() {
            let v = nla.value();
            match nla.kind() {
                nlmsgerr::MSG => x.msg = parse_string(v).ok().filter(|s| !s.is_empty()),
                nlmsgerr::OFFS => x.offset = parse_u32(v).ok(),
                nlmsgerr::MISS_TYPE => x.miss_type = parse_u32(v).ok(),
                nlmsgerr::MISS_NEST => x.miss_nest = parse_u32(v).ok(),
                _ => {}
            }
        }
        x
    }

    /// Decodes an `NLMSG_ERROR` payload after its 4-byte code: the original message (only its
    /// header when `NLM_F_CAPPED`), then TLVs when `NLM_F_ACK_TLVS`.
    pub fn from_error(flags: u16, after_code: &[u8]) -> Self {
        if flags & NLM_F_ACK_TLVS == 0 {
            return Extack::default();
        }
        let skip = if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            match NetlinkBuffer::new_checked(after_code) {
                Ok(b) => (b.length() as usize + 3) & !3,
                Err(_) => return Extack::default(),
            }
        };
        match after_code.get(skip..) {
            Some(tlvs) => Extack::from_tlvs(tlvs),
            None => Extack::default(),
        }
    }

    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Extack::default()
    }
}

/// Where an offset of an extended ACK points in a request of this family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// 0-based index among the request's `entry` nests, when inside one.
    pub entry: Option<usize>,
    /// The attribute's spec name.
    pub attr: String,
}

/// Maps an offset (from the start of the `nlmsghdr`, as the kernel reports it) to the
/// attribute of `request` that contains it.
pub fn locate(request: &[u8], offset: u32) -> Option<Location> {
    let off = offset as usize;
    let base = 16 + 4; // nlmsghdr + genlmsghdr
    let top = request.get(base..)?;
    let mut pos = base;
    let mut entries = 0usize;
    for nla in NlasIterator::new(top) {
        let nla = nla.ok()?;
        let len = nla.length() as usize;
        let span = (len + 3) & !3;
        if off >= pos && off < pos + span.max(4) {
            if nla.kind() != main_attr::ENTRY {
                return Some(Location {
                    entry: None,
                    attr: name_of(&MAIN_ATTR_NAMES, nla.kind()),
                });
            }
            // Inside an entry nest: find the inner attribute.
            let mut ipos = pos + 4;
            for inner in NlasIterator::new(nla.value()) {
                let inner = inner.ok()?;
                let ispan = (inner.length() as usize + 3) & !3;
                if off >= ipos && off < ipos + ispan.max(4) {
                    return Some(Location {
                        entry: Some(entries),
                        attr: name_of(&ENTRY_ATTR_NAMES, inner.kind()),
                    });
                }
                ipos += ispan;
            }
            return Some(Location {
                entry: Some(entries),
                attr: "entry".into(),
            });
        }
        if nla.kind() == main_attr::ENTRY {
            entries += 1;
        }
        pos += span;
    }
    None
}

/// A refusal from the kernel: the errno (positive) and what the extended ACK says, with its
/// offsets resolved against the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Positive errno.
    pub errno: i32,
    /// The kernel's message, if any.
    pub msg: Option<String>,
    /// The offending attribute, if the kernel pointed at one.
    pub bad_attr: Option<Location>,
    /// A required attribute that was missing: (its name, the entry it is missing from).
    pub missing: Option<(String, Option<usize>)>,
}

impl Refusal {
    /// Builds a refusal from an errno, the extended ACK and the request it answers.
    pub fn new(errno: i32, x: &Extack, request: &[u8]) -> Self {
        let bad_attr = x.offset.and_then(|o| locate(request, o));
        let missing = x.miss_type.map(|t| {
            let nest = x.miss_nest.and_then(|o| locate(request, o));
            match nest {
                Some(loc) => (name_of(&ENTRY_ATTR_NAMES, t as u16), loc.entry),
                None => (name_of(&MAIN_ATTR_NAMES, t as u16), None),
            }
        });
        Refusal {
            errno,
            msg: x.msg.clone(),
            bad_attr,
            missing,
        }
    }

    /// The errno's text ("Invalid argument").
    pub fn strerror(&self) -> String {
        strerror(self.errno)
    }

    /// Which entry of the request (0-based) the refusal points at, if any.
    pub fn entry_index(&self) -> Option<usize> {
        self.bad_attr
            .as_ref()
            .and_then(|l| l.entry)
            .or_else(|| self.missing.as_ref().and_then(|m| m.1))
    }

    /// The details after the errno: the message and the attribute pointed at, with a caller's
    /// description of an entry index (e.g. its line number).
    pub fn details(&self, describe_entry: &dyn Fn(usize) -> String) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.msg {
            parts.push(m.clone());
        }
        if let Some(loc) = &self.bad_attr {
            match loc.entry {
                Some(i) => parts.push(format!(
                    "at attribute {} of {}",
                    loc.attr,
                    describe_entry(i)
                )),
                None => parts.push(format!("at attribute {}", loc.attr)),
            }
        }
        if let Some((name, entry)) = &self.missing {
            match entry {
                Some(i) => parts.push(format!(
                    "missing attribute {name} in {}",
                    describe_entry(*i)
                )),
                None => parts.push(format!("missing attribute {name}")),
            }
        }
        parts.join("; ")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.details(&|i| format!("entry {}", i + 1));
        if d.is_empty() {
            write!(f, "{}", self.strerror())
        } else {
            write!(f, "{}: {d}", self.strerror())
        }
    }
}

/// The C library's text for an errno.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    // std appends " (os error N)": keep the text, and the symbolic name where we know it.
    let text = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    match errno_name(errno) {
        Some(n) => format!("{text} ({n})"),
        None => text,
    }
}

/// Symbolic names of the errnos this family reports.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ENOMEM => "ENOMEM",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EBUSY => "EBUSY",
        libc::E2BIG => "E2BIG",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ENOTCONN => "ENOTCONN",
        libc::EBADF => "EBADF",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EPROTO => "EPROTO",
        _ => return None,
    })
}

/// One message of a reply datagram, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<M> {
    /// A message of the family.
    Message { seq: u32, flags: u16, msg: M },
    /// `NLMSG_ERROR` with code 0: the request is done; an extended ACK is a warning.
    Ack { seq: u32, extack: Extack },
    /// `NLMSG_ERROR` with an errno (positive here).
    Error {
        seq: u32,
        errno: i32,
        extack: Extack,
    },
    /// `NLMSG_DONE` of a dump; a negative code is the dump's error.
    Done {
        seq: u32,
        errno: i32,
        extack: Extack,
    },
}

impl<M> Reply<M> {
    /// The sequence number of the request this answers.
    pub fn seq(&self) -> u32 {
        match self {
            Reply::Message { seq, .. }
            | Reply::Ack { seq, .. }
            | Reply::Error { seq, .. }
            | Reply::Done { seq, .. } => *seq,
        }
    }
}

/// Splits a datagram into its netlink messages and decodes them.
pub fn parse_datagram<M>(buf: &[u8]) -> Result<Vec<Reply<M>>, DecodeError>
where
    M: ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
{
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 16 <= buf.len() {
        let b = NetlinkBuffer::new_checked(&buf[pos..]).context("reply datagram")?;
        let len = b.length() as usize;
        if len < 16 {
            return Err("netlink message shorter than its header".into());
        }
        let one = &buf[pos..pos + len];
        let nl = NetlinkMessage::<GenlMessage<M>>::deserialize(one)?;
        let h = nl.header;
        let seq = h.sequence_number;
        out.push(match nl.payload {
            NetlinkPayload::InnerMessage(g) => Reply::Message {
                seq,
                flags: h.flags,
                msg: g.payload,
            },
            NetlinkPayload::Error(e) => {
                let extack = Extack::from_error(h.flags, &e.header);
                match e.code {
                    None => Reply::Ack { seq, extack },
                    Some(c) => Reply::Error {
                        seq,
                        errno: -c.get(),
                        extack,
                    },
                }
            }
            NetlinkPayload::Done(d) => {
                let extack = if h.flags & NLM_F_ACK_TLVS != 0 {
                    Extack::from_tlvs(&d.extended_ack)
                } else {
                    Extack::default()
                };
                Reply::Done {
                    seq,
                    errno: -d.code,
                    extack,
                }
            }
            NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {
                pos += (len + 3) & !3;
                continue;
            }
            _ => {
                pos += (len + 3) & !3;
                continue;
            }
        });
        pos += (len + 3) & !3;
    }
    Ok(out)
}

// Keeps `NetlinkDeserializable` in scope for `deserialize` on generic messages.
#[allow(dead_code)]
fn _assert_deserializable<M>()
where
    GenlMessage<M>: NetlinkDeserializable,
    M: ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
{
}

#[cfg(test)]
mod tests;
