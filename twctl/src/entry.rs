// SPDX-License-Identifier: GPL-2.0

//! The entry model: one compressed TIME_WAIT (or FIN_WAIT_2) entry as the module keeps it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `AF_INET`, as the `family` attribute carries it.
pub const AF_INET: u8 = 2;
/// `AF_INET6`, as the `family` attribute carries it.
pub const AF_INET6: u8 = 10;

/// What an entry waits for (the spec's `substate` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Substate {
    /// Both FINs seen; the tuple is guarded for 2*MSL.
    #[default]
    TimeWait,
    /// Our FIN acknowledged, the peer's not seen yet (live-socket handoff).
    FinWait2,
}

impl Substate {
    /// The value on the wire (the spec's `substate` enum, checked by `tests/host/spec_check.py`).
    pub fn to_u8(self) -> u8 {
        match self {
            Substate::TimeWait => 0,
            Substate::FinWait2 => 1,
        }
    }

    /// From the value on the wire.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Substate::TimeWait),
            1 => Some(Substate::FinWait2),
            _ => None,
        }
    }

    /// The state as `ss` prints it.
    pub fn ss_name(self) -> &'static str {
        match self {
            Substate::TimeWait => "TIME-WAIT",
            Substate::FinWait2 => "FIN-WAIT-2",
        }
    }

    /// The name in the netlink spec (used in JSON).
    pub fn spec_name(self) -> &'static str {
        match self {
            Substate::TimeWait => "time-wait",
            Substate::FinWait2 => "fin-wait2",
        }
    }
}

/// Why a 4-tuple cannot be an entry's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TupleError(pub String);

impl fmt::Display for TupleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TupleError {}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// The 4-tuple an entry guards: both ends of one TCP connection, of one family.
///
/// For IPv6 the scope (interface index) of a link-local address is kept in the
/// `scope_id` of every link-local end, and is 0 on every other end (see [`Tuple::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Our end.
    pub local: SocketAddr,
    /// The peer's end.
    pub remote: SocketAddr,
}

impl Tuple {
    /// Checks and normalizes a tuple: both ends of one family, ports not 0, and for IPv6 a
    /// consistent scope: given on either end (or both, equal), only when one end is link-local,
    /// and required then. The scope is copied to every link-local end.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Result<Self, TupleError> {
        if local.port() == 0 || remote.port() == 0 {
            return Err(TupleError(
                "port 0 is not a connection's port (1-65535)".into(),
            ));
        }
        match (local, remote) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => Ok(Tuple { local, remote }),
            (SocketAddr::V6(l), SocketAddr::V6(r)) => {
                let scope = match (l.scope_id(), r.scope_id()) {
                    (0, s) | (s, 0) => s,
                    (a, b) if a == b => a,
                    (a, b) => {
                        return Err(TupleError(format!(
                            "the two ends name different scopes (%{a} and %{b})"
                        )))
                    }
                };
                let any_ll = is_link_local(l.ip()) || is_link_local(r.ip());
                if scope != 0 && !any_ll {
                    return Err(TupleError(format!(
                        "a scope (%{scope}) belongs to a link-local (fe80::/10) address only"
                    )));
                }
                if scope == 0 && any_ll {
                    return Err(TupleError(
                        "a link-local address needs its interface: [fe80::1%IFINDEX]:PORT or \
                         [fe80::1%ifname]:PORT"
                            .into(),
                    ));
                }
                let fix = |a: SocketAddrV6| {
                    let s = if is_link_local(a.ip()) { scope } else { 0 };
                    SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, s))
                };
                Ok(Tuple {
                    local: fix(l),
                    remote: fix(r),
                })
            }
            _ => Err(TupleError(
                "the two ends are of different families (one IPv4, one IPv6)".into(),
            )),
        }
    }

    /// Builds a tuple from the attributes of a reply, where the scope is one `ifindex` (absent
    /// from add replies, and possibly 0 for an entry some other tool added). Not checked: what
    /// the module holds is shown as it is.
    pub fn from_parts(
        local: IpAddr,
        local_port: u16,
        remote: IpAddr,
        remote_port: u16,
        ifindex: u32,
    ) -> Self {
        let mk = |ip: IpAddr, port: u16| match ip {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
            IpAddr::V6(a) => {
                let s = if is_link_local(&a) { ifindex } else { 0 };
                SocketAddr::V6(SocketAddrV6::new(a, port, 0, s))
            }
        };
        Tuple {
            local: mk(local, local_port),
            remote: mk(remote, remote_port),
        }
    }

    /// `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u8 {
        match self.local {
            SocketAddr::V4(_) => AF_INET,
            SocketAddr::V6(_) => AF_INET6,
        }
    }

    /// The interface index of a link-local IPv6 tuple, 0 otherwise.
    pub fn ifindex(&self) -> u32 {
        match (self.local, self.remote) {
            (SocketAddr::V6(l), SocketAddr::V6(r)) => l.scope_id().max(r.scope_id()),
            _ => 0,
        }
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.local, self.remote)
    }
}

