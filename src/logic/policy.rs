// SPDX-License-Identifier: GPL-2.0

//! Table and timing policy: how many entries a netns may hold, which sysctl values are
//! accepted, when an entry has expired, and whether an entry may send a reply now.
//!
//! Times are jiffies (`get_jiffies_64()`); every comparison is wrapping-safe like the kernel's
//! `time_after_eq()`, so nothing here depends on where the counter starts.

/// Smallest table: the seed ignores `maxtcptw` below 32 and auto-sizing never goes below it
/// ("protect against goofy port ranges smaller than 32").
pub(crate) const MAXTCPTW_MIN: u32 = 32;
/// Largest table: 2^24 entries of at most 64 bytes is 1 GiB of slab, a ceiling a typo cannot
/// exceed, yet above Linux's own default `tcp_max_tw_buckets` (half the established hash) on
/// any ordinary machine.
pub(crate) const MAXTCPTW_MAX: u32 = 1 << 24;

/// Default `maxtcptw`: 0, sized automatically ([`auto_size`]), as the seed's `maxtcptw` 0.
pub(crate) const MAXTCPTW_DEFAULT: i32 = 0;
/// Default `nolocaltimewait`: off, as the seed's `nolocaltimewait` (local peers get entries).
pub(crate) const NOLOCALTIMEWAIT_DEFAULT: i32 = 0;
/// Default `takeover`: off. Taking over Linux's FIN_WAIT2 timewait sockets at the peer's FIN
/// changes what every close() in the netns leaves behind, so a netns asks for it (D47): 1 for
/// the connections it accepted (or bound itself), 2 for every connection, also those whose
/// port connect() chose.
pub(crate) const TAKEOVER_DEFAULT: i32 = 0;

/// Whether a `takeover` value may be stored: 0, 1 or 2.
pub(crate) fn takeover_valid(v: i32) -> bool {
    (0..=2).contains(&v)
}
/// Default MSL: 30 s, FreeBSD's `net.inet.tcp.msl`, giving Linux's 60 s `TCP_TIMEWAIT_LEN`.
pub(crate) const MSL_MS_DEFAULT: u32 = 30_000;
/// Shortest MSL: 100 ms lets tests run fast; shorter would be below a typical RTO and make
/// TIME_WAIT meaningless.
pub(crate) const MSL_MS_MIN: u32 = 100;
/// Longest MSL: 10 min, five times RFC 9293's 2-minute MSL; 2·MSL stays below an hour.
pub(crate) const MSL_MS_MAX: u32 = 600_000;

/// Default FIN_WAIT_2 lifetime: Linux's `tcp_fin_timeout` (60 s).
pub(crate) const FIN_TIMEOUT_MS_DEFAULT: u32 = 60_000;
/// Shortest FIN_WAIT_2 lifetime, for the same reason as [`MSL_MS_MIN`].
pub(crate) const FIN_TIMEOUT_MS_MIN: u32 = 100;
/// Longest FIN_WAIT_2 lifetime: 10 min, so an orphaned half-close cannot pin an entry for long
/// (Linux caps a socket's `TCP_LINGER2` at `TCP_FIN_TIMEOUT_MAX`, 120 s).
pub(crate) const FIN_TIMEOUT_MS_MAX: u32 = 600_000;

/// The "last reply" stamp of an entry that has never replied. See [`ratelimit_stamp`].
pub(crate) const NEVER_REPLIED: u64 = 0;

/// The seed's `tcptw_auto_size()`: half the ephemeral port range, so TIME_WAIT entries cannot
/// tie up more than half of the ports a client can pick, never below 32. The seed's
/// `maxsockets / 5` term has no Linux counterpart and is dropped. Like the seed, a reversed
/// range is accepted.
pub(crate) fn auto_size(port_lo: u16, port_hi: u16) -> u32 {
    let half_range = u32::from(port_lo.abs_diff(port_hi)) / 2;
    half_range.max(MAXTCPTW_MIN)
}

/// Whether a `maxtcptw` value may be stored: 0 (automatic) or 32 ..= 2^24. The seed silently
/// ignores values below 32; we refuse them (`-EINVAL`, docs/behaviour.md §2).
pub(crate) fn maxtcptw_valid(v: i32) -> bool {
    v == 0 || u32::try_from(v).is_ok_and(|v| (MAXTCPTW_MIN..=MAXTCPTW_MAX).contains(&v))
}

