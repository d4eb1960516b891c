//! Instruction-set detection and the per-ISA kernel table.
//!
//! Detection runs once; the chosen table is cached (a `OnceLock` under `std`,
//! a compile-time choice without it). Every table entry is an `unsafe fn`
//! whose only contract beyond argument validity is "the CPU supports this
//! table's ISA"; [`Dispatch`] can only be built for a supported ISA, which
//! is what makes its safe methods sound.

use crate::arch;
use crate::error::Error;
use crate::format::{I2sMatrix, TlMatrix};
use crate::quant::{QuantizedActs, RowScale};
use core::fmt;
use core::ops::Range;

/// An instruction-set path. Each has a complete kernel table; ops a path does
/// not specialise fall back to the next-best code it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable reference code; the oracle every other path is tested against.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/VNNI (+VBMI where the LUT kernels use it), with F16C.
    Avx512,
    /// AArch64 NEON without the dot-product extension.
    Neon,
    /// AArch64 NEON with `sdot`/`udot` (FEAT_DotProd).
    NeonDotprod,
}

impl Isa {
    /// Every path this crate knows, best-last within an architecture.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Neon,
        Isa::NeonDotprod,
    ];

    /// The name used by `BITNET_KERNEL` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
        }
    }

    /// Parses a `BITNET_KERNEL` value. `neon` means the best NEON path the
    /// CPU has is *not* forced to dotprod; `neon-dotprod` asks for it.
    pub fn from_name(name: &str) -> Result<Isa, Error> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
            .ok_or(Error::UnknownIsa)
    }

    /// Whether this CPU can run the path (runtime detection under `std`,
    /// compile-time target features without it).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => arch::x86_64::has_avx2(),
            Isa::Avx512 => arch::x86_64::has_avx512(),
            Isa::Neon => arch::aarch64::has_neon(),
            Isa::NeonDotprod => arch::aarch64::has_dotprod(),
        }
    }

    /// The paths this CPU supports, scalar first.
    pub fn supported() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported())
    }

    /// The best path this CPU supports.
    pub fn best() -> Isa {
        Isa::supported().last().unwrap_or(Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ternary matmul families. Which is faster depends on the ISA and on
/// the number of tokens `N`; [`Dispatch::family_for`] holds the measured choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Multiply-add on 2-bit codes (maddubs / vpdpbusd / sdot), over [`I2sMatrix`].
    MultiplyAdd,
    /// Lookup tables of activation partial sums indexed by packed weights, over [`TlMatrix`].
    Lookup,
}

impl Family {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::MultiplyAdd => "mad",
            Family::Lookup => "lut",
        }
    }
}

/// A ternary matmul entry: weights, activations, output rows, `y`, `y_stride`.
// The signature is the contract; splitting it further would hide it.
pub(crate) type GemmI2sFn = unsafe fn(
    w: &I2sMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
);
/// A dense GEMV entry over `w` elements `E` and `x` elements `X`: `w`,
/// `K`, `x`, output rows, `y`.
#[allow(clippy::type_complexity)]
pub(crate) type GemvFn<E, X = f32> =
    unsafe fn(w: &[E], k: usize, x: &[X], rows: Range<usize>, y: &mut [f32]);
/// The same over the lookup-table layout.
pub(crate) type GemmTlFn = unsafe fn(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
);

