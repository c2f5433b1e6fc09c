//! An application's own binary with conveyor's whole command line inside it, its handlers
//! registered: `myapp worker --queue examples` runs its jobs, and `myapp run scenario.toml`
//! load-tests its real handlers with the same scenarios, audit and reports as the benchmark:
//!
//! ```sh
//! cargo run --example myapp -- run examples/hash-load.toml
//! ```

mod handlers;
mod jobs;

fn main() -> std::process::ExitCode {
    conveyor::cli::main_with(handlers::registry())
}
