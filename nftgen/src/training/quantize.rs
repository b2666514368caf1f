//! Post-training export of a kiln-sprite (f32) model into a kiln-sprite-q (`kiln-pipeline/2`)
//! file: symmetric per-output-channel int8 weights, fixed-point requantization constants, and
//! the integer tables (time MLP per timestep, projected word embeddings, schedule, exp, SiLU).
//!
//! Floating point runs here, once, when the file is made; the file is then fixed and its
//! SHA-256 is the model hash of every recipe painted with it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::model::sprite_q::{FAMILY, PIPELINE_2, SHIFT_RANGE, SpriteQConfig, ops};
use crate::sprite::{Conditioning, SpriteConfig};

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// The f32 model is not one the integer pipeline implements.
    #[error("cannot quantize this model: {0}")]
    Unsupported(String),
    /// A tensor is missing or has the wrong shape.
    #[error("tensor `{name}`: {detail}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A value does not fit the integer formats (e.g. a weight row too large to requantize).
    #[error("`{name}` does not fit the integer format: {detail}")]
    Range {
        /// Tensor name.
        name: String,
        /// What overflowed.
        detail: String,
    },
    /// Writing the file failed.
    #[error("cannot write {path}: {detail}")]
    Write {
        /// Output path.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
}

/// Named f32 tensors as host vectors.
struct Weights<'a>(&'a HashMap<String, Tensor>);

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, QuantizeError> {
        let t = self.0.get(name).ok_or_else(|| QuantizeError::Tensor {
            name: name.into(),
            detail: "missing".into(),
        })?;
        if t.dims() != shape {
            return Err(QuantizeError::Tensor {
                name: name.into(),
                detail: format!("shape {:?}, expected {shape:?}", t.dims()),
            });
        }
        t.flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| QuantizeError::Tensor {
                name: name.into(),
                detail: e.to_string(),
            })
    }
}

/// `round(v · 2^frac)` as i32, refusing values outside `±ACT_MAX`.
fn fixed(name: &str, v: f64, frac: u32) -> Result<i32, QuantizeError> {
    let r = (v * (1u64 << frac) as f64).round();
    if !r.is_finite() || r.abs() > ops::ACT_MAX as f64 {
        return Err(QuantizeError::Range {
            name: name.into(),
            detail: format!("{v} in Q{frac}"),
        });
    }
    Ok(r as i32)
}

/// Output tensors: name → (dtype, shape, little-endian bytes).
type Out = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn push_i32(out: &mut Out, name: &str, shape: &[usize], v: &[i32]) {
    out.push((
        name.into(),
        Dtype::I32,
        shape.to_vec(),
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    ));
}

/// A Q12 table stored as I16: every value must fit.
fn push_i16(out: &mut Out, name: &str, shape: &[usize], v: &[i32]) -> Result<(), QuantizeError> {
    if let Some(bad) = v.iter().find(|x| i16::try_from(**x).is_err()) {
        return Err(QuantizeError::Range {
            name: name.into(),
            detail: format!("{bad} does not fit the I16 table (Q12, ±8.0)"),
        });
    }
    out.push((
        name.into(),
        Dtype::I16,
        shape.to_vec(),
        v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect(),
    ));
    Ok(())
}

