//! NPC dialogue: personas as assets, a chat per NPC served by the engine's one crowd worker,
//! streamed replies.

use std::collections::VecDeque;
use std::path::PathBuf;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use kiln_npc::{
    Chat, ChatEvent, ChatOptions, Choices, Engine, EngineConfig, NpcReply, Persona, RequestId,
    SavedChat,
};

use crate::worker::Worker;
use crate::{KilnSystems, WorkerPriority, configure_sets, drop_off_thread};

/// NPC dialogue. Loads the GGUF model on a worker thread at start-up; until it is ready, player
/// lines wait; if it cannot load, NPCs answer with their persona's fallback lines.
#[derive(Debug, Clone)]
pub struct NpcPlugin {
    /// The GGUF chat model [default: `None`, found at start-up by `kiln_npc::find_model()`:
    /// `$KILN_NPC_MODEL`, else the game's `assets/models/`, else Kiln's cache where
    /// `kiln fetch-models` puts SmolLM2-135M; if it is nowhere, the error names every place].
    pub model: Option<PathBuf>,
    /// llama.cpp threads of the NPC worker, which serves every NPC (one keeps replies steady
    /// while the game uses other cores).
    pub threads: u32,
    /// Seed of every NPC's sampler (same persona, history and seed → same replies).
    pub seed: u64,
    /// How the model's threads share the CPU with the game.
    pub priority: WorkerPriority,
}

