//! The model families behind [`crate::ArtModel`]: Kiln's compact kiln-sprite transformer and
//! Stable Diffusion checkpoints.

#[cfg(feature = "sd")]
pub mod sd;
pub mod shipped;
pub mod sprite;
pub mod sprite_q;

use std::path::Path;

use crate::error::ModelError;

/// Maps a candle error raised while building a model to a typed error naming the tensor.
pub(crate) fn build_error(path: &Path, e: candle_core::Error) -> ModelError {
    let mut e = &e;
    while let candle_core::Error::WithBacktrace { inner, .. }
    | candle_core::Error::Context { inner, .. }
    | candle_core::Error::WithPath { inner, .. } = e
    {
        e = inner;
    }
    match e {
        candle_core::Error::CannotFindTensor { path: tensor } => ModelError::MissingTensor {
            path: path.to_path_buf(),
            tensor: tensor.clone(),
        },
        candle_core::Error::UnexpectedShape { msg, expected, got } => ModelError::TensorShape {
            path: path.to_path_buf(),
            tensor: msg
                .strip_prefix("shape mismatch for ")
                .unwrap_or(msg)
                .to_string(),
            expected: expected.dims().to_vec(),
            actual: got.dims().to_vec(),
        },
        other => ModelError::Backend {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}