/// Quantizes one linear layer `weight [outs, inp]`, `bias [outs]` (`shape` = (inp, outs);
/// rows optionally pre-scaled) with input format Q`fin` and output format Q`fout`
/// (`formats` = (fin, fout)).
fn linear(
    w: &Weights<'_>,
    out: &mut Out,
    name: &str,
    (inp, outs): (usize, usize),
    (fin, fout): (u32, u32),
    row_scale: &dyn Fn(usize) -> f64,
) -> Result<(), QuantizeError> {
    let weight = w.get(&format!("{name}.weight"), &[outs, inp])?;
    let bias = w.get(&format!("{name}.bias"), &[outs])?;
    let mut q = Vec::with_capacity(outs * inp);
    let (mut mult, mut shift, mut b) = (vec![0; outs], vec![0; outs], vec![0; outs]);
    for o in 0..outs {
        let rs = row_scale(o);
        let row: Vec<f64> = weight[o * inp..(o + 1) * inp]
            .iter()
            .map(|&x| x as f64 * rs)
            .collect();
        let max = row.iter().fold(0f64, |m, &x| m.max(x.abs()));
        b[o] = fixed(&format!("{name}.bias"), bias[o] as f64 * rs, fout)?;
        if max == 0.0 {
            q.extend(std::iter::repeat_n(0i8, inp));
            shift[o] = SHIFT_RANGE.0;
            continue;
        }
        let s = max / 127.0;
        q.extend(
            row.iter()
                .map(|&x| (x / s).round().clamp(-127.0, 127.0) as i8),
        );
        // Real multiplier c = s · 2^(fout − fin) = M · 2^−S with M in [2^30, 2^31).
        let c = s * 2f64.powi(fout as i32 - fin as i32);
        let mut ex = c.log2().floor() as i32 + 1; // c = f · 2^ex, f in [0.5, 1)
        let mut m = (c / 2f64.powi(ex) * 2f64.powi(31)).round() as i64;
        if m >= 1 << 31 {
            m >>= 1;
            ex += 1;
        }
        let sh = 31 - ex;
        if !(SHIFT_RANGE.0..=SHIFT_RANGE.1).contains(&sh) {
            return Err(QuantizeError::Range {
                name: format!("{name}.weight"),
                detail: format!("row {o}: multiplier {c} needs shift {sh}"),
            });
        }
        mult[o] = m as i32;
        shift[o] = sh;
    }
    out.push((
        format!("{name}.weight"),
        Dtype::I8,
        vec![outs, inp],
        q.iter().map(|&v| v as u8).collect(),
    ));
    push_i32(out, &format!("{name}.bias"), &[outs], &b);
    push_i32(out, &format!("{name}.mult"), &[outs], &mult);
    push_i32(out, &format!("{name}.shift"), &[outs], &shift);
    Ok(())
}

