//! A screened LM head: a Q8_0 copy of the head scores every vocabulary row
//! from half the bytes of F16, with an error bound proven per row, and the
//! file's head then scores exactly the rows that can be among the `k`
//! largest logits. A sampler that reads only those (greedy, top-k) picks
//! what it would pick from the full head, bit for bit, while a decoded
//! token reads about half of the head's bytes.
//!
//! The bound. Both heads' kernels compute `fl(Σ w·x)` in f32, in some order,
//! each term through at most `n = cols + 2` roundings (the product and the
//! sums; the weights themselves are exact in f32), so with `γ = n·u / (1 − n·u)`, `u = 2⁻²⁴`:
//! `|exact − Σ w·x| ≤ γ·‖w‖·‖x‖` and `|approx − Σ ŵ·x| ≤ γ·‖ŵ‖·‖x‖`, and
//! `|Σ (w − ŵ)·x| ≤ ‖w − ŵ‖·‖x‖` (Cauchy–Schwarz, 2-norms). Hence
//! `|exact − approx| ≤ c·‖x‖` with `c = ‖w − ŵ‖ + γ·(‖w‖ + ‖ŵ‖)`, which is
//! computed per row at load in f64 and rounded up.

use crate::error::ModelError;
use crate::gguf::TensorType;
use crate::weights::{Dense, Q8_0_BLOCK_BYTES};
use bitnet_kernels::format::f16_to_f32;
use bitnet_kernels::Dispatch;
use std::ops::Range;

/// The largest `k` screened: the k-th largest lower bound is kept by
/// insertion, which costs up to `k` moves per insertion.
const MAX_TOP: usize = 256;

/// Relative slack on every bound, for the f64 arithmetic that computes it.
const SLACK: f64 = 1e-9;

/// Rows whose bounds are computed together (on the stack).
const CHUNK: usize = 64;

/// An LM head's Q8_0 screen (see the module docs).
pub(crate) struct ScreenedHead {
    q8: Dense,
    /// Per row, `c` of the module docs (rounded up; +∞ if not finite).
    bound: Vec<f32>,
    /// The largest finite `c`, over `γ`: at least every `‖w‖` and `‖ŵ‖`
    /// of rows with a finite bound.
    max_norm: f64,
}

impl ScreenedHead {
    /// The screen of `head` (F16, BF16 or F32, whose kernels compute
    /// `fl(Σ w·x)` from the exact weights), built on `threads` threads.
    pub fn new(
        head: &Dense,
        file: &[u8],
        d: Dispatch,
        threads: usize,
    ) -> Result<ScreenedHead, ModelError> {
        if !matches!(
            head.ty,
            TensorType::F16 | TensorType::BF16 | TensorType::F32
        ) {
            return Err(ModelError::Tensor {
                name: head.name.clone(),
                problem: format!(
                    "a {} LM head cannot be screened (F16, BF16 and F32 can)",
                    head.ty.name()
                ),
            });
        }
        let n = (head.cols + 2) as f64;
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = n * u / (1.0 - n * u);
        let (q8, bound) = head.requantized_with(file, d, TensorType::Q8_0, threads, |w, q| {
            row_bound(w, q, gamma)
        })?;
        let max_bound = bound
            .iter()
            .filter(|c| c.is_finite())
            .fold(0f32, |m, &c| m.max(c));
        Ok(ScreenedHead {
            q8,
            bound,
            max_norm: f64::from(max_bound) / gamma,
        })
    }

    /// The Q8_0 copy, whose GEMV gives the approximate logits.
    pub fn q8(&self) -> &Dense {
        &self.q8
    }

    /// Bytes held in memory, all of which a screened token reads.
    pub fn bytes(&self) -> usize {
        self.q8.owned_bytes() + self.bound.len() * 4
    }

