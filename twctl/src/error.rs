// SPDX-License-Identifier: GPL-2.0

//! Errors of the netlink side and the exit codes a shell script can rely on.

use std::fmt;
use std::io;

use crate::proto::{Refusal, FAMILY_NAME};

/// Exit codes of `twctl`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The kernel refused the operation (its extended-ACK message is shown), or it failed.
    pub const FAILED: u8 = 1;
    /// Usage or input parse error (clap's own code); nothing was sent.
    pub const USAGE: u8 = 2;
    /// The rust_timewait module is not loaded (the generic netlink family does not exist).
    pub const NO_MODULE: u8 = 3;
    /// Permission denied: the operation needs CAP_NET_ADMIN.
    pub const PERMISSION: u8 = 4;
    /// `handoff`: the peer's FIN arrived first; the socket was closed normally and Linux's own
    /// TIME_WAIT holds the tuple (no entry was left behind).
    pub const NOT_HANDED_OFF: u8 = 5;
}

/// The text of `twctl --help` about exit codes.
pub const EXIT_CODES_HELP: &str = "\
EXIT CODES
  0  success
  1  the kernel refused the operation (its message is shown) or it failed
  2  usage or input error (bad address, port, number, file line); nothing was sent
  3  the rust_timewait module is not loaded
  4  permission denied: every command but stats needs CAP_NET_ADMIN (entries carry
     sequence numbers)
  5  handoff: the peer's FIN won the race; the socket was closed normally, Linux's own
     TIME_WAIT holds the tuple and no entry was left behind";

/// A failure talking to the module.
#[derive(Debug)]
pub enum Error {
    /// The generic netlink family is unknown: the module is not loaded.
    ModuleNotLoaded,
    /// The kernel answered EPERM.
    PermissionDenied {
        /// The operation ("add", "del", ...).
        op: &'static str,
        /// The refusal with its extended ACK.
        refusal: Box<Refusal>,
    },
    /// The kernel refused with another errno.
    Refused {
        /// The operation.
        op: &'static str,
        /// The errno and extended ACK.
        refusal: Box<Refusal>,
    },
    /// The netlink socket failed.
    Socket {
        /// What was being done.
        what: &'static str,
        /// The error.
        err: io::Error,
    },
    /// The kernel's answer could not be understood.
    Protocol(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ModuleNotLoaded => exit::NO_MODULE,
            Error::PermissionDenied { .. } => exit::PERMISSION,
            _ => exit::FAILED,
        }
    }

    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::PermissionDenied { refusal, .. } | Error::Refused { refusal, .. } => {
                Some(refusal.errno)
            }
            Error::Socket { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    /// The refusal, when the kernel refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::PermissionDenied { refusal, .. } | Error::Refused { refusal, .. } => {
                Some(refusal)
            }
            _ => None,
        }
    }
}

/// The sentence shown for EPERM.
pub const PERMISSION_HINT: &str = "this needs CAP_NET_ADMIN in the user namespace that owns the \
network namespace (run as root)";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ModuleNotLoaded => write!(
                f,
                "the rust_timewait module is not loaded (no generic netlink family \
                 \"{FAMILY_NAME}\"); load it with 'modprobe rust_timewait' or \
                 'insmod rust_timewait.ko'"
            ),
            Error::PermissionDenied { op, refusal } => {
                write!(f, "{op}: permission denied: {PERMISSION_HINT}")?;
                let d = refusal.details(&|i| format!("entry {}", i + 1));
                if !d.is_empty() {
                    write!(f, " (kernel: {d})")?;
                }
                Ok(())
            }
            Error::Refused { op, refusal } => write!(f, "{op}: {refusal}"),
            Error::Socket { what, err } => write!(f, "netlink socket: {what}: {err}"),
            Error::Protocol(m) => write!(f, "unexpected answer from the kernel: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Extack;

    fn refusal(errno: i32, msg: Option<&str>) -> Refusal {
        let x = Extack {
            msg: msg.map(String::from),
            ..Default::default()
        };
        Refusal::new(errno, &x, &[])
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::ModuleNotLoaded.exit_code(), 3);
        let p = Error::PermissionDenied {
            op: "add",
            refusal: Box::new(refusal(libc::EPERM, None)),
        };
        assert_eq!(p.exit_code(), 4);
        let r = Error::Refused {
            op: "add",
            refusal: Box::new(refusal(libc::EINVAL, Some("bad"))),
        };
        assert_eq!(r.exit_code(), 1);
        assert_eq!(Error::Protocol("x".into()).exit_code(), 1);
    }

    #[test]
    fn messages() {
        assert!(Error::ModuleNotLoaded
            .to_string()
            .contains("module is not loaded"));
        assert!(!Error::ModuleNotLoaded.to_string().contains("No such file"));
        let p = Error::PermissionDenied {
            op: "flush",
            refusal: Box::new(refusal(libc::EPERM, None)),
        };
        assert_eq!(
            p.to_string(),
            format!("flush: permission denied: {PERMISSION_HINT}")
        );
        let r = Error::Refused {
            op: "del",
            refusal: Box::new(refusal(libc::ENOENT, Some("no such entry"))),
        };
        assert_eq!(
            r.to_string(),
            "del: No such file or directory (ENOENT): no such entry"
        );
    }
}
