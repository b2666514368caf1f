//! A conversation with one NPC, served by its engine's crowd worker.
//!
//! [`Chat::ask`] returns at once; the worker evaluates only the tokens the NPC's KV stream does
//! not hold yet, samples a grammar-constrained reply — one token per decode, batched with every
//! other NPC that is replying — and streams [`ChatEvent`]s back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::ChatError;
use crate::persona::Persona;
use crate::sampler::Sampling;

pub(crate) mod crowd;
mod generate;
mod kv;
mod save;
mod worker;

use crowd::{CrowdHandle, Msg, Open};
pub use save::{MAX_SAVE_BYTES, MAX_SAVED_TURNS, SAVE_FORMAT, SavedChat, SavedTurn};
use worker::Flags;

/// The longest player line accepted, in characters.
pub const MAX_PLAYER_CHARS: usize = 1000;

/// Identifies one [`Chat::ask`] call in the events it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// A finished NPC reply. `emotion` and `action` are always names from the persona's lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpcReply {
    /// What the NPC says.
    pub say: String,
    /// How the NPC feels: one of the persona's `emotions`.
    pub emotion: String,
    /// What the game should do: one of the persona's `actions` (`none` for plain talk).
    pub action: String,
    /// The action's argument when it takes one (the persona's `action_args`): choice list name
    /// → the value, always one the game offered for this turn ([`crate::Choices`]). Empty for
    /// plain actions.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub args: std::collections::BTreeMap<String, String>,
}

impl NpcReply {
    /// The value of the action's argument from choice list `list` (`reply.arg("item")`).
    pub fn arg(&self, list: &str) -> Option<&str> {
        self.args.get(list).map(String::as_str)
    }
}

/// Measurements of one turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Tokens in the whole prompt for this turn (persona, remembered turns, the new line).
    pub prompt_tokens: usize,
    /// Of those, tokens of the persona (system prompt and examples), always at the start.
    pub persona_tokens: usize,
    /// Of those, tokens whose KV cache entries were reused.
    pub reused_tokens: usize,
    /// Of those, tokens evaluated for this turn.
    pub evaluated_tokens: usize,
    /// Tokens generated for the reply.
    pub generated_tokens: usize,
    /// Time spent compiling this turn's grammar (zero when one compiled for the same choices was
    /// reused).
    pub grammar_compile: Duration,
    /// Times the grammar rejected every top-k candidate and the whole vocabulary was filtered.
    pub grammar_fallbacks: usize,
    /// Old turns forgotten this turn to make room in the context.
    pub dropped_turns: usize,
    /// From the worker picking up the request to the first reply token.
    pub time_to_first_token: Duration,
    /// Spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Spent generating.
    pub generation_time: Duration,
}

/// What a chat's worker reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChatEvent {
    /// More of the reply's spoken text (`say`), as it is generated.
    Delta {
        /// The request.
        request: RequestId,
        /// New text, to append to what came before.
        text: String,
    },
    /// The reply is complete.
    Reply {
        /// The request.
        request: RequestId,
        /// The reply.
        reply: NpcReply,
        /// How it went.
        stats: TurnStats,
    },
    /// The request failed; the conversation is as it was before it.
    Failed {
        /// The request.
        request: RequestId,
        /// Why.
        error: ChatError,
    },
    /// The request was cancelled; the conversation is as it was before it.
    Cancelled {
        /// The request.
        request: RequestId,
    },
}

impl ChatEvent {
    /// The request this event belongs to.
    pub fn request(&self) -> RequestId {
        match self {
            ChatEvent::Delta { request, .. }
            | ChatEvent::Reply { request, .. }
            | ChatEvent::Failed { request, .. }
            | ChatEvent::Cancelled { request } => *request,
        }
    }
}

/// Per-chat settings.
///
/// ```
/// let o = kiln_npc::ChatOptions::default().with_seed(42).with_context_size(1024);
/// assert_eq!(o.seed(), 42);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "OptionsFields")]
pub struct ChatOptions {
    seed: u64,
    sampling: Sampling,
    context_size: Option<u32>,
    threads: Option<u32>,
    warm_up: bool,
}

/// The largest context a chat may ask for (tokens).
pub const MAX_CONTEXT_SIZE: u32 = 32_768;
/// The most threads a chat may ask for.
pub const MAX_THREADS: u32 = 64;

