//! # kiln-nftgen
//!
//! Kiln's art engine: a deterministic diffusion pipeline that paints scene and item art from a
//! prompt and a seed, and the provenance record that lets anyone reproduce an image bit for bit.
//!
//! - [`ArtModel`] loads either family behind one interface: Kiln's compact **kiln-sprite**
//!   transformer (one `.safetensors` file with its config inside) or (cargo feature `sd`) a
//!   **Stable Diffusion** checkpoint in the diffusers layout (SD 1.x, 2.x, SD-Turbo) through
//!   candle-transformers.
//! - [`GenerationRequest`] → [`ArtModel::generate`] → [`GeneratedArt`]: RGBA8 pixels, the
//!   [`GenerationRecord`], its [`RecipeHash`] and the pixels' [`ContentHash`]. A progress callback
//!   runs after every step and can cancel.
//! - [`png_io`] writes PNG files with the record embedded (and reads them back, checking the
//!   pixels against the stored hash).
//! - [`chain`] (cargo feature `chain`, on by default) mints art as ERC-721 / ERC-7007 tokens of
//!   the `KilnProvenance` contract — on an embedded local anvil chain or any EVM JSON-RPC — with
//!   a crash-safe mint journal, and verifies tokens by re-running their recipe; [`store`] keeps
//!   the PNGs and token metadata by content hash, with IPFS CIDs.
//! - The default model, integer kiln-sprite-q, is embedded in this crate (feature
//!   `embedded-model`); [`default_model_path`] says where else it is looked for at run time
//!   (`$KILN_ART_MODEL`, the game's `assets/models/`). The kiln-sprite weights were trained by [`train`] on the procedural, captioned pixel art of
//!   [`data`]; [`eval`] holds the quality gates they pass.
//!
//! On the CPU the same record gives the same pixels and the same PNG bytes, across runs,
//! processes and thread counts: the batch layout is fixed (negative prompt row, prompt row,
//! always), and the noise comes from Kiln's own seeded [`NoiseRng`]. `nftgen/RECIPE.md` specifies
//! every step so the recipe can be re-implemented elsewhere.
//!
//! ```
//! use kiln_nftgen::{ArtModel, Control, GenerationRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The default model: the game's own copy, else the one embedded in this crate.
//! let model = ArtModel::load(kiln_nftgen::default_model_path())?;
//! let request = GenerationRequest::new("a glowing green potion", 42).steps(8);
//! let art = model.generate(&request, &mut |p| {
//!     eprintln!("step {}/{}", p.step, p.total);
//!     Control::Continue
//! })?;
//! assert_eq!((art.width, art.height), (32, 32));
//! let again = model.regenerate(&art.record, &mut |_| Control::Continue)?;
//! assert_eq!(again.content_hash, art.content_hash);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "chain")]
pub mod chain;
mod device;
mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod model;
mod pipeline;
pub mod provenance;
pub mod sampling;
#[cfg(feature = "train")]
pub mod training;

#[cfg(feature = "sd")]
pub use model::sd;
pub use model::sprite;
pub use provenance::{png as png_io, store};
#[cfg(feature = "train")]
pub use training::{data, eval, train};

#[cfg(feature = "embedded-model")]
pub use model::shipped::EMBEDDED_MODEL;
pub use model::shipped::{
    DEFAULT_MODEL_FILE, EMBEDDED_MODEL_PATH, MODEL_ENV, default_model_path, game_assets_dir,
    model_search_paths, shipped_model_paths, v1_model_path,
};

pub use device::{DevicePreference, select as select_device};
pub use error::{GenerateError, GpuError, ModelError, PngError, RecordError, RequestError};
pub use model::sprite_q::PIPELINE_2;
pub use pipeline::{
    ArtBackend, ArtModel, Control, GeneratedArt, GenerationRequest, MAX_GUIDANCE, MAX_PROMPT_BYTES,
    MAX_STEPS, ModelFamily, Progress, SheetLayout,
};
pub use provenance::record::{
    Backend, ContentHash, CreatorAddress, ENGINE_VERSION, GenerationRecord, ModelHash, ModelRef,
    PIPELINE, RECORD_FORMAT, RECORDED_ENGINES, RecipeHash, SchedulerKind, TokenId, TxHash,
    pipeline_binds_creator, printable,
};
pub use sampling::noise::NoiseRng;
pub use sampling::schedule::{BetaSchedule, NoiseSchedule, Prediction, timesteps};
