//! Where everything lives in the GPU's two buffers, and the dispatches of one denoising step.
//!
//! `params` holds the model (uploaded once); `work` holds the activations of the largest size
//! the model paints, so one allocation serves every size. A [`Plan`] is the list of dispatches
//! of one step for one image size, each with its arguments (offsets into the buffers and sizes,
//! the [`Args`] of `kernels.wgsl`).

use crate::model::sprite_q::ops::{ACT_MAX, SAMPLE_MAX};
use crate::model::sprite_q::{QLinear, SpriteQNet};

/// The compute entry points of `kernels.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    QuantizeRows,
    Linear,
    Patchify,
    AddPositions,
    Condition,
    Modulate,
    LayerNorm,
    GateAdd,
    SiluInPlace,
    Concat,
    Copy,
    KvExponents,
    QuantizeKv,
    Scores,
    Softmax,
    WeightedValues,
    SampleStep,
    InitialNoise,
    Pixels,
    ProbeMulShift,
    ProbeSilu,
}

impl Entry {
    /// Every entry point, in the order of their pipelines.
    pub(crate) const ALL: [Entry; 21] = [
        Entry::QuantizeRows,
        Entry::Linear,
        Entry::Patchify,
        Entry::AddPositions,
        Entry::Condition,
        Entry::Modulate,
        Entry::LayerNorm,
        Entry::GateAdd,
        Entry::SiluInPlace,
        Entry::Concat,
        Entry::Copy,
        Entry::KvExponents,
        Entry::QuantizeKv,
        Entry::Scores,
        Entry::Softmax,
        Entry::WeightedValues,
        Entry::SampleStep,
        Entry::InitialNoise,
        Entry::Pixels,
        Entry::ProbeMulShift,
        Entry::ProbeSilu,
    ];

    /// The WGSL function name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Entry::QuantizeRows => "quantize_rows",
            Entry::Linear => "linear",
            Entry::Patchify => "patchify",
            Entry::AddPositions => "add_positions",
            Entry::Condition => "condition",
            Entry::Modulate => "modulate",
            Entry::LayerNorm => "layer_norm",
            Entry::GateAdd => "gate_add",
            Entry::SiluInPlace => "silu_in_place",
            Entry::Concat => "concat",
            Entry::Copy => "copy",
            Entry::KvExponents => "kv_exponents",
            Entry::QuantizeKv => "quantize_kv",
            Entry::Scores => "scores",
            Entry::Softmax => "softmax",
            Entry::WeightedValues => "weighted_values",
            Entry::SampleStep => "sample_step",
            Entry::InitialNoise => "initial_noise",
            Entry::Pixels => "pixels",
            Entry::ProbeMulShift => "probe_mul_shift",
            Entry::ProbeSilu => "probe_silu",
        }
    }

    /// Index of this entry's pipeline: its place in [`Entry::ALL`], which lists the entries in
    /// declaration order (tested).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One dispatch's arguments (the WGSL `Args`: sizes `n`, offsets `o`, signed values `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Args {
    pub n: [u32; 4],
    pub o: [u32; 8],
    pub i: [i32; 4],
}

/// Bytes of one [`Args`] (16 words).
pub(crate) const ARGS_BYTES: u64 = 64;

impl Args {
    /// Little-endian bytes, as the uniform buffer holds them.
    pub(crate) fn bytes(&self) -> [u8; ARGS_BYTES as usize] {
        let mut out = [0u8; ARGS_BYTES as usize];
        let words = self
            .n
            .iter()
            .chain(&self.o)
            .copied()
            .chain(self.i.iter().map(|&v| v as u32));
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// One dispatch: an entry point, its arguments and its workgroup counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dispatch {
    pub entry: Entry,
    pub args: Args,
    pub groups: [u32; 3],
}

#[cfg(test)]
#[test]
fn entries_are_listed_in_declaration_order() {
    for (i, e) in Entry::ALL.iter().enumerate() {
        assert_eq!(e.index(), i, "{e:?}");
    }
}

/// Workgroups of 64 invocations covering `count` along x.
fn groups_x(count: usize) -> u32 {
    count.div_ceil(64) as u32
}

/// Workgroups for `count` values addressed as `id.x + id.y · 65536`.
pub(crate) fn flat(count: usize) -> [u32; 3] {
    if count <= 65_536 {
        [groups_x(count), 1, 1]
    } else {
        [1024, count.div_ceil(65_536) as u32, 1]
    }
}

/// Offsets of one linear layer in `params`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lin {
    pub w: u32,
    pub bias: u32,
    pub mult: u32,
    pub shift: u32,
    pub inp: u32,
    pub out: u32,
}

