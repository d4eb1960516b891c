//! Keys and values of past positions, per layer, owned by the caller so one
//! model can serve many sequences.

use crate::config::Config;
use crate::error::ModelError;
use bitnet_kernels::Dispatch;

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// IEEE half: half the memory and bandwidth; what bitnet.cpp uses.
    #[default]
    F16,
    F32,
}

#[derive(Debug)]
enum Rows {
    F16(Vec<u16>),
    F32(Vec<f32>),
}

/// `layers × capacity × (kv_heads·head_dim)` keys and values.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Rows>,
    values: Vec<Rows>,
    kv_dim: usize,
    capacity: usize,
    len: usize,
}

impl KvCache {
    /// A cache for up to `capacity` positions (at most the model's context).
    /// Errors, before allocating, when it would need more memory than the
    /// machine has available ([`crate::hw::available_memory`]).
    pub fn new(config: &Config, capacity: usize, ty: KvType) -> Result<KvCache, ModelError> {
        if capacity == 0 || capacity > config.ctx {
            return Err(ModelError::Config(format!(
                "KV cache size {capacity} must be between 1 and the context length {}",
                config.ctx
            )));
        }
        let kv_dim = config.kv_dim();
        let per_layer = capacity.checked_mul(kv_dim);
        let needed = KvCache::bytes(config, capacity, ty);
        let available = crate::hw::available_memory().unwrap_or(u64::MAX);
        let (Some(per_layer), true) = (per_layer, needed <= available) else {
            return Err(ModelError::OutOfMemory {
                what: format!("a KV cache of {capacity} positions"),
                needed,
                available,
            });
        };
        let rows = || match ty {
            KvType::F16 => Rows::F16(vec![0; per_layer]),
            KvType::F32 => Rows::F32(vec![0.0; per_layer]),
        };
        Ok(KvCache {
            keys: (0..config.layers).map(|_| rows()).collect(),
            values: (0..config.layers).map(|_| rows()).collect(),
            kv_dim,
            capacity,
            len: 0,
        })
    }

    /// Bytes of keys and values a cache of `capacity` positions holds
    /// (`u64::MAX` if that overflows).
    pub fn bytes(config: &Config, capacity: usize, ty: KvType) -> u64 {
        let elem = match ty {
            KvType::F16 => 2,
            KvType::F32 => 4,
        };
        capacity
            .checked_mul(config.kv_dim())
            .and_then(|n| n.checked_mul(elem * 2 * config.layers))
            .map_or(u64::MAX, |n| n as u64)
    }

    /// Positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes every element now, so the whole cache is resident memory from
    /// here on instead of growing page by page as positions fill (a server
    /// reserving its footprint at start). Keeps the positions held.
    pub fn commit(&mut self) {
        let len = self.len * self.kv_dim;
        for rows in self.keys.iter_mut().chain(self.values.iter_mut()) {
            match rows {
                Rows::F16(r) => r[len..].fill(0),
                Rows::F32(r) => r[len..].fill(0.0),
            }
        }
    }

    /// Forgets every position (a new conversation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops positions from `len` on (e.g. to rewind a rejected continuation).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity);
        self.len = len;
    }

    /// Stores the key and value rows of position `pos` of `layer`.
    pub(crate) fn store(
        &mut self,
        d: Dispatch,
        layer: usize,
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(), ModelError> {
        let span = pos * self.kv_dim..(pos + 1) * self.kv_dim;
        for (rows, src) in [(&mut self.keys[layer], k), (&mut self.values[layer], v)] {
            match rows {
                Rows::F16(r) => d.f32_to_f16(src, &mut r[span.clone()])?,
                Rows::F32(r) => r[span.clone()].copy_from_slice(src),
            }
        }
        Ok(())
    }

    /// The keys and values of KV head `head` at positions `0..len` of
    /// `layer` as contiguous `len × head_dim` f32 rows (f16 widened exactly
    /// by the SIMD kernel), for attention to read many times over.
    pub(crate) fn gather_head(
        &self,
        d: Dispatch,
        layer: usize,
        head: usize,
        head_dim: usize,
        len: usize,
        keys: &mut Vec<f32>,
        values: &mut Vec<f32>,
    ) {
        let off = head * head_dim;
        for (rows, dst) in [(&self.keys[layer], keys), (&self.values[layer], values)] {
            dst.resize(len * head_dim, 0.0);
            for (j, out) in dst.chunks_exact_mut(head_dim).enumerate() {
                let at = j * self.kv_dim + off..j * self.kv_dim + off + head_dim;
                match rows {
                    Rows::F16(r) => d.f16_to_f32(&r[at], out).expect("head-sized rows"),
                    Rows::F32(r) => out.copy_from_slice(&r[at]),
                }
            }
        }
    }
}
