//! Judging a kiln-sprite model: a small classifier trained on procedural samples reads back item
//! kind and colour, scene terrain and time of day from generated images.
//!
//! The classifier sees every attribute combination (it judges; it is not the model under test);
//! the prompts it judges use the combinations [`data::is_held_out`] keeps out of kiln-sprite's
//! training.

pub mod v2;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};

use crate::sampling::noise::NoiseRng;
use crate::training::data::{
    self, Colour, ItemKind, ItemSpec, SampleSpec, SceneSpec, Terrain, TimeOfDay, Weather,
};

/// Pooled RGB features of an RGBA8 image: 2×2 average pooling, values in [0, 1], channel-major.
pub fn features(rgba: &[u8], width: u32, height: u32) -> Vec<f32> {
    let (w, h) = (width as usize / 2, height as usize / 2);
    let mut out = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut s = 0u32;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    s += rgba[((2 * y + dy) * width as usize + 2 * x + dx) * 4 + c] as u32;
                }
                out[c * w * h + y * w + x] = s as f32 / (4.0 * 255.0);
            }
        }
    }
    out
}

/// A two-headed MLP over pooled pixels.
pub(crate) struct Mlp {
    w1: Tensor,
    b1: Tensor,
    heads: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let h = x.matmul(&self.w1)?.broadcast_add(&self.b1)?.relu()?;
        self.heads
            .iter()
            .map(|(w, b)| h.matmul(w)?.broadcast_add(b))
            .collect()
    }
}

fn mlp(
    varmap: &VarMap,
    inputs: usize,
    hidden: usize,
    classes: &[usize],
    seed: u64,
) -> candle_core::Result<Mlp> {
    let dev = Device::Cpu;
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &dev);
    let mut rng = NoiseRng::new(seed);
    let mut init =
        |name: &str, rows: usize, cols: usize, scale: f32| -> candle_core::Result<Tensor> {
            let t = vb.get((rows, cols), name)?;
            let v: Vec<f32> = rng
                .normals(rows * cols)
                .into_iter()
                .map(|x| x * scale)
                .collect();
            let data = varmap.data().lock().expect("lock");
            data[name].set(&Tensor::from_vec(v, (rows, cols), &dev)?)?;
            Ok(t)
        };
    let w1 = init("w1", inputs, hidden, (2.0 / inputs as f32).sqrt())?;
    let b1 = vb.get_with_hints(hidden, "b1", candle_nn::Init::Const(0.0))?;
    let mut heads = Vec::new();
    for (i, &n) in classes.iter().enumerate() {
        let w = init(&format!("h{i}.w"), hidden, n, (1.0 / hidden as f32).sqrt())?;
        let b = vb.get_with_hints(n, &format!("h{i}.b"), candle_nn::Init::Const(0.0))?;
        heads.push((w, b));
    }
    Ok(Mlp { w1, b1, heads })
}

/// Draws one judge example: its features and two labels.
pub(crate) type Example<'a> = dyn FnMut(&mut NoiseRng) -> (Vec<f32>, [u32; 2]) + 'a;

/// Trains a two-headed judge on `n` examples from `make` (features and the two labels) and
/// measures it on 500 fresh ones; returns the net, its variables and the two heads' accuracy.
pub(crate) fn fit(
    rng: &mut NoiseRng,
    make: &mut Example<'_>,
    n: usize,
    classes: &[usize],
    seed: u64,
) -> candle_core::Result<(Mlp, VarMap, [f32; 2])> {
    let mut set = |rng: &mut NoiseRng, n: usize| -> candle_core::Result<(Tensor, Tensor)> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..n {
            let (x, y) = make(rng);
            xs.extend(x);
            ys.extend(y);
        }
        let dim = xs.len() / n;
        Ok((
            Tensor::from_vec(xs, (n, dim), &Device::Cpu)?,
            Tensor::from_vec(ys, (n, 2), &Device::Cpu)?,
        ))
    };
    let (x, y) = set(rng, n)?;
    let (tx, ty) = set(rng, 500)?;
    let varmap = VarMap::new();
    let net = mlp(&varmap, x.dim(1)?, 128, classes, seed)?;
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: 3e-3,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let batch = 128;
    for _epoch in 0..30 {
        for start in (0..n).step_by(batch) {
            let len = batch.min(n - start);
            let xb = x.narrow(0, start, len)?;
            let yb = y.narrow(0, start, len)?;
            let outs = net.forward(&xb)?;
            let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu)?;
            for (h, logits) in outs.iter().enumerate() {
                let target = yb.narrow(1, h, 1)?.squeeze(1)?.contiguous()?;
                loss = (loss + candle_nn::loss::cross_entropy(logits, &target)?)?;
            }
            opt.backward_step(&loss)?;
        }
    }
    let mut accuracy = [0f32; 2];
    let outs = net.forward(&tx)?;
    for (h, logits) in outs.iter().enumerate() {
        let pred = logits.argmax(D::Minus1)?;
        let target = ty.narrow(1, h, 1)?.squeeze(1)?.contiguous()?;
        accuracy[h] = pred
            .eq(&target)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()?;
    }
    Ok((net, varmap, accuracy))
}

