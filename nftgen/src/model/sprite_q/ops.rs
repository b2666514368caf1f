//! The integer primitives of `kiln-pipeline/2` (`nftgen/RECIPE.md` §9): one rounding rule, one
//! fixed-point multiply, an integer square root, dynamic int8 row quantization, integer layer
//! norm, a table softmax and a table SiLU.
//!
//! Every value is an `i32` or `u32`; sums never depend on their order. The one operation that
//! needs a product wider than 32 bits, [`mul_shift`], is defined by its exact result; the CPU
//! computes it with a native wide product, and [`mul_shift_limbs`] computes the same function
//! with 16-bit limbs only, as a WGSL shader must (tested equal).

/// Largest magnitude of an activation (Q12 residual stream, linear outputs): `2^23 − 1`.
pub const ACT_MAX: i32 = (1 << 23) - 1;
/// Fractional bits of activations (Q12).
pub const FRAC: u32 = 12;
/// Fractional bits of the sampler state and the model's output (Q16).
pub const SAMPLE_FRAC: u32 = 16;
/// Largest magnitude of the sampler state and of the model's output: `2^27 − 1` (±2048.0).
pub const SAMPLE_MAX: i32 = (1 << 27) - 1;
/// Entries of the softmax's exponential table: `exp(−k/256)` for k in 0..=4096, Q16.
pub const EXP_ENTRIES: usize = 4097;
/// Entries of the SiLU table: `silu(k/256)` for k in −4096..4096, Q12.
pub const SILU_ENTRIES: usize = 8192;
/// Layer norm's ε (1e-5) in Q24 units of variance.
pub const LN_EPS_Q24: u32 = 168;

/// The rounding rule, stated once: a right shift by `s ≥ 1` rounds half up,
/// `floor((v + 2^(s−1)) / 2^s)`; `s = 0` is the identity. `v + 2^(s−1)` must not overflow
/// (callers keep `|v| < 2^30`).
#[inline(always)]
pub fn rshift_round(v: i32, s: u32) -> i32 {
    if s == 0 {
        v
    } else if s >= 31 {
        // floor((v + 2^30·2^(s−31)) / 2^s) is 0 for every i32 v when s ≥ 32, and for s = 31
        // it is 0 unless v ≥ 2^30: keep the rule exact without an overflowing add.
        if s == 31 && v >= 1 << 30 { 1 } else { 0 }
    } else {
        (v + (1 << (s - 1))) >> s
    }
}

/// `v · 2^a` for a signed amount: a left shift saturating to `±(2^31 − 1)` when `a > 0`, the
/// rounding right shift when `a < 0`.
#[inline(always)]
pub fn shift_sat(v: i32, a: i32) -> i32 {
    if a >= 0 {
        let a = a as u32;
        if a >= 31 {
            return if v > 0 {
                i32::MAX
            } else if v < 0 {
                -i32::MAX
            } else {
                0
            };
        }
        let lim = i32::MAX >> a;
        if v > lim {
            i32::MAX
        } else if v < -lim {
            -i32::MAX
        } else {
            v << a
        }
    } else {
        rshift_round(v, (-a) as u32)
    }
}

/// The fixed-point multiply: `floor((a·m + 2^(s−1)) / 2^s)` on the exact product (0 ≤ s ≤ 62;
/// `s = 0` gives `a·m`), saturated to `±(2^31 − 1)`.
#[inline(always)]
pub fn mul_shift(a: i32, m: i32, s: u32) -> i32 {
    let p = a as i64 * m as i64;
    // 2^(s−1), or 0 when s = 0: branch-free, so loops of it vectorize.
    let half = (1i64 << s) >> 1;
    ((p + half) >> s).clamp(-(i32::MAX as i64), i32::MAX as i64) as i32
}

