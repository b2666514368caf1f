//! A conversation with one NPC, run on its own worker thread.
//!
//! [`Chat::ask`] returns at once; the worker evaluates only the tokens the KV cache does not hold
//! yet, samples a grammar-constrained reply and streams [`ChatEvent`]s back.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, backend};
use crate::error::{ChatError, SaveError};
use crate::grammar::{self, MAX_SENTENCE_CHARS};
use crate::persona::Persona;
use crate::sampler::{self, Sampling, SplitMix64};
use crate::template::{self, TurnTemplate};

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
pub struct ChatOptions {
    seed: u64,
    sampling: Sampling,
    context_size: Option<u32>,
    threads: Option<u32>,
    #[serde(default = "yes")]
    warm_up: bool,
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
    /// Context size for this chat, overriding the engine's.
    #[must_use]
    pub fn with_context_size(mut self, tokens: u32) -> Self {
        self.context_size = Some(tokens.max(64));
        self
    }
    /// Threads for this chat, overriding the engine's.
    #[must_use]
    pub fn with_threads(mut self, threads: u32) -> Self {
        self.threads = Some(threads.max(1));
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

/// The saved-conversation format version this build writes and reads.
pub const SAVE_FORMAT: u32 = 1;

/// One remembered exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTurn {
    /// What the player said.
    pub player: String,
    /// What the NPC answered.
    pub reply: NpcReply,
    /// The reply exactly as the model wrote it.
    pub raw: String,
    /// Token ids of the player's words (valid for the model named by [`SavedChat::model`]), so
    /// a restored chat continues bit for bit as the original would; re-tokenised when the model
    /// differs or they are missing.
    #[serde(default)]
    pub words: Vec<i32>,
    /// Token ids of the reply as generated (same rule as `words`).
    #[serde(default)]
    pub generated: Vec<i32>,
}

/// A conversation as saved to disk (serde JSON): the turns, and the settings that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedChat {
    /// Format version, [`SAVE_FORMAT`].
    pub format: u32,
    /// The persona's name.
    pub persona: String,
    /// Fingerprint of the model that produced the turns.
    pub model: String,
    /// The chat's settings.
    pub options: ChatOptions,
    /// Every turn, oldest first (also those the model has forgotten).
    pub turns: Vec<SavedTurn>,
    /// Index of the oldest turn the model still remembers.
    pub first_remembered: usize,
}

