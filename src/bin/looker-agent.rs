//! The looker-agent daemon; everything lives in the library.
fn main() -> std::process::ExitCode {
    looker_agent::daemon::startup::main()
}