/// [`mul_shift`] with 32-bit operations only (16-bit limbs), as WGSL computes it. Same results
/// for every input.
pub fn mul_shift_limbs(a: i32, m: i32, s: u32) -> i32 {
    // Magnitudes and sign; |i32::MIN| = 2^31 fits a u32.
    let neg = (a < 0) != (m < 0);
    let (ua, um) = (a.unsigned_abs(), m.unsigned_abs());
    // 64-bit product as (hi, lo) u32 words from 16-bit limbs.
    let (a0, a1) = (ua & 0xFFFF, ua >> 16);
    let (m0, m1) = (um & 0xFFFF, um >> 16);
    let p00 = a0 * m0;
    let p01 = a0 * m1;
    let p10 = a1 * m0;
    let p11 = a1 * m1;
    let mid = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF);
    let lo = (p00 & 0xFFFF) | (mid << 16);
    let hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    // Two's complement negation of (hi, lo) when the product is negative.
    let (hi, lo) = if neg && (hi | lo) != 0 {
        let nlo = (!lo).wrapping_add(1);
        let nhi = (!hi).wrapping_add(if nlo == 0 { 1 } else { 0 });
        (nhi, nlo)
    } else {
        (hi, lo)
    };
    // Add the rounding constant 2^(s−1).
    let (hi, lo) = if s == 0 {
        (hi, lo)
    } else if s - 1 < 32 {
        let c = 1u32 << (s - 1);
        let nlo = lo.wrapping_add(c);
        (hi.wrapping_add(if nlo < lo { 1 } else { 0 }), nlo)
    } else {
        (hi.wrapping_add(1u32 << (s - 1 - 32)), lo)
    };
    // Arithmetic shift right of the signed 64-bit (hi, lo) by s.
    let shi = hi as i32;
    let (rhi, rlo): (i32, u32) = if s == 0 {
        (shi, lo)
    } else if s < 32 {
        (
            shi >> s,
            (lo >> s) | ((hi << (32 - s)) & if s == 0 { 0 } else { u32::MAX }),
        )
    } else {
        (shi >> 31, (shi >> (s - 32)) as u32)
    };
    // Saturate the 64-bit result to ±(2^31 − 1).
    let fits = (rhi == 0 && rlo <= i32::MAX as u32) || (rhi == -1 && rlo > i32::MAX as u32);
    if fits {
        if rlo == 0x8000_0000 {
            -i32::MAX
        } else {
            rlo as i32
        }
    } else if rhi < 0 {
        -i32::MAX
    } else {
        i32::MAX
    }
}

/// Bit length of a magnitude: 0 for 0, else `32 − leading zeros`.
#[inline(always)]
pub fn bit_len(v: u32) -> i32 {
    32 - v.leading_zeros() as i32
}

/// `floor((a + floor(b/2)) / b)` for `b > 0` (division rounding half up).
#[inline(always)]
pub fn div_round(a: i32, b: i32) -> i32 {
    (a + b / 2).div_euclid(b)
}

/// `floor(√n)` by the digit-by-digit (binary restoring) method.
pub fn isqrt(n: u32) -> u32 {
    let mut rem = n;
    let mut root = 0u32;
    let mut bit = 1u32 << 30;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// The row exponent of dynamic quantization: `bit_len(max |x|) − 7` (0 for an all-zero row),
/// so that the row shifted by it fits in `[−127, 127]`.
#[inline(always)]
pub fn row_exponent(x: &[i32]) -> i32 {
    let m = max_abs(x);
    if m == 0 { 0 } else { bit_len(m) - 7 }
}

/// Quantizes `x` with exponent `e` to `[−lim, lim]`: `clamp(shift(x, −e))`.
#[inline(always)]
pub fn quantize_with(x: &[i32], e: i32, lim: i32, out: &mut [i32]) {
    shift_clamp(x, -e, lim, out);
}

/// `out = clamp(shift_sat(x, a), ±lim)` for `0 ≤ lim`, value by value, written so that the loop
/// vectorizes: a left shift is the exact product clamped (`shift_sat`'s saturation lies
/// beyond `lim`), a right shift is [`rshift_round`]'s own expression.
#[inline(always)]
pub fn shift_clamp(x: &[i32], a: i32, lim: i32, out: &mut [i32]) {
    if a >= 0 {
        // |x| · 2^32 exceeds any lim, as shift_sat's saturation does for a ≥ 31.
        let (a, lim) = (a.min(32) as u32, lim as i64);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = ((v as i64) << a).clamp(-lim, lim) as i32;
        }
    } else if a > -31 {
        let s = (-a) as u32;
        let half = 1i32 << (s - 1);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v.wrapping_add(half) >> s).clamp(-lim, lim);
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = shift_sat(v, a).clamp(-lim, lim);
        }
    }
}

