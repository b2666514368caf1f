//! One interface over both model families: load, validate a request, generate, re-run a record.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::device::{self, DevicePreference};
use crate::error::{GenerateError, GpuError, ModelError, RequestError};
#[cfg(feature = "sd")]
use crate::model::sd::{self, SdModel};
use crate::model::sprite::{self, PromptEncoder, SpriteConfig, SpriteNet};
use crate::model::sprite_q::gemm::Kernel;
use crate::model::sprite_q::{PIPELINE_2, SpriteQConfig, SpriteQNet};
use crate::provenance::record::{
    Backend, ContentHash, CreatorAddress, ENGINE_VERSION, GenerationRecord, ModelHash, ModelRef,
    PIPELINE, RECORD_FORMAT, RECORDED_ENGINES, RecipeHash, SchedulerKind,
};
use crate::sampling::noise::NoiseRng;
use crate::sampling::schedule::timesteps;
use crate::sampling::schedule::{NoiseSchedule, Prediction, Stepper};

/// Longest prompt or negative prompt, in bytes.
pub const MAX_PROMPT_BYTES: usize = 1000;
/// Largest step count any request may ask for.
pub const MAX_STEPS: u32 = 1000;
/// Largest guidance scale.
pub const MAX_GUIDANCE: f32 = 50.0;

/// Where `kiln-pipeline/2` models paint. Every choice paints the same bits; only the speed differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ArtBackend {
    /// A real GPU when one opens, else the CPU (with a log line saying why). A software
    /// rasterizer is passed over: the CPU kernels are faster than it.
    #[default]
    Auto,
    /// The CPU's integer kernels (SIMD chosen at run time).
    Cpu,
    /// The GPU through wgpu, a software rasterizer included; an error when none opens (needs
    /// the `gpu` feature).
    Gpu,
}

impl ArtBackend {
    /// `auto`, `cpu` or `gpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtBackend::Auto => "auto",
            ArtBackend::Cpu => "cpu",
            ArtBackend::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for ArtBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ArtBackend::Auto),
            "cpu" => Ok(ArtBackend::Cpu),
            "gpu" => Ok(ArtBackend::Gpu),
            other => Err(format!("unknown backend `{other}` (auto, cpu or gpu)")),
        }
    }
}

/// The two model families behind [`ArtModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelFamily {
    /// Kiln's compact pixel-space transformer (one safetensors file), f32 (`kiln-pipeline/1`).
    KilnSprite,
    /// The integer-only kiln-sprite (`kiln-pipeline/2`): the same pixels on every machine.
    KilnSpriteQ,
    /// A Stable Diffusion family checkpoint (diffusers directory).
    StableDiffusion,
}

/// The layout of a character sheet as kiln-sprite v2 paints it (one recipe, one picture, one
/// token): [`SheetLayout::ROWS`] directions top to bottom (down, left, right, up) ×
/// [`SheetLayout::COLUMNS`] walk frames left to right (standing, left foot forward, right foot
/// forward) of [`SheetLayout::FRAME`]-pixel squares. It serializes as the texture-atlas
/// description `nftgen generate --sheet` writes beside the PNG; in Bevy it is
/// `TextureAtlasLayout::from_grid(UVec2::splat(FRAME), COLUMNS, ROWS, None, None)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SheetLayout {
    /// Side of one frame in pixels.
    pub frame: u32,
    /// Frames per row.
    pub columns: u32,
    /// Rows (directions).
    pub rows: u32,
    /// What each row shows, top to bottom.
    pub directions: [&'static str; 4],
    /// What each column shows, left to right.
    pub frames: [&'static str; 3],
}

impl SheetLayout {
    /// Side of one frame in pixels.
    pub const FRAME: u32 = 16;
    /// Frames per row.
    pub const COLUMNS: u32 = 3;
    /// Rows: one per direction.
    pub const ROWS: u32 = 4;
    /// (width, height) of a sheet.
    pub const SIZE: (u32, u32) = (Self::FRAME * Self::COLUMNS, Self::FRAME * Self::ROWS);
    /// (width, height) of a seamless ground tile.
    pub const TILE_SIZE: (u32, u32) = (16, 16);

    /// The layout of every sheet.
    pub fn get() -> Self {
        SheetLayout {
            frame: Self::FRAME,
            columns: Self::COLUMNS,
            rows: Self::ROWS,
            directions: ["down", "left", "right", "up"],
            frames: ["standing", "left foot forward", "right foot forward"],
        }
    }
}

/// What to paint. Build with [`GenerationRequest::new`] and the setters; unset values take the
/// model's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The prompt.
    pub prompt: String,
    /// The negative prompt (what to steer away from); empty for none.
    pub negative_prompt: String,
    /// Seed of the noise stream.
    pub seed: u64,
    /// Denoising steps (model default when `None`).
    pub steps: Option<u32>,
    /// Guidance scale (model default when `None`).
    pub guidance: Option<f32>,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// (width, height) in pixels (model default when `None`).
    pub size: Option<(u32, u32)>,
    /// Creator to attribute the recipe to.
    pub creator: Option<CreatorAddress>,
}

