//! `bitnet kernels`: what this CPU runs, proof that it is exact, and how
//! close decode gets to the memory bandwidth.

use crate::args::KernelsArgs;
use crate::error::usage;
use bitnet_kernels::format::{I2sMatrix, TlMatrix, WeightScale};
use bitnet_kernels::{Dispatch, Family, Isa, QuantizedActs};
use bitnet_model::{hw, synthetic};
use std::time::Instant;

use crate::Result;

pub fn run(args: &KernelsArgs) -> Result<()> {
    let chosen = Dispatch::from_env().map_err(|e| usage(format!("BITNET_KERNEL: {e}")))?;
    let supported: Vec<&str> = Isa::supported().map(Isa::name).collect();
    println!("paths on this CPU: {}", supported.join(", "));
    let forced = std::env::var("BITNET_KERNEL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    println!(
        "chosen: {}{}",
        chosen.describe(),
        forced.map_or(String::new(), |v| format!(" (forced by BITNET_KERNEL={v})"))
    );

    for isa in Isa::supported() {
        self_check(Dispatch::for_isa(isa)?)?;
    }
    println!("self-check: every path equals the scalar reference bit for bit (quantize, mad, lut; N = 1, 3, 17)");

    if !args.no_bench {
        measure(chosen, args.quick);
    }
    Ok(())
}

