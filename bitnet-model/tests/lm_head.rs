//! The opt-in re-quantized LM head: fewer bytes per token, logits close to
//! the exact head's, the embedding lookups untouched.

mod common;

use bitnet_model::gguf::TensorType;
use bitnet_model::{KvCache, KvType, Logits, Model};
use common::{argmax, cases, fixtures};

fn logits(model: &Model, ids: &[u32]) -> Vec<f32> {
    logits_of(model, ids, Logits::All)
}

fn logits_of(model: &Model, ids: &[u32], which: Logits) -> Vec<f32> {
    let mut cache = KvCache::new(&model.config, ids.len(), KvType::F32).unwrap();
    let mut out = Vec::new();
    model.forward(ids, &mut cache, which, &mut out).unwrap();
    out
}

#[test]
fn requantized_heads_stay_close_and_read_fewer_bytes() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let exact = Model::load(&path).unwrap();
    let (_, cases) = cases("tiny-b158");
    let (vocab, hidden) = (exact.config.vocab, exact.config.hidden);
    assert_eq!(exact.lm_head_type(), TensorType::F16);
    for (ty, row_bytes, max_err) in [
        (TensorType::Q8_0, hidden / 32 * 34, 0.05f32),
        (TensorType::Q6K, hidden / 256 * 210, 0.1),
    ] {
        let model = Model::load(&path).unwrap().with_lm_head(ty, 2).unwrap();
        assert_eq!(model.lm_head_type(), ty);
        assert_eq!(model.owned_weight_bytes(), vocab * row_bytes);
        assert_eq!(
            exact.bytes_per_token() - model.bytes_per_token(),
            vocab * (hidden * 2 - row_bytes)
        );
        let (mut agree, mut total) = (0, 0);
        for case in &cases {
            let (want, got) = (logits(&exact, &case.ids), logits(&model, &case.ids));
            for (w, g) in want.chunks_exact(vocab).zip(got.chunks_exact(vocab)) {
                let err = w
                    .iter()
                    .zip(g)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < max_err, "{ty:?}: max |Δlogit| {err}");
                agree += usize::from(argmax(w) == argmax(g));
                total += 1;
            }
            // The last token alone takes the one-token GEMV; inside the
            // batch it took the per-row path: the same logits, bit for bit.
            let last = logits_of(&model, &case.ids, Logits::Last);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&last), bits(&got[got.len() - vocab..]), "{ty:?}");
        }
        assert!(
            agree * 100 >= total * 95,
            "{ty:?}: top-1 agrees at {agree}/{total}"
        );
    }
}

#[test]
fn requantizing_needs_a_block_format_and_no_instances() {
    let path = fixtures().join("tiny-b158/model-i2s.gguf");
    let model = Model::load(&path).unwrap();
    let _other = model.instance();
    let err = model.with_lm_head(TensorType::Q8_0, 1).unwrap_err();
    assert!(err.to_string().contains("before making instances"), "{err}");
    let err = Model::load(&path)
        .unwrap()
        .with_lm_head(TensorType::F32, 1)
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot re-quantize to F32"),
        "{err}"
    );
}