    /// Turns `logits`, this screen's approximate logits for the input `x`,
    /// into logits whose `k` largest, after any change to the logits of the
    /// ids `exact` (strictly increasing), are `head`'s own values for the
    /// same rows: every row that can be among them, and every row of
    /// `exact`, is scored exactly by `head`; every other row gets a lower
    /// bound of its logit, below all of those.
    ///
    /// `Ok(false)` when screening cannot help (`k` is 0 or above 256, `x`
    /// is not finite, too few rows bound, or too many candidates); `logits`
    /// are then unspecified and the caller runs the full head.
    pub fn refine(
        &self,
        head: &Dense,
        file: &[u8],
        d: Dispatch,
        x: &[f32],
        k: usize,
        exact: &[u32],
        logits: &mut [f32],
    ) -> Result<bool, ModelError> {
        let vocab = logits.len();
        let norm = x
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
            * (1.0 + SLACK);
        let increasing = exact.windows(2).all(|p| p[0] < p[1]);
        let in_range = exact.last().is_none_or(|&id| (id as usize) < vocab);
        // The error model holds without overflow: every |Σ w·x| ≤ ‖w‖·‖x‖
        // stays far below f32's range.
        let in_f32_range = norm * self.max_norm < 1e37;
        if k == 0 || k > MAX_TOP || !in_f32_range || !increasing || !in_range {
            return Ok(false);
        }
        let Some(candidates) = select(&self.bound, norm, k, exact, logits) else {
            return Ok(false);
        };
        // Rows scored one run at a time read slower than the head's
        // streams; past an eighth of the head, the screen saves too little.
        if candidates.iter().map(Range::len).sum::<usize>() > vocab / 8 {
            return Ok(false);
        }
        for rows in candidates {
            // SAFETY: `rows` lie in `0..vocab`, and `logits` (one row of
            // `vocab`, borrowed mutably here) is ours alone.
            unsafe { head.gemv_tokens(file, d, x, rows, logits.as_mut_ptr(), vocab)? };
        }
        Ok(true)
    }
}

/// Given approximate logits within `bound[r]·norm` of the exact ones:
/// the rows to score exactly (runs, in order) so that the `k` largest
/// exact logits, after any change to those of the ids `exact` (strictly
/// increasing, all in range), are among them, with every row of `exact`;
/// every other row of `logits` is set to a lower bound of its exact logit,
/// below the exact logits of all those `k`. `None` (with `logits`
/// unspecified) when fewer than `k` rows outside `exact` have a lower
/// bound.
fn select(
    bound: &[f32],
    norm: f64,
    k: usize,
    exact: &[u32],
    logits: &mut [f32],
) -> Option<Vec<Range<usize>>> {
    let exact_in = |rows: Range<usize>| {
        let from = exact.partition_point(|&id| (id as usize) < rows.start);
        let to = exact.partition_point(|&id| (id as usize) < rows.end);
        exact[from..to]
            .iter()
            .map(move |&id| id as usize - rows.start)
    };
    let mut lows = [0f32; CHUNK];
    let mut highs = [0f64; CHUNK];

    // The k-th largest lower bound of the rows outside `exact`: their k
    // best rows all score at least this, so a row whose upper bound is
    // below it can be neither among the k largest nor tied with them.
    let mut best: Vec<f32> = Vec::with_capacity(k + 1);
    let mut floor = f32::NEG_INFINITY;
    for (i, approx) in logits.chunks(CHUNK).enumerate() {
        let rows = i * CHUNK..i * CHUNK + approx.len();
        let lows = &mut lows[..approx.len()];
        spread(&bound[rows.clone()], norm, approx, lows, &mut highs);
        exact_in(rows).for_each(|j| lows[j] = f32::NEG_INFINITY);
        for &low in lows.iter() {
            if low <= floor || low.is_nan() {
                continue;
            }
            let at = best.partition_point(|&b| b >= low);
            best.insert(at, low);
            best.truncate(k);
            if best.len() == k {
                floor = best[k - 1];
            }
        }
    }
    if best.len() < k {
        return None;
    }
    let threshold = f64::from(floor);

    let mut candidates: Vec<Range<usize>> = Vec::new();
    for (i, approx) in logits.chunks_mut(CHUNK).enumerate() {
        let rows = i * CHUNK..i * CHUNK + approx.len();
        let lows = &mut lows[..approx.len()];
        spread(&bound[rows.clone()], norm, approx, lows, &mut highs);
        // The listed rows are always scored exactly (as NaN bounds are).
        exact_in(rows.clone()).for_each(|j| highs[j] = f64::NAN);
        for (j, &high) in highs[..approx.len()].iter().enumerate() {
            if high >= threshold || high.is_nan() {
                let r = rows.start + j;
                match candidates.last_mut() {
                    Some(run) if run.end == r => run.end += 1,
                    _ => candidates.push(r..r + 1),
                }
            }
        }
        // Candidates are overwritten by their exact scores.
        approx.copy_from_slice(lows);
    }
    Some(candidates)
}

