// SPDX-License-Identifier: GPL-2.0

//! Build script of the host harness.
// The kernel build wraps each `tests` module in `macros::kunit_tests`; here `rtw_host` turns
// that attribute off so the same `#[test]` functions run under libtest.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(rtw_host)");
    println!("cargo:rustc-cfg=rtw_host");
}
