//! int8 × int8 → i32 matrix products: `acc[n][o] = Σ_k a[n][k] · w[o][k]`.
//!
//! Integer sums are exact and associative, so every kernel here — scalar, AVX2, AVX-512 VNNI,
//! any split of rows over threads — gives the same bits. The SIMD kernel is picked at run time
//! from what the CPU reports; `KILN_ART_SIMD=off` forces the scalar one.
//!
//! Layout: the weights are packed once into panels of [`PANEL`] outputs in which each group of
//! four consecutive inputs of the sixteen outputs lies together (64 bytes, one 512-bit vector).
//! A kernel broadcasts four activation bytes of a row and multiplies them with a whole panel
//! group, so every lane accumulates one output and no horizontal sum is ever needed. The
//! activations ([`Rows`]) are plain rows, padded with zeros to a multiple of four.

use std::sync::OnceLock;

/// Which dot-product kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain Rust loops (any CPU).
    Scalar,
    /// x86-64 AVX2: `vpsignb` + `vpmaddubsw` + `vpmaddwd` on 256-bit vectors.
    Avx2,
    /// x86-64 AVX-512 VNNI: `vpdpbusd` on 512-bit vectors, activations offset by 128.
    Avx512Vnni,
    /// AArch64 NEON (every 64-bit ARM CPU): `smull` + `sadalp` on 128-bit vectors.
    Neon,
}

impl Kernel {
    /// The kernel this process uses: the best the CPU supports, unless `KILN_ART_SIMD=off`.
    pub fn active() -> Kernel {
        static K: OnceLock<Kernel> = OnceLock::new();
        *K.get_or_init(|| {
            let off = std::env::var("KILN_ART_SIMD")
                .map(|v| matches!(v.trim(), "off" | "0" | "false" | "scalar"))
                .unwrap_or(false);
            let k = if off {
                Kernel::Scalar
            } else {
                Kernel::detect()
            };
            tracing::debug!(kernel = ?k, "kiln-pipeline/2 integer kernels");
            k
        })
    }

    /// The best kernel the CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
            {
                return Kernel::Avx512Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Kernel::Neon;
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU can run (the scalar one first), for tests and benchmarks.
    pub fn available() -> Vec<Kernel> {
        let mut v = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Kernel::Avx2);
            }
            if Kernel::detect() == Kernel::Avx512Vnni {
                v.push(Kernel::Avx512Vnni);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if Kernel::detect() == Kernel::Neon {
            v.push(Kernel::Neon);
        }
        v
    }

    /// Short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vnni => "avx512-vnni",
            Kernel::Neon => "neon",
        }
    }

    /// Whether this kernel reads activations offset by 128 (as unsigned bytes).
    #[inline(always)]
    fn offset(self) -> bool {
        self == Kernel::Avx512Vnni
    }
}

/// Outputs per weight panel (one 512-bit vector of i32 lanes).
pub const PANEL: usize = 16;

