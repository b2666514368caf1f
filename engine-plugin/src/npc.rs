//! NPC dialogue: personas as assets, a chat per NPC on its own thread, streamed replies.

use std::collections::VecDeque;
use std::path::PathBuf;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, TryRecvError};
use kiln_npc::{Chat, ChatEvent, ChatOptions, Engine, EngineConfig, NpcReply, Persona, RequestId};

use crate::{KilnSystems, configure_sets, drop_off_thread};

/// NPC dialogue. Loads the GGUF model on a worker thread at start-up; until it is ready, player
/// lines wait; if it cannot load, NPCs answer with their persona's fallback lines.
#[derive(Debug, Clone)]
pub struct NpcPlugin {
    /// The GGUF chat model [default: `kiln_npc::default_model_path()`, i.e. `$KILN_NPC_MODEL`
    /// or the cache where `cargo xtask setup` puts SmolLM2-135M].
    pub model: PathBuf,
    /// llama.cpp threads per NPC (one keeps replies steady while the game uses other cores).
    pub threads: u32,
    /// Seed of every NPC's sampler (same persona, history and seed → same replies).
    pub seed: u64,
}

impl Default for NpcPlugin {
    fn default() -> Self {
        Self {
            model: kiln_npc::default_model_path(),
            threads: 1,
            seed: 0,
        }
    }
}

/// A persona (`assets/npcs/*.toml`, see `kiln-npc`), loaded as an asset.
#[derive(Asset, TypePath, Debug, Clone)]
pub struct PersonaAsset(pub Persona);

/// Loads [`PersonaAsset`]s from `.toml` files; errors name the file and the field.
#[derive(Default, TypePath)]
pub struct PersonaLoader;

/// Why a persona file did not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersonaLoadError {
    /// The file could not be read.
    #[error("cannot read the persona: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not UTF-8.
    #[error("the persona is not UTF-8 text")]
    NotUtf8,
    /// The persona is invalid.
    #[error(transparent)]
    Persona(#[from] kiln_npc::PersonaError),
}

impl AssetLoader for PersonaLoader {
    type Asset = PersonaAsset;
    type Settings = ();
    type Error = PersonaLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<PersonaAsset, PersonaLoadError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        let text = String::from_utf8(bytes).map_err(|_| PersonaLoadError::NotUtf8)?;
        let origin = PathBuf::from(load_context.path().to_string());
        Ok(PersonaAsset(Persona::from_toml_str(&text, origin)?))
    }

    fn extensions(&self) -> &[&str] {
        &["persona.toml", "toml"]
    }
}

/// An NPC: the entity talks with the persona in its handle.
#[derive(Component, Debug, Clone)]
#[require(NpcLines)]
pub struct Npc {
    /// The persona.
    pub persona: Handle<PersonaAsset>,
}

impl Npc {
    /// An NPC with this persona.
    pub fn new(persona: Handle<PersonaAsset>) -> Self {
        Self { persona }
    }
}

/// Present on an NPC while a reply is being generated.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct Talking;

/// The player said something to `npc`.
#[derive(Message, Debug, Clone)]
pub struct PlayerSaid {
    /// The NPC entity.
    pub npc: Entity,
    /// What the player said.
    pub text: String,
}

impl PlayerSaid {
    /// The player says `text` to `npc`.
    pub fn new(npc: Entity, text: impl Into<String>) -> Self {
        Self {
            npc,
            text: text.into(),
        }
    }
}

/// More of an NPC's reply (its spoken text), as it streams; triggered on the NPC entity.
#[derive(EntityEvent, Debug, Clone)]
pub struct NpcReplyDelta {
    /// The NPC.
    pub entity: Entity,
    /// New text, to append to what came before.
    pub text: String,
}

/// An NPC's finished reply.
#[derive(Message, Debug, Clone)]
pub struct NpcReplied {
    /// The NPC.
    pub npc: Entity,
    /// What it says, its emotion and its action (always one its persona allows).
    pub reply: NpcReply,
    /// True when the model was unavailable or failed and this is a persona fallback line.
    pub fallback: bool,
}

/// Where the NPC model stands.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub enum NpcEngineStatus {
    /// Loading on a worker thread.
    Loading,
    /// Loaded.
    Ready,
    /// Could not load (the reason); NPCs answer with fallback lines.
    Unavailable(String),
}

#[derive(Resource)]
struct NpcEngine {
    engine: Option<Engine>,
    loading: Option<Receiver<Result<Engine, kiln_npc::ModelError>>>,
    options: ChatOptions,
}

