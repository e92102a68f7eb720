// SPDX-License-Identifier: GPL-2.0

//! A handoff that does not block a server's event loop (docs/behaviour.md §6, issue 10 item 2).
//!
//! [`close_with_handoff`](crate::handoff::close_with_handoff) shuts the socket down and then
//! sleeps until our FIN is acknowledged, which a Linux peer that keeps its end open delays by
//! 40 ms or more, and pays a netlink round trip per socket. A [`HandoffQueue`] does the same
//! protocol for many sockets at once, without ever waiting:
//!
//! * [`HandoffQueue::push`] checks the socket (as [`handoff`](crate::handoff::handoff) does,
//!   refusals give it back untouched), calls `shutdown(SHUT_WR)` and returns at once;
//! * the queue's file descriptor ([`AsRawFd`]) is an epoll instance that becomes readable when a
//!   queued socket changes state (Linux wakes a socket's waiters when our FIN is acknowledged,
//!   when the peer's FIN or a reset arrives); [`HandoffQueue::poll_timeout`] says how long the
//!   caller may sleep at most (the earliest per-socket deadline);
//! * [`HandoffQueue::process`], called from the event loop, never blocks on the network: every
//!   queued socket that reached FIN_WAIT2 goes through repair mode, all their entries go to the
//!   module in **one** netlink add message (at most [`MAX_BATCH`], the module's limit), each
//!   socket's state is checked again, and the handed-off ones are closed in repair mode. It
//!   reports every socket that is done, with the outcomes and the race rule of
//!   [`close_with_handoff`](crate::handoff::close_with_handoff): the entry exists before the
//!   close; a peer FIN that got in first leaves no entry ([`Outcome::PeerFinFirst`]); unread data
//!   is refused (D36) and, here, the socket is given back so the caller can read it (dropping it
//!   resets the connection, as Linux's `close()` does).
//!
//! Sockets whose peer FIN came first, that were reset, or whose FIN was not acknowledged within
//! the queue's timeout are reported too and closed normally: nothing is leaked. Dropping the
//! queue closes the sockets still queued normally (Linux then keeps their TIME_WAIT).
//!
//! Where the entries go is an [`EntrySink`]: the module's [`Client`], or anything else in tests.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::entry::{Entry, Tuple};
use crate::error::Error;
use crate::handoff::{
    build_entry, inq, precheck, read_repair_state_with, setsockopt_int, tcp_info, timens_offset_ms,
    HandoffError, HandoffErrorKind, Outcome, Readiness, TcpInfo, TcpState, TCP_REPAIR,
    TCP_REPAIR_OFF_NO_WP, TCP_REPAIR_ON,
};

/// The most entries the module takes in one add message (`RTW_ADD_BATCH_MAX`, src/genl.c).
pub const MAX_BATCH: usize = 4096;
/// Entries per add message unless [`HandoffQueue::set_max_batch`] says otherwise (`twctl add`'s
/// ceiling: a message of 1024 entries and its reply fit the default socket buffers).
pub const DEFAULT_BATCH: usize = 1024;
/// epoll events read per `epoll_wait`.
const EVENTS: usize = 256;

/// Where a queue's entries go.
pub trait EntrySink {
    /// Adds FIN_WAIT_2 entries in one message, never replacing one: one result per entry, 0 when
    /// taken or a negative errno. An `Err` means the message was refused (or lost) as a whole.
    fn add(&mut self, entries: &[Entry]) -> Result<Vec<i32>, Error>;
    /// Deletes the entry guarding a tuple (an error with ENOENT when there is none).
    fn del(&mut self, tuple: &Tuple) -> Result<(), Error>;
}

impl EntrySink for Client {
    fn add(&mut self, entries: &[Entry]) -> Result<Vec<i32>, Error> {
        Client::add(self, entries, false)
    }