/// One 2B-4T-width matmul per family and token count, against scalar.
fn self_check(d: Dispatch) -> Result<()> {
    let scalar = Dispatch::for_isa(Isa::Scalar)?;
    let (m, k) = (200, 2560);
    let codes = synthetic::ternary_i2s_codes(m, k, 11);
    let w = I2sMatrix::new(&codes, m, k, WeightScale::Tensor(0.37))?;
    let mut tl_buf = vec![0u8; TlMatrix::packed_len(m, k)];
    let tl = TlMatrix::pack(&w, &mut tl_buf)?;
    for n in [1, 3, 17] {
        let x = synthetic::activations(n * k, n as u64);
        let (mut q, mut s, mut sums) = (vec![0i8; n * k], vec![0f32; n], vec![0i32; n]);
        let (mut q0, mut s0, mut sums0) = (q.clone(), s.clone(), sums.clone());
        let acts = d.quantize(&x, k, &mut q, &mut s, &mut sums)?;
        let reference = scalar.quantize(&x, k, &mut q0, &mut s0, &mut sums0)?;
        if acts.values() != reference.values()
            || (0..n).any(|t| acts.scale(t) != reference.scale(t))
        {
            return Err(format!("{}: quantization differs from scalar (N = {n})", d.isa()).into());
        }
        let mut want = vec![0f32; n * m];
        scalar.gemm_i2s(&w, &reference, 0..m, &mut want)?;
        for family in [Family::MultiplyAdd, Family::Lookup] {
            let mut got = vec![f32::NAN; n * m];
            match family {
                Family::MultiplyAdd => d.gemm_i2s(&w, &acts, 0..m, &mut got)?,
                Family::Lookup => d.gemm_tl(&tl, &acts, 0..m, &mut got)?,
            }
            if got
                .iter()
                .zip(&want)
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                return Err(format!(
                    "{} {}: output differs from scalar (N = {n})",
                    d.isa(),
                    family.name()
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Decode GEMV on the largest 2B-4T projection and on an F16 LM head,
/// streamed from DRAM, and a prefill-sized GEMM, on one thread.
fn measure(d: Dispatch, quick: bool) {
    let pool_bytes = if quick { 64 << 20 } else { 512 << 20 };
    let reps = if quick { 2 } else { 5 };
    let read = hw::read_bandwidth(pool_bytes, 1, reps);
    println!("read bandwidth, 1 thread: {read:.1} GB/s");

    let (m, k) = (6912, 2560);
    let one = synthetic::ternary_i2s_codes(m, k, 1);
    let copies = pool_bytes.div_ceil(one.len());
    let pool: Vec<Vec<u8>> = vec![one; copies];
    let gemv_family = d.family_for(1);
    let tl_pool: Vec<Vec<u8>> = if gemv_family == Family::Lookup {
        pool.iter()
            .map(|c| {
                let w = I2sMatrix::new(c, m, k, WeightScale::Tensor(1.0)).expect("valid shape");
                let mut buf = vec![0u8; TlMatrix::packed_len(m, k)];
                TlMatrix::pack(&w, &mut buf).expect("valid codes");
                buf
            })
            .collect()
    } else {
        Vec::new()
    };
    let bytes = match gemv_family {
        Family::MultiplyAdd => pool[0].len(),
        Family::Lookup => tl_pool[0].len(),
    };
    let gemv = |n: usize, copy: usize, y: &mut [f32], x: &QuantizedActs<'_>, family: Family| {
        match family {
            Family::MultiplyAdd => {
                let w = I2sMatrix::new(&pool[copy], m, k, WeightScale::Tensor(1.0))
                    .expect("valid shape");
                d.gemm_i2s(&w, x, 0..m, &mut y[..n * m])
                    .expect("valid shapes")
            }
            Family::Lookup => {
                let w = TlMatrix::from_packed(&tl_pool[copy], m, k, 1.0).expect("valid shape");
                d.gemm_tl(&w, x, 0..m, &mut y[..n * m])
                    .expect("valid shapes")
            }
        }
    };

    let best = |n: usize, family: Family, iters: usize, cycle: bool| {
        let x = synthetic::activations(n * k, 3);
        let (mut q, mut s, mut sums) = (vec![0i8; n * k], vec![0f32; n], vec![0i32; n]);
        let acts = d
            .quantize(&x, k, &mut q, &mut s, &mut sums)
            .expect("valid shapes");
        let mut y = vec![0f32; n * m];
        let mut best = f64::INFINITY;
        for rep in 0..reps {
            let start = Instant::now();
            for i in 0..iters {
                let copy = if cycle { (rep * iters + i) % copies } else { 0 };
                gemv(n, copy, &mut y, &acts, family);
            }
            best = best.min(start.elapsed().as_secs_f64() / iters as f64);
        }
        best
    };

    let t1 = best(1, gemv_family, copies, true);
    let gbs = bytes as f64 / t1 / 1e9;
    println!(
        "gemv {m}x{k} ({} {}), weights from DRAM: {gbs:.2} GB/s = {:.0} % of read bandwidth, {:.1} GMAC/s",
        d.isa(),
        gemv_family.name(),
        100.0 * gbs / read,
        (m * k) as f64 / t1 / 1e9
    );
    measure_head_gemv(d, pool_bytes, reps, read);
    let n = if quick { 32 } else { 128 };
    let family = d.family_for(n);
    if family == Family::MultiplyAdd || !tl_pool.is_empty() {
        let t = best(n, family, 2, false);
        println!(
            "gemm {m}x{k}, N = {n} ({} {}): {:.1} GMAC/s",
            d.isa(),
            family.name(),
            (m * k * n) as f64 / t / 1e9
        );
    }
}

/// The F16 LM head's GEMV (2B-4T width, rows filling at least 256 MiB),
/// one pass per repetition over weights that are not in any cache.
fn measure_head_gemv(d: Dispatch, pool_bytes: usize, reps: usize, read: f64) {
    let k = 2560;
    // At least 256 MiB, so no last-level cache holds it between passes.
    let m = pool_bytes.max(256 << 20) / (2 * k);
    let w: Vec<u16> = (0..m * k).map(|i| 0x3800 ^ (i as u16 & 0x83ff)).collect();
    let x = synthetic::activations(k, 5);
    let mut y = vec![0f32; m];
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        d.gemv_f16(&w, k, &x, 0..m, &mut y).expect("valid shapes");
        best = best.min(start.elapsed().as_secs_f64());
    }
    let gbs = (w.len() * 2) as f64 / best / 1e9;
    println!(
        "gemv_f16 {m}x{k} (LM head, {}), weights from DRAM: {gbs:.2} GB/s = {:.0} % of read bandwidth",
        d.isa(),
        100.0 * gbs / read,
    );
}
