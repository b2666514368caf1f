//! Stable Diffusion family checkpoints in the diffusers directory layout, through
//! candle-transformers: SD 1.x (CLIP ViT-L text encoder), SD 2.x and SD-Turbo (OpenCLIP ViT-H).
//!
//! Layout read: `text_encoder/{config.json,model.safetensors}`, `tokenizer/{vocab.json,merges.txt}`
//! (+ optional `tokenizer_config.json` for the pad token), `unet/{config.json,
//! diffusion_pytorch_model.safetensors}`, `vae/{config.json,diffusion_pytorch_model.safetensors}`,
//! `scheduler/scheduler_config.json`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::text_model as clip_text;
use candle_transformers::models::stable_diffusion::{clip as sd_clip, unet_2d, vae};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::build_error;
use crate::error::ModelError;
use crate::provenance::record::ModelHash;
use crate::sampling::schedule::{BetaSchedule, NoiseSchedule, Prediction};

/// Files that make up a checkpoint, in the order the model hash covers them.
pub const COMPONENT_FILES: [&str; 9] = [
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
];
/// Optional file also covered by the hash when present.
pub const OPTIONAL_FILES: [&str; 1] = ["tokenizer/tokenizer_config.json"];

/// True when `dir` looks like a diffusers checkpoint.
pub fn is_sd_dir(dir: &Path) -> bool {
    dir.is_dir() && (dir.join("unet").is_dir() || dir.join("model_index.json").is_file())
}

/// SHA-256 over the checkpoint: for each present file of [`COMPONENT_FILES`] then
/// [`OPTIONAL_FILES`], its relative path, a 0 byte and the file's own SHA-256.
pub fn model_hash(dir: &Path) -> Result<ModelHash, ModelError> {
    let mut outer = Sha256::new();
    for rel in COMPONENT_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let path = dir.join(rel);
        if !path.is_file() {
            if COMPONENT_FILES.contains(rel) {
                return Err(ModelError::MissingFile { path });
            }
            continue;
        }
        outer.update(rel.as_bytes());
        outer.update([0]);
        outer.update(sha256_file(&path)?);
    }
    Ok(ModelHash(outer.finalize().into()))
}

pub(crate) fn sha256_file(path: &Path) -> Result<[u8; 32], ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    if !path.is_file() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

struct Cfg<'a> {
    path: &'a Path,
    v: &'a Value,
}

impl Cfg<'_> {
    fn bad(&self, detail: String) -> ModelError {
        ModelError::BadConfig {
            path: self.path.to_path_buf(),
            detail,
        }
    }
    fn usize(&self, key: &str) -> Result<usize, ModelError> {
        self.v
            .get(key)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| self.bad(format!("`{key}` must be a non-negative integer")))
    }
    fn usize_or(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad(format!("`{key}` must be a number"))),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ModelError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(format!("`{key}` must be true or false"))),
        }
    }
    fn str_or<'s>(&'s self, key: &str, default: &'s str) -> Result<&'s str, ModelError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.bad(format!("`{key}` must be a string"))),
        }
    }
    fn usizes(&self, key: &str) -> Result<Vec<usize>, ModelError> {
        let arr = self
            .v
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| self.bad(format!("`{key}` must be a list")))?;
        arr.iter()
            .map(|x| x.as_u64().map(|x| x as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.bad(format!("`{key}` must list non-negative integers")))
    }
    /// An integer or a list with one integer per block.
    fn per_block(&self, key: &str, n: usize, default: usize) -> Result<Vec<usize>, ModelError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(vec![default; n]),
            Some(Value::Array(_)) => {
                let v = self.usizes(key)?;
                if v.len() != n {
                    return Err(self.bad(format!("`{key}` has {} entries for {n} blocks", v.len())));
                }
                Ok(v)
            }
            Some(_) => Ok(vec![self.usize(key)?; n]),
        }
    }
}

