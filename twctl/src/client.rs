// SPDX-License-Identifier: GPL-2.0

//! The netlink connection to the module (the only part that opens a netlink socket).

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{parse_u16, DecodeError, NlasIterator, ParseableParametrized};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::entry::{Entry, Key};
use crate::error::Error;
use crate::proto::{self, Extack, FdAdopt, RawGenl, Refusal, Reply, Stats, TwMessage, FAMILY_NAME};
pub use crate::proto::{AdoptResult, FdAdoptResult, FdWaitResult};

/// The most tuples the module takes in one adopt message (`RTW_ADOPT_BATCH_MAX`: each answer
/// carries a whole entry, and the reply must fit a socket's default receive buffer).
pub const MAX_ADOPT: usize = 256;

/// How long a request waits for its answer: a lost answer must not hang a server's loop.
const ANSWER_TIMEOUT: libc::timeval = libc::timeval { tv_sec: 10, tv_usec: 0 };

/// `GENL_ID_CTRL`, the controller's fixed family id.
const GENL_ID_CTRL: u16 = 16;
/// `CTRL_ATTR_FAMILY_ID`.
const CTRL_ATTR_FAMILY_ID: u16 = 1;

/// A netlink connection to the `rust_timewait` family of the current network namespace.
pub struct Client {
    sock: Socket,
    family_id: u16,
    seq: u32,
    warnings: Vec<String>,
    /// Where datagrams are received: one read each, however large the kernel's answer.
    recv_buf: Vec<u8>,
    /// An exchange did not finish (an error, a timeout): something of it may still be queued.
    dirty: bool,
}

/// The largest datagram the module sends (an adopt of [`MAX_ADOPT`] with every entry's state
/// is about 55 KiB; a refusal echoes no request, as the socket caps its ACKs), with room.
const RECV_BUF: usize = 128 * 1024;

/// How a request is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Messages, then the ACK (with any warning the kernel attached).
    Acked,
    /// One reply message, no ACK asked for (an error still comes as one): one datagram fewer.
    Reply,
    /// A dump: messages until DONE.
    Dump,
}

/// The outcome of one entry of a (batched) add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The module took the entry.
    Taken,
    /// The module refused this entry (negative errno from its `result`): `-EEXIST` already
    /// guarded, `-EADDRNOTAVAIL` refused by nolocaltimewait, or another errno.
    Refused(i32),
    /// The batch carrying this entry was refused as a whole (see [`AddReport::error`]).
    BatchRefused,
    /// Not sent: an earlier batch failed.
    NotSent,
}

impl AddOutcome {
    /// From an entry's `result` attribute.
    pub fn from_result(r: i32) -> Self {
        if r == 0 {
            AddOutcome::Taken
        } else {
            AddOutcome::Refused(r)
        }
    }

    /// A short word for scripts and JSON.
    pub fn word(&self) -> String {
        match self {
            AddOutcome::Taken => "taken".into(),
            AddOutcome::Refused(e) if *e == -libc::EEXIST => "exists".into(),
            AddOutcome::Refused(e) if *e == -libc::EADDRNOTAVAIL => "nolocal".into(),
            AddOutcome::Refused(e) => match proto::errno_name(-e) {
                Some(n) => n.to_lowercase(),
                None => format!("errno-{}", -e),
            },
            AddOutcome::BatchRefused => "batch-refused".into(),
            AddOutcome::NotSent => "not-sent".into(),
        }
    }

    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            AddOutcome::Taken => "taken".into(),
            AddOutcome::Refused(e) if *e == -libc::EEXIST => {
                "refused: the tuple is already guarded (EEXIST; --replace replaces it)".into()
            }
            AddOutcome::Refused(e) if *e == -libc::EADDRNOTAVAIL => {
                "refused: the peer is a local address and nolocaltimewait is set (EADDRNOTAVAIL)"
                    .into()
            }
            AddOutcome::Refused(e) => format!("refused: {}", proto::strerror(-e)),
            AddOutcome::BatchRefused => "refused with its whole batch".into(),
            AddOutcome::NotSent => "not sent (an earlier batch failed)".into(),
        }
    }
}

