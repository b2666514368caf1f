//! Judging a model of the second data set (kiln-sprite v2): judges trained on procedural
//! samples read item kind and colour, scene terrain and time, a character sheet's role and
//! clothing, each sheet frame's clothing and role, a tile's ground and a prop's kind and colour;
//! the figures of the gates come from images painted for held-out prompts.

use std::collections::BTreeMap;

use candle_core::{D, Device, Tensor};
use candle_nn::VarMap;

use super::{COPY_DISTANCE, GATE_ITEM_CLASS, GATE_ITEM_COLOUR, GATE_SCENE_TERRAIN, Gate, Mlp};
use super::{distance, features, fit, labels};
use crate::sampling::noise::NoiseRng;
use crate::training::data::sheet_frame as frame;
use crate::training::data::{
    self, CharacterSpec, Colour, GroundKind, Group, Hair, ItemKind, ItemSpec, PropKind, PropSpec,
    Role, Sample, SampleSpec, SceneSpec, Terrain, TileSpec, TimeOfDay, Weather,
};

/// Gate: share of held-out character sheets whose role reads as prompted.
pub const GATE_CHARACTER_ROLE: f32 = 0.80;
/// Gate: share of held-out character sheets whose clothing colour reads as prompted.
pub const GATE_CHARACTER_CLOTHING: f32 = 0.80;
/// Gate: share of sheets whose twelve frames all read as one character (clothing and role).
pub const GATE_SHEET_CONSISTENT: f32 = 0.90;
/// Gate: mean step across a tile's wrap over the mean interior step (at most this).
pub const GATE_SEAM_RATIO: f32 = 1.0;

/// The kinds of picture the second data set has, as the report names them.
pub const KINDS: [&str; 5] = ["item", "scene", "character sheet", "tile", "prop"];

fn kind_of(spec: &SampleSpec) -> &'static str {
    match spec {
        SampleSpec::Item(_) => KINDS[0],
        SampleSpec::Scene(_) => KINDS[1],
        SampleSpec::Character(_) => KINDS[2],
        SampleSpec::Tile(_) => KINDS[3],
        SampleSpec::Prop(_) => KINDS[4],
    }
}

