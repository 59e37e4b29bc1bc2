use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator, for Rust and (crate feature `override`) for
/// the bundled SQLite alike: the engine allocates many small, short-lived values per event
/// (headers, rows, JSON), where glibc's malloc spent about a quarter of the relay's CPU
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = api::cli::Cli::parse();
    api::cli::run(cli)
}