/// Whether an `msl_ms` value may be stored: [`MSL_MS_MIN`] ..= [`MSL_MS_MAX`].
pub(crate) fn msl_ms_valid(v: i32) -> bool {
    u32::try_from(v).is_ok_and(|v| (MSL_MS_MIN..=MSL_MS_MAX).contains(&v))
}

/// Whether a `fin_timeout_ms` value may be stored: [`FIN_TIMEOUT_MS_MIN`] ..=
/// [`FIN_TIMEOUT_MS_MAX`].
pub(crate) fn fin_timeout_ms_valid(v: i32) -> bool {
    u32::try_from(v).is_ok_and(|v| (FIN_TIMEOUT_MS_MIN..=FIN_TIMEOUT_MS_MAX).contains(&v))
}

/// The table size in force: [`auto_size`] when `maxtcptw` is 0, else `maxtcptw`. A value
/// [`maxtcptw_valid`] would refuse cannot be stored; should one appear anyway, a negative one
/// means automatic and a positive one is clamped into range, so the table always has a sane
/// bound.
pub(crate) fn effective_capacity(maxtcptw: i32, port_lo: u16, port_hi: u16) -> u32 {
    match u32::try_from(maxtcptw) {
        Ok(0) | Err(_) => auto_size(port_lo, port_hi),
        Ok(v) => v.clamp(MAXTCPTW_MIN, MAXTCPTW_MAX),
    }
}

/// Whether an entry that last replied at `last_reply` may reply at `now`, at most one reply per
/// `interval` (Linux's `__tcp_oow_rate_limited()` with `tcp_invalid_ratelimit`, behaviour §4).
/// [`NEVER_REPLIED`] always may. A `last_reply` in the future (more than half the counter's
/// range ago) is treated as long past, as Linux does, so a stale stamp never silences an entry.
pub(crate) fn ratelimit_allows(last_reply: u64, now: u64, interval: u64) -> bool {
    if last_reply == NEVER_REPLIED {
        return true;
    }
    let elapsed = now.wrapping_sub(last_reply) as i64;
    elapsed < 0 || elapsed.unsigned_abs() >= interval
}

/// The stamp to store as "last reply" after replying at `now`. A reply at the one instant whose
/// value is [`NEVER_REPLIED`] is recorded one jiffy later, so it still counts as a reply.
pub(crate) fn ratelimit_stamp(now: u64) -> u64 {
    if now == NEVER_REPLIED {
        1
    } else {
        now
    }
}

/// Where a segment came in, as TCP's own lookup matches a bound socket against it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// The interface it came in on, or in a VRF the L3 master (`inet_iif`, `inet6_iif`).
    pub(crate) dif: u32,
    /// In a VRF, the enslaved device it came in on; 0 outside one (`inet_sdif`, `inet6_sdif`).
    pub(crate) sdif: u32,
    /// `net.ipv4.tcp_l3mdev_accept`: unbound sockets also answer inside a VRF.
    pub(crate) l3mdev_accept: bool,
}

/// Whether an entry whose socket was bound to `bound` (0: unbound) answers a segment that
/// arrived so: Linux's `inet_bound_dev_eq()`, by which a TIME_WAIT in one VRF never answers
/// for the same addresses in another, nor an unbound one inside a VRF (RFC 4364 keeps VRFs'
/// address spaces apart).
pub(crate) fn bound_dev_matches(bound: u32, a: Arrival) -> bool {
    if bound == 0 {
        a.sdif == 0 || a.l3mdev_accept
    } else {
        bound == a.dif || bound == a.sdif
    }
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_policy))]
mod tests {
    use super::*;

    #[test]
    fn bound_device_as_inet_bound_dev_eq() {
        let plain = Arrival { dif: 2, sdif: 0, l3mdev_accept: false };
        let in_vrf = Arrival { dif: 10, sdif: 3, l3mdev_accept: false };
        // Unbound: the default VRF only, unless tcp_l3mdev_accept.
        assert!(bound_dev_matches(0, plain));
        assert!(!bound_dev_matches(0, in_vrf));
        assert!(bound_dev_matches(0, Arrival { l3mdev_accept: true, ..in_vrf }));
        // Bound to the VRF or to the device itself.
        assert!(bound_dev_matches(10, in_vrf));
        assert!(bound_dev_matches(3, in_vrf));
        assert!(!bound_dev_matches(11, in_vrf));
        assert!(!bound_dev_matches(10, plain));
    }

