// SPDX-License-Identifier: GPL-2.0

//! The text line format of `twctl add` files: one entry per line.
//!
//! Pure parsing and formatting, no I/O except through the caller's scope resolver.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::entry::{Entry, Substate, Tuple, MAX_FLOWLABEL, MAX_WSCALE};

/// The format, as `twctl add --help` shows it.
pub const FORMAT_HELP: &str = "\
ENTRY FILE FORMAT (twctl add -f FILE, '-' for stdin)
  One entry per line; blank lines and everything after '#' are ignored:
    LOCAL REMOTE snd_nxt=N rcv_nxt=N [win=N] [wscale=N] [ts_recent=N] [ts_offset=N] [ts]
                 [tos=N] [mark=N] [bound_ifindex=N|IFACE] [flowlabel=N] [priority=N]
                 [txhash=N] [fw2|tw]
  LOCAL, REMOTE  ADDR:PORT; IPv6 in brackets: [2001:db8::1]:80, link-local with its
                 interface (index or name): [fe80::1%3]:80, [fe80::1%eth0]:80.
                 Ports 1-65535; unicast addresses only; write IPv4 as IPv4, not ::ffff:a.b.c.d.
  snd_nxt=N      our next sequence number, after our FIN (required)
  rcv_nxt=N      next sequence number expected from the peer, after its FIN (required)
  win=N          the window we last advertised, as on the wire (0-65535, default 0)
  wscale=N       our receive window scale (0-14, default 0)
  ts_recent=N    last TSval seen from the peer (implies ts)
  ts_offset=N    our TSval clock minus the module's clock in ms, wrapping; may be negative
                 (implies ts)
  ts             the connection uses timestamps (without a known ts_recent: fw2 only)
  fw2 | tw       substate FIN_WAIT_2 or TIME_WAIT (default tw); a tw entry with timestamps
                 needs ts_recent= (only fw2 learns it from the peer's FIN)
  The connection's attributes, each 0 (none) by default, given to the entry's replies:
  tos=N          IPv4 TOS / IPv6 traffic class (0-255)
  mark=N         the socket's mark (SO_MARK)
  bound_ifindex=N  the device the socket was bound to (index or name; the entry then answers
                 only segments that came in through it)
  flowlabel=N    IPv6 flow label (0-0xfffff)
  priority=N     the socket's priority (SO_PRIORITY)
  txhash=N       the connection's transmit hash (ECMP path, automatic flow label)
  Numbers are decimal or 0x-hex. Aliases: last_win=, rcv_wscale=; '-' may replace '_'.
  The whole input is checked before anything is sent; errors name the line.
  Example:
    10.0.0.1:80 10.0.0.2:40000 snd_nxt=1000 rcv_nxt=2000 win=502 wscale=7 ts_recent=12345 ts_offset=0x1000
    [2001:db8::1]:443 [2001:db8::2]:50000 snd_nxt=5 rcv_nxt=9 fw2   # a handed-off socket";

/// A parse error of one line, with its number (1-based) when it comes from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Resolves an interface name (after `%`) to its index; numeric scopes never reach it.
pub type ScopeResolver<'a> = &'a dyn Fn(&str) -> Option<u32>;

/// A resolver that knows no interface names.
pub fn no_names(_: &str) -> Option<u32> {
    None
}

/// Parses a number, decimal or `0x` hexadecimal, at most `max`.
pub fn parse_number(s: &str, max: u64) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("'{s}' is not a number"));
    }
    match u64::from_str_radix(digits, radix) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("{s} is out of range (0-{max})")),
    }
}

/// A u32, decimal or hex.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    parse_number(s, u32::MAX as u64).map(|v| v as u32)
}

/// A u32 that may also be written as a negative number (two's complement, as a wrapping
/// difference of two u32 clocks).
pub fn parse_wrapping_u32(s: &str) -> Result<u32, String> {
    match s.strip_prefix('-') {
        Some(rest) => {
            let v = parse_number(rest, 1 << 31)
                .map_err(|_| format!("{s} is out of range (-2147483648 to 4294967295)"))?;
            Ok((v as u32).wrapping_neg())
        }
        None => parse_u32(s),
    }
}

