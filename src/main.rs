//! The `printgate` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use printgate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    printgate::telemetry::init(cli.settings.log_format);
    match printgate::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("printgate: {e}");
            ExitCode::FAILURE
        }
    }
}
