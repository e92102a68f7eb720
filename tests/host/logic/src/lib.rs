// SPDX-License-Identifier: GPL-2.0

//! Host build of rust_timewait's pure logic: the very files the kernel module includes, so
//! `cargo test` runs their KUnit tests under libtest.
//!
//! `no_std` even for tests: the files must build with `core` alone, as in the kernel.
//! The `tests` modules are not `#[cfg(test)]` (the kernel's `kunit_tests` macro gates them on
//! `CONFIG_KUNIT`), so outside `cargo test` their helpers and imports are unused.
#![no_std]
#![cfg_attr(not(test), allow(dead_code, unused_imports))]
#![warn(missing_docs)]

/// The kernel module's `logic/` folder, whole: the folder is the rule (no kernel bindings).
#[path = "../../../../src/logic/mod.rs"]
pub mod logic;

/// Seeded fuzzing of parse, decide and the reply builders (host only).
#[cfg(test)]
mod fuzz;
