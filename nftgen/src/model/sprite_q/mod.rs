//! kiln-sprite-q: the integer-only kiln-sprite of `kiln-pipeline/2` (`nftgen/RECIPE.md` §9).
//!
//! The same transformer as [`crate::sprite`] — patch tokens, adaLN-Zero blocks with long skips,
//! v-prediction — with int8 weights (symmetric, per output channel), i32 biases and
//! accumulators, activations quantized to int8 per row at run time with a power-of-two
//! exponent, fixed-point requantization ([`ops::mul_shift`]), integer layer norm, a table
//! softmax and a table SiLU. The timestep path and the prompt projection are integer tables in
//! the model file. No floating point runs between a recipe and its pixels, so every CPU gives
//! the same bits.

pub mod gemm;
pub mod ops;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::sprite::{PAD, PromptEncoder, TextConfig};
use gemm::Kernel;
use ops::{ACT_MAX, FRAC, SAMPLE_MAX, mul_shift, sat_act};

/// Family name written in kiln-sprite-q configs.
pub const FAMILY: &str = "kiln-sprite-q";
/// The pipeline kiln-sprite-q models run.
pub const PIPELINE_2: &str = "kiln-pipeline/2";

/// Architecture and defaults of a kiln-sprite-q model (the JSON under `kiln.config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpriteQConfig {
    /// Always `"kiln-sprite-q"`.
    pub family: String,
    /// Model id recorded in generation records.
    pub name: String,
    /// Always `"kiln-pipeline/2"`.
    pub pipeline: String,
    /// Image channels (3).
    pub channels: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Largest grid of patches (width, height) the position table covers.
    pub max_grid: [usize; 2],
    /// Sizes (width, height) the model paints.
    pub sizes: Vec<[u32; 2]>,
    /// Transformer width.
    pub dim: usize,
    /// Transformer blocks (even).
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: usize,
    /// Prompt encoder (the same word ids as kiln-sprite).
    pub text: TextConfig,
    /// Training timesteps T (rows of the time and schedule tables).
    pub train_steps: usize,
    /// Default steps.
    pub default_steps: u32,
    /// Default guidance.
    pub default_guidance: f32,
    /// The f32 model this was quantized from (`sha256` hex), for the model card.
    #[serde(default)]
    pub quantized_from: Option<String>,
    /// The palette the pixels are snapped to (RGBA entries; `nftgen/RECIPE.md` §9.7), for a
    /// model trained on palette pixel art; none: the pixels are the sample's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub palette: Option<Vec<[u8; 4]>>,
    /// The colour limit of §9.7 per picture size, `[width, height, most opaque colours]`
    /// (only with a palette; a size not listed has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub palette_colours: Vec<[u32; 3]>,
}

impl SpriteQConfig {
    /// Checks the invariants the integer network relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.family != FAMILY {
            return Err(format!("family is `{}`, expected `{FAMILY}`", self.family));
        }
        if self.pipeline != PIPELINE_2 {
            return Err(format!(
                "pipeline is `{}`, expected `{PIPELINE_2}`",
                self.pipeline
            ));
        }
        if self.channels != 3 {
            return Err("channels must be 3".into());
        }
        // Layer norm sums d activations of magnitude < 2^23 in an i32.
        if !(1..=240).contains(&self.dim) {
            return Err(format!("dim {} must be 1..=240", self.dim));
        }
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(format!(
                "dim {} is not a multiple of heads {}",
                self.dim, self.heads
            ));
        }
        if self.depth == 0 || !self.depth.is_multiple_of(2) || self.depth > 64 {
            return Err(format!("depth {} must be even, 2..=64", self.depth));
        }
        if self.patch == 0 || self.patch > 16 || self.mlp_ratio == 0 || self.mlp_ratio > 8 {
            return Err("patch must be 1..=16 and mlp_ratio 1..=8".into());
        }
        if self.max_grid[0] * self.max_grid[1] > 256 || self.max_grid.contains(&0) {
            return Err("max_grid must hold 1..=256 patches".into());
        }
        if self.text.max_tokens == 0 || self.text.max_tokens > 64 {
            return Err("text.max_tokens must be 1..=64".into());
        }
        if !(1..=1000).contains(&self.train_steps) {
            return Err("train_steps must be 1..=1000".into());
        }
        if self.sizes.is_empty() {
            return Err("sizes is empty".into());
        }
        crate::model::sprite::check_sizes(&self.sizes, self.patch, self.max_grid)?;
        if self.name.is_empty() {
            return Err("name is empty".into());
        }
        if self
            .palette
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 256)
        {
            return Err("palette must have 1..=256 entries".into());
        }
        let entries = self.palette.as_ref().map_or(0, Vec::len) as u32;
        for &[w, h, k] in &self.palette_colours {
            if !self.sizes.contains(&[w, h]) {
                return Err(format!(
                    "palette_colours names {w}x{h}, not one of the sizes"
                ));
            }
            if k == 0 || k > entries {
                return Err(format!(
                    "palette_colours for {w}x{h} must be 1..={entries} (the palette's entries)"
                ));
            }
        }
        Ok(())
    }

    /// The colour limit of §9.7 for a `width`×`height` picture, if it has one.
    pub fn colour_limit(&self, width: usize, height: usize) -> Option<usize> {
        self.palette_colours
            .iter()
            .find(|&&[w, h, _]| (w as usize, h as usize) == (width, height))
            .map(|&[_, _, k]| k as usize)
    }
}

