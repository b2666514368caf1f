//! kiln-sprite: Kiln's compact pixel-space diffusion transformer.
//!
//! The image is cut into `patch × patch` patches; each patch becomes a token. One sequence holds
//! a timestep token, the prompt's tokens and the patch tokens; pre-norm transformer blocks with
//! long skip connections (first half → second half) mix them, and the patch tokens are projected
//! back to pixels. Everything is matrix multiplication (no convolution), which keeps CPU training
//! affordable. Weights and config live in one safetensors file: the config is the JSON string
//! under the metadata key `kiln.config`, so the file's SHA-256 covers the architecture too.
//!
//! The prompt encoder is a table of learned word embeddings: each lower-cased word of the prompt
//! is looked up in the config's vocabulary; an unknown word falls into one of `hash_buckets`
//! rows chosen by FNV-1a of the word, so any text encodes without error. Tokens beyond
//! `max_tokens` are dropped (with a log line). Row 0 is padding, row 1 the empty prompt.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use serde::{Deserialize, Serialize};

use crate::sampling::schedule::{NoiseSchedule, Prediction};

/// Metadata key of the JSON config inside a kiln-sprite safetensors file.
pub const CONFIG_KEY: &str = "kiln.config";

/// Family name written in kiln-sprite configs.
pub const FAMILY: &str = "kiln-sprite";

/// Architecture and sampling defaults of a kiln-sprite model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpriteConfig {
    /// Always `"kiln-sprite"`.
    pub family: String,
    /// Model id recorded in generation records.
    pub name: String,
    /// Image channels (3: RGB).
    pub channels: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Largest grid of patches (width, height) the position table covers.
    pub max_grid: [usize; 2],
    /// Sizes (width, height) the model was trained for; only these are accepted.
    pub sizes: Vec<[u32; 2]>,
    /// Transformer width.
    pub dim: usize,
    /// Number of transformer blocks (even: the first half feeds long skips into the second).
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: usize,
    /// Prompt encoder.
    pub text: TextConfig,
    /// Training noise schedule.
    pub schedule: NoiseSchedule,
    /// What the network predicts.
    pub prediction: Prediction,
    /// Default steps for generation.
    pub default_steps: u32,
    /// Default classifier-free guidance.
    pub default_guidance: f32,
    /// How the timestep and the prompt reach the blocks (absent in a config: `in_context`).
    #[serde(default)]
    pub conditioning: Conditioning,
}

/// How a kiln-sprite network is told the timestep and the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditioning {
    /// A timestep token and one token per prompt word join the patch tokens in one sequence.
    #[default]
    InContext,
    /// The sequence holds only patch tokens; the timestep embedding plus the projected mean of
    /// the prompt's word embeddings drive a per-block shift, scale and gate of every token
    /// ("adaLN-Zero", initialised so each block starts as the identity). Trains much faster.
    AdaLn,
}

/// The word-embedding prompt encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Known words (lower case); word i has embedding row 2 + i.
    pub vocab: Vec<String>,
    /// Rows shared by unknown words, after the vocabulary rows.
    pub hash_buckets: usize,
    /// Prompt length in tokens (padded or truncated to this).
    pub max_tokens: usize,
}

impl TextConfig {
    /// Embedding rows: padding, empty prompt, vocabulary, hash buckets.
    pub fn rows(&self) -> usize {
        2 + self.vocab.len() + self.hash_buckets
    }
}

/// Token id of padding.
pub const PAD: u32 = 0;
/// Token id of the empty prompt (the unconditional input of classifier-free guidance).
pub const EMPTY: u32 = 1;

/// Turns prompts into token ids for a kiln-sprite model.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    index: HashMap<String, u32>,
    buckets: usize,
    max_tokens: usize,
}