/// `k` rounded up to a multiple of four (one broadcast group).
pub fn padded(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// An int8 weight matrix `[rows, k]` packed into panels of [`PANEL`] rows (outputs), with each
/// output's `−128 · Σw` (the offset correction of the VNNI kernel).
#[derive(Debug, Clone, Default)]
pub struct Packed {
    /// `[panel][k / 4][PANEL][4]`, zero-padded in both directions.
    data: Vec<i8>,
    correction: Vec<i32>,
    rows: usize,
    k: usize,
}

impl Packed {
    /// Packs `rows` rows (outputs) of `k` values, row-major in `src`.
    pub fn new(src: &[i8], rows: usize, k: usize) -> Self {
        let mut p = Packed::default();
        p.fill(rows, k, |r, out| {
            out.copy_from_slice(&src[r * k..(r + 1) * k])
        });
        p
    }

    /// Refills in place: `row(r, out)` writes row `r`'s `k` values.
    #[inline(always)]
    pub fn fill(&mut self, rows: usize, k: usize, mut row: impl FnMut(usize, &mut [i8])) {
        let kp = padded(k);
        let panels = rows.div_ceil(PANEL);
        self.data.clear();
        self.data.resize(panels * kp * PANEL, 0);
        self.correction.clear();
        let mut buf = vec![0i8; kp];
        for r in 0..rows {
            row(r, &mut buf[..k]);
            let (p, lane) = (r / PANEL, r % PANEL);
            let panel = &mut self.data[p * kp * PANEL..(p + 1) * kp * PANEL];
            for (g, four) in buf.chunks_exact(4).enumerate() {
                panel[(g * PANEL + lane) * 4..][..4].copy_from_slice(four);
            }
            self.correction
                .push(-128 * buf[..k].iter().map(|&v| v as i32).sum::<i32>());
        }
        self.correction.resize(panels * PANEL, 0);
        self.rows = rows;
        self.k = k;
    }
}

/// int8 activation rows `[rows, k]`, each padded with zeros to [`padded`]`(k)`, stored as the
/// kernel they are packed for reads them (offset by 128 for [`Kernel::Avx512Vnni`]).
#[derive(Debug, Clone)]
pub struct Rows {
    data: Vec<i8>,
    rows: usize,
    k: usize,
    kernel: Kernel,
}

impl Rows {
    /// Empty rows for `kernel`.
    pub fn new(kernel: Kernel) -> Self {
        Rows {
            data: Vec::new(),
            rows: 0,
            k: 0,
            kernel,
        }
    }

    /// Rows copied from `src` (`[rows, k]`, row-major).
    pub fn from_slice(kernel: Kernel, src: &[i8], rows: usize, k: usize) -> Self {
        let mut r = Rows::new(kernel);
        r.fill(rows, k, |i, out| {
            out.copy_from_slice(&src[i * k..(i + 1) * k])
        });
        r
    }

    /// Refills in place: `row(r, out)` writes row `r`'s `k` values (the padding stays zero).
    #[inline(always)]
    pub fn fill(&mut self, rows: usize, k: usize, mut row: impl FnMut(usize, &mut [i8])) {
        let (flip, kp) = (self.reset(rows, k), padded(k));
        for r in 0..rows {
            let dst = &mut self.data[r * kp..r * kp + k];
            row(r, dst);
            for v in dst.iter_mut() {
                *v ^= flip;
            }
        }
    }

    /// Sizes the rows as zeros (stored as this kernel reads them) and returns the byte every
    /// stored value is xored with (`i8::MIN` for the VNNI kernel's offset of 128, else 0).
    #[inline(always)]
    fn reset(&mut self, rows: usize, k: usize) -> i8 {
        let flip = if self.kernel.offset() { i8::MIN } else { 0 };
        self.data.clear();
        self.data.resize(rows * padded(k), flip);
        self.rows = rows;
        self.k = k;
        flip
    }

    /// Refills with `rows` rows of `k` values quantized to int8 per row
    /// ([`super::ops::quantize_row_i8`]), row `r` being `x[r·stride..][..k]`; writes each row's
    /// exponent to `exps`.
    #[inline(always)]
    pub fn fill_quantized(
        &mut self,
        x: &[i32],
        stride: usize,
        rows: usize,
        k: usize,
        exps: &mut [i32],
    ) {
        let (flip, kp) = (self.reset(rows, k), padded(k));
        for (r, e) in exps[..rows].iter_mut().enumerate() {
            let src = &x[r * stride..][..k];
            *e = super::ops::row_exponent(src);
            super::ops::quantize_i8_with(src, *e, flip, &mut self.data[r * kp..r * kp + k]);
        }
    }
}

/// Dot product of two int8 vectors of equal length, scalar.
#[inline]
pub fn dot_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Dot product of two int8 vectors of equal length with the given kernel (one row by one
/// output through [`gemm_packed`]).
pub fn dot(kernel: Kernel, a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut out = [0i32];
    gemm_packed(
        kernel,
        &Rows::from_slice(kernel, &a[..n], 1, n),
        &Packed::new(&b[..n], 1, n),
        &mut out,
    );
    out[0]
}

/// The operands of one product.
#[derive(Clone, Copy)]
struct Operands<'a> {
    a: &'a [i8],
    rows: usize,
    w: &'a [i8],
    // The VNNI kernel's offset correction (x86-64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    correction: &'a [i32],
    outs: usize,
    kp: usize,
}

impl<'a> Operands<'a> {
    /// Rows `n0..n0 + R` of the activations and panels `p0..p0 + P` of the weights (filled
    /// by loops: `array::from_fn`'s closures are not inlined into the kernels).
    #[inline(always)]
    fn tile<const R: usize, const P: usize>(
        &self,
        n0: usize,
        p0: usize,
    ) -> ([&'a [i8]; R], [&'a [i8]; P]) {
        let kp = self.kp;
        let mut rows: [&[i8]; R] = [&[]; R];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = &self.a[(n0 + r) * kp..][..kp];
        }
        let mut panels: [&[i8]; P] = [&[]; P];
        for (p, panel) in panels.iter_mut().enumerate() {
            *panel = &self.w[(p0 + p) * kp * PANEL..][..kp * PANEL];
        }
        (rows, panels)
    }
}