/// Largest magnitude of `x` (0 when empty).
#[inline(always)]
pub fn max_abs(x: &[i32]) -> u32 {
    x.iter().map(|v| v.unsigned_abs()).fold(0, u32::max)
}

/// `out = clamp(shift(x, −e), ±127) as i8`, each byte xor `flip` (`i8::MIN` stores `q + 128` as
/// an unsigned byte, for the VNNI kernel). The two branches are [`shift_sat`] for one sign of
/// `e`, written so that each loop vectorizes.
#[inline(always)]
pub fn quantize_i8_with(x: &[i32], e: i32, flip: i8, out: &mut [i8]) {
    if e > 0 {
        // rshift_round (its precondition |x| < 2^30 is the callers').
        let (half, s) = (1i32 << (e - 1), e as u32);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = ((v + half) >> s).clamp(-127, 127) as i8 ^ flip;
        }
    } else {
        // |x| < 2^(7 + e): the left shift stays within ±127.
        let s = (-e) as u32;
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v << s).clamp(-127, 127) as i8 ^ flip;
        }
    }
}

/// Dynamic int8 quantization of one row: returns the exponent `e` with `x ≈ q · 2^e`.
#[inline(always)]
pub fn quantize_row_i8(x: &[i32], out: &mut [i8]) -> i32 {
    let e = row_exponent(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = shift_sat(v, -e).clamp(-127, 127) as i8;
    }
    e
}

/// Saturates to `±ACT_MAX`.
#[inline(always)]
pub fn sat_act(v: i32) -> i32 {
    v.clamp(-ACT_MAX, ACT_MAX)
}

/// SiLU of a Q12 value through the table (`silu[k + 4096] = round(4096·silu(k/256))`):
/// `i = rshift_round(v, 4)`; `i ≥ 4096` → `v`; `i < −4096` → 0; else the table entry.
#[inline(always)]
pub fn silu(v: i32, table: &[i32]) -> i32 {
    let i = rshift_round(v, 4);
    if i >= 4096 {
        v
    } else if i < -4096 {
        0
    } else {
        table[(i + 4096) as usize]
    }
}

/// [`silu`] of every value of `xs`, in place; with the AVX-512 kernel the table is read with
/// 16-lane gathers (same values).
#[inline(always)]
pub fn silu_in_place(kernel: super::gemm::Kernel, xs: &mut [i32], table: &[i32]) {
    assert_eq!(table.len(), SILU_ENTRIES, "SiLU table size");
    #[cfg(target_arch = "x86_64")]
    if kernel == super::gemm::Kernel::Avx512Vnni {
        #[allow(unsafe_code)]
        // SAFETY: the AVX-512 kernel is only chosen on CPUs with AVX-512 F/BW/VL.
        unsafe {
            x86::silu_avx512(xs, table)
        };
        return;
    }
    let _ = kernel;
    for v in xs.iter_mut() {
        *v = silu(*v, table);
    }
}