/// Loads a safetensors file into memory (no mmap) as a tensor map.
pub(crate) fn load_tensors(
    path: &Path,
    dev: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    if !path.is_file() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    candle_core::safetensors::load_buffer(&bytes, dev).map_err(|e| ModelError::NotSafetensors {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// CLIP's byte-level BPE tokenizer, read from `vocab.json` and `merges.txt`.
#[derive(Debug)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: regex::Regex,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl ClipTokenizer {
    /// Reads `dir/vocab.json`, `dir/merges.txt` and, if present, the pad token from
    /// `dir/tokenizer_config.json`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let vocab_path = dir.join("vocab.json");
        let vocab_json = read_json(&vocab_path)?;
        let bad = |path: &Path, detail: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            detail,
        };
        let vocab: HashMap<String, u32> = vocab_json
            .as_object()
            .ok_or_else(|| bad(&vocab_path, "expected an object of token → id".into()))?
            .iter()
            .map(|(k, v)| v.as_u64().map(|id| (k.clone(), id as u32)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(&vocab_path, "ids must be integers".into()))?;
        let merges_path = dir.join("merges.txt");
        if !merges_path.is_file() {
            return Err(ModelError::MissingFile { path: merges_path });
        }
        let merges = std::fs::read_to_string(&merges_path).map_err(|source| ModelError::Io {
            path: merges_path.clone(),
            source,
        })?;
        let mut ranks = HashMap::new();
        for (n, line) in merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .enumerate()
        {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => {
                    ranks.insert((a.to_string(), b.to_string()), n);
                }
                _ => return Err(bad(&merges_path, format!("line `{line}` is not a pair"))),
            }
        }
        let id = |tok: &str| {
            vocab
                .get(tok)
                .copied()
                .ok_or_else(|| bad(&vocab_path, format!("no id for `{tok}`")))
        };
        let bos = id("<|startoftext|>")?;
        let eos = id("<|endoftext|>")?;
        let mut pad = eos;
        let tc = dir.join("tokenizer_config.json");
        if tc.is_file() {
            let v = read_json(&tc)?;
            let tok = match v.get("pad_token") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).map(String::from)
                }
                _ => None,
            };
            if let Some(tok) = tok {
                pad = vocab.get(&tok).copied().unwrap_or(eos);
            }
        }
        let pattern = regex::Regex::new(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
        )
        .expect("valid pattern");
        Ok(Self {
            vocab,
            ranks,
            byte_chars: byte_chars(),
            pattern,
            bos,
            eos,
            pad,
        })
    }

    fn bpe(&self, word: &str) -> Vec<String> {
        let chars: Vec<char> = word.chars().collect();
        let mut parts: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|&r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", parts[i], parts[i + 1]);
            let (a, b) = (parts[i].clone(), parts[i + 1].clone());
            let mut next = Vec::with_capacity(parts.len());
            let mut j = 0;
            while j < parts.len() {
                if j + 1 < parts.len() && parts[j] == a && parts[j + 1] == b {
                    next.push(merged.clone());
                    j += 2;
                } else {
                    next.push(parts[j].clone());
                    j += 1;
                }
            }
            parts = next;
        }
        parts
    }

    /// `<|startoftext|>`, the prompt's tokens (truncated), `<|endoftext|>`, then padding to `len`.
    pub fn encode(&self, text: &str, len: usize) -> Vec<u32> {
        let clean = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = vec![self.bos];
        for m in self.pattern.find_iter(&clean) {
            let mapped: String = m
                .as_str()
                .bytes()
                .map(|b| self.byte_chars[b as usize])
                .collect();
            for piece in self.bpe(&mapped) {
                match self.vocab.get(&piece) {
                    Some(&id) => ids.push(id),
                    None => tracing::debug!(piece, "token not in the CLIP vocabulary: skipped"),
                }
            }
        }
        ids.truncate(len.saturating_sub(1));
        ids.push(self.eos);
        ids.resize(len, self.pad);
        ids
    }
}