/// `acc[n·outs + o] = a_n · w_o` for every row of `a` and output of `w` (packed to the same
/// `k`, `a` for the same kernel).
pub fn gemm_packed(kernel: Kernel, a: &Rows, w: &Packed, acc: &mut [i32]) {
    assert_eq!(a.k, w.k, "inner dimensions differ");
    assert_eq!(a.kernel, kernel, "rows packed for another kernel");
    assert_eq!(acc.len(), a.rows * w.rows, "output size");
    if a.rows == 0 || w.rows == 0 {
        return;
    }
    let ops = Operands {
        a: &a.data,
        rows: a.rows,
        w: &w.data,
        correction: &w.correction,
        outs: w.rows,
        kp: padded(a.k),
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only when the CPU reports AVX-512 F/BW/VL/VNNI.
        Kernel::Avx512Vnni => unsafe { x86::gemm_vnni(ops, acc) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only when the CPU reports AVX2.
        Kernel::Avx2 => unsafe { x86::gemm_avx2(ops, acc) },
        #[cfg(target_arch = "aarch64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only when the CPU reports NEON.
        Kernel::Neon => unsafe { arm::gemm_neon(ops, acc) },
        _ => tiles(
            ops,
            acc,
            scalar_tile::<4, 2>,
            scalar_tile::<4, 1>,
            scalar_tile::<1, 2>,
            scalar_tile::<1, 1>,
        ),
    }
}

/// Runs `tile(ops, n0, p0, acc)` (four rows from `n0` by two panels from `p0`) over the whole
/// product, with `one_panel` (four rows, one panel), `one_row` (one row, two panels) and
/// `single` (one row, one panel) on the edges.
#[inline(always)]
fn tiles(
    ops: Operands<'_>,
    acc: &mut [i32],
    tile: impl Fn(Operands<'_>, usize, usize, &mut [i32]),
    one_panel: impl Fn(Operands<'_>, usize, usize, &mut [i32]),
    one_row: impl Fn(Operands<'_>, usize, usize, &mut [i32]),
    single: impl Fn(Operands<'_>, usize, usize, &mut [i32]),
) {
    let panels = ops.outs.div_ceil(PANEL);
    let (full_rows, full_panels) = (ops.rows / 4 * 4, panels / 2 * 2);
    for n0 in (0..full_rows).step_by(4) {
        for p0 in (0..full_panels).step_by(2) {
            tile(ops, n0, p0, acc);
        }
        if full_panels < panels {
            one_panel(ops, n0, full_panels, acc);
        }
    }
    for n in full_rows..ops.rows {
        for p0 in (0..full_panels).step_by(2) {
            one_row(ops, n, p0, acc);
        }
        if full_panels < panels {
            single(ops, n, full_panels, acc);
        }
    }
}

/// The four activation bytes at `4·g` of `row` as one i32 (to broadcast).
#[inline(always)]
fn four(row: &[i8], g: usize) -> i32 {
    let b = &row[4 * g..4 * g + 4];
    i32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

/// Writes the 16 lanes of row `n` and panel `p` (only the real outputs).
#[inline(always)]
fn store(ops: Operands<'_>, n: usize, p: usize, lanes: &[i32; PANEL], acc: &mut [i32]) {
    let (o0, start) = (p * PANEL, n * ops.outs + p * PANEL);
    if ops.outs - o0 >= PANEL {
        // A fixed-size copy: one vector store, not a call to memmove.
        let dst: &mut [i32; PANEL] = (&mut acc[start..start + PANEL])
            .try_into()
            .expect("16 outputs");
        *dst = *lanes;
    } else {
        let count = ops.outs - o0;
        acc[start..start + count].copy_from_slice(&lanes[..count]);
    }
}

/// `R` rows × `P` panels in plain loops.
fn scalar_tile<const R: usize, const P: usize>(
    ops: Operands<'_>,
    n0: usize,
    p0: usize,
    acc: &mut [i32],
) {
    let (rows, panels) = ops.tile::<R, P>(n0, p0);
    for (p, panel) in panels.iter().enumerate() {
        for (r, row) in rows.iter().enumerate() {
            let mut lanes = [0i32; PANEL];
            for (four, group) in row.chunks_exact(4).zip(panel.chunks_exact(4 * PANEL)) {
                for (lane, w) in lanes.iter_mut().zip(group.chunks_exact(4)) {
                    *lane += four
                        .iter()
                        .zip(w)
                        .map(|(&x, &y)| x as i32 * y as i32)
                        .sum::<i32>();
                }
            }
            store(ops, n0 + r, p0 + p, &lanes, acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{Operands, PANEL, four, store, tiles};
    use std::arch::x86_64::*;

    /// `R` rows × `P` panels with `vpdpbusd` (activations offset by 128; the correction added).
    // Index loops over the register tile read as the arithmetic they do.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn tile_vnni<const R: usize, const P: usize>(
        ops: Operands<'_>,
        n0: usize,
        p0: usize,
        acc: &mut [i32],
    ) {
        let kp = ops.kp;
        let (rows, panels) = ops.tile::<R, P>(n0, p0);
        let mut sums = [[_mm512_setzero_si512(); P]; R];
        for g in 0..kp / 4 {
            let mut wv = [_mm512_setzero_si512(); P];
            for (v, panel) in wv.iter_mut().zip(&panels) {
                // SAFETY: each panel holds kp / 4 groups of 64 bytes; unaligned load.
                *v = unsafe { _mm512_loadu_si512(panel.as_ptr().add(64 * g) as *const __m512i) };
            }
            for r in 0..R {
                let av = _mm512_set1_epi32(four(rows[r], g));
                for p in 0..P {
                    sums[r][p] = _mm512_dpbusd_epi32(sums[r][p], av, wv[p]);
                }
            }
        }
        for p in 0..P {
            let corr = &ops.correction[(p0 + p) * PANEL..][..PANEL];
            // SAFETY: `corr` holds 16 i32.
            let cv = unsafe { _mm512_loadu_si512(corr.as_ptr() as *const __m512i) };
            for r in 0..R {
                let mut lanes = [0i32; PANEL];
                // SAFETY: `lanes` holds 16 i32.
                unsafe {
                    _mm512_storeu_si512(
                        lanes.as_mut_ptr() as *mut __m512i,
                        _mm512_add_epi32(sums[r][p], cv),
                    )
                };
                store(ops, n0 + r, p0 + p, &lanes, acc);
            }
        }
    }

    /// `R` rows × `P` panels (each two 256-bit halves) with `vpsignb` + `vpmaddubsw` +
    /// `vpmaddwd`: `|a| · sign(a)·w` keeps every pair sum within i16 (2 · 127 · 127 < 2^15).
    // Index loops over the register tile read as the arithmetic they do.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx2")]
    fn tile_avx2<const R: usize, const P: usize>(
        ops: Operands<'_>,
        n0: usize,
        p0: usize,
        acc: &mut [i32],
    ) {
        let kp = ops.kp;
        let (rows, panels) = ops.tile::<R, P>(n0, p0);
        let ones = _mm256_set1_epi16(1);
        let mut sums = [[[_mm256_setzero_si256(); 2]; P]; R];
        for g in 0..kp / 4 {
            let mut wv = [[_mm256_setzero_si256(); 2]; P];
            for (v, panel) in wv.iter_mut().zip(&panels) {
                // SAFETY: each panel holds kp / 4 groups of 64 bytes; unaligned 32-byte loads.
                unsafe {
                    let at = panel.as_ptr().add(64 * g);
                    v[0] = _mm256_loadu_si256(at as *const __m256i);
                    v[1] = _mm256_loadu_si256(at.add(32) as *const __m256i);
                }
            }
            for r in 0..R {
                let av = _mm256_set1_epi32(four(rows[r], g));
                let abs_a = _mm256_sign_epi8(av, av);
                for p in 0..P {
                    for h in 0..2 {
                        let pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(wv[p][h], av));
                        sums[r][p][h] =
                            _mm256_add_epi32(sums[r][p][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
        }
        for p in 0..P {
            for r in 0..R {
                let mut lanes = [0i32; PANEL];
                // SAFETY: `lanes` holds 16 i32, two 8-lane halves.
                unsafe {
                    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sums[r][p][0]);
                    _mm256_storeu_si256(lanes.as_mut_ptr().add(8) as *mut __m256i, sums[r][p][1]);
                }
                store(ops, n0 + r, p0 + p, &lanes, acc);
            }
        }
    }

    /// [`super::ValuePairs::weighted_sum`] with 512-bit `vpmaddwd` (hd a multiple of 16).
    ///
    /// # Safety
    /// AVX-512 F/BW must be available.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn weighted_sum_avx512(pairs: &[i16], words: &[i32], out: &mut [i32]) {
        let hd = out.len();
        for c0 in (0..hd).step_by(16) {
            // SAFETY: out holds hd i32, c0 + 16 <= hd.
            let mut acc = unsafe { _mm512_loadu_si512(out.as_ptr().add(c0) as *const __m512i) };
            for (w, &pw) in words.iter().enumerate() {
                let row = &pairs[w * hd * 2 + c0 * 2..][..32];
                // SAFETY: `row` holds 32 i16.
                let v = unsafe { _mm512_loadu_si512(row.as_ptr() as *const __m512i) };
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_set1_epi32(pw), v));
            }
            // SAFETY: as the load.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(c0) as *mut __m512i, acc) };
        }
    }

    /// [`super::ValuePairs::weighted_sum`] with 256-bit `vpmaddwd` (hd a multiple of 8).
    ///
    /// # Safety
    /// AVX2 must be available.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn weighted_sum_avx2(pairs: &[i16], words: &[i32], out: &mut [i32]) {
        let hd = out.len();
        for c0 in (0..hd).step_by(8) {
            // SAFETY: out holds hd i32, c0 + 8 <= hd.
            let mut acc = unsafe { _mm256_loadu_si256(out.as_ptr().add(c0) as *const __m256i) };
            for (w, &pw) in words.iter().enumerate() {
                let row = &pairs[w * hd * 2 + c0 * 2..][..16];
                // SAFETY: `row` holds 16 i16.
                let v = unsafe { _mm256_loadu_si256(row.as_ptr() as *const __m256i) };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_set1_epi32(pw), v));
            }
            // SAFETY: as the load.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(c0) as *mut __m256i, acc) };
        }
    }

    /// Every tile with the VNNI kernel.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI must be available.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn gemm_vnni(ops: Operands<'_>, acc: &mut [i32]) {
        tiles(
            ops,
            acc,
            |o, n, p, a| tile_vnni::<4, 2>(o, n, p, a),
            |o, n, p, a| tile_vnni::<4, 1>(o, n, p, a),
            |o, n, p, a| tile_vnni::<1, 2>(o, n, p, a),
            |o, n, p, a| tile_vnni::<1, 1>(o, n, p, a),
        );
    }

    /// Every tile with the AVX2 kernel.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gemm_avx2(ops: Operands<'_>, acc: &mut [i32]) {
        tiles(
            ops,
            acc,
            // Four rows by two panels would need 16 accumulators: all of AVX2's registers.
            |o, n, p, a| {
                tile_avx2::<4, 1>(o, n, p, a);
                tile_avx2::<4, 1>(o, n, p + 1, a);
            },
            |o, n, p, a| tile_avx2::<4, 1>(o, n, p, a),
            |o, n, p, a| tile_avx2::<1, 2>(o, n, p, a),
            |o, n, p, a| tile_avx2::<1, 1>(o, n, p, a),
        );
    }
}

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod arm {
    use super::{Operands, PANEL, four, store, tiles};
    use std::arch::aarch64::*;

    /// `R` rows (at most two: 8 accumulators each) × one panel: `smull`/`smull2` of the
    /// broadcast activation bytes with four outputs' bytes, `sadalp` into pairs of i32 lanes,
    /// one `addp` per four outputs at the end. Products fit i16 (127 · 127), pair sums i32.
    #[inline]
    #[target_feature(enable = "neon")]
    fn tile_neon<const R: usize>(ops: Operands<'_>, n0: usize, p: usize, acc: &mut [i32]) {
        let kp = ops.kp;
        let (rows, panels) = ops.tile::<R, 1>(n0, p);
        let panel = panels[0];
        let mut sums = [[vdupq_n_s32(0); 8]; R];
        for g in 0..kp / 4 {
            let mut w = [vdupq_n_s8(0); 4];
            for (i, v) in w.iter_mut().enumerate() {
                // SAFETY: each panel group holds 64 bytes.
                *v = unsafe { vld1q_s8(panel.as_ptr().add(64 * g + 16 * i)) };
            }
            for (row, s) in rows.iter().zip(sums.iter_mut()) {
                let a = vreinterpretq_s8_s32(vdupq_n_s32(four(row, g)));
                for (i, &wi) in w.iter().enumerate() {
                    s[2 * i] = vpadalq_s16(s[2 * i], vmull_s8(vget_low_s8(wi), vget_low_s8(a)));
                    s[2 * i + 1] = vpadalq_s16(s[2 * i + 1], vmull_high_s8(wi, a));
                }
            }
        }
        for (r, s) in sums.iter().enumerate() {
            let mut lanes = [0i32; PANEL];
            for i in 0..4 {
                // SAFETY: `lanes` holds 16 i32.
                unsafe {
                    vst1q_s32(
                        lanes.as_mut_ptr().add(4 * i),
                        vpaddq_s32(s[2 * i], s[2 * i + 1]),
                    )
                };
            }
            store(ops, n0 + r, p, &lanes, acc);
        }
    }

    /// Every tile with the NEON kernel.
    ///
    /// # Safety
    /// NEON must be available.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn gemm_neon(ops: Operands<'_>, acc: &mut [i32]) {
        let two = |o: Operands<'_>, n: usize, p: usize, a: &mut [i32]| {
            tile_neon::<2>(o, n, p, a);
            tile_neon::<2>(o, n + 2, p, a);
        };
        tiles(
            ops,
            acc,
            |o, n, p, a| {
                two(o, n, p, a);
                two(o, n, p + 1, a);
            },
            two,
            |o, n, p, a| {
                tile_neon::<1>(o, n, p, a);
                tile_neon::<1>(o, n, p + 1, a);
            },
            |o, n, p, a| tile_neon::<1>(o, n, p, a),
        );
    }
}

/// Attention's weighted sum of values with 16-bit multiplies: `out[c] = Σ_j p_j · v_j[c]` for
/// probabilities `0 ≤ p_j ≤ 2^15` and values `|v| < 2^15`, exactly (§9.6).
///
/// `p_j = p'_j + 2^14` with `|p'_j| ≤ 2^14` fits an i16, so `Σ p_j v_j = Σ p'_j v_j + 2^14 Σ v_j`:
/// the first sum takes one `vpmaddwd` per pair of tokens and 16 (or 8) channels, the second is
/// `vsum`, computed once per head. Both may wrap in i32; their sum is the exact value, which
/// the caller keeps within i32.
#[derive(Debug, Clone, Default)]
pub struct ValuePairs {
    /// `[j / 2][c][j % 2]` values, zero-padded to an even token count.
    pairs: Vec<i16>,
    /// `2^14 · Σ_j v_j[c]` (wrapping).
    offset: Vec<i32>,
    hd: usize,
}

impl ValuePairs {
    /// Packs `n` tokens of `hd` values (`v[j·hd + c]`, each `|v| < 2^15`).
    #[inline(always)]
    pub fn fill(&mut self, v: &[i32], n: usize, hd: usize) {
        let np = n.div_ceil(2);
        self.pairs.clear();
        self.pairs.resize(np * hd * 2, 0);
        self.offset.clear();
        self.offset.resize(hd, 0);
        for (j, row) in v[..n * hd].chunks_exact(hd).enumerate() {
            let dst = &mut self.pairs[(j / 2) * hd * 2..][..hd * 2];
            for (pair, &x) in dst.chunks_exact_mut(2).zip(row) {
                pair[j % 2] = x as i16;
            }
            for (o, &x) in self.offset.iter_mut().zip(row) {
                *o = o.wrapping_add(x << 14);
            }
        }
        self.hd = hd;
    }

    /// The probabilities `p` (`0 ≤ p ≤ 2^15`, one per token) as pairs `p' = p − 2^14` of i16,
    /// one i32 per two tokens (the odd token's partner is 0).
    #[inline(always)]
    pub fn pack_probabilities(p: &[u32], words: &mut Vec<i32>) {
        let half = |q: u32| (q as i32 - (1 << 14)) as u16 as u32;
        words.clear();
        words.extend(p.chunks(2).map(|two| {
            let hi = if two.len() == 2 { half(two[1]) } else { 0 };
            (half(two[0]) | (hi << 16)) as i32
        }));
    }

    /// `out[c] = Σ_j p_j · v_j[c]` from the packed probabilities ([`Self::pack_probabilities`]
    /// of as many tokens as were filled); `out.len()` = hd.
    #[inline(always)]
    pub fn weighted_sum(&self, kernel: Kernel, words: &[i32], out: &mut [i32]) {
        let hd = self.hd;
        assert_eq!(out.len(), hd, "one output per channel");
        assert_eq!(
            words.len() * hd * 2,
            self.pairs.len(),
            "one word per token pair"
        );
        out.copy_from_slice(&self.offset);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: chosen only when the CPU reports AVX-512 F/BW/VL/VNNI.
            Kernel::Avx512Vnni if hd.is_multiple_of(16) => unsafe {
                x86::weighted_sum_avx512(&self.pairs, words, out)
            },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: chosen only when the CPU reports AVX2.
            Kernel::Avx2 | Kernel::Avx512Vnni if hd.is_multiple_of(8) => unsafe {
                x86::weighted_sum_avx2(&self.pairs, words, out)
            },
            _ => {
                for (w, &pw) in words.iter().enumerate() {
                    let (a, b) = (pw as i16 as i32, (pw >> 16) as i16 as i32);
                    let row = &self.pairs[w * hd * 2..][..hd * 2];
                    for (o, v) in out.iter_mut().zip(row.chunks_exact(2)) {
                        *o = o
                            .wrapping_add(a * v[0] as i32)
                            .wrapping_add(b * v[1] as i32);
                    }
                }
            }
        }
    }
}