/// [`softmax_q15`] with the table read by 16-lane gathers under the AVX-512 kernel.
#[inline(always)]
pub fn softmax_q15_with(
    kernel: super::gemm::Kernel,
    z: &[i32],
    exp_table: &[i32],
    out: &mut [u32],
) {
    assert_eq!(exp_table.len(), EXP_ENTRIES, "exp table size");
    #[cfg(target_arch = "x86_64")]
    if kernel == super::gemm::Kernel::Avx512Vnni {
        #[allow(unsafe_code)]
        // SAFETY: the AVX-512 kernel is only chosen on CPUs with AVX-512 F/BW/VL.
        unsafe {
            x86::softmax_avx512(z, exp_table, out)
        };
        return;
    }
    let _ = kernel;
    softmax_q15(z, exp_table, out);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::EXP_ENTRIES;
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512 F must be available; `table` has `SILU_ENTRIES` values.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn silu_avx512(xs: &mut [i32], table: &[i32]) {
        let mut chunks = xs.chunks_exact_mut(16);
        let (eight, top, bottom, last) = (
            _mm512_set1_epi32(8),
            _mm512_set1_epi32(4096),
            _mm512_set1_epi32(-4096),
            _mm512_set1_epi32(4095),
        );
        for c in &mut chunks {
            // SAFETY: `c` holds 16 i32; the gather indices are clamped to 0..=8191 (lanes
            // outside the table's range are then replaced by the blends).
            unsafe {
                let v = _mm512_loadu_si512(c.as_ptr() as *const __m512i);
                let i = _mm512_srai_epi32::<4>(_mm512_add_epi32(v, eight));
                let idx =
                    _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(i, last), bottom), top);
                let g = _mm512_i32gather_epi32::<4>(idx, table.as_ptr());
                let high = _mm512_cmpge_epi32_mask(i, top);
                let low = _mm512_cmplt_epi32_mask(i, bottom);
                let r = _mm512_mask_blend_epi32(high, g, v);
                let r = _mm512_mask_blend_epi32(low, r, _mm512_setzero_si512());
                _mm512_storeu_si512(c.as_mut_ptr() as *mut __m512i, r);
            }
        }
        for v in chunks.into_remainder() {
            *v = super::silu(*v, table);
        }
    }

    /// # Safety
    /// AVX-512 F must be available; `exp_table` has `EXP_ENTRIES` values.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn softmax_avx512(z: &[i32], exp_table: &[i32], out: &mut [u32]) {
        let zmax = z.iter().copied().max().unwrap_or(0);
        let (vmax, cap) = (
            _mm512_set1_epi32(zmax),
            _mm512_set1_epi32(EXP_ENTRIES as i32 - 1),
        );
        let n = z.len() / 16 * 16;
        let mut sums = _mm512_setzero_si512();
        for (zc, oc) in z[..n].chunks_exact(16).zip(out[..n].chunks_exact_mut(16)) {
            // SAFETY: 16 i32 each; zmax − z ≥ 0 as an unsigned value, capped at 4096.
            unsafe {
                let v = _mm512_loadu_si512(zc.as_ptr() as *const __m512i);
                let d = _mm512_min_epu32(_mm512_sub_epi32(vmax, v), cap);
                let e = _mm512_i32gather_epi32::<4>(d, exp_table.as_ptr());
                sums = _mm512_add_epi32(sums, e);
                _mm512_storeu_si512(oc.as_mut_ptr() as *mut __m512i, e);
            }
        }
        let sum = (_mm512_reduce_add_epi32(sums) as u32)
            + super::exp_scores(&z[n..], zmax, exp_table, &mut out[n..]);
        super::normalize_q15(out, sum);
    }
}

