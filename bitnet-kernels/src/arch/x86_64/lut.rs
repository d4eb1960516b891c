//! x86 lookup-table kernels: what differs from the scalar [`Lut`] kernel.
//!
//! * AVX2: `vpshufb` looks up 16-byte tables, so each entry `T` is split
//!   into byte planes `T & 127` and `T >> 7` (see [`tile_avx2`] for why not
//!   the usual low/high bytes); each 32-byte half of a step covers 32 rows.
//! * AVX-512: a 64-byte step is 32 words, each two rows' indices; `vpermw`
//!   looks up `i16` entries directly from a pair's (duplicated) table, 32
//!   rows per op with no unpacking.

use crate::arch::lut::{code_weight, gemm, Lut, BLOCK};
use crate::format::{TlMatrix, TL_ROW_TILE};
use crate::quant::QuantizedActs;
use core::arch::x86_64::*;
use core::ops::Range;

/// Bytes of codes per 128-activation block of one tile.
const BLOCK_CODES: usize = BLOCK / 4 * TL_ROW_TILE;
/// Bytes of plane tables per pair.
const PAIR_TABLE_BYTES: usize = 32;
/// Bytes of plane tables per 128-activation block.
const BLOCK_TABLES: usize = BLOCK / 2 * PAIR_TABLE_BYTES;

/// `(c0 − 1, c1 − 1)` for entry `e = 4·c0 + c1`, as `i16` pairs for `vpmaddwd`;
/// entries `0..4, 8..12` then `4..8, 12..16` so that `vpackssdw` of the two
/// products restores the natural order within each 128-bit lane.
const fn madd_weights(second: bool) -> [i16; 16] {
    let mut w = [0i16; 16];
    let mut i = 0;
    while i < 8 {
        let e = (i % 4) + 8 * (i / 4) + if second { 4 } else { 0 };
        w[2 * i] = code_weight(e / 4);
        w[2 * i + 1] = code_weight(e % 4);
        i += 1;
    }
    w
}

/// `c − 1` for the first (`shift = 2`) or second (`shift = 0`) code of each
/// entry, twice over (the AVX-512 tables hold each pair's entries twice).
const fn entry_weights(shift: u32) -> [i16; 32] {
    let mut w = [0i16; 32];
    let mut e = 0;
    while e < 32 {
        w[e] = code_weight((e % 16) >> shift & 3);
        e += 1;
    }
    w
}

pub(crate) struct Avx2;

impl Lut for Avx2 {
    const PAIR_BYTES: usize = PAIR_TABLE_BYTES;

    #[inline(always)]
    unsafe fn build(acts: &[i8], table: &mut [u8]) {
        // SAFETY: the caller guarantees AVX2.
        unsafe { build_planes_avx2(acts, table) }
    }

    #[inline(always)]
    unsafe fn tile(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
        // SAFETY: the caller guarantees AVX2.
        unsafe { tile_avx2(table, codes, acc) }
    }
}