/// GPT-2/CLIP's reversible byte → printable character table.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("latin-1")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid char")
        };
    }
    table
}

/// The character a byte maps to in CLIP vocabularies (for writing test vocabularies).
pub fn byte_char(b: u8) -> char {
    byte_chars()[b as usize]
}

enum TextEncoder {
    /// Quick-GELU encoders with any shape (SD 1.x, tiny test checkpoints).
    QuickGelu(clip_text::ClipTextTransformer),
    /// The GELU OpenCLIP ViT-H encoder of SD 2.x / SD-Turbo.
    Sd2(sd_clip::ClipTextTransformer),
}

/// A loaded Stable Diffusion checkpoint.
pub(crate) struct SdModel {
    pub(crate) id: String,
    tokenizer: ClipTokenizer,
    text: TextEncoder,
    text_len: usize,
    unet: unet_2d::UNet2DConditionModel,
    pub(crate) latent_channels: usize,
    vae: vae::AutoEncoderKL,
    scaling_factor: f64,
    pub(crate) vae_factor: usize,
    pub(crate) unet_factor: usize,
    pub(crate) default_size: u32,
    pub(crate) schedule: NoiseSchedule,
    pub(crate) prediction: Prediction,
}

impl SdModel {
    pub(crate) fn load(dir: &Path, dev: &Device) -> Result<Self, ModelError> {
        let id = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "stable-diffusion".into());

        // Scheduler.
        let sp = dir.join("scheduler/scheduler_config.json");
        let sv = read_json(&sp)?;
        let sc = Cfg { path: &sp, v: &sv };
        let beta_schedule = match sc.str_or("beta_schedule", "scaled_linear")? {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::Cosine,
            other => return Err(sc.bad(format!("unsupported beta_schedule `{other}`"))),
        };
        let schedule = NoiseSchedule {
            train_steps: sc.usize_or("num_train_timesteps", 1000)?,
            beta_schedule,
            beta_start: sc.f64_or("beta_start", 0.00085)?,
            beta_end: sc.f64_or("beta_end", 0.012)?,
        };
        let prediction = match sc.str_or("prediction_type", "epsilon")? {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            other => return Err(sc.bad(format!("unsupported prediction_type `{other}`"))),
        };

