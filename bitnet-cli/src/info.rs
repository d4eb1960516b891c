//! `bitnet info`: what a model file is and how this engine will run it.

use crate::args::InfoArgs;
use bitnet_model::gguf::{Gguf, Value};
use bitnet_model::{Model, Tokenizer};
use std::collections::BTreeMap;

pub fn run(args: &InfoArgs) -> crate::Result<()> {
    let path = &args.model;
    let gguf = Gguf::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file_bytes = gguf.bytes().len();
    let mut types: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for t in gguf.tensors() {
        let e = types.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.data.len();
    }
    let tensors = gguf.tensors().len();
    let mapped = gguf.is_mapped();
    let listing = args.all.then(|| describe_all(&gguf));
    let model = Model::from_gguf(gguf).map_err(|e| format!("{}: {e}", path.display()))?;
    let tok = Tokenizer::from_gguf(model.gguf()).map_err(|e| format!("{}: {e}", path.display()))?;
    let c = &model.config;

    println!(
        "file: {} ({:.1} MB, GGUF v{}, {}, {tensors} tensors)",
        path.display(),
        file_bytes as f64 / 1e6,
        model.gguf().version,
        if mapped {
            "memory-mapped"
        } else {
            "read into memory"
        }
    );
    if let Some(name) = model.gguf().get_str("general.name")? {
        println!("name: {name}");
    }
    println!(
        "architecture: {} ({:?}): hidden {}, layers {}, heads {} / kv {} (head {}), ffn {} ({:?}), vocab {}, context {}, rope {:?} θ {} over {} dims, rms eps {:e}",
        c.arch_name, c.arch, c.hidden, c.layers, c.heads, c.kv_heads, c.head_dim, c.ffn, c.activation, c.vocab, c.ctx, c.rope, c.rope_theta, c.rope_dim, c.rms_eps
    );
    println!(
        "tokenizer: {} tokens, pre-tokenizer {}, BOS {:?} (added: {}), EOS {:?}, EOT {:?}",
        tok.vocab_size(),
        tok.pre.name(),
        tok.bos,
        tok.add_bos,
        tok.eos,
        tok.eot
    );
    for (ty, (count, bytes)) in &types {
        println!("tensors {ty:>6}: {count:4} ({:.1} MB)", *bytes as f64 / 1e6);
    }
    let owned = model.owned_weight_bytes();
    if owned == 0 {
        println!("weights: read in place from the mapping (no copy)");
    } else {
        println!(
            "weights: {:.1} MB repacked to I2_S at load (TQ formats), held outside the mapping",
            owned as f64 / 1e6
        );
    }
    println!(
        "read per decoded token: {:.2} MB (ternary codes + LM head; × tok/s = memory bandwidth)",
        model.bytes_per_token() as f64 / 1e6
    );
    let kv_token = 2 * c.layers * c.kv_dim();
    println!(
        "KV cache: {:.1} kB per token as f16 ({:.0} MB at the full context)",
        (kv_token * 2) as f64 / 1e3,
        (kv_token * 2 * c.ctx) as f64 / 1e6
    );
    println!("kernels: {}", model.dispatch().describe());
    if let Some(listing) = listing {
        print!("{listing}");
    }
    Ok(())
}

fn describe_all(g: &Gguf) -> String {
    let mut out = String::from("\nmetadata:\n");
    for (key, value) in g.metadata() {
        let shown = match value {
            Value::Str(_) => format!("{:?}", g.get_str(key).ok().flatten().unwrap_or_default()),
            Value::Array(a) => format!("array of {} (type {})", a.len, a.elem),
            v => format!("{v:?}"),
        };
        let shown: String = shown.chars().take(120).collect();
        out.push_str(&format!("  {key} = {shown}\n"));
    }
    out.push_str("tensors:\n");
    for t in g.tensors() {
        out.push_str(&format!(
            "  {:40} {:>6} {:?}\n",
            t.name,
            t.ty.name(),
            t.dims
        ));
    }
    out
}
