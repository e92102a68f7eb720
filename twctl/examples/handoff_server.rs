// SPDX-License-Identifier: GPL-2.0

//! A server that closes its connections actively, as a busy web server or proxy does, and hands
//! each one's TIME_WAIT duty to rust_timewait instead of keeping a TIME_WAIT socket per
//! connection.
//!
//! ```text
//! handoff_server ADDR:PORT COUNT [--plain | --batch | --queue | --loop | --queue-dry-run] [--until FILE]
//! handoff_server --load ADDR:PORT CLIENTS HOLD_MS
//! ```
//! Serves COUNT connections (reads one request line, writes a reply), then prints a summary.
//! * no option: one connection after another, each closed with the blocking
//!   `close_with_handoff` (which waits until the peer acknowledges our FIN);
//! * `--plain`: the same loop closing normally, for comparison: Linux then keeps COUNT TIME_WAIT
//!   sockets;
//! * `--batch`: an event loop (non-blocking accept and reads, `poll`) that closes with a
//!   `HandoffBatch`: `push` at the end of each response (`shutdown(SHUT_WR)`), and a `flush`
//!   every 16 sockets or when the loop has had nothing to do for 2 ms: one adopt message by fd
//!   with `wait` for the sockets pushed since, in which the module adopts those of earlier
//!   flushes whose FIN is acknowledged and takes the new ones, then a `close()` of each fd;
//! * `--queue`: the same event loop closing with a
//!   `HandoffQueue`: `push` at the end of each response (`shutdown(SHUT_WR)` and
//!   `epoll_ctl`), `process` whenever the queue's fd says a queued socket changed state or its
//!   deadline is due: one adopt message by fd, with repair mode, for every socket that may have
//!   reached FIN_WAIT2 since the last call, then a `close()` of each one taken;
//! * `--loop`: the same event loop closing normally, the yardstick of `--batch` and `--queue`;
//! * `--queue-dry-run`: `--queue` with a dry-run queue (repair mode, entries built from the
//!   repair-mode reads and not added, sockets closed normally): the event loop without the
//!   module, e.g. on a host.
//!
//! The event-loop modes measure: they keep serving until COUNT connections are done (closed,
//! flushed, or reported by the queue), time the last nine tenths of them (the server is in a steady state
//! by then, with as many connections in the queue as leave it), stop accepting, finish, and
//! print `rate conn_per_s=.. cpu_us_per_conn=.. ..`. With `--until FILE` they print `window full`
//! once the timed connections are done and keep serving, untimed, until FILE exists: two
//! servers measured side by side then each have the other's load for the whole of their window.
//!
//! `--load` is the client side of that measurement: CLIENTS threads, each connecting, sending a
//! request line and reading the reply until the server's FIN, over and over, as fast as the
//! server answers; each connection is kept open HOLD_MS more before it is closed (as a browser
//! or a pooled client closes later than the server), so the server's FIN is acknowledged on its
//! own and the handoff happens. The threads stop when the server refuses connections.
//!
//! Needs CAP_NET_ADMIN (the module's adopt and TCP_REPAIR) except for `--plain`, `--loop` and
//! `--load`.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use twctl::handoff::close_with_handoff_with;
use twctl::{Client, HandoffBatch, HandoffQueue, Outcome};

/// `--batch`: a flush every this many sockets, or after this long with nothing to do.
const BATCH_FLUSH_AT: usize = 16;
const BATCH_IDLE_MS: i32 = 2;
const REPLY: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nhello from a server that keeps no TIME_WAIT\n";
const USAGE: &str =
    "usage: handoff_server ADDR:PORT COUNT [--plain | --batch | --queue | --loop | --queue-dry-run] [--until FILE]\n       \
                     handoff_server --load ADDR:PORT CLIENTS HOLD_MS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--load") {
        return load(&args[2..]);
    }
    if args.len() < 3 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let Ok(count) = args[2].parse::<usize>() else {
        eprintln!("handoff_server: COUNT must be a number");
        return ExitCode::from(2);
    };
    let mode = args.get(3).map(String::as_str).unwrap_or("");
    if !matches!(
        mode,
        "" | "--plain" | "--batch" | "--queue" | "--loop" | "--queue-dry-run"
    ) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let until = match &args[4.min(args.len())..] {
        [] => None,
        [opt, file] if opt == "--until" && !mode.is_empty() && mode != "--plain" => {
            Some(std::path::PathBuf::from(file))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&args[1]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("handoff_server: bind {}: {e}", args[1]);
            return ExitCode::from(1);
        }
    };
    match mode {
        "--loop" => event_loop(listener, count.max(1), Closer::Plain, until),
        "--batch" => event_loop(listener, count.max(1), Closer::Batch, until),
        "--queue" => event_loop(listener, count.max(1), Closer::Queue, until),
        "--queue-dry-run" => event_loop(listener, count.max(1), Closer::QueueDryRun, until),
        _ => blocking(listener, count, mode == "--plain"),
    }
}