/// What names an entry in a request that carries only a key (`del`, `get`, `adopt`): the
/// tuple, and the device the socket was bound to, whose VRF (L3 master) is part of the
/// module's key. `bound_ifindex` 0 (not sent) is the default VRF; an entry of a socket bound
/// to a device in a VRF (SO_BINDTODEVICE, or to the VRF itself) is only found with it. For
/// `adopt` it is also the device the module looks the socket up by.
///
/// Every `del`/`get`/`adopt` of [`crate::Client`] takes anything that converts into a key: a
/// [`Tuple`] (default VRF), an [`Entry`] (its `bound_ifindex`), or a `Key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The 4-tuple (with its IPv6 link-local scope).
    pub tuple: Tuple,
    /// The socket's bound device (`bound-ifindex`), 0: none (the default VRF).
    pub bound_ifindex: u32,
}

impl Key {
    /// The key of a tuple in the VRF of the device `bound_ifindex` (0: the default VRF).
    pub fn new(tuple: Tuple, bound_ifindex: u32) -> Self {
        Key {
            tuple,
            bound_ifindex,
        }
    }
}

impl From<Tuple> for Key {
    fn from(tuple: Tuple) -> Self {
        Key::new(tuple, 0)
    }
}

impl From<&Tuple> for Key {
    fn from(tuple: &Tuple) -> Self {
        Key::new(*tuple, 0)
    }
}

impl From<&Key> for Key {
    fn from(k: &Key) -> Self {
        *k
    }
}

impl From<Entry> for Key {
    fn from(e: Entry) -> Self {
        e.key()
    }
}

impl From<&Entry> for Key {
    fn from(e: &Entry) -> Self {
        e.key()
    }
}

impl fmt::Display for Key {
    /// The tuple, then `bound-ifindex N` when it is not 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tuple)?;
        if self.bound_ifindex != 0 {
            write!(f, " bound-ifindex {}", self.bound_ifindex)?;
        }
        Ok(())
    }
}

/// One entry: the tuple and the TCP state the module needs to answer for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The guarded 4-tuple.
    pub tuple: Tuple,
    /// Our next sequence number (after our FIN).
    pub snd_nxt: u32,
    /// Next sequence number expected from the peer (after its FIN in TIME_WAIT).
    pub rcv_nxt: u32,
    /// The window we last advertised, as on the wire (already scaled).
    pub last_win: u16,
    /// Our receive window scale (0-14).
    pub rcv_wscale: u8,
    /// The connection uses timestamps (RFC 7323).
    pub has_ts: bool,
    /// Last TSval seen from the peer, when one was learned.
    pub ts_recent: Option<u32>,
    /// Our TSval clock minus the module's TCP clock, in ms (wrapping).
    pub ts_offset: u32,
    /// TIME_WAIT or FIN_WAIT_2.
    pub substate: Substate,
    /// Remaining lifetime in ms (only in replies).
    pub expires_ms: Option<u32>,
    /// IPv4 TOS / IPv6 traffic class of the connection, given to the entry's ACKs (0: none;
    /// like the five fields below, 0 is not sent and absent from replies).
    pub tos: u8,
    /// The socket's mark (SO_MARK), for the entry's replies (0: none).
    pub mark: u32,
    /// The device the socket was bound to (SO_BINDTODEVICE, or a VRF master), 0: any.
    pub bound_ifindex: u32,
    /// The IPv6 flow label the connection set (at most [`MAX_FLOWLABEL`]; 0: none).
    pub flowlabel: u32,
    /// The socket's priority (SO_PRIORITY), for the entry's replies (0: none).
    pub priority: u32,
    /// The connection's transmit hash (ECMP path, automatic flow label); 0: none.
    pub txhash: u32,
}

