//! The `conveyor` binary: everything lives in the library; see [`conveyor::cli`].
//!
//! It allocates with mimalloc: a job's path allocates and frees small buffers (a decoded
//! name and payload, a context, a future), and glibc's allocator took a quarter of the
//! process's CPU in a closed-loop run (`perf`, see PERFORMANCE.md).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    conveyor::cli::main()
}