/// An NPC's conversation state (private).
#[derive(Component, Default)]
struct NpcLines {
    chat: Option<Chat>,
    /// Lines said before the chat existed (model or persona still loading).
    waiting: VecDeque<String>,
    /// The request in flight.
    current: Option<RequestId>,
    /// Next fallback line to use.
    next_fallback: usize,
}

impl Plugin for NpcPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_asset::<PersonaAsset>()
            .init_asset_loader::<PersonaLoader>()
            .add_message::<PlayerSaid>()
            .add_message::<NpcReplied>()
            .insert_resource(NpcEngineStatus::Loading);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let model = self.model.clone();
        let config = EngineConfig::default().with_threads(self.threads);
        let spawned = std::thread::Builder::new()
            .name("kiln-npc-load".into())
            .spawn(move || {
                let _ = tx.send(Engine::load(&model, config));
            });
        if let Err(e) = spawned {
            app.insert_resource(NpcEngineStatus::Unavailable(e.to_string()));
        }
        app.insert_resource(NpcEngine {
            engine: None,
            loading: Some(rx),
            options: ChatOptions::default()
                .with_seed(self.seed)
                .with_threads(self.threads),
        })
        .add_systems(
            PreUpdate,
            (poll_engine, attach_chats)
                .chain()
                .in_set(KilnSystems::Attach),
        )
        .add_systems(PreUpdate, drain_chats.in_set(KilnSystems::Receive))
        .add_systems(PostUpdate, dispatch_lines.in_set(KilnSystems::Dispatch))
        .add_observer(release_chat);
    }
}

fn poll_engine(mut engine: ResMut<NpcEngine>, mut status: ResMut<NpcEngineStatus>) {
    let Some(rx) = &engine.loading else {
        return;
    };
    match rx.try_recv() {
        Ok(Ok(e)) => {
            info!("NPC model ready: {}", e.model_path().display());
            engine.engine = Some(e);
            engine.loading = None;
            *status = NpcEngineStatus::Ready;
        }
        Ok(Err(e)) => {
            warn!("NPC model unavailable, NPCs will answer with fallback lines: {e}");
            engine.loading = None;
            *status = NpcEngineStatus::Unavailable(e.to_string());
        }
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Disconnected) => {
            engine.loading = None;
            *status = NpcEngineStatus::Unavailable("the model loader stopped".into());
        }
    }
}

/// Gives a chat to every NPC whose persona is loaded, once the engine is ready, and sends the
/// lines that waited for it; with no engine, answers the waiting lines with fallback lines.
fn attach_chats(
    engine: Res<NpcEngine>,
    status: Res<NpcEngineStatus>,
    personas: Res<Assets<PersonaAsset>>,
    asset_server: Res<AssetServer>,
    mut npcs: Query<(Entity, &Npc, &mut NpcLines)>,
    mut replied: MessageWriter<NpcReplied>,
    mut commands: Commands,
) {
    for (entity, npc, mut lines) in &mut npcs {
        // Chats open as soon as the engine is ready; without one, only waiting lines matter.
        let ready = matches!(*status, NpcEngineStatus::Ready);
        if lines.chat.is_some() || (lines.waiting.is_empty() && !ready) {
            continue;
        }
        let Some(persona) = personas.get(&npc.persona) else {
            if let bevy::asset::LoadState::Failed(err) = asset_server.load_state(&npc.persona)
                && !lines.waiting.is_empty()
            {
                // No persona, so no voice and no fallback lines: the lines go unanswered.
                warn!(
                    "NPC {entity} has no persona ({err}); {} line(s) dropped",
                    lines.waiting.len()
                );
                lines.waiting.clear();
            }
            continue;
        };
        match (&engine.engine, &*status) {
            (Some(e), _) => match e.chat(persona.0.clone(), engine.options.clone()) {
                Ok(chat) => {
                    lines.chat = Some(chat);
                    if let Some(text) = lines.waiting.pop_front() {
                        ask(
                            entity,
                            &mut lines,
                            text,
                            &persona.0,
                            &mut replied,
                            &mut commands,
                        );
                    }
                }
                Err(err) => {
                    warn!("cannot open a chat for {}: {err}", persona.0.name());
                    answer_with_fallback(entity, &mut lines, &persona.0, &mut replied);
                }
            },
            (None, NpcEngineStatus::Unavailable(_)) => {
                answer_with_fallback(entity, &mut lines, &persona.0, &mut replied);
            }
            _ => {}
        }
    }
}