    fn del(&mut self, tuple: &Tuple) -> Result<(), Error> {
        Client::del(self, tuple)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for &mut T {
    fn add(&mut self, entries: &[Entry]) -> Result<Vec<i32>, Error> {
        (**self).add(entries)
    }

    fn del(&mut self, tuple: &Tuple) -> Result<(), Error> {
        (**self).del(tuple)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for Box<T> {
    fn add(&mut self, entries: &[Entry]) -> Result<Vec<i32>, Error> {
        (**self).add(entries)
    }

    fn del(&mut self, tuple: &Tuple) -> Result<(), Error> {
        (**self).del(tuple)
    }
}

/// What became of one queued socket.
#[derive(Debug)]
pub struct Handoff {
    /// The socket's tuple, as [`HandoffQueue::push`] returned it.
    pub tuple: Tuple,
    /// [`Outcome::HandedOff`], [`Outcome::PeerFinFirst`], [`Outcome::DryRun`], or the error. An
    /// error carries the socket back only for [`HandoffErrorKind::UnreadData`] (shut down for
    /// writing, everything else as it was) and, for a socket that was pushed already in
    /// FIN_WAIT2, when repair mode was refused; every other socket has been closed normally.
    pub result: Result<Outcome, HandoffError>,
}

/// Counters of a queue since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Sockets [`HandoffQueue::push`] took.
    pub pushed: u64,
    /// Reported [`Outcome::HandedOff`].
    pub handed_off: u64,
    /// Reported [`Outcome::PeerFinFirst`].
    pub peer_fin_first: u64,
    /// Reported [`Outcome::DryRun`].
    pub dry_run: u64,
    /// Reported with an error (timeouts and unread data included).
    pub failed: u64,
    /// Add messages sent to the sink.
    pub add_messages: u64,
    /// Entries in those messages.
    pub entries_sent: u64,
    /// Time spent in the sink's add (for the module: the netlink round trip, its work
    /// included), in ns.
    pub add_ns: u64,
}

/// A socket waiting for our FIN to be acknowledged.
struct Pending {
    stream: TcpStream,
    tuple: Tuple,
    /// Our `shutdown(SHUT_WR)`: the socket is the queue's to close on a failure.
    shut_by_us: bool,
}

/// A socket that reached FIN_WAIT2, on its way through repair mode.
struct Ready {
    pending: Pending,
    info: TcpInfo,
}

/// What one look at a queued socket found.
enum Look {
    /// Still FIN_WAIT1: our FIN is not acknowledged yet.
    Waiting,
    /// FIN_WAIT2: hand it off.
    Ready(Ready),
    /// Done without a handoff (peer FIN first, reset, another state).
    Done(Handoff),
}

/// Many handoffs in flight without blocking: see the module documentation.
pub struct HandoffQueue<S: EntrySink = Client> {
    /// `None`: a dry run (entries built, nothing added, sockets closed normally).
    sink: Option<S>,
    epoll: OwnedFd,
    pending: HashMap<u64, Pending>,
    /// (deadline, token) in push order: the deadlines are sorted, as the timeout is one.
    deadlines: VecDeque<(Instant, u64)>,
    next_token: u64,
    timeout: Duration,
    max_batch: usize,
    timens_ms: i64,
    stats: QueueStats,
}

impl HandoffQueue<Client> {
    /// A queue that adds its entries to the module of this network namespace through a new
    /// netlink connection. [`Error::ModuleNotLoaded`] when the module is not loaded: the caller
    /// then closes its sockets normally. `timeout`: how long a socket may wait for our FIN to be
    /// acknowledged (it is then closed normally and reported
    /// [`HandoffErrorKind::Timeout`]).
    pub fn open(timeout: Duration) -> Result<Self, Error> {
        let client = Client::open()?;
        Self::build(Some(client), timeout).map_err(|err| Error::Socket {
            what: "epoll_create1",
            err,
        })
    }

    /// A dry run: each socket goes through repair mode and is reported as
    /// [`Outcome::DryRun`] with the entry a handoff would add; repair mode is left again and the
    /// socket closed normally. Needs CAP_NET_ADMIN (TCP_REPAIR), not the module.
    pub fn dry_run(timeout: Duration) -> io::Result<Self> {
        Self::build(None, timeout)
    }
}

impl<S: EntrySink> HandoffQueue<S> {
    /// A queue that gives its entries to `sink`.
    pub fn with_sink(sink: S, timeout: Duration) -> io::Result<Self> {
        Self::build(Some(sink), timeout)
    }

    fn build(sink: Option<S>, timeout: Duration) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointer; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by epoll_create1 and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(HandoffQueue {
            sink,
            epoll,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            next_token: 1,
            timeout,
            max_batch: DEFAULT_BATCH,
            timens_ms: timens_offset_ms(),
            stats: QueueStats::default(),
        })
    }

    /// Entries per add message, 1 to [`MAX_BATCH`] (the value is clamped).
    pub fn set_max_batch(&mut self, n: usize) {
        self.max_batch = n.clamp(1, MAX_BATCH);
    }

    /// The sink (the module's client), for other requests on the same connection.
    pub fn sink_mut(&mut self) -> Option<&mut S> {
        self.sink.as_mut()
    }

    /// Sockets queued and not reported yet.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Queues a connected socket: checks it (a refusal gives it back untouched, as
    /// [`handoff`](crate::handoff::handoff) does: not TCP, listening, CLOSE_WAIT, microsecond
    /// timestamps, ...), then `shutdown(SHUT_WR)` unless it is in FIN_WAIT2 already, and
    /// returns its tuple at once. From then on the socket is the queue's: it is reported by
    /// [`process`](Self::process).
    pub fn push(&mut self, fd: OwnedFd) -> Result<Tuple, HandoffError> {
        let (stream, tuple, ready) = precheck(fd, true)?;
        let token = self.next_token;
        self.next_token += 1;
        // Edge-triggered: after our shutdown EPOLLOUT is always set, so every wakeup of the
        // socket (our FIN acknowledged, the peer's FIN, a reset, data) is reported once. The
        // first report comes at once (the socket is writable when added).
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: both fds are open; ev is a valid epoll_event.
        let r = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(HandoffError {
                kind: HandoffErrorKind::Sys("epoll_ctl(EPOLL_CTL_ADD)", io::Error::last_os_error()),
                socket: Some(stream.into()),
            });
        }
        let shut_by_us = ready == Readiness::Wait;
        if shut_by_us {
            if let Err(e) = stream.shutdown(Shutdown::Write) {
                unwatch(self.epoll.as_raw_fd(), stream.as_raw_fd());
                return Err(HandoffError {
                    kind: HandoffErrorKind::Sys("shutdown(SHUT_WR)", e),
                    socket: Some(stream.into()),
                });
            }
        }
        self.pending.insert(
            token,
            Pending {
                stream,
                tuple,
                shut_by_us,
            },
        );
        // A timeout too large for the clock (Duration::MAX for "none") waits a year.
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
        self.deadlines.push_back((deadline, token));
        self.stats.pushed += 1;
        Ok(tuple)
    }

    /// How long the caller may sleep before calling [`process`](Self::process) again if the
    /// queue's fd stays quiet: until the earliest queued socket's deadline (zero when one has
    /// passed). `None` when nothing is queued.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        self.deadlines
            .iter()
            .find(|(_, t)| self.pending.contains_key(t))
            .map(|(d, _)| d.saturating_duration_since(now))
    }

