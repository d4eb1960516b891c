//! Synthetic models load, run, and describe the same weights in every format.

use bitnet_model::synthetic::{write_model, Preset, TernaryFormat};
use bitnet_model::{KvCache, KvType, Logits, Model, Tokenizer};

#[test]
fn tiny_synthetic_model_runs_identically_in_every_format() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bitnet-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut outputs = Vec::new();
    for format in [TernaryFormat::I2s, TernaryFormat::Tq2, TernaryFormat::Tq1] {
        let path = dir.join(format!("tiny-{format:?}.gguf"));
        write_model(&path, Preset::TINY, format, 7).unwrap();
        let model = Model::load(&path).unwrap();
        let tok = Tokenizer::from_gguf(model.gguf()).unwrap();
        let ids = tok.encode_prompt("Once upon a time", false).unwrap();
        assert_eq!(ids[0], 256, "BOS");
        assert_eq!(tok.decode(&ids, false), "Once upon a time");
        let mut cache = KvCache::new(&model.config, 64, KvType::F32).unwrap();
        let mut logits = Vec::new();
        model
            .forward(&ids, &mut cache, Logits::All, &mut logits)
            .unwrap();
        assert!(logits.iter().all(|v| v.is_finite()));
        outputs.push(logits);
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(outputs[0], outputs[1], "TQ2_0 differs from I2_S");
    assert_eq!(outputs[0], outputs[2], "TQ1_0 differs from I2_S");
    std::fs::remove_dir_all(&dir).unwrap();
}
