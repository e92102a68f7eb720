// SPDX-License-Identifier: GPL-2.0

//! A handoff with the wait in the kernel (adopt with `wait`, docs/decisions.md D46).
//!
//! A [`HandoffBatch`] collects the sockets a server is done with ([`HandoffBatch::push`]:
//! `shutdown(SHUT_WR)`, so our FIN leaves at once) and hands them to the module in one netlink
//! message per [`MAX_ADOPT`] ([`HandoffBatch::flush`], whenever the server likes: every 16
//! sockets, or before its event loop sleeps). The module keeps each socket open and adopts it in
//! repair mode once our FIN is acknowledged (during a later flush, in the caller's context, or
//! from a worker 250 ms later); the batch closes its fd at once, which sends nothing. So a
//! server pays a `shutdown()` and a `close()` per connection, plus a share of one netlink round
//! trip, and never waits for the peer (a Linux peer delays its ACK of our FIN by 40 ms or more).
//!
//! Nothing is lost either way: a socket the module cannot adopt when the time comes (the
//! peer's FIN or data first, a reset, our FIN not acknowledged within `tcp_fin_timeout`, the
//! module unloading) is closed as `close()` would have closed it, and counted in the module's
//! `handoffs-returned`. A socket refused at once comes back to the caller with its errno
//! ([`Refused`]): -ENOTEMPTY means data the server has not read (dropping the fd then resets
//! the connection, as `close()` does, RFC 2525 §2.17).
//!
//! An epoll server removes the fd from its epoll set before the push: epoll keeps watching a
//! file that is still open, and the module keeps it open after the fd is closed.
//!
//! [`HandoffQueue`](crate::HandoffQueue) does the wait in userspace instead (epoll on every
//! socket, then adopt by fd), and the blocking [`close_with_handoff`](crate::close_with_handoff)
//! suits scripts.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::client::{Client, FdWaitResult, MAX_ADOPT};
use crate::entry::Tuple;
use crate::error::Error;

/// Where a batch goes: the module's [`Client`], or anything else in tests.
pub trait WaitSink {
    /// Adopt with `wait` for each of `fds` (at most [`MAX_ADOPT`]): one result per fd, in order.
    fn handoff_fds(&mut self, fds: &[RawFd]) -> Result<Vec<FdWaitResult>, Error>;
}

impl WaitSink for Client {
    fn handoff_fds(&mut self, fds: &[RawFd]) -> Result<Vec<FdWaitResult>, Error> {
        Client::handoff_fds(self, fds)
    }
}

/// A socket the module refused at once, given back to the caller.
#[derive(Debug)]
pub struct Refused {
    /// The socket, open, shut down for writing by `push` (the peer has seen our FIN): dropping
    /// it closes it as `close()` does.
    pub fd: OwnedFd,
    /// Its tuple, when the kernel found a connection behind the fd.
    pub tuple: Option<Tuple>,
    /// The negative errno (`adopt`'s results, spec/rust_timewait.yaml).
    pub errno: i32,
}

/// What one [`HandoffBatch::flush`] gives back.
#[derive(Debug, Default)]
pub struct Flushed {
    /// The sockets the module refused, open.
    pub refused: Vec<Refused>,
    /// The first message refused as a whole (its sockets closed normally).
    pub error: Option<Error>,
}

/// What a batch has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Netlink messages sent.
    pub messages: u64,
    /// Sockets the module took.
    pub taken: u64,
    /// Sockets refused at once (given back).
    pub refused: u64,
    /// Sockets closed normally because their message failed as a whole.
    pub failed: u64,
    /// Time spent in the netlink round trips.
    pub netlink: Duration,
}

/// Sockets on their way to the module (see the module documentation).
pub struct HandoffBatch<S: WaitSink = Client> {
    sink: S,
    pending: Vec<OwnedFd>,
    stats: BatchStats,
}

impl HandoffBatch<Client> {
    /// A batch sending to the module (its netlink family must be there).
    pub fn open() -> Result<Self, Error> {
        Ok(Self::with_sink(Client::open()?))
    }
}

impl<S: WaitSink> HandoffBatch<S> {
    /// A batch sending to `sink`.
    pub fn with_sink(sink: S) -> Self {
        Self {
            sink,
            pending: Vec::new(),
            stats: BatchStats::default(),
        }
    }

    /// Queues a socket the caller is done with (after writing its last reply) and shuts it
    /// down for writing: our FIN leaves now, so the peer does not wait for the flush, and the
    /// caller may flush as seldom as it likes. One system call; a socket that cannot be shut
    /// down (not connected, not a socket) is queued anyway, and the flush says why the module
    /// refuses it.
    pub fn push(&mut self, fd: OwnedFd) {
        // SAFETY: shutdown(2) on a descriptor we own; its failure is the module's to report.
        unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
        self.pending.push(fd);
    }

    /// Sockets pushed and not yet flushed.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// What the batch has done so far.
    pub fn stats(&self) -> BatchStats {
        self.stats
    }

    /// Hands every pushed socket to the module, [`MAX_ADOPT`] per message, and closes each fd
    /// the module took. The sockets refused come back, open, whatever happened to the other
    /// messages; `error` is the first message that failed as a whole (no module, no permission,
    /// an answer that could not be read, or one with a result per fd missing): its sockets are
    /// closed normally (any the module took are its own), and the other messages are still sent.
    pub fn flush(&mut self) -> Flushed {
        let mut out = Flushed::default();
        let pending = std::mem::take(&mut self.pending);
        let mut fds = pending.into_iter().peekable();
        while fds.peek().is_some() {
            let chunk: Vec<OwnedFd> = fds.by_ref().take(MAX_ADOPT).collect();
            let raw: Vec<RawFd> = chunk.iter().map(AsRawFd::as_raw_fd).collect();
            let start = Instant::now();
            let answer = self.sink.handoff_fds(&raw).and_then(|results| {
                if results.len() == chunk.len() {
                    Ok(results)
                } else {
                    Err(Error::Protocol(format!(
                        "adopt: {} results for {} fds",
                        results.len(),
                        chunk.len()
                    )))
                }
            });
            self.stats.netlink += start.elapsed();
            self.stats.messages += 1;
            match answer {
                Ok(results) => {
                    for (fd, r) in chunk.into_iter().zip(results) {
                        if r.result == 0 {
                            // The module holds the file: this close sends nothing.
                            drop(fd);
                            self.stats.taken += 1;
                        } else {
                            self.stats.refused += 1;
                            out.refused.push(Refused {
                                fd,
                                tuple: r.tuple,
                                errno: r.result,
                            });
                        }
                    }
                }
                Err(e) => {
                    self.stats.failed += chunk.len() as u64;
                    drop(chunk);
                    out.error.get_or_insert(e);
                }
            }
        }
        out
    }
}

impl<S: WaitSink> Drop for HandoffBatch<S> {
    /// Sockets never flushed are closed normally (Linux then keeps their TIME_WAIT).
    fn drop(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests;
