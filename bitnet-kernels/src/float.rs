//! Float helpers the transformer needs around the ternary matmuls.
//! SIMD paths agree with the scalar reference to a tolerance (summation
//! order and FMA differ), not bit for bit; see `tests/float.rs`. The
//! exceptions are the f16 conversions and attention's kernels (the
//! `*_f64acc` family and, over an f16 KV cache, the `*_f32acc` one), which
//! give the scalar bits on every path.

use crate::dispatch::Dispatch;
use crate::error::{check_len, Error};
use core::ops::Range;

/// Bytes per Q8_0 block: an f16 scale then 32 int8 weights.
pub const Q8_0_BLOCK_BYTES: usize = 34;
/// Weights per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;

impl Dispatch {
    /// Converts IEEE half bits to f32 (exact). Lengths must match.
    pub fn f16_to_f32(&self, src: &[u16], dst: &mut [f32]) -> Result<(), Error> {
        check_len("f32 output", src.len(), dst.len())?;
        // SAFETY: ISA supported (Dispatch invariant); lengths checked.
        unsafe { (self.table.f16_to_f32)(src, dst) };
        Ok(())
    }

    /// Converts f32 to IEEE half bits, round to nearest even. Lengths must match.
    pub fn f32_to_f16(&self, src: &[f32], dst: &mut [u16]) -> Result<(), Error> {
        check_len("f16 output", src.len(), dst.len())?;
        // SAFETY: as above.
        unsafe { (self.table.f32_to_f16)(src, dst) };
        Ok(())
    }

    /// `out = x / sqrt(mean(x²) + eps) ⊙ w`; all three the same length.
    pub fn rms_norm(&self, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<(), Error> {
        if x.is_empty() {
            return Err(Error::ZeroDim {
                what: "RMSNorm width",
            });
        }
        check_len("RMSNorm weight", x.len(), w.len())?;
        check_len("RMSNorm output", x.len(), out.len())?;
        // SAFETY: as above.
        unsafe { (self.table.rms_norm)(x, w, eps, out) };
        Ok(())
    }

    /// In-place softmax of a non-empty slice.
    pub fn softmax(&self, x: &mut [f32]) -> Result<(), Error> {
        if x.is_empty() {
            return Err(Error::ZeroDim {
                what: "softmax width",
            });
        }
        // SAFETY: as above.
        unsafe { (self.table.softmax)(x) };
        Ok(())
    }

    /// In place over one non-empty row of attention scores: `softmax(scale·x)`
    /// with the exponentials evaluated in f64 (within a few f64 ulps of
    /// `e^y`, then rounded to f32) and summed in f64. The scaled row and its
    /// maximum are f32, as in `softmax(x·scale)` written out; the result is
    /// the same bits on every path. A NaN in `scale·x`, or an infinite
    /// maximum, makes the whole row NaN.
    pub fn softmax_f64acc(&self, x: &mut [f32], scale: f32) -> Result<(), Error> {
        if x.is_empty() {
            return Err(Error::ZeroDim {
                what: "softmax width",
            });
        }
        // SAFETY: as above.
        unsafe { (self.table.softmax_f64acc)(x, scale) };
        Ok(())
    }

    /// [`Dispatch::softmax_f64acc`] with f32 exponentials (range reduction
    /// by ln 2 and Cephes' degree-5 polynomial, each step a separate IEEE
    /// operation, within a few ulps; inputs below −87.3 give about
    /// 1.2·10⁻³⁸ instead of less), for attention over an f16 KV cache,
    /// whose scores carry far larger errors. Bitwise equal on every path.
    pub fn softmax_f32exp(&self, x: &mut [f32], scale: f32) -> Result<(), Error> {
        if x.is_empty() {
            return Err(Error::ZeroDim {
                what: "softmax width",
            });
        }
        // SAFETY: ISA supported (Dispatch invariant); non-empty.
        unsafe { (self.table.softmax_f32exp)(x, scale) };
        Ok(())
    }

    /// NEOX RoPE over every `head_dim`-wide head of `x`: rotates
    /// `(x[i], x[i + d/2])` by the angle whose cosine and sine are
    /// `cos[i]`, `sin[i]` (`d/2` values each, for this position).
    pub fn rope_neox(
        &self,
        x: &mut [f32],
        head_dim: usize,
        cos: &[f32],
        sin: &[f32],
    ) -> Result<(), Error> {
        check_rope(x, head_dim, cos, sin)?;
        // SAFETY: as above.
        unsafe { (self.table.rope_neox)(x, head_dim, cos, sin) };
        Ok(())
    }

    /// Normal (GPT-J / llama) RoPE: rotates `(x[2i], x[2i + 1])` by `cos[i]`, `sin[i]`.
    pub fn rope_interleaved(
        &self,
        x: &mut [f32],
        head_dim: usize,
        cos: &[f32],
        sin: &[f32],
    ) -> Result<(), Error> {
        check_rope(x, head_dim, cos, sin)?;
        // SAFETY: as above.
        unsafe { (self.table.rope_interleaved)(x, head_dim, cos, sin) };
        Ok(())
    }

    /// `Σ a[i]·b[i]`.
    pub fn dot_f32(&self, a: &[f32], b: &[f32]) -> Result<f32, Error> {
        check_len("dot operand", a.len(), b.len())?;
        // SAFETY: as above.
        Ok(unsafe { (self.table.dot_f32)(a, b) })
    }

    /// `Σ a[i]·f32(b[i])` with `b` IEEE half bits (an f16 KV cache row).
    pub fn dot_f16(&self, a: &[f32], b: &[u16]) -> Result<f32, Error> {
        check_len("dot operand", a.len(), b.len())?;
        // SAFETY: as above.
        Ok(unsafe { (self.table.dot_f16)(a, b) })
    }

    /// F16 rows against several f32 vectors (the LM head of a batched
    /// step): `w` holds `M` rows and `xs` `N` vectors, `k` elements each,
    /// back to back; `out[r·N + t] = Σ_i xs[t·k + i]·f32(w[r·k + i])`, so
    /// `out` is `M × N`. Each output is bit for bit what
    /// [`Dispatch::dot_f16`] gives for that row and vector on the same path,
    /// so results do not depend on how many rows or tokens share a call;
    /// the kernels convert each row once for several vectors.
    pub fn dot_f16_multi(
        &self,
        xs: &[f32],
        w: &[u16],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("dot_f16_multi vectors", xs.len(), k),
            ("dot_f16_multi rows", w.len(), k),
            ("dot_f16_multi output (rows × vectors)", out.len()),
        )?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked above.
        unsafe { (self.table.dot_f16_multi)(xs, w, k, out) };
        Ok(())
    }

