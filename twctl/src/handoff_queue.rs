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
//! * [`HandoffQueue::process`], called from the event loop, never blocks on the network: the
//!   tuples of every queued socket that reached FIN_WAIT2 go to the module in **one** netlink
//!   adopt message (at most [`MAX_BATCH`], the module's limit); the module checks each socket
//!   under its lock, reads its state and adds its entry; then each socket it took enters repair
//!   mode, its state is checked again, and it is closed in repair mode. It reports every socket
//!   that is done, with the outcomes and the race rule of
//!   [`close_with_handoff`](crate::handoff::close_with_handoff): the entry exists before the
//!   close; a peer FIN that got in first leaves no entry ([`Outcome::PeerFinFirst`]); unread data
//!   is refused (D36) and, here, the socket is given back so the caller can read it (dropping it
//!   resets the connection, as Linux's `close()` does). The per-socket results of the adopt are
//!   mapped by [`adopt_refusal`](crate::handoff::adopt_refusal); one whose FIN the kernel finds
//!   not acknowledged yet (-EINPROGRESS) keeps waiting.
//!
//! No socket is in repair mode while the sink's code runs, but for the one whose entry is
//! being deleted again ([`EntrySink::del`]); that one is held by a guard that leaves repair mode
//! if the sink panics, so a socket is never closed silently without its entry.
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

use crate::client::{AdoptResult, Client, MAX_ADOPT};
use crate::entry::{Key, Tuple};
use crate::error::Error;
use crate::handoff::{
    adopt_refusal, build_entry, close_adopted, inq, may_have_adopted, precheck,
    read_repair_state_with, tcp_info, timens_offset_ms, AdoptRefusal, AfterAdopt, HandoffError,
    HandoffErrorKind, InRepair, Outcome, Readiness, TcpInfo, TcpState,
};

/// The most tuples the module takes in one adopt message (`RTW_ADD_BATCH_MAX`, src/genl.c).
pub const MAX_BATCH: usize = MAX_ADOPT;
/// Tuples per adopt message unless [`HandoffQueue::set_max_batch`] says otherwise (`twctl
/// add`'s ceiling: a message of 1024 entries and its reply fit the default socket buffers).
pub const DEFAULT_BATCH: usize = 1024;
/// epoll events read per `epoll_wait`.
const EVENTS: usize = 256;

/// Where a queue's sockets are adopted.
pub trait EntrySink {
    /// Adopts the connections of these keys in one message (as [`Client::adopt`]): each the
    /// socket's tuple and the device it is bound to (`SO_BINDTOIFINDEX`, 0: none), by which
    /// the module finds a bound socket. One result per key, in order, with the entry of each
    /// one taken. An `Err` means the message was refused (or its answer lost) as a whole.
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error>;
    /// Deletes the entry guarding a key, its tuple in the VRF of its `bound_ifindex` (an error
    /// with ENOENT when there is none). An adopted entry is deleted by [`Entry::key`](
    /// crate::Entry::key).
    fn del(&mut self, key: &Key) -> Result<(), Error>;
}

impl EntrySink for Client {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        Client::adopt(self, keys)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        Client::del(self, key)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for &mut T {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        (**self).adopt(keys)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        (**self).del(key)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for Box<T> {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        (**self).adopt(keys)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        (**self).del(key)
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
    /// FIN_WAIT2, when repair mode was refused (the adopted entry deleted again); every other
    /// socket has been closed normally.
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
    /// Adopt messages sent to the sink.
    pub adopt_messages: u64,
    /// Tuples in those messages.
    pub tuples_sent: u64,
    /// Time spent in the sink's adopt (for the module: the netlink round trip, its work
    /// included), in ns.
    pub adopt_ns: u64,
}

/// A socket waiting for our FIN to be acknowledged.
struct Pending {
    stream: TcpStream,
    tuple: Tuple,
    /// The device it is bound to (`SO_BINDTOIFINDEX`), for the adopt.
    bound_ifindex: u32,
    /// Our `shutdown(SHUT_WR)`: the socket is the queue's to close on a failure.
    shut_by_us: bool,
    /// Its token in the epoll set and the deadlines.
    token: u64,
    /// When it is closed normally if our FIN is still not acknowledged.
    deadline: Instant,
}

impl Pending {
    /// What the adopt names it by: its tuple and bound device.
    fn key(&self) -> Key {
        Key::new(self.tuple, self.bound_ifindex)
    }
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