impl GenerationRequest {
    /// A request with the model's defaults and the DDIM scheduler.
    pub fn new(prompt: impl Into<String>, seed: u64) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            seed,
            steps: None,
            guidance: None,
            scheduler: SchedulerKind::Ddim,
            size: None,
            creator: None,
        }
    }
    /// Sets the step count.
    pub fn steps(mut self, steps: u32) -> Self {
        self.steps = Some(steps);
        self
    }
    /// Sets the guidance scale.
    pub fn guidance(mut self, guidance: f32) -> Self {
        self.guidance = Some(guidance);
        self
    }
    /// Sets the scheduler.
    pub fn scheduler(mut self, scheduler: SchedulerKind) -> Self {
        self.scheduler = scheduler;
        self
    }
    /// Sets the size.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }
    /// Paints a character sheet ([`SheetLayout`]): "a blacksmith in red with brown hair".
    pub fn sheet(self) -> Self {
        self.size(SheetLayout::SIZE.0, SheetLayout::SIZE.1)
    }
    /// Paints a seamless ground tile ([`SheetLayout::TILE_SIZE`]): "a cobblestone tile".
    pub fn tile(self) -> Self {
        self.size(SheetLayout::TILE_SIZE.0, SheetLayout::TILE_SIZE.1)
    }
    /// Sets the negative prompt.
    pub fn negative(mut self, negative: impl Into<String>) -> Self {
        self.negative_prompt = negative.into();
        self
    }
    /// Attributes the recipe to a creator.
    pub fn creator(mut self, creator: CreatorAddress) -> Self {
        self.creator = Some(creator);
        self
    }
}

/// Progress of a running generation, reported after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps done.
    pub step: u32,
    /// Steps in all.
    pub total: u32,
}

/// What the progress callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now; the generation returns [`GenerateError::Cancelled`].
    Cancel,
}

/// A generated image with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedArt {
    /// The recipe that produced it.
    pub record: GenerationRecord,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 pixels, rows top to bottom (alpha always 255).
    pub rgba: Vec<u8>,
    /// keccak256 of the pixels.
    pub content_hash: ContentHash,
    /// keccak256 of the record's canonical bytes.
    pub recipe_hash: RecipeHash,
}

enum Inner {
    Sprite {
        net: Box<SpriteNet>,
        encoder: PromptEncoder,
    },
    SpriteQ(Box<SpriteQNet>),
    #[cfg(feature = "sd")]
    Sd(Box<SdModel>),
}

/// A loaded art model of either family.
pub struct ArtModel {
    inner: Inner,
    id: String,
    hash: ModelHash,
    path: PathBuf,
    device: Device,
    backend: Backend,
    /// The integer network's weights on a GPU, when it paints there.
    #[cfg(feature = "gpu")]
    gpu: Option<std::sync::Arc<crate::gpu::GpuSpriteQ>>,
}

impl std::fmt::Debug for ArtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtModel")
            .field("id", &self.id)
            .field("family", &self.family())
            .field("sha256", &self.hash)
            .field("path", &self.path)
            .field("backend", &self.backend)
            .finish()
    }
}