fn field<T>(what: &str, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn check_unicast(ip: IpAddr) -> Result<(), String> {
    let bad = match ip {
        IpAddr::V4(a) => {
            if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if a == Ipv4Addr::BROADCAST {
                Some("the broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if a.to_ipv4_mapped().is_some() {
                return Err(format!(
                    "{a} is an IPv4-mapped address: write it as IPv4 ({})",
                    a.to_ipv4_mapped().unwrap()
                ));
            } else {
                None
            }
        }
    };
    match bad {
        Some(what) => Err(format!("{ip} is {what}, not a connection's end")),
        None => Ok(()),
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err(format!("'{whole}': missing port (ADDR:PORT)"));
    }
    if !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("'{whole}': port '{s}' is not a number"));
    }
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("'{whole}': port {s} is out of range (1-65535)")),
    }
}

/// Parses one end: `1.2.3.4:80`, `[2001:db8::1]:80`, `[fe80::1%3]:80` or `[fe80::1%eth0]:80`.
pub fn parse_endpoint(s: &str, resolve: ScopeResolver) -> Result<SocketAddr, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{s}': missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("'{s}': expected ':PORT' after ']'"))?;
        let (addr, scope) = match inside.split_once('%') {
            Some((a, sc)) => (a, Some(sc)),
            None => (inside, None),
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("'{s}': '{addr}' is not an IPv6 address"))?;
        let port = parse_port(port, s)?;
        let scope_id = match scope {
            None => 0,
            Some("") => return Err(format!("'{s}': empty scope after '%'")),
            Some(sc) if sc.chars().all(|c| c.is_ascii_digit()) => match sc.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("'{s}': scope '{sc}' is not an interface index")),
            },
            Some(sc) => resolve(sc).ok_or_else(|| format!("'{s}': no interface named '{sc}'"))?,
        };
        check_unicast(IpAddr::V6(ip)).map_err(|e| format!("'{s}': {e}"))?;
        return Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}': expected ADDR:PORT"))?;
    if host.contains(':') {
        return Err(format!(
            "'{s}': write an IPv6 address in brackets: [ADDR]:PORT"
        ));
    }
    let ip: Ipv4Addr = host
        .parse()
        .map_err(|_| format!("'{s}': '{host}' is not an IPv4 address (names are not resolved)"))?;
    let port = parse_port(port, s)?;
    check_unicast(IpAddr::V4(ip)).map_err(|e| format!("'{s}': {e}"))?;
    Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

/// Parses `LOCAL REMOTE` into a checked tuple.
pub fn parse_tuple(local: &str, remote: &str, resolve: ScopeResolver) -> Result<Tuple, String> {
    let l = parse_endpoint(local, resolve)?;
    let r = parse_endpoint(remote, resolve)?;
    Tuple::new(l, r).map_err(|e| format!("'{local} {remote}': {e}"))
}

/// The module's rule: a TIME_WAIT entry with timestamps needs `ts_recent` (the PAWS reference
/// and the TSecr of its ACKs); only a FIN_WAIT_2 entry learns it, from the peer's FIN.
pub fn check_timestamps(e: &Entry) -> Result<(), String> {
    if e.has_ts && e.ts_recent.is_none() && e.substate == Substate::TimeWait {
        return Err(
            "a time-wait entry with timestamps (ts, ts_offset=) needs ts_recent=N; \
                    only a fw2 entry learns it from the peer's FIN"
                .into(),
        );
    }
    Ok(())
}

const FIELDS: &str = "snd_nxt=, rcv_nxt=, win=, wscale=, ts_recent=, ts_offset=, ts, tos=, \
mark=, bound_ifindex=, flowlabel=, priority=, txhash=, fw2, tw";

/// A device: its index (not 0), or its name through the resolver.
fn parse_ifindex(s: &str, resolve: ScopeResolver) -> Result<u32, String> {
    if s.chars().all(|c| c.is_ascii_digit()) {
        return parse_u32(s);
    }
    if s.starts_with("0x") || s.starts_with("0X") {
        return parse_u32(s);
    }
    resolve(s).ok_or_else(|| format!("no interface named '{s}'"))
}

