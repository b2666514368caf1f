//! Training kiln-sprite on the procedural data set, on the CPU with candle's autograd.
//!
//! Every step is a pure function of the options' seeds and the step number: the batch (for the
//! first data set scenes at 64×32 on every third step, items at 32×32 on the others; for the
//! second a cycle over its groups, [`Trainer::group_of_step`]), the noise, the timesteps and which
//! captions are dropped for classifier-free guidance all come from [`NoiseRng`] streams. So a run
//! resumed from a checkpoint continues exactly as an uninterrupted run would, and a rerun gives
//! the same weights. The optimiser is Adam with decoupled weight decay, written here so its
//! state can be checkpointed.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::model::sprite::{self, PromptEncoder, SpriteConfig, SpriteNet};
use crate::sampling::noise::NoiseRng;
use crate::sampling::schedule::Prediction;
use crate::training::data;

/// Training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The tensor backend failed.
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The loss became NaN or infinite.
    #[error("the loss diverged (non-finite) at step {0}")]
    Diverged(u64),
}

/// Hyper-parameters and seeds of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Optimisation steps of the run (it may stop before the schedule ends).
    pub steps: u64,
    /// Length of the learning-rate schedule in steps (cosine decay over this horizon,
    /// independent of where the run stops).
    #[serde(default = "default_schedule_steps")]
    pub schedule_steps: u64,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Probability of training a sample with the empty prompt (for guidance).
    pub uncond_prob: f64,
    /// Seed of weights, noise and timesteps.
    pub seed: u64,
    /// Seed of the data set.
    pub data_seed: u64,
    /// Step after which an exponential moving average of the weights is kept (it starts as a
    /// copy of the weights then); the exported model is the average.
    #[serde(default = "default_ema_start")]
    pub ema_start: u64,
    /// Decay of that average per step.
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
    /// Quantization-aware training ([`SpriteNet::set_quantization_aware`]): the network sees
    /// its int8 layers as kiln-sprite-q will run them.
    #[serde(default)]
    pub qat: bool,
    /// Which procedural data set the batches come from (runs of v1 stored none: v1).
    #[serde(default)]
    pub data_set: data::DataSet,
    /// Second data set only: train every step on this group instead of the cycle of
    /// [`Trainer::group_of_step`] (a fine-tune that works on one kind of picture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<data::Group>,
}

fn default_schedule_steps() -> u64 {
    3000
}

fn default_ema_start() -> u64 {
    1000
}

fn default_ema_decay() -> f64 {
    0.998
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            steps: 2400,
            schedule_steps: default_schedule_steps(),
            batch: 32,
            lr: 1e-3,
            warmup: 200,
            weight_decay: 0.01,
            uncond_prob: 0.1,
            seed: 0,
            data_seed: 0,
            ema_start: default_ema_start(),
            ema_decay: default_ema_decay(),
            qat: false,
            data_set: data::DataSet::V1,
            only: None,
        }
    }
}

/// The architecture Kiln trains: the `base` size class with the data set's vocabulary, at the
/// data set's sizes.
pub fn training_config() -> SpriteConfig {
    let mut cfg = SpriteConfig::base();
    cfg.name = "kiln-sprite-v1".into();
    cfg.conditioning = sprite::Conditioning::AdaLn;
    cfg.text.vocab = data::vocabulary();
    cfg.sizes = vec![
        [data::ITEM_SIZE.0, data::ITEM_SIZE.1],
        [data::SCENE_SIZE.0, data::SCENE_SIZE.1],
    ];
    cfg
}

/// The architecture of kiln-sprite v2: [`training_config`] with the second data set's
/// vocabulary and sizes (items and props, scenes, character sheets, tiles).
pub fn training_config_v2() -> SpriteConfig {
    let mut cfg = training_config();
    cfg.name = "kiln-sprite-v2".into();
    cfg.text.vocab = data::vocabulary_v2();
    cfg.sizes = data::Group::ALL
        .iter()
        .map(|g| [g.size().0, g.size().1])
        .collect();
    cfg
}