    /// Tuples per adopt message, 1 to [`MAX_BATCH`] (the value is clamped).
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
        let (stream, key, ready) = precheck(fd, true)?;
        let tuple = key.tuple;
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
        // A timeout too large for the clock (Duration::MAX for "none") waits a year.
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
        self.pending.insert(
            token,
            Pending {
                stream,
                tuple,
                bound_ifindex: key.bound_ifindex,
                shut_by_us,
                token,
                deadline,
            },
        );
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
    /// FIN_WAIT2 (one adopt message per [`set_max_batch`](Self::set_max_batch) sockets), and
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

    /// Steps 3–6 of docs/behaviour.md §6 for sockets in FIN_WAIT2, with one adopt message.
    fn hand_off(&mut self, batch: Vec<Ready>, out: &mut Vec<Handoff>) {
        let epfd = self.epoll.as_raw_fd();
        // Unread data would be lost without a trace (D36): give the socket back.
        let mut ready: Vec<Ready> = Vec::with_capacity(batch.len());
        for r in batch {
            match inq(r.pending.stream.as_raw_fd()).filter(|n| *n > 0) {
                Some(n) => out.push(give_back(epfd, r.pending, HandoffErrorKind::UnreadData(n))),
                None => ready.push(r),
            }
        }
        if ready.is_empty() {
            return;
        }
        let Some(sink) = self.sink.as_mut() else {
            let timens = self.timens_ms;
            for Ready { pending, info } in ready {
                out.push(dry_run_one(epfd, pending, &info, timens));
            }
            return;
        };
        let keys: Vec<Key> = ready.iter().map(|r| r.pending.key()).collect();
        self.stats.adopt_messages += 1;
        self.stats.tuples_sent += keys.len() as u64;
        let start = Instant::now();
        let adopted = sink.adopt(&keys);
        self.stats.adopt_ns += start.elapsed().as_nanos() as u64;
        let adopted = match adopted {
            Ok(r) if r.len() != keys.len() => Err(Error::Protocol(format!(
                "adopt: {} results for {} tuples",
                r.len(),
                keys.len()
            ))),
            other => other,
        };
        let results = match adopted {
            Ok(r) => r,
            Err(e) => {
                // Refused as a whole: every socket fails and is closed normally (none is
                // retried alone). When the answer was lost, entries may exist all the same:
                // take them back first, so no tuple ends up guarded twice.
                let undo = may_have_adopted(&e);
                for Ready { pending: p, .. } in ready {
                    if undo {
                        let _ = sink.del(&p.key());
                    }
                    out.push(closed_normally(p, HandoffErrorKind::Module(dup_error(&e))));
                }
                return;
            }
        };
        let mut wait_again = Vec::new();
        for (Ready { pending: p, .. }, r) in ready.into_iter().zip(results) {
            let entry = match r {
                AdoptResult::Taken(entry) => entry,
                AdoptResult::Refused(r) => {
                    match adopt_refusal(r) {
                        AdoptRefusal::PeerFinFirst => {
                            // Closed normally: Linux's own TIME_WAIT keeps the tuple.
                            drop(p.stream);
                            out.push(Handoff {
                                tuple: p.tuple,
                                result: Ok(Outcome::PeerFinFirst(p.tuple)),
                            });
                        }
                        AdoptRefusal::FinNotAcked => wait_again.push(p),
                        AdoptRefusal::UnreadData => {
                            let n = inq(p.stream.as_raw_fd()).unwrap_or(0);
                            out.push(give_back(epfd, p, HandoffErrorKind::UnreadData(n)));
                        }
                        AdoptRefusal::Fail(kind) => out.push(closed_normally(p, kind)),
                    }
                    continue;
                }
            };
            // The entry exists: from here on the module sees the peer's segments first.
            let Pending {
                stream,
                tuple,
                bound_ifindex,
                shut_by_us,
                token,
                deadline,
            } = p;
            let back = |stream| Pending {
                stream,
                tuple,
                bound_ifindex,
                shut_by_us,
                token,
                deadline,
            };
            match close_adopted(stream, entry, &mut |k| sink.del(k)) {
                AfterAdopt::Closed(result) => out.push(Handoff {
                    tuple,
                    result: result.map_err(|kind| HandoffError { kind, socket: None }),
                }),
                AfterAdopt::GiveBack(kind, s) => out.push(give_back(epfd, back(s), kind)),
                // After our shutdown the socket is ours to close.
                AfterAdopt::RepairRefused(kind, s) if shut_by_us => {
                    out.push(closed_normally(back(s), kind))
                }
                AfterAdopt::RepairRefused(kind, s) => out.push(give_back(epfd, back(s), kind)),
            }
        }
        // The kernel saw our FIN not acknowledged yet: wait on, up to the socket's deadline.
        let now = Instant::now();
        for p in wait_again {
            if p.deadline <= now {
                let kind = HandoffErrorKind::Timeout(self.timeout);
                out.push(closed_normally(p, kind));
            } else {
                let pos = self.deadlines.partition_point(|(d, _)| *d <= p.deadline);
                self.deadlines.insert(pos, (p.deadline, p.token));
                self.pending.insert(p.token, p);
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

/// A dry run of one FIN_WAIT2 socket: repair mode, the state reads, the entry built; repair
/// mode is left again and the socket closed normally.
fn dry_run_one(epfd: RawFd, p: Pending, info: &TcpInfo, timens: i64) -> Handoff {
    let Pending {
        stream,
        tuple,
        bound_ifindex,
        shut_by_us,
        token,
        deadline,
    } = p;
    let repaired = match InRepair::enter(stream) {
        Ok(r) => r,
        Err((kind, stream)) => {
            let p = Pending {
                stream,
                tuple,
                bound_ifindex,
                shut_by_us,
                token,
                deadline,
            };
            // After our shutdown the socket is ours to close.
            return if shut_by_us {
                closed_normally(p, kind)
            } else {
                give_back(epfd, p, kind)
            };
        }
    };
    let result = match read_repair_state_with(repaired.fd(), info, || timens) {
        Ok(state) => {
            let mut e = build_entry(tuple, &state);
            e.bound_ifindex = bound_ifindex;
            Ok(Outcome::DryRun(e))
        }
        Err(kind) => Err(HandoffError { kind, socket: None }),
    };
    // Leaves repair mode and closes normally.
    drop(repaired);
    Handoff { tuple, result }
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
    use crate::entry::{Entry, Substate};
    use crate::handoff::{
        bound_ifindex, setsockopt_int, SO_BINDTOIFINDEX, TCP_QUEUE_SEQ, TCP_RECV_QUEUE, TCP_REPAIR,
        TCP_REPAIR_OFF_NO_WP, TCP_REPAIR_ON, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE,
    };
    use crate::proto::{Extack, Refusal};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::rc::Rc;

    /// Leaves repair mode (test helper).
    fn leave(s: &TcpStream) {
        let _ = setsockopt_int(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_REPAIR,
            TCP_REPAIR_OFF_NO_WP,
        );
    }

    /// Records what the queue asks the module. Its adopt stands in for the kernel's: a tuple
    /// whose socket it knows (`fds`) is judged by the socket's state, as the module judges it,
    /// and taken with the state read in repair mode; any other is taken with made-up numbers.
    /// It can also refuse one tuple with a given result, or every message.
    #[derive(Default)]
    struct FakeSink {
        adopts: Vec<Vec<Tuple>>,
        /// Every key adopted, in order (the tuples above with their bound devices).
        adopt_keys: Vec<Key>,
        dels: Vec<Tuple>,
        /// Every key deleted, in order.
        del_keys: Vec<Key>,
        fds: HashMap<Tuple, RawFd>,
        refuse: HashMap<Tuple, i32>,
        fail: bool,
        refuse_message: Option<i32>,
        panic_on_del: bool,
        on_adopt: Option<Box<dyn FnMut()>>,
    }

    impl FakeSink {
        fn adopt_one(&self, k: &Key) -> AdoptResult {
            let t = &k.tuple;
            if let Some(&r) = self.refuse.get(t) {
                return AdoptResult::Refused(r);
            }
            let Some(&fd) = self.fds.get(t) else {
                let mut e = Entry::new(*t, 1, 2);
                e.substate = Substate::FinWait2;
                e.tos = 0x10;
                e.bound_ifindex = k.bound_ifindex;
                return AdoptResult::Taken(e);
            };
            let info = tcp_info(fd).unwrap();
            let r = match info.tcp_state() {
                TcpState::FinWait2 if inq(fd).unwrap_or(0) > 0 => -libc::ENOTEMPTY,
                TcpState::FinWait2 => {
                    setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON).unwrap();
                    let st = read_repair_state_with(fd, &info, || 0);
                    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
                    let mut e = build_entry(*t, &st.unwrap());
                    // As the module does: the socket's device (sk_bound_dev_if).
                    e.bound_ifindex = bound_ifindex(fd).unwrap();
                    return AdoptResult::Taken(e);
                }
                TcpState::FinWait1 => -libc::EINPROGRESS,
                TcpState::CloseWait
                | TcpState::LastAck
                | TcpState::Closing
                | TcpState::TimeWait
                | TcpState::Close => -libc::EALREADY,
                _ => -libc::ENOTCONN,
            };
            AdoptResult::Refused(r)
        }
    }

    impl EntrySink for FakeSink {
        fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
            if let Some(f) = self.on_adopt.as_mut() {
                f();
            }
            if self.fail {
                return Err(Error::Protocol("refused by the test".into()));
            }
            if let Some(errno) = self.refuse_message {
                return Err(Error::Refused {
                    op: "adopt",
                    refusal: Box::new(Refusal::new(errno, &Extack::default(), &[])),
                });
            }
            self.adopts.push(keys.iter().map(|k| k.tuple).collect());
            self.adopt_keys.extend_from_slice(keys);
            Ok(keys.iter().map(|k| self.adopt_one(k)).collect())
        }

        fn del(&mut self, key: &Key) -> Result<(), Error> {
            assert!(!self.panic_on_del, "the test's sink panics in del");
            self.dels.push(key.tuple);
            self.del_keys.push(*key);
            Ok(())
        }
    }

    fn tuple_of(s: &TcpStream) -> Tuple {
        Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap()).unwrap()
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

    /// Sockets that reached FIN_WAIT2 before one process() call go to the module in one adopt
    /// message, and the handoffs report the entries it returned.
    #[test]
    fn ready_sockets_share_one_adopt_message() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        let mut sink = FakeSink::default();
        let mut socks = Vec::new();
        for _ in 0..5 {
            let (c, s) = pair(&l);
            (&s).write_all(b"reply").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            if repair {
                sink.fds.insert(tuple_of(&s), s.as_raw_fd());
            }
            socks.push(s);
            clients.push(c);
        }
        let mut q = queue(sink, 2000);
        let mut tuples = Vec::new();
        for s in socks {
            tuples.push(q.push(s.into()).unwrap());
        }
        assert_eq!(q.len(), 5);
        let out = q.process();
        assert_eq!(out.len(), 5);
        assert!(q.is_empty());
        if !repair {
            for h in &out {
                let e = h.result.as_ref().unwrap_err();
                assert!(matches!(e.kind, HandoffErrorKind::Permission), "{e}");
                // Pushed in FIN_WAIT2, shut down by the caller: given back, the entry deleted.
                assert!(e.socket.is_some());
            }
            assert_eq!(q.sink_mut().unwrap().dels.len(), 5);
            return;
        }
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adopts.len(), 1, "one adopt message");
        assert_eq!(sink.adopts[0], tuples);
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
            (st.pushed, st.handed_off, st.adopt_messages, st.tuples_sent),
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
        let lens: Vec<usize> = q.sink_mut().unwrap().adopts.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![2, 2, 1]);
        assert_eq!(q.stats().adopt_messages, 3);
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
        assert!(sink.adopts.is_empty() && sink.dels.is_empty());
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
            on_adopt: Some(Box::new(move || {
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
        assert_eq!(sink.adopts.len(), 1);
        assert_eq!(sink.dels, vec![t]);
    }

    /// A socket bound to a device (here SO_BINDTOIFINDEX to lo) is adopted by its tuple and
    /// device, and its entry deleted again by both (the race rule, or repair mode refused
    /// without CAP_NET_ADMIN); an unbound one sends no device.
    #[test]
    fn bound_sockets_are_adopted_and_deleted_by_their_device() {
        let repair = can_repair();
        let lo = lo_index();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, SO_BINDTOIFINDEX, lo as i32).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let (c2, s2) = pair(&l);
        s2.shutdown(Shutdown::Write).unwrap();
        wait_state(&s2, TcpState::FinWait2);
        let client = Rc::new(RefCell::new(Some(c)));
        let cl = client.clone();
        let sink = FakeSink {
            // The peer's FIN gets in after the module's check: the entry is deleted again.
            on_adopt: Some(Box::new(move || {
                drop(cl.borrow_mut().take());
                std::thread::sleep(Duration::from_millis(100));
            })),
            ..Default::default()
        };
        let mut q = queue(sink, 2000);
        let t = q.push(s.into()).unwrap();
        let t2 = q.push(s2.into()).unwrap();
        let out = run(&mut q, 2);
        let by = |t: Tuple| &out.iter().find(|h| h.tuple == t).unwrap().result;
        if repair {
            assert!(
                matches!(by(t), Ok(Outcome::PeerFinFirst(x)) if *x == t),
                "{:?}",
                by(t)
            );
        } else {
            let e = by(t).as_ref().unwrap_err();
            assert!(matches!(e.kind, HandoffErrorKind::Permission), "{e}");
        }
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adopts.len(), 1, "one adopt message");
        let mut keys = sink.adopt_keys.clone();
        keys.sort_by_key(|k| k.bound_ifindex);
        assert_eq!(keys, vec![Key::new(t2, 0), Key::new(t, lo)]);
        assert!(
            sink.del_keys.contains(&Key::new(t, lo)),
            "{:?}",
            sink.del_keys
        );
        drop(c2);
    }