impl Lin {
    fn words(&self) -> u32 {
        self.inp.div_ceil(4)
    }
}

/// Offsets of a norm's γ and β in `params`.
#[derive(Debug, Clone, Copy)]
struct Norm {
    gamma: u32,
    beta: u32,
}

#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    qkv: Lin,
    proj: Lin,
    norm2: Norm,
    fc1: Lin,
    fc2: Lin,
    skip: Option<Lin>,
    ada: Lin,
}

/// The model as one array of i32 words, and where each tensor starts.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// The words to upload.
    pub data: Vec<i32>,
    patch_in: Lin,
    pos: u32,
    time: u32,
    final_ada: Lin,
    blocks: Vec<Block>,
    norm_out: Norm,
    patch_out: Lin,
    exp: u32,
    silu: u32,
    /// The noise's inverse-CDF table.
    pub normal: u32,
    /// The palette (one RGBA8 word per entry, red in the low byte) and its length (0: none).
    palette: (u32, u32),
}

/// Packs four int8 values into one word, the first in the low byte (as `pack4` in WGSL).
pub(crate) fn pack4(q: [i8; 4]) -> i32 {
    i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8])
}

struct Builder {
    data: Vec<i32>,
}

impl Builder {
    fn push(&mut self, values: &[i32]) -> u32 {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(values);
        at
    }

    fn linear(&mut self, l: &QLinear) -> Lin {
        // Word-major (`[in/4][out]`): the invocations of neighbouring outputs read
        // neighbouring words, as GPUs like their loads.
        let words = l.inp.div_ceil(4);
        let w = self.data.len() as u32;
        for g in 0..words {
            for row in l.weight.chunks_exact(l.inp) {
                let mut q = [0i8; 4];
                for (b, slot) in q.iter_mut().enumerate() {
                    if let Some(&v) = row.get(4 * g + b) {
                        *slot = v;
                    }
                }
                self.data.push(pack4(q));
            }
        }
        Lin {
            w,
            bias: self.push(&l.bias),
            mult: self.push(&l.mult),
            shift: self.push(&l.shift),
            inp: l.inp as u32,
            out: l.out as u32,
        }
    }

    fn norm(&mut self, n: &crate::model::sprite_q::QNorm) -> Norm {
        Norm {
            gamma: self.push(&n.gamma),
            beta: self.push(&n.beta),
        }
    }
}

impl Params {
    /// Lays out the whole network.
    pub(crate) fn of(net: &SpriteQNet) -> Self {
        let mut b = Builder { data: Vec::new() };
        let patch_in = b.linear(&net.patch_in);
        let pos = b.push(&net.pos);
        let time = b.push(&net.time_table);
        let final_ada = b.linear(&net.final_ada);
        let blocks = net
            .blocks
            .iter()
            .map(|k| Block {
                norm1: b.norm(&k.norm1),
                qkv: b.linear(&k.qkv),
                proj: b.linear(&k.proj),
                norm2: b.norm(&k.norm2),
                fc1: b.linear(&k.fc1),
                fc2: b.linear(&k.fc2),
                skip: k.skip.as_ref().map(|s| b.linear(s)),
                ada: b.linear(&k.ada),
            })
            .collect();
        let norm_out = b.norm(&net.norm_out);
        let patch_out = b.linear(&net.patch_out);
        let exp = b.push(&net.exp_table);
        let silu = b.push(&net.silu_table);
        let normal = b.push(&crate::sampling::noise_q::NORMAL_ICDF_Q12);
        let entries: Vec<i32> = net
            .config()
            .palette
            .iter()
            .flatten()
            .map(|e| i32::from_le_bytes(*e))
            .collect();
        let palette = (b.push(&entries), entries.len() as u32);
        Params {
            data: b.data,
            patch_in,
            pos,
            time,
            final_ada,
            blocks,
            norm_out,
            patch_out,
            exp,
            silu,
            normal,
            palette,
        }
    }
}

impl Params {
    /// Block `i`'s MLP input layer (for the kernel tests).
    #[cfg(test)]
    pub(crate) fn block_fc1(&self, i: usize) -> Lin {
        self.blocks[i].fc1
    }
}

