//! Every clap type of the `bitnet` command, and nothing else.

use bitnet_model::Isa;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
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
    /// Convert a Hugging Face checkpoint (BitNet-b1.58-2B-4T, its bf16
    /// master weights, ternary Llama / Falcon3-1.58bit) to GGUF.
    Convert(ConvertArgs),
    /// Show the chosen kernel path, check every path on this CPU against the
    /// scalar reference, and measure decode GEMV against the read bandwidth.
    Kernels(KernelsArgs),
    /// Write the logits at every position as a float32 .npy [tokens, vocab]
    /// (for checking this engine against others).
    Logits(LogitsArgs),
    /// Perplexity of a text file over non-overlapping windows.
    Perplexity(PerplexityArgs),
    /// Generate for a file of prompts: several model instances on disjoint
    /// cores sharing the weights, several sequences per instance decoding
    /// together; results in input order, resumable.
    Batch(BatchArgs),
    /// Measure this machine: tok/s per thread count, every instances ×
    /// threads split and batch size; print the recommended configurations
    /// and save the profile `-t auto` and `batch --strategy throughput` use.
    Tune(TuneArgs),
    /// Run a generation workload and show, live, per worker thread busy,
    /// waiting and OS CPU time, time per operation, tok/s and bandwidth.
    Monitor(MonitorArgs),
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

/// Which model to load and how to run it (every subcommand that runs one).
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// GGUF model file (default: the built-in demo model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Worker threads: `auto` (every CPU this process may use) or a count
    /// [default: $BITNET_THREADS, else $OMP_NUM_THREADS, else auto].
    #[arg(short = 't', long, value_parser = parse_threads)]
    pub threads: Option<Threads>,
    /// `cores` binds worker i to the i-th CPU this process may use
    /// [default: none, or cores when OMP_PROC_BIND=true or OMP_PLACES=cores].
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "cores")]
    pub pin: Option<PinArg>,
    /// Kernel path: scalar, avx2, avx512, neon or neon-dotprod (an error if
    /// this CPU lacks it) [default: $BITNET_KERNEL, else the best path].
    #[arg(long, value_parser = parse_isa)]
    pub kernel: Option<Isa>,
    /// Read fewer bytes of the LM head per decoded token: `screen` keeps the
    /// file's head and adds a Q8_0 copy in memory that rules out the tokens
    /// that cannot be picked (greedy and top-k sampling pick exactly as
    /// without it); q8_0 and q6_k re-quantize the head in memory (lossy; q6_k
    /// also quantizes the head's input to int8) [default: the file's head].
    #[arg(long, value_enum)]
    pub lm_head: Option<LmHeadArg>,
}

/// A model plus a generation context (run, chat).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub load: LoadArgs,
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

/// `--pin cores|none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PinArg {
    /// One worker per CPU, in the order this process may use them.
    Cores,
    /// Let the OS place the workers.
    None,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// GGUF model file (default: the built-in demo model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Re-quantize the LM head in memory (lossy, opt-in): q8_0 or q6_k.
    #[arg(long, value_enum)]
    pub lm_head: Option<LmHeadArg>,
    /// Prompt lengths to process in one batch (comma-separated; 0 skips).
    #[arg(short = 'p', long, value_delimiter = ',', default_value = "128")]
    pub prompt: Vec<usize>,
    /// Tokens to generate one at a time (comma-separated; 0 skips).
    #[arg(short = 'n', long, value_delimiter = ',', default_value = "128")]
    pub gen: Vec<usize>,
    /// Thread counts (comma-separated)
    /// [default: $BITNET_THREADS, else $OMP_NUM_THREADS, else auto].
    #[arg(short = 't', long, value_delimiter = ',', value_parser = parse_threads)]
    pub threads: Vec<Threads>,
    /// Sequences decoded together per step for the generation tests.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Context already in the KV cache when each test starts, in tokens
    /// (comma-separated): `-d 2048` measures decoding a long conversation.
    /// The context is filled once per test, untimed.
    #[arg(short = 'd', long, value_delimiter = ',', default_value = "0")]
    pub depth: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub reps: usize,
    /// `cores` binds worker i to the i-th CPU this process may use
    /// [default: none, or cores when OMP_PROC_BIND=true or OMP_PLACES=cores].
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "cores")]
    pub pin: Option<PinArg>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// Print a JSON list of rows.
    #[arg(long, conflicts_with = "md")]
    pub json: bool,
    /// Print a Markdown table (the default).
    #[arg(long)]
    pub md: bool,
    /// Also print where the time goes: milliseconds per token for each kind
    /// of operation (always in the JSON rows as `ms_per_token`).
    #[arg(long)]
    pub profile: bool,
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
pub struct ConvertArgs {
    /// Checkpoint directory: config.json, *.safetensors, tokenizer.json.
    pub hf_dir: PathBuf,
    /// Output GGUF file (written under OUT.partial, renamed when complete).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Ternary weight format.
    #[arg(long, value_enum, default_value_t = FormatArg::I2s)]
    pub format: FormatArg,
    /// Token embedding (and untied LM head) type.
    #[arg(long, value_enum, default_value_t = EmbdArg::F16)]
    pub embd: EmbdArg,
}