/// Plane tables: pair `p` is, at `32p`, the 16 bytes `T & 127` then the 16
/// bytes `T >> 7` (in `[−4, 3]`) of its entries `T`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn build_planes_avx2(acts: &[i8], table: &mut [u8]) {
    assert!(acts.len().is_multiple_of(16) && table.len() == acts.len() * 16);
    let w0 = madd_weights(false);
    let w1 = madd_weights(true);
    // SAFETY: the constants are 32 bytes; every load and store below stays
    // within `acts` (16 per iteration) and `table` (256 per iteration),
    // whose lengths were checked above.
    unsafe {
        let w0 = _mm256_loadu_si256(w0.as_ptr().cast());
        let w1 = _mm256_loadu_si256(w1.as_ptr().cast());
        let low7 = _mm256_set1_epi16(0x7f);
        for (a, out) in acts.chunks_exact(16).zip(table.chunks_exact_mut(256)) {
            let words = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().cast()));
            for p in 0..8 {
                // Every dword is the pair (a0, a1) as two i16.
                let pair = _mm256_permutevar8x32_epi32(words, _mm256_set1_epi32(p));
                let t =
                    _mm256_packs_epi32(_mm256_madd_epi16(pair, w0), _mm256_madd_epi16(pair, w1));
                // Per lane: 8 low-plane bytes then 8 high-plane bytes; then
                // gather each plane's two lanes.
                let t = _mm256_packs_epi16(_mm256_and_si256(t, low7), _mm256_srai_epi16::<7>(t));
                let t = _mm256_permute4x64_epi64::<0b11_01_10_00>(t);
                _mm256_storeu_si256(out.as_mut_ptr().add(32 * p as usize).cast(), t);
            }
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile_avx2(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
    let blocks = codes.len() / BLOCK_CODES;
    assert!(codes.len().is_multiple_of(BLOCK_CODES) && table.len() == blocks * BLOCK_TABLES);
    // Why `T = 128·H + L` rather than low/high bytes: rejoining byte planes
    // into words takes two unpacks per lookup, on the same shuffle ports as
    // the lookups. With 7-bit `L` the two `L` (≤ 127) of a step add in `u8`,
    // the `H ∈ [−4, 3]` add in `i8` for 16 steps (32 lookups, ≥ −128), and
    // both split into even- and odd-row words with masks and shifts: half
    // the shuffles per step. The words add with wrapping: the exact block
    // sum `ΣL + 128·ΣH` fits `i16` (see the module docs), so it is what
    // they hold at the end.
    // SAFETY: block `b` reads codes `[b·2048, (b+1)·2048)` and tables
    // `[b·2048, (b+1)·2048)`, within the lengths checked above; `acc` is 64 i32.
    unsafe {
        let nib = _mm256_set1_epi8(0x0f);
        let low_byte = _mm256_set1_epi16(0xff);
        let high_byte = _mm256_set1_epi16(0xff00u16 as i16);
        let acc_ptr = acc.as_mut_ptr();
        for b in 0..blocks {
            let c = codes.as_ptr().add(b * BLOCK_CODES);
            let t = table.as_ptr().add(b * BLOCK_TABLES);
            // Per 32-row half: word j of `even`/`odd` is row 2j/2j+1 of its
            // 16-row lane.
            let mut even = [_mm256_setzero_si256(); 2];
            let mut odd = [_mm256_setzero_si256(); 2];
            for part in 0..2 {
                let mut high = [_mm256_setzero_si256(); 2];
                for s in 16 * part..16 * part + 16 {
                    let pairs = t.add(2 * s * PAIR_TABLE_BYTES);
                    let plane = |i: usize| {
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(pairs.add(16 * i).cast()))
                    };
                    let (l0, h0, l1, h1) = (plane(0), plane(1), plane(2), plane(3));
                    for half in 0..2 {
                        let w = _mm256_loadu_si256(c.add(s * TL_ROW_TILE + 32 * half).cast());
                        let i0 = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nib);
                        let i1 = _mm256_and_si256(w, nib);
                        let l = _mm256_add_epi8(
                            _mm256_shuffle_epi8(l0, i0),
                            _mm256_shuffle_epi8(l1, i1),
                        );
                        let h = _mm256_add_epi8(
                            _mm256_shuffle_epi8(h0, i0),
                            _mm256_shuffle_epi8(h1, i1),
                        );
                        high[half] = _mm256_add_epi8(high[half], h);
                        even[half] = _mm256_add_epi16(even[half], _mm256_and_si256(l, low_byte));
                        odd[half] = _mm256_add_epi16(odd[half], _mm256_srli_epi16::<8>(l));
                    }
                }
                for half in 0..2 {
                    // 128 · the low (even-row) and high (odd-row) byte, signed.
                    let h = high[half];
                    let e = _mm256_srai_epi16::<1>(_mm256_slli_epi16::<8>(h));
                    let o = _mm256_srai_epi16::<1>(_mm256_and_si256(h, high_byte));
                    even[half] = _mm256_add_epi16(even[half], e);
                    odd[half] = _mm256_add_epi16(odd[half], o);
                }
            }
            for half in 0..2 {
                let (e, o) = (even[half], odd[half]);
                // Rows 0..8 and 16..24, then 8..16 and 24..32.
                let (lo, hi) = (_mm256_unpacklo_epi16(e, o), _mm256_unpackhi_epi16(e, o));
                let rows = [
                    _mm256_castsi256_si128(lo),
                    _mm256_castsi256_si128(hi),
                    _mm256_extracti128_si256::<1>(lo),
                    _mm256_extracti128_si256::<1>(hi),
                ];
                for (q, r) in rows.into_iter().enumerate() {
                    let p = acc_ptr.add(32 * half + 8 * q).cast::<__m256i>();
                    let sum = _mm256_add_epi32(_mm256_loadu_si256(p), _mm256_cvtepi16_epi32(r));
                    _mm256_storeu_si256(p, sum);
                }
            }
        }
    }
}