/// Reads item kind and colour, and scene terrain and time of day, from images.
pub struct Judge {
    items: Mlp,
    scenes: Mlp,
    _vars: (VarMap, VarMap),
}

/// What the judge read from one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// An item.
    Item(ItemKind, Colour),
    /// A scene.
    Scene(Terrain, TimeOfDay),
}

fn labels(spec: &SampleSpec) -> [u32; 2] {
    let idx = |i: usize| i as u32;
    match spec {
        SampleSpec::Item(i) => [
            idx(data::index_of(ItemKind::ALL, &i.kind)),
            idx(data::index_of(Colour::ALL, &i.colour)),
        ],
        SampleSpec::Scene(s) => [
            idx(data::index_of(Terrain::ALL, &s.terrain)),
            idx(data::index_of(TimeOfDay::ALL, &s.time)),
        ],
        SampleSpec::Character(c) => [
            idx(data::index_of(data::Role::ALL, &c.role)),
            idx(data::index_of(Colour::ALL, &c.clothing)),
        ],
        SampleSpec::Tile(t) => [
            idx(data::index_of(data::GroundKind::ALL, &t.ground)),
            t.flowers
                .map_or(0, |c| 1 + idx(data::index_of(Colour::ALL, &c))),
        ],
        SampleSpec::Prop(p) => [
            idx(data::index_of(data::PropKind::ALL, &p.kind)),
            p.colour
                .map_or(0, |c| 1 + idx(data::index_of(Colour::ALL, &c))),
        ],
    }
}

impl Judge {
    /// Trains the judge on `per_kind` procedural items and as many scenes (all combinations),
    /// seeded. Returns the judge and its accuracy on fresh procedural samples
    /// (kind, colour, terrain, time).
    pub fn train(per_kind: usize, seed: u64) -> candle_core::Result<(Self, [f32; 4])> {
        let mut rng = NoiseRng::new(seed);
        let mut heads = Vec::new();
        let mut accuracy = [0f32; 4];
        let mut vars = Vec::new();
        for (k, item) in [true, false].into_iter().enumerate() {
            let classes: &[usize] = if item { &[10, 10] } else { &[5, 4] };
            let (net, varmap, acc) = fit(
                &mut rng,
                &mut |rng| {
                    let spec = SampleSpec::draw_any(rng, item);
                    let s = data::render(spec, rng);
                    (features(&s.rgba, s.width, s.height), labels(&spec))
                },
                per_kind,
                classes,
                seed ^ k as u64,
            )?;
            accuracy[2 * k..2 * k + 2].copy_from_slice(&acc);
            heads.push(net);
            vars.push(varmap);
        }
        let scenes = heads.pop().expect("two nets");
        let items = heads.pop().expect("two nets");
        let scene_vars = vars.pop().expect("two");
        let item_vars = vars.pop().expect("two");
        Ok((
            Self {
                items,
                scenes,
                _vars: (item_vars, scene_vars),
            },
            accuracy,
        ))
    }