fn norm(w: &Weights<'_>, out: &mut Out, name: &str, d: usize) -> Result<(), QuantizeError> {
    for (src, dst) in [("weight", "gamma"), ("bias", "beta")] {
        let v = w.get(&format!("{name}.{src}"), &[d])?;
        let q = v
            .iter()
            .map(|&x| fixed(name, x as f64, ops::FRAC))
            .collect::<Result<Vec<_>, _>>()?;
        push_i32(out, &format!("{name}.{dst}"), &[d], &q);
    }
    Ok(())
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The kiln-sprite-q tensors and config for an f32 kiln-sprite model.
pub fn quantize(
    cfg: &SpriteConfig,
    tensors: &HashMap<String, Tensor>,
    name: &str,
    source_sha256: Option<String>,
) -> Result<(SpriteQConfig, Out), QuantizeError> {
    if cfg.conditioning != Conditioning::AdaLn {
        return Err(QuantizeError::Unsupported(
            "only adaLN conditioning has an integer form".into(),
        ));
    }
    if cfg.prediction != crate::sampling::schedule::Prediction::V {
        return Err(QuantizeError::Unsupported(
            "only v-prediction models have an integer sampler".into(),
        ));
    }
    // A model trained on the second data set paints in its palette, with its colour limits
    // (§9.7).
    let v2 = cfg.text.vocab == crate::training::data::vocabulary_v2();
    let qcfg = SpriteQConfig {
        family: FAMILY.into(),
        name: name.into(),
        pipeline: PIPELINE_2.into(),
        channels: cfg.channels,
        patch: cfg.patch,
        max_grid: cfg.max_grid,
        sizes: cfg.sizes.clone(),
        dim: cfg.dim,
        depth: cfg.depth,
        heads: cfg.heads,
        mlp_ratio: cfg.mlp_ratio,
        text: cfg.text.clone(),
        train_steps: cfg.schedule.train_steps,
        default_steps: cfg.default_steps,
        default_guidance: cfg.default_guidance,
        quantized_from: source_sha256,
        palette: v2.then(|| crate::training::data::palette::PALETTE.to_vec()),
        palette_colours: if v2 {
            crate::training::data::palette::COLOUR_LIMITS
                .into_iter()
                .filter(|&[w, h, _]| cfg.sizes.contains(&[w, h]))
                .collect()
        } else {
            Vec::new()
        },
    };
    qcfg.validate().map_err(QuantizeError::Unsupported)?;
    let w = Weights(tensors);
    let d = cfg.dim;
    let pp = cfg.channels * cfg.patch * cfg.patch;
    let hidden = d * cfg.mlp_ratio;
    let hd = d / cfg.heads;
    let one = |_: usize| 1.0;
    let mut out: Out = Vec::new();
    let (f12, f16) = (ops::FRAC, ops::SAMPLE_FRAC);

    linear(&w, &mut out, "patch_in", (pp, d), (f16, f12), &one)?;
    let grid = cfg.max_grid[0] * cfg.max_grid[1];
    let pos = w.get("pos_embed", &[grid, d])?;
    let pos = pos
        .iter()
        .map(|&x| fixed("pos_embed", x as f64, f12))
        .collect::<Result<Vec<_>, _>>()?;
    push_i16(&mut out, "pos_embed", &[grid, d], &pos)?;

    // The time MLP, tabulated per timestep in binary64.
    let t1w = w.get("time.fc1.weight", &[d, d])?;
    let t1b = w.get("time.fc1.bias", &[d])?;
    let t2w = w.get("time.fc2.weight", &[d, d])?;
    let t2b = w.get("time.fc2.bias", &[d])?;
    let mut time = Vec::with_capacity(cfg.schedule.train_steps * d);
    let half = d / 2;
    for t in 0..cfg.schedule.train_steps {
        let mut feat = vec![0f64; d];
        for k in 0..half {
            let freq = (-(10_000f64.ln()) * k as f64 / half as f64).exp();
            // As kiln-sprite computes them: binary64, rounded to binary32.
            feat[k] = ((t as f64 * freq).cos() as f32) as f64;
            feat[half + k] = ((t as f64 * freq).sin() as f32) as f64;
        }
        let lin = |wt: &[f32], b: &[f32], x: &[f64]| -> Vec<f64> {
            (0..d)
                .map(|o| b[o] as f64 + (0..d).map(|i| wt[o * d + i] as f64 * x[i]).sum::<f64>())
                .collect()
        };
        let h: Vec<f64> = lin(&t1w, &t1b, &feat).into_iter().map(silu).collect();
        for v in lin(&t2w, &t2b, &h) {
            time.push(fixed("time.table", v, f12)?);
        }
    }
    push_i16(
        &mut out,
        "time.table",
        &[cfg.schedule.train_steps, d],
        &time,
    )?;

    // Word embeddings projected once: text.table = E · Wᵀ, text.bias = b.
    let rows = cfg.text.rows();
    let emb = w.get("text.embed", &[rows, d])?;
    let pw = w.get("text.proj.weight", &[d, d])?;
    let pb = w.get("text.proj.bias", &[d])?;
    let mut table = Vec::with_capacity(rows * d);
    for r in 0..rows {
        for o in 0..d {
            let v: f64 = (0..d)
                .map(|i| pw[o * d + i] as f64 * emb[r * d + i] as f64)
                .sum();
            table.push(fixed("text.table", v, f12)?);
        }
    }
    push_i16(&mut out, "text.table", &[rows, d], &table)?;
    let tb = pb
        .iter()
        .map(|&x| fixed("text.bias", x as f64, f12))
        .collect::<Result<Vec<_>, _>>()?;
    push_i32(&mut out, "text.bias", &[d], &tb);

    linear(&w, &mut out, "final.ada", (d, 2 * d), (f12, f12), &one)?;
    let inv_sqrt_hd = 1.0 / (hd as f64).sqrt();
    for i in 0..cfg.depth {
        let b = |n: &str| format!("blocks.{i}.{n}");
        norm(&w, &mut out, &b("norm1"), d)?;
        norm(&w, &mut out, &b("norm2"), d)?;
        // 1/√(head dim) folded into the query rows.
        let q_scale = |o: usize| if o < d { inv_sqrt_hd } else { 1.0 };
        linear(
            &w,
            &mut out,
            &b("attn.qkv"),
            (d, 3 * d),
            (f12, f12),
            &q_scale,
        )?;
        linear(&w, &mut out, &b("attn.proj"), (d, d), (f12, f12), &one)?;
        linear(&w, &mut out, &b("mlp.fc1"), (d, hidden), (f12, f12), &one)?;
        linear(&w, &mut out, &b("mlp.fc2"), (hidden, d), (f12, f12), &one)?;
        if i >= cfg.depth / 2 {
            linear(&w, &mut out, &b("skip"), (2 * d, d), (f12, f12), &one)?;
        }
        linear(&w, &mut out, &b("ada"), (d, 6 * d), (f12, f12), &one)?;
    }
    norm(&w, &mut out, "norm_out", d)?;
    linear(&w, &mut out, "patch_out", (d, pp), (f12, f16), &one)?;

    let exp: Vec<i32> = (0..ops::EXP_ENTRIES)
        .map(|k| ((-(k as f64) / 256.0).exp() * 65536.0).round() as i32)
        .collect();
    push_i32(&mut out, "tables.exp", &[ops::EXP_ENTRIES], &exp);
    let silu_t: Vec<i32> = (0..ops::SILU_ENTRIES)
        .map(|k| (silu((k as f64 - 4096.0) / 256.0) * 4096.0).round() as i32)
        .collect();
    push_i32(&mut out, "tables.silu", &[ops::SILU_ENTRIES], &silu_t);
    let alphas = cfg.schedule.alphas_cumprod();
    let q30 = |v: f64| (v * (1u64 << 30) as f64).round() as i32;
    let sa: Vec<i32> = alphas.iter().map(|&a| q30(a.sqrt())).collect();
    let s1a: Vec<i32> = alphas.iter().map(|&a| q30((1.0 - a).sqrt())).collect();
    push_i32(&mut out, "schedule.sqrt_alpha", &[alphas.len()], &sa);
    push_i32(
        &mut out,
        "schedule.sqrt_one_minus_alpha",
        &[alphas.len()],
        &s1a,
    );
    Ok((qcfg, out))
}

/// Writes a kiln-sprite-q file: the tensors sorted by name, the config as metadata.
pub fn save(path: &Path, cfg: &SpriteQConfig, tensors: &Out) -> Result<(), QuantizeError> {
    let err = |detail: String| QuantizeError::Write {
        path: path.to_path_buf(),
        detail,
    };
    let mut sorted: Vec<&(String, Dtype, Vec<usize>, Vec<u8>)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let views = sorted
        .iter()
        .map(|(n, dt, shape, data)| {
            TensorView::new(*dt, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        crate::sprite::CONFIG_KEY.to_string(),
        serde_json::to_string(cfg).expect("config serializes"),
    );
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))?;
    crate::provenance::store::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}

/// Reads an f32 kiln-sprite file and writes its kiln-sprite-q export to `out`.
pub fn quantize_file(from: &Path, out: &Path, name: &str) -> Result<SpriteQConfig, QuantizeError> {
    let unsupported = |e: String| QuantizeError::Unsupported(format!("{}: {e}", from.display()));
    let bytes = std::fs::read(from).map_err(|e| unsupported(e.to_string()))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| unsupported(e.to_string()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(crate::sprite::CONFIG_KEY))
        .ok_or_else(|| unsupported("not a kiln-sprite file".into()))?;
    let cfg: SpriteConfig = serde_json::from_str(json).map_err(|e| unsupported(e.to_string()))?;
    cfg.validate().map_err(unsupported)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu)
        .map_err(|e| unsupported(e.to_string()))?;
    let sha = crate::ModelHash::of_file_bytes(&bytes).to_string();
    let (qcfg, t) = quantize(&cfg, &tensors, name, Some(sha))?;
    save(out, &qcfg, &t)?;
    Ok(qcfg)
}