/// Turns a kiln-sprite v1 model (config and weights) into the start of a v2 run: the config of
/// [`training_config_v2`] (kept: every architecture field of `cfg`), and a word-embedding table
/// with the v1 rows where they were, the new words' rows drawn N(0, 1) from `seed` (as fresh
/// embeddings are) and the hash buckets after them. The position table already covers a
/// sheet's 12×16 patches.
pub fn migrate_to_v2(
    cfg: &SpriteConfig,
    weights: &HashMap<String, Tensor>,
    seed: u64,
) -> Result<(SpriteConfig, HashMap<String, Tensor>), TrainError> {
    let v2 = training_config_v2();
    let old_vocab = cfg.text.vocab.len();
    if cfg.text.vocab[..] != v2.text.vocab[..old_vocab] {
        return Err(TrainError::Backend(candle_core::Error::Msg(
            "the model's vocabulary is not the first data set's: it cannot grow into v2's".into(),
        )));
    }
    let mut next = cfg.clone();
    next.name = v2.name;
    next.text.vocab = v2.text.vocab;
    next.sizes = v2.sizes;
    next.validate()
        .map_err(|e| TrainError::Backend(candle_core::Error::Msg(e)))?;
    let mut out = weights.clone();
    let embed = weights.get("text.embed").ok_or_else(|| {
        TrainError::Backend(candle_core::Error::Msg("no `text.embed` weights".into()))
    })?;
    let d = cfg.dim;
    let added = next.text.vocab.len() - old_vocab;
    let fresh = Tensor::from_vec(
        NoiseRng::new(seed ^ 0x7E47_0002).normals(added * d),
        (added, d),
        &Device::Cpu,
    )?;
    let known = 2 + old_vocab;
    let grown = Tensor::cat(
        &[
            embed.narrow(0, 0, known)?,
            fresh,
            embed.narrow(0, known, cfg.text.hash_buckets)?,
        ],
        0,
    )?;
    out.insert("text.embed".into(), grown);
    Ok((next, out))
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    ema: Option<Tensor>,
}

/// A training run in progress.
pub struct Trainer {
    cfg: SpriteConfig,
    opts: TrainOptions,
    net: SpriteNet,
    slots: Vec<Slot>,
    encoder: PromptEncoder,
    alphas: Vec<f64>,
    step: u64,
    seconds: f64,
    _varmap: VarMap,
}

const META_STEP: &str = "kiln.train.step";
const META_OPTS: &str = "kiln.train.options";
const META_SECONDS: &str = "kiln.train.seconds";

impl Trainer {
    /// A fresh run: weights from [`sprite::random_weights`] seeded by `opts.seed`.
    pub fn new(cfg: SpriteConfig, opts: TrainOptions) -> Result<Self, TrainError> {
        let init = sprite::random_weights(&cfg, opts.seed)?;
        Self::build(cfg, opts, &init, None, 0)
    }

    /// A fine-tuning run that starts from a trained model file (its config and weights; the
    /// optimiser starts fresh), e.g. quantization-aware fine-tuning of the shipped model.
    pub fn from_model(path: &Path, opts: TrainOptions) -> Result<Self, TrainError> {
        let (bytes, meta) = read_with_metadata(path)?;
        let cfg: SpriteConfig = meta
            .get(sprite::CONFIG_KEY)
            .ok_or_else(|| checkpoint_error(path, "not a kiln-sprite model (no config)"))
            .and_then(|json| serde_json::from_str(json).map_err(|e| checkpoint_error(path, e)))?;
        let weights = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        if opts.data_set == data::DataSet::V2 && cfg.text.vocab != data::vocabulary_v2() {
            let (cfg, weights) = migrate_to_v2(&cfg, &weights, opts.seed)?;
            return Self::build(cfg, opts, &weights, None, 0);
        }
        Self::build(cfg, opts, &weights, None, 0)
    }

    /// Which group of the second data set step `s` trains on: a cycle of six steps — items
    /// and props twice, character sheets twice (the most to learn: role, clothes, hair, four
    /// directions and the walk), a scene once and tiles once.
    pub fn group_of_step(s: u64) -> data::Group {
        use data::Group::*;
        [Small, Sheet, Tile, Small, Scene, Sheet][(s % 6) as usize]
    }

    /// Whether step `s` trains on scenes (every third step) rather than items: items have more
    /// attributes to learn and cost less than half as much per sample.
    pub fn is_scene_step(s: u64) -> bool {
        s % 3 == 2
    }