/// A frame's features at full resolution (each pixel, not 2×2 means: a frame is small).
fn frame_features(f: &[u8]) -> Vec<f32> {
    let n = data::FRAME_SIZE as usize;
    // Where the character stands in its frame is not who it is: the opaque pixels' bounding box
    // is centred first, so a frame and the same frame a pixel to the side read alike.
    let opaque = |x: usize, y: usize| f[(y * n + x) * 4 + 3] != 0;
    let (mut x0, mut y0, mut x1, mut y1) = (n, n, 0, 0);
    for y in 0..n {
        for x in 0..n {
            if opaque(x, y) {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    let (dx, dy) = if x0 < x1 {
        (
            (n - (x1 - x0)) as i32 / 2 - x0 as i32,
            (n - (y1 - y0)) as i32 / 2 - y0 as i32,
        )
    } else {
        (0, 0)
    };
    let f = shift_frame(f, dx, dy);
    let mut up = vec![0u8; 4 * n * n * 4];
    for y in 0..2 * n {
        for x in 0..2 * n {
            let (src, dst) = (((y / 2) * n + x / 2) * 4, (y * 2 * n + x) * 4);
            up[dst..dst + 4].copy_from_slice(&f[src..src + 4]);
        }
    }
    features(&up, 2 * n as u32, 2 * n as u32)
}

/// A 16×16 RGBA frame moved `dx` pixels right and `dy` down; what comes in at the edges is the
/// palette's transparent key, what goes out is dropped.
pub(crate) fn shift_frame(f: &[u8], dx: i32, dy: i32) -> Vec<u8> {
    let n = data::FRAME_SIZE as i32;
    let key = data::palette::PALETTE[0];
    let mut out = Vec::with_capacity(f.len());
    for y in 0..n {
        for x in 0..n {
            let (sx, sy) = (x - dx, y - dy);
            if (0..n).contains(&sx) && (0..n).contains(&sy) {
                let i = ((sy * n + sx) * 4) as usize;
                out.extend_from_slice(&f[i..i + 4]);
            } else {
                out.extend_from_slice(&key);
            }
        }
    }
    out
}

struct Head {
    net: Mlp,
    _vars: VarMap,
}

impl Head {
    fn read(&self, x: Vec<f32>) -> candle_core::Result<[usize; 2]> {
        let x = Tensor::from_vec(x.clone(), (1, x.len()), &Device::Cpu)?;
        let o = self.net.forward(&x)?;
        let top = |t: &Tensor| -> candle_core::Result<usize> {
            Ok(t.argmax(D::Minus1)?.to_vec1::<u32>()?[0] as usize)
        };
        Ok([top(&o[0])?, top(&o[1])?])
    }
}

/// Reads the second data set's pictures: one two-headed judge per kind, plus one for single
/// sheet frames (clothing, role).
pub struct JudgeV2 {
    heads: BTreeMap<&'static str, Head>,
    /// Accuracy of each head on fresh procedural samples ("item.kind", "frame.hair", …).
    pub accuracy: BTreeMap<String, f32>,
}

impl JudgeV2 {
    /// Trains every head on `per_kind` procedural samples (all combinations, held-out ones
    /// included: the judge is not the model under test), seeded.
    pub fn train(per_kind: usize, seed: u64) -> candle_core::Result<Self> {
        let mut rng = NoiseRng::new(seed);
        let mut heads = BTreeMap::new();
        let mut accuracy = BTreeMap::new();
        type Make = Box<super::Example<'static>>;
        let draw = |group: Group, index: u64| {
            move |rng: &mut NoiseRng| {
                let spec = SampleSpec::draw_any_v2(rng, group, index);
                let s = data::render_v2(spec, rng);
                (features(&s.rgba, s.width, s.height), labels(&spec))
            }
        };
        let frames: Make = Box::new(|rng: &mut NoiseRng| {
            let spec = SampleSpec::draw_any_v2(rng, Group::Sheet, 0);
            let s = data::render_v2(spec, rng);
            let (col, row) = ((rng.next_u64() % 3) as u32, (rng.next_u64() % 4) as u32);
            let SampleSpec::Character(c) = spec else {
                unreachable!("the sheet group draws characters")
            };
            let f = frame(&s.rgba, col, row);
            let label = [
                data::index_of(Colour::ALL, &c.clothing) as u32,
                data::index_of(Role::ALL, &c.role) as u32,
            ];
            (frame_features(&f), label)
        });
        let jobs: Vec<(&'static str, [&'static str; 2], Make, [usize; 2])> = vec![
            (
                "item",
                ["kind", "colour"],
                Box::new(draw(Group::Small, 0)),
                [10, 10],
            ),
            (
                "scene",
                ["terrain", "time"],
                Box::new(draw(Group::Scene, 0)),
                [5, 4],
            ),
            (
                "sheet",
                ["role", "clothing"],
                Box::new(draw(Group::Sheet, 0)),
                [7, 10],
            ),
            ("frame", ["clothing", "role"], frames, [10, 7]),
            (
                "tile",
                ["ground", "flowers"],
                Box::new(draw(Group::Tile, 0)),
                [7, 11],
            ),
            (
                "prop",
                ["kind", "colour"],
                Box::new(draw(Group::Small, 1)),
                [10, 11],
            ),
        ];
        for (k, (name, head_names, mut make, classes)) in jobs.into_iter().enumerate() {
            // Frames are small and seen from four sides: their judge sees more of them.
            let n = if name == "frame" {
                3 * per_kind
            } else {
                per_kind
            };
            let (net, vars, acc) = fit(&mut rng, &mut *make, n, &classes, seed ^ k as u64)?;
            for (h, a) in head_names.iter().zip(acc) {
                accuracy.insert(format!("{name}.{h}"), a);
            }
            heads.insert(name, Head { net, _vars: vars });
        }
        Ok(Self { heads, accuracy })
    }

    /// The two labels `kind` ("item", "scene", "sheet", "tile", "prop") reads from an image,
    /// as indices in the order of [`labels`].
    pub fn read(&self, kind: &str, rgba: &[u8], w: u32, h: u32) -> candle_core::Result<[usize; 2]> {
        self.heads[kind].read(features(rgba, w, h))
    }

    /// The clothing colour and role one 16×16 sheet frame reads as.
    pub fn read_frame(&self, f: &[u8]) -> candle_core::Result<[usize; 2]> {
        self.heads["frame"].read(frame_features(f))
    }
}

/// Prompts of each kind, cycling over the combinations held out of training (every tile; props
/// of every kind, coloured ones in their held-out colours first).
pub fn held_out_specs_v2(per_kind: usize) -> Vec<SampleSpec> {
    specs_v2(per_kind, true)
}

/// [`held_out_specs_v2`], or with `held_out` false the combinations the model was trained on
/// (tiles and props: the trained-on ones first), for tuning without the gates' prompts.
fn specs_v2(per_kind: usize, held_out: bool) -> Vec<SampleSpec> {
    let mut by_kind: Vec<Vec<SampleSpec>> = vec![Vec::new(); 5];
    for &kind in ItemKind::ALL {
        for &colour in Colour::ALL {
            for glowing in [false, true] {
                by_kind[0].push(SampleSpec::Item(ItemSpec {
                    kind,
                    colour,
                    glowing,
                }));
            }
        }
    }
    for &terrain in Terrain::ALL {
        for &time in TimeOfDay::ALL {
            for &weather in Weather::ALL {
                by_kind[1].push(SampleSpec::Scene(SceneSpec {
                    terrain,
                    time,
                    weather,
                    moons: 0,
                }));
            }
        }
    }
    for &role in Role::ALL {
        for &clothing in Colour::ALL {
            for &hair in Hair::ALL {
                by_kind[2].push(SampleSpec::Character(CharacterSpec {
                    role,
                    clothing,
                    hair,
                }));
            }
        }
    }
    for &ground in GroundKind::ALL {
        by_kind[3].push(SampleSpec::Tile(TileSpec {
            ground,
            flowers: None,
        }));
        if ground == GroundKind::Grass {
            for &c in Colour::ALL {
                by_kind[3].push(SampleSpec::Tile(TileSpec {
                    ground,
                    flowers: Some(c),
                }));
            }
        }
    }
    for &kind in PropKind::ALL {
        if kind.coloured() {
            for &c in Colour::ALL {
                by_kind[4].push(SampleSpec::Prop(PropSpec {
                    kind,
                    colour: Some(c),
                }));
            }
        } else {
            by_kind[4].push(SampleSpec::Prop(PropSpec { kind, colour: None }));
        }
    }
    let mut out = Vec::new();
    for (k, all) in by_kind.into_iter().enumerate() {
        // The asked-for side (held-out or trained-on) where a kind has it; tiles and props
        // take the other side after it (tiles and uncoloured props have no held-out ones).
        let (held, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(data::is_held_out);
        let (first, second) = if held_out { (held, rest) } else { (rest, held) };
        let list: Vec<SampleSpec> = if k == 3 || k == 4 {
            first.into_iter().chain(second).collect()
        } else {
            first
        };
        out.extend((0..per_kind).map(|i| list[(i * 7) % list.len()]));
    }
    out
}

/// Colour figures of one kind: the range over training samples and where painted ones fall.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KindColours {
    /// The kind.
    pub kind: &'static str,
    /// Least and most distinct colours of a training sample.
    pub training_distinct: (usize, usize),
    /// Least and most top-12 coverage of a training sample.
    pub training_top12: (f32, f32),
    /// Median distinct colours of the painted images.
    pub painted_distinct: usize,
    /// Median top-12 coverage of the painted images.
    pub painted_top12: f32,
    /// Share of painted images with both figures in the training range.
    pub in_range: f32,
}

/// Figures of a v2 evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReportV2 {
    /// Prompts painted per kind.
    pub per_kind: usize,
    /// The judges' accuracy on fresh procedural samples.
    pub judge_accuracy: BTreeMap<String, f32>,
    /// Share of items read as the prompted kind.
    pub item_class: f32,
    /// … and colour.
    pub item_colour: f32,
    /// Share of scenes read as the prompted terrain.
    pub scene_terrain: f32,
    /// … and time of day.
    pub scene_time: f32,
    /// Share of character sheets read as the prompted role.
    pub character_role: f32,
    /// … and clothing colour.
    pub character_clothing: f32,
    /// Share of sheets whose twelve frames read as one clothing colour and one role.
    pub sheet_consistent: f32,
    /// Share of tiles read as the prompted ground.
    pub tile_ground: f32,
    /// Mean step across the wrap of the painted tiles over their mean interior step.
    pub tile_seam_ratio: f32,
    /// Share of props read as the prompted kind.
    pub prop_kind: f32,
    /// Colour figures by kind.
    pub colours: Vec<KindColours>,
    /// Smallest [`distance`] between a painted image and a training sample of its size.
    pub nearest_training_distance: f32,
    /// The gates and their verdicts.
    pub gates: Vec<Gate>,
    /// Whether every gate holds.
    pub passed: bool,
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}

/// Paints `per_kind` held-out prompts of every kind (or, with `seen`, trained-on ones: for
/// tuning, never for the gates) with `model` (its defaults, or `steps`),
/// reads them with a freshly trained [`JudgeV2`] and measures the gates: the first data set's
/// item and scene gates, character role and clothing, one character per sheet, tile seams and
/// palette-true colours (each kind's median distinct colours and top-12 coverage within the
/// range of `training` samples of that kind, from data seed `data_seed`).
pub fn evaluate_v2(
    model: &crate::ArtModel,
    per_kind: usize,
    steps: Option<u32>,
    seen: bool,
    training: u64,
    data_seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReportV2, crate::GenerateError> {
    use crate::{Control, GenerationRequest};
    let judge = JudgeV2::train(1500, 3)?;
    let specs = specs_v2(per_kind, !seen);
    let mut right: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut tally = |name: &'static str, ok: bool| {
        let e = right.entry(name).or_default();
        e.0 += u32::from(ok);
        e.1 += 1;
    };
    let mut painted: Vec<(SampleSpec, crate::GeneratedArt)> = Vec::new();
    let (mut wrap, mut inner) = (0f32, 0f32);
    for (i, spec) in specs.iter().enumerate() {
        let (w, h) = spec.size();
        let mut req = GenerationRequest::new(spec.caption(), 2000 + i as u64).size(w, h);
        req.steps = steps;
        let art = model.generate(&req, &mut |_| Control::Continue)?;
        let want = labels(spec);
        let want = [want[0] as usize, want[1] as usize];
        match spec {
            SampleSpec::Item(_) => {
                let r = judge.read("item", &art.rgba, w, h)?;
                tally("item_class", r[0] == want[0]);
                tally("item_colour", r[1] == want[1]);
            }
            SampleSpec::Scene(_) => {
                let r = judge.read("scene", &art.rgba, w, h)?;
                tally("scene_terrain", r[0] == want[0]);
                tally("scene_time", r[1] == want[1]);
            }
            SampleSpec::Character(_) => {
                let r = judge.read("sheet", &art.rgba, w, h)?;
                tally("character_role", r[0] == want[0]);
                tally("character_clothing", r[1] == want[1]);
                let mut reads = std::collections::HashSet::new();
                for row in 0..4 {
                    for col in 0..3 {
                        reads.insert(judge.read_frame(&frame(&art.rgba, col, row))?);
                    }
                }
                tally("sheet_consistent", reads.len() == 1);
            }
            SampleSpec::Tile(_) => {
                let r = judge.read("tile", &art.rgba, w, h)?;
                tally("tile_ground", r[0] == want[0]);
                let (a, b) = data::seam_steps(&art.rgba, w, h);
                wrap += a;
                inner += b;
            }
            SampleSpec::Prop(_) => {
                let r = judge.read("prop", &art.rgba, w, h)?;
                tally("prop_kind", r[0] == want[0]);
            }
        }
        painted.push((*spec, art));
        progress(i + 1, specs.len());
    }
    let share = |name: &str| {
        right
            .get(name)
            .map_or(0.0, |&(a, n)| a as f32 / n.max(1) as f32)
    };
    // Colours: the training range of each kind against the painted images.
    let samples: Vec<Sample> = (0..training)
        .map(|i| data::sample_v2(data_seed, Group::ALL[(i % 4) as usize], i / 4))
        .collect();
    let mut colours = Vec::new();
    for kind in KINDS {
        let stats: Vec<(usize, f32)> = samples
            .iter()
            .filter(|s| kind_of(&s.spec) == kind)
            .map(|s| data::colour_stats(&s.rgba))
            .collect();
        let ours: Vec<(usize, f32)> = painted
            .iter()
            .filter(|(s, _)| kind_of(s) == kind)
            .map(|(_, a)| data::colour_stats(&a.rgba))
            .collect();
        if stats.is_empty() || ours.is_empty() {
            continue;
        }
        let lo = stats.iter().map(|s| s.0).min().unwrap_or(0);
        let hi = stats.iter().map(|s| s.0).max().unwrap_or(0);
        let tlo = stats.iter().map(|s| s.1).fold(1.0, f32::min);
        let thi = stats.iter().map(|s| s.1).fold(0.0, f32::max);
        let inside = |s: &(usize, f32)| (lo..=hi).contains(&s.0) && s.1 >= tlo && s.1 <= thi;
        colours.push(KindColours {
            kind,
            training_distinct: (lo, hi),
            training_top12: (tlo, thi),
            painted_distinct: median(ours.iter().map(|s| s.0).collect()).unwrap_or(0),
            painted_top12: median(ours.iter().map(|s| s.1).collect()).unwrap_or(0.0),
            in_range: ours.iter().filter(|s| inside(s)).count() as f32 / ours.len() as f32,
        });
    }
    let mut nearest = f32::MAX;
    for s in &samples {
        for (_, art) in painted
            .iter()
            .filter(|(_, a)| (a.width, a.height) == (s.width, s.height))
        {
            nearest = nearest.min(distance(&art.rgba, &s.rgba));
        }
    }
    let seam_ratio = if inner > 0.0 { wrap / inner } else { 0.0 };
    let at_least = |name, value: f32, threshold: f32| Gate {
        name,
        value,
        threshold,
        passed: value >= threshold,
    };
    let mut gates = vec![
        at_least("item_class", share("item_class"), GATE_ITEM_CLASS),
        at_least("item_colour", share("item_colour"), GATE_ITEM_COLOUR),
        at_least("scene_terrain", share("scene_terrain"), GATE_SCENE_TERRAIN),
        at_least(
            "character_role",
            share("character_role"),
            GATE_CHARACTER_ROLE,
        ),
        at_least(
            "character_clothing",
            share("character_clothing"),
            GATE_CHARACTER_CLOTHING,
        ),
        at_least(
            "sheet_consistent",
            share("sheet_consistent"),
            GATE_SHEET_CONSISTENT,
        ),
        Gate {
            name: "tile_seam_ratio",
            value: seam_ratio,
            threshold: GATE_SEAM_RATIO,
            passed: seam_ratio <= GATE_SEAM_RATIO,
        },
        Gate {
            name: "nearest_training_distance",
            value: nearest,
            threshold: COPY_DISTANCE,
            passed: nearest > COPY_DISTANCE,
        },
    ];
    for c in &colours {
        let ok = (c.training_distinct.0..=c.training_distinct.1).contains(&c.painted_distinct)
            && c.painted_top12 >= c.training_top12.0
            && c.painted_top12 <= c.training_top12.1;
        gates.push(Gate {
            name: match c.kind {
                "item" => "item_colours_in_training_range",
                "scene" => "scene_colours_in_training_range",
                "character sheet" => "sheet_colours_in_training_range",
                "tile" => "tile_colours_in_training_range",
                _ => "prop_colours_in_training_range",
            },
            value: if ok { 1.0 } else { 0.0 },
            threshold: 1.0,
            passed: ok,
        });
    }
    Ok(EvalReportV2 {
        per_kind,
        judge_accuracy: judge.accuracy.clone(),
        item_class: share("item_class"),
        item_colour: share("item_colour"),
        scene_terrain: share("scene_terrain"),
        scene_time: share("scene_time"),
        character_role: share("character_role"),
        character_clothing: share("character_clothing"),
        sheet_consistent: share("sheet_consistent"),
        tile_ground: share("tile_ground"),
        tile_seam_ratio: seam_ratio,
        prop_kind: share("prop_kind"),
        colours,
        nearest_training_distance: nearest,
        passed: gates.iter().all(|g| g.passed),
        gates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_judges_read_procedural_samples_and_prompts_are_held_out() {
        let judge = JudgeV2::train(1500, 3).unwrap();
        for (head, acc) in &judge.accuracy {
            // Flowers and prop colours are judged but gate nothing; the rest must be reliable
            // before they judge anything (a margin below what this machine measures, 0.91 and
            // up, for CPUs whose float kernels train the judge a little differently).
            let floor = if head.starts_with("prop.colour") || head.starts_with("tile.flowers") {
                0.6
            } else if head.starts_with("item.") {
                0.85
            } else {
                0.9
            };
            println!("judge {head}: {acc:.3}");
            assert!(*acc >= floor, "judge {head}: {acc}");
        }
        let specs = held_out_specs_v2(20);
        assert_eq!(specs.len(), 100);
        for s in &specs[..60] {
            assert!(data::is_held_out(s), "{s:?}");
        }
        // The consistency rule (all twelve frames read alike) holds for procedural sheets, so a
        // painted sheet that fails it draws more than one character.
        let consistent = (0..50)
            .filter(|&i| {
                let s = data::sample_v2(11, Group::Sheet, i);
                let reads: std::collections::HashSet<[usize; 2]> = (0..12)
                    .map(|k| judge.read_frame(&frame(&s.rgba, k % 3, k / 3)).unwrap())
                    .collect();
                reads.len() == 1
            })
            .count();
        assert!(consistent >= 48, "{consistent} of 50 procedural sheets");
        // … and wherever the character stands in its frame: the same sheets with each frame
        // moved a pixel in a random direction that loses none of its pixels. (The judge before
        // it centred frames misread 314 of these 600 frames.)
        let mut rng = NoiseRng::new(99);
        let mut misread = 0;
        let consistent = (0..50)
            .filter(|&i| {
                let s = data::sample_v2(11, Group::Sheet, i);
                let want = labels(&s.spec);
                let want = [want[1] as usize, want[0] as usize];
                let reads: std::collections::HashSet<[usize; 2]> = (0..12)
                    .map(|k| {
                        let f = moved_a_pixel(&frame(&s.rgba, k % 3, k / 3), &mut rng);
                        let r = judge.read_frame(&f).unwrap();
                        misread += usize::from(r != want);
                        r
                    })
                    .collect();
                reads.len() == 1
            })
            .count();
        assert!(
            consistent >= 48 && misread <= 6,
            "{consistent} of 50 moved procedural sheets, {misread} of 600 frames misread"
        );
    }

    /// `f` moved one pixel in a direction drawn from those that keep every opaque pixel inside
    /// the frame (unmoved when there is none).
    fn moved_a_pixel(f: &[u8], rng: &mut NoiseRng) -> Vec<u8> {
        let n = data::FRAME_SIZE as i32;
        let fits = |dx: i32, dy: i32| {
            (0..n * n).all(|i| {
                let (x, y) = (i % n + dx, i / n + dy);
                f[i as usize * 4 + 3] == 0 || ((0..n).contains(&x) && (0..n).contains(&y))
            })
        };
        let moves: Vec<(i32, i32)> = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .filter(|&(dx, dy)| (dx, dy) != (0, 0) && fits(dx, dy))
            .collect();
        match moves.len() {
            0 => f.to_vec(),
            k => {
                let (dx, dy) = moves[(rng.next_u64() % k as u64) as usize];
                shift_frame(f, dx, dy)
            }
        }
    }
}