/// [`ChatOptions`] as stored: read through the builders, so a saved or hand-written value is
/// clamped like one made in code (a context of 64 to [`MAX_CONTEXT_SIZE`] tokens, 1 to
/// [`MAX_THREADS`] threads).
#[derive(Deserialize)]
struct OptionsFields {
    seed: u64,
    sampling: Sampling,
    context_size: Option<u32>,
    threads: Option<u32>,
    #[serde(default = "yes")]
    warm_up: bool,
}

impl From<OptionsFields> for ChatOptions {
    fn from(f: OptionsFields) -> Self {
        let mut o = ChatOptions::default()
            .with_seed(f.seed)
            .with_sampling(f.sampling)
            .with_warm_up(f.warm_up);
        if let Some(t) = f.context_size {
            o = o.with_context_size(t);
        }
        if let Some(t) = f.threads {
            o = o.with_threads(t);
        }
        o
    }
}

fn yes() -> bool {
    true
}

impl Default for ChatOptions {
    /// Seed 0, default sampling, the engine's context size and threads, warm-up on.
    fn default() -> Self {
        Self {
            seed: 0,
            sampling: Sampling::default(),
            context_size: None,
            threads: None,
            warm_up: true,
        }
    }
}

impl ChatOptions {
    /// The seed: same model, persona, history and seed give the same reply.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sampling settings.
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }
    /// Tokens of context for this chat (64 to [`MAX_CONTEXT_SIZE`]); default the engine's
    /// per-NPC [`crate::EngineConfig::with_context_size`], which is also the most it gets.
    #[must_use]
    pub fn with_context_size(mut self, tokens: u32) -> Self {
        self.context_size = Some(tokens.clamp(64, MAX_CONTEXT_SIZE));
        self
    }
    /// Threads for this chat (1 to [`MAX_THREADS`]). Kept so that older saves read; the engine's
    /// crowd worker serves every NPC with [`crate::EngineConfig::with_threads`] threads, so this
    /// has no effect on speed or on the reply.
    #[must_use]
    pub fn with_threads(mut self, threads: u32) -> Self {
        self.threads = Some(threads.clamp(1, MAX_THREADS));
        self
    }
    /// Whether the worker evaluates the persona (and any restored history) as soon as the chat
    /// starts, so the first reply comes quickly (default). Off, it waits for the first question.
    #[must_use]
    pub fn with_warm_up(mut self, warm_up: bool) -> Self {
        self.warm_up = warm_up;
        self
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The sampling settings.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }
}

pub(crate) enum Command {
    Ask {
        id: RequestId,
        text: String,
        choices: crate::reply::Choices,
    },
    Reset(Option<u64>),
    Snapshot(Sender<SavedChat>),
}

/// A conversation with one NPC. Create it with [`Engine::chat`].
///
/// Every method returns at once except the `*_blocking` ones, [`Chat::wait`] and
/// [`Chat::snapshot`]. Dropping the chat cancels its work and frees its place in the engine's
/// context (see `Drop`).
pub struct Chat {
    key: u64,
    crowd: Arc<CrowdHandle>,
    events: Receiver<ChatEvent>,
    /// Shared with the worker: what is cancelled, and whether the chat is gone.
    flags: Flags,
    next_id: AtomicU64,
    persona: Persona,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("persona", &self.persona.name())
            .finish_non_exhaustive()
    }
}

/// The longest [`Chat`]'s drop waits for the worker to let the chat go.
pub const DROP_DEADLINE: Duration = Duration::from_secs(5);

impl Drop for Chat {
    /// Cancels the chat's work and waits until the worker has forgotten it: at most one
    /// llama.cpp call (a token of every replying NPC, about 20–80 ms with the default model, or
    /// one prompt chunk), never longer than [`DROP_DEADLINE`]. When it was the engine's last
    /// chat, the llama.cpp context is freed before the drop returns: a context still alive
    /// while the process exits can crash it.
    fn drop(&mut self) {
        self.flags.shutdown.store(true, Ordering::SeqCst);
        self.flags.cancel_upto.store(u64::MAX, Ordering::SeqCst);
        let (done, forgotten) = crossbeam_channel::bounded(1);
        if self.crowd.messages.send(Msg::Close(self.key, done)).is_ok() {
            let _ = forgotten.recv_timeout(DROP_DEADLINE);
        }
    }
}

