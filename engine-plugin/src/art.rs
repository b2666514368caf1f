//! Art generation: prompts in, `Image` assets out, painted on a worker thread.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::image::{Image, ImageSampler, TextureAtlasLayout, TextureAtlasPlugin};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use kiln_nftgen::{
    ArtBackend, ArtModel, Backend, ContentHash, Control, CreatorAddress, GenerateError,
    GeneratedArt, GenerationRecord, GenerationRequest, SheetLayout,
};
use wgpu_types::{Extent3d, TextureDimension, TextureFormat};

use crate::worker::{Worker, catch};
use crate::{KilnSystems, WorkerPriority, configure_sets};

/// Art generation. The model loads on the art worker thread at start-up; requests queue behind
/// each other there.
#[derive(Debug, Clone)]
pub struct ArtPlugin {
    /// The art model: a kiln-sprite-q or kiln-sprite file, or (feature `sd`) a Stable Diffusion
    /// directory
    /// [default: `kiln_nftgen::default_model_path()`: `$KILN_ART_MODEL`, else the game's
    /// `assets/models/kiln-sprite-q.safetensors`, else the integer kiln-sprite-q built in, whose
    /// pixels are the same on every machine].
    pub model: PathBuf,
    /// Denoising steps [default: the model's].
    pub steps: Option<u32>,
    /// How the painting threads share the CPU with the game.
    pub priority: WorkerPriority,
    /// Threads that paint on the CPU [default: 1 — kiln-sprite's small matrices gain almost
    /// nothing from a second thread, and the game keeps a core; raise it for Stable Diffusion].
    pub threads: usize,
    /// Where the integer model paints; every choice paints the same pixels [default:
    /// [`ArtBackend::Auto`]: with the `gpu` feature, Bevy's own GPU when the app renders on a
    /// hardware GPU, else a headless hardware GPU, else the CPU. A software rasterizer is passed
    /// over for the CPU kernels, which are faster than it; [`ArtBackend::Gpu`] takes it too].
    pub backend: ArtBackend,
}

impl Default for ArtPlugin {
    fn default() -> Self {
        Self {
            model: kiln_nftgen::default_model_path(),
            steps: None,
            priority: WorkerPriority::default(),
            threads: 1,
            backend: ArtBackend::Auto,
        }
    }
}

/// What to paint: the size follows from it and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtKind {
    /// An item icon, or a building or prop (kiln-sprite: 32×32).
    Item,
    /// A scene backdrop (kiln-sprite: 64×32; other models: their default size).
    Scene,
    /// A character's walk-cycle sheet ([`SheetLayout`](kiln_nftgen::SheetLayout): 48×64, rows
    /// down, left, right, up × standing and two steps); [`ArtReady::atlas`] holds its
    /// texture-atlas layout. Needs a model that paints sheets (kiln-sprite-q v2).
    Sheet,
    /// A seamless 16×16 ground tile. Needs a model that paints tiles (kiln-sprite-q v2).
    Tile,
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
    /// For a character sheet: its texture-atlas layout (16-pixel frames, 3 columns, 4 rows), for
    /// a `Sprite` with a `TextureAtlas`; `None` for other pictures.
    pub atlas: Option<Handle<TextureAtlasLayout>>,
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

/// Where the art worker paints: set once it has chosen its backend (after the first frame), and
/// again if a GPU fails and it goes on on the CPU.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtDevice {
    /// `cpu` or `wgpu` (`None` until chosen).
    pub backend: Option<Backend>,
    /// The GPU adapter's name when painting on one, e.g. `NVIDIA GeForce RTX 4070 (Vulkan,
    /// DiscreteGpu)`.
    pub adapter: Option<String>,
    /// Whether it is the GPU the app renders with (Bevy's `RenderDevice`).
    pub shared_with_renderer: bool,
}

/// A device the app already has (Bevy's renderer), offered to the worker.
#[cfg(feature = "gpu")]
pub(crate) struct SharedGpu {
    device: kiln_nftgen::gpu::wgpu::Device,
    queue: kiln_nftgen::gpu::wgpu::Queue,
    info: kiln_nftgen::gpu::wgpu::AdapterInfo,
}

#[cfg(not(feature = "gpu"))]
pub(crate) enum SharedGpu {}

enum Job {
    /// The first job: the renderer's device, if the app renders.
    Backend(Option<SharedGpu>),
    Paint(GenerateArt),
}

