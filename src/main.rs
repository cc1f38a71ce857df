//! The `printgate` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use printgate::cli::Cli;

// mimalloc instead of the system allocator: serving a live farm allocates
// and frees many small JSON values per status and subscriber, where glibc's
// malloc spent a third of the server's time (bench/run.py's profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    printgate::telemetry::init(cli.log.log_format);
    match printgate::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("printgate: {e}");
            ExitCode::FAILURE
        }
    }
}