impl Entry {
    /// A TIME_WAIT entry without timestamps; set the other fields as needed.
    pub fn new(tuple: Tuple, snd_nxt: u32, rcv_nxt: u32) -> Self {
        Entry {
            tuple,
            snd_nxt,
            rcv_nxt,
            last_win: 0,
            rcv_wscale: 0,
            has_ts: false,
            ts_recent: None,
            ts_offset: 0,
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

    /// The key that names this entry: its tuple and `bound_ifindex` (its VRF).
    pub fn key(&self) -> Key {
        Key::new(self.tuple, self.bound_ifindex)
    }
}

/// The highest window scale RFC 7323 allows (and the spec's `max: 14`).
pub const MAX_WSCALE: u8 = 14;

/// The highest IPv6 flow label (20 bits, the spec's `max: 0xfffff`).
pub const MAX_FLOWLABEL: u32 = 0xfffff;

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tuple_v4() {
        let t = Tuple::new(sa("10.0.0.1:80"), sa("10.0.0.2:40000")).unwrap();
        assert_eq!(t.family(), AF_INET);
        assert_eq!(t.ifindex(), 0);
        assert_eq!(t.to_string(), "10.0.0.1:80 10.0.0.2:40000");
    }

    #[test]
    fn tuple_scope_is_spread_to_link_local_ends() {
        let t = Tuple::new(sa("[fe80::1%3]:80"), sa("[fe80::2]:4000")).unwrap();
        assert_eq!(t.ifindex(), 3);
        assert_eq!(t.remote, sa("[fe80::2%3]:4000"));
        assert_eq!(t.family(), AF_INET6);
        // A global end keeps no scope, wherever it was written.
        let t = Tuple::new(sa("[fe80::1]:80"), sa("[2001:db8::2%4]:4000")).unwrap();
        assert_eq!(t.local, sa("[fe80::1%4]:80"));
        assert_eq!(t.remote, sa("[2001:db8::2]:4000"));
        let t = Tuple::new(sa("[fe80::1%4]:80"), sa("[2001:db8::2]:4000")).unwrap();
        assert_eq!(t.remote, sa("[2001:db8::2]:4000"));
        assert_eq!(t.ifindex(), 4);
    }

    #[test]
    fn tuple_refusals() {
        for (l, r, why) in [
            ("10.0.0.1:80", "[::1]:80", "different families"),
            ("10.0.0.1:0", "10.0.0.2:80", "port 0"),
            ("10.0.0.1:80", "10.0.0.2:0", "port 0"),
            ("[fe80::1]:80", "[fe80::2]:80", "needs its interface"),
            ("[fe80::1%1]:80", "[fe80::2%2]:80", "different scopes"),
            (
                "[2001:db8::1%1]:80",
                "[2001:db8::2]:80",
                "belongs to a link-local",
            ),
        ] {
            let err = Tuple::new(sa(l), sa(r)).unwrap_err().to_string();
            assert!(err.contains(why), "{l} {r}: {err}");
        }
    }

    #[test]
    fn substate_round_trip() {
        for s in [Substate::TimeWait, Substate::FinWait2] {
            assert_eq!(Substate::from_u8(s.to_u8()), Some(s));
        }
        assert_eq!(Substate::from_u8(2), None);
        assert_eq!(Substate::FinWait2.ss_name(), "FIN-WAIT-2");
    }

    #[test]
    fn keys_of_tuples_and_entries() {
        let t = Tuple::new(sa("10.0.0.1:80"), sa("10.0.0.2:40000")).unwrap();
        assert_eq!(Key::from(t), Key::new(t, 0));
        assert_eq!(Key::from(&t).to_string(), "10.0.0.1:80 10.0.0.2:40000");
        let mut e = Entry::new(t, 1, 2);
        e.bound_ifindex = 7;
        assert_eq!(Key::from(&e), Key::new(t, 7));
        assert_eq!(e.key(), Key::from(e));
        assert_eq!(
            e.key().to_string(),
            "10.0.0.1:80 10.0.0.2:40000 bound-ifindex 7"
        );
    }
}
