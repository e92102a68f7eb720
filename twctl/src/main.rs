fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(twctl::cli::main())
}