impl Chat {
    pub(crate) fn spawn(
        engine: &Engine,
        persona: Persona,
        options: ChatOptions,
        saved: Option<SavedChat>,
    ) -> Result<Chat, ChatError> {
        let crowd = engine.crowd.clone();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let flags = Flags::default();
        let key = crowd.next_key.fetch_add(1, Ordering::SeqCst);
        let open = Open {
            key,
            persona: persona.clone(),
            options,
            saved,
            events: ev_tx,
            flags: flags.clone(),
            ready: ready_tx,
        };
        crowd
            .messages
            .send(Msg::Open(Box::new(open)))
            .map_err(|_| ChatError::WorkerGone)?;
        ready_rx.recv().map_err(|_| ChatError::WorkerGone)??;
        Ok(Chat {
            key,
            crowd,
            events: ev_rx,
            flags,
            next_id: AtomicU64::new(1),
            persona,
        })
    }

    fn send(&self, cmd: Command) -> Result<(), ChatError> {
        self.crowd
            .messages
            .send(Msg::Command(self.key, cmd))
            .map_err(|_| ChatError::WorkerGone)
    }
    /// The persona this chat speaks as.
    pub fn persona(&self) -> &Persona {
        &self.persona
    }

    /// Sends the player's line; the reply arrives as events. Returns at once.
    ///
    /// Lines are plain text: chat-template markers or JSON the player types are just words to the
    /// model, and the reply grammar holds whatever they say.
    pub fn ask(&self, text: impl Into<String>) -> Result<RequestId, ChatError> {
        self.ask_with(text, crate::reply::Choices::new())
    }

    /// Like [`Chat::ask`], with what the game offers for action arguments this turn (the NPC's
    /// inventory, the places it knows): the reply can name only those values, and an action with
    /// nothing offered cannot be chosen. The model reads the lists after the player's line.
    pub fn ask_with(
        &self,
        text: impl Into<String>,
        choices: crate::reply::Choices,
    ) -> Result<RequestId, ChatError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(ChatError::BadInput {
                reason: "the line is empty".into(),
            });
        }
        if text.chars().count() > MAX_PLAYER_CHARS {
            return Err(ChatError::BadInput {
                reason: format!("the line is longer than {MAX_PLAYER_CHARS} characters"),
            });
        }
        if text.contains('\0') {
            return Err(ChatError::BadInput {
                reason: "the line contains a NUL character".into(),
            });
        }
        let id = RequestId(self.next_id.fetch_add(1, Ordering::SeqCst));
        self.send(Command::Ask { id, text, choices })?;
        Ok(id)
    }

    /// Cancels every request sent so far; the one in flight stops within a token or one batch.
    pub fn cancel(&self) {
        let last = self.next_id.load(Ordering::SeqCst).saturating_sub(1);
        self.flags.cancel_upto.fetch_max(last, Ordering::SeqCst);
    }

    /// Cancels pending requests and forgets the conversation (the persona stays cached).
    pub fn reset(&self) -> Result<(), ChatError> {
        self.cancel();
        self.send(Command::Reset(None))
    }

    /// Like [`Chat::reset`], and the conversation from here on uses `seed`.
    pub fn reset_with_seed(&self, seed: u64) -> Result<(), ChatError> {
        self.cancel();
        self.send(Command::Reset(Some(seed)))
    }

    /// The channel of events from the worker; poll it with `try_recv` (e.g. once a frame).
    pub fn events(&self) -> &Receiver<ChatEvent> {
        &self.events
    }

    /// Blocks until request `id` ends, discarding its deltas and other requests' events.
    pub fn wait(&self, id: RequestId) -> Result<(NpcReply, TurnStats), ChatError> {
        loop {
            match self.events.recv().map_err(|_| ChatError::WorkerGone)? {
                ChatEvent::Reply {
                    request,
                    reply,
                    stats,
                } if request == id => return Ok((reply, stats)),
                ChatEvent::Failed { request, error } if request == id => return Err(error),
                ChatEvent::Cancelled { request } if request == id => {
                    return Err(ChatError::Cancelled);
                }
                _ => {}
            }
        }
    }

    /// Asks and waits for the whole reply.
    pub fn ask_blocking(&self, text: impl Into<String>) -> Result<NpcReply, ChatError> {
        let id = self.ask(text)?;
        self.wait(id).map(|(reply, _)| reply)
    }

    /// The conversation so far, once the requests sent before this call have ended.
    pub fn snapshot(&self) -> Result<SavedChat, ChatError> {
        self.snapshot_later()?
            .recv()
            .map_err(|_| ChatError::WorkerGone)
    }

    /// Like [`Chat::snapshot`], without waiting: the conversation arrives on the returned
    /// channel once the requests sent before this call have ended (a game polls it with
    /// `try_recv()`).
    pub fn snapshot_later(&self) -> Result<Receiver<SavedChat>, ChatError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Snapshot(tx))?;
        Ok(rx)
    }
}
