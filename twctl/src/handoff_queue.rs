// SPDX-License-Identifier: GPL-2.0

//! A handoff that does not block a server's event loop (docs/behaviour.md §6, issue 10 item 2).
//!
//! [`close_with_handoff`](crate::handoff::close_with_handoff) shuts the socket down and then
//! sleeps until our FIN is acknowledged, which a Linux peer that keeps its end open delays by
//! 40 ms or more, and pays a netlink round trip per socket. A [`HandoffQueue`] does the same
//! protocol for many sockets at once, without ever waiting, and with as few system calls per
//! socket as it can:
//!
//! * [`HandoffQueue::push`] calls `epoll_ctl(EPOLL_CTL_ADD)` and `shutdown(SHUT_WR)` and returns
//!   at once with the socket's id; nothing else (the kernel checks the socket and reads its
//!   tuple at the adopt). A socket that cannot be shut down (not connected, not a socket) is
//!   refused and given back, with the reason [`handoff`](crate::handoff::handoff) would give;
//! * the queue's file descriptor ([`AsRawFd`]) is an epoll instance that becomes readable when a
//!   queued socket changes state (Linux wakes a socket's waiters when our FIN is acknowledged,
//!   when the peer's FIN or a reset arrives); [`HandoffQueue::poll_timeout`] says how long the
//!   caller may sleep at most (the earliest per-socket deadline);
//! * [`HandoffQueue::process`], called from the event loop, never blocks on the network and
//!   reads no socket state itself: every queued socket epoll says may have changed (and every
//!   one at its deadline) goes to the module by its file descriptor, in **one** netlink adopt
//!   message (at most [`MAX_BATCH`], the module's limit) asking for repair mode
//!   ([`EntrySink::adopt_fds`]). The kernel resolves each fd, checks its socket under its lock
//!   (our FIN acknowledged, the peer's not seen, nothing unread), adds its entry, checks it
//!   again once the socket's backlog ran and puts it in TCP_REPAIR mode; the queue then just
//!   closes each socket taken (nothing is sent, no TIME_WAIT). The per-socket results are
//!   mapped by [`adopt_refusal`](crate::handoff::adopt_refusal): -EINPROGRESS (our FIN not
//!   acknowledged yet) keeps waiting, up to the socket's deadline; -EALREADY (the peer's FIN
//!   came first: Linux keeps the tuple) closes it normally, [`Outcome::PeerFinFirst`] (or the
//!   reset, if it was one); -ENOTEMPTY (unread data, D36) gives the socket back so the caller
//!   can read it (dropping it resets the connection, as Linux's `close()` does); any other
//!   closes it normally with the error.
//!
//! Per socket handed off: two system calls in `push` and one (`close`) in `process`, plus its
//! share of one `epoll_wait` and one netlink round trip per `process` call.
//!
//! Sockets whose peer FIN came first, that were reset, or whose FIN was not acknowledged within
//! the queue's timeout are reported too and closed normally: nothing is leaked. Dropping the
//! queue closes the sockets still queued normally (Linux then keeps their TIME_WAIT).
//!
//! A dry run ([`HandoffQueue::dry_run`], no module) checks the sockets in userspace at `push`
//! and reads their state in repair mode itself, as before the adopt by fd.
//!
//! Where the entries go is an [`EntrySink`]: the module's [`Client`], or anything else in tests.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::client::{AdoptResult, Client, FdAdoptResult, MAX_ADOPT};
use crate::entry::{Key, Tuple};
use crate::error::Error;
use crate::handoff::{
    adopt_refusal, bound_ifindex, build_entry, inq, leave_repair, may_have_adopted, precheck,
    read_repair_state_with, tcp_info, timens_offset_ms, unmap, AdoptRefusal, HandoffError,
    HandoffErrorKind, InRepair, Outcome, TcpInfo, TcpState,
};

/// The most sockets the module takes in one adopt message (`RTW_ADOPT_BATCH_MAX`, src/genl.c).
pub const MAX_BATCH: usize = MAX_ADOPT;
/// Sockets per adopt message unless [`HandoffQueue::set_max_batch`] says otherwise: the
/// module's limit, whose reply (a whole entry per socket) fits the default receive buffer.
pub const DEFAULT_BATCH: usize = MAX_ADOPT;
/// epoll events read per `epoll_wait`.
const EVENTS: usize = 256;

