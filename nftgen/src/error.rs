//! Typed errors of the art engine. Every message names what to fix: the file, the tensor, the field.

use std::path::PathBuf;

/// Loading a model failed: the path, the file layout, a config or a tensor is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Nothing exists at the given path.
    #[error("model not found at {path}")]
    NotFound {
        /// Path that was looked up.
        path: PathBuf,
    },
    /// No model was given and none was found where the default model is looked for (and this
    /// build embeds none: cargo feature `embedded-model`).
    #[error(
        "no art model: none at {}; set $KILN_ART_MODEL, put kiln-sprite-q.safetensors in the \
         game's assets/models/, or build kiln-nftgen with its `embedded-model` feature",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoDefaultModel {
        /// The places that were looked at, in order.
        searched: Vec<PathBuf>,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A Stable Diffusion directory lacks one of its component files.
    #[error("{path} is missing (expected a diffusers-layout Stable Diffusion directory)")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A weights file is not a valid safetensors file.
    #[error("{path} is not a valid safetensors file: {detail}")]
    NotSafetensors {
        /// File that failed.
        path: PathBuf,
        /// What the parser reported.
        detail: String,
    },
    /// A configuration (JSON file or safetensors metadata) is missing or invalid.
    #[error("bad model config in {path}: {detail}")]
    BadConfig {
        /// File holding the config.
        path: PathBuf,
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The weights lack a tensor the architecture needs.
    #[error("{path}: tensor `{tensor}` is missing")]
    MissingTensor {
        /// Weights file.
        path: PathBuf,
        /// Name of the missing tensor.
        tensor: String,
    },
    /// A tensor has the wrong shape for the configured architecture.
    #[error("{path}: tensor `{tensor}` has shape {actual:?}, the config needs {expected:?}")]
    TensorShape {
        /// Weights file.
        path: PathBuf,
        /// Name of the tensor.
        tensor: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape found in the file.
        actual: Vec<usize>,
    },
    /// A tokenizer file is invalid.
    #[error("bad tokenizer file {path}: {detail}")]
    Tokenizer {
        /// File that failed.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Any other error from the tensor backend while building the model.
    #[error("cannot build the model from {path}: {detail}")]
    Backend {
        /// Weights file or directory.
        path: PathBuf,
        /// Backend message.
        detail: String,
    },
}

/// A generation request is invalid for the model. Nothing was computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The prompt is empty or only whitespace.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt or negative prompt is longer than the recipe allows.
    #[error("the {which} is {len} bytes long; at most {max} are allowed")]
    TextTooLong {
        /// "prompt" or "negative prompt".
        which: &'static str,
        /// Length in bytes.
        len: usize,
        /// Limit in bytes.
        max: usize,
    },
    /// The step count is 0 or above what the model's noise schedule has.
    #[error("steps must be between 1 and {max}, got {steps}")]
    Steps {
        /// Requested steps.
        steps: u32,
        /// Largest allowed value.
        max: u32,
    },
    /// The guidance scale is not finite or out of range.
    #[error("guidance must be a finite number between 0 and {max}, got {value}")]
    Guidance {
        /// Requested guidance.
        value: f32,
        /// Largest allowed value.
        max: f32,
    },
    /// The model cannot paint at this size.
    #[error("size {width}x{height} is not supported by this model (supported: {supported})")]
    Size {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Human-readable list or rule of supported sizes.
        supported: String,
    },
    /// A record meant to be re-run names another model than the one loaded.
    #[error("the record was made with model {recorded} but {loaded} is loaded")]
    ModelMismatch {
        /// Model hash in the record.
        recorded: String,
        /// Hash of the loaded weights.
        loaded: String,
    },
    /// A record meant to be re-run uses a pipeline or format this engine does not implement.
    #[error("unsupported recipe: {detail}")]
    Unsupported {
        /// What is unsupported.
        detail: String,
    },
}

/// Generation stopped without an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The request was rejected before any work.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The progress callback asked to stop.
    #[error("generation cancelled after step {completed} of {total}")]
    Cancelled {
        /// Steps completed before the stop.
        completed: u32,
        /// Steps requested.
        total: u32,
    },
    /// The model produced NaN or infinite values (broken weights).
    #[error("the model produced non-finite values (NaN or infinity): the weights are broken")]
    NonFinite,
    /// The tensor backend failed.
    #[error("tensor backend error: {0}")]
    Backend(String),
    /// The GPU failed (device lost, out of memory, kernels refused); the model can go on with
    /// the CPU backend ([`crate::ArtModel::select_backend`]).
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl From<candle_core::Error> for GenerateError {
    fn from(e: candle_core::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// Reading, writing or parsing a Kiln PNG or record failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PngError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a PNG the decoder accepts.
    #[error("not a readable PNG: {0}")]
    Decode(String),
    /// Encoding failed.
    #[error("cannot encode PNG: {0}")]
    Encode(String),
    /// The PNG holds no `kiln` record.
    #[error("the PNG carries no `kiln` record (not made by Kiln, or its metadata was stripped)")]
    NoRecord,
    /// The PNG holds more than one `kiln` record or content hash: which one is meant is
    /// ambiguous, so none is believed.
    #[error("the PNG carries {count} `{keyword}` chunks; a Kiln PNG has exactly one")]
    Duplicate {
        /// The chunk keyword.
        keyword: &'static str,
        /// How many there are.
        count: usize,
    },
    /// The file or the image its header declares is larger than Kiln reads (checked before
    /// anything is allocated for it).
    #[error("{0}")]
    TooLarge(String),
    /// The embedded record is not valid.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A generation record (JSON or canonical bytes) is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The JSON does not parse as a record.
    #[error("invalid record JSON: {0}")]
    Json(String),
    /// The canonical bytes are malformed.
    #[error("invalid canonical record bytes at offset {offset}: {detail}")]
    Bytes {
        /// Byte offset where decoding failed.
        offset: usize,
        /// What was expected.
        detail: String,
    },
    /// The record's format version is newer than this engine.
    #[error("record format {found} is not supported (this engine reads format {supported})")]
    Version {
        /// Version found.
        found: u32,
        /// Version this engine reads.
        supported: u32,
    },
    /// A hex string (hash, address) is malformed.
    #[error("invalid {what}: {detail}")]
    Hex {
        /// Which field.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// What went wrong on the GPU. The CPU backend is always there to fall back to.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter (GPU or software rasterizer) could be opened.
    #[error(
        "no GPU adapter: {detail} (install a Vulkan driver, e.g. Mesa's `mesa-vulkan-drivers`, or use the CPU backend)"
    )]
    NoAdapter {
        /// What wgpu said.
        detail: String,
    },
    /// The adapter refused to open a device with the limits the kernels need.
    #[error("the GPU `{adapter}` could not open a device: {detail}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        detail: String,
    },
    /// The kernels did not compile or validate on this device.
    #[error("the art kernels do not compile on `{adapter}`: {detail}")]
    Kernels {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        detail: String,
    },
    /// The device ran out of memory.
    #[error("the GPU ran out of memory: {detail}")]
    OutOfMemory {
        /// What wgpu said.
        detail: String,
    },
    /// The device was lost (driver reset, removed GPU) or stopped answering.
    #[error("the GPU device was lost: {detail}")]
    DeviceLost {
        /// What wgpu said.
        detail: String,
    },
    /// The model cannot run on this backend (not a kiln-sprite-q model, or a size it lacks).
    #[error("{detail}")]
    Unsupported {
        /// What is missing.
        detail: String,
    },
}
