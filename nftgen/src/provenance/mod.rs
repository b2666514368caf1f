//! Provenance: the generation record and its hashes, PNG files that carry it, and the content
//! store of minted art.

pub mod png;
pub mod record;
pub mod store;