    fn lo_index() -> u32 {
        // SAFETY: a NUL-terminated string.
        let i = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(i, 0);
        i
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
        assert!(q.sink_mut().unwrap().adopts.is_empty());
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
        assert!(q.sink_mut().unwrap().adopts.is_empty());
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

    /// Refusals by the module: one tuple (EEXIST), or the whole message.
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
        let refused = tuple_of(&socks[1]);
        let mut q = queue(
            FakeSink {
                refuse: HashMap::from([(refused, -libc::EEXIST)]),
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
        // The answer was not understood: entries may exist, they are deleted again.
        assert_eq!(q.sink_mut().unwrap().dels.len(), 2);

        // Refused by the kernel as a whole: nothing was added, nothing to delete.
        let mut q = queue(
            FakeSink {
                refuse_message: Some(libc::ENOMEM),
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
                matches!(&e.kind, HandoffErrorKind::Module(m) if m.errno() == Some(libc::ENOMEM)),
                "{e}"
            );
            assert!(e.socket.is_none());
        }
        assert!(q.sink_mut().unwrap().dels.is_empty());
    }

    /// Each adopt result of one message, mapped: -EALREADY the peer's FIN first (closed
    /// normally, nothing to delete), -ENOTEMPTY given back, -ENOENT, -EOPNOTSUPP and -ENOTCONN
    /// failed and closed normally, 0 handed off.
    #[test]
    fn adopt_results_are_mapped_per_socket() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut keep = Vec::new();
        let mut socks = Vec::new();
        for _ in 0..6 {
            let (c, s) = pair(&l);
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            keep.push(c);
            socks.push(s);
        }
        let results = [
            -libc::EALREADY,
            -libc::ENOTEMPTY,
            -libc::ENOENT,
            -libc::EOPNOTSUPP,
            -libc::ENOTCONN,
        ];
        let tuples: Vec<Tuple> = socks.iter().map(tuple_of).collect();
        let refuse: HashMap<Tuple, i32> = tuples.iter().copied().zip(results).collect();
        let mut q = queue(
            FakeSink {
                refuse,
                ..Default::default()
            },
            2000,
        );
        for s in socks {
            q.push(s.into()).unwrap();
        }
        let out = q.process();
        assert_eq!(out.len(), 6);
        let by = |t: &Tuple| &out.iter().find(|h| h.tuple == *t).unwrap().result;
        assert!(matches!(by(&tuples[0]), Ok(Outcome::PeerFinFirst(x)) if *x == tuples[0]));
        let e = by(&tuples[1]).as_ref().unwrap_err();
        assert!(
            matches!(e.kind, HandoffErrorKind::UnreadData(0)) && e.socket.is_some(),
            "{e}"
        );
        for (i, want) in [(2, "no connection"), (3, "TCP-MD5"), (4, "ENOTCONN")] {
            let e = by(&tuples[i]).as_ref().unwrap_err();
            assert!(e.socket.is_none(), "{e}");
            assert!(e.to_string().contains(want), "{e}");
            assert!(
                e.to_string().ends_with("(the socket was closed normally)"),
                "{e}"
            );
            assert_eq!(e.exit_code(), crate::error::exit::FAILED);
        }
        if repair {
            assert!(matches!(by(&tuples[5]), Ok(Outcome::HandedOff(e)) if e.tos == 0x10));
        }
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adopts.len(), 1);
        // Only the taken one could need deleting (when repair mode was refused).
        assert!(sink.dels.iter().all(|t| *t == tuples[5]));
        let st = q.stats();
        assert_eq!((st.peer_fin_first, st.failed + st.handed_off), (1, 5));
    }