    /// `y += alpha · x`.
    pub fn axpy_f32(&self, alpha: f32, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        check_len("axpy output", x.len(), y.len())?;
        // SAFETY: as above.
        unsafe { (self.table.axpy_f32)(alpha, x, y) };
        Ok(())
    }

    /// `y += alpha · f32(x)` with `x` IEEE half bits.
    pub fn axpy_f16(&self, alpha: f32, x: &[u16], y: &mut [f32]) -> Result<(), Error> {
        check_len("axpy output", x.len(), y.len())?;
        // SAFETY: as above.
        unsafe { (self.table.axpy_f16)(alpha, x, y) };
        Ok(())
    }

    /// `Σ a[i]·b[i]` accumulated in f64 and rounded once: the correctly
    /// rounded dot except when the exact value sits on an f32 rounding
    /// boundary (paths may then differ by one ulp). For attention, where
    /// each score feeds an int8 rounding downstream.
    pub fn dot_f64acc(&self, a: &[f32], b: &[f32]) -> Result<f32, Error> {
        check_len("dot operand", a.len(), b.len())?;
        // SAFETY: ISA supported (Dispatch invariant); lengths checked.
        Ok(unsafe { (self.table.dot_f64acc)(a, b) })
    }

    /// `acc += alpha · x` with f64 accumulators; bitwise equal on every path.
    pub fn axpy_f64acc(&self, alpha: f32, x: &[f32], acc: &mut [f64]) -> Result<(), Error> {
        check_len("axpy accumulator", x.len(), acc.len())?;
        // SAFETY: as above.
        unsafe { (self.table.axpy_f64acc)(alpha, x, acc) };
        Ok(())
    }