        // Text encoder.
        let tp = dir.join("text_encoder/config.json");
        let tv = read_json(&tp)?;
        let tc = Cfg { path: &tp, v: &tv };
        let hidden = tc.usize("hidden_size")?;
        let layers = tc.usize("num_hidden_layers")?;
        let heads = tc.usize("num_attention_heads")?;
        let text_len = tc.usize_or("max_position_embeddings", 77)?;
        let act = tc.str_or("hidden_act", "quick_gelu")?.to_string();
        let tw = dir.join("text_encoder/model.safetensors");
        let tensors = load_tensors(&tw, dev)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, dev);
        let text = match act.as_str() {
            "quick_gelu" => {
                let cfg = clip_text::ClipTextConfig {
                    vocab_size: tc.usize("vocab_size")?,
                    embed_dim: hidden,
                    activation: clip_text::Activation::QuickGelu,
                    intermediate_size: tc.usize("intermediate_size")?,
                    max_position_embeddings: text_len,
                    pad_with: None,
                    num_hidden_layers: layers,
                    num_attention_heads: heads,
                    projection_dim: tc.usize_or("projection_dim", hidden)?,
                };
                TextEncoder::QuickGelu(
                    clip_text::ClipTextTransformer::new(vb.pp("text_model"), &cfg)
                        .map_err(|e| build_error(&tw, e))?,
                )
            }
            "gelu" if hidden == 1024 && layers == 23 && heads == 16 && text_len == 77 => {
                let cfg = sd_clip::Config::v2_1();
                TextEncoder::Sd2(
                    sd_clip::ClipTextTransformer::new(vb, &cfg).map_err(|e| build_error(&tw, e))?,
                )
            }
            other => {
                return Err(tc.bad(format!(
                    "hidden_act `{other}` with hidden_size {hidden} and {layers} layers is not supported (quick_gelu encoders of any size, or the SD 2.x gelu encoder)"
                )));
            }
        };
        let tokenizer = ClipTokenizer::load(&dir.join("tokenizer"))?;

        // UNet.
        let up = dir.join("unet/config.json");
        let uv = read_json(&up)?;
        let uc = Cfg { path: &up, v: &uv };
        let channels = uc.usizes("block_out_channels")?;
        if channels.is_empty() {
            return Err(uc.bad("`block_out_channels` is empty".into()));
        }
        let n = channels.len();
        let down_types: Vec<String> = uv
            .get("down_block_types")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| {
                let mut v = vec!["CrossAttnDownBlock2D".to_string(); n];
                v[n - 1] = "DownBlock2D".into();
                v
            });
        if down_types.len() != n {
            return Err(uc.bad(format!(
                "{} down_block_types for {n} block_out_channels",
                down_types.len()
            )));
        }
        let heads = uc.per_block("attention_head_dim", n, 8)?;
        let tlayers = uc.per_block("transformer_layers_per_block", n, 1)?;
        let blocks = (0..n)
            .map(|i| unet_2d::BlockConfig {
                out_channels: channels[i],
                use_cross_attn: down_types[i].starts_with("CrossAttn").then_some(tlayers[i]),
                attention_head_dim: heads[i],
            })
            .collect();
        let ucfg = unet_2d::UNet2DConditionModelConfig {
            center_input_sample: uc.bool_or("center_input_sample", false)?,
            flip_sin_to_cos: uc.bool_or("flip_sin_to_cos", true)?,
            freq_shift: uc.f64_or("freq_shift", 0.0)?,
            blocks,
            layers_per_block: uc.usize_or("layers_per_block", 2)?,
            downsample_padding: uc.usize_or("downsample_padding", 1)?,
            mid_block_scale_factor: uc.f64_or("mid_block_scale_factor", 1.0)?,
            norm_num_groups: uc.usize_or("norm_num_groups", 32)?,
            norm_eps: uc.f64_or("norm_eps", 1e-5)?,
            cross_attention_dim: uc.usize("cross_attention_dim")?,
            sliced_attention_size: None,
            use_linear_projection: uc.bool_or("use_linear_projection", false)?,
        };
        if ucfg.cross_attention_dim != hidden {
            return Err(uc.bad(format!(
                "cross_attention_dim {} does not match the text encoder's hidden_size {hidden}",
                ucfg.cross_attention_dim
            )));
        }
        let latent_channels = uc.usize_or("in_channels", 4)?;
        let sample_size = uc.usize_or("sample_size", 64)?;
        let out_channels = uc.usize_or("out_channels", 4)?;
        let uw = dir.join("unet/diffusion_pytorch_model.safetensors");
        let vb = VarBuilder::from_tensors(load_tensors(&uw, dev)?, DType::F32, dev);
        let unet =
            unet_2d::UNet2DConditionModel::new(vb, latent_channels, out_channels, false, ucfg)
                .map_err(|e| build_error(&uw, e))?;

        // VAE.
        let vp = dir.join("vae/config.json");
        let vv = read_json(&vp)?;
        let vc = Cfg { path: &vp, v: &vv };
        let vae_channels = vc.usizes("block_out_channels")?;
        let vcfg = vae::AutoEncoderKLConfig {
            block_out_channels: vae_channels.clone(),
            layers_per_block: vc.usize_or("layers_per_block", 2)?,
            latent_channels: vc.usize_or("latent_channels", 4)?,
            norm_num_groups: vc.usize_or("norm_num_groups", 32)?,
            use_quant_conv: vc.bool_or("use_quant_conv", true)?,
            use_post_quant_conv: vc.bool_or("use_post_quant_conv", true)?,
        };
        if vcfg.latent_channels != latent_channels {
            return Err(vc.bad(format!(
                "latent_channels {} does not match the UNet's in_channels {latent_channels}",
                vcfg.latent_channels
            )));
        }
        let scaling_factor = vc.f64_or("scaling_factor", 0.18215)?;
        let vw = dir.join("vae/diffusion_pytorch_model.safetensors");
        let vb = VarBuilder::from_tensors(load_tensors(&vw, dev)?, DType::F32, dev);
        let vae = vae::AutoEncoderKL::new(vb, 3, 3, vcfg).map_err(|e| build_error(&vw, e))?;

        Ok(Self {
            id,
            tokenizer,
            text,
            text_len,
            unet,
            latent_channels,
            vae,
            scaling_factor,
            vae_factor: 1 << (vae_channels.len().max(1) - 1),
            unet_factor: 1 << (n - 1),
            default_size: (sample_size << (vae_channels.len().max(1) - 1)) as u32,
            schedule,
            prediction,
        })
    }

    /// Text embeddings [2, len, hidden] for (negative, positive).
    pub(crate) fn encode_pair(
        &self,
        negative: &str,
        prompt: &str,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let ids: Vec<u32> = [negative, prompt]
            .iter()
            .flat_map(|t| self.tokenizer.encode(t, self.text_len))
            .collect();
        let ids = Tensor::from_vec(ids, (2, self.text_len), dev)?;
        match &self.text {
            TextEncoder::QuickGelu(t) => t.forward_with_mask(&ids, usize::MAX),
            TextEncoder::Sd2(t) => t.forward(&ids),
        }
    }

    pub(crate) fn predict(&self, x: &Tensor, t: f64, cond: &Tensor) -> candle_core::Result<Tensor> {
        self.unet.forward(x, t, cond)
    }

    pub(crate) fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        self.vae.decode(&(latents * (1.0 / self.scaling_factor))?)
    }
}

