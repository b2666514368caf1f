//! # bevy_kiln
//!
//! Kiln's engines in a Bevy game: NPCs that talk ([`NpcPlugin`], on `kiln-npc`), art painted
//! in-game ([`ArtPlugin`], on `kiln-nftgen`) and, with the `chain` feature, minting and verifying
//! that art on chain ([`ChainPlugin`]). [`KilnPlugins`] adds all three.
//!
//! The plugins are thin: every engine call runs on a worker thread; systems only send requests
//! (in `PostUpdate`, set [`KilnSystems::Dispatch`]) and drain results from channels (in
//! `PreUpdate`, sets [`KilnSystems::Attach`] then [`KilnSystems::Receive`]), so no frame waits on
//! a model or an RPC. Nothing here needs a window or a renderer: `MinimalPlugins` plus
//! `AssetPlugin` run it headless.
//!
//! | plugin | you send | you get |
//! |---|---|---|
//! | [`NpcPlugin`] | [`PlayerSaid`] to an entity with [`Npc`] | [`NpcReplyDelta`] entity events while it streams ([`Talking`] is on the NPC), then [`NpcReplied`] |
//! | [`ArtPlugin`] | [`GenerateArt`] | [`ArtProgress`] per step, then [`ArtReady`] (an `Image` asset) or [`ArtFailed`] |
//! | [`ChainPlugin`] | [`MintArt`], [`VerifyToken`] | [`ArtMinted`] / [`MintFailed`], [`TokenVerified`] |
//!
//! When the NPC model cannot load, NPCs answer with their persona's fallback lines and a warning
//! is logged; a missing art model or an unreachable chain turn into [`ArtFailed`] / [`MintFailed`]
//! messages. The game keeps running.
//!
//! A blacksmith who answers one line, then the app exits (this runs as a test, on the real
//! model when it is installed and on the persona's fallback lines when it is not):
//!
//! ```
//! use bevy::asset::AssetPlugin;
//! use bevy::prelude::*;
//! use bevy_kiln::prelude::*;
//!
//! fn main() {
//!     App::new()
//!         .add_plugins(MinimalPlugins)
//!         // The game's `assets/` (in Kiln's repository, its cargo config points Bevy at the
//!         // `assets/` folder at its root, which holds the shipped personas).
//!         .add_plugins(AssetPlugin::default())
//!         .add_plugins(KilnPlugins::default())
//!         .add_systems(Startup, spawn_blacksmith)
//!         .add_systems(Update, (greet, print_reply))
//!         .run();
//! }
//!
//! fn spawn_blacksmith(mut commands: Commands, assets: Res<AssetServer>) {
//!     commands.spawn(Npc::new(assets.load("npcs/blacksmith.toml")));
//! }
//!
//! fn greet(npcs: Query<Entity, Added<Npc>>, mut said: MessageWriter<PlayerSaid>) {
//!     for npc in &npcs {
//!         said.write(PlayerSaid::new(npc, "Can you mend my sword?"));
//!     }
//! }
//!
//! fn print_reply(mut replies: MessageReader<NpcReplied>, mut exit: MessageWriter<AppExit>) {
//!     for r in replies.read() {
//!         println!("{} [{} · {}]", r.reply.say, r.reply.emotion, r.reply.action);
//!         assert!(!r.reply.say.is_empty());
//!         exit.write(AppExit::Success);
//!     }
//! }
//! ```

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

mod art;
#[cfg(feature = "chain")]
mod chain;
mod npc;
mod worker;

use bevy::app::{PluginGroup, PluginGroupBuilder};
use bevy::prelude::*;

pub use art::{
    ArtDevice, ArtFailed, ArtKind, ArtPlugin, ArtProgress, ArtReady, ArtStatus, GenerateArt,
    KilnWallet, pixel_image, sheet_atlas_layout,
};
#[cfg(feature = "chain")]
pub use chain::{
    ArtMinted, ChainPlugin, ChainStatus, MintArt, MintFailed, TokenVerified, VerifyToken,
};
/// The art engine, for what the plugins do not wrap (PNG files, records, verification).
pub use kiln_nftgen;
#[cfg(feature = "chain")]
pub use kiln_nftgen::chain::ChainConfig;
pub use kiln_nftgen::{ArtBackend, Backend};
/// The NPC engine, for what the plugins do not wrap (personas, saves, the model's location).
pub use kiln_npc;
pub use kiln_npc::{Choices, NpcReply, Persona, SavedChat};
pub use npc::{
    MAX_WAITING_LINES, Npc, NpcChoices, NpcConverse, NpcEngineStatus, NpcPersonaFailed, NpcPlugin,
    NpcRemembered, NpcReplied, NpcReplyDelta, PersonaAsset, PersonaLoader, PlayerSaid, Talking,
};
pub use worker::{SHUTDOWN_DEADLINE, WorkerPriority};

/// The usual imports.
pub mod prelude {
    pub use crate::{
        ArtBackend, ArtFailed, ArtKind, ArtPlugin, ArtProgress, ArtReady, GenerateArt, KilnPlugins,
        KilnSystems, KilnWallet, Npc, NpcChoices, NpcConverse, NpcPersonaFailed, NpcPlugin,
        NpcRemembered, NpcReplied, NpcReplyDelta, Persona, PersonaAsset, PlayerSaid, Talking,
        WorkerPriority,
    };
    #[cfg(feature = "chain")]
    pub use crate::{ArtMinted, ChainPlugin, MintArt, MintFailed, TokenVerified, VerifyToken};
}

/// Kiln's systems, in order. `Attach` and `Receive` run in `PreUpdate` (so this frame's game
/// systems see fresh results), `Dispatch` in `PostUpdate` (so requests written during `Update`
/// leave the same frame).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KilnSystems {
    /// Engines that finished loading are taken up; NPCs whose persona is loaded get a chat.
    Attach,
    /// Worker results become messages, entity events and assets.
    Receive,
    /// Requests (messages the game wrote) go to the workers.
    Dispatch,
}

/// Configures the set order; every Kiln plugin calls it (idempotent).
fn configure_sets(app: &mut App) {
    app.configure_sets(
        PreUpdate,
        (KilnSystems::Attach, KilnSystems::Receive).chain(),
    );
}

/// All of Kiln: [`NpcPlugin`], [`ArtPlugin`] and (feature `chain`) [`ChainPlugin`], each with its
/// configuration.
#[derive(Default)]
pub struct KilnPlugins {
    /// NPC dialogue.
    pub npc: NpcPlugin,
    /// Art generation.
    pub art: ArtPlugin,
    /// Minting and verification.
    #[cfg(feature = "chain")]
    pub chain: ChainPlugin,
}

impl PluginGroup for KilnPlugins {
    fn build(self) -> PluginGroupBuilder {
        let group = PluginGroupBuilder::start::<Self>()
            .add(self.npc)
            .add(self.art);
        #[cfg(feature = "chain")]
        let group = group.add(self.chain);
        group
    }
}

/// Drops `value` on a short-lived thread: engine handles join their worker threads when
/// dropped, which must not stall a frame.
pub(crate) fn drop_off_thread<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("kiln-drop".into())
        .spawn(move || drop(value));
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to release an engine handle: {e}");
    }
}