impl PromptEncoder {
    /// Builds the lookup table of a config.
    pub fn new(cfg: &TextConfig) -> Self {
        let index = cfg
            .vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), 2 + i as u32))
            .collect();
        Self {
            index,
            buckets: cfg.hash_buckets,
            max_tokens: cfg.max_tokens,
        }
    }

    /// Words of a prompt: maximal runs of alphanumeric characters, lower-cased.
    pub fn words(prompt: &str) -> Vec<String> {
        prompt
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    /// Token ids, padded with [`PAD`] to `max_tokens`. An empty prompt is [`EMPTY`] then padding.
    pub fn encode(&self, prompt: &str) -> Vec<u32> {
        let words = Self::words(prompt);
        let mut ids: Vec<u32> = words.iter().map(|w| self.word_id(w)).collect();
        if ids.is_empty() {
            ids.push(EMPTY);
        }
        if ids.len() > self.max_tokens {
            tracing::info!(
                words = ids.len(),
                kept = self.max_tokens,
                "prompt longer than the model's prompt window: extra words ignored"
            );
            ids.truncate(self.max_tokens);
        }
        ids.resize(self.max_tokens, PAD);
        ids
    }

    /// Id of one lower-case word: its vocabulary row, or its FNV-1a hash bucket.
    pub fn word_id(&self, word: &str) -> u32 {
        if let Some(&id) = self.index.get(word) {
            return id;
        }
        if self.buckets == 0 {
            return EMPTY;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.as_bytes() {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (2 + self.index.len() + (h % self.buckets as u64) as usize) as u32
    }
}

impl SpriteConfig {
    /// A small configuration for tests and benchmarks with random weights.
    pub fn tiny() -> Self {
        let vocab = [
            "a", "an", "the", "of", "with", "and", "red", "green", "blue", "gold", "silver",
            "glowing", "sword", "potion", "shield", "gem", "forest", "desert", "sea", "at",
            "night", "dusk", "dawn", "day",
        ];
        Self {
            family: FAMILY.into(),
            name: "kiln-sprite-tiny".into(),
            channels: 3,
            patch: 4,
            max_grid: [16, 16],
            sizes: vec![[32, 32], [64, 32], [64, 64]],
            dim: 64,
            depth: 4,
            heads: 4,
            mlp_ratio: 2,
            text: TextConfig {
                vocab: vocab.iter().map(|w| w.to_string()).collect(),
                hash_buckets: 16,
                max_tokens: 12,
            },
            schedule: NoiseSchedule {
                train_steps: 1000,
                beta_schedule: crate::sampling::schedule::BetaSchedule::Cosine,
                beta_start: 0.0001,
                beta_end: 0.02,
            },
            prediction: Prediction::V,
            default_steps: 20,
            default_guidance: 3.0,
            conditioning: Conditioning::InContext,
        }
    }

    /// The shipped size class with in-context conditioning (about 2.8 M parameters). The shipped
    /// model is [`crate::training::train::training_config`]: this size with [`Conditioning::AdaLn`].
    pub fn base() -> Self {
        Self {
            name: "kiln-sprite-base".into(),
            dim: 160,
            depth: 8,
            heads: 5,
            mlp_ratio: 4,
            text: TextConfig {
                max_tokens: 16,
                hash_buckets: 64,
                ..Self::tiny().text
            },
            ..Self::tiny()
        }
    }

    /// Checks the invariants the network relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.family != FAMILY {
            return Err(format!("family is `{}`, expected `{FAMILY}`", self.family));
        }
        let positive = [
            ("channels", self.channels),
            ("patch", self.patch),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("mlp_ratio", self.mlp_ratio),
            ("text.max_tokens", self.text.max_tokens),
            ("schedule.train_steps", self.schedule.train_steps),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(format!("{field} must be positive"));
            }
        }
        if !self.dim.is_multiple_of(self.heads) {
            return Err(format!(
                "dim {} is not a multiple of heads {}",
                self.dim, self.heads
            ));
        }
        if !self.depth.is_multiple_of(2) {
            return Err(format!(
                "depth {} must be even (long skips pair blocks)",
                self.depth
            ));
        }
        if self.sizes.is_empty() {
            return Err("sizes is empty".into());
        }
        check_sizes(&self.sizes, self.patch, self.max_grid)?;
        if self.name.is_empty() {
            return Err("name is empty".into());
        }
        Ok(())
    }
}

/// Every size must be a positive multiple of the patch and fit the position table.
pub(crate) fn check_sizes(
    sizes: &[[u32; 2]],
    patch: usize,
    max_grid: [usize; 2],
) -> Result<(), String> {
    for &[w, h] in sizes {
        let p = patch as u32;
        if w == 0 || h == 0 || !w.is_multiple_of(p) || !h.is_multiple_of(p) {
            return Err(format!(
                "size {w}x{h} is not a positive multiple of patch {p}"
            ));
        }
        if (w / p) as usize > max_grid[0] || (h / p) as usize > max_grid[1] {
            return Err(format!("size {w}x{h} exceeds max_grid {max_grid:?}"));
        }
    }
    Ok(())
}

/// A linear layer. Inference multiplies by a contiguous copy of Wᵀ made at load (measured
/// ~15% faster than candle's strided transpose); training uses the live weight so updates show.
struct Dense {
    weight: Tensor,
    weight_t: Tensor,
    bias: Tensor,
}