    /// Blocks until the queue's fd is readable or `max` (if given) or the earliest deadline has
    /// passed: for simple loops that have nothing else to wait for. Returns at once when nothing
    /// is queued.
    pub fn wait(&self, max: Option<Duration>) -> io::Result<()> {
        let Some(mut t) = self.poll_timeout() else {
            return Ok(());
        };
        if let Some(m) = max {
            t = t.min(m);
        }
        let mut pfd = libc::pollfd {
            fd: self.epoll.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up: a deadline less than 1 ms away must not spin.
        let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Processes and waits until every queued socket is reported (each at most the queue's
    /// timeout after its push): for the end of a server, or a script.
    pub fn drain(&mut self) -> io::Result<Vec<Handoff>> {
        let mut out = self.process();
        while !self.is_empty() {
            self.wait(None)?;
            out.extend(self.process());
        }
        Ok(out)
    }

    /// Does every piece of work that is due, without waiting on the network: looks at the
    /// queued sockets whose state changed and those past their deadline, hands off those in
    /// FIN_WAIT2 (one add message per [`set_max_batch`](Self::set_max_batch) sockets), and
    /// reports every socket that is done.
    pub fn process(&mut self) -> Vec<Handoff> {
        let mut out = Vec::new();
        let mut ready = Vec::new();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            // SAFETY: events has room for EVENTS entries; timeout 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as i32,
                    0,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Only a bad epoll fd fails otherwise; the deadlines below still look at
                // every socket in time.
                break;
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                self.look_into(token, &mut ready, &mut out);
            }
            if (n as usize) < EVENTS {
                break;
            }
        }
        // Deadlines: one last look (a socket may have reached FIN_WAIT2 just now), then the
        // timeout.
        let now = Instant::now();
        while let Some(&(deadline, token)) = self.deadlines.front() {
            if !self.pending.contains_key(&token) {
                self.deadlines.pop_front();
                continue;
            }
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            match self.look(token) {
                Some(Look::Waiting) => {
                    if let Some(p) = self.pending.remove(&token) {
                        // Closed normally: Linux finishes the close and keeps the TIME_WAIT.
                        drop(p.stream);
                        out.push(Handoff {
                            tuple: p.tuple,
                            result: Err(HandoffError {
                                kind: HandoffErrorKind::Timeout(self.timeout),
                                socket: None,
                            }),
                        });
                    }
                }
                Some(Look::Ready(r)) => ready.push(r),
                Some(Look::Done(h)) => out.push(h),
                None => {}
            }
        }
        let mut ready = ready.into_iter().peekable();
        while ready.peek().is_some() {
            let batch: Vec<Ready> = ready.by_ref().take(self.max_batch).collect();
            self.hand_off(batch, &mut out);
        }
        for h in &out {
            match &h.result {
                Ok(Outcome::HandedOff(_)) => self.stats.handed_off += 1,
                Ok(Outcome::PeerFinFirst(_)) => self.stats.peer_fin_first += 1,
                Ok(Outcome::DryRun(_)) => self.stats.dry_run += 1,
                Err(_) => self.stats.failed += 1,
            }
        }
        out
    }

    fn look_into(&mut self, token: u64, ready: &mut Vec<Ready>, out: &mut Vec<Handoff>) {
        match self.look(token) {
            Some(Look::Ready(r)) => ready.push(r),
            Some(Look::Done(h)) => out.push(h),
            Some(Look::Waiting) | None => {}
        }
    }

    /// Reads a queued socket's state; takes it out of the queue unless it is still waiting.
    /// `None` for a token no longer queued (an event for a socket already reported).
    fn look(&mut self, token: u64) -> Option<Look> {
        let p = self.pending.get(&token)?;
        let fd = p.stream.as_raw_fd();
        let closed = |p: Pending, kind| {
            drop(p.stream);
            Some(Look::Done(Handoff {
                tuple: p.tuple,
                result: Err(HandoffError { kind, socket: None }),
            }))
        };
        let info = match tcp_info(fd) {
            Ok(i) => i,
            Err(e) => {
                let p = self.pending.remove(&token)?;
                return closed(p, HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e));
            }
        };
        match info.tcp_state() {
            TcpState::FinWait1 | TcpState::Established => Some(Look::Waiting),
            TcpState::FinWait2 => {
                let pending = self.pending.remove(&token)?;
                Some(Look::Ready(Ready { pending, info }))
            }
            TcpState::Closing | TcpState::TimeWait => {
                // The peer's FIN came first: Linux's own TIME_WAIT holds the tuple.
                let p = self.pending.remove(&token)?;
                drop(p.stream);
                Some(Look::Done(Handoff {
                    tuple: p.tuple,
                    result: Ok(Outcome::PeerFinFirst(p.tuple)),
                }))
            }
            TcpState::Close => {
                let p = self.pending.remove(&token)?;
                match p.stream.take_error() {
                    // TIME_WAIT took the connection over (no error).
                    Ok(None) => {
                        drop(p.stream);
                        Some(Look::Done(Handoff {
                            tuple: p.tuple,
                            result: Ok(Outcome::PeerFinFirst(p.tuple)),
                        }))
                    }
                    Ok(Some(e)) | Err(e) => closed(p, HandoffErrorKind::Reset(e)),
                }
            }
            s => {
                let p = self.pending.remove(&token)?;
                closed(p, HandoffErrorKind::WrongState(s))
            }
        }
    }

