//! Shared bench bodies: 2B-4T weight shapes, weight pools larger than the
//! last-level cache (so decode-style GEMV reads DRAM as it does in a model),
//! every supported kernel path, and a roofline summary that divides each
//! measured weight stream by the read bandwidth measured in the same run.

use bitnet_kernels::format::{I2sMatrix, TlMatrix, WeightScale};
use bitnet_kernels::{Dispatch, Family, Isa, QuantizedActs};
use bitnet_model::synthetic::{activations, ternary_i2s_codes};
use criterion::Criterion;
use std::sync::Mutex;
use std::time::Duration;

/// A weight shape of BitNet-b1.58-2B-4T: `M` output rows × `K` inputs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub what: &'static str,
}

impl Shape {
    /// `MxK`, zero-padded so reports sort by size.
    pub fn id(&self) -> String {
        format!("{:06}x{:05}", self.m, self.k)
    }
}

pub const SHAPES: [Shape; 4] = [
    Shape {
        m: 2560,
        k: 2560,
        what: "attn_q / attn_output",
    },
    Shape {
        m: 640,
        k: 2560,
        what: "attn_k / attn_v",
    },
    Shape {
        m: 6912,
        k: 2560,
        what: "ffn_gate / ffn_up",
    },
    Shape {
        m: 2560,
        k: 6912,
        what: "ffn_down",
    },
];

/// The tied F16 LM head (token embedding) of 2B-4T.
pub const LM_HEAD: Shape = Shape {
    m: 128_256,
    k: 2560,
    what: "token_embd (tied LM head)",
};

/// Token counts: decode (1), small batches, prefill.
pub const TOKENS: [usize; 4] = [1, 4, 16, 128];

/// Bytes a weight pool spans at least: far past this CPU's 32 MiB L3.
pub const POOL_BYTES: usize = 256 << 20;

/// Criterion settings shared by every bench: short, because each sample is
/// already long and the machine has two cores.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Copies of one random ternary matrix in both kernel layouts.
#[derive(Debug)]
pub struct WeightPool {
    pub shape: Shape,
    codes: Vec<Vec<u8>>,
    tl: Vec<Vec<u8>>,
}

impl WeightPool {
    /// At least `min_bytes` of I2_S codes (at least one copy).
    pub fn new(shape: Shape, min_bytes: usize) -> WeightPool {
        let (m, k) = (shape.m, shape.k);
        let codes = ternary_i2s_codes(m, k, (m * k) as u64);
        let copies = min_bytes.div_ceil(codes.len()).max(1);
        let tl_one = {
            let w = I2sMatrix::new(&codes, m, k, WeightScale::Tensor(0.5)).unwrap();
            let mut buf = vec![0u8; TlMatrix::packed_len(m, k)];
            TlMatrix::pack(&w, &mut buf).unwrap();
            buf
        };
        WeightPool {
            shape,
            tl: vec![tl_one; copies],
            codes: vec![codes; copies],
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn i2s(&self, i: usize) -> I2sMatrix<'_> {
        let s = self.shape;
        I2sMatrix::new(
            &self.codes[i % self.len()],
            s.m,
            s.k,
            WeightScale::Tensor(0.5),
        )
        .unwrap()
    }

    pub fn tl(&self, i: usize) -> TlMatrix<'_> {
        let s = self.shape;
        TlMatrix::from_packed(&self.tl[i % self.len()], s.m, s.k, 0.5).unwrap()
    }

    /// Bytes one matmul streams: the packed weights of one copy.
    pub fn bytes(&self, family: Family) -> usize {
        match family {
            Family::MultiplyAdd => self.codes[0].len(),
            Family::Lookup => self.tl[0].len(),
        }
    }
}

/// `n` quantized activation rows of length `k`.
#[derive(Debug)]
pub struct Acts {
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    k: usize,
}

impl Acts {
    pub fn new(n: usize, k: usize) -> Acts {
        let x = activations(n * k, (n * k) as u64);
        let (mut q, mut scales, mut sums) = (vec![0i8; n * k], vec![0f32; n], vec![0i32; n]);
        Dispatch::for_isa(Isa::Scalar)
            .unwrap()
            .quantize(&x, k, &mut q, &mut scales, &mut sums)
            .unwrap();
        Acts { q, scales, sums, k }
    }

    pub fn view(&self) -> QuantizedActs<'_> {
        QuantizedActs::new(&self.q, &self.scales, &self.sums, self.k).unwrap()
    }
}

/// One ternary matmul of the whole matrix `i` of the pool on one thread.
pub fn run(
    d: Dispatch,
    family: Family,
    pool: &WeightPool,
    i: usize,
    x: &QuantizedActs<'_>,
    y: &mut [f32],
) {
    let m = pool.shape.m;
    match family {
        Family::MultiplyAdd => d.gemm_i2s(&pool.i2s(i), x, 0..m, y).unwrap(),
        Family::Lookup => d.gemm_tl(&pool.tl(i), x, 0..m, y).unwrap(),
    }
}

/// Every path this CPU supports, best first.
pub fn paths() -> Vec<Dispatch> {
    let mut v: Vec<Dispatch> = Isa::supported()
        .map(|i| Dispatch::for_isa(i).unwrap())
        .collect();
    v.reverse();
    v
}

pub const FAMILIES: [Family; 2] = [Family::MultiplyAdd, Family::Lookup];

/// `isa-family`, e.g. `avx512-mad`.
pub fn path_id(d: Dispatch, family: Family) -> String {
    format!("{}-{}", d.isa().name(), family.name())
}

/// Best observed seconds per call of each streaming bench, for the summary.
#[derive(Debug, Default)]
pub struct Roofline {
    rows: Mutex<Vec<(String, f64, f64)>>,
}

impl Roofline {
    /// Records one batch of `iters` calls, each streaming `bytes`, at `secs`
    /// per call (keeps the best per name). Batches shorter than 20 ms
    /// (criterion's first warm-up calls) are ignored: a lucky call is not a rate.
    pub fn record(&self, name: &str, bytes: usize, iters: u64, secs: f64) {
        if secs * (iters as f64) < 0.02 {
            return;
        }
        let mut rows = self.rows.lock().unwrap();
        match rows.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.2 = r.2.min(secs),
            None => rows.push((name.to_string(), bytes as f64, secs)),
        }
    }

    /// Prints `name: GB/s = x % of the read bandwidth` for every entry.
    pub fn print(&self, read_gbs: f64) {
        println!(
            "\nroofline (one thread; read bandwidth measured in this run: {read_gbs:.1} GB/s)"
        );
        for (name, bytes, secs) in self.rows.lock().unwrap().iter() {
            let gbs = bytes / secs / 1e9;
            println!(
                "  {name:<44} {gbs:6.2} GB/s  {:5.1} % of read bandwidth",
                100.0 * gbs / read_gbs
            );
        }
    }
}