fn linear(inp: usize, out: usize, vb: VarBuilder<'_>) -> candle_core::Result<Dense> {
    let lin: Linear = candle_nn::linear(inp, out, vb)?;
    Ok(Dense {
        weight_t: lin.weight().t()?.contiguous()?.detach(),
        weight: lin.weight().clone(),
        bias: lin.bias().expect("kiln-sprite linears have a bias").clone(),
    })
}

struct Block {
    norm1: LayerNorm,
    qkv: Dense,
    proj: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    skip: Option<Dense>,
    /// adaLN-Zero modulation: conditioning → shift, scale, gate for attention and MLP.
    ada: Option<Dense>,
}

/// The kiln-sprite network.
pub struct SpriteNet {
    cfg: SpriteConfig,
    patch_in: Dense,
    pos: Tensor,
    time1: Dense,
    time2: Dense,
    text_embed: Tensor,
    /// In-context only.
    text_pos: Option<Tensor>,
    /// adaLN only: projection of the pooled prompt embedding.
    text_proj: Option<Dense>,
    /// adaLN only: conditioning → shift, scale of the output norm.
    final_ada: Option<Dense>,
    blocks: Vec<Block>,
    norm_out: LayerNorm,
    patch_out: Dense,
    training: bool,
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    quantization_aware: bool,
}