/// A quantized linear layer: int8 weights `[out, in]`, and per output channel an i32 bias (in
/// the output's fixed-point format), a multiplier and a shift (§9.4).
#[derive(Debug, Clone)]
pub struct QLinear {
    /// int8 weights, row-major `[out, in]`.
    pub weight: Vec<i8>,
    /// Bias per output channel.
    pub bias: Vec<i32>,
    /// Requantization multiplier per output channel.
    pub mult: Vec<i32>,
    /// Requantization shift per output channel.
    pub shift: Vec<i32>,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// The weights packed for the dot-product kernels.
    packed: gemm::Packed,
}

/// Smallest and largest requantization shift a file may hold (§9.4).
pub const SHIFT_RANGE: (i32, i32) = (31, 54);
/// Largest bias magnitude a file may hold.
pub const BIAS_MAX: i32 = 1 << 27;

impl QLinear {
    /// `rows` rows of `x` (`[rows, inp]`, fixed point) → `[rows, out]`, each value clamped to
    /// `±lim`: per row `e = row_exponent`, `q = int8(x·2^−e)`, `acc = q·wᵀ`,
    /// `y = clamp(clamp(mul_shift(acc, mult, shift − e), ±2^29) + bias, ±lim)`.
    #[inline(always)]
    pub fn forward(&self, kernel: Kernel, x: &[i32], rows: usize, lim: i32) -> Vec<i32> {
        let mut exps = vec![0i32; rows];
        let mut a = gemm::Rows::new(kernel);
        a.fill_quantized(x, self.inp, rows, self.inp, &mut exps);
        let mut out = vec![0i32; rows * self.out];
        gemm::gemm_packed(kernel, &a, &self.packed, &mut out);
        for (o_row, &e) in out.chunks_mut(self.out).zip(&exps) {
            for (((slot, &m), &sh), &b) in o_row
                .iter_mut()
                .zip(&self.mult)
                .zip(&self.shift)
                .zip(&self.bias)
            {
                let y = mul_shift(*slot, m, (sh - e) as u32);
                *slot = (y.clamp(-(1 << 29), 1 << 29) + b).clamp(-lim, lim);
            }
        }
        out
    }
}

pub(crate) struct QNorm {
    pub(crate) gamma: Vec<i32>,
    pub(crate) beta: Vec<i32>,
}

impl QNorm {
    /// The affine of this norm combined with a modulation `(shift, scale)`: per channel
    /// `a = mul_shift(γ, 4096 + scale, 12)`, `c = sat(mul_shift(β, 4096 + scale, 12) + shift)`.
    #[inline(always)]
    fn modulated(&self, shift: &[i32], scale: &[i32]) -> (Vec<i32>, Vec<i32>) {
        let one = 1 << FRAC;
        let a = self
            .gamma
            .iter()
            .zip(scale)
            .map(|(&g, &s)| mul_shift(g, one + s, FRAC))
            .collect();
        let c = self
            .beta
            .iter()
            .zip(scale)
            .zip(shift)
            .map(|((&b, &s), &sh)| sat_act(mul_shift(b, one + s, FRAC).saturating_add(sh)))
            .collect();
        (a, c)
    }
}