/// Integer layer norm of one row (Q12 in, Q12 out before the affine step): writes the
/// normalized values `n_i` (§9.5). `a`/`c`: the per-channel affine `mul_shift(n, a, 12) + c`.
#[inline(always)]
pub fn layer_norm(x: &[i32], a: &[i32], c: &[i32], out: &mut [i32]) {
    let d = x.len() as i32;
    let sum: i32 = x.iter().sum();
    let mu = div_round(sum, d);
    let my = x
        .iter()
        .map(|&v| (v - mu).unsigned_abs())
        .max()
        .unwrap_or(0);
    let k = (bit_len(my) - 11).max(0) as u32;
    let ss: u32 = x
        .iter()
        .map(|&v| {
            let y = rshift_round(v - mu, k);
            (y * y) as u32
        })
        .sum();
    let var = ss / d as u32 + (LN_EPS_Q24 >> (2 * k).min(31));
    let s16 = isqrt(var << 8);
    if s16 == 0 {
        for ((o, &ci), _) in out.iter_mut().zip(c).zip(a) {
            *o = sat_act(ci);
        }
        return;
    }
    let inv = ((1u32 << 30) / s16) as i32;
    for (((o, &v), &ai), &ci) in out.iter_mut().zip(x).zip(a).zip(c) {
        let n = sat_act(mul_shift(v - mu, inv, 14 + k));
        *o = sat_act(mul_shift(n, ai, FRAC) + ci);
    }
}

/// Softmax of one row of Q8 scores (already clamped to ±2^24) into Q15 probabilities (§9.6).
#[inline(always)]
pub fn softmax_q15(z: &[i32], exp_table: &[i32], out: &mut [u32]) {
    let zmax = z.iter().copied().max().unwrap_or(0);
    let sum = exp_scores(z, zmax, exp_table, out);
    normalize_q15(out, sum);
}

/// `out = exp_table[min(zmax − z, 4096)]` for each score; returns their sum.
#[inline(always)]
fn exp_scores(z: &[i32], zmax: i32, exp_table: &[i32], out: &mut [u32]) -> u32 {
    let mut sum = 0u32;
    for (o, &v) in out.iter_mut().zip(z) {
        let d = ((zmax - v) as u32).min(4096);
        *o = exp_table[d as usize] as u32;
        sum += *o;
    }
    sum
}

/// Scales the exponentials (summing to `sum`) to Q15 probabilities.
#[inline(always)]
fn normalize_q15(out: &mut [u32], sum: u32) {
    let r = (1u32 << 31) / sum.max(1);
    for o in out.iter_mut() {
        *o = (*o * r + (1 << 15)) >> 16;
    }
}

/// The palette step of §9.7 over RGBA8 pixels: each takes the four bytes of the entry nearest
/// to its colour ([`nearest_palette`]), alpha included.
pub fn snap_to_palette(palette: &[[u8; 4]], rgba: &mut [u8]) {
    for px in rgba.chunks_exact_mut(4) {
        px.copy_from_slice(&palette[nearest_palette(palette, [px[0], px[1], px[2]])]);
    }
}

/// The palette step of §9.7: the index of the entry nearest to `rgb` — least squared RGB
/// distance in `i32` (at most 3 · 255² = 195,075), ties to the lower index.
pub fn nearest_palette(palette: &[[u8; 4]], rgb: [u8; 3]) -> usize {
    let mut best = (i32::MAX, 0);
    for (i, p) in palette.iter().enumerate() {
        let d: i32 = (0..3)
            .map(|k| {
                let e = i32::from(p[k]) - i32::from(rgb[k]);
                e * e
            })
            .sum();
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// Marsaglia's xorshift32 from `seed` (non-zero): the pseudo-random inputs of the kernels'
/// tests.
#[cfg(test)]
pub(crate) fn xorshift32(mut seed: u32) -> impl FnMut() -> u32 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    }
}