/// Regions of `work` (offsets in i32 words), sized for `tokens` tokens per row.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Words of the whole buffer.
    pub len: usize,
    /// The sample `[C, H, W]` (Q16).
    pub x: u32,
    /// The two pooled prompts `[2, d]` (negative, positive).
    pub prompts: u32,
    /// The network's output rows `[2, tokens, C·p·p]`.
    pub out: u32,
    /// The picture, one RGBA8 word per pixel.
    pub pixels: u32,
    cond: u32,
    patches: u32,
    h0: u32,
    xs: u32,
    h: u32,
    qkv: u32,
    att: u32,
    tmp: u32,
    f: u32,
    cat: u32,
    skips: Vec<u32>,
    m: u32,
    mod_a: u32,
    mod_c: u32,
    rows: u32,
    exps: u32,
    qwords: u32,
    qexps: u32,
    kvexp: u32,
    kwords: u32,
    values: u32,
    scores: u32,
}

/// Words at the start of `work` for the per-step values (timestep, A, B, G).
pub(crate) const STEP_WORDS: usize = 16;
/// Where in `work` the noise key's lane-0 words are (after the per-step values).
pub(crate) const KEY_AT: u32 = 4;

impl Layout {
    /// The regions for `tokens` tokens per row of `net`.
    pub(crate) fn new(net: &SpriteQNet, tokens: usize) -> Self {
        let cfg = &net.cfg;
        let (d, heads, n) = (cfg.dim, cfg.heads, tokens);
        let hd = d / heads;
        let pp = cfg.channels * cfg.patch * cfg.patch;
        let hidden = d * cfg.mlp_ratio;
        let widest = [pp, d, 2 * d, hidden].into_iter().max().unwrap_or(d);
        let mut at = STEP_WORDS;
        let mut take = |words: usize| {
            let start = at as u32;
            at += words;
            start
        };
        let x = take(n * pp);
        let prompts = take(2 * d);
        let out = take(2 * n * pp);
        let pixels = take(n * cfg.patch * cfg.patch);
        let cond = take(2 * d);
        let patches = take(n * pp);
        let h0 = take(n * d);
        let xs = take(2 * n * d);
        let h = take(2 * n * d);
        let qkv = take(2 * n * 3 * d);
        let att = take(2 * n * d);
        let tmp = take(2 * n * d);
        let f = take(2 * n * hidden);
        let cat = take(2 * n * 2 * d);
        let skips = (0..cfg.depth / 2).map(|_| take(2 * n * d)).collect();
        let m = take(2 * 6 * d);
        let mod_a = take(2 * d);
        let mod_c = take(2 * d);
        let rows = take(2 * n * widest.div_ceil(4));
        let exps = take(2 * n);
        let qwords = take(heads * 2 * n * hd.div_ceil(4));
        let qexps = take(heads * 2 * n);
        let kvexp = take(2 * heads * 2);
        let kwords = take(heads * 2 * n * hd.div_ceil(4));
        let values = take(heads * 2 * n * hd);
        let scores = take(2 * heads * n * n);
        Layout {
            len: at,
            x,
            prompts,
            out,
            pixels,
            cond,
            patches,
            h0,
            xs,
            h,
            qkv,
            att,
            tmp,
            f,
            cat,
            skips,
            m,
            mod_a,
            mod_c,
            rows,
            exps,
            qwords,
            qexps,
            kvexp,
            kwords,
            values,
            scores,
        }
    }
}

/// The dispatches of one image at `width × height`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Every dispatch, in order: one step (the network, then the sampler's update), then the
    /// initial noise and the pixels (each run once).
    pub dispatches: Vec<Dispatch>,
    /// How many of them are the network.
    pub network: usize,
    /// How many are one step (the network and the update).
    pub step: usize,
}

struct PlanBuilder<'a> {
    l: &'a Layout,
    out: Vec<Dispatch>,
}

