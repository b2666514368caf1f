//! Art generation: prompts in, `Image` assets out, painted on a worker thread.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::image::{Image, ImageSampler};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use kiln_nftgen::{
    ArtModel, ContentHash, Control, CreatorAddress, GeneratedArt, GenerationRecord,
    GenerationRequest,
};
use wgpu_types::{Extent3d, TextureDimension, TextureFormat};

use crate::{KilnSystems, WorkerPriority, configure_sets};

/// Art generation. The model loads on the art worker thread at start-up; requests queue behind
/// each other there.
#[derive(Debug, Clone)]
pub struct ArtPlugin {
    /// The art model: a kiln-sprite-q or kiln-sprite file or a Stable Diffusion directory
    /// [default: `kiln_nftgen::default_model_path()`, the shipped integer kiln-sprite-q, whose
    /// pixels are the same on every machine].
    pub model: PathBuf,
    /// Denoising steps [default: the model's].
    pub steps: Option<u32>,
    /// How the painting threads share the CPU with the game.
    pub priority: WorkerPriority,
    /// Threads that paint [default: 1 — kiln-sprite's small matrices gain almost nothing from
    /// a second thread, and the game keeps a core; raise it for Stable Diffusion].
    pub threads: usize,
}

impl Default for ArtPlugin {
    fn default() -> Self {
        Self {
            model: kiln_nftgen::default_model_path(),
            steps: None,
            priority: WorkerPriority::default(),
            threads: 1,
        }
    }
}

/// What to paint: the size follows from it and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtKind {
    /// An item icon (kiln-sprite: 32×32).
    Item,
    /// A scene backdrop (kiln-sprite: 64×32; other models: their default size).
    Scene,
}

/// Paint `prompt` with `seed`. `requester` is any entity of yours; the answers name it.
#[derive(Message, Debug, Clone)]
pub struct GenerateArt {
    /// What to paint.
    pub prompt: String,
    /// Item or scene.
    pub kind: ArtKind,
    /// Seed (same prompt, kind, seed and creator → same pixels).
    pub seed: u64,
    /// The wallet the art is painted for — the requester's, usually [`KilnWallet`]. With the
    /// integer model (`kiln-pipeline/2`, the default) the creator is part of the picture: the
    /// same prompt and seed paint another image for another creator, and only this creator can
    /// mint it. `None` paints for nobody (the zero address); such art cannot be minted.
    pub creator: Option<CreatorAddress>,
    /// Who asked.
    pub requester: Entity,
}

/// The player's wallet: the account [`crate::ChainPlugin`] signs with, read from the chain
/// configuration when the app is built (no node is contacted). `None` without a chain plugin
/// or when the configuration names no usable key. Put it in [`GenerateArt::creator`].
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KilnWallet(pub Option<CreatorAddress>);

/// A denoising step finished.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtProgress {
    /// Who asked.
    pub requester: Entity,
    /// Steps done.
    pub step: u32,
    /// Steps in all.
    pub total: u32,
}

/// The art is painted.
#[derive(Message, Debug, Clone)]
pub struct ArtReady {
    /// Who asked.
    pub requester: Entity,
    /// The picture (RGBA8 sRGB, nearest-neighbour sampling for pixel art).
    pub image: Handle<Image>,
    /// The recipe that painted it.
    pub record: GenerationRecord,
    /// keccak256 of its pixels.
    pub content_hash: ContentHash,
    /// Pixels and record together, as minting wants them.
    pub art: Arc<GeneratedArt>,
}

/// The art could not be painted.
#[derive(Message, Debug, Clone)]
pub struct ArtFailed {
    /// Who asked.
    pub requester: Entity,
    /// Why, in one line.
    pub reason: String,
}

/// Where the art model stands.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub enum ArtStatus {
    /// Loading on the worker thread.
    Loading,
    /// Loaded (its model id).
    Ready(String),
    /// Could not load (the reason); requests fail with [`ArtFailed`].
    Unavailable(String),
}

enum Out {
    Loaded(Result<String, String>),
    Progress(ArtProgress),
    Done(Entity, Result<Box<GeneratedArt>, String>),
}

#[derive(Resource)]
struct ArtWorker {
    jobs: Sender<GenerateArt>,
    out: Receiver<Out>,
}

