//! `bitnet convert`: a Hugging Face checkpoint to GGUF.

use crate::args::{ConvertArgs, EmbdArg, FormatArg};
use bitnet_model::convert::{convert, ConvertOptions, EmbeddingType, TernaryFormat, TernarySource};
use std::time::Instant;

pub fn run(args: &ConvertArgs) -> crate::Result<()> {
    let opts = ConvertOptions {
        format: match args.format {
            FormatArg::I2s => TernaryFormat::I2s,
            FormatArg::Tq2 => TernaryFormat::Tq2,
            FormatArg::Tq1 => TernaryFormat::Tq1,
        },
        embedding: match args.embd {
            EmbdArg::F16 => EmbeddingType::F16,
            EmbdArg::Q8_0 => EmbeddingType::Q8_0,
            EmbdArg::Q6K => EmbeddingType::Q6K,
        },
    };
    let start = Instant::now();
    let done = convert(&args.hf_dir, &args.output, opts)?;
    let source = match done.source {
        TernarySource::Packed => "packed ternary",
        TernarySource::MasterWeights => "master weights, ternarized with absmean",
    };
    eprintln!(
        "wrote {} ({}, {source}, {:?} + {:?} embedding, {} tensors, {:.1} MB) in {:.1} s",
        args.output.display(),
        done.arch,
        opts.format,
        opts.embedding,
        done.tensors,
        done.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