/// Parses one line. `Ok(None)` for a blank or comment-only line.
pub fn parse_line(line: &str, resolve: ScopeResolver) -> Result<Option<Entry>, String> {
    let text = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    let mut words = text.split_whitespace();
    let Some(local) = words.next() else {
        return Ok(None);
    };
    let Some(remote) = words.next() else {
        return Err("expected LOCAL REMOTE followed by snd_nxt=N rcv_nxt=N ...".into());
    };
    let tuple = parse_tuple(local, remote, resolve)?;
    let mut e = Entry::new(tuple, 0, 0);
    let (mut snd, mut rcv) = (false, false);
    let mut seen: HashMap<String, ()> = HashMap::new();
    for w in words {
        let (key, value) = match w.split_once('=') {
            Some((k, v)) => (k.replace('-', "_"), Some(v)),
            None => (w.replace('-', "_"), None),
        };
        let canon = match key.as_str() {
            "last_win" => "win",
            "rcv_wscale" => "wscale",
            "tw" => "fw2", // one substate field
            k => k,
        }
        .to_string();
        if seen.insert(canon, ()).is_some() {
            return Err(format!("'{w}': field given twice"));
        }
        let need = |v: Option<&str>| -> Result<String, String> {
            match v {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(format!("'{w}': {key} needs a value ({key}=N)")),
            }
        };
        match key.as_str() {
            "snd_nxt" => {
                e.snd_nxt = field("snd_nxt", parse_u32(&need(value)?))?;
                snd = true;
            }
            "rcv_nxt" => {
                e.rcv_nxt = field("rcv_nxt", parse_u32(&need(value)?))?;
                rcv = true;
            }
            "win" | "last_win" => {
                e.last_win = field("win", parse_number(&need(value)?, 65535))? as u16
            }
            "wscale" | "rcv_wscale" => {
                e.rcv_wscale =
                    field("wscale", parse_number(&need(value)?, MAX_WSCALE as u64))? as u8
            }
            "ts_recent" => {
                e.ts_recent = Some(field("ts_recent", parse_u32(&need(value)?))?);
                e.has_ts = true;
            }
            "ts_offset" => {
                e.ts_offset = field("ts_offset", parse_wrapping_u32(&need(value)?))?;
                e.has_ts = true;
            }
            "tos" => e.tos = field("tos", parse_number(&need(value)?, u8::MAX as u64))? as u8,
            "mark" => e.mark = field("mark", parse_u32(&need(value)?))?,
            "bound_ifindex" => {
                e.bound_ifindex = field("bound_ifindex", parse_ifindex(&need(value)?, resolve))?
            }
            "flowlabel" => {
                e.flowlabel = field(
                    "flowlabel",
                    parse_number(&need(value)?, MAX_FLOWLABEL as u64),
                )? as u32
            }
            "priority" => e.priority = field("priority", parse_u32(&need(value)?))?,
            "txhash" => e.txhash = field("txhash", parse_u32(&need(value)?))?,
            "ts" | "fw2" | "tw" if value.is_some() => {
                return Err(format!("'{w}': {key} is a flag and takes no value"))
            }
            "ts" => e.has_ts = true,
            "fw2" => e.substate = Substate::FinWait2,
            "tw" => e.substate = Substate::TimeWait,
            _ => return Err(format!("unknown field '{w}' (fields: {FIELDS})")),
        }
    }
    if !snd {
        return Err("missing snd_nxt=N".into());
    }
    if !rcv {
        return Err("missing rcv_nxt=N".into());
    }
    check_timestamps(&e)?;
    Ok(Some(e))
}

