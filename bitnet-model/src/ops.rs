//! The float steps between the ternary matmuls, in the operation order of
//! transformers' BitNet / Llama modelling (the reference the fixtures were
//! made with), with reductions accumulated in f64 so each result is the
//! correctly rounded f32 of the exact value.
//!
//! Why this matters: every one of these outputs is quantized to int8 next,
//! and an activation that lands within an ulp of a rounding boundary flips
//! by one when the float path differs, moving the logits by up to ~0.02. An
//! accurate reduction agrees with any accurate reference as often as
//! possible; the result is also the same on every instruction set.

/// `out = w ⊙ (x · 1/sqrt(mean(x²) + eps))`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let r = inverse_rms(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (v * r);
    }
}

/// [`rms_norm`] with `out` = `x`.
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let r = inverse_rms(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = g * (*v * r);
    }
}

/// `1/sqrt(mean(x²) + eps)`, the sum of squares exact per term in f64.
fn inverse_rms(x: &[f32], eps: f32) -> f32 {
    let ss = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32;
    1.0 / (ss / x.len() as f32 + eps).sqrt()
}

/// `e^x` rounded once from f64.
pub fn exp(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// In place: `exp(x − max) / Σ exp(x − max)`.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = exp(*v - max);
        sum += *v as f64;
    }
    let sum = sum as f32;
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `x · sigmoid(x)`, as `x / (1 + e^−x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `relu(x)²`.
pub fn relu2(x: f32) -> f32 {
    let r = x.max(0.0);
    r * r
}
