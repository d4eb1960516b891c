//! Keys and values of past positions, per layer, owned by the caller so one
//! model can serve many sequences.

use crate::config::Config;
use crate::error::ModelError;
use bitnet_kernels::Dispatch;
use std::ops::Range;

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

/// Rows of one KV head read in place: f16 bits or f32, which the attention
/// kernels widen in registers.
#[derive(Clone, Copy)]
pub(crate) enum HeadRows<'a> {
    F16(&'a [u16]),
    F32(&'a [f32]),
}

/// Which half of a [`KvCache`] to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Half {
    Keys,
    Values,
}

/// Keys and values of every layer, each `kv_heads × capacity × head_dim`:
/// head-major, so attention reads one head's positions as one contiguous
/// run (prefetched as one stream by the kernels that read it).
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Rows>,
    values: Vec<Rows>,
    kv_heads: usize,
    head_dim: usize,
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
            kv_heads: config.kv_heads,
            head_dim: config.head_dim,
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

    /// Floats per head of one position.
    pub(crate) fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The element type of its keys and values.
    pub fn kv_type(&self) -> KvType {
        match self.keys.first() {
            Some(Rows::F32(_)) => KvType::F32,
            _ => KvType::F16,
        }
    }

    /// Writes every element now, so the whole cache is resident memory from
    /// here on instead of growing page by page as positions fill (a server
    /// reserving its footprint at start). Keeps the positions held.
    pub fn commit(&mut self) {
        let (per_head, held) = (self.capacity * self.head_dim, self.len * self.head_dim);
        for rows in self.keys.iter_mut().chain(self.values.iter_mut()) {
            match rows {
                Rows::F16(r) => r.chunks_exact_mut(per_head).for_each(|h| h[held..].fill(0)),
                Rows::F32(r) => r
                    .chunks_exact_mut(per_head)
                    .for_each(|h| h[held..].fill(0.0)),
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

    /// Stores the key and value rows (`kv_heads·head_dim` each) of
    /// position `pos` of `layer`.
    pub(crate) fn store(
        &mut self,
        d: Dispatch,
        layer: usize,
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(), ModelError> {
        let hd = self.head_dim;
        for (rows, src) in [(&mut self.keys[layer], k), (&mut self.values[layer], v)] {
            for (h, src) in src.chunks_exact(hd).take(self.kv_heads).enumerate() {
                let at = (h * self.capacity + pos) * hd;
                match rows {
                    Rows::F16(r) => d.f32_to_f16(src, &mut r[at..at + hd])?,
                    Rows::F32(r) => r[at..at + hd].copy_from_slice(src),
                }
            }
        }
        Ok(())
    }

    /// The keys (or values) of KV head `head` at `positions` of `layer`:
    /// `positions.len() × head_dim` elements in place, as the cache holds
    /// them.
    pub(crate) fn head_rows(
        &self,
        half: Half,
        layer: usize,
        head: usize,
        positions: Range<usize>,
    ) -> HeadRows<'_> {
        let rows = match half {
            Half::Keys => &self.keys[layer],
            Half::Values => &self.values[layer],
        };
        let hd = self.head_dim;
        let at = (head * self.capacity + positions.start) * hd
            ..(head * self.capacity + positions.end) * hd;
        match rows {
            Rows::F16(r) => HeadRows::F16(&r[at]),
            Rows::F32(r) => HeadRows::F32(&r[at]),
        }
    }
}
