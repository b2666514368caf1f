//! int8 × int8 → i32 matrix products: `acc[n][o] = Σ_k a[n][k] · w[o][k]`.
//!
//! Integer sums are exact and associative, so every kernel here — scalar, AVX2, any split of
//! rows over threads — gives the same bits. The SIMD kernel is picked at run time from what the
//! CPU reports; `KILN_ART_SIMD=off` forces the scalar one.

use std::sync::OnceLock;

/// Which dot-product kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain Rust loops (any CPU).
    Scalar,
    /// x86-64 AVX2: `vpsignb` + `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// x86-64 AVX-512 VNNI on 256-bit vectors: `vpdpbusd` on activations offset by 128.
    Avx512Vnni,
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
        v
    }

    /// Short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// Columns of a packed matrix are padded with zeros to a multiple of this.
pub const K_ALIGN: usize = 32;

/// `k` rounded up to [`K_ALIGN`].
pub fn padded(k: usize) -> usize {
    k.div_ceil(K_ALIGN) * K_ALIGN
}

/// An int8 matrix `[rows, k]` stored with rows padded to [`padded`]`(k)` columns of zeros, and
/// each row's sum (the VNNI kernel's offset correction).
#[derive(Debug, Clone, Default)]
pub struct Packed {
    data: Vec<i8>,
    sums: Vec<i32>,
    rows: usize,
    k: usize,
}

impl Packed {
    /// Packs `rows` rows of `k` values.
    pub fn new(src: &[i8], rows: usize, k: usize) -> Self {
        let mut p = Packed::default();
        p.fill(rows, k, |r, out| {
            out.copy_from_slice(&src[r * k..(r + 1) * k])
        });
        p
    }

    /// Refills in place: `row(r, out)` writes row `r`'s `k` values (the padding stays zero).
    pub fn fill(&mut self, rows: usize, k: usize, mut row: impl FnMut(usize, &mut [i8])) {
        let kp = padded(k);
        self.data.clear();
        self.data.resize(rows * kp, 0);
        self.sums.clear();
        for r in 0..rows {
            let dst = &mut self.data[r * kp..r * kp + k];
            row(r, dst);
            self.sums.push(dst.iter().map(|&v| v as i32).sum());
        }
        self.rows = rows;
        self.k = k;
    }
}

/// Dot product of two int8 vectors of equal length, scalar.
#[inline]
pub fn dot_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn load(p: &[i8], i: usize) -> __m256i {
        // SAFETY: callers pass i with i + 32 <= p.len() (padded rows); unaligned load.
        unsafe { _mm256_loadu_si256(p.as_ptr().add(i) as *const __m256i) }
    }

    /// Sums of each of four vectors, as four lanes.
    #[inline(always)]
    fn reduce4(v: [__m256i; 4]) -> [i32; 4] {
        unsafe {
            let h01 = _mm256_hadd_epi32(v[0], v[1]);
            let h23 = _mm256_hadd_epi32(v[2], v[3]);
            let h = _mm256_hadd_epi32(h01, h23);
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let mut out = [0i32; 4];
            _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, s);
            out
        }
    }

    /// A 4×4 block of dot products (four activation rows by four weight rows), AVX2.
    ///
    /// # Safety
    /// AVX2 must be available; all eight slices have one length, a multiple of 32.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn block4x4_avx2(a: [&[i8]; 4], w: [&[i8]; 4]) -> [[i32; 4]; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 4]; 4];
        for i in (0..a[0].len()).step_by(32) {
            // SAFETY: i + 32 <= len of every slice.
            let wv = unsafe { [load(w[0], i), load(w[1], i), load(w[2], i), load(w[3], i)] };
            for r in 0..4 {
                let va = unsafe { load(a[r], i) };
                let abs_a = _mm256_sign_epi8(va, va);
                for j in 0..4 {
                    let pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(wv[j], va));
                    acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        [
            reduce4(acc[0]),
            reduce4(acc[1]),
            reduce4(acc[2]),
            reduce4(acc[3]),
        ]
    }

    /// A 4×4 block of `Σ (a + 128)·w` (activations offset by 128, as u8), AVX-512 VNNI.
    ///
    /// # Safety
    /// AVX-512 VNNI and VL must be available; all eight slices have one length, a multiple of 32.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(super) unsafe fn block4x4_vnni(a_u: [&[i8]; 4], w: [&[i8]; 4]) -> [[i32; 4]; 4] {
        let mut acc = [[_mm256_setzero_si256(); 4]; 4];
        for i in (0..a_u[0].len()).step_by(32) {
            // SAFETY: i + 32 <= len of every slice.
            let wv = unsafe { [load(w[0], i), load(w[1], i), load(w[2], i), load(w[3], i)] };
            for r in 0..4 {
                let va = unsafe { load(a_u[r], i) };
                for j in 0..4 {
                    acc[r][j] = _mm256_dpbusd_epi32(acc[r][j], va, wv[j]);
                }
            }
        }
        [
            reduce4(acc[0]),
            reduce4(acc[1]),
            reduce4(acc[2]),
            reduce4(acc[3]),
        ]
    }

    /// [`super::run_blocks`] compiled for AVX2, the block kernel inlined.
    ///
    /// # Safety
    /// AVX2 must be available; rows are padded to a multiple of 32.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gemm_avx2(g: super::Blocks<'_>, acc: &mut [i32]) {
        // SAFETY: the caller guarantees AVX2 and padded rows.
        super::run_blocks(g, acc, |a, w| unsafe { block4x4_avx2(a, w) });
    }

    /// [`super::run_blocks`] compiled for AVX-512 VNNI, the block kernel inlined.
    ///
    /// # Safety
    /// AVX-512 VNNI and VL must be available; rows are padded to a multiple of 32.
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(super) unsafe fn gemm_vnni(g: super::Blocks<'_>, acc: &mut [i32]) {
        // SAFETY: the caller guarantees AVX-512 VNNI/VL and padded rows.
        super::run_blocks(g, acc, |a, w| unsafe { block4x4_vnni(a, w) });
    }
}