    /// -EINPROGRESS: the kernel finds our FIN not acknowledged; the socket waits on, until its
    /// deadline.
    #[test]
    fn fin_not_acked_for_the_kernel_keeps_waiting() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let t = tuple_of(&s);
        let mut q = queue(
            FakeSink {
                refuse: HashMap::from([(t, -libc::EINPROGRESS)]),
                ..Default::default()
            },
            300,
        );
        let start = Instant::now();
        q.push(s.into()).unwrap();
        assert!(q.process().is_empty());
        assert_eq!(q.len(), 1);
        assert!(q.poll_timeout().unwrap() > Duration::ZERO);
        let out = run(&mut q, 1);
        assert!(start.elapsed() >= Duration::from_millis(300));
        let e = out[0].result.as_ref().unwrap_err();
        assert!(
            matches!(e.kind, HandoffErrorKind::Timeout(_)) && e.socket.is_none(),
            "{e}"
        );
        assert!(q.sink_mut().unwrap().adopts.len() >= 2);
        assert!(q.is_empty());
        drop(c);
    }

    /// The peer's FIN reaches the socket before the kernel looks at it: -EALREADY, nothing
    /// added, nothing to delete, the socket closed normally (Linux keeps the tuple).
    #[test]
    fn peer_fin_seen_by_the_kernel_is_already() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let t = tuple_of(&s);
        let client = Rc::new(RefCell::new(Some(c)));
        let cl = client.clone();
        let mut sink = FakeSink {
            on_adopt: Some(Box::new(move || {
                drop(cl.borrow_mut().take());
                std::thread::sleep(Duration::from_millis(100));
            })),
            ..Default::default()
        };
        sink.fds.insert(t, s.as_raw_fd());
        let mut q = queue(sink, 2000);
        q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        assert!(
            matches!(out[0].result, Ok(Outcome::PeerFinFirst(x)) if x == t),
            "{:?}",
            out[0].result
        );
        assert!(q.sink_mut().unwrap().dels.is_empty());
    }

    /// A panic in the sink while a socket is in repair mode (deleting its entry again, after
    /// data arrived) leaves repair mode before the socket is dropped: it is closed normally
    /// (here with a reset, for the unread data), not silently.
    #[test]
    fn panic_in_the_sink_does_not_close_silently() {
        if !can_repair() {
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let c = Rc::new(c);
        let cl = c.clone();
        let sink = FakeSink {
            panic_on_del: true,
            on_adopt: Some(Box::new(move || {
                (&*cl).write_all(b"late").unwrap();
                std::thread::sleep(Duration::from_millis(100));
            })),
            ..Default::default()
        };
        let mut q = queue(sink, 2000);
        q.push(s.into()).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.process()));
        assert!(r.is_err(), "the sink panicked");
        // Closed normally with unread data: Linux resets the connection. Closed silently in
        // repair mode, the peer would stay in CLOSE_WAIT.
        wait_state(&*c, TcpState::Close);
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
