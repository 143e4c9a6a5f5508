//! The `gantry` binary. Subcommands live in src/cli/, one per file.

use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbosity);
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gantry: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