    fn build(
        cfg: SpriteConfig,
        opts: TrainOptions,
        weights: &HashMap<String, Tensor>,
        moments: Option<&HashMap<String, Tensor>>,
        step: u64,
    ) -> Result<Self, TrainError> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let mut net = SpriteNet::new(
            cfg.clone(),
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        )?;
        net.set_training(true);
        net.set_quantization_aware(opts.qat);
        let mut slots = Vec::new();
        {
            let data = varmap.data().lock().expect("varmap lock");
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for name in names {
                let var = data[name].clone();
                let w = weights.get(name).ok_or_else(|| {
                    candle_core::Error::Msg(format!("initial weights lack `{name}`"))
                })?;
                var.set(w)?;
                let zeros = || Tensor::zeros(var.shape(), DType::F32, &dev);
                let (m, v) = match moments {
                    Some(mo) => (
                        mo.get(&format!("adam.m.{name}"))
                            .cloned()
                            .map_or_else(zeros, Ok)?,
                        mo.get(&format!("adam.v.{name}"))
                            .cloned()
                            .map_or_else(zeros, Ok)?,
                    ),
                    None => (zeros()?, zeros()?),
                };
                let ema = moments.and_then(|mo| mo.get(&format!("ema.{name}")).cloned());
                slots.push(Slot {
                    name: name.clone(),
                    var,
                    m,
                    v,
                    ema,
                });
            }
        }
        Ok(Self {
            encoder: PromptEncoder::new(&cfg.text),
            alphas: cfg.schedule.alphas_cumprod(),
            cfg,
            opts,
            net,
            slots,
            step,
            seconds: 0.0,
            _varmap: varmap,
        })
    }

    /// Resumes from a checkpoint written by [`save_checkpoint`](Self::save_checkpoint). The
    /// options stored in it win over `opts` except `steps` (so a run can be extended).
    pub fn resume(path: &Path, opts: TrainOptions) -> Result<Self, TrainError> {
        let bad = |detail: String| checkpoint_error(path, detail);
        let (bytes, meta) = read_with_metadata(path)?;
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(format!("no `{k}`")));
        let cfg: SpriteConfig =
            serde_json::from_str(get(sprite::CONFIG_KEY)?).map_err(|e| bad(e.to_string()))?;
        let mut stored: TrainOptions =
            serde_json::from_str(get(META_OPTS)?).map_err(|e| bad(e.to_string()))?;
        let step: u64 = get(META_STEP)?
            .parse()
            .map_err(|_| bad("bad step".into()))?;
        stored.steps = opts.steps;
        let all = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let (moments, weights): (HashMap<_, _>, HashMap<_, _>) = all
            .into_iter()
            .partition(|(k, _)| k.starts_with("adam.") || k.starts_with("ema."));
        let mut trainer = Self::build(cfg, stored, &weights, Some(&moments), step)?;
        // Absent in checkpoints of older runs: their time is then unknown and counted as zero.
        trainer.seconds = meta
            .get(META_SECONDS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Ok(trainer)
    }

    /// Wall-clock seconds spent in [`train_step`](Self::train_step) over the whole run, across
    /// every sitting.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// Steps done.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The options.
    pub fn options(&self) -> &TrainOptions {
        &self.opts
    }

    /// The current weights, detached.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .map(|s| (s.name.clone(), s.var.as_tensor().detach()))
            .collect()
    }

    /// Learning rate at step `s`: linear warm-up, then cosine decay to a tenth at
    /// `schedule_steps`.
    pub fn lr_at(&self, s: u64) -> f64 {
        let o = &self.opts;
        if s < o.warmup {
            return o.lr * (s + 1) as f64 / o.warmup as f64;
        }
        let p = (s - o.warmup) as f64 / (o.schedule_steps.saturating_sub(o.warmup)).max(1) as f64;
        o.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
    }

    /// The batch of step `s`: images [B, 3, H, W] in [-1, 1] and token ids [B, max_tokens].
    pub fn batch(&self, s: u64, rng: &mut NoiseRng) -> Result<(Tensor, Tensor), TrainError> {
        let b = self.opts.batch;
        let mut pixels = Vec::new();
        let mut tokens = Vec::new();
        let (mut w, mut h) = (0, 0);
        for j in 0..b as u64 {
            let sample = match self.opts.data_set {
                data::DataSet::V1 => {
                    let index = 2 * (s * b as u64 + j) + u64::from(Self::is_scene_step(s));
                    data::sample(self.opts.data_seed, index)
                }
                data::DataSet::V2 => data::sample_v2(
                    self.opts.data_seed,
                    self.opts.only.unwrap_or_else(|| Self::group_of_step(s)),
                    s * b as u64 + j,
                ),
            };
            (w, h) = (sample.width as usize, sample.height as usize);
            for ch in 0..3 {
                pixels.extend(sample.rgba.chunks(4).map(|p| p[ch] as f32 / 127.5 - 1.0));
            }
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let drop = u < self.opts.uncond_prob;
            tokens.extend(self.encoder.encode(if drop { "" } else { &sample.caption }));
        }
        let dev = Device::Cpu;
        Ok((
            Tensor::from_vec(pixels, (b, 3, h, w), &dev)?,
            Tensor::from_vec(tokens, (b, self.cfg.text.max_tokens), &dev)?,
        ))
    }

    /// One optimisation step; returns the batch's loss.
    pub fn train_step(&mut self) -> Result<f32, TrainError> {
        let started = std::time::Instant::now();
        let s = self.step;
        let mut rng = NoiseRng::new(self.opts.seed ^ (s + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (x0, tokens) = self.batch(s, &mut rng)?;
        let b = self.opts.batch;
        let t_max = self.cfg.schedule.train_steps as u64;
        let ts: Vec<usize> = (0..b).map(|_| (rng.next_u64() % t_max) as usize).collect();
        let dev = Device::Cpu;
        let col = |f: &dyn Fn(f64) -> f64| {
            let v: Vec<f32> = ts.iter().map(|&t| f(self.alphas[t]) as f32).collect();
            Tensor::from_vec(v, (b, 1, 1, 1), &dev)
        };
        let sa = col(&|a| a.sqrt())?;
        let s1a = col(&|a| (1.0 - a).sqrt())?;
        let noise = Tensor::from_vec(rng.normals(x0.elem_count()), x0.shape(), &dev)?;
        let x_t = (x0.broadcast_mul(&sa)? + noise.broadcast_mul(&s1a)?)?;
        let target = match self.cfg.prediction {
            Prediction::V => (noise.broadcast_mul(&sa)? - x0.broadcast_mul(&s1a)?)?,
            Prediction::Epsilon => noise,
        };
        let tf: Vec<f64> = ts.iter().map(|&t| t as f64).collect();
        let pred = self.net.forward(&x_t, &tf, &tokens)?;
        let loss = (pred - target)?.sqr()?.mean_all()?;
        let loss_value = loss.to_scalar::<f32>()?;
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged(s));
        }
        let grads = loss.backward()?;
        let lr = self.lr_at(s);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let t = (s + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            slot.m = ((&slot.m * b1)? + (&g * (1.0 - b1))?)?;
            slot.v = ((&slot.v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&slot.m * (1.0 / c1))? / ((&slot.v * (1.0 / c2))?.sqrt()? + eps)?)?;
            let w = slot.var.as_tensor().detach();
            let decay = if slot.name.ends_with(".bias") || slot.name.contains("norm") {
                0.0
            } else {
                self.opts.weight_decay
            };
            let next = ((w * (1.0 - lr * decay))? - (update * lr)?)?;
            slot.var.set(&next)?;
            let d = self.opts.ema_decay;
            slot.ema = match slot.ema.take() {
                Some(ema) => Some(((ema * d)? + (next * (1.0 - d))?)?),
                None if s + 1 == self.opts.ema_start => Some(next),
                None => None,
            };
        }
        self.step += 1;
        self.seconds += started.elapsed().as_secs_f64();
        Ok(loss_value)
    }

    /// Writes weights, Adam moments, config, options and step to one safetensors file
    /// (atomically).
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for s in &self.slots {
            tensors.push((s.name.clone(), s.var.as_tensor().detach()));
            tensors.push((format!("adam.m.{}", s.name), s.m.clone()));
            tensors.push((format!("adam.v.{}", s.name), s.v.clone()));
            if let Some(ema) = &s.ema {
                tensors.push((format!("ema.{}", s.name), ema.clone()));
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let mut meta = HashMap::new();
        meta.insert(
            sprite::CONFIG_KEY.to_string(),
            serde_json::to_string(&self.cfg).expect("json"),
        );
        meta.insert(
            META_OPTS.to_string(),
            serde_json::to_string(&self.opts).expect("json"),
        );
        meta.insert(META_STEP.to_string(), self.step.to_string());
        meta.insert(META_SECONDS.to_string(), format!("{:.1}", self.seconds));
        replace_file(path, |tmp| {
            safetensors::serialize_to_file(tensors, Some(meta), tmp).map_err(|e| e.to_string())
        })
    }

    /// The weights a model file gets: the moving average once it runs, else the weights.
    pub fn export_weights(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .map(|s| {
                let t = s.ema.clone().unwrap_or_else(|| s.var.as_tensor().detach());
                (s.name.clone(), t)
            })
            .collect()
    }

    /// Writes the model file `nftgen generate` loads (config and [`export_weights`](Self::export_weights)).
    pub fn export(&self, path: &Path) -> Result<(), TrainError> {
        replace_file(path, |tmp| {
            sprite::save(tmp, &self.cfg, &self.export_weights()).map_err(|e| e.to_string())
        })
    }
}