impl Plugin for ArtPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        if !app.world().contains_resource::<Assets<Image>>() {
            app.init_asset::<Image>();
        }
        let (jobs, job_rx) = crossbeam_channel::unbounded::<GenerateArt>();
        let (out_tx, out) = crossbeam_channel::unbounded::<Out>();
        let (model, steps, priority) = (self.model.clone(), self.steps, self.priority);
        let threads = self.threads.max(1);
        let spawned = std::thread::Builder::new()
            .name("kiln-art".into())
            .spawn(move || {
                priority.apply_to_this_thread();
                // candle's matrix products run on the current rayon pool: this one, whose
                // threads inherit the worker's priority.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("kiln-art-{i}"))
                    .build();
                match pool {
                    Ok(pool) => pool.install(|| worker(&model, steps, &job_rx, &out_tx)),
                    Err(e) => {
                        warn!("cannot start {threads} painting thread(s), using rayon's: {e}");
                        worker(&model, steps, &job_rx, &out_tx);
                    }
                }
            });
        let status = match spawned {
            Ok(_) => ArtStatus::Loading,
            Err(e) => ArtStatus::Unavailable(format!("cannot start the art worker: {e}")),
        };
        app.add_message::<GenerateArt>()
            .add_message::<ArtProgress>()
            .add_message::<ArtReady>()
            .add_message::<ArtFailed>()
            .insert_resource(status)
            .init_resource::<KilnWallet>()
            .insert_resource(ArtWorker { jobs, out })
            .add_systems(PreUpdate, receive_art.in_set(KilnSystems::Receive))
            .add_systems(PostUpdate, dispatch_art.in_set(KilnSystems::Dispatch));
    }
}

/// The art worker: loads the model, then paints jobs in order until the app goes away.
fn worker(
    model: &std::path::Path,
    steps: Option<u32>,
    jobs: &Receiver<GenerateArt>,
    out: &Sender<Out>,
) {
    let loaded = ArtModel::load(model).map_err(|e| e.to_string());
    let _ = out.send(Out::Loaded(
        loaded
            .as_ref()
            .map(|m| m.id().to_string())
            .map_err(Clone::clone),
    ));
    for req in jobs.iter() {
        let result = match &loaded {
            Ok(m) => paint(m, &req, steps, out).map(Box::new),
            Err(e) => Err(format!("the art model is unavailable: {e}")),
        };
        if out.send(Out::Done(req.requester, result)).is_err() {
            return;
        }
    }
}

fn paint(
    model: &ArtModel,
    req: &GenerateArt,
    steps: Option<u32>,
    out: &Sender<Out>,
) -> Result<GeneratedArt, String> {
    let mut request = GenerationRequest::new(req.prompt.clone(), req.seed);
    if let Some(s) = steps {
        request = request.steps(s);
    }
    if req.kind == ArtKind::Scene
        && let Some([w, h]) = model
            .sizes()
            .and_then(|sizes| sizes.iter().copied().find(|[w, h]| w > h))
    {
        request = request.size(w, h);
    }
    request.creator = req.creator;
    let requester = req.requester;
    model
        .generate(&request, &mut |p| {
            let progress = ArtProgress {
                requester,
                step: p.step,
                total: p.total,
            };
            // The app is gone: stop painting.
            if out.send(Out::Progress(progress)).is_err() {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .map_err(|e| e.to_string())
}

fn dispatch_art(
    mut requests: MessageReader<GenerateArt>,
    worker: Res<ArtWorker>,
    mut failed: MessageWriter<ArtFailed>,
) {
    for req in requests.read() {
        if worker.jobs.send(req.clone()).is_err() {
            failed.write(ArtFailed {
                requester: req.requester,
                reason: "the art worker has stopped".into(),
            });
        }
    }
}

fn receive_art(
    worker: Res<ArtWorker>,
    mut status: ResMut<ArtStatus>,
    mut images: ResMut<Assets<Image>>,
    mut progress: MessageWriter<ArtProgress>,
    mut ready: MessageWriter<ArtReady>,
    mut failed: MessageWriter<ArtFailed>,
) {
    for out in worker.out.try_iter() {
        match out {
            Out::Loaded(Ok(id)) => {
                info!("art model ready: {id}");
                *status = ArtStatus::Ready(id);
            }
            Out::Loaded(Err(e)) => {
                warn!("art model unavailable, art requests will fail: {e}");
                *status = ArtStatus::Unavailable(e);
            }
            Out::Progress(p) => {
                progress.write(p);
            }
            Out::Done(requester, Ok(art)) => {
                let image = images.add(to_image(&art));
                ready.write(ArtReady {
                    requester,
                    image,
                    record: art.record.clone(),
                    content_hash: art.content_hash,
                    art: Arc::new(*art),
                });
            }
            Out::Done(requester, Err(reason)) => {
                failed.write(ArtFailed { requester, reason });
            }
        }
    }
}

/// The pixels as an sRGB RGBA8 image with nearest-neighbour sampling (crisp pixel art).
pub(crate) fn to_image(art: &GeneratedArt) -> Image {
    pixel_image(art.width, art.height, art.rgba.clone())
}

/// RGBA8 pixels (rows top to bottom, as Kiln paints and stores them) as an sRGB `Image` with
/// nearest-neighbour sampling, like the images [`ArtReady`] hands out; for pictures a game
/// reads back from disk (e.g. with `kiln_nftgen::png_io::read`).
pub fn pixel_image(width: u32, height: u32, rgba: Vec<u8>) -> Image {
    let mut image = Image::new(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        rgba,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    image.sampler = ImageSampler::nearest();
    image
}
