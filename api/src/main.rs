use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = api::cli::Cli::parse();
    api::cli::run(cli)
}