/// `--lm-head screen|q8_0|q6_k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LmHeadArg {
    Screen,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q6_k")]
    Q6K,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbdArg {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q6_k")]
    Q6K,
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
#[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
pub struct LogitsArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Token ids, comma-separated, fed as given (no BOS is added).
    #[arg(long, value_delimiter = ',')]
    pub tokens: Vec<u32>,
    /// Text to tokenize (with BOS when the model asks for it).
    #[arg(short = 'p', long)]
    pub prompt: Option<String>,
    /// Parse special-token text (e.g. `<|eot_id|>`) in the prompt.
    #[arg(long)]
    pub special: bool,
    /// Output file: float32 .npy of shape [tokens, vocab].
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// KV cache element type; f32 is what reference implementations keep.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    pub kv: KvArg,
}

#[derive(Debug, Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Text file to score (UTF-8).
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Window size in tokens, BOS included. Each window starts afresh with
    /// BOS (when the model adds one) and scores every token after its first.
    #[arg(short = 'c', long, default_value_t = 512)]
    pub ctx: usize,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompts: `.jsonl` (objects with "prompt", optional "id" and
    /// "n_predict"), any other name one prompt per line.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Results as JSONL in input order (default: stdout). Prompts whose id
    /// it already holds are skipped and new results appended.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Tokens to generate per prompt at most (a prompt's "n_predict" wins).
    #[arg(short = 'n', long, default_value_t = 128)]
    pub n_predict: usize,
    /// Model instances, each with `-t` workers on its own cores.
    #[arg(long, conflicts_with = "strategy")]
    pub instances: Option<usize>,
    /// Choose instances, threads and batch size (default: throughput):
    /// `throughput` uses the `bitnet tune` profile, or one single-worker
    /// instance per core without one; `latency` is one instance on every
    /// core, `balanced` about √cores.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Sequences decoded together per instance (default: the prompts split
    /// evenly over the instances, at most 16).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Process only the prompts whose 0-based index i has i mod N = K.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// GGUF model file (default: the built-in demo model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Shorter tests, fewer repetitions (seconds on small models).
    #[arg(long)]
    pub quick: bool,
    /// Use only the first N CPUs this process may run on (default: all).
    #[arg(long)]
    pub cores: Option<usize>,
    /// Also draw tok/s against threads as an SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the profile JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// GGUF model file (default: the built-in demo model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// A built-in workload of about two seconds. Without it and without
    /// RUN-ARGS, the built-in workload repeats until Ctrl-C.
    #[arg(long, conflicts_with = "run_args")]
    pub quick: bool,
    /// Print one JSON snapshot per line instead of redrawing.
    #[arg(long)]
    pub json: bool,
    /// Seconds between snapshots.
    #[arg(long, default_value_t = 0.5)]
    pub interval: f64,
    /// The workload, as `bitnet run` arguments (`-- -p TEXT -n 256 -t 4`).
    #[arg(last = true, value_name = "RUN-ARGS")]
    pub run_args: Vec<String>,
}

/// `--shard K/N`: this is shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let parsed = s
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if index < count => Ok(Shard { index, count }),
        _ => Err(format!(
            "{s:?} is not K/N with 0 <= K < N (e.g. 0/4 for the first of four shards)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// GGUF model file (default: the built-in demo model).
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the bound address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How to split the cores into model instances (default: balanced): the
    /// `bitnet tune` profile's server (balanced) or many-prompts
    /// (throughput) split when there is one, else a rule of thumb.
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
    /// Prompt tokens one step of an instance reads at most, shared by the
    /// prompts waiting in arrival order; the generating sequences add one
    /// token each. Smaller: running replies pause less while new prompts
    /// are read, and the first prompts in line answer sooner; larger: fewer
    /// steps for a burst of prompts to get through.
    #[arg(long, default_value_t = bitnet_model::batch::DEFAULT_PREFILL_BUDGET as u32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub prefill_budget: u32,
    /// Requests that may wait for a free slot; beyond them the answer is 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long)]
    pub api_key: Option<String>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// As `run --lm-head`; with `screen`, a request with temperature 0 or a
    /// `top_k` that is alone in a decoding step reads the Q8_0 copy.
    #[arg(long, value_enum)]
    pub lm_head: Option<LmHeadArg>,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM before
    /// they are cancelled.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
}

/// How `bitnet serve` and `bitnet batch` lay model instances over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// One instance on every core: the fastest single reply.
    Latency,
    /// About √cores instances.
    Balanced,
    /// One instance per core: the most replies at once.
    Throughput,
}

impl Strategy {
    /// Model instances on `cores` cores when no tune profile says better.
    pub fn instances(self, cores: usize) -> usize {
        match self {
            Strategy::Latency => 1,
            Strategy::Throughput => cores.max(1),
            Strategy::Balanced => ((cores as f64).sqrt().round() as usize).max(1),
        }
    }

    /// The rule [`Strategy::instances`] follows, for startup lines.
    pub fn describe(self) -> &'static str {
        match self {
            Strategy::Latency => "latency: one instance on every core",
            Strategy::Balanced => "balanced: about √cores instances",
            Strategy::Throughput => "throughput: one instance per core",
        }
    }
}

/// `-t auto|N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Auto,
    Count(usize),
}

/// `auto` or a count from 1 to 1024 (flag and `BITNET_THREADS` syntax).
pub fn parse_threads(s: &str) -> Result<Threads, String> {
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

fn parse_isa(s: &str) -> Result<Isa, String> {
    Isa::from_name(s).map_err(|_| {
        let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
        format!("{s:?} is not one of {}", names.join(", "))
    })
}