    #[test]
    fn auto_size_is_half_the_port_range() {
        let cases: [(u16, u16, u32); 8] = [
            (32768, 60999, 14115), // Linux's default ip_local_port_range
            (60999, 32768, 14115), // reversed, as the seed accepts
            (1, 65535, 32767),
            (1024, 1090, 33),
            (1024, 1088, 32),
            (1024, 1050, 32), // goofy small range
            (5000, 5000, 32),
            (0, 0, 32),
        ];
        for (lo, hi, size) in cases {
            assert_eq!(auto_size(lo, hi), size);
        }
    }

    #[test]
    fn maxtcptw_bounds() {
        let cases: [(i32, bool); 9] = [
            (0, true),
            (32, true),
            (100_000, true),
            (1 << 24, true),
            (31, false),
            (1, false),
            (-1, false),
            ((1 << 24) + 1, false),
            (i32::MAX, false),
        ];
        for (v, ok) in cases {
            assert_eq!(maxtcptw_valid(v), ok);
        }
        assert!(!maxtcptw_valid(i32::MIN));
    }

    #[test]
    fn msl_and_fin_timeout_bounds() {
        let cases: [(i32, bool); 8] = [
            (100, true),
            (30_000, true),
            (600_000, true),
            (99, false),
            (0, false),
            (-30_000, false),
            (600_001, false),
            (i32::MAX, false),
        ];
        for (v, ok) in cases {
            assert_eq!(msl_ms_valid(v), ok);
            assert_eq!(fin_timeout_ms_valid(v), ok);
        }
        assert!(maxtcptw_valid(MAXTCPTW_DEFAULT));
        assert!(NOLOCALTIMEWAIT_DEFAULT == 0 || NOLOCALTIMEWAIT_DEFAULT == 1);
        assert!(takeover_valid(TAKEOVER_DEFAULT));
        assert!(takeover_valid(2) && !takeover_valid(3) && !takeover_valid(-1));
        assert!(msl_ms_valid(MSL_MS_DEFAULT as i32));
        assert!(fin_timeout_ms_valid(FIN_TIMEOUT_MS_DEFAULT as i32));
    }

    #[test]
    fn effective_capacity_auto_explicit_and_clamped() {
        assert_eq!(effective_capacity(0, 32768, 60999), 14115);
        assert_eq!(effective_capacity(0, 1024, 1030), 32);
        assert_eq!(effective_capacity(100, 32768, 60999), 100);
        assert_eq!(effective_capacity(32, 32768, 60999), 32);
        assert_eq!(effective_capacity(5, 32768, 60999), 32);
        assert_eq!(effective_capacity(i32::MAX, 32768, 60999), 1 << 24);
        assert_eq!(effective_capacity(-7, 32768, 60999), 14115);
    }

    #[test]
    fn ratelimit_first_reply_always_allowed() {
        assert!(ratelimit_allows(NEVER_REPLIED, 0, 500));
        assert!(ratelimit_allows(NEVER_REPLIED, 12345, 500));
        assert!(ratelimit_allows(NEVER_REPLIED, u64::MAX, u64::MAX));
    }

    #[test]
    fn ratelimit_one_reply_per_interval() {
        assert!(!ratelimit_allows(1000, 1000, 500));
        assert!(!ratelimit_allows(1000, 1499, 500));
        assert!(ratelimit_allows(1000, 1500, 500));
        assert!(ratelimit_allows(1000, 100_000, 500));
        // A zero interval never limits.
        assert!(ratelimit_allows(1000, 1000, 0));
        // A stamp from the future is treated as long past.
        assert!(ratelimit_allows(1000, 900, 500));
    }

    #[test]
    fn ratelimit_survives_jiffies_wraparound() {
        let last = u64::MAX - 100;
        assert!(!ratelimit_allows(last, 299, 500)); // 400 jiffies later
        assert!(ratelimit_allows(last, 399, 500)); // 500 jiffies later
        assert!(!ratelimit_allows(last, last, 500));
    }

    #[test]
    fn ratelimit_stamp_never_looks_like_never() {
        assert_eq!(ratelimit_stamp(5), 5);
        assert_eq!(ratelimit_stamp(u64::MAX), u64::MAX);
        assert_eq!(ratelimit_stamp(0), 1);
        // A reply recorded at jiffies 0 still limits the next one.
        assert!(!ratelimit_allows(ratelimit_stamp(0), 100, 500));
        assert!(ratelimit_allows(ratelimit_stamp(0), 501, 500));
    }
}