impl PlanBuilder<'_> {
    fn push(&mut self, entry: Entry, args: Args, groups: [u32; 3]) {
        self.out.push(Dispatch {
            entry,
            args,
            groups,
        });
    }

    /// `dst[rows, out] = lin(src[rows, inp])`, each value limited to `±lim`.
    fn linear(&mut self, lin: Lin, src: u32, rows: u32, dst: u32, lim: i32) {
        let l = self.l;
        self.push(
            Entry::QuantizeRows,
            Args {
                n: [rows, lin.inp, 1, 0],
                o: [src, lin.inp, l.rows, l.exps, 0, 0, 0, 0],
                ..Args::default()
            },
            [groups_x(rows as usize), 1, 1],
        );
        self.push(
            Entry::Linear,
            Args {
                n: [rows, lin.words(), lin.out, 0],
                o: [l.rows, l.exps, lin.w, lin.bias, lin.mult, lin.shift, dst, 0],
                i: [lim, 0, 0, 0],
            },
            [groups_x(lin.out as usize), rows, 1],
        );
    }

    /// `mod_a`, `mod_c` from a norm and the modulation chunks at `shift` and `scale` (rows
    /// `stride` apart).
    fn modulate(&mut self, norm: Norm, shift: u32, scale: u32, stride: u32, d: u32) {
        let l = self.l;
        self.push(
            Entry::Modulate,
            Args {
                n: [d, stride, 0, 0],
                o: [norm.gamma, norm.beta, shift, scale, l.mod_a, l.mod_c, 0, 0],
                ..Args::default()
            },
            [groups_x(d as usize), 2, 1],
        );
    }

    fn layer_norm(&mut self, rows: u32, d: u32, tokens: u32, src: u32, dst: u32) {
        let l = self.l;
        self.push(
            Entry::LayerNorm,
            Args {
                n: [rows, d, tokens, 0],
                o: [src, dst, l.mod_a, l.mod_c, 0, 0, 0, 0],
                ..Args::default()
            },
            [groups_x(rows as usize), 1, 1],
        );
    }

    fn gate_add(&mut self, rows: u32, d: u32, tokens: u32, h: u32, gate: u32, stride: u32) {
        let l = self.l;
        self.push(
            Entry::GateAdd,
            Args {
                n: [rows, d, tokens, stride],
                o: [l.xs, h, gate, 0, 0, 0, 0, 0],
                ..Args::default()
            },
            [groups_x(d as usize), rows, 1],
        );
    }
}