impl SpriteNet {
    /// Builds the network from weights named as `RECIPE.md` lists them.
    pub fn new(cfg: SpriteConfig, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        let d = cfg.dim;
        let pp = cfg.channels * cfg.patch * cfg.patch;
        let patch_in = linear(pp, d, vb.pp("patch_in"))?;
        let pos = vb.get((cfg.max_grid[0] * cfg.max_grid[1], d), "pos_embed")?;
        let time1 = linear(d, d, vb.pp("time.fc1"))?;
        let time2 = linear(d, d, vb.pp("time.fc2"))?;
        let text_embed = vb.get((cfg.text.rows(), d), "text.embed")?;
        let ada = cfg.conditioning == Conditioning::AdaLn;
        let (text_pos, text_proj, final_ada) = if ada {
            (
                None,
                Some(linear(d, d, vb.pp("text.proj"))?),
                Some(linear(d, 2 * d, vb.pp("final.ada"))?),
            )
        } else {
            (
                Some(vb.get((cfg.text.max_tokens, d), "text.pos")?),
                None,
                None,
            )
        };
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = vb.pp(format!("blocks.{i}"));
            let hidden = d * cfg.mlp_ratio;
            blocks.push(Block {
                norm1: candle_nn::layer_norm(d, 1e-5, b.pp("norm1"))?,
                qkv: linear(d, 3 * d, b.pp("attn.qkv"))?,
                proj: linear(d, d, b.pp("attn.proj"))?,
                norm2: candle_nn::layer_norm(d, 1e-5, b.pp("norm2"))?,
                fc1: linear(d, hidden, b.pp("mlp.fc1"))?,
                fc2: linear(hidden, d, b.pp("mlp.fc2"))?,
                skip: if i >= cfg.depth / 2 {
                    Some(linear(2 * d, d, b.pp("skip"))?)
                } else {
                    None
                },
                ada: if ada {
                    Some(linear(d, 6 * d, b.pp("ada"))?)
                } else {
                    None
                },
            });
        }
        let norm_out = candle_nn::layer_norm(d, 1e-5, vb.pp("norm_out"))?;
        let patch_out = linear(d, pp, vb.pp("patch_out"))?;
        Ok(Self {
            cfg,
            patch_in,
            pos,
            time1,
            time2,
            text_embed,
            text_pos,
            text_proj,
            final_ada,
            blocks,
            norm_out,
            patch_out,
            training: false,
            quantization_aware: false,
        })
    }

    /// Selects ops that have gradients (slower): for training only. Inference keeps the fast path.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Quantization-aware training: every layer that kiln-sprite-q runs as an int8 product
    /// sees its weights and inputs as the integer model will (per-output-channel int8 weights,
    /// per-row int8 inputs with a power-of-two step, int8 attention queries and keys), with
    /// straight-through gradients. The time MLP and the prompt projection, which kiln-sprite-q
    /// stores as tables, stay as they are.
    #[cfg(feature = "train")]
    pub fn set_quantization_aware(&mut self, on: bool) {
        self.quantization_aware = on;
    }

    /// The config.
    pub fn config(&self) -> &SpriteConfig {
        &self.cfg
    }

    fn norm(&self, ln: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.training {
            let w = ln.weight();
            let b = ln.bias().expect("kiln-sprite norms have a bias");
            candle_nn::ops::layer_norm_slow(x, w, b, 1e-5)
        } else {
            ln.forward(x)
        }
    }

    /// The layer over the last dimension as one 2-D matrix product (rows = all leading dims)
    /// instead of candle's per-batch broadcast product: one larger GEMM is much faster.
    fn apply(&self, layer: &Dense, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let (last, lead) = dims.split_last().expect("at least one dim");
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, *last))?;
        let y = if self.training {
            x2.matmul(&layer.weight.t()?)?
        } else {
            x2.matmul(&layer.weight_t)?
        };
        let y = y.broadcast_add(&layer.bias)?;
        let mut out_dims = lead.to_vec();
        out_dims.push(y.dim(1)?);
        y.reshape(out_dims)
    }

    /// [`apply`](Self::apply) for a layer kiln-sprite-q runs as an int8 product: under
    /// quantization-aware training its weights and input are fake-quantized first.
    fn apply_q(&self, layer: &Dense, x: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(feature = "train")]
        if self.quantization_aware {
            use crate::training::qat;
            let fake = Dense {
                weight: qat::fake_quant_channels(&layer.weight)?,
                weight_t: layer.weight_t.clone(),
                bias: layer.bias.clone(),
            };
            return self.apply(&fake, &qat::fake_quant_rows(x)?);
        }
        self.apply(layer, x)
    }

    fn softmax(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.training {
            candle_nn::ops::softmax(x, D::Minus1)
        } else {
            candle_nn::ops::softmax_last_dim(x)
        }
    }

    /// Sinusoidal embedding of timestep `t` (binary64 on the host, then binary32).
    fn time_features(&self, ts: &[f64], dev: &Device) -> candle_core::Result<Tensor> {
        let (dim, half) = (self.cfg.dim, self.cfg.dim / 2);
        let mut v = vec![0f32; dim * ts.len()];
        for (row, &t) in ts.iter().enumerate() {
            for k in 0..half {
                let freq = (-(10_000f64.ln()) * k as f64 / half as f64).exp();
                v[row * dim + k] = (t * freq).cos() as f32;
                v[row * dim + half + k] = (t * freq).sin() as f32;
            }
        }
        Tensor::from_vec(v, (ts.len(), dim), dev)
    }

    /// Predicts (per the config's `prediction`) for images `x` [B, C, H, W] at timesteps `ts`
    /// (one per row) with prompt tokens `tokens` [B, max_tokens] (u32).
    pub fn forward(&self, x: &Tensor, ts: &[f64], tokens: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if ts.len() != b {
            candle_core::bail!("{} timesteps for a batch of {b}", ts.len());
        }
        let p = self.cfg.patch;
        let (gh, gw) = (h / p, w / p);
        let d = self.cfg.dim;
        // Patchify: [B, C, gh, p, gw, p] → [B, gh, gw, C, p, p] → [B, N, C·p·p].
        let patches = x
            .reshape((b, c, gh, p, gw, p))?
            .permute([0, 2, 4, 1, 3, 5])?
            .contiguous()?
            .reshape((b, gh * gw, c * p * p))?;
        let pos = self
            .pos
            .reshape((self.cfg.max_grid[1], self.cfg.max_grid[0], d))?
            .narrow(0, 0, gh)?
            .narrow(1, 0, gw)?
            .contiguous()?
            .reshape((gh * gw, d))?;
        let patches = self
            .apply_q(&self.patch_in, &patches)?
            .broadcast_add(&pos)?;
        let time = self.time_features(ts, x.device())?;
        let time = self.apply(&self.time2, &self.apply(&self.time1, &time)?.silu()?)?;
        let words = self
            .text_embed
            .embedding(&tokens.flatten_all()?)?
            .reshape((b, self.cfg.text.max_tokens, d))?;
        let (mut xs, n_prefix, cond) = match (&self.text_pos, &self.text_proj) {
            (Some(text_pos), _) => {
                let text = words.broadcast_add(text_pos)?;
                let xs = Tensor::cat(&[&time.unsqueeze(1)?, &text, &patches], 1)?;
                (xs, 1 + self.cfg.text.max_tokens, None)
            }
            (None, Some(text_proj)) => {
                let pooled = self.apply(text_proj, &mean_of_words(&words, tokens)?)?;
                (patches, 0, Some((time + pooled)?.silu()?))
            }
            (None, None) => unreachable!("built with one conditioning"),
        };
        let mut skips = Vec::with_capacity(self.cfg.depth / 2);
        for block in &self.blocks {
            if let Some(skip) = &block.skip {
                let from = skips.pop().expect("one skip per first-half block");
                xs = self.apply_q(skip, &Tensor::cat(&[&xs, &from], D::Minus1)?)?;
            }
            // adaLN: [B, 1, 6·d] → shift, scale, gate of attention, then of the MLP.
            let m = match (&block.ada, &cond) {
                (Some(ada), Some(c)) => Some(self.apply_q(ada, c)?.unsqueeze(1)?.chunk(6, 2)?),
                _ => None,
            };
            let h = self.norm(&block.norm1, &xs)?;
            let h = match &m {
                Some(m) => modulate(&h, &m[0], &m[1])?,
                None => h,
            };
            let h = self.attention(block, &h)?;
            xs = match &m {
                Some(m) => (&xs + h.broadcast_mul(&m[2])?)?,
                None => (&xs + h)?,
            };
            let h = self.norm(&block.norm2, &xs)?;
            let h = match &m {
                Some(m) => modulate(&h, &m[3], &m[4])?,
                None => h,
            };
            // SiLU: on candle's CPU backend it costs a seventh of GELU, which cost more than fc1 itself.
            let h = self.apply_q(&block.fc2, &self.apply_q(&block.fc1, &h)?.silu()?)?;
            xs = match &m {
                Some(m) => (&xs + h.broadcast_mul(&m[5])?)?,
                None => (&xs + h)?,
            };
            if block.skip.is_none() {
                skips.push(xs.clone());
            }
        }
        let out = xs.narrow(1, n_prefix, gh * gw)?;
        let out = self.norm(&self.norm_out, &out)?;
        let out = match (&self.final_ada, &cond) {
            (Some(ada), Some(c)) => {
                let m = self.apply_q(ada, c)?.unsqueeze(1)?.chunk(2, 2)?;
                modulate(&out, &m[0], &m[1])?
            }
            _ => out,
        };
        let out = self.apply_q(&self.patch_out, &out)?;
        // Unpatchify: [B, gh, gw, C, p, p] → [B, C, gh, p, gw, p] → [B, C, H, W].
        out.reshape((b, gh, gw, c, p, p))?
            .permute([0, 3, 1, 4, 2, 5])?
            .contiguous()?
            .reshape((b, c, h, w))
    }

    fn attention(&self, block: &Block, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let heads = self.cfg.heads;
        let hd = d / heads;
        let qkv = self.apply_q(&block.qkv, x)?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * d, d)?
                .reshape((b, l, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        // The 1/√hd scale goes on q (L·hd values) rather than on the L·L scores.
        let q = (split(0)? * (1.0 / (hd as f64).sqrt()))?;
        let (k, v) = (split(1)?, split(2)?);
        #[cfg(feature = "train")]
        let (q, k) = if self.quantization_aware {
            // kiln-sprite-q: queries int8 per token and head, keys int8 with one step per head.
            use crate::training::qat::fake_quant_rows;
            let per_head = fake_quant_rows(&k.reshape((b, heads, l * hd))?)?;
            (fake_quant_rows(&q)?, per_head.reshape((b, heads, l, hd))?)
        } else {
            (q, k)
        };
        let att = q.matmul(&k.t()?)?;
        let att = self.softmax(&att)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
        self.apply_q(&block.proj, &y)
    }
}