    /// Attention scores: `out[j] = dot_f64acc(q, keys[j·K .. (j + 1)·K])`
    /// for `j < out.len()`, with `K = q.len()` and `keys` row-major
    /// `out.len() × K`. Bit for bit [`Dispatch::dot_f64acc`] of each row.
    pub fn dot_f64acc_rows(&self, q: &[f32], keys: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let expected = out.len().saturating_mul(q.len());
        check_len("dot_f64acc_rows keys", expected, keys.len())?;
        // SAFETY: as above.
        unsafe { (self.table.dot_f64acc_rows)(q, keys, out) };
        Ok(())
    }

    /// Attention output: `acc[i] += Σ_j p[j]·values[j·K + i]` with
    /// `K = acc.len()` and `values` row-major `p.len() × K`, exact products
    /// added in f64 in order of `j`. Bit for bit what
    /// [`Dispatch::axpy_f64acc`] row by row gives, on every path, so the
    /// positions may come in blocks: one call per block, in order, sums the
    /// same as one call over all of them.
    pub fn weighted_sum_f64acc(
        &self,
        p: &[f32],
        values: &[f32],
        acc: &mut [f64],
    ) -> Result<(), Error> {
        let expected = p.len().saturating_mul(acc.len());
        check_len("weighted_sum_f64acc values", expected, values.len())?;
        // SAFETY: as above.
        unsafe { (self.table.weighted_sum_f64acc)(p, values, acc) };
        Ok(())
    }

