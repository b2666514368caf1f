//! The model families behind [`crate::ArtModel`]: Kiln's compact kiln-sprite transformer and
//! Stable Diffusion checkpoints.

pub mod sd;
pub mod sprite;
pub mod sprite_q;
