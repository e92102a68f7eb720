// SPDX-License-Identifier: GPL-2.0

//! Build script of the host harness.
// The kernel build wraps each `tests` module in `macros::kunit_tests`; here `rtw_host` turns
// that attribute off so the same `#[test]` functions run under libtest.
// `CONFIG_KUNIT` is the kernel's (`src/logic/mod.rs` gates the test fixtures on it): declared
// here, never set.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(rtw_host)");
    println!("cargo::rustc-check-cfg=cfg(CONFIG_KUNIT, values(\"y\"))");
    println!("cargo:rustc-cfg=rtw_host");
}
