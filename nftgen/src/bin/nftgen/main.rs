//! `nftgen`: paint art with a recorded recipe, and inspect Kiln PNG files.
//!
//! Exit codes: 0 success; 1 error (one line on stderr; with `--json`, also one JSON line
//! `{"ok":false,"error":…}` on stdout); 2 bad command line; 3 `inspect` found pixels that do not
//! match the recorded content hash, `verify` found the token not authentic, or `eval` failed a
//! gate.

#[cfg(feature = "chain")]
mod chain;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kiln_nftgen::{
    ArtBackend, ArtModel, Control, CreatorAddress, DevicePreference, GenerationRequest,
    SchedulerKind, png_io, sprite,
};

#[derive(Parser)]
#[command(
    name = "nftgen",
    version,
    about = "Kiln's art engine: deterministic diffusion with provenance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Paint an image from a prompt and a seed; write a PNG with the recipe embedded.
    Generate(GenerateArgs),
    /// Show the recipe embedded in a PNG and whether its pixels match the recorded hash.
    Inspect {
        /// PNG file.
        file: PathBuf,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write procedural captioned training samples (PNG files + captions.jsonl) and a contact sheet.
    Data {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// Number of samples (v1: items and scenes alternate; v2: items and props, scenes,
        /// character sheets and tiles in turn).
        #[arg(long, default_value_t = 64)]
        count: u64,
        /// Data set seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Which data set: `v1` (smooth items and scenes) or `v2` (pixel art in Kiln's palette,
        /// with characters, tiles and props).
        #[arg(long, default_value = "v1", value_parser = parse_data_set)]
        data_set: kiln_nftgen::data::DataSet,
        /// Pixels per image pixel in sheet.png.
        #[arg(long, default_value_t = 1)]
        scale: usize,
    },
    /// Train kiln-sprite on the procedural data (resumes from OUT/checkpoint.safetensors).
    Train {
        /// Run directory: checkpoint.safetensors, kiln-sprite.safetensors, loss.csv.
        #[arg(long)]
        out: PathBuf,
        /// Steps of the run (the shipped model: 2400, the time budget).
        #[arg(long, default_value_t = 2400)]
        steps: u64,
        /// Length of the cosine learning-rate schedule, wherever the run stops.
        #[arg(long, default_value_t = 3000)]
        schedule_steps: u64,
        /// Samples per step.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Seed of weights and noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Architecture: `base` (what ships) or `tiny` (tests).
        #[arg(long, default_value = "base")]
        preset: String,
        /// Keep a moving average of the weights from this step on; the model file gets it.
        #[arg(long, default_value_t = 1000)]
        ema_start: u64,
        /// Write a checkpoint and the model every N steps.
        #[arg(long, default_value_t = 100)]
        checkpoint_every: u64,
        /// Stop (after a checkpoint) once this many minutes have passed; rerun to resume.
        #[arg(long)]
        minutes: Option<f64>,
        /// Linear warm-up steps of the learning rate.
        #[arg(long, default_value_t = 200)]
        warmup: u64,
        /// Decay per step of the weights' moving average.
        #[arg(long, default_value_t = 0.998)]
        ema_decay: f64,
        /// Fine-tune this trained model file instead of starting from random weights.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Quantization-aware training: int8 layers see their weights and inputs as
        /// kiln-sprite-q runs them (straight-through gradients). For fine-tuning with `--from`
        /// before `nftgen quantize`.
        #[arg(long)]
        qat: bool,
        /// The data set: `v1` or `v2` (pixel art with characters, tiles and props; a v1 model
        /// given with --from grows the v2 vocabulary).
        #[arg(long, default_value = "v1", value_parser = parse_data_set)]
        data_set: kiln_nftgen::data::DataSet,
        /// With `--data-set v2`: train only on this group (`small`: items and props, `scene`,
        /// `sheet`, `tile`) instead of cycling through all four.
        #[arg(long, value_parser = parse_group)]
        only: Option<kiln_nftgen::data::Group>,
    },
    /// Evaluate a kiln-sprite model on held-out prompts (class, colour, terrain, time; diversity).
    Eval {
        /// Model file [default: the shipped one].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Held-out prompts to generate.
        #[arg(long, default_value_t = 200)]
        prompts: usize,
        /// Denoising steps [default: the model's].
        #[arg(long)]
        steps: Option<u32>,
        /// Guidance [default: the model's].
        #[arg(long)]
        guidance: Option<f32>,
        /// Judge trained-on combinations instead of held-out ones (for tuning sampling settings
        /// without touching the gate's prompts).
        #[arg(long)]
        seen: bool,
        /// Training samples to compare against for the nearest-copy check.
        #[arg(long, default_value_t = 2000)]
        compare: u64,
        /// The data set the model learnt: `v1` (items and scenes) or `v2` (also character
        /// sheets, tiles and props; PROMPTS are split evenly over the five kinds, and the gates
        /// add role, clothing, one character per sheet, tile seams and palette colours).
        #[arg(long, default_value = "v1", value_parser = parse_data_set)]
        data_set: kiln_nftgen::data::DataSet,
    },
    /// Paint a contact sheet: one row per prompt, one column per seed, as one PNG.
    Sheet {
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Model file [default: the shipped one].
        #[arg(long)]
        model: Option<PathBuf>,
        /// An item prompt, painted 32x32 (repeatable) [default: twelve held-out prompts].
        #[arg(long = "prompt")]
        prompts: Vec<String>,
        /// A scene prompt, painted 64x32 (repeatable).
        #[arg(long = "scene")]
        scenes: Vec<String>,
        /// Seeds per prompt: 0, 1, … N-1.
        #[arg(long, default_value_t = 6)]
        seeds: u64,
        /// Denoising steps [default: the model's].
        #[arg(long)]
        steps: Option<u32>,
        /// Each pixel drawn as a SCALE×SCALE block.
        #[arg(long, default_value_t = 3)]
        scale: usize,
    },
    /// Mint a Kiln PNG as a provenance token (the local chain starts by itself unless an RPC is
    /// configured). The recipe is re-run first: only art it really paints is minted.
    #[cfg(feature = "chain")]
    Mint {
        /// The PNG (written by `nftgen generate`).
        file: PathBuf,
        /// Model weights for the re-run check [default: the shipped model].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Skip re-running the recipe before minting.
        #[arg(long)]
        no_check: bool,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Verify a token (by id, or the PNG file that claims it): image hash, model hash, and a
    /// bit-exact re-run of the recipe. Exit 3 when not authentic.
    #[cfg(feature = "chain")]
    Verify {
        /// Token id (0x…) or a PNG file.
        target: String,
        /// The image to check for a token id [default: the content store's copy].
        #[arg(long)]
        image: Option<PathBuf>,
        /// Model weights to re-run on [default: the shipped model whose hash the token records].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Re-run recipes costing up to this many pixel-steps (width × height × steps); dearer
        /// ones get the verdict `cost_over_limit` [default: 13107200, 512×512 at 50 steps].
        #[arg(long)]
        max_cost: Option<u64>,
        /// Where kiln-pipeline/2 recipes are re-run: `auto`, `cpu` or `gpu` (as for generate).
        /// The verdict does not depend on it.
        #[arg(long, default_value = "auto")]
        backend: ArtBackend,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// List the provenance tokens an account holds.
    #[cfg(feature = "chain")]
    Tokens {
        /// The owner [default: the signing wallet].
        #[arg(long)]
        owner: Option<String>,
        /// Skip this many tokens (the listing's pages, in the order the tokens arrived).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// List at most this many tokens.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Deploy a provenance contract on the configured RPC chain (the local chain needs none).
    #[cfg(feature = "chain")]
    Deploy {
        /// `tokenURI` prefix: the token id in 0x-hex and ".json" follow it.
        #[arg(long)]
        metadata_base: String,
        /// Royalty paid to creators, in basis points.
        #[arg(long, default_value_t = 500)]
        royalty_bps: u16,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Export an f32 kiln-sprite model as an integer kiln-sprite-q model (`kiln-pipeline/2`:
    /// the same pixels on every machine).
    Quantize {
        /// The f32 kiln-sprite file [default: the shipped `kiln-sprite.safetensors`].
        #[arg(long)]
        from: Option<PathBuf>,
        /// Output `.safetensors` file.
        #[arg(long)]
        out: PathBuf,
        /// Model id written into records.
        #[arg(long, default_value = "kiln-sprite-q-v1")]
        name: String,
    },
    /// Write a tiny random Stable Diffusion checkpoint in the diffusers layout (for testing).
    TinySd {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a kiln-sprite model with random weights (for testing pipelines and benchmarks).
    RandomModel {
        /// Output `.safetensors` file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Architecture size: `tiny` (tests) or `base` (the shipping size class).
        #[arg(long, default_value = "tiny")]
        preset: String,
    },
}

impl Command {
    /// Whether errors are reported as a JSON line on stdout too.
    fn json_errors(&self) -> bool {
        match self {
            Command::Generate(a) => a.json,
            Command::Inspect { json, .. } => *json,
            #[cfg(feature = "chain")]
            Command::Mint { chain, .. }
            | Command::Verify { chain, .. }
            | Command::Tokens { chain, .. }
            | Command::Deploy { chain, .. } => chain.json,
            _ => false,
        }
    }
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// What to paint.
    #[arg(long)]
    prompt: String,
    /// Seed of the noise.
    #[arg(long)]
    seed: u64,
    /// Output PNG file (written only when the image is complete).
    #[arg(long)]
    out: PathBuf,
    /// Model: a kiln-sprite-q or kiln-sprite `.safetensors` file, or a diffusers directory
    /// [default: $KILN_ART_MODEL, else the game's assets/models/kiln-sprite-q.safetensors, else the
    /// embedded model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Denoising steps [default: the model's].
    #[arg(long)]
    steps: Option<u32>,
    /// Size as WIDTHxHEIGHT [default: the model's first size].
    #[arg(long, conflicts_with_all = ["sheet", "tile"])]
    size: Option<String>,
    /// Paint a character's walk-cycle sheet (48x64: rows down, left, right, up; columns
    /// standing and two steps, 16x16 frames) and write its texture-atlas layout beside the PNG
    /// as `<out>.atlas.json`. The prompt names the character: "a guard in blue with black hair".
    #[arg(long, conflicts_with = "tile")]
    sheet: bool,
    /// Paint a seamless 16x16 ground tile ("a cobblestone tile") and a 3x3 tiled preview beside
    /// it as `<out>.tiled.png`.
    #[arg(long)]
    tile: bool,
    /// Classifier-free guidance scale [default: the model's].
    #[arg(long)]
    guidance: Option<f32>,
    /// Negative prompt.
    #[arg(long, default_value = "")]
    negative: String,
    /// Scheduler: ddim, euler or euler_a.
    #[arg(long, default_value = "ddim")]
    scheduler: String,
    /// Creator address (0x…) the recipe is painted for, or `none`. With kiln-pipeline/2 the
    /// creator is part of the picture: another creator paints another image [default: the
    /// wallet `nftgen mint` signs with, from the data directory's chain config]
    #[arg(long)]
    creator: Option<String>,
    /// Data directory whose chain config names the default creator [default: $KILN_DATA_DIR,
    /// else ~/.local/share/kiln].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use a GPU when built with `cuda`/`metal` and one is usable (CPU otherwise), for the f32
    /// families (kiln-sprite v1, Stable Diffusion).
    #[arg(long)]
    gpu: bool,
    /// Where a kiln-pipeline/2 model paints: `auto` (a real GPU when one opens, else the CPU),
    /// `cpu`, or `gpu` (any wgpu adapter, a software one included; an error when none opens).
    /// Every backend paints the same pixels; the record names the one used.
    #[arg(long, default_value = "auto")]
    backend: ArtBackend,
    /// Print the record and hashes as one JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size `{s}` is not WIDTHxHEIGHT"))?;
    let w: u32 = w
        .trim()
        .parse()
        .with_context(|| format!("width `{w}` is not a number"))?;
    let h: u32 = h
        .trim()
        .parse()
        .with_context(|| format!("height `{h}` is not a number"))?;
    if w == 0 || h == 0 {
        bail!("size {w}x{h} has a zero side");
    }
    Ok((w, h))
}

/// Loads `--model`, or the shipped model when it is absent, naming the path on failure.
fn load_model(model: Option<PathBuf>, pref: DevicePreference) -> anyhow::Result<ArtModel> {
    let path = model.unwrap_or_else(kiln_nftgen::default_model_path);
    ArtModel::load_on(&path, pref)
        .with_context(|| format!("cannot load the art model {}", path.display()))
}

/// The wallet `nftgen mint` would sign with (the data directory's chain config), if one is
/// configured; a config that cannot be read leaves the recipe without a creator, with a note.
#[cfg(feature = "chain")]
fn default_creator(data_dir: Option<PathBuf>) -> Option<CreatorAddress> {
    let dir = data_dir.unwrap_or_else(kiln_nftgen::chain::default_data_dir);
    match kiln_nftgen::chain::ChainConfig::load(&dir).and_then(|c| c.signer_address()) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("nftgen: no creator (the chain config gives no wallet: {e}); pass --creator");
            None
        }
    }
}

#[cfg(not(feature = "chain"))]
fn default_creator(_: Option<PathBuf>) -> Option<CreatorAddress> {
    None
}

/// Refuses an output file whose directory does not exist, before any work is done.
fn check_output_dir(out: &Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("output directory {} does not exist", dir.display());
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let scheduler: SchedulerKind = a.scheduler.parse().map_err(anyhow::Error::msg)?;
    let size = a.size.as_deref().map(parse_size).transpose()?;
    let creator: Option<CreatorAddress> = match a.creator.as_deref().map(str::trim) {
        Some("none") => None,
        Some(c) => Some(c.parse().with_context(|| format!("--creator `{c}`"))?),
        None => default_creator(a.data_dir.clone()),
    };
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    check_output_dir(&a.out)?;
    let pref = if a.gpu {
        DevicePreference::BestAvailable
    } else {
        DevicePreference::Cpu
    };
    let mut model = load_model(a.model.clone(), pref)?;
    if model.family() == kiln_nftgen::ModelFamily::KilnSpriteQ || a.backend == ArtBackend::Gpu {
        model
            .select_backend(a.backend)
            .with_context(|| format!("--backend {}", a.backend.as_str()))?;
    }
    #[cfg(feature = "gpu")]
    if let Some(gpu) = model.gpu() {
        eprintln!("painting on the GPU: {}", gpu.adapter());
    }
    let mut req = GenerationRequest::new(a.prompt, a.seed)
        .scheduler(scheduler)
        .negative(a.negative);
    req.steps = a.steps;
    req.guidance = a.guidance;
    req.size = size;
    req.creator = creator;
    if a.sheet || a.tile {
        req = if a.sheet { req.sheet() } else { req.tile() };
        let (w, h) = req.size.expect("set above");
        if model.check_size(w, h).is_err() {
            bail!(
                "{} does not paint {}s ({w}x{h}); kiln-sprite-q v2 does",
                model.id(),
                if a.sheet { "character sheet" } else { "tile" }
            );
        }
    }
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let art = model.generate(&req, &mut |p| {
        let mut err = std::io::stderr().lock();
        if tty {
            let filled = (p.step * 30 / p.total) as usize;
            let _ = write!(
                err,
                "\r[{}{}] step {}/{}",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                p.step,
                p.total
            );
            if p.step == p.total {
                let _ = writeln!(err);
            }
        } else if p.step == p.total || p.step % 10 == 0 {
            let _ = writeln!(err, "step {}/{}", p.step, p.total);
        }
        Control::Continue
    })?;
    png_io::write(&a.out, &art)?;
    let secs = started.elapsed().as_secs_f64();
    if a.sheet {
        let atlas = with_suffix(&a.out, ".atlas.json");
        std::fs::write(
            &atlas,
            serde_json::to_string_pretty(&kiln_nftgen::SheetLayout::get())?,
        )
        .with_context(|| format!("cannot write {}", atlas.display()))?;
        eprintln!("atlas layout: {}", atlas.display());
    }
    if a.tile {
        let preview = with_suffix(&a.out, ".tiled.png");
        let (w, h) = (art.width as usize, art.height as usize);
        let mut px = vec![0u8; 9 * w * h * 4];
        for y in 0..3 * h {
            for x in 0..3 * w {
                let src = ((y % h) * w + x % w) * 4;
                let dst = (y * 3 * w + x) * 4;
                px[dst..dst + 4].copy_from_slice(&art.rgba[src..src + 4]);
            }
        }
        write_png_plain(&preview, 3 * art.width, 3 * art.height, &px)?;
        eprintln!("tiled 3x3: {}", preview.display());
    }
    if a.json {
        // Built by hand so the record keeps its canonical field order.
        println!(
            "{{\"out\":{},\"record\":{},\"recipe_hash\":\"{}\",\"content_hash\":\"{}\"}}",
            serde_json::to_string(&a.out.display().to_string())?,
            art.record.canonical_json(),
            art.recipe_hash,
            art.content_hash
        );
    } else {
        println!(
            "wrote {} ({}x{}, {} steps in {secs:.2} s)\nrecipe hash  {}\ncontent hash {}",
            a.out.display(),
            art.width,
            art.height,
            art.record.steps,
            art.recipe_hash,
            art.content_hash
        );
    }
    Ok(())
}

/// `out` with `suffix` appended to its file name (`a.png` → `a.png.atlas.json`).
fn with_suffix(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn inspect(file: &Path, json: bool) -> anyhow::Result<bool> {
    let png = png_io::read(file).with_context(|| format!("cannot inspect {}", file.display()))?;
    let matches = png.pixels_match();
    if json {
        let stored = png
            .stored_content_hash
            .map(|h| format!("\"{h}\""))
            .unwrap_or_else(|| "null".into());
        println!(
            "{{\"file\":{},\"record\":{},\"recipe_hash\":\"{}\",\"stored_content_hash\":{stored},\"content_hash\":\"{}\",\"pixels_match\":{matches}}}",
            serde_json::to_string(&file.display().to_string())?,
            png.record.canonical_json(),
            png.record.recipe_hash(),
            png.content_hash
        );
    } else {
        let r = &png.record;
        println!("file          {}", file.display());
        // The record comes from a file anyone can craft: its text is printed escaped.
        let shown = kiln_nftgen::printable;
        println!(
            "model         {} (sha256 {})",
            shown(&r.model.id),
            r.model.sha256
        );
        println!("prompt        {}", shown(&r.prompt));
        if !r.negative_prompt.is_empty() {
            println!("negative      {}", shown(&r.negative_prompt));
        }
        println!("seed          {}", r.seed);
        println!(
            "sampler       {} x {} steps, guidance {}",
            r.scheduler, r.steps, r.guidance
        );
        println!("size          {}x{}", r.width, r.height);
        println!(
            "engine        {} ({}, {})",
            shown(&r.engine),
            shown(&r.pipeline),
            r.backend
        );
        if let Some(c) = r.creator {
            println!("creator       {c}");
        }
        println!("recipe hash   {}", r.recipe_hash());
        println!("content hash  {}", png.content_hash);
        println!(
            "pixels        {}",
            if matches {
                "match the recorded content hash".to_string()
            } else {
                match png.stored_content_hash {
                    Some(h) => {
                        format!("DO NOT match the recorded content hash {h}: the image was altered")
                    }
                    None => "no content hash recorded".into(),
                }
            }
        );
    }
    Ok(matches)
}

fn write_png_plain(path: &Path, w: u32, h: u32, rgba: &[u8]) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgba)?;
    writer.finish()?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn parse_group(s: &str) -> Result<kiln_nftgen::data::Group, String> {
    use kiln_nftgen::data::Group;
    match s {
        "small" => Ok(Group::Small),
        "scene" => Ok(Group::Scene),
        "sheet" => Ok(Group::Sheet),
        "tile" => Ok(Group::Tile),
        _ => Err(format!("`{s}` is not a group: small, scene, sheet or tile")),
    }
}

fn parse_data_set(s: &str) -> Result<kiln_nftgen::data::DataSet, String> {
    match s {
        "v1" => Ok(kiln_nftgen::data::DataSet::V1),
        "v2" => Ok(kiln_nftgen::data::DataSet::V2),
        _ => Err(format!("unknown data set `{s}`: expected v1 or v2")),
    }
}

fn write_data(
    out: &Path,
    count: u64,
    seed: u64,
    set: kiln_nftgen::data::DataSet,
    scale: usize,
) -> anyhow::Result<()> {
    use kiln_nftgen::data;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut lines = String::new();
    let mut sheet = Vec::new();
    let mut stats = std::collections::BTreeMap::new();
    for i in 0..count {
        let s = match set {
            data::DataSet::V1 => data::sample(seed, i),
            data::DataSet::V2 => data::sample_v2(seed, data::Group::ALL[(i % 4) as usize], i / 4),
        };
        let name = format!("{i:06}.png");
        write_png_plain(&out.join(&name), s.width, s.height, &s.rgba)?;
        let kind = match s.spec {
            data::SampleSpec::Item(_) => "item",
            data::SampleSpec::Scene(_) => "scene",
            data::SampleSpec::Character(_) => "character sheet",
            data::SampleSpec::Tile(_) => "tile",
            data::SampleSpec::Prop(_) => "prop",
        };
        let (distinct, top12) = data::colour_stats(&s.rgba);
        let e = stats
            .entry(kind)
            .or_insert((usize::MAX, 0, f32::MAX, 0f32, 0));
        *e = (
            e.0.min(distinct),
            e.1.max(distinct),
            e.2.min(top12),
            e.3.max(top12),
            e.4 + 1,
        );
        lines.push_str(&serde_json::json!({"file": name, "caption": s.caption, "width": s.width, "height": s.height}).to_string());
        lines.push('\n');
        if sheet.len() < 64 {
            sheet.push(s);
        }
    }
    std::fs::write(out.join("captions.jsonl"), lines)?;
    let cells: Vec<data::ImageRef<'_>> = sheet
        .iter()
        .map(|s| (s.width, s.height, s.rgba.as_slice()))
        .collect();
    let (w, h, px) = data::contact_sheet(&cells, 8, scale);
    write_png_plain(&out.join("sheet.png"), w, h, &px)?;
    println!(
        "wrote {count} samples, captions.jsonl and sheet.png to {}",
        out.display()
    );
    for (kind, (lo, hi, top_lo, top_hi, n)) in stats {
        println!(
            "  {n} {kind}s: {lo}-{hi} distinct colours, the 12 most common cover {:.0}-{:.0}%",
            100.0 * top_lo,
            100.0 * top_hi
        );
    }
    Ok(())
}

fn train(
    out: &Path,
    opts: kiln_nftgen::train::TrainOptions,
    preset: &str,
    from: Option<&Path>,
    checkpoint_every: u64,
    minutes: Option<f64>,
) -> anyhow::Result<()> {
    use kiln_nftgen::train::{Trainer, training_config};
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ckpt = out.join("checkpoint.safetensors");
    let mut trainer = if ckpt.is_file() {
        let t = Trainer::resume(&ckpt, opts)?;
        eprintln!(
            "resuming at step {} of {}",
            t.step_count(),
            t.options().steps
        );
        t
    } else if let Some(from) = from {
        eprintln!(
            "fine-tuning {}{}",
            from.display(),
            if opts.qat {
                " (quantization-aware)"
            } else {
                ""
            }
        );
        Trainer::from_model(from, opts)
            .with_context(|| format!("cannot start from {}", from.display()))?
    } else {
        let mut cfg = match opts.data_set {
            kiln_nftgen::data::DataSet::V1 => training_config(),
            kiln_nftgen::data::DataSet::V2 => kiln_nftgen::train::training_config_v2(),
        };
        if preset == "tiny" {
            let tiny = sprite::SpriteConfig::tiny();
            cfg = sprite::SpriteConfig {
                text: cfg.text.clone(),
                sizes: cfg.sizes.clone(),
                name: "kiln-sprite-tiny-trained".into(),
                conditioning: cfg.conditioning,
                ..tiny
            };
        } else if preset != "base" {
            bail!("unknown preset `{preset}` (base or tiny)");
        }
        Trainer::new(cfg, opts)?
    };
    let started = Instant::now();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("loss.csv"))?;
    let (mut sum, mut n) = (0f64, 0u32);
    let mut window = Instant::now();
    while trainer.step_count() < trainer.options().steps {
        let t0 = Instant::now();
        let loss = trainer.train_step()?;
        let s = trainer.step_count();
        writeln!(
            log,
            "{s},{loss},{},{:.3}",
            trainer.lr_at(s - 1),
            t0.elapsed().as_secs_f64()
        )?;
        sum += loss as f64;
        n += 1;
        let done = s == trainer.options().steps;
        let out_of_time = minutes.is_some_and(|m| started.elapsed().as_secs_f64() > m * 60.0);
        if s.is_multiple_of(checkpoint_every) || done || out_of_time {
            trainer.save_checkpoint(&ckpt)?;
            trainer.export(&out.join("kiln-sprite.safetensors"))?;
            eprintln!(
                "step {s}/{}: loss {:.4} (mean of {n}), {:.2} s/step, {:.1} min of training in all, checkpoint written",
                trainer.options().steps,
                sum / n as f64,
                window.elapsed().as_secs_f64() / n as f64,
                trainer.seconds() / 60.0,
            );
            (sum, n) = (0.0, 0);
            window = Instant::now();
            if out_of_time && !done {
                eprintln!("time limit reached: rerun the same command to resume");
                break;
            }
        }
    }
    Ok(())
}

fn sheet(
    out: &Path,
    model: Option<PathBuf>,
    prompts: Vec<String>,
    scenes: Vec<String>,
    seeds: u64,
    steps: Option<u32>,
    scale: usize,
) -> anyhow::Result<()> {
    use kiln_nftgen::data;
    use kiln_nftgen::eval::{SheetRow, default_sheet_rows};
    if seeds == 0 || !(1..=16).contains(&scale) {
        bail!("--seeds must be at least 1 and --scale between 1 and 16");
    }
    check_output_dir(out)?;
    let mut rows: Vec<SheetRow> = prompts
        .into_iter()
        .map(|prompt| SheetRow {
            prompt,
            size: data::ITEM_SIZE,
        })
        .chain(scenes.into_iter().map(|prompt| SheetRow {
            prompt,
            size: data::SCENE_SIZE,
        }))
        .collect();
    if rows.is_empty() {
        rows = default_sheet_rows();
    }
    let m = load_model(model, DevicePreference::Cpu)?;
    let seed_list: Vec<u64> = (0..seeds).collect();
    let tty = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if tty {
            eprint!("\rpainting {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total || done.is_multiple_of(10) {
            eprintln!("painted {done}/{total}");
        }
    };
    let (w, h, px) = kiln_nftgen::eval::sheet(&m, &rows, &seed_list, steps, scale, &mut progress)?;
    write_png_plain(out, w, h, &px)?;
    println!("wrote {} ({w}x{h}): rows, top to bottom:", out.display());
    for (i, r) in rows.iter().enumerate() {
        println!("{:2}. {}", i + 1, r.prompt);
    }
    Ok(())
}

fn random_model(out: &Path, seed: u64, preset: &str) -> anyhow::Result<()> {
    let cfg = match preset {
        "tiny" => sprite::SpriteConfig::tiny(),
        "base" => sprite::SpriteConfig::base(),
        other => bail!("unknown preset `{other}` (tiny or base)"),
    };
    let weights = sprite::random_weights(&cfg, seed)?;
    kiln_nftgen::store::replace_with(out, |tmp| {
        sprite::save(tmp, &cfg, &weights).map_err(std::io::Error::other)
    })
    .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} ({} random weights, seed {seed})",
        out.display(),
        cfg.name
    );
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let json_errors = cli.command.json_errors();
    let result = match cli.command {
        #[cfg(feature = "chain")]
        Command::Mint {
            file,
            model,
            no_check,
            chain: c,
        } => chain::mint(&c, &file, model, no_check),
        #[cfg(feature = "chain")]
        Command::Verify {
            target,
            image,
            model,
            max_cost,
            backend,
            chain: c,
        } => chain::verify(&c, &target, image.as_deref(), model, max_cost, backend),
        #[cfg(feature = "chain")]
        Command::Tokens {
            owner,
            offset,
            limit,
            chain: c,
        } => chain::tokens(&c, owner.as_deref(), offset, limit),
        #[cfg(feature = "chain")]
        Command::Deploy {
            metadata_base,
            royalty_bps,
            chain: c,
        } => chain::deploy(&c, &metadata_base, royalty_bps),
        Command::Generate(a) => generate(a).map(|_| true),
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Train {
            out,
            steps,
            batch,
            lr,
            seed,
            preset,
            schedule_steps,
            ema_start,
            checkpoint_every,
            minutes,
            warmup,
            ema_decay,
            from,
            qat,
            data_set,
            only,
        } => {
            if only.is_some() && data_set != kiln_nftgen::data::DataSet::V2 {
                Err(anyhow::anyhow!("--only is for --data-set v2"))
            } else {
                let opts = kiln_nftgen::train::TrainOptions {
                    steps,
                    schedule_steps,
                    batch,
                    lr,
                    seed,
                    ema_start,
                    warmup,
                    ema_decay,
                    qat,
                    data_set,
                    only,
                    ..Default::default()
                };
                train(
                    &out,
                    opts,
                    &preset,
                    from.as_deref(),
                    checkpoint_every,
                    minutes,
                )
                .map(|_| true)
            }
        }
        Command::Eval {
            model,
            prompts,
            steps,
            guidance,
            seen,
            compare,
            data_set,
        } => (|| {
            let m = load_model(model, DevicePreference::Cpu)?;
            if data_set == kiln_nftgen::data::DataSet::V2 {
                if guidance.is_some() {
                    bail!("--guidance is for --data-set v1 (v2 paints with the model's)");
                }
                let r = kiln_nftgen::eval::v2::evaluate_v2(
                    &m,
                    (prompts / 5).max(1),
                    steps,
                    seen,
                    compare,
                    0,
                    &mut |done, total| {
                        if done % 20 == 0 || done == total {
                            eprintln!("painted {done}/{total}");
                        }
                    },
                )?;
                println!("{}", serde_json::to_string(&r)?);
                for g in r.gates.iter().filter(|g| !g.passed) {
                    eprintln!(
                        "gate failed: {} = {} (threshold {})",
                        g.name, g.value, g.threshold
                    );
                }
                return Ok(r.passed);
            }
            let opts = kiln_nftgen::eval::EvalOptions {
                prompts,
                seen,
                steps,
                guidance,
                training_compared: compare,
                data_seed: 0,
            };
            let r = kiln_nftgen::eval::evaluate(&m, &opts)?;
            println!("{}", serde_json::to_string(&r)?);
            for g in r.gates.iter().filter(|g| !g.passed) {
                eprintln!(
                    "gate failed: {} = {} (threshold {})",
                    g.name, g.value, g.threshold
                );
            }
            Ok(r.passed)
        })(),
        Command::Sheet {
            out,
            model,
            prompts,
            scenes,
            seeds,
            steps,
            scale,
        } => sheet(&out, model, prompts, scenes, seeds, steps, scale).map(|_| true),
        Command::Data {
            out,
            count,
            seed,
            data_set,
            scale,
        } => write_data(&out, count, seed, data_set, scale).map(|_| true),
        Command::Quantize { from, out, name } => (|| {
            let from = from.unwrap_or_else(kiln_nftgen::v1_model_path);
            let cfg = kiln_nftgen::training::quantize::quantize_file(&from, &out, &name)?;
            println!(
                "wrote {} ({}, {}) from {}",
                out.display(),
                cfg.name,
                cfg.pipeline,
                from.display()
            );
            Ok(true)
        })(),
        Command::TinySd { out } => kiln_nftgen::sd::write_tiny_checkpoint(&out)
            .map(|_| {
                println!(
                    "wrote a tiny random Stable Diffusion checkpoint to {}",
                    out.display()
                );
                true
            })
            .map_err(Into::into),
        Command::RandomModel { out, seed, preset } => {
            random_model(&out, seed, &preset).map(|_| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            // Errors quote text from files and the chain: control characters (escape
            // sequences) are shown escaped, never sent to the terminal.
            let line = kiln_nftgen::printable(&format!("{e:#}").replace('\n', " "));
            if json_errors {
                println!("{}", serde_json::json!({"ok": false, "error": line}));
            }
            let _ = writeln!(std::io::stderr(), "nftgen: error: {line}");
            ExitCode::FAILURE
        }
    }
}