pub(crate) struct Avx512;

impl Lut for Avx512 {
    const PAIR_BYTES: usize = 2 * PAIR_TABLE_BYTES;

    #[inline(always)]
    unsafe fn build(acts: &[i8], table: &mut [u8]) {
        // SAFETY: the caller guarantees AVX-512 F/BW.
        unsafe { build_i16_avx512(acts, table) }
    }

    #[inline(always)]
    unsafe fn tile(table: &[u8], codes: &[u8], acc: &mut [i32; TL_ROW_TILE]) {
        // SAFETY: the caller guarantees AVX-512 F/BW.
        unsafe { tile_avx512::<1>(table, [codes], [acc]) }
    }

    #[inline(always)]
    unsafe fn tiles<const T: usize>(
        table: &[u8],
        codes: [&[u8]; T],
        acc: [&mut [i32; TL_ROW_TILE]; T],
    ) {
        // SAFETY: the caller guarantees AVX-512 F/BW.
        unsafe { tile_avx512::<T>(table, codes, acc) }
    }
}

/// `i16` tables duplicated: pair `p`'s 16 entries twice, at `64p`, so that
/// `vpermw` (5-bit indices) can ignore bit 4 of an index.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn build_i16_avx512(acts: &[i8], table: &mut [u8]) {
    assert!(acts.len().is_multiple_of(32) && table.len() == acts.len() * 32);
    let w0 = entry_weights(2);
    let w1 = entry_weights(0);
    // SAFETY: the constants are 64 bytes; each iteration reads 32
    // activations and writes 1024 table bytes, within the checked lengths.
    unsafe {
        let w0 = _mm512_loadu_si512(w0.as_ptr().cast());
        let w1 = _mm512_loadu_si512(w1.as_ptr().cast());
        let two = _mm512_set1_epi16(2);
        for (a, out) in acts.chunks_exact(32).zip(table.chunks_exact_mut(1024)) {
            let words = _mm512_cvtepi8_epi16(_mm256_loadu_si256(a.as_ptr().cast()));
            let mut i0 = _mm512_setzero_si512();
            let mut i1 = _mm512_set1_epi16(1);
            for p in 0..16 {
                let a0 = _mm512_permutexvar_epi16(i0, words);
                let a1 = _mm512_permutexvar_epi16(i1, words);
                let t = _mm512_add_epi16(_mm512_mullo_epi16(a0, w0), _mm512_mullo_epi16(a1, w1));
                _mm512_storeu_si512(out.as_mut_ptr().add(64 * p).cast(), t);
                i0 = _mm512_add_epi16(i0, two);
                i1 = _mm512_add_epi16(i1, two);
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn tile_avx512<const T: usize>(
    table: &[u8],
    codes: [&[u8]; T],
    acc: [&mut [i32; TL_ROW_TILE]; T],
) {
    let blocks = table.len() / (2 * BLOCK_TABLES);
    assert!(table.len() == blocks * 2 * BLOCK_TABLES);
    assert!(codes.iter().all(|c| c.len() == blocks * BLOCK_CODES));
    // Word i of a step holds rows 2i (low byte) and 2i+1 (high byte).
    // vpermw reads index bits 4:0 and the tables are duplicated, so bit 4
    // is free: `w` and `w >> 4` index the low byte's nibbles, `w >> 8` and
    // `w >> 12` the high byte's, with no masking.
    // SAFETY: block `b` reads codes `[b·2048, (b+1)·2048)` of each tile and
    // tables `[b·4096, (b+1)·4096)`, within the lengths checked above;
    // each `acc` is 64 i32.
    unsafe {
        // i32 sums of the even rows (0, 2, .., 30 then 32, .., 62) and odd rows.
        let mut even = [[_mm512_setzero_si512(); 2]; T];
        let mut odd = [[_mm512_setzero_si512(); 2]; T];
        for b in 0..blocks {
            let t = table.as_ptr().add(b * 2 * BLOCK_TABLES);
            let mut se = [_mm512_setzero_si512(); T];
            let mut so = [_mm512_setzero_si512(); T];
            for s in 0..BLOCK / 4 {
                let first = _mm512_loadu_si512(t.add(2 * s * Avx512::PAIR_BYTES).cast());
                let second = _mm512_loadu_si512(t.add((2 * s + 1) * Avx512::PAIR_BYTES).cast());
                for i in 0..T {
                    let c = codes[i].as_ptr().add(b * BLOCK_CODES + s * TL_ROW_TILE);
                    let w = _mm512_loadu_si512(c.cast());
                    let look = |idx, table| _mm512_permutexvar_epi16(idx, table);
                    se[i] = _mm512_add_epi16(se[i], look(_mm512_srli_epi16::<4>(w), first));
                    se[i] = _mm512_add_epi16(se[i], look(w, second));
                    so[i] = _mm512_add_epi16(so[i], look(_mm512_srli_epi16::<12>(w), first));
                    so[i] = _mm512_add_epi16(so[i], look(_mm512_srli_epi16::<8>(w), second));
                }
            }
            let widen = |v: __m512i| {
                [
                    _mm512_cvtepi16_epi32(_mm512_castsi512_si256(v)),
                    _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(v)),
                ]
            };
            for i in 0..T {
                let (e, o) = (widen(se[i]), widen(so[i]));
                for q in 0..2 {
                    even[i][q] = _mm512_add_epi32(even[i][q], e[q]);
                    odd[i][q] = _mm512_add_epi32(odd[i][q], o[q]);
                }
            }
        }
        // Re-interleave even and odd rows into row order.
        let first_half: [i32; 16] = core::array::from_fn(|i| (i / 2 + 16 * (i % 2)) as i32);
        let lo = _mm512_loadu_si512(first_half.as_ptr().cast());
        let hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        for (i, acc) in acc.into_iter().enumerate() {
            let acc_ptr = acc.as_mut_ptr();
            for q in 0..2 {
                for (h, idx) in [lo, hi].into_iter().enumerate() {
                    let rows = _mm512_permutex2var_epi32(even[i][q], idx, odd[i][q]);
                    let p = acc_ptr.add(32 * q + 16 * h);
                    let sum = _mm512_add_epi32(_mm512_loadu_si512(p.cast()), rows);
                    _mm512_storeu_si512(p.cast(), sum);
                }
            }
        }
    }
}

/// AVX2 entry (`Table::gemm_tl`).
///
/// # Safety
/// As [`gemm`], on a CPU with AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_tl_avx2(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    // SAFETY: same contract; AVX2 is enabled here.
    unsafe { gemm::<Avx2>(w, x, rows, y, y_stride) }
}

/// AVX-512 entry (`Table::gemm_tl`).
///
/// # Safety
/// As [`gemm`], on a CPU with AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub(crate) unsafe fn gemm_tl_avx512(
    w: &TlMatrix<'_>,
    x: &QuantizedActs<'_>,
    rows: Range<usize>,
    y: *mut f32,
    y_stride: usize,
) {
    // SAFETY: same contract; AVX-512 F/BW are enabled here.
    unsafe { gemm::<Avx512>(w, x, rows, y, y_stride) }
}