impl ArtModel {
    /// Loads a model on the CPU: a kiln-sprite `.safetensors` file or a diffusers directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        Self::load_on(path, DevicePreference::Cpu)
    }

    /// Loads a model on the preferred device (falling back to the CPU).
    pub fn load_on(path: impl AsRef<Path>, pref: DevicePreference) -> Result<Self, ModelError> {
        let path = path.as_ref();
        if crate::model::shipped::is_embedded(path) {
            if !cfg!(feature = "embedded-model") {
                return Err(ModelError::NoDefaultModel {
                    searched: crate::model_search_paths(),
                });
            }
            let bytes =
                crate::model::shipped::model_bytes(path).map_err(|source| ModelError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            let (device, backend) = device::select(pref);
            return Self::sprite_from_bytes(path, &bytes, device, backend);
        }
        if !path.exists() {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let (device, backend) = device::select(pref);
        #[cfg(not(feature = "sd"))]
        if path.is_dir() {
            return Err(ModelError::BadConfig {
                path: path.to_path_buf(),
                detail: "a folder is a Stable Diffusion checkpoint, which this build cannot \
                         load: build kiln-nftgen with its `sd` feature"
                    .into(),
            });
        }
        #[cfg(feature = "sd")]
        if path.is_dir() {
            if !sd::is_sd_dir(path) {
                return Err(ModelError::MissingFile {
                    path: path.join("unet/config.json"),
                });
            }
            tracing::info!(path = %path.display(), "hashing Stable Diffusion checkpoint");
            let hash = sd::model_hash(path)?;
            let model = SdModel::load(path, &device)?;
            return Ok(Self {
                id: model.id.clone(),
                inner: Inner::Sd(Box::new(model)),
                hash,
                path: path.to_path_buf(),
                device,
                backend,
                #[cfg(feature = "gpu")]
                gpu: None,
            });
        }
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::sprite_from_bytes(path, &bytes, device, backend)
    }

    fn sprite_from_bytes(
        path: &Path,
        bytes: &[u8],
        device: Device,
        backend: Backend,
    ) -> Result<Self, ModelError> {
        let bad = |detail: String| ModelError::BadConfig {
            path: path.to_path_buf(),
            detail,
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
            ModelError::NotSafetensors {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        if let Some(cfg) = meta.metadata().as_ref().and_then(SpriteQNet::config_of) {
            let cfg = cfg.map_err(bad)?;
            let net = SpriteQNet::from_bytes(path, bytes, cfg)?;
            return Ok(Self {
                id: net.config().name.clone(),
                inner: Inner::SpriteQ(Box::new(net)),
                hash: ModelHash::of_file_bytes(bytes),
                path: path.to_path_buf(),
                device: Device::Cpu,
                backend: Backend::Cpu,
                #[cfg(feature = "gpu")]
                gpu: None,
            });
        }
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(sprite::CONFIG_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no `{}` metadata: not a kiln-sprite file (Stable Diffusion models are directories)",
                    sprite::CONFIG_KEY
                ))
            })?;
        let cfg: SpriteConfig = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        cfg.validate().map_err(bad)?;
        let tensors = candle_core::safetensors::load_buffer(bytes, &device).map_err(|e| {
            ModelError::NotSafetensors {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let encoder = PromptEncoder::new(&cfg.text);
        let net = SpriteNet::new(cfg, vb).map_err(|e| crate::model::build_error(path, e))?;
        let hash = ModelHash::of_file_bytes(bytes);
        Ok(Self {
            id: net.config().name.clone(),
            inner: Inner::Sprite {
                net: Box::new(net),
                encoder,
            },
            hash,
            path: path.to_path_buf(),
            device,
            backend,
            #[cfg(feature = "gpu")]
            gpu: None,
        })
    }

    /// Model id as recorded.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// SHA-256 of the weights.
    pub fn hash(&self) -> ModelHash {
        self.hash
    }
    /// Which family the model belongs to.
    pub fn family(&self) -> ModelFamily {
        match self.inner {
            Inner::Sprite { .. } => ModelFamily::KilnSprite,
            Inner::SpriteQ(_) => ModelFamily::KilnSpriteQ,
            #[cfg(feature = "sd")]
            Inner::Sd(_) => ModelFamily::StableDiffusion,
        }
    }
    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Backend it runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Chooses where a `kiln-pipeline/2` model paints and returns the backend it now runs on.
    /// `Auto` opens a real GPU (not a software rasterizer) and falls back to the CPU with a log
    /// line; `Gpu` opens any adapter (lavapipe too) and reports why none opened. Other families
    /// keep the device they were loaded on (`Gpu` is an error).
    pub fn select_backend(&mut self, choice: ArtBackend) -> Result<Backend, GpuError> {
        match choice {
            ArtBackend::Cpu => {
                self.use_cpu();
                Ok(self.backend)
            }
            ArtBackend::Auto if self.integer_net().is_err() => Ok(self.backend),
            ArtBackend::Auto => match self.open_gpu(false) {
                Ok(b) => Ok(b),
                Err(reason) => {
                    tracing::info!(%reason, "no usable GPU: painting on the CPU");
                    self.use_cpu();
                    Ok(self.backend)
                }
            },
            ArtBackend::Gpu => self.open_gpu(true),
        }
    }

    #[cfg(feature = "gpu")]
    fn open_gpu(&mut self, allow_software: bool) -> Result<Backend, GpuError> {
        // Refused before any device is opened.
        self.integer_net()?;
        let gpu = if allow_software {
            crate::gpu::GpuDevice::open_headless()?
        } else {
            crate::gpu::GpuDevice::open_hardware()?
        };
        self.use_gpu(&gpu)?;
        Ok(self.backend)
    }

    #[cfg(not(feature = "gpu"))]
    fn open_gpu(&mut self, _allow_software: bool) -> Result<Backend, GpuError> {
        self.integer_net()?;
        Err(GpuError::Unsupported {
            detail: "kiln-nftgen was built without its `gpu` feature".into(),
        })
    }

    /// [`ArtModel::sprite_q_net`], or why this model cannot take the GPU backend.
    fn integer_net(&self) -> Result<&SpriteQNet, GpuError> {
        self.sprite_q_net().ok_or_else(|| GpuError::Unsupported {
            detail: format!(
                "`{}` runs {}; the GPU backend runs `{PIPELINE_2}` models (kiln-sprite-q)",
                self.id,
                self.pipeline()
            ),
        })
    }

    /// Paints on `gpu` from now on (a `kiln-pipeline/2` model): uploads the weights once.
    /// Records made afterwards name the `wgpu` backend; the pixels are the CPU's.
    #[cfg(feature = "gpu")]
    pub fn use_gpu(&mut self, gpu: &crate::gpu::GpuDevice) -> Result<(), GpuError> {
        let uploaded = crate::gpu::GpuSpriteQ::upload(gpu, self.integer_net()?)?;
        self.gpu = Some(std::sync::Arc::new(uploaded));
        self.backend = Backend::Wgpu;
        Ok(())
    }

    /// Paints on the CPU from now on (a no-op for models loaded on a candle device).
    pub fn use_cpu(&mut self) {
        if self.integer_net().is_ok() {
            #[cfg(feature = "gpu")]
            {
                self.gpu = None;
            }
            self.backend = Backend::Cpu;
        }
    }

    /// The GPU the model paints on, if any.
    #[cfg(feature = "gpu")]
    pub fn gpu(&self) -> Option<&crate::gpu::GpuDevice> {
        self.gpu.as_deref().map(|g| g.device())
    }
    /// The kiln-sprite config, for f32 kiln-sprite models.
    pub fn sprite_config(&self) -> Option<&SpriteConfig> {
        match &self.inner {
            Inner::Sprite { net, .. } => Some(net.config()),
            _ => None,
        }
    }

    /// The kiln-sprite-q config, for integer kiln-sprite models.
    pub fn sprite_q_config(&self) -> Option<&SpriteQConfig> {
        match &self.inner {
            Inner::SpriteQ(net) => Some(net.config()),
            _ => None,
        }
    }

    /// The integer network, for kiln-sprite-q models (kernel tests, benchmarks, other backends).
    pub fn sprite_q_net(&self) -> Option<&SpriteQNet> {
        match &self.inner {
            Inner::SpriteQ(net) => Some(net),
            _ => None,
        }
    }

    /// The pipeline this model paints with ([`PIPELINE`] or [`PIPELINE_2`]).
    pub fn pipeline(&self) -> &'static str {
        match self.inner {
            Inner::SpriteQ(_) => PIPELINE_2,
            _ => PIPELINE,
        }
    }

    /// The image sizes (width, height) this model paints; `None` for Stable Diffusion, which
    /// paints any multiple of its latent unit.
    pub fn sizes(&self) -> Option<&[[u32; 2]]> {
        match &self.inner {
            Inner::Sprite { net, .. } => Some(&net.config().sizes),
            Inner::SpriteQ(net) => Some(&net.config().sizes),
            #[cfg(feature = "sd")]
            Inner::Sd(_) => None,
        }
    }

    /// Size used when a request sets none.
    pub fn default_size(&self) -> (u32, u32) {
        match (&self.inner, self.sizes()) {
            #[cfg(feature = "sd")]
            (Inner::Sd(m), _) => (m.default_size, m.default_size),
            (_, Some([[w, h], ..])) => (*w, *h),
            (_, _) => unreachable!("kiln-sprite configs validate at least one size"),
        }
    }
    /// Steps used when a request sets none.
    pub fn default_steps(&self) -> u32 {
        match &self.inner {
            Inner::Sprite { net, .. } => net.config().default_steps,
            Inner::SpriteQ(net) => net.config().default_steps,
            #[cfg(feature = "sd")]
            Inner::Sd(_) => 25,
        }
    }
    /// Guidance used when a request sets none.
    pub fn default_guidance(&self) -> f32 {
        match &self.inner {
            Inner::Sprite { net, .. } => net.config().default_guidance,
            Inner::SpriteQ(net) => net.config().default_guidance,
            #[cfg(feature = "sd")]
            Inner::Sd(_) => 7.5,
        }
    }

    fn schedule(&self) -> (&NoiseSchedule, Prediction) {
        match &self.inner {
            Inner::Sprite { net, .. } => (&net.config().schedule, net.config().prediction),
            #[cfg(feature = "sd")]
            Inner::Sd(m) => (&m.schedule, m.prediction),
            Inner::SpriteQ(_) => unreachable!("kiln-sprite-q has its own integer sampler"),
        }
    }

    /// Training timesteps T of the model's noise schedule.
    fn train_steps(&self) -> usize {
        match &self.inner {
            Inner::SpriteQ(net) => net.config().train_steps,
            _ => self.schedule().0.train_steps,
        }
    }

    /// Whether the model paints at this size; the error lists what it supports.
    pub fn check_size(&self, width: u32, height: u32) -> Result<(), RequestError> {
        let err = |supported: String| RequestError::Size {
            width,
            height,
            supported,
        };
        match &self.inner {
            Inner::Sprite { .. } | Inner::SpriteQ(_) => {
                let sizes = self.sizes().unwrap_or_default();
                if sizes.contains(&[width, height]) {
                    Ok(())
                } else {
                    Err(err(sizes
                        .iter()
                        .map(|[w, h]| format!("{w}x{h}"))
                        .collect::<Vec<_>>()
                        .join(", ")))
                }
            }
            #[cfg(feature = "sd")]
            Inner::Sd(m) => {
                let unit = (m.vae_factor * m.unet_factor) as u32;
                let ok = |v: u32| (unit..=2048).contains(&v) && v.is_multiple_of(unit);
                if ok(width) && ok(height) {
                    Ok(())
                } else {
                    Err(err(format!("multiples of {unit} from {unit} to 2048")))
                }
            }
        }
    }

    /// Validates a request against this model and returns the record it would produce.
    pub fn record_for(&self, req: &GenerationRequest) -> Result<GenerationRecord, RequestError> {
        let (width, height) = req.size.unwrap_or_else(|| self.default_size());
        let record = GenerationRecord {
            format: RECORD_FORMAT,
            model: ModelRef {
                id: self.id.clone(),
                sha256: self.hash,
            },
            prompt: req.prompt.clone(),
            negative_prompt: req.negative_prompt.clone(),
            seed: req.seed,
            scheduler: req.scheduler,
            steps: req.steps.unwrap_or_else(|| self.default_steps()),
            // `+ 0.0` writes a guidance of -0.0 as 0.0: one value, one spelling.
            guidance: req.guidance.unwrap_or_else(|| self.default_guidance()) + 0.0,
            width,
            height,
            pipeline: self.pipeline().into(),
            engine: ENGINE_VERSION.into(),
            backend: self.backend,
            creator: req.creator,
        };
        self.check_record(&record)?;
        Ok(record)
    }

    fn check_record(&self, r: &GenerationRecord) -> Result<(), RequestError> {
        if r.prompt.trim().is_empty() {
            return Err(RequestError::EmptyPrompt);
        }
        for (which, text) in [
            ("prompt", &r.prompt),
            ("negative prompt", &r.negative_prompt),
        ] {
            if text.len() > MAX_PROMPT_BYTES {
                return Err(RequestError::TextTooLong {
                    which,
                    len: text.len(),
                    max: MAX_PROMPT_BYTES,
                });
            }
        }
        let max_steps = MAX_STEPS.min(self.train_steps() as u32);
        if r.steps == 0 || r.steps > max_steps {
            return Err(RequestError::Steps {
                steps: r.steps,
                max: max_steps,
            });
        }
        if !r.guidance.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&r.guidance) {
            return Err(RequestError::Guidance {
                value: r.guidance,
                max: MAX_GUIDANCE,
            });
        }
        if matches!(self.inner, Inner::SpriteQ(_)) && r.scheduler == SchedulerKind::EulerAncestral {
            return Err(RequestError::Unsupported {
                detail: format!(
                    "scheduler `euler_a` is not part of `{PIPELINE_2}`; use `ddim` or `euler`"
                ),
            });
        }
        self.check_size(r.width, r.height)
    }

    /// Paints the request. `on_step` runs after every step; returning [`Control::Cancel`] stops
    /// the generation between steps.
    pub fn generate(
        &self,
        req: &GenerationRequest,
        on_step: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedArt, GenerateError> {
        let record = self.record_for(req)?;
        self.run(record, on_step)
    }

    /// Re-runs a record (e.g. to verify an image). The record must name this model's weights and
    /// a pipeline this engine implements.
    pub fn regenerate(
        &self,
        record: &GenerationRecord,
        on_step: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedArt, GenerateError> {
        if record.model.sha256 != self.hash {
            return Err(RequestError::ModelMismatch {
                recorded: record.model.sha256.to_string(),
                loaded: self.hash.to_string(),
            }
            .into());
        }
        if record.format != RECORD_FORMAT || record.pipeline != self.pipeline() {
            return Err(RequestError::Unsupported {
                detail: format!(
                    "record format {} with pipeline `{}` (this model runs format {RECORD_FORMAT}, `{}`)",
                    record.format,
                    record.pipeline,
                    self.pipeline()
                ),
            }
            .into());
        }
        self.check_record(record)?;
        self.check_rerun(record)?;
        self.run(record.clone(), on_step)
    }

    /// The fields a re-run must find as this engine writes them, though they do not change the
    /// pixels: an edited engine, model id or backend (or a guidance of `-0.0`) would give the
    /// same picture another token id, so such a record is refused rather than reproduced.
    fn check_rerun(&self, r: &GenerationRecord) -> Result<(), RequestError> {
        let unsupported = |detail: String| Err(RequestError::Unsupported { detail });
        if !RECORDED_ENGINES.contains(&r.engine.as_str()) {
            return unsupported(format!(
                "engine `{}` is not one that Kiln records (known: {})",
                crate::provenance::record::printable(&r.engine),
                RECORDED_ENGINES.join(", ")
            ));
        }
        if r.model.id != self.id {
            return unsupported(format!(
                "the recipe names model id `{}`, but the weights with its hash are `{}`",
                crate::provenance::record::printable(&r.model.id),
                self.id
            ));
        }
        let backend_ok = match &self.inner {
            Inner::SpriteQ(_) => matches!(r.backend, Backend::Cpu | Backend::Wgpu),
            _ => r.backend != Backend::Wgpu,
        };
        if !backend_ok {
            return unsupported(format!(
                "backend `{}` does not run `{}`",
                r.backend, r.pipeline
            ));
        }
        if r.guidance.is_sign_negative() {
            return unsupported(format!(
                "guidance {:?} is written with a minus sign",
                r.guidance
            ));
        }
        Ok(())
    }

    fn run(
        &self,
        record: GenerationRecord,
        on_step: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedArt, GenerateError> {
        if let Inner::SpriteQ(net) = &self.inner {
            #[cfg(feature = "gpu")]
            if let Some(gpu) = &self.gpu {
                return run_integer(net, Some(gpu), record, on_step);
            }
            return run_integer(net, None, record, on_step);
        }
        let dev = &self.device;
        let (schedule, prediction) = self.schedule();
        let steps = record.steps as usize;
        let stepper = Stepper::new(record.scheduler, schedule, prediction, steps);
        let (w, h) = (record.width as usize, record.height as usize);
        let shape = match &self.inner {
            Inner::Sprite { net, .. } => (1, net.config().channels, h, w),
            #[cfg(feature = "sd")]
            Inner::Sd(m) => (1, m.latent_channels, h / m.vae_factor, w / m.vae_factor),
            Inner::SpriteQ(_) => unreachable!("handled above"),
        };
        let mut rng = NoiseRng::new(record.seed);
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut x =
            Tensor::from_vec(rng.normals(n), shape, dev)?.affine(stepper.init_scale(), 0.0)?;
        // Conditioning for the fixed batch layout: row 0 = negative prompt, row 1 = prompt.
        let cond = match &self.inner {
            Inner::Sprite { encoder, .. } => {
                let mut ids = encoder.encode(&record.negative_prompt);
                ids.extend(encoder.encode(&record.prompt));
                let len = ids.len() / 2;
                Tensor::from_vec(ids, (2, len), dev)?
            }
            #[cfg(feature = "sd")]
            Inner::Sd(m) => m.encode_pair(&record.negative_prompt, &record.prompt, dev)?,
            Inner::SpriteQ(_) => unreachable!("handled above"),
        };
        let g = record.guidance as f64;
        for (i, &t) in stepper.timesteps().iter().enumerate() {
            let x_in = x.affine(stepper.input_scale(i), 0.0)?;
            let batch = Tensor::cat(&[&x_in, &x_in], 0)?;
            let out = match &self.inner {
                Inner::Sprite { net, .. } => net.forward(&batch, &[t as f64; 2], &cond)?,
                #[cfg(feature = "sd")]
                Inner::Sd(m) => m.predict(&batch, t as f64, &cond)?,
                Inner::SpriteQ(_) => unreachable!("handled above"),
            };
            let uncond = out.narrow(0, 0, 1)?;
            let positive = out.narrow(0, 1, 1)?;
            let guided = (&uncond + ((&positive - &uncond)? * g)?)?;
            x = stepper.step(i, &x, &guided, &mut rng)?;
            // Stop at the first broken step rather than painting NaN for the remaining ones.
            if !x
                .sum_all()?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?
                .is_finite()
            {
                return Err(GenerateError::NonFinite);
            }
            report_step(on_step, i, record.steps)?;
        }
        let image = match &self.inner {
            #[cfg(feature = "sd")]
            Inner::Sd(m) => m.decode(&x)?,
            _ => x,
        };
        let rgba = to_rgba8(&image)?;
        let content_hash = ContentHash::of_rgba8(record.width, record.height, &rgba);
        Ok(GeneratedArt {
            recipe_hash: record.recipe_hash(),
            width: record.width,
            height: record.height,
            record,
            rgba,
            content_hash,
        })
    }
}

/// Tells the progress callback that step `i` (0-based) of `total` is done; a cancel ends the
/// generation.
fn report_step(
    on_step: &mut dyn FnMut(Progress) -> Control,
    i: usize,
    total: u32,
) -> Result<(), GenerateError> {
    let progress = Progress {
        step: i as u32 + 1,
        total,
    };
    if on_step(progress) == Control::Cancel {
        return Err(GenerateError::Cancelled {
            completed: progress.step,
            total,
        });
    }
    Ok(())
}

/// The GPU a `kiln-pipeline/2` record may run on.
#[cfg(feature = "gpu")]
type IntegerGpu<'a> = Option<&'a crate::gpu::GpuSpriteQ>;
#[cfg(not(feature = "gpu"))]
type IntegerGpu<'a> = Option<&'a std::convert::Infallible>;

/// Runs a `kiln-pipeline/2` record on the integer network (`RECIPE.md` §9.7), on the GPU when
/// one is given, else on the CPU: the same arithmetic, the same bits.
fn run_integer(
    net: &SpriteQNet,
    gpu: IntegerGpu<'_>,
    record: GenerationRecord,
    on_step: &mut dyn FnMut(Progress) -> Control,
) -> Result<GeneratedArt, GenerateError> {
    use crate::sampling::noise_q;
    let (w, h) = (record.width as usize, record.height as usize);
    let n = net.config().channels * w * h;
    let key = noise_q::noise_key(record.seed, record.creator.as_ref());
    let negative = net.prompt_features(&record.negative_prompt);
    let positive = net.prompt_features(&record.prompt);
    let g = noise_q::guidance_q16(record.guidance);
    let ts = timesteps(net.config().train_steps, record.steps as usize);
    // Per step: the timestep and the update's coefficients A, B (Q30).
    let steps: Vec<(usize, i32, i32)> = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let next = ts
                .get(i + 1)
                .map(|&tn| net.schedule_at(tn))
                .unwrap_or((1 << 30, 0));
            let (a, b) = noise_q::step_coefficients(net.schedule_at(t), next);
            (t, a, b)
        })
        .collect();
    let mut rgba = match gpu {
        #[cfg(feature = "gpu")]
        Some(gpu) => {
            let mut stopped = None;
            let job = crate::gpu::SampleJob {
                width: w,
                height: h,
                key,
                prompts: [&negative, &positive],
                guidance_q16: g,
                steps: &steps,
            };
            let out = gpu.sample(
                net,
                &job,
                &mut |i| match report_step(on_step, i, record.steps) {
                    Ok(()) => true,
                    Err(e) => {
                        stopped = Some(e);
                        false
                    }
                },
            )?;
            match (out, stopped) {
                (Some(x), _) => x,
                (None, Some(e)) => return Err(e),
                (None, None) => unreachable!("the GPU run stops only when asked"),
            }
        }
        #[cfg(not(feature = "gpu"))]
        Some(never) => match *never {},
        None => {
            let x0 = noise_q::initial_noise(&key, n);
            let x = sample_on_cpu(net, x0, w, h, [&negative, &positive], g, &steps, &mut |i| {
                report_step(on_step, i, record.steps)
            })?;
            let plane = w * h;
            let mut rgba = vec![255u8; plane * 4];
            for (p, px) in rgba.chunks_exact_mut(4).enumerate() {
                for ch in 0..3 {
                    px[ch] = noise_q::to_u8(x[ch * plane + p]);
                }
            }
            if let Some(palette) = &net.config().palette {
                crate::model::sprite_q::ops::snap_to_palette(palette, &mut rgba);
            }
            rgba
        }
    };
    // The colour limit (§9.7) runs on the snapped pixels, here for both backends: a few
    // thousand pixels, one pass to count and one to replace.
    if let (Some(palette), Some(limit)) = (&net.config().palette, net.config().colour_limit(w, h)) {
        crate::model::sprite_q::ops::limit_colours(palette, limit, &mut rgba);
    }
    let content_hash = ContentHash::of_rgba8(record.width, record.height, &rgba);
    Ok(GeneratedArt {
        recipe_hash: record.recipe_hash(),
        width: record.width,
        height: record.height,
        record,
        rgba,
        content_hash,
    })
}

/// The sampler of §9.7 on the CPU's kernels.
#[allow(clippy::too_many_arguments)]
fn sample_on_cpu(
    net: &SpriteQNet,
    mut x: Vec<i32>,
    w: usize,
    h: usize,
    prompts: [&[i32]; 2],
    g: i32,
    steps: &[(usize, i32, i32)],
    after_step: &mut dyn FnMut(usize) -> Result<(), GenerateError>,
) -> Result<Vec<i32>, GenerateError> {
    use crate::model::sprite_q::ops::{SAMPLE_MAX, mul_shift};
    let kernel = Kernel::active();
    let wide = |v: i32| v.clamp(-(1 << 29), 1 << 29);
    for (i, &(t, a, b)) in steps.iter().enumerate() {
        let [u, c] = net.forward(kernel, &x, w, h, t, prompts);
        for ((xv, &uv), &cv) in x.iter_mut().zip(&u).zip(&c) {
            let o = (uv + wide(mul_shift(cv - uv, g, 16))).clamp(-SAMPLE_MAX, SAMPLE_MAX);
            *xv = (wide(mul_shift(*xv, a, 30)) + wide(mul_shift(o, b, 30)))
                .clamp(-SAMPLE_MAX, SAMPLE_MAX);
        }
        after_step(i)?;
    }
    Ok(x)
}

/// [1, 3, H, W] in [-1, 1] → RGBA8: `round((clamp(v, -1, 1) + 1) · 127.5)` in binary32, alpha 255.
fn to_rgba8(image: &Tensor) -> Result<Vec<u8>, GenerateError> {
    let (_, c, h, w) = image.dims4()?;
    let chw = image
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if chw.iter().any(|v| !v.is_finite()) {
        return Err(GenerateError::NonFinite);
    }
    let mut rgba = vec![255u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c.min(3) {
                let v = chw[ch * h * w + y * w + x];
                rgba[(y * w + x) * 4 + ch] = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
            }
        }
    }
    Ok(rgba)
}