/// Where a queue's sockets are adopted.
pub trait EntrySink {
    /// Adopts the connections of these keys in one message (as [`Client::adopt`]): each the
    /// socket's tuple and the device it is bound to (`SO_BINDTOIFINDEX`, 0: none), by which
    /// the module finds a bound socket. One result per key, in order, with the entry of each
    /// one taken. An `Err` means the message was refused (or its answer lost) as a whole. (The
    /// queue itself adopts by fd, [`EntrySink::adopt_fds`].)
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error>;
    /// Adopts the connections of these sockets of the calling process in one message, by file
    /// descriptor (as [`Client::adopt_fds`]): one result per fd, in order, with the tuple read
    /// from the socket and the entry of each one taken. `repair`: each socket taken is left in
    /// TCP_REPAIR mode, checked after its backlog ran, for the caller to close. An `Err` means
    /// the message was refused (or its answer lost) as a whole.
    fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error>;
    /// Deletes the entry guarding a key, its tuple in the VRF of its `bound_ifindex` (an error
    /// with ENOENT when there is none). An adopted entry is deleted by [`Entry::key`](
    /// crate::Entry::key).
    fn del(&mut self, key: &Key) -> Result<(), Error>;
}

impl EntrySink for Client {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        Client::adopt(self, keys)
    }

    fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error> {
        Client::adopt_fds(self, fds, repair)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        Client::del(self, key)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for &mut T {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        (**self).adopt(keys)
    }

    fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error> {
        (**self).adopt_fds(fds, repair)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        (**self).del(key)
    }
}

impl<T: EntrySink + ?Sized> EntrySink for Box<T> {
    fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
        (**self).adopt(keys)
    }

    fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error> {
        (**self).adopt_fds(fds, repair)
    }

    fn del(&mut self, key: &Key) -> Result<(), Error> {
        (**self).del(key)
    }
}

/// What became of one queued socket.
#[derive(Debug)]
pub struct Handoff {
    /// The socket's id, as [`HandoffQueue::push`] returned it.
    pub id: u64,
    /// The socket's tuple, when known: the one the kernel read at the adopt (or, in a dry run
    /// and when the queue deletes entries again, read from the socket). `None` for a socket
    /// reported without an answer of the kernel's naming it (a timeout, a refused message, a
    /// socket the kernel found closed with its port released).
    pub tuple: Option<Tuple>,
    /// [`Outcome::HandedOff`], [`Outcome::PeerFinFirst`], [`Outcome::DryRun`], or the error. An
    /// error carries the socket back only for [`HandoffErrorKind::UnreadData`] (shut down for
    /// writing, everything else as it was) and, in a dry run, when repair mode was refused;
    /// every other socket has been closed normally.
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
    /// Sockets (fds) in those messages; a socket whose FIN was not acknowledged yet is sent
    /// again at its next wakeup.
    pub tuples_sent: u64,
    /// Time spent in the sink's adopt (for the module: the netlink round trip, its work
    /// included), in ns.
    pub adopt_ns: u64,
}

/// A queued socket.
struct Pending {
    stream: TcpStream,
    /// Its id (what push returned), its token in the epoll set and the deadlines.
    token: u64,
    /// When it is closed normally if our FIN is still not acknowledged.
    deadline: Instant,
    /// A dry run's: the key read at push (the real queue reads none).
    key: Option<Key>,
}

impl Pending {
    fn report(self, tuple: Option<Tuple>, result: Result<Outcome, HandoffError>) -> Handoff {
        drop(self.stream);
        Handoff {
            id: self.token,
            tuple,
            result,
        }
    }
}

/// What one look at a queued socket found (dry runs).
enum Look {
    /// Still FIN_WAIT1: our FIN is not acknowledged yet.
    Waiting(Pending),
    /// FIN_WAIT2: hand it off.
    Ready(Pending, TcpInfo),
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

    /// A dry run: each socket is checked at push as [`handoff`](crate::handoff::handoff)
    /// checks it, goes through repair mode and is reported as [`Outcome::DryRun`] with the
    /// entry a handoff would add; repair mode is left again and the socket closed normally.
    /// Needs CAP_NET_ADMIN (TCP_REPAIR), not the module.
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

    /// Sockets per adopt message, 1 to [`MAX_BATCH`] (the value is clamped).
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