/// The colour limit of §9.7, after the palette step: when the picture has more than `limit`
/// opaque colours, the `limit` with the most pixels stay (on equal counts, the colour of the
/// lower palette index) and every other opaque pixel takes the kept colour nearest to its own
/// (least squared RGB distance, the lower palette index on a tie). Transparent pixels (alpha 0)
/// are neither counted nor changed, and no opaque pixel becomes transparent. `rgba` holds
/// palette entries (the palette step's output); a pixel that is not one is left as it is.
pub fn limit_colours(palette: &[[u8; 4]], limit: usize, rgba: &mut [u8]) {
    // Each pixel's palette index (the first entry with its four bytes), or none.
    let index = |px: &[u8]| palette.iter().position(|e| e[..] == px[..]);
    let mut counts = vec![0u32; palette.len()];
    for px in rgba.chunks_exact(4) {
        if let Some(i) = index(px).filter(|&i| palette[i][3] != 0) {
            counts[i] += 1;
        }
    }
    let mut used: Vec<usize> = (0..palette.len()).filter(|&i| counts[i] > 0).collect();
    if used.len() <= limit {
        return;
    }
    // Most pixels first, then the lower index (a stable sort keeps index order on ties).
    used.sort_by_key(|&i| std::cmp::Reverse(counts[i]));
    used.truncate(limit);
    used.sort_unstable();
    let kept: Vec<[u8; 4]> = used.iter().map(|&i| palette[i]).collect();
    for px in rgba.chunks_exact_mut(4) {
        let Some(i) = index(px) else { continue };
        if palette[i][3] == 0 || used.binary_search(&i).is_ok() {
            continue;
        }
        // `kept` is in index order, so nearest_palette's tie rule is the lower index's.
        px.copy_from_slice(&kept[nearest_palette(&kept, [px[0], px[1], px[2]])]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_limit_keeps_the_commonest_colours_and_no_others() {
        let palette: [[u8; 4]; 6] = [
            [255, 0, 255, 0],
            [0, 0, 0, 255],
            [250, 250, 250, 255],
            [200, 0, 0, 255],
            [0, 0, 200, 255],
            [205, 0, 0, 255],
        ];
        // Counts: key 5 (not counted), black 4, white 3, red 2, blue 2, near-red 1.
        let idx = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5];
        let rgba: Vec<u8> = idx.iter().flat_map(|&i| palette[i]).collect();
        let limited = |k: usize| {
            let mut px = rgba.clone();
            limit_colours(&palette, k, &mut px);
            px.chunks(4)
                .map(|p| palette.iter().position(|e| e[..] == *p).unwrap())
                .collect::<Vec<_>>()
        };
        // Five opaque colours: a limit of five or more changes nothing.
        assert_eq!(limited(5), idx);
        assert_eq!(limited(9), idx);
        // Four: red and blue tie at two pixels, so the lower index (red) stays before blue;
        // near-red (one pixel) takes red. Three: blue goes to its nearest kept colour (black).
        assert_eq!(
            limited(4),
            [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 3]
        );
        assert_eq!(
            limited(3),
            [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 1, 1, 3]
        );
        // One: everything opaque is black; the transparent key stays.
        assert_eq!(
            limited(1),
            [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        );
    }

    #[test]
    fn mul_shift_limbs_equals_the_exact_product() {
        let edges = [
            0,
            1,
            -1,
            2,
            -2,
            0x7FFF,
            0x8000,
            -0x8000,
            0xFFFF,
            0x1_0000,
            i32::MAX,
            -i32::MAX,
            i32::MIN,
            1 << 30,
            -(1 << 30),
            123_456_789,
            -987_654_321,
        ];
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for s in 0..=62u32 {
            for &a in &edges {
                for &m in &edges {
                    assert_eq!(mul_shift_limbs(a, m, s), mul_shift(a, m, s), "{a} {m} {s}");
                }
            }
        }
        for _ in 0..200_000 {
            let r = next();
            let a = (r as u32 as i32) >> (r >> 59);
            let m = ((r >> 32) as u32 as i32) >> ((r >> 54) & 31);
            let s = ((r >> 40) % 63) as u32;
            assert_eq!(mul_shift_limbs(a, m, s), mul_shift(a, m, s), "{a} {m} {s}");
        }
    }

    #[test]
    fn shift_clamp_equals_shift_sat_then_clamp() {
        let mut next = xorshift32(0x1234_5678);
        let edges = [
            0,
            1,
            -1,
            7,
            -8,
            1 << 24,
            -(1 << 24),
            1 << 29,
            -(1 << 30) + 1,
        ];
        for a in -40..=40 {
            for lim in [0, 127, 16383, 1 << 24, ACT_MAX, i32::MAX] {
                let mut x: Vec<i32> = (0..64).map(|_| (next() as i32) >> (next() % 32)).collect();
                x.extend_from_slice(&edges);
                // rshift_round's precondition: |x| < 2^30.
                x.retain(|v| v.unsigned_abs() < 1 << 30);
                let mut got = vec![0; x.len()];
                shift_clamp(&x, a, lim, &mut got);
                let want: Vec<i32> = x
                    .iter()
                    .map(|&v| shift_sat(v, a).clamp(-lim, lim))
                    .collect();
                assert_eq!(got, want, "a {a} lim {lim}");
            }
        }
    }

    #[test]
    fn vectorizable_quantization_equals_the_rule() {
        let mut next = xorshift32(0x9E37_79B9);
        for round in 0..2000 {
            let bits = 1 + round % 30;
            let row: Vec<i32> = (0..37).map(|_| (next() as i32) >> (32 - bits)).collect();
            let mut want = [0i8; 37];
            let e = quantize_row_i8(&row, &mut want);
            for flip in [0, i8::MIN] {
                let mut got = [0i8; 37];
                quantize_i8_with(&row, e, flip, &mut got);
                let want: Vec<i8> = want.iter().map(|&q| q ^ flip).collect();
                assert_eq!(&got[..], &want[..], "{row:?}");
            }
        }
    }

    #[test]
    fn rounding_rule_and_helpers() {
        assert_eq!(rshift_round(5, 1), 3); // 2.5 → 3 (half up)
        assert_eq!(rshift_round(-5, 1), -2); // −2.5 → −2 (half up)
        assert_eq!(rshift_round(-6, 2), -1); // −1.5 → −1
        assert_eq!(rshift_round(7, 0), 7);
        assert_eq!(shift_sat(3, 2), 12);
        assert_eq!(shift_sat(1 << 29, 3), i32::MAX);
        assert_eq!(shift_sat(-(1 << 29), 3), -i32::MAX);
        assert_eq!(shift_sat(12, -3), 2); // 1.5 → 2
        assert_eq!(mul_shift(3, 5, 1), 8); // 7.5 → 8
        assert_eq!(mul_shift(-3, 5, 1), -7); // −7.5 → −7
        assert_eq!(mul_shift(i32::MAX, i32::MAX, 0), i32::MAX);
        assert_eq!(div_round(7, 2), 4);
        assert_eq!(div_round(-7, 2), -3);
        for n in [
            0u32,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            99,
            100,
            1 << 30,
            u32::MAX,
            2_147_395_600,
        ] {
            let r = isqrt(n) as u64;
            assert!(r * r <= n as u64 && (r + 1) * (r + 1) > n as u64, "{n}");
        }
        assert_eq!(row_exponent(&[0, 0]), 0);
        assert_eq!(row_exponent(&[127, -3]), 0);
        assert_eq!(row_exponent(&[-128]), 1);
        assert_eq!(row_exponent(&[3]), -5);
        let mut q = [0i8; 3];
        let e = quantize_row_i8(&[4096, -2048, 7], &mut q);
        assert_eq!((e, q), (6, [64, -32, 0]));
        // 255 >> 1 rounds to 128 and is clamped to 127.
        let e = quantize_row_i8(&[255, -255], &mut q[..2]);
        assert_eq!((e, &q[..2]), (1, &[127i8, -127][..]));
    }
}
