//! One NPC's side of the crowd: its persona, remembered turns and what its KV stream holds.
//! The llama.cpp context belongs to the crowd ([`super::crowd`]); a worker only names its
//! sequence in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::error::ChatError;
use crate::persona::Persona;
use crate::reply::grammar::{self, MAX_SENTENCE_CHARS};
use crate::template::{self, TurnTemplate};

use super::{ChatOptions, NpcReply, RequestId, SAVE_FORMAT, SavedChat, SavedTurn};

#[derive(Clone, Default)]
pub(crate) struct Flags {
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
    /// The choices note the model read after the player's words, and its tokens.
    pub(super) note: String,
    pub(super) note_tokens: Vec<LlamaToken>,
}

pub(super) struct Worker<'m> {
    pub(super) model: &'m LlamaModel,
    /// The sequence (KV stream) this NPC holds in the crowd's context, if any.
    pub(super) seq: Option<i32>,
    pub(super) persona: Persona,
    pub(super) options: ChatOptions,
    pub(super) fingerprint: String,
    /// Grammars compiled for this and earlier turns' choices, by their GBNF text: reused when
    /// the game offers the same again.
    pub(super) grammars: std::collections::HashMap<String, LlamaSampler>,
    /// The GBNF text of the grammar of the reply in progress ([`Worker::grammar`]).
    pub(super) grammar_key: String,
    pub(super) persona_tokens: Vec<LlamaToken>,
    pub(super) player_end: Vec<LlamaToken>,
    pub(super) npc_end: Vec<LlamaToken>,
    pub(super) turns: Vec<Turn>,
    pub(super) first_remembered: usize,
    /// Tokens whose KV entries are in the cache, at positions 0..len.
    pub(super) cached: Vec<LlamaToken>,
    pub(super) n_ctx: usize,
    pub(super) n_batch: usize,
    /// Room kept for a reply when old turns are forgotten: the JSON frame and one token per
    /// character of the longest `say` (what replies in Latin script take).
    pub(super) max_reply_tokens: usize,
    /// The most tokens a reply may take: one per byte of the longest `say` (four per character),
    /// so a reply in any script can always be finished; past the reserved room it ends with
    /// [`ChatError::ContextTooSmall`] if the context truly runs out.
    pub(super) reply_token_cap: usize,
    /// Tokens of the NPC's name, which the repeat penalty spares.
    pub(super) name_tokens: std::collections::HashSet<i32>,
}

pub(super) fn decode_err(e: impl std::fmt::Display) -> ChatError {
    ChatError::Decode {
        reason: e.to_string(),
    }
}

impl<'m> Worker<'m> {
    /// `n_ctx`: the tokens of context this chat may use (at most its KV stream's size);
    /// `n_batch`: the canonical prompt chunk.
    pub(super) fn new(
        model: &'m LlamaModel,
        fingerprint: String,
        persona: Persona,
        options: ChatOptions,
        saved: Option<SavedChat>,
        n_ctx: u32,
        n_batch: u32,
    ) -> Result<Self, ChatError> {
        let tt: TurnTemplate = template::derive(model, &persona)?;
        tracing::debug!(
            persona = persona.name(),
            template = tt.source,
            "chat template ready"
        );
        let gbnf = grammar::gbnf(&persona.reply_shape(), &crate::reply::Choices::new());
        let grammar =
            LlamaSampler::grammar(model, &gbnf, "root").map_err(|_| ChatError::Grammar {
                persona: persona.name().to_string(),
            })?;
        let vocab = model.vocab();
        // The template's own markup is read with its control tokens; the persona's text must
        // not spell any, or it could close the system prompt and write turns of its own.
        let mut texts = vec![("system prompt".to_string(), persona.system_prompt())];
        for (i, ex) in persona.examples().iter().enumerate() {
            let reply = persona.render_reply(&ex.say, &ex.emotion, &ex.action, &ex.args);
            texts.push((
                format!("example {}", i + 1),
                format!("{}\n{reply}", ex.player),
            ));
        }
        for (field, text) in texts {
            if vocab.tokenize(text.as_bytes(), false, true)
                != vocab.tokenize(text.as_bytes(), false, false)
            {
                return Err(ChatError::PersonaText {
                    persona: persona.name().to_string(),
                    field,
                });
            }
        }
        let persona_tokens = vocab.tokenize(tt.prefix.as_bytes(), true, true);
        let player_end = vocab.tokenize(tt.player_end.as_bytes(), false, true);
        let npc_end = vocab.tokenize(tt.npc_end.as_bytes(), false, true);
        let max_reply_tokens = 48 + usize::from(persona.max_sentences()) * MAX_SENTENCE_CHARS;
        let reply_token_cap = 48 + usize::from(persona.max_sentences()) * MAX_SENTENCE_CHARS * 4;
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
            seq: None,
            persona,
            options,
            fingerprint,
            grammars: std::collections::HashMap::from([(gbnf.clone(), grammar)]),
            grammar_key: gbnf,
            persona_tokens,
            player_end,
            npc_end,
            turns: Vec::new(),
            first_remembered: 0,
            cached: Vec::new(),
            n_ctx: n_ctx as usize,
            n_batch: n_batch as usize,
            max_reply_tokens,
            reply_token_cap,
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
            let note_tokens = vocab.tokenize(t.note.as_bytes(), false, false);
            self.turns.push(Turn {
                player: t.player,
                reply: t.reply,
                raw: t.raw,
                words,
                generated,
                note: t.note,
                note_tokens,
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

    /// The grammar of the reply in progress.
    pub(super) fn grammar(&mut self) -> &mut LlamaSampler {
        self.grammars
            .get_mut(&self.grammar_key)
            .expect("the current grammar is kept")
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
                    note: t.note.clone(),
                })
                .collect(),
            first_remembered: self.first_remembered,
        }
    }
}
