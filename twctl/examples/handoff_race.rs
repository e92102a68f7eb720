// SPDX-License-Identifier: GPL-2.0

//! Handoffs racing the peer's FIN, many times over, each checked for exactly one guard.
//!
//! ```text
//! handoff_race ADDR COUNT
//! ```
//! For each of COUNT connections to a server on ADDR (127.0.0.1 or ::1; the server is a
//! thread of this program), the client sends a byte and hands its end off with
//! `close_with_handoff` while the server closes its own end a varying moment later: after our
//! byte, or 0-100 ms after our FIN, sweeping the window in which the module adopts the
//! connection (adds its entry) and the handoff closes the socket in repair mode. Then it checks the tuple has exactly one guard:
//! - handed off: the module holds the entry, and Linux keeps no socket of the tuple;
//! - the peer's FIN first (during our close, or before it: then the handoff refuses and gives
//!   the socket back, and we close it): the module holds nothing, and Linux keeps a TIME_WAIT
//!   socket for the tuple (ours or the server's, whichever end closed first).
//!
//! Prints "handoff races=N handed_off=N peer_fin_first=N lost=N doubled=N failed=N" and exits
//! 1 unless lost, doubled and failed are all 0. Needs CAP_NET_ADMIN and the module.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use twctl::handoff::{close_with_handoff_with, HandoffErrorKind, TcpState};
use twctl::{Client, HandoffError, Outcome, Tuple};

/// `/proc/net/tcp{,6}` rows for the tuple, either way round: (state, ours).
fn linux_sockets(t: &Tuple) -> Vec<(u8, bool)> {
    let path = if t.local.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let (Some(l), Some(r), Ok(st)) = (endpoint(f[1]), endpoint(f[2]), u8::from_str_radix(f[3], 16)) else {
            continue;
        };
        if (l, r) == (t.local, t.remote) {
            out.push((st, true));
        } else if (l, r) == (t.remote, t.local) {
            out.push((st, false));
        }
    }
    out
}

/// An endpoint as /proc/net/tcp prints it: the address's 32-bit words in host order, then
/// the port, in hex.
fn endpoint(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let mut bytes = Vec::new();
    for i in (0..a.len()).step_by(8) {
        let w = u32::from_str_radix(a.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

const TCP_TIME_WAIT: u8 = 6;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(Ok(count))) = (args.get(1), args.get(2).map(|c| c.parse::<u32>())) else {
        eprintln!("usage: handoff_race ADDR COUNT");
        return ExitCode::from(2);
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        eprintln!("handoff_race: ADDR must be an address");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(SocketAddr::new(ip, 0)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("handoff_race: bind: {e}");
            return ExitCode::from(1);
        }
    };
    let Ok(server) = listener.local_addr() else { return ExitCode::from(1) };
    let mut client = match Client::open() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("handoff_race: {e}");
            return ExitCode::from(1);
        }
    };
    let (mut handed, mut first, mut lost, mut doubled, mut failed) = (0u32, 0u32, 0u32, 0u32, 0u32);
    for i in 0..count {
        // The server closes after reading our byte, (odd rounds) after our FIN too, then
        // waits 0-100 ms in 5 ms steps, in an order that covers the range in a few rounds:
        // the race moves across the handoff's whole window (shutdown, the wait for our FIN's
        // ACK, which a Linux peer delays by 40 ms or more, repair mode, the add, the close).
        let wait_fin = i % 2 == 1;
        let delay = Duration::from_millis(u64::from((i / 2) * 8 % 21) * 5);
        let Ok(l) = listener.try_clone() else { return ExitCode::from(1) };
        let peer = thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 16];
                let _ = s.read(&mut buf);
                if wait_fin {
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                }
                thread::sleep(delay);
                drop(s);
            }
        });
        let connected = TcpStream::connect(server).and_then(|mut s| {
            s.write_all(b"x")?;
            let t = Tuple::new(s.local_addr()?, s.peer_addr()?).map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((s, t))
        });
        let (stream, tuple) = match connected {
            Ok(c) => c,
            Err(e) => {
                eprintln!("handoff_race: connect: {e}");
                failed += 1;
                let _ = peer.join();
                continue;
            }
        };
        let res = close_with_handoff_with(&mut client, OwnedFd::from(stream), Duration::from_secs(5));
        let _ = peer.join();
        // What the outcome promises: handed off, the module guards the tuple and Linux keeps
        // nothing of it; the peer's FIN first, Linux's TIME_WAIT guards it and the module not.
        let handed_off = match res {
            Ok(Outcome::HandedOff(_)) => true,
            Ok(Outcome::PeerFinFirst(_)) => false,
            Ok(Outcome::DryRun(_)) => unreachable!("not a dry run"),
            // The peer's FIN came before our shutdown: the handoff refuses and gives the
            // socket back (the peer, not us, closed first); closing it is ours to do.
            Err(HandoffError { kind: HandoffErrorKind::WrongState(TcpState::CloseWait), socket: Some(s) }) => {
                drop(s);
                false
            }
            Err(e) => {
                eprintln!("handoff_race: race {i}: {e}");
                failed += 1;
                continue;
            }
        };
        if handed_off { handed += 1 } else { first += 1 }
        // Let the last segments of the close land (the server's FIN and its answer), then
        // judge once nothing is in a transient state.
        let deadline = Instant::now() + Duration::from_secs(2);
        let (entry, socks) = loop {
            let entry = match client.get(tuple) {
                Ok(_) => Some(true),
                Err(e) if e.errno() == Some(libc::ENOENT) => Some(false),
                Err(e) => {
                    eprintln!("handoff_race: race {i}: get: {e}");
                    None
                }
            };
            let socks = linux_sockets(&tuple);
            let settled = socks.iter().all(|&(st, _)| st == TCP_TIME_WAIT);
            if settled || Instant::now() > deadline {
                break (entry, socks);
            }
            thread::sleep(Duration::from_millis(2));
        };
        let Some(entry) = entry else {
            failed += 1;
            continue;
        };
        let linux_tw = socks.iter().any(|&(st, _)| st == TCP_TIME_WAIT);
        let ours_left = socks.iter().any(|&(_, ours)| ours);
        let verdict = match (handed_off, entry, linux_tw || ours_left) {
            (true, true, false) | (false, false, true) => None,
            (true, true, true) | (false, true, _) => Some("doubled"),
            (_, false, _) => Some("lost"),
        };
        if let Some(what) = verdict {
            eprintln!(
                "handoff_race: race {i} {what}: handed_off={handed_off} {tuple:?} entry={entry} linux sockets (state, ours)={socks:?}"
            );
            if what == "lost" { lost += 1 } else { doubled += 1 }
        }
    }
    println!("handoff races={count} handed_off={handed} peer_fin_first={first} lost={lost} doubled={doubled} failed={failed}");
    if lost + doubled + failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
