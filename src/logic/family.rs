// SPDX-License-Identifier: GPL-2.0

//! The address family: the one home of IPv4 against IPv6, and of the numbers (`AF_INET`,
//! `AF_INET6`) under which the glue, netlink and the kernel's caches carry it.

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// IPv4; in 16-byte address arrays the address is the first 4 bytes, the rest are zero.
    V4,
    /// IPv6.
    V6,
}

/// `AF_INET` (include/linux/socket.h).
const AF_INET: u8 = 2;
/// `AF_INET6` (include/linux/socket.h).
const AF_INET6: u8 = 10;

impl Family {
    /// The kernel's number for the family.
    pub(crate) const fn af(self) -> u8 {
        match self {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }

    /// The family the kernel's number stands for, if it is one of the two.
    pub(crate) const fn from_af(af: u8) -> Option<Family> {
        match af {
            AF_INET => Some(Family::V4),
            AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }

    /// Bytes of an address.
    pub(crate) const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_family))]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for f in [Family::V4, Family::V6] {
            assert_eq!(Family::from_af(f.af()), Some(f));
        }
        assert_eq!(Family::V4.af(), 2);
        assert_eq!(Family::V6.af(), 10);
        assert_eq!(Family::from_af(0), None);
        assert_eq!(Family::V6.addr_len(), 16);
    }
}
