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
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_kiln::prelude::*;
//!
//! fn main() {
//!     App::new()
//!         .add_plugins((MinimalPlugins, bevy::asset::AssetPlugin::default()))
//!         .add_plugins(KilnPlugins::default())
//!         .add_systems(Startup, spawn_blacksmith)
//!         .add_systems(Update, (greet, print_replies))
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
//! fn print_replies(mut replies: MessageReader<NpcReplied>) {
//!     for r in replies.read() {
//!         println!("{} [{} · {}]", r.reply.say, r.reply.emotion, r.reply.action);
//!     }
//! }
//! ```

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

mod art;
#[cfg(feature = "chain")]
mod chain;
mod npc;

use bevy::app::{PluginGroup, PluginGroupBuilder};
use bevy::prelude::*;

pub use art::{ArtFailed, ArtKind, ArtPlugin, ArtProgress, ArtReady, ArtStatus, GenerateArt};
#[cfg(feature = "chain")]
pub use chain::{
    ArtMinted, ChainPlugin, ChainStatus, MintArt, MintFailed, TokenVerified, VerifyToken,
};
pub use npc::{
    Npc, NpcEngineStatus, NpcPlugin, NpcReplied, NpcReplyDelta, PersonaAsset, PersonaLoader,
    PlayerSaid, Talking,
};

/// The usual imports.
pub mod prelude {
    pub use crate::{
        ArtFailed, ArtKind, ArtPlugin, ArtProgress, ArtReady, GenerateArt, KilnPlugins,
        KilnSystems, Npc, NpcPlugin, NpcReplied, NpcReplyDelta, PlayerSaid, Talking,
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

/// Lowers the calling thread to the lowest OS priority (nice 19 on Linux); threads and
/// processes it starts inherit it. Workers call it so the game's main thread wins the CPU.
pub(crate) fn lower_this_thread() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!("cannot lower a worker thread's priority: {e:?}");
    }
}