/// `x · (1 + scale) + shift`, with `shift` and `scale` broadcast over the tokens.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)
}

/// Mean of the word embeddings `words` [B, T, d] over the tokens that are not padding.
fn mean_of_words(words: &Tensor, tokens: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, _) = words.dims3()?;
    let ids = tokens.to_vec2::<u32>()?;
    let mut mask = Vec::with_capacity(b * t);
    for row in &ids {
        let n = row.iter().filter(|&&id| id != PAD).count().max(1) as f32;
        mask.extend(row.iter().map(|&id| if id == PAD { 0.0 } else { 1.0 / n }));
    }
    let mask = Tensor::from_vec(mask, (b, t, 1), words.device())?;
    words.broadcast_mul(&mask)?.sum(1)
}

/// Writes a kiln-sprite safetensors file: the named tensors and the config as metadata.
pub fn save(
    path: &Path,
    cfg: &SpriteConfig,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), safetensors::SafeTensorError> {
    let mut meta = HashMap::new();
    meta.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_string(cfg).expect("config serializes"),
    );
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize_to_file(sorted, Some(meta), path)
}

/// Random weights for `cfg`, deterministic from `seed`: N(0, 0.02²) for matrices and
/// embeddings, zero biases, unit norm gains. With adaLN conditioning the modulation layers and
/// the output projection start at zero (adaLN-Zero), and the conditioning path starts at unit
/// scale — word embeddings N(0, 1), the time MLP and the prompt projection N(0, 1/fan-in) — so
/// prompt and timestep weigh alike from the first step (at 0.02 the prompt's share of the
/// conditioning vector started ten times smaller than the timestep's, and the prompt was
/// learned late). For tests, benchmarks and training's start.
pub fn random_weights(
    cfg: &SpriteConfig,
    seed: u64,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let dev = Device::Cpu;
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    SpriteNet::new(cfg.clone(), vb)?;
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = crate::sampling::noise::NoiseRng::new(seed);
    let mut out = HashMap::new();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let ada = cfg.conditioning == Conditioning::AdaLn;
        let zero_init = ada && (name.contains("ada.") || name.starts_with("patch_out."));
        let std = if !ada {
            0.02
        } else if name == "text.embed" {
            1.0
        } else if ["text.proj.weight", "time.fc1.weight", "time.fc2.weight"]
            .contains(&name.as_str())
        {
            1.0 / (shape.dims()[1] as f64).sqrt()
        } else {
            0.02
        };
        let t = if name.ends_with(".bias") {
            Tensor::zeros(&shape, DType::F32, &dev)?
        } else if name.contains("norm") {
            Tensor::ones(&shape, DType::F32, &dev)?
        } else {
            let v: Vec<f32> = rng
                .normals(shape.elem_count())
                .into_iter()
                .map(|x| if zero_init { 0.0 } else { x * std as f32 })
                .collect();
            Tensor::from_vec(v, &shape, &dev)?
        };
        out.insert(name.clone(), t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ada_ln_starts_as_the_zero_function_and_depends_on_the_prompt_once_trained() {
        let cfg = SpriteConfig {
            conditioning: Conditioning::AdaLn,
            ..SpriteConfig::tiny()
        };
        let mut w = random_weights(&cfg, 5).unwrap();
        let dev = Device::Cpu;
        let x = Tensor::from_vec(
            crate::sampling::noise::NoiseRng::new(1).normals(3 * 32 * 32),
            (1, 3, 32, 32),
            &dev,
        )
        .unwrap();
        let enc = PromptEncoder::new(&cfg.text);
        let tokens = |p: &str| Tensor::from_vec(enc.encode(p), (1, 12), &dev).unwrap();
        let run = |w: &HashMap<String, Tensor>, p: &str| {
            let net = SpriteNet::new(
                cfg.clone(),
                VarBuilder::from_tensors(w.clone(), DType::F32, &dev),
            )
            .unwrap();
            net.forward(&x, &[500.0], &tokens(p))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        // adaLN-Zero: modulation and output projection start at zero, so the net outputs zeros.
        assert!(run(&w, "a red sword").iter().all(|&v| v == 0.0));
        // With non-zero modulation the prompt changes the output.
        for (name, t) in w.iter_mut() {
            if name.contains("ada.") || name.starts_with("patch_out.") {
                *t = (t.ones_like().unwrap() * 0.01).unwrap();
            }
        }
        assert_ne!(run(&w, "a red sword"), run(&w, "a blue sword"));
        assert_eq!(run(&w, "a red sword"), run(&w, "a red sword"));
    }

    #[test]
    fn prompt_encoder_handles_any_text() {
        let enc = PromptEncoder::new(&SpriteConfig::tiny().text);
        let ids = enc.encode("A glowing GREEN potion!");
        assert_eq!(ids.len(), 12);
        // Vocabulary rows start at 2: "a" is word 0, "glowing" 11, "green" 7, "potion" 13.
        assert_eq!(&ids[..5], &[2, 13, 9, 15, PAD]);
        let unknown = enc.encode("zorbulous ✨ 漢字");
        let vocab_end = 2 + 24;
        assert!(
            unknown[..2]
                .iter()
                .all(|&i| i >= vocab_end && i < vocab_end + 16)
        );
        assert_eq!(enc.encode("   "), {
            let mut v = vec![EMPTY];
            v.resize(12, PAD);
            v
        });
        assert_eq!(enc.encode(&"sword ".repeat(40)).len(), 12);
    }
}
