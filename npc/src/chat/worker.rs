//! The chat's worker thread: the llama.cpp context, the remembered turns, and the command loop.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::backend::backend;
use crate::engine::Engine;
use crate::error::ChatError;
use crate::persona::Persona;
use crate::reply::grammar::{self, MAX_SENTENCE_CHARS};
use crate::template::{self, TurnTemplate};

use super::{
    ChatEvent, ChatOptions, Command, NpcReply, RequestId, SAVE_FORMAT, SavedChat, SavedTurn,
    TurnStats,
};

pub(super) struct Flags {
    pub(super) cancel_upto: Arc<AtomicU64>,
    pub(super) shutdown: Arc<AtomicBool>,
}

impl Flags {
    pub(super) fn cancelled(&self, id: RequestId) -> bool {
        self.shutdown.load(Ordering::Relaxed) || id.0 <= self.cancel_upto.load(Ordering::Relaxed)
    }
}

pub(super) struct Turn {
    pub(super) player: String,
    pub(super) reply: NpcReply,
    pub(super) raw: String,
    /// The player's words.
    pub(super) words: Vec<LlamaToken>,
    /// The reply's tokens as generated.
    pub(super) generated: Vec<LlamaToken>,
}

pub(super) enum Outcome {
    Done(NpcReply, TurnStats),
    Cancelled,
}

pub(super) struct Worker<'m> {
    pub(super) model: &'m LlamaModel,
    pub(super) ctx: LlamaContext<'m>,
    pub(super) persona: Persona,
    pub(super) options: ChatOptions,
    pub(super) fingerprint: String,
    pub(super) grammar: LlamaSampler,
    pub(super) persona_tokens: Vec<LlamaToken>,
    pub(super) player_end: Vec<LlamaToken>,
    pub(super) npc_end: Vec<LlamaToken>,
    pub(super) turns: Vec<Turn>,
    pub(super) first_remembered: usize,
    /// Tokens whose KV entries are in the cache, at positions 0..len.
    pub(super) cached: Vec<LlamaToken>,
    pub(super) n_ctx: usize,
    pub(super) n_batch: usize,
    pub(super) max_reply_tokens: usize,
    /// Tokens of the NPC's name, which the repeat penalty spares.
    pub(super) name_tokens: std::collections::HashSet<i32>,
}

pub(super) fn decode_err(e: impl std::fmt::Display) -> ChatError {
    ChatError::Decode {
        reason: e.to_string(),
    }
}

impl<'m> Worker<'m> {
    pub(super) fn new(
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
        crate::backend::clear_errors();
        let ctx = model
            .new_context(backend(), params)
            .map_err(|e| ChatError::Context {
                reason: crate::backend::take_errors().unwrap_or_else(|| e.to_string()),
            })?;
        let tt: TurnTemplate = template::derive(model, &persona)?;
        tracing::debug!(
            persona = persona.name(),
            template = tt.source,
            "chat template ready"
        );
        let gbnf = grammar::gbnf(&persona.reply_shape());
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

    /// Takes up a saved conversation. A save is data from outside — a file a player can edit —
    /// so its token ids are reused only when they are this model's (same fingerprint), every id
    /// is an ordinary token of the vocabulary (in range, not a control token) and they spell
    /// exactly the saved text; otherwise the text is tokenized again, which can never yield a
    /// control token. The saved texts themselves were checked by [`SavedChat::check`].
    pub(super) fn restore(&mut self, saved: SavedChat) {
        let same_model = saved.model == self.fingerprint;
        let vocab = self.model.vocab();
        let trusted = |ids: &[i32], text: &str| -> Option<Vec<LlamaToken>> {
            let n = vocab.n_tokens();
            if !same_model || ids.is_empty() || ids.iter().any(|&i| i < 0 || i >= n) {
                return None;
            }
            let tokens: Vec<LlamaToken> = ids.iter().copied().map(LlamaToken).collect();
            if tokens.iter().any(|&t| vocab.is_control(t)) {
                return None;
            }
            let mut spelt = Vec::with_capacity(text.len());
            for &t in &tokens {
                spelt.extend(vocab.token_to_piece(t, false, None));
            }
            (spelt == text.as_bytes()).then_some(tokens)
        };
        let mut retokenized = 0usize;
        for t in saved.turns {
            let reused = trusted(&t.words, &t.player).zip(trusted(&t.generated, &t.raw));
            let (words, generated) = reused.unwrap_or_else(|| {
                retokenized += 1;
                (
                    vocab.tokenize(t.player.as_bytes(), false, false),
                    vocab.tokenize(t.raw.as_bytes(), false, false),
                )
            });
            self.turns.push(Turn {
                player: t.player,
                reply: t.reply,
                raw: t.raw,
                words,
                generated,
            });
        }
        self.first_remembered = saved.first_remembered.min(self.turns.len());
        if retokenized > 0 && same_model {
            tracing::warn!(
                persona = self.persona.name(),
                turns = retokenized,
                "saved token ids did not match their text; those turns were tokenized again"
            );
        }
    }

    pub(super) fn snapshot(&self) -> SavedChat {
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

    pub(super) fn run(
        &mut self,
        commands: &Receiver<Command>,
        events: &Sender<ChatEvent>,
        flags: &Flags,
    ) {
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
}