/// `acc[n·o_len + o] = Σ_k a[n·k_len + k] · w[o·k_len + k]` for `rows` rows of `a` (unpacked
/// inputs; packs them first).
pub fn gemm(kernel: Kernel, a: &[i8], rows: usize, w: &[i8], k_len: usize, acc: &mut [i32]) {
    let outs = w.len() / k_len;
    gemm_packed(
        kernel,
        &Rows::from_slice(kernel, a, rows, k_len),
        &Packed::new(w, outs, k_len),
        acc,
    );
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_dots_agree_on_every_length_and_extreme() {
        let mut rng = super::super::ops::xorshift32(1);
        let mut next = || ((rng() % 255) as i32 - 127) as i8;
        for len in [0, 1, 31, 32, 33, 48, 160, 320, 640, 641] {
            let a: Vec<i8> = (0..len).map(|_| next()).collect();
            let b: Vec<i8> = (0..len).map(|_| next()).collect();
            for k in Kernel::available() {
                assert_eq!(dot(k, &a, &b), dot_scalar(&a, &b), "{k:?} len {len}");
                let ext_a = vec![-127i8; len];
                let ext_b = vec![127i8; len];
                assert_eq!(dot(k, &ext_a, &ext_b), -(127 * 127 * len as i32));
                assert_eq!(dot(k, &ext_a, &ext_a), 127 * 127 * len as i32);
            }
            // Blocked products of 3 rows by 7 outputs (a partial block of four).
            if len > 0 {
                let rows: Vec<i8> = (0..3 * len).map(|_| next()).collect();
                let outs: Vec<i8> = (0..7 * len).map(|_| next()).collect();
                let mut want = vec![0i32; 21];
                gemm(Kernel::Scalar, &rows, 3, &outs, len, &mut want);
                for k in Kernel::available() {
                    let mut got = vec![0i32; 21];
                    gemm(k, &rows, 3, &outs, len, &mut got);
                    assert_eq!(got, want, "{k:?} len {len}");
                }
            }
        }
    }

    #[test]
    fn every_tile_shape_matches_the_scalar_product() {
        let mut rng = super::super::ops::xorshift32(7);
        let mut next = || ((rng() % 255) as i32 - 127) as i8;
        // Full and partial blocks of four rows and of two 16-output panels.
        for (rows, outs, k) in [
            (1, 1, 4),
            (5, 17, 9),
            (8, 32, 160),
            (9, 48, 64),
            (6, 37, 641),
        ] {
            let a: Vec<i8> = (0..rows * k).map(|_| next()).collect();
            let w: Vec<i8> = (0..outs * k).map(|_| next()).collect();
            let want: Vec<i32> = (0..rows)
                .flat_map(|n| {
                    let (a, w) = (&a, &w);
                    (0..outs).map(move |o| dot_scalar(&a[n * k..][..k], &w[o * k..][..k]))
                })
                .collect();
            for kern in Kernel::available() {
                let mut got = vec![0i32; rows * outs];
                gemm(kern, &a, rows, &w, k, &mut got);
                assert_eq!(got, want, "{kern:?} {rows}x{outs}x{k}");
            }
        }
    }

    #[test]
    fn weighted_sums_are_exact_at_the_extremes() {
        let mut next = super::super::ops::xorshift32(11);
        for (n, hd) in [(1, 16), (7, 32), (64, 32), (65, 8), (128, 48), (3, 5)] {
            for case in 0..4 {
                let v: Vec<i32> = (0..n * hd)
                    .map(|_| match case {
                        0 => 16383,
                        1 => -16383,
                        _ => (next() % 32767) as i32 - 16383,
                    })
                    .collect();
                // One token takes all the weight (p = 2^15), or weights spread.
                let p: Vec<u32> = (0..n)
                    .map(|j| match case {
                        0 | 1 => u32::from(j == n / 2) << 15,
                        _ => next() % ((1 << 15) / n as u32 + 1),
                    })
                    .collect();
                let want: Vec<i32> = (0..hd)
                    .map(|c| (0..n).map(|j| p[j] as i32 * v[j * hd + c]).sum())
                    .collect();
                let mut values = ValuePairs::default();
                values.fill(&v, n, hd);
                let mut words = Vec::new();
                ValuePairs::pack_probabilities(&p, &mut words);
                for kern in Kernel::available() {
                    let mut got = vec![0i32; hd];
                    values.weighted_sum(kern, &words, &mut got);
                    assert_eq!(got, want, "{kern:?} n {n} hd {hd} case {case}");
                }
            }
        }
    }
}