pub(crate) struct QBlock {
    pub(crate) norm1: QNorm,
    pub(crate) qkv: QLinear,
    pub(crate) proj: QLinear,
    pub(crate) norm2: QNorm,
    pub(crate) fc1: QLinear,
    pub(crate) fc2: QLinear,
    pub(crate) skip: Option<QLinear>,
    pub(crate) ada: QLinear,
}

/// The loaded integer network.
pub struct SpriteQNet {
    pub(crate) cfg: SpriteQConfig,
    pub(crate) patch_in: QLinear,
    pub(crate) pos: Vec<i32>,
    pub(crate) time_table: Vec<i32>,
    pub(crate) text_table: Vec<i32>,
    pub(crate) text_bias: Vec<i32>,
    pub(crate) final_ada: QLinear,
    pub(crate) blocks: Vec<QBlock>,
    pub(crate) norm_out: QNorm,
    pub(crate) patch_out: QLinear,
    pub(crate) exp_table: Vec<i32>,
    pub(crate) silu_table: Vec<i32>,
    pub(crate) sqrt_alpha: Vec<i32>,
    pub(crate) sqrt_one_minus_alpha: Vec<i32>,
    pub(crate) encoder: PromptEncoder,
}

impl std::fmt::Debug for SpriteQNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpriteQNet")
            .field("config", &self.cfg)
            .finish()
    }
}

/// Reads the typed tensors of a safetensors buffer.
struct Reader<'a> {
    path: &'a Path,
    st: safetensors::SafeTensors<'a>,
}