/// One ISA's kernels. Shapes and buffer lengths are validated by the safe
/// wrappers in [`Dispatch`] before any entry is called; each entry may also
/// assume its ISA is present.
///
/// Output convention for the matmul entries: `y[t * y_stride + r]` for token
/// `t < x.n()` and weight row `r` in `rows` (absolute row index); nothing
/// else is written.
#[derive(Clone, Copy)]
pub(crate) struct Table {
    pub isa: Isa,
    /// `q[i] = round_ties_even(x[i] * s)` clamped to `[-128, 127]`, with
    /// `s = 127 / max(max|x|, 1e-5)`; returns `s` and `Σ q`.
    pub quantize_row_i8: unsafe fn(x: &[f32], q: &mut [i8]) -> RowScale,
    /// Multiply-add family, per-tensor weight scale.
    pub gemm_i2s: GemmI2sFn,
    /// Lookup family, per-tensor weight scale.
    pub gemm_tl: GemmTlFn,
    pub f16_to_f32: unsafe fn(src: &[u16], dst: &mut [f32]),
    pub f32_to_f16: unsafe fn(src: &[f32], dst: &mut [u16]),
    /// `out[i] = x[i] * (1 / sqrt(mean(x²) + eps)) * w[i]`.
    pub rms_norm: unsafe fn(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]),
    /// In place, numerically stable (max subtracted).
    pub softmax: unsafe fn(x: &mut [f32]),
    /// In place: `y = scale·x`, `x[i] = e^(y[i] − max y)` (`math::exp_f64`,
    /// rounded to f32) over their f64 sum (`math::reduce_f64_lanes`' lanes,
    /// then the tail in order) rounded to f32; bitwise equal on every path.
    pub softmax_f64acc: unsafe fn(x: &mut [f32], scale: f32),
    /// `softmax_f64acc` with `math::exp` for the exponentials (separate
    /// IEEE operations, no FMA); bitwise equal on every path.
    pub softmax_f32exp: unsafe fn(x: &mut [f32], scale: f32),
    /// Rotates pairs `(x[i], x[i + d/2])` of every `d`-wide head.
    pub rope_neox: unsafe fn(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]),
    /// Rotates pairs `(x[2i], x[2i + 1])` of every `d`-wide head.
    pub rope_interleaved: unsafe fn(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]),
    pub dot_f32: unsafe fn(a: &[f32], b: &[f32]) -> f32,
    pub dot_f16: unsafe fn(a: &[f32], b: &[u16]) -> f32,
    /// `out[r·N + t] = dot_f16(xs[t·k ..][..k], w[r·k ..][..k])` for the
    /// `N = xs.len() / k` vectors and `w.len() / k` rows, bit for bit the
    /// table's own `dot_f16` of each pair.
    pub dot_f16_multi: unsafe fn(xs: &[f32], w: &[u16], k: usize, out: &mut [f32]),
    /// `y += alpha * x`.
    pub axpy_f32: unsafe fn(alpha: f32, x: &[f32], y: &mut [f32]),
    pub axpy_f16: unsafe fn(alpha: f32, x: &[u16], y: &mut [f32]),
    /// `Σ a·b` with exact products summed in f64, rounded once to f32.
    pub dot_f64acc: unsafe fn(a: &[f32], b: &[f32]) -> f32,
    /// `acc += alpha · x` in f64 (exact products; bitwise equal on every path).
    pub axpy_f64acc: unsafe fn(alpha: f32, x: &[f32], acc: &mut [f64]),
    /// `out[j] = dot_f64acc(q, keys[j·K .. (j + 1)·K])` with `K = q.len()`,
    /// bit for bit the table's own `dot_f64acc` of each row.
    pub dot_f64acc_rows: unsafe fn(q: &[f32], keys: &[f32], out: &mut [f32]),
    /// `acc[i] += Σ_j p[j]·values[j·K + i]` with `K = acc.len()`, summed in
    /// f64 in order of `j`: bit for bit `axpy_f64acc` over the rows.
    pub weighted_sum_f64acc: unsafe fn(p: &[f32], values: &[f32], acc: &mut [f64]),
    /// `out[g·N + j] = dot_f64acc(qs[g·k ..][..k], keys[j·k ..][..k])` for
    /// the `G = qs.len() / k` queries and `N = keys.len() / k` keys, bit for
    /// bit the table's own `dot_f64acc` of each pair (`k > 0`).
    pub dot_f64acc_queries: unsafe fn(qs: &[f32], keys: &[f32], k: usize, out: &mut [f32]),
    /// `accs[g·k + i] += Σ_j ps[g·N + j]·values[j·k + i]` for the
    /// `G = accs.len() / k` queries and `N = values.len() / k` rows: bit for
    /// bit the table's own `weighted_sum_f64acc` per query (`k > 0`).
    pub weighted_sum_f64acc_queries:
        unsafe fn(ps: &[f32], values: &[f32], k: usize, accs: &mut [f64]),
    /// Attention scores over an f16 KV cache: `out[g·N + j]` = the dot of
    /// query `g` of `qs` and key `j` of `keys` (f16 bits; `G = qs.len() / k`
    /// queries, `N = keys.len() / k` keys, `k > 0`) in f32 FMA chains, the
    /// lanes of `math::F32_LANES` joined by `math::reduce_f32_lanes`;
    /// bitwise equal on every path.
    pub dot_f32acc_queries_f16: unsafe fn(qs: &[f32], keys: &[u16], k: usize, out: &mut [f32]),
    /// `accs[g·k + i] = fma(ps[g·N + j], values[j·k + i], accs[g·k + i])`
    /// for `j = 0, 1, …` in order, values in f16 bits (`G = accs.len() / k`
    /// queries, `N = values.len() / k` rows, `k > 0`); bitwise equal on
    /// every path.
    pub weighted_sum_f32acc_queries_f16:
        unsafe fn(ps: &[f32], values: &[u16], k: usize, accs: &mut [f32]),
    /// `dot_f32acc_queries_f16` over keys widened to f32 first, bit for
    /// bit the same.
    pub dot_f32acc_queries: unsafe fn(qs: &[f32], keys: &[f32], k: usize, out: &mut [f32]),
    /// `weighted_sum_f32acc_queries_f16` over values widened to f32 first,
    /// bit for bit the same.
    pub weighted_sum_f32acc_queries:
        unsafe fn(ps: &[f32], values: &[f32], k: usize, accs: &mut [f32]),
    /// `y[r - rows.start] = Σ_k w[r, k] x[k]`, `w` row-major f16 `M × K`.
    pub gemv_f16: GemvFn<u16>,
    /// Same over Q8_0 blocks (34 bytes: f16 scale, 32 × i8) per 32 weights.
    pub gemv_q8_0: GemvFn<u8>,
    /// `out[r·N + t] = gemv_q8_0` of row `r` of `w` against f32 vector `t`
    /// of `xs` (`N` vectors of `k`), bit for bit.
    pub dot_q8_0_multi: unsafe fn(xs: &[f32], w: &[u8], k: usize, out: &mut [f32]),
    /// `y[r - rows.start] = Σ_blocks d_w·d_x·Σ scale·(L − 32)·q`: Q6_K rows
    /// against one row of Q8_K activations (`crate::kquant`), bit for bit
    /// the scalar reference.
    pub gemv_q6k: GemvFn<u8, u8>,
    /// `out[r·N + t] = gemv_q6k` of row `r` of `w` against Q8_K vector `t`
    /// of `xqs` (`N` vectors of `k / 256` blocks), bit for bit.
    pub dot_q6k_multi: unsafe fn(xqs: &[u8], w: &[u8], k: usize, out: &mut [f32]),
}