/// For approximate logits `approx` with bounds `bounds`, given `norm ≥ ‖x‖`:
/// `lows` ≤ and `highs` ≥ the exact logits; where `approx` is not
/// finite (out of the error model), −∞ and NaN: the row is always
/// scored exactly and never sets the threshold.
fn spread(bounds: &[f32], norm: f64, approx: &[f32], lows: &mut [f32], highs: &mut [f64]) {
    for (((&a, &c), lo), hi) in approx.iter().zip(bounds).zip(lows).zip(highs) {
        let finite = a.is_finite();
        let a = f64::from(a);
        // `TINY_SUM` covers the absolute error of subnormal products.
        let b = norm * f64::from(c) * (1.0 + SLACK) + a.abs() * SLACK + TINY_SUM;
        // Rounded to f32 from at least an f32 half-ulp below (also for
        // subnormals), so never above `a − b`.
        let low = (a - b) - (a - b).abs() * LOW_MARGIN - TINY;
        *lo = if finite {
            low as f32
        } else {
            f32::NEG_INFINITY
        };
        *hi = if finite { a + b } else { f64::NAN };
    }
}

/// Relative and absolute margins that make a nearest rounding to f32 a
/// rounding down: more than half an f32 ulp (2⁻²⁴ relative, 2⁻¹⁵⁰ absolute).
const LOW_MARGIN: f64 = 1.0 / (1u64 << 22) as f64;
const TINY: f64 = 1e-44;
const TINY_SUM: f64 = 1e-38;