/// One connection after another, each closed before the next is accepted.
fn blocking(listener: TcpListener, count: usize, plain: bool) -> ExitCode {
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
        let _ = (&stream).write_all(REPLY);
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
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A connection whose request line has not arrived whole yet.
struct Conn {
    stream: TcpStream,
    got: Vec<u8>,
}

/// What reading a request gave.
enum Request {
    /// The request line (or the client's FIN): answer and close.
    Done,
    /// Nothing more for now.
    More,
    /// A failure: close.
    Failed,
}

fn read_request(c: &mut Conn) -> Request {
    let mut buf = [0u8; 512];
    loop {
        match (&c.stream).read(&mut buf) {
            Ok(0) => return Request::Done,
            Ok(n) => {
                c.got.extend_from_slice(&buf[..n]);
                if c.got.contains(&b'\n') {
                    return Request::Done;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Request::More,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Request::Failed,
        }
    }
}

/// The process's CPU time so far, user and system, in µs.
fn cpu_us() -> (u64, u64) {
    // SAFETY: an all-zero rusage is valid, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

/// The steady-state window: from the `start`-th connection done to the `end`-th.
struct Window {
    start: u64,
    end: u64,
    done: u64,
    t0: Option<(Instant, (u64, u64))>,
    t1: Option<(Instant, (u64, u64))>,
}

impl Window {
    fn new(count: usize) -> Self {
        let end = count as u64;
        Window {
            start: end / 10,
            end,
            done: 0,
            t0: None,
            t1: None,
        }
    }

    /// `n` more connections are done.
    fn add(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.done += n;
        if self.t0.is_none() && self.done >= self.start {
            self.t0 = Some((Instant::now(), cpu_us()));
            // Connections done together with the start one are not in the window.
            self.start = self.done;
        }
        if self.t1.is_none() && self.done >= self.end {
            self.t1 = Some((Instant::now(), cpu_us()));
            self.end = self.done;
        }
    }

    fn full(&self) -> bool {
        self.t1.is_some()
    }
}

#[derive(Default)]
struct Counts {
    handed: u64,
    raced: u64,
    /// HandoffBatch: sockets the module refused at once.
    refused: u64,
    failed: u64,
    served: u64,
    /// Time in close(); in HandoffQueue::push and ::process, or HandoffBatch::push and ::flush.
    close: Duration,
    push: Duration,
    process: Duration,
}

/// How the event loop ends its connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closer {
    Plain,
    Batch,
    Queue,
    QueueDryRun,
}

/// Answers a connection whose request is in (`ok`), and closes it: close(), the batch, or the
/// queue.
fn finish(
    c: Conn,
    ok: bool,
    q: &mut Option<HandoffQueue>,
    b: &mut Option<HandoffBatch>,
    win: &mut Window,
    k: &mut Counts,
) {
    k.served += 1;
    if ok {
        let _ = (&c.stream).write_all(REPLY);
    }
    if let Some(b) = b.as_mut() {
        let start = Instant::now();
        b.push(c.stream.into());
        k.push += start.elapsed();
        return;
    }
    match q.as_mut() {
        None => {
            let start = Instant::now();
            drop(c.stream); // close(): Linux keeps the TIME_WAIT socket
            k.close += start.elapsed();
            win.add(1);
        }
        Some(q) => {
            let start = Instant::now();
            let pushed = q.push(c.stream.into());
            k.push += start.elapsed();
            if let Err(e) = pushed {
                eprintln!("handoff_server: {e}");
                k.failed += 1;
                win.add(1);
            }
        }
    }
}

/// Non-blocking accept and reads, closing as `closer` says; with `until`, serving on past the
/// window until that file exists.
fn event_loop(
    listener: TcpListener,
    count: usize,
    closer: Closer,
    until: Option<std::path::PathBuf>,
) -> ExitCode {
    let timeout = Duration::from_secs(2);
    let opened = match closer {
        Closer::Plain | Closer::Batch => Ok(None),
        Closer::Queue => HandoffQueue::open(timeout)
            .map(Some)
            .map_err(|e| e.to_string()),
        Closer::QueueDryRun => HandoffQueue::dry_run(timeout)
            .map(Some)
            .map_err(|e| e.to_string()),
    };
    let mut q = match opened {
        Ok(q) => q,
        Err(e) => {
            eprintln!("handoff_server: {e}");
            return ExitCode::from(1);
        }
    };
    let mut b = match closer {
        Closer::Batch => match HandoffBatch::open() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("handoff_server: {e}");
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("handoff_server: {e}");
        return ExitCode::from(1);
    }
    let mut listener = Some(listener);
    let mut conns: Vec<Conn> = Vec::new();
    let mut win = Window::new(count);
    let mut k = Counts::default();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    // The queue has work: its fd was readable, or a deadline is due. (process() when it has
    // none costs an epoll_wait for nothing.)
    let mut queue_due = false;
    let mut accept_failed = false;
    // `window full` printed (--until).
    let mut told = false;
    loop {
        // The queue's reports.
        if let Some(qq) = q.as_mut().filter(|_| queue_due) {
            let start = Instant::now();
            let out = qq.process();
            k.process += start.elapsed();
            for h in &out {
                match &h.result {
                    // A dry run counts as handed off: it did all of it but the adopt.
                    Ok(Outcome::HandedOff(_) | Outcome::DryRun(_)) => k.handed += 1,
                    Ok(_) => k.raced += 1,
                    Err(e) => {
                        match h.tuple {
                            Some(t) => eprintln!("handoff_server: {t}: {e}"),
                            None => eprintln!("handoff_server: socket {}: {e}", h.id),
                        }
                        k.failed += 1;
                    }
                }
            }
            win.add(out.len() as u64);
        }
        if win.full() && listener.is_some() {
            if !told && until.is_some() {
                told = true;
                println!("window full");
                let _ = io::stdout().flush();
            }
            // Enough: refuse further clients, finish what is in flight.
            if until.as_ref().is_none_or(|f| f.exists()) {
                listener = None;
            }
        }
        if listener.is_none()
            && conns.is_empty()
            && q.as_ref().is_none_or(|q| q.is_empty())
            && b.as_ref().is_none_or(|b| b.is_empty())
        {
            break;
        }
        pfds.clear();
        if let Some(l) = &listener {
            pfds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_conn = pfds.len();
        for c in &conns {
            pfds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let mut timeout = -1;
        if b.as_ref().is_some_and(|bb| !bb.is_empty()) {
            // Sockets waiting for a flush: flush when nothing else comes for a moment.
            timeout = BATCH_IDLE_MS;
        }
        if let Some(qq) = &q {
            pfds.push(libc::pollfd {
                fd: qq.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            if let Some(t) = qq.poll_timeout() {
                timeout = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            }
        }
        // Past the window with --until: look for the file now and then even with no client.
        if told && !(0..=100).contains(&timeout) {
            timeout = 100;
        }
        // SAFETY: pfds holds pfds.len() valid pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        let idle = r == 0;
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            eprintln!("handoff_server: poll: {e}");
            return ExitCode::from(1);
        }
        if let Some(qq) = &q {
            queue_due = pfds.last().is_some_and(|p| p.revents != 0)
                || qq.poll_timeout() == Some(Duration::ZERO);
        }
        // Requests that came in, newest connections last (swap_remove keeps indices valid
        // when walking backwards).
        for i in (0..conns.len()).rev() {
            if pfds[first_conn + i].revents == 0 {
                continue;
            }
            match read_request(&mut conns[i]) {
                Request::More => {}
                Request::Done => {
                    finish(conns.swap_remove(i), true, &mut q, &mut b, &mut win, &mut k)
                }
                Request::Failed => finish(
                    conns.swap_remove(i),
                    false,
                    &mut q,
                    &mut b,
                    &mut win,
                    &mut k,
                ),
            }
        }
        // New connections; most have their request in already.
        if let Some(l) = &listener {
            if pfds[0].revents != 0 {
                loop {
                    match l.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(true);
                            let mut c = Conn {
                                stream,
                                got: Vec::new(),
                            };
                            match read_request(&mut c) {
                                Request::More => conns.push(c),
                                Request::Done => finish(c, true, &mut q, &mut b, &mut win, &mut k),
                                Request::Failed => {
                                    finish(c, false, &mut q, &mut b, &mut win, &mut k)
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("handoff_server: accept: {e}");
                            // EMFILE: the sockets the batch holds free their fds.
                            accept_failed = true;
                            break;
                        }
                    }
                }
            }
        }
        // The sockets pushed (their FINs sent), to the module in one message: every
        // BATCH_FLUSH_AT, when the loop would sleep, at the end, and when accept fails.
        let ending = listener.is_none() || std::mem::take(&mut accept_failed);
        if let Some(bb) = b
            .as_mut()
            .filter(|bb| bb.len() >= BATCH_FLUSH_AT || (!bb.is_empty() && (idle || ending)))
        {
            let n = bb.len() as u64;
            let before = bb.stats();
            let start = Instant::now();
            let flushed = bb.flush();
            k.process += start.elapsed();
            let after = bb.stats();
            k.handed += after.taken - before.taken;
            k.refused += after.refused - before.refused;
            k.failed += after.failed - before.failed;
            for r in &flushed.refused {
                // Closed normally (dropped below): the module said why it would not take it.
                eprintln!("handoff_server: refused: {}", r.errno);
            }
            if let Some(e) = flushed.error {
                eprintln!("handoff_server: {e}");
            }
            win.add(n);
        }
    }
    let (Some((t0, c0)), Some((t1, c1))) = (win.t0, win.t1) else {
        eprintln!("handoff_server: no measurement");
        return ExitCode::from(1);
    };
    let n = win.end - win.start;
    let secs = (t1 - t0).as_secs_f64();
    let mut stats = q.as_ref().map(|q| q.stats()).unwrap_or_default();
    if let Some(bb) = &b {
        let bs = bb.stats();
        stats.adopt_messages = bs.messages;
        stats.tuples_sent = bs.taken + bs.refused + bs.failed;
        stats.adopt_ns = bs.netlink.as_nanos() as u64;
    }
    let Counts {
        handed,
        raced,
        refused,
        failed,
        served,
        close,
        push,
        process,
    } = k;
    match closer {
        Closer::Plain => println!("served {served} connections, closed normally"),
        Closer::Batch => println!(
            "served {served} connections: {handed} handed to the module, {refused} refused, \
             {failed} failed"
        ),
        Closer::Queue | Closer::QueueDryRun => println!(
            "served {served} connections: {handed} handed off, {raced} peer FIN first, {failed} failed"
        ),
    }
    let per_msg = if stats.adopt_messages > 0 {
        stats.tuples_sent as f64 / stats.adopt_messages as f64
    } else {
        0.0
    };
    println!(
        "rate conn_per_s={:.1} window_connections={n} window_ms={:.0} cpu_us_per_conn={:.0} \
         user_us_per_conn={:.0} sys_us_per_conn={:.0} \
         adopt_messages={} tuples_per_message={per_msg:.2} close_us_per_conn={:.0} \
         push_us_per_conn={:.0} process_us_per_conn={:.0} adopt_us_per_conn={:.0}",
        n as f64 / secs,
        secs * 1000.0,
        ((c1.0 + c1.1) - (c0.0 + c0.1)) as f64 / n as f64,
        (c1.0 - c0.0) as f64 / n as f64,
        (c1.1 - c0.1) as f64 / n as f64,
        stats.adopt_messages,
        close.as_secs_f64() * 1e6 / served.max(1) as f64,
        push.as_secs_f64() * 1e6 / served.max(1) as f64,
        process.as_secs_f64() * 1e6 / served.max(1) as f64,
        stats.adopt_ns as f64 / 1e3 / served.max(1) as f64,
    );
    if failed == 0 && refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--load ADDR:PORT CLIENTS HOLD_MS`.
fn load(args: &[String]) -> ExitCode {
    let (Some(addr), Some(Ok(clients)), Some(Ok(hold))) = (
        args.first(),
        args.get(1).map(|a| a.parse::<usize>()),
        args.get(2).map(|a| a.parse::<u64>()),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let addr = match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("handoff_server: {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let hold = Duration::from_millis(hold);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (done, errors) = (done.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut held: VecDeque<(Instant, TcpStream)> = VecDeque::new();
                let mut refused = 0;
                loop {
                    let now = Instant::now();
                    while held.front().is_some_and(|(t, _)| *t <= now) {
                        held.pop_front(); // close(): our FIN, after the server's
                    }
                    let s = match TcpStream::connect(addr) {
                        Ok(s) => s,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                            // The server has stopped (or not started: give it a moment).
                            refused += 1;
                            if refused > 2 || done.load(Ordering::Relaxed) > 0 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reply = Vec::new();
                    let ok = (&s).write_all(b"GET /\n").is_ok()
                        && (&s).read_to_end(&mut reply).is_ok()
                        && !reply.is_empty();
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                        held.push_back((Instant::now() + hold, s));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Each connection still held lives out its hold, as it would have with the
                // server still serving.
                if let Some((t, _)) = held.back() {
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "load connections={} errors={}",
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}
