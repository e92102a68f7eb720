/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the test tools share: byte order, the Internet checksum and the TCP pseudo-header
 * (RFC 9293 §3.1, RFC 8200 §8.1), and the seeded generator of the fuzzers (splitmix64: a run is a
 * function of its seed). Header-only, static: each tool is one static binary.
 */
#ifndef RTW_WIRE_H
#define RTW_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void die(const char *m) { perror(m); exit(2); }

static inline void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* One's-complement sum of 16-bit words, added to `s`. */
static inline uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

/* Fold a sum to 16 bits and complement it: the checksum field (0 when verifying a good one). */
static inline uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The TCP pseudo-header's sum: addresses, protocol 6 and the segment length. */
static inline uint32_t tcp_pseudo(int v6, const uint8_t *src, const uint8_t *dst, size_t tcplen)
{
	uint32_t s = sum16(src, v6 ? 16 : 4, 0);

	s = sum16(dst, v6 ? 16 : 4, s);
	return s + 6 + (uint32_t)tcplen;
}

/* The checksum of a TCP segment of `len` bytes at `tcp` (its checksum field 0, or verifying). */
static inline uint16_t tcp_csum(int v6, const uint8_t *src, const uint8_t *dst, const uint8_t *tcp, size_t len)
{
	return fold(sum16(tcp, len, tcp_pseudo(v6, src, dst, len)));
}

/* splitmix64. */
static uint64_t rng_state;
static inline uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static inline uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }
static inline int chance(unsigned pct) { return below(100) < pct; }

#endif
