// SPDX-License-Identifier: GPL-2.0

//! A network namespace's entries: the entry (`entry`), the table that holds them (`table`, a
//! safe API over `glue/table.c`), the counters (`stats`), and what the hooks, the reaper and
//! netlink do to them (`netns`).

pub(crate) mod entry;
pub(crate) mod netns;
pub(crate) mod stats;
pub(crate) mod table;