/// `c` of the module docs for one row: `w` the head's row, `q` its Q8_0 bytes.
fn row_bound(w: &[f32], q: &[u8], gamma: f64) -> f32 {
    // Eight running sums per norm, not one: one f64 chain per norm waits on
    // each addition (the order only moves the sums by ulps, far inside `SLACK`).
    let (mut err, mut norm_w, mut norm_q) = ([0f64; 8], [0f64; 8], [0f64; 8]);
    for (ws, block) in w.chunks_exact(32).zip(q.chunks_exact(Q8_0_BLOCK_BYTES)) {
        let scale = f64::from(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
        for (ws, cs) in ws.chunks_exact(8).zip(block[2..].chunks_exact(8)) {
            for i in 0..8 {
                let (v, h) = (f64::from(ws[i]), scale * f64::from(cs[i] as i8));
                err[i] += (v - h) * (v - h);
                norm_w[i] += v * v;
                norm_q[i] += h * h;
            }
        }
    }
    let total = |s: [f64; 8]| s.iter().sum::<f64>().sqrt();
    f32_at_least((total(err) + gamma * (total(norm_w) + total(norm_q))) * (1.0 + SLACK))
}

/// The least f32 `≥ v` (+∞ for NaN or anything past f32's range).
fn f32_at_least(v: f64) -> f32 {
    let f = v as f32;
    if v.is_nan() {
        f32::INFINITY
    } else if f64::from(f) < v {
        f.next_up()
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sampler keeping the `k` largest reads of `logits` after a
    /// repetition penalty `p` on the ids `penalized`: (id, bits) best
    /// first, ids breaking ties.
    fn top(logits: &[f32], k: usize, penalized: &[u32], p: f32) -> Vec<(u32, u32)> {
        let mut order: Vec<(f32, u32)> = (0..logits.len() as u32)
            .map(|id| {
                let v = logits[id as usize];
                match penalized.contains(&id) {
                    true if v > 0.0 => (v / p, id),
                    true => (v * p, id),
                    false => (v, id),
                }
            })
            .filter(|(v, _)| !v.is_nan())
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        order
            .iter()
            .take(k)
            .map(|&(v, id)| (id, v.to_bits()))
            .collect()
    }

    /// `select` on made-up logits: exact values anywhere within the bounds
    /// and often on their edges, many ties, zero and infinite bounds,
    /// infinite and NaN approximations, penalties that lower and raise.
    #[test]
    fn selection_keeps_every_row_a_sampler_reads() {
        let mut rng = crate::synthetic::Rng::new(17);
        let mut below = |n: u64| (rng.next_u64() % n) as usize;
        for case in 0..3000 {
            let vocab = 1 + below(200);
            let k = 1 + below(vocab.min(12) as u64);
            let norm = [0.0, 1.0, 3.7][below(3)];
            let (mut bound, mut approx, mut exact) = (vec![], vec![], vec![]);
            for _ in 0..vocab {
                let c = [0.0, 1e-6, 0.05, 0.3, 2.0, f32::INFINITY][below(6)];
                let a = (below(24) as f32 - 12.0) * 0.125;
                let reach = f64::from(c) * norm;
                let e = match below(4) {
                    _ if reach.is_infinite() => (below(48) as f32 - 24.0) * 0.125,
                    0 => a,
                    1 => (f64::from(a) + reach) as f32,
                    2 => (f64::from(a) - reach) as f32,
                    _ => (f64::from(a) + reach * (below(9) as f64 / 4.0 - 1.0)) as f32,
                };
                // Rounding may have left the bound: step back inside.
                let e = match f64::from(e) - f64::from(a) {
                    d if d > reach => e.next_down(),
                    d if d < -reach => e.next_up(),
                    _ => e,
                };
                let a = match below(40) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    _ => a,
                };
                bound.push(c);
                approx.push(a);
                exact.push(e);
            }
            let mut penalized: Vec<u32> =
                (0..below(4)).map(|_| below(vocab as u64) as u32).collect();
            penalized.sort_unstable();
            penalized.dedup();
            let p = [0.7, 1.3][below(2)];

            let mut logits = approx.clone();
            let Some(runs) = select(&bound, norm, k, &penalized, &mut logits) else {
                let bounded = (0..vocab)
                    .filter(|&r| approx[r].is_finite() && bound[r].is_finite())
                    .filter(|r| !penalized.contains(&(*r as u32)))
                    .count();
                assert!(bounded < k, "case {case}: {bounded} bounded rows, k {k}");
                continue;
            };
            let scored: Vec<usize> = runs.into_iter().flatten().collect();
            for &id in &penalized {
                assert!(
                    scored.contains(&(id as usize)),
                    "case {case}: penalized {id}"
                );
            }
            for r in 0..vocab {
                if scored.contains(&r) {
                    logits[r] = exact[r];
                } else {
                    assert!(logits[r] <= exact[r], "case {case}: row {r}");
                }
            }
            assert_eq!(
                top(&logits, k, &penalized, p),
                top(&exact, k, &penalized, p),
                "case {case}"
            );
        }
    }

    #[test]
    fn rounding_helpers_bracket_their_input() {
        for v in [0.1f64, -0.1, 1.0, 1e-40, -1e-40, 3.4e38, 1e39, -1e39, 0.0] {
            assert!(f64::from(f32_at_least(v)) >= v, "{v}");
        }
        assert_eq!(f32_at_least(f64::NAN), f32::INFINITY);
        assert_eq!(f32_at_least(1.0), 1.0);
    }
}