/// The report of a batched add: one outcome per entry, and the error that stopped it.
#[derive(Debug)]
pub struct AddReport {
    /// One per entry, in order.
    pub outcomes: Vec<AddOutcome>,
    /// The error that refused a whole batch (its entries are [`AddOutcome::BatchRefused`],
    /// later ones [`AddOutcome::NotSent`]), with the batch's first entry index.
    pub error: Option<(usize, Error)>,
}

impl AddReport {
    /// How many entries were taken.
    pub fn taken(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| **o == AddOutcome::Taken)
            .count()
    }

    /// Everything was taken.
    pub fn all_taken(&self) -> bool {
        self.error.is_none() && self.taken() == self.outcomes.len()
    }
}

/// Splits `n` entries into batches of at most `size` (at least 1): (start, end) pairs.
pub fn batches(n: usize, size: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    (0..n)
        .step_by(size)
        .map(|s| (s, (s + size).min(n)))
        .collect()
}

fn sock_err(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |err| Error::Socket { what, err }
}

impl Client {
    /// Opens a generic netlink socket and looks the family up. A missing family (ENOENT from
    /// the controller) is [`Error::ModuleNotLoaded`].
    pub fn open() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(sock_err("socket"))?;
        sock.bind_auto().map_err(sock_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(sock_err("connect"))?;
        // Extended ACKs carry the kernel's messages; capped ACKs keep errors short.
        // Both are best effort (old kernels lack them).
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        // SAFETY: a valid socket, and a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&ANSWER_TIMEOUT as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sock_err("setsockopt(SO_RCVTIMEO)")(std::io::Error::last_os_error()));
        }
        let mut c = Client {
            sock,
            family_id: 0,
            seq: 0,
            warnings: Vec::new(),
            recv_buf: vec![0; RECV_BUF],
            dirty: false,
        };
        c.family_id = c.resolve_family()?;
        // The controller's answer was read to its ACK.
        c.dirty = false;
        Ok(c)
    }

    /// The family id the controller assigned.
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// Extended-ACK messages the kernel attached to successful requests.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends a request; an exchange before it that did not finish is drained first. The
    /// caller clears `dirty` once it has read the whole answer.
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.dirty {
            self.drain();
        }
        self.dirty = true;
        self.sock.send(bytes, 0).map_err(sock_err("send"))?;
        Ok(())
    }

    /// Discards whatever an earlier request left unread (an answer after its error, e.g.
    /// ENOBUFS when the socket overran) and the error itself, so the next request reads its
    /// own answer rather than wait behind a stale one.
    fn drain(&self) {
        loop {
            // SAFETY: a zero-length read into no buffer; MSG_TRUNC discards the datagram.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                // EAGAIN: nothing left; a pending socket error (ENOBUFS) is consumed by this
                // read and the next one continues.
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EAGAIN) | None => return,
                    Some(libc::EINTR | libc::ENOBUFS) => continue,
                    Some(_) => return,
                }
            }
        }
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let seq = self.next_seq();
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_string())],
        };
        let req = proto::serialize_genl(
            GenlMessage::from_payload(ctrl),
            GENL_ID_CTRL,
            seq,
            proto::DO_FLAGS,
        );
        self.send(&req)?;
        let mut id = None;
        loop {
            for r in self.recv_replies::<RawGenl>(seq, "controller")? {
                match r {
                    Reply::Message { msg, .. } => {
                        for nla in NlasIterator::new(&msg.attrs[..]).flatten() {
                            if nla.kind() == CTRL_ATTR_FAMILY_ID {
                                id = parse_u16(nla.value()).ok();
                            }
                        }
                    }
                    Reply::Ack { .. } => {
                        return id.ok_or_else(|| {
                            Error::Protocol("the controller's reply has no family id".into())
                        });
                    }
                    Reply::Error {
                        errno: libc::ENOENT,
                        ..
                    } => return Err(Error::ModuleNotLoaded),
                    Reply::Error { errno, extack, .. } => {
                        return Err(Error::Refused {
                            op: "family lookup",
                            refusal: Box::new(Refusal::new(errno, &extack, &req)),
                        });
                    }
                    Reply::Done { .. } => {}
                }
            }
        }
    }

    /// Receives one datagram and decodes its replies to request `seq`, skipping any other
    /// (left over from an earlier request); `what` names the request in a decoding error.
    fn recv_replies<M>(&mut self, seq: u32, what: &str) -> Result<Vec<Reply<M>>, Error>
    where
        M: ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
    {
        // SAFETY: recv_buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                self.recv_buf.as_mut_ptr().cast(),
                self.recv_buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            return Err(sock_err("receive")(std::io::Error::last_os_error()));
        }
        // MSG_TRUNC: the datagram's whole length, even where it did not fit.
        let n = n as usize;
        if n > self.recv_buf.len() {
            return Err(Error::Protocol(format!(
                "{what}: an answer of {n} bytes, more than the {} this client reads",
                self.recv_buf.len()
            )));
        }
        let replies = proto::parse_datagram::<M>(&self.recv_buf[..n])
            .map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
        Ok(replies.into_iter().filter(|r| r.seq() == seq).collect())
    }

    /// Sends one request and collects its reply messages until the ACK (do) or DONE (dump).
    fn transact(
        &mut self,
        op: &'static str,
        msg: TwMessage,
        answer: Answer,
    ) -> Result<Vec<TwMessage>, Error> {
        let out = self.exchange(op, msg, answer);
        // A whole answer read, or the kernel's error: nothing of this exchange is left queued.
        if matches!(out, Ok(_) | Err(Error::Refused { .. } | Error::PermissionDenied { .. })) {
            self.dirty = false;
        }
        out
    }

    fn exchange(
        &mut self,
        op: &'static str,
        msg: TwMessage,
        answer: Answer,
    ) -> Result<Vec<TwMessage>, Error> {
        let seq = self.next_seq();
        let flags = match answer {
            Answer::Acked => proto::DO_FLAGS,
            Answer::Reply => proto::DO_REPLY_FLAGS,
            Answer::Dump => proto::DUMP_FLAGS,
        };
        let dump = answer == Answer::Dump;
        let req = proto::serialize_request(msg, self.family_id, seq, flags);
        self.send(&req)?;
        let mut out = Vec::new();
        let refuse = |errno: i32, extack: &Extack| {
            let refusal = Box::new(Refusal::new(errno, extack, &req));
            if errno == libc::EPERM {
                Error::PermissionDenied { op, refusal }
            } else {
                Error::Refused { op, refusal }
            }
        };
        loop {
            for r in self.recv_replies::<TwMessage>(seq, op)? {
                match r {
                    Reply::Message { msg, .. } if answer == Answer::Reply => return Ok(vec![msg]),
                    Reply::Message { msg, .. } => out.push(msg),
                    Reply::Ack { extack, .. } => {
                        if let Some(m) = extack.msg {
                            self.warnings.push(m);
                        }
                        if !dump {
                            return Ok(out);
                        }
                    }
                    Reply::Error { errno, extack, .. } => return Err(refuse(errno, &extack)),
                    Reply::Done { errno, extack, .. } => {
                        if errno != 0 {
                            return Err(refuse(errno, &extack));
                        }
                        if let Some(m) = extack.msg {
                            self.warnings.push(m);
                        }
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// Adds entries in one message; one result per entry (0 taken, or a negative errno).
    pub fn add(&mut self, entries: &[Entry], replace: bool) -> Result<Vec<i32>, Error> {
        let replies = self.transact("add", proto::add_message(entries, replace), Answer::Acked)?;
        let reply = replies
            .first()
            .ok_or_else(|| Error::Protocol("add: no reply with the entries' results".into()))?;
        proto::add_results(reply, entries).map_err(|e| Error::Protocol(format!("add: {e}")))
    }

    /// Adds entries in batches of `batch`; stops at the first batch the kernel refuses as a
    /// whole. Every entry gets an outcome, so the caller can say exactly what was taken.
    pub fn add_batched(&mut self, entries: &[Entry], replace: bool, batch: usize) -> AddReport {
        let mut outcomes = vec![AddOutcome::NotSent; entries.len()];
        for (start, end) in batches(entries.len(), batch) {
            match self.add(&entries[start..end], replace) {
                Ok(results) => {
                    for (o, r) in outcomes[start..end].iter_mut().zip(results) {
                        *o = AddOutcome::from_result(r);
                    }
                }
                Err(e) => {
                    // A protocol error leaves the batch's fate unknown; a refusal means the
                    // module took none of it (it validates a message before applying it).
                    for o in &mut outcomes[start..end] {
                        *o = AddOutcome::BatchRefused;
                    }
                    return AddReport {
                        outcomes,
                        error: Some((start, e)),
                    };
                }
            }
        }
        AddReport {
            outcomes,
            error: None,
        }
    }

    /// Takes over the live connections of these tuples (FIN_WAIT2 sockets of this network
    /// namespace) in one message, at most [`MAX_ADOPT`] tuples: one result per tuple, in order,
    /// with the entry the module added for each one taken. The sockets are not closed: the
    /// caller closes each taken one in TCP_REPAIR mode (see [`crate::handoff`]). An `Err` is a
    /// refusal of the whole message (or an answer that could not be read).
    ///
    /// Each one is a [`Tuple`] or a [`Key`]: a socket bound to a device (SO_BINDTODEVICE, or to
    /// a VRF) is only found with its device as the key's `bound_ifindex` (the handoff reads it
    /// with `SO_BINDTOIFINDEX`). A `bound_ifindex` naming no device of the netns refuses the
    /// message with ENODEV.
    pub fn adopt<K: Copy + Into<Key>>(&mut self, keys: &[K]) -> Result<Vec<AdoptResult>, Error> {
        let replies = self.transact("adopt", proto::adopt_message(keys), Answer::Reply)?;
        let reply = replies
            .first()
            .ok_or_else(|| Error::Protocol("adopt: no reply with the tuples' results".into()))?;
        proto::adopt_results(reply, keys).map_err(|e| Error::Protocol(format!("adopt: {e}")))
    }

    /// Takes over the live connections of these sockets of the calling process (file
    /// descriptors of connected TCP sockets, in this network namespace) in one message, at most
    /// [`MAX_ADOPT`]: the kernel resolves each fd in the caller's context, checks its socket
    /// under its lock as [`Client::adopt`] does and reads its tuple; no tuple, no bound device
    /// is sent. One result per fd, in order, with the tuple the kernel read (when it found a
    /// socket) and the entry of each one taken; beyond [`Client::adopt`]'s results, -EBADF (fd
    /// not open), -ENOTSOCK (not a TCP socket over IPv4/IPv6), -ENOENT (a socket of another
    /// netns).
    ///
    /// `repair`: the kernel puts each socket it took in TCP_REPAIR mode itself, after checking
    /// it once more once its backlog ran; the caller then just closes it (nothing is sent, no
    /// TIME_WAIT), no `TCP_REPAIR` nor state check of its own. Without it, the caller closes
    /// each taken socket in repair mode as after [`Client::adopt`]. An `Err` is a refusal of the
    /// whole message (or an answer that could not be read: entries may exist then, and taken
    /// sockets may be in repair mode).
    pub fn adopt_fds(&mut self, fds: &[RawFd], repair: bool) -> Result<Vec<FdAdoptResult>, Error> {
        let mode = if repair { FdAdopt::Repair } else { FdAdopt::Now };
        let reply = self.adopt_fds_reply(fds, mode)?;
        proto::adopt_fd_results(&reply, fds).map_err(|e| Error::Protocol(format!("adopt: {e}")))
    }

    /// Hands the sockets behind `fds` (at most [`MAX_ADOPT`]) to the module, which waits for
    /// each one's FIN_WAIT2 itself (adopt with `wait`): it shuts each one down for writing
    /// unless the caller has, keeps it open, and adopts it in repair mode when our FIN is
    /// acknowledged, or closes it as `close()` would when it cannot. One result per fd, in
    /// order: 0 the module holds the socket (close the fd now: that sends nothing), or a
    /// refusal as [`Client::adopt_fds`] gives, plus -EEXIST (handed over already) and -ENOSPC
    /// (as many waiting as the table holds). An `Err` is a refusal of the whole message (or an
    /// answer that could not be read: the module may hold some of the sockets).
    pub fn handoff_fds(&mut self, fds: &[RawFd]) -> Result<Vec<FdWaitResult>, Error> {
        let reply = self.adopt_fds_reply(fds, FdAdopt::Wait)?;
        proto::adopt_fd_wait_results(&reply, fds)
            .map_err(|e| Error::Protocol(format!("adopt: {e}")))
    }

    fn adopt_fds_reply(&mut self, fds: &[RawFd], mode: FdAdopt) -> Result<TwMessage, Error> {
        let mut replies = self.transact("adopt", proto::adopt_fd_message(fds, mode), Answer::Reply)?;
        if replies.is_empty() {
            return Err(Error::Protocol("adopt: no reply with the fds' results".into()));
        }
        Ok(replies.swap_remove(0))
    }

    /// Deletes the entry guarding a key (ENOENT when there is none): a `&Tuple` (the default
    /// VRF), an `&Entry` (its tuple in the VRF of its `bound_ifindex`, as an adopted entry is
    /// deleted again) or a [`Key`]. ENODEV: the `bound_ifindex` names no device of the netns.
    pub fn del(&mut self, k: impl Into<Key>) -> Result<(), Error> {
        self.transact("del", proto::del_message(k), Answer::Acked)
            .map(|_| ())
    }

    /// Gets the entry guarding a key (ENOENT when there is none), as [`Client::del`] names it.
    pub fn get(&mut self, k: impl Into<Key>) -> Result<Entry, Error> {
        let replies = self.transact("get", proto::get_message(k), Answer::Acked)?;
        let e = replies
            .iter()
            .flat_map(proto::reply_entries)
            .next()
            .ok_or_else(|| Error::Protocol("get: reply without an entry".into()))?;
        e.entry().map_err(|e| Error::Protocol(format!("get: {e}")))
    }

    /// Every entry of the netns (a dump).
    pub fn list(&mut self) -> Result<Vec<Entry>, Error> {
        let replies = self.transact("list", proto::dump_message(), Answer::Dump)?;
        replies
            .iter()
            .flat_map(proto::reply_entries)
            .map(|r| r.entry().map_err(|e| Error::Protocol(format!("list: {e}"))))
            .collect()
    }

    /// Deletes every entry of the netns; returns how many.
    pub fn flush(&mut self) -> Result<u32, Error> {
        self.transact_one("flush", proto::flush_message(), proto::flushed_count)
    }

    /// The netns's counters.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        self.transact_one("stats", proto::stats_message(), Stats::from_message)
    }

    /// A `do` request answered by one message, decoded by `decode`.
    fn transact_one<T>(
        &mut self,
        op: &'static str,
        msg: TwMessage,
        decode: impl FnOnce(&TwMessage) -> Result<T, DecodeError>,
    ) -> Result<T, Error> {
        let replies = self.transact(op, msg, Answer::Acked)?;
        let r = replies
            .first()
            .ok_or_else(|| Error::Protocol(format!("{op}: no reply")))?;
        decode(r).map_err(|e| Error::Protocol(format!("{op}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_split() {
        assert_eq!(batches(0, 32), vec![]);
        assert_eq!(batches(5, 2), vec![(0, 2), (2, 4), (4, 5)]);
        assert_eq!(batches(4, 4), vec![(0, 4)]);
        assert_eq!(batches(3, 0), vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn outcome_words() {
        assert_eq!(AddOutcome::from_result(0), AddOutcome::Taken);
        assert_eq!(AddOutcome::from_result(-libc::EEXIST).word(), "exists");
        assert_eq!(
            AddOutcome::from_result(-libc::EADDRNOTAVAIL).word(),
            "nolocal"
        );
        assert_eq!(AddOutcome::from_result(-libc::EINVAL).word(), "einval");
        assert_eq!(AddOutcome::from_result(-4095).word(), "errno-4095");
        assert!(AddOutcome::Refused(-libc::EEXIST)
            .describe()
            .contains("--replace"));
    }

    #[test]
    fn report_counts() {
        let r = AddReport {
            outcomes: vec![
                AddOutcome::Taken,
                AddOutcome::Refused(-17),
                AddOutcome::Taken,
            ],
            error: None,
        };
        assert_eq!(r.taken(), 2);
        assert!(!r.all_taken());
        let r = AddReport {
            outcomes: vec![AddOutcome::Taken],
            error: None,
        };
        assert!(r.all_taken());
    }
}