    /// [`Dispatch::dot_f64acc_rows`] for several queries at once (the query
    /// heads that share a KV head): `qs` holds `G` queries and `keys` `N`
    /// keys, `k` floats each, back to back; `out[g·N + j]` (`G × N`) is bit
    /// for bit [`Dispatch::dot_f64acc`] of query `g` and key `j`. The kernels
    /// widen each key once for several queries.
    pub fn dot_f64acc_queries(
        &self,
        qs: &[f32],
        keys: &[f32],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("dot_f64acc_queries keys", keys.len(), k),
            ("dot_f64acc_queries queries", qs.len(), k),
            ("dot_f64acc_queries scores (queries × keys)", out.len()),
        )?;
        // SAFETY: as above.
        unsafe { (self.table.dot_f64acc_queries)(qs, keys, k, out) };
        Ok(())
    }

    /// [`Dispatch::weighted_sum_f64acc`] for several queries at once: `accs`
    /// holds `G` accumulators of `k` and `values` `N` rows of `k`; `ps` holds
    /// each query's `N` weights, query after query (`G × N`). Accumulator
    /// `g` gets bit for bit what `weighted_sum_f64acc(ps[g·N ..][..N],
    /// values, accs[g·k ..][..k])` gives. The kernels widen each value row
    /// once for several queries.
    pub fn weighted_sum_f64acc_queries(
        &self,
        ps: &[f32],
        values: &[f32],
        k: usize,
        accs: &mut [f64],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("weighted_sum_f64acc_queries values", values.len(), k),
            ("weighted_sum_f64acc_queries accumulators", accs.len(), k),
            (
                "weighted_sum_f64acc_queries weights (queries × rows)",
                ps.len(),
            ),
        )?;
        // SAFETY: as above; shapes checked.
        unsafe { (self.table.weighted_sum_f64acc_queries)(ps, values, k, accs) };
        Ok(())
    }

    /// Attention scores over an f16 KV cache, read in place: `qs` holds `G`
    /// queries (f32) and `keys` `N` keys (f16 bits), `k` elements each, back
    /// to back; `out[g·N + j]` (`G × N`) is their dot in f32 FMA chains.
    /// Every path computes each dot the same way, whatever the tile the pair
    /// falls in, so every path gives the same bits: lane `l < 16` chains
    /// `fma(q[i], key[i], lane)` over `i ≡ l (mod 16)` in order, the rows
    /// zero-padded to a multiple of 16, and the lanes are joined by halving
    /// (`l + (l + 8)`, then `+ 4`, `+ 2`, `+ 1`). The keys were rounded to
    /// 11 bits when cached, so the f64 accumulation of
    /// [`Dispatch::dot_f64acc_queries`] would buy no accuracy here, at about
    /// twice the work.
    pub fn dot_f32acc_queries_f16(
        &self,
        qs: &[f32],
        keys: &[u16],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("dot_f32acc_queries_f16 keys", keys.len(), k),
            ("dot_f32acc_queries_f16 queries", qs.len(), k),
            ("dot_f32acc_queries_f16 scores (queries × keys)", out.len()),
        )?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked.
        unsafe { (self.table.dot_f32acc_queries_f16)(qs, keys, k, out) };
        Ok(())
    }

    /// Attention outputs over an f16 KV cache: `accs` holds `G` accumulators
    /// of `k` and `values` `N` rows of `k` (f16 bits); `ps` holds each
    /// query's `N` weights, query after query (`G × N`). Each accumulator
    /// element takes `acc = fma(p[j], values[j][i], acc)` for `j = 0, 1, …`
    /// in order, so every path gives the same bits, and positions may come
    /// in blocks: one call per block, in order, sums the same as one call
    /// over all of them.
    pub fn weighted_sum_f32acc_queries_f16(
        &self,
        ps: &[f32],
        values: &[u16],
        k: usize,
        accs: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("weighted_sum_f32acc_queries_f16 values", values.len(), k),
            (
                "weighted_sum_f32acc_queries_f16 accumulators",
                accs.len(),
                k,
            ),
            (
                "weighted_sum_f32acc_queries_f16 weights (queries × rows)",
                ps.len(),
            ),
        )?;
        // SAFETY: as above; shapes checked.
        unsafe { (self.table.weighted_sum_f32acc_queries_f16)(ps, values, k, accs) };
        Ok(())
    }

    /// [`Dispatch::dot_f32acc_queries_f16`] over keys already widened to
    /// f32 (by [`Dispatch::f16_to_f32`]), bit for bit the same: for a block
    /// of an f16 cache that several calls read, widened once.
    pub fn dot_f32acc_queries(
        &self,
        qs: &[f32],
        keys: &[f32],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("dot_f32acc_queries keys", keys.len(), k),
            ("dot_f32acc_queries queries", qs.len(), k),
            ("dot_f32acc_queries scores (queries × keys)", out.len()),
        )?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked.
        unsafe { (self.table.dot_f32acc_queries)(qs, keys, k, out) };
        Ok(())
    }

    /// [`Dispatch::weighted_sum_f32acc_queries_f16`] over values already
    /// widened to f32, bit for bit the same.
    pub fn weighted_sum_f32acc_queries(
        &self,
        ps: &[f32],
        values: &[f32],
        k: usize,
        accs: &mut [f32],
    ) -> Result<(), Error> {
        check_multi(
            k,
            ("weighted_sum_f32acc_queries values", values.len(), k),
            ("weighted_sum_f32acc_queries accumulators", accs.len(), k),
            (
                "weighted_sum_f32acc_queries weights (queries × rows)",
                ps.len(),
            ),
        )?;
        // SAFETY: as above; shapes checked.
        unsafe { (self.table.weighted_sum_f32acc_queries)(ps, values, k, accs) };
        Ok(())
    }

    /// F16 GEMV (the tied LM head): `w` is `M × K` half bits, row-major;
    /// `y[r - rows.start] = Σ_k w[r,k]·x[k]` for `r ∈ rows`.
    pub fn gemv_f16(
        &self,
        w: &[u16],
        k: usize,
        x: &[f32],
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        check_gemv(w.len(), k, k, (x.len(), k), &rows, y)?;
        // SAFETY: as above.
        unsafe { (self.table.gemv_f16)(w, k, x, rows, y) };
        Ok(())
    }

    /// Q8_0 GEMV: `w` is `M × K/32` blocks of 34 bytes (f16 scale, 32 × i8);
    /// `y[r - rows.start] = Σ_blocks d·Σ q·x` for `r ∈ rows`.
    pub fn gemv_q8_0(
        &self,
        w: &[u8],
        k: usize,
        x: &[f32],
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        if !k.is_multiple_of(Q8_0_BLOCK) {
            return Err(Error::KNotMultiple {
                k,
                block: Q8_0_BLOCK,
            });
        }
        check_gemv(
            w.len(),
            k,
            Q8_0_BLOCK_BYTES * k / Q8_0_BLOCK,
            (x.len(), k),
            &rows,
            y,
        )?;
        // SAFETY: as above.
        unsafe { (self.table.gemv_q8_0)(w, k, x, rows, y) };
        Ok(())
    }

    /// Q8_0 rows against several f32 vectors (a re-quantized LM head in a
    /// batched step): `w` holds `M` rows of `K/32` blocks and `xs` `N`
    /// vectors of `K`, back to back; `out[r·N + t]` is
    /// [`Dispatch::gemv_q8_0`] of row `r` against vector `t`, bit for bit,
    /// so `out` is `M × N`. The kernels unpack each block once for several
    /// vectors.
    pub fn dot_q8_0_multi(
        &self,
        xs: &[f32],
        w: &[u8],
        k: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        if !k.is_multiple_of(Q8_0_BLOCK) {
            return Err(Error::KNotMultiple {
                k,
                block: Q8_0_BLOCK,
            });
        }
        check_multi(
            k,
            ("dot_q8_0_multi vectors", xs.len(), k),
            (
                "dot_q8_0_multi rows (Q8_0)",
                w.len(),
                Q8_0_BLOCK_BYTES * k / Q8_0_BLOCK,
            ),
            ("dot_q8_0_multi output (rows × vectors)", out.len()),
        )?;
        // SAFETY: ISA supported (Dispatch invariant); shapes checked above.
        unsafe { (self.table.dot_q8_0_multi)(xs, w, k, out) };
        Ok(())
    }
}