    /// Reads an image: 32×32 as an item, 64×32 as a scene.
    pub fn read(&self, rgba: &[u8], width: u32, height: u32) -> candle_core::Result<Reading> {
        let f = features(rgba, width, height);
        let x = Tensor::from_vec(f.clone(), (1, f.len()), &Device::Cpu)?;
        let top = |t: &Tensor| -> candle_core::Result<usize> {
            Ok(t.argmax(D::Minus1)?.to_vec1::<u32>()?[0] as usize)
        };
        if (width, height) == data::ITEM_SIZE {
            let o = self.items.forward(&x)?;
            Ok(Reading::Item(
                ItemKind::ALL[top(&o[0])?],
                Colour::ALL[top(&o[1])?],
            ))
        } else {
            let o = self.scenes.forward(&x)?;
            Ok(Reading::Scene(
                Terrain::ALL[top(&o[0])?],
                TimeOfDay::ALL[top(&o[1])?],
            ))
        }
    }
}

/// Parameters of the held-out prompts the gate uses: `n` specs cycling over the held-out
/// combinations (items and scenes alternating), with varied glow and weather.
pub fn held_out_specs(n: usize) -> Vec<SampleSpec> {
    prompt_specs(n, true)
}

/// `n` prompt specs cycling over the combinations that were held out of training
/// (`held_out`) or over those that were trained on (a validation set for choosing sampling
/// settings without looking at the gate's prompts): items and scenes alternate, and each list
/// is walked with stride 37 so any window of it mixes kinds, colours, terrains and times.
pub fn prompt_specs(n: usize, held_out: bool) -> Vec<SampleSpec> {
    let mut items = Vec::new();
    for &kind in ItemKind::ALL {
        for &colour in Colour::ALL {
            for glowing in [false, true] {
                let s = SampleSpec::Item(ItemSpec {
                    kind,
                    colour,
                    glowing,
                });
                if data::is_held_out(&s) == held_out {
                    items.push(s);
                }
            }
        }
    }
    let mut scenes = Vec::new();
    for &terrain in Terrain::ALL {
        for &time in TimeOfDay::ALL {
            for &weather in Weather::ALL {
                let s = SampleSpec::Scene(SceneSpec {
                    terrain,
                    time,
                    weather,
                    moons: 0,
                });
                if data::is_held_out(&s) == held_out {
                    scenes.push(s);
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            let k = (i / 2) * 37;
            if i % 2 == 0 {
                items[k % items.len()]
            } else {
                scenes[k % scenes.len()]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judge_reads_procedural_samples() {
        let (_, acc) = Judge::train(1500, 3).unwrap();
        // It must be a reliable judge before it judges anything.
        assert!(acc.iter().all(|&a| a >= 0.9), "judge accuracy {acc:?}");
        let specs = held_out_specs(200);
        assert_eq!(specs.len(), 200);
        assert!(specs.iter().all(data::is_held_out));
    }
}

/// Gate: share of held-out item prompts whose image reads as the prompted kind.
pub const GATE_ITEM_CLASS: f32 = 0.80;
/// Gate: share of held-out item prompts whose image reads as the prompted colour.
pub const GATE_ITEM_COLOUR: f32 = 0.70;
/// Gate: share of held-out scene prompts whose image reads as the prompted terrain.
pub const GATE_SCENE_TERRAIN: f32 = 0.80;
/// Two images whose mean absolute RGB difference (0–255 scale) is below this are the same
/// picture: a generated image that close to a training sample is a copy, and two seeds that
/// close are not distinct. (Two training samples drawn from the same parameters differ by far
/// more; see [`EvalReport::training_nearest_median`].)
pub const COPY_DISTANCE: f32 = 2.0;

/// Mean absolute difference of the RGB channels of two RGBA8 images of one size (0–255).
pub fn distance(a: &[u8], b: &[u8]) -> f32 {
    let mut sum = 0u64;
    for (p, q) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            sum += (p[c] as i32 - q[c] as i32).unsigned_abs() as u64;
        }
    }
    sum as f32 / (3 * a.len() / 4).max(1) as f32
}

/// One quality gate's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gate {
    /// What is measured.
    pub name: &'static str,
    /// The measured figure.
    pub value: f32,
    /// The figure must be at least (or, for `distinct`, more than) this.
    pub threshold: f32,
    /// Whether it holds.
    pub passed: bool,
}

/// Figures of a model evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// Prompts generated.
    pub prompts: usize,
    /// Whether they were the held-out combinations (the gate) or trained-on ones.
    pub held_out: bool,
    /// Judge accuracy on fresh procedural samples (kind, colour, terrain, time).
    pub judge_accuracy: [f32; 4],
    /// Share of item images whose kind reads as prompted.
    pub item_class: f32,
    /// Share of item images whose colour reads as prompted.
    pub item_colour: f32,
    /// Share of scene images whose terrain reads as prompted.
    pub scene_terrain: f32,
    /// Share of scene images whose time of day reads as prompted.
    pub scene_time: f32,
    /// Distinct images (by content hash) among 16 seeds of one prompt.
    pub distinct_of_16: usize,
    /// Smallest [`distance`] between two of those 16 images.
    pub diversity_min_distance: f32,
    /// Smallest [`distance`] between a generated image (held-out prompts and the 16 seeds) and
    /// any compared training sample of its size.
    pub nearest_training_distance: f32,
    /// For scale: the median, over compared training items, of the distance to the nearest other
    /// training item.
    pub training_nearest_median: f32,
    /// The gates and their verdicts.
    pub gates: Vec<Gate>,
    /// Whether every gate holds.
    pub passed: bool,
}

/// What [`evaluate`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Prompts to generate and judge.
    pub prompts: usize,
    /// Judge prompts of trained-on combinations instead of held-out ones (a validation run).
    pub seen: bool,
    /// Denoising steps (`None`: the model's default).
    pub steps: Option<u32>,
    /// Guidance (`None`: the model's default).
    pub guidance: Option<f32>,
    /// Training samples the generated images are compared with for the copy check.
    pub training_compared: u64,
    /// Seed of the data set the model was trained on.
    pub data_seed: u64,
}

