//! Generating a reply: grammar-constrained sampling, streaming, and the spoken words.

use std::time::Instant;

use crossbeam_channel::Sender;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use crate::error::ChatError;
use crate::reply::parse;
use crate::sampler::{self, Sampling, SplitMix64};

use super::kv::Segment;
use super::worker::{Turn, Worker};
use super::{ChatEvent, NpcReply, RequestId, TurnStats};

/// A reply in progress: from the player's line to the closing `"}`.
pub(super) struct Reply {
    pub(super) id: RequestId,
    text: String,
    words: Vec<LlamaToken>,
    choices: crate::reply::Choices,
    note: String,
    note_tokens: Vec<LlamaToken>,
    /// The oldest turn remembered once this reply's prompt is in the stream.
    first: usize,
    pub(super) stats: TurnStats,
    started: Instant,
    gen_started: Instant,
    rng: SplitMix64,
    generated: Vec<LlamaToken>,
    raw: Vec<u8>,
    streamed: usize,
    span: parse::SpokenSpan,
    echo: Vec<i32>,
}

/// What one sampled token did to a reply.
pub(super) enum Step {
    /// The reply goes on: this token must be evaluated next.
    Next(LlamaToken),
    /// The reply is complete (its last token is evaluated later, with the turn's close).
    Done(Box<(NpcReply, TurnStats)>),
}

