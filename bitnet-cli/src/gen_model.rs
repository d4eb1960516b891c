//! `bitnet gen-model`: random-weight models of real shapes.

use crate::args::{FormatArg, GenModelArgs};
use crate::error::usage;
use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use std::time::Instant;

pub fn run(args: &GenModelArgs) -> crate::Result<()> {
    let preset = Preset::by_name(&args.preset).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name).collect();
        usage(format!(
            "unknown preset {:?} (known: {})",
            args.preset,
            names.join(", ")
        ))
    })?;
    let format = match args.format {
        FormatArg::I2s => TernaryFormat::I2s,
        FormatArg::Tq2 => TernaryFormat::Tq2,
        FormatArg::Tq1 => TernaryFormat::Tq1,
    };
    let start = Instant::now();
    write_model(&args.output, preset, format, args.seed)
        .map_err(|e| format!("writing {}: {e}", args.output.display()))?;
    let bytes = std::fs::metadata(&args.output)?.len();
    eprintln!(
        "wrote {} ({} preset, {format:?}, {:.1} MB) in {:.1} s",
        args.output.display(),
        preset.name,
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