enum Out {
    Loaded(Result<String, String>),
    Device(ArtDevice),
    Progress(ArtProgress),
    Done(Entity, Result<Box<GeneratedArt>, String>),
    /// The worker died (its panic's message).
    Crashed(String),
}

#[derive(Resource)]
struct ArtWorker {
    worker: Worker<Job>,
    out: Receiver<Out>,
    /// Requesters waiting for an answer, oldest first: told [`ArtFailed`] if the worker dies.
    in_flight: Vec<Entity>,
    /// The texture-atlas layout every character sheet shares (made with the first sheet).
    sheet_atlas: Option<Handle<TextureAtlasLayout>>,
}

impl Plugin for ArtPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        if !app.world().contains_resource::<Assets<Image>>() {
            app.init_asset::<Image>();
        }
        // As Bevy's sprite plugin does: the atlas layouts of character sheets need their assets.
        if !app.is_plugin_added::<TextureAtlasPlugin>() {
            app.add_plugins(TextureAtlasPlugin);
        }
        let (out_tx, out) = crossbeam_channel::unbounded::<Out>();
        let (model, steps, backend) = (self.model.clone(), self.steps, self.backend);
        let threads = self.threads.max(1);
        let crashed = out_tx.clone();
        let spawned = Worker::spawn(
            "art",
            self.priority,
            move |jobs: Receiver<Job>| {
                // candle's matrix products run on the current rayon pool: this one, whose
                // threads inherit the worker's priority.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("kiln-art-{i}"))
                    .build();
                let settings = Settings {
                    steps,
                    backend,
                    out: out_tx,
                };
                match pool {
                    Ok(pool) => pool.install(|| worker(&model, &settings, &jobs)),
                    Err(e) => {
                        warn!("cannot start {threads} painting thread(s), using rayon's: {e}");
                        worker(&model, &settings, &jobs);
                    }
                }
            },
            move |message| {
                let _ = crashed.send(Out::Crashed(message));
            },
        );
        let (status, worker) = match spawned {
            Ok(w) => (ArtStatus::Loading, Some(w)),
            Err(e) => (ArtStatus::Unavailable(e), None),
        };
        app.add_message::<GenerateArt>()
            .add_message::<ArtProgress>()
            .add_message::<ArtReady>()
            .add_message::<ArtFailed>()
            .insert_resource(status)
            .init_resource::<ArtDevice>()
            .init_resource::<KilnWallet>();
        if let Some(worker) = worker {
            app.insert_resource(ArtWorker {
                worker,
                out,
                in_flight: Vec::new(),
                sheet_atlas: None,
            })
            .add_systems(
                PreUpdate,
                (offer_device, receive_art)
                    .chain()
                    .in_set(KilnSystems::Receive),
            )
            .add_systems(PostUpdate, dispatch_art.in_set(KilnSystems::Dispatch));
        } else {
            app.add_systems(PostUpdate, refuse_art.in_set(KilnSystems::Dispatch));
        }
    }
}

/// What the worker needs besides its queue.
struct Settings {
    steps: Option<u32>,
    backend: ArtBackend,
    out: Sender<Out>,
}

/// Offers the renderer's GPU to the worker once, on the first frame (before any request, which
/// leaves in `PostUpdate`): the device is in the main world once Bevy's renderer has started.
#[cfg(feature = "gpu")]
fn offer_device(
    mut offered: Local<bool>,
    worker: Res<ArtWorker>,
    device: Option<Res<bevy::render::renderer::RenderDevice>>,
    queue: Option<Res<bevy::render::renderer::RenderQueue>>,
    info: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
) {
    if std::mem::replace(&mut *offered, true) {
        return;
    }
    let shared = match (device, queue, info) {
        (Some(device), Some(queue), Some(info)) => Some(SharedGpu {
            device: device.wgpu_device().clone(),
            queue: (**queue.0).clone(),
            // RenderAdapterInfo → WgpuWrapper → AdapterInfo.
            info: (***info).clone(),
        }),
        _ => None,
    };
    worker.worker.send(Job::Backend(shared));
}

#[cfg(not(feature = "gpu"))]
fn offer_device(mut offered: Local<bool>, worker: Res<ArtWorker>) {
    if !std::mem::replace(&mut *offered, true) {
        worker.worker.send(Job::Backend(None));
    }
}

