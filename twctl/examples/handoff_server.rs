// SPDX-License-Identifier: GPL-2.0

//! A server that closes its connections actively, as a busy web server or proxy does, and hands
//! each one's TIME_WAIT duty to rust_timewait with `close_with_handoff` instead of keeping a
//! TIME_WAIT socket per connection.
//!
//! ```text
//! handoff_server ADDR:PORT COUNT [--plain]
//! ```
//! Serves COUNT connections (reads one request line, writes a reply), then prints a summary.
//! `--plain` closes normally instead, for comparison: Linux then keeps COUNT TIME_WAIT sockets.
//! Needs CAP_NET_ADMIN (TCP_REPAIR and the module's add).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use twctl::handoff::close_with_handoff_with;
use twctl::{Client, Outcome};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: handoff_server ADDR:PORT COUNT [--plain]");
        return ExitCode::from(2);
    }
    let Ok(count) = args[2].parse::<usize>() else {
        eprintln!("handoff_server: COUNT must be a number");
        return ExitCode::from(2);
    };
    let plain = args.get(3).is_some_and(|a| a == "--plain");
    let listener = match TcpListener::bind(&args[1]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("handoff_server: bind {}: {e}", args[1]);
            return ExitCode::from(1);
        }
    };
    // One netlink socket for every handoff.
    let mut client = if plain {
        None
    } else {
        match Client::open() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("handoff_server: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let (mut handed, mut raced, mut failed) = (0, 0, 0);
    for _ in 0..count {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("handoff_server: accept: {e}");
                failed += 1;
                continue;
            }
        };
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
        let _ = (&stream).write_all(b"HTTP/1.0 200 OK\r\n\r\nhello from a server that keeps no TIME_WAIT\n");
        let Some(client) = client.as_mut() else {
            drop(stream); // close(): Linux keeps the TIME_WAIT socket
            continue;
        };
        match close_with_handoff_with(client, OwnedFd::from(stream), Duration::from_secs(2)) {
            Ok(Outcome::HandedOff(_)) => handed += 1,
            Ok(_) => raced += 1,
            Err(e) => {
                eprintln!("handoff_server: {e}");
                failed += 1;
            }
        }
    }
    if plain {
        println!("served {count} connections, closed normally");
    } else {
        println!("served {count} connections: {handed} handed off, {raced} peer FIN first, {failed} failed");
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
