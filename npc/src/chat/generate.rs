//! Generating a reply: grammar-constrained sampling, streaming, and the spoken words.

use std::time::Instant;

use crossbeam_channel::Sender;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use crate::error::ChatError;
use crate::reply::parse;
use crate::sampler::{self, Sampling, SplitMix64};

use super::kv::Segment;
use super::worker::{Flags, Outcome, Turn, Worker, decode_err};
use super::{ChatEvent, NpcReply, RequestId, TurnStats};

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

    pub(super) fn answer(
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
        let mut span = parse::SpokenSpan::default();
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
            let say = parse::partial_say(valid);
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
        let (say, emotion, action) = parse::parse_reply(&raw, &self.persona.reply_shape())
            .map_err(|reason| ChatError::Unparseable {
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