impl Default for EvalOptions {
    /// The release gate: 200 held-out prompts with the model's defaults, compared with 2000
    /// training samples of data seed 0.
    fn default() -> Self {
        Self {
            prompts: 200,
            seen: false,
            steps: None,
            guidance: None,
            training_compared: 2000,
            data_seed: 0,
        }
    }
}

/// Generates the prompts with `model`, reads them with a freshly trained judge, and measures
/// diversity and distance to the first training samples.
pub fn evaluate(
    model: &crate::ArtModel,
    opts: &EvalOptions,
) -> Result<EvalReport, crate::GenerateError> {
    use crate::{Control, GenerationRequest};
    let (prompts, steps, training_compared, data_seed) = (
        opts.prompts,
        opts.steps,
        opts.training_compared,
        opts.data_seed,
    );
    let (judge, judge_accuracy) = Judge::train(1500, 3)?;
    let specs = prompt_specs(prompts, !opts.seen);
    let (mut items, mut kind_ok, mut colour_ok, mut scenes, mut terrain_ok, mut time_ok) =
        (0, 0, 0, 0, 0, 0);
    let mut generated = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let (w, h) = spec.size();
        let mut req = GenerationRequest::new(spec.caption(), 1000 + i as u64).size(w, h);
        req.steps = steps;
        req.guidance = opts.guidance;
        let art = model.generate(&req, &mut |_| Control::Continue)?;
        match (spec, judge.read(&art.rgba, w, h)?) {
            (SampleSpec::Item(it), Reading::Item(k, c)) => {
                items += 1;
                kind_ok += (k == it.kind) as u32;
                colour_ok += (c == it.colour) as u32;
            }
            (SampleSpec::Scene(s), Reading::Scene(t, d)) => {
                scenes += 1;
                terrain_ok += (t == s.terrain) as u32;
                time_ok += (d == s.time) as u32;
            }
            _ => {}
        }
        generated.push(art);
    }
    let mut seen = std::collections::HashSet::new();
    let mut sixteen = Vec::new();
    for seed in 0..16 {
        let mut req = GenerationRequest::new("a glowing red sword", seed);
        req.steps = steps;
        req.guidance = opts.guidance;
        let art = model.generate(&req, &mut |_| Control::Continue)?;
        seen.insert(art.content_hash);
        sixteen.push(art);
    }
    let mut diversity_min_distance = f32::MAX;
    for (i, a) in sixteen.iter().enumerate() {
        for b in &sixteen[i + 1..] {
            diversity_min_distance = diversity_min_distance.min(distance(&a.rgba, &b.rgba));
        }
    }
    generated.extend(sixteen);
    let training: Vec<data::Sample> = (0..training_compared)
        .map(|index| data::sample(data_seed, index))
        .collect();
    let mut nearest = f32::MAX;
    for s in &training {
        for art in generated
            .iter()
            .filter(|a| (a.width, a.height) == (s.width, s.height))
        {
            nearest = nearest.min(distance(&art.rgba, &s.rgba));
        }
    }
    let train_items: Vec<&data::Sample> = training
        .iter()
        .filter(|s| (s.width, s.height) == data::ITEM_SIZE)
        .collect();
    let mut self_nearest: Vec<f32> = train_items
        .iter()
        .enumerate()
        .take(200)
        .map(|(i, a)| {
            train_items
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, b)| distance(&a.rgba, &b.rgba))
                .fold(f32::MAX, f32::min)
        })
        .collect();
    self_nearest.sort_by(f32::total_cmp);
    let training_nearest_median = self_nearest
        .get(self_nearest.len() / 2)
        .copied()
        .unwrap_or(0.0);
    let share = |a: u32, n: u32| if n == 0 { 0.0 } else { a as f32 / n as f32 };
    let (item_class, item_colour, scene_terrain) = (
        share(kind_ok, items),
        share(colour_ok, items),
        share(terrain_ok, scenes),
    );
    let at_least = |name, value: f32, threshold: f32| Gate {
        name,
        value,
        threshold,
        passed: value >= threshold,
    };
    let above = |name, value: f32, threshold: f32| Gate {
        name,
        value,
        threshold,
        passed: value > threshold,
    };
    let gates = vec![
        at_least("item_class", item_class, GATE_ITEM_CLASS),
        at_least("item_colour", item_colour, GATE_ITEM_COLOUR),
        at_least("scene_terrain", scene_terrain, GATE_SCENE_TERRAIN),
        at_least("distinct_of_16", seen.len() as f32, 16.0),
        above(
            "diversity_min_distance",
            diversity_min_distance,
            COPY_DISTANCE,
        ),
        above("nearest_training_distance", nearest, COPY_DISTANCE),
    ];
    Ok(EvalReport {
        prompts,
        held_out: !opts.seen,
        judge_accuracy,
        item_class,
        item_colour,
        scene_terrain,
        scene_time: share(time_ok, scenes),
        distinct_of_16: seen.len(),
        diversity_min_distance,
        nearest_training_distance: nearest,
        training_nearest_median,
        passed: gates.iter().all(|g| g.passed),
        gates,
    })
}

