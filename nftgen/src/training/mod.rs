//! Training kiln-sprite (cargo feature `train`): the procedural captioned data, the trainer and
//! the quality evaluation.

pub mod data;
pub mod eval;
pub mod quantize;
pub mod train;
