//! Shared test data: a tiny deterministic RNG and generators for ternary
//! matrices and activations, including the extremes the kernels must survive.
#![allow(dead_code)]

pub mod gguf;

use bitnet_kernels::format::{encode_i2s_row, I2sMatrix, WeightScale};
use bitnet_kernels::{Dispatch, Isa};

/// xorshift64*: fast and reproducible; proptest supplies the seed.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn trit(&mut self) -> i8 {
        self.below(3) as i8 - 1
    }
}

/// Every path this CPU supports (scalar included), honouring a test-time
/// requirement list in `BITNET_REQUIRE_ISA` (checked in `isa_coverage.rs`).
pub fn paths() -> Vec<Dispatch> {
    Isa::supported()
        .map(|isa| Dispatch::for_isa(isa).expect("supported ISA"))
        .collect()
}

pub fn scalar() -> Dispatch {
    Dispatch::for_isa(Isa::Scalar).unwrap()
}

/// How a test fills a matrix or an activation row.
#[derive(Debug, Clone, Copy)]
pub enum Fill {
    Random,
    Zero,
    /// Activations at −128 / 127 only; weights all ±1.
    Extreme,
    /// Mixed: some rows zero, some extreme, some random.
    Mixed,
}

pub const FILLS: [Fill; 4] = [Fill::Random, Fill::Zero, Fill::Extreme, Fill::Mixed];

pub fn trits(rng: &mut TestRng, m: usize, k: usize, fill: Fill) -> Vec<i8> {
    let mut w = vec![0i8; m * k];
    for r in 0..m {
        let row_fill = match fill {
            Fill::Mixed => FILLS[rng.below(3) as usize],
            f => f,
        };
        for v in &mut w[r * k..(r + 1) * k] {
            *v = match row_fill {
                Fill::Zero => 0,
                Fill::Extreme => {
                    if rng.below(2) == 0 {
                        -1
                    } else {
                        1
                    }
                }
                _ => rng.trit(),
            };
        }
    }
    w
}

/// Packs trits (row-major `m × k`) into I2_S codes.
pub fn i2s_codes(w: &[i8], m: usize, k: usize) -> Vec<u8> {
    let mut codes = vec![0u8; m * k / 4];
    for r in 0..m {
        encode_i2s_row(
            &w[r * k..(r + 1) * k],
            &mut codes[r * k / 4..(r + 1) * k / 4],
        )
        .unwrap();
    }
    codes
}

pub fn i2s<'a>(codes: &'a [u8], m: usize, k: usize, scale: f32) -> I2sMatrix<'a> {
    I2sMatrix::new(codes, m, k, WeightScale::Tensor(scale)).unwrap()
}

pub fn acts(rng: &mut TestRng, n: usize, k: usize, fill: Fill) -> Vec<i8> {
    let mut q = vec![0i8; n * k];
    for t in 0..n {
        let row_fill = match fill {
            Fill::Mixed => FILLS[rng.below(3) as usize],
            f => f,
        };
        for v in &mut q[t * k..(t + 1) * k] {
            *v = match row_fill {
                Fill::Zero => 0,
                Fill::Extreme => {
                    if rng.below(2) == 0 {
                        -128
                    } else {
                        127
                    }
                }
                _ => rng.next() as i8,
            };
        }
    }
    q
}

/// A copy of `data` starting one byte past an aligned boundary, so kernels
/// never get to assume alignment.
pub struct Unaligned<T: Copy> {
    buf: Vec<T>,
}

impl<T: Copy + Default> Unaligned<T> {
    pub fn new(data: &[T]) -> Self {
        let mut buf = vec![T::default(); data.len() + 1];
        buf[1..].copy_from_slice(data);
        Unaligned { buf }
    }
    pub fn get(&self) -> &[T] {
        &self.buf[1..]
    }
    pub fn get_mut(&mut self) -> &mut [T] {
        &mut self.buf[1..]
    }
}

/// Exact reference: `Σ trit·q` for one row pair.
pub fn trit_dot(w: &[i8], q: &[i8]) -> i32 {
    w.iter().zip(q).map(|(&a, &b)| a as i32 * b as i32).sum()
}
