//! Every clap type of the `bitnet` command, and nothing else.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Fast, exact BitNet b1.58 inference on CPUs.
#[derive(Debug, Parser)]
#[command(name = "bitnet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text from a prompt, streaming it as it is produced.
    Run(RunArgs),
    /// Interactive multi-turn chat; `/reset` starts over, `/exit` quits,
    /// Ctrl-C stops the current reply.
    Chat(ChatArgs),
    /// Measure prompt processing and generation speed (llama-bench style).
    Bench(BenchArgs),
    /// Describe a model file: architecture, shapes, tokenizer, tensor types,
    /// memory held outside the mapping, and the kernel path.
    Info(InfoArgs),
    /// Write a random-weight model of a preset shape (benches, demos).
    GenModel(GenModelArgs),
    /// Show the chosen kernel path, check every path on this CPU against the
    /// scalar reference, and measure decode GEMV against the read bandwidth.
    Kernels(KernelsArgs),
    /// OpenAI-compatible HTTP server: model instances × threads, continuous
    /// batching, streaming.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub n_predict: usize,
    /// Parse special-token text (e.g. `<|eot_id|>`) in the prompt.
    #[arg(long)]
    pub special: bool,
    /// Print one JSON object (text, token ids, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Wrap the prompt in the model's chat format as a user message.
    #[arg(long)]
    pub chat: bool,
    /// System message (implies --chat).
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message for the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Tokens per reply at most.
    #[arg(short = 'n', long, default_value_t = 512)]
    pub n_predict: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// How to load and run a model (shared by run and chat).
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// GGUF model file (default: the built-in synthetic model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Worker threads: `auto` (every core this process may use) or a count.
    #[arg(short = 't', long, default_value = "auto", value_parser = parse_threads)]
    pub threads: Threads,
    /// Pin each worker thread to its own core.
    #[arg(long)]
    pub pin: bool,
    /// Context size in tokens (default: the model's, at most 4096).
    #[arg(short = 'c', long)]
    pub ctx: Option<usize>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
}

#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep the k most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below this fraction of the best one's probability.
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for tokens among the last 64 (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed (equal seeds give equal text).
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvArg {
    F16,
    F32,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// GGUF model file (default: the built-in synthetic model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Prompt lengths to process in one batch (comma-separated; 0 skips).
    #[arg(short = 'p', long, value_delimiter = ',', default_value = "128")]
    pub prompt: Vec<usize>,
    /// Tokens to generate one at a time (comma-separated; 0 skips).
    #[arg(short = 'n', long, value_delimiter = ',', default_value = "128")]
    pub gen: Vec<usize>,
    /// Thread counts (comma-separated).
    #[arg(short = 't', long, value_delimiter = ',', value_parser = parse_threads, default_value = "auto")]
    pub threads: Vec<Threads>,
    /// Sequences decoded together per step for the generation tests.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub reps: usize,
    /// Pin each worker thread to its own core.
    #[arg(long)]
    pub pin: bool,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// Print a JSON list of rows.
    #[arg(long, conflicts_with = "md")]
    pub json: bool,
    /// Print a Markdown table (the default).
    #[arg(long)]
    pub md: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Also list every metadata key (arrays summarized) and every tensor.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct GenModelArgs {
    /// Output file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Shape: `tiny` or `2b-4t` (BitNet-b1.58-2B-4T's).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Ternary weight format.
    #[arg(long, value_enum, default_value_t = FormatArg::I2s)]
    pub format: FormatArg,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    I2s,
    Tq2,
    Tq1,
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// GGUF model file (default: the built-in synthetic model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the bound address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How to split the cores into model instances (default: balanced).
    #[arg(long, value_enum, conflicts_with_all = ["instances", "threads"])]
    pub strategy: Option<Strategy>,
    /// Model instances, each on its own cores (instead of --strategy).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub instances: Option<u16>,
    /// Worker threads per instance (instead of --strategy).
    #[arg(short = 't', long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Sequences batched together per instance.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub slots: u16,
    /// Context size in tokens per sequence (default: the model's, at most 4096).
    #[arg(short = 'c', long)]
    pub ctx: Option<usize>,
    /// Requests that may wait for a free slot; beyond them the answer is 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long)]
    pub api_key: Option<String>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM before
    /// they are cancelled.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
}

/// How `bitnet serve` lays instances over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// One instance on every core: the fastest single reply.
    Latency,
    /// About √cores instances.
    Balanced,
    /// One instance per core: the most replies at once.
    Throughput,
}

/// `-t auto|N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Auto,
    Count(usize),
}

impl Threads {
    /// The count to use on this machine.
    pub fn resolve(self) -> usize {
        match self {
            Threads::Count(n) => n,
            Threads::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

fn parse_threads(s: &str) -> Result<Threads, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Threads::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(Threads::Count(n)),
        _ => Err(format!(
            "{s:?} is not `auto` or a thread count from 1 to 1024"
        )),
    }
}
