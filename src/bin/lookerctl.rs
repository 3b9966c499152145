//! The lookerctl helper; everything lives in the library.
fn main() -> std::process::ExitCode {
    looker_agent::cli::main()
}
