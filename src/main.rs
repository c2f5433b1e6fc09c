//! The `conveyor` binary: everything lives in the library; see [`conveyor::cli`].

fn main() -> std::process::ExitCode {
    conveyor::cli::main()
}