/// A handle on one supported ISA's kernels. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Dispatch {
    pub(crate) table: &'static Table,
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("isa", &self.table.isa)
            .finish()
    }
}

impl Dispatch {
    /// The path for this process: `BITNET_KERNEL` if set (under `std`), else
    /// the best the CPU supports. Detected once and cached.
    ///
    /// # Panics
    /// If `BITNET_KERNEL` is set to an unknown name or a path this CPU lacks;
    /// use [`Dispatch::from_env`] to get that as an error instead.
    pub fn detect() -> Dispatch {
        #[cfg(feature = "std")]
        {
            static CHOSEN: std::sync::OnceLock<Dispatch> = std::sync::OnceLock::new();
            *CHOSEN.get_or_init(|| match Dispatch::from_env() {
                Ok(d) => d,
                Err(e) => panic!("BITNET_KERNEL: {e}"),
            })
        }
        #[cfg(not(feature = "std"))]
        {
            Dispatch::best()
        }
    }

    /// Like [`Dispatch::detect`] but uncached and fallible.
    #[cfg(feature = "std")]
    pub fn from_env() -> Result<Dispatch, Error> {
        match std::env::var("BITNET_KERNEL") {
            Ok(name) if !name.trim().is_empty() => Dispatch::for_isa(Isa::from_name(&name)?),
            _ => Ok(Dispatch::best()),
        }
    }

    /// The best path this CPU supports, ignoring `BITNET_KERNEL`.
    pub fn best() -> Dispatch {
        Dispatch::for_isa(Isa::best()).unwrap_or(Dispatch {
            table: &arch::scalar::TABLE,
        })
    }

    /// The kernels of `isa`, or an error if the CPU lacks it.
    pub fn for_isa(isa: Isa) -> Result<Dispatch, Error> {
        if !isa.is_supported() {
            return Err(Error::IsaUnavailable { isa });
        }
        let table = match isa {
            Isa::Scalar => &arch::scalar::TABLE,
            Isa::Avx2 => arch::x86_64::avx2_table(),
            Isa::Avx512 => arch::x86_64::avx512_table(),
            Isa::Neon => arch::aarch64::neon_table(),
            Isa::NeonDotprod => arch::aarch64::dotprod_table(),
        };
        Ok(Dispatch { table })
    }

    /// The ISA whose kernels this handle runs.
    pub fn isa(&self) -> Isa {
        self.table.isa
    }

    /// The ternary matmul family this ISA runs fastest for `n` tokens, as
    /// measured by `benches/` on a Sapphire Rapids core (see README).
    pub fn family_for(&self, n: usize) -> Family {
        arch::preferred_family(self.table.isa, n)
    }

    /// A one-line description, e.g. `avx512 (gemv: mad, gemm: mad)`.
    pub fn describe(&self) -> Description {
        Description(*self)
    }
}

/// Display adapter returned by [`Dispatch::describe`].
#[derive(Debug, Clone, Copy)]
pub struct Description(Dispatch);

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (gemv: {}, gemm: {})",
            self.0.isa(),
            self.0.family_for(1).name(),
            self.0.family_for(128).name()
        )
    }
}
