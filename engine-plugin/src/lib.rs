//! # bevy_kiln
//!
//! The Bevy plugins that bring Kiln's engines into a game (not built yet): NPC dialogue from
//! `kiln-npc`, art generation and minting from `kiln-nftgen`, as components, messages and assets
//! that never block a frame. This crate is filled by the Bevy plugin issue.