impl Plan {
    /// The step's dispatches for an image of `width × height` (a size the model paints).
    pub(crate) fn new(
        net: &SpriteQNet,
        p: &Params,
        l: &Layout,
        width: usize,
        height: usize,
    ) -> Self {
        let cfg = &net.cfg;
        let (patch, c, d, heads) = (cfg.patch, cfg.channels, cfg.dim, cfg.heads);
        let (gw, gh) = (width / patch, height / patch);
        let n = gw * gh;
        let pp = c * patch * patch;
        let hd = d / heads;
        let hidden = d * cfg.mlp_ratio;
        let (n32, d32, rows) = (n as u32, d as u32, 2 * n as u32);
        let mut b = PlanBuilder { l, out: Vec::new() };
        b.push(
            Entry::Condition,
            Args {
                n: [d32, 0, 0, 0],
                o: [p.time, l.prompts, l.cond, p.silu, 0, 0, 0, 0],
                ..Args::default()
            },
            [groups_x(d), 2, 1],
        );
        b.push(
            Entry::Patchify,
            Args {
                n: [n32, pp as u32, patch as u32, gw as u32],
                o: [l.x, l.patches, 0, 0, 0, 0, 0, 0],
                i: [width as i32, height as i32, 0, 0],
            },
            [groups_x(pp), n32, 1],
        );
        b.linear(p.patch_in, l.patches, n32, l.h0, ACT_MAX);
        b.push(
            Entry::AddPositions,
            Args {
                n: [n32, d32, gw as u32, cfg.max_grid[0] as u32],
                o: [l.h0, p.pos, l.xs, 0, 0, 0, 0, 0],
                ..Args::default()
            },
            [groups_x(d), n32, 1],
        );
        let mut saved: Vec<u32> = Vec::new();
        let mut free = l.skips.iter().copied();
        let six = 6 * d32;
        for block in &p.blocks {
            if let Some(skip) = block.skip {
                let from = saved.pop().expect("one saved stream per first-half block");
                b.push(
                    Entry::Concat,
                    Args {
                        n: [rows, d32, 0, 0],
                        o: [l.xs, from, l.cat, 0, 0, 0, 0, 0],
                        ..Args::default()
                    },
                    [groups_x(2 * d), rows, 1],
                );
                b.linear(skip, l.cat, rows, l.xs, ACT_MAX);
            }
            b.linear(block.ada, l.cond, 2, l.m, ACT_MAX);
            b.modulate(block.norm1, l.m, l.m + d32, six, d32);
            b.layer_norm(rows, d32, n32, l.xs, l.h);
            // Attention.
            b.linear(block.qkv, l.h, rows, l.qkv, ACT_MAX);
            let words = hd.div_ceil(4) as u32;
            b.push(
                Entry::QuantizeRows,
                Args {
                    n: [rows, hd as u32, heads as u32, 0],
                    o: [
                        l.qkv,
                        3 * d32,
                        l.qwords,
                        l.qexps,
                        hd as u32,
                        rows * words,
                        rows,
                        0,
                    ],
                    ..Args::default()
                },
                [groups_x(2 * n), heads as u32, 1],
            );
            let sizes = [n32, hd as u32, heads as u32, d32];
            b.push(
                Entry::KvExponents,
                Args {
                    n: sizes,
                    o: [l.qkv, l.kvexp, 0, 0, 0, 0, 0, 0],
                    ..Args::default()
                },
                [groups_x(heads), 2, 1],
            );
            b.push(
                Entry::QuantizeKv,
                Args {
                    n: sizes,
                    o: [l.qkv, l.kvexp, l.kwords, l.values, 0, 0, 0, 0],
                    ..Args::default()
                },
                [groups_x(2 * n), heads as u32, 1],
            );
            b.push(
                Entry::Scores,
                Args {
                    n: sizes,
                    o: [l.qwords, l.qexps, l.kwords, l.kvexp, l.scores, 0, 0, 0],
                    ..Args::default()
                },
                [groups_x(n * n), heads as u32, 2],
            );
            b.push(
                Entry::Softmax,
                Args {
                    n: sizes,
                    o: [l.scores, p.exp, 0, 0, 0, 0, 0, 0],
                    ..Args::default()
                },
                [groups_x(n), heads as u32, 2],
            );
            b.push(
                Entry::WeightedValues,
                Args {
                    n: sizes,
                    o: [l.scores, l.values, l.kvexp, l.att, 0, 0, 0, 0],
                    ..Args::default()
                },
                [groups_x(n * hd), heads as u32, 2],
            );
            b.linear(block.proj, l.att, rows, l.tmp, ACT_MAX);
            b.gate_add(rows, d32, n32, l.tmp, l.m + 2 * d32, six);
            // MLP.
            b.modulate(block.norm2, l.m + 3 * d32, l.m + 4 * d32, six, d32);
            b.layer_norm(rows, d32, n32, l.xs, l.h);
            b.linear(block.fc1, l.h, rows, l.f, ACT_MAX);
            let count = 2 * n * hidden;
            b.push(
                Entry::SiluInPlace,
                Args {
                    n: [count as u32, 0, 0, 0],
                    o: [l.f, p.silu, 0, 0, 0, 0, 0, 0],
                    ..Args::default()
                },
                flat(count),
            );
            b.linear(block.fc2, l.f, rows, l.tmp, ACT_MAX);
            b.gate_add(rows, d32, n32, l.tmp, l.m + 5 * d32, six);
            if block.skip.is_none() {
                let to = free.next().expect("a region per first-half block");
                let count = 2 * n * d;
                b.push(
                    Entry::Copy,
                    Args {
                        n: [count as u32, 0, 0, 0],
                        o: [l.xs, to, 0, 0, 0, 0, 0, 0],
                        ..Args::default()
                    },
                    flat(count),
                );
                saved.push(to);
            }
        }
        b.linear(p.final_ada, l.cond, 2, l.m, ACT_MAX);
        b.modulate(p.norm_out, l.m, l.m + d32, 2 * d32, d32);
        b.layer_norm(rows, d32, n32, l.xs, l.h);
        b.linear(p.patch_out, l.h, rows, l.out, SAMPLE_MAX);
        let network = b.out.len();
        let values = c * width * height;
        b.push(
            Entry::SampleStep,
            Args {
                n: [values as u32, patch as u32, gw as u32, pp as u32],
                o: [l.x, l.out, 0, 0, 0, 0, 0, 0],
                i: [width as i32, height as i32, n as i32, 0],
            },
            flat(values),
        );
        let step = b.out.len();
        b.push(
            Entry::InitialNoise,
            Args {
                n: [values as u32, 0, 0, 0],
                o: [l.x, KEY_AT, p.normal, 0, 0, 0, 0, 0],
                ..Args::default()
            },
            flat(values),
        );
        let plane = width * height;
        b.push(
            Entry::Pixels,
            Args {
                n: [plane as u32, p.palette.1, 0, 0],
                o: [l.x, l.pixels, p.palette.0, 0, 0, 0, 0, 0],
                ..Args::default()
            },
            flat(plane),
        );
        Plan {
            dispatches: b.out,
            network,
            step,
        }
    }
}