/// The netns's `net.ipv4.tcp_tw_reuse` and `tcp_tw_reuse_delay`, as Linux's own
/// `tcp_twsk_unique()` reads them.
#[derive(Clone, Copy)]
pub(crate) struct TwReuse {
    /// 0: never, 1: always, 2 (Linux's default): only for loopback traffic.
    pub(crate) mode: u8,
    /// How old (ms) the TIME_WAIT must be.
    pub(crate) delay_ms: u32,
}

/// What a local connect() onto a guarded tuple brings to [`local_reuse_allowed`].
#[derive(Clone, Copy)]
pub(crate) struct ReuseAsk {
    /// Either end is a loopback address, or the entry is bound to `lo`.
    pub(crate) loopback: bool,
    /// The socket chose its port itself (bind() with a port): Linux then asks without a
    /// TIME_WAIT to take over (`tcp_twsk_unique` with `twp` NULL).
    pub(crate) bound_port: bool,
    /// The entry is in FIN_WAIT_2.
    pub(crate) fin_wait2: bool,
    /// A timestamp was seen from the peer.
    pub(crate) ts_recent_valid: bool,
    /// Milliseconds since the entry's timeout started.
    pub(crate) age_ms: u32,
}

/// docs/behaviour.md §7: whether a local connect() may take over a guarded tuple, by Linux's
/// `tcp_twsk_unique()`: only when a timestamp was seen from the peer (PAWS then tells old
/// duplicates apart, RFC 7323 §5); for a socket that bound its port, that is all; otherwise
/// never from FIN_WAIT_2, `tcp_tw_reuse` 1 always, 2 only when either end is a loopback address
/// (or the entry is bound to `lo`), and only once the entry is older than `tcp_tw_reuse_delay`.
pub(crate) fn local_reuse_allowed(r: TwReuse, a: ReuseAsk) -> bool {
    let reuse = !a.fin_wait2 && (r.mode == 1 || (r.mode == 2 && a.loopback));
    a.ts_recent_valid && (a.bound_port || (reuse && a.age_ms > r.delay_ms))
}

#[cfg_attr(not(rtw_host), kernel::prelude::kunit_tests(rust_timewait_policy_reuse))]
mod reuse_tests {
    use super::*;

    const DEFAULT: TwReuse = TwReuse { mode: 2, delay_ms: 1000 };

    fn ask(loopback: bool, ts: bool, age_ms: u32) -> ReuseAsk {
        ReuseAsk { loopback, bound_port: false, fin_wait2: false, ts_recent_valid: ts, age_ms }
    }

    #[test]
    fn local_reuse_needs_a_timestamp_and_the_delay() {
        assert!(local_reuse_allowed(DEFAULT, ask(true, true, 1001)));
        // Linux's time_after32: strictly later than the delay.
        assert!(!local_reuse_allowed(DEFAULT, ask(true, true, 1000)));
        assert!(!local_reuse_allowed(DEFAULT, ask(true, false, 5000)));
        let short = TwReuse { mode: 2, delay_ms: 10 };
        assert!(local_reuse_allowed(short, ask(true, true, 11)));
    }

    #[test]
    fn tcp_tw_reuse_modes() {
        // 2 (default): loopback only.
        assert!(!local_reuse_allowed(DEFAULT, ask(false, true, 5000)));
        // 1: any address.
        assert!(local_reuse_allowed(TwReuse { mode: 1, delay_ms: 1000 }, ask(false, true, 5000)));
        // 0: never.
        assert!(!local_reuse_allowed(TwReuse { mode: 0, delay_ms: 1000 }, ask(true, true, 5000)));
    }

    #[test]
    fn never_from_fin_wait2() {
        let a = ReuseAsk { fin_wait2: true, ..ask(true, true, 5000) };
        assert!(!local_reuse_allowed(TwReuse { mode: 1, delay_ms: 0 }, a));
    }

    #[test]
    fn a_bound_port_needs_only_a_timestamp() {
        // tcp_twsk_unique with twp NULL: mode and delay do not matter, the timestamp does.
        let bound = ReuseAsk { bound_port: true, ..ask(false, true, 0) };
        assert!(local_reuse_allowed(TwReuse { mode: 0, delay_ms: 1000 }, bound));
        assert!(!local_reuse_allowed(DEFAULT, ReuseAsk { ts_recent_valid: false, ..bound }));
    }
}