/// A prompt of a contact sheet and the size to paint it at.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetRow {
    /// The prompt.
    pub prompt: String,
    /// Width and height.
    pub size: (u32, u32),
}

/// The rows `nftgen sheet` paints when given no prompts: twelve held-out prompts (items and
/// scenes alternating, each attribute pair once), so the sheet shows combinations the model
/// never saw.
pub fn default_sheet_rows() -> Vec<SheetRow> {
    let mut seen = std::collections::HashSet::new();
    held_out_specs(200)
        .into_iter()
        .filter(|s| seen.insert((matches!(s, SampleSpec::Item(_)), labels(s))))
        .take(12)
        .map(|s| SheetRow {
            prompt: s.caption(),
            size: s.size(),
        })
        .collect()
}

/// Paints every row with every seed and lays the images out as one RGBA8 grid (a row per
/// prompt, a column per seed, each pixel drawn `scale × scale`). `progress` is told each
/// finished image. Returns (width, height, pixels).
pub fn sheet(
    model: &crate::ArtModel,
    rows: &[SheetRow],
    seeds: &[u64],
    steps: Option<u32>,
    scale: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(u32, u32, Vec<u8>), crate::GenerateError> {
    use crate::{Control, GenerationRequest};
    let total = rows.len() * seeds.len();
    let mut images = Vec::with_capacity(total);
    for row in rows {
        for &seed in seeds {
            let mut req =
                GenerationRequest::new(row.prompt.clone(), seed).size(row.size.0, row.size.1);
            req.steps = steps;
            images.push(model.generate(&req, &mut |_| Control::Continue)?);
            progress(images.len(), total);
        }
    }
    let cells: Vec<data::ImageRef<'_>> = images
        .iter()
        .map(|a| (a.width, a.height, a.rgba.as_slice()))
        .collect();
    Ok(data::contact_sheet(&cells, seeds.len(), scale))
}