impl SavedChat {
    /// Writes the conversation as JSON, atomically: a crash mid-write leaves the old file intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let path = path.as_ref();
        let io = |source| SaveError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a conversation written by [`SavedChat::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SaveError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SaveError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedChat = serde_json::from_slice(&bytes).map_err(|e| SaveError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if saved.format > SAVE_FORMAT {
            return Err(SaveError::Version {
                found: saved.format,
                supported: SAVE_FORMAT,
            });
        }
        if saved.first_remembered > saved.turns.len() {
            return Err(SaveError::Format {
                path: path.to_path_buf(),
                message: "first_remembered is past the last turn".into(),
            });
        }
        Ok(saved)
    }
}

enum Command {
    Ask { id: RequestId, text: String },
    Reset(Option<u64>),
    Snapshot(Sender<SavedChat>),
    Shutdown,
}

/// A conversation with one NPC. Create it with [`Engine::chat`].
///
/// The model runs on the chat's own thread; every method returns at once except the
/// `*_blocking` ones, [`Chat::wait`] and [`Chat::snapshot`]. Dropping the chat cancels its work
/// and stops the thread (see `Drop`).
pub struct Chat {
    commands: Sender<Command>,
    events: Receiver<ChatEvent>,
    cancel_upto: Arc<AtomicU64>,
    shutdown: Arc<AtomicBool>,
    next_id: AtomicU64,
    persona: Persona,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("persona", &self.persona.name())
            .finish_non_exhaustive()
    }
}

impl Drop for Chat {
    /// Cancels the chat's work and waits for its thread to end, which frees its llama.cpp
    /// context. The wait is at most one llama.cpp call: a single token (about 20 ms with the
    /// default model) while a reply is generated, one batch while a long prompt is evaluated.
    /// Waiting matters: a thread still inside llama.cpp while the process exits can crash it.
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.cancel_upto.store(u64::MAX, Ordering::SeqCst);
        let _ = self.commands.send(Command::Shutdown);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

struct LiveGuard(Engine);
impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.inner.live_chats.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Chat {
    pub(crate) fn spawn(
        engine: Engine,
        persona: Persona,
        options: ChatOptions,
        saved: Option<SavedChat>,
    ) -> Result<Chat, ChatError> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let cancel_upto = Arc::new(AtomicU64::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let flags = Flags {
            cancel_upto: cancel_upto.clone(),
            shutdown: shutdown.clone(),
        };
        let worker_persona = persona.clone();
        engine.inner.live_chats.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(engine.clone());
        let worker = std::thread::Builder::new()
            .name(format!("kiln-npc:{}", persona.name()))
            .spawn(move || {
                let _guard = guard;
                let model = &engine.inner.model;
                let mut worker = match Worker::new(&engine, model, worker_persona, options, saved) {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                worker.run(&cmd_rx, &ev_tx, &flags);
            })
            .map_err(|e| ChatError::Context {
                reason: format!("cannot start the chat thread: {e}"),
            })?;
        let ready = ready_rx
            .recv()
            .map_err(|_| ChatError::WorkerGone)
            .and_then(|r| r);
        if let Err(e) = ready {
            // The thread is ending: let it free what it made before reporting.
            let _ = worker.join();
            return Err(e);
        }
        Ok(Chat {
            commands: cmd_tx,
            events: ev_rx,
            cancel_upto,
            shutdown,
            next_id: AtomicU64::new(1),
            persona,
            worker: Some(worker),
        })
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
        self.commands
            .send(Command::Ask { id, text })
            .map_err(|_| ChatError::WorkerGone)?;
        Ok(id)
    }

    /// Cancels every request sent so far; the one in flight stops within a token or one batch.
    pub fn cancel(&self) {
        let last = self.next_id.load(Ordering::SeqCst).saturating_sub(1);
        self.cancel_upto.fetch_max(last, Ordering::SeqCst);
    }

    /// Cancels pending requests and forgets the conversation (the persona stays cached).
    pub fn reset(&self) -> Result<(), ChatError> {
        self.cancel();
        self.commands
            .send(Command::Reset(None))
            .map_err(|_| ChatError::WorkerGone)
    }

    /// Like [`Chat::reset`], and the conversation from here on uses `seed`.
    pub fn reset_with_seed(&self, seed: u64) -> Result<(), ChatError> {
        self.cancel();
        self.commands
            .send(Command::Reset(Some(seed)))
            .map_err(|_| ChatError::WorkerGone)
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
        self.commands
            .send(Command::Snapshot(tx))
            .map_err(|_| ChatError::WorkerGone)?;
        Ok(rx)
    }
}

struct Flags {
    cancel_upto: Arc<AtomicU64>,
    shutdown: Arc<AtomicBool>,
}

impl Flags {
    fn cancelled(&self, id: RequestId) -> bool {
        self.shutdown.load(Ordering::Relaxed) || id.0 <= self.cancel_upto.load(Ordering::Relaxed)
    }
}

struct Turn {
    player: String,
    reply: NpcReply,
    raw: String,
    /// The player's words.
    words: Vec<LlamaToken>,
    /// The reply's tokens as generated.
    generated: Vec<LlamaToken>,
}

enum Outcome {
    Done(NpcReply, TurnStats),
    Cancelled,
}

/// How a run of tokens is evaluated.
///
/// llama.cpp's CPU kernels can round differently for different batch shapes, so the same tokens
/// evaluated in one batch or one by one may give different logits in the last bits. To make a
/// restored or trimmed conversation continue exactly as a live one would, the history is always
/// evaluated in one canonical shape: the persona and each player turn as batches (split every
/// `n_batch` tokens), and reply tokens one by one, as they were during generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Batch,
    OneByOne,
}

struct Segment {
    tokens: Vec<LlamaToken>,
    shape: Shape,
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    persona: Persona,
    options: ChatOptions,
    fingerprint: String,
    grammar: LlamaSampler,
    persona_tokens: Vec<LlamaToken>,
    player_end: Vec<LlamaToken>,
    npc_end: Vec<LlamaToken>,
    turns: Vec<Turn>,
    first_remembered: usize,
    /// Tokens whose KV entries are in the cache, at positions 0..len.
    cached: Vec<LlamaToken>,
    n_ctx: usize,
    n_batch: usize,
    max_reply_tokens: usize,
    /// Tokens of the NPC's name, which the repeat penalty spares.
    name_tokens: std::collections::HashSet<i32>,
}

fn decode_err(e: impl std::fmt::Display) -> ChatError {
    ChatError::Decode {
        reason: e.to_string(),
    }
}

impl<'m> Worker<'m> {
    fn new(
        engine: &Engine,
        model: &'m LlamaModel,
        persona: Persona,
        options: ChatOptions,
        saved: Option<SavedChat>,
    ) -> Result<Self, ChatError> {
        let cfg = engine.config();
        let n_ctx = options.context_size.unwrap_or(cfg.context_size());
        let threads = options.threads.unwrap_or(cfg.threads()) as i32;
        let n_batch = cfg.batch_size().min(n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(1)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        // llama.cpp may write to the model while it creates a context: never two at once.
        static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        crate::llama_log::clear_errors();
        let ctx = model
            .new_context(backend(), params)
            .map_err(|e| ChatError::Context {
                reason: crate::llama_log::take_errors().unwrap_or_else(|| e.to_string()),
            })?;
        let tt: TurnTemplate = template::derive(model, &persona)?;
        tracing::debug!(
            persona = persona.name(),
            template = tt.source,
            "chat template ready"
        );
        let gbnf = grammar::gbnf(&persona);
        let grammar =
            LlamaSampler::grammar(model, &gbnf, "root").map_err(|_| ChatError::Grammar {
                persona: persona.name().to_string(),
            })?;
        let vocab = model.vocab();
        let persona_tokens = vocab.tokenize(tt.prefix.as_bytes(), true, true);
        let player_end = vocab.tokenize(tt.player_end.as_bytes(), false, true);
        let npc_end = vocab.tokenize(tt.npc_end.as_bytes(), false, true);
        let max_reply_tokens = 48 + usize::from(persona.max_sentences()) * MAX_SENTENCE_CHARS;
        let name_tokens = [persona.name().to_string(), format!(" {}", persona.name())]
            .iter()
            .flat_map(|n| vocab.tokenize(n.as_bytes(), false, false))
            .map(|t| t.0)
            .collect();
        let needed =
            persona_tokens.len() + player_end.len() + npc_end.len() + 64 + max_reply_tokens;
        if needed > n_ctx as usize {
            return Err(ChatError::ContextTooSmall { needed, n_ctx });
        }
        let mut w = Worker {
            model,
            ctx,
            persona,
            options,
            fingerprint: engine.fingerprint().to_string(),
            grammar,
            persona_tokens,
            player_end,
            npc_end,
            turns: Vec::new(),
            first_remembered: 0,
            cached: Vec::new(),
            n_ctx: n_ctx as usize,
            n_batch: n_batch as usize,
            max_reply_tokens,
            name_tokens,
        };
        if let Some(saved) = saved {
            w.restore(saved);
        }
        Ok(w)
    }

    fn restore(&mut self, saved: SavedChat) {
        let same_model = saved.model == self.fingerprint;
        let vocab = self.model.vocab();
        let ids = |v: Vec<i32>| v.into_iter().map(LlamaToken).collect::<Vec<_>>();
        for t in saved.turns {
            let (words, generated) = if same_model && !t.words.is_empty() && !t.generated.is_empty()
            {
                (ids(t.words), ids(t.generated))
            } else {
                (
                    vocab.tokenize(t.player.as_bytes(), false, false),
                    vocab.tokenize(t.raw.as_bytes(), false, false),
                )
            };
            self.turns.push(Turn {
                player: t.player,
                reply: t.reply,
                raw: t.raw,
                words,
                generated,
            });
        }
        self.first_remembered = saved.first_remembered.min(self.turns.len());
    }

    fn snapshot(&self) -> SavedChat {
        let ids = |v: &[LlamaToken]| v.iter().map(|t| t.0).collect();
        SavedChat {
            format: SAVE_FORMAT,
            persona: self.persona.name().to_string(),
            model: self.fingerprint.clone(),
            options: self.options.clone(),
            turns: self
                .turns
                .iter()
                .map(|t| SavedTurn {
                    player: t.player.clone(),
                    reply: t.reply.clone(),
                    raw: t.raw.clone(),
                    words: ids(&t.words),
                    generated: ids(&t.generated),
                })
                .collect(),
            first_remembered: self.first_remembered,
        }
    }

    fn run(&mut self, commands: &Receiver<Command>, events: &Sender<ChatEvent>, flags: &Flags) {
        // Warm up: evaluate the persona (and any restored history) before the first question.
        if self.options.warm_up {
            self.catch_up(&|| flags.shutdown.load(Ordering::Relaxed));
        }
        while let Ok(cmd) = commands.recv() {
            if flags.shutdown.load(Ordering::Relaxed) {
                break;
            }
            match cmd {
                Command::Ask { id, text } => {
                    let event = if flags.cancelled(id) {
                        ChatEvent::Cancelled { request: id }
                    } else {
                        match self.answer(id, &text, events, flags) {
                            Ok(Outcome::Done(reply, stats)) => ChatEvent::Reply {
                                request: id,
                                reply,
                                stats,
                            },
                            Ok(Outcome::Cancelled) | Err(ChatError::Cancelled) => {
                                ChatEvent::Cancelled { request: id }
                            }
                            Err(error) => ChatEvent::Failed { request: id, error },
                        }
                    };
                    let replied = matches!(event, ChatEvent::Reply { .. });
                    if events.send(event).is_err() {
                        break;
                    }
                    if replied {
                        // Close the NPC's turn now, while the player reads, so the next
                        // question evaluates only its own words.
                        self.catch_up(&|| {
                            !commands.is_empty() || flags.shutdown.load(Ordering::Relaxed)
                        });
                    }
                }
                Command::Reset(seed) => {
                    self.turns.clear();
                    self.first_remembered = 0;
                    if let Some(seed) = seed {
                        self.options.seed = seed;
                    }
                }
                Command::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                Command::Shutdown => break,
            }
        }
        tracing::debug!(persona = self.persona.name(), "chat worker stopped");
    }

    /// Evaluates what the cache lacks of the remembered history (the persona, restored turns, the
    /// close of the last reply) until `stop` says so. A failure is only logged: the next question
    /// evaluates whatever is still missing, and reports errors then.
    fn catch_up(&mut self, stop: &dyn Fn() -> bool) {
        let history = self.schedule(self.first_remembered, None);
        match self.sync(&history, false, stop) {
            Ok(_) | Err(ChatError::Cancelled) => {}
            Err(e) => tracing::warn!(
                persona = self.persona.name(),
                "evaluating the conversation so far failed: {e}"
            ),
        }
    }

    /// The canonical evaluation of the persona, the turns from `first` on, and (when given) a
    /// new player line: the persona as one batch; per turn, the player's words and the opening
    /// of the NPC's turn as one batch, the reply one token at a time (its last token is never
    /// evaluated during generation), then the reply's last token and the closing of the NPC's
    /// turn as one batch, which the worker evaluates while the player reads the reply.
    fn schedule(&self, first: usize, new_words: Option<&[LlamaToken]>) -> Vec<Segment> {
        let batch = |tokens: Vec<LlamaToken>| Segment {
            tokens,
            shape: Shape::Batch,
        };
        let player_turn = |words: &[LlamaToken]| {
            let mut t = words.to_vec();
            t.extend_from_slice(&self.player_end);
            batch(t)
        };
        let mut segments = vec![batch(self.persona_tokens.clone())];
        for turn in &self.turns[first..] {
            segments.push(player_turn(&turn.words));
            let (last, rest) = turn
                .generated
                .split_last()
                .map_or((None, &[][..]), |(l, r)| (Some(*l), r));
            segments.push(Segment {
                tokens: rest.to_vec(),
                shape: Shape::OneByOne,
            });
            let mut close: Vec<LlamaToken> = last.into_iter().collect();
            close.extend_from_slice(&self.npc_end);
            segments.push(batch(close));
        }
        if let Some(words) = new_words {
            segments.push(player_turn(words));
        }
        segments.retain(|s| !s.tokens.is_empty());
        segments
    }

    /// Makes the KV cache hold exactly the scheduled tokens, evaluating only what it does not
    /// hold yet, in the canonical shape. With `need_logits`, the last token is always evaluated
    /// (its logits are needed) and its batch index is returned. `stop` is polled between
    /// batches; when it says stop, the result is `Err(ChatError::Cancelled)`.
    fn sync(
        &mut self,
        segments: &[Segment],
        need_logits: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<(usize, Option<i32>), ChatError> {
        // Where each canonical decode call starts.
        let mut calls = Vec::new();
        let mut target = Vec::new();
        for seg in segments {
            let start = target.len();
            match seg.shape {
                Shape::Batch => calls.extend(
                    (0..seg.tokens.len())
                        .step_by(self.n_batch)
                        .map(|i| start + i),
                ),
                Shape::OneByOne => calls.extend((0..seg.tokens.len()).map(|i| start + i)),
            }
            target.extend_from_slice(&seg.tokens);
        }
        calls.push(target.len());
        let mut common = self
            .cached
            .iter()
            .zip(&target)
            .take_while(|(a, b)| a == b)
            .count();
        if need_logits {
            common = common.min(target.len().saturating_sub(1));
        }
        // Restart at the decode call that covers the first token not in the cache.
        common = calls
            .iter()
            .copied()
            .filter(|c| *c <= common)
            .max()
            .unwrap_or(0);
        if common < self.cached.len() {
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(0), Some(common as u32), None)
                .map_err(decode_err)?;
            if removed {
                self.cached.truncate(common);
            } else {
                // Models whose cache cannot be cut part-way (recurrent ones) start over.
                self.ctx.clear_kv_cache();
                self.cached.clear();
                return self.sync(segments, need_logits, stop);
            }
        }
        let mut batch = LlamaBatch::new(self.n_batch, 1);
        let mut last = None;
        for pair in calls.windows(2).filter(|w| w[0] >= common) {
            if stop() {
                return Err(ChatError::Cancelled);
            }
            let chunk = &target[pair[0]..pair[1]];
            batch.clear();
            for (i, tok) in chunk.iter().enumerate() {
                let pos = (pair[0] + i) as i32;
                let logits = need_logits && pair[0] + i + 1 == target.len();
                batch.add(*tok, pos, &[0], logits).map_err(decode_err)?;
            }
            self.ctx.decode(&mut batch).map_err(decode_err)?;
            self.cached.extend_from_slice(chunk);
            last = Some(chunk.len() as i32 - 1);
        }
        Ok((common, if need_logits { last } else { None }))
    }

    /// The tokens of a generated reply that lie inside its spoken words (`say`), found the way
    /// generation finds them: after the `"say": "` key is complete, before the closing quote.
    fn spoken_tokens(&self, generated: &[LlamaToken]) -> Vec<i32> {
        let vocab = self.model.vocab();
        let mut raw = Vec::new();
        let mut span = grammar::SpokenSpan::default();
        let mut end = generated.len();
        for (i, tok) in generated.iter().enumerate() {
            raw.extend(vocab.token_to_piece(*tok, false, None));
            span.update(&String::from_utf8_lossy(&raw), i + 1);
            if span.closed {
                end = i;
                break;
            }
        }
        match span.start {
            Some(start) if start <= end => generated[start..end].iter().map(|t| t.0).collect(),
            _ => Vec::new(),
        }
    }

    /// Picks the next reply token under the grammar.
    ///
    /// It draws from the model's top-k as if unconstrained and keeps the draw when the grammar
    /// allows it — the common case, one grammar check. Otherwise it draws again from the allowed
    /// part of the top-k, renormalised (together the constrained distribution, exactly so before
    /// top-p truncation), and only
    /// when no top-k token is allowed does it filter the whole vocabulary. `penalized` are the
    /// tokens the repeat penalty applies to.
    fn next_token(
        grammar: &mut LlamaSampler,
        logits: &[f32],
        penalized: &std::collections::HashSet<i32>,
        sampling: &Sampling,
        rng: &mut SplitMix64,
        fallbacks: &mut usize,
    ) -> Option<i32> {
        let k = sampling.top_k() as usize;
        let penalize = |mut cands: Vec<(i32, f32)>, keep: usize| {
            if !penalized.is_empty() {
                for c in &mut cands {
                    if penalized.contains(&c.0) {
                        c.1 = sampling.penalized(c.1);
                    }
                }
                cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            }
            cands.truncate(keep);
            cands
        };
        let allowed = |grammar: &mut LlamaSampler, cands: &[(i32, f32)]| {
            let mut arr = LlamaTokenDataArray::new(
                cands
                    .iter()
                    .map(|(t, l)| LlamaTokenData::new(LlamaToken(*t), *l, 0.0))
                    .collect(),
                false,
            );
            arr.apply_sampler(grammar);
            let ok: std::collections::HashSet<i32> = arr
                .data
                .iter()
                .filter(|d| d.logit().is_finite())
                .map(|d| d.id().0)
                .collect();
            cands
                .iter()
                .filter(|(t, _)| ok.contains(t))
                .copied()
                .collect::<Vec<_>>()
        };
        // The penalty only lowers logits, so the top k after it are among the top k + |penalized|.
        let top = penalize(sampler::top_k(logits, k + penalized.len()), k);
        let first = sampler::pick(&top, sampling, rng);
        let first_logit = top.iter().find(|c| c.0 == first).map_or(0.0, |c| c.1);
        if !allowed(grammar, &[(first, first_logit)]).is_empty() {
            return Some(first);
        }
        let ok = allowed(grammar, &top);
        if !ok.is_empty() {
            return Some(sampler::pick(&ok, sampling, rng));
        }
        *fallbacks += 1;
        let all: Vec<(i32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i32, *l))
            .collect();
        let ok = allowed(grammar, &all);
        if ok.is_empty() {
            return None;
        }
        let mut masked = vec![f32::NEG_INFINITY; logits.len()];
        for (t, l) in &ok {
            masked[*t as usize] = *l;
        }
        let best = penalize(
            sampler::top_k(&masked, (k + penalized.len()).min(ok.len())),
            k,
        );
        Some(sampler::pick(&best, sampling, rng))
    }