    /// Steps 3–6 of docs/behaviour.md §6 for sockets in FIN_WAIT2, with one add message.
    fn hand_off(&mut self, batch: Vec<Ready>, out: &mut Vec<Handoff>) {
        let epfd = self.epoll.as_raw_fd();
        let timens = self.timens_ms;
        // Repair mode and the state reads, socket by socket.
        let mut repaired: Vec<(Pending, Entry)> = Vec::with_capacity(batch.len());
        for Ready { pending: p, info } in batch {
            let fd = p.stream.as_raw_fd();
            // Unread data would be lost without a trace (D36): give the socket back.
            if let Some(n) = inq(fd).filter(|n| *n > 0) {
                out.push(give_back(epfd, p, HandoffErrorKind::UnreadData(n)));
                continue;
            }
            if let Err(e) = setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) {
                let kind = if e.raw_os_error() == Some(libc::EPERM) {
                    HandoffErrorKind::Permission
                } else {
                    HandoffErrorKind::Sys("TCP_REPAIR", e)
                };
                if p.shut_by_us {
                    // After our shutdown the socket is ours to close.
                    out.push(closed_normally(p, kind));
                } else {
                    out.push(give_back(epfd, p, kind));
                }
                continue;
            }
            match read_repair_state_with(fd, &info, || timens) {
                Ok(state) => {
                    let entry = build_entry(p.tuple, &state);
                    repaired.push((p, entry));
                }
                Err(kind) => out.push(leave_and_close(p, kind)),
            }
        }
        if repaired.is_empty() {
            return;
        }
        let Some(sink) = self.sink.as_mut() else {
            for (p, entry) in repaired {
                leave(&p.stream);
                drop(p.stream);
                out.push(Handoff {
                    tuple: p.tuple,
                    result: Ok(Outcome::DryRun(entry)),
                });
            }
            return;
        };
        let entries: Vec<Entry> = repaired.iter().map(|(_, e)| *e).collect();
        self.stats.add_messages += 1;
        self.stats.entries_sent += entries.len() as u64;
        let start = Instant::now();
        let added = sink.add(&entries);
        self.stats.add_ns += start.elapsed().as_nanos() as u64;
        let results = match added {
            Ok(r) => r,
            Err(e) => {
                // Refused as a whole, or no answer to read: some entries may exist all the
                // same (the kernel adds before it replies). Take them back before the sockets
                // close normally, so no tuple ends up guarded twice.
                for (p, _) in repaired {
                    let _ = sink.del(&p.tuple);
                    out.push(leave_and_close(p, HandoffErrorKind::Module(dup_error(&e))));
                }
                return;
            }
        };
        // The entries exist: from here on the module sees the peer's segments first.
        for (i, (p, entry)) in repaired.into_iter().enumerate() {
            let r = results.get(i).copied().unwrap_or(-libc::EPROTO);
            if r != 0 {
                out.push(leave_and_close(p, HandoffErrorKind::EntryRefused(r)));
                continue;
            }
            let fd = p.stream.as_raw_fd();
            // Data that arrived between the first check and the entry: give the socket back,
            // unread data and all, rather than close it under the module.
            if let Some(n) = inq(fd).filter(|n| *n > 0) {
                if let Err(e) = sink.del(&p.tuple) {
                    let t = p.tuple;
                    out.push(leave_and_close(p, HandoffErrorKind::Cleanup(t, e)));
                    continue;
                }
                leave(&p.stream);
                out.push(give_back(epfd, p, HandoffErrorKind::UnreadData(n)));
                continue;
            }
            // Did the peer's FIN get in before the entry?
            match tcp_info(fd) {
                Ok(i) if i.tcp_state() == TcpState::FinWait2 => {
                    // Close in repair mode: no FIN, no RST, no TIME_WAIT socket.
                    drop(p.stream);
                    out.push(Handoff {
                        tuple: p.tuple,
                        result: Ok(Outcome::HandedOff(entry)),
                    });
                }
                other => {
                    if let Err(e) = sink.del(&p.tuple) {
                        if e.errno() != Some(libc::ENOENT) {
                            let t = p.tuple;
                            out.push(leave_and_close(p, HandoffErrorKind::Cleanup(t, e)));
                            continue;
                        }
                    }
                    if let Err(e) = other {
                        out.push(leave_and_close(
                            p,
                            HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e),
                        ));
                        continue;
                    }
                    leave(&p.stream);
                    // A reset during the add is a reset, not the peer's FIN.
                    if let Ok(Some(e)) = p.stream.take_error() {
                        drop(p.stream);
                        out.push(Handoff {
                            tuple: p.tuple,
                            result: Err(HandoffError { kind: HandoffErrorKind::Reset(e), socket: None }),
                        });
                        continue;
                    }
                    drop(p.stream);
                    out.push(Handoff {
                        tuple: p.tuple,
                        result: Ok(Outcome::PeerFinFirst(p.tuple)),
                    });
                }
            }
        }
    }
}