/// Dot product of two int8 vectors of equal length with the given kernel (one row by one row
/// through [`gemm_packed`]).
pub fn dot(kernel: Kernel, a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut out = [0i32];
    gemm_packed(
        kernel,
        &Packed::new(&a[..n], 1, n),
        &Packed::new(&b[..n], 1, n),
        &mut out,
    );
    out[0]
}

/// `acc[n·out + o] = a_n · w_o` for every row of `a` and `w` (both packed to the same `k`), in
/// blocks of four rows by four outputs.
pub fn gemm_packed(kernel: Kernel, a: &Packed, w: &Packed, acc: &mut [i32]) {
    let outs = w.rows;
    debug_assert_eq!(a.k, w.k);
    debug_assert_eq!(acc.len(), a.rows * outs);
    if a.rows == 0 || outs == 0 {
        return;
    }
    // The VNNI kernel multiplies unsigned activations: one copy offset by 128.
    let offset: Vec<i8>;
    let (rows_src, kp) = (&a.data, padded(a.k));
    let a_rows: &[i8] = if kernel == Kernel::Avx512Vnni {
        offset = rows_src.iter().map(|&v| (v as u8 ^ 0x80) as i8).collect();
        &offset
    } else {
        rows_src
    };
    // The VNNI kernel's offset correction per output: −128·Σw.
    let correction: Vec<i32> = if kernel == Kernel::Avx512Vnni {
        w.sums.iter().map(|&s| -128 * s).collect()
    } else {
        vec![0; outs]
    };
    let g = Blocks {
        a_rows,
        rows: a.rows,
        w,
        kp,
        correction: &correction,
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only when the CPU reports AVX-512 VNNI/VL; rows are padded.
        Kernel::Avx512Vnni => unsafe { x86::gemm_vnni(g, acc) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only when the CPU reports AVX2; rows are padded.
        Kernel::Avx2 => unsafe { x86::gemm_avx2(g, acc) },
        _ => run_blocks(g, acc, |ar, wr| {
            std::array::from_fn(|i| std::array::from_fn(|j| dot_scalar(ar[i], wr[j])))
        }),
    }
}

/// The operands of [`run_blocks`].
#[derive(Clone, Copy)]
struct Blocks<'a> {
    /// Activation rows (offset by 128 for the VNNI kernel), each `kp` long.
    a_rows: &'a [i8],
    rows: usize,
    w: &'a Packed,
    kp: usize,
    /// Added to every output of a column (the VNNI offset correction, else zeros).
    correction: &'a [i32],
}

/// The 4×4 block loop over all rows and outputs, with `block` computing one block.
#[inline(always)]
fn run_blocks(
    g: Blocks<'_>,
    acc: &mut [i32],
    block: impl Fn([&[i8]; 4], [&[i8]; 4]) -> [[i32; 4]; 4],
) {
    let (kp, outs) = (g.kp, g.w.rows);
    let row = |n: usize| &g.a_rows[n * kp..(n + 1) * kp];
    let wrow = |o: usize| &g.w.data[o * kp..(o + 1) * kp];
    for n0 in (0..g.rows).step_by(4) {
        let nr = (g.rows - n0).min(4);
        let ar: [&[i8]; 4] = std::array::from_fn(|i| row(n0 + i.min(nr - 1)));
        for o0 in (0..outs).step_by(4) {
            let or = (outs - o0).min(4);
            let wr: [&[i8]; 4] = std::array::from_fn(|j| wrow(o0 + j.min(or - 1)));
            let r = block(ar, wr);
            let corr = &g.correction[o0..o0 + or];
            for (i, ri) in r.iter().enumerate().take(nr) {
                let dst = &mut acc[(n0 + i) * outs + o0..][..or];
                for ((d, &v), &c) in dst.iter_mut().zip(ri).zip(corr) {
                    *d = v + c;
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
        &Packed::new(a, rows, k_len),
        &Packed::new(w, outs, k_len),
        acc,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_dots_agree_on_every_length_and_extreme() {
        let mut v = 1u32;
        let mut next = || {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            ((v % 255) as i32 - 127) as i8
        };
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
}