fn check_rope(x: &[f32], head_dim: usize, cos: &[f32], sin: &[f32]) -> Result<(), Error> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::KNotMultiple {
            k: head_dim,
            block: 2,
        });
    }
    if !x.len().is_multiple_of(head_dim) {
        return Err(Error::KNotMultiple {
            k: x.len(),
            block: head_dim,
        });
    }
    check_len("RoPE cos", head_dim / 2, cos.len())?;
    check_len("RoPE sin", head_dim / 2, sin.len())
}

/// The shapes of a rows × vectors product (`dot_f16_multi`, `dot_q6k_multi`,
/// the several-query attention forms): `k > 0`, the vectors and the rows
/// are whole (`(name, length, one's length)`), and the output (`(name,
/// length)`) holds one value per row and vector.
#[inline]
pub(crate) fn check_multi(
    k: usize,
    (x_what, x_len, x_row): (&'static str, usize, usize),
    (w_what, w_len, w_row): (&'static str, usize, usize),
    (out_what, out_len): (&'static str, usize),
) -> Result<(), Error> {
    if k == 0 {
        return Err(Error::ZeroDim {
            what: "K (columns)",
        });
    }
    let mut rows = [0; 2];
    for (r, (what, len, unit)) in rows
        .iter_mut()
        .zip([(x_what, x_len, x_row), (w_what, w_len, w_row)])
    {
        *r = whole_rows(len, unit).ok_or_else(|| Error::BufferLength {
            what,
            expected: len / unit * unit,
            actual: len,
        })?;
    }
    check_len(out_what, rows[0] * rows[1], out_len)
}

/// `len / unit` when `unit > 0` divides `len`. Attention checks its shapes
/// on every block of every head (a call per query head and block in a
/// model without grouped queries), mostly with a power-of-two head width:
/// a shift and a mask then replace the divisions.
#[inline]
fn whole_rows(len: usize, unit: usize) -> Option<usize> {
    if unit.is_power_of_two() {
        (len & (unit - 1) == 0).then_some(len >> unit.trailing_zeros())
    } else {
        len.is_multiple_of(unit).then(|| len / unit)
    }
}

/// `row_len`: elements of `w` per row (`K` halves for f16, bytes for the
/// block formats); `x_len`: the input's length, which must be `x_expected`
/// (`K` floats, or the bytes of a quantized row).
pub(crate) fn check_gemv(
    w_len: usize,
    k: usize,
    row_len: usize,
    (x_len, x_expected): (usize, usize),
    rows: &Range<usize>,
    y: &[f32],
) -> Result<(), Error> {
    if k == 0 {
        return Err(Error::ZeroDim {
            what: "K (columns)",
        });
    }
    if !w_len.is_multiple_of(row_len) {
        return Err(Error::BufferLength {
            what: "GEMV weights (a multiple of the row size)",
            expected: row_len * (w_len / row_len).max(1),
            actual: w_len,
        });
    }
    let m = w_len / row_len;
    check_len("GEMV input", x_expected, x_len)?;
    if rows.start > rows.end || rows.end > m {
        return Err(Error::RowRange {
            start: rows.start,
            end: rows.end,
            m,
        });
    }
    check_len("GEMV output", rows.len(), y.len())
}
