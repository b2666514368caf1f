//! # kiln-npc
//!
//! NPCs that talk, on the player's own machine: a quantized chat model (GGUF, run by llama.cpp)
//! gives each NPC a [`Persona`], memory of the conversation, streamed replies, and structured
//! output — what it says, its emotion, and an action the game can act on — that can never name an
//! action the persona does not allow.
//!
//! - [`Engine`] loads a GGUF model once; many NPCs share it.
//! - [`Persona`] is read from TOML and validated (errors name the file and the field).
//! - [`Chat`] is one conversation: [`Chat::ask`] returns at once and [`ChatEvent`]s stream back
//!   — text deltas, then a typed [`NpcReply`] or an error. One worker thread and one llama.cpp
//!   context serve every chat of an engine, a KV stream per NPC, every replying NPC advanced by
//!   one token per decode; a reply does not depend on who else is talking.
//! - Replies are sampled under a GBNF grammar generated from the persona, so every reply parses
//!   and its emotion and action come from the persona's lists, whatever the player types.
//! - The conversation stays in llama.cpp's KV cache: a new turn evaluates only its new tokens.
//!   When the context fills, the oldest turns are forgotten; the persona never is.
//! - Same model, persona, history and seed give the same reply; [`SavedChat`] saves and restores.
//!
//! ```no_run
//! use kiln_npc::{ChatEvent, ChatOptions, Engine, EngineConfig, Persona};
//!
//! // $KILN_NPC_MODEL, the game's assets/models/, or Kiln's cache (`kiln fetch-models`).
//! let engine = Engine::load(kiln_npc::find_model()?, EngineConfig::default())?;
//! let chat = engine.chat(Persona::load("assets/npcs/merchant.toml")?, ChatOptions::default())?;
//! chat.ask("Do you sell rope?")?;
//! for event in chat.events().iter() {
//!     match event {
//!         ChatEvent::Delta { text, .. } => print!("{text}"),
//!         ChatEvent::Reply { reply, .. } => {
//!             println!("\n[{}] action: {}", reply.emotion, reply.action);
//!             break;
//!         }
//!         ChatEvent::Failed { error, .. } => return Err(error.into()),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), kiln_npc::NpcError>(())
//! ```
//!
//! llama.cpp's own log lines go to `tracing` under the target `kiln_npc::llama`, at `debug` and
//! `trace` only, so they stay quiet unless asked for.

mod backend;
mod chat;
mod engine;
mod error;
pub mod eval;
mod files;
mod gguf;
mod persona;
pub mod reply;
mod sampler;
mod template;

pub use chat::{
    Chat, ChatEvent, ChatOptions, DROP_DEADLINE, MAX_CONTEXT_SIZE, MAX_PLAYER_CHARS,
    MAX_SAVE_BYTES, MAX_SAVED_TURNS, MAX_THREADS, NpcReply, RequestId, SAVE_FORMAT, SavedChat,
    SavedTurn, TurnStats,
};
pub use engine::{
    DEFAULT_MODEL_FILE, Engine, EngineConfig, MAX_SLOTS, MODEL_ENV, ModelFingerprint, WorkStats,
    default_model_path, find_model, kiln_cache_dir, model_search_paths,
};
pub use error::{ChatError, ModelError, NpcError, PersonaError, SaveError};
pub use persona::{Example, MAX_PERSONA_BYTES, MAX_SENTENCES_LIMIT, Persona};
/// The reply grammar (also at [`reply::grammar`]).
pub use reply::grammar;
pub use reply::{Choices, ReplyShape};
pub use sampler::Sampling;

/// The usual imports.
pub mod prelude {
    pub use crate::{
        Chat, ChatEvent, ChatOptions, Engine, EngineConfig, NpcError, NpcReply, Persona, Sampling,
    };
}
