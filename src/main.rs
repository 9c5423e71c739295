//! The `device-lookup` binary: parses the command line, runs the subcommand,
//! and turns its error into a message and an exit status (2 for invalid
//! configuration or usage, 1 for anything else).

use std::process::ExitCode;

use clap::Parser;
use device_lookup::cli::Cli;

fn main() -> ExitCode {
    // clap itself exits with 2 on a usage error.
    let cli = Cli::parse();
    match device_lookup::commands::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            let e = anyhow::Error::new(e);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