    /// Queues a connected socket: watches it and calls `shutdown(SHUT_WR)` (harmless when it
    /// is shut down already), and returns its id at once; [`Handoff::id`] names it in the
    /// report. Nothing else is read: the kernel checks the socket at the adopt (a UDP socket, a
    /// listening one, one whose peer closed first, ... is reported then, closed normally). A
    /// socket that cannot be watched or shut down (not a socket, not connected) is refused and
    /// given back, with the reason. A dry run checks the socket first, as
    /// [`handoff`](crate::handoff::handoff) does (a refusal gives it back untouched). From then
    /// on the socket is the queue's: it is reported by [`process`](Self::process).
    pub fn push(&mut self, fd: OwnedFd) -> Result<u64, HandoffError> {
        let (stream, key) = if self.sink.is_none() {
            let (stream, key, _) = precheck(fd, true)?;
            (stream, Some(key))
        } else {
            (TcpStream::from(fd), None)
        };
        let token = self.next_token;
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
            let e = io::Error::last_os_error();
            return Err(refused(stream, "epoll_ctl(EPOLL_CTL_ADD)", e));
        }
        if let Err(e) = stream.shutdown(Shutdown::Write) {
            unwatch(self.epoll.as_raw_fd(), stream.as_raw_fd());
            return Err(refused(stream, "shutdown(SHUT_WR)", e));
        }
        self.next_token += 1;
        // A timeout too large for the clock (Duration::MAX for "none") waits a year.
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
        self.pending.insert(
            token,
            Pending {
                stream,
                token,
                deadline,
                key,
            },
        );
        self.deadlines.push_back((deadline, token));
        self.stats.pushed += 1;
        Ok(token)
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