/// Parses a whole input; every entry comes with its line number. Either every line is good,
/// or the errors (at most `max_errors`) are returned and nothing else. A tuple given twice is
/// an error of the second line.
pub fn parse_entries<R: BufRead>(
    input: R,
    resolve: ScopeResolver,
    max_errors: usize,
) -> Result<Vec<(usize, Entry)>, Vec<LineError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut first_line: HashMap<Tuple, usize> = HashMap::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                errors.push(LineError {
                    line: n,
                    msg: format!("cannot read: {e}"),
                });
                break;
            }
        };
        match parse_line(&line, resolve) {
            Ok(None) => {}
            Ok(Some(e)) => {
                if let Some(prev) = first_line.insert(e.tuple, n) {
                    first_line.insert(e.tuple, prev);
                    errors.push(LineError {
                        line: n,
                        msg: format!("{}: tuple already given on line {prev}", e.tuple),
                    });
                } else {
                    entries.push((n, e));
                }
            }
            Err(msg) => errors.push(LineError { line: n, msg }),
        }
        if errors.len() >= max_errors {
            break;
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// Formats an entry as one line of the format ([`parse_line`] reads it back).
pub fn format_line(e: &Entry) -> String {
    let mut s = format!(
        "{} {} snd_nxt={} rcv_nxt={} win={} wscale={}",
        e.tuple.local, e.tuple.remote, e.snd_nxt, e.rcv_nxt, e.last_win, e.rcv_wscale
    );
    if e.has_ts {
        if let Some(r) = e.ts_recent {
            s.push_str(&format!(" ts_recent={r}"));
        }
        s.push_str(&format!(" ts_offset={}", e.ts_offset));
    }
    // The connection's attributes, only when set (0 is none): lines without them are as before.
    if e.tos != 0 {
        s.push_str(&format!(" tos={:#04x}", e.tos));
    }
    for (name, v) in [
        ("mark", e.mark),
        ("bound_ifindex", e.bound_ifindex),
        ("flowlabel", e.flowlabel),
        ("priority", e.priority),
        ("txhash", e.txhash),
    ] {
        if v != 0 {
            if matches!(name, "mark" | "flowlabel" | "txhash") {
                s.push_str(&format!(" {name}={v:#x}"));
            } else {
                s.push_str(&format!(" {name}={v}"));
            }
        }
    }
    if e.substate == Substate::FinWait2 {
        s.push_str(" fw2");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> Option<u32> {
        (n == "eth0").then_some(7)
    }

    fn ep(s: &str) -> Result<SocketAddr, String> {
        parse_endpoint(s, &names)
    }

    #[test]
    fn endpoints() {
        assert_eq!(ep("10.0.0.1:80").unwrap(), "10.0.0.1:80".parse().unwrap());
        assert_eq!(
            ep("[2001:db8::1]:443").unwrap(),
            "[2001:db8::1]:443".parse().unwrap()
        );
        assert_eq!(
            ep("[fe80::1%3]:80").unwrap(),
            "[fe80::1%3]:80".parse().unwrap()
        );
        assert_eq!(
            ep("[fe80::1%eth0]:80").unwrap(),
            "[fe80::1%7]:80".parse().unwrap()
        );
        assert_eq!(ep("10.0.0.1:65535").unwrap().port(), 65535);
    }

    #[test]
    fn endpoint_errors() {
        let cases = [
            ("10.0.0.1", "expected ADDR:PORT"),
            ("10.0.0.1:", "missing port"),
            ("10.0.0.1:0", "out of range (1-65535)"),
            ("10.0.0.1:65536", "out of range (1-65535)"),
            ("10.0.0.1:99999999999", "out of range"),
            ("10.0.0.1:http", "not a number"),
            ("10.0.0.256:80", "not an IPv4 address"),
            ("example.com:80", "names are not resolved"),
            ("::1:80", "in brackets"),
            ("[::1:80", "missing ']'"),
            ("[::1]80", "expected ':PORT'"),
            ("[::g]:80", "not an IPv6 address"),
            ("[fe80::1%]:80", "empty scope"),
            ("[fe80::1%0]:80", "not an interface index"),
            ("[fe80::1%wlan9]:80", "no interface named 'wlan9'"),
            ("0.0.0.0:80", "unspecified"),
            ("224.0.0.1:80", "multicast"),
            ("255.255.255.255:80", "broadcast"),
            ("[::]:80", "unspecified"),
            ("[ff02::1]:80", "multicast"),
            ("[::ffff:10.0.0.1]:80", "write it as IPv4 (10.0.0.1)"),
        ];
        for (input, want) in cases {
            let err = ep(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32("0xffffffff"), Ok(u32::MAX));
        assert_eq!(parse_u32("0X10"), Ok(16));
        assert_eq!(
            parse_u32("4294967296").unwrap_err(),
            "4294967296 is out of range (0-4294967295)"
        );
        assert_eq!(parse_u32("-1").unwrap_err(), "'-1' is not a number");
        assert!(parse_u32("0x").unwrap_err().contains("not a number"));
        assert!(parse_u32("1e3").unwrap_err().contains("not a number"));
        assert!(parse_u32("").unwrap_err().contains("not a number"));
        assert_eq!(
            parse_number("65536", 65535).unwrap_err(),
            "65536 is out of range (0-65535)"
        );
        assert_eq!(parse_wrapping_u32("-1"), Ok(u32::MAX));
        assert_eq!(parse_wrapping_u32("-2147483648"), Ok(0x8000_0000));
        assert!(parse_wrapping_u32("-2147483649").is_err());
    }

    #[test]
    fn full_line() {
        let e = parse_line(
            "10.0.0.1:80 10.0.0.2:40000 snd_nxt=1000 rcv_nxt=0x10 win=502 wscale=7 \
             ts_recent=12345 ts_offset=-5 fw2 # comment",
            &names,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.tuple.local, "10.0.0.1:80".parse().unwrap());
        assert_eq!(e.tuple.remote, "10.0.0.2:40000".parse().unwrap());
        assert_eq!(
            (e.snd_nxt, e.rcv_nxt, e.last_win, e.rcv_wscale),
            (1000, 16, 502, 7)
        );
        assert!(e.has_ts);
        assert_eq!(e.ts_recent, Some(12345));
        assert_eq!(e.ts_offset, (-5i32) as u32);
        assert_eq!(e.substate, Substate::FinWait2);
        assert_eq!(e.expires_ms, None);
    }

    #[test]
    fn minimal_line_and_defaults() {
        let e = parse_line("[::1]:80 [::2]:81 rcv_nxt=2 snd_nxt=1", &names)
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.snd_nxt, e.rcv_nxt, e.last_win, e.rcv_wscale),
            (1, 2, 0, 0)
        );
        assert!(!e.has_ts);
        assert_eq!(e.ts_recent, None);
        assert_eq!(e.substate, Substate::TimeWait);
        let e = parse_line(
            "[::1]:80 [::2]:81 snd-nxt=1 rcv-nxt=2 ts last_win=3 rcv_wscale=4 fw2",
            &names,
        )
        .unwrap()
        .unwrap();
        assert!(e.has_ts);
        assert_eq!(e.ts_recent, None);
        assert_eq!((e.last_win, e.rcv_wscale), (3, 4));
    }

    #[test]
    fn connection_attributes() {
        let e = parse_line(
            "[2001:db8::1]:80 [2001:db8::2]:1 snd_nxt=1 rcv_nxt=2 tos=0x2e mark=7 \
             bound-ifindex=eth0 flowlabel=0x12345 priority=6 txhash=0xdeadbeef fw2",
            &names,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                e.tos,
                e.mark,
                e.bound_ifindex,
                e.flowlabel,
                e.priority,
                e.txhash
            ),
            (0x2e, 7, 7, 0x12345, 6, 0xdead_beef)
        );
        // Absent: 0, and a line without them formats as before.
        let e = parse_line("10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=2", &names)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                e.tos,
                e.mark,
                e.bound_ifindex,
                e.flowlabel,
                e.priority,
                e.txhash
            ),
            (0, 0, 0, 0, 0, 0)
        );
        assert_eq!(
            format_line(&e),
            "10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=2 win=0 wscale=0"
        );
        let e = parse_line(
            "10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=2 bound_ifindex=3",
            &names,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.bound_ifindex, 3);
    }

    #[test]
    fn blank_and_comment_lines() {
        assert_eq!(parse_line("", &names), Ok(None));
        assert_eq!(parse_line("   \t ", &names), Ok(None));
        assert_eq!(
            parse_line("# 10.0.0.1:80 10.0.0.2:1 snd_nxt=1", &names),
            Ok(None)
        );
    }

    #[test]
    fn line_errors() {
        let base = "10.0.0.1:80 10.0.0.2:40000";
        let cases = [
            ("10.0.0.1:80", "expected LOCAL REMOTE"),
            ("10.0.0.1:80 10.0.0.2:40000", "missing snd_nxt"),
            ("10.0.0.1:80 10.0.0.2:40000 snd_nxt=1", "missing rcv_nxt"),
            (
                "10.0.0.1:80 [::1]:80 snd_nxt=1 rcv_nxt=1",
                "different families",
            ),
            (
                "10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=1 ts",
                "needs ts_recent=N",
            ),
            (
                "10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=1 ts_offset=3 tw",
                "needs ts_recent=N",
            ),
        ];
        for (input, want) in cases {
            let err = parse_line(input, &names).expect_err(input);
            assert!(err.contains(want), "{input}: {err:?} lacks {want:?}");
        }
        let field_cases = [
            (
                "snd_nxt=1 rcv_nxt=1 win=65536",
                "win: 65536 is out of range (0-65535)",
            ),
            (
                "snd_nxt=1 rcv_nxt=1 wscale=15",
                "wscale: 15 is out of range (0-14)",
            ),
            ("snd_nxt=1 rcv_nxt=1 foo=3", "unknown field 'foo=3'"),
            ("snd_nxt=1 rcv_nxt=1 snd_nxt=2", "given twice"),
            ("snd_nxt=1 rcv_nxt=1 tw fw2", "given twice"),
            ("snd_nxt=1 rcv_nxt=1 win=5 last_win=5", "given twice"),
            ("snd_nxt= rcv_nxt=1", "needs a value"),
            ("snd_nxt rcv_nxt=1", "needs a value"),
            ("snd_nxt=1 rcv_nxt=1 fw2=1", "takes no value"),
            ("snd_nxt=x rcv_nxt=1", "snd_nxt: 'x' is not a number"),
            (
                "snd_nxt=1 rcv_nxt=1 tos=256",
                "tos: 256 is out of range (0-255)",
            ),
            (
                "snd_nxt=1 rcv_nxt=1 flowlabel=0x100000",
                "flowlabel: 0x100000 is out of range (0-1048575)",
            ),
            (
                "snd_nxt=1 rcv_nxt=1 mark=4294967296",
                "mark: 4294967296 is out of range",
            ),
            (
                "snd_nxt=1 rcv_nxt=1 bound_ifindex=wlan9",
                "no interface named 'wlan9'",
            ),
            ("snd_nxt=1 rcv_nxt=1 txhash", "needs a value"),
            ("snd_nxt=1 rcv_nxt=1 tos=1 tos=2", "given twice"),
        ];
        for (fields, want) in field_cases {
            let input = format!("{base} {fields}");
            let err = parse_line(&input, &names).expect_err(&input);
            assert!(err.contains(want), "{input}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn file_with_line_numbers() {
        let text = "# header\n\
                    10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=2\n\
                    \n\
                    [2001:db8::1]:80 [2001:db8::2]:1 snd_nxt=3 rcv_nxt=4 fw2\n";
        let got = parse_entries(text.as_bytes(), &names, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1].0, 4);
        assert_eq!(got[1].1.substate, Substate::FinWait2);
    }

    #[test]
    fn broken_file_reports_every_bad_line_and_nothing_else() {
        let text = "10.0.0.1:80 10.0.0.2:1 snd_nxt=1 rcv_nxt=2\n\
                    10.0.0.1:80 10.0.0.2:70000 snd_nxt=1 rcv_nxt=2\n\
                    10.0.0.1:81 10.0.0.2:1 snd_nxt=1\n\
                    10.0.0.1:80 10.0.0.2:1 snd_nxt=5 rcv_nxt=6\n";
        let errs = parse_entries(text.as_bytes(), &names, 10).unwrap_err();
        assert_eq!(
            errs.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert!(errs[0].to_string().starts_with("line 2: "));
        assert!(errs[0].msg.contains("out of range (1-65535)"));
        assert!(errs[1].msg.contains("missing rcv_nxt"));
        assert!(
            errs[2].msg.contains("already given on line 1"),
            "{}",
            errs[2]
        );
        // The error cap stops early.
        let errs = parse_entries(text.as_bytes(), &names, 1).unwrap_err();
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn format_round_trips() {
        let lines = [
            "10.0.0.1:80 10.0.0.2:40000 snd_nxt=1 rcv_nxt=2 win=3 wscale=4",
            "10.0.0.1:80 10.0.0.2:40000 snd_nxt=1 rcv_nxt=2 win=3 wscale=4 ts_recent=5 ts_offset=6 fw2",
            "[fe80::1%3]:80 [fe80::2%3]:40000 snd_nxt=4294967295 rcv_nxt=0 win=65535 wscale=14 ts_offset=0 fw2",
            "[2001:db8::1]:80 [2001:db8::2]:1 snd_nxt=1 rcv_nxt=2 win=3 wscale=4 tos=0xb8 mark=0x10 bound_ifindex=7 flowlabel=0xfffff priority=6 txhash=0xdeadbeef fw2",
            "10.0.0.1:80 10.0.0.2:40000 snd_nxt=1 rcv_nxt=2 win=3 wscale=4 priority=1",
        ];
        for l in lines {
            let e = parse_line(l, &names).unwrap().unwrap();
            assert_eq!(format_line(&e), l);
            assert_eq!(parse_line(&format_line(&e), &names).unwrap().unwrap(), e);
        }
    }
}
