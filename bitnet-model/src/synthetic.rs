//! Reproducible random weights and activations for benches, self-checks and
//! synthetic models (no download needed).

use bitnet_kernels::format::encode_i2s_row;

/// xorshift64: deterministic and fast; not for anything statistical.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// An `m × k` matrix of uniform random trits as I2_S codes (`m·k/4` bytes).
///
/// # Panics
/// If `k` is not a multiple of 128.
pub fn ternary_i2s_codes(m: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut trits = vec![0i8; k];
    let mut codes = vec![0u8; m * k / 4];
    for row in codes.chunks_exact_mut(k / 4) {
        trits
            .iter_mut()
            .for_each(|t| *t = (rng.next_u64() % 3) as i8 - 1);
        encode_i2s_row(&trits, row).expect("k is a multiple of 128");
    }
    codes
}

/// `len` activations uniform in `[-1, 1)`.
pub fn activations(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_f32()).collect()
}
