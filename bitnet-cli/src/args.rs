//! Every clap type of the `bitnet` command, and nothing else.

use clap::{Args, Parser, Subcommand};

/// Fast, exact BitNet b1.58 inference on CPUs.
#[derive(Debug, Parser)]
#[command(name = "bitnet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the chosen kernel path, check every path on this CPU against the
    /// scalar reference, and measure decode GEMV against the read bandwidth.
    Kernels(KernelsArgs),
}

#[derive(Debug, Args)]
pub struct KernelsArgs {
    /// Smaller buffers and fewer repetitions (a few seconds instead of ~20).
    #[arg(long)]
    pub quick: bool,
    /// Skip the measurements; only the self-check.
    #[arg(long)]
    pub no_bench: bool,
}
