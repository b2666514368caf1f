//! # kiln-nftgen
//!
//! Kiln's art engine (not built yet): a deterministic diffusion pipeline that paints scene and
//! item art from a prompt and a seed, the provenance record that lets anyone reproduce an image
//! bit for bit, and the chain client that mints and verifies it. See `shared/DESIGN.md` and the
//! open issues for the plan; this crate is filled by the art engine issue.
