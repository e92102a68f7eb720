// SPDX-License-Identifier: GPL-2.0

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(twctl::cli::main())
}