    /// Does every piece of work that is due, without waiting on the network: takes the queued
    /// sockets whose state may have changed and those at their deadline, sends them to the
    /// module by fd (one adopt message per [`set_max_batch`](Self::set_max_batch) sockets),
    /// closes those it took, and reports every socket that is done.
    pub fn process(&mut self) -> Vec<Handoff> {
        let mut out = Vec::new();
        let mut due: Vec<Pending> = Vec::new();
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
                // None: an event for a socket already taken out.
                let token = ev.u64;
                if let Some(p) = self.pending.remove(&token) {
                    due.push(p);
                }
            }
            if (n as usize) < EVENTS {
                break;
            }
        }
        // Deadlines: one last try (a socket may have reached FIN_WAIT2 just now), then the
        // timeout.
        let now = Instant::now();
        while let Some(&(deadline, token)) = self.deadlines.front() {
            // Entries of sockets taken out above stay until their deadline: one queued again
            // below keeps its deadline.
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(p) = self.pending.remove(&token) {
                due.push(p);
            }
        }
        if self.sink.is_none() {
            for p in due {
                self.dry_run_one(p, &mut out);
            }
        } else {
            let mut due = due.into_iter().peekable();
            while due.peek().is_some() {
                let batch: Vec<Pending> = due.by_ref().take(self.max_batch).collect();
                self.hand_off(batch, &mut out);
            }
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

    /// A socket whose FIN is not acknowledged yet: queued again until its deadline (whose
    /// entry in `deadlines` is still there: only those past were taken out), then closed
    /// normally.
    fn wait_again(&mut self, p: Pending, out: &mut Vec<Handoff>) {
        if p.deadline <= Instant::now() {
            let kind = HandoffErrorKind::Timeout(self.timeout);
            let tuple = p.key.map(|k| k.tuple);
            out.push(p.report(tuple, Err(HandoffError { kind, socket: None })));
        } else {
            self.pending.insert(p.token, p);
        }
    }

    /// One adopt message for `batch`, by fd, with repair mode asked; each socket taken is
    /// closed (in repair mode: silently), the others reported or queued again by their result.
    fn hand_off(&mut self, batch: Vec<Pending>, out: &mut Vec<Handoff>) {
        let epfd = self.epoll.as_raw_fd();
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let fds: Vec<RawFd> = batch.iter().map(|p| p.stream.as_raw_fd()).collect();
        self.stats.adopt_messages += 1;
        self.stats.tuples_sent += fds.len() as u64;
        let start = Instant::now();
        let adopted = sink.adopt_fds(&fds, true);
        self.stats.adopt_ns += start.elapsed().as_nanos() as u64;
        let adopted = match adopted {
            Ok(r) if r.len() != fds.len() => Err(Error::Protocol(format!(
                "adopt: {} results for {} fds",
                r.len(),
                fds.len()
            ))),
            other => other,
        };
        let results = match adopted {
            Ok(r) => r,
            Err(e) => {
                // Refused as a whole: every socket fails and is closed normally (none is
                // retried alone). When the answer was lost, entries may exist all the same
                // and their sockets be in repair mode: leave it and take the entries back
                // first, so no tuple ends up guarded twice nor closed silently unguarded.
                let undo = may_have_adopted(&e);
                for p in batch {
                    let mut tuple = None;
                    // Whatever the error, no socket is closed in repair mode: the module undoes
                    // a message it could not answer, and this is the defence if it could not.
                    leave_repair(&p.stream);
                    if undo {
                        if let Some(k) = key_of(p.stream.as_raw_fd()) {
                            let _ = sink.del(&k);
                            tuple = Some(k.tuple);
                        }
                    }
                    let kind = HandoffErrorKind::Module(dup_error(&e));
                    out.push(p.report(tuple, Err(HandoffError { kind, socket: None })));
                }
                return;
            }
        };
        let mut again = Vec::new();
        for (p, FdAdoptResult { tuple, result }) in batch.into_iter().zip(results) {
            let r = match result {
                // In repair mode: the close sends nothing, leaves no TIME_WAIT; the entry
                // guards the tuple.
                AdoptResult::Taken(entry) => {
                    out.push(p.report(Some(entry.tuple), Ok(Outcome::HandedOff(entry))));
                    continue;
                }
                AdoptResult::Refused(r) => r,
            };
            match adopt_refusal(r) {
                AdoptRefusal::PeerFinFirst => {
                    // Closed normally: Linux's own TIME_WAIT (or the peer's) keeps the tuple.
                    // A reset is a reset, not the peer's FIN.
                    let result = match (p.stream.take_error(), tuple) {
                        (Ok(Some(e)), _) => Err(HandoffErrorKind::Reset(e)),
                        (_, Some(t)) => Ok(Outcome::PeerFinFirst(t)),
                        (_, None) => Err(HandoffErrorKind::WrongState(TcpState::Close)),
                    };
                    let result = result.map_err(|kind| HandoffError { kind, socket: None });
                    out.push(p.report(tuple, result));
                }
                AdoptRefusal::FinNotAcked => again.push(p),
                AdoptRefusal::UnreadData => {
                    let n = inq(p.stream.as_raw_fd()).unwrap_or(0);
                    out.push(give_back(epfd, p, tuple, HandoffErrorKind::UnreadData(n)));
                }
                AdoptRefusal::Fail(kind) => {
                    out.push(p.report(tuple, Err(HandoffError { kind, socket: None })))
                }
            }
        }
        // The kernel saw our FIN not acknowledged yet: wait on, up to the socket's deadline.
        for p in again {
            self.wait_again(p, out);
        }
    }

    /// A dry run of one socket: its state read; in FIN_WAIT2, repair mode, the state reads, the
    /// entry built; repair mode is left again and the socket closed normally.
    fn dry_run_one(&mut self, p: Pending, out: &mut Vec<Handoff>) {
        let epfd = self.epoll.as_raw_fd();
        let (p, info) = match look(p) {
            Look::Waiting(p) => return self.wait_again(p, out),
            Look::Done(h) => return out.push(h),
            Look::Ready(p, info) => (p, info),
        };
        let key = p.key.expect("a dry run's socket has its key");
        if let Some(n) = inq(p.stream.as_raw_fd()).filter(|n| *n > 0) {
            return out.push(give_back(
                epfd,
                p,
                Some(key.tuple),
                HandoffErrorKind::UnreadData(n),
            ));
        }
        let Pending {
            stream,
            token,
            deadline,
            key: k,
        } = p;
        let repaired = match InRepair::enter(stream) {
            Ok(r) => r,
            Err((kind, stream)) => {
                let p = Pending {
                    stream,
                    token,
                    deadline,
                    key: k,
                };
                // After our shutdown the socket is ours to close.
                let err = HandoffError { kind, socket: None };
                return out.push(p.report(Some(key.tuple), Err(err)));
            }
        };
        let result = match read_repair_state_with(repaired.fd(), &info, || self.timens_ms) {
            Ok(state) => {
                let mut e = build_entry(key.tuple, &state);
                e.bound_ifindex = key.bound_ifindex;
                Ok(Outcome::DryRun(e))
            }
            Err(kind) => Err(HandoffError { kind, socket: None }),
        };
        // Leaves repair mode and closes normally.
        drop(repaired);
        out.push(Handoff {
            id: token,
            tuple: Some(key.tuple),
            result,
        });
    }
}

