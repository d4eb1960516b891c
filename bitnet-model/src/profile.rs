//! Where a model instance's time goes, per kind of operation, in counters
//! a monitor can read while the work runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A kind of operation of the forward pass (plus sampling, which the
/// generation loops record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Ternary projections (Q, K, V, O, gate, up, down).
    TernaryMatmul,
    /// KV-cache stores, scores, softmax and value mixing (RoPE counts as
    /// [`Op::NormsRope`]).
    Attention,
    /// The output projection to vocabulary logits.
    LmHead,
    /// Embedding lookup, RMSNorms, RoPE, activation, residual adds, and the
    /// per-token int8 quantization of the projections' inputs (fused with
    /// the norms, token rows split over the workers).
    NormsRope,
    /// Choosing the next token from the logits.
    Sampling,
}

impl Op {
    /// Every operation, in display order.
    pub const ALL: [Op; 5] = [
        Op::TernaryMatmul,
        Op::Attention,
        Op::LmHead,
        Op::NormsRope,
        Op::Sampling,
    ];

    /// A short name for tables and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            Op::TernaryMatmul => "ternary_matmul",
            Op::Attention => "attention",
            Op::LmHead => "lm_head",
            Op::NormsRope => "norms_rope",
            Op::Sampling => "sampling",
        }
    }
}

/// Wall-clock nanoseconds per [`Op`], and the tokens and forward steps they
/// served; all counters only grow.
#[derive(Debug, Default)]
pub struct OpProfile {
    ns: [AtomicU64; Op::ALL.len()],
    tokens: AtomicU64,
    steps: AtomicU64,
}

/// A copy of an [`OpProfile`]'s counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileSnapshot {
    /// Nanoseconds per op, indexed like [`Op::ALL`].
    pub ns: [u64; Op::ALL.len()],
    /// Token rows that went through the forward pass.
    pub tokens: u64,
    /// Forward steps.
    pub steps: u64,
}

impl OpProfile {
    /// Adds `elapsed` to `op`.
    pub fn add(&self, op: Op, elapsed: Duration) {
        self.ns[op as usize].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ProfileSnapshot {
        ProfileSnapshot {
            ns: std::array::from_fn(|i| self.ns[i].load(Ordering::Relaxed)),
            tokens: self.tokens.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn step(&self, tokens: usize) -> Laps<'_> {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        Laps {
            profile: self,
            last: Instant::now(),
        }
    }
}

impl ProfileSnapshot {
    /// Nanoseconds spent in `op`.
    pub fn get(&self, op: Op) -> u64 {
        self.ns[op as usize]
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ProfileSnapshot) -> ProfileSnapshot {
        ProfileSnapshot {
            ns: std::array::from_fn(|i| self.ns[i].saturating_sub(earlier.ns[i])),
            tokens: self.tokens.saturating_sub(earlier.tokens),
            steps: self.steps.saturating_sub(earlier.steps),
        }
    }

    /// Nanoseconds over every op.
    pub fn total_ns(&self) -> u64 {
        self.ns.iter().sum()
    }
}

/// A stopwatch over consecutive sections of one forward step: each `lap`
/// charges the time since the previous one to an op.
pub(crate) struct Laps<'a> {
    profile: &'a OpProfile,
    last: Instant,
}

impl Laps<'_> {
    pub(crate) fn lap(&mut self, op: Op) {
        let now = Instant::now();
        self.profile.add(op, now - self.last);
        self.last = now;
    }
}