fn answer_with_fallback(
    entity: Entity,
    lines: &mut NpcLines,
    persona: &Persona,
    replied: &mut MessageWriter<NpcReplied>,
) {
    while lines.waiting.pop_front().is_some() {
        replied.write(fallback(entity, lines, persona));
    }
}

fn fallback(entity: Entity, lines: &mut NpcLines, persona: &Persona) -> NpcReplied {
    let options = persona.fallback_lines();
    let say = options[lines.next_fallback % options.len()].to_string();
    lines.next_fallback += 1;
    NpcReplied {
        npc: entity,
        reply: NpcReply {
            say,
            emotion: persona.emotions().first().cloned().unwrap_or_default(),
            action: "none".into(),
        },
        fallback: true,
    }
}

fn ask(
    entity: Entity,
    lines: &mut NpcLines,
    text: String,
    persona: &Persona,
    replied: &mut MessageWriter<NpcReplied>,
    commands: &mut Commands,
) {
    let Some(chat) = &lines.chat else {
        lines.waiting.push_back(text);
        return;
    };
    match chat.ask(text) {
        Ok(id) => {
            lines.current = Some(id);
            commands.entity(entity).insert(Talking);
        }
        Err(e) => {
            warn!("{} cannot take that line: {e}", persona.name());
            replied.write(fallback(entity, lines, persona));
        }
    }
}

/// Sends player lines to their NPC's chat (or queues them while one is in flight or loading).
fn dispatch_lines(
    mut said: MessageReader<PlayerSaid>,
    mut npcs: Query<(&Npc, &mut NpcLines)>,
    personas: Res<Assets<PersonaAsset>>,
    status: Res<NpcEngineStatus>,
    mut replied: MessageWriter<NpcReplied>,
    mut commands: Commands,
) {
    for line in said.read() {
        let Ok((npc, mut lines)) = npcs.get_mut(line.npc) else {
            warn!("PlayerSaid names {} which is not an NPC", line.npc);
            continue;
        };
        let persona = personas.get(&npc.persona);
        match (persona, &*status) {
            (Some(p), NpcEngineStatus::Unavailable(_)) => {
                let reply = fallback(line.npc, &mut lines, &p.0);
                replied.write(reply);
            }
            (Some(p), _) if lines.chat.is_some() && lines.current.is_none() => {
                ask(
                    line.npc,
                    &mut lines,
                    line.text.clone(),
                    &p.0,
                    &mut replied,
                    &mut commands,
                );
            }
            _ => lines.waiting.push_back(line.text.clone()),
        }
    }
}

/// Turns chat events into [`NpcReplyDelta`] events and [`NpcReplied`] messages; starts the next
/// waiting line when a reply ends.
fn drain_chats(
    mut npcs: Query<(Entity, &Npc, &mut NpcLines)>,
    personas: Res<Assets<PersonaAsset>>,
    mut replied: MessageWriter<NpcReplied>,
    mut commands: Commands,
) {
    for (entity, npc, mut lines) in &mut npcs {
        let Some(chat) = &lines.chat else {
            continue;
        };
        let events: Vec<ChatEvent> = chat.events().try_iter().collect();
        for event in events {
            if Some(event.request()) != lines.current {
                continue;
            }
            let done = match event {
                ChatEvent::Delta { text, .. } => {
                    commands.trigger(NpcReplyDelta { entity, text });
                    false
                }
                ChatEvent::Reply { reply, .. } => {
                    replied.write(NpcReplied {
                        npc: entity,
                        reply,
                        fallback: false,
                    });
                    true
                }
                ChatEvent::Failed { error, .. } => {
                    if let Some(p) = personas.get(&npc.persona) {
                        warn!("{} failed to reply: {error}", p.0.name());
                        let reply = fallback(entity, &mut lines, &p.0);
                        replied.write(reply);
                    }
                    true
                }
                _ => true,
            };
            if done {
                lines.current = None;
                commands.entity(entity).remove::<Talking>();
                if let (Some(text), Some(p)) =
                    (lines.waiting.pop_front(), personas.get(&npc.persona))
                {
                    ask(entity, &mut lines, text, &p.0, &mut replied, &mut commands);
                }
            }
        }
    }
}

/// A despawned NPC cancels its reply; its chat thread is released off the main thread.
fn release_chat(remove: On<Remove, NpcLines>, mut npcs: Query<&mut NpcLines>) {
    if let Ok(mut lines) = npcs.get_mut(remove.entity)
        && let Some(chat) = lines.chat.take()
    {
        chat.cancel();
        drop_off_thread(chat);
    }
}