/// Reads a queued socket's state (dry runs).
fn look(p: Pending) -> Look {
    let fd = p.stream.as_raw_fd();
    let tuple = p.key.map(|k| k.tuple);
    let closed =
        |p: Pending, kind| Look::Done(p.report(tuple, Err(HandoffError { kind, socket: None })));
    let info = match tcp_info(fd) {
        Ok(i) => i,
        Err(e) => return closed(p, HandoffErrorKind::Sys("getsockopt(TCP_INFO)", e)),
    };
    match info.tcp_state() {
        TcpState::FinWait1 | TcpState::Established => Look::Waiting(p),
        TcpState::FinWait2 => Look::Ready(p, info),
        TcpState::Closing | TcpState::TimeWait => {
            // The peer's FIN came first: Linux's own TIME_WAIT holds the tuple.
            match tuple {
                Some(t) => Look::Done(p.report(tuple, Ok(Outcome::PeerFinFirst(t)))),
                None => closed(p, HandoffErrorKind::WrongState(info.tcp_state())),
            }
        }
        TcpState::Close => match (p.stream.take_error(), tuple) {
            // TIME_WAIT took the connection over (no error).
            (Ok(None), Some(t)) => Look::Done(p.report(tuple, Ok(Outcome::PeerFinFirst(t)))),
            (Ok(None), None) => closed(p, HandoffErrorKind::WrongState(TcpState::Close)),
            (Ok(Some(e)) | Err(e), _) => closed(p, HandoffErrorKind::Reset(e)),
        },
        s => closed(p, HandoffErrorKind::WrongState(s)),
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

/// A socket push() could not watch or shut down, given back with the reason: what the
/// userspace checks of [`handoff`](crate::handoff::handoff) find (not TCP, listening, ...),
/// else the failed call. (These reads cost nothing on the way in: only refusals pay them.)
fn refused(stream: TcpStream, op: &'static str, e: io::Error) -> HandoffError {
    match precheck(stream.into(), true) {
        Err(refusal) => refusal,
        Ok((stream, _, _)) => HandoffError {
            kind: HandoffErrorKind::Sys(op, e),
            socket: Some(stream.into()),
        },
    }
}

/// A socket's key read from it (its tuple and bound device), when it still has one: to delete
/// an entry the kernel may have added for it without our hearing of it.
fn key_of(fd: RawFd) -> Option<Key> {
    // SAFETY: fd is open for the duration of this call; ManuallyDrop never closes it.
    let s = std::mem::ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    let (l, r) = (s.local_addr().ok()?, s.peer_addr().ok()?);
    let t = Tuple::new(unmap(l), unmap(r)).ok()?;
    Some(Key::new(t, bound_ifindex(fd).unwrap_or(0)))
}

/// Hands the socket back to the caller, no longer watched by the queue.
fn give_back(epfd: RawFd, p: Pending, tuple: Option<Tuple>, kind: HandoffErrorKind) -> Handoff {
    unwatch(epfd, p.stream.as_raw_fd());
    Handoff {
        id: p.token,
        tuple,
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
        setsockopt_int, SO_BINDTOIFINDEX, TCP_QUEUE_SEQ, TCP_RECV_QUEUE, TCP_REPAIR,
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

    /// Records what the queue asks the module. Its adopt by fd stands in for the kernel's: each
    /// socket is judged by its state, as the module judges it, and taken with the state read in
    /// repair mode (left in repair mode when asked, after a last state check), or, without
    /// CAP_NET_ADMIN, with made-up numbers. It can also refuse one tuple with a given result, or
    /// every message.
    #[derive(Default)]
    struct FakeSink {
        /// The tuples of each adopt message (of the sockets that have one), in order.
        adopts: Vec<Vec<Tuple>>,
        /// The fds of each adopt message and whether repair mode was asked.
        fd_adopts: Vec<(Vec<RawFd>, bool)>,
        dels: Vec<Tuple>,
        /// Every key deleted, in order.
        del_keys: Vec<Key>,
        refuse: HashMap<Tuple, i32>,
        /// Tuples of sockets the test knows, for those closed already (the kernel still reads
        /// a closed socket's addresses; getpeername() no longer does).
        known: HashMap<RawFd, Tuple>,
        fail: bool,
        refuse_message: Option<i32>,
        on_adopt: Option<Box<dyn FnMut()>>,
    }

    impl FakeSink {
        fn adopt_one_fd(&self, fd: RawFd, repair: bool) -> FdAdoptResult {
            let tuple = key_of(fd)
                .map(|k| k.tuple)
                .or_else(|| self.known.get(&fd).copied());
            let refused = |r| FdAdoptResult {
                tuple,
                result: AdoptResult::Refused(r),
            };
            if let Some(&r) = tuple.and_then(|t| self.refuse.get(&t)) {
                return refused(r);
            }
            let Ok(info) = tcp_info(fd) else {
                return refused(-libc::ENOTSOCK);
            };
            let r = match info.tcp_state() {
                TcpState::FinWait2 if inq(fd).unwrap_or(0) > 0 => -libc::ENOTEMPTY,
                TcpState::FinWait2 => {
                    let t = tuple.expect("a connected socket's tuple");
                    let bound = crate::handoff::bound_ifindex(fd).unwrap();
                    let mut e = Entry::new(t, 1, 2);
                    e.substate = Substate::FinWait2;
                    e.tos = 0x10;
                    if setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON).is_ok() {
                        let st = read_repair_state_with(fd, &info, || 0);
                        e = build_entry(t, &st.unwrap());
                        // The module's race check, after the socket's backlog ran.
                        let still = tcp_info(fd).unwrap().tcp_state() == TcpState::FinWait2;
                        if !repair || !still {
                            let _ = setsockopt_int(
                                fd,
                                libc::IPPROTO_TCP,
                                TCP_REPAIR,
                                TCP_REPAIR_OFF_NO_WP,
                            );
                        }
                        if !still {
                            return refused(-libc::EALREADY);
                        }
                    }
                    // As the module does: the socket's device (sk_bound_dev_if).
                    e.bound_ifindex = bound;
                    return FdAdoptResult {
                        tuple,
                        result: AdoptResult::Taken(e),
                    };
                }
                TcpState::FinWait1 => -libc::EINPROGRESS,
                TcpState::CloseWait
                | TcpState::LastAck
                | TcpState::Closing
                | TcpState::TimeWait
                | TcpState::Close => -libc::EALREADY,
                _ => -libc::ENOTCONN,
            };
            refused(r)
        }

        fn check_message(&mut self) -> Result<(), Error> {
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
            Ok(())
        }
    }

    impl EntrySink for FakeSink {
        fn adopt(&mut self, keys: &[Key]) -> Result<Vec<AdoptResult>, Error> {
            self.check_message()?;
            self.adopts.push(keys.iter().map(|k| k.tuple).collect());
            Ok(keys
                .iter()
                .map(|k| {
                    let mut e = Entry::new(k.tuple, 1, 2);
                    e.substate = Substate::FinWait2;
                    AdoptResult::Taken(e)
                })
                .collect())
        }

        fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error> {
            self.check_message()?;
            self.fd_adopts.push((fds.to_vec(), repair));
            self.adopts.push(
                fds.iter()
                    .filter_map(|fd| key_of(*fd))
                    .map(|k| k.tuple)
                    .collect(),
            );
            Ok(fds
                .iter()
                .map(|fd| self.adopt_one_fd(*fd, repair))
                .collect())
        }

        fn del(&mut self, key: &Key) -> Result<(), Error> {
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

    /// FIN_WAIT2 sockets, each with its peer still open: (clients, servers).
    fn fin_wait2_pairs(l: &TcpListener, n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let (mut keep, mut socks) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (c, s) = pair(l);
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            keep.push(c);
            socks.push(s);
        }
        (keep, socks)
    }

    fn by(out: &[Handoff], t: Tuple) -> &Result<Outcome, HandoffError> {
        &out.iter().find(|h| h.tuple == Some(t)).unwrap().result
    }

    /// Sockets that reached FIN_WAIT2 before one process() call go to the module in one adopt
    /// message, by fd with repair mode asked, and the handoffs report the entries it returned
    /// under the tuples it read.
    #[test]
    fn ready_sockets_share_one_adopt_message() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        let mut socks = Vec::new();
        for _ in 0..5 {
            let (c, s) = pair(&l);
            (&s).write_all(b"reply").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            socks.push(s);
            clients.push(c);
        }
        let mut q = queue(FakeSink::default(), 2000);
        let mut tuples = Vec::new();
        let mut fds = Vec::new();
        let mut ids = Vec::new();
        for s in socks {
            tuples.push(tuple_of(&s));
            fds.push(s.as_raw_fd());
            ids.push(q.push(s.into()).unwrap());
        }
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(q.len(), 5);
        let out = q.process();
        assert_eq!(out.len(), 5);
        assert!(q.is_empty());
        let sink = q.sink_mut().unwrap();
        assert_eq!(
            sink.fd_adopts,
            vec![(fds, true)],
            "one adopt message, by fd"
        );
        assert_eq!(sink.adopts[0], tuples);
        assert!(sink.dels.is_empty());
        for h in &out {
            let Ok(Outcome::HandedOff(e)) = h.result else {
                panic!("{:?}", h.result)
            };
            assert_eq!(Some(e.tuple), h.tuple);
            assert_eq!(
                tuples[ids.iter().position(|i| *i == h.id).unwrap()],
                e.tuple
            );
            assert_eq!(e.substate, Substate::FinWait2);
            if !repair {
                continue;
            }
            // The peer's view of the same connection: what it acknowledged is our snd_nxt,
            // what it sent is our rcv_nxt.
            let c = clients
                .iter()
                .find(|c| c.local_addr().unwrap() == e.tuple.remote)
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
        if repair {
            // Closed in repair mode: every client still sees its connection open, no RST.
            for c in &clients {
                assert_eq!(state(c), TcpState::CloseWait);
            }
        }
    }

    #[test]
    fn batches_are_capped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        q.set_max_batch(2);
        let (_keep, socks) = fin_wait2_pairs(&l, 5);
        for s in socks {
            q.push(s.into()).unwrap();
        }
        let out = q.process();
        assert!(out
            .iter()
            .all(|h| matches!(h.result, Ok(Outcome::HandedOff(_)))));
        let lens: Vec<usize> = q.sink_mut().unwrap().adopts.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![2, 2, 1]);
        assert_eq!(q.stats().adopt_messages, 3);
    }

    /// push() shuts down and returns; the queue waits for every FIN to be acknowledged (a
    /// socket sent while its FIN is not acknowledged yet, -EINPROGRESS, is sent again).
    #[test]
    fn push_does_not_wait() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 3000);
        assert_eq!(q.poll_timeout(), None);
        let mut keep = Vec::new();
        for _ in 0..3 {
            let (c, s) = pair(&l);
            q.push(s.into()).unwrap();
            keep.push(c);
        }
        assert_eq!(q.len(), 3);
        let t = q.poll_timeout().unwrap();
        assert!(t <= Duration::from_millis(3000) && t > Duration::from_millis(1000));
        let out = run(&mut q, 3);
        for h in &out {
            assert!(
                matches!(h.result, Ok(Outcome::HandedOff(e)) if h.tuple == Some(e.tuple)
                    && keep.iter().any(|c| c.local_addr().unwrap() == e.tuple.remote)),
                "{:?}",
                h.result
            );
        }
        assert_eq!(q.poll_timeout(), None);
    }

    /// The peer closes at once: its FIN reaches the socket before the adopt; the kernel says
    /// -EALREADY and the socket is closed normally, no entry.
    #[test]
    fn peer_fin_first_leaves_no_entry() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = queue(FakeSink::default(), 2000);
        let (c, s) = pair(&l);
        let t = tuple_of(&s);
        q.sink_mut().unwrap().known.insert(s.as_raw_fd(), t);
        q.push(s.into()).unwrap();
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
        assert!(q.sink_mut().unwrap().dels.is_empty());
        assert_eq!(q.stats().peer_fin_first, 1);
    }

    /// The peer's FIN reaches the socket while the module looks at it (here: before): -EALREADY,
    /// nothing added, nothing to delete, the socket closed normally (Linux keeps the tuple).
    #[test]
    fn peer_fin_seen_by_the_kernel_is_already() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        s.shutdown(Shutdown::Write).unwrap();
        wait_state(&s, TcpState::FinWait2);
        let t = tuple_of(&s);
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
        q.sink_mut().unwrap().known.insert(s.as_raw_fd(), t);
        q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        assert!(
            matches!(out[0].result, Ok(Outcome::PeerFinFirst(x)) if x == t),
            "{:?}",
            out[0].result
        );
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.fd_adopts.len(), 1);
        assert!(sink.dels.is_empty());
    }

    /// A socket bound to a device (here SO_BINDTOIFINDEX to lo) is sent by its fd like any
    /// other; its entry carries the device the kernel read. When the answer is lost, the
    /// entries that may exist are deleted by the key read from each socket, its device
    /// included.
    #[test]
    fn bound_sockets_are_adopted_and_deleted_by_their_device() {
        let lo = lo_index();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let bound_pair = || {
            let (c, s) = pair(&l);
            setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, SO_BINDTOIFINDEX, lo as i32).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            wait_state(&s, TcpState::FinWait2);
            (c, s)
        };
        let (_c, s) = bound_pair();
        let (_keep, mut s2) = fin_wait2_pairs(&l, 1);
        let s2 = s2.remove(0);
        let (t, t2) = (tuple_of(&s), tuple_of(&s2));
        let mut q = queue(FakeSink::default(), 2000);
        q.push(s.into()).unwrap();
        q.push(s2.into()).unwrap();
        let out = run(&mut q, 2);
        assert!(matches!(by(&out, t), Ok(Outcome::HandedOff(e)) if e.key() == Key::new(t, lo)));
        assert!(matches!(by(&out, t2), Ok(Outcome::HandedOff(e)) if e.key() == Key::new(t2, 0)));

        let (_c, s) = bound_pair();
        let (_keep2, mut s2) = fin_wait2_pairs(&l, 1);
        let s2 = s2.remove(0);
        let (t, t2) = (tuple_of(&s), tuple_of(&s2));
        let mut q = queue(
            FakeSink {
                fail: true,
                ..Default::default()
            },
            2000,
        );
        q.push(s.into()).unwrap();
        q.push(s2.into()).unwrap();
        let out = run(&mut q, 2);
        assert!(out.iter().all(|h| h.result.is_err()));
        let mut keys = q.sink_mut().unwrap().del_keys.clone();
        keys.sort_by_key(|k| k.bound_ifindex);
        assert_eq!(keys, vec![Key::new(t2, 0), Key::new(t, lo)]);
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
        // The kernel found the data (-ENOTEMPTY, after -EINPROGRESS tries): the socket given back.
        assert!(!q.sink_mut().unwrap().fd_adopts.is_empty());
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
            if h.tuple == Some(refused) {
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
        // The answer was not understood: entries may exist, they are deleted again (by the
        // tuples read from the sockets), and the failure names them.
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
        let by = |t: &Tuple| by(&out, *t);
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
        assert!(matches!(by(&tuples[5]), Ok(Outcome::HandedOff(e)) if e.tuple == tuples[5]));
        let sink = q.sink_mut().unwrap();
        assert_eq!(sink.adopts.len(), 1);
        // The kernel put the taken one in repair mode: nothing to delete.
        assert!(sink.dels.is_empty());
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

    #[test]
    fn dry_run_builds_entries_and_closes_normally() {
        let repair = can_repair();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut q = HandoffQueue::dry_run(Duration::from_secs(2)).unwrap();
        let (c, s) = pair(&l);
        let t = tuple_of(&s);
        q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        assert_eq!(out[0].tuple, Some(t));
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
        // Not connected: shutdown() fails, the reason comes from the userspace checks.
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = q.push(u.into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotTcp(_)), "{err}");
        assert!(err.socket.is_some());
        // Not a socket: epoll_ctl() fails.
        let f = std::fs::File::open("/dev/null").unwrap();
        let err = q.push(f.into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::NotTcp(_)), "{err}");
        assert!(err.socket.is_some());
        assert!(q.is_empty());
        assert!(q.process().is_empty());
        assert!(q.drain().unwrap().is_empty());
        assert_eq!(q.stats(), QueueStats::default());
    }

    /// The peer closed first (CLOSE_WAIT): push() does not look; our shutdown sends our FIN and
    /// the kernel's -EALREADY closes the socket normally (the peer keeps the TIME_WAIT).
    #[test]
    fn close_wait_is_reported_peer_fin_first() {
        let mut q = queue(FakeSink::default(), 2000);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, s) = pair(&l);
        let t = tuple_of(&s);
        drop(c);
        wait_state(&s, TcpState::CloseWait);
        q.sink_mut().unwrap().known.insert(s.as_raw_fd(), t);
        q.push(s.into()).unwrap();
        let out = run(&mut q, 1);
        assert!(
            matches!(out[0].result, Ok(Outcome::PeerFinFirst(x)) if x == t),
            "{:?}",
            out[0].result
        );
        assert!(q.sink_mut().unwrap().dels.is_empty());
    }

    /// A dry run still checks at push, as handoff() does: a listening socket, CLOSE_WAIT.
    #[test]
    fn dry_run_push_checks_the_socket() {
        let mut q = HandoffQueue::dry_run(Duration::from_secs(2)).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = q.push(l.try_clone().unwrap().into()).unwrap_err();
        assert!(matches!(err.kind, HandoffErrorKind::Listening), "{err}");
        assert!(err.socket.is_some());
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