fn checkpoint_error(path: &Path, detail: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// The bytes of a safetensors file and its metadata (which must be there).
fn read_with_metadata(path: &Path) -> Result<(Vec<u8>, HashMap<String, String>), TrainError> {
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| checkpoint_error(path, e))?;
    let meta = meta
        .metadata()
        .clone()
        .ok_or_else(|| checkpoint_error(path, "no metadata"))?;
    Ok((bytes, meta))
}

/// Writes through a temporary file beside `path`, flushed and renamed over `path`
/// ([`crate::provenance::store::replace_with`]): a reader never sees a half-written checkpoint
/// or model, not even after a power cut.
fn replace_file(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), TrainError> {
    let mut failure = None;
    crate::provenance::store::replace_with(path, |tmp| {
        write(tmp).map_err(|detail| {
            failure = Some(detail);
            std::io::Error::other("write failed")
        })
    })
    .map_err(|e| checkpoint_error(path, failure.take().unwrap_or_else(|| e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_to_v2_keeps_every_v1_row_and_adds_the_new_words() {
        let mut cfg = SpriteConfig::tiny();
        cfg.text.vocab = data::vocabulary();
        cfg.sizes = training_config().sizes;
        let weights = sprite::random_weights(&cfg, 5).unwrap();
        let (next, grown) = migrate_to_v2(&cfg, &weights, 5).unwrap();
        assert_eq!(next.text.vocab, data::vocabulary_v2());
        assert_eq!(next.sizes.len(), 4);
        assert_eq!(next.dim, cfg.dim);
        let rows = |t: &Tensor, from: usize, n: usize| {
            t.narrow(0, from, n)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (old, new) = (&weights["text.embed"], &grown["text.embed"]);
        assert_eq!(new.dims(), [next.text.rows(), cfg.dim]);
        let known = 2 + cfg.text.vocab.len();
        assert_eq!(rows(old, 0, known), rows(new, 0, known));
        let buckets = cfg.text.hash_buckets;
        let added = next.text.vocab.len() - cfg.text.vocab.len();
        assert_eq!(rows(old, known, buckets), rows(new, known + added, buckets));
        // The encoder finds every v1 word at its old row and the new ones after them.
        let (e1, e2) = (
            PromptEncoder::new(&cfg.text),
            PromptEncoder::new(&next.text),
        );
        assert_eq!(
            e1.encode("a glowing red sword"),
            e2.encode("a glowing red sword")
        );
        assert!(
            e2.encode("a blacksmith")
                .iter()
                .all(|&t| (t as usize) < known + added)
        );
        for (name, w) in &weights {
            if name != "text.embed" {
                assert_eq!(grown[name].dims(), w.dims(), "{name}");
            }
        }
        // A model of another vocabulary does not grow.
        let mut other = cfg.clone();
        other.text.vocab.swap(0, 1);
        assert!(migrate_to_v2(&other, &weights, 5).is_err());
    }
}