impl Reader<'_> {
    fn raw(
        &self,
        name: &str,
        dtype: safetensors::Dtype,
        shape: &[usize],
    ) -> Result<&[u8], ModelError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor {
                path: self.path.to_path_buf(),
                tensor: name.into(),
            })?;
        if t.dtype() != dtype {
            return Err(self.bad(format!(
                "tensor `{name}` is {:?}, kiln-sprite-q stores it as {dtype:?}",
                t.dtype()
            )));
        }
        if t.shape() != shape {
            return Err(ModelError::TensorShape {
                path: self.path.to_path_buf(),
                tensor: name.into(),
                expected: shape.to_vec(),
                actual: t.shape().to_vec(),
            });
        }
        Ok(t.data())
    }

    fn i32s(&self, name: &str, shape: &[usize]) -> Result<Vec<i32>, ModelError> {
        let b = self.raw(name, safetensors::Dtype::I32, shape)?;
        Ok(b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// An I16 table, widened to i32.
    fn i16s(&self, name: &str, shape: &[usize]) -> Result<Vec<i32>, ModelError> {
        let b = self.raw(name, safetensors::Dtype::I16, shape)?;
        Ok(b.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as i32)
            .collect())
    }

    fn i8s(&self, name: &str, shape: &[usize]) -> Result<Vec<i8>, ModelError> {
        let b = self.raw(name, safetensors::Dtype::I8, shape)?;
        Ok(b.iter().map(|&v| v as i8).collect())
    }

    fn bad(&self, detail: String) -> ModelError {
        ModelError::BadConfig {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    /// Values of `name` must lie in `lo..=hi`.
    fn ranged(
        &self,
        name: &str,
        shape: &[usize],
        lo: i32,
        hi: i32,
    ) -> Result<Vec<i32>, ModelError> {
        let v = self.i32s(name, shape)?;
        if let Some(bad) = v.iter().find(|x| !(lo..=hi).contains(x)) {
            return Err(self.bad(format!("tensor `{name}` holds {bad}, outside {lo}..={hi}")));
        }
        Ok(v)
    }

    fn linear(&self, name: &str, inp: usize, out: usize) -> Result<QLinear, ModelError> {
        let weight = self.i8s(&format!("{name}.weight"), &[out, inp])?;
        if weight.contains(&i8::MIN) {
            return Err(self.bad(format!(
                "tensor `{name}.weight` holds −128 (weights are −127..=127)"
            )));
        }
        Ok(QLinear {
            packed: gemm::Packed::new(&weight, out, inp),
            weight,
            bias: self.ranged(&format!("{name}.bias"), &[out], -BIAS_MAX, BIAS_MAX)?,
            mult: self.ranged(&format!("{name}.mult"), &[out], 0, i32::MAX)?,
            shift: self.ranged(
                &format!("{name}.shift"),
                &[out],
                SHIFT_RANGE.0,
                SHIFT_RANGE.1,
            )?,
            inp,
            out,
        })
    }

    fn norm(&self, name: &str, d: usize) -> Result<QNorm, ModelError> {
        Ok(QNorm {
            gamma: self.ranged(&format!("{name}.gamma"), &[d], -ACT_MAX, ACT_MAX)?,
            beta: self.ranged(&format!("{name}.beta"), &[d], -ACT_MAX, ACT_MAX)?,
        })
    }
}

impl SpriteQNet {
    /// Reads the config of a kiln-sprite-q safetensors buffer, if it is one.
    pub fn config_of(meta: &HashMap<String, String>) -> Option<Result<SpriteQConfig, String>> {
        let json = meta.get(crate::sprite::CONFIG_KEY)?;
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        if v.get("family")?.as_str()? != FAMILY {
            return None;
        }
        Some(
            serde_json::from_value::<SpriteQConfig>(v)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map(|()| c)),
        )
    }

    /// Builds the network from the bytes of a model file with a validated config.
    pub fn from_bytes(path: &Path, bytes: &[u8], cfg: SpriteQConfig) -> Result<Self, ModelError> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
            ModelError::NotSafetensors {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        let r = Reader { path, st };
        let d = cfg.dim;
        let pp = cfg.channels * cfg.patch * cfg.patch;
        let hidden = d * cfg.mlp_ratio;
        let grid = cfg.max_grid[0] * cfg.max_grid[1];
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = |n: &str| format!("blocks.{i}.{n}");
            blocks.push(QBlock {
                norm1: r.norm(&b("norm1"), d)?,
                qkv: r.linear(&b("attn.qkv"), d, 3 * d)?,
                proj: r.linear(&b("attn.proj"), d, d)?,
                norm2: r.norm(&b("norm2"), d)?,
                fc1: r.linear(&b("mlp.fc1"), d, hidden)?,
                fc2: r.linear(&b("mlp.fc2"), hidden, d)?,
                skip: if i >= cfg.depth / 2 {
                    Some(r.linear(&b("skip"), 2 * d, d)?)
                } else {
                    None
                },
                ada: r.linear(&b("ada"), d, 6 * d)?,
            });
        }
        let exp_table = r.ranged("tables.exp", &[ops::EXP_ENTRIES], 0, 1 << 16)?;
        if exp_table[0] != 1 << 16 || exp_table.windows(2).any(|w| w[1] > w[0]) {
            return Err(r.bad("tensor `tables.exp` must start at 65536 and never increase".into()));
        }
        let t = cfg.train_steps;
        let net = Self {
            patch_in: r.linear("patch_in", pp, d)?,
            pos: r.i16s("pos_embed", &[grid, d])?,
            time_table: r.i16s("time.table", &[t, d])?,
            text_table: r.i16s("text.table", &[cfg.text.rows(), d])?,
            text_bias: r.ranged("text.bias", &[d], -ACT_MAX, ACT_MAX)?,
            final_ada: r.linear("final.ada", d, 2 * d)?,
            blocks,
            norm_out: r.norm("norm_out", d)?,
            patch_out: r.linear("patch_out", d, pp)?,
            exp_table,
            silu_table: r.ranged("tables.silu", &[ops::SILU_ENTRIES], -ACT_MAX, ACT_MAX)?,
            sqrt_alpha: r.ranged("schedule.sqrt_alpha", &[t], 0, 1 << 30)?,
            sqrt_one_minus_alpha: r.ranged("schedule.sqrt_one_minus_alpha", &[t], 0, 1 << 30)?,
            encoder: PromptEncoder::new(&cfg.text),
            cfg,
        };
        Ok(net)
    }

    /// The config.
    pub fn config(&self) -> &SpriteQConfig {
        &self.cfg
    }

    /// The softmax's exponential table and the SiLU table (for kernel tests and other backends).
    pub fn tables(&self) -> (&[i32], &[i32]) {
        (&self.exp_table, &self.silu_table)
    }

    /// Block `i`'s MLP input layer (for kernel tests and benchmarks).
    pub fn block_fc1(&self, i: usize) -> Option<&QLinear> {
        self.blocks.get(i).map(|b| &b.fc1)
    }

    /// The linear layers one denoiser row runs per token, as (name, layer) pairs, in order (for
    /// the bare-GEMM benchmark reference).
    pub fn token_layers(&self) -> Vec<(&'static str, &QLinear)> {
        let mut v = vec![("patch_in", &self.patch_in)];
        for b in &self.blocks {
            if let Some(s) = &b.skip {
                v.push(("skip", s));
            }
            v.extend([
                ("qkv", &b.qkv),
                ("proj", &b.proj),
                ("fc1", &b.fc1),
                ("fc2", &b.fc2),
            ]);
        }
        v.push(("patch_out", &self.patch_out));
        v
    }

    /// `(√ᾱ_t, √(1−ᾱ_t))` in Q30.
    pub fn schedule_at(&self, t: usize) -> (i32, i32) {
        (self.sqrt_alpha[t], self.sqrt_one_minus_alpha[t])
    }

    /// The pooled, projected prompt (Q12, `dim` values): the rounded mean of the text table's
    /// rows of the non-padding word ids, plus the projection's bias (§9.3).
    pub fn prompt_features(&self, prompt: &str) -> Vec<i32> {
        let ids = self.encoder.encode(prompt);
        let d = self.cfg.dim;
        let used: Vec<usize> = ids
            .iter()
            .filter(|&&i| i != PAD)
            .map(|&i| i as usize)
            .collect();
        let n = used.len().max(1) as i32;
        (0..d)
            .map(|j| {
                let sum: i32 = used.iter().map(|&row| self.text_table[row * d + j]).sum();
                sat_act(ops::div_round(sum, n) + self.text_bias[j])
            })
            .collect()
    }

    /// The conditioning vector of one row at timestep `t`: `silu(time[t] + prompt)` (Q12).
    fn condition(&self, t: usize, prompt: &[i32]) -> Vec<i32> {
        let d = self.cfg.dim;
        self.time_table[t * d..(t + 1) * d]
            .iter()
            .zip(prompt)
            .map(|(&a, &b)| ops::silu(sat_act(a + b), &self.silu_table))
            .collect()
    }

    /// One denoiser evaluation: the image `x` (`[C, H, W]`, Q16) at timestep `t` under the
    /// two prompt rows (negative, positive) → two outputs `[C, H, W]` (Q16, v-prediction).
    pub fn forward(
        &self,
        kernel: Kernel,
        x: &[i32],
        width: usize,
        height: usize,
        t: usize,
        prompts: [&[i32]; 2],
    ) -> [Vec<i32>; 2] {
        let cfg = &self.cfg;
        let (p, c, d) = (cfg.patch, cfg.channels, cfg.dim);
        let (gw, gh) = (width / p, height / p);
        let n = gw * gh;
        let pp = c * p * p;
        // Patchify: token (gy, gx) holds channel, row, column within its patch.
        let mut patches = vec![0i32; n * pp];
        for gy in 0..gh {
            for gx in 0..gw {
                let tok = &mut patches[(gy * gw + gx) * pp..][..pp];
                for ch in 0..c {
                    for py in 0..p {
                        for px in 0..p {
                            let (y, xx) = (gy * p + py, gx * p + px);
                            tok[(ch * p + py) * p + px] = x[(ch * height + y) * width + xx];
                        }
                    }
                }
            }
        }
        let mut h0 = self.patch_in.forward(kernel, &patches, n, ACT_MAX);
        for gy in 0..gh {
            for gx in 0..gw {
                let pos = &self.pos[(gy * cfg.max_grid[0] + gx) * d..][..d];
                for (v, &pv) in h0[(gy * gw + gx) * d..][..d].iter_mut().zip(pos) {
                    *v = sat_act(*v + pv);
                }
            }
        }
        let run = |row: usize| -> Vec<i32> {
            let cond = self.condition(t, prompts[row]);
            let out = self.trunk(kernel, h0.clone(), n, &cond);
            self.unpatchify(&out, width, height)
        };
        let (u, v) = rayon::join(|| run(0), || run(1));
        [u, v]
    }

    /// Tokens `[gh·gw, C·p·p]` (channel, row, column within a patch) → an image `[C, H, W]`.
    pub(crate) fn unpatchify(&self, tokens: &[i32], width: usize, height: usize) -> Vec<i32> {
        let (p, c) = (self.cfg.patch, self.cfg.channels);
        let (gw, pp) = (width / p, c * p * p);
        let mut img = vec![0i32; c * height * width];
        for (i, tok) in tokens.chunks_exact(pp).enumerate() {
            let (gy, gx) = (i / gw, i % gw);
            for ch in 0..c {
                for py in 0..p {
                    for px in 0..p {
                        img[(ch * height + gy * p + py) * width + gx * p + px] =
                            tok[(ch * p + py) * p + px];
                    }
                }
            }
        }
        img
    }

    /// The blocks and the output head for one conditioning row. With a SIMD kernel the whole
    /// row is compiled a second time for AVX2, so the element-wise integer loops vectorize too
    /// (integer results do not depend on vector width).
    fn trunk(&self, kernel: Kernel, xs: Vec<i32>, n: usize, cond: &[i32]) -> Vec<i32> {
        #[cfg(target_arch = "x86_64")]
        match kernel {
            #[allow(unsafe_code)]
            // SAFETY: the VNNI kernel is only chosen on CPUs with AVX-512 F/BW/VL/VNNI.
            Kernel::Avx512Vnni => return unsafe { self.trunk_avx512(kernel, xs, n, cond) },
            #[allow(unsafe_code)]
            // SAFETY: SIMD kernels are only chosen on CPUs with AVX2.
            Kernel::Avx2 => return unsafe { self.trunk_avx2(kernel, xs, n, cond) },
            _ => {}
        }
        self.trunk_impl(kernel, xs, n, cond)
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn trunk_avx512(
        &self,
        kernel: Kernel,
        xs: Vec<i32>,
        n: usize,
        cond: &[i32],
    ) -> Vec<i32> {
        self.trunk_impl(kernel, xs, n, cond)
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2")]
    unsafe fn trunk_avx2(&self, kernel: Kernel, xs: Vec<i32>, n: usize, cond: &[i32]) -> Vec<i32> {
        self.trunk_impl(kernel, xs, n, cond)
    }

    #[inline(always)]
    fn trunk_impl(&self, kernel: Kernel, mut xs: Vec<i32>, n: usize, cond: &[i32]) -> Vec<i32> {
        let d = self.cfg.dim;
        let mut skips: Vec<Vec<i32>> = Vec::with_capacity(self.cfg.depth / 2);
        let mut h = vec![0i32; n * d];
        for block in &self.blocks {
            if let Some(skip) = &block.skip {
                let from = skips.pop().expect("one skip per first-half block");
                let mut cat = vec![0i32; n * 2 * d];
                for i in 0..n {
                    cat[i * 2 * d..][..d].copy_from_slice(&xs[i * d..][..d]);
                    cat[i * 2 * d + d..][..d].copy_from_slice(&from[i * d..][..d]);
                }
                xs = skip.forward(kernel, &cat, n, ACT_MAX);
            }
            let m = block.ada.forward(kernel, cond, 1, ACT_MAX);
            let chunk = |k: usize| &m[k * d..(k + 1) * d];
            let (a1, c1) = block.norm1.modulated(chunk(0), chunk(1));
            for i in 0..n {
                ops::layer_norm(&xs[i * d..][..d], &a1, &c1, &mut h[i * d..][..d]);
            }
            let att = self.attention(kernel, block, &h, n);
            gate_add(&mut xs, &att, chunk(2));
            let (a2, c2) = block.norm2.modulated(chunk(3), chunk(4));
            for i in 0..n {
                ops::layer_norm(&xs[i * d..][..d], &a2, &c2, &mut h[i * d..][..d]);
            }
            let mut f = block.fc1.forward(kernel, &h, n, ACT_MAX);
            ops::silu_in_place(kernel, &mut f, &self.silu_table);
            let f = block.fc2.forward(kernel, &f, n, ACT_MAX);
            gate_add(&mut xs, &f, chunk(5));
            if block.skip.is_none() {
                skips.push(xs.clone());
            }
        }
        let m = self.final_ada.forward(kernel, cond, 1, ACT_MAX);
        let (a, c) = self.norm_out.modulated(&m[..d], &m[d..]);
        for i in 0..n {
            ops::layer_norm(&xs[i * d..][..d], &a, &c, &mut h[i * d..][..d]);
        }
        self.patch_out.forward(kernel, &h, n, SAMPLE_MAX)
    }

    /// Multi-head self-attention of one row's tokens (§9.6).
    #[inline(always)]
    fn attention(&self, kernel: Kernel, block: &QBlock, h: &[i32], n: usize) -> Vec<i32> {
        let d = self.cfg.dim;
        let heads = self.cfg.heads;
        let hd = d / heads;
        let qkv = block.qkv.forward(kernel, h, n, ACT_MAX);
        let mut y = vec![0i32; n * d];
        let mut q8 = gemm::Rows::new(kernel);
        let mut eq = vec![0i32; n];
        let mut k8 = gemm::Packed::default();
        let mut scores = vec![0i32; n * n];
        let mut v16 = vec![0i32; n * hd];
        let mut values = gemm::ValuePairs::default();
        let mut words = Vec::with_capacity(n.div_ceil(2));
        let mut z = vec![0i32; n];
        let mut pr = vec![0u32; n];
        let mut col = vec![0i32; hd];
        let row = 3 * d;
        for head in 0..heads {
            // Offsets of this head's query, key and value within a token's qkv row.
            let (oq, ok, ov) = (head * hd, d + head * hd, 2 * d + head * hd);
            let part = |i: usize, at: usize| &qkv[i * row + at..][..hd];
            q8.fill_quantized(&qkv[oq..], row, n, hd, &mut eq);
            // Keys and values: one exponent per head over all tokens.
            let (mut mk, mut mv) = (0, 0);
            for i in 0..n {
                mk = mk.max(ops::max_abs(part(i, ok)));
                mv = mv.max(ops::max_abs(part(i, ov)));
            }
            let ek = if mk == 0 { 0 } else { ops::bit_len(mk) - 7 };
            let ev = if mv == 0 { 0 } else { ops::bit_len(mv) - 14 };
            k8.fill(n, hd, |i, k| ops::quantize_i8_with(part(i, ok), ek, 0, k));
            for i in 0..n {
                ops::quantize_with(part(i, ov), ev, (1 << 14) - 1, &mut v16[i * hd..][..hd]);
            }
            values.fill(&v16, n, hd);
            gemm::gemm_packed(kernel, &q8, &k8, &mut scores);
            for i in 0..n {
                let amount = eq[i] + ek - 16;
                ops::shift_clamp(&scores[i * n..(i + 1) * n], amount, 1 << 24, &mut z);
                ops::softmax_q15_with(kernel, &z, &self.exp_table, &mut pr);
                gemm::ValuePairs::pack_probabilities(&pr, &mut words);
                values.weighted_sum(kernel, &words, &mut col);
                ops::shift_clamp(&col, ev - 15, ACT_MAX, &mut y[i * d + head * hd..][..hd]);
            }
        }
        block.proj.forward(kernel, &y, n, ACT_MAX)
    }
}

/// `xs ← sat(xs + mul_shift(h, gate, 12))`, the gate per channel.
#[inline(always)]
fn gate_add(xs: &mut [i32], h: &[i32], gate: &[i32]) {
    let d = gate.len();
    for (row_x, row_h) in xs.chunks_mut(d).zip(h.chunks(d)) {
        for ((x, &hv), &g) in row_x.iter_mut().zip(row_h).zip(gate) {
            *x = sat_act(*x + mul_shift(hv, g, FRAC).clamp(-ACT_MAX, ACT_MAX));
        }
    }
}
