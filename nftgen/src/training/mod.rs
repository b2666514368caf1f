//! Training kiln-sprite (cargo feature `train`): the procedural captioned data, the trainer,
//! quantization-aware training, the quality evaluation and the integer export.

pub mod data;
pub mod eval;
pub mod qat;
pub mod quantize;
pub mod train;
