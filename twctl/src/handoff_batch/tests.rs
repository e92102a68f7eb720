// SPDX-License-Identifier: GPL-2.0

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;

use super::*;

/// Answers each fd by the result `answer` gives its position in the whole run; records the
/// messages' sizes.
struct Fake {
    answer: fn(usize) -> i32,
    seen: usize,
    sizes: Vec<usize>,
    fail_message: Option<usize>,
}

impl Fake {
    fn new(answer: fn(usize) -> i32) -> Self {
        Fake {
            answer,
            seen: 0,
            sizes: Vec::new(),
            fail_message: None,
        }
    }
}

impl WaitSink for Fake {
    fn handoff_fds(&mut self, fds: &[RawFd]) -> Result<Vec<FdWaitResult>, Error> {
        assert!(fds.len() <= MAX_ADOPT, "a message of {} fds", fds.len());
        self.sizes.push(fds.len());
        if self.fail_message == Some(self.sizes.len() - 1) {
            self.seen += fds.len();
            return Err(Error::Protocol("adopt: refused".into()));
        }
        let out = (0..fds.len())
            .map(|i| FdWaitResult {
                tuple: None,
                result: (self.answer)(self.seen + i),
            })
            .collect();
        self.seen += fds.len();
        Ok(out)
    }
}

/// `n` connected pairs: the ends pushed, and the peers that tell whether an end was closed.
fn pairs(n: usize) -> (Vec<OwnedFd>, Vec<UnixStream>) {
    (0..n)
        .map(|_| {
            let (a, b) = UnixStream::pair().unwrap();
            b.set_nonblocking(true).unwrap();
            (OwnedFd::from(a), b)
        })
        .unzip()
}

/// Whether the end paired with `peer` is closed: a write fails (shut down for writing only,
/// it would still take the byte).
fn closed(peer: &mut UnixStream) -> bool {
    match peer.write(b"x") {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::BrokenPipe => true,
        other => panic!("unexpected write: {other:?}"),
    }
}

/// Whether the end paired with `peer` was shut down for writing: the peer reads end of file.
fn shut_down(peer: &mut UnixStream) -> bool {
    match peer.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        other => panic!("unexpected read: {other:?}"),
    }
}

#[test]
fn taken_sockets_are_closed_and_refused_ones_come_back_open() {
    let (ends, mut peers) = pairs(4);
    let mut b = HandoffBatch::with_sink(Fake::new(|i| if i == 2 { -39 } else { 0 }));
    for fd in ends {
        b.push(fd);
    }
    assert_eq!(b.len(), 4);
    assert!(
        peers.iter_mut().all(shut_down),
        "push shuts each socket down for writing"
    );
    assert!(!peers.iter_mut().any(closed), "and closes none");
    let out = b.flush();
    assert!(out.error.is_none());
    let refused = out.refused;
    assert!(b.is_empty());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].errno, -39);
    assert!(closed(&mut peers[0]) && closed(&mut peers[1]) && closed(&mut peers[3]));
    assert!(
        !closed(&mut peers[2]),
        "a refused socket is the caller's, open"
    );
    drop(refused);
    assert!(closed(&mut peers[2]));
    let s = b.stats();
    assert_eq!((s.messages, s.taken, s.refused, s.failed), (1, 3, 1, 0));
}

#[test]
fn a_flush_sends_at_most_max_adopt_per_message() {
    let (ends, _peers) = pairs(MAX_ADOPT + 44);
    let mut b = HandoffBatch::with_sink(Fake::new(|_| 0));
    for fd in ends {
        b.push(fd);
    }
    let out = b.flush();
    assert!(out.error.is_none() && out.refused.is_empty());
    assert_eq!(b.sink.sizes, vec![MAX_ADOPT, 44]);
    assert_eq!(b.stats().taken, MAX_ADOPT as u64 + 44);
    // Nothing pending: no message.
    let out = b.flush();
    assert!(out.error.is_none() && out.refused.is_empty());
    assert_eq!(b.sink.sizes.len(), 2);
}

#[test]
fn a_failed_message_closes_its_sockets_and_the_others_still_go() {
    let (ends, mut peers) = pairs(MAX_ADOPT + 2);
    let mut fake = Fake::new(|i| if i == MAX_ADOPT + 1 { -28 } else { 0 });
    fake.fail_message = Some(0);
    let mut b = HandoffBatch::with_sink(fake);
    for fd in ends {
        b.push(fd);
    }
    let out = b.flush();
    let err = out.error.expect("the first message failed");
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(b.sink.sizes, vec![MAX_ADOPT, 2]);
    assert!(peers.iter_mut().take(MAX_ADOPT + 1).all(closed));
    // The refusal of the message that went through still comes back, open.
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].errno, -28);
    assert!(!closed(&mut peers[MAX_ADOPT + 1]));
    let s = b.stats();
    assert_eq!(
        (s.messages, s.taken, s.refused, s.failed),
        (2, 1, 1, MAX_ADOPT as u64)
    );
}

#[test]
fn a_sink_answering_too_few_fails_that_message() {
    struct Short;
    impl WaitSink for Short {
        fn handoff_fds(&mut self, fds: &[RawFd]) -> Result<Vec<FdWaitResult>, Error> {
            Ok(vec![
                FdWaitResult {
                    tuple: None,
                    result: 0,
                };
                fds.len() - 1
            ])
        }
    }
    let (ends, mut peers) = pairs(3);
    let mut b = HandoffBatch::with_sink(Short);
    for fd in ends {
        b.push(fd);
    }
    let out = b.flush();
    assert!(out
        .error
        .is_some_and(|e| e.to_string().contains("2 results for 3 fds")));
    assert!(peers.iter_mut().all(closed), "its sockets closed normally");
    assert_eq!((b.stats().taken, b.stats().failed), (0, 3));
}

#[test]
fn dropping_a_batch_closes_what_it_holds() {
    let (ends, mut peers) = pairs(2);
    let mut b = HandoffBatch::with_sink(Fake::new(|_| 0));
    for fd in ends {
        b.push(fd);
    }
    drop(b);
    assert!(peers.iter_mut().all(closed));
}