    fn answer(
        &mut self,
        id: RequestId,
        text: &str,
        events: &Sender<ChatEvent>,
        flags: &Flags,
    ) -> Result<Outcome, ChatError> {
        let started = Instant::now();
        let mut stats = TurnStats::default();
        let words = self.model.vocab().tokenize(text.as_bytes(), false, false);

        // Forget old turns (never the persona) until the prompt and the longest reply fit; when
        // forgetting, forget down to about half the room, so it does not happen every turn.
        let len = |segs: &[Segment]| segs.iter().map(|s| s.tokens.len()).sum::<usize>();
        let budget = self.n_ctx - self.max_reply_tokens;
        let mut first = self.first_remembered;
        let mut schedule = self.schedule(first, Some(&words));
        if len(&schedule) > budget {
            let goal = (budget + self.persona_tokens.len()) / 2;
            while len(&schedule) > goal && first < self.turns.len() {
                first += 1;
                stats.dropped_turns += 1;
                schedule = self.schedule(first, Some(&words));
            }
            if len(&schedule) > budget {
                return Err(ChatError::ContextTooSmall {
                    needed: len(&schedule) + self.max_reply_tokens,
                    n_ctx: self.n_ctx as u32,
                });
            }
            tracing::debug!(
                persona = self.persona.name(),
                dropped = stats.dropped_turns,
                "context full: forgot the oldest turns"
            );
        }
        stats.prompt_tokens = len(&schedule);
        stats.persona_tokens = self.persona_tokens.len();
        let (reused, logit_idx) = self.sync(&schedule, true, &|| flags.cancelled(id))?;
        // Forgetting is kept even if this request is cancelled later: the cache matches it.
        self.first_remembered = first;
        let mut logit_idx = logit_idx.ok_or_else(|| decode_err("no logits"))?;
        stats.reused_tokens = reused;
        stats.evaluated_tokens = stats.prompt_tokens - reused;
        stats.prompt_time = started.elapsed();
        let gen_started = Instant::now();

        self.grammar.reset();
        let mut rng = SplitMix64::new(sampler::turn_seed(self.options.seed, self.turns.len()));
        let sampling = self.options.sampling;
        let mut generated: Vec<LlamaToken> = Vec::new();
        let mut raw: Vec<u8> = Vec::new();
        let mut streamed = 0usize;
        let mut batch = LlamaBatch::new(1, 1);
        let mut done = false;
        let mut span = grammar::SpokenSpan::default();
        let echo: Vec<i32> = self.turns[self.first_remembered..]
            .last()
            .map(|t| self.spoken_tokens(&t.generated))
            .unwrap_or_default();
        for _ in 0..self.max_reply_tokens {
            if flags.cancelled(id) {
                return Ok(Outcome::Cancelled);
            }
            // The repeat penalty applies while the spoken words are written, to the words said so
            // far and those of the NPC's previous reply (small models love to parrot it), but not
            // to the NPC's name, the JSON keys, or the emotion and action choices.
            let penalized: std::collections::HashSet<i32> = match span.open_from() {
                Some(from) if sampling.repeat_penalty() > 1.0 => generated[from..]
                    .iter()
                    .map(|t| t.0)
                    .chain(echo.iter().copied())
                    .filter(|t| !self.name_tokens.contains(t))
                    .collect(),
                _ => Default::default(),
            };
            let logits = self.ctx.get_logits_ith(logit_idx);
            let Some(tok) = Self::next_token(
                &mut self.grammar,
                logits,
                &penalized,
                &sampling,
                &mut rng,
                &mut stats.grammar_fallbacks,
            ) else {
                return Err(ChatError::Unparseable {
                    reason: "the grammar allows no token here".into(),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                });
            };
            let tok = LlamaToken(tok);
            self.grammar
                .try_accept(tok)
                .map_err(|e| ChatError::Unparseable {
                    reason: format!("grammar refused token {}: {e}", tok.0),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                })?;
            if generated.is_empty() {
                stats.time_to_first_token = started.elapsed();
            }
            generated.push(tok);
            raw.extend(self.model.vocab().token_to_piece(tok, false, None));

            let valid = match std::str::from_utf8(&raw) {
                Ok(s) => s,
                Err(e) => std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or(""),
            };
            let say = grammar::partial_say(valid);
            span.update(valid, generated.len());
            if say.len() > streamed {
                let delta = say[streamed..].to_string();
                streamed = say.len();
                let _ = events.send(ChatEvent::Delta {
                    request: id,
                    text: delta,
                });
            }
            if valid.ends_with("\"}") {
                done = true;
                break;
            }
            batch.clear();
            batch
                .add(tok, self.cached.len() as i32, &[0], true)
                .map_err(decode_err)?;
            self.ctx.decode(&mut batch).map_err(decode_err)?;
            self.cached.push(tok);
            logit_idx = 0;
        }
        let raw = String::from_utf8_lossy(&raw).into_owned();
        if !done {
            return Err(ChatError::Unparseable {
                reason: format!(
                    "the reply did not end within {} tokens",
                    self.max_reply_tokens
                ),
                raw,
            });
        }
        let (say, emotion, action) =
            grammar::parse_reply(&raw, &self.persona).map_err(|reason| ChatError::Unparseable {
                reason,
                raw: raw.clone(),
            })?;
        stats.generated_tokens = generated.len();
        stats.generation_time = gen_started.elapsed();
        let reply = NpcReply {
            say,
            emotion,
            action,
        };
        self.turns.push(Turn {
            player: text.to_string(),
            reply: reply.clone(),
            raw,
            words,
            generated,
        });
        Ok(Outcome::Done(reply, stats))
    }
}