/// The UNet configuration of [`write_tiny_checkpoint`] (4 latent channels in and out, text width
/// 32), for benchmarks that drive the UNet alone.
pub fn tiny_unet_config() -> unet_2d::UNet2DConditionModelConfig {
    let block = |c, cross| unet_2d::BlockConfig {
        out_channels: c,
        use_cross_attn: cross,
        attention_head_dim: 2,
    };
    unet_2d::UNet2DConditionModelConfig {
        center_input_sample: false,
        flip_sin_to_cos: true,
        freq_shift: 0.0,
        blocks: vec![block(32, Some(1)), block(64, None)],
        layers_per_block: 1,
        downsample_padding: 1,
        mid_block_scale_factor: 1.0,
        norm_num_groups: 8,
        norm_eps: 1e-5,
        cross_attention_dim: 32,
        sliced_attention_size: None,
        use_linear_projection: false,
    }
}

/// Writes a tiny Stable Diffusion checkpoint with random weights into `dir`, in the real
/// diffusers layout and tensor names (2-block UNet of 32/64 channels, 2-block VAE, 2-layer CLIP
/// text encoder of width 32, a byte-level vocabulary with a few merges). For tests and
/// benchmarks of the loader and pipeline: it paints noise. Sizes are multiples of 4.
pub fn write_tiny_checkpoint(dir: &Path) -> Result<(), ModelError> {
    use serde_json::json;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let write_json = |rel: &str, v: &Value| -> Result<(), ModelError> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("has parent")).map_err(io(&p))?;
        std::fs::write(&p, serde_json::to_string_pretty(v).expect("json")).map_err(io(&p))
    };
    // Tokenizer: every byte as a symbol (alone and word-final), merges spelling a few words.
    let mut vocab: Vec<String> = Vec::new();
    for b in 0..=255u8 {
        vocab.push(byte_char(b).to_string());
    }
    for b in 0..=255u8 {
        vocab.push(format!("{}</w>", byte_char(b)));
    }
    let mut merges = vec!["#version: 0.2".to_string()];
    for word in [
        "a", "red", "green", "potion", "sword", "glowing", "forest", "night",
    ] {
        let mut parts: Vec<String> = word.chars().map(|c| c.to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        let mut acc = parts[0].clone();
        for next in &parts[1..] {
            let line = format!("{acc} {next}");
            acc = format!("{acc}{next}");
            if !merges.contains(&line) {
                merges.push(line);
                vocab.push(acc.clone());
            }
        }
    }
    vocab.push("<|startoftext|>".into());
    vocab.push("<|endoftext|>".into());
    let vocab_json: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    write_json("tokenizer/vocab.json", &Value::Object(vocab_json))?;
    let mp = dir.join("tokenizer/merges.txt");
    std::fs::write(&mp, merges.join("\n") + "\n").map_err(io(&mp))?;

    let text_cfg = json!({
        "architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 32,
        "intermediate_size": 37, "max_position_embeddings": 77, "num_attention_heads": 4,
        "num_hidden_layers": 2, "projection_dim": 32, "vocab_size": vocab.len()
    });
    let unet_cfg = json!({
        "_class_name": "UNet2DConditionModel", "sample_size": 8, "in_channels": 4, "out_channels": 4,
        "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
        "attention_head_dim": 2, "norm_num_groups": 8,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]
    });
    let vae_cfg = json!({
        "_class_name": "AutoencoderKL", "block_out_channels": [16, 32], "latent_channels": 4,
        "layers_per_block": 1, "norm_num_groups": 8, "scaling_factor": 0.18215,
        "in_channels": 3, "out_channels": 3
    });
    let sched_cfg = json!({
        "_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon"
    });
    write_json("text_encoder/config.json", &text_cfg)?;
    write_json("unet/config.json", &unet_cfg)?;
    write_json("vae/config.json", &vae_cfg)?;
    write_json("scheduler/scheduler_config.json", &sched_cfg)?;
    write_json(
        "model_index.json",
        &json!({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0"}),
    )?;

    // Weights: build each module on a VarMap (which creates every tensor it asks for, with
    // its real name and shape), then save the map.
    let dev = Device::Cpu;
    let save = |rel: &str, build: &dyn Fn(VarBuilder<'_>) -> candle_core::Result<()>| {
        let path = dir.join(rel);
        let varmap = candle_nn::VarMap::new();
        build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
            .and_then(|_| varmap.save(&path))
            .map_err(|e| build_error(&path, e))
    };
    let clip_cfg = clip_text::ClipTextConfig {
        vocab_size: vocab.len(),
        embed_dim: 32,
        activation: clip_text::Activation::QuickGelu,
        intermediate_size: 37,
        max_position_embeddings: 77,
        pad_with: None,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        projection_dim: 32,
    };
    save("text_encoder/model.safetensors", &|vb| {
        clip_text::ClipTextTransformer::new(vb.pp("text_model"), &clip_cfg).map(|_| ())
    })?;
    let ucfg = tiny_unet_config();
    save("unet/diffusion_pytorch_model.safetensors", &|vb| {
        unet_2d::UNet2DConditionModel::new(vb, 4, 4, false, ucfg.clone()).map(|_| ())
    })?;
    let vcfg = vae::AutoEncoderKLConfig {
        block_out_channels: vec![16, 32],
        layers_per_block: 1,
        latent_channels: 4,
        norm_num_groups: 8,
        use_quant_conv: true,
        use_post_quant_conv: true,
    };
    save("vae/diffusion_pytorch_model.safetensors", &|vb| {
        vae::AutoEncoderKL::new(vb, 3, 3, vcfg.clone()).map(|_| ())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let t = byte_chars();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], 'Ġ');
    }
}