impl Default for NpcPlugin {
    fn default() -> Self {
        Self {
            model: None,
            threads: 1,
            seed: 0,
            priority: WorkerPriority::default(),
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
    /// A conversation to continue (from an [`NpcRemembered`] the game saved); read when the
    /// NPC's chat opens.
    pub memory: Option<SavedChat>,
}

impl Npc {
    /// An NPC with this persona, meeting the player for the first time.
    pub fn new(persona: Handle<PersonaAsset>) -> Self {
        Self {
            persona,
            memory: None,
        }
    }

    /// Continues a saved conversation: the NPC remembers every turn in it. A conversation the
    /// model cannot take up (another persona, a damaged file) is logged and a new one begins.
    pub fn with_memory(mut self, memory: SavedChat) -> Self {
        self.memory = Some(memory);
        self
    }
}

/// What the game offers an NPC's action arguments right now (its inventory as `item`, the places
/// it knows as `place`; see the persona's `action_args`). Each line the player says is answered
/// under the choices the NPC has when the line goes to the model: a reply can name only those
/// values, so an NPC never gives an item it does not own. Without this component, actions that
/// take an argument cannot be chosen.
///
/// ```
/// # use bevy_kiln::{Choices, NpcChoices};
/// let choices = NpcChoices(Choices::new().with("item", ["horseshoe", "whetstone"])?);
/// # Ok::<(), kiln_npc::ChatError>(())
/// ```
#[derive(Component, Debug, Clone, Default, PartialEq, Eq)]
pub struct NpcChoices(pub Choices);

/// Two NPCs talk to each other: `a` hears `topic` as said by `b`, then each hears the other's
/// last words as a line said to it (`"Mira: Fine rope today!"`), until `turns` replies in all
/// have come (a fallback reply, or either NPC going away, ends the conversation early). Every
/// reply arrives as an [`NpcReplied`] (and streams as [`NpcReplyDelta`]) like any other; the
/// NPCs' replies are batched with everyone else's and, with the same seeds and lines, are the
/// same each time. The lines become part of both NPCs' memories.
#[derive(Message, Debug, Clone)]
pub struct NpcConverse {
    /// The NPC who speaks first.
    pub a: Entity,
    /// The NPC who answers.
    pub b: Entity,
    /// What `b` opens with.
    pub topic: String,
    /// Replies in all (`a`, `b`, `a`, …).
    pub turns: u32,
}

/// Conversations between NPCs in progress.
#[derive(Resource, Default)]
struct Conversations(Vec<Conversation>);

struct Conversation {
    speaker: Entity,
    listener: Entity,
    left: u32,
}

fn npc_name(npcs: &Query<&Npc>, personas: &Assets<PersonaAsset>, entity: Entity) -> Option<String> {
    let npc = npcs.get(entity).ok()?;
    personas.get(&npc.persona).map(|p| p.0.name().to_string())
}

/// Opens the conversations asked for: `a` hears the topic from `b`.
fn start_conversations(
    mut starts: MessageReader<NpcConverse>,
    mut conversations: ResMut<Conversations>,
    npcs: Query<&Npc>,
    personas: Res<Assets<PersonaAsset>>,
    mut said: MessageWriter<PlayerSaid>,
) {
    for c in starts.read() {
        if c.turns == 0 || c.a == c.b || !npcs.contains(c.a) || !npcs.contains(c.b) {
            warn!("NpcConverse needs two NPCs and at least one turn: {c:?}");
            continue;
        }
        let from = npc_name(&npcs, &personas, c.b).unwrap_or_else(|| "Someone".into());
        said.write(PlayerSaid::new(c.a, format!("{from}: {}", c.topic)));
        conversations.0.push(Conversation {
            speaker: c.a,
            listener: c.b,
            left: c.turns,
        });
    }
}

/// Passes each reply in a conversation on to the other NPC.
fn continue_conversations(
    mut replied: MessageReader<NpcReplied>,
    mut conversations: ResMut<Conversations>,
    npcs: Query<&Npc>,
    personas: Res<Assets<PersonaAsset>>,
    mut said: MessageWriter<PlayerSaid>,
) {
    for r in replied.read() {
        conversations.0.retain_mut(|c| {
            if c.speaker != r.npc {
                return npcs.contains(c.speaker) && npcs.contains(c.listener);
            }
            c.left = c.left.saturating_sub(1);
            if c.left == 0 || r.fallback || !npcs.contains(c.listener) {
                return false;
            }
            let from = npc_name(&npcs, &personas, c.speaker).unwrap_or_else(|| "Someone".into());
            said.write(PlayerSaid::new(
                c.listener,
                format!("{from}: {}", r.reply.say),
            ));
            std::mem::swap(&mut c.speaker, &mut c.listener);
            true
        });
    }
}

/// Lines an NPC keeps waiting while it replies or its chat opens; more are answered at once
/// with a fallback line (a player cannot queue work without end).
pub const MAX_WAITING_LINES: usize = 8;

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

/// An NPC's conversation after a model reply, for the game to save (see [`Npc::with_memory`];
/// [`SavedChat::save`] writes it as JSON). Fallback lines are not part of it.
#[derive(Message, Debug, Clone)]
pub struct NpcRemembered {
    /// The NPC.
    pub npc: Entity,
    /// Every turn so far.
    pub memory: SavedChat,
}

/// An NPC that cannot talk because its persona did not load (a missing file, a persona that
/// fails to parse or validate). Sent when the failure is first seen, and again whenever lines
/// said to that NPC are dropped; the rest of the game goes on, and other NPCs keep talking.
#[derive(Message, Debug, Clone)]
pub struct NpcPersonaFailed {
    /// The NPC.
    pub npc: Entity,
    /// What the persona loader said (it names the file).
    pub error: String,
    /// Lines said to the NPC that were dropped unanswered (none, when the failure is seen
    /// before anyone spoke to it).
    pub dropped_lines: usize,
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

/// The NPC service thread: loads the model, then opens chats on request. Chats (and llama.cpp's
/// threads) are created there, so they inherit its OS priority and never cost the main thread.
#[derive(Resource)]
struct NpcEngine {
    /// `None` when the thread could not start (every NPC then answers with fallback lines).
    worker: Option<Worker<(Entity, Persona, Option<SavedChat>)>>,
    out: Receiver<ServiceOut>,
}

enum ServiceOut {
    Loaded(Result<PathBuf, String>),
    Chat(Entity, Result<Box<Chat>, String>),
}

/// An NPC's conversation state (private).
#[derive(Component, Default)]
struct NpcLines {
    chat: Option<Chat>,
    /// A chat was asked of the service thread.
    opening: bool,
    /// The conversation, asked for after the last reply.
    snapshot: Option<Receiver<SavedChat>>,
    /// Lines said before the chat existed (model or persona still loading).
    waiting: VecDeque<String>,
    /// The request in flight.
    current: Option<RequestId>,
    /// Next fallback line to use.
    next_fallback: usize,
    /// [`NpcPersonaFailed`] was sent for this NPC.
    persona_failed: bool,
}

impl Plugin for NpcPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_asset::<PersonaAsset>()
            .init_asset_loader::<PersonaLoader>()
            .add_message::<PlayerSaid>()
            .add_message::<NpcReplied>()
            .add_message::<NpcRemembered>()
            .add_message::<NpcPersonaFailed>()
            .insert_resource(NpcEngineStatus::Loading);
        let (out_tx, out) = crossbeam_channel::unbounded();
        let model = self.model.clone();
        let config = EngineConfig::default().with_threads(self.threads);
        let options = ChatOptions::default().with_seed(self.seed);
        let priority = self.priority;
        let crashed = out_tx.clone();
        let spawned = Worker::spawn(
            "npc",
            priority,
            move |request_rx: Receiver<(Entity, Persona, Option<SavedChat>)>| {
                service(model.as_deref(), config, &options, &request_rx, &out_tx)
            },
            move |message| {
                let _ = crashed.send(ServiceOut::Loaded(Err(format!(
                    "the NPC worker stopped: {message}"
                ))));
            },
        );
        let worker = match spawned {
            Ok(w) => Some(w),
            Err(e) => {
                app.insert_resource(NpcEngineStatus::Unavailable(e));
                None
            }
        };
        app.insert_resource(NpcEngine { worker, out })
            .add_systems(
                PreUpdate,
                (poll_engine, attach_chats)
                    .chain()
                    .in_set(KilnSystems::Attach),
            )
            .add_message::<NpcConverse>()
            .init_resource::<Conversations>()
            .add_systems(
                PreUpdate,
                (drain_chats, continue_conversations)
                    .chain()
                    .in_set(KilnSystems::Receive),
            )
            .add_systems(
                PostUpdate,
                (start_conversations, dispatch_lines)
                    .chain()
                    .in_set(KilnSystems::Dispatch),
            )
            .add_observer(release_chat);
    }
}

fn service(
    model: Option<&std::path::Path>,
    config: EngineConfig,
    options: &ChatOptions,
    requests: &Receiver<(Entity, Persona, Option<SavedChat>)>,
    out: &Sender<ServiceOut>,
) {
    let engine = match model {
        Some(model) => Engine::load(model, config),
        None => kiln_npc::find_model().and_then(|model| Engine::load(model, config)),
    }
    .map_err(|e| e.to_string());
    let loaded = engine
        .as_ref()
        .map(|e| e.model_path().to_path_buf())
        .map_err(Clone::clone);
    if out.send(ServiceOut::Loaded(loaded)).is_err() {
        return;
    }
    let Ok(engine) = engine else {
        return;
    };
    for (entity, persona, memory) in requests.iter() {
        let restored = memory.map(|saved| {
            engine
                .restore_chat(persona.clone(), saved)
                .inspect_err(|e| {
                    warn!(
                        "{} cannot take up the saved conversation, starting a new one: {e}",
                        persona.name()
                    );
                })
        });
        let chat = match restored {
            Some(Ok(chat)) => Ok(chat),
            _ => engine.chat(persona, options.clone()),
        }
        .map(Box::new)
        .map_err(|e| e.to_string());
        if out.send(ServiceOut::Chat(entity, chat)).is_err() {
            return;
        }
    }
}

/// Takes up the service thread's results: the model's state, and opened chats (which then
/// get the lines that waited for them).
fn poll_engine(
    engine: Res<NpcEngine>,
    mut status: ResMut<NpcEngineStatus>,
    mut npcs: Query<(&Npc, &mut NpcLines, Option<&NpcChoices>)>,
    personas: Res<Assets<PersonaAsset>>,
    mut replied: MessageWriter<NpcReplied>,
    mut commands: Commands,
) {
    for out in engine.out.try_iter() {
        match out {
            ServiceOut::Loaded(Ok(path)) => {
                info!("NPC model ready: {}", path.display());
                *status = NpcEngineStatus::Ready;
            }
            ServiceOut::Loaded(Err(e)) => {
                warn!("NPC model unavailable, NPCs will answer with fallback lines: {e}");
                *status = NpcEngineStatus::Unavailable(e);
            }
            ServiceOut::Chat(entity, chat) => {
                let Ok((npc, mut lines, choices)) = npcs.get_mut(entity) else {
                    // The NPC is gone.
                    if let Ok(chat) = chat {
                        drop_off_thread(chat);
                    }
                    continue;
                };
                lines.opening = false;
                let Some(persona) = personas.get(&npc.persona) else {
                    continue;
                };
                match chat {
                    Ok(chat) => {
                        lines.chat = Some(*chat);
                        if let Some(text) = lines.waiting.pop_front() {
                            ask(
                                entity,
                                &mut lines,
                                text,
                                choices,
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
                }
            }
        }
    }
}

/// Asks the service thread for a chat for every NPC whose persona is loaded, once the engine is
/// ready; with no engine, answers the waiting lines with fallback lines.
fn attach_chats(
    engine: Res<NpcEngine>,
    status: Res<NpcEngineStatus>,
    personas: Res<Assets<PersonaAsset>>,
    asset_server: Res<AssetServer>,
    mut npcs: Query<(Entity, &Npc, &mut NpcLines)>,
    mut replied: MessageWriter<NpcReplied>,
    mut failed: MessageWriter<NpcPersonaFailed>,
) {
    for (entity, npc, mut lines) in &mut npcs {
        // Chats open as soon as the engine is ready; without one, only waiting lines matter.
        let ready = matches!(*status, NpcEngineStatus::Ready);
        if lines.chat.is_some() || lines.opening || (lines.waiting.is_empty() && !ready) {
            continue;
        }
        let Some(persona) = personas.get(&npc.persona) else {
            if let bevy::asset::LoadState::Failed(err) = asset_server.load_state(&npc.persona)
                && (!lines.persona_failed || !lines.waiting.is_empty())
            {
                // No persona, so no voice and no fallback lines: the lines go unanswered.
                let dropped_lines = lines.waiting.len();
                warn!("NPC {entity} has no persona ({err}); {dropped_lines} line(s) dropped");
                lines.waiting.clear();
                lines.persona_failed = true;
                failed.write(NpcPersonaFailed {
                    npc: entity,
                    error: err.to_string(),
                    dropped_lines,
                });
            }
            continue;
        };
        match &*status {
            NpcEngineStatus::Ready => {
                let request = (entity, persona.0.clone(), npc.memory.clone());
                if engine.worker.as_ref().is_some_and(|w| w.send(request)) {
                    lines.opening = true;
                } else {
                    answer_with_fallback(entity, &mut lines, &persona.0, &mut replied);
                }
            }
            NpcEngineStatus::Unavailable(_) => {
                answer_with_fallback(entity, &mut lines, &persona.0, &mut replied);
            }
            NpcEngineStatus::Loading => {}
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
            args: Default::default(),
        },
        fallback: true,
    }
}

/// Sends a line to the NPC's chat with the choices it has now (queued while no chat is open).
fn ask(
    entity: Entity,
    lines: &mut NpcLines,
    text: String,
    choices: Option<&NpcChoices>,
    persona: &Persona,
    replied: &mut MessageWriter<NpcReplied>,
    commands: &mut Commands,
) {
    let Some(chat) = &lines.chat else {
        lines.waiting.push_back(text);
        return;
    };
    let choices = choices.map(|c| c.0.clone()).unwrap_or_default();
    match chat.ask_with(text, choices) {
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
    mut npcs: Query<(&Npc, &mut NpcLines, Option<&NpcChoices>)>,
    personas: Res<Assets<PersonaAsset>>,
    status: Res<NpcEngineStatus>,
    mut replied: MessageWriter<NpcReplied>,
    mut commands: Commands,
) {
    for line in said.read() {
        let Ok((npc, mut lines, choices)) = npcs.get_mut(line.npc) else {
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
                    choices,
                    &p.0,
                    &mut replied,
                    &mut commands,
                );
            }
            (Some(p), _) if lines.waiting.len() >= MAX_WAITING_LINES => {
                warn!(
                    "{} already has {MAX_WAITING_LINES} lines waiting; this one gets a fallback line",
                    p.0.name()
                );
                let reply = fallback(line.npc, &mut lines, &p.0);
                replied.write(reply);
            }
            _ if lines.waiting.len() >= MAX_WAITING_LINES => {
                warn!(
                    "an NPC with no persona yet has {MAX_WAITING_LINES} lines waiting; line dropped"
                );
            }
            _ => lines.waiting.push_back(line.text.clone()),
        }
    }
}

/// Turns chat events into [`NpcReplyDelta`] events and [`NpcReplied`] messages; starts the next
/// waiting line when a reply ends.
fn drain_chats(
    mut npcs: Query<(Entity, &Npc, &mut NpcLines, Option<&NpcChoices>)>,
    personas: Res<Assets<PersonaAsset>>,
    mut replied: MessageWriter<NpcReplied>,
    mut remembered: MessageWriter<NpcRemembered>,
    mut commands: Commands,
) {
    for (entity, npc, mut lines, choices) in &mut npcs {
        if let Some(memory) = lines.snapshot.as_ref().and_then(|rx| rx.try_recv().ok()) {
            lines.snapshot = None;
            remembered.write(NpcRemembered {
                npc: entity,
                memory,
            });
        }
        let Some(chat) = &lines.chat else {
            continue;
        };
        let mut events = Vec::new();
        // A worker that is gone can never answer: the line gets a fallback, the chat is dropped
        // and a new one opens (`attach_chats`) for the lines still waiting.
        let mut gone = false;
        loop {
            match chat.events().try_recv() {
                Ok(event) => events.push(event),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
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
                    lines.snapshot = lines.chat.as_ref().and_then(|c| c.snapshot_later().ok());
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
                if !gone
                    && let (Some(text), Some(p)) =
                        (lines.waiting.pop_front(), personas.get(&npc.persona))
                {
                    ask(
                        entity,
                        &mut lines,
                        text,
                        choices,
                        &p.0,
                        &mut replied,
                        &mut commands,
                    );
                }
            }
        }
        if gone {
            let replying = lines.current.take().is_some();
            if let Some(p) = personas.get(&npc.persona) {
                warn!("{}'s chat worker is gone; opening a new chat", p.0.name());
                if replying {
                    let reply = fallback(entity, &mut lines, &p.0);
                    replied.write(reply);
                }
            }
            commands.entity(entity).remove::<Talking>();
            lines.snapshot = None;
            if let Some(chat) = lines.chat.take() {
                drop_off_thread(chat);
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