impl Worker<'_> {
    /// The tokens of a generated reply that lie inside its spoken words (`say`), found the way
    /// generation finds them: after the `"say": "` key is complete, before the closing quote.
    pub(super) fn spoken_tokens(&self, generated: &[LlamaToken]) -> Vec<i32> {
        let vocab = self.model.vocab();
        let mut raw = Vec::new();
        let mut span = parse::SpokenSpan::default();
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
    pub(super) fn next_token(
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

    /// Starts a reply to `text` under this turn's `choices`: sets the turn's grammar (compiled,
    /// or reused from an earlier turn with the same choices), forgets old turns (never the
    /// persona) until the prompt and the longest reply fit — down to about half the room, so it
    /// does not happen every turn — and returns the reply with the schedule its prompt needs.
    pub(super) fn begin(
        &mut self,
        id: RequestId,
        text: &str,
        choices: crate::reply::Choices,
    ) -> Result<(Reply, Vec<Segment>), ChatError> {
        let started = Instant::now();
        let mut stats = TurnStats::default();
        let shape = self.persona.reply_shape();
        let gbnf = crate::reply::grammar::gbnf(&shape, &choices);
        let note = choices.note(&shape);
        if !self.grammars.contains_key(&gbnf) {
            let compiled = LlamaSampler::grammar(self.model, &gbnf, "root").map_err(|_| {
                ChatError::Grammar {
                    persona: self.persona.name().to_string(),
                }
            })?;
            if self.grammars.len() > GRAMMAR_CACHE {
                self.grammars.clear();
            }
            self.grammars.insert(gbnf.clone(), compiled);
            stats.grammar_compile = started.elapsed();
        }
        self.grammar_key = gbnf;
        let vocab = self.model.vocab();
        let words = vocab.tokenize(text.as_bytes(), false, false);
        let note_tokens = vocab.tokenize(note.as_bytes(), false, false);
        let len = |segs: &[Segment]| segs.iter().map(|s| s.tokens.len()).sum::<usize>();
        let budget = self.n_ctx - self.max_reply_tokens;
        let mut first = self.first_remembered;
        let mut schedule = self.schedule(first, Some((&words, &note_tokens)));
        if len(&schedule) > budget {
            let goal = (budget + self.persona_tokens.len()) / 2;
            while len(&schedule) > goal && first < self.turns.len() {
                first += 1;
                stats.dropped_turns += 1;
                schedule = self.schedule(first, Some((&words, &note_tokens)));
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
        let echo: Vec<i32> = self.turns[first..]
            .last()
            .map(|t| self.spoken_tokens(&t.generated))
            .unwrap_or_default();
        let reply = Reply {
            id,
            text: text.to_string(),
            words,
            choices,
            note,
            note_tokens,
            first,
            stats,
            started,
            gen_started: started,
            rng: SplitMix64::new(sampler::turn_seed(self.options.seed, self.turns.len())),
            generated: Vec::new(),
            raw: Vec::new(),
            streamed: 0,
            span: parse::SpokenSpan::default(),
            echo,
        };
        Ok((reply, schedule))
    }

    /// The prompt is in the stream (`reused` of its tokens were already there): generation
    /// starts.
    pub(super) fn prompt_done(&mut self, reply: &mut Reply, reused: usize) {
        // Forgetting is kept even if this request is cancelled later: the cache matches it.
        self.first_remembered = reply.first;
        reply.stats.reused_tokens = reused;
        reply.stats.evaluated_tokens = reply.stats.prompt_tokens - reused;
        reply.stats.prompt_time = reply.started.elapsed();
        reply.gen_started = Instant::now();
        self.grammar().reset();
    }

    /// Samples the reply's next token from `logits`, streams any new spoken text, and says
    /// whether the reply goes on.
    pub(super) fn sample(
        &mut self,
        reply: &mut Reply,
        logits: &[f32],
        events: &Sender<ChatEvent>,
    ) -> Result<Step, ChatError> {
        let sampling = self.options.sampling;
        // The repeat penalty applies while the spoken words are written, to the words said so
        // far and those of the NPC's previous reply (small models love to parrot it), but not
        // to the NPC's name, the JSON keys, or the emotion and action choices.
        let penalized: std::collections::HashSet<i32> = match reply.span.open_from() {
            Some(from) if sampling.repeat_penalty() > 1.0 => reply.generated[from..]
                .iter()
                .map(|t| t.0)
                .chain(reply.echo.iter().copied())
                .filter(|t| !self.name_tokens.contains(t))
                .collect(),
            _ => Default::default(),
        };
        let raw_text = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
        let Some(tok) = Self::next_token(
            self.grammar(),
            logits,
            &penalized,
            &sampling,
            &mut reply.rng,
            &mut reply.stats.grammar_fallbacks,
        ) else {
            return Err(ChatError::Unparseable {
                reason: "the grammar allows no token here".into(),
                raw: raw_text(&reply.raw),
            });
        };
        let tok = LlamaToken(tok);
        self.grammar()
            .try_accept(tok)
            .map_err(|e| ChatError::Unparseable {
                reason: format!("grammar refused token {}: {e}", tok.0),
                raw: raw_text(&reply.raw),
            })?;
        if reply.generated.is_empty() {
            reply.stats.time_to_first_token = reply.started.elapsed();
        }
        reply.generated.push(tok);
        reply
            .raw
            .extend(self.model.vocab().token_to_piece(tok, false, None));
        let valid = match std::str::from_utf8(&reply.raw) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&reply.raw[..e.valid_up_to()]).unwrap_or(""),
        };
        let say = parse::partial_say(valid);
        reply.span.update(valid, reply.generated.len());
        if say.len() > reply.streamed {
            let delta = say[reply.streamed..].to_string();
            reply.streamed = say.len();
            let _ = events.send(ChatEvent::Delta {
                request: reply.id,
                text: delta,
            });
        }
        if !valid.ends_with("\"}") {
            if reply.generated.len() >= self.reply_token_cap {
                return Err(ChatError::Unparseable {
                    reason: format!(
                        "the reply did not end within {} tokens",
                        self.reply_token_cap
                    ),
                    raw: raw_text(&reply.raw),
                });
            }
            if self.cached.len() + 1 >= self.n_ctx {
                // A reply in a script of many tokens per character outgrew the reserved room.
                return Err(ChatError::ContextTooSmall {
                    needed: self.cached.len() + 2,
                    n_ctx: self.n_ctx as u32,
                });
            }
            return Ok(Step::Next(tok));
        }
        let raw = raw_text(&reply.raw);
        let (say, emotion, action, args) =
            parse::parse_reply(&raw, &self.persona.reply_shape(), &reply.choices).map_err(
                |reason| ChatError::Unparseable {
                    reason,
                    raw: raw.clone(),
                },
            )?;
        let mut stats = std::mem::take(&mut reply.stats);
        stats.generated_tokens = reply.generated.len();
        stats.generation_time = reply.gen_started.elapsed();
        let npc_reply = NpcReply {
            say,
            emotion,
            action,
            args,
        };
        // The transcript is capped like a save: the oldest forgotten turns go first.
        if self.turns.len() >= super::MAX_SAVED_TURNS {
            let drop = (self.turns.len() + 1 - super::MAX_SAVED_TURNS).min(self.first_remembered);
            self.turns.drain(..drop);
            self.first_remembered -= drop;
        }
        self.turns.push(Turn {
            player: std::mem::take(&mut reply.text),
            reply: npc_reply.clone(),
            raw,
            words: std::mem::take(&mut reply.words),
            generated: std::mem::take(&mut reply.generated),
            note: std::mem::take(&mut reply.note),
            note_tokens: std::mem::take(&mut reply.note_tokens),
        });
        Ok(Step::Done(Box::new((npc_reply, stats))))
    }
}

/// Compiled grammars a chat keeps for the choices of earlier turns (besides the current one).
const GRAMMAR_CACHE: usize = 8;