impl<S: EntrySink> AsRawFd for HandoffQueue<S> {
    /// The epoll instance: readable when a queued socket's state may have changed.
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

impl<S: EntrySink> AsFd for HandoffQueue<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// Leaves repair mode without a window probe.
fn leave(stream: &TcpStream) {
    let _ = setsockopt_int(
        stream.as_raw_fd(),
        libc::IPPROTO_TCP,
        TCP_REPAIR,
        TCP_REPAIR_OFF_NO_WP,
    );
}

/// A failure after repair mode: leave it and close normally.
fn leave_and_close(p: Pending, kind: HandoffErrorKind) -> Handoff {
    leave(&p.stream);
    closed_normally(p, kind)
}

fn closed_normally(p: Pending, kind: HandoffErrorKind) -> Handoff {
    drop(p.stream);
    Handoff {
        tuple: p.tuple,
        result: Err(HandoffError { kind, socket: None }),
    }
}

/// Hands the socket back to the caller, no longer watched by the queue.
fn give_back(epfd: RawFd, p: Pending, kind: HandoffErrorKind) -> Handoff {
    unwatch(epfd, p.stream.as_raw_fd());
    Handoff {
        tuple: p.tuple,
        result: Err(HandoffError {
            kind,
            socket: Some(p.stream.into()),
        }),
    }
}

fn unwatch(epfd: RawFd, fd: RawFd) {
    // SAFETY: both fds are open; EPOLL_CTL_DEL ignores the event pointer.
    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

/// One error of a refused add message, for each socket of its batch.
fn dup_error(e: &Error) -> Error {
    match e {
        Error::ModuleNotLoaded => Error::ModuleNotLoaded,
        Error::PermissionDenied { op, refusal } => Error::PermissionDenied {
            op,
            refusal: refusal.clone(),
        },
        Error::Refused { op, refusal } => Error::Refused {
            op,
            refusal: refusal.clone(),
        },
        Error::Socket { what, err } => Error::Socket {
            what,
            err: match err.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => io::Error::new(err.kind(), err.to_string()),
            },
        },
        Error::Protocol(s) => Error::Protocol(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Substate;
    use crate::handoff::{TCP_QUEUE_SEQ, TCP_RECV_QUEUE, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE};
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::rc::Rc;

    /// Records what the queue gives the module; refuses one tuple, or every message.
    #[derive(Default)]
    struct FakeSink {
        adds: Vec<Vec<Entry>>,
        dels: Vec<Tuple>,
        refuse: Option<Tuple>,
        fail: bool,
        on_add: Option<Box<dyn FnMut()>>,
    }

    impl EntrySink for FakeSink {
        fn add(&mut self, entries: &[Entry]) -> Result<Vec<i32>, Error> {
            if let Some(f) = self.on_add.as_mut() {
                f();
            }
            if self.fail {
                return Err(Error::Protocol("refused by the test".into()));
            }
            self.adds.push(entries.to_vec());
            Ok(entries
                .iter()
                .map(|e| {
                    if Some(e.tuple) == self.refuse {
                        -libc::EEXIST
                    } else {
                        0
                    }
                })
                .collect())
        }

        fn del(&mut self, tuple: &Tuple) -> Result<(), Error> {
            self.dels.push(*tuple);
            Ok(())
        }
    }

    /// A connected pair over loopback: (client, server).
    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    fn state(s: &impl AsRawFd) -> TcpState {
        tcp_info(s.as_raw_fd()).unwrap().tcp_state()
    }

    fn wait_state(s: &impl AsRawFd, want: TcpState) {
        let end = Instant::now() + Duration::from_secs(5);
        while state(s) != want {
            assert!(
                Instant::now() < end,
                "{:?} never reached {want:?}",
                state(s)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// TCP_REPAIR is allowed here (CAP_NET_ADMIN): the handoff itself can run on loopback.
    fn can_repair() -> bool {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (_c, s) = pair(&l);
        let fd = s.as_raw_fd();
        let ok = setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON).is_ok();
        if ok {
            leave(&s);
        } else {
            eprintln!("no CAP_NET_ADMIN: the repair-mode half of the queue tests is skipped");
        }
        ok
    }

    /// Processes until `n` sockets are reported (5 s at most).
    fn run<S: EntrySink>(q: &mut HandoffQueue<S>, n: usize) -> Vec<Handoff> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        loop {
            out.extend(q.process());
            if out.len() >= n {
                return out;
            }
            assert!(Instant::now() < end, "only {} of {n} reported", out.len());
            q.wait(Some(Duration::from_millis(50))).unwrap();
        }
    }

    fn queue(sink: FakeSink, timeout_ms: u64) -> HandoffQueue<FakeSink> {
        HandoffQueue::with_sink(sink, Duration::from_millis(timeout_ms)).unwrap()
    }

    /// A queue-side sequence number of a socket, read in repair mode (root only).
    fn queue_seq(s: &TcpStream, q: libc::c_int) -> u32 {
        let fd = s.as_raw_fd();
        setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON).unwrap();
        setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, q).unwrap();
        let mut v: u32 = 0;
        let mut len = size_of_u32();
        // SAFETY: v is a u32 of len bytes.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                TCP_QUEUE_SEQ,
                &mut v as *mut u32 as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!(r, 0);
        leave(s);
        v
    }

    fn size_of_u32() -> libc::socklen_t {
        std::mem::size_of::<u32>() as libc::socklen_t
    }

    /// Sockets that reached FIN_WAIT2 before one process() call go to the module in one add
    /// message, with the entries a single handoff would build.
    #[test]
    fn ready_sockets_share_one_add_message() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        let mut q = queue(FakeSink::default(), 2000);
        let mut tuples = Vec::new();
        for _ in 0..5 {
            let (c, s) = pair(&l);
            (&s).write_all(b"reply").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            tuples.push(q.push(s.into()).unwrap());
            clients.push(c);
        }
        assert_eq!(q.len(), 5);
        let out = q.process();
        assert_eq!(out.len(), 5);
        assert!(q.is_empty());
        if !repair {
            for h in &out {
                let e = h.result.as_ref().unwrap_err();
                assert!(matches!(e.kind, HandoffErrorKind::Permission), "{e}");
                // Pushed in FIN_WAIT2, shut down by the caller: given back.
                assert!(e.socket.is_some());
            }
            return;
        }
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adds.len(), 1, "one add message");
        assert_eq!(sink.adds[0].len(), 5);
        assert!(sink.dels.is_empty());
        for h in &out {
            let Ok(Outcome::HandedOff(e)) = h.result else {
                panic!("{:?}", h.result)
            };
            assert_eq!(e.tuple, h.tuple);
            assert!(tuples.contains(&e.tuple));
            assert_eq!(e.substate, Substate::FinWait2);
            // The peer's view of the same connection: what it acknowledged is our snd_nxt,
            // what it sent is our rcv_nxt.
            let c = clients
                .iter()
                .find(|c| c.local_addr().unwrap() == h.tuple.remote)
                .unwrap();
            let mut buf = Vec::new();
            (&*c).read_to_end(&mut buf).unwrap();
            assert_eq!(buf, b"reply");
            assert_eq!(queue_seq(c, TCP_RECV_QUEUE), e.snd_nxt);
            assert_eq!(queue_seq(c, TCP_SEND_QUEUE), e.rcv_nxt);
        }
        let st = q.stats();
        assert_eq!(
            (st.pushed, st.handed_off, st.add_messages, st.entries_sent),
            (5, 5, 1, 5)
        );
        // Every client still sees its connection open: no RST was sent.
        for c in &clients {
            assert_eq!(state(c), TcpState::CloseWait);
        }
    }

