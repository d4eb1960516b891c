//! `bitnet`: parse once, dispatch to one module per subcommand, map errors
//! to exit codes (2: usage, 1: runtime; see [`error`]).

mod args;
mod batch;
mod bench;
mod chat;
mod convert;
mod error;
mod gen_model;
mod generate;
mod info;
mod kernels;
mod load;
mod logits;
mod monitor;
mod perplexity;
mod progress;
mod run;
mod serve;
mod tune;
mod tuned;

use clap::Parser;
use std::process::ExitCode;

/// What every subcommand returns.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Run(a) => run::run(&a),
        args::Command::Chat(a) => chat::run(&a),
        args::Command::Bench(a) => bench::run(&a),
        args::Command::Info(a) => info::run(&a),
        args::Command::GenModel(a) => gen_model::run(&a),
        args::Command::Convert(a) => convert::run(&a),
        args::Command::Kernels(a) => kernels::run(&a),
        args::Command::Logits(a) => logits::run(&a),
        args::Command::Perplexity(a) => perplexity::run(&a),
        args::Command::Batch(a) => batch::run(&a),
        args::Command::Tune(a) => tune::run(&a),
        args::Command::Monitor(a) => monitor::run(&a),
        args::Command::Serve(a) => serve::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`bitnet run … | head`) is the reader's choice, not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(error::exit_code(e.as_ref()))
        }
    }
}
