//! # kiln-nftgen
//!
//! Kiln's art engine: a deterministic diffusion pipeline that paints scene and item art from a
//! prompt and a seed, and the provenance record that lets anyone reproduce an image bit for bit.
//!
//! - [`ArtModel`] loads either family behind one interface: Kiln's compact **kiln-sprite**
//!   transformer (one `.safetensors` file with its config inside) or a **Stable Diffusion**
//!   checkpoint in the diffusers layout (SD 1.x, 2.x, SD-Turbo) through candle-transformers.
//! - [`GenerationRequest`] → [`ArtModel::generate`] → [`GeneratedArt`]: RGBA8 pixels, the
//!   [`GenerationRecord`], its [`RecipeHash`] and the pixels' [`ContentHash`]. A progress callback
//!   runs after every step and can cancel.
//! - [`png_io`] writes PNG files with the record embedded (and reads them back, checking the
//!   pixels against the stored hash).
//! - [`chain`] (cargo feature `chain`, on by default) mints art as ERC-721 / ERC-7007 tokens of
//!   the `KilnProvenance` contract — on an embedded local anvil chain or any EVM JSON-RPC — with
//!   a crash-safe mint journal, and verifies tokens by re-running their recipe; [`store`] keeps
//!   the PNGs and token metadata by content hash, with IPFS CIDs.
//! - The shipped kiln-sprite weights (`assets/models/kiln-sprite.safetensors`, the
//!   [`default_model_path`]) were trained by [`train`] on the procedural, captioned pixel art of
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
//! // The shipped kiln-sprite weights.
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

pub use model::{sd, sprite};
pub use provenance::{png as png_io, store};
#[cfg(feature = "train")]
pub use training::{data, eval, train};

/// Environment variable naming the default art model (a file or a diffusers directory).
pub const MODEL_ENV: &str = "KILN_ART_MODEL";

/// The model `nftgen` and the plugin use when none is given: `$KILN_ART_MODEL`, else the
/// integer kiln-sprite-q weights shipped in the repository's
/// `assets/models/kiln-sprite-q.safetensors` (`kiln-pipeline/2`: the same pixels on every
/// machine).
pub fn default_model_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        return p.into();
    }
    shipped_models_dir().join("kiln-sprite-q.safetensors")
}

/// The shipped f32 kiln-sprite weights (`kiln-pipeline/1`,
/// `assets/models/kiln-sprite.safetensors`): they verify the tokens minted with them and are
/// the source of the integer model.
pub fn v1_model_path() -> std::path::PathBuf {
    shipped_models_dir().join("kiln-sprite.safetensors")
}

/// Every art model Kiln has shipped (`assets/models/*.safetensors`), in name order: the f32
/// kiln-sprite of pipeline/1 and each integer kiln-sprite-q of pipeline/2, kept so that every
/// token painted with any of them verifies.
pub fn shipped_model_paths() -> Vec<std::path::PathBuf> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(shipped_models_dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

/// The repository's `assets/models/` (found from `CARGO_MANIFEST_DIR` at run time under Cargo,
/// else where this crate was built).
fn shipped_models_dir() -> std::path::PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .filter(|d| d.join("../assets").is_dir())
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.join("../assets/models")
}

pub use device::{DevicePreference, select as select_device};
pub use error::{GenerateError, GpuError, ModelError, PngError, RecordError, RequestError};
pub use model::sprite_q::PIPELINE_2;
pub use pipeline::{
    ArtBackend, ArtModel, Control, GeneratedArt, GenerationRequest, MAX_GUIDANCE, MAX_PROMPT_BYTES,
    MAX_STEPS, ModelFamily, Progress, SheetLayout,
};
pub use provenance::record::{
    Backend, ContentHash, CreatorAddress, ENGINE_VERSION, GenerationRecord, ModelHash, ModelRef,
    PIPELINE, RECORD_FORMAT, RecipeHash, SchedulerKind, TokenId, TxHash, printable,
};
pub use sampling::noise::NoiseRng;
pub use sampling::schedule::{BetaSchedule, NoiseSchedule, Prediction, timesteps};