    #[test]
    fn batches_are_capped() {
        if !can_repair() {
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        q.set_max_batch(2);
        let mut keep = Vec::new();
        for _ in 0..5 {
            let (c, s) = pair(&l);
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            q.push(s.into()).unwrap();
            keep.push(c);
        }
        let out = q.process();
        assert!(out
            .iter()
            .all(|h| matches!(h.result, Ok(Outcome::HandedOff(_)))));
        let lens: Vec<usize> = q.sink_mut().unwrap().adds.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![2, 2, 1]);
        assert_eq!(q.stats().add_messages, 3);
    }

    /// push() shuts down and returns; the queue waits for every FIN to be acknowledged.
    #[test]
    fn push_does_not_wait() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 3000);
        assert_eq!(q.poll_timeout(), None);
        let mut keep = Vec::new();
        for _ in 0..3 {
            let (c, s) = pair(&l);
            let t = q.push(s.into()).unwrap();
            assert_eq!(t.remote, c.local_addr().unwrap());
            keep.push(c);
        }
        assert_eq!(q.len(), 3);
        let t = q.poll_timeout().unwrap();
        assert!(t <= Duration::from_millis(3000) && t > Duration::from_millis(1000));
        let out = run(&mut q, 3);
        for h in &out {
            if repair {
                assert!(
                    matches!(h.result, Ok(Outcome::HandedOff(_))),
                    "{:?}",
                    h.result
                );
            } else {
                let e = h.result.as_ref().unwrap_err();
                // Shut down by the queue: closed normally.
                assert!(matches!(e.kind, HandoffErrorKind::Permission) && e.socket.is_none());
            }
        }
        assert_eq!(q.poll_timeout(), None);
    }

    /// The peer closes at once: its FIN reaches the socket before any entry exists.
    #[test]
    fn peer_fin_first_leaves_no_entry() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        let (c, s) = pair(&l);
        let t = q.push(s.into()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!((&c).read(&mut buf).unwrap(), 0);
        drop(c);
        std::thread::sleep(Duration::from_millis(100));
        let out = run(&mut q, 1);
        assert!(
            matches!(out[0].result, Ok(Outcome::PeerFinFirst(x)) if x == t),
            "{:?}",
            out[0].result
        );
        let sink = q.sink_mut().unwrap();
        assert!(sink.adds.is_empty() && sink.dels.is_empty());
        assert_eq!(q.stats().peer_fin_first, 1);
    }

    /// The peer's FIN arrives while the entry is being added: the entry is deleted again and
    /// the race is reported (the socket in repair mode still takes the FIN).
    #[test]
    fn peer_fin_during_the_add_deletes_the_entry() {
        if !can_repair() {
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let client = Rc::new(RefCell::new(Some(c)));
        let cl = client.clone();
        let sink = FakeSink {
            on_add: Some(Box::new(move || {
                drop(cl.borrow_mut().take());
                std::thread::sleep(Duration::from_millis(100));
            })),
            ..Default::default()
        };
        let mut q = queue(sink, 2000);
        let t = q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        assert!(
            matches!(out[0].result, Ok(Outcome::PeerFinFirst(x)) if x == t),
            "{:?}",
            out[0].result
        );
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adds.len(), 1);
        assert_eq!(sink.dels, vec![t]);
    }

    /// D36: data nobody read is never discarded; the socket comes back with it.
    #[test]
    fn unread_data_gives_the_socket_back() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        let (c, s) = pair(&l);
        (&c).write_all(b"unread").unwrap();
        wait_until(|| inq(s.as_raw_fd()) == Some(6));
        q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        let e = out[0].result.as_ref().unwrap_err();
        assert!(matches!(e.kind, HandoffErrorKind::UnreadData(6)), "{e}");
        let back = TcpStream::from(
            out.into_iter()
                .next()
                .unwrap()
                .result
                .unwrap_err()
                .socket
                .unwrap(),
        );
        let mut buf = [0u8; 16];
        let n = (&back).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"unread");
        assert!(q.sink_mut().unwrap().adds.is_empty());
        assert!(q.is_empty());
        drop(c);
    }

    fn wait_until(mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < end, "condition never met");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A peer that reads nothing: our FIN stays behind the data it will not take, and the
    /// socket is closed normally at its deadline.
    #[test]
    fn unacknowledged_fin_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 200);
        let (c, s) = pair(&l);
        s.set_nonblocking(true).unwrap();
        let chunk = [0u8; 65536];
        while (&s).write(&chunk).is_ok() {}
        let start = Instant::now();
        q.push(s.into()).unwrap();
        assert!(q.poll_timeout().unwrap() <= Duration::from_millis(200));
        let out = run(&mut q, 1);
        assert!(start.elapsed() >= Duration::from_millis(200));
        let e = out[0].result.as_ref().unwrap_err();
        assert!(
            matches!(e.kind, HandoffErrorKind::Timeout(_)) && e.socket.is_none(),
            "{e}"
        );
        assert!(q.sink_mut().unwrap().adds.is_empty());
        assert_eq!(q.stats().failed, 1);
        drop(c);
    }

    #[test]
    fn reset_is_reported() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        let (c, s) = pair(&l);
        q.push(s.into()).unwrap();
        let lg = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid linger struct for SO_LINGER.
        unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &lg as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        let out = run(&mut q, 1);
        let e = out[0].result.as_ref().unwrap_err();
        assert!(
            matches!(e.kind, HandoffErrorKind::Reset(_)) && e.socket.is_none(),
            "{e}"
        );
    }

    /// Refusals by the module: one entry (EEXIST), or the whole message.
    #[test]
    fn module_refusals() {
        if !can_repair() {
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut keep = Vec::new();
        let mut socks = Vec::new();
        for _ in 0..3 {
            let (c, s) = pair(&l);
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            keep.push(c);
            socks.push(s);
        }
        let refused = Tuple::new(
            socks[1].local_addr().unwrap(),
            socks[1].peer_addr().unwrap(),
        )
        .unwrap();
        let mut q = queue(
            FakeSink {
                refuse: Some(refused),
                ..Default::default()
            },
            2000,
        );
        for s in socks {
            q.push(s.into()).unwrap();
        }
        let out = q.process();
        assert_eq!(out.len(), 3);
        for h in &out {
            if h.tuple == refused {
                let e = h.result.as_ref().unwrap_err();
                assert!(
                    matches!(e.kind, HandoffErrorKind::EntryRefused(r) if r == -libc::EEXIST),
                    "{e}"
                );
                assert!(e.socket.is_none());
            } else {
                assert!(
                    matches!(h.result, Ok(Outcome::HandedOff(_))),
                    "{:?}",
                    h.result
                );
            }
        }

        let mut q = queue(
            FakeSink {
                fail: true,
                ..Default::default()
            },
            2000,
        );
        for _ in 0..2 {
            let (c, s) = pair(&l);
            keep.push(c);
            q.push(s.into()).unwrap();
        }
        for h in run(&mut q, 2) {
            let e = h.result.unwrap_err();
            assert!(
                matches!(e.kind, HandoffErrorKind::Module(Error::Protocol(_))),
                "{e}"
            );
            assert!(e.socket.is_none());
        }
    }

    #[test]
    fn dry_run_builds_entries_and_closes_normally() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = HandoffQueue::dry_run(Duration::from_secs(2)).unwrap();
        let (c, s) = pair(&l);
        let t = q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        if !repair {
            return;
        }
        let Ok(Outcome::DryRun(e)) = out[0].result else {
            panic!("{:?}", out[0].result)
        };
        assert_eq!(e.tuple, t);
        assert_eq!(q.stats().dry_run, 1);
        // Closed normally: the peer may close too and gets its FIN acknowledged by Linux.
        drop(c);
    }

    #[test]
    fn refusals_return_the_socket_untouched() {
        let mut q = queue(FakeSink::default(), 2000);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = q.push(l.try_clone().unwrap().into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::Listening), "{err}");
        assert!(err.socket.is_some());
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = q.push(u.into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotTcp(_)), "{err}");
        // The peer closed first: CLOSE_WAIT is refused, nothing done.
        let (c, s) = pair(&l);
        drop(c);
        wait_state(&s, TcpState::CloseWait);
        let err = q.push(s.into()).unwrap_err();
        assert!(
            matches!(err.kind, HandoffErrorKind::WrongState(TcpState::CloseWait)),
            "{err}"
        );
        let back = TcpStream::from(err.socket.unwrap());
        assert_eq!(state(&back), TcpState::CloseWait);
        assert!(q.is_empty());
        assert!(q.process().is_empty());
        assert!(q.drain().unwrap().is_empty());
        assert_eq!(q.stats(), QueueStats::default());
    }

    #[test]
    fn batch_size_is_clamped() {
        let mut q = queue(FakeSink::default(), 10);
        q.set_max_batch(0);
        assert_eq!(q.max_batch, 1);
        q.set_max_batch(100_000);
        assert_eq!(q.max_batch, MAX_BATCH);
    }
}