/// The art worker: loads the model, chooses the backend when the first frame offers the
/// renderer's device, then paints jobs in order until the app goes away. A job that panics
/// fails alone; a GPU that fails hands over to the CPU, which paints the same picture.
fn worker(model: &std::path::Path, settings: &Settings, jobs: &Receiver<Job>) {
    let out = &settings.out;
    let mut loaded = ArtModel::load(model).map_err(|e| e.to_string());
    let _ = out.send(Out::Loaded(
        loaded
            .as_ref()
            .map(|m| m.id().to_string())
            .map_err(Clone::clone),
    ));
    for job in jobs.iter() {
        match job {
            Job::Backend(shared) => {
                if let Ok(m) = &mut loaded {
                    let device = choose_backend(m, settings.backend, shared);
                    let _ = out.send(Out::Device(device));
                }
            }
            Job::Paint(req) => {
                let result = match &mut loaded {
                    Ok(m) => paint_or_fall_back(m, &req, settings).map(Box::new),
                    Err(e) => Err(format!("the art model is unavailable: {e}")),
                };
                if out.send(Out::Done(req.requester, result)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Paints `req`; if the GPU fails, goes on on the CPU (telling the app) and paints it there.
fn paint_or_fall_back(
    model: &mut ArtModel,
    req: &GenerateArt,
    settings: &Settings,
) -> Result<GeneratedArt, String> {
    match catch(|| paint(model, req, settings.steps, &settings.out)) {
        Ok(Err(PaintError::Gpu(e))) => {
            warn!("the GPU failed, painting on the CPU from now on: {e}");
            model.use_cpu();
            let _ = settings.out.send(Out::Device(ArtDevice {
                backend: Some(model.backend()),
                ..ArtDevice::default()
            }));
            catch(|| paint(model, req, settings.steps, &settings.out))
                .map_err(|panic| format!("painting panicked: {panic}"))?
                .map_err(|e| e.to_string())
        }
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => Err(format!("painting panicked: {panic}")),
    }
}

/// Applies the plugin's backend choice, given the renderer's device if the app renders.
fn choose_backend(
    model: &mut ArtModel,
    choice: ArtBackend,
    shared: Option<SharedGpu>,
) -> ArtDevice {
    #[cfg(feature = "gpu")]
    if let Some(s) = shared {
        use kiln_nftgen::gpu::{GpuDevice, adapter_name, is_software_adapter};
        let wanted = match choice {
            ArtBackend::Gpu => true,
            ArtBackend::Auto => !is_software_adapter(&s.info),
            _ => false,
        };
        let adapter = adapter_name(&s.info);
        if wanted {
            let used = GpuDevice::from_wgpu(s.device, s.queue, &s.info)
                .and_then(|gpu| model.use_gpu(&gpu));
            match used {
                Ok(()) => {
                    info!("painting on the renderer's GPU: {adapter}");
                    return ArtDevice {
                        backend: Some(model.backend()),
                        adapter: Some(adapter),
                        shared_with_renderer: true,
                    };
                }
                Err(e) => warn!("cannot paint on the renderer's GPU ({adapter}): {e}"),
            }
        } else if choice == ArtBackend::Auto {
            // The app renders on a software rasterizer: there is no hardware GPU to find.
            info!("the renderer runs on a software rasterizer ({adapter}): painting on the CPU");
            model.use_cpu();
            return ArtDevice {
                backend: Some(model.backend()),
                ..ArtDevice::default()
            };
        }
    }
    #[cfg(not(feature = "gpu"))]
    let _ = shared;
    match model.select_backend(choice) {
        Ok(backend) => {
            #[cfg(feature = "gpu")]
            let adapter = model.gpu().map(|g| g.adapter().to_string());
            #[cfg(not(feature = "gpu"))]
            let adapter = None;
            if let Some(a) = &adapter {
                info!("painting on a headless GPU: {a}");
            }
            ArtDevice {
                backend: Some(backend),
                adapter,
                shared_with_renderer: false,
            }
        }
        Err(e) => {
            warn!("no GPU to paint on ({e}): painting on the CPU");
            model.use_cpu();
            ArtDevice {
                backend: Some(model.backend()),
                ..ArtDevice::default()
            }
        }
    }
}

/// Why a picture was not painted: the GPU (worth falling back from) or anything else.
enum PaintError {
    Gpu(kiln_nftgen::GpuError),
    Other(GenerateError),
}

impl std::fmt::Display for PaintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaintError::Gpu(e) => e.fmt(f),
            PaintError::Other(e) => e.fmt(f),
        }
    }
}

fn paint(
    model: &ArtModel,
    req: &GenerateArt,
    steps: Option<u32>,
    out: &Sender<Out>,
) -> Result<GeneratedArt, PaintError> {
    let mut request = GenerationRequest::new(req.prompt.clone(), req.seed);
    if let Some(s) = steps {
        request = request.steps(s);
    }
    match req.kind {
        ArtKind::Scene => {
            if let Some([w, h]) = model
                .sizes()
                .and_then(|sizes| sizes.iter().copied().find(|[w, h]| w > h))
            {
                request = request.size(w, h);
            }
        }
        ArtKind::Sheet => request = request.sheet(),
        ArtKind::Tile => request = request.tile(),
        ArtKind::Item => {}
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
        .map_err(|e| match e {
            GenerateError::Gpu(g) => PaintError::Gpu(g),
            other => PaintError::Other(other),
        })
}

fn dispatch_art(
    mut requests: MessageReader<GenerateArt>,
    mut worker: ResMut<ArtWorker>,
    mut failed: MessageWriter<ArtFailed>,
) {
    for req in requests.read() {
        if worker.worker.send(Job::Paint(req.clone())) {
            worker.in_flight.push(req.requester);
        } else {
            failed.write(ArtFailed {
                requester: req.requester,
                reason: "the art worker has stopped".into(),
            });
        }
    }
}

/// Without a worker every request fails at once.
fn refuse_art(
    mut requests: MessageReader<GenerateArt>,
    status: Res<ArtStatus>,
    mut failed: MessageWriter<ArtFailed>,
) {
    for req in requests.read() {
        let reason = match &*status {
            ArtStatus::Unavailable(e) => e.clone(),
            _ => "the art worker has stopped".into(),
        };
        failed.write(ArtFailed {
            requester: req.requester,
            reason,
        });
    }
}

fn receive_art(
    mut worker: ResMut<ArtWorker>,
    mut status: ResMut<ArtStatus>,
    mut device: ResMut<ArtDevice>,
    (mut images, mut atlases): (ResMut<Assets<Image>>, ResMut<Assets<TextureAtlasLayout>>),
    mut progress: MessageWriter<ArtProgress>,
    mut ready: MessageWriter<ArtReady>,
    mut failed: MessageWriter<ArtFailed>,
) {
    let received: Vec<Out> = worker.out.try_iter().collect();
    for out in received {
        if let Out::Done(requester, _) = &out
            && let Some(i) = worker.in_flight.iter().position(|e| e == requester)
        {
            worker.in_flight.remove(i);
        }
        match out {
            Out::Loaded(Ok(id)) => {
                info!("art model ready: {id}");
                *status = ArtStatus::Ready(id);
            }
            Out::Loaded(Err(e)) => {
                warn!("art model unavailable, art requests will fail: {e}");
                *status = ArtStatus::Unavailable(e);
            }
            Out::Device(d) => {
                *device = d;
            }
            Out::Crashed(message) => {
                let reason = format!("the art worker stopped: {message}");
                for requester in worker.in_flight.drain(..) {
                    failed.write(ArtFailed {
                        requester,
                        reason: reason.clone(),
                    });
                }
                *status = ArtStatus::Unavailable(reason);
            }
            Out::Progress(p) => {
                progress.write(p);
            }
            Out::Done(requester, Ok(art)) => {
                let image = images.add(to_image(&art));
                let atlas = ((art.width, art.height) == SheetLayout::SIZE).then(|| {
                    worker
                        .sheet_atlas
                        .get_or_insert_with(|| atlases.add(sheet_atlas_layout()))
                        .clone()
                });
                ready.write(ArtReady {
                    requester,
                    image,
                    record: art.record.clone(),
                    content_hash: art.content_hash,
                    art: Arc::new(*art),
                    atlas,
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

/// The texture-atlas layout of a Kiln character sheet ([`SheetLayout`]: 16×16 frames, 3
/// columns of walk frames, 4 rows of directions), the one [`ArtReady::atlas`] holds; for sheets
/// a game reads back from disk.
pub fn sheet_atlas_layout() -> TextureAtlasLayout {
    TextureAtlasLayout::from_grid(
        UVec2::splat(SheetLayout::FRAME),
        SheetLayout::COLUMNS,
        SheetLayout::ROWS,
        None,
        None,
    )
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
