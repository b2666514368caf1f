//! Where the art models are found at run time — never from where this crate was compiled.
//!
//! The default model is looked up in this order:
//! 1. `$KILN_ART_MODEL` (a file or a diffusers directory);
//! 2. the game's assets: `<root>/assets/models/kiln-sprite-q.safetensors`, where `<root>` is
//!    found as Bevy finds its asset folder (`$BEVY_ASSET_ROOT`, else the run-time
//!    `$CARGO_MANIFEST_DIR` that `cargo run` sets, else the executable's folder);
//! 3. the copy embedded in this crate (cargo feature `embedded-model`, on by default), so that a
//!    game paints with nothing to fetch or ship.
//!
//! Tokens painted with an older model verify when that model's file is in the game's
//! `assets/models/` (this repository keeps every model Kiln shipped there).

use std::path::{Path, PathBuf};

/// Environment variable naming the default art model (a file or a diffusers directory).
pub const MODEL_ENV: &str = "KILN_ART_MODEL";

/// File name of the default model, kiln-sprite-q (`kiln-pipeline/2`).
pub const DEFAULT_MODEL_FILE: &str = "kiln-sprite-q.safetensors";

/// The path under which the embedded model is loaded (`ArtModel::load` of this path reads the
/// embedded bytes). It is not a file: nothing is written there.
pub const EMBEDDED_MODEL_PATH: &str = "embedded:kiln-sprite-q.safetensors";

/// The bytes of the embedded default model (cargo feature `embedded-model`).
#[cfg(feature = "embedded-model")]
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../models/kiln-sprite-q.safetensors");

/// The folder Bevy reads a game's assets from (`<root>/assets`, with `<root>` as Bevy's
/// `AssetPlugin` finds it: `$BEVY_ASSET_ROOT`, else the run-time `$CARGO_MANIFEST_DIR`, else the
/// folder of the running executable).
pub fn game_assets_dir() -> Option<PathBuf> {
    let root = std::env::var_os("BEVY_ASSET_ROOT")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        })?;
    Some(root.join("assets"))
}

/// The places [`default_model_path`] looks, in order (the embedded model, when built in, comes
/// after them).
pub fn model_search_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    if let Some(dir) = game_assets_dir() {
        paths.push(dir.join("models").join(DEFAULT_MODEL_FILE));
    }
    paths
}

/// The model `nftgen` and the plugin use when none is given: the first of
/// [`model_search_paths`] that exists, else the embedded model ([`EMBEDDED_MODEL_PATH`]).
/// Without the `embedded-model` feature and with nothing found, loading the returned path fails
/// with [`crate::ModelError::NoDefaultModel`], which lists where it looked.
pub fn default_model_path() -> PathBuf {
    model_search_paths()
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(EMBEDDED_MODEL_PATH))
}

/// Whether `path` names the embedded model.
pub(crate) fn is_embedded(path: &Path) -> bool {
    path == Path::new(EMBEDDED_MODEL_PATH)
}

/// The shipped f32 kiln-sprite weights (`kiln-pipeline/1`, `assets/models/kiln-sprite.safetensors`
/// among the game's assets): they verify the tokens minted with them and are the source of the
/// integer model.
pub fn v1_model_path() -> PathBuf {
    game_assets_dir()
        .unwrap_or_else(|| PathBuf::from("assets"))
        .join("models/kiln-sprite.safetensors")
}

/// Every art model at hand, in name order: the `.safetensors` files of the game's
/// `assets/models/` and of the folder of `$KILN_ART_MODEL`, then the embedded model (unless one
/// of those files is the same model). Verifying a
/// token picks the one with the recorded hash, so tokens painted with any of them verify.
pub fn shipped_model_paths() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = game_assets_dir()
        .map(|d| d.join("models"))
        .into_iter()
        .collect();
    if let Some(parent) = std::env::var_os(MODEL_ENV)
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(parent);
    }
    let mut paths: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .collect();
    paths.sort();
    paths.dedup();
    // The embedded model, unless one of the files is the very same model (as in this
    // repository, whose `assets/models/kiln-sprite-q.safetensors` is the embedded file).
    #[cfg(feature = "embedded-model")]
    if !paths.iter().any(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.len() == EMBEDDED_MODEL.len() as u64)
            && std::fs::read(p).is_ok_and(|bytes| bytes == EMBEDDED_MODEL)
    }) {
        paths.push(PathBuf::from(EMBEDDED_MODEL_PATH));
    }
    paths
}

/// The bytes of a model file, or of the embedded model for [`EMBEDDED_MODEL_PATH`].
pub(crate) fn model_bytes(path: &Path) -> std::io::Result<std::borrow::Cow<'static, [u8]>> {
    #[cfg(feature = "embedded-model")]
    if is_embedded(path) {
        return Ok(std::borrow::Cow::Borrowed(EMBEDDED_MODEL));
    }
    std::fs::read(path).map(std::borrow::Cow::Owned)
}

/// The hash of the model file at `path` (or of the embedded model), if it can be read.
#[cfg(feature = "chain")]
pub(crate) fn model_hash_of(path: &Path) -> Option<crate::ModelHash> {
    model_bytes(path)
        .ok()
        .map(|bytes| crate::ModelHash::of_file_bytes(&bytes))
}
